//! `event_time` texts and `time.zone` settings.
//!
//! [`parse_timestamp`] reads `YYYY-MM-DDTHH:MM:SS[.f{0,9}][offset]` into
//! epoch milliseconds as `Instant.parse` would (the fixed head as words, the
//! last valid date remembered per thread); [`parse_zone`] reads a zone
//! setting into an offset. This file owns the calendar (strict proleptic
//! Gregorian dates, Java's `24:00` and leap-second quirks) and offsets.
//!
//! It depends only on the time constants of the parent module: not on the
//! JSON scanner, the event model or the configuration.

use super::{MAX_OFFSET_MS, MS_PER_DAY, MS_PER_HOUR};

/// Parses a `time.zone` setting: `UTC`, `GMT`, `Z` (any case), or a fixed
/// offset `+09:00`, `-05:30`, `+0900`, `+09`, optionally after `UTC`/`GMT`
/// (`UTC+09:00`); at most ±18:00. Returns the offset in milliseconds.
pub fn parse_zone(s: &str) -> Result<i64, String> {
    let upper = s.to_ascii_uppercase();
    if matches!(upper.as_str(), "UTC" | "GMT" | "Z") {
        return Ok(0);
    }
    let offset = upper
        .strip_prefix("UTC")
        .or_else(|| upper.strip_prefix("GMT"))
        .unwrap_or(&upper);
    match offset.as_bytes().first() {
        Some(b'+' | b'-') => parse_offset(offset.as_bytes()),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "invalid time zone {s:?}: expected \"UTC\", \"Z\" or a fixed offset such as \
             \"+09:00\", \"-05:30\" or \"+0900\" (at most ±18:00); named zones are not \
             supported because their offset changes with daylight saving"
        )
    })
}

/// Parses the text of an `event_time` string into epoch milliseconds.
///
/// The layout is `YYYY-MM-DDTHH:MM:SS[.f{0,9}][offset]`, as `Instant.parse`
/// reads it: `T` in any case, 0-9 fraction digits (a bare `.` is fine, a 10th
/// digit is not), a strict proleptic Gregorian date, `24:00:00` with a zero
/// fraction = the next midnight, `23:59:60[.f]` = `23:59:59[.f]`, milliseconds
/// floored. The offset is `Z`/`z`, `±HH:MM`, `±HHMM` or `±HH` (at most ±18:00)
/// and wins over `zone_offset_ms`, which applies when there is none.
#[allow(
    clippy::result_unit_err,
    reason = "the only failure is 'not a valid time', which the caller names"
)]
pub fn parse_timestamp(s: &[u8], zone_offset_ms: i64) -> Result<i64, ()> {
    // The fixed head `YYYY-MM-DDTHH:MM:SS`; a fixed-size array, so every index
    // below is constant and unchecked.
    let Some(head) = s.first_chunk::<19>() else {
        return Err(());
    };
    if head[4] != b'-' || head[7] != b'-' || head[10] | 0x20 != b't' || head[13] != b':' || head[16] != b':' {
        return Err(());
    }
    // Its 14 digits, eight bytes at a time (SWAR): `x` holds digit values
    // (byte ^ '0'), the masks select the digit bytes of each word.
    const A_DIGITS: u64 = 0x00FF_FF00_FFFF_FFFF; // "YYYY-MM-"
    const B_DIGITS: u64 = 0xFFFF_00FF_FF00_FFFF; // "DDTHH:MM"
    const C_DIGITS: u64 = 0xFFFF_0000_0000_0000; // "HH:MM:SS", only SS
    let a = word(head, 0) ^ ASCII_ZEROS;
    let b = word(head, 8) ^ ASCII_ZEROS;
    let c = word(head, 11) ^ ASCII_ZEROS;
    if (non_digits(a) & A_DIGITS) | (non_digits(b) & B_DIGITS) | (non_digits(c) & C_DIGITS) != 0 {
        return Err(());
    }
    let (a, b, c) = (
        digit_pairs(a & A_DIGITS),
        digit_pairs(b & B_DIGITS),
        digit_pairs(c & C_DIGITS),
    );
    let byte = |w: u64, i: u32| ((w >> (8 * i)) & 0xFF) as i64;
    let year = byte(a, 0) * 100 + byte(a, 2);
    let month = byte(a, 5);
    let day = byte(b, 0);
    let mut hour = byte(b, 3);
    let minute = byte(b, 6);
    let mut second = byte(c, 6);

    // The fraction: 0-9 digits, of which only the first three (milliseconds,
    // floored) count; the others are only validated.
    let mut p = 19;
    let mut millis = 0;
    let mut fraction: &[u8] = &[];
    if s.get(p) == Some(&b'.') {
        let rest = &s[p + 1..];
        let digits = rest.iter().take(10).take_while(|c| c.is_ascii_digit()).count();
        if digits > 9 {
            return Err(());
        }
        fraction = &rest[..digits];
        let digit = |i: usize| fraction.get(i).map_or(0, |&c| i64::from(c - b'0'));
        millis = digit(0) * 100 + digit(1) * 10 + digit(2);
        p += 1 + digits;
    }
    let offset_ms = if p == s.len() {
        zone_offset_ms
    } else {
        parse_offset(&s[p..]).ok_or(())?
    };

    // The date's day number: consecutive events nearly always share the
    // date, so the last one is remembered (per thread) with its raw bytes.
    let date = (word(head, 0), u16::from_le_bytes([head[8], head[9]]));
    let days = match LAST_DATE.get() {
        (w, d, days) if (w, d) == date => days,
        _ => {
            if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
                return Err(());
            }
            let days = days_from_civil(year, month, day);
            LAST_DATE.set((date.0, date.1, days));
            days
        }
    };
    let mut next_day = 0;
    if hour == 24 && minute == 0 && second == 0 && fraction.iter().all(|&c| c == b'0') {
        hour = 0;
        next_day = 1;
    } else if hour == 23 && minute == 59 && second == 60 {
        // Java reads the leap second as the second before it.
        second = 59;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(());
    }
    let days = days + next_day;
    Ok(days * MS_PER_DAY + hour * MS_PER_HOUR + minute * 60_000 + second * 1000 + millis - offset_ms)
}

