//! Durable state: checkpoints of the engine's open windows and the source
//! offsets that go with them.
//!
//! [`CheckpointStore`] is the whole contract; it never says "sled". A
//! checkpoint is written atomically: its chunks first, then its metadata,
//! each made durable before the next step, so a checkpoint exists (is
//! *complete*) exactly when its metadata does. A crash in between leaves
//! orphan chunks that the next open removes. [`SledStore`] keeps the
//! chunks in files and the commit records in sled (`checkpoint.dir`);
//! [`DirStore`] keeps both in files of a directory that may be shared
//! (`checkpoint.url = "file://..."`), committing create-only;
//! [`S3Store`] does the same in S3-compatible object storage
//! (`checkpoint.url = "s3://..."`) with conditional puts;
//! [`MemoryStore`] is their in-memory twin. All run through the same
//! conformance tests.

mod dir_store;
mod files;
pub mod format;
mod local_s3;
mod memory;
mod s3_store;
mod sled_store;

pub use dir_store::DirStore;
pub use format::{EngineSnapshot, ViewSnapshot, load_checkpoint, put_chunks};
pub use local_s3::LocalS3;
pub use memory::MemoryStore;
pub use s3_store::S3Store;
pub use sled_store::SledStore;

use serde::{Deserialize, Serialize};

use crate::plugin::WindowSpec;

/// Open the store the configuration names, for a job that writes it.
pub fn open_store(c: &crate::config::CheckpointConfig) -> Result<std::sync::Arc<dyn CheckpointStore>, StateError> {
    let location = c.store_dir().map_err(|reason| StateError::Store {
        path: c.url.clone(),
        reason,
    })?;
    open_location(location)
}

/// Open the store of partition `p` of a group member
/// ([`crate::config::CheckpointConfig::partition_store`]).
pub fn open_partition_store(
    c: &crate::config::CheckpointConfig,
    p: u32,
) -> Result<std::sync::Arc<dyn CheckpointStore>, StateError> {
    use crate::config::StoreLocation;
    let location = c.partition_store(p).map_err(|reason| StateError::Store {
        path: c.url.clone(),
        reason,
    })?;
    // Shared by the group: no writer's lock (a zombie could hold it for
    // ever); generations keep the writers apart.
    Ok(match location {
        StoreLocation::Dir(dir) => std::sync::Arc::new(DirStore::open_shared(&dir)?),
        other => open_location(other)?,
    })
}

fn open_location(location: crate::config::StoreLocation) -> Result<std::sync::Arc<dyn CheckpointStore>, StateError> {
    use crate::config::StoreLocation;
    Ok(match location {
        StoreLocation::Local(dir) => std::sync::Arc::new(SledStore::open(&dir)?),
        StoreLocation::Dir(dir) => std::sync::Arc::new(DirStore::open(&dir)?),
        StoreLocation::S3(url) => std::sync::Arc::new(S3Store::open(&url)?),
    })
}

/// Checkpoint ids per writer generation ([`CheckpointStore::claim_generation`]):
/// the checkpoint ids of generation `g` start at `g * GENERATION_IDS + 1`.
pub const GENERATION_IDS: u64 = 1_000_000_000;

/// `gen-{g}` markers kept below a new claim: a claim lists them all, so
/// the claimer removes those this many generations or more below its own
/// (a group that rebalances for months does not pile them up).
pub const KEPT_GENERATION_MARKERS: u64 = 16;

/// Claim a generation with create-only `gen-{g}` markers: count up from
/// the newest listed until a create succeeds, then remove the markers
/// [`KEPT_GENERATION_MARKERS`] or more below it.
///
/// Removing markers lets a claimer that listed before a removal create a
/// removed one again, so a claim counts only if the newest marker, listed
/// after it, is less than [`KEPT_GENERATION_MARKERS`] above it: a marker is
/// removed only by a claim that far above it, and the newest marker is
/// never removed, so a generation that was ever removed is always that far
/// below the newest. Otherwise the claimer counts up again from the newest.
///
/// `create(g)`: `Ok(true)` if this call created the marker, `Ok(false)` if
/// it existed. `remove` may fail (another claimer may have removed it).
pub(crate) fn claim_with_markers(
    list: impl Fn() -> Result<Vec<u64>, StateError>,
    create: impl Fn(u64) -> Result<bool, StateError>,
    remove: impl Fn(u64),
) -> Result<u64, StateError> {
    let mut newest = list()?.into_iter().max().unwrap_or(0);
    loop {
        let mut g = newest + 1;
        while !create(g)? {
            g += 1;
        }
        let listed = list()?;
        newest = listed.iter().copied().max().unwrap_or(g);
        if newest < g + KEPT_GENERATION_MARKERS {
            for old in listed.into_iter().filter(|&m| m + KEPT_GENERATION_MARKERS <= g) {
                remove(old);
            }
            return Ok(g);
        }
    }
}

