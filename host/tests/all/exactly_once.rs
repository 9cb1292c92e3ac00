//! Exactly once, in-process: the pipeline checkpoints to the in-memory
//! store, a fresh pipeline restores it and reads on, and the output — as a
//! key-value store of upserts, like Redis — equals that of an uninterrupted
//! run. No binary is spawned: the same `Pipeline` the commands run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use featherflow::cli::generate::{GeneratorArgs, START_MS, generate};
use featherflow::config::Config;
use featherflow::engine::{Engine, EngineConfig};
use featherflow::pipeline::{Checkpointer, Pipeline, PipelineOptions};
use featherflow::plugin::{Limits, Plugin, PluginEngine};
use featherflow::sink::{FeatureRecord, Sink, SinkError};
use featherflow::source::FileSource;
use featherflow::state::{CheckpointStore, MemoryStore};

use crate::{golden, guest};

/// One written window: (key, window start, window end, values as text).
type Written = (String, i64, i64, String);

fn written(r: &FeatureRecord) -> Written {
    let mut values = String::new();
    for v in &r.values {
        v.write_json(&mut values);
        values.push(',');
    }
    (r.key.clone(), r.window_start, r.window_end, values)
}

/// Collects what it is given. Each entry of `fail_on` fails one write (with
/// a retryable error): the first write, after the entries before it were
/// used up, that holds a window ending at or after it. Checkpoints run on
/// their own thread, so how writes are cut is not deterministic; which
/// windows they carry is.
#[derive(Clone, Default)]
struct Store {
    writes: Arc<Mutex<Vec<Written>>>,
    calls: Arc<Mutex<u64>>,
    fail_on: Arc<Mutex<std::collections::VecDeque<i64>>>,
}

impl Store {
    fn failing(fail_on: &[i64]) -> Self {
        Store {
            fail_on: Arc::new(Mutex::new(fail_on.iter().copied().collect())),
            ..Store::default()
        }
    }

    fn writes(&self) -> Vec<Written> {
        self.writes.lock().unwrap().clone()
    }
}

impl Sink for Store {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        let mut fail_on = self.fail_on.lock().unwrap();
        if let Some(&end) = fail_on.front()
            && records.iter().any(|r| r.window_end >= end)
        {
            fail_on.pop_front();
            return Err(SinkError::Store {
                sink: "test store".into(),
                reason: format!("write {calls} fails on purpose (a window ends at or after {end})"),
                retryable: true,
            });
        }
        self.writes.lock().unwrap().extend(records.iter().map(written));
        Ok(())
    }
}

/// The store's content after `writes` in order: the last write of each key.
fn upserted(writes: &[Written]) -> BTreeMap<String, (i64, i64, String)> {
    writes
        .iter()
        .map(|(k, s, e, v)| (k.clone(), (*s, *e, v.clone())))
        .collect()
}

fn plugins() -> Vec<Arc<Plugin>> {
    let pe = PluginEngine::new().unwrap();
    ["user-activity", "session-stats"]
        .iter()
        .map(|g| Arc::new(pe.load_file(&guest(g), Limits::default()).unwrap()))
        .collect()
}

fn engine(plugins: &[Arc<Plugin>], sink: Store) -> Engine {
    let config = Config::load(None).unwrap();
    let mut engine = Engine::new(
        EngineConfig::from_config(&config, featherflow::clock::now_ms(), false),
        Box::new(sink),
    );
    for p in plugins {
        engine.add_view(p.clone()).unwrap();
    }
    engine
}

/// A log with a few hours of event time: many slides and sessions.
fn log(dir: &tempfile::TempDir) -> (String, u64) {
    let path = dir.path().join("events.jsonl").display().to_string();
    let args = GeneratorArgs {
        events: 12_000,
        users: 150,
        active_users: None,
        event_rate: 1,
        disorder_seconds: 8.0,
        seed: 3,
        malformed: 0.01,
        out_of_order: 1.0,
        late: 0.01,
    };
    let n = generate(&args, &path).unwrap();
    (path, n)
}

