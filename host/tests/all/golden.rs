//! Golden tests: event files in, expected features out.
//!
//! `semantics.jsonl` is hand-written and its expected output hand-checked
//! against docs/semantics.md: out-of-order events within the bound, late events
//! (dropped only from fired windows), sessions that touch and merge,
//! sessions bridged by one event, an unknown event type, naive, `Z` and
//! `+09:00` timestamps, fractional seconds, epoch-millisecond times, an
//! integer `user_id`, a numeric-string price, extra fields, and every class
//! of bad record. `flink_edge_cases.*` is a hand-written edge-case file
//! with the Flink 1.19 job's own output for it.

use featherflow::testing::diff_jsonl;

use crate::{featherflow, golden, plugin_dir, run_ok};

fn replay(events: &std::path::Path, extra: &[&str]) -> (Vec<String>, String, String) {
    replay_with(&["user-activity", "session-stats"], events, extra)
}

fn replay_with(guests: &[&str], events: &std::path::Path, extra: &[&str]) -> (Vec<String>, String, String) {
    let plugins = plugin_dir(guests);
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let late = dir.path().join("late.jsonl");
    let (stdout, stderr) = run_ok(
        featherflow()
            .arg("replay")
            .arg("--events")
            .arg(events)
            .arg("--plugins")
            .arg(plugins.path())
            .arg("--out")
            .arg("-")
            .arg("--dead-letter")
            .arg(&dead)
            .arg("--late")
            .arg(&late)
            .args(extra),
    );
    let dead = std::fs::read_to_string(&dead).unwrap_or_default();
    let late = std::fs::read_to_string(&late).unwrap_or_default();
    let _ = stderr;
    (stdout.lines().map(str::to_string).collect(), dead, late)
}

