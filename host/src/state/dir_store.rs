//! Checkpoints as plain files in a directory that may be shared
//! (`checkpoint.url = "file:///mnt/shared/ff"`): an NFS or other network
//! mount reachable from another machine, so that losing the engine's
//! machine does not lose its state.
//!
//! Layout of the root:
//! - `chk-{id}/{name}`: the chunks of checkpoint `id` ([`super::files`]);
//! - `chk-{id}.json`: its commit record, the [`CheckpointMeta`] as JSON.
//!   It is written beside (`.chk-{id}.json.tmp`), synced, then
//!   hard-linked into place, which fails if the record exists: a commit
//!   never replaces a checkpoint, on local disks and on NFS alike (`link`
//!   is atomic there, where `O_EXCL` was not always). The chunk directory
//!   and the root are synced before and after.
//! - `LOCK`: held by the job that writes the store.
//!
//! Readers (`featherflow checkpoints`) need no lock: a record is complete
//! when it is visible.

use std::path::{Path, PathBuf};

use super::{
    CheckpointMeta, CheckpointStore, StateError, claim_with_markers, files, generation_of, listed_record, parse_record,
    record_id, verify_chunks,
};

pub struct DirStore {
    path: String,
    root: PathBuf,
    /// The writer's lock; `None` for a reader.
    _lock: Option<std::fs::File>,
}

impl DirStore {
    /// Open (or create) the store at `root` for writing: takes its lock and
    /// removes the chunks of checkpoints that never completed and are older
    /// than the newest complete one.
    pub fn open(root: &str) -> Result<Self, StateError> {
        std::fs::create_dir_all(root).map_err(|e| StateError::Store {
            path: root.to_string(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        let lock = files::lock(Path::new(root))?;
        let store = Self {
            path: root.to_string(),
            root: PathBuf::from(root),
            _lock: Some(lock),
        };
        if let Some(newest) = store.list()?.last() {
            store.remove_orphans_below(newest.id)?;
        }
        Ok(store)
    }

    /// Open (or create) the store at `root` for writing beside other
    /// writers (the owners of a partition, one after another, and a zombie
    /// that lost it): no lock, and no orphans removed here (another writer
    /// may be writing them); each writer claims a generation.
    pub fn open_shared(root: &str) -> Result<Self, StateError> {
        std::fs::create_dir_all(root).map_err(|e| StateError::Store {
            path: root.to_string(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        Ok(Self {
            path: root.to_string(),
            root: PathBuf::from(root),
            _lock: None,
        })
    }

    /// Open the store at `root` to read it, beside a job that may be writing.
    pub fn open_read_only(root: &str) -> Result<Self, StateError> {
        if !Path::new(root).is_dir() {
            return Err(StateError::Store {
                path: root.to_string(),
                reason: "no such directory".into(),
            });
        }
        Ok(Self {
            path: root.to_string(),
            root: PathBuf::from(root),
            _lock: None,
        })
    }

    fn err(&self, reason: impl std::fmt::Display) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn record(&self, id: u64) -> PathBuf {
        self.root.join(format!("chk-{id}.json"))
    }

    fn committed(&self, id: u64) -> bool {
        self.record(id).exists()
    }
}

impl CheckpointStore for DirStore {
    fn path(&self) -> &str {
        &self.path
    }

    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        // Never write into a complete checkpoint.
        if self.committed(id) {
            return Err(self.err(format!(
                "checkpoint {id} exists already: another engine wrote it (commits never replace one)"
            )));
        }
        files::put(&self.root, id, name, bytes).map_err(|e| self.err(e))
    }

    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        files::check_complete(&self.root, meta).map_err(|e| self.err(e))?;
        files::sync_dir(&files::chunk_dir(&self.root, meta.id)).map_err(|e| self.err(e))?;
        files::sync_dir(&self.root).map_err(|e| self.err(e))?;
        let record = self.record(meta.id);
        let tmp = self.root.join(format!(".chk-{}.json.tmp", meta.id));
        let json = serde_json::to_vec_pretty(meta).map_err(|e| self.err(e))?;
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(&json)?;
            f.sync_all()
        });
        written.map_err(|e| self.err(format!("cannot write {}: {e}", tmp.display())))?;
        let linked = std::fs::hard_link(&tmp, &record);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(self.err(format!(
                    "checkpoint {} exists already: another engine wrote it (commits never replace one)",
                    meta.id
                )));
            }
            Err(e) => return Err(self.err(format!("cannot commit {}: {e}", record.display()))),
        }
        files::sync_dir(&self.root).map_err(|e| self.err(e))
    }

