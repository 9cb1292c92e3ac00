//! Interning keys: `(partition, key text)` → a dense [`KeyId`].
//!
//! An open-addressing table whose 32-byte entries hold short keys inline
//! (every `user_id` we have seen), so that a lookup is one cache line, and
//! whose slot for a key can be computed — and prefetched — before the
//! lookup: the engine hashes a block of events' keys, prefetches their
//! slots, and only then looks them up. Longer keys go to an ordinary map.
//!
//! A key the engine no longer holds any state for is [removed](KeyTable::remove):
//! its entry is deleted by shifting the entries after it back (no
//! tombstones, so lookups stay as short as in a table that never deleted),
//! its name is freed, and its id is handed to the next new key. Memory
//! follows the keys with open windows, not every key ever seen.

use rustc_hash::{FxHashMap, FxHasher};
use std::hash::Hasher;

use crate::cow::CowVec;
use crate::window::KeyId;

/// Keys up to this many bytes live in the table's entries.
const INLINE: usize = 19;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Entry {
    /// High bits of the hash, with the lowest bit set; 0 = empty.
    tag: u32,
    id: KeyId,
    partition: u32,
    len: u8,
    bytes: [u8; INLINE],
}

/// The hash of a key, computed once per event (see [`KeyTable::hash`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHash(u64);

/// Interned keys of one key field, per partition: operators index vectors by
/// [`KeyId`] instead of hashing strings again.
#[derive(Default)]
pub struct KeyTable {
    entries: Vec<Entry>,
    /// Occupied entries.
    used: usize,
    long: FxHashMap<(u32, Box<[u8]>), KeyId>,
    /// `(partition, key)` by id; copy-on-write, so that a checkpoint takes
    /// them along without copying. Removed ids hold [`Text::Free`].
    names: CowVec<Name>,
    /// Removed ids, reused before new ones.
    free: Vec<KeyId>,
    /// Keys removed since the table was made.
    removed: u64,
}

impl std::fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTable").field("keys", &self.len()).finish()
    }
}

