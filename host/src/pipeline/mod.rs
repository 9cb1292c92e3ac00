//! The one loop every command runs: source -> engine -> sink.
//!
//! `replay`, `run`, `bench` and `plugin test` differ only in what they plug
//! in: a [`Source`] (a file, a Kafka topic), the engine's sink (JSON lines,
//! Redis, a counter), and the optional parts below. Between two blocks of
//! records the loop
//!
//! - applies plugin deploys from the watcher ([`deploy`]),
//! - lets idle partitions go and moves the engine's clock, and hands
//!   windows that fired over 50 ms ago to the sink although the stream is
//!   busy (unbounded sources only; a bounded replay never reads the clock),
//! - takes checkpoints ([`checkpoint`]): capture -> encode -> sink barrier ->
//!   commit -> courtesy offset commit,
//! - publishes the status the API shows ([`status`]).
//!
//! On a sink failure that a retry can help (Redis gone), the pipeline
//! restores its newest checkpoint into a fresh engine, seeks the source to
//! the checkpoint's offsets and goes on: writes are deterministic upserts,
//! so the output ends exactly as after an uninterrupted run.
//!
//! The loop installs no signal handler: its caller passes a `stop` check.

pub mod checkpoint;
pub mod deploy;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::clock;
use crate::engine::{Engine, EngineError};
use crate::outage::Outage;
use crate::source::{Polled, Source, SourceError};
use crate::state::{CheckpointMeta, StateError};

pub use checkpoint::Checkpointer;
pub use deploy::Deploys;
pub use status::StatusPublisher;

/// The pipeline stopped in a way its caller must hear about.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A checkpoint exists but cannot be restored into these plugins.
    #[error("restoring {checkpoint}: {error}")]
    Restore {
        checkpoint: String,
        #[source]
        error: EngineError,
    },
    /// The sink kept failing: `restarts` restores in a row did not help.
    #[error("giving up after {restarts} restores in a row: {error}")]
    GaveUp {
        restarts: u32,
        #[source]
        error: EngineError,
    },
}

impl PipelineError {
    /// Whether starting the job again later can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Engine(e) | PipelineError::GaveUp { error: e, .. } => e.is_retryable(),
            PipelineError::Source(e) => e.is_retryable(),
            PipelineError::State(e) => e.is_retryable(),
            PipelineError::Restore { .. } => false,
        }
    }
}

/// Longest a fired window waits in the engine while an unbounded source
/// is busy ([`Engine::hand_over_older_than`]): after every block, what
/// fired this long ago is finished and handed to the sink.
const HAND_OVER_AFTER: Duration = Duration::from_millis(50);

/// How a pipeline behaves at the edges.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// At the end of a bounded source, fire every open window (a replay).
    /// Otherwise the windows stay open, as if more input were to come.
    pub finish_at_end: bool,
    /// Take a last checkpoint when stopped (not after a finish: a finished
    /// engine has no open window left to keep).
    pub final_checkpoint: bool,
    /// How long the last checkpoint (and one still in flight) may take once
    /// the pipeline is stopped: the sink's barrier may never pass when Redis
    /// is gone. Past it the pipeline returns without it, and says which
    /// checkpoint a restart will restore.
    pub final_checkpoint_timeout: Duration,
    /// Restores in a row after retryable sink failures before giving up.
    pub max_restarts: u32,
    /// First pause before a restore; doubles up to 5 s.
    pub restart_backoff: Duration,
    /// How long one poll of the source may wait for records.
    pub poll_timeout: Duration,
    /// An unbounded source that has delivered nothing for this long while
    /// its end offsets are ahead of the positions (or it does not report
    /// them) is stalled: a broker that accepts connections but serves no
    /// fetch, which no error reports. Checked at most every 10 s.
    pub stall_after: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            finish_at_end: true,
            final_checkpoint: false,
            final_checkpoint_timeout: Duration::from_secs(15),
            max_restarts: 10,
            restart_backoff: Duration::from_millis(100),
            poll_timeout: Duration::from_millis(50),
            stall_after: Duration::from_secs(60),
        }
    }
}

