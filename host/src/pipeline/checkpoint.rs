//! Checkpoints, pipeline side: when to take one, and its steps.
//!
//! 1. **Capture** (on the event loop): the engine applies pending batches,
//!    hands every fired window to the sink, and takes a copy-on-write
//!    snapshot of every open state — microseconds, the loop's only pause.
//! 2. **Barrier**: asked of the sink right after those records.
//! 3. **Encode and put** (on a thread, beside the event loop): each chunk
//!    goes into the store as soon as it is made.
//! 4. **Commit**, only once the barrier has passed — every output fired
//!    before the capture is acknowledged — so a checkpoint never completes
//!    ahead of its outputs. Old checkpoints are pruned (`retain`).
//! 5. **Courtesy offset commit** to the source (lag monitoring only; the
//!    checkpoint owns the offsets).
//!
//! A failed checkpoint is logged and counted; the next one tries again and
//! nothing is lost (a restore just replays from an older one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError};
use crate::outage::Outage;
use crate::source::Source;
use crate::state::{CheckpointMeta, CheckpointStore, EngineSnapshot, StateError, load_checkpoint};

/// Figures of the checkpoints taken so far.
#[derive(Debug, Default, Clone)]
pub struct CheckpointStats {
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints that failed (or were abandoned).
    pub failed: u64,
    pub last_id: Option<u64>,
    pub last_pause: Duration,
    pub max_pause: Duration,
    /// Longest capture-to-durable time.
    pub max_duration: Duration,
    /// Most open window parts in one checkpoint.
    pub max_open_states: u64,
}

/// Takes the checkpoints of one pipeline.
pub struct Checkpointer {
    store: Arc<dyn CheckpointStore>,
    /// Written into every checkpoint (the topic, or the file).
    topic: String,
    interval: Duration,
    retain: usize,
    next_id: u64,
    last: Instant,
    /// Encoding and writing happen here while the event loop goes on.
    in_flight: Option<JoinHandle<Result<CheckpointMeta, StateError>>>,
    stats: CheckpointStats,
    /// Failing checkpoints (a full disk, a store that does not answer):
    /// logged when it starts, every 10 s at most, and when it ends.
    outage: Outage,
}

impl Checkpointer {
    /// Checkpoints of `topic` into `store` every `interval`, keeping the
    /// newest `retain`.
    pub fn new(
        store: Arc<dyn CheckpointStore>,
        topic: &str,
        interval: Duration,
        retain: usize,
    ) -> Result<Self, StateError> {
        let next_id = store.list()?.last().map_or(1, |m| m.id + 1);
        Ok(Self {
            store,
            topic: topic.to_string(),
            interval,
            retain: retain.max(1),
            next_id,
            last: Instant::now(),
            in_flight: None,
            stats: CheckpointStats::default(),
            outage: Outage::new("checkpoints"),
        })
    }

