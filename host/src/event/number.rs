//! Prices as doubles: correctly rounded, like Java's `Double.parseDouble`,
//! with Clinger's exact fast path for the usual few-digit decimal.
//!
//! It owns only the arithmetic: the text it is given is already known to be a
//! JSON number. It must not depend on the scanner or the event model.

/// Correctly rounded, like Java's `Double.parseDouble`. The text is a JSON
/// number here, which Rust's grammar includes, so it can't fail; an overflow
/// gives an infinity, which the caller rejects.
#[inline]
pub(super) fn parse_f64(s: &str) -> f64 {
    fast_decimal(s.as_bytes()).unwrap_or_else(|| s.parse().unwrap_or(f64::NAN))
}

/// Powers of ten that are exact doubles.
pub(super) const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Clinger's fast path for the usual price (`29.99`): at most 15 digits and
/// no exponent, so the digits as an integer and the power of ten are both
/// exact doubles, and one correctly rounded division gives the correctly
/// rounded result (the same double `str::parse` gives, in a third of the time).
/// `None` sends anything else to the general algorithm.
#[inline]
pub(super) fn fast_decimal(s: &[u8]) -> Option<f64> {
    let (negative, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    // Digits and at most one dot; 16 bytes keep the integer below 2^63.
    if s.len() > 16 {
        return None;
    }
    let mut mantissa = 0i64;
    let mut dot = None;
    for (i, &c) in s.iter().enumerate() {
        if c.is_ascii_digit() {
            mantissa = mantissa * 10 + i64::from(c - b'0');
        } else if c == b'.' && dot.is_none() {
            dot = Some(i);
        } else {
            return None;
        }
    }
    let fraction_digits = dot.map_or(0, |i| s.len() - i - 1);
    // At most 15 digits: the integer is below 2^53, an exact double.
    if s.len() - usize::from(dot.is_some()) > 15 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction_digits];
    Some(if negative { -value } else { value })
}
