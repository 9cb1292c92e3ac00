//! Engine unit tests, with real plugins: components built from
//! `guest-features/` (`make guests`); a missing one fails with the command
//! to run.

use std::sync::Arc;

use super::*;
use crate::plugin::Value;
use crate::plugin::{Limits, PluginEngine};
use crate::state::format::EngineSnapshot;

/// A built guest component, by package name (`user-activity`).
pub(crate) fn guest(package: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/wasm")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: build the guests first with `make guests`",
        path.display()
    );
    path
}

fn engine_with(
    plugin: &str,
) -> (
    Engine,
    PluginEngine,
    Arc<std::sync::Mutex<Vec<crate::sink::FeatureRecord>>>,
) {
    #[derive(Clone)]
    struct Collect(Arc<std::sync::Mutex<Vec<crate::sink::FeatureRecord>>>);
    impl crate::sink::Sink for Collect {
        fn write(&mut self, r: &[crate::sink::FeatureRecord]) -> Result<(), crate::sink::SinkError> {
            self.0.lock().unwrap().extend_from_slice(r);
            Ok(())
        }
    }
    let records = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pe = PluginEngine::new().unwrap();
    let mut engine = Engine::new(EngineConfig::default(), Box::new(Collect(records.clone())));
    engine
        .add_view(Arc::new(pe.load_file(&guest(plugin), Limits::default()).unwrap()))
        .unwrap();
    (engine, pe, records)
}

fn feed(engine: &mut Engine, from: i64, n: i64) {
    for i in from..from + n {
        let line = format!(
            "{{\"event_time\":{},\"event_type\":\"view\",\"user_id\":\"u{}\",\"price\":2.0}}",
            1_704_067_200_000 + i * 1000,
            i % 4
        );
        engine
            .process_record(
                Position {
                    partition: 0,
                    offset: i as u64,
                },
                line.as_bytes(),
                0,
            )
            .unwrap();
    }
}

#[test]
fn a_jump_that_fires_more_than_a_chunk_fires_every_window_once_in_order() {
    let (mut engine, _pe, records) = engine_with("session-stats");
    // 100 000 keys with one event each: the end of the input fires 100 000
    // sessions at once, more than one chunk of a view's firing (65 536).
    let n = 100_000u64;
    for i in 0..n {
        let line = format!(
            "{{\"event_time\":{},\"event_type\":\"view\",\"user_id\":\"k{i}\",\"price\":1.0}}",
            1_704_067_200_000 + (i % 1000) as i64
        );
        let pos = Position {
            partition: 0,
            offset: i,
        };
        engine.process_record(pos, line.as_bytes(), 0).unwrap();
    }
    engine.finish().unwrap();
    let recs = records.lock().unwrap();
    assert_eq!(recs.len(), n as usize);
    let keys: std::collections::HashSet<&str> = recs.iter().map(|r| r.entity()).collect();
    assert_eq!(keys.len(), n as usize, "every key's session fired exactly once");
    assert!(
        recs.windows(2).all(|w| w[0].window_end <= w[1].window_end),
        "sessions fire in the order of their ends, across chunks"
    );
}

#[test]
fn a_new_state_version_is_migrated_or_refused() {
    let (mut engine, pe, records) = engine_with("user-activity");
    feed(&mut engine, 0, 100);
    // v3 has state version 2 and migrates from 1: the states carry over.
    let v3 = Arc::new(pe.load_file(&guest("v3-user-activity"), Limits::default()).unwrap());
    let rec = engine.deploy(v3.clone(), v3.instantiate().unwrap(), false);
    assert_eq!(rec.outcome, SwapOutcome::Migrated, "{rec:?}");
    feed(&mut engine, 100, 100);
    // Back to v1 (state version 1): v1 cannot migrate from 2 -> refused, v3 runs on.
    let v1 = Arc::new(pe.load_file(&guest("user-activity"), Limits::default()).unwrap());
    let rec = engine.deploy(v1.clone(), v1.instantiate().unwrap(), false);
    assert_eq!(rec.outcome, SwapOutcome::Refused, "{rec:?}");
    assert!(
        rec.reason.contains("cannot migrate") && rec.reason.contains("reset"),
        "{}",
        rec.reason
    );
    assert_eq!(engine.views()[0].plugin().declaration.version, v3.declaration.version);
    engine.finish().unwrap();
    // Every event counted once across the migration: 200 views, 50 per user,
    // in the window that holds all of them.
    let recs = records.lock().unwrap();
    let total: i64 = recs
        .iter()
        .filter(|r| r.window_start == 1_704_067_200_000 - 3_000_000)
        .map(|r| match r.values[1] {
            Value::Integer(n) => n,
            _ => panic!(),
        })
        .sum();
    assert_eq!(total, 200);
    let history: Vec<&str> = engine.history().iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(history, vec!["migrated", "refused"]);
}