/// What a pipeline did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Records read (including re-reads after a restore).
    pub records: u64,
    /// From the first record to the end.
    pub busy: Duration,
    /// Restores after sink failures.
    pub restarts: u32,
    /// Source errors seen (each retried).
    pub source_errors: u64,
    /// The source is failing now.
    pub source_failing: bool,
    /// The pipeline was stopped before its end and its last checkpoint was
    /// not taken in time (see [`PipelineOptions::final_checkpoint_timeout`]).
    pub final_checkpoint_missed: bool,
    /// The checkpoint the pipeline started from, if any.
    pub restored: Option<u64>,
    /// How long [`Pipeline::start`] took to restore it.
    pub restore_time: Option<Duration>,
}

/// One source, one engine, and the optional parts around them.
pub struct Pipeline {
    /// `None` only while being rebuilt after a failure.
    engine: Option<Engine>,
    source: Box<dyn Source>,
    /// Next offset per partition, of what the engine has read.
    positions: BTreeMap<u32, i64>,
    /// Where the source started: the position to go back to after a failure
    /// when no checkpoint was taken yet.
    start: BTreeMap<u32, i64>,
    deploys: Option<Deploys>,
    checkpoints: Option<Checkpointer>,
    status: Option<StatusPublisher>,
    opts: PipelineOptions,
    summary: Summary,
    first_record: Option<Instant>,
    last_idle_check: Instant,
    /// The source failing (a broker down): logged once, then quietly.
    source_outage: Outage,
    /// When the source last delivered records (or the run started).
    last_records: Instant,
    /// When the loop last asked the source (see [`Pipeline::check_stalled`]).
    last_poll: Instant,
    last_stall_check: Instant,
    /// Set when the partitions were taken away without a hand-over (a lost
    /// group assignment): the pipeline then stops without a final
    /// checkpoint, since another engine owns them now.
    lost: Option<Arc<AtomicBool>>,
}

impl Pipeline {
    /// A pipeline over `source` into `engine` (its views added, its sink
    /// set). Call [`Pipeline::start`] before [`Pipeline::run`].
    pub fn new(engine: Engine, source: Box<dyn Source>, opts: PipelineOptions) -> Self {
        Self {
            engine: Some(engine),
            source,
            positions: BTreeMap::new(),
            start: BTreeMap::new(),
            deploys: None,
            checkpoints: None,
            status: None,
            opts,
            summary: Summary::default(),
            first_record: None,
            last_idle_check: Instant::now(),
            source_outage: Outage::new("the source"),
            last_records: Instant::now(),
            last_poll: Instant::now(),
            last_stall_check: Instant::now(),
            lost: None,
        }
    }

    /// Stop without a final checkpoint once `lost` is set (see the field).
    pub fn with_lost(mut self, lost: Arc<AtomicBool>) -> Self {
        self.lost = Some(lost);
        self
    }

    fn is_lost(&self) -> bool {
        self.lost.as_ref().is_some_and(|l| l.load(Ordering::Relaxed))
    }

    /// Apply hot deploys from a plugin watcher.
    pub fn with_deploys(mut self, deploys: Deploys) -> Self {
        self.deploys = Some(deploys);
        self
    }

    /// Take checkpoints.
    pub fn with_checkpoints(mut self, checkpoints: Checkpointer) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Publish the status for the API.
    pub fn with_status(mut self, status: StatusPublisher) -> Self {
        self.status = Some(status);
        self
    }

