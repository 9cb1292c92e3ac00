//! The fast path for the common layout: the four fields in the order of
//! docs/semantics.md and nothing else, with the usual time and price read where
//! they stand instead of scanned first.
//!
//! It only ever says "this line is this event" or "not mine" (`None`): it
//! never classifies a bad line, so a line it refuses goes the general way
//! (`object.rs`), which decides. Its values are read by the same functions
//! as there (`fields.rs`), so both give the same event. It must not depend on
//! the general way.

use std::borrow::Cow;

use super::fields::{event_time_of, event_type_of, price_of, user_id_of};
use super::json::{Value, at, scan_value, skip_ws};
use super::number::POW10;
use super::timestamp::parse_timestamp;
use super::{Event, MAX_DEPTH, ParserConfig};

/// The layout nearly every producer writes: the four fields in the order of
/// docs/semantics.md, nothing else, at most one space after `:` and `,`, nothing
/// but whitespace after the object. Its values are scanned and read by the
/// same functions as in `parse_object` (`object.rs`), so the event is the
/// same; any other line, and any line with a bad value, returns `None` and
/// goes the general way, which also classifies what is wrong.
#[inline]
pub(super) fn parse_common<'a>(text: &'a str, cfg: &ParserConfig) -> Option<Event<'a>> {
    let b = text.as_bytes();
    // `name` at `p` (compared as a fixed-size array: no memcmp call), then
    // at most one space, then a value.
    fn member<const N: usize>(b: &[u8], p: usize, name: &[u8; N]) -> Option<Value> {
        if b.get(p..)?.first_chunk::<N>()? != name {
            return None;
        }
        let p = p + N;
        scan_value(b, p + usize::from(b.get(p) == Some(&b' ')), MAX_DEPTH - 1).ok()
    }
    // `,` and at most one space.
    let next = |p: usize| match b.get(p) {
        Some(b',') => Some(p + 1 + usize::from(b.get(p + 1) == Some(&b' '))),
        _ => None,
    };
    // The usual time and price are read where they stand; any other value
    // is scanned first, then read, as the general way does.
    if b.first_chunk::<14>()? != b"{\"event_time\":" {
        return None;
    }
    let (time_ms, time_end) = match common_time(b, 14 + usize::from(b.get(14) == Some(&b' ')), cfg.zone_offset_ms) {
        Some(read) => read,
        None => {
            let v = member(b, 0, b"{\"event_time\":")?;
            (event_time_of(text, &v, cfg.zone_offset_ms).ok()?, v.end)
        }
    };
    let event_type = member(b, next(time_end)?, b"\"event_type\":")?;
    let user_id = member(b, next(event_type.end)?, b"\"user_id\":")?;
    let p = next(user_id.end)?;
    let (price, price_end) = match b.get(p..)?.strip_prefix(b"\"price\":") {
        Some(rest) => match common_price(b, p + 8 + usize::from(rest.first() == Some(&b' '))) {
            Some(read) => read,
            None => {
                let v = member(b, p, b"\"price\":")?;
                (price_of(text, &v).ok()?, v.end)
            }
        },
        None => return None,
    };
    if b.get(price_end) != Some(&b'}') || skip_ws(b, price_end + 1) != b.len() {
        return None;
    }
    if let Some(skew) = cfg.max_future_skew_ms
        && time_ms > cfg.now_ms.saturating_add(skew)
    {
        return None;
    }
    Some(Event {
        time_ms,
        event_type: event_type_of(text, &event_type).ok()?,
        user_id: user_id_of(text, &user_id).ok()?,
        price,
        extra: Cow::Borrowed(""),
    })
}

/// The usual time at `p`: a quoted `YYYY-MM-DDTHH:MM:SS`, read without
/// scanning the string first (19 bytes [`parse_timestamp`] accepts hold no
/// quote, backslash or control character, so they are the whole string).
/// Returns the time and the end; `None` for any other value.
#[inline(always)]
fn common_time(b: &[u8], p: usize, zone_offset_ms: i64) -> Option<(i64, usize)> {
    let quoted = b.get(p..p + 21)?;
    if quoted[0] != b'"' || quoted[20] != b'"' {
        return None;
    }
    let time = parse_timestamp(&quoted[1..20], zone_offset_ms).ok()?;
    Some((time, p + 21))
}

/// The usual price at `p`, `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 15
/// digits, scanned and read in one pass (where the general way scans with
/// `scan_number` (`json.rs`) and reads with
/// [`fast_decimal`](super::number::fast_decimal), the same arithmetic).
/// Returns the value and the end. `None` for anything else (an exponent,
/// more digits, a leading zero, not a number), which goes the general way.
#[inline(always)]
fn common_price(b: &[u8], mut p: usize) -> Option<(f64, usize)> {
    let negative = at(b, p) == b'-';
    p += usize::from(negative);
    let first = p;
    let mut mantissa = 0i64;
    let mut digits = |p: &mut usize| {
        let start = *p;
        while let c @ b'0'..=b'9' = at(b, *p) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
            *p += 1;
        }
        *p - start
    };
    let int_digits = digits(&mut p);
    if int_digits == 0 || (int_digits > 1 && b[first] == b'0') {
        return None;
    }
    let mut fraction_digits = 0;
    if at(b, p) == b'.' {
        p += 1;
        fraction_digits = digits(&mut p);
        if fraction_digits == 0 {
            return None;
        }
    }
    // Past 15 digits the integer may not be an exact double; an exponent
    // needs the general algorithm.
    if int_digits + fraction_digits > 15 || at(b, p) | 0x20 == b'e' {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction_digits];
    Some((if negative { -value } else { value }, p))
}