#[test]
fn reset_drops_the_state_explicitly() {
    let (mut engine, pe, records) = engine_with("v3-user-activity");
    feed(&mut engine, 0, 40);
    let v1 = Arc::new(pe.load_file(&guest("user-activity"), Limits::default()).unwrap());
    let rec = engine.deploy(v1.clone(), v1.instantiate().unwrap(), true);
    assert_eq!(rec.outcome, SwapOutcome::Reset);
    feed(&mut engine, 40, 40);
    engine.finish().unwrap();
    let total: i64 = records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.window_start == 1_704_067_200_000 - 3_000_000)
        .map(|r| match r.values[1] {
            Value::Integer(n) => n,
            _ => panic!(),
        })
        .sum();
    assert_eq!(total, 40, "only the events after the reset");
}

#[test]
fn a_failing_new_version_is_rolled_back_to_the_previous_one() {
    let (mut engine, pe, records) = engine_with("user-activity");
    feed(&mut engine, 0, 10);
    let bad = Arc::new(pe.load_file(&guest("bad-user-activity"), Limits::default()).unwrap());
    assert_eq!(
        engine.deploy(bad.clone(), bad.instantiate().unwrap(), false).outcome,
        SwapOutcome::Swapped
    );
    // Three batches in a row with a poison event: three failures.
    for i in 0..3i64 {
        let line = format!(
            "{{\"event_time\":{},\"event_type\":\"poison\",\"user_id\":\"u0\",\"price\":1}}",
            1_704_067_210_000 + i
        );
        engine
            .process_record(
                Position {
                    partition: 0,
                    offset: 100 + i as u64,
                },
                line.as_bytes(),
                0,
            )
            .unwrap();
        engine.flush().unwrap();
    }
    let view = &engine.views()[0];
    assert_eq!(view.plugin().declaration.version, "0.1.0", "rolled back to v1");
    assert!(view.disabled.is_none());
    assert!(
        engine.history().iter().any(|r| r.outcome == SwapOutcome::RolledBack),
        "{:?}",
        engine.history()
    );
    // The rolled-back view keeps serving.
    feed(&mut engine, 20, 10);
    engine.finish().unwrap();
    assert!(!records.lock().unwrap().is_empty());
}

/// Events for `users` users over two hours, with disorder, as JSON lines.
fn lines(users: u64, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let jitter = (i * 7919 % 9000) as i64;
            format!(
                "{{\"event_time\":{},\"event_type\":\"{}\",\"user_id\":\"u{}\",\"price\":{}.5}}",
                1_704_067_200_000 + i as i64 * 7_200_000 / n as i64 - jitter,
                ["view", "view", "cart", "purchase"][(i % 4) as usize],
                i * 31 % users,
                i % 50
            )
        })
        .collect()
}

/// One output record: (key, start, end, values).
type Fired = (String, i64, i64, String);

/// Every record as (key, start, end, values), sorted: the output as a set.
fn fired(records: &[FeatureRecord]) -> Vec<Fired> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| {
            let mut v = String::new();
            for x in &r.values {
                x.write_json(&mut v);
                v.push(',');
            }
            (r.key.clone(), r.window_start, r.window_end, v)
        })
        .collect();
    out.sort();
    out
}

