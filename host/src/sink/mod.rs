//! Where fired windows go.
//!
//! Every sink sees the same [`FeatureRecord`] (docs/semantics.md, "The
//! output record"). Sinks are batched: the engine hands over all records of one
//! flush at once. This module also holds the JSON-lines logs for records
//! that could not be processed ([`RecordLog`]: dead letters, late events).

mod background;
mod dump;
mod jsonl;
mod log;
pub mod redis;
mod redis_cluster;
mod wire;

pub use background::Background;
pub use jsonl::{JsonlFormat, JsonlSink, LineRenderer};
pub use log::{LogStats, RecordLog};
pub use redis::RedisSink;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::plugin::declaration::Field;
pub use crate::plugin::value::{Value, format_float, write_json_str};

/// One fired window of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRecord {
    pub view: Arc<str>,
    /// The store key: `{view}:{entity}` for sliding windows,
    /// `{view}:{entity}:{window_start}` for sessions.
    pub key: String,
    /// Where [`FeatureRecord::entity`] sits in `key` (one allocation less
    /// per record; a million windows can fire at once).
    pub entity_span: std::ops::Range<usize>,
    pub window_start: i64,
    /// Exclusive.
    pub window_end: i64,
    pub fields: Arc<[Field]>,
    pub values: Vec<Value>,
    pub ttl_seconds: u64,
    /// When the watermark fired the window (for fire-to-store latency).
    pub fired_at: std::time::Instant,
}

impl FeatureRecord {
    /// The value of the view's key field (the `user_id`).
    pub fn entity(&self) -> &str {
        &self.key[self.entity_span.clone()]
    }
}

/// A sink failed. Says whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {sink}: {source}")]
    Io {
        sink: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sink {sink}: {reason} (retryable: {retryable})")]
    Store {
        sink: String,
        reason: String,
        retryable: bool,
    },
}

/// Where the engine writes fired windows.
pub trait Sink: Send {
    /// Write one batch, in order. Order matters: a later record for the same
    /// key overwrites an earlier one.
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError>;

    /// [`Sink::write`], taking the records: a sink that hands them to
    /// another thread moves them instead of copying.
    fn write_owned(&mut self, records: Vec<FeatureRecord>) -> Result<(), SinkError> {
        self.write(&records)
    }

    /// Make everything written so far durable (or at least handed off).
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// A barrier after everything written so far: it completes once the
    /// store has acknowledged all of it. A checkpoint commits only after its
    /// barrier, so no output fired before a checkpoint is ever lost. The
    /// default (a synchronous sink) is done at once, after a flush.
    fn barrier(&mut self) -> Barrier {
        match self.flush() {
            Ok(()) => Barrier::done(),
            Err(e) => Barrier::failed(e),
        }
    }
}

/// Completes once a sink has acknowledged everything written before it
/// ([`Sink::barrier`]).
#[must_use = "a barrier means nothing unless waited for"]
pub struct Barrier(BarrierState);

enum BarrierState {
    Done,
    Failed(SinkError),
    Pending {
        sink: String,
        rx: std::sync::mpsc::Receiver<()>,
    },
}

impl Barrier {
    /// Already passed.
    pub fn done() -> Self {
        Barrier(BarrierState::Done)
    }

    /// Cannot pass: the sink failed.
    pub fn failed(e: SinkError) -> Self {
        Barrier(BarrierState::Failed(e))
    }

    /// Passes when `rx` receives (or fails when its sender is dropped).
    pub fn pending(sink: String, rx: std::sync::mpsc::Receiver<()>) -> Self {
        Barrier(BarrierState::Pending { sink, rx })
    }

    /// Wait for the barrier, at most `timeout` (`None`: as long as it takes).
    pub fn wait(self, timeout: Option<std::time::Duration>) -> Result<(), SinkError> {
        match self.0 {
            BarrierState::Done => Ok(()),
            BarrierState::Failed(e) => Err(e),
            BarrierState::Pending { sink, rx } => {
                let got = match timeout {
                    None => rx.recv().map_err(|_| "the writer stopped before acknowledging"),
                    Some(t) => rx.recv_timeout(t).map_err(|e| match e {
                        std::sync::mpsc::RecvTimeoutError::Timeout => "not acknowledged in time",
                        std::sync::mpsc::RecvTimeoutError::Disconnected => "the writer stopped before acknowledging",
                    }),
                };
                got.map_err(|reason| SinkError::Store {
                    sink,
                    reason: reason.to_string(),
                    retryable: reason == "not acknowledged in time",
                })
            }
        }
    }
}

impl SinkError {
    /// Whether writing again (after a restore) can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Io { .. } => true,
            SinkError::Store { retryable, .. } => *retryable,
        }
    }
}

/// Counts records per view and drops them: for benchmarks.
#[derive(Debug, Default)]
pub struct CountingSink {
    pub records: u64,
    pub per_view: std::collections::BTreeMap<String, u64>,
    /// A checksum of the records (store key, window end, values), so the
    /// work cannot be optimised away and two runs can be compared cheaply.
    /// The sum of one hash per record: it does not depend on the order of
    /// windows that fire together, which is unspecified (it follows key ids,
    /// which a restore or a reclaimed key changes).
    pub checksum: u64,
}

/// SplitMix64's finaliser: spreads a hash over all 64 bits before summing.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sink for CountingSink {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        for r in records {
            self.records += 1;
            match self.per_view.get_mut(&*r.view) {
                Some(n) => *n += 1,
                None => {
                    self.per_view.insert(r.view.to_string(), 1);
                }
            }
            let mut h = rustc_hash::FxHasher::default();
            r.key.hash(&mut h);
            r.window_end.hash(&mut h);
            for v in &r.values {
                match v {
                    Value::Integer(i) => i.hash(&mut h),
                    Value::Float(f) => f.to_bits().hash(&mut h),
                    Value::Boolean(b) => b.hash(&mut h),
                    Value::Text(s) => s.hash(&mut h),
                }
            }
            self.checksum = self.checksum.wrapping_add(mix(h.finish()));
        }
        Ok(())
    }
}
