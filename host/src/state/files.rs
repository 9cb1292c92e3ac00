//! Chunk files, shared by the stores that keep state bytes as plain files:
//! `chk-{id}/{name}`, each written and synced as it is encoded.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory of checkpoint `id`'s chunks under `root`.
pub(super) fn chunk_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("chk-{id}"))
}

/// The file of chunk `name`, named by [`encode_name`].
pub(super) fn chunk_file(root: &Path, id: u64, name: &str) -> PathBuf {
    chunk_dir(root, id).join(encode_name(name))
}

/// Chunk `name` as one plain path segment: every byte outside
/// `[A-Za-z0-9._-]` is written `%XX` (and a leading `.`), so no name
/// leaves its checkpoint's directory (or object prefix).
pub(super) fn encode_name(name: &str) -> String {
    let mut file = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !file.is_empty()) {
            file.push(b as char);
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    file
}

/// Write chunk `name` of checkpoint `id` and make its bytes durable.
pub(super) fn put(root: &Path, id: u64, name: &str, bytes: &[u8]) -> Result<(), String> {
    let dir = chunk_dir(root, id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = chunk_file(root, id, name);
    std::fs::File::create(&path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Make the names of the files in `dir` durable (if it exists).
pub(super) fn sync_dir(dir: &Path) -> Result<(), String> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all().map_err(|e| format!("cannot sync {}: {e}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot open {}: {e}", dir.display())),
    }
}

/// Chunk `name` of checkpoint `id`, `None` if there is no such file.
pub(super) fn read(root: &Path, id: u64, name: &str) -> Result<Option<Vec<u8>>, String> {
    let path = chunk_file(root, id, name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Remove checkpoint `id`'s chunks (nothing if there are none).
pub(super) fn remove(root: &Path, id: u64) -> Result<(), String> {
    let dir = chunk_dir(root, id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// The ids of the `chk-{id}` chunk directories under `root`.
pub(super) fn chunk_dirs(root: &Path) -> Result<Vec<u64>, String> {
    let entries = std::fs::read_dir(root).map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    Ok(entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse().ok())
        })
        .collect())
}

/// Take the exclusive lock on `{root}/LOCK`, held as long as the file is.
pub(super) fn lock(root: &Path) -> Result<std::fs::File, super::StateError> {
    let path = root.display().to_string();
    let lock = std::fs::File::create(root.join("LOCK")).map_err(|e| super::StateError::Store {
        path: path.clone(),
        reason: format!("cannot create the lock file: {e}"),
    })?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(super::StateError::InUse { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(super::StateError::Store {
            path,
            reason: format!("cannot lock: {e}"),
        }),
    }
}

/// Check, before a commit, that every chunk `meta` names is on disk with
/// its length: a chunk directory removed under a slow checkpoint (taken for
/// an orphan) must fail the commit, not make a damaged checkpoint.
pub(super) fn check_complete(root: &Path, meta: &super::CheckpointMeta) -> Result<(), String> {
    for info in &meta.chunks {
        let path = chunk_file(root, meta.id, &info.name);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == info.len => {}
            Ok(m) => {
                return Err(format!(
                    "not committed: {} has {} of {} bytes",
                    path.display(),
                    m.len(),
                    info.len
                ));
            }
            Err(e) => return Err(format!("not committed: {}: {e}", path.display())),
        }
    }
    Ok(())
}