    /// Number the checkpoints from a writer generation claimed in the
    /// store ([`CheckpointStore::claim_generation`]): ids of generation `g`
    /// start at `g * GENERATION_IDS + 1`, apart from every other writer's.
    pub fn claim_generation(mut self) -> Result<Self, StateError> {
        let g = self.store.claim_generation()?;
        self.next_id = self.next_id.max(g * crate::state::GENERATION_IDS + 1);
        Ok(self)
    }

    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.store
    }

    pub fn stats(&self) -> &CheckpointStats {
        &self.stats
    }

    /// Checkpoints are failing now (for health checks).
    pub fn is_failing(&self) -> bool {
        self.outage.is_failing()
    }

    /// The display path of checkpoint `id`.
    pub fn path_of(&self, id: u64) -> String {
        self.store.checkpoint_path(id)
    }

    /// Checkpoint `from`, else the newest complete one; `None` when there
    /// is none (and none was asked for).
    pub fn load(&self, from: Option<u64>) -> Result<Option<(CheckpointMeta, EngineSnapshot)>, StateError> {
        let id = match from {
            Some(id) => id,
            None => match self.store.list()?.last() {
                Some(m) => m.id,
                None => return Ok(None),
            },
        };
        load_checkpoint(self.store.as_ref(), id).map(Some)
    }

    /// Time for the next one (and none in flight).
    pub fn due(&self) -> bool {
        self.in_flight.is_none() && self.last.elapsed() >= self.interval
    }

    /// Start a checkpoint of `engine` at `positions` (the next offset per
    /// partition). Waits for one still in flight first.
    pub fn start(
        &mut self,
        engine: &mut Engine,
        positions: &BTreeMap<u32, i64>,
        created_ms: i64,
    ) -> Result<(), EngineError> {
        if let Some(h) = self.in_flight.take() {
            let _ = self.join(h);
        }
        let started = Instant::now();
        let capture = engine.capture()?;
        let open_states: u64 = engine.views().iter().map(|v| v.open_states() as u64).sum();
        let barrier = engine.sink_mut().barrier();
        let pause = started.elapsed();
        self.stats.max_open_states = self.stats.max_open_states.max(open_states);
        self.stats.max_pause = self.stats.max_pause.max(pause);
        self.stats.last_pause = pause;
        let offsets = positions.iter().map(|(&p, &o)| (p, o)).collect();
        let mut meta = capture.meta(self.next_id, created_ms, &self.topic, offsets, open_states);
        self.next_id += 1;
        self.last = Instant::now();
        let store = self.store.clone();
        let retain = self.retain;
        let spawned = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            capture.put_into(store.as_ref(), &mut meta)?;
            drop(capture);
            // Everything fired before the capture must be in the sink first.
            if let Err(e) = barrier.wait(None) {
                let _ = store.discard(meta.id);
                return Err(StateError::Store {
                    path: store.checkpoint_path(meta.id),
                    reason: format!("not committed: the sink did not acknowledge the outputs before it: {e}"),
                });
            }
            store.commit(&meta)?;
            meta.duration_ms = started.elapsed().as_millis() as u64;
            store.retain(retain)?;
            tracing::info!(checkpoint = %store.checkpoint_path(meta.id), size = meta.size_bytes, open_states = meta.open_states, pause_ms = pause.as_secs_f64() * 1000.0, duration_ms = meta.duration_ms, "checkpoint complete");
            Ok(meta)
        });
        match spawned {
            Ok(h) => self.in_flight = Some(h),
            Err(e) => {
                self.stats.failed += 1;
                tracing::error!(error = %e, "cannot start the checkpoint thread; the next checkpoint tries again");
            }
        }
        Ok(())
    }

    /// Collect a checkpoint that has completed (or, with `wait`, the one in
    /// flight): count it and tell `source` its offsets. Returns its
    /// metadata when it succeeded.
    pub fn reap(&mut self, source: &mut dyn Source, wait: bool) -> Option<CheckpointMeta> {
        let h = if wait {
            self.in_flight.take()?
        } else {
            self.in_flight.take_if(|h| h.is_finished())?
        };
        let meta = self.join(h)?;
        source.commit(&meta.offsets);
        Some(meta)
    }

    /// [`Checkpointer::reap`] with a deadline: waits for the checkpoint in
    /// flight until `deadline`, then abandons it. `Err(())` when it was
    /// abandoned (or failed); `Ok(None)` when none was in flight.
    #[allow(clippy::result_unit_err)]
    pub fn reap_by(&mut self, source: &mut dyn Source, deadline: Instant) -> Result<Option<CheckpointMeta>, ()> {
        let Some(h) = self.in_flight.as_ref() else {
            return Ok(None);
        };
        while !h.is_finished() {
            if Instant::now() >= deadline {
                self.abandon();
                return Err(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reap(source, true).map(Some).ok_or(())
    }

    /// The newest complete checkpoint in the store (what a restart restores).
    pub fn latest(&self) -> Option<CheckpointMeta> {
        self.store.list().ok()?.pop()
    }

    fn join(&mut self, h: JoinHandle<Result<CheckpointMeta, StateError>>) -> Option<CheckpointMeta> {
        match h.join() {
            Ok(Ok(meta)) => {
                self.outage.ok();
                self.stats.completed += 1;
                self.stats.last_id = Some(meta.id);
                self.stats.max_duration = self.stats.max_duration.max(Duration::from_millis(meta.duration_ms));
                Some(meta)
            }
            Ok(Err(e)) => {
                // Nothing is lost: a restore replays from an older one.
                self.stats.failed += 1;
                self.outage.failed(&format_args!(
                    "checkpoint failed (nothing committed; the next one tries again): {e}"
                ));
                None
            }
            Err(_) => {
                self.stats.failed += 1;
                tracing::error!("the checkpoint thread panicked; the next checkpoint tries again");
                None
            }
        }
    }

    /// Forget the checkpoint in flight (its sink failed, so its barrier may
    /// never pass). If the barrier does pass after all, the checkpoint is
    /// still a consistent one, and commits.
    pub fn abandon(&mut self) {
        if self.in_flight.take().is_some() {
            self.stats.failed += 1;
        }
    }
}
