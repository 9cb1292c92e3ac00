//! Publishing the pipeline's state for the API, a few times a second.
//!
//! The API's handlers only read the shared [`Status`]; they never touch the
//! engine, so a slow scrape cannot pause the event loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Summary;
use super::checkpoint::Checkpointer;
use crate::api::{PartitionStatus, Status, ViewStatus};
use crate::clock;
use crate::engine::{Engine, SwapRecord};
use crate::source::Source;
use crate::state::CheckpointMeta;

/// Checkpoints the API lists (newest last).
const CHECKPOINTS_SHOWN: usize = 50;
/// Throughput samples kept (one per publish: a few minutes).
const THROUGHPUT_SAMPLES: usize = 300;

pub struct StatusPublisher {
    status: Arc<Mutex<Status>>,
    last: Instant,
    last_records: u64,
    last_ends: Instant,
    /// End offsets last seen (fetched every few seconds: a broker round trip).
    ends: BTreeMap<u32, i64>,
}

impl StatusPublisher {
    pub fn new(status: Arc<Mutex<Status>>) -> Self {
        Self {
            status,
            last: Instant::now(),
            last_records: 0,
            last_ends: Instant::now() - Duration::from_secs(60),
            ends: BTreeMap::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A checkpoint completed.
    pub fn checkpoint_done(&self, meta: CheckpointMeta) {
        let mut s = self.lock();
        s.checkpoints.push(meta);
        let keep = s.checkpoints.len().saturating_sub(CHECKPOINTS_SHOWN);
        s.checkpoints.drain(..keep);
    }

    /// A deploy was applied (or refused).
    pub fn deployed(&self, rec: SwapRecord) {
        self.lock().history.push(rec);
    }

    /// Publish, at most every 500 ms unless `force`.
    pub fn publish(
        &mut self,
        engine: &Engine,
        source: &dyn Source,
        positions: &BTreeMap<u32, i64>,
        checkpoints: Option<&Checkpointer>,
        summary: &Summary,
        force: bool,
    ) {
        let dt = self.last.elapsed();
        if !force && dt < Duration::from_millis(500) {
            return;
        }
        if self.last_ends.elapsed() >= Duration::from_secs(5) {
            self.ends = source.end_offsets();
            self.last_ends = Instant::now();
        }
        let now = clock::now_ms();
        let records = engine.stats.records_read;
        let rate = records.saturating_sub(self.last_records) as f64 / dt.as_secs_f64().max(1e-3);
        self.last_records = records;
        self.last = Instant::now();
        let views = engine
            .views()
            .iter()
            .map(|v| {
                let p = v.plugin();
                ViewStatus {
                    view: p.declaration.view.clone(),
                    version: p.declaration.version.clone(),
                    hash: p.hash.clone(),
                    state_version: p.declaration.state_version,
                    window: p.declaration.window.to_string(),
                    loaded_since_ms: v.loaded_since_ms,
                    open_states: v.open_states(),
                    disabled: v.disabled.clone(),
                    stats: v.stats.clone(),
                }
            })
            .collect();
        let owned = source.partitions();
        let partitions = engine
            .watermarks()
            .partitions()
            .filter(|(p, _, _)| owned.contains(&(*p as u32)))
            .map(|(p, wm, idle)| PartitionStatus {
                partition: p as u32,
                watermark: wm,
                idle,
                position: positions.get(&(p as u32)).copied().unwrap_or(0),
                end: self.ends.get(&(p as u32)).copied().unwrap_or(-1),
            })
            .collect();
        let mut s = self.lock();
        s.updated_ms = now;
        s.topic = source.name().to_string();
        s.sources_assigned = true;
        s.kafka_errors = summary.source_errors;
        s.failing.clear();
        if summary.source_failing {
            s.failing.push("the source".into());
        }
        if checkpoints.is_some_and(Checkpointer::is_failing) {
            s.failing.push("checkpoints".into());
        }
        s.watermark = engine.watermark();
        s.engine = engine.stats.clone();
        s.views = views;
        s.partitions = partitions;
        s.last_checkpoint_pause_ms = checkpoints.map_or(0.0, |c| c.stats().last_pause.as_secs_f64() * 1000.0);
        s.throughput.push((now, rate));
        if s.throughput.len() > THROUGHPUT_SAMPLES {
            s.throughput.remove(0);
        }
    }
}
