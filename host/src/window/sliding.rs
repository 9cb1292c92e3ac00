//! Sliding windows by slices.
//!
//! A window `[s, s + size)` starts every `slide`, aligned to the epoch. Rather
//! than keep `size / slide` copies of every event (Flink's way), each key keeps
//! one state per slide-long *slice*; a firing window lists the slices it
//! covers. An event touches one slice, so an update costs the same whatever
//! the overlap.
//!
//! A window fires once, when the watermark reaches `end - 1`, if at least one
//! of its slices holds an event. A slice is released when the last window
//! that covers it has fired.

use std::collections::BTreeMap;

use super::{Assign, Fired, KeyId, Parts, SlotAllocator, SlotId, WindowOperator};
use crate::cow::CowVec;

/// Slice positions a key's entry holds inline: the `size / slide + 1`
/// slices an active key has open, and room for events ahead or behind.
const RING: usize = 12;

/// No slice at this position.
const NONE: SlotId = SlotId::MAX;

/// A key's open slices, by slice number (`start / slide`). Almost every key
/// fits [`Slices::Inline`]: one cache line, found without a search (the hot
/// path is memory-bound). A key whose open slices lie further apart than
/// [`RING`] slides (an event far ahead of the others) spills to a sorted
/// list until it fits again.
#[derive(Debug, Clone)]
#[repr(align(64))]
enum Slices {
    /// Slice `first + i` is open in `slots[i]` unless that is [`NONE`].
    Inline { first: i64, slots: [SlotId; RING] },
    /// `(slice number, slot)`, sorted, more than [`RING`] apart.
    Spilled(Vec<(i64, SlotId)>),
}

const _: () = assert!(std::mem::size_of::<Slices>() == 64);

impl Default for Slices {
    fn default() -> Self {
        Slices::Inline {
            first: 0,
            slots: [NONE; RING],
        }
    }
}

impl Slices {
    #[inline]
    fn find(&self, q: i64) -> Option<SlotId> {
        match self {
            Slices::Inline { first, slots } => {
                let i = q.wrapping_sub(*first) as u64;
                let slot = *slots.get(usize::try_from(i).ok()?)?;
                (slot != NONE).then_some(slot)
            }
            Slices::Spilled(list) => list.binary_search_by_key(&q, |&(n, _)| n).ok().map(|i| list[i].1),
        }
    }