/// The whole file, uninterrupted.
fn uninterrupted(plugins: &[Arc<Plugin>], path: &str) -> Vec<Written> {
    let sink = Store::default();
    let mut p = Pipeline::new(
        engine(plugins, sink.clone()),
        Box::new(FileSource::open(path).unwrap()),
        PipelineOptions::default(),
    );
    p.start(None).unwrap();
    p.run(&|| false).unwrap();
    sink.writes()
}

fn sorted(mut v: Vec<Written>) -> Vec<Written> {
    v.sort();
    v
}

/// Checkpoint at line `cut`, go on to `crash` and die there (no
/// checkpoint), restore into a fresh pipeline, read to the end.
fn crash_and_restore(path: &str, cut: u64, crash: u64) {
    let plugins = plugins();
    let expected = uninterrupted(&plugins, path);
    assert!(expected.len() > 100, "the log fires few windows: {}", expected.len());

    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
    let checkpointer = || Checkpointer::new(store.clone(), "test", Duration::MAX, 2).unwrap();
    let prefix = PipelineOptions {
        finish_at_end: false,
        final_checkpoint: true,
        ..PipelineOptions::default()
    };
    // Up to `cut`, then a checkpoint.
    let sink = Store::default();
    let mut first = Pipeline::new(
        engine(&plugins, sink.clone()),
        Box::new(FileSource::open(path).unwrap().until(cut)),
        prefix,
    )
    .with_checkpoints(checkpointer());
    assert_eq!(first.start(None).unwrap(), None, "no checkpoint yet");
    first.run(&|| false).unwrap();
    assert_eq!(store.list().unwrap().len(), 1, "one checkpoint, at line {cut}");
    assert_eq!(store.list().unwrap()[0].offsets, vec![(0, cut as i64 + 1)]);
    let before = sink.writes();

    // The same engine reads on to `crash`; its outputs reach the store, then
    // it dies without another checkpoint.
    let mut doomed = Pipeline::new(
        first.into_engine(),
        Box::new(FileSource::open(path).unwrap().until(crash)),
        PipelineOptions {
            finish_at_end: false,
            ..PipelineOptions::default()
        },
    );
    doomed.resume(BTreeMap::from([(0, cut as i64 + 1)])).unwrap();
    doomed.run(&|| false).unwrap();
    drop(doomed);
    let lost = sink.writes().len() - before.len();

    // A fresh pipeline restores the checkpoint and reads to the end.
    let sink2 = Store::default();
    let mut second = Pipeline::new(
        engine(&plugins, sink2.clone()),
        Box::new(FileSource::open(path).unwrap()),
        PipelineOptions::default(),
    )
    .with_checkpoints(checkpointer());
    let restored = second.start(None).unwrap().expect("the checkpoint is restored");
    assert_eq!(restored.offsets, vec![(0, cut as i64 + 1)]);
    second.run(&|| false).unwrap();
    let after = sink2.writes();

    // Without the crash's extra outputs: every window exactly once.
    let mut once = before.clone();
    once.extend(after.iter().cloned());
    assert_eq!(
        sorted(once),
        sorted(expected.clone()),
        "outputs before the checkpoint + after the restore != uninterrupted"
    );
    // With them (what Redis saw): the same final content.
    let mut all = sink.writes();
    all.extend(after);
    assert_eq!(
        upserted(&all),
        upserted(&expected),
        "the store after crash and restore differs from the uninterrupted run ({lost} writes between checkpoint and crash)"
    );
}

#[test]
fn restore_from_the_middle_of_a_generated_log_equals_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (path, n) = log(&dir);
    crash_and_restore(&path, n / 2, n * 3 / 4);
}

