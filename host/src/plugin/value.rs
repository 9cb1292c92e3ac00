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
        use std::io::Write;
        match self {
            Value::Text(s) => out.extend_from_slice(s.as_bytes()),
            Value::Integer(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Value::Float(f) => {
                let from = out.len();
                let _ = write!(out, "{f:?}");
                if !out[from..].iter().any(|b| matches!(b, b'.' | b'e' | b'N' | b'i')) {
                    out.extend_from_slice(b".0");
                }
            }
            Value::Boolean(b) => out.push(if *b { b'1' } else { b'0' }),
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
}
