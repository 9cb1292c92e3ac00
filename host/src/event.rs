//! The event model and its parser: one input line in, one [`Event`] or one
//! [`BadReason`] out.
//!
//! This module owns what a valid event is (SEMANTICS.md, "Events" and "Time")
//! and the classification of everything that is not. It is pure: no I/O, no
//! clock (the caller captures `now_ms` in [`ParserConfig`]), and it depends on
//! no other stage. Sources call [`parse_event`]; everything downstream only ever
//! sees valid events, and every bad line gets exactly one [`BadReason`], whose
//! [`BadReason::as_str`] is the stable metric / dead-letter label.
//!
//! # Why a hand-rolled scanner
//!
//! The engine must take 2 M events/s on one core: 500 ns per event for
//! everything, of which parsing may take a small part. A JSON DOM
//! (`serde_json::Value`) allocates for every key and value and takes several
//! times that. This scanner walks the line once, validates the complete first
//! JSON value (it must, to skip unknown fields and to tell "not JSON" from
//! "not an object"), and borrows every string that has no escapes: a typical
//! line allocates nothing; only escaped strings and lines with extra fields
//! do. The hot paths are the four field names written plainly, strings
//! scanned eight bytes at a time, the fixed timestamp layout read as words,
//! and prices with few digits (Clinger's exact fast path).
//!
//! # What is accepted
//!
//! The rules are Flink's (Jackson 2.14 `readTree` defaults plus
//! `Instant.parse(event_time + zone)`), see the anchor README, except where
//! SEMANTICS.md deliberately does better:
//!
//! - The line must be valid UTF-8 (checked on the whole line, including text
//!   after the object). Leading JSON whitespace is skipped; the first JSON value
//!   must be complete, valid, strict JSON (no comments, single quotes, trailing
//!   commas, `NaN`/`Infinity`, leading zeros or raw control characters in
//!   strings) and an object. Anything after it is ignored, like Jackson with
//!   `FAIL_ON_TRAILING_TOKENS` off. A root scalar keeps Jackson's two root rules
//!   (a number must be followed by whitespace or the end, `true`/`false`/`null`
//!   by a non-identifier character); they only decide between
//!   [`BadReason::NotJson`] and [`BadReason::NotObject`].
//! - Duplicate keys: the last one wins, for the four fields and for extras.
//! - `event_time`: a string `YYYY-MM-DDTHH:MM:SS[.f{0,9}]` with Java's quirks
//!   (see [`parse_timestamp`]), read in the configured zone; with an explicit
//!   offset (`Z`, `+09:00`, `-0530`, `+09`) the offset wins (Flink rejects
//!   these). Or a JSON integer: epoch milliseconds (Flink rejects these).
//! - `event_type`: a non-empty string.
//! - `user_id`: a string, or a JSON integer read as its decimal text (Flink
//!   rejects integers).
//! - `price`: a finite JSON number, or a string holding exactly a JSON number
//!   (`"1.0"`, `"2.5e0"`; not `" 1"`, `"+1"`, `".5"`, `"NaN"`). Flink rejects
//!   strings and accepts a number that overflows to infinity; we reject that.
//! - Other top-level fields are kept verbatim in [`Event::extra`].
//!
//! # Decisions where the anchor is silent
//!
//! - Order of checks, first failure wins: UTF-8, empty line, JSON syntax, root
//!   is an object, then the fields in the order `event_time`, `event_type`,
//!   `user_id`, `price` (each: missing, then type, then value), and last the
//!   future-skew check on an otherwise valid event.
//! - A `\u` escape naming a lone UTF-16 surrogate (Jackson takes it into a Java
//!   string) has no UTF-8 form, so it is [`BadReason::InvalidUtf8`], wherever it
//!   is in the first value.
//! - Nesting deeper than [`MAX_DEPTH`] (Jackson 2.15+'s default limit) is
//!   [`BadReason::TooDeep`], so skipping needs no allocation and no recursion.
//! - A byte-order mark is not whitespace: a line starting with one is not JSON.
//! - Every accepted time lies in [`MIN_TIME_MS`]`..=`[`MAX_TIME_MS`] (years
//!   0000-9999, which is all the string form can express); an integer outside
//!   is [`BadReason::BadTime`]. Downstream window arithmetic can't overflow.
//! - An integer `user_id` of `-0` is `"0"` (the decimal text of the integer).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// Deepest nesting of JSON containers accepted on a line, the top-level object
/// included; Jackson 2.15+ has the same default limit.
pub const MAX_DEPTH: usize = 1000;

/// Earliest accepted event time: 0000-01-01T00:00:00 at +18:00.
pub const MIN_TIME_MS: i64 = -62_167_219_200_000 - MAX_OFFSET_MS;

/// Latest accepted event time: 9999-12-31T24:00:00 at -18:00.
pub const MAX_TIME_MS: i64 = 253_402_300_800_000 + MAX_OFFSET_MS;