fn replay_with_batch(batch_size: usize, lines: &[String], blocks: bool) -> Vec<(String, i64, i64, String)> {
    let (mut engine, pe, records) = engine_with("user-activity");
    engine.cfg.batch_size = batch_size;
    engine
        .add_view(Arc::new(
            pe.load_file(&guest("session-stats"), Limits::default()).unwrap(),
        ))
        .unwrap();
    if blocks {
        let raw: Vec<(u64, &[u8])> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, l.as_bytes()))
            .collect();
        for block in raw.chunks(crate::source::BLOCK) {
            engine.process_lines(0, block, 0).unwrap();
        }
    } else {
        for (i, l) in lines.iter().enumerate() {
            let pos = Position {
                partition: 0,
                offset: i as u64 + 1,
            };
            engine.process_record(pos, l.as_bytes(), 0).unwrap();
        }
    }
    engine.finish().unwrap();
    let recs = records.lock().unwrap();
    fired(&recs)
}

#[test]
fn the_output_is_the_same_at_every_batch_size_and_block_shape() {
    let events = lines(37, 3_000);
    let reference = replay_with_batch(1, &events, false);
    assert!(reference.len() > 200, "few windows fired: {}", reference.len());
    for batch in [2, 7, 64, 1024, 100_000] {
        for blocks in [false, true] {
            assert_eq!(
                replay_with_batch(batch, &events, blocks),
                reference,
                "batch size {batch}, blocks {blocks}"
            );
        }
    }
}

/// A snapshot of user-activity with some open windows.
fn snapshot() -> (EngineSnapshot, PluginEngine) {
    let (mut engine, pe, _) = engine_with("user-activity");
    feed(&mut engine, 0, 40);
    (engine.snapshot().unwrap(), pe)
}

#[test]
fn a_snapshot_restores_into_the_same_plugin() {
    let (snap, _pe) = snapshot();
    let parts = snap.views[0].parts;
    assert!(parts > 0);
    let (mut engine, _pe, _) = engine_with("user-activity");
    engine.restore(&snap, 0).unwrap();
    assert_eq!(engine.views()[0].open_states() as u64, parts);
    assert_eq!(engine.watermark(), snap.watermark);
}

#[test]
fn a_restore_into_another_window_is_refused() {
    let (mut snap, _pe) = snapshot();
    snap.views[0].plugin.window = crate::plugin::WindowSpec::Session { gap_ms: 600_000 };
    let (mut engine, _pe, _) = engine_with("user-activity");
    let err = engine.restore(&snap, 0).unwrap_err().to_string();
    assert!(err.contains("a new window is a new view"), "{err}");
}

#[test]
fn a_restore_of_a_state_version_the_plugin_cannot_migrate_is_refused() {
    let (mut snap, _pe) = snapshot();
    snap.views[0].plugin.state_version = 9;
    let (mut engine, _pe, _) = engine_with("user-activity");
    let err = engine.restore(&snap, 0).unwrap_err().to_string();
    assert!(
        err.contains("state version 9") && err.contains("cannot migrate"),
        "{err}"
    );
}