    pub fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("the engine is there between calls")
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("the engine is there between calls")
    }

    /// Give the engine back (to read its counters or its sink).
    pub fn into_engine(self) -> Engine {
        self.engine.expect("the engine is there between calls")
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn checkpoints(&self) -> Option<&Checkpointer> {
        self.checkpoints.as_ref()
    }

    /// Next offset per partition, of what the engine has read.
    pub fn positions(&self) -> &BTreeMap<u32, i64> {
        &self.positions
    }

    /// Restore checkpoint `from` (else the newest, if checkpoints are on and
    /// one exists), seek the source to its offsets (else to its start), and
    /// register the source's partitions with the engine. Returns the
    /// checkpoint restored.
    pub fn start(&mut self, from: Option<u64>) -> Result<Option<CheckpointMeta>, PipelineError> {
        let started = Instant::now();
        let restored = self.restore(from)?;
        if restored.is_some() {
            self.summary.restore_time = Some(started.elapsed());
        }
        self.register_partitions();
        self.publish(true);
        Ok(restored)
    }

    /// Start without restoring anything: the engine already holds its state
    /// (it ran over the input up to `next`, the next offset per partition).
    /// The source is sought to `next`.
    pub fn resume(&mut self, next: BTreeMap<u32, i64>) -> Result<(), PipelineError> {
        self.start = next.clone();
        self.positions = next;
        self.source.seek(&self.positions)?;
        self.register_partitions();
        Ok(())
    }

    /// Tell the engine about the source's partitions (each holds the
    /// watermark back until it has events or turns idle).
    fn register_partitions(&mut self) {
        let wall = self.now();
        let engine = self.engine.as_mut().expect("engine");
        for p in self.source.partitions() {
            engine.add_partition(p, wall);
        }
    }

    /// Publish the status for the API, if it is on (at most every 500 ms
    /// unless `force`).
    fn publish(&mut self, force: bool) {
        if let Some(status) = &mut self.status {
            let engine = self.engine.as_ref().expect("engine");
            status.publish(
                engine,
                self.source.as_ref(),
                &self.positions,
                self.checkpoints.as_ref(),
                &self.summary,
                force,
            );
        }
    }

    /// Load a checkpoint into the engine and seek the source to it; with
    /// none, seek the source to `self.start`.
    fn restore(&mut self, from: Option<u64>) -> Result<Option<CheckpointMeta>, PipelineError> {
        let now = self.now();
        let loaded = match &self.checkpoints {
            Some(c) => c.load(from)?,
            None => None,
        };
        let engine = self.engine.as_mut().expect("engine");
        let restored = match loaded {
            Some((meta, snap)) => {
                engine.restore(&snap, now).map_err(|error| PipelineError::Restore {
                    checkpoint: self
                        .checkpoints
                        .as_ref()
                        .map_or_else(|| meta.id.to_string(), |c| c.path_of(meta.id)),
                    error,
                })?;
                self.positions = meta.offsets.iter().map(|&(p, o)| (p, o)).collect();
                tracing::info!(checkpoint = meta.id, watermark = meta.watermark, offsets = ?meta.offsets, "restored; resuming from the checkpoint's offsets");
                self.summary.restored = Some(meta.id);
                Some(meta)
            }
            None => {
                self.positions = self.start.clone();
                None
            }
        };
        self.source.seek(&self.positions)?;
        Ok(restored)
    }

    /// The wall clock, for unbounded sources only: a bounded replay is a
    /// pure function of its input.
    fn now(&self) -> i64 {
        if self.source.is_bounded() { 0 } else { clock::now_ms() }
    }

    /// Run until the source ends or `stop` says so. Returns how it went.
    pub fn run(&mut self, stop: &dyn Fn() -> bool) -> Result<&Summary, PipelineError> {
        let bounded = self.source.is_bounded();
        // Restores since the pipeline last got past the point where it
        // failed (the sum of its positions then): a sink that fails at the
        // same place again and again is given up on.
        let mut restarts_in_a_row = 0u32;
        let mut failed_at: Option<i64> = None;
        let mut finished = false;
        self.last_poll = Instant::now();
        loop {
            if stop() {
                tracing::info!("stopping");
                break;
            }
            self.forgive_hold_up();
            self.last_poll = Instant::now();
            let now = if bounded { 0 } else { clock::now_ms() };
            let engine = self.engine.as_mut().expect("engine");
            let positions = &mut self.positions;
            let mut failed: Option<EngineError> = None;
            let mut records = 0u64;
            let polled = self.source.poll(self.opts.poll_timeout, &mut |partition, block| {
                if failed.is_some() {
                    return;
                }
                records += block.len() as u64;
                match engine.process_lines(partition, block, now) {
                    Ok(()) => {
                        if let Some(&(last, _)) = block.last() {
                            positions.insert(partition, last as i64 + 1);
                        }
                    }
                    Err(e) => failed = Some(e),
                }
            });
            self.summary.records += records;
            if records > 0 {
                self.first_record.get_or_insert_with(Instant::now);
                self.last_records = Instant::now();
            }
            let mut outcome = match failed {
                Some(e) => Err(e),
                None => Ok(()),
            };
            match polled {
                Ok(Polled::Records) => {
                    self.source_outage.ok();
                    self.summary.source_failing = false;
                }
                Ok(Polled::Quiet) => {
                    // Quiet: hand over what has fired.
                    if outcome.is_ok() {
                        outcome = engine.flush();
                    }
                    if !bounded {
                        // (The flush may have waited long on the sink.)
                        self.forgive_hold_up();
                        self.check_stalled();
                        // Asking for end offsets is the source's time, not
                        // a hold-up of the loop.
                        self.last_poll = Instant::now();
                    }
                }
                Ok(Polled::End) if outcome.is_ok() => {
                    if self.opts.finish_at_end {
                        match self.finish() {
                            Ok(()) => {
                                finished = true;
                                break;
                            }
                            Err(e) => outcome = Err(e),
                        }
                    } else {
                        break;
                    }
                }
                Ok(Polled::End) => {}
                Err(e) if e.is_retryable() => {
                    self.summary.source_errors += 1;
                    self.source_outage.failed(&e);
                    self.summary.source_failing = true;
                }
                Err(e) => return Err(e.into()),
            }
            if outcome.is_ok() {
                outcome = self.between_blocks(bounded);
            }
            // Summed only while recovering: the common path skips it.
            let progress = || -> i64 { self.positions.values().sum() };
            match outcome {
                Ok(()) => {
                    if failed_at.is_some_and(|at| progress() > at) {
                        restarts_in_a_row = 0;
                        failed_at = None;
                    }
                }
                Err(e) => {
                    restarts_in_a_row += 1;
                    let now = progress();
                    failed_at = Some(failed_at.map_or(now, |at| at.max(now)));
                    self.recover(e, restarts_in_a_row)?;
                }
            }
        }
        if self.is_lost() {
            tracing::info!("partitions lost to the group: stopping without a final checkpoint");
        } else if let Some(c) = &mut self.checkpoints {
            let deadline = Instant::now() + self.opts.final_checkpoint_timeout;
            let mut missed = c.reap_by(self.source.as_mut(), deadline).is_err();
            if self.opts.final_checkpoint && !finished && !missed {
                let engine = self.engine.as_mut().expect("engine");
                tracing::info!("taking a final checkpoint");
                c.start(engine, &self.positions, clock::now_ms())?;
                missed = !matches!(c.reap_by(self.source.as_mut(), deadline), Ok(Some(_)));
            }
            if missed && self.opts.final_checkpoint && !finished {
                self.summary.final_checkpoint_missed = true;
                let next = c.latest();
                tracing::error!(
                    timeout_s = self.opts.final_checkpoint_timeout.as_secs_f64(),
                    next_start = ?next.as_ref().map(|m| c.path_of(m.id)),
                    "the final checkpoint was not taken in time (the sink or the store does not answer); the next start restores {}",
                    next.as_ref().map_or_else(|| "nothing (no checkpoint yet): it reads from the start".to_string(), |m| c.path_of(m.id))
                );
            }
        }
        self.summary.busy = self.first_record.map_or(Duration::ZERO, |t| t.elapsed());
        self.publish(true);
        Ok(&self.summary)
    }

    /// A loop held up elsewhere since it last asked the source (a sink
    /// holding the stream while Redis is down) did not ask the source:
    /// that time is not the source's silence.
    fn forgive_hold_up(&mut self) {
        let held_up = self.opts.poll_timeout + self.opts.stall_after.min(Duration::from_secs(1));
        if self.last_poll.elapsed() > held_up {
            self.last_records = Instant::now();
        }
    }

    /// A quiet source: is there data it does not deliver? After
    /// [`PipelineOptions::stall_after`] without records, compare the end
    /// offsets with the positions (at most every 10 s): a stall is an
    /// outage of the source, logged once and shown on /health/ready.
    fn check_stalled(&mut self) {
        let quiet_for = self.last_records.elapsed();
        let every = self.opts.stall_after.min(Duration::from_secs(10));
        if quiet_for < self.opts.stall_after || self.last_stall_check.elapsed() < every {
            return;
        }
        self.last_stall_check = Instant::now();
        let partitions = self.source.partitions();
        if partitions.is_empty() {
            return;
        }
        let ends = self.source.end_offsets();
        let behind: Vec<String> = partitions
            .iter()
            .filter_map(|p| {
                let at = self.positions.get(p).copied().unwrap_or(0);
                match ends.get(p) {
                    Some(&end) if end > at => Some(format!("partition {p} at {at} of {end}")),
                    Some(_) => None,
                    None => Some(format!("partition {p}: no end offset")),
                }
            })
            .collect();
        if behind.is_empty() {
            // Quiet and caught up: a quiet stream, not a failure.
            return;
        }
        let reason = if ends.is_empty() {
            format!(
                "no record for {:.0} s and the broker does not report end offsets: it does not answer",
                quiet_for.as_secs_f64()
            )
        } else {
            format!(
                "no record for {:.0} s although the broker has more ({}): it accepts requests but serves no fetch",
                quiet_for.as_secs_f64(),
                behind.join(", ")
            )
        };
        self.summary.source_errors += 1;
        self.source_outage.failed(&reason);
        self.summary.source_failing = true;
    }

    /// End of input: fire every window, and wait until the sink has it all.
    fn finish(&mut self) -> Result<(), EngineError> {
        let engine = self.engine.as_mut().expect("engine");
        engine.finish()?;
        engine.sink_mut().barrier().wait(None)?;
        Ok(())
    }

    /// Everything the loop does between two blocks.
    fn between_blocks(&mut self, bounded: bool) -> Result<(), EngineError> {
        let engine = self.engine.as_mut().expect("engine");
        if !bounded {
            // (A bounded input's output keeps an order that does not
            // depend on timing.)
            engine.hand_over_older_than(HAND_OVER_AFTER)?;
        }
        if !bounded && self.last_idle_check.elapsed() >= Duration::from_millis(200) {
            let now = clock::now_ms();
            engine.set_now(now);
            engine.check_idle(now)?;
            self.last_idle_check = Instant::now();
        }
        // The API shows a deploy with its history record, not up to 500 ms
        // later (nor after a checkpoint's capture).
        let deployed = match &mut self.deploys {
            Some(deploys) => deploys.apply_pending(engine, self.status.as_ref()),
            None => false,
        };
        if deployed {
            self.publish(true);
        }
        let engine = self.engine.as_mut().expect("engine");
        if let Some(c) = &mut self.checkpoints {
            if let Some(meta) = c.reap(self.source.as_mut(), false)
                && let Some(status) = &self.status
            {
                status.checkpoint_done(meta);
            }
            if c.due() {
                c.start(engine, &self.positions, clock::now_ms())?;
            }
        }
        self.publish(false);
        Ok(())
    }

    /// A block or a flush failed. A sink failure that a retry can help is
    /// survived: restore the newest checkpoint into a fresh engine and read
    /// again from its offsets. Anything else ends the run.
    fn recover(&mut self, error: EngineError, attempt: u32) -> Result<(), PipelineError> {
        if !error.is_retryable() {
            return Err(error.into());
        }
        if attempt > self.opts.max_restarts {
            return Err(PipelineError::GaveUp {
                restarts: attempt - 1,
                error,
            });
        }
        let pause = self
            .opts
            .restart_backoff
            .saturating_mul(1 << (attempt - 1).min(6))
            .min(Duration::from_secs(5));
        tracing::warn!(error = %error, attempt, pause_ms = pause.as_millis() as u64, "the sink failed; restoring the last checkpoint and reading again from there");
        std::thread::sleep(pause);
        if let Some(c) = &mut self.checkpoints {
            // A checkpoint in flight waits on a barrier the failed sink may
            // never pass: it is abandoned (never committed).
            c.abandon();
        }
        let engine = self.engine.take().expect("engine");
        self.engine = Some(engine.rebuild()?);
        self.summary.restarts += 1;
        self.restore(None)?;
        self.register_partitions();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::sink::{CountingSink, Sink};
    use crate::source::Block;

    /// An unbounded source that never delivers, whose broker reports `end`
    /// for its one partition (or nothing).
    struct Silent {
        end: Option<i64>,
    }

    impl Source for Silent {
        fn name(&self) -> &str {
            "silent"
        }
        fn partitions(&self) -> Vec<u32> {
            vec![0]
        }
        fn seek(&mut self, _: &BTreeMap<u32, i64>) -> Result<(), SourceError> {
            Ok(())
        }
        fn poll(&mut self, timeout: Duration, _: &mut dyn FnMut(u32, &Block<'_>)) -> Result<Polled, SourceError> {
            std::thread::sleep(timeout);
            Ok(Polled::Quiet)
        }
        fn is_bounded(&self) -> bool {
            false
        }
        fn end_offsets(&self) -> BTreeMap<u32, i64> {
            self.end
                .map(|e| BTreeMap::from([(0, e)]))
                .into_iter()
                .flatten()
                .collect()
        }
    }

    /// Run a pipeline over a silent source with data up to `end` for
    /// `duration`, with a 100 ms stall limit; `between` runs at each turn
    /// of the loop (where it checks whether to stop).
    fn run_silent_with(end: Option<i64>, sink: Box<dyn Sink>, duration: Duration, between: &dyn Fn()) -> Summary {
        let engine = Engine::new(EngineConfig::default(), sink);
        let opts = PipelineOptions {
            finish_at_end: false,
            stall_after: Duration::from_millis(100),
            poll_timeout: Duration::from_millis(10),
            ..PipelineOptions::default()
        };
        let mut p = Pipeline::new(engine, Box::new(Silent { end }), opts);
        p.start(None).unwrap();
        let until = Instant::now() + duration;
        p.run(&|| {
            between();
            Instant::now() >= until
        })
        .unwrap()
        .clone()
    }

    fn run_silent(end: Option<i64>) -> Summary {
        run_silent_with(
            end,
            Box::new(CountingSink::default()),
            Duration::from_millis(600),
            &|| {},
        )
    }

    #[test]
    fn a_source_with_data_it_does_not_deliver_is_an_outage() {
        let s = run_silent(Some(42));
        assert!(s.source_failing && s.source_errors > 0, "{s:?}");
        let s = run_silent(None);
        assert!(s.source_failing, "a broker that reports no end offsets: {s:?}");
    }

    #[test]
    fn time_the_loop_was_held_up_elsewhere_is_not_the_sources_silence() {
        // As when a sink holds the stream while Redis is down: the loop
        // does not ask the source, so the source is not stalled.
        let s = run_silent_with(
            Some(42),
            Box::new(CountingSink::default()),
            Duration::from_millis(800),
            &|| std::thread::sleep(Duration::from_millis(150)),
        );
        assert!(!s.source_failing && s.source_errors == 0, "{s:?}");
        // Held up in the flush of a quiet turn, right before the check.
        let s = run_silent_with(Some(42), Box::new(SlowFlush), Duration::from_millis(800), &|| {});
        assert!(!s.source_failing && s.source_errors == 0, "{s:?}");
    }

    /// A sink whose flush takes 150 ms, as the Redis writer's queue does
    /// while Redis is down.
    struct SlowFlush;

    impl Sink for SlowFlush {
        fn write(&mut self, _: &[crate::sink::FeatureRecord]) -> Result<(), crate::sink::SinkError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), crate::sink::SinkError> {
            std::thread::sleep(Duration::from_millis(150));
            Ok(())
        }
    }

    #[test]
    fn a_quiet_stream_that_is_caught_up_is_not() {
        let s = run_silent(Some(0));
        assert!(!s.source_failing && s.source_errors == 0, "{s:?}");
    }

    /// An unbounded source that is never quiet: every poll brings one
    /// event of user `b`, a minute of event time after the last; user
    /// `a` has one event at the start.
    struct Busy {
        polls: Arc<std::sync::atomic::AtomicU64>,
    }

    impl Source for Busy {
        fn name(&self) -> &str {
            "busy"
        }
        fn partitions(&self) -> Vec<u32> {
            vec![0]
        }
        fn seek(&mut self, _: &BTreeMap<u32, i64>) -> Result<(), SourceError> {
            Ok(())
        }
        fn poll(&mut self, _: Duration, f: &mut dyn FnMut(u32, &Block<'_>)) -> Result<Polled, SourceError> {
            std::thread::sleep(Duration::from_millis(2));
            let n = self.polls.fetch_add(1, Ordering::SeqCst);
            let user = if n == 0 { "a" } else { "b" };
            let line = format!(
                "{{\"event_time\":{},\"event_type\":\"view\",\"user_id\":\"{user}\",\"price\":1.0}}",
                1_704_067_200_000 + n as i64 * 60_000
            );
            f(0, &[(n, line.as_bytes())]);
            Ok(Polled::Records)
        }
        fn is_bounded(&self) -> bool {
            false
        }
        fn end_offsets(&self) -> BTreeMap<u32, i64> {
            BTreeMap::new()
        }
    }

    #[test]
    fn a_window_that_fires_while_the_stream_stays_busy_reaches_the_sink() {
        // `a`'s session closes once the watermark is 10 minutes past it
        // (poll 11 or so); one record is far from a batch of 512, and the
        // source never turns quiet: only its age hands it over.
        #[derive(Clone)]
        struct Arrivals(
            Arc<std::sync::Mutex<Vec<(String, u64)>>>,
            Arc<std::sync::atomic::AtomicU64>,
        );
        impl Sink for Arrivals {
            fn write(&mut self, r: &[crate::sink::FeatureRecord]) -> Result<(), crate::sink::SinkError> {
                let at = self.1.load(Ordering::SeqCst);
                self.0.lock().unwrap().extend(r.iter().map(|r| (r.key.clone(), at)));
                Ok(())
            }
        }
        let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let arrivals = Arrivals(Arc::default(), polls.clone());
        let pe = crate::plugin::PluginEngine::new().unwrap();
        let plugin = pe
            .load_file(
                &crate::engine::tests::guest("session-stats"),
                crate::plugin::Limits::default(),
            )
            .unwrap();
        let mut engine = Engine::new(EngineConfig::default(), Box::new(arrivals.clone()));
        engine.add_view(Arc::new(plugin)).unwrap();
        let mut p = Pipeline::new(
            engine,
            Box::new(Busy { polls: polls.clone() }),
            PipelineOptions::default(),
        );
        p.start(None).unwrap();
        p.run(&|| polls.load(Ordering::SeqCst) >= 400).unwrap();
        let got = arrivals.0.lock().unwrap().clone();
        let a: Vec<_> = got
            .iter()
            .filter(|(k, _)| k.starts_with("session_features:a:"))
            .collect();
        assert_eq!(a.len(), 1, "a's session, once: {got:?}");
        // Fired around poll 11; 50 ms is at most 25 polls of 2 ms; without
        // the hand-over it never arrives (a batch is 1024 events).
        assert!(a[0].1 < 100, "a's session reached the sink only at poll {}", a[0].1);
    }
}
