//! A vector in copy-on-write chunks: the engine's state, snapshotted by a
//! checkpoint while the event loop goes on.
//!
//! Cloning a [`CowVec`] copies one pointer per chunk of [`CHUNK`] elements,
//! never the elements, so taking a snapshot of a million keys pauses the
//! event loop for microseconds. Afterwards the first write to a chunk copies
//! that chunk (and only it); the clone, handed to the checkpoint thread,
//! keeps seeing the values of the moment it was taken.

use std::cell::Cell;
use std::ops::{Index, IndexMut};
use std::sync::Arc;

const SHIFT: u32 = 12;
/// Elements per chunk: small enough that copying one on write is cheap
/// (a few hundred KB at most), large enough that a clone of millions of
/// elements is a few hundred pointers.
pub const CHUNK: usize = 1 << SHIFT;
const MASK: usize = CHUNK - 1;

#[derive(Debug)]
pub struct CowVec<T> {
    /// Every chunk but the last holds exactly `CHUNK` elements.
    chunks: Vec<Arc<Vec<T>>>,
    /// Per chunk: known to be ours alone since the last clone, so a write
    /// needs no look at the reference count (an atomic operation, and the
    /// hot path writes a chunk per event). A clone resets them all.
    owned: Vec<Cell<bool>>,
    len: usize,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            owned: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Clone for CowVec<T> {
    /// A snapshot: shares every chunk.
    fn clone(&self) -> Self {
        for owned in &self.owned {
            owned.set(false);
        }
        Self {
            chunks: self.chunks.clone(),
            owned: self.owned.iter().map(|_| Cell::new(false)).collect(),
            len: self.len,
        }
    }
}

impl<T: Clone> CowVec<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i < self.len { Some(&self[i]) } else { None }
    }

    pub fn push(&mut self, value: T) {
        if self.len & MASK == 0 {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
            self.owned.push(Cell::new(true));
        }
        let last = self.chunks.last_mut().expect("a chunk was just made");
        Arc::make_mut(last).push(value);
        self.len += 1;
    }

    pub fn resize_with(&mut self, new_len: usize, mut f: impl FnMut() -> T) {
        if new_len < self.len {
            self.truncate(new_len);
        }
        while self.len < new_len {
            self.push(f());
        }
    }

    pub fn truncate(&mut self, new_len: usize) {
        if new_len >= self.len {
            return;
        }
        let chunks = new_len.div_ceil(CHUNK);
        self.chunks.truncate(chunks);
        self.owned.truncate(chunks);
        if let Some(last) = self.chunks.last_mut() {
            Arc::make_mut(last).truncate(new_len - (chunks - 1) * CHUNK);
        }
        self.len = new_len;
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.owned.clear();
        self.len = 0;
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

impl<T> Index<usize> for CowVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> SHIFT][i & MASK]
    }
}

impl<T: Clone> IndexMut<usize> for CowVec<T> {
    /// Copies the chunk first if a snapshot shares it.
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let c = i >> SHIFT;
        if !self.owned[c].get() {
            Arc::make_mut(&mut self.chunks[c]);
            self.owned[c].set(true);
        }
        // SAFETY: `owned[c]` is set only right after `make_mut` made this
        // `Arc` the chunk's only one, and cleared by every clone, the only
        // way another `Arc` of it is made; so no one else can see the chunk
        // now. `&mut self` makes this the only reference into it from here.
        // (`Arc::get_mut_unchecked`, unstable, does the same.)
        let chunk = unsafe { &mut *Arc::as_ptr(&self.chunks[c]).cast_mut() };
        &mut chunk[i & MASK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_keeps_the_values_of_its_moment() {
        let mut v = CowVec::new();
        v.resize_with(3 * CHUNK + 5, || 0u32);
        for i in 0..v.len() {
            v[i] = i as u32;
        }
        let snap = v.clone();
        v[7] = 1_000_000;
        v[2 * CHUNK] = 2_000_000;
        v.push(9);
        assert_eq!(
            (snap[7], snap[2 * CHUNK], snap.len()),
            (7, 2 * CHUNK as u32, 3 * CHUNK + 5)
        );
        assert_eq!((v[7], v[2 * CHUNK], v.len()), (1_000_000, 2_000_000, 3 * CHUNK + 6));
        // Untouched chunks are still shared.
        assert!(Arc::ptr_eq(&v.chunks[1], &snap.chunks[1]));
        assert!(!Arc::ptr_eq(&v.chunks[0], &snap.chunks[0]));
        assert_eq!(
            snap.iter().copied().collect::<Vec<_>>(),
            (0..snap.len() as u32).collect::<Vec<_>>()
        );
        // Chunk 0 was copied and is ours again; a second snapshot shares it
        // once more, and the next write must copy it again.
        let snap2 = v.clone();
        v[7] = 3;
        assert_eq!((snap2[7], snap[7], v[7]), (1_000_000, 7, 3));
        drop(snap2);
        v[8] = 4;
        assert_eq!((v[7], v[8]), (3, 4));
    }

    #[test]
    fn truncate_and_regrow() {
        let mut v = CowVec::new();
        v.resize_with(CHUNK + 10, || 1u8);
        let snap = v.clone();
        v.truncate(CHUNK - 1);
        assert_eq!(v.len(), CHUNK - 1);
        v.resize_with(CHUNK + 1, || 2);
        assert_eq!((v[CHUNK - 2], v[CHUNK - 1], v[CHUNK]), (1, 2, 2));
        assert_eq!(snap.iter().filter(|&&b| b == 1).count(), CHUNK + 10);
        v.clear();
        assert!(v.is_empty() && v.iter().next().is_none());
    }
}
