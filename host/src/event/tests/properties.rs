//! Properties: the parser against serde_json on generated and damaged lines,
//! the price fast path against `str::parse`, and timestamps against a naive
//! calendar.

use proptest::prelude::*;

use super::*;
use crate::event::number::{fast_decimal, parse_f64};
use crate::event::timestamp::{days_in_month, is_leap_year};

/// Days since 1970-01-01 by counting, independent of `days_from_civil`.
fn naive_days(y: i64, m: i64, d: i64) -> i64 {
    let year_len = |y: i64| if is_leap_year(y) { 366 } else { 365 };
    let mut days: i64 = if y >= 1970 {
        (1970..y).map(year_len).sum()
    } else {
        -(y..1970).map(year_len).sum::<i64>()
    };
    days += (1..m).map(|m| days_in_month(y, m)).sum::<i64>();
    days + d - 1
}

/// Serialises a string with every non-ASCII character and some ASCII ones
/// as `\u` escapes (surrogate pairs above U+FFFF).
fn escape_heavily(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii() && c >= ' ' && c != '"' && c != '\\' && i % 3 != 0 {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
    }
    out.push('"');
    out
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(J::Number)),
        any::<String>().prop_map(J::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(J::Array),
            prop::collection::vec((any::<String>(), inner), 0..5).prop_map(|kv| J::Object(kv.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum TimeIn {
    Text {
        ymd: (i64, i64, i64),
        hms: (i64, i64, i64),
        fraction: String,
        lower_t: bool,
        offset: Option<(i64, bool)>,
    },
    Millis(i64),
}

fn arb_time() -> impl Strategy<Value = TimeIn> {
    let text = (
        (0i64..=9999, 1i64..=12, 1i64..=31),
        (0i64..=23, 0i64..=59, 0i64..=59),
        "(\\.[0-9]{0,9})?",
        any::<bool>(),
        prop::option::of((-18 * 60i64..=18 * 60, any::<bool>())),
    )
        .prop_map(|((y, m, d), hms, fraction, lower_t, offset)| TimeIn::Text {
            ymd: (y, m, d.min(days_in_month(y, m))),
            hms,
            fraction,
            lower_t,
            offset,
        });
    prop_oneof![text, (MIN_TIME_MS..=MAX_TIME_MS).prop_map(TimeIn::Millis)]
}

impl TimeIn {
    fn json_and_expected(&self, zone_offset_ms: i64) -> (String, i64) {
        match self {
            TimeIn::Millis(t) => (t.to_string(), *t),
            TimeIn::Text {
                ymd: (y, m, d),
                hms: (hh, mm, ss),
                fraction,
                lower_t,
                offset,
            } => {
                let t = if *lower_t { 't' } else { 'T' };
                let mut s = format!("{y:04}-{m:02}-{d:02}{t}{hh:02}:{mm:02}:{ss:02}{fraction}");
                let offset_ms = match offset {
                    None => zone_offset_ms,
                    Some((0, true)) => {
                        s.push('Z');
                        0
                    }
                    Some((minutes, colon)) => {
                        let (sign, abs) = if *minutes < 0 { ('-', -minutes) } else { ('+', *minutes) };
                        let sep = if *colon { ":" } else { "" };
                        s.push_str(&format!("{sign}{:02}{sep}{:02}", abs / 60, abs % 60));
                        minutes * 60_000
                    }
                };
                let digits = fraction.trim_start_matches('.');
                let ms = format!("{digits:0<3}")[..3].parse::<i64>().unwrap();
                let expected =
                    naive_days(*y, *m, *d) * MS_PER_DAY + hh * MS_PER_HOUR + mm * 60_000 + ss * 1000 + ms - offset_ms;
                (format!("\"{s}\""), expected)
            }
        }
    }
}

#[derive(Debug, Clone)]
enum UserIn {
    Text(String),
    Int(i64),
}

#[derive(Debug, Clone)]
struct Line {
    text: String,
    time_ms: i64,
    event_type: String,
    user_id: String,
    price: f64,
    extras: Vec<(String, serde_json::Value)>,
    zone_offset_ms: i64,
}

prop_compose! {
    fn arb_line()(
        time in arb_time(),
        event_type in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        user in prop_oneof![any::<String>().prop_map(UserIn::Text), any::<i64>().prop_map(UserIn::Int)],
        price in prop_oneof![
            prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
            (-1_000_000i64..1_000_000).prop_map(|c| c as f64 / 100.0),
        ],
        price_as_string in any::<bool>(),
        extras in prop::collection::vec(
            (prop_oneof!["[a-z]{1,3}", any::<String>()], arb_json()), 0..6),
        duplicate_extra in any::<bool>(),
        order in prop::collection::vec(any::<u32>(), 12),
        heavy in any::<bool>(),
        ws in prop::sample::select(vec!["", " ", "\t", " \r\n "]),
        zone_minutes in -18 * 60i64..=18 * 60,
    ) -> Line {
        let zone_offset_ms = zone_minutes * 60_000;
        let string = |s: &str| if heavy { escape_heavily(s) } else { serde_json::to_string(s).unwrap() };
        let (time_json, time_ms) = time.json_and_expected(zone_offset_ms);
        let (user_json, user_id) = match user {
            UserIn::Text(s) => (string(&s), s),
            UserIn::Int(i) => (i.to_string(), i.to_string()),
        };
        let price_json = serde_json::to_string(&price).unwrap();
        let price_json = if price_as_string { format!("\"{price_json}\"") } else { price_json };
        let seeds = ["event_time", "event_type", "user_id", "price"];
        let mut extras: Vec<(String, serde_json::Value)> =
            extras.into_iter().filter(|(k, _)| !seeds.contains(&k.as_str())).collect();
        if duplicate_extra && !extras.is_empty() {
            extras.push((extras[0].0.clone(), serde_json::Value::from("dup")));
        }
        let mut members = vec![
            (string("event_time"), time_json),
            (string("event_type"), string(&event_type)),
            (string("user_id"), user_json),
            (string("price"), price_json),
        ];
        for (k, v) in &extras {
            members.push((string(k), serde_json::to_string(v).unwrap()));
        }
        let mut keyed: Vec<(u32, (String, String))> = order.into_iter().zip(members).collect();
        keyed.sort_by_key(|(o, _)| *o);
        let body: Vec<String> = keyed
            .into_iter()
            .map(|(_, (k, v))| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
            .collect();
        Line {
            text: format!("{ws}{{{}}}{ws}", body.join(",")),
            time_ms,
            event_type,
            user_id,
            price,
            extras,
            zone_offset_ms,
        }
    }
}

/// serde_json's reading of the first JSON value of a line, if that is an
/// object (trailing text ignored, like Jackson).
pub(super) fn serde_first_object(line: &[u8]) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(line);
    match serde_json::Value::deserialize(&mut de) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether a line holds a syntactically valid object is decided exactly
/// as serde_json decides it (reading only the first value), and for a
/// valid event the two agree on the field values.
fn check_against_serde(text: &[u8], zone_offset_ms: i64) -> Result<(), TestCaseError> {
    let ours = parse_event(text, &cfg(zone_offset_ms));
    let reference = serde_first_object(text);
    if let Err(e) = &reference {
        // Numbers beyond f64 are valid JSON that serde_json refuses.
        prop_assume!(!e.contains("number out of range"));
    }
    let ours_object = match &ours {
        Ok(_) => true,
        Err(r) => is_field_level(*r),
    };
    prop_assert_eq!(
        ours_object,
        matches!(reference, Ok(Some(_))),
        "{:?} vs {:?} for {:?}",
        ours,
        reference,
        String::from_utf8_lossy(text)
    );
    if let (Ok(ev), Ok(Some(map))) = (&ours, &reference) {
        if let Some(serde_json::Value::String(s)) = map.get("event_type") {
            prop_assert_eq!(&*ev.event_type, s.as_str());
        }
        match map.get("user_id") {
            Some(serde_json::Value::String(s)) => prop_assert_eq!(&*ev.user_id, s.as_str()),
            // Beyond 64 bits serde_json keeps only a float.
            Some(serde_json::Value::Number(n)) if !n.is_f64() => {
                prop_assert_eq!(&*ev.user_id, n.to_string())
            }
            Some(serde_json::Value::Number(_)) => {}
            other => prop_assert!(false, "user_id {:?}", other),
        }
        if let Some(serde_json::Value::Number(n)) = map.get("price") {
            let p = n.as_f64().unwrap();
            // serde_json's default float parsing may be 1 ulp off.
            let close = (ev.price - p).abs() <= 1e-15 * p.abs() || (ev.price - p).abs() < 1e-300;
            prop_assert!(close, "{} vs {}", ev.price, p);
        }
    }
    Ok(())
}

pub(super) fn is_field_level(r: BadReason) -> bool {
    matches!(
        r,
        BadReason::MissingField(_)
            | BadReason::WrongType(_)
            | BadReason::EmptyEventType
            | BadReason::BadTime
            | BadReason::NonFinitePrice
            | BadReason::FutureTime
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_serde_json_on_valid_lines(line in arb_line()) {
        let ev = parse_event(line.text.as_bytes(), &cfg(line.zone_offset_ms))
            .map_err(|r| TestCaseError::fail(format!("{r:?} for {}", line.text)))?;
        let reference = serde_first_object(line.text.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(ev.time_ms, line.time_ms);
        prop_assert_eq!(&*ev.event_type, reference["event_type"].as_str().unwrap());
        prop_assert_eq!(&*ev.event_type, line.event_type.as_str());
        prop_assert_eq!(&*ev.user_id, line.user_id.as_str());
        prop_assert_eq!(ev.price.to_bits(), line.price.to_bits());
        let mut extras = reference;
        for f in Field::ALL {
            extras.remove(f.key());
        }
        if line.extras.is_empty() {
            prop_assert_eq!(&*ev.extra, "");
        } else {
            let ours: serde_json::Value = serde_json::from_str(&ev.extra).unwrap();
            prop_assert_eq!(ours, serde_json::Value::Object(extras));
        }
    }

    #[test]
    fn fast_decimal_is_correctly_rounded(
        text in "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?",
    ) {
        let expected: f64 = text.parse().unwrap();
        prop_assert_eq!(parse_f64(&text).to_bits(), expected.to_bits(), "{}", text);
        if let Some(fast) = fast_decimal(text.as_bytes()) {
            prop_assert_eq!(fast.to_bits(), expected.to_bits(), "{}", text);
        }
    }

    #[test]
    fn random_bytes_are_classified(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if std::str::from_utf8(&bytes).is_err() {
            prop_assert_eq!(parse_event(&bytes, &cfg(0)), Err(BadReason::InvalidUtf8));
        } else {
            check_against_serde(&bytes, 0)?;
        }
    }

    #[test]
    fn json_like_noise_is_classified(
        open in any::<bool>(),
        noise in "[{}\\[\\]\",:0-9a-z\\\\ .eE+-]{0,80}",
    ) {
        let text = if open { format!("{{{noise}") } else { noise };
        check_against_serde(text.as_bytes(), 0)?;
    }

    /// Damaged lines: we see a syntactically valid object exactly when
    /// serde_json does, and then agree on the field values.
    #[test]
    fn damaged_lines_agree_with_serde_json(
        line in arb_line(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), 0..3u8, prop::sample::select(vec![
                "{", "}", "[", "]", "\"", ",", ":", "\\", "\\u", "0", "-", ".", "e", "t",
                "n", " ", "\t", "\u{0}", "\u{1f}", "é", "😀", "\\ud800",
            ])),
            1..4,
        ),
    ) {
        let mut text = line.text.clone();
        for (index, op, piece) in edits {
            let boundaries: Vec<usize> =
                (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let at = boundaries[index.index(boundaries.len())];
            let next = boundaries.iter().copied().find(|&i| i > at);
            match (op, next) {
                (0, _) | (_, None) => text.insert_str(at, piece),
                (1, Some(next)) => text.replace_range(at..next, ""),
                (_, Some(next)) => text.replace_range(at..next, piece),
            }
        }
        check_against_serde(text.as_bytes(), line.zone_offset_ms)?;
    }

    #[test]
    fn timestamps_match_a_naive_calendar(
        y in 0i64..=9999, m in 0i64..=13, d in 0i64..=32,
        hh in 0i64..=25, mm in 0i64..=61, ss in 0i64..=61,
        fraction in "(\\.[0-9]{0,10})?",
        zone_minutes in -18 * 60i64..=18 * 60,
    ) {
        let s = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{fraction}");
        let zone = zone_minutes * 60_000;
        let digits = fraction.trim_start_matches('.');
        let nanos_zero = digits.bytes().all(|c| c == b'0');
        let valid_date = (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m);
        let midnight = hh == 24 && mm == 0 && ss == 0 && nanos_zero;
        let leap = hh == 23 && mm == 59 && ss == 60;
        let valid = valid_date
            && digits.len() <= 9
            && (midnight || leap || (hh < 24 && mm < 60 && ss < 60));
        let got = parse_timestamp(s.as_bytes(), zone);
        if valid {
            let ms = format!("{digits:0<3}")[..3].parse::<i64>().unwrap();
            let (hh, extra_day) = if midnight { (0, 1) } else { (hh, 0) };
            let ss = ss.min(59);
            let expected = (naive_days(y, m, d) + extra_day) * MS_PER_DAY
                + hh * MS_PER_HOUR + mm * 60_000 + ss * 1000 + ms - zone;
            prop_assert_eq!(got, Ok(expected), "{}", s);
            prop_assert!((MIN_TIME_MS..=MAX_TIME_MS).contains(&expected));
        } else {
            prop_assert_eq!(got, Err(()), "{}", s);
        }
    }
}