/// Largest zone offset, as in `java.time.ZoneOffset`.
const MAX_OFFSET_MS: i64 = 18 * MS_PER_HOUR;

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// One valid event. Strings borrow from the input line unless they had to be
/// unescaped (or, for `extra`, assembled); [`Event::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Event time in epoch milliseconds, within [`MIN_TIME_MS`]`..=`[`MAX_TIME_MS`].
    pub time_ms: i64,
    /// Never empty; case-sensitive.
    pub event_type: Cow<'a, str>,
    /// A string, or an integer rendered as decimal text.
    pub user_id: Cow<'a, str>,
    /// Always finite.
    pub price: f64,
    /// The other top-level fields as one JSON object text (e.g.
    /// `{"sku":"x","n":1}`), "" when none. Keys and values are the input's
    /// text verbatim; a repeated key appears once, at its first position, with
    /// its last value (so every JSON reader sees the same object).
    pub extra: Cow<'a, str>,
}

impl Event<'_> {
    /// The same event, owning its strings (for buffering past the input line).
    pub fn into_owned(self) -> Event<'static> {
        Event {
            time_ms: self.time_ms,
            event_type: Cow::Owned(self.event_type.into_owned()),
            user_id: Cow::Owned(self.user_id.into_owned()),
            price: self.price,
            extra: Cow::Owned(self.extra.into_owned()),
        }
    }
}

/// One of the four fields every event must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    EventTime,
    EventType,
    UserId,
    Price,
}

impl Field {
    /// In the order they are checked.
    pub const ALL: [Field; 4] = [Field::EventTime, Field::EventType, Field::UserId, Field::Price];

    /// The field a (decoded) JSON key names, if any.
    pub fn from_key(key: &[u8]) -> Option<Field> {
        match key {
            b"event_time" => Some(Field::EventTime),
            b"event_type" => Some(Field::EventType),
            b"user_id" => Some(Field::UserId),
            b"price" => Some(Field::Price),
            _ => None,
        }
    }

    /// The JSON key.
    pub const fn key(self) -> &'static str {
        match self {
            Field::EventTime => "event_time",
            Field::EventType => "event_type",
            Field::UserId => "user_id",
            Field::Price => "price",
        }
    }

    const fn expected(self) -> &'static str {
        match self {
            Field::EventTime => "a date-time string or integer epoch milliseconds",
            Field::EventType => "a string",
            Field::UserId => "a string or an integer",
            Field::Price => "a number or a numeric string",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why a line is a bad record. Exactly one per bad line; see the module doc for
/// the order in which they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BadReason {
    #[error("the line is not valid UTF-8 (or a \\u escape names a lone UTF-16 surrogate)")]
    InvalidUtf8,
    #[error("the line is empty or only whitespace")]
    Empty,
    #[error("the line does not start with a complete, valid JSON value")]
    NotJson,
    #[error("the JSON value nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the JSON value is not an object")]
    NotObject,
    #[error("field `{0}` is missing")]
    MissingField(Field),
    #[error("field `{0}` has the wrong type: expected {expected}", expected = .0.expected())]
    WrongType(Field),
    #[error("field `event_type` is an empty string")]
    EmptyEventType,
    #[error(
        "field `event_time` is not a valid date-time (YYYY-MM-DDTHH:MM:SS[.fffffffff][offset]) \
         or is out of range"
    )]
    BadTime,
    #[error("field `price` is not a finite number")]
    NonFinitePrice,
    #[error("field `event_time` is further ahead of the wall clock than max-future-skew allows")]
    FutureTime,
}

impl BadReason {
    /// Every reason, for registering metrics up front.
    pub const ALL: &'static [BadReason] = &[
        BadReason::InvalidUtf8,
        BadReason::Empty,
        BadReason::NotJson,
        BadReason::TooDeep,
        BadReason::NotObject,
        BadReason::MissingField(Field::EventTime),
        BadReason::MissingField(Field::EventType),
        BadReason::MissingField(Field::UserId),
        BadReason::MissingField(Field::Price),
        BadReason::WrongType(Field::EventTime),
        BadReason::WrongType(Field::EventType),
        BadReason::WrongType(Field::UserId),
        BadReason::WrongType(Field::Price),
        BadReason::EmptyEventType,
        BadReason::BadTime,
        BadReason::NonFinitePrice,
        BadReason::FutureTime,
    ];

    /// Stable snake_case label for metrics and the dead-letter output.
    pub const fn as_str(&self) -> &'static str {
        match self {
            BadReason::InvalidUtf8 => "invalid_utf8",
            BadReason::Empty => "empty",
            BadReason::NotJson => "not_json",
            BadReason::TooDeep => "too_deep",
            BadReason::NotObject => "not_object",
            BadReason::MissingField(Field::EventTime) => "missing_event_time",
            BadReason::MissingField(Field::EventType) => "missing_event_type",
            BadReason::MissingField(Field::UserId) => "missing_user_id",
            BadReason::MissingField(Field::Price) => "missing_price",
            BadReason::WrongType(Field::EventTime) => "wrong_type_event_time",
            BadReason::WrongType(Field::EventType) => "wrong_type_event_type",
            BadReason::WrongType(Field::UserId) => "wrong_type_user_id",
            BadReason::WrongType(Field::Price) => "wrong_type_price",
            BadReason::EmptyEventType => "empty_event_type",
            BadReason::BadTime => "bad_time",
            BadReason::NonFinitePrice => "non_finite_price",
            BadReason::FutureTime => "future_time",
        }
    }
}

