//! The engine: events in, fired windows out.
//!
//! One [`Engine`] runs every loaded view over one stream of events. A view is
//! a plugin instance, a window operator and the states of its open windows
//! (opaque bytes, in an arena indexed by slot). The engine is synchronous and
//! single-threaded; sources and sinks around it are the async parts.
//!
//! The hot path per event: parse, intern the key, assign a slot per view,
//! append the event to the view's packed batch, move the watermark. The Wasm
//! boundary is crossed once per batch (`update`) and once per group of fired
//! windows (`finish`), never per event.
//!
//! Ordering rule that keeps batching exact: a fired window must see the
//! updates of every event before the watermark that fired it and none after.
//! Sliding windows share slices with later windows, so a view with sliding
//! windows applies its pending batch at each firing (once per slide of event
//! time). A fired session is removed from the operator before any later
//! event is assigned, so sessions are finished lazily with the next batch.
//!
//! Files: [`view`] (one view), [`keys`] (key interning), [`lifecycle`]
//! (reclaiming keys that hold nothing), [`deploy`] (hot deploys and their
//! history), [`capture`] (checkpoint captures and restores; the byte format
//! is `state::format`).
//!
//! The engine reads no wall clock: event time comes with the events, the
//! wall time (idle partitions, future skew, deploy records) comes in as
//! arguments or through [`Engine::set_now`]. It measures durations with
//! `Instant` only for its statistics. It depends on the layers below it
//! (plugin, state, sink, source, window, time, event) and on nothing above.

mod capture;
mod deploy;
mod keys;
mod lifecycle;
mod state_bytes;
mod view;

pub use crate::source::Position;
pub use crate::state::{EngineSnapshot, ViewSnapshot};
pub use capture::EngineCapture;
pub use deploy::{SwapOutcome, SwapRecord};
pub use keys::{KeyHash, KeyNames, KeyTable};

pub use view::{PLUGIN_LATENCY_BOUNDS_US, View, ViewCapture, ViewStats};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::event::{self, Event, ParserConfig};
use crate::plugin::Plugin;
use crate::sink::{FeatureRecord, RecordLog, Sink, SinkError};
use crate::source::BLOCK;
use crate::time::{IdleWatermark, Watermarks};
use crate::window::KeyId;

/// Per event: the interned key (and its text) of each key table, once known.
type KeyCache<'e> = SmallVec<[Option<(KeyId, std::borrow::Cow<'e, str>)>; 2]>;

/// Settings of the engine core.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events per view per plugin call.
    pub batch_size: usize,
    pub parser: ParserConfig,
    pub out_of_orderness_ms: i64,
    /// `None`: partitions never turn idle (bounded inputs).
    pub idle_timeout_ms: Option<i64>,
    /// What the watermark does while every partition is idle.
    pub idle_watermark: IdleWatermark,
    /// Consecutive failed plugin calls after which a view is disabled.
    pub max_plugin_failures: u32,
}

impl EngineConfig {
    /// The engine's settings from the configuration. `now_ms` bounds future
    /// event times (`time.max-future-skew`); `idle`: whether partitions may
    /// turn idle (`time.idle-timeout`; never for a bounded input).
    pub fn from_config(config: &crate::config::Config, now_ms: i64, idle: bool) -> Self {
        EngineConfig {
            batch_size: config.engine.batch_size,
            parser: ParserConfig {
                zone_offset_ms: config.zone_offset_ms(),
                max_future_skew_ms: Some(config.time.max_future_skew.as_millis() as i64),
                now_ms,
            },
            out_of_orderness_ms: config.time.out_of_orderness.as_millis() as i64,
            idle_timeout_ms: idle.then_some(config.time.idle_timeout.as_millis() as i64),
            idle_watermark: config.time.idle_watermark,
            max_plugin_failures: config.plugins.max_failures,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            parser: ParserConfig {
                zone_offset_ms: 0,
                // No wall clock known here; `from_config` sets both.
                max_future_skew_ms: None,
                now_ms: 0,
            },
            out_of_orderness_ms: 10_000,
            idle_timeout_ms: None,
            idle_watermark: IdleWatermark::Hold,
            max_plugin_failures: 3,
        }
    }
}