#[test]
fn restore_from_the_middle_of_the_golden_file_equals_the_uninterrupted_run() {
    let path = golden("semantics.jsonl").display().to_string();
    let lines = std::fs::read(&path).unwrap().iter().filter(|&&b| b == b'\n').count() as u64;
    // Every cut: before, inside and after sessions, bad lines and late ones.
    let plugins = plugins();
    let expected = uninterrupted(&plugins, &path);
    assert!(!expected.is_empty());
    for cut in 1..lines {
        let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
        let sink = Store::default();
        let mut first = Pipeline::new(
            engine(&plugins, sink.clone()),
            Box::new(FileSource::open(&path).unwrap().until(cut)),
            PipelineOptions {
                finish_at_end: false,
                final_checkpoint: true,
                ..PipelineOptions::default()
            },
        )
        .with_checkpoints(Checkpointer::new(store.clone(), "golden", Duration::MAX, 1).unwrap());
        first.start(None).unwrap();
        first.run(&|| false).unwrap();
        let mut second = Pipeline::new(
            engine(&plugins, sink.clone()),
            Box::new(FileSource::open(&path).unwrap()),
            PipelineOptions::default(),
        )
        .with_checkpoints(Checkpointer::new(store.clone(), "golden", Duration::MAX, 1).unwrap());
        assert!(
            second.start(None).unwrap().is_some(),
            "cut at {cut}: no checkpoint restored"
        );
        second.run(&|| false).unwrap();
        assert_eq!(
            sorted(sink.writes()),
            sorted(expected.clone()),
            "checkpoint after line {cut} of {lines}"
        );
    }
}

#[test]
fn a_sink_that_fails_then_recovers_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = log(&dir);
    let plugins = plugins();
    let expected = uninterrupted(&plugins, &path);

    // The first write of a window ending after 1 h fails three times in a
    // row (three restores), then one ending after 2 h once.
    let (h1, h2) = (START_MS + 3_600_000, START_MS + 7_200_000);
    let sink = Store::failing(&[h1, h1, h1, h2]);
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
    // A checkpoint whenever none is in flight: restores land mid-stream.
    let checkpoints = Checkpointer::new(store.clone(), "test", Duration::ZERO, 3).unwrap();
    let mut p = Pipeline::new(
        engine(&plugins, sink.clone()),
        Box::new(FileSource::open(&path).unwrap()),
        PipelineOptions {
            restart_backoff: Duration::from_millis(1),
            ..PipelineOptions::default()
        },
    )
    .with_checkpoints(checkpoints);
    p.start(None).unwrap();
    let summary = p.run(&|| false).unwrap().clone();
    assert_eq!(summary.restarts, 4, "one restore per failed write");
    assert!(sink.fail_on.lock().unwrap().is_empty(), "every failure happened");
    assert!(
        expected.iter().any(|w| w.2 > h2 + 3_600_000),
        "the log goes on well past the last failure"
    );
    assert!(p.checkpoints().unwrap().stats().completed >= 1);
    let writes = sink.writes();
    assert_eq!(
        upserted(&writes),
        upserted(&expected),
        "the store after the sink's failures differs from the uninterrupted run"
    );
    // Nothing lost: every window of the uninterrupted run was written.
    let seen: std::collections::BTreeSet<&Written> = writes.iter().collect();
    let missing: Vec<&Written> = expected.iter().filter(|w| !seen.contains(w)).collect();
    assert!(
        missing.is_empty(),
        "{} windows never written, e.g. {:?}",
        missing.len(),
        &missing[..1]
    );
    // Each window written more than once only when read again after a restore.
    assert!(writes.len() >= expected.len());
}

