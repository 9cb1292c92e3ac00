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

use smallvec::SmallVec;

use super::{Assign, Fired, KeyId, Parts, SlotAllocator, SlotId, WindowOperator, align};
use crate::cow::CowVec;

/// A key's open slices: `(start, slot)`, sorted by start.
type Slices = SmallVec<[(i64, SlotId); 8]>;

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
            self.keys.resize_with(k + 1, SmallVec::new);
        }
        &mut self.keys[k]
    }

    /// Register the not-yet-fired windows covering a new slice at `start`,
    /// unless another slice of the key already registered them.
    fn register(&mut self, key: KeyId, start: i64, watermark: i64) {
        let (size, slide) = (self.size, self.slide);
        let mut end = start + slide;
        while end <= start + size {
            if end - 1 > watermark {
                let slices = &self.keys[key as usize];
                let covered = slices.iter().any(|&(s, _)| s != start && s >= end - size && s < end);
                if !covered {
                    self.fire_index.entry(end).or_default().push(key);
                }
            }
            end += slide;
        }
    }
}

impl WindowOperator for Sliding {
    #[inline]
    fn assign(&mut self, key: KeyId, time_ms: i64, watermark: i64) -> Assign {
        let start = align(time_ms, self.slide);
        // The last window covering this slice ends at start + size.
        if start + self.size - 1 <= watermark {
            return Assign::Late;
        }
        let slices = self.key_slices(key);
        if let Some(&(_, slot)) = slices.iter().find(|(s, _)| *s == start) {
            return Assign::Slot(slot);
        }
        let slot = self.slots.allocate();
        let slices = &mut self.keys[key as usize];
        let at = slices.partition_point(|(s, _)| *s < start);
        slices.insert(at, (start, slot));
        self.register(key, start, watermark);
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
            for key in keys {
                let slices = &mut self.keys[key as usize];
                out.push(
                    key,
                    start,
                    end,
                    slices
                        .iter()
                        .filter(|(s, _)| *s >= start && *s < end)
                        .map(|&(_, slot)| slot),
                );
                // Slices no later window covers: start <= end - size.
                let done = slices.partition_point(|(s, _)| *s <= start);
                for (_, slot) in slices.drain(..done) {
                    out.released.push(slot);
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
        let slices = self.key_slices(key);
        let at = slices.partition_point(|(s, _)| *s < start);
        slices.insert(at, (start, slot));
        self.register(key, start, watermark);
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
        let start = align(time_ms, self.slide);
        let slices = self.keys.get(key as usize)?;
        slices.iter().find(|(s, _)| *s == start).map(|&(_, slot)| slot)
    }

    fn release(&mut self, slots: &[SlotId]) {
        self.slots.release_all(slots);
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
            for &(start, slot) in slices {
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
