//! The same tests for every [`CheckpointStore`].

use super::*;

fn meta(id: u64) -> CheckpointMeta {
    CheckpointMeta {
        format: FORMAT_VERSION,
        id,
        created_ms: 1,
        topic: "t".into(),
        offsets: vec![(0, 10), (1, 20)],
        watermark: 5,
        partition_watermarks: vec![(0, 5), (1, 6)],
        plugins: vec![],
        chunks: vec![],
        size_bytes: 0,
        open_states: 0,
        duration_ms: 0,
    }
}

fn round_trip(store: &dyn CheckpointStore) {
    let mut m = meta(1);
    store
        .write(&mut m, vec![("a".into(), vec![1, 2, 3]), ("b".into(), vec![])])
        .unwrap();
    let (read, chunks) = store.read(1).unwrap();
    assert_eq!(read, m);
    assert_eq!(read.size_bytes, 3);
    assert_eq!(
        chunks,
        vec![("a".to_string(), vec![1, 2, 3]), ("b".to_string(), vec![])]
    );
}

fn retain_keeps_the_newest(store: &dyn CheckpointStore) {
    for id in 1..=5 {
        store.write(&mut meta(id), vec![("a".into(), vec![id as u8])]).unwrap();
    }
    store.retain(3).unwrap();
    assert_eq!(
        store.list().unwrap().iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    let err = store.read(2).unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("chk-2"), "{err}");
}

fn damaged_names_the_problem_and_an_older_one(store: &dyn CheckpointStore, damage: &dyn Fn(u64)) {
    store.write(&mut meta(7), vec![("a".into(), vec![1; 100])]).unwrap();
    store.write(&mut meta(8), vec![("a".into(), vec![2; 100])]).unwrap();
    damage(8);
    let err = store.read(8).unwrap_err().to_string();
    assert!(err.contains("chk-8") && err.contains("truncated"), "{err}");
    assert!(err.contains("--from-checkpoint 7"), "{err}");
    assert!(store.read(7).is_ok());
}

fn incompatible_format_is_refused(store: &dyn CheckpointStore) {
    let mut m = meta(3);
    m.format = 999;
    store.write(&mut m, vec![]).unwrap();
    let err = store.read(3).unwrap_err().to_string();
    assert!(err.contains("format 999"), "{err}");
}

fn uncommitted_chunks_are_no_checkpoint(store: &dyn CheckpointStore) {
    store.put_chunk(9, "a", &[1, 2]).unwrap();
    assert!(store.list().unwrap().is_empty());
    let err = store.read(9).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    store.put_chunk(9, "b", &[3]).unwrap();
    let mut m = meta(9);
    m.chunks = vec![ChunkInfo::of("a", &[1, 2]), ChunkInfo::of("b", &[3])];
    m.size_bytes = 3;
    store.commit(&m).unwrap();
    let (read, chunks) = store.read(9).unwrap();
    assert_eq!(read, m);
    assert_eq!(chunks, vec![("a".to_string(), vec![1, 2]), ("b".to_string(), vec![3])]);
    // A commit that claims a chunk nobody put is refused, or caught when
    // it is read.
    let mut m = meta(10);
    m.chunks = vec![ChunkInfo::of("c", &[4])];
    match store.commit(&m) {
        Ok(()) => {
            let err = store.read(10).unwrap_err().to_string();
            assert!(err.contains("chk-10") && err.contains("missing"), "{err}");
        }
        Err(e) => {
            assert!(e.to_string().contains("not committed"), "{e}");
            assert!(store.list().unwrap().iter().all(|m| m.id != 10));
        }
    }
}

#[test]
fn memory_store_conforms() {
    round_trip(&MemoryStore::new());
    retain_keeps_the_newest(&MemoryStore::new());
    let s = MemoryStore::new();
    damaged_names_the_problem_and_an_older_one(&s, &|id| s.truncate_chunk(id, 0, 10));
    incompatible_format_is_refused(&MemoryStore::new());
    uncommitted_chunks_are_no_checkpoint(&MemoryStore::new());
}

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    round_trip(&SledStore::open(&p("a")).unwrap());
    retain_keeps_the_newest(&SledStore::open(&p("b")).unwrap());
    let s = SledStore::open(&p("c")).unwrap();
    damaged_names_the_problem_and_an_older_one(&s, &|id| s.truncate_chunk_for_test(id, "a", 10).unwrap());
    incompatible_format_is_refused(&SledStore::open(&p("d")).unwrap());
    uncommitted_chunks_are_no_checkpoint(&SledStore::open(&p("e")).unwrap());
}

#[test]
fn sled_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    {
        let s = SledStore::open(&path).unwrap();
        s.write(&mut meta(4), vec![("x".into(), vec![9; 10])]).unwrap();
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.read(4).unwrap().1[0].1, vec![9; 10]);
}

