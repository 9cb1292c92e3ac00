//! The parser's tests: unit tests by topic, the Flink job's edge-case
//! fixture (`tests/flink.rs`), times (`tests/times.rs`), property tests against
//! serde_json and a naive calendar (`tests/properties.rs`), and hostile input
//! (`tests/hostile.rs`).
//!
//! The helpers every test file uses (`cfg`, `parse`, `ok`, `reason`,
//! `line_with`, `time`) live here. Tests may reach any item of the parser
//! through `super`; nothing outside `#[cfg(test)]` may depend on them.

use super::*;

mod flink;
mod hostile;
mod properties;
mod times;

const JST: i64 = 9 * MS_PER_HOUR;

fn cfg(zone_offset_ms: i64) -> ParserConfig {
    ParserConfig {
        zone_offset_ms,
        ..ParserConfig::default()
    }
}

fn parse(line: &str) -> Result<Event<'_>, BadReason> {
    parse_event(line.as_bytes(), &cfg(0))
}

#[test]
fn is_ascii_finds_a_high_byte_anywhere_in_lines_of_every_length() {
    for len in 0..80 {
        let mut line = vec![b'a'; len];
        assert!(is_ascii(&line), "{len}");
        for at in 0..len {
            line[at] = 0xC3;
            assert!(!is_ascii(&line), "{len} {at}");
            line[at] = 0x7F;
            assert!(is_ascii(&line), "{len} {at}");
            line[at] = b'a';
        }
    }
}

/// The fast path for the common layout takes the lines it should, and
/// gives exactly what the general parser gives for each of them.
#[test]
fn the_common_layout_parses_as_the_general_way_does() {
    let times = [
        "\"2024-01-01T10:00:00\"",
        "\"2024-01-01t10:00:00\"",
        "\"2024-01-01T24:00:00\"",
        "\"2024-01-01T23:59:60\"",
        "\"2024-13-01T10:00:00\"",
        "\"2024-01-01T10:00:0\"",
        "\"2024-01-01 10:00:00\"",
        "\"2024-01-01T10:00:00Z\"",
        "\"2024-01-01T10:00:00.\"",
        "\"2024-01-01T10:00:0\\\"",
        "\"2024-01-01T10:00:00.123456\"",
        "\"2024-01-01T10:00:00+09:00\"",
        "\"2024-02-30T10:00:00\"",
        "\"2024-01-01T10:00:00\\u0030\"",
        "1704103200000",
        "1.5",
        "null",
    ];
    let types = [
        "\"view\"",
        "\"purchase\"",
        "\"\"",
        "\"vi\\u0065w\"",
        "\"caf\u{e9}\"",
        "7",
        "[]",
    ];
    let users = ["\"111\"", "\"a\\\"b\"", "111", "-0", "1.0", "true", "{}"];
    let prices = [
        "29.99",
        "-0",
        "1e3",
        "\"29.99\"",
        "\"abc\"",
        "1e999",
        "null",
        "01",
        "0",
        "0.5",
        "-12.340",
        "123456789012345",
        "1234567890123456",
        "12345678.90123456",
        "0.000000000000001",
        "1.",
        "-",
        "-.5",
        ".5",
        "1.2.3",
        "00.5",
        "-01",
        "1E3",
        "29.99e0",
        "9007199254740993",
        "0.1",
        "-0.0",
    ];
    let layouts = [
        (
            "{\"event_time\": ",
            ", \"event_type\": ",
            ", \"user_id\": ",
            ", \"price\": ",
            "}",
        ),
        (
            "{\"event_time\":",
            ",\"event_type\":",
            ",\"user_id\":",
            ",\"price\":",
            "}  ",
        ),
        (
            "{\"event_time\":  ",
            ", \"event_type\": ",
            ", \"user_id\": ",
            ", \"price\": ",
            "}",
        ),
        (
            "{\"event_time\": ",
            ", \"event_type\": ",
            ", \"user_id\": ",
            ", \"price\": ",
            "} x",
        ),
        (
            "{\"event_time\": ",
            ", \"event_type\": ",
            ", \"user_id\": ",
            ", \"price\": ",
            ", \"sku\": 1}",
        ),
        (
            " {\"event_time\": ",
            ", \"event_type\": ",
            ", \"user_id\": ",
            ", \"price\": ",
            "}",
        ),
    ];
    let mut c = cfg(JST);
    let mut fast = 0;
    for skew in [None, Some(0)] {
        c.max_future_skew_ms = skew;
        c.now_ms = 1_704_103_200_000;
        for (open, a, b, d, close) in layouts {
            for t in times {
                for ty in types {
                    for u in users {
                        for pr in prices {
                            let line = format!("{open}{t}{a}{ty}{b}{u}{d}{pr}{close}");
                            let general = parse_general(&line, &c);
                            if let Some(event) = parse_common(&line, &c) {
                                fast += 1;
                                assert_eq!(Ok(event), general, "{line}");
                            }
                            assert_eq!(parse_event(line.as_bytes(), &c), general, "{line}");
                        }
                    }
                }
            }
        }
    }
    // The layouts the generator and producers write do take the fast path.
    assert!(
        parse_common(
            r#"{"event_time": "2024-01-01T00:00:00", "event_type": "view", "user_id": "20408", "price": 489.66}"#,
            &cfg(0)
        )
        .is_some()
    );
    assert!(
        parse_common(
            r#"{"event_time":"2024-01-01T00:00:00","event_type":"view","user_id":"1","price":1}"#,
            &cfg(0)
        )
        .is_some()
    );
    assert!(fast > 1000, "only {fast} lines took the fast path");
}

