//! Where events come from, with their positions.
//!
//! A source yields raw records (bytes) with a [`Position`](crate::engine::Position):
//! the file source numbers lines; the Kafka source gives partition and
//! offset. Parsing is the engine's job, so both sources classify bad input
//! the same way.

pub mod file;
pub mod kafka;
