//! The packed batch layouts of `wit/feature.wit`, host side.
//!
//! Writers append straight into reusable buffers, so a batch costs no
//! allocation once the buffers have grown; readers bounds-check everything,
//! because the bytes come from an untrusted plugin.

use super::Value;
use super::declaration::{Field, FieldType};

/// A buffer that starts with a `u32` count, patched when the batch is taken.
#[derive(Debug, Default)]
pub struct Packed {
    buf: Vec<u8>,
    count: u32,
}

impl Packed {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.count = 0;
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished bytes (count patched in).
    pub fn bytes(&mut self) -> &[u8] {
        if self.buf.len() < 4 {
            self.clear();
        }
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        &self.buf
    }

    #[inline]
    fn begin_item(&mut self) {
        if self.buf.is_empty() {
            self.clear();
        }
        self.count += 1;
    }

    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    fn put_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    #[inline]
    fn put_bytes(&mut self, b: &[u8]) {
        self.put_u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }

    /// Append one `bytes` item (a state).
    #[inline]
    pub fn push_state(&mut self, state: &[u8]) {
        self.begin_item();
        self.put_bytes(state);
    }

    /// Append one event: `u32 slot, i64 time, f64 price, str type, str key, str extra`.
    #[inline]
    pub fn push_event(&mut self, slot: u32, time_ms: i64, price: f64, event_type: &str, key: &str, extra: &str) {
        self.begin_item();
        // Per event and view: one capacity check instead of seven.
        let (t, k, x) = (event_type.as_bytes(), key.as_bytes(), extra.as_bytes());
        let len = 32 + t.len() + k.len() + x.len();
        self.buf.reserve(len);
        let out = &mut self.buf.spare_capacity_mut()[..len];
        let mut head = [0u8; 24];
        head[..4].copy_from_slice(&slot.to_le_bytes());
        head[4..12].copy_from_slice(&time_ms.to_le_bytes());
        head[12..20].copy_from_slice(&price.to_le_bytes());
        head[20..].copy_from_slice(&(t.len() as u32).to_le_bytes());
        out[..24].write_copy_of_slice(&head);
        let mut at = 24;
        for (i, text) in [t, k, x].into_iter().enumerate() {
            if i > 0 {
                out[at..at + 4].write_copy_of_slice(&(text.len() as u32).to_le_bytes());
                at += 4;
            }
            if !text.is_empty() {
                out[at..at + text.len()].write_copy_of_slice(text);
                at += text.len();
            }
        }
        debug_assert_eq!(at, len);
        // SAFETY: `out` is the `len` bytes after the old length, all written
        // above.
        unsafe { self.buf.set_len(self.buf.len() + len) };
    }

    /// Append one window to finish: `str key, i64 start, i64 end, u32 k, k × bytes`.
    pub fn push_window<'a>(
        &mut self,
        key: &str,
        start: i64,
        end: i64,
        states: impl ExactSizeIterator<Item = &'a [u8]>,
    ) {
        self.begin_item();
        self.put_bytes(key.as_bytes());
        self.put_i64(start);
        self.put_i64(end);
        self.put_u32(states.len() as u32);
        for s in states {
            self.put_bytes(s);
        }
    }

    /// Append one group of states to merge: `u32 k, k × bytes`.
    pub fn push_group<'a>(&mut self, states: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.begin_item();
        self.put_u32(states.len() as u32);
        for s in states {
            self.put_bytes(s);
        }
    }
}

/// A bounds-checked little-endian reader.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next `n` bytes. Per state and per value of a batch: the check is
    /// one comparison, and the message is built only on failure.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.truncated(n)),
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize) -> String {
        format!(
            "truncated: wanted {n} bytes at offset {} of {}",
            self.pos,
            self.buf.len()
        )
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    #[inline]
    pub fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }

    #[inline]
    pub fn f64(&mut self) -> Result<f64, String> {
        self.array().map(f64::from_le_bytes)
    }

    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("invalid UTF-8: {e}"))
    }

    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Read a list of `n` states (`u32 n, n × bytes`), checking `n`.
pub fn read_states(blob: &[u8], expected: usize) -> Result<Vec<&[u8]>, String> {
    let mut r = Reader::new(blob);
    let n = r.u32()? as usize;
    if n != expected {
        return Err(format!("{n} states returned for {expected} given"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.bytes()?);
    }
    if !r.at_end() {
        return Err("trailing bytes after the states".into());
    }
    Ok(out)
}

/// Read the values of `windows` finished windows, checking them against the
/// declared fields; appends `windows × fields.len()` values to `out`.
pub fn read_values(blob: &[u8], windows: usize, fields: &[Field], out: &mut Vec<Value>) -> Result<(), String> {
    let mut r = Reader::new(blob);
    let n = r.u32()? as usize;
    if n != windows {
        return Err(format!("{n} windows returned for {windows} given"));
    }
    for w in 0..n {
        for f in fields {
            let tag = r.u8()?;
            let v = match (tag, f.ty) {
                (0, FieldType::Text) => Value::Text(r.str()?.into()),
                (1, FieldType::Integer) => Value::Integer(r.i64()?),
                (2, FieldType::Float) => Value::Float(r.f64()?),
                (3, FieldType::Boolean) => Value::Boolean(r.u8()? != 0),
                (tag, ty) => {
                    return Err(format!(
                        "window {w}, field {:?}: tag {tag} does not match the declared type {ty:?}",
                        f.name
                    ));
                }
            };
            out.push(v);
        }
    }
    if !r.at_end() {
        return Err("trailing bytes after the values".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_layout() {
        let mut p = Packed::default();
        p.clear();
        p.push_event(3, -5, 29.99, "view", "111", "");
        p.push_event(u32::MAX, i64::MAX, -0.5, "cart", "", "{\"sku\":\"é\"}");
        let bytes = p.bytes().to_vec();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32().unwrap(), 2);
        assert_eq!(r.u32().unwrap(), 3);
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(r.f64().unwrap(), 29.99);
        assert_eq!(r.str().unwrap(), "view");
        assert_eq!(r.str().unwrap(), "111");
        assert_eq!(r.str().unwrap(), "");
        assert_eq!(r.u32().unwrap(), u32::MAX);
        assert_eq!(r.i64().unwrap(), i64::MAX);
        assert_eq!(r.f64().unwrap(), -0.5);
        assert_eq!(r.str().unwrap(), "cart");
        assert_eq!(r.str().unwrap(), "");
        assert_eq!(r.str().unwrap(), "{\"sku\":\"é\"}");
        assert!(r.at_end());
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        let fields = [Field {
            name: "n".into(),
            ty: FieldType::Integer,
        }];
        let mut out = Vec::new();
        let mut blob = 1u32.to_le_bytes().to_vec();
        blob.push(2);
        blob.extend_from_slice(&1.5f64.to_le_bytes());
        let err = read_values(&blob, 1, &fields, &mut out).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = read_values(&blob[..6], 1, &fields, &mut out).unwrap_err();
        assert!(err.contains("tag 2") || err.contains("truncated"), "{err}");
        assert!(read_values(&0u32.to_le_bytes(), 1, &fields, &mut out).is_err());
    }

    #[test]
    fn wrong_state_count_is_refused() {
        let mut p = Packed::default();
        p.push_state(b"ab");
        assert_eq!(read_states(p.bytes(), 1).unwrap(), vec![&b"ab"[..]]);
        assert!(read_states(p.bytes(), 2).is_err());
    }
}
