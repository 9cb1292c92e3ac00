//! Session windows.
//!
//! An event at `t` opens `[t, t + gap)`; windows that intersect or merely
//! touch (`a.end >= b.start`, Flink's inclusive `TimeWindow.intersects`) merge
//! into `[min start, max end)`. A session fires when the watermark reaches
//! `end - 1`, and is then gone: a later event starts a new session even if it
//! touches the fired one (Flink purges the fired window with no allowed
//! lateness).
//!
//! Merging sessions does not merge their states here: the merged session
//! keeps the slots of its parts, and the plugin merges them when the session
//! fires. That keeps the hot path free of plugin calls.
//!
//! Firing time index: a priority queue of `(fire time, key)` ([`FireQueue`]).
//! A session's end moves with almost every event, so the queue is updated
//! lazily: every session has
//! one entry at or before its firing time (`entry`); when an entry pops
//! before the session is due, it is pushed again at the session's current
//! firing time. That is about one heap operation per session per gap instead
//! of one per event.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use super::{Assign, Fired, KeyId, Parts, SlotAllocator, SlotId, WindowOperator};
use crate::cow::CowVec;

#[derive(Debug, Clone)]
struct Session {
    start: i64,
    end: i64,
    /// The firing time of this session's heap entry (<= end - 1).
    entry: i64,
    /// The states of the sessions merged into this one, oldest first.
    slots: SmallVec<[SlotId; 2]>,
}

/// A key's open sessions, sorted by start, pairwise not touching; almost
/// always one, kept inline in one whole cache line (one miss per event).
#[derive(Debug, Default, Clone)]
#[repr(align(64))]
struct KeySessions(SmallVec<[Session; 1]>);

const _: () = assert!(std::mem::size_of::<KeySessions>() == 64);