#[test]
fn a_damaged_chunk_is_refused_with_its_reason() {
    let (mut snap, _pe) = snapshot();
    let chunk = &mut snap.views[0].chunks[0];
    chunk.truncate(chunk.len() - 3);
    let (mut engine, _pe, _) = engine_with("user-activity");
    let err = engine.restore(&snap, 0).unwrap_err().to_string();
    assert!(
        err.contains("damaged state chunk") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn deploying_the_same_plugin_again_changes_nothing() {
    let (mut engine, pe, _) = engine_with("user-activity");
    let again = Arc::new(pe.load_file(&guest("user-activity"), Limits::default()).unwrap());
    let rec = engine.deploy(again.clone(), again.instantiate().unwrap(), false);
    assert_eq!(rec.outcome, SwapOutcome::Unchanged, "{rec:?}");
}

#[test]
fn deploy_records_carry_the_engines_time_not_the_clock() {
    let (mut engine, pe, _) = engine_with("user-activity");
    engine.set_now(42);
    let other = Arc::new(pe.load_file(&guest("session-stats"), Limits::default()).unwrap());
    let rec = engine.deploy(other.clone(), other.instantiate().unwrap(), false);
    assert_eq!(rec.outcome, SwapOutcome::Added);
    assert_eq!(rec.at_ms, 42);
    assert_eq!(engine.views()[1].loaded_since_ms, 42);
}

#[test]
fn a_rebuilt_engine_keeps_plugins_and_counters_but_no_state() {
    let (mut engine, _pe, _) = engine_with("user-activity");
    feed(&mut engine, 0, 10);
    engine.flush().unwrap();
    assert!(engine.views()[0].open_states() > 0);
    let events = engine.stats.events;
    let engine = engine.rebuild().unwrap();
    assert_eq!(engine.views().len(), 1);
    assert_eq!(engine.views()[0].open_states(), 0);
    assert_eq!(engine.stats.events, events);
    assert_eq!(engine.watermark(), crate::time::MIN_WATERMARK);
}

/// A quiet stream: three events, then nothing for 11 minutes of wall time.
fn quiet_stream(mode: crate::time::IdleWatermark) -> (usize, u64) {
    let (mut engine, _pe, records) = engine_with("session-stats");
    engine.cfg.idle_timeout_ms = Some(30_000);
    engine.watermarks = crate::time::Watermarks::new(10_000, Some(30_000)).with_idle_watermark(mode);
    engine.add_partition(0, 0);
    for i in 0..3u64 {
        let line = format!(
            "{{\"event_time\":{},\"event_type\":\"view\",\"user_id\":\"u1\",\"price\":1.0}}",
            1_704_067_200_000 + i as i64 * 1000
        );
        let pos = Position {
            partition: 0,
            offset: i,
        };
        engine.process_record(pos, line.as_bytes(), 0).unwrap();
    }
    for wall in (0..=11 * 60_000).step_by(10_000) {
        engine.check_idle(wall).unwrap();
    }
    engine.flush().unwrap();
    let n = records.lock().unwrap().len();
    (n, engine.stats.wall_clock_advances)
}

#[test]
fn a_quiet_streams_session_closes_only_with_the_wall_clock_watermark() {
    let (held, advances) = quiet_stream(crate::time::IdleWatermark::Hold);
    assert_eq!((held, advances), (0, 0), "hold: the session stays open");
    let (closed, advances) = quiet_stream(crate::time::IdleWatermark::WallClock);
    assert_eq!(closed, 1, "wall-clock: the 10-minute gap passed in wall time");
    assert!(advances > 0);
}

/// Users who come for a few minutes and never return, over eight hours:
/// user `n` sends 30 events, one every 10 s, starting at `n` minutes, some
/// out of order; 2 % of events are late (two hours old), some keys are
/// long (kept outside the key table's entries).
fn churn_lines(users: u64) -> Vec<String> {
    let mut events: Vec<(i64, String)> = Vec::new();
    for u in 0..users {
        let name = if u % 13 == 0 {
            format!("a-user-with-a-long-id-{u}")
        } else {
            format!("u{u}")
        };
        for e in 0..30u64 {
            let mut t = 1_704_067_200_000 + u as i64 * 60_000 + e as i64 * 10_000;
            let arrive = t;
            if (u * 31 + e) % 50 == 0 {
                t -= 7_200_000;
            } else if e % 7 == 3 {
                t -= 8_000;
            }
            events.push((
                arrive,
                format!(
                    "{{\"event_time\":{t},\"event_type\":\"{}\",\"user_id\":\"{name}\",\"price\":{}.25}}",
                    ["view", "view", "cart", "purchase"][(e % 4) as usize],
                    e % 40
                ),
            ));
        }
        if u % 5 == 0 {
            // Back 80 minutes after leaving, with an event three hours old:
            // late everywhere, for a key whose windows have all fired (the
            // session's may still wait to be finished in its batch).
            let arrive = 1_704_067_200_000 + u as i64 * 60_000 + 290_000 + 4_800_000;
            events.push((
                arrive,
                format!(
                    "{{\"event_time\":{},\"event_type\":\"view\",\"user_id\":\"{name}\",\"price\":1.0}}",
                    arrive - 10_800_000
                ),
            ));
        }
    }
    events.sort_by_key(|(arrive, _)| *arrive);
    events.into_iter().map(|(_, l)| l).collect()
}

/// Replay `lines` in blocks through user-activity and session-stats (one
/// key table), reclaiming after every `reclaim_batch` idle keys; with
/// `checkpoint_at` (a line number at a block boundary), snapshot there and
/// go on in a fresh engine restored from it. Returns the output as a set,
/// the keys reclaimed, and the ids the last engine's key table handed out.
fn replay_churn(
    lines: &[String],
    batch_size: usize,
    reclaim_batch: usize,
    checkpoint_at: Option<usize>,
) -> (Vec<Fired>, u64, usize) {
    let make = || {
        let (mut engine, pe, records) = engine_with("user-activity");
        engine.cfg.batch_size = batch_size;
        engine.reclaim_batch = reclaim_batch;
        engine
            .add_view(Arc::new(
                pe.load_file(&guest("session-stats"), Limits::default()).unwrap(),
            ))
            .unwrap();
        (engine, pe, records)
    };
    let raw: Vec<(u64, &[u8])> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.as_bytes()))
        .collect();
    let (cut, rest) = raw.split_at(checkpoint_at.unwrap_or(raw.len()));
    let (mut engine, _pe, records) = make();
    for block in cut.chunks(crate::source::BLOCK) {
        engine.process_lines(0, block, 0).unwrap();
    }
    let mut reclaimed = 0;
    let (mut engine, _pe, records) = if checkpoint_at.is_some() {
        let snap = engine.snapshot().unwrap();
        reclaimed += engine.reclaimed_keys();
        let (mut fresh, pe, fresh_records) = make();
        fresh.restore(&snap, 0).unwrap();
        fresh_records.lock().unwrap().extend(records.lock().unwrap().drain(..));
        (fresh, pe, fresh_records)
    } else {
        (engine, _pe, records)
    };
    for block in rest.chunks(crate::source::BLOCK) {
        engine.process_lines(0, block, 0).unwrap();
    }
    engine.finish().unwrap();
    let recs = records.lock().unwrap();
    assert_eq!(engine.live_keys(), 0, "the end fires every window and frees every key");
    (
        fired(&recs),
        reclaimed + engine.reclaimed_keys(),
        engine.keys[0].id_bound(),
    )
}

