//! One feature view: a plugin instance, a window operator and the states of
//! the view's open windows.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use super::state_bytes::StateBytes;
use super::{KeyNames, KeyTable};
use crate::cow::CowVec;
use crate::event::Event;
use crate::plugin::codec::{Packed, Reader};
use crate::plugin::{Plugin, PluginError, PluginInstance, WindowSpec};
use crate::sink::{FeatureRecord, RecordLog, Value};
use crate::state::{PluginRecord, format};
use crate::window::{Assign, Fired, KeyId, Parts, Sessions, Sliding, SlotId, WindowOperator};

/// Counters of one view.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ViewStats {
    pub events: u64,
    pub late: u64,
    pub missing_key: u64,
    pub windows_fired: u64,
    pub batches: u64,
    pub plugin_calls: u64,
    pub plugin_errors: u64,
    pub plugin_nanos: u64,
    /// Events and windows sent to the dead-letter log after a plugin failure.
    pub dead_lettered: u64,
    /// Plugin instances replaced because their memory passed the high-water
    /// mark (no call failed; see `Limits::high_water_bytes`).
    pub instance_recycles: u64,
    /// Plugin call latency histogram: calls at or under each bound of
    /// [`PLUGIN_LATENCY_BOUNDS_US`] (not cumulative).
    pub plugin_latency_buckets: [u64; PLUGIN_LATENCY_BOUNDS_US.len()],
}

/// Upper bounds (µs) of the plugin call latency histogram.
pub const PLUGIN_LATENCY_BOUNDS_US: [f64; 9] = [
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    5000.0,
    25000.0,
    100000.0,
    f64::INFINITY,
];

impl ViewStats {
    /// Add `o`'s counts (the same view in another engine core).
    pub fn add(&mut self, o: &ViewStats) {
        self.events += o.events;
        self.late += o.late;
        self.missing_key += o.missing_key;
        self.windows_fired += o.windows_fired;
        self.batches += o.batches;
        self.plugin_calls += o.plugin_calls;
        self.plugin_errors += o.plugin_errors;
        self.plugin_nanos += o.plugin_nanos;
        self.dead_lettered += o.dead_lettered;
        self.instance_recycles += o.instance_recycles;
        for (a, b) in self.plugin_latency_buckets.iter_mut().zip(o.plugin_latency_buckets) {
            *a += b;
        }
    }

    fn record_call(&mut self, took: std::time::Duration) {
        let ns = took.as_nanos() as u64;
        self.plugin_nanos += ns;
        self.plugin_calls += 1;
        let us = ns as f64 / 1000.0;
        let b = PLUGIN_LATENCY_BOUNDS_US
            .iter()
            .position(|&u| us <= u)
            .unwrap_or(PLUGIN_LATENCY_BOUNDS_US.len() - 1);
        self.plugin_latency_buckets[b] += 1;
    }
}

/// One state and its batch bookkeeping, side by side: the hot path touches
/// both for the same event, and it is memory-bound.
#[derive(Default, Clone)]
#[repr(align(64))]
struct Slot {
    /// `(batch << 32) | index` when the slot is already in the current
    /// batch, so each slot's state is sent once however many of the batch's
    /// events touch it.
    mark: u64,
    /// The plugin's opaque state; seed states (24-32 bytes) stay inline.
    state: StateBytes,
}

/// One view's state at one moment ([`View::capture`]), encoded on the
/// checkpoint thread while the event loop goes on.
pub struct ViewCapture {
    pub plugin: PluginRecord,
    parts: Box<dyn Parts>,
    arena: CowVec<Slot>,
    keys: KeyNames,
}