#[test]
fn sled_store_drops_uncommitted_chunks_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    {
        let s = SledStore::open(&path).unwrap();
        s.put_chunk(5, "x", &[7; 10]).unwrap();
        // Another checkpoint's commit flushes the chunk to disk; then the
        // crash: checkpoint 5 never commits.
        s.write(&mut meta(4), vec![("y".into(), vec![1])]).unwrap();
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.read(4).unwrap().1, vec![("y".to_string(), vec![1])]);
    let mut m = meta(5);
    m.chunks = vec![ChunkInfo::of("x", &[7; 10])];
    let err = s.commit(&m).unwrap_err().to_string();
    assert!(
        err.contains("not committed"),
        "the chunk went when the store was reopened: {err}"
    );
}

#[test]
fn checkpoint_refs() {
    assert_eq!(parse_checkpoint_ref("42"), Some(42));
    assert_eq!(parse_checkpoint_ref("data/checkpoints/chk-42"), Some(42));
    assert_eq!(parse_checkpoint_ref("data/checkpoints/chk-42/"), Some(42));
    assert_eq!(parse_checkpoint_ref("nope"), None);
}

/// Bytes under `dir`, recursively.
fn disk_usage(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn sled_store_size_follows_the_checkpoints_it_keeps() {
    // A job checkpoints every 30 s and keeps 3: over months the store must
    // hold about 3 checkpoints, not every checkpoint it ever wrote.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let s = SledStore::open(&path).unwrap();
    const CHUNK: usize = 1 << 20;
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    for id in 1..=60u64 {
        let chunks = (0..4)
            .map(|c| {
                let bytes = (0..CHUNK)
                    .map(|_| {
                        noise ^= noise << 13;
                        noise ^= noise >> 7;
                        noise ^= noise << 17;
                        noise as u8
                    })
                    .collect();
                (format!("view/v/{c:05}"), bytes)
            })
            .collect();
        s.write(&mut meta(id), chunks).unwrap();
        s.retain(3).unwrap();
    }
    let kept = 3 * 4 * CHUNK as u64;
    let used = disk_usage(dir.path());
    assert!(
        used < 2 * kept,
        "{used} bytes on disk for {kept} bytes of retained checkpoints"
    );
    assert_eq!(
        s.list().unwrap().iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![58, 59, 60]
    );
    assert_eq!(s.read(60).unwrap().1.len(), 4);
}

#[test]
fn sled_store_reads_and_ages_out_checkpoints_of_the_old_layout() {
    // Before chunks were files, they were values of sled's tree `chunks`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let mut old = meta(2);
    describe_chunks(&mut old, &[("view/v/00000".to_string(), vec![5; 64])]);
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        let mut key = 2u64.to_be_bytes().to_vec();
        key.extend_from_slice(b"view/v/00000");
        db.open_tree("chunks").unwrap().insert(key, vec![5; 64]).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(2u64.to_be_bytes(), serde_json::to_vec(&old).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(
        s.read(2).unwrap(),
        (old, vec![("view/v/00000".to_string(), vec![5; 64])])
    );
    s.write(&mut meta(3), vec![("view/v/00000".into(), vec![6; 64])])
        .unwrap();
    s.retain(1).unwrap();
    assert!(s.read(2).unwrap_err().to_string().contains("does not exist"));
    assert_eq!(s.read(3).unwrap().1[0].1, vec![6; 64]);
}

#[test]
fn sled_store_removes_what_a_failed_checkpoint_left_once_a_newer_one_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let s = SledStore::open(&path).unwrap();
    // Checkpoint 1 fails half-way (the disk filled): one chunk written, no commit.
    s.put_chunk(1, "view/v/00000", &[1; 100]).unwrap();
    assert!(dir.path().join("chk-1").exists());
    s.write(&mut meta(2), vec![("view/v/00000".into(), vec![2; 10])])
        .unwrap();
    s.retain(3).unwrap();
    assert!(
        !dir.path().join("chk-1").exists(),
        "the failed checkpoint's chunks are still on disk"
    );
    assert!(dir.path().join("chk-2").exists());
    // Chunk names cannot leave their checkpoint's directory.
    s.write(&mut meta(3), vec![("../../escape".into(), vec![3])]).unwrap();
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    assert_eq!(s.read(3).unwrap().1, vec![("../../escape".to_string(), vec![3])]);
}

/// Generations claimed at once by 4 writers, 10 each, are all different,
/// and the store keeps only the newest markers: a claim counts up from the
/// newest, which is never removed.
fn generations_are_unique_and_their_markers_bounded(
    stores: &[&(dyn CheckpointStore + Sync)],
    markers: &dyn Fn() -> Vec<u64>,
) {
    let claimed: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .map(|store| s.spawn(move || (0..10).map(|_| store.claim_generation().unwrap()).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut unique = claimed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), claimed.len(), "a generation claimed twice: {claimed:?}");
    let newest = *unique.last().unwrap();
    let left = markers();
    assert_eq!(left.last(), Some(&newest), "the newest marker stays: {left:?}");
    assert!(
        left.len() as u64 <= KEPT_GENERATION_MARKERS + stores.len() as u64,
        "{} markers left of {}: {left:?}",
        left.len(),
        claimed.len()
    );
    assert!(
        left.iter()
            .all(|&g| g + KEPT_GENERATION_MARKERS + stores.len() as u64 > newest),
        "{left:?}"
    );
    assert_eq!(stores[0].claim_generation().unwrap(), newest + 1);
}

#[test]
fn dir_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    round_trip(&DirStore::open(&p("a")).unwrap());
    retain_keeps_the_newest(&DirStore::open(&p("b")).unwrap());
    let s = DirStore::open(&p("c")).unwrap();
    damaged_names_the_problem_and_an_older_one(&s, &|id| s.truncate_chunk_for_test(id, "a", 10));
    incompatible_format_is_refused(&DirStore::open(&p("d")).unwrap());
    uncommitted_chunks_are_no_checkpoint(&DirStore::open(&p("e")).unwrap());
    // One process holds a local store: its claims race among threads.
    let s = DirStore::open(&p("f")).unwrap();
    generations_are_unique_and_their_markers_bounded(&[&s, &s, &s, &s], &|| s.generation_markers_for_test());
}

