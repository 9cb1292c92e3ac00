//! Checkpoints in S3-compatible object storage
//! (`checkpoint.url = "s3://bucket/prefix"`), so that losing the engine's
//! machine does not lose its state. The endpoint and credentials come from
//! the standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...);
//! an `http://` endpoint is allowed because the user named it.
//!
//! Layout under the prefix, as [`super::DirStore`] lays out a directory:
//! - `chk-{id}/{name}`: the chunks of checkpoint `id` (the name encoded as
//!   one key segment by [`files::encode_name`]);
//! - `chk-{id}.json`: its commit record, the [`CheckpointMeta`] as JSON, put
//!   with `If-None-Match: *`. The store creates it only if it does not
//!   exist, atomically (AWS S3 since 2024, SeaweedFS, MinIO, R2 do): a
//!   commit never replaces a checkpoint, and of two engines committing the
//!   same id exactly one succeeds. That is the whole fence: object storage
//!   has no lock, so a second writer of the same prefix is not refused at
//!   open as it is by the other stores; its commits fail instead.
//!
//! Chunks are plain puts: a chunk is invisible until the record that names
//! it exists, and the commit first checks that every chunk is stored with
//! its length. Readers (`featherflow checkpoints`) need nothing else.
//!
//! object_store is async; the store runs each call on a small runtime of
//! its own, so its callers (the checkpoint thread, the CLI) stay
//! synchronous.

use std::future::Future;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{
    CheckpointMeta, CheckpointStore, StateError, claim_with_markers, files, generation_of, listed_record, parse_record,
    record_id, verify_chunks,
};

pub struct S3Store {
    /// `s3://bucket/prefix`, for messages.
    url: String,
    store: object_store::aws::AmazonS3,
    prefix: Path,
    /// Drives the HTTP client; one worker is plenty for one call at a time.
    rt: tokio::runtime::Runtime,
}

impl S3Store {
    /// Open the store at `url` for a job that writes it: checks that the
    /// bucket answers, then removes the chunks of checkpoints that never
    /// completed and are older than the newest complete one.
    pub fn open(url: &str) -> Result<Self, StateError> {
        let store = Self::open_read_only(url)?;
        if let Some(newest) = store.list()?.last() {
            store.remove_orphans_below(newest.id)?;
        }
        Ok(store)
    }

    /// Open the store at `url` to read it, beside a job that may be writing.
    pub fn open_read_only(url: &str) -> Result<Self, StateError> {
        Self::connect(url, &[])
    }

