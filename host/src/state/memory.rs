//! The in-memory twin of [`SledStore`](super::SledStore): same contract, no
//! disk. For tests, and for runs that do not need to survive a restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{CheckpointMeta, CheckpointStore, StateError, verify_chunks};

type Chunks = Vec<(String, Vec<u8>)>;
type Stored = (CheckpointMeta, Chunks);

#[derive(Default)]
pub struct MemoryStore {
    checkpoints: Mutex<BTreeMap<u64, Stored>>,
    /// Chunks put but not committed, by checkpoint.
    pending: Mutex<BTreeMap<u64, Chunks>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Damage a stored chunk (for tests of damaged checkpoints).
    pub fn truncate_chunk(&self, id: u64, chunk: usize, len: usize) {
        let mut g = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, chunks)) = g.get_mut(&id) {
            chunks[chunk].1.truncate(len);
        }
    }
}

impl CheckpointStore for MemoryStore {
    fn path(&self) -> &str {
        "memory"
    }

    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let mut g = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(id).or_default().push((name.to_string(), bytes.to_vec()));
        Ok(())
    }

    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        let chunks = {
            let mut g = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            g.remove(&meta.id).unwrap_or_default()
        };
        let mut g = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(meta.id, (meta.clone(), chunks));
        Ok(())
    }

    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        let g = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.values().map(|(m, _)| m.clone()).collect())
    }

    fn read(&self, id: u64) -> Result<Stored, StateError> {
        let stored = {
            let g = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
            g.get(&id).cloned()
        };
        let Some((meta, chunks)) = stored else {
            return Err(StateError::NotFound {
                path: self.checkpoint_path(id),
                usable: self.older_than(id),
            });
        };
        verify_chunks(self, &meta, &chunks)?;
        Ok((meta, chunks))
    }

    fn discard(&self, id: u64) -> Result<(), StateError> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        Ok(())
    }

    fn delete(&self, id: u64) -> Result<(), StateError> {
        self.checkpoints.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        Ok(())
    }
}