/// Outputs as sets, equal; on a difference, the first one (not both sets).
fn same_output(out: &[Fired], reference: &[Fired], what: &str) {
    if out != reference {
        let first = out
            .iter()
            .zip(reference)
            .position(|(a, b)| a != b)
            .unwrap_or(out.len().min(reference.len()));
        panic!(
            "{what}: {} records against {}; first difference at {first}: {:?} against {:?}",
            out.len(),
            reference.len(),
            out.get(first),
            reference.get(first)
        );
    }
}

#[test]
fn reclaiming_idle_keys_changes_no_output_and_bounds_the_key_table() {
    let users = 480;
    let events = churn_lines(users);
    // Reclaiming only at the end: the reference, every key kept.
    let (reference, _, all_ids) = replay_churn(&events, 1024, usize::MAX, None);
    assert!(
        reference.len() > 2 * users as usize,
        "few windows fired: {}",
        reference.len()
    );
    assert_eq!(all_ids, users as usize, "without reclaiming every user keeps an id");
    for batch_size in [1, 7, 1024, 100_000] {
        let (out, reclaimed, ids) = replay_churn(&events, batch_size, 1, None);
        same_output(&out, &reference, &format!("batch size {batch_size}"));
        // A user whose first event is late is reclaimed, then seen again.
        assert!(
            reclaimed >= users,
            "every user is reclaimed by the end (batch size {batch_size})"
        );
        // About 80 users are open at once: 5 active minutes, then 70 until
        // the last sliding window fires. (A batch that never fills keeps
        // its fired sessions, and so their keys, until the end.)
        if batch_size <= 1024 {
            assert!(ids < 120, "ids are reused: {ids} handed out (batch size {batch_size})");
        }
    }
    let half = events.len() / 2 / crate::source::BLOCK * crate::source::BLOCK;
    let (out, _, ids) = replay_churn(&events, 64, 1, Some(half));
    same_output(&out, &reference, "across a checkpoint");
    assert!(ids < 120, "ids after a restore: {ids}");
}