/// What the parser needs to know besides the line. `Default` is UTC with no
/// future-skew check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParserConfig {
    /// Offset of `time.zone` from UTC ([`parse_zone`]); applies only to times
    /// written without an offset.
    pub zone_offset_ms: i64,
    /// `max-future-skew`; `None` turns the check off (file replays of old data
    /// don't need it, and tests stay independent of the clock).
    pub max_future_skew_ms: Option<i64>,
    /// Wall clock in epoch ms, captured by the caller (per batch is enough), so
    /// that parsing stays a pure function.
    pub now_ms: i64,
}

/// Parses one line (without its line terminator) into an event.
pub fn parse_event<'a>(line: &'a [u8], cfg: &ParserConfig) -> Result<Event<'a>, BadReason> {
    // One pass over the whole line: rejects invalid UTF-8 even in ignored
    // trailing text (Flink's reader would silently turn it into U+FFFD), and
    // gives a `&str` so that fields borrow from it.
    let text = if is_ascii(line) {
        // SAFETY: ASCII is UTF-8. Nearly every line is ASCII, and this check
        // takes a fifth of the instructions `from_utf8` does on one.
        unsafe { std::str::from_utf8_unchecked(line) }
    } else {
        std::str::from_utf8(line).map_err(|_| BadReason::InvalidUtf8)?
    };
    match parse_common(text, cfg) {
        Some(event) => Ok(event),
        None => parse_general(text, cfg),
    }
}

/// Whether every byte is ASCII: sixteen bytes a step, the tail as one
/// overlapping word (`<[u8]>::is_ascii` goes a byte at a time here).
#[inline]
fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |c: &[u8]| u64::from_le_bytes(c[..8].try_into().expect("eight bytes"));
    if b.len() < 8 {
        return b.iter().all(|c| c.is_ascii());
    }
    let mut chunks = b.chunks_exact(16);
    let mut any = word(&b[b.len() - 8..]);
    for c in &mut chunks {
        any |= word(c) | word(&c[8..]);
    }
    if chunks.remainder().len() >= 8 {
        any |= word(chunks.remainder());
    }
    any & HIGH == 0
}

/// Any line: the object's members in any order, extra fields, every class of
/// bad input.
fn parse_general<'a>(text: &'a str, cfg: &ParserConfig) -> Result<Event<'a>, BadReason> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    match b.get(start) {
        None => return Err(BadReason::Empty),
        Some(b'{') => {}
        Some(_) => return Err(classify_root(b, start)),
    }
    parse_object(text, start, cfg)
}

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
fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

#[inline]
fn days_in_month(y: i64, m: i64) -> i64 {
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

// ---------------------------------------------------------------------------
// The JSON scanner. Positions are byte indices into the line; every structural
// byte is ASCII, so they are also char boundaries of the validated `&str`.

/// Why the scanner gave up on the first value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanError {
    Syntax,
    LoneSurrogate,
    TooDeep,
}

impl From<ScanError> for BadReason {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Syntax => BadReason::NotJson,
            ScanError::LoneSurrogate => BadReason::InvalidUtf8,
            ScanError::TooDeep => BadReason::TooDeep,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Null,
    Object,
    Array,
}

/// A scanned value: its raw text is `start..end` (quotes included).
#[derive(Debug, Clone, Copy)]
struct Value {
    kind: Kind,
    start: usize,
    end: usize,
    /// A string with at least one escape, so it can't be borrowed as is.
    escaped: bool,
}

impl Value {
    #[inline]
    fn raw<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }

    /// The decoded contents of a string value.
    #[inline(always)]
    fn string<'a>(&self, text: &'a str) -> Cow<'a, str> {
        decode(&text[self.start + 1..self.end - 1], self.escaped)
    }
}

/// A top-level member that is not one of the four fields.
struct Member<'a> {
    /// Decoded, for finding duplicates.
    key: Cow<'a, str>,
    /// Raw key text, quotes included.
    key_raw: &'a str,
    value: Value,
}

/// The byte at `p`, or 0 past the end. NUL is invalid everywhere the scanner
/// uses this, just like the end of the line, so both take the same error path.
#[inline(always)]
fn at(b: &[u8], p: usize) -> u8 {
    b.get(p).copied().unwrap_or(0)
}