/// The engine failed in a way that stops the job (a sink that cannot write).
/// Bad input and plugin failures never do: they are counted and logged.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("view {view}: {reason}")]
    View { view: String, reason: String },
}

impl EngineError {
    /// Whether trying again (after a restore) can help: a sink that may come
    /// back, yes; a view that cannot take a plugin or a state, no.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Sink(e) => e.is_retryable(),
            EngineError::View { .. } => false,
        }
    }
}

/// Bad records the dashboard shows (the newest).
const RECENT_BAD: usize = 20;

/// Counters of the whole engine.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    pub records_read: u64,
    pub events: u64,
    pub bad_records: u64,
    pub bad_by_reason: BTreeMap<&'static str, u64>,
    pub windows_fired: u64,
    /// Times the watermark advanced with the wall clock (all partitions
    /// idle, `time.idle-watermark = "wall-clock"`).
    pub wall_clock_advances: u64,
    /// Keys held (with open windows, or just seen), over every key table;
    /// updated between blocks.
    pub keys: u64,
    /// Keys forgotten because they held nothing any more (see
    /// [`lifecycle`]).
    pub keys_reclaimed: u64,
    /// The last few bad records (newest last), for the dashboard.
    pub recent_bad: std::collections::VecDeque<BadSample>,
}

impl Stats {
    /// Add `o`'s counts (another engine core of the same job).
    pub fn add(&mut self, o: &Stats) {
        self.records_read += o.records_read;
        self.events += o.events;
        self.bad_records += o.bad_records;
        for (reason, n) in &o.bad_by_reason {
            *self.bad_by_reason.entry(reason).or_default() += n;
        }
        self.windows_fired += o.windows_fired;
        self.wall_clock_advances += o.wall_clock_advances;
        self.keys += o.keys;
        self.keys_reclaimed += o.keys_reclaimed;
        self.recent_bad.extend(o.recent_bad.iter().cloned());
        let keep = self.recent_bad.len().saturating_sub(RECENT_BAD);
        self.recent_bad.drain(..keep);
    }
}

/// One bad record, as the dashboard shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadSample {
    pub reason: &'static str,
    pub partition: u32,
    pub offset: u64,
    /// The record, cut to 200 characters.
    pub raw: String,
}

/// Every loaded view over one stream of events: parse, key, window, batch
/// into the plugins, fire by watermark, hand fired windows to the sink.
/// Synchronous and single-threaded; time comes in as arguments.
pub struct Engine {
    cfg: EngineConfig,
    /// One key table per distinct key field of the loaded views.
    key_fields: Vec<String>,
    keys: Vec<KeyTable>,
    views: Vec<View>,
    watermarks: Watermarks,
    pub stats: Stats,
    sink: Box<dyn Sink>,
    /// Records of the current flush, handed to the sink in one batch.
    records: Vec<FeatureRecord>,
    source: Arc<str>,
    dead_letter: RecordLog,
    late_log: RecordLog,
    /// Bad records logged at WARN so far (then only counted, to keep logs
    /// readable under a flood of bad input).
    bad_logged: u64,
    history: Vec<SwapRecord>,
    /// Idle keys a view collects before they are reclaimed (see
    /// [`lifecycle`]); tests lower it to reclaim after every block.
    reclaim_batch: usize,
}

impl Engine {
    pub fn new(cfg: EngineConfig, sink: Box<dyn Sink>) -> Self {
        Self {
            watermarks: Watermarks::new(cfg.out_of_orderness_ms, cfg.idle_timeout_ms)
                .with_idle_watermark(cfg.idle_watermark),
            cfg,
            key_fields: Vec::new(),
            keys: Vec::new(),
            views: Vec::new(),
            stats: Stats::default(),
            sink,
            records: Vec::new(),
            source: Arc::from("input"),
            dead_letter: RecordLog::disabled(),
            late_log: RecordLog::disabled(),
            bad_logged: 0,
            history: Vec::new(),
            reclaim_batch: lifecycle::RECLAIM_BATCH,
        }
    }

