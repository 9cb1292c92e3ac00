//! The bytes of one window state, as a view's arena keeps them.
//!
//! Every event copies a state out of the arena into its batch, and every
//! batch copies the plugin's new states back: at 100 k keys nearly one state
//! per event and view. States of up to [`INLINE`] bytes (the seed plugins'
//! are 24 and 32) stay in place and are copied with a few fixed-size moves
//! instead of a `memcpy` call; longer ones live on the heap.

use std::ops::Deref;

/// Bytes kept in place; with the length and the heap pointer the value is
/// 56 bytes, so a slot (this and its 8-byte batch mark) is one cache line.
pub const INLINE: usize = 44;

/// One plugin state (opaque bytes) in the arena: up to [`INLINE`] bytes in
/// place, longer ones on the heap.
#[derive(Clone)]
pub struct StateBytes {
    /// The bytes when `len > INLINE` (kept, and reused, while the state
    /// stays long). A `Box<Vec>` and not a `Box<[u8]>`: a thin pointer,
    /// which leaves room for 44 bytes in place within the cache line.
    #[allow(clippy::box_collection)]
    heap: Option<Box<Vec<u8>>>,
    len: u32,
    inline: [u8; INLINE],
}

impl Default for StateBytes {
    fn default() -> Self {
        Self {
            heap: None,
            len: 0,
            inline: [0; INLINE],
        }
    }
}

impl StateBytes {
    /// Replace the bytes with `src`.
    #[inline(always)]
    pub fn set(&mut self, src: &[u8]) {
        let n = src.len();
        if n <= INLINE {
            copy_short(&mut self.inline, src);
            self.heap = None;
        } else {
            let heap = self.heap.get_or_insert_with(Default::default);
            heap.clear();
            heap.extend_from_slice(src);
        }
        self.len = u32::try_from(n).expect("featherflow states are limited to u32 lengths");
    }

    /// Empty: a new window.
    pub fn clear(&mut self) {
        self.len = 0;
        self.heap = None;
    }
}

impl From<&[u8]> for StateBytes {
    fn from(src: &[u8]) -> Self {
        let mut s = Self::default();
        s.set(src);
        s
    }
}

impl Deref for StateBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        let n = self.len as usize;
        match &self.heap {
            None => &self.inline[..n],
            Some(heap) => heap,
        }
    }
}

/// `dst[..src.len()] = src` for `src.len() <= INLINE`, as two overlapping
/// fixed-size copies (inlined moves, no call) from 4 bytes up.
#[inline(always)]
fn copy_short(dst: &mut [u8; INLINE], src: &[u8]) {
    #[inline(always)]
    fn pair<const K: usize>(dst: &mut [u8], src: &[u8]) {
        let n = src.len();
        dst[..K].copy_from_slice(&src[..K]);
        dst[n - K..n].copy_from_slice(&src[n - K..]);
    }
    match src.len() {
        32..=INLINE => pair::<32>(dst, src),
        16..32 => pair::<16>(dst, src),
        8..16 => pair::<8>(dst, src),
        4..8 => pair::<4>(dst, src),
        n => dst[..n].copy_from_slice(src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_length_in_place_or_on_the_heap() {
        let long: Vec<u8> = (0..200u8).collect();
        let mut s = StateBytes::default();
        assert!(s.is_empty());
        // Every length, growing and then shrinking through the same value,
        // so a shorter state never shows bytes of a longer one.
        for n in (0..=long.len()).chain((0..=long.len()).rev()) {
            s.set(&long[..n]);
            assert_eq!(&s[..], &long[..n], "length {n}");
            assert_eq!(s.heap.is_some(), n > INLINE, "length {n}");
        }
        s.set(&long);
        s.clear();
        assert!(s.is_empty());
        assert!(s.heap.is_none());
        assert_eq!(&StateBytes::from(&long[..7])[..], &long[..7]);
    }

    #[test]
    fn a_slot_stays_one_cache_line() {
        assert_eq!(std::mem::size_of::<StateBytes>(), 56);
    }
}