    /// `(slice number, slot)` of every open slice, in order.
    fn iter(&self) -> impl Iterator<Item = (i64, SlotId)> + '_ {
        let (inline, spilled) = match self {
            Slices::Inline { first, slots } => (Some((*first, slots)), None),
            Slices::Spilled(list) => (None, Some(list)),
        };
        let inline = inline
            .into_iter()
            .flat_map(|(first, slots)| (first..).zip(slots.iter().copied()).filter(|&(_, slot)| slot != NONE));
        inline.chain(spilled.into_iter().flatten().copied())
    }

    /// The slots of the open slices numbered `from..to`, in order.
    #[inline]
    fn range(&self, from: i64, to: i64) -> SliceRange<'_> {
        match self {
            Slices::Inline { first, slots } => {
                let at = |n: i64| n.saturating_sub(*first).clamp(0, RING as i64) as usize;
                SliceRange::Inline(slots[at(from)..at(to).max(at(from))].iter())
            }
            Slices::Spilled(list) => {
                let (a, b) = (
                    list.partition_point(|&(n, _)| n < from),
                    list.partition_point(|&(n, _)| n < to),
                );
                SliceRange::Spilled(list[a..b.max(a)].iter())
            }
        }
    }

    /// The open slices next to open slice `q`: the last before it and the
    /// first after it.
    fn neighbours(&self, q: i64) -> (Option<i64>, Option<i64>) {
        match self {
            Slices::Inline { first, slots } => {
                let i = (q - first) as usize;
                let before = slots[..i].iter().rposition(|&s| s != NONE);
                let after = slots[i + 1..].iter().position(|&s| s != NONE);
                (before.map(|j| first + j as i64), after.map(|j| q + 1 + j as i64))
            }
            Slices::Spilled(list) => {
                let i = list.partition_point(|&(n, _)| n < q);
                let before = i.checked_sub(1).map(|j| list[j].0);
                let after = list[i..].iter().map(|&(n, _)| n).find(|&n| n > q);
                (before, after)
            }
        }
    }

    /// Open slice `q` (not open yet) in `slot`.
    fn insert(&mut self, q: i64, slot: SlotId) {
        if let Slices::Inline { first, slots } = self {
            let open = slots.iter().position(|&s| s != NONE);
            let Some(lo) = open else {
                *first = q;
                slots[0] = slot;
                return;
            };
            let hi = slots.iter().rposition(|&s| s != NONE).unwrap_or(lo);
            let (lo, hi) = (*first + lo as i64, *first + hi as i64);
            let (new_lo, new_hi) = (lo.min(q), hi.max(q));
            if new_hi.checked_sub(new_lo).is_some_and(|span| span < RING as i64) {
                let mut moved = [NONE; RING];
                for n in lo..=hi {
                    moved[(n - new_lo) as usize] = slots[(n - *first) as usize];
                }
                moved[(q - new_lo) as usize] = slot;
                *first = new_lo;
                *slots = moved;
                return;
            }
            *self = Slices::Spilled(self.iter().collect());
        }
        if let Slices::Spilled(list) = self {
            let at = list.partition_point(|&(n, _)| n < q);
            list.insert(at, (q, slot));
        }
    }

    /// Close the slices numbered `..=q`, handing their slots to `out`.
    fn drain_to(&mut self, q: i64, out: &mut Vec<SlotId>) {
        match self {
            Slices::Inline { first, slots } => {
                let end = q.saturating_sub(*first).saturating_add(1).clamp(0, RING as i64) as usize;
                for slot in &mut slots[..end] {
                    if *slot != NONE {
                        out.push(std::mem::replace(slot, NONE));
                    }
                }
            }
            Slices::Spilled(list) => {
                let done = list.partition_point(|&(n, _)| n <= q);
                out.extend(list.drain(..done).map(|(_, slot)| slot));
                let fits = match (list.first(), list.last()) {
                    (Some(&(lo, _)), Some(&(hi, _))) => hi - lo < RING as i64,
                    _ => true,
                };
                if fits {
                    let mut inline = Slices::default();
                    for &(n, slot) in list.iter() {
                        inline.insert(n, slot);
                    }
                    *self = inline;
                }
            }
        }
    }
}

/// The slots of a [`Slices::range`].
enum SliceRange<'a> {
    Inline(std::slice::Iter<'a, SlotId>),
    Spilled(std::slice::Iter<'a, (i64, SlotId)>),
}

impl Iterator for SliceRange<'_> {
    type Item = SlotId;

    #[inline]
    fn next(&mut self) -> Option<SlotId> {
        match self {
            SliceRange::Inline(slots) => slots.find(|&&s| s != NONE).copied(),
            SliceRange::Spilled(list) => list.next().map(|&(_, slot)| slot),
        }
    }
}

#[derive(Debug)]
pub struct Sliding {
    size: i64,
    slide: i64,
    /// Open slices per key, sorted by start; at most `size / slide + 1` or so
    /// (a few more while events are out of order), so a linear scan is the
    /// fastest lookup. Inline, so that finding a key's slice costs one
    /// cache miss instead of two (the hot path is memory-bound).
    keys: CowVec<Slices>,
    /// Window end → keys with a window ending there. Ends are multiples of
    /// `slide`, so this stays small: one entry per slide of event time.
    fire_index: BTreeMap<i64, Vec<KeyId>>,
    slots: SlotAllocator,
}

impl Sliding {
    /// `size` must be a positive multiple of `slide` (validated with the
    /// plugin's declaration).
    pub fn new(size: i64, slide: i64) -> Self {
        assert!(slide > 0 && size > 0 && size % slide == 0);
        Self {
            size,
            slide,
            keys: CowVec::new(),
            fire_index: BTreeMap::new(),
            slots: SlotAllocator::default(),
        }
    }

    fn key_slices(&mut self, key: KeyId) -> &mut Slices {
        let k = key as usize;
        if k >= self.keys.len() {
            self.keys.resize_with(k + 1, Slices::default);
        }
        &mut self.keys[k]
    }