#[test]
fn dir_store_commits_are_create_only_and_readable_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let writer = DirStore::open(&path).unwrap();
    writer
        .write(&mut meta(1), vec![("view/v/00000".into(), vec![1; 10])])
        .unwrap();
    // A second writer is refused while the first holds the store...
    assert!(matches!(DirStore::open(&path), Err(StateError::InUse { .. })));
    // ...and a commit never replaces a checkpoint (another engine's, say).
    let err = writer
        .write(&mut meta(1), vec![("view/v/00000".into(), vec![2; 10])])
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists already"), "{err}");
    // A reader needs no lock, and sees complete checkpoints only.
    writer.put_chunk(2, "view/v/00000", &[3]).unwrap();
    let reader = DirStore::open_read_only(&path).unwrap();
    assert_eq!(reader.list().unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        reader.read(1).unwrap().1,
        vec![("view/v/00000".to_string(), vec![1; 10])]
    );
    drop(writer);
    // Reopened: the failed checkpoint 2 is newer than every complete one,
    // so its chunks stay until a newer one commits.
    let writer = DirStore::open(&path).unwrap();
    writer
        .write(&mut meta(3), vec![("view/v/00000".into(), vec![4])])
        .unwrap();
    writer.retain(3).unwrap();
    assert!(!dir.path().join("chk-2").exists());
    assert!(DirStore::open_read_only(&dir.path().join("nope").display().to_string()).is_err());
}

#[test]
fn checkpoint_url_is_checked_and_names_the_key() {
    use crate::config::{CheckpointConfig, StoreLocation};
    let c = |url: &str| CheckpointConfig {
        url: url.into(),
        dir: "data/checkpoints".into(),
        interval: std::time::Duration::from_secs(30),
        retain: 3,
    };
    assert_eq!(c("").store_dir(), Ok(StoreLocation::Local("data/checkpoints".into())));
    assert_eq!(
        c("file:///mnt/ff/").store_dir(),
        Ok(StoreLocation::Dir("/mnt/ff".into()))
    );
    assert_eq!(
        c("s3://bucket/ff/").store_dir(),
        Ok(StoreLocation::S3("s3://bucket/ff".into()))
    );
    for bad in [
        "file://relative/x",
        "file://",
        "s3://",
        "s3:///prefix",
        "http://x",
        "/mnt/ff",
    ] {
        let err = c(bad).store_dir().unwrap_err();
        assert!(err.starts_with("checkpoint.url: "), "{bad}: {err}");
    }
}

#[test]
fn discard_drops_an_uncommitted_checkpoint_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let sled = SledStore::open(&p("s")).unwrap();
    let files = DirStore::open(&p("d")).unwrap();
    let memory = MemoryStore::new();
    for store in [&sled as &dyn CheckpointStore, &files, &memory] {
        store.write(&mut meta(1), vec![("a".into(), vec![1])]).unwrap();
        // Another engine's checkpoint 1 is complete: discarding "ours" keeps it.
        store.discard(1).unwrap();
        assert_eq!(store.read(1).unwrap().1, vec![("a".to_string(), vec![1])]);
        store.put_chunk(2, "a", &[2]).unwrap();
        store.discard(2).unwrap();
        let mut m = meta(2);
        m.chunks = vec![ChunkInfo::of("a", &[2])];
        // Its chunk is gone: the commit is refused or the read fails.
        let gone = store.commit(&m).is_err() || store.read(2).is_err();
        assert!(gone, "{}", store.path());
    }
}

