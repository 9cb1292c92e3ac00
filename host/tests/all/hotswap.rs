//! Hot swap: new plugin versions deployed into a running engine keep the
//! view's state; incompatible ones are refused while the old version runs
//! on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
                "gen",
                "--events",
                "3000000",
                "--users",
                "2000",
                "--event-rate",
                "150",
                "--seed",
                "5",
                "--out",
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
