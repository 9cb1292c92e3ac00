//! The JSON scanner: strict validation of the first JSON value of a line,
//! strings (eight bytes a step, escapes checked and decoded), numbers, and
//! skipping nested values without allocation or recursion.
//!
//! Positions are byte indices into the line; every structural byte is ASCII,
//! so they are also char boundaries of the validated `&str`.
//!
//! It owns the JSON grammar and Jackson's root rules ([`classify_root`]),
//! and reports what a value is ([`Value`]), not what it means: it must not
//! depend on the four fields, times, prices or the fast path.

use std::borrow::Cow;

use super::{BadReason, MAX_DEPTH};

/// Why the scanner gave up on the first value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanError {
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
pub(super) enum Kind {
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
pub(super) struct Value {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
    /// A string with at least one escape, so it can't be borrowed as is.
    pub(super) escaped: bool,
}

impl Value {
    #[inline]
    pub(super) fn raw<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }

    /// The decoded contents of a string value.
    #[inline(always)]
    pub(super) fn string<'a>(&self, text: &'a str) -> Cow<'a, str> {
        decode(&text[self.start + 1..self.end - 1], self.escaped)
    }
}

/// The byte at `p`, or 0 past the end. NUL is invalid everywhere the scanner
/// uses this, just like the end of the line, so both take the same error path.
#[inline(always)]
pub(super) fn at(b: &[u8], p: usize) -> u8 {
    b.get(p).copied().unwrap_or(0)
}

#[inline(always)]
pub(super) fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while let Some(&c) = b.get(p) {
        // Usually the first byte is a token: one comparison decides.
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        p += 1;
    }
    p
}

/// Classifies a line whose first value does not start with `{`.
pub(super) fn classify_root(b: &[u8], p: usize) -> BadReason {
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
pub(super) fn scan_value(b: &[u8], p: usize, depth_budget: usize) -> Result<Value, ScanError> {
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
pub(super) fn is_json_number(s: &[u8]) -> bool {
    matches!(scan_number(s, 0), Ok((end, _)) if end == s.len())
}

/// Scans a string whose opening quote is at `p - 1`; returns the position
/// after the closing quote and whether the string has escapes.
#[inline(always)]
pub(super) fn scan_string(b: &[u8], mut p: usize) -> Result<(usize, bool), ScanError> {
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
pub(super) fn decode(inner: &str, escaped: bool) -> Cow<'_, str> {
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