    /// Name of the input, for dead-letter records.
    pub fn set_source(&mut self, name: &str) {
        self.source = Arc::from(name);
    }

    pub fn set_dead_letter(&mut self, log: RecordLog) {
        self.dead_letter = log;
    }

    pub fn set_late_log(&mut self, log: RecordLog) {
        self.late_log = log;
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Move the engine's wall-clock time: it bounds future event times
    /// (`time.max-future-skew`) and stamps deploy records. The engine reads
    /// no clock itself; long-running pipelines call this as time goes.
    pub fn set_now(&mut self, now_ms: i64) {
        self.cfg.parser.now_ms = now_ms;
    }

    /// The engine's wall-clock time, as last set ([`Engine::set_now`]).
    pub fn now_ms(&self) -> i64 {
        self.cfg.parser.now_ms
    }

    /// Add a view running `plugin`. Refuses a second view of the same name.
    pub fn add_view(&mut self, plugin: Arc<Plugin>) -> Result<(), EngineError> {
        let name = plugin.declaration.view.clone();
        if self.views.iter().any(|v| v.name() == name.as_str()) {
            return Err(EngineError::View {
                view: name.clone(),
                reason: format!("two plugins declare this view (second: {})", plugin.source),
            });
        }
        let field = &plugin.declaration.key_field;
        let table = match self.key_fields.iter().position(|f| f == field) {
            Some(i) => i,
            None => {
                self.key_fields.push(field.clone());
                self.keys.push(KeyTable::default());
                self.key_fields.len() - 1
            }
        };
        let mut view = View::new(plugin, table, self.now_ms()).map_err(|e| EngineError::View {
            view: name,
            reason: e.to_string(),
        })?;
        view.set_max_failures(self.cfg.max_plugin_failures);
        self.views.push(view);
        Ok(())
    }

    pub fn views(&self) -> &[View] {
        &self.views
    }

    pub fn watermark(&self) -> i64 {
        self.watermarks.current()
    }

    pub fn watermarks(&self) -> &Watermarks {
        &self.watermarks
    }

    /// Process one raw record (one line, one Kafka message).
    #[inline]
    pub fn process_record(&mut self, pos: Position, raw: &[u8], now_ms: i64) -> Result<(), EngineError> {
        let parsed = event::parse_event(raw, &self.cfg.parser);
        self.process_parsed(pos, parsed.as_ref().map_err(|e| *e), raw, now_ms, None)?;
        self.maybe_reclaim_keys();
        Ok(())
    }

    /// Process consecutive records of one partition, `(offset, record)`:
    /// the same as [`Engine::process_record`] on each, in order, but faster.
    ///
    /// With many keys the hot path waits on memory: each event touches its
    /// key's entry, window parts and states, scattered over hundreds of MB.
    /// So the block is parsed first, and while event `i` is processed the
    /// engine works ahead in stages: it fetches the key-table slot of event
    /// `i + 16`, interns the key of event `i + 8` (in order, so key ids are
    /// the same) and fetches that key's window parts, and fetches the state
    /// event `i + 4` will most likely update. A bounded distance keeps the
    /// number of fetches in flight within what the CPU can track. The
    /// look-ahead only interns and prefetches; results do not depend on it.
    pub fn process_lines(&mut self, partition: u32, block: &[(u64, &[u8])], now_ms: i64) -> Result<(), EngineError> {
        const SLOT_AHEAD: usize = 16;
        const KEY_AHEAD: usize = 8;
        const STATE_AHEAD: usize = 4;
        let parser = &self.cfg.parser;
        let parsed: SmallVec<[Result<Event<'_>, event::BadReason>; BLOCK]> =
            block.iter().map(|(_, raw)| event::parse_event(raw, parser)).collect();
        let table = self.key_fields.iter().position(|f| f == "user_id");
        let hashes: SmallVec<[Option<KeyHash>; BLOCK]> = match table {
            Some(_) => parsed
                .iter()
                .map(|p| Some(KeyTable::hash(partition, &p.as_ref().ok()?.user_id)))
                .collect(),
            None => SmallVec::new(),
        };
        let mut ids: SmallVec<[Option<KeyId>; BLOCK]> = smallvec::smallvec![None; block.len()];
        // As slices from here on: each access to a `SmallVec` checks
        // whether it spilled, and these are read several times per event.
        let (parsed, hashes, ids) = (&parsed[..], &hashes[..], &mut ids[..]);
        if let Some(table) = table {
            for j in 0..SLOT_AHEAD {
                self.fetch_key_slot(table, hashes, j);
            }
            for j in 0..KEY_AHEAD {
                self.intern_ahead(table, partition, parsed, hashes, ids, j);
            }
            for j in 0..STATE_AHEAD {
                self.fetch_state(table, parsed, ids, j);
            }
        }
        for (i, ((offset, raw), p)) in block.iter().zip(parsed).enumerate() {
            if let Some(table) = table {
                self.fetch_key_slot(table, hashes, i + SLOT_AHEAD);
                self.intern_ahead(table, partition, parsed, hashes, ids, i + KEY_AHEAD);
                self.fetch_state(table, parsed, ids, i + STATE_AHEAD);
            }
            self.process_parsed(
                Position {
                    partition,
                    offset: *offset,
                },
                p.as_ref().map_err(|e| *e),
                raw,
                now_ms,
                table.zip(ids[i]),
            )?;
        }
        // The look-ahead's ids are all used: keys can be reclaimed.
        self.maybe_reclaim_keys();
        Ok(())
    }

    /// Look-ahead stage 1 of [`Engine::process_lines`]: fetch the key-table
    /// slot of event `j`.
    #[inline]
    fn fetch_key_slot(&self, table: usize, hashes: &[Option<KeyHash>], j: usize) {
        if let Some(Some(h)) = hashes.get(j) {
            self.keys[table].prefetch(*h);
        }
    }

    /// Stage 2: intern the `user_id` of event `j` and fetch its window parts.
    #[inline]
    fn intern_ahead(
        &mut self,
        table: usize,
        partition: u32,
        parsed: &[Result<Event<'_>, event::BadReason>],
        hashes: &[Option<KeyHash>],
        ids: &mut [Option<KeyId>],
        j: usize,
    ) {
        let (Some(Ok(ev)), Some(Some(h))) = (parsed.get(j), hashes.get(j)) else {
            return;
        };
        let key = self.keys[table].intern_hashed(*h, partition, &ev.user_id);
        ids[j] = Some(key);
        for v in self.user_id_views(table) {
            v.prefetch_key(key);
        }
    }

    /// Stage 3: fetch the state event `j` will most likely update.
    #[inline]
    fn fetch_state(
        &self,
        table: usize,
        parsed: &[Result<Event<'_>, event::BadReason>],
        ids: &[Option<KeyId>],
        j: usize,
    ) {
        if let (Some(Some(key)), Some(Ok(ev))) = (ids.get(j), parsed.get(j)) {
            for v in self.user_id_views(table) {
                v.prefetch_slot(*key, ev.time_ms);
            }
        }
    }

    /// The running views keyed by `user_id` in key table `table`.
    fn user_id_views(&self, table: usize) -> impl Iterator<Item = &View> {
        self.views
            .iter()
            .filter(move |v| v.key_table == table && v.keyed_by_user_id() && v.disabled.is_none())
    }

    #[inline]
    fn process_parsed(
        &mut self,
        pos: Position,
        parsed: Result<&Event<'_>, event::BadReason>,
        raw: &[u8],
        now_ms: i64,
        user_id: Option<(usize, KeyId)>,
    ) -> Result<(), EngineError> {
        self.stats.records_read += 1;
        match parsed {
            Ok(ev) => self.process_event_keyed(pos, ev, raw, now_ms, user_id),
            Err(reason) => {
                self.stats.bad_records += 1;
                *self.stats.bad_by_reason.entry(reason.as_str()).or_default() += 1;
                if self.bad_logged < 20 {
                    self.bad_logged += 1;
                    tracing::warn!(source = %self.source, partition = pos.partition, offset = pos.offset, reason = reason.as_str(), "bad record: {reason}");
                }
                if self.stats.recent_bad.len() >= RECENT_BAD {
                    self.stats.recent_bad.pop_front();
                }
                self.stats.recent_bad.push_back(BadSample {
                    reason: reason.as_str(),
                    partition: pos.partition,
                    offset: pos.offset,
                    raw: String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned(),
                });
                let message = reason.to_string();
                self.dead_letter.write(
                    reason.as_str(),
                    &self.source,
                    pos.offset,
                    &[("partition", &pos.partition.to_string()), ("message", &message)],
                    raw,
                );
                Ok(())
            }
        }
    }

    /// Process one parsed event. `raw` is kept only for the late log.
    #[inline]
    pub fn process_event(&mut self, pos: Position, ev: &Event<'_>, raw: &[u8], now_ms: i64) -> Result<(), EngineError> {
        self.process_event_keyed(pos, ev, raw, now_ms, None)?;
        self.maybe_reclaim_keys();
        Ok(())
    }

    /// [`Engine::process_event`] with the event's `user_id` already interned
    /// in key table `.0` (by [`Engine::process_lines`]).
    #[inline]
    fn process_event_keyed(
        &mut self,
        pos: Position,
        ev: &Event<'_>,
        raw: &[u8],
        now_ms: i64,
        user_id: Option<(usize, KeyId)>,
    ) -> Result<(), EngineError> {
        self.stats.events += 1;
        let wm = self.watermarks.current();
        let batch_size = self.cfg.batch_size;
        // Views that share a key field share the key's id: intern once.
        let mut key_cache: KeyCache<'_> = smallvec::smallvec![None; self.keys.len()];
        let key_cache = &mut key_cache[..];
        if let Some((table, key)) = user_id {
            key_cache[table] = Some((key, std::borrow::Cow::Borrowed(&ev.user_id)));
        }
        for view in &mut self.views {
            if view.disabled.is_some() {
                continue;
            }
            let table = &mut self.keys[view.key_table];
            if let Some((key, text)) = &key_cache[view.key_table] {
                if !view.stage(*key, ev, text, wm) {
                    Self::log_late(&self.late_log, &self.source, pos, view.name(), raw);
                    continue;
                }
                if view.pending() >= batch_size {
                    view.flush(table, &mut self.records, &self.dead_letter, &self.source);
                }
                continue;
            }
            let key_text = match view.key_from(ev) {
                Some(k) => k,
                None => {
                    view.stats.missing_key += 1;
                    self.dead_letter.write(
                        "missing_key",
                        &self.source,
                        pos.offset,
                        &[("view", view.name()), ("partition", &pos.partition.to_string())],
                        raw,
                    );
                    continue;
                }
            };
            let key = table.intern(pos.partition, &key_text);
            let staged = view.stage(key, ev, &key_text, wm);
            key_cache[view.key_table] = Some((key, key_text));
            if !staged {
                Self::log_late(&self.late_log, &self.source, pos, view.name(), raw);
                continue;
            }
            if view.pending() >= batch_size {
                view.flush(table, &mut self.records, &self.dead_letter, &self.source);
            }
        }
        let new_wm = self.watermarks.observe(pos.partition as usize, ev.time_ms, now_ms);
        if new_wm != wm {
            self.advance(new_wm)?;
        }
        if self.records.len() >= batch_size {
            self.drain_records()?;
        }
        Ok(())
    }

    fn log_late(log: &RecordLog, source: &str, pos: Position, view: &str, raw: &[u8]) {
        if log.is_enabled() {
            log.write(
                "late",
                source,
                pos.offset,
                &[("view", view), ("partition", &pos.partition.to_string())],
                raw,
            );
        }
    }

    /// Fire what the watermark `wm` completes.
    fn advance(&mut self, wm: i64) -> Result<(), EngineError> {
        for i in 0..self.views.len() {
            if self.views[i].advance(wm) {
                self.flush_view(i)?;
            }
        }
        Ok(())
    }

    /// Flush view `i`, handing its records to the sink a chunk at a time.
    fn flush_view(&mut self, i: usize) -> Result<(), EngineError> {
        loop {
            let view = &mut self.views[i];
            let more = view.flush_some(
                &self.keys[view.key_table],
                &mut self.records,
                &self.dead_letter,
                &self.source,
            );
            if !more {
                return Ok(());
            }
            self.write_records()?;
        }
    }

    /// Tell the engine about a partition it reads (it holds the watermark
    /// back until it has events or turns idle).
    pub fn add_partition(&mut self, partition: u32, now_ms: i64) {
        self.watermarks.add_partition(partition as usize, now_ms);
    }

    /// Let idle partitions stop holding the watermark back.
    pub fn check_idle(&mut self, now_ms: i64) -> Result<(), EngineError> {
        let wm = self.watermarks.current();
        let new_wm = self.watermarks.check_idle(now_ms);
        self.stats.wall_clock_advances = self.watermarks.wall_clock_advances();
        if new_wm != wm {
            self.advance(new_wm)?;
        }
        Ok(())
    }

    /// Finish the windows that fired `max_wait` ago or earlier and hand
    /// their records to the sink. Otherwise that happens when a view's
    /// batch of events fills (`engine.batch-size`), when as many records
    /// are ready, or when the source turns quiet; a busy stream never does,
    /// and the few sessions that close at a time waited for later events
    /// and firings: seconds, in the benchmark, and longer on a slow stream.
    pub fn hand_over_older_than(&mut self, max_wait: Duration) -> Result<(), EngineError> {
        for i in 0..self.views.len() {
            if self.views[i].fired_at().is_some_and(|t| t.elapsed() >= max_wait) {
                self.flush_view(i)?;
            }
        }
        match self.records.first() {
            Some(r) if r.fired_at.elapsed() >= max_wait => self.drain_records(),
            _ => Ok(()),
        }
    }

    /// Apply every pending batch, finish every fired window, and hand all
    /// records to the sink.
    pub fn flush(&mut self) -> Result<(), EngineError> {
        for i in 0..self.views.len() {
            self.flush_view(i)?;
        }
        self.reclaim_keys();
        self.drain_records()?;
        self.sink.flush()?;
        self.dead_letter.flush();
        self.late_log.flush();
        Ok(())
    }

    /// End of a bounded input: fire every open window and flush.
    pub fn finish(&mut self) -> Result<(), EngineError> {
        let wm = self.watermarks.finish();
        for view in &mut self.views {
            view.advance(wm);
        }
        self.flush()
    }

    fn drain_records(&mut self) -> Result<(), EngineError> {
        self.collect_rollbacks();
        self.write_records()
    }

    /// Hand the finished records to the sink.
    fn write_records(&mut self) -> Result<(), EngineError> {
        if self.records.is_empty() {
            return Ok(());
        }
        self.stats.windows_fired += self.records.len() as u64;
        self.sink.write_owned(std::mem::take(&mut self.records))?;
        Ok(())
    }

    /// A fresh engine with this one's settings, sink, logs and plugins (in
    /// their current versions) but none of its state: what a pipeline
    /// restores a checkpoint into after a failure. Counters and the deploy
    /// history carry over.
    pub fn rebuild(self) -> Result<Engine, EngineError> {
        let plugins: Vec<Arc<Plugin>> = self.views.iter().map(|v| v.plugin().clone()).collect();
        let mut fresh = Engine::new(self.cfg, self.sink);
        fresh.source = self.source;
        fresh.dead_letter = self.dead_letter;
        fresh.late_log = self.late_log;
        fresh.stats = self.stats;
        fresh.history = self.history;
        for p in plugins {
            fresh.add_view(p)?;
        }
        Ok(fresh)
    }

    /// Take the sink back (to read a counting sink after a run).
    pub fn into_sink(self) -> Box<dyn Sink> {
        self.sink
    }

    pub fn sink_mut(&mut self) -> &mut dyn Sink {
        self.sink.as_mut()
    }
}

#[cfg(test)]
pub(crate) mod tests;