#[inline(always)]
fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while let Some(&c) = b.get(p) {
        // Usually the first byte is a token: one comparison decides.
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        p += 1;
    }
    p
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

/// The layout nearly every producer writes: the four fields in the order of
/// SEMANTICS.md, nothing else, at most one space after `:` and `,`, nothing
/// but whitespace after the object. Its values are scanned and read by the
/// same functions as in [`parse_object`], so the event is the same; any
/// other line, and any line with a bad value, returns `None` and goes the
/// general way, which also classifies what is wrong.
#[inline]
fn parse_common<'a>(text: &'a str, cfg: &ParserConfig) -> Option<Event<'a>> {
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
/// [`scan_number`] and reads with [`fast_decimal`], the same arithmetic).
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

/// Classifies a line whose first value does not start with `{`.
fn classify_root(b: &[u8], p: usize) -> BadReason {
    let value = match scan_value(b, p, MAX_DEPTH) {
        Ok(value) => value,
        Err(e) => return e.into(),
    };
    let next = b.get(value.end).copied();
    let root_rule_broken = match value.kind {
        // Jackson's `_verifyRootSpace`.
        Kind::Int | Kind::Float => !matches!(next, None | Some(b' ' | b'\t' | b'\n' | b'\r')),
        // Jackson's `_checkMatchEnd` (a Java identifier character may not
        // follow; any non-ASCII character is taken as one).
        Kind::Bool | Kind::Null => {
            matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
        }
        _ => false,
    };
    if root_rule_broken {
        BadReason::NotJson
    } else {
        BadReason::NotObject
    }
}

/// Scans the value starting at `p` (whitespace already skipped), allowing
/// `depth_budget` levels of containers.
#[inline(always)]
fn scan_value(b: &[u8], p: usize, depth_budget: usize) -> Result<Value, ScanError> {
    let (kind, end, escaped) = match at(b, p) {
        b'"' => {
            let (end, escaped) = scan_string(b, p + 1)?;
            (Kind::Str, end, escaped)
        }
        b'{' => (Kind::Object, skip_container(b, p, depth_budget)?, false),
        b'[' => (Kind::Array, skip_container(b, p, depth_budget)?, false),
        _ => {
            let (end, kind) = scan_bare_scalar(b, p)?;
            (kind, end, false)
        }
    };
    Ok(Value {
        kind,
        start: p,
        end,
        escaped,
    })
}

/// A number or `true`/`false`/`null` at `p`; returns its end and kind.
#[inline(always)]
fn scan_bare_scalar(b: &[u8], p: usize) -> Result<(usize, Kind), ScanError> {
    let literal = |word: &[u8], kind| match b.get(p..p + word.len()) {
        Some(w) if w == word => Ok((p + word.len(), kind)),
        _ => Err(ScanError::Syntax),
    };
    match at(b, p) {
        b'-' | b'0'..=b'9' => {
            let (end, integer) = scan_number(b, p)?;
            Ok((end, if integer { Kind::Int } else { Kind::Float }))
        }
        b't' => literal(b"true", Kind::Bool),
        b'f' => literal(b"false", Kind::Bool),
        b'n' => literal(b"null", Kind::Null),
        _ => Err(ScanError::Syntax),
    }
}

/// Any scalar (string included) at `p`; returns its end.
#[inline]
fn scan_scalar(b: &[u8], p: usize) -> Result<usize, ScanError> {
    if at(b, p) == b'"' {
        Ok(scan_string(b, p + 1)?.0)
    } else {
        Ok(scan_bare_scalar(b, p)?.0)
    }
}

/// Skips the object or array whose opening bracket is at `p`; returns the
/// position after its closing bracket. Kept out of line: the common line has
/// no containers below the top level.
#[inline(never)]
fn skip_container(b: &[u8], mut p: usize, max_depth: usize) -> Result<usize, ScanError> {
    // One bit per open container (1 = object): no allocation, no recursion.
    let mut is_object = [0u64; MAX_DEPTH.div_ceil(64)];
    let mut depth = 0usize;
    let top_is_object = |stack: &[u64], depth: usize| {
        let i = depth - 1;
        (stack[i / 64] >> (i % 64)) & 1 == 1
    };
    'open: loop {
        // Here b[p] is `{` or `[`.
        if depth >= max_depth {
            return Err(ScanError::TooDeep);
        }
        let object = at(b, p) == b'{';
        let bit = 1u64 << (depth % 64);
        if object {
            is_object[depth / 64] |= bit;
        } else {
            is_object[depth / 64] &= !bit;
        }
        depth += 1;
        p = skip_ws(b, p + 1);
        if at(b, p) == if object { b'}' } else { b']' } {
            depth -= 1;
            p += 1;
        } else {
            if object {
                p = scan_key(b, p)?;
            }
            if let b'{' | b'[' = at(b, p) {
                continue 'open;
            }
            p = scan_scalar(b, p)?;
        }
        // After a complete value: separators and closing brackets.
        loop {
            if depth == 0 {
                return Ok(p);
            }
            let object = top_is_object(&is_object, depth);
            p = skip_ws(b, p);
            match at(b, p) {
                b',' => {
                    p = skip_ws(b, p + 1);
                    if object {
                        p = scan_key(b, p)?;
                    }
                    if let b'{' | b'[' = at(b, p) {
                        continue 'open;
                    }
                    p = scan_scalar(b, p)?;
                }
                b'}' if object => {
                    depth -= 1;
                    p += 1;
                }
                b']' if !object => {
                    depth -= 1;
                    p += 1;
                }
                _ => return Err(ScanError::Syntax),
            }
        }
    }
}

