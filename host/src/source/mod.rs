//! Where events come from, with their positions.
//!
//! A [`Source`] hands over raw records (bytes) in blocks, each block a run
//! of consecutive records of one partition with their offsets, borrowed
//! from the source's own buffers (no copy per record). Parsing is the
//! engine's job, so every source classifies bad input the same way.
//!
//! - [`file`]: a JSON-lines file or stdin, one partition, offsets = line
//!   numbers (1-based).
//! - [`kafka`]: a Kafka topic, offsets = Kafka offsets.
//!
//! Positions belong to the checkpoint: a pipeline restored from one seeks
//! its source to the checkpoint's offsets ([`Source::seek`]).
//!
//! Depends on `config` only; knows nothing of the engine.

pub mod file;
pub mod kafka;
pub mod kafka_group;

use std::collections::BTreeMap;
use std::time::Duration;

pub use file::FileSource;
pub use kafka::KafkaSource;

/// Where a record came from: a partition and an offset (a line number for
/// files, a Kafka offset for topics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// Records of one partition, `(offset, bytes)`, consecutive and in order.
pub type Block<'a> = [(u64, &'a [u8])];

/// Records per block (at most).
pub const BLOCK: usize = 64;

/// What one [`Source::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// Some records were handed over.
    Records,
    /// Nothing arrived within the timeout.
    Quiet,
    /// A bounded source is read to its end; nothing more will come.
    End,
}

/// A source failed. Says whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Bad settings: retrying cannot help.
    #[error("{source_name}: invalid configuration: {reason}")]
    Config { source_name: String, reason: String },
    /// The broker did not answer (in time); retrying can help.
    #[error("{source_name}: unavailable: {reason}")]
    Unavailable { source_name: String, reason: String },
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
    /// The source cannot go to the position asked for (stdin cannot rewind).
    #[error("{source_name}: cannot seek: {reason}")]
    Seek { source_name: String, reason: String },
}

impl SourceError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SourceError::Unavailable { .. })
    }
}

/// Where events come from.
pub trait Source: Send {
    /// The input's name (a path, a topic), for logs and dead letters.
    fn name(&self) -> &str;

    /// The partitions this source reads.
    fn partitions(&self) -> Vec<u32>;

    /// Continue each partition named in `next` at that offset (the next one
    /// to read); the others start where the source starts by default (the
    /// beginning of a file; the group's committed offset, else the earliest,
    /// for Kafka).
    fn seek(&mut self, next: &BTreeMap<u32, i64>) -> Result<(), SourceError>;

    /// Hand the next records to `f`, a block of one partition at a time
    /// (at most [`BLOCK`] records), waiting up to `timeout` for the first.
    /// An error after some records were handed over is returned after them.
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(u32, &Block<'_>)) -> Result<Polled, SourceError>;

    /// Whether the input ends ([`Polled::End`]): then it has no idle
    /// partitions and the wall clock plays no part.
    fn is_bounded(&self) -> bool;

    /// Tell the source's owner (a broker) how far the job has durably got:
    /// a courtesy for lag monitoring, after a checkpoint. Never relied on.
    fn commit(&mut self, _next: &[(u32, i64)]) {}

    /// The end offset of each partition, best effort and quick (for lag).
    fn end_offsets(&self) -> BTreeMap<u32, i64> {
        BTreeMap::new()
    }
}