    fn claim_generation(&self) -> Result<u64, StateError> {
        claim_with_markers(
            || self.generations(),
            |g| {
                let marker = self.root.join(format!("gen-{g}"));
                match std::fs::OpenOptions::new().write(true).create_new(true).open(&marker) {
                    Ok(_) => {
                        files::sync_dir(&self.root).map_err(|e| self.err(e))?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(self.err(format!("cannot create {}: {e}", marker.display()))),
                }
            },
            |old| {
                let _ = std::fs::remove_file(self.root.join(format!("gen-{old}")));
            },
        )
    }

    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| self.err(format!("cannot list: {e}")))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(record_id) else {
                continue;
            };
            let raw = std::fs::read(entry.path()).map_err(|e| e.to_string());
            out.extend(listed_record(self, id, raw));
        }
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    fn read(&self, id: u64) -> Result<super::StoredCheckpoint, StateError> {
        let raw = match std::fs::read(self.record(id)) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound {
                    path: self.checkpoint_path(id),
                    usable: self.older_than(id),
                });
            }
            Err(e) => return Err(self.err(format!("cannot read {}: {e}", self.record(id).display()))),
        };
        let meta = parse_record(self, id, &raw)?;
        let mut chunks = Vec::with_capacity(meta.chunks.len());
        for info in &meta.chunks {
            if let Some(bytes) = files::read(&self.root, id, &info.name).map_err(|e| self.err(e))? {
                chunks.push((info.name.clone(), bytes));
            }
        }
        verify_chunks(self, &meta, &chunks)?;
        Ok((meta, chunks))
    }

    fn delete(&self, id: u64) -> Result<(), StateError> {
        // The record first: a half-deleted checkpoint is an incomplete one.
        match std::fs::remove_file(self.record(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err(format!("cannot remove {}: {e}", self.record(id).display()))),
        }
        files::sync_dir(&self.root).map_err(|e| self.err(e))?;
        files::remove(&self.root, id).map_err(|e| self.err(e))
    }

    /// Chunk directories without a record, of ids below `below`: what
    /// checkpoints that failed half-way left.
    fn remove_orphans_below(&self, below: u64) -> Result<(), StateError> {
        let mut removed = 0;
        for id in files::chunk_dirs(&self.root).map_err(|e| self.err(e))? {
            if id < below && !self.committed(id) {
                files::remove(&self.root, id).map_err(|e| self.err(e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::warn!(path = %self.path, checkpoints = removed, "removed the chunks of incomplete checkpoints");
        }
        Ok(())
    }

    fn discard(&self, id: u64) -> Result<(), StateError> {
        if self.committed(id) {
            return Ok(());
        }
        files::remove(&self.root, id).map_err(|e| self.err(e))
    }
}

impl DirStore {
    /// Damage a stored chunk (for tests of damaged checkpoints).
    pub fn truncate_chunk_for_test(&self, id: u64, name: &str, len: usize) {
        let path = files::chunk_file(&self.root, id, name);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..len.min(bytes.len())]).unwrap();
    }

    /// The generations of the `gen-{g}` markers in the store.
    fn generations(&self) -> Result<Vec<u64>, StateError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| self.err(format!("cannot list: {e}")))?;
        Ok(entries
            .filter_map(|e| generation_of(&e.ok()?.file_name().to_string_lossy()))
            .collect())
    }

    /// The `gen-{g}` markers in the store, sorted (for tests of their pruning).
    pub fn generation_markers_for_test(&self) -> Vec<u64> {
        let mut out = self.generations().unwrap();
        out.sort();
        out
    }
}