/// `"key"` `:` inside a skipped object; returns the position of the value.
#[inline]
fn scan_key(b: &[u8], p: usize) -> Result<usize, ScanError> {
    if at(b, p) != b'"' {
        return Err(ScanError::Syntax);
    }
    let p = skip_ws(b, scan_string(b, p + 1)?.0);
    if at(b, p) != b':' {
        return Err(ScanError::Syntax);
    }
    Ok(skip_ws(b, p + 1))
}

/// JSON number grammar from `p`; returns its end and whether it is an integer
/// (no fraction, no exponent).
#[inline]
fn scan_number(b: &[u8], mut p: usize) -> Result<(usize, bool), ScanError> {
    if at(b, p) == b'-' {
        p += 1;
    }
    match at(b, p) {
        b'0' => p += 1,
        b'1'..=b'9' => p = skip_digits(b, p + 1),
        _ => return Err(ScanError::Syntax),
    }
    let mut integer = true;
    if at(b, p) == b'.' {
        integer = false;
        if !at(b, p + 1).is_ascii_digit() {
            return Err(ScanError::Syntax);
        }
        p = skip_digits(b, p + 1);
    }
    if at(b, p) | 0x20 == b'e' {
        integer = false;
        p += 1;
        if let b'+' | b'-' = at(b, p) {
            p += 1;
        }
        if !at(b, p).is_ascii_digit() {
            return Err(ScanError::Syntax);
        }
        p = skip_digits(b, p + 1);
    }
    Ok((p, integer))
}

#[inline(always)]
fn skip_digits(b: &[u8], mut p: usize) -> usize {
    while at(b, p).is_ascii_digit() {
        p += 1;
    }
    p
}

/// Whether all of `s` is one JSON number.
fn is_json_number(s: &[u8]) -> bool {
    matches!(scan_number(s, 0), Ok((end, _)) if end == s.len())
}

/// Scans a string whose opening quote is at `p - 1`; returns the position
/// after the closing quote and whether the string has escapes.
#[inline(always)]
fn scan_string(b: &[u8], mut p: usize) -> Result<(usize, bool), ScanError> {
    let mut escaped = false;
    loop {
        p = skip_plain(b, p);
        match b.get(p) {
            Some(b'"') => return Ok((p + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                p = scan_escape(b, p + 1)?;
            }
            // End of line, or a raw control character.
            _ => return Err(ScanError::Syntax),
        }
    }
}

/// Position of the first `"`, `\` or control character at or after `p`.
#[inline(always)]
fn skip_plain(b: &[u8], mut p: usize) -> usize {
    // Eight bytes at a time (SWAR): the lowest flagged byte of each test is
    // exact (borrows only run upwards), so the lowest of their union is too.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(p..p + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if hits != 0 {
            return p + (hits.trailing_zeros() / 8) as usize;
        }
        p += 8;
    }
    while let Some(&c) = b.get(p) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        p += 1;
    }
    p
}

/// Validates the escape after a backslash at `p - 1`; returns its end.
#[inline]
fn scan_escape(b: &[u8], p: usize) -> Result<usize, ScanError> {
    match at(b, p) {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(p + 1),
        b'u' => {
            let unit = hex4(b, p + 1).ok_or(ScanError::Syntax)?;
            let p = p + 5;
            match unit {
                0xD800..=0xDBFF => {
                    if at(b, p) != b'\\' || at(b, p + 1) != b'u' {
                        return Err(ScanError::LoneSurrogate);
                    }
                    match hex4(b, p + 2).ok_or(ScanError::Syntax)? {
                        0xDC00..=0xDFFF => Ok(p + 6),
                        _ => Err(ScanError::LoneSurrogate),
                    }
                }
                0xDC00..=0xDFFF => Err(ScanError::LoneSurrogate),
                _ => Ok(p),
            }
        }
        _ => Err(ScanError::Syntax),
    }
}

#[inline]
fn hex4(b: &[u8], p: usize) -> Option<u32> {
    let mut v = 0;
    for &c in b.get(p..p + 4)? {
        v = (v << 4) | char::from(c).to_digit(16)?;
    }
    Some(v)
}

/// The contents of a validated string (between the quotes).
#[inline]
fn decode(inner: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        Cow::Owned(unescape(inner))
    } else {
        Cow::Borrowed(inner)
    }
}