#[test]
fn a_checkpoint_whose_chunks_were_removed_under_it_does_not_commit() {
    // A slow checkpoint (abandoned after a sink failure) whose chunk
    // directory a newer one's `retain` took for an orphan.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let sled = SledStore::open(&p("s")).unwrap();
    let files = DirStore::open(&p("d")).unwrap();
    for store in [&sled as &dyn CheckpointStore, &files] {
        store.put_chunk(5, "view/v/00000", &[5; 10]).unwrap();
        store
            .write(&mut meta(6), vec![("view/v/00000".into(), vec![6])])
            .unwrap();
        store.retain(3).unwrap();
        let mut m = meta(5);
        m.chunks = vec![ChunkInfo::of("view/v/00000", &[5; 10])];
        let err = store.commit(&m).unwrap_err().to_string();
        assert!(err.contains("not committed"), "{err}");
        assert_eq!(store.list().unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![6]);
    }
}

#[test]
fn s3_store_conforms() {
    // A real S3-compatible store (SeaweedFS), one prefix per case.
    let server = crate::state::LocalS3::start();
    round_trip(&server.store("a"));
    retain_keeps_the_newest(&server.store("b"));
    let s = server.store("c");
    damaged_names_the_problem_and_an_older_one(&s, &|id| s.truncate_chunk_for_test(id, "a", 10));
    incompatible_format_is_refused(&server.store("d"));
    uncommitted_chunks_are_no_checkpoint(&server.store("e"));
    // Four engines claiming generations in one prefix at once.
    let claimers: Vec<S3Store> = (0..4).map(|_| server.store("gen")).collect();
    let refs: Vec<&(dyn CheckpointStore + Sync)> = claimers.iter().map(|s| s as _).collect();
    generations_are_unique_and_their_markers_bounded(&refs, &|| claimers[0].generation_markers_for_test());

    // Create-only commits: of 8 engines committing checkpoint 1 of the same
    // prefix at once, exactly one succeeds, and its chunks are the ones read.
    let racers: Vec<S3Store> = (0..8).map(|_| server.store("race")).collect();
    let won: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = racers
            .iter()
            .enumerate()
            .map(|(i, store)| {
                s.spawn(move || {
                    let mut m = meta(1);
                    let chunks = vec![(format!("engine-{i}"), vec![i as u8; 100])];
                    match store.write(&mut m, chunks) {
                        Ok(()) => true,
                        Err(e) => {
                            assert!(e.to_string().contains("exists already"), "{e}");
                            false
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).unwrap();
    let (_, chunks) = racers[0].read(1).unwrap();
    assert_eq!(chunks, vec![(format!("engine-{winner}"), vec![winner as u8; 100])]);

    // Chunks and records never leave their prefix; a reader beside the
    // writer sees complete checkpoints only.
    let writer = server.store("shared/ff");
    writer
        .write(&mut meta(1), vec![("view/../../x".into(), vec![1; 10])])
        .unwrap();
    writer.put_chunk(2, "view/v/00000", &[3]).unwrap();
    let reader = server.store("shared/ff");
    assert_eq!(reader.list().unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![1]);
    assert!(server.store("shared").list().unwrap().is_empty());
    assert_eq!(
        reader.read(1).unwrap().1,
        vec![("view/../../x".to_string(), vec![1; 10])]
    );
    // A failed checkpoint's chunks go once a newer one commits.
    writer.write(&mut meta(3), vec![("a".into(), vec![4])]).unwrap();
    writer.retain(3).unwrap();
    let err = writer
        .commit(&CheckpointMeta {
            chunks: vec![ChunkInfo::of("view/v/00000", &[3])],
            ..meta(2)
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("not committed"), "{err}");
    // discard leaves a committed checkpoint alone.
    writer.discard(3).unwrap();
    assert_eq!(writer.read(3).unwrap().1, vec![("a".to_string(), vec![4])]);

    // A bad endpoint or credentials is an error at open that names the URL.
    let mut wrong = server.env();
    wrong.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong".into()));
    let err = S3Store::connect("s3://ckpt/x", &wrong).err().unwrap().to_string();
    assert!(
        err.contains("s3://ckpt/x") && err.contains("cannot list the bucket"),
        "{err}"
    );
}
