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
                    memory_limit_mib: p.limits.memory_bytes >> 20,
                    window: p.declaration.window.to_string(),
                    loaded_since_ms: v.loaded_since_ms,
                    open_states: v.open_states(),
                    disabled: v.disabled.clone(),
                    stats: v.stats.clone(),
                }
            })
            .collect();
        let owned = source.partitions();
        // A core of its own: the engine's figures are the partition's.
        let alone = owned.len() == 1;
        let open_states: usize = engine.views().iter().map(|v| v.open_states()).sum();
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
                records_per_s: alone.then_some(rate),
                open_states: alone.then_some(open_states),
                restore_ms: alone
                    .then_some(())
                    .and(summary.restore_time)
                    .map(|d| d.as_millis() as u64),
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

/// The status of a group member from its partitions' own (each partition
/// runs a pipeline of its own): counts added, partitions and checkpoints
/// listed together, the watermark the lowest. `out` keeps its identity,
/// start time and throughput history; this adds one throughput sample.
pub fn merge(parts: &[Status], out: &mut Status) {
    let now = clock::now_ms();
    out.updated_ms = now;
    out.sources_assigned = !parts.is_empty();
    out.kafka_errors = parts.iter().map(|s| s.kafka_errors).sum();
    out.failing = parts.iter().flat_map(|s| s.failing.iter().cloned()).collect();
    out.failing.sort();
    out.failing.dedup();
    out.watermark = parts.iter().map(|s| s.watermark).min().unwrap_or(i64::MIN);
    out.engine = Default::default();
    let mut views: Vec<ViewStatus> = Vec::new();
    for s in parts {
        out.engine.add(&s.engine);
        for v in &s.views {
            match views.iter_mut().find(|m| m.view == v.view) {
                Some(m) => {
                    m.open_states += v.open_states;
                    m.stats.add(&v.stats);
                    if m.disabled.is_none() {
                        m.disabled.clone_from(&v.disabled);
                    }
                }
                None => views.push(v.clone()),
            }
        }
    }
    out.views = views;
    out.partitions = parts.iter().flat_map(|s| s.partitions.iter().cloned()).collect();
    out.partitions.sort_by_key(|p| p.partition);
    out.checkpoints = parts.iter().flat_map(|s| s.checkpoints.iter().cloned()).collect();
    out.checkpoints.sort_by_key(|c| c.created_ms);
    let keep = out.checkpoints.len().saturating_sub(CHECKPOINTS_SHOWN);
    out.checkpoints.drain(..keep);
    out.last_checkpoint_pause_ms = parts.iter().map(|s| s.last_checkpoint_pause_ms).fold(0.0, f64::max);
    // Every partition applies the same deploys: one history shows them.
    out.history = parts.first().map(|s| s.history.clone()).unwrap_or_default();
    let rate: f64 = parts.iter().filter_map(|s| s.throughput.last().map(|t| t.1)).sum();
    out.throughput.push((now, rate));
    if out.throughput.len() > THROUGHPUT_SAMPLES {
        out.throughput.remove(0);
    }
}
