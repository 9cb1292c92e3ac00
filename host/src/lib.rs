//! featherflow: a streaming feature engine.
//!
//! Events come in (a file or Kafka), get an event time and a watermark, are
//! grouped per key into windows, and every fired window is turned into feature
//! values by a WebAssembly plugin and written out (JSON lines or Redis).
//!
//! # Layout
//!
//! The modules follow the data:
//!
//! - [`event`]: the event model and its parser; bad input is classified here.
//! - [`source`]: where events come from (files now, Kafka next), with positions.
//! - [`time`]: watermarks per partition (pure: time is an input).
//! - [`window`]: sliding windows by slices and session windows (pure).
//! - [`plugin`]: everything wasmtime — the one `bindgen!` site, limits, loading.
//! - [`engine`]: one view = a plugin + its windows + its state; the batch loop
//!   that crosses into Wasm once per batch.
//! - [`state`]: checkpoints (sled, and an in-memory twin).
//! - [`cow`]: the copy-on-write vector that lets a checkpoint snapshot the
//!   state in microseconds and encode it on another thread.
//! - [`sink`]: where fired windows go (JSON lines, counting, Redis).
//! - [`api`]: HTTP — Prometheus metrics, health, JSON API, the dashboard.
//! - [`config`]: one validated configuration tree.
//! - [`job`]: `featherflow run`: Kafka in, Redis out, checkpoints, recovery.
//! - [`app`]: the wiring of the commands; the only place that knows every stage.
//! - [`bench`]: the deterministic event generator and the replay benchmark.
//! - [`testing`]: comparing JSON-lines outputs (golden tests, `plugin test`).

pub mod api;
pub mod app;
pub mod bench;
pub mod config;
pub mod cow;
pub mod engine;
pub mod event;
pub mod job;
pub mod plugin;
pub mod produce;
pub mod sink;
pub mod source;
pub mod state;
pub mod testing;
pub mod time;
pub mod window;
