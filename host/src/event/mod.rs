//! The event model and its parser: one input line in, one [`Event`] or one
//! [`BadReason`] out.
//!
//! This module owns what a valid event is (docs/semantics.md, "Events" and "Time and watermarks")
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
//! `Instant.parse(event_time + zone)`), except where docs/semantics.md
//! ("Differences from the Flink 1.19 job") deliberately does better:
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
//! # Decisions the Flink job's behaviour leaves open
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
//!
//! # Files
//!
//! The parse of a line runs top to bottom through these; each file's own doc
//! says what it owns and what it must not depend on.
//!
//! - `mod.rs`: the event model ([`Event`], [`Field`], [`BadReason`],
//!   [`ParserConfig`], the time range) and the entry point [`parse_event`].
//! - `fast.rs`: the fast path for the layout nearly every producer writes.
//! - `object.rs`: the general way: any object, extra fields, and the
//!   classification of every bad line.
//! - `json.rs`: the JSON scanner (validation, strings, skipping values).
//! - `fields.rs`: reading the values of the four fields.
//! - `timestamp.rs`: `event_time` texts ([`parse_timestamp`]) and `time.zone`
//!   settings ([`parse_zone`]).
//! - `number.rs`: prices as correctly rounded doubles.
//! - `tests.rs` and `tests/`: unit and property tests.

use std::borrow::Cow;
use std::fmt;

mod fast;
mod fields;
mod json;
mod number;
mod object;
mod timestamp;

#[cfg(test)]
mod tests;

pub use timestamp::{parse_timestamp, parse_zone};

use fast::parse_common;
use object::parse_general;

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
