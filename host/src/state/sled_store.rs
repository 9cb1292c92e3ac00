//! Checkpoints in sled, with their state bytes in plain files.
//!
//! Layout of `dir`:
//! - `chk-{id}/{name}`: the chunks of checkpoint `id`, one file each (`/` in
//!   a chunk name is written `%2F`), written and synced as they are encoded;
//! - `db/`: sled, whose tree `meta` (key `id`, 8 bytes big-endian; value
//!   JSON [`CheckpointMeta`]) holds the commit records. The metadata goes in
//!   and is flushed after the chunk files and their directory are durable, so
//!   a checkpoint exists exactly when its record does. A `chk-{id}` directory
//!   without a record is an incomplete checkpoint: removed when the store is
//!   opened, and when a newer checkpoint is retained.
//! - `index.json`: the list of complete checkpoints, for readers while a job
//!   holds the database.
//!
//! Why files: sled is log-structured and did not give back the space of
//! multi-megabyte values it removed. With the chunks inside it, a store that
//! kept 3 checkpoints of 60 MB grew to 6.6 GB after 70 of them. Deleting a
//! checkpoint's directory gives its space back at once.
//!
//! Stores written before files were used kept chunks in sled's tree
//! `chunks` (key `id ++ name`): those are still read and deleted, so their
//! checkpoints stay restorable until they age out.

use super::{CheckpointMeta, CheckpointStore, StateError, files, listed_record, parse_record, verify_chunks};

pub struct SledStore {
    path: String,
    /// An exclusive lock on `{dir}/LOCK`, held while the store is open.
    _lock: std::fs::File,
    db: sled::Db,
    /// Chunks of stores written before chunks were files.
    legacy_chunks: sled::Tree,
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
        let lock = files::lock(std::path::Path::new(dir))?;
        let db = sled::Config::new()
            .path(std::path::Path::new(dir).join("db"))
            .cache_capacity(8 << 20)
            .open()
            .map_err(|e| err(format!("cannot open sled: {e}")))?;
        let legacy_chunks = db.open_tree("chunks").map_err(|e| err(e.to_string()))?;
        let meta = db.open_tree("meta").map_err(|e| err(e.to_string()))?;
        let store = Self {
            path: dir.to_string(),
            _lock: lock,
            db,
            legacy_chunks,
            meta,
        };
        store.remove_orphans(None)?;
        Ok(store)
    }

    fn err(&self, reason: impl std::fmt::Display) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Remove what incomplete checkpoints left: chunk directories (of any
    /// id when `below` is `None`, else only of ids under it) and old-layout
    /// chunks without a commit record.
    fn remove_orphans(&self, below: Option<u64>) -> Result<(), StateError> {
        let committed = |id: u64| self.meta.contains_key(id.to_be_bytes()).map_err(|e| self.err(e));
        let mut removed = 0usize;
        for id in files::chunk_dirs(self.root()).map_err(|e| self.err(e))? {
            if below.is_some_and(|b| id >= b) || committed(id)? {
                continue;
            }
            files::remove(self.root(), id).map_err(|e| self.err(e))?;
            removed += 1;
        }
        let mut old = Vec::new();
        for kv in self.legacy_chunks.iter().keys() {
            let k = kv.map_err(|e| self.err(e))?;
            let id = u64::from_be_bytes(k[..8].try_into().map_err(|_| self.err("bad chunk key"))?);
            if !committed(id)? {
                old.push(k);
            }
        }
        if !old.is_empty() {
            for k in old {
                self.legacy_chunks.remove(k).map_err(|e| self.err(e))?;
            }
            self.db.flush().map_err(|e| self.err(e))?;
            removed += 1;
        }
        if removed > 0 {
            tracing::warn!(path = %self.path, checkpoints = removed, "removed the chunks of incomplete checkpoints");
        }
        Ok(())
    }

    fn root(&self) -> &std::path::Path {
        std::path::Path::new(&self.path)
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
        files::put(self.root(), id, name, bytes).map_err(|e| self.err(e))
    }

    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        // The chunk files and their names must be durable before the
        // record is, the chunk directory's own name included.
        files::check_complete(self.root(), meta).map_err(|e| self.err(e))?;
        files::sync_dir(&files::chunk_dir(self.root(), meta.id)).map_err(|e| self.err(e))?;
        files::sync_dir(self.root()).map_err(|e| self.err(e))?;
        let json = serde_json::to_vec(meta).map_err(|e| self.err(e))?;
        self.meta.insert(meta.id.to_be_bytes(), json).map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        self.write_index()
    }

    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        let mut out = Vec::new();
        for kv in self.meta.iter() {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let id = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            out.extend(listed_record(self, id, Ok(v)));
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
        let meta = parse_record(self, id, &raw)?;
        let mut chunks = Vec::with_capacity(meta.chunks.len());
        for info in &meta.chunks {
            match files::read(self.root(), id, &info.name).map_err(|e| self.err(e))? {
                Some(bytes) => chunks.push((info.name.clone(), bytes)),
                None => {
                    if let Some(v) = self
                        .legacy_chunks
                        .get(Self::chunk_key(id, &info.name))
                        .map_err(|e| self.err(e))?
                    {
                        chunks.push((info.name.clone(), v.to_vec()));
                    }
                }
            }
        }
        verify_chunks(self, &meta, &chunks)?;
        Ok((meta, chunks))
    }

    fn delete(&self, id: u64) -> Result<(), StateError> {
        // The record first: a half-deleted checkpoint is an incomplete one.
        self.meta.remove(id.to_be_bytes()).map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        files::remove(self.root(), id).map_err(|e| self.err(e))?;
        let mut legacy = false;
        for k in self.legacy_chunks.scan_prefix(id.to_be_bytes()).keys() {
            let k = k.map_err(|e| self.err(e))?;
            self.legacy_chunks.remove(k).map_err(|e| self.err(e))?;
            legacy = true;
        }
        if legacy {
            self.db.flush().map_err(|e| self.err(e))?;
        }
        self.write_index()
    }

    fn discard(&self, id: u64) -> Result<(), StateError> {
        if self.meta.contains_key(id.to_be_bytes()).map_err(|e| self.err(e))? {
            return Ok(());
        }
        files::remove(self.root(), id).map_err(|e| self.err(e))
    }

    fn remove_orphans_below(&self, below: u64) -> Result<(), StateError> {
        self.remove_orphans(Some(below))
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
        let path = files::chunk_file(self.root(), id, name);
        let bytes = std::fs::read(&path).map_err(|e| self.err(e))?;
        std::fs::write(&path, &bytes[..len.min(bytes.len())]).map_err(|e| self.err(e))
    }
}
