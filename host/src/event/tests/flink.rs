//! The Flink job's edge-case fixture: every line of `tests/data/parser/edge_cases.jsonl`
//! classified as the Flink job classifies it, and Flink's windows recomputed from
//! the lines it accepted.

use std::collections::BTreeMap;

use super::*;

const EDGE_CASES: &[u8] = include_bytes!("../../../tests/data/parser/edge_cases.jsonl");
const EDGE_CASES_EXPECTED: &str = include_str!("../../../tests/data/parser/edge_cases.expected.jsonl");

/// What each fixture line must give with zone +09:00: Ok((time, user,
/// type, price, extra, flink_accepted)) or the reason. Flink dropped every
/// `Err` line and the three lines SEMANTICS deliberately accepts.
type Expected = Result<(i64, &'static str, &'static str, f64, &'static str, bool), BadReason>;

fn edge_case_expectations() -> Vec<Expected> {
    use BadReason::*;
    const T10: i64 = 1_704_070_800_000; // 2024-01-01T10:00:00+09:00
    vec![
        Ok((T10, "a", "view", 10.0, "", true)),
        Ok((T10 + 9_999, "b", "view", 1.5, "", true)),
        Ok((T10, "b", "wishlist", 7.0, "", true)),
        Ok((T10 - 1, "b", "cart", 3.0, "", true)),
        Ok((T10 + 5_000, "b", "view", 2.5, "", true)),
        Err(NotJson),
        Err(NotJson),
        Err(Empty),
        Err(NotObject),
        Err(MissingField(Field::UserId)),
        Err(MissingField(Field::Price)),
        Err(BadTime),
        // `Z`: the offset wins (Flink drops the line).
        Ok((T10 + 6_000 + JST, "b", "view", 1.0, "", false)),
        // Numeric-string price (Flink drops the line).
        Ok((T10 + 6_000, "b", "view", 1.0, "", false)),
        // Integer user_id (Flink drops the line).
        Ok((T10 + 6_000, "7", "view", 1.0, "", false)),
        Err(WrongType(Field::Price)),
        Err(WrongType(Field::Price)),
        Err(NotJson),
        Err(BadTime),
        Err(BadTime),
        Ok((T10 + 7_000, "c", "view", 4.0, "", true)),
        Ok((T10 + 8_123, "c", "purchase", 100.0, r#"{"extra":{"x":[1,2]}}"#, true)),
        Ok((T10 + 8_000, "c", "view", 3.0, "", true)),
        Ok((T10 + 8_000, "c", "VIEW", 0.0, "", true)),
        Ok((T10 + 9_000, "quote\"d\\é", "view", 0.1, "", true)),
        Ok((T10 + 9_000, "quote\"d\\é", "view", 0.2, "", true)),
        Ok((T10 + 330_500, "a", "cart", 99.5, "", true)),
        Ok((T10 + 600_000, "a", "view", 20.0, "", true)),
        Ok((T10 + 1_200_000, "a", "purchase", 30.0, "", true)),
        Ok((T10 + 1_800_001, "a", "view", 5.25, "", true)),
        Ok((1_704_121_199_000, "d", "view", 1.0, "", true)),
        Ok((1_704_121_200_000, "d", "view", 2.0, "", true)),
    ]
}

fn edge_case_lines() -> Vec<&'static [u8]> {
    EDGE_CASES.strip_suffix(b"\n").unwrap().split(|&c| c == b'\n').collect()
}

#[test]
fn edge_cases_classify_like_flink() {
    let lines = edge_case_lines();
    let expected = edge_case_expectations();
    assert_eq!(lines.len(), 32);
    assert_eq!(lines.len(), expected.len());
    for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
        let got = parse_event(line, &cfg(JST));
        let ctx = format!("line {}: {}", i + 1, String::from_utf8_lossy(line));
        match (got, want) {
            (Ok(ev), Ok((t, user, ty, price, extra, _))) => {
                assert_eq!(ev.time_ms, *t, "{ctx}");
                assert_eq!(ev.user_id, *user, "{ctx}");
                assert_eq!(ev.event_type, *ty, "{ctx}");
                assert_eq!(ev.price, *price, "{ctx}");
                assert_eq!(ev.extra, *extra, "{ctx}");
            }
            (Err(got), Err(want)) => assert_eq!(got, *want, "{ctx}"),
            (got, want) => panic!("{ctx}: got {got:?}, want {want:?}"),
        }
    }
}

/// Recomputes Flink's windows from the lines Flink accepted, as parsed
/// here, and compares them with Flink's output: proves the times, users,
/// types and prices are the ones Flink saw.
#[test]
fn edge_cases_reproduce_flink_windows() {
    const SLIDE: i64 = 600_000;
    const GAP: i64 = 600_000;
    let mut events = Vec::new();
    for (line, want) in edge_case_lines().iter().zip(edge_case_expectations()) {
        if matches!(want, Ok((.., true))) {
            let ev = parse_event(line, &cfg(JST)).unwrap();
            events.push((ev.user_id.into_owned(), ev.event_type, ev.price, ev.time_ms));
        }
    }
    assert_eq!(events.len(), 17);

    // (user, start) -> (views, carts, purchases, view price sum), file order.
    let mut windows: BTreeMap<(String, i64), (i64, i64, i64, f64)> = BTreeMap::new();
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (user, ty, price, t) in &events {
        let last = t.div_euclid(SLIDE) * SLIDE;
        for k in 0..6 {
            let w = windows.entry((user.clone(), last - k * SLIDE)).or_default();
            match ty.as_ref() {
                "view" => (w.0, w.3) = (w.0 + 1, w.3 + price),
                "cart" => w.1 += 1,
                "purchase" => w.2 += 1,
                _ => {}
            }
        }
        times.entry(user.clone()).or_default().push(*t);
    }
    let mut sessions = Vec::new();
    for (user, mut ts) in times {
        ts.sort();
        let (mut first, mut last, mut count) = (ts[0], ts[0], 0);
        for t in ts {
            if t > last + GAP {
                sessions.push((user.clone(), first, last + GAP, count, (last - first) / 1000));
                (first, count) = (t, 0);
            }
            last = t;
            count += 1;
        }
        sessions.push((user, first, last + GAP, count, (last - first) / 1000));
    }

    let (mut user_records, mut session_records) = (0, Vec::new());
    for line in EDGE_CASES_EXPECTED.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let user = r["user_id"].as_str().unwrap().to_string();
        let start = r["window_start"].as_i64().unwrap();
        if r["view"] == "user_features" {
            user_records += 1;
            let w = windows[&(user, start)];
            assert_eq!(r["window_end"].as_i64(), Some(start + 6 * SLIDE), "{line}");
            assert_eq!(r["view_count_1h"].as_i64(), Some(w.0), "{line}");
            assert_eq!(r["cart_count_1h"].as_i64(), Some(w.1), "{line}");
            assert_eq!(r["purchase_count_1h"].as_i64(), Some(w.2), "{line}");
            let avg = if w.0 == 0 { 0.0 } else { w.3 / w.0 as f64 };
            let flink_avg = r["avg_viewed_price_1h"].as_f64().unwrap();
            assert!((avg - flink_avg).abs() <= 1e-15 * avg.abs(), "{line}");
        } else {
            session_records.push((
                user,
                start,
                r["window_end"].as_i64().unwrap(),
                r["event_count"].as_i64().unwrap(),
                r["duration_seconds"].as_i64().unwrap(),
            ));
        }
    }
    assert_eq!(user_records, windows.len());
    session_records.sort();
    sessions.sort();
    assert_eq!(session_records, sessions);
}

#[test]
fn hand_checked_flink_times() {
    let ev = parse_event(
        br#"{"event_time":"2024-01-01T10:00:00","event_type":"view","user_id":"a","price":1}"#,
        &cfg(parse_zone("+09:00").unwrap()),
    )
    .unwrap();
    assert_eq!(ev.time_ms, 1_704_070_800_000);
    assert_eq!(time("2024-01-01T10:00:00+09:00"), Ok(1_704_070_800_000));
    assert_eq!(parse_timestamp(b"2024-01-01T10:00:00", JST), Ok(1_704_070_800_000));
}
