//! Hot swap: new plugin versions deployed into a running engine keep the
//! view's state; incompatible ones are refused while the old version runs
//! on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use featherflow::engine::{Engine, EngineConfig, Position};
use featherflow::plugin::{Limits, PluginEngine};
use featherflow::sink::Value;

use crate::{featherflow, guest, run_ok};

type Windows = BTreeMap<(String, i64, i64), serde_json::Value>;

fn windows(out: &str) -> (Windows, usize) {
    let mut map = Windows::new();
    let mut n = 0;
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        map.insert(
            (
                v["key"].as_str().unwrap().to_string(),
                v["window_start"].as_i64().unwrap(),
                v["window_end"].as_i64().unwrap(),
            ),
            v["fields"].clone(),
        );
        n += 1;
    }
    (map, n)
}

/// Swap user-activity v1 <-> v2 (v2 reports the average + 1000) every
/// 300 ms (twice the watcher's debounce) during a replay of 3 M events. Every window is fired exactly once,
/// by whichever version was live: counts equal the v1-only run, averages
/// equal v1's or v1's + 1000, and both versions served.
#[test]
fn swapping_every_300ms_during_a_replay_of_millions_of_events_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    // 150 events/s of event time: 5.5 h, so windows fire at 33 slide boundaries.
    run_ok(
        featherflow()
            .args([
                "gen", "--events", "3000000", "--users", "2000", "--rate", "150", "--seed", "5", "--out",
            ])
            .arg(&events),
    );
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(guest("session-stats"), plugins.join("session-stats.wasm")).unwrap();
    std::fs::copy(guest("user-activity"), plugins.join("user-activity.wasm")).unwrap();

    let (reference, _) = run_ok(
        featherflow()
            .args(["replay", "--dead-letter", "", "--events"])
            .arg(&events)
            .arg("--plugins")
            .arg(&plugins),
    );
    let (reference, n_ref) = windows(&reference);

    let out_path = dir.path().join("swapped.jsonl");
    let child = featherflow()
        .args([
            "replay",
            "--watch",
            "--dead-letter",
            "",
            "--batch-size",
            "512",
            "--events",
        ])
        .arg(&events)
        .arg("--plugins")
        .arg(&plugins)
        .arg("--out")
        .arg(&out_path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Deploy the safe way: write beside, then rename over.
    let versions = [guest("v2-user-activity"), guest("user-activity")];
    let started = Instant::now();
    let mut swaps = 0;
    let pid = child.id();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(300));
        let tmp = plugins.join("user-activity.wasm.tmp");
        std::fs::copy(&versions[swaps % 2], &tmp).unwrap();
        std::fs::rename(&tmp, plugins.join("user-activity.wasm")).unwrap();
        swaps += 1;
        // Stop once the process is done (it becomes a zombie until waited).
        if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (swapped, n) = windows(&std::fs::read_to_string(&out_path).unwrap());
    assert_eq!(n, n_ref, "as many windows as without swaps (none doubled)");
    assert_eq!(
        swapped.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "the same windows"
    );
    let (mut v1, mut v2) = (0, 0);
    for (k, fields) in &reference {
        let got = &swapped[k];
        if k.0.starts_with("session_features") {
            assert_eq!(got, fields, "{k:?}");
            continue;
        }
        for f in ["view_count_1h", "cart_count_1h", "purchase_count_1h", "user_id"] {
            assert_eq!(got[f], fields[f], "{k:?} {f}");
        }
        let (a, b) = (
            fields["avg_viewed_price_1h"].as_f64().unwrap(),
            got["avg_viewed_price_1h"].as_f64().unwrap(),
        );
        if (b - a).abs() < 1e-9 {
            v1 += 1;
        } else if (b - a - 1000.0).abs() < 1e-6 {
            v2 += 1;
        } else {
            panic!("{k:?}: {b} is neither v1 ({a}) nor v2 ({})", a + 1000.0);
        }
    }
    let swapped_count = stderr.matches(" swapped:").count();
    assert!(
        swapped_count >= 2,
        "at least two swaps happened during the replay ({swaps} renames):\n{stderr}"
    );
    assert!(
        v1 > 0 && v2 > 0,
        "both versions served windows: v1 {v1}, v2 {v2}\n{stderr}"
    );
}

fn engine_with(
    plugin: &str,
) -> (
    Engine,
    PluginEngine,
    Arc<std::sync::Mutex<Vec<featherflow::sink::FeatureRecord>>>,
) {
    #[derive(Clone)]
    struct Collect(Arc<std::sync::Mutex<Vec<featherflow::sink::FeatureRecord>>>);
    impl featherflow::sink::Sink for Collect {
        fn write(&mut self, r: &[featherflow::sink::FeatureRecord]) -> Result<(), featherflow::sink::SinkError> {
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
    assert_eq!(rec.outcome, "migrated", "{rec:?}");
    feed(&mut engine, 100, 100);
    // Back to v1 (state version 1): v1 cannot migrate from 2 -> refused, v3 runs on.
    let v1 = Arc::new(pe.load_file(&guest("user-activity"), Limits::default()).unwrap());
    let rec = engine.deploy(v1.clone(), v1.instantiate().unwrap(), false);
    assert_eq!(rec.outcome, "refused", "{rec:?}");
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
    assert_eq!(rec.outcome, "reset");
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
        "swapped"
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
        engine.history().iter().any(|r| r.outcome == "rolled_back"),
        "{:?}",
        engine.history()
    );
    // The rolled-back view keeps serving.
    feed(&mut engine, 20, 10);
    engine.finish().unwrap();
    assert!(!records.lock().unwrap().is_empty());
}