/// Parses a line that must be valid; owned, so the line may be a temporary.
fn ok(line: &str) -> Event<'static> {
    parse(line).unwrap_or_else(|r| panic!("{r:?} for {line}")).into_owned()
}

fn reason(line: &str) -> BadReason {
    parse(line).expect_err(line)
}

/// A valid line with `field` replaced by the raw JSON `value`, or removed
/// when `value` is `None`.
fn line_with(field: &str, value: Option<&str>) -> String {
    let mut fields = vec![
        ("event_time", r#""2024-01-01T10:00:00""#),
        ("event_type", r#""view""#),
        ("user_id", r#""u1""#),
        ("price", "1.5"),
    ];
    match value {
        Some(v) => fields.iter_mut().find(|f| f.0 == field).unwrap().1 = v,
        None => fields.retain(|f| f.0 != field),
    }
    let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", members.join(","))
}

fn time(s: &str) -> Result<i64, ()> {
    parse_timestamp(s.as_bytes(), 0)
}

// -- Lines and JSON syntax ---------------------------------------------------

#[test]
fn typical_line_borrows_everything() {
    let line =
        r#"{"event_time": "2025-07-18T10:12:37.805123", "event_type": "view", "user_id": "4711", "price": 29.99}"#;
    let ev = parse(line).unwrap();
    assert_eq!(ev.time_ms, 1_752_833_557_805);
    assert!(matches!(ev.event_type, Cow::Borrowed("view")));
    assert!(matches!(ev.user_id, Cow::Borrowed("4711")));
    assert!(matches!(ev.extra, Cow::Borrowed("")));
    assert_eq!(ev.price, 29.99);
}

#[test]
fn empty_and_whitespace_lines() {
    assert_eq!(reason(""), BadReason::Empty);
    assert_eq!(reason(" \t\r\n "), BadReason::Empty);
}

#[test]
fn syntax_errors_are_not_json() {
    for line in [
        "{",
        "{\"event_time\"",
        "{\"a\"}",
        "{\"a\":}",
        "{,}",
        "{\"a\":1,}",
        "{\"a\":1 \"b\":2}",
        "{'a':1}",
        "{a:1}",
        "/*c*/{\"a\":1}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":[,1]}",
        "{\"a\":{\"b\"}}",
        "{\"a\":{\"b\":1,}}",
        "{\"a\":[}",
        "{\"a\":{]}",
        "{\"a\":{\"b\":1]}",
        "{\"a\":[1}}",
        "{\"a\":[1,{\"b\":[]]]}",
        "{\"a\":[[1]}}",
        "{\"a\":[[]}]}",
        "{\"a\":1]",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":0x10}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{\"a\":-Infinity}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":True}",
        "{\"a\":\"x}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nul\0\"}",
        "{\"a\":\"line\nbreak\"}",
        "\u{FEFF}{\"a\":1}",
        "\u{0}{}",
        "[1,",
        "not json at all",
        "1x",
        "-",
        "truex",
        "null1",
        "true_",
        "nullé",
        "1}",
        "1,",
        "\"open",
    ] {
        assert_eq!(reason(line), BadReason::NotJson, "{line:?}");
    }
}

#[test]
fn valid_non_objects_are_not_object() {
    for line in [
        "[]",
        "[{\"event_time\":1}]",
        "\"text\"",
        "1",
        "-0.5e3",
        "1 x",
        "1\tx",
        "true",
        "false,",
        "null]",
        "null x",
        "[1,[2,{\"a\":[]}]] trailing",
    ] {
        assert_eq!(reason(line), BadReason::NotObject, "{line:?}");
    }
}

#[test]
fn trailing_text_after_the_object_is_ignored() {
    let base = line_with("price", Some("2"));
    for tail in ["", "}", "}trailing", " garbage", "{", ",{\"price\":1}", "\u{0}"] {
        let line = format!("  \t{base}{tail}");
        assert_eq!(parse(&line).unwrap().price, 2.0, "{line:?}");
    }
    // ...but it must be valid UTF-8.
    let mut bytes = base.into_bytes();
    bytes.extend_from_slice(b"\xff");
    assert_eq!(parse_event(&bytes, &cfg(0)), Err(BadReason::InvalidUtf8));
}

#[test]
fn invalid_utf8_anywhere() {
    for bytes in [
        &b"\xff"[..],
        b"{\"event_time\":\"\xc3\"}",
        b"{\"a\xed\xa0\x80\":1}", // UTF-8 encoded surrogate
        b"\xc0\xaf{}",
    ] {
        assert_eq!(parse_event(bytes, &cfg(0)), Err(BadReason::InvalidUtf8));
    }
    for line in [
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00\ud800"}"#,
        r#"{"a":"\ud800x"}"#,
        r#"{"a":"\ud800\n"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        r#"{"a":{"b":["\uDFFF"]}}"#,
    ] {
        assert_eq!(reason(line), BadReason::InvalidUtf8, "{line}");
    }
}

#[test]
fn nesting_limit() {
    let nested = |depth: usize| {
        let value = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        line_with("price", Some("1")).replacen('{', &format!("{{\"deep\":{value},"), 1)
    };
    assert!(parse(&nested(MAX_DEPTH - 1)).is_ok());
    assert_eq!(reason(&nested(MAX_DEPTH)), BadReason::TooDeep);
    assert_eq!(reason(&nested(100_000)), BadReason::TooDeep);
    let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH - 1), "}".repeat(MAX_DEPTH - 1));
    assert!(parse(&line_with("price", Some("1")).replacen('{', &format!("{{\"o\":{objects},"), 1)).is_ok());
    assert_eq!(reason(&"[".repeat(MAX_DEPTH + 1)), BadReason::TooDeep);
    assert_eq!(reason(&"[".repeat(MAX_DEPTH)), BadReason::NotJson);
}