/// The generation `g` a `gen-{g}` marker names.
pub(crate) fn generation_of(name: &str) -> Option<u64> {
    name.strip_prefix("gen-")?.parse().ok()
}

/// Version of the checkpoint format; a checkpoint of another version is
/// refused with a clear error.
pub const FORMAT_VERSION: u32 = 1;

/// The plugin that produced a view's states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub view: String,
    pub version: String,
    pub hash: String,
    pub state_version: u32,
    pub window: WindowSpec,
}

/// One chunk of a checkpoint: its name, length and CRC-32.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub name: String,
    pub len: u64,
    pub crc32: u32,
}

/// Everything about a checkpoint except its state bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: u32,
    pub id: u64,
    /// Wall-clock time the checkpoint was taken (ms since the epoch).
    pub created_ms: i64,
    pub topic: String,
    /// Next offset to read, per partition.
    pub offsets: Vec<(u32, i64)>,
    pub watermark: i64,
    pub partition_watermarks: Vec<(u32, i64)>,
    pub plugins: Vec<PluginRecord>,
    pub chunks: Vec<ChunkInfo>,
    pub size_bytes: u64,
    /// Open window parts (slices and sessions) in the checkpoint.
    pub open_states: u64,
    /// Time from the barrier to durable, in ms.
    pub duration_ms: u64,
}

/// A checkpoint store failed. Every variant names the store's path, and
/// the checkpoint when there is one.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("checkpoint store {path}: {reason}")]
    Store { path: String, reason: String },
    #[error("checkpoint {path}: {problem}{}", hint(.usable))]
    Damaged {
        path: String,
        problem: String,
        /// An older complete checkpoint that would work, if any.
        usable: Option<u64>,
    },
    #[error("checkpoint {path} does not exist{}", hint(.usable))]
    NotFound { path: String, usable: Option<u64> },
    /// Another process (a running job) has the store open.
    #[error("checkpoint store {path} is in use by another process")]
    InUse { path: String },
}

impl StateError {
    /// Whether trying again later can succeed (the store may come back, the
    /// disk may get space, the other process may stop). A damaged or
    /// missing checkpoint stays so.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Store { .. } | StateError::InUse { .. })
    }
}

fn hint(usable: &Option<u64>) -> String {
    match usable {
        Some(id) => format!(" (checkpoint {id} is complete and can be restored with --from-checkpoint {id})"),
        None => " (no older complete checkpoint exists)".to_string(),
    }
}

/// A checkpoint as stored: its metadata and its named chunks.
pub type StoredCheckpoint = (CheckpointMeta, Vec<(String, Vec<u8>)>);

/// Where checkpoints are kept. A checkpoint is written chunk by chunk
/// ([`put_chunk`]), then committed ([`commit`]): implementations must make
/// the commit atomic and durable, must not list, read or keep across a
/// reopen the chunks of a checkpoint that was never committed, and must
/// never return a checkpoint whose chunks do not match its metadata.
///
/// [`put_chunk`]: CheckpointStore::put_chunk
/// [`commit`]: CheckpointStore::commit
pub trait CheckpointStore: Send + Sync {
    /// A name for errors (the directory).
    fn path(&self) -> &str;

    /// Store chunk `name` of checkpoint `id`, which does not exist until
    /// it is committed. The caller may drop `bytes` when this returns.
    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StateError>;

    /// Complete checkpoint `meta.id`, whose chunks (`meta.chunks`) were
    /// put; durable when this returns.
    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError>;

    /// Put every chunk, then commit. `meta.chunks` is filled in from
    /// `chunks`.
    fn write(&self, meta: &mut CheckpointMeta, chunks: Vec<(String, Vec<u8>)>) -> Result<(), StateError> {
        describe_chunks(meta, &chunks);
        for (name, bytes) in &chunks {
            self.put_chunk(meta.id, name, bytes)?;
        }
        self.commit(meta)
    }

    /// Complete checkpoints, oldest first.
    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError>;

    /// A checkpoint's metadata and chunks, verified against their lengths
    /// and checksums.
    fn read(&self, id: u64) -> Result<StoredCheckpoint, StateError>;

    fn delete(&self, id: u64) -> Result<(), StateError>;

    /// Drop what a checkpoint that will not commit left (its chunks); a
    /// committed checkpoint of that id — another engine's, say — is left
    /// alone.
    fn discard(&self, id: u64) -> Result<(), StateError>;

    /// Remove what checkpoints that never committed left (their chunks),
    /// of ids below `below` only: a newer one may still be being written.
    fn remove_orphans_below(&self, _below: u64) -> Result<(), StateError> {
        Ok(())
    }

