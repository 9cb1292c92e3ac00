//! Property tests: both operators against naive models that keep every event.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

/// Events as `(key, time)`, in arrival order, roughly ordered in time with
/// disorder up to `disorder` (so some events are late for a small bound).
fn events(max_keys: u32, span: i64) -> impl Strategy<Value = Vec<(KeyId, i64)>> {
    prop::collection::vec((0..max_keys, 0..span, any::<bool>()), 1..200).prop_map(move |raw| {
        let mut t = 0i64;
        raw.into_iter()
            .map(|(k, dt, back)| {
                // Mostly forward, sometimes back: exercises lateness.
                if back {
                    (k, (t - dt / 2).max(0))
                } else {
                    t += dt / 8;
                    (k, t)
                }
            })
            .collect()
    })
}

type Output = Vec<(KeyId, i64, i64, Vec<usize>)>;

/// Run an operator: returns every fired window with the event indices in it,
/// and the indices of late events.
fn run(op: &mut dyn WindowOperator, evs: &[(KeyId, i64)], bound: i64) -> (Output, Vec<usize>) {
    let mut contents: HashMap<SlotId, Vec<usize>> = HashMap::new();
    let mut out = Vec::new();
    let mut late = Vec::new();
    let mut wm = i64::MIN;
    let mut max_t = i64::MIN;
    let mut fired = Fired::default();
    let mut collect =
        |op: &mut dyn WindowOperator, wm: i64, contents: &mut HashMap<SlotId, Vec<usize>>, out: &mut Output| {
            // In chunks of a few windows, as the engine fires a large jump:
            // the chunks must add up to what the model fires at once.
            while op.next_fire() <= wm && op.next_fire() != i64::MAX {
                fired.clear();
                op.advance(wm, &mut fired, 3);
                for w in &fired.windows {
                    let mut evs: Vec<usize> = fired
                        .slots_of(w)
                        .iter()
                        .flat_map(|s| contents.get(s).cloned().unwrap_or_default())
                        .collect();
                    evs.sort();
                    out.push((w.key, w.start, w.end, evs));
                }
                for s in &fired.released {
                    contents.remove(s);
                }
                op.release(&fired.released);
            }
        };
    for (i, &(k, t)) in evs.iter().enumerate() {
        match op.assign(k, t, wm) {
            Assign::Slot(s) => contents.entry(s).or_default().push(i),
            Assign::Late => late.push(i),
        }
        max_t = max_t.max(t);
        let new_wm = wm.max(max_t - bound - 1);
        if new_wm != wm {
            wm = new_wm;
            if op.next_fire() <= wm {
                collect(op, wm, &mut contents, &mut out);
            }
        }
    }
    collect(op, i64::MAX, &mut contents, &mut out);
    assert_eq!(op.slots().live(), 0, "every slot released at the end");
    out.sort();
    (out, late)
}

fn naive_sliding(evs: &[(KeyId, i64)], size: i64, slide: i64, bound: i64) -> (Output, Vec<usize>) {
    let mut windows: BTreeMap<(KeyId, i64), Vec<usize>> = BTreeMap::new();
    let mut late = Vec::new();
    let mut wm = i64::MIN;
    let mut max_t = i64::MIN;
    for (i, &(k, t)) in evs.iter().enumerate() {
        let last_start = t - t.rem_euclid(slide);
        let mut added = false;
        for n in 0..size / slide {
            let start = last_start - n * slide;
            if start + size - 1 > wm {
                windows.entry((k, start)).or_default().push(i);
                added = true;
            }
        }
        if !added {
            late.push(i);
        }
        max_t = max_t.max(t);
        wm = wm.max(max_t - bound - 1);
    }
    let out = windows
        .into_iter()
        .map(|((k, s), evs)| (k, s, s + size, evs))
        .collect::<Vec<_>>();
    let mut out = out;
    out.sort();
    (out, late)
}

fn naive_sessions(evs: &[(KeyId, i64)], gap: i64, bound: i64) -> (Output, Vec<usize>) {
    let mut open: Vec<(KeyId, i64, i64, Vec<usize>)> = Vec::new();
    let mut out = Vec::new();
    let mut late = Vec::new();
    let mut wm = i64::MIN;
    let mut max_t = i64::MIN;
    for (i, &(k, t)) in evs.iter().enumerate() {
        // Fire everything due at the current watermark.
        let (due, keep): (Vec<_>, Vec<_>) = open.into_iter().partition(|w| w.2 - 1 <= wm);
        out.extend(due);
        open = keep;
        let (mut start, mut end, mut members) = (t, t + gap, vec![i]);
        let mut merged_any = false;
        loop {
            let pos = open.iter().position(|w| w.0 == k && w.2 >= start && w.1 <= end);
            let Some(pos) = pos else { break };
            let w = open.remove(pos);
            start = start.min(w.1);
            end = end.max(w.2);
            members.extend(w.3);
            merged_any = true;
        }
        if !merged_any && end - 1 <= wm {
            late.push(i);
        } else {
            members.sort();
            open.push((k, start, end, members));
        }
        max_t = max_t.max(t);
        wm = wm.max(max_t - bound - 1);
    }
    out.extend(open);
    out.sort();
    (out, late)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sliding_matches_naive_model(evs in events(4, 400), bound in 0i64..60) {
        let (size, slide) = (100, 20);
        let mut op = Sliding::new(size, slide);
        prop_assert_eq!(run(&mut op, &evs, bound), naive_sliding(&evs, size, slide, bound));
    }

    #[test]
    fn sliding_with_many_slices_per_window_matches_naive_model(evs in events(4, 400), bound in 0i64..60) {
        // 25 slices per window, events up to 50 slices apart: keys spill
        // out of the inline ring and come back.
        let (size, slide) = (100, 4);
        let mut op = Sliding::new(size, slide);
        prop_assert_eq!(run(&mut op, &evs, bound), naive_sliding(&evs, size, slide, bound));
    }

    #[test]
    fn tumbling_matches_naive_model(evs in events(3, 300), bound in 0i64..40) {
        let mut op = Sliding::new(50, 50);
        prop_assert_eq!(run(&mut op, &evs, bound), naive_sliding(&evs, 50, 50, bound));
    }

    #[test]
    fn sessions_match_naive_model(evs in events(4, 400), bound in 0i64..60, gap in 1i64..80) {
        let mut op = Sessions::new(gap);
        prop_assert_eq!(run(&mut op, &evs, bound), naive_sessions(&evs, gap, bound));
    }
}
