//! Where fired windows go.
//!
//! Every sink sees the same [`FeatureRecord`] (SEMANTICS.md "Output
//! record"). Sinks are batched: the engine hands over all records of one
//! flush at once. This module also holds the JSON-lines logs for records
//! that could not be processed ([`RecordLog`]: dead letters, late events).

mod jsonl;
mod log;
pub mod redis;

pub use jsonl::{JsonlFormat, JsonlSink};
pub use log::RecordLog;
pub use redis::RedisSink;

use std::sync::Arc;

use crate::plugin::declaration::Field;

/// One output value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Value {
    /// The Redis string form: integers in decimal, floats in shortest
    /// round-trip form with a decimal point (`"0.0"`, `"29.99"`).
    pub fn to_redis_string(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Boolean(b) => if *b { "1" } else { "0" }.to_string(),
        }
    }

    /// Append the JSON form.
    pub fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Text(s) => write_json_str(out, s),
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) if f.is_finite() => out.push_str(&format_float(*f)),
            // JSON has no NaN or infinity.
            Value::Float(_) => out.push_str("null"),
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

/// Shortest round-trip form, always with a decimal point or exponent.
pub fn format_float(f: f64) -> String {
    let s = format!("{f:?}");
    if s.contains(['.', 'e', 'N', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Append `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One fired window of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRecord {
    pub view: Arc<str>,
    /// The store key: `{view}:{entity}` for sliding windows,
    /// `{view}:{entity}:{window_start}` for sessions.
    pub key: String,
    /// Where [`FeatureRecord::entity`] sits in `key` (one allocation less
    /// per record; a million windows can fire at once).
    pub entity_span: std::ops::Range<usize>,
    pub window_start: i64,
    /// Exclusive.
    pub window_end: i64,
    pub fields: Arc<[Field]>,
    pub values: Vec<Value>,
    pub ttl_seconds: u64,
    /// When the watermark fired the window (for fire-to-store latency).
    pub fired_at: std::time::Instant,
}

impl FeatureRecord {
    /// The value of the view's key field (the `user_id`).
    pub fn entity(&self) -> &str {
        &self.key[self.entity_span.clone()]
    }
}

/// A sink failed. Says whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {sink}: {source}")]
    Io {
        sink: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sink {sink}: {reason} (retryable: {retryable})")]
    Store {
        sink: String,
        reason: String,
        retryable: bool,
    },
}

/// Where the engine writes fired windows.
pub trait Sink: Send {
    /// Write one batch, in order. Order matters: a later record for the same
    /// key overwrites an earlier one.
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError>;

    /// [`Sink::write`], taking the records: a sink that hands them to
    /// another thread moves them instead of copying.
    fn write_owned(&mut self, records: Vec<FeatureRecord>) -> Result<(), SinkError> {
        self.write(&records)
    }

    /// Make everything written so far durable (or at least handed off).
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Counts records per view and drops them: for benchmarks.
#[derive(Debug, Default)]
pub struct CountingSink {
    pub records: u64,
    pub per_view: std::collections::BTreeMap<String, u64>,
    /// A checksum of the values, so the work cannot be optimised away and two
    /// runs can be compared cheaply.
    pub checksum: u64,
}

impl Sink for CountingSink {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        for r in records {
            self.records += 1;
            match self.per_view.get_mut(&*r.view) {
                Some(n) => *n += 1,
                None => {
                    self.per_view.insert(r.view.to_string(), 1);
                }
            }
            for v in &r.values {
                let x = match v {
                    Value::Integer(i) => *i as u64,
                    Value::Float(f) => f.to_bits(),
                    Value::Boolean(b) => *b as u64,
                    Value::Text(s) => s.len() as u64,
                };
                self.checksum = self.checksum.rotate_left(5) ^ x;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_a_decimal_point() {
        assert_eq!(format_float(0.0), "0.0");
        assert_eq!(format_float(29.99), "29.99");
        assert_eq!(format_float(11.75), "11.75");
        assert_eq!(format_float(176.67517241379304), "176.67517241379304");
        assert_eq!(format_float(1e21), "1e21");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        write_json_str(&mut s, "quote\"d\\é\u{1}");
        assert_eq!(s, r#""quote\"d\\é\u0001""#);
    }
}