    /// Keep the newest `retain` checkpoints, delete the rest, then remove
    /// what failed checkpoints older than the newest complete one left.
    fn retain(&self, retain: usize) -> Result<(), StateError> {
        let all = self.list()?;
        if all.len() > retain {
            for m in &all[..all.len() - retain] {
                self.delete(m.id)?;
            }
        }
        // Best effort: the checkpoint that just committed stays committed.
        if let Some(newest) = all.last()
            && let Err(e) = self.remove_orphans_below(newest.id)
        {
            tracing::warn!(path = %self.path(), error = %e, "could not remove the chunks of incomplete checkpoints");
        }
        Ok(())
    }

    /// Claim a writer generation no other writer of this store ever got
    /// (the smallest free one above every claimed), with a create-only
    /// `gen-{g}` marker. A group member claims one for each partition it
    /// is assigned and numbers its checkpoints from `g` ×
    /// [`GENERATION_IDS`]: two owners of a partition (a new one, and a
    /// zombie that lost it without noticing) never write the same
    /// checkpoint id, and the newest owner's checkpoints sort last. A
    /// store with one writer (the locked local store) answers 0.
    fn claim_generation(&self) -> Result<u64, StateError> {
        Ok(0)
    }

    /// The display path of one checkpoint.
    fn checkpoint_path(&self, id: u64) -> String {
        format!("{}/chk-{id}", self.path())
    }

    /// The newest complete checkpoint older than `id`.
    fn older_than(&self, id: u64) -> Option<u64> {
        self.list().ok()?.iter().rev().map(|m| m.id).find(|&i| i < id)
    }
}

impl ChunkInfo {
    /// The description of chunk `name` with contents `bytes`.
    pub fn of(name: &str, bytes: &[u8]) -> Self {
        ChunkInfo {
            name: name.to_string(),
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// Fill in chunk infos and the size.
pub(crate) fn describe_chunks(meta: &mut CheckpointMeta, chunks: &[(String, Vec<u8>)]) {
    meta.chunks = chunks.iter().map(|(name, bytes)| ChunkInfo::of(name, bytes)).collect();
    meta.size_bytes = chunks.iter().map(|(_, b)| b.len() as u64).sum();
}

/// The id of a commit record named `chk-{id}.json`.
pub(crate) fn record_id(name: &str) -> Option<u64> {
    name.strip_prefix("chk-")?.strip_suffix(".json")?.parse().ok()
}

/// Checkpoint `id`'s commit record, parsed; `Damaged` if it cannot be.
pub(crate) fn parse_record(store: &dyn CheckpointStore, id: u64, raw: &[u8]) -> Result<CheckpointMeta, StateError> {
    serde_json::from_slice(raw).map_err(|e| StateError::Damaged {
        path: store.checkpoint_path(id),
        problem: format!("metadata cannot be read (incompatible version?): {e}"),
        usable: store.older_than(id),
    })
}

/// For `list`: checkpoint `id`'s record as read (or why it could not be),
/// parsed; `None`, with a warning, when it cannot be used.
pub(crate) fn listed_record(
    store: &dyn CheckpointStore,
    id: u64,
    raw: Result<impl AsRef<[u8]>, String>,
) -> Option<CheckpointMeta> {
    let parsed = raw.and_then(|b| serde_json::from_slice::<CheckpointMeta>(b.as_ref()).map_err(|e| e.to_string()));
    match parsed {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(checkpoint = %store.checkpoint_path(id), error = %e, "unreadable checkpoint metadata; skipped");
            None
        }
    }
}

/// Check chunks against the metadata.
pub(crate) fn verify_chunks(
    store: &dyn CheckpointStore,
    meta: &CheckpointMeta,
    chunks: &[(String, Vec<u8>)],
) -> Result<(), StateError> {
    let damaged = |problem: String| StateError::Damaged {
        path: store.checkpoint_path(meta.id),
        problem,
        usable: store.older_than(meta.id),
    };
    if meta.format != FORMAT_VERSION {
        return Err(damaged(format!(
            "written in checkpoint format {}, this engine reads format {FORMAT_VERSION}",
            meta.format
        )));
    }
    for info in &meta.chunks {
        let Some((_, bytes)) = chunks.iter().find(|(n, _)| *n == info.name) else {
            return Err(damaged(format!("chunk {:?} is missing", info.name)));
        };
        if bytes.len() as u64 != info.len {
            return Err(damaged(format!(
                "chunk {:?} is truncated: {} of {} bytes",
                info.name,
                bytes.len(),
                info.len
            )));
        }
        if crc32fast::hash(bytes) != info.crc32 {
            return Err(damaged(format!("chunk {:?} fails its checksum", info.name)));
        }
    }
    Ok(())
}

/// Parse `ID` or `.../chk-ID`.
pub fn parse_checkpoint_ref(s: &str) -> Option<u64> {
    let name = s.trim_end_matches('/').rsplit('/').next()?;
    name.strip_prefix("chk-").unwrap_or(name).parse().ok()
}

#[cfg(test)]
mod conformance;
