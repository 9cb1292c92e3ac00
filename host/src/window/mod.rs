//! Windows: which events belong together, and when a group is complete.
//!
//! Pure and synchronous: no plugin, no I/O, no clock. An operator assigns each
//! event to a *slot* — an opaque handle to one state the engine keeps as bytes
//! — and, as the watermark advances, reports the windows that fire with the
//! slots whose states make them up. It never sees the states themselves.
//!
//! - [`Sliding`]: sliding (and tumbling) windows by slices. An event touches
//!   one slide-long slice; a firing window lists its slices.
//! - [`Sessions`]: session windows that merge, indexed by firing time.
//!
//! Semantics: docs/semantics.md, "Windows" (Flink's `SlidingEventTimeWindows` and
//! `EventTimeSessionWindows` with no allowed lateness).

mod session;
mod sliding;

pub use session::Sessions;
pub use sliding::Sliding;

/// A dense id for a key (a `user_id` in one partition); the engine interns
/// keys so that operators index vectors instead of hashing strings.
pub type KeyId = u32;

/// A handle to one state the engine keeps for an operator.
pub type SlotId = u32;

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    /// Update this slot's state with the event.
    Slot(SlotId),
    /// Every window the event belongs to has already fired.
    Late,
}

/// One fired window: its key, bounds (end exclusive) and the slots to merge,
/// oldest first, as the range `slots` of [`Fired::slots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiredWindow {
    pub key: KeyId,
    pub start: i64,
    pub end: i64,
    pub first_slot: u32,
    pub slot_count: u32,
}

/// Windows fired by one watermark advance, in firing order, plus the slots
/// that no window needs any more. The operator does not reuse those slots
/// until the engine has finished the windows and hands them back with
/// [`WindowOperator::release`] (a slot id is reused after release).
#[derive(Debug, Default, Clone)]
pub struct Fired {
    pub windows: Vec<FiredWindow>,
    pub slots: Vec<SlotId>,
    pub released: Vec<SlotId>,
    /// Keys this firing left with no open window part
    /// ([`WindowOperator::key_is_idle`]), noted while their entry is at hand.
    pub idle: Vec<KeyId>,
}

impl Fired {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.released.is_empty()
    }

    pub fn clear(&mut self) {
        self.windows.clear();
        self.slots.clear();
        self.released.clear();
        self.idle.clear();
    }

    pub fn slots_of(&self, w: &FiredWindow) -> &[SlotId] {
        &self.slots[w.first_slot as usize..(w.first_slot + w.slot_count) as usize]
    }

    fn push(&mut self, key: KeyId, start: i64, end: i64, slots: impl IntoIterator<Item = SlotId>) {
        let first_slot = self.slots.len() as u32;
        self.slots.extend(slots);
        let slot_count = self.slots.len() as u32 - first_slot;
        self.windows.push(FiredWindow {
            key,
            start,
            end,
            first_slot,
            slot_count,
        });
    }
}

/// Hands out slot ids, reusing released ones so the engine's state arena
/// stays dense.
#[derive(Debug, Default, Clone)]
pub struct SlotAllocator {
    next: SlotId,
    free: Vec<SlotId>,
    live: usize,
}

impl SlotAllocator {
    pub fn allocate(&mut self) -> SlotId {
        self.live += 1;
        self.free.pop().unwrap_or_else(|| {
            let id = self.next;
            self.next += 1;
            id
        })
    }

    pub fn release(&mut self, slot: SlotId) {
        self.live -= 1;
        self.free.push(slot);
    }

    pub fn release_all(&mut self, slots: &[SlotId]) {
        for &s in slots {
            self.release(s);
        }
    }

    /// Slots currently holding a state.
    pub fn live(&self) -> usize {
        self.live
    }

    /// One past the highest slot id ever handed out.
    pub fn capacity(&self) -> usize {
        self.next as usize
    }
}

/// Receives `(key, start, end, slots)` for every open window part.
pub type SnapshotVisitor<'a> = dyn FnMut(KeyId, i64, i64, &[SlotId]) + 'a;

/// The open window parts of an operator at one moment
/// ([`WindowOperator::capture`]).
pub trait Parts: Send {
    /// Every part: `(key, start, end, slots)`.
    fn visit(&self, out: &mut SnapshotVisitor<'_>);
}

/// What the engine needs from a window operator.
pub trait WindowOperator: Send {
    /// Assign an event at `time_ms` of `key`, given the current watermark.
    fn assign(&mut self, key: KeyId, time_ms: i64, watermark: i64) -> Assign;

    /// The smallest watermark at which something fires (`i64::MAX` if none).
    fn next_fire(&self) -> i64;

    /// Fire what is complete at `watermark`, appending to `out`, in firing
    /// order; stop once `out` holds `limit` windows or more (sliding
    /// windows stop between window ends, so one end's windows are never
    /// split). Call again while [`WindowOperator::next_fire`] is at or
    /// below `watermark`: the windows come in the same order as from one
    /// unlimited call. A watermark jump (the end of a file) fires every key's
    /// windows at once; this bounds the memory of that.
    fn advance(&mut self, watermark: i64, out: &mut Fired, limit: usize);

    /// Whether fired windows share slots with windows still open (sliding
    /// windows do; sessions do not). If they do, pending updates must be
    /// applied before later events are, so the engine flushes at each firing.
    fn fires_share_slots(&self) -> bool;

    /// A frozen copy of every open window part, for a checkpoint encoded on
    /// another thread. Cheap: the operator's per-key state is a [`crate::cow::CowVec`].
    fn capture(&self) -> Box<dyn Parts>;

    /// Put back one part of a snapshot; allocates slots for its states.
    fn restore(&mut self, key: KeyId, start: i64, end: i64, states: usize, watermark: i64) -> Vec<SlotId>;

    fn slots(&self) -> &SlotAllocator;

    /// A hint: an event of `key` comes soon; start fetching its state into
    /// the cache (the hot path is memory-bound; see `Engine::process_lines`).
    fn prefetch(&self, _key: KeyId) {}

    /// The slot an event of `key` at `time_ms` will most likely update, if
    /// it exists now. Read-only; only for prefetching the slot's state.
    fn peek(&self, _key: KeyId, _time_ms: i64) -> Option<SlotId> {
        None
    }

    /// Take back slots reported in [`Fired::released`], once their states
    /// have been used.
    fn release(&mut self, slots: &[SlotId]);

    /// Whether `key` has no open window part: nothing is left to fire for
    /// it, and its entry can go ([`WindowOperator::forget_key`]).
    fn key_is_idle(&self, key: KeyId) -> bool;

    /// Drop what is kept for an idle `key`: its id will name another key.
    fn forget_key(&mut self, key: KeyId);
}

/// Start fetching the cache lines of `value`: a hint with no effect on
/// results.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = (value as *const T).cast::<i8>();
        let size = std::mem::size_of::<T>().max(1);
        // Every line the value spans (it need not start on a line).
        let mut offset = 0;
        while offset < size + 63 {
            // SAFETY: a prefetch never faults and has no architectural
            // effect; the address is only a hint.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(offset.min(size - 1)));
            }
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod model_tests;
