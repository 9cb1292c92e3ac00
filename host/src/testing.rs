//! Comparing outputs: used by `featherflow plugin test --expect` and by the
//! golden tests. Lines are compared as JSON values, in any order; floats are
//! equal when they agree to 12 significant digits (sliding windows add slice
//! sums, so the last bits of an average may differ from a per-event sum).

use serde_json::Value;

/// A canonical form of one JSON line: keys sorted, floats rounded.
pub fn canonical(line: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    Ok(canon(&v))
}

fn canon(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canon(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(",")),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f == f.trunc() && f.abs() < 1e15 {
                format!("{f:.1}")
            } else {
                format!("{f:.11e}")
            }
        }
        other => other.to_string(),
    }
}

/// A readable diff of expected (text of JSON lines) against actual lines:
/// `- line` expected but missing, `+ line` produced but not expected. Empty
/// when they match.
pub fn diff_jsonl(expected: &str, actual: &[String]) -> String {
    let mut exp: Vec<(String, &str)> = Vec::new();
    let mut out = String::new();
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        match canonical(line) {
            Ok(c) => exp.push((c, line)),
            Err(e) => out.push_str(&format!("! expected file: {e}\n")),
        }
    }
    let mut act: Vec<(String, &str)> = actual
        .iter()
        .map(|l| (canonical(l).unwrap_or_else(|e| e), l.as_str()))
        .collect();
    exp.sort();
    act.sort();
    let (mut i, mut j) = (0, 0);
    while i < exp.len() || j < act.len() {
        match (exp.get(i), act.get(j)) {
            (Some(e), Some(a)) if e.0 == a.0 => {
                i += 1;
                j += 1;
            }
            (Some(e), Some(a)) if e.0 < a.0 => {
                out.push_str(&format!("- {}\n", e.1));
                i += 1;
            }
            (Some(_), Some(a)) => {
                out.push_str(&format!("+ {}\n", a.1));
                j += 1;
            }
            (Some(e), None) => {
                out.push_str(&format!("- {}\n", e.1));
                i += 1;
            }
            (None, Some(a)) => {
                out.push_str(&format!("+ {}\n", a.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_in_any_order_and_key_order() {
        let exp = "{\"a\":1,\"b\":2.5}\n{\"a\":2}\n";
        let act = vec!["{\"a\":2}".to_string(), "{\"b\":2.5,\"a\":1}".to_string()];
        assert_eq!(diff_jsonl(exp, &act), "");
    }

    #[test]
    fn differences_are_shown_both_ways() {
        let exp = "{\"a\":1}\n{\"a\":3}\n";
        let act = vec!["{\"a\":1}".to_string(), "{\"a\":2}".to_string()];
        assert_eq!(diff_jsonl(exp, &act), "+ {\"a\":2}\n- {\"a\":3}\n");
    }

    #[test]
    fn floats_agree_to_twelve_digits() {
        let act = vec!["{\"x\":176.67517241379306}".to_string()];
        assert_eq!(diff_jsonl("{\"x\":176.67517241379304}", &act), "");
        assert_ne!(diff_jsonl("{\"x\":176.6751724}", &act), "");
    }
}