    /// Register the not-yet-fired windows covering a new slice at `start`,
    /// unless another slice of the key already registered them.
    fn register(&mut self, key: KeyId, q: i64, watermark: i64) {
        let per_window = self.size / self.slide;
        let (before, after) = self.keys[key as usize].neighbours(q);
        // The windows ending at slices q + 1 ..= q + per_window cover
        // slice q; each covers the slices `last - per_window .. last`.
        for last in q + 1..=q + per_window {
            let end = last * self.slide;
            let covered = before.is_some_and(|n| n >= last - per_window) || after.is_some_and(|n| n < last);
            if end - 1 > watermark && !covered {
                self.fire_index.entry(end).or_default().push(key);
            }
        }
    }
}

impl WindowOperator for Sliding {
    #[inline]
    fn assign(&mut self, key: KeyId, time_ms: i64, watermark: i64) -> Assign {
        let q = time_ms.div_euclid(self.slide);
        // The last window covering this slice ends at start + size.
        if q * self.slide + self.size - 1 <= watermark {
            return Assign::Late;
        }
        let slices = self.key_slices(key);
        if let Some(slot) = slices.find(q) {
            return Assign::Slot(slot);
        }
        let slot = self.slots.allocate();
        self.keys[key as usize].insert(q, slot);
        self.register(key, q, watermark);
        Assign::Slot(slot)
    }

    #[inline]
    fn next_fire(&self) -> i64 {
        self.fire_index.first_key_value().map_or(i64::MAX, |(end, _)| end - 1)
    }

    fn advance(&mut self, watermark: i64, out: &mut Fired, limit: usize) {
        while let Some(entry) = self.fire_index.first_entry() {
            let end = *entry.key();
            if end - 1 > watermark || out.windows.len() >= limit {
                break;
            }
            let keys = entry.remove();
            let start = end - self.size;
            let (first, last) = (start / self.slide, end / self.slide);
            for key in keys {
                let slices = &mut self.keys[key as usize];
                out.push(key, start, end, slices.range(first, last));
                // Slices no later window covers: start <= end - size.
                slices.drain_to(first, &mut out.released);
                if slices.iter().next().is_none() {
                    out.idle.push(key);
                }
            }
        }
    }

    fn fires_share_slots(&self) -> bool {
        self.size != self.slide
    }

    fn capture(&self) -> Box<dyn Parts> {
        Box::new(SlidingParts {
            slide: self.slide,
            keys: self.keys.clone(),
        })
    }

    fn restore(&mut self, key: KeyId, start: i64, _end: i64, states: usize, watermark: i64) -> Vec<SlotId> {
        debug_assert_eq!(states, 1);
        let slot = self.slots.allocate();
        let q = start.div_euclid(self.slide);
        self.key_slices(key).insert(q, slot);
        self.register(key, q, watermark);
        vec![slot]
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
        self.keys.get(key as usize)?.find(time_ms.div_euclid(self.slide))
    }

    fn release(&mut self, slots: &[SlotId]) {
        self.slots.release_all(slots);
    }

    fn key_is_idle(&self, key: KeyId) -> bool {
        // No open slice means no window to fire either: a key's windows are
        // registered with its slices and a slice closes with its last window.
        self.keys.get(key as usize).is_none_or(|s| s.iter().next().is_none())
    }

    fn forget_key(&mut self, key: KeyId) {
        // An idle inline entry is as good as a new one: write (and copy a
        // chunk a checkpoint shares) only to free a spilled list.
        if let Some(s @ Slices::Spilled(_)) = self.keys.get(key as usize) {
            debug_assert!(s.iter().next().is_none());
            self.keys[key as usize] = Slices::default();
        }
    }
}

/// The open slices of a [`Sliding`] at one moment: one part per slice.
struct SlidingParts {
    slide: i64,
    keys: CowVec<Slices>,
}