// -- Strings and extras --------------------------------------------------

#[test]
fn string_escapes_are_decoded() {
    let line = line_with(
        "user_id",
        Some(r#""q\"b\\s\/b\bf\fn\nr\rt\tA\u0041\u00e9\u20AC\ud83d\ude00\uD83D\uDE00\u0000""#),
    );
    let ev = parse(&line).unwrap();
    assert_eq!(ev.user_id, "q\"b\\s/b\u{8}f\u{c}n\nr\rt\tAAé€😀😀\u{0}");
    assert!(matches!(ev.user_id, Cow::Owned(_)));
    // Raw non-ASCII and DEL need no escaping.
    let ev = ok(&line_with("event_type", Some("\"vïew😀\u{7f}\"")));
    assert_eq!(ev.event_type, "vïew😀\u{7f}");
    // An escape right before the closing quote, and long strings (SWAR path).
    let long = "x".repeat(37);
    let ev = ok(&line_with("user_id", Some(&format!("\"{long}\\\\\""))));
    assert_eq!(ev.user_id, format!("{long}\\"));
    for n in 0..20 {
        let s = "é".repeat(n);
        let ev = ok(&line_with("user_id", Some(&format!("\"{s}\""))));
        assert_eq!(ev.user_id, s);
        let raw = format!("\"{}\\\"{}\"", "x".repeat(n), "y".repeat(20 - n));
        let ev = ok(&line_with("user_id", Some(&raw)));
        assert_eq!(ev.user_id, format!("{}\"{}", "x".repeat(n), "y".repeat(20 - n)));
    }
}

#[test]
fn escaped_keys_name_fields() {
    let line = r#"{"event\u005ftime":"2024-01-01T00:00:00","\u0065vent_type":"view","user_id":"u","pr\u0069ce":1}"#;
    let ev = parse(line).unwrap();
    assert_eq!(ev.time_ms, 1_704_067_200_000);
    assert_eq!(ev.event_type, "view");
    assert_eq!(ev.extra, "");
}

#[test]
fn unknown_fields_of_every_type_become_extra() {
    let extras = r#""s":"x\"y","i":-12,"f":1.5e-3,"t":true,"f2":false,"n":null,"o":{"a":{"b":[1,{"c":"}"}]},"e":{}},"a":[[],[1,"]",null],{}],"esc\u00e9":"\ud83d\ude00""#;
    let line = r#"{"s":"x\"y", "event_time":"2024-01-01T00:00:00","i":-12,"f":1.5e-3,"t":true,"f2":false,"n":null,"event_type":"v","o":{"a":{"b":[1,{"c":"}"}]},"e":{}},"a":[[],[1,"]",null],{}],"user_id":"u","price":1,"esc\u00e9":"\ud83d\ude00"}"#;
    let ev = parse(line).unwrap();
    assert_eq!(ev.extra, format!("{{{extras}}}"));
    let parsed: serde_json::Value = serde_json::from_str(&ev.extra).unwrap();
    assert_eq!(parsed["o"]["a"]["b"][1]["c"], "}");
    assert_eq!(parsed["escé"], "😀");
    assert_eq!(ev.event_type, "v");
}

#[test]
fn extra_values_keep_their_inner_whitespace() {
    let line = line_with("price", Some("1")).replacen('{', "{ \"o\" : { \"a\" : [ 1 , 2 ] } ,", 1);
    assert_eq!(parse(&line).unwrap().extra, r#"{"o":{ "a" : [ 1 , 2 ] }}"#);
}

#[test]
fn duplicate_keys_last_wins() {
    let line = r#"{"a":1,"event_time":"2024-01-01T00:00:00","b":2,"event_time":"2024-01-01T00:00:01","event_type":"x","user_id":7,"user_id":"u","price":"x","price":2,"\u0061":3,"a":4}"#;
    let ev = parse(line).unwrap();
    assert_eq!(ev.time_ms, 1_704_067_201_000);
    assert_eq!(ev.user_id, "u");
    assert_eq!(ev.price, 2.0);
    assert_eq!(ev.extra, r#"{"a":4,"b":2}"#);
    // The last value decides even when an earlier one was valid.
    assert_eq!(
        reason(&line_with("price", Some("1,\"price\":null"))),
        BadReason::WrongType(Field::Price)
    );
    // Many duplicated extras (the hashed path).
    let mut line = line_with("price", Some("1"));
    line.pop();
    for round in 0..3 {
        for k in 0..20 {
            line.push_str(&format!(",\"k{k}\":{round}"));
        }
    }
    line.push('}');
    let expected: Vec<String> = (0..20).map(|k| format!("\"k{k}\":2")).collect();
    assert_eq!(parse(&line).unwrap().extra, format!("{{{}}}", expected.join(",")));
}

// -- The four fields -----------------------------------------------------

#[test]
fn missing_fields_in_check_order() {
    use Field::*;
    assert_eq!(reason("{}"), BadReason::MissingField(EventTime));
    assert_eq!(reason(r#"{"price":1}"#), BadReason::MissingField(EventTime));
    for field in Field::ALL {
        assert_eq!(reason(&line_with(field.key(), None)), BadReason::MissingField(field));
    }
    // An earlier field's problem wins over a later missing field.
    assert_eq!(reason(r#"{"event_time":"bad","price":1}"#), BadReason::BadTime);
    assert_eq!(
        reason(r#"{"event_time":0,"event_type":"","price":1}"#),
        BadReason::EmptyEventType
    );
}

#[test]
fn wrong_types() {
    use Field::*;
    for (field, value) in [
        (EventTime, "null"),
        (EventTime, "true"),
        (EventTime, "1.5"),
        (EventTime, "1e3"),
        (EventTime, "[]"),
        (EventTime, "{}"),
        (EventType, "1"),
        (EventType, "null"),
        (EventType, "[\"view\"]"),
        (UserId, "1.0"),
        (UserId, "1e2"),
        (UserId, "true"),
        (UserId, "null"),
        (UserId, "{\"id\":1}"),
        (Price, "null"),
        (Price, "true"),
        (Price, "false"),
        (Price, "[1]"),
        (Price, "{}"),
        (Price, "\"\""),
        (Price, "\"abc\""),
        (Price, "\"NaN\""),
        (Price, "\"Infinity\""),
        (Price, "\"inf\""),
        (Price, "\" 1\""),
        (Price, "\"1 \""),
        (Price, "\"+1\""),
        (Price, "\".5\""),
        (Price, "\"1.\""),
        (Price, "\"0x10\""),
        (Price, "\"1d\""),
    ] {
        let line = line_with(field.key(), Some(value));
        assert_eq!(reason(&line), BadReason::WrongType(field), "{line}");
    }
}

#[test]
fn event_type_must_not_be_empty() {
    assert_eq!(
        reason(&line_with("event_type", Some("\"\""))),
        BadReason::EmptyEventType
    );
    assert_eq!(ok(&line_with("event_type", Some("\" \""))).event_type, " ");
}

#[test]
fn integer_user_id_is_its_decimal_text() {
    for (raw, text) in [
        ("7", "7"),
        ("-42", "-42"),
        ("0", "0"),
        ("-0", "0"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
    ] {
        let ev = ok(&line_with("user_id", Some(raw)));
        assert_eq!(ev.user_id, text);
    }
    assert_eq!(ok(&line_with("user_id", Some("\"\""))).user_id, "");
}

#[test]
fn prices() {
    for (raw, price) in [
        ("29.99", 29.99),
        ("0", 0.0),
        ("-0", -0.0),
        ("100", 100.0),
        ("2.5e0", 2.5),
        ("2.5E+2", 250.0),
        ("1e-400", 0.0),
        ("9007199254740993", 9_007_199_254_740_992.0),
        ("0.1", 0.1),
        ("1.7976931348623157e308", f64::MAX),
        ("\"1.0\"", 1.0),
        ("\"2.5e0\"", 2.5),
        ("\"-3\"", -3.0),
        ("\"\\u0031\"", 1.0),
    ] {
        let ev = ok(&line_with("price", Some(raw)));
        assert_eq!(ev.price.to_bits(), price.to_bits(), "{raw}");
    }
    for raw in ["1e400", "-1e999", "\"1e400\"", "9".repeat(400).as_str()] {
        assert_eq!(
            reason(&line_with("price", Some(raw))),
            BadReason::NonFinitePrice,
            "{raw}"
        );
    }
}

#[test]
fn integer_event_time_is_epoch_millis() {
    for t in [0, 1_704_070_800_000, -1, MIN_TIME_MS, MAX_TIME_MS] {
        let ev = ok(&line_with("event_time", Some(&t.to_string())));
        assert_eq!(ev.time_ms, t);
    }
    // The configured zone does not apply to epoch milliseconds.
    let line = line_with("event_time", Some("1000"));
    assert_eq!(parse_event(line.as_bytes(), &cfg(JST)).unwrap().time_ms, 1000);
    for raw in [
        (MIN_TIME_MS - 1).to_string(),
        (MAX_TIME_MS + 1).to_string(),
        i64::MAX.to_string(),
        "9223372036854775808".to_string(),
        "-99999999999999999999".to_string(),
    ] {
        assert_eq!(
            reason(&line_with("event_time", Some(&raw))),
            BadReason::BadTime,
            "{raw}"
        );
    }
}

#[test]
fn escaped_event_time() {
    let line = line_with("event_time", Some(r#""2024\u002d01-01T00:00:00\u005A""#));
    assert_eq!(parse(&line).unwrap().time_ms, 1_704_067_200_000);
}

#[test]
fn future_skew() {
    let line = line_with("event_time", Some("10000"));
    let mut c = ParserConfig {
        zone_offset_ms: 0,
        max_future_skew_ms: Some(1_000),
        now_ms: 9_000,
    };
    assert_eq!(parse_event(line.as_bytes(), &c).unwrap().time_ms, 10_000);
    c.now_ms = 8_999;
    assert_eq!(parse_event(line.as_bytes(), &c), Err(BadReason::FutureTime));
    c.max_future_skew_ms = None;
    assert!(parse_event(line.as_bytes(), &c).is_ok());
    // No overflow with extreme settings.
    c.max_future_skew_ms = Some(i64::MAX);
    c.now_ms = i64::MAX;
    assert!(parse_event(line.as_bytes(), &c).is_ok());
    // Other problems are reported first.
    c.max_future_skew_ms = Some(0);
    c.now_ms = 0;
    assert_eq!(
        parse_event(line_with("price", None).as_bytes(), &c),
        Err(BadReason::MissingField(Field::Price))
    );
}

// -- Reasons -----------------------------------------------------------------

#[test]
fn reason_labels_are_unique_snake_case() {
    let mut labels = std::collections::HashSet::new();
    for r in BadReason::ALL {
        let label = r.as_str();
        assert!(
            label
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c == b'_' || c.is_ascii_digit())
        );
        assert!(labels.insert(label), "duplicate {label}");
        assert!(r.to_string().len() > 10);
    }
    // Adding a variant breaks this match: then add it to ALL as well.
    let variant = |r: &BadReason| match r {
        BadReason::InvalidUtf8 => 0,
        BadReason::Empty => 1,
        BadReason::NotJson => 2,
        BadReason::TooDeep => 3,
        BadReason::NotObject => 4,
        BadReason::MissingField(_) => 5,
        BadReason::WrongType(_) => 6,
        BadReason::EmptyEventType => 7,
        BadReason::BadTime => 8,
        BadReason::NonFinitePrice => 9,
        BadReason::FutureTime => 10,
    };
    let variants: std::collections::HashSet<_> = BadReason::ALL.iter().map(variant).collect();
    assert_eq!(variants.len(), 11);
    assert_eq!(BadReason::ALL.len(), 9 + 2 * Field::ALL.len());
    assert_eq!(BadReason::MissingField(Field::UserId).as_str(), "missing_user_id");
    assert_eq!(
        BadReason::WrongType(Field::Price).to_string(),
        "field `price` has the wrong type: expected a number or a numeric string"
    );
}

#[test]
fn into_owned_keeps_values() {
    let line = line_with("user_id", Some("\"u\\u0031\"")).replacen('{', "{\"x\":1,", 1);
    let ev = parse(&line).unwrap();
    let owned: Event<'static> = ev.clone().into_owned();
    assert_eq!(owned, ev);
    assert_eq!(owned.extra, "{\"x\":1}");
}
