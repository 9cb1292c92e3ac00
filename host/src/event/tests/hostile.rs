//! Hostile input (`hostile/corpus.rs`): the parser never panics, gives every
//! line exactly one result, and every event it accepts keeps the promises
//! of [`Event`]; lines it must refuse are refused for the right reason.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::properties::{is_field_level, serde_first_object};
use super::*;

mod corpus;

use corpus::{MIB, Spec, line, line_with};

/// 2024-06-01T00:00:00Z: "now" for the future-skew check.
const NOW_MS: i64 = 1_717_200_000_000;

/// The settings every line is parsed with: the zone extremes, and the
/// future-skew check on and off.
fn configs() -> [ParserConfig; 3] {
    [
        cfg(0),
        ParserConfig {
            zone_offset_ms: MAX_OFFSET_MS,
            max_future_skew_ms: Some(MS_PER_DAY),
            now_ms: NOW_MS,
        },
        ParserConfig {
            zone_offset_ms: -MAX_OFFSET_MS,
            max_future_skew_ms: Some(0),
            now_ms: NOW_MS,
        },
    ]
}

/// Parses `line` and checks everything a result must satisfy whatever the
/// line: an event keeps every promise of [`Event`], a refusal has a known
/// reason, invalid UTF-8 and blank lines get theirs, and the result does
/// not depend on the lines parsed before (the parser remembers the last
/// date per thread).
fn check(line: &[u8], cfg: &ParserConfig) -> Result<Event<'static>, BadReason> {
    // After a line of another day of the usual month, and after one of
    // another day of year 0's first month: the same result.
    let after = |other: &str| {
        parse_event(corpus::line_with(0, other).as_bytes(), cfg).expect("a valid line");
        parse_event(line, cfg).map(Event::into_owned)
    };
    let got = after("\"2024-01-31T10:00:00\"");
    let shown = || String::from_utf8_lossy(&line[..line.len().min(300)]).into_owned();
    let utf8 = std::str::from_utf8(line).is_ok();
    match &got {
        Ok(ev) => {
            assert!(utf8, "an event from invalid UTF-8: {}", shown());
            assert!((MIN_TIME_MS..=MAX_TIME_MS).contains(&ev.time_ms), "{ev:?}");
            assert!(!ev.event_type.is_empty(), "{}", shown());
            assert!(ev.price.is_finite(), "{ev:?}");
            if let Some(skew) = cfg.max_future_skew_ms {
                assert!(ev.time_ms <= cfg.now_ms + skew, "{ev:?}");
            }
            if !ev.extra.is_empty() {
                assert!(
                    ev.extra.starts_with('{') && ev.extra.ends_with('}'),
                    "{:?}",
                    &ev.extra[..ev.extra.len().min(300)]
                );
            }
        }
        Err(reason) => {
            assert!(BadReason::ALL.contains(reason), "{reason:?}");
            if !utf8 {
                assert_eq!(*reason, BadReason::InvalidUtf8, "{}", shown());
            }
        }
    }
    if utf8 && line.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')) {
        assert_eq!(got, Err(BadReason::Empty));
    }
    assert_eq!(after("\"0000-01-31T00:00:00\""), got, "{}", shown());
    got
}