impl Parts for SlidingParts {
    fn visit(&self, out: &mut super::SnapshotVisitor<'_>) {
        for (key, slices) in self.keys.iter().enumerate() {
            for (n, slot) in slices.iter() {
                let start = n * self.slide;
                out(key as KeyId, start, start + self.slide, &[slot]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn fire(op: &mut Sliding, wm: i64) -> Vec<(KeyId, i64, i64, Vec<SlotId>)> {
        let mut out = Fired::default();
        op.advance(wm, &mut out, usize::MAX);
        op.release(&out.released);
        out.windows
            .iter()
            .map(|w| (w.key, w.start, w.end, out.slots_of(w).to_vec()))
            .collect()
    }

    #[test]
    fn one_event_fires_six_windows_in_order() {
        let mut op = Sliding::new(60 * MIN, 10 * MIN);
        let Assign::Slot(slot) = op.assign(0, 65 * MIN, i64::MIN) else {
            panic!("not late")
        };
        let fired = fire(&mut op, i64::MAX);
        let ends: Vec<i64> = fired.iter().map(|f| f.2 / MIN).collect();
        assert_eq!(ends, vec![70, 80, 90, 100, 110, 120]);
        assert!(fired.iter().all(|f| f.3 == vec![slot]));
        assert_eq!(op.slots().live(), 0);
    }

    #[test]
    fn window_fires_at_end_minus_one_and_end_is_exclusive() {
        let mut op = Sliding::new(60 * MIN, 10 * MIN);
        op.assign(0, 0, i64::MIN);
        assert!(fire(&mut op, 10 * MIN - 2).is_empty());
        let fired = fire(&mut op, 10 * MIN - 1);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].1, fired[0].2), (-50 * MIN, 10 * MIN));
        // An event at exactly 10 min belongs to later windows only.
        let Assign::Slot(s) = op.assign(0, 10 * MIN, 10 * MIN - 1) else {
            panic!()
        };
        let fired = fire(&mut op, 20 * MIN - 1);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].3.len(), 2);
        assert!(fired[0].3.contains(&s));
    }

    #[test]
    fn late_only_when_every_window_fired() {
        let mut op = Sliding::new(60 * MIN, 10 * MIN);
        op.assign(0, 0, i64::MIN);
        fire(&mut op, 55 * MIN);
        // Slice [0, 10) is covered by windows ending 10..60; 60 - 1 > 55 min.
        assert!(matches!(op.assign(1, 5 * MIN, 55 * MIN), Assign::Slot(_)));
        let fired = fire(&mut op, 60 * MIN - 1);
        // Key 1 only joins the windows that had not fired: the one ending at 60.
        assert_eq!(fired.iter().filter(|f| f.0 == 1).count(), 1);
        assert_eq!(op.assign(1, 5 * MIN, 60 * MIN - 1), Assign::Late);
    }

    #[test]
    fn slices_spill_when_far_apart_and_come_back_inline_when_drained() {
        let mut s = Slices::default();
        let all = |s: &Slices| s.iter().collect::<Vec<_>>();
        s.insert(-3, 1);
        s.insert(-5, 2);
        s.insert(4, 3);
        assert!(matches!(s, Slices::Inline { .. }));
        assert_eq!(all(&s), vec![(-5, 2), (-3, 1), (4, 3)]);
        // -5 ..= 7 is 13 slices: more than the ring holds.
        s.insert(7, 4);
        assert!(matches!(s, Slices::Spilled(_)));
        // Spilled, a slice between the others goes in its place.
        s.insert(0, 7);
        assert_eq!(all(&s), vec![(-5, 2), (-3, 1), (0, 7), (4, 3), (7, 4)]);
        assert_eq!((s.find(4), s.find(5), s.find(-5)), (Some(3), None, Some(2)));
        assert_eq!(s.range(-3, 7).collect::<Vec<_>>(), vec![1, 7, 3]);
        let mut out = Vec::new();
        s.drain_to(-4, &mut out);
        assert_eq!(out, vec![2]);
        assert!(matches!(s, Slices::Inline { .. }));
        assert_eq!(all(&s), vec![(-3, 1), (0, 7), (4, 3), (7, 4)]);
        // An earlier slice shifts the ring; one past its end spills again.
        s.insert(-4, 5);
        assert_eq!(all(&s), vec![(-4, 5), (-3, 1), (0, 7), (4, 3), (7, 4)]);
        s.insert(i64::MAX / 2, 6);
        assert_eq!(s.find(i64::MAX / 2), Some(6));
        s.drain_to(7, &mut out);
        assert_eq!(out, vec![2, 5, 1, 7, 3, 4]);
        assert_eq!(all(&s), vec![(i64::MAX / 2, 6)]);
        assert!(matches!(s, Slices::Inline { .. }));
        s.drain_to(i64::MAX, &mut out);
        assert_eq!(all(&s), vec![]);
    }

    #[test]
    fn negative_times_align_down() {
        let mut op = Sliding::new(20, 10);
        op.assign(0, -5, i64::MIN);
        let fired = fire(&mut op, i64::MAX);
        assert_eq!(
            fired.iter().map(|f| (f.1, f.2)).collect::<Vec<_>>(),
            vec![(-20, 0), (-10, 10)]
        );
    }
}