    /// Open the store at `url`, configured by the `AWS_*` variables and
    /// then by `settings`: pairs such as `("aws_endpoint_url", "http://…")`
    /// (the variables' names, any case).
    pub fn connect(url: &str, settings: &[(String, String)]) -> Result<Self, StateError> {
        let err = |reason: String| StateError::Store {
            path: url.to_string(),
            reason,
        };
        let (bucket, prefix) = parse_url(url).map_err(err)?;
        // Timeouts first: the AWS_* variables (as `AmazonS3Builder::from_env`
        // reads them) may then override them.
        let mut builder = object_store::aws::AmazonS3Builder::new()
            // A checkpoint that cannot be stored fails, and the engine takes
            // the next one on time: no call may hang the checkpoint thread.
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..Default::default()
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(30)),
            );
        let from_env = std::env::vars().filter(|(name, _)| name.starts_with("AWS_"));
        let mut endpoint = String::new();
        for (name, value) in from_env.chain(settings.iter().cloned()) {
            let name = name.to_ascii_lowercase();
            if name == "aws_endpoint_url" || name == "aws_endpoint" {
                endpoint = value.clone();
            }
            // (Variables the S3 client does not know are someone else's.)
            if let Ok(key) = name.parse() {
                builder = builder.with_config(key, value);
            }
        }
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        let s3 = builder.with_bucket_name(bucket).build().map_err(|e| {
            err(format!(
                "cannot configure S3 (checkpoint.url and the AWS_* variables): {e}"
            ))
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("checkpoint-s3")
            .enable_all()
            .build()
            .map_err(|e| err(format!("cannot start the S3 client: {e}")))?;
        let store = Self {
            url: url.trim_end_matches('/').to_string(),
            store: s3,
            prefix: Path::from(prefix),
            rt,
        };
        store
            .run(store.store.list_with_delimiter(Some(&store.prefix)))
            .map_err(|e| {
                store.err(format!(
                    "cannot list the bucket (is AWS_ENDPOINT_URL right, are the credentials valid?): {e}"
                ))
            })?;
        Ok(store)
    }

    /// Run one async call to completion. From async code (an API handler),
    /// on a thread of its own: blocking inside the caller's runtime panics.
    fn run<T: Send>(&self, call: impl Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(call))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.rt.block_on(call)
        }
    }

    fn err(&self, reason: impl std::fmt::Display) -> StateError {
        StateError::Store {
            path: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    fn record(&self, id: u64) -> Path {
        self.prefix.clone().join(format!("chk-{id}.json"))
    }

    fn chunk_prefix(&self, id: u64) -> Path {
        self.prefix.clone().join(format!("chk-{id}"))
    }

    fn chunk(&self, id: u64, name: &str) -> Path {
        self.chunk_prefix(id).join(files::encode_name(name))
    }

    fn committed(&self, id: u64) -> Result<bool, StateError> {
        match self.run(self.store.head(&self.record(id))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(format!("cannot look up checkpoint {id}: {e}"))),
        }
    }

    /// The chunks stored for checkpoint `id`: key and size.
    fn stored_chunks(&self, id: u64) -> Result<Vec<(Path, u64)>, StateError> {
        let listed = self
            .run(self.store.list_with_delimiter(Some(&self.chunk_prefix(id))))
            .map_err(|e| self.err(format!("cannot list the chunks of checkpoint {id}: {e}")))?;
        Ok(listed.objects.into_iter().map(|o| (o.location, o.size)).collect())
    }

    fn remove_chunks(&self, id: u64) -> Result<(), StateError> {
        for (key, _) in self.stored_chunks(id)? {
            match self.run(self.store.delete(&key)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("cannot delete {key}: {e}"))),
            }
        }
        Ok(())
    }
}

/// `s3://bucket/prefix` -> (bucket, prefix); the prefix may be empty.
fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("checkpoint.url: {url:?} is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "checkpoint.url: {url:?} names no bucket, as in s3://bucket/featherflow"
        ));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl S3Store {
    /// The objects and sub-prefixes directly under the prefix.
    fn listed(&self) -> Result<object_store::ListResult, StateError> {
        self.run(self.store.list_with_delimiter(Some(&self.prefix)))
            .map_err(|e| self.err(format!("cannot list: {e}")))
    }

    /// The generations of the `gen-{g}` markers under the prefix.
    fn generations(&self) -> Result<Vec<u64>, StateError> {
        Ok(self
            .listed()?
            .objects
            .iter()
            .filter_map(|o| o.location.filename().and_then(generation_of))
            .collect())
    }

    /// The partitions with a store under this prefix (`partition-N/`, the
    /// stores of a consumer group's members).
    pub fn partitions(&self) -> Result<Vec<u32>, StateError> {
        let listed = self.listed()?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix("partition-")?.parse().ok())
            .collect())
    }
}