/// Resolves the escapes of a string that [`scan_string`] accepted.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    while let Some(offset) = memchr::memchr(b'\\', &b[run..]) {
        let slash = run + offset;
        out.push_str(&s[run..slash]);
        let (c, len) = match b.get(slash + 1) {
            Some(b'"') => ('"', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'/') => ('/', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => unescape_unicode(b, slash + 2),
            // Unreachable after validation; step over the backslash only, so
            // the next slice still starts on a char boundary.
            _ => ('\u{FFFD}', 1),
        };
        out.push(c);
        run = slash + len;
    }
    out.push_str(&s[run..]);
    out
}

/// The character of `\uXXXX` (or a `\uXXXX\uXXXX` surrogate pair) whose hex
/// digits start at `p`, and the length of the escape including `\u`.
fn unescape_unicode(b: &[u8], p: usize) -> (char, usize) {
    let Some(unit) = hex4(b, p) else {
        return ('\u{FFFD}', 1);
    };
    if let Some(c) = char::from_u32(unit) {
        return (c, 6);
    }
    match (b.get(p + 4..p + 6), hex4(b, p + 6)) {
        (Some(b"\\u"), Some(low @ 0xDC00..=0xDFFF)) if unit < 0xDC00 => {
            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
        }
        _ => ('\u{FFFD}', 6),
    }
}

// ---------------------------------------------------------------------------
// The values of the four fields.

#[inline(always)]
fn event_time_of(text: &str, v: &Value, zone_offset_ms: i64) -> Result<i64, BadReason> {
    let parsed = match v.kind {
        Kind::Str if !v.escaped => parse_timestamp(&text.as_bytes()[v.start + 1..v.end - 1], zone_offset_ms),
        Kind::Str => parse_timestamp(v.string(text).as_bytes(), zone_offset_ms),
        Kind::Int => v
            .raw(text)
            .parse::<i64>()
            .ok()
            .filter(|t| (MIN_TIME_MS..=MAX_TIME_MS).contains(t))
            .ok_or(()),
        _ => return Err(BadReason::WrongType(Field::EventTime)),
    };
    parsed.map_err(|()| BadReason::BadTime)
}

#[inline(always)]
fn event_type_of<'a>(text: &'a str, v: &Value) -> Result<Cow<'a, str>, BadReason> {
    match v.kind {
        // Just the quotes (an escape can't decode to nothing).
        Kind::Str if v.end - v.start == 2 => Err(BadReason::EmptyEventType),
        Kind::Str => Ok(v.string(text)),
        _ => Err(BadReason::WrongType(Field::EventType)),
    }
}

#[inline(always)]
fn user_id_of<'a>(text: &'a str, v: &Value) -> Result<Cow<'a, str>, BadReason> {
    match v.kind {
        Kind::Str => Ok(v.string(text)),
        Kind::Int => Ok(match v.raw(text) {
            // The decimal text of the integer zero.
            "-0" => Cow::Borrowed("0"),
            digits => Cow::Borrowed(digits),
        }),
        _ => Err(BadReason::WrongType(Field::UserId)),
    }
}

#[inline(always)]
fn price_of(text: &str, v: &Value) -> Result<f64, BadReason> {
    let price = match v.kind {
        Kind::Int | Kind::Float => parse_f64(v.raw(text)),
        Kind::Str => {
            let s = v.string(text);
            if !is_json_number(s.as_bytes()) {
                return Err(BadReason::WrongType(Field::Price));
            }
            parse_f64(&s)
        }
        _ => return Err(BadReason::WrongType(Field::Price)),
    };
    if price.is_finite() {
        Ok(price)
    } else {
        Err(BadReason::NonFinitePrice)
    }
}

/// Correctly rounded, like Java's `Double.parseDouble`. The text is a JSON
/// number here, which Rust's grammar includes, so it can't fail; an overflow
/// gives an infinity, which the caller rejects.
#[inline]
fn parse_f64(s: &str) -> f64 {
    fast_decimal(s.as_bytes()).unwrap_or_else(|| s.parse().unwrap_or(f64::NAN))
}