impl std::ops::Deref for KeySessions {
    type Target = SmallVec<[Session; 1]>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KeySessions {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

#[derive(Debug)]
pub struct Sessions {
    gap: i64,
    keys: CowVec<KeySessions>,
    queue: FireQueue,
    slots: SlotAllocator,
}

impl Sessions {
    pub fn new(gap: i64) -> Self {
        assert!(gap > 0);
        Self {
            gap,
            keys: CowVec::new(),
            queue: FireQueue::default(),
            slots: SlotAllocator::default(),
        }
    }

    fn key_sessions(&mut self, key: KeyId) -> &mut KeySessions {
        let k = key as usize;
        if k >= self.keys.len() {
            self.keys.resize_with(k + 1, KeySessions::default);
        }
        &mut self.keys[k]
    }
}

impl WindowOperator for Sessions {
    #[inline]
    fn assign(&mut self, key: KeyId, time_ms: i64, watermark: i64) -> Assign {
        let (start, end) = (time_ms, time_ms.saturating_add(self.gap));
        let sessions = self.key_sessions(key);
        // Sessions are sorted and pairwise apart, so the ones the new window
        // touches are contiguous.
        let first = sessions.partition_point(|s| s.end < start);
        let mut last = first;
        while last < sessions.len() && sessions[last].start <= end {
            last += 1;
        }
        if first == last {
            if end - 1 <= watermark {
                return Assign::Late;
            }
            let slot = self.slots.allocate();
            self.keys[key as usize].insert(
                first,
                Session {
                    start,
                    end,
                    entry: end - 1,
                    slots: smallvec::smallvec![slot],
                },
            );
            self.queue.push(end - 1, key);
            return Assign::Slot(slot);
        }
        if last - first == 1 {
            let s = &mut sessions[first];
            s.start = s.start.min(start);
            s.end = s.end.max(end);
            return Assign::Slot(s.slots[0]);
        }
        // The new window bridges several sessions: fold them into the first.
        let mut merged: SmallVec<[Session; 2]> = sessions.drain(first + 1..last).collect();
        let s = &mut sessions[first];
        s.start = s.start.min(start);
        for m in merged.drain(..) {
            s.end = s.end.max(m.end);
            s.entry = s.entry.min(m.entry);
            s.slots.extend(m.slots);
        }
        s.end = s.end.max(end);
        Assign::Slot(s.slots[0])
    }

    #[inline]
    fn next_fire(&self) -> i64 {
        self.queue.next
    }

    fn advance(&mut self, watermark: i64, out: &mut Fired, limit: usize) {
        // About one entry is due per event, and its key was last touched a
        // session gap ago: fetch the key of the entry due a few pops later.
        const AHEAD: usize = 8;
        while out.windows.len() < limit
            && let Some(((entry, key), later)) = self.queue.pop_due_ahead(watermark, AHEAD)
        {
            if let Some(later) = later {
                self.prefetch(later);
            }
            let sessions = &mut self.keys[key as usize];
            let mut i = 0;
            while i < sessions.len() {
                let s = &mut sessions[i];
                if s.end - 1 <= watermark {
                    let s = sessions.remove(i);
                    out.released.extend_from_slice(&s.slots);
                    out.push(key, s.start, s.end, s.slots);
                    continue;
                }
                if s.entry == entry {
                    s.entry = s.end - 1;
                    self.queue.push(s.entry, key);
                }
                i += 1;
            }
            if sessions.is_empty() {
                out.idle.push(key);
            }
        }
    }

    fn fires_share_slots(&self) -> bool {
        false
    }

    fn capture(&self) -> Box<dyn Parts> {
        Box::new(SessionParts(self.keys.clone()))
    }

    fn restore(&mut self, key: KeyId, start: i64, end: i64, states: usize, _watermark: i64) -> Vec<SlotId> {
        let slots: SmallVec<[SlotId; 2]> = (0..states.max(1)).map(|_| self.slots.allocate()).collect();
        let sessions = self.key_sessions(key);
        let at = sessions.partition_point(|s| s.start < start);
        sessions.insert(
            at,
            Session {
                start,
                end,
                entry: end - 1,
                slots: slots.clone(),
            },
        );
        self.queue.push(end - 1, key);
        slots.to_vec()
    }

    fn slots(&self) -> &SlotAllocator {
        &self.slots
    }

    #[inline]
    fn prefetch(&self, key: KeyId) {
        if let Some(parts) = self.keys.get(key as usize) {
            super::prefetch(parts);
        }
    }

    #[inline]
    fn peek(&self, key: KeyId, time_ms: i64) -> Option<SlotId> {
        let sessions = self.keys.get(key as usize)?;
        let s = sessions.iter().find(|s| s.end >= time_ms)?;
        (s.start <= time_ms.saturating_add(self.gap)).then(|| s.slots[0])
    }

    fn release(&mut self, slots: &[SlotId]) {
        self.slots.release_all(slots);
    }

    fn key_is_idle(&self, key: KeyId) -> bool {
        // Queue entries of fired or merged sessions may still name the key.
        // Popping one fires only sessions that are due anyway, whichever
        // key holds the id by then, so the id can be reused.
        self.keys.get(key as usize).is_none_or(|s| s.is_empty())
    }

    fn forget_key(&mut self, key: KeyId) {
        if self.keys.get(key as usize).is_some_and(|s| s.spilled()) {
            self.keys[key as usize] = KeySessions::default();
        }
    }
}

/// Milliseconds of firing time per bucket of a [`FireQueue`].
const BUCKET_MS: i64 = 1_000;

/// A min-priority queue of `(fire time, key)` for a watermark that only
/// moves forward: buckets of [`BUCKET_MS`] of firing time. A bucket is
/// appended to unsorted and sorted once, when it becomes the first (the
/// next to fire); from then on it is a sorted run consumed from its head.
/// Entries of one bucket arrive in random order (the disorder of event time
/// spans many buckets), so keeping every bucket sorted cost a binary search
/// over a cold run per insert; a binary heap of a million sessions misses
/// the cache at every level.
/// Pops come in exactly the heap's order: smallest `(time, key)` first.
#[derive(Debug)]
struct FireQueue {
    /// Never holds an empty bucket; the first one is always sorted.
    buckets: BTreeMap<i64, Bucket>,
    /// The smallest firing time queued (`i64::MAX` when empty).
    next: i64,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Each entry is `(time - bucket start) << 32 | key`: one integer, so
    /// the order of entries is that of `(time, key)`. What is before `head`
    /// was popped; when `sorted`, the rest is sorted.
    items: Vec<u64>,
    head: usize,
    sorted: bool,
}

impl Default for FireQueue {
    fn default() -> Self {
        Self {
            buckets: BTreeMap::new(),
            next: i64::MAX,
        }
    }
}

impl FireQueue {
    fn push(&mut self, time: i64, key: KeyId) {
        let bucket = time.div_euclid(BUCKET_MS);
        let item = ((time - bucket * BUCKET_MS) as u64) << 32 | u64::from(key);
        let first = self.buckets.first_key_value().map_or(i64::MAX, |(&k, _)| k);
        let b = self.buckets.entry(bucket).or_default();
        if bucket <= first {
            // The first bucket (or a new first one): keep it sorted.
            if !b.sorted {
                b.items[b.head..].sort_unstable();
                b.sorted = true;
            }
            let at = b.head + b.items[b.head..].partition_point(|&x| x <= item);
            b.items.insert(at, item);
        } else {
            b.items.push(item);
            b.sorted = false;
        }
        self.next = self.next.min(time);
    }

    /// The smallest entry, if its time is at or before `watermark`.
    #[cfg(test)]
    fn pop_due(&mut self, watermark: i64) -> Option<(i64, KeyId)> {
        self.pop_due_ahead(watermark, 0).map(|(item, _)| item)
    }

    /// [`FireQueue::pop_due`], and the key of the entry `ahead` places
    /// behind it, if that one is in the same bucket (a prefetch hint).
    fn pop_due_ahead(&mut self, watermark: i64, ahead: usize) -> Option<((i64, KeyId), Option<KeyId>)> {
        if self.next > watermark {
            return None;
        }
        let mut first = self.buckets.first_entry()?;
        let start = *first.key() * BUCKET_MS;
        let b = first.get_mut();
        debug_assert!(b.sorted);
        let item = b.items[b.head];
        let later = b.items.get(b.head + ahead).map(|&x| x as KeyId);
        b.head += 1;
        if b.head == b.items.len() {
            first.remove();
        }
        self.next = match self.buckets.first_entry() {
            Some(mut e) => {
                let bucket = *e.key();
                let b = e.get_mut();
                if !b.sorted {
                    b.items[b.head..].sort_unstable();
                    b.sorted = true;
                }
                bucket * BUCKET_MS + (b.items[b.head] >> 32) as i64
            }
            None => i64::MAX,
        };
        Some(((start + (item >> 32) as i64, item as KeyId), later))
    }
}

/// The open sessions of a [`Sessions`] at one moment.
struct SessionParts(CowVec<KeySessions>);

impl Parts for SessionParts {
    fn visit(&self, out: &mut super::SnapshotVisitor<'_>) {
        for (key, sessions) in self.0.iter().enumerate() {
            for s in sessions.iter() {
                out(key as KeyId, s.start, s.end, &s.slots);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fire_queue_pops_in_heap_order() {
        use std::cmp::Reverse;
        let mut q = FireQueue::default();
        let mut heap = std::collections::BinaryHeap::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut watermark = -5_000;
        for round in 0..200 {
            for _ in 0..50 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = watermark + 1 + (x % 20_000) as i64;
                let key = (x >> 40) as KeyId % 7;
                q.push(t, key);
                heap.push(Reverse((t, key)));
            }
            watermark += 1_700 + round % 3;
            while let Some(got) = q.pop_due(watermark) {
                let Reverse(want) = heap.pop().unwrap();
                assert_eq!(got, want);
                // What fires may be pushed again, later.
                if want.1 == 3 {
                    q.push(want.0 + 10_000, 3);
                    heap.push(Reverse((want.0 + 10_000, 3)));
                }
            }
            assert_eq!(q.next, heap.peek().map_or(i64::MAX, |Reverse((t, _))| *t));
            assert!(q.next > watermark);
        }
        while let Some(got) = q.pop_due(i64::MAX) {
            assert_eq!(got, heap.pop().unwrap().0);
        }
        assert!(heap.is_empty() && q.buckets.is_empty() && q.next == i64::MAX);
    }

    const GAP: i64 = 600_000;

    fn fire(op: &mut Sessions, wm: i64) -> Vec<(KeyId, i64, i64, usize)> {
        let mut out = Fired::default();
        op.advance(wm, &mut out, usize::MAX);
        op.release(&out.released);
        out.windows
            .iter()
            .map(|w| (w.key, w.start, w.end, w.slot_count as usize))
            .collect()
    }

    #[test]
    fn touching_windows_merge() {
        let mut op = Sessions::new(GAP);
        op.assign(0, 0, i64::MIN);
        op.assign(0, GAP, i64::MIN);
        op.assign(0, 2 * GAP + 1, i64::MIN);
        assert_eq!(
            fire(&mut op, i64::MAX),
            vec![(0, 0, 2 * GAP, 1), (0, 2 * GAP + 1, 3 * GAP + 1, 1)]
        );
    }

    #[test]
    fn bridging_event_merges_two_sessions_and_keeps_both_states() {
        let mut op = Sessions::new(GAP);
        op.assign(0, 0, i64::MIN);
        op.assign(0, 3 * GAP, i64::MIN);
        op.assign(0, 2 * GAP, i64::MIN);
        op.assign(0, GAP, i64::MIN);
        assert_eq!(fire(&mut op, i64::MAX), vec![(0, 0, 4 * GAP, 2)]);
    }

    #[test]
    fn extended_session_fires_at_its_new_end() {
        let mut op = Sessions::new(GAP);
        op.assign(0, 0, i64::MIN);
        op.assign(0, 100, i64::MIN);
        assert!(fire(&mut op, GAP - 1).is_empty());
        assert!(fire(&mut op, GAP + 98).is_empty());
        assert_eq!(fire(&mut op, GAP + 99), vec![(0, 0, GAP + 100, 1)]);
    }

    #[test]
    fn event_touching_a_fired_session_starts_a_new_one_or_is_late() {
        let mut op = Sessions::new(GAP);
        op.assign(0, 0, i64::MIN);
        assert_eq!(fire(&mut op, GAP - 1).len(), 1);
        assert_eq!(op.assign(0, 0, GAP - 1), Assign::Late);
        assert!(matches!(op.assign(0, 10, GAP - 1), Assign::Slot(_)));
        assert_eq!(fire(&mut op, i64::MAX), vec![(0, 10, GAP + 10, 1)]);
    }
}
