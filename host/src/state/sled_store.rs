//! Checkpoints in sled.
//!
//! Two trees: `chunks` (key `id (8 bytes BE) ++ name`) and `meta` (key
//! `id`, value JSON [`CheckpointMeta`]). A checkpoint's chunks are written
//! one by one as they are encoded and flushed together, then its metadata is
//! written and flushed: the metadata is the commit record, and chunks without
//! it are removed when the store is opened. Chunks are large (a whole view's states,
//! split at about 4 MiB), so a checkpoint of a million keys is a few dozen
//! inserts, not millions.

use super::{CheckpointMeta, CheckpointStore, StateError, verify_chunks};

pub struct SledStore {
    path: String,
    /// An exclusive lock on `{dir}/LOCK`, held while the store is open.
    _lock: std::fs::File,
    db: sled::Db,
    chunks: sled::Tree,
    meta: sled::Tree,
}

impl SledStore {
    /// Open (or create) the store in `dir`, removing chunks of checkpoints
    /// that never completed.
    pub fn open(dir: &str) -> Result<Self, StateError> {
        let err = |reason: String| StateError::Store {
            path: dir.to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create the directory: {e}")))?;
        // One process at a time: held as long as the store is open (sled
        // locks too, but says so only in an error's text).
        let lock = std::fs::File::create(std::path::Path::new(dir).join("LOCK"))
            .map_err(|e| err(format!("cannot create the lock file: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StateError::InUse { path: dir.to_string() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(err(format!("cannot lock: {e}"))),
        }
        let db = sled::Config::new()
            .path(std::path::Path::new(dir).join("db"))
            .cache_capacity(64 << 20)
            .open()
            .map_err(|e| err(format!("cannot open sled: {e}")))?;
        let chunks = db.open_tree("chunks").map_err(|e| err(e.to_string()))?;
        let meta = db.open_tree("meta").map_err(|e| err(e.to_string()))?;
        let store = Self {
            path: dir.to_string(),
            _lock: lock,
            db,
            chunks,
            meta,
        };
        store.remove_orphans()?;
        Ok(store)
    }

    fn err(&self, reason: impl std::fmt::Display) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn remove_orphans(&self) -> Result<(), StateError> {
        let mut orphans = Vec::new();
        for kv in self.chunks.iter().keys() {
            let k = kv.map_err(|e| self.err(e))?;
            let id = u64::from_be_bytes(k[..8].try_into().map_err(|_| self.err("bad chunk key"))?);
            if !self.meta.contains_key(id.to_be_bytes()).map_err(|e| self.err(e))? {
                orphans.push(k);
            }
        }
        if !orphans.is_empty() {
            tracing::warn!(path = %self.path, chunks = orphans.len(), "removing chunks of an incomplete checkpoint");
            for k in orphans {
                self.chunks.remove(k).map_err(|e| self.err(e))?;
            }
            self.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn chunk_key(id: u64, name: &str) -> Vec<u8> {
        let mut k = id.to_be_bytes().to_vec();
        k.extend_from_slice(name.as_bytes());
        k
    }
}

impl CheckpointStore for SledStore {
    fn path(&self) -> &str {
        &self.path
    }

    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        // Not flushed here: `commit` flushes before the metadata goes in.
        self.chunks
            .insert(Self::chunk_key(id, name), bytes)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        self.db.flush().map_err(|e| self.err(e))?;
        let json = serde_json::to_vec(meta).map_err(|e| self.err(e))?;
        self.meta.insert(meta.id.to_be_bytes(), json).map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        self.write_index()
    }

    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        let mut out = Vec::new();
        for kv in self.meta.iter() {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<CheckpointMeta>(&v) {
                Ok(m) => out.push(m),
                Err(e) => {
                    let id = k
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                        .unwrap_or(0);
                    tracing::warn!(checkpoint = %self.checkpoint_path(id), error = %e, "unreadable checkpoint metadata; skipped");
                }
            }
        }
        Ok(out)
    }

    fn read(&self, id: u64) -> Result<super::StoredCheckpoint, StateError> {
        let Some(raw) = self.meta.get(id.to_be_bytes()).map_err(|e| self.err(e))? else {
            return Err(StateError::NotFound {
                path: self.checkpoint_path(id),
                usable: self.older_than(id),
            });
        };
        let meta: CheckpointMeta = serde_json::from_slice(&raw).map_err(|e| StateError::Damaged {
            path: self.checkpoint_path(id),
            problem: format!("metadata cannot be read (incompatible version?): {e}"),
            usable: self.older_than(id),
        })?;
        let mut chunks = Vec::with_capacity(meta.chunks.len());
        for info in &meta.chunks {
            if let Some(v) = self
                .chunks
                .get(Self::chunk_key(id, &info.name))
                .map_err(|e| self.err(e))?
            {
                chunks.push((info.name.clone(), v.to_vec()));
            }
        }
        verify_chunks(self, &meta, &chunks)?;
        Ok((meta, chunks))
    }

    fn delete(&self, id: u64) -> Result<(), StateError> {
        // Metadata first: a half-deleted checkpoint is an incomplete one.
        self.meta.remove(id.to_be_bytes()).map_err(|e| self.err(e))?;
        for k in self.chunks.scan_prefix(id.to_be_bytes()).keys() {
            let k = k.map_err(|e| self.err(e))?;
            self.chunks.remove(k).map_err(|e| self.err(e))?;
        }
        self.db.flush().map_err(|e| self.err(e))?;
        self.write_index()
    }
}

/// The file beside the sled database listing its complete checkpoints, for
/// readers while a running job holds the database's lock.
const INDEX: &str = "index.json";

impl SledStore {
    /// Rewrite [`INDEX`] (write beside, then rename).
    fn write_index(&self) -> Result<(), StateError> {
        let all = self.list()?;
        let path = std::path::Path::new(&self.path).join(INDEX);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(&all).map_err(|e| self.err(e))?;
        std::fs::write(&tmp, json)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| self.err(format!("cannot write {}: {e}", path.display())))
    }

    /// The checkpoints of the store in `dir` as of its last change, from
    /// [`INDEX`]: readable while a running job holds the database.
    pub fn read_index(dir: &str) -> Result<Vec<CheckpointMeta>, StateError> {
        let path = std::path::Path::new(dir).join(INDEX);
        let err = |reason: String| StateError::Store {
            path: dir.to_string(),
            reason,
        };
        let text = std::fs::read(&path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// Damage a stored chunk (for tests of damaged checkpoints).
    pub fn truncate_chunk_for_test(&self, id: u64, name: &str, len: usize) -> Result<(), StateError> {
        let key = Self::chunk_key(id, name);
        if let Some(v) = self.chunks.get(&key).map_err(|e| self.err(e))? {
            self.chunks
                .insert(key, &v[..len.min(v.len())])
                .map_err(|e| self.err(e))?;
            self.db.flush().map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