#[test]
fn semantics_golden_file() {
    let (out, dead, late) = replay(&golden("semantics.jsonl"), &[]);
    let expected = std::fs::read_to_string(golden("semantics.expected.jsonl")).unwrap();
    let diff = diff_jsonl(&expected, &out);
    assert!(diff.is_empty(), "output differs from semantics.expected.jsonl:\n{diff}");

    // Every bad line is in the dead-letter file with its reason and line number.
    let dead: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let lines: Vec<u64> = dead.iter().map(|d| d["position"].as_u64().unwrap()).collect();
    assert_eq!(lines, (14..=32).collect::<Vec<u64>>(), "dead-lettered line numbers");
    let reason = |line: u64| {
        dead.iter().find(|d| d["position"] == line).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let reasons: Vec<String> = (14..=32).map(reason).collect();
    // Each class gets its own, stable reason.
    for (line, r) in (14..=32).zip(&reasons) {
        assert!(!r.is_empty(), "line {line} has no reason");
    }
    assert!(
        reasons[4].contains("user_id"),
        "line 18 (missing user_id): {}",
        reasons[4]
    );
    assert!(reasons[5].contains("price"), "line 19 (missing price): {}", reasons[5]);
    assert!(
        reasons[6].contains("event_time"),
        "line 20 (missing event_time): {}",
        reasons[6]
    );
    assert!(
        reasons[7].contains("event_type"),
        "line 21 (missing event_type): {}",
        reasons[7]
    );
    assert!(reasons[16].contains("future"), "line 30 (year 2099): {}", reasons[16]);
    assert!(reasons[18].contains("utf"), "line 32 (invalid UTF-8): {}", reasons[18]);
    assert_eq!(
        reasons[13], reasons[14],
        "an impossible date and a space for T are both bad times"
    );

    // Line 9 (00:55, 65 min behind the newest event) is late for both views.
    let late: Vec<serde_json::Value> = late.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut late_views: Vec<(u64, String)> = late
        .iter()
        .map(|l| (l["position"].as_u64().unwrap(), l["view"].as_str().unwrap().to_string()))
        .collect();
    late_views.sort();
    assert_eq!(
        late_views,
        vec![(9, "session_features".to_string()), (9, "user_features".to_string())]
    );
}

#[test]
fn same_output_whatever_the_batch_size() {
    let expected = std::fs::read_to_string(golden("semantics.expected.jsonl")).unwrap();
    for batch in ["1", "2", "7", "100000"] {
        let (out, _, _) = replay(&golden("semantics.jsonl"), &["--batch-size", batch]);
        let diff = diff_jsonl(&expected, &out);
        assert!(diff.is_empty(), "batch size {batch}:\n{diff}");
    }
}

/// Which windows fire, and when, is the engine's business: the bench's
/// floor guests, which have the seed plugins' windows and no feature logic
/// (`make bench-floor`), fire exactly the windows the seed plugins fire.
#[test]
fn the_floor_guests_fire_the_seed_plugins_windows() {
    let windows = |lines: &[String], views: [&str; 2]| {
        let mut out = std::collections::BTreeSet::new();
        for line in lines {
            let r: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let kind = match r["view"].as_str() {
                Some(v) if v == views[0] => "sliding",
                Some(v) if v == views[1] => "session",
                other => panic!("unexpected view {other:?} in {line}"),
            };
            out.insert((
                kind,
                r["fields"]["user_id"].as_str().expect("user_id").to_string(),
                r["window_start"].as_i64().expect("window_start"),
                r["window_end"].as_i64().expect("window_end"),
            ));
        }
        assert_eq!(out.len(), lines.len(), "a window fired twice");
        out
    };
    let events = golden("semantics.jsonl");
    let (seed, _, _) = replay(&events, &[]);
    let (floor, _, _) = replay_with(&["floor-sliding", "floor-session"], &events, &[]);
    let seed = windows(&seed, ["user_features", "session_features"]);
    assert!(seed.iter().any(|w| w.0 == "sliding") && seed.iter().any(|w| w.0 == "session"));
    assert_eq!(windows(&floor, ["floor_sliding", "floor_session"]), seed);
}

/// The Flink edge-case file, diffed against Flink 1.19's own output, minus
/// the three lines featherflow accepts and Flink drops (docs/semantics.md,
/// "Differences from the Flink 1.19 job")
/// (an explicit `Z` offset, a numeric-string price, an integer user_id).
#[test]
fn flink_edge_cases_match_flink() {
    let input = std::fs::read_to_string(golden("flink_edge_cases.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let filtered = dir.path().join("edge.jsonl");
    let kept: Vec<&str> = input
        .split('\n')
        .enumerate()
        .filter(|(i, _)| ![12, 13, 14].contains(i))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&filtered, kept.join("\n")).unwrap();
    let (out, dead, _) = replay(&filtered, &["--time-zone", "+09:00", "--format", "flink"]);
    let expected = std::fs::read_to_string(golden("flink_edge_cases.flink.jsonl")).unwrap();
    let diff = diff_jsonl(&expected, &out);
    assert!(diff.is_empty(), "differs from Flink:\n{diff}");
    assert_eq!(
        dead.lines().count(),
        12,
        "Flink drops 15 lines; we accept 3 of them:\n{dead}"
    );
}

#[test]
fn plugin_test_with_expect_passes_and_fails_with_a_diff() {
    let wasm = crate::guest("session-stats");
    let dir = tempfile::tempdir().unwrap();
    let expected = std::fs::read_to_string(golden("semantics.expected.jsonl")).unwrap();
    let sessions: String = expected
        .lines()
        .filter(|l| l.contains("session_features"))
        .map(|l| format!("{l}\n"))
        .collect();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, &sessions).unwrap();
    run_ok(
        featherflow()
            .args(["plugin", "test"])
            .arg(&wasm)
            .arg("--events")
            .arg(golden("semantics.jsonl"))
            .arg("--expect")
            .arg(&good)
            .args(["--dead-letter", ""]),
    );
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, sessions.replace("\"event_count\":4", "\"event_count\":5")).unwrap();
    let out = featherflow()
        .args(["plugin", "test"])
        .arg(&wasm)
        .arg("--events")
        .arg(golden("semantics.jsonl"))
        .arg("--expect")
        .arg(&bad)
        .args(["--dead-letter", ""])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("- {") && stderr.contains("\"event_count\":5"),
        "{stderr}"
    );
    assert!(
        stderr.contains("+ {") && stderr.contains("\"event_count\":4"),
        "{stderr}"
    );
}

#[test]
fn plugin_inspect_prints_the_declaration() {
    let (out, _) = run_ok(
        featherflow()
            .args(["plugin", "inspect"])
            .arg(crate::guest("user-activity")),
    );
    assert!(out.contains("user_features"), "{out}");
    assert!(out.contains("sliding 1h every 10m"), "{out}");
    assert!(out.contains("avg_viewed_price_1h"), "{out}");
    assert!(out.contains("7200"), "{out}");
}