impl KeyTable {
    #[inline]
    pub fn hash(partition: u32, key: &str) -> KeyHash {
        let mut h = FxHasher::default();
        h.write(key.as_bytes());
        h.write_u32(partition);
        // Fibonacci hashing: the high bits pick the slot.
        KeyHash(h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    #[inline]
    fn slot(&self, h: KeyHash) -> usize {
        let bits = self.entries.len().trailing_zeros();
        if bits == 0 { 0 } else { (h.0 >> (64 - bits)) as usize }
    }

    /// Start fetching the entry a lookup of `h` will read first.
    #[inline]
    pub fn prefetch(&self, h: KeyHash) {
        if let Some(e) = self.entries.get(self.slot(h)) {
            crate::window::prefetch(e);
        }
    }

    #[inline]
    pub fn intern(&mut self, partition: u32, key: &str) -> KeyId {
        self.intern_hashed(Self::hash(partition, key), partition, key)
    }

    /// [`KeyTable::intern`] with the hash computed beforehand.
    #[inline]
    pub fn intern_hashed(&mut self, h: KeyHash, partition: u32, key: &str) -> KeyId {
        let bytes = key.as_bytes();
        if bytes.len() > INLINE {
            return self.intern_long(partition, key);
        }
        if (self.used + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let tag = (h.0 as u32) | 1;
        // Compared as whole arrays (unused bytes are zero): no memcmp call.
        let mut probe = [0u8; INLINE];
        probe[..bytes.len()].copy_from_slice(bytes);
        let mask = self.entries.len() - 1;
        let mut i = self.slot(h);
        loop {
            let e = &self.entries[i];
            if e.tag == 0 {
                break;
            }
            if e.tag == tag && e.partition == partition && e.len as usize == bytes.len() && e.bytes == probe {
                return e.id;
            }
            i = (i + 1) & mask;
        }
        let id = self.new_id(partition, key);
        self.entries[i] = Entry {
            tag,
            id,
            partition,
            len: bytes.len() as u8,
            bytes: probe,
        };
        self.used += 1;
        id
    }

    #[cold]
    fn intern_long(&mut self, partition: u32, key: &str) -> KeyId {
        if let Some(&id) = self.long.get(&(partition, Box::from(key.as_bytes()))) {
            return id;
        }
        let id = self.new_id(partition, key);
        self.long.insert((partition, Box::from(key.as_bytes())), id);
        id
    }

    fn new_id(&mut self, partition: u32, key: &str) -> KeyId {
        if let Some(id) = self.free.pop() {
            self.names[id as usize] = Name::new(partition, key);
            return id;
        }
        let id = self.names.len() as KeyId;
        self.names.push(Name::new(partition, key));
        id
    }

    /// Whether `id` names a key (it was handed out and not removed).
    pub fn contains(&self, id: KeyId) -> bool {
        self.names
            .get(id as usize)
            .is_some_and(|n| !matches!(n.text, Text::Free))
    }

    /// Forget key `id`: its entry, its name; the id goes to the next new
    /// key. The caller guarantees nothing refers to `id` any more (no open
    /// window, no fired window still to finish). Does nothing for an id
    /// that is not [contained](KeyTable::contains).
    pub fn remove(&mut self, id: KeyId) {
        if !self.contains(id) {
            return;
        }
        let name = std::mem::replace(&mut self.names[id as usize], Name::FREE);
        let (partition, key) = (name.partition, name.as_str());
        if key.len() > INLINE {
            self.long.remove(&(partition, Box::from(key.as_bytes())));
        } else {
            let mask = self.entries.len() - 1;
            let mut i = self.slot(Self::hash(partition, key));
            while self.entries[i].tag == 0 || self.entries[i].id != id {
                i = (i + 1) & mask;
            }
            // Backward-shift deletion: move each later entry of the probe
            // run into the hole, unless its home slot lies cyclically in
            // (hole, entry] (then the hole is not on its probe path).
            let mut j = i;
            loop {
                j = (j + 1) & mask;
                let e = self.entries[j];
                if e.tag == 0 {
                    break;
                }
                let home = self.slot(Self::hash(e.partition, e.key()));
                let stays = if i <= j {
                    i < home && home <= j
                } else {
                    i < home || home <= j
                };
                if !stays {
                    self.entries[i] = e;
                    i = j;
                }
            }
            self.entries[i] = Entry::default();
            self.used -= 1;
        }
        self.free.push(id);
        self.removed += 1;
    }

    /// Keys removed so far.
    pub fn removed(&self) -> u64 {
        self.removed
    }

    #[cold]
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.entries);
        self.entries = vec![Entry::default(); (old.len() * 2).max(1024)];
        let mask = self.entries.len() - 1;
        for e in old.into_iter().filter(|e| e.tag != 0) {
            let mut i = self.slot(Self::hash(e.partition, e.key()));
            while self.entries[i].tag != 0 {
                i = (i + 1) & mask;
            }
            self.entries[i] = e;
        }
    }

    pub fn name(&self, id: KeyId) -> &str {
        self.names[id as usize].as_str()
    }

    /// Start fetching key `id`'s entry in the name list (a hint).
    #[inline]
    pub fn prefetch_name(&self, id: KeyId) {
        if let Some(entry) = self.names.get(id as usize) {
            crate::window::prefetch(entry);
        }
    }

    /// Start fetching key `id`'s text if it is not in its entry; the entry
    /// should be in the cache already ([`KeyTable::prefetch_name`]), or
    /// this waits for it.
    #[inline]
    pub fn prefetch_name_text(&self, id: KeyId) {
        if let Some(Name {
            text: Text::Heap(text), ..
        }) = self.names.get(id as usize)
            && let Some(first) = text.as_bytes().first()
        {
            crate::window::prefetch(first);
        }
    }

    pub fn partition(&self, id: KeyId) -> u32 {
        self.names[id as usize].partition
    }

    /// The keys as they are now, for a checkpoint (see [`CowVec`]).
    pub fn names(&self) -> KeyNames {
        KeyNames(self.names.clone())
    }

    /// Keys in the table (removed ones not counted).
    pub fn len(&self) -> usize {
        self.names.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the highest id handed out.
    pub fn id_bound(&self) -> usize {
        self.names.len()
    }
}

impl Entry {
    fn key(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("keys are text")
    }
}

/// Key texts up to this many bytes live in their [`Name`].
const INLINE_NAME: usize = 22;

/// A key's partition and text, the text inline when it is short (every
/// `user_id`): firing a window reads its key's name, and an inline name is
/// one cache line where a boxed one was two dependent misses. 32 bytes.
#[derive(Clone)]
struct Name {
    partition: u32,
    text: Text,
}

#[derive(Clone)]
enum Text {
    /// Always UTF-8: made only from a `&str` and never changed.
    Inline {
        len: u8,
        bytes: [u8; INLINE_NAME],
    },
    Heap(Box<str>),
    /// A removed key's id, waiting to be reused.
    Free,
}

impl Name {
    const FREE: Name = Name {
        partition: 0,
        text: Text::Free,
    };

    fn new(partition: u32, key: &str) -> Self {
        let text = if key.len() <= INLINE_NAME {
            let mut bytes = [0; INLINE_NAME];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            Text::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Text::Heap(key.into())
        };
        Self { partition, text }
    }

    #[inline]
    fn as_str(&self) -> &str {
        match &self.text {
            // SAFETY: the bytes are a copy of a `&str` (see `Name::new`)
            // and are never written again.
            Text::Inline { len, bytes } => unsafe { std::str::from_utf8_unchecked(&bytes[..*len as usize]) },
            Text::Heap(text) => text,
            Text::Free => "",
        }
    }
}

/// The names of a [`KeyTable`] at one moment.
#[derive(Clone)]
pub struct KeyNames(CowVec<Name>);

impl KeyNames {
    pub fn name(&self, id: KeyId) -> &str {
        self.0[id as usize].as_str()
    }

    pub fn partition(&self, id: KeyId) -> u32 {
        self.0[id as usize].partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id_per_partition_and_ids_are_dense() {
        let mut t = KeyTable::default();
        let long = "a-key-that-is-much-longer-than-nineteen-bytes";
        let mut expect = std::collections::HashMap::new();
        for round in 0..2 {
            for i in 0..50_000u32 {
                for (p, key) in [(i % 3, format!("{}", i / 2)), (0, format!("{long}{}", i % 100))] {
                    let id = t.intern(p, &key);
                    let prev = *expect.entry((p, key.clone())).or_insert(id);
                    assert_eq!(prev, id, "round {round}: {p}/{key}");
                    assert_eq!((t.name(id), t.partition(id)), (key.as_str(), p));
                }
            }
        }
        assert_eq!(t.len(), expect.len());
        let mut ids: Vec<KeyId> = expect.values().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..expect.len() as KeyId).collect::<Vec<_>>());
    }

    #[test]
    fn names_of_every_length_read_back() {
        assert_eq!(std::mem::size_of::<Name>(), 32);
        let mut t = KeyTable::default();
        let texts: Vec<String> = (0..40).map(|n| "é".repeat(n / 2) + &"k".repeat(n % 2)).collect();
        let ids: Vec<KeyId> = texts.iter().map(|k| t.intern(7, k)).collect();
        let names = t.names();
        for (k, id) in texts.iter().zip(ids) {
            assert_eq!(t.name(id), k);
            assert_eq!(names.name(id), k);
            assert_eq!(names.partition(id), 7);
        }
    }

    #[test]
    fn removed_keys_free_their_ids_and_the_rest_stay_found() {
        // A model run: random interns and removes against a map, with long
        // keys, several partitions and a table that grows meanwhile.
        let mut t = KeyTable::default();
        let mut model: std::collections::HashMap<(u32, String), KeyId> = Default::default();
        let mut rng = 0x1234_5678_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut max_live = 0;
        for step in 0..400_000u32 {
            let r = next();
            let n = r % 20_000;
            let p = (r >> 20) as u32 % 3;
            let key = if n % 97 == 0 {
                format!("a-long-key-of-more-than-nineteen-bytes-{n}")
            } else {
                n.to_string()
            };
            if (r >> 40) % 3 == 0 {
                if let Some(id) = model.remove(&(p, key.clone())) {
                    assert!(t.contains(id));
                    t.remove(id);
                    assert!(!t.contains(id), "step {step}");
                    t.remove(id); // a second remove does nothing
                }
            } else {
                let id = t.intern(p, &key);
                let known = *model.entry((p, key.clone())).or_insert(id);
                assert_eq!(known, id, "step {step}: {p}/{key}");
                assert_eq!((t.name(id), t.partition(id)), (key.as_str(), p));
            }
            max_live = max_live.max(model.len());
            assert_eq!(t.len(), model.len());
        }
        for ((p, key), id) in &model {
            assert_eq!(t.intern(*p, key), *id, "{p}/{key} is still found");
        }
        assert!(t.removed() > 50_000, "removed {}", t.removed());
        assert!(
            t.id_bound() <= max_live,
            "ids are reused: {} > {max_live}",
            t.id_bound()
        );
    }

    #[test]
    fn a_checkpoints_names_outlive_a_removal() {
        let mut t = KeyTable::default();
        let a = t.intern(0, "alice");
        let names = t.names();
        t.remove(a);
        let b = t.intern(0, "bob");
        assert_eq!(b, a, "the id is reused");
        assert_eq!(names.name(a), "alice", "the snapshot keeps the old name");
        assert_eq!(t.name(b), "bob");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_prefetched_hash_interns_the_same() {
        let mut t = KeyTable::default();
        let a = t.intern(1, "111");
        let h = KeyTable::hash(1, "111");
        t.prefetch(h);
        assert_eq!(t.intern_hashed(h, 1, "111"), a);
        assert_ne!(t.intern(2, "111"), a, "partitions have their own keys");
        assert_eq!(t.intern(0, ""), t.intern(0, ""));
    }
}
