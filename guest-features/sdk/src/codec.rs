//! The little-endian byte codec of the packed batches in `wit/feature.wit`.
//!
//! Owns the primitive layouts only: fixed-width little-endian integers and
//! floats, `str` (`u32` byte length + UTF-8) and `bytes` (`u32` length + raw
//! bytes). What a batch contains (states, events, windows) is the adapter's
//! business, not this module's.
//!
//! Pure Rust with no dependency on the Wasm bindings, so it compiles and is
//! tested natively, and the host can mirror it byte for byte. Feature crates
//! may use [`Writer`] and [`Reader`] to encode their own state.
//!
//! The [`Reader`] never panics and never trusts a length: every read is
//! bounds-checked, and [`Reader::count`] refuses a count the remaining bytes
//! cannot hold, so a corrupt `u32` cannot make the guest allocate gigabytes.

use std::fmt;

/// Why a byte string could not be decoded. Offsets are from the start of the
/// buffer given to [`Reader::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A value starting at `at` needs `needed` bytes but only `left` remain.
    UnexpectedEnd { at: usize, needed: usize, left: usize },
    /// The `str` starting at `at` is not UTF-8.
    InvalidUtf8 { at: usize },
    /// The count at `at` promises more items than the remaining bytes can hold.
    CountTooLarge { at: usize, count: u32 },
    /// Decoding finished at `at` but `len` bytes were left over.
    TrailingBytes { at: usize, len: usize },
    /// A `u8` boolean at `at` was neither 0 nor 1.
    InvalidBool { at: usize, byte: u8 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::UnexpectedEnd { at, needed, left } => write!(
                f,
                "unexpected end of input at byte {at}: need {needed} bytes, {left} left"
            ),
            DecodeError::InvalidUtf8 { at } => {
                write!(f, "invalid UTF-8 in the string at byte {at}")
            }
            DecodeError::CountTooLarge { at, count } => write!(
                f,
                "count {count} at byte {at} is larger than the remaining input can hold"
            ),
            DecodeError::TrailingBytes { at, len } => {
                write!(f, "{len} trailing bytes after the end at byte {at}")
            }
            DecodeError::InvalidBool { at, byte } => {
                write!(f, "invalid boolean {byte} at byte {at} (expected 0 or 1)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends little-endian values to a borrowed `Vec<u8>`.
///
/// It borrows rather than owns so the same type serves the adapter (which
/// builds a whole batch) and `Feature::encode` (which appends one state to a
/// buffer it is handed).
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// A boolean as one byte, 0 or 1.
    pub fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// An item count or byte length as `u32` (the mirror of
    /// [`Reader::count`]).
    ///
    /// # Panics
    ///
    /// If `n` exceeds `u32::MAX`. A wasm32 guest cannot hold that much, so
    /// this only fires natively on an impossible batch.
    pub fn count(&mut self, n: usize) {
        let n = u32::try_from(n).expect("featherflow batches are limited to u32 lengths");
        self.u32(n);
    }

    /// `str`: `u32` byte length, then the UTF-8 bytes.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// `bytes`: `u32` length, then the raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.count(b.len());
        self.out.extend_from_slice(b);
    }
}

/// Reads little-endian values from a byte slice, bounds-checking every read.
///
/// Borrowed `str`s and `bytes` point into the input: decoding a batch copies
/// nothing but the numbers.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Number of bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes, raw.
    #[inline(always)]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(self.end(n)),
        }
    }

    #[cold]
    #[inline(never)]
    fn end(&self, needed: usize) -> DecodeError {
        DecodeError::UnexpectedEnd {
            at: self.pos,
            needed,
            left: self.remaining(),
        }
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A one-byte boolean; anything but 0 or 1 is an error.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::InvalidBool { at, byte }),
        }
    }

    #[inline(always)]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_le_bytes)
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        self.array().map(f64::from_le_bytes)
    }

    /// A `u32` item count, checked against the input: each item takes at
    /// least `min_item_len` bytes, so a count the remaining bytes cannot hold
    /// is an error before anyone allocates for it.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = self.u32()?;
        let n = count as usize;
        if n.saturating_mul(min_item_len) > self.remaining() {
            return Err(DecodeError::CountTooLarge { at, count });
        }
        Ok(n)
    }

    /// `bytes`: `u32` length, then that many raw bytes.
    #[inline(always)]
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// `str`: `u32` byte length, then that many bytes of UTF-8.
    #[inline(always)]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let bytes = self.bytes()?;
        if bytes.is_ascii() {
            // SAFETY: ASCII is UTF-8. Keys and event types almost always
            // are ASCII, and this check is several times cheaper than
            // `from_utf8` on short strings (it is per event, per view).
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { at })
    }

    /// Succeeds only if every byte was read: a batch with bytes after its
    /// last item was packed by someone who disagrees about the layout.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(DecodeError::TrailingBytes { at: self.pos, len }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_primitive() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.u8(7);
        w.bool(true);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.i64(-42);
        w.f64(11.75);
        w.str("héllo");
        w.bytes(&[1, 2, 3]);

        let mut r = Reader::new(&buf);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.u32(), Ok(0xdead_beef));
        assert_eq!(r.u64(), Ok(u64::MAX - 1));
        assert_eq!(r.i64(), Ok(-42));
        assert_eq!(r.f64(), Ok(11.75));
        assert_eq!(r.str(), Ok("héllo"));
        assert_eq!(r.bytes(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn layout_is_little_endian_with_u32_lengths() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.u32(1);
        w.i64(-2);
        w.str("ab");
        assert_eq!(
            buf,
            [
                1, 0, 0, 0, // u32 1
                0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // i64 -2
                2, 0, 0, 0, b'a', b'b', // str "ab"
            ]
        );
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.u32(),
            Err(DecodeError::UnexpectedEnd {
                at: 0,
                needed: 4,
                left: 3
            })
        );
        // A length that runs past the end.
        let mut r = Reader::new(&[10, 0, 0, 0, b'x']);
        assert!(matches!(r.bytes(), Err(DecodeError::UnexpectedEnd { at: 4, .. })));
        // A length near u32::MAX must not overflow the bounds check.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(r.bytes().is_err());
    }

    #[test]
    fn count_refuses_what_the_input_cannot_hold() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(r.count(4), Err(DecodeError::CountTooLarge { at: 0, count: u32::MAX }));
        let mut r = Reader::new(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.count(4), Ok(1));
    }

    #[test]
    fn invalid_utf8_bool_and_trailing_bytes_are_reported() {
        let mut r = Reader::new(&[1, 0, 0, 0, 0xff]);
        assert_eq!(r.str(), Err(DecodeError::InvalidUtf8 { at: 0 }));
        let mut r = Reader::new(&[2]);
        assert_eq!(r.bool(), Err(DecodeError::InvalidBool { at: 0, byte: 2 }));
        let mut r = Reader::new(&[0, 0]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { at: 1, len: 1 }));
    }
}
