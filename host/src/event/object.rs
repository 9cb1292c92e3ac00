//! The general way: any line. The object's members in any order, unknown
//! fields kept as extras, repeated keys (last wins), and the classification
//! of every bad line into exactly one [`BadReason`], in the order the parent
//! module's doc gives.
//!
//! It owns walking the top-level object and the check order; the JSON
//! grammar is `json.rs`'s and the field values are `fields.rs`'s. It must not
//! depend on the fast path, which relies on this file for every line it
//! refuses.

use std::borrow::Cow;
use std::collections::HashMap;

use super::fields::{event_time_of, event_type_of, price_of, user_id_of};
use super::json::{Value, at, classify_root, decode, scan_string, scan_value, skip_ws};
use super::{BadReason, Event, Field, MAX_DEPTH, ParserConfig};

/// Any line: the object's members in any order, extra fields, every class of
/// bad input.
pub(super) fn parse_general<'a>(text: &'a str, cfg: &ParserConfig) -> Result<Event<'a>, BadReason> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    match b.get(start) {
        None => return Err(BadReason::Empty),
        Some(b'{') => {}
        Some(_) => return Err(classify_root(b, start)),
    }
    parse_object(text, start, cfg)
}

/// A top-level member that is not one of the four fields.
struct Member<'a> {
    /// Decoded, for finding duplicates.
    key: Cow<'a, str>,
    /// Raw key text, quotes included.
    key_raw: &'a str,
    value: Value,
}

/// Scans the top-level object whose `{` is at `p` and makes the event.
///
/// Each field's value is interpreted as soon as it is scanned and kept as a
/// whole result in a local; a repeated key overwrites it (last wins). Keeping
/// scanned spans in an array to read back at the end was a third slower:
/// the partial writes and whole reads stalled on store forwarding.
#[inline(always)]
fn parse_object<'a>(text: &'a str, p: usize, cfg: &ParserConfig) -> Result<Event<'a>, BadReason> {
    let b = text.as_bytes();
    // `None`: not seen; `Some(Err(_))`: seen, with a bad value.
    let mut time_ms = None;
    let mut event_type = None;
    let mut user_id = None;
    let mut price = None;
    // Stays unallocated for the common line without extra fields.
    let mut extras: Vec<Member<'a>> = Vec::new();

    let mut p = skip_ws(b, p + 1);
    if at(b, p) != b'}' {
        loop {
            if at(b, p) != b'"' {
                return Err(BadReason::NotJson);
            }
            let key_start = p;
            // The four field names, written plainly as they nearly always are,
            // skip the general string scan and decoding.
            let (field, key_end) = match known_key(b, p + 1) {
                Some((field, end)) => (Ok(field), end),
                None => {
                    let (end, escaped) = scan_string(b, p + 1)?;
                    let key = decode(&text[p + 1..end - 1], escaped);
                    (Field::from_key(key.as_bytes()).ok_or(key), end)
                }
            };
            p = skip_ws(b, key_end);
            if at(b, p) != b':' {
                return Err(BadReason::NotJson);
            }
            p = skip_ws(b, p + 1);
            // The object itself is one level.
            let value = scan_value(b, p, MAX_DEPTH - 1)?;
            p = skip_ws(b, value.end);
            match field {
                Ok(Field::EventTime) => {
                    time_ms = Some(event_time_of(text, &value, cfg.zone_offset_ms));
                }
                Ok(Field::EventType) => event_type = Some(event_type_of(text, &value)),
                Ok(Field::UserId) => user_id = Some(user_id_of(text, &value)),
                Ok(Field::Price) => price = Some(price_of(text, &value)),
                Err(key) => extras.push(Member {
                    key,
                    key_raw: &text[key_start..key_end],
                    value,
                }),
            }
            match at(b, p) {
                b',' => p = skip_ws(b, p + 1),
                b'}' => break,
                _ => return Err(BadReason::NotJson),
            }
        }
    }

    // The first value is complete, valid JSON; now the fields, in order.
    let time_ms = time_ms.ok_or(BadReason::MissingField(Field::EventTime))??;
    let event_type = event_type.ok_or(BadReason::MissingField(Field::EventType))??;
    let user_id = user_id.ok_or(BadReason::MissingField(Field::UserId))??;
    let price = price.ok_or(BadReason::MissingField(Field::Price))??;
    if let Some(skew) = cfg.max_future_skew_ms
        && time_ms > cfg.now_ms.saturating_add(skew)
    {
        return Err(BadReason::FutureTime);
    }
    let extra = if extras.is_empty() {
        Cow::Borrowed("")
    } else {
        Cow::Owned(render_extras(text, &extras))
    };
    Ok(Event {
        time_ms,
        event_type,
        user_id,
        price,
        extra,
    })
}

/// A field name written without escapes at `q` (just after the opening
/// quote): the field and the position after the closing quote.
#[inline(always)]
fn known_key(b: &[u8], q: usize) -> Option<(Field, usize)> {
    let rest = b.get(q..)?;
    let (field, len) = match rest.first()? {
        b'e' if rest.starts_with(b"event_time\"") => (Field::EventTime, 11),
        b'e' if rest.starts_with(b"event_type\"") => (Field::EventType, 11),
        b'u' if rest.starts_with(b"user_id\"") => (Field::UserId, 8),
        b'p' if rest.starts_with(b"price\"") => (Field::Price, 6),
        _ => return None,
    };
    Some((field, q + len))
}

/// The extra members as one JSON object text, a repeated key once (at its
/// first position, with its last value).
fn render_extras(text: &str, extras: &[Member<'_>]) -> String {
    let len = extras
        .iter()
        .map(|m| m.key_raw.len() + m.value.end - m.value.start + 2)
        .sum::<usize>();
    let mut out = String::with_capacity(len + 1);
    let push = |out: &mut String, key: &Member<'_>, value: &Member<'_>| {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(key.key_raw);
        out.push(':');
        out.push_str(value.value.raw(text));
    };
    // Few extras: a quadratic scan beats hashing. Many: a map of each key's
    // last index, so a line with thousands of keys stays linear.
    if extras.len() <= 16 {
        for (i, m) in extras.iter().enumerate() {
            if extras[..i].iter().any(|e| e.key == m.key) {
                continue;
            }
            let last = extras[i..].iter().rev().find(|e| e.key == m.key).unwrap_or(m);
            push(&mut out, m, last);
        }
    } else {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(extras.len());
        for (i, m) in extras.iter().enumerate() {
            last.insert(m.key.as_ref(), i);
        }
        for m in extras {
            if let Some(i) = last.remove(m.key.as_ref()) {
                push(&mut out, m, &extras[i]);
            }
        }
    }
    out.push('}');
    out
}