/// Powers of ten that are exact doubles.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Clinger's fast path for the usual price (`29.99`): at most 15 digits and
/// no exponent, so the digits as an integer and the power of ten are both
/// exact doubles, and one correctly rounded division gives the correctly
/// rounded result (the same double `str::parse` gives, in a third of the time).
/// `None` sends anything else to the general algorithm.
#[inline]
fn fast_decimal(s: &[u8]) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

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

    // -- The Flink anchor's fixture ------------------------------------------

    const EDGE_CASES: &[u8] = include_bytes!("../tests/data/parser/edge_cases.jsonl");
    const EDGE_CASES_EXPECTED: &str = include_str!("../tests/data/parser/edge_cases.expected.jsonl");

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
    fn hand_checked_anchor_times() {
        let ev = parse_event(
            br#"{"event_time":"2024-01-01T10:00:00","event_type":"view","user_id":"a","price":1}"#,
            &cfg(parse_zone("+09:00").unwrap()),
        )
        .unwrap();
        assert_eq!(ev.time_ms, 1_704_070_800_000);
        assert_eq!(time("2024-01-01T10:00:00+09:00"), Ok(1_704_070_800_000));
        assert_eq!(parse_timestamp(b"2024-01-01T10:00:00", JST), Ok(1_704_070_800_000));
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

    // -- Times -----------------------------------------------------------------

    #[test]
    fn fractional_seconds_of_0_to_9_digits() {
        let base = 1_704_103_200_000; // 2024-01-01T10:00:00Z
        let cases = [
            ("", 0),
            (".", 0),
            (".1", 100),
            (".12", 120),
            (".123", 123),
            (".1239", 123),
            (".12399", 123),
            (".123999", 123),
            (".1239999", 123),
            (".12399999", 123),
            (".999999999", 999),
            (".000999999", 0),
        ];
        for (fraction, ms) in cases {
            assert_eq!(
                time(&format!("2024-01-01T10:00:00{fraction}")),
                Ok(base + ms),
                "{fraction}"
            );
            assert_eq!(
                time(&format!("2024-01-01T10:00:00{fraction}Z")),
                Ok(base + ms),
                "{fraction}"
            );
        }
        assert_eq!(time("2024-01-01T10:00:00.1234567891"), Err(()));
        assert_eq!(time("2024-01-01T10:00:00.0000000000"), Err(()));
        assert_eq!(time("2024-01-01T10:00:00.12a"), Err(()));
        assert_eq!(time("2024-01-01T10:00:00.."), Err(()));
        // Floor, not truncation towards zero, before 1970.
        assert_eq!(time("1969-12-31T23:59:59.9999"), Ok(-1));
        assert_eq!(time("1969-12-31T23:59:59.0001"), Ok(-1000));
    }

    #[test]
    fn calendar_is_strict_with_right_leap_years() {
        assert!(time("2024-02-29T00:00:00").is_ok());
        assert!(time("2000-02-29T00:00:00").is_ok());
        assert!(time("1600-02-29T00:00:00").is_ok());
        assert!(time("0000-02-29T00:00:00").is_ok());
        assert_eq!(time("2023-02-29T00:00:00"), Err(()));
        assert_eq!(time("1900-02-29T00:00:00"), Err(()));
        assert_eq!(time("2100-02-29T00:00:00"), Err(()));
        assert_eq!(time("2024-02-30T00:00:00"), Err(()));
        assert_eq!(time("2024-04-31T00:00:00"), Err(()));
        assert_eq!(time("2024-00-10T00:00:00"), Err(()));
        assert_eq!(time("2024-13-10T00:00:00"), Err(()));
        assert_eq!(time("2024-01-00T00:00:00"), Err(()));
        assert_eq!(time("2024-01-32T00:00:00"), Err(()));
        assert_eq!(
            time("2024-03-01T00:00:00"),
            Ok(time("2024-02-29T00:00:00").unwrap() + MS_PER_DAY)
        );
        assert_eq!(time("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(time("0000-01-01T00:00:00"), Ok(-62_167_219_200_000));
        assert_eq!(time("9999-12-31T23:59:59.999"), Ok(253_402_300_799_999));
    }

    #[test]
    fn a_remembered_date_still_checks_the_time_and_reads_its_own_day() {
        let day = time("2024-02-29T00:00:00").unwrap();
        assert_eq!(time("2024-02-29T23:59:59"), Ok(day + MS_PER_DAY - 1000));
        assert_eq!(time("2024-02-29T25:00:00"), Err(()));
        assert_eq!(time("2024-02-29T24:00:00"), Ok(day + MS_PER_DAY));
        assert_eq!(time("2024-02-28T00:00:00"), Ok(day - MS_PER_DAY));
        // A date refused once is refused again (only valid dates are kept).
        assert_eq!(time("2023-02-29T00:00:00"), Err(()));
        assert_eq!(time("2023-02-29T00:00:00"), Err(()));
        assert_eq!(time("2024-02-29T00:00:00"), Ok(day));
    }

    #[test]
    fn midnight_24_and_leap_second() {
        let midnight = 1_704_153_600_000; // 2024-01-02T00:00:00Z
        assert_eq!(time("2024-01-01T24:00:00"), Ok(midnight));
        assert_eq!(time("2024-01-01T24:00:00."), Ok(midnight));
        assert_eq!(time("2024-01-01T24:00:00.000000000"), Ok(midnight));
        assert_eq!(time("2024-12-31T24:00:00"), Ok(time("2025-01-01T00:00:00").unwrap()));
        assert_eq!(time("2024-02-29T24:00:00"), Ok(time("2024-03-01T00:00:00").unwrap()));
        assert_eq!(time("2024-01-01T24:00:00+09:00"), Ok(midnight - JST));
        assert_eq!(time("2024-01-01T24:00:00.001"), Err(()));
        assert_eq!(time("2024-01-01T24:01:00"), Err(()));
        assert_eq!(time("2024-01-01T24:00:01"), Err(()));
        assert_eq!(time("2024-01-01T25:00:00"), Err(()));
        assert_eq!(time("2024-02-30T24:00:00"), Err(()));

        assert_eq!(time("2024-01-01T23:59:60"), Ok(midnight - 1000));
        assert_eq!(time("2024-01-01T23:59:60.5"), Ok(midnight - 500));
        assert_eq!(time("2024-01-01T23:59:60.999999999Z"), Ok(midnight - 1));
        assert_eq!(time("2024-01-01T23:58:60"), Err(()));
        assert_eq!(time("2024-01-01T10:59:60"), Err(()));
        assert_eq!(time("2024-01-01T23:59:61"), Err(()));
        assert_eq!(time("2024-01-01T23:60:00"), Err(()));
    }

    #[test]
    fn offsets_win_over_the_zone() {
        let utc = 1_704_103_200_000; // 2024-01-01T10:00:00Z
        for (suffix, offset) in [
            ("Z", 0),
            ("z", 0),
            ("+00:00", 0),
            ("-00:00", 0),
            ("+09:00", JST),
            ("+0900", JST),
            ("+09", JST),
            ("-05:30", -(5 * MS_PER_HOUR + 1_800_000)),
            ("-0530", -(5 * MS_PER_HOUR + 1_800_000)),
            ("+18:00", 18 * MS_PER_HOUR),
            ("-18:00", -18 * MS_PER_HOUR),
        ] {
            let s = format!("2024-01-01T10:00:00{suffix}");
            assert_eq!(parse_timestamp(s.as_bytes(), 12_345), Ok(utc - offset), "{s}");
        }
        assert_eq!(parse_timestamp(b"2024-01-01T10:00:00", JST), Ok(utc - JST));
        assert_eq!(parse_timestamp(b"2024-01-01t10:00:00", -JST), Ok(utc + JST));
        for bad in [
            "2024-01-01 10:00:00",
            "2024-01-01X10:00:00",
            "2024-01-01T10:00:00 ",
            " 2024-01-01T10:00:00",
            "2024-01-01T10:00:00+18:01",
            "2024-01-01T10:00:00+19:00",
            "2024-01-01T10:00:00+09:60",
            "2024-01-01T10:00:00+9:00",
            "2024-01-01T10:00:00+09:0",
            "2024-01-01T10:00:00+09:00:00",
            "2024-01-01T10:00:00+09:00Z",
            "2024-01-01T10:00:00ZZ",
            "2024-01-01T10:00:00UTC",
            "2024-01-01T10:00:00[UTC]",
            "2024-01-01T10:00:00+",
            "2024-01-01T10:00",
            "2024-01-01",
            "2024-1-01T10:00:00",
            "24-01-01T10:00:00",
            "+2024-01-01T10:00:00",
            "-2024-01-01T10:00:00",
            "2024-01-01T1:00:00.0",
            "2024-01-01T10:0a:00",
            "２０２４-01-01T10:00:00",
            "",
        ] {
            assert_eq!(time(bad), Err(()), "{bad:?}");
        }
        // Via the parser: a space instead of `T`.
        let line = line_with("event_time", Some("\"2024-01-01 10:00:00\""));
        assert_eq!(reason(&line), BadReason::BadTime);
    }

    #[test]
    fn zones() {
        for (s, ms) in [
            ("UTC", 0),
            ("utc", 0),
            ("GMT", 0),
            ("Z", 0),
            ("+09:00", JST),
            ("+0900", JST),
            ("+09", JST),
            ("UTC+09:00", JST),
            ("-05:30", -(5 * MS_PER_HOUR + 1_800_000)),
            ("-18:00", -MAX_OFFSET_MS),
        ] {
            assert_eq!(parse_zone(s), Ok(ms), "{s}");
        }
        for s in [
            "",
            "Asia/Tokyo",
            "+19:00",
            "09:00",
            "+9",
            "UTC+",
            "+09:00 ",
            "JST",
            "ZZ",
        ] {
            let err = parse_zone(s).expect_err(s);
            assert!(err.contains(&format!("{s:?}")) && err.contains("+09:00"), "{err}");
        }
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

    // -- Properties -----------------------------------------------------------

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
                prop::collection::vec((any::<String>(), inner), 0..5)
                    .prop_map(|kv| J::Object(kv.into_iter().collect())),
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
                        naive_days(*y, *m, *d) * MS_PER_DAY + hh * MS_PER_HOUR + mm * 60_000 + ss * 1000 + ms
                            - offset_ms;
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
    fn serde_first_object(line: &[u8]) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
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

    fn is_field_level(r: BadReason) -> bool {
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
}