impl ViewCapture {
    /// Encode every open window part (the layout is in
    /// [`crate::state::format`]), split into chunks of about
    /// `chunk_bytes`. Returns the chunks and the number of parts.
    pub fn encode(&self, chunk_bytes: usize) -> (Vec<Vec<u8>>, u64) {
        let mut chunks = Vec::new();
        let parts = self
            .encode_each(chunk_bytes, &mut |chunk| {
                chunks.push(chunk.to_vec());
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
        (chunks, parts)
    }

    /// [`ViewCapture::encode`], handing each chunk to `put` as soon as it is
    /// full: one chunk is in memory at a time, not the whole encoding (at a
    /// million keys, a few hundred MB). Stops at the first error of `put`.
    /// Returns the number of parts.
    pub fn encode_each<E>(&self, chunk_bytes: usize, put: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<u64, E> {
        let mut cur: Vec<u8> = Vec::with_capacity(chunk_bytes + 4096);
        let mut parts = 0u64;
        let mut failed = None;
        let (arena, keys) = (&self.arena, &self.keys);
        self.parts.visit(&mut |key, start, end, slots| {
            if failed.is_some() {
                return;
            }
            parts += 1;
            let states = slots.iter().map(|&s| &arena[s as usize].state[..]);
            format::write_part(
                &mut cur,
                keys.partition(key),
                keys.name(key).as_bytes(),
                start,
                end,
                states,
            );
            if cur.len() >= chunk_bytes {
                failed = put(&cur).err();
                cur.clear();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if !cur.is_empty() {
            put(&cur)?;
        }
        Ok(parts)
    }
}

/// One feature view: a plugin instance, its window operator and the states
/// of its open windows.
pub struct View {
    plugin: Arc<Plugin>,
    instance: PluginInstance,
    name: Arc<str>,
    op: Box<dyn WindowOperator>,
    is_session: bool,
    /// The state of every slot; empty = a new window. Copy-on-write, so
    /// that a checkpoint takes it along without copying.
    arena: CowVec<Slot>,
    pub(super) key_table: usize,
    key_is_user_id: bool,
    batch_no: u32,
    batch_slots: Vec<SlotId>,
    events: Packed,
    /// The states of `batch_slots`, packed when the batch first touches
    /// each slot (its cache line is at hand then; by the time the batch is
    /// applied it is usually not).
    states: Packed,
    windows: Packed,
    fired: Fired,
    /// Windows of `fired` already finished (they are finished in chunks).
    finished: usize,
    values: Vec<Value>,
    /// When the oldest window in `fired` fired.
    fired_at: Option<Instant>,
    /// The watermark the operator is still firing for, a chunk at a time
    /// ([`View::FIRE_CHUNK`]).
    firing_to: Option<i64>,
    consecutive_failures: u32,
    max_failures: u32,
    /// Why the view stopped, if it did.
    pub disabled: Option<String>,
    /// When this plugin version started serving (ms since the epoch).
    pub loaded_since_ms: i64,
    /// The version this one replaced, if their states are compatible: the
    /// rollback target after repeated failures.
    previous: Option<Arc<Plugin>>,
    /// Keys left with no open window part in this view (by a firing, now
    /// finished, or by a late event): the engine reclaims those idle in
    /// every view of their key table ([`super::Engine::reclaim_keys`]).
    pub(super) idle_keys: Vec<KeyId>,
    /// A rollback happened and the engine should record it.
    pub(super) rolled_back: Option<(Arc<Plugin>, Arc<Plugin>, String)>,
    pub stats: ViewStats,
}

impl View {
    pub fn new(plugin: Arc<Plugin>, key_table: usize, now_ms: i64) -> Result<Self, PluginError> {
        let instance = plugin.instantiate()?;
        let d = &plugin.declaration;
        let (op, is_session): (Box<dyn WindowOperator>, bool) = match d.window {
            WindowSpec::Sliding { size_ms, slide_ms } => (Box::new(Sliding::new(size_ms, slide_ms)), false),
            WindowSpec::Session { gap_ms } => (Box::new(Sessions::new(gap_ms)), true),
        };
        let mut events = Packed::default();
        events.clear();
        let mut states = Packed::default();
        states.clear();
        Ok(Self {
            name: Arc::from(d.view.as_str()),
            key_is_user_id: d.key_field == "user_id",
            op,
            is_session,
            arena: CowVec::new(),
            key_table,
            batch_no: 1,
            batch_slots: Vec::new(),
            events,
            states,
            windows: Packed::default(),
            fired: Fired::default(),
            finished: 0,
            values: Vec::new(),
            fired_at: None,
            firing_to: None,
            consecutive_failures: 0,
            max_failures: 3,
            disabled: None,
            loaded_since_ms: now_ms,
            previous: None,
            idle_keys: Vec::new(),
            rolled_back: None,
            stats: ViewStats::default(),
            instance,
            plugin,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Open window parts (slices or session parts) holding a state.
    pub fn open_states(&self) -> usize {
        self.op.slots().live()
    }

    /// Keys with at least one open window part.
    pub fn open_keys(&self) -> usize {
        let (mut keys, mut last) = (0, None);
        self.op.capture().visit(&mut |key, _, _, _| {
            if last != Some(key) {
                last = Some(key);
                keys += 1;
            }
        });
        keys
    }

    pub fn set_max_failures(&mut self, n: u32) {
        self.max_failures = n.max(1);
    }

    /// The value of the view's key field in `ev`, as text.
    #[inline]
    pub(super) fn key_from<'e>(&self, ev: &'e Event<'_>) -> Option<Cow<'e, str>> {
        if self.key_is_user_id {
            return Some(Cow::Borrowed(&ev.user_id));
        }
        // Slow path: a key field other than the seed's, read from the
        // event's other fields.
        let field = &self.plugin.declaration.key_field;
        match field.as_str() {
            "event_type" => Some(Cow::Borrowed(&ev.event_type)),
            _ => {
                let extra: serde_json::Value = serde_json::from_str(&ev.extra).ok()?;
                match extra.get(field)? {
                    serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
                    serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                    serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                    _ => None,
                }
            }
        }
    }

    /// Whether the view's key is the seed's `user_id` (the fast path).
    #[inline]
    pub(super) fn keyed_by_user_id(&self) -> bool {
        self.key_is_user_id
    }

    /// Whether the view's operator has no open window part for `key` (a
    /// fired window of it may still be waiting to be finished: see
    /// [`View::unfinished_keys`]).
    pub(super) fn key_is_idle(&self, key: KeyId) -> bool {
        self.op.key_is_idle(key)
    }

    /// Keys of fired windows not finished yet.
    pub(super) fn unfinished_keys(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.fired.windows[self.finished..].iter().map(|w| w.key)
    }

    /// Drop the view's entry for an idle key whose id will be reused.
    pub(super) fn forget_key(&mut self, key: KeyId) {
        self.op.forget_key(key);
    }

    /// Start fetching `key`'s window state (a hint; see
    /// [`super::Engine::process_lines`]).
    #[inline]
    pub(super) fn prefetch_key(&self, key: KeyId) {
        self.op.prefetch(key);
    }

    /// Start fetching the state an event of `key` at `time_ms` will update.
    #[inline]
    pub(super) fn prefetch_slot(&self, key: KeyId, time_ms: i64) {
        if let Some(slot) = self.op.peek(key, time_ms)
            && let Some(s) = self.arena.get(slot as usize)
        {
            crate::window::prefetch(s);
        }
    }

    /// Assign `ev` and add it to the pending batch. Returns false if the
    /// event is late for this view.
    #[inline]
    pub(super) fn stage(&mut self, key: KeyId, ev: &Event<'_>, key_text: &str, watermark: i64) -> bool {
        let slot = match self.op.assign(key, ev.time_ms, watermark) {
            Assign::Slot(s) => s,
            Assign::Late => {
                self.stats.late += 1;
                if self.op.key_is_idle(key) {
                    self.idle_keys.push(key);
                }
                return false;
            }
        };
        self.stats.events += 1;
        let s = slot as usize;
        if s >= self.arena.len() {
            self.arena.resize_with(s + 1, Slot::default);
        }
        let entry = &mut self.arena[s];
        let index = if (entry.mark >> 32) as u32 == self.batch_no {
            entry.mark as u32
        } else {
            let i = self.batch_slots.len() as u32;
            self.batch_slots.push(slot);
            entry.mark = ((self.batch_no as u64) << 32) | i as u64;
            self.states.push_state(&entry.state);
            i
        };
        self.events
            .push_event(index, ev.time_ms, ev.price, &ev.event_type, key_text, &ev.extra);
        true
    }

    /// Whether windows are still due at `watermark` (which may be
    /// `i64::MAX`, the end of the input, where `next_fire` says "none").
    #[inline]
    fn more_due(&self, watermark: i64) -> bool {
        let next = self.op.next_fire();
        next != i64::MAX && next <= watermark
    }

    /// When the windows fired and not yet finished fired, if any are.
    #[inline]
    pub(super) fn fired_at(&self) -> Option<Instant> {
        self.fired_at
    }

    /// Events waiting in the current batch.
    #[inline]
    pub(super) fn pending(&self) -> usize {
        self.events.len() as usize
    }

    /// Fire what `watermark` completes. Returns true if the fired windows
    /// must be finished before the next event is staged: they share slots
    /// with open windows, or more are due than one chunk (the rest is fired
    /// by [`View::flush_some`], before any later event is assigned).
    #[inline]
    pub(super) fn advance(&mut self, watermark: i64) -> bool {
        if self.op.next_fire() > watermark {
            return false;
        }
        self.op.advance(watermark, &mut self.fired, Self::FIRE_CHUNK);
        if self.fired_at.is_none() && !self.fired.windows.is_empty() {
            self.fired_at = Some(Instant::now());
        }
        if self.more_due(watermark) {
            self.firing_to = Some(watermark);
            return true;
        }
        self.op.fires_share_slots()
    }

    /// Apply the pending batch, finish the fired windows into `records`, and
    /// release the slots no window needs.
    pub(super) fn flush(
        &mut self,
        keys: &KeyTable,
        records: &mut Vec<FeatureRecord>,
        dead_letter: &RecordLog,
        source: &str,
    ) {
        while self.flush_some(keys, records, dead_letter, source) {}
    }

    /// [`View::flush`] one step at a time: apply the pending batch and
    /// finish at most [`View::FINISH_CHUNK`] fired windows. Returns true if
    /// fired windows remain: hand `records` to the sink and call again
    /// (before the next event), so that a firing of a million windows never
    /// holds a million records.
    pub(super) fn flush_some(
        &mut self,
        keys: &KeyTable,
        records: &mut Vec<FeatureRecord>,
        dead_letter: &RecordLog,
        source: &str,
    ) -> bool {
        if !self.events.is_empty() {
            self.apply_batch(dead_letter, source);
        }
        let total = self.fired.windows.len();
        if self.finished < total {
            let to = (self.finished + Self::FINISH_CHUNK).min(total);
            self.finish_range(self.finished..to, keys, records, dead_letter, source);
            self.finished = to;
            if to < total {
                return true;
            }
        }
        if !self.fired.released.is_empty() {
            for &slot in &self.fired.released {
                self.arena[slot as usize].state.clear();
            }
            self.op.release(&self.fired.released);
        }
        self.idle_keys.extend_from_slice(&self.fired.idle);
        self.fired.clear();
        self.finished = 0;
        if let Some(watermark) = self.firing_to.take() {
            // The next chunk of the same advance: it fired when the first did.
            self.op.advance(watermark, &mut self.fired, Self::FIRE_CHUNK);
            if self.more_due(watermark) {
                self.firing_to = Some(watermark);
            }
            return true;
        }
        self.fired_at = None;
        false
    }

    fn apply_batch(&mut self, dead_letter: &RecordLog, source: &str) {
        let n = self.batch_slots.len();
        let started = Instant::now();
        let arena = &mut self.arena;
        let batch_slots = &self.batch_slots;
        let result = self
            .instance
            .update_with(self.states.bytes(), self.events.bytes(), n, |i, state| {
                // The batch's slots left the cache since it was staged.
                if let Some(slot) = batch_slots.get(i + 8).and_then(|&s| arena.get(s as usize)) {
                    crate::window::prefetch(slot);
                }
                arena[batch_slots[i] as usize].state.set(state);
            });
        self.stats.record_call(started.elapsed());
        self.stats.instance_recycles = self.instance.recycled;
        self.stats.batches += 1;
        if let Err(e) = result {
            self.dead_letter_events(&e, dead_letter, source);
            self.failed(e);
        } else {
            self.consecutive_failures = 0;
        }
        self.events.clear();
        self.states.clear();
        self.batch_slots.clear();
        self.batch_no = self.batch_no.wrapping_add(1).max(1);
    }

    /// Windows per `finish` call: bounds the plugin's memory when a
    /// watermark jump (the end of a file) fires everything at once.
    const FINISH_CHUNK: usize = 4096;

    /// Windows fired per [`WindowOperator::advance`] call (sliding windows
    /// add all of one window end's): at the end of a file with a million
    /// keys, firing everything at once held ~400 MB of fired-window lists.
    const FIRE_CHUNK: usize = 65_536;

    fn finish_range(
        &mut self,
        range: std::ops::Range<usize>,
        keys: &KeyTable,
        records: &mut Vec<FeatureRecord>,
        dead_letter: &RecordLog,
        source: &str,
    ) {
        let windows = &self.fired.windows[range];
        self.windows.clear();
        // Fired windows are spread over all keys: fetch a few ahead, the
        // key's name entry first, then its text and the window's states.
        const AHEAD: usize = 4;
        let fetch_name = |j: usize| {
            if let Some(w) = windows.get(j) {
                keys.prefetch_name(w.key);
            }
        };
        let fetch_rest = |j: usize| {
            if let Some(w) = windows.get(j) {
                keys.prefetch_name_text(w.key);
                for &s in self.fired.slots_of(w) {
                    if let Some(slot) = self.arena.get(s as usize) {
                        crate::window::prefetch(slot);
                    }
                }
            }
        };
        (0..2 * AHEAD).for_each(fetch_name);
        (0..AHEAD).for_each(fetch_rest);
        for (i, w) in windows.iter().enumerate() {
            fetch_name(i + 2 * AHEAD);
            fetch_rest(i + AHEAD);
            let slots = self.fired.slots_of(w);
            self.windows.push_window(
                keys.name(w.key),
                w.start,
                w.end,
                slots.iter().map(|&s| &self.arena[s as usize].state[..]),
            );
        }
        let n = windows.len();
        let decl = &self.plugin.declaration;
        self.values.clear();
        let started = Instant::now();
        let result = self
            .instance
            .finish(self.windows.bytes(), n, &decl.fields, &mut self.values);
        self.stats.record_call(started.elapsed());
        self.stats.instance_recycles = self.instance.recycled;
        if let Err(e) = result {
            for w in windows {
                let entity = keys.name(w.key);
                dead_letter.write(
                    &format!("plugin_{}", e.kind()),
                    source,
                    0,
                    &[
                        ("view", &self.name),
                        ("error", &e.to_string()),
                        ("key", entity),
                        ("window_start", &w.start.to_string()),
                        ("window_end", &w.end.to_string()),
                    ],
                    b"",
                );
            }
            self.stats.dead_lettered += n as u64;
            self.failed(e);
            return;
        }
        self.consecutive_failures = 0;
        let nf = decl.fields.len();
        let fired_at = self.fired_at.unwrap_or_else(Instant::now);
        self.stats.windows_fired += n as u64;
        records.reserve(n);
        // The values move into the records (no copy of their strings).
        let mut values = self.values.drain(..);
        for w in windows {
            let entity = keys.name(w.key);
            // `{view}:{entity}`, and `:{start}` for sessions.
            let mut key = String::with_capacity(self.name.len() + entity.len() + 22);
            key.push_str(&self.name);
            key.push(':');
            let entity_span = key.len()..key.len() + entity.len();
            key.push_str(entity);
            if self.is_session {
                use std::fmt::Write;
                write!(key, ":{}", w.start).expect("a String takes any write");
            }
            records.push(FeatureRecord {
                view: self.name.clone(),
                key,
                entity_span,
                window_start: w.start,
                window_end: w.end,
                fields: decl.fields.clone(),
                values: values.by_ref().take(nf).collect(),
                ttl_seconds: decl.ttl_seconds,
                fired_at,
            });
        }
    }

    /// The batch's events for this view go to the dead-letter log, rebuilt
    /// from the packed batch (the raw lines are long gone).
    fn dead_letter_events(&mut self, e: &PluginError, dead_letter: &RecordLog, source: &str) {
        let n = self.events.len() as u64;
        self.stats.dead_lettered += n;
        if !dead_letter.is_enabled() {
            return;
        }
        let reason = format!("plugin_{}", e.kind());
        let error = e.to_string();
        let bytes = self.events.bytes();
        let mut r = Reader::new(bytes);
        let Ok(count) = r.u32() else { return };
        for _ in 0..count {
            let parsed = (|| -> Result<String, String> {
                let _slot = r.u32()?;
                let time = r.i64()?;
                let price = r.f64()?;
                let ty = r.str()?;
                let key = r.str()?;
                let extra = r.str()?;
                let mut raw = String::new();
                raw.push_str("{\"event_time\":");
                raw.push_str(&time.to_string());
                raw.push_str(",\"event_type\":");
                crate::sink::write_json_str(&mut raw, ty);
                raw.push_str(",\"key\":");
                crate::sink::write_json_str(&mut raw, key);
                raw.push_str(",\"price\":");
                raw.push_str(&crate::sink::format_float(price));
                if extra.len() > 2 {
                    raw.push(',');
                    raw.push_str(&extra[1..extra.len() - 1]);
                }
                raw.push('}');
                Ok(raw)
            })();
            match parsed {
                Ok(raw) => dead_letter.write(
                    &reason,
                    source,
                    0,
                    &[("view", &self.name), ("error", &error)],
                    raw.as_bytes(),
                ),
                Err(_) => return,
            }
        }
    }

    /// A frozen copy of the view's open window parts and their states, for
    /// a checkpoint. Call after [`View::flush`]: pending events must be
    /// applied and fired windows finished.
    pub(super) fn capture(&self, keys: &KeyTable) -> ViewCapture {
        let p = &self.plugin;
        ViewCapture {
            plugin: PluginRecord {
                view: p.declaration.view.clone(),
                version: p.declaration.version.clone(),
                hash: p.hash.clone(),
                state_version: p.declaration.state_version,
                window: p.declaration.window,
            },
            parts: self.op.capture(),
            arena: self.arena.clone(),
            keys: keys.names(),
        }
    }

    /// Put back parts written by [`ViewCapture::encode`].
    pub(super) fn restore_chunk(&mut self, keys: &mut KeyTable, chunk: &[u8], watermark: i64) -> Result<u64, String> {
        let mut r = format::PartReader::new(chunk);
        let mut parts = 0;
        while let Some(h) = r.next_part()? {
            let key = keys.intern(h.partition, h.key);
            let slots = self.op.restore(key, h.start, h.end, h.states, watermark);
            for &slot in &slots {
                let state = r.state()?;
                let s = slot as usize;
                if s >= self.arena.len() {
                    self.arena.resize_with(s + 1, Slot::default);
                }
                self.arena[s].state.set(state);
            }
            parts += 1;
        }
        Ok(parts)
    }

    /// Convert every state with `instance` (a new plugin version's), all or
    /// nothing: on error the states are untouched.
    pub(super) fn migrate_with(&mut self, instance: &mut PluginInstance, from_version: u32) -> Result<(), PluginError> {
        let live: Vec<usize> = (0..self.arena.len())
            .filter(|&s| !self.arena[s].state.is_empty())
            .collect();
        let mut converted: Vec<(usize, Vec<u8>)> = Vec::with_capacity(live.len());
        let mut states = Packed::default();
        for batch in live.chunks(4096) {
            states.clear();
            for &s in batch {
                states.push_state(&self.arena[s].state);
            }
            let new = instance.migrate(from_version, states.bytes(), batch.len())?;
            converted.extend(batch.iter().copied().zip(new));
        }
        for (s, st) in converted {
            self.arena[s].state.set(&st);
        }
        Ok(())
    }

    /// Convert every state with the plugin's `migrate` (after a restore of
    /// states written by another state version).
    pub(super) fn migrate_states(&mut self, from_version: u32) -> Result<(), PluginError> {
        let live: Vec<usize> = (0..self.arena.len())
            .filter(|&s| !self.arena[s].state.is_empty())
            .collect();
        let mut states = Packed::default();
        for batch in live.chunks(4096) {
            states.clear();
            for &s in batch {
                states.push_state(&self.arena[s].state);
            }
            let new = self.instance.migrate(from_version, states.bytes(), batch.len())?;
            for (&s, st) in batch.iter().zip(new) {
                self.arena[s].state.set(&st);
            }
        }
        Ok(())
    }

    /// Serve `plugin` from now on (the caller checked compatibility and has
    /// applied the pending batch with the old version).
    pub(super) fn replace_plugin(
        &mut self,
        plugin: Arc<Plugin>,
        instance: PluginInstance,
        keep_previous: bool,
        now_ms: i64,
    ) {
        let old = std::mem::replace(&mut self.plugin, plugin);
        self.instance = instance;
        self.previous = keep_previous.then_some(old);
        self.loaded_since_ms = now_ms;
        self.consecutive_failures = 0;
        self.disabled = None;
    }

    /// Drop every state (an explicit reset on deploy).
    pub(super) fn reset_states(&mut self) {
        let plugin = self.plugin.clone();
        let d = &plugin.declaration;
        self.op = match d.window {
            WindowSpec::Sliding { size_ms, slide_ms } => Box::new(Sliding::new(size_ms, slide_ms)),
            WindowSpec::Session { gap_ms } => Box::new(Sessions::new(gap_ms)),
        };
        self.is_session = matches!(d.window, WindowSpec::Session { .. });
        self.arena.clear();
        self.batch_slots.clear();
        self.events.clear();
        self.states.clear();
        self.fired.clear();
        self.finished = 0;
        self.batch_no = self.batch_no.wrapping_add(1).max(1);
    }

    fn failed(&mut self, e: PluginError) {
        self.stats.plugin_errors += 1;
        self.consecutive_failures += 1;
        tracing::error!(view = %self.name, plugin = %self.plugin.label(), failures = self.consecutive_failures, error = %e, "plugin call failed; its batch went to the dead-letter output");
        if self.consecutive_failures >= self.max_failures
            && let Some(prev) = self.previous.take()
        {
            match prev.instantiate() {
                Ok(instance) => {
                    let reason = format!("{} consecutive failures; last: {e}", self.consecutive_failures);
                    tracing::error!(view = %self.name, from = %self.plugin.label(), to = %prev.label(), "rolling back to the previous version: {reason}");
                    let bad = self.plugin.clone();
                    // The engine stamps the time when it records the rollback.
                    let since = self.loaded_since_ms;
                    self.replace_plugin(prev.clone(), instance, false, since);
                    self.rolled_back = Some((bad, prev, reason));
                    return;
                }
                Err(ie) => tracing::error!(view = %self.name, error = %ie, "cannot roll back"),
            }
        }
        if self.consecutive_failures >= self.max_failures {
            let reason = format!(
                "disabled after {} consecutive failures; last: {e}",
                self.consecutive_failures
            );
            tracing::error!(view = %self.name, "{reason}");
            self.disabled = Some(reason);
        }
    }
}
