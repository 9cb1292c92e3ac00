//! The values a plugin's `finish` produces, and their two textual forms
//! (Redis strings and JSON), shared by every sink.

/// One output value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl Value {
    /// Append the Redis string form to `out`: integers in decimal, floats
    /// in shortest round-trip form with a decimal point (`"0.0"`,
    /// `"29.99"`), booleans `1`/`0`; no allocation for numbers.
    pub fn write_redis(&self, out: &mut Vec<u8>) {
        match self {
            Value::Text(s) => out.extend_from_slice(s.as_bytes()),
            Value::Integer(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Value::Float(f) => with_float_text(*f, |t| out.extend_from_slice(t.as_bytes())),
            Value::Boolean(b) => out.push(if *b { b'1' } else { b'0' }),
        }
    }

    /// Append the JSON form; no allocation for numbers.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Text(s) => write_json_str(out, s),
            Value::Integer(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Value::Float(f) if f.is_finite() => push_float(out, *f),
            // JSON has no NaN or infinity.
            Value::Float(_) => out.push_str("null"),
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

/// Shortest round-trip form, always with a decimal point or exponent.
pub fn format_float(f: f64) -> String {
    with_float_text(f, str::to_string)
}

/// Append [`format_float`]'s form of `f` to `out`.
fn push_float(out: &mut String, f: f64) {
    with_float_text(f, |t| out.push_str(t));
}

/// Hand `then` the shortest round-trip form of `f`, as Rust's `{:?}`
/// writes it, with `.0` added where that has neither a decimal point nor an
/// exponent: `0.0`, `29.99`, `1e16`, `NaN`. (ryu is faster but breaks ties
/// the other way: `{:?}` writes 1658206780088562.3 where ryu writes …562.2.)
fn with_float_text<R>(f: f64, then: impl FnOnce(&str) -> R) -> R {
    use std::fmt::Write;
    let mut buf = FloatBuf::default();
    let _ = write!(buf, "{f:?}");
    let text = buf.as_str();
    if text.contains(['.', 'e', 'N', 'i']) {
        then(text)
    } else {
        let _ = buf.write_str(".0");
        then(buf.as_str())
    }
}

/// A stack buffer for one float's text (`{:?}` of an f64 is at most 24
/// bytes: `-1.7976931348623157e308`).
#[derive(Default)]
struct FloatBuf {
    bytes: [u8; 32],
    len: usize,
}

impl FloatBuf {
    fn as_str(&self) -> &str {
        // Only `write_str` fills it, with whole `str`s.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for FloatBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Append `s` as a JSON string literal. Runs of bytes that need no escape
/// are copied whole (keys, view and field names seldom have any).
pub fn write_json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    let mut from = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        // `b` is ASCII, so `from..i` and `i + 1..` are on char boundaries.
        out.push_str(&s[from..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_form_of_every_kind_of_value() {
        let cases = [
            (Value::Text("a b:ü".into()), "a b:ü"),
            (Value::Text(String::new()), ""),
            (Value::Boolean(true), "1"),
            (Value::Boolean(false), "0"),
            (Value::Integer(0), "0"),
            (Value::Integer(-1), "-1"),
            (Value::Integer(i64::MIN), "-9223372036854775808"),
            (Value::Integer(i64::MAX), "9223372036854775807"),
            (Value::Float(0.0), "0.0"),
            (Value::Float(-0.0), "-0.0"),
            (Value::Float(1.0), "1.0"),
            (Value::Float(29.99), "29.99"),
            (Value::Float(1e-7), "1e-7"),
            (Value::Float(1e16), "1e16"),
            (Value::Float(123456789.125), "123456789.125"),
            (Value::Float(f64::MAX), "1.7976931348623157e308"),
            (Value::Float(f64::NAN), "NaN"),
            (Value::Float(f64::INFINITY), "inf"),
            (Value::Float(f64::NEG_INFINITY), "-inf"),
        ];
        for (v, want) in cases {
            let mut out = b"x".to_vec();
            v.write_redis(&mut out);
            assert_eq!(std::str::from_utf8(&out[1..]).unwrap(), want, "{v:?}");
        }
    }

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

    /// The char-by-char escaping `write_json_str` replaced, as the reference.
    fn escaped_char_by_char(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn json_strings_escape_runs_like_the_char_by_char_form() {
        let pieces = [
            "", "a", "é", "日本", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", " ", "\u{7f}", "🦀",
        ];
        // Every string of up to three pieces: escapes first, last, adjacent,
        // between multi-byte characters.
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = format!("{a}{b}{c}");
                    let mut out = String::from("x");
                    write_json_str(&mut out, &s);
                    assert_eq!(out[1..], escaped_char_by_char(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn json_form_of_every_kind_of_value() {
        let cases = [
            (Value::Text("a\"b".into()), r#""a\"b""#),
            (Value::Boolean(true), "true"),
            (Value::Integer(i64::MIN), "-9223372036854775808"),
            (Value::Integer(42), "42"),
            (Value::Float(1.0), "1.0"),
            (Value::Float(-0.0), "-0.0"),
            (Value::Float(1e16), "1e16"),
            (Value::Float(176.67517241379304), "176.67517241379304"),
            (Value::Float(f64::NAN), "null"),
            (Value::Float(f64::NEG_INFINITY), "null"),
        ];
        for (v, want) in cases {
            let mut out = String::from("x");
            v.write_json(&mut out);
            assert_eq!(&out[1..], want, "{v:?}");
        }
    }
}
