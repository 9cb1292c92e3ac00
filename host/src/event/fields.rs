//! The values of the four fields: what a scanned [`Value`] means as an
//! `event_time`, `event_type`, `user_id` or `price`, or which [`BadReason`]
//! it is. Shared by the fast path and the general way, so both give the same
//! event and the same reason.
//!
//! It owns the type rules of docs/semantics.md for each field; it reads times and
//! prices through `timestamp.rs` and `number.rs`, and must not depend on how
//! the object around the value is walked (`fast.rs`, `object.rs`).

use std::borrow::Cow;

use super::json::{Kind, Value, is_json_number};
use super::number::parse_f64;
use super::timestamp::parse_timestamp;
use super::{BadReason, Field, MAX_TIME_MS, MIN_TIME_MS};

#[inline(always)]
pub(super) fn event_time_of(text: &str, v: &Value, zone_offset_ms: i64) -> Result<i64, BadReason> {
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
pub(super) fn event_type_of<'a>(text: &'a str, v: &Value) -> Result<Cow<'a, str>, BadReason> {
    match v.kind {
        // Just the quotes (an escape can't decode to nothing).
        Kind::Str if v.end - v.start == 2 => Err(BadReason::EmptyEventType),
        Kind::Str => Ok(v.string(text)),
        _ => Err(BadReason::WrongType(Field::EventType)),
    }
}

#[inline(always)]
pub(super) fn user_id_of<'a>(text: &'a str, v: &Value) -> Result<Cow<'a, str>, BadReason> {
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
pub(super) fn price_of(text: &str, v: &Value) -> Result<f64, BadReason> {
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