thread_local! {
    /// [`parse_timestamp`]'s last valid date: the raw `YYYY-MM-` word, the
    /// raw `DD`, and its day number. No valid date has an all-zero word.
    static LAST_DATE: std::cell::Cell<(u64, u16, i64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// The eight bytes at `head[i..i + 8]` as a little-endian word.
#[inline(always)]
fn word(head: &[u8; 19], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&head[i..i + 8]);
    u64::from_le_bytes(w)
}

/// For a word of `byte ^ b'0'` values: the high bit of each byte that was
/// not an ASCII digit (value 10 or more). Masking with 0x7F first keeps the
/// addition from carrying into the next byte.
#[inline(always)]
fn non_digits(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    (x | ((x & !HIGH) + 0x7676_7676_7676_7676)) & HIGH
}

/// For a word of digit values (0-9, or 0 in masked bytes): byte `i` becomes
/// the two-digit number of bytes `i` and `i + 1`. Every byte stays below
/// 100, so nothing carries.
#[inline(always)]
fn digit_pairs(x: u64) -> u64 {
    x * 10 + (x >> 8)
}

/// Two ASCII digits at `s[i..i + 2]` (the caller checked the length).
fn two_digits(s: &[u8], i: usize) -> Option<i64> {
    let hi = s[i].wrapping_sub(b'0');
    let lo = s[i + 1].wrapping_sub(b'0');
    (hi < 10 && lo < 10).then(|| i64::from(hi * 10 + lo))
}

/// `Z`/`z`, `±HH:MM`, `±HHMM` or `±HH`, the whole of `s`, at most ±18:00.
fn parse_offset(s: &[u8]) -> Option<i64> {
    let sign = match s.first()? {
        b'Z' | b'z' if s.len() == 1 => return Some(0),
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = match s.len() {
        3 => (two_digits(s, 1)?, 0),
        5 => (two_digits(s, 1)?, two_digits(s, 3)?),
        6 if s[3] == b':' => (two_digits(s, 1)?, two_digits(s, 4)?),
        _ => return None,
    };
    let ms = hours * MS_PER_HOUR + minutes * 60_000;
    (minutes < 60 && ms <= MAX_OFFSET_MS).then_some(sign * ms)
}

#[inline]
pub(super) fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

#[inline]
pub(super) fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
#[inline(always)]
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