/// Whether the line holds a syntactically valid object is decided as
/// serde_json decides it, where serde_json can tell (it stops at 128
/// levels and at numbers beyond f64; it does not check text after the
/// first value for UTF-8).
fn agrees_with_serde(line: &[u8], got: &Result<Event<'_>, BadReason>) {
    if std::str::from_utf8(line).is_err() {
        return;
    }
    let reference = match serde_first_object(line) {
        Err(e) if e.contains("recursion limit") || e.contains("number out of range") => return,
        reference => reference,
    };
    let ours = match got {
        Ok(_) => true,
        Err(r) => is_field_level(*r),
    };
    assert_eq!(
        ours,
        matches!(reference, Ok(Some(_))),
        "{got:?} vs {reference:?} for {}",
        String::from_utf8_lossy(&line[..line.len().min(300)])
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// No panic, one result per line and setting, each a valid event or a
    /// known reason, as serde_json would classify it.
    #[test]
    fn hostile_lines_get_exactly_one_result(spec in corpus::spec()) {
        let line = spec.build();
        for cfg in configs() {
            let got = check(&line, &cfg);
            agrees_with_serde(&line, &got);
        }
    }
}

#[test]
fn the_corpus_uses_the_parser_time_range() {
    assert_eq!((corpus::MIN_TIME_MS, corpus::MAX_TIME_MS), (MIN_TIME_MS, MAX_TIME_MS));
}

/// The generator reaches every reason (and valid events), so the property
/// above is not vacuous.
#[test]
fn the_corpus_reaches_every_bad_record_class() {
    let mut runner = TestRunner::deterministic();
    let strategy = corpus::spec();
    let cfg = configs()[1];
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..4_000 {
        let line = strategy.new_tree(&mut runner).expect("a value").current().build();
        let label = match parse_event(&line, &cfg) {
            Ok(_) => "ok",
            Err(r) => r.as_str(),
        };
        *seen.entry(label).or_insert(0u32) += 1;
    }
    for label in BadReason::ALL.iter().map(BadReason::as_str).chain(["ok"]) {
        assert!(seen.contains_key(label), "never {label}: {seen:?}");
    }
}

/// Hand-picked hostile lines with their exact outcome.
#[test]
fn hostile_lines_get_the_right_reason() {
    let long = |n: usize, unit: &str| unit.repeat(n);
    let deep_array = long(100_000, "[");
    let deep_object = long(100_000, "{\"a\":");
    let mut big_garbage = long(MIB, "x").into_bytes();
    big_garbage.push(b'{');
    let mut bad_utf8_at_end = line(corpus::GOOD).into_bytes();
    bad_utf8_at_end.extend(long(MIB, " ").into_bytes());
    bad_utf8_at_end.push(0xff);
    let nine_400 = long(400, "9");
    let cases: Vec<(Vec<u8>, Result<(), BadReason>)> = vec![
        // Depth.
        (deep_array.clone().into_bytes(), Err(BadReason::TooDeep)),
        (deep_object.clone().into_bytes(), Err(BadReason::TooDeep)),
        (
            line(corpus::GOOD)
                .replacen('{', &format!("{{\"deep\":{deep_array},"), 1)
                .into_bytes(),
            Err(BadReason::TooDeep),
        ),
        (
            line_with(1, &format!("{}\"x\"{}", long(998, "["), long(998, "]"))).into_bytes(),
            Err(BadReason::WrongType(Field::EventType)),
        ),
        // Size.
        (line_with(1, &format!("\"{}\"", long(MIB, "a"))).into_bytes(), Ok(())),
        (line_with(2, &format!("\"{}\"", long(MIB, "\\n"))).into_bytes(), Ok(())),
        (
            line_with(0, &format!("\"{}\"", long(MIB, "1"))).into_bytes(),
            Err(BadReason::BadTime),
        ),
        (
            line_with(3, &format!("1{}", long(MIB, "0"))).into_bytes(),
            Err(BadReason::NonFinitePrice),
        ),
        (line_with(3, &format!("0.{}1", long(MIB, "0"))).into_bytes(), Ok(())),
        (big_garbage, Err(BadReason::NotJson)),
        (long(MIB, " \t").into_bytes(), Err(BadReason::Empty)),
        (bad_utf8_at_end, Err(BadReason::InvalidUtf8)),
        // Huge numbers.
        (line_with(3, "1e400").into_bytes(), Err(BadReason::NonFinitePrice)),
        (line_with(3, "-1e400").into_bytes(), Err(BadReason::NonFinitePrice)),
        (line_with(3, "\"1e400\"").into_bytes(), Err(BadReason::NonFinitePrice)),
        (line_with(3, &nine_400).into_bytes(), Err(BadReason::NonFinitePrice)),
        (
            line_with(3, "1e99999999999999999999").into_bytes(),
            Err(BadReason::NonFinitePrice),
        ),
        (line_with(3, "1e-400").into_bytes(), Ok(())),
        (line_with(0, &nine_400).into_bytes(), Err(BadReason::BadTime)),
        (
            line_with(0, "1e400").into_bytes(),
            Err(BadReason::WrongType(Field::EventTime)),
        ),
        (line_with(2, &nine_400).into_bytes(), Ok(())),
        // Odd times.
        (line_with(0, "\"0000-01-01T00:00:00\"").into_bytes(), Ok(())),
        (line_with(0, "\"9999-12-31T24:00:00-18:00\"").into_bytes(), Ok(())),
        (
            line_with(0, "\"10000-01-01T00:00:00\"").into_bytes(),
            Err(BadReason::BadTime),
        ),
        (line_with(0, "\"2016-12-31T23:59:60Z\"").into_bytes(), Ok(())),
        (
            line_with(0, "\"2016-12-31T12:59:60Z\"").into_bytes(),
            Err(BadReason::BadTime),
        ),
        (line_with(0, "-1").into_bytes(), Ok(())),
        (
            line_with(0, &(MIN_TIME_MS - 1).to_string()).into_bytes(),
            Err(BadReason::BadTime),
        ),
        (
            line_with(0, &i64::MIN.to_string()).into_bytes(),
            Err(BadReason::BadTime),
        ),
        (
            line_with(0, "\"2024-01-01T10:00:00.12345678901234567890\"").into_bytes(),
            Err(BadReason::BadTime),
        ),
        (
            line_with(0, "\"2024-01-01T10:00:00+25:00\"").into_bytes(),
            Err(BadReason::BadTime),
        ),
        (
            line_with(0, "\"2024-01-01T10:00:00+18:01\"").into_bytes(),
            Err(BadReason::BadTime),
        ),
        (
            line_with(0, "\"\u{ff12}\u{ff10}\u{ff12}\u{ff14}-01-01T10:00:00\"").into_bytes(),
            Err(BadReason::BadTime),
        ),
        // NUL.
        (b"\x00".to_vec(), Err(BadReason::NotJson)),
        (line_with(2, "\"a\x00b\"").into_bytes(), Err(BadReason::NotJson)),
        (line_with(2, "\"a\\u0000b\"").into_bytes(), Ok(())),
        ([line(corpus::GOOD).as_bytes(), b"\x00"].concat(), Ok(())),
        // Lone surrogates.
        (line_with(1, "\"\\ud800\"").into_bytes(), Err(BadReason::InvalidUtf8)),
        (
            line_with(2, "\"\\udc00\\ud800\"").into_bytes(),
            Err(BadReason::InvalidUtf8),
        ),
        (line_with(2, "\"\\udbff\\udfff\"").into_bytes(), Ok(())),
        // Duplicate keys, also under escaped names: the last wins.
        (
            line(corpus::GOOD)
                .replacen('}', ",\"event\\u005ftype\":\"\"}", 1)
                .into_bytes(),
            Err(BadReason::EmptyEventType),
        ),
        (
            line_with(3, "\"x\"")
                .replacen('{', "{\"price\":1,\"k\":1,\"k\":2,", 1)
                .into_bytes(),
            Err(BadReason::WrongType(Field::Price)),
        ),
    ];
    for (line, expected) in cases {
        for cfg in [cfg(0), cfg(-MAX_OFFSET_MS)] {
            let got = check(&line, &cfg);
            assert_eq!(
                got.as_ref().map(|_| ()).map_err(|r| *r),
                expected,
                "{}",
                String::from_utf8_lossy(&line[..line.len().min(120)])
            );
        }
    }
}

/// A megabyte of keys, most of them repeated: still one pass, and each
/// key once in `extra`, with its last value.
#[test]
fn a_megabyte_of_repeated_keys() {
    let spec = Spec {
        shape: corpus::Shape::Long(corpus::Long::Members {
            n: 120_000,
            distinct: 7,
        }),
        damage: Vec::new(),
    };
    let line = spec.build();
    assert!(line.len() > MIB);
    let ev = check(&line, &cfg(0)).unwrap();
    let extra: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&ev.extra).unwrap();
    assert_eq!(extra.len(), 7);
    assert_eq!(extra["k0"], serde_json::json!(119_994));
}