#[test]
fn a_sink_that_never_recovers_stops_the_pipeline_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = log(&dir);
    let sink = Store::failing(&[START_MS + 3_600_000; 100]);
    let mut p = Pipeline::new(
        engine(&plugins(), sink),
        Box::new(FileSource::open(&path).unwrap()),
        PipelineOptions {
            max_restarts: 3,
            restart_backoff: Duration::from_millis(1),
            ..PipelineOptions::default()
        },
    );
    p.start(None).unwrap();
    let err = p.run(&|| false).unwrap_err();
    assert!(err.is_retryable(), "a retryable sink error stays retryable: {err}");
    let text = err.to_string();
    assert!(text.contains("giving up after 3 restores"), "{text}");
    assert!(text.contains("fails on purpose"), "{text}");
}

/// A store whose disk is full for its first `full_for` puts.
struct FullDisk {
    inner: MemoryStore,
    full_for: Mutex<u32>,
}

impl CheckpointStore for FullDisk {
    fn path(&self) -> &str {
        "full-disk"
    }
    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), featherflow::state::StateError> {
        let mut left = self.full_for.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(featherflow::state::StateError::Store {
                path: format!("full-disk/chk-{id}"),
                reason: "No space left on device (os error 28)".into(),
            });
        }
        self.inner.put_chunk(id, name, bytes)
    }
    fn commit(&self, meta: &featherflow::state::CheckpointMeta) -> Result<(), featherflow::state::StateError> {
        self.inner.commit(meta)
    }
    fn list(&self) -> Result<Vec<featherflow::state::CheckpointMeta>, featherflow::state::StateError> {
        self.inner.list()
    }
    fn read(&self, id: u64) -> Result<featherflow::state::StoredCheckpoint, featherflow::state::StateError> {
        self.inner.read(id)
    }
    fn delete(&self, id: u64) -> Result<(), featherflow::state::StateError> {
        self.inner.delete(id)
    }
    fn discard(&self, id: u64) -> Result<(), featherflow::state::StateError> {
        self.inner.discard(id)
    }
}

#[test]
fn a_full_checkpoint_disk_is_survived_and_never_leaves_a_partial_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = log(&dir);
    let plugins = plugins();
    let expected = uninterrupted(&plugins, &path);
    let full = Arc::new(FullDisk {
        inner: MemoryStore::new(),
        full_for: Mutex::new(3),
    });
    let store: Arc<dyn CheckpointStore> = full.clone();
    let sink = Store::default();
    // Eight stretches of the log, each ending with a checkpoint (the first
    // three on the full disk), the last one firing everything at the end.
    let lines = std::fs::read(&path).unwrap().iter().filter(|&&b| b == b'\n').count() as u64;
    let mut engine = engine(&plugins, sink.clone());
    let mut next = BTreeMap::new();
    let (mut failed, mut completed) = (0, 0);
    for part in 1..=8u64 {
        let last = part == 8;
        let source = FileSource::open(&path)
            .unwrap()
            .until(if last { u64::MAX } else { lines * part / 8 });
        let opts = PipelineOptions {
            finish_at_end: last,
            final_checkpoint: !last,
            ..PipelineOptions::default()
        };
        let mut p = Pipeline::new(engine, Box::new(source), opts)
            .with_checkpoints(Checkpointer::new(store.clone(), "test", Duration::MAX, 100).unwrap());
        p.resume(next.clone()).unwrap();
        let summary = p.run(&|| false).unwrap().clone();
        let stats = p.checkpoints().unwrap().stats().clone();
        assert_eq!(summary.final_checkpoint_missed, part <= 3 && !last, "part {part}");
        failed += stats.failed;
        completed += stats.completed;
        next = p.positions().clone();
        engine = p.into_engine();
    }
    assert_eq!(failed, 3, "every checkpoint on the full disk failed");
    assert_eq!(completed, 4, "checkpoints resumed once the disk had room");
    // The engine went on: the output is whole.
    assert_eq!(sorted(sink.writes()), sorted(expected));
    // Every listed checkpoint is complete and reads back verified.
    let listed = store.list().unwrap();
    assert_eq!(listed.len() as u64, completed);
    for m in listed {
        store.read(m.id).unwrap();
    }
}