impl CheckpointStore for S3Store {
    fn path(&self) -> &str {
        &self.url
    }

    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        // Never write into a complete checkpoint.
        if self.committed(id)? {
            return Err(self.err(format!(
                "checkpoint {id} exists already: another engine wrote it (commits never replace one)"
            )));
        }
        let key = self.chunk(id, name);
        self.run(self.store.put(&key, PutPayload::from(bytes.to_vec())))
            .map_err(|e| self.err(format!("cannot put {key}: {e}")))?;
        Ok(())
    }

    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        let stored = self.stored_chunks(meta.id)?;
        for info in &meta.chunks {
            let key = self.chunk(meta.id, &info.name);
            match stored.iter().find(|(k, _)| *k == key) {
                Some((_, len)) if *len == info.len => {}
                Some((_, len)) => {
                    return Err(self.err(format!("not committed: {key} has {len} of {} bytes", info.len)));
                }
                None => return Err(self.err(format!("not committed: {key} is missing"))),
            }
        }
        let json = serde_json::to_vec_pretty(meta).map_err(|e| self.err(e))?;
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.run(
            self.store
                .put_opts(&self.record(meta.id), PutPayload::from(json), create),
        ) {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(self.err(format!(
                "checkpoint {} exists already: another engine wrote it (commits never replace one)",
                meta.id
            ))),
            Err(e) => Err(self.err(format!("cannot commit {}: {e}", self.record(meta.id)))),
        }
    }

    fn claim_generation(&self) -> Result<u64, StateError> {
        let marker = |g: u64| self.prefix.clone().join(format!("gen-{g}"));
        claim_with_markers(
            || self.generations(),
            |g| {
                let create = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match self.run(self.store.put_opts(&marker(g), PutPayload::from_static(b""), create)) {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                    Err(e) => Err(self.err(format!("cannot create {}: {e}", marker(g)))),
                }
            },
            |old| {
                if let Err(e) = self.run(self.store.delete(&marker(old))) {
                    tracing::debug!(marker = %marker(old), error = %e, "could not remove an old generation marker");
                }
            },
        )
    }

    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        let listed = self.listed()?;
        let mut out = Vec::new();
        for object in listed.objects {
            let Some(id) = object.location.filename().and_then(record_id) else {
                continue;
            };
            let raw = self
                .run(async { self.store.get(&object.location).await?.bytes().await })
                .map_err(|e| e.to_string());
            out.extend(listed_record(self, id, raw));
        }
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    fn read(&self, id: u64) -> Result<super::StoredCheckpoint, StateError> {
        let raw = match self.run(async { self.store.get(&self.record(id)).await?.bytes().await }) {
            Ok(raw) => raw,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StateError::NotFound {
                    path: self.checkpoint_path(id),
                    usable: self.older_than(id),
                });
            }
            Err(e) => return Err(self.err(format!("cannot read {}: {e}", self.record(id)))),
        };
        let meta = parse_record(self, id, &raw)?;
        let mut chunks = Vec::with_capacity(meta.chunks.len());
        for info in &meta.chunks {
            let key = self.chunk(id, &info.name);
            match self.run(async { self.store.get(&key).await?.bytes().await }) {
                Ok(bytes) => chunks.push((info.name.clone(), bytes.to_vec())),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("cannot read {key}: {e}"))),
            }
        }
        verify_chunks(self, &meta, &chunks)?;
        Ok((meta, chunks))
    }

    fn delete(&self, id: u64) -> Result<(), StateError> {
        // The record first: a half-deleted checkpoint is an incomplete one.
        match self.run(self.store.delete(&self.record(id))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err(format!("cannot delete {}: {e}", self.record(id)))),
        }
        self.remove_chunks(id)
    }

    fn discard(&self, id: u64) -> Result<(), StateError> {
        if self.committed(id)? {
            return Ok(());
        }
        self.remove_chunks(id)
    }

    /// Chunk prefixes without a record, of ids below `below`.
    fn remove_orphans_below(&self, below: u64) -> Result<(), StateError> {
        let listed = self.listed()?;
        let records: Vec<&Path> = listed.objects.iter().map(|o| &o.location).collect();
        let mut removed = 0;
        for dir in &listed.common_prefixes {
            let Some(id) = dir
                .filename()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if id < below && !records.contains(&&self.record(id)) {
                self.remove_chunks(id)?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::warn!(path = %self.url, checkpoints = removed, "removed the chunks of incomplete checkpoints");
        }
        Ok(())
    }
}

impl S3Store {
    /// Damage a stored chunk (for tests of damaged checkpoints).
    pub fn truncate_chunk_for_test(&self, id: u64, name: &str, len: usize) {
        let key = self.chunk(id, name);
        let bytes = self.run(async { self.store.get(&key).await?.bytes().await }).unwrap();
        self.run(
            self.store
                .put(&key, PutPayload::from(bytes[..len.min(bytes.len())].to_vec())),
        )
        .unwrap();
    }

    /// The `gen-{g}` markers in the store, sorted (for tests of their pruning).
    pub fn generation_markers_for_test(&self) -> Vec<u64> {
        let mut out = self.generations().unwrap();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        use super::parse_url;
        assert_eq!(parse_url("s3://b/p/q/"), Ok(("b".into(), "p/q".into())));
        assert_eq!(parse_url("s3://b"), Ok(("b".into(), "".into())));
        assert!(parse_url("s3:///p").unwrap_err().contains("names no bucket"));
    }
}
