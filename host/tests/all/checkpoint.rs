//! Checkpoints written chunk by chunk: a view's states span several chunks,
//! each put into the store as it is encoded, and the checkpoint restores
//! into an engine that fires what the uninterrupted one fires.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use featherflow::engine::{Engine, EngineConfig, Position};
use featherflow::plugin::{Limits, PluginEngine};
use featherflow::sink::{FeatureRecord, Sink, SinkError, Value};
use featherflow::state::{CheckpointMeta, CheckpointStore, SledStore, StateError, load_checkpoint};

use crate::guest;

type Records = Arc<Mutex<Vec<FeatureRecord>>>;

#[derive(Clone)]
struct Collect(Records);

impl Sink for Collect {
    fn write(&mut self, r: &[FeatureRecord]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(r);
        Ok(())
    }
}

fn session_engine(pe: &PluginEngine) -> (Engine, Records) {
    let records = Records::default();
    let mut engine = Engine::new(EngineConfig::default(), Box::new(Collect(records.clone())));
    let plugin = pe.load_file(&guest("session-stats"), Limits::default()).unwrap();
    engine.add_view(Arc::new(plugin)).unwrap();
    (engine, records)
}

/// `keys` users with one event each, a second apart, none of them late.
fn feed(engine: &mut Engine, keys: u64) {
    for i in 0..keys {
        let line = format!(
            "{{\"event_time\":{},\"event_type\":\"view\",\"user_id\":\"user-{i}\",\"price\":1.0}}",
            1_704_067_200_000 + (i % 600) as i64 * 1000
        );
        let pos = Position {
            partition: 0,
            offset: i,
        };
        engine.process_record(pos, line.as_bytes(), 0).unwrap();
    }
}

/// Each fired session as (key, start, event count).
fn sessions(records: &Records) -> BTreeSet<(String, i64, i64)> {
    let recs = records.lock().unwrap();
    recs.iter()
        .map(|r| {
            let Value::Integer(n) = r.values[1] else {
                panic!("event_count is an integer: {:?}", r.values)
            };
            (r.entity().to_string(), r.window_start, n)
        })
        .collect()
}

fn meta(id: u64) -> CheckpointMeta {
    CheckpointMeta {
        format: featherflow::state::FORMAT_VERSION,
        id,
        created_ms: 0,
        topic: "t".into(),
        offsets: vec![],
        watermark: 0,
        partition_watermarks: vec![],
        plugins: vec![],
        chunks: vec![],
        size_bytes: 0,
        open_states: 0,
        duration_ms: 0,
    }
}

#[test]
fn a_checkpoint_put_chunk_by_chunk_restores_the_same_windows() {
    let pe = PluginEngine::new().unwrap();
    let (mut original, fired) = session_engine(&pe);
    // About 60 bytes per session: 200 000 sessions are three 4 MiB chunks.
    let keys = 200_000;
    feed(&mut original, keys);

    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().display().to_string()).unwrap();
    let capture = original.capture().unwrap();
    let mut m = capture.meta(1, 0, "events", vec![(0, keys as i64)], keys);
    capture.put_into(&store, &mut m).unwrap();
    assert!(m.chunks.len() >= 3, "states span several chunks: {:?}", m.chunks);
    assert_eq!(m.size_bytes, m.chunks.iter().map(|c| c.len).sum::<u64>());
    assert!(store.list().unwrap().is_empty(), "not a checkpoint before the commit");
    store.commit(&m).unwrap();

    let (_, snap) = load_checkpoint(&store, 1).unwrap();
    assert_eq!(snap.views.len(), 1);
    assert_eq!(snap.views[0].chunks.len(), m.chunks.len());
    let (mut restored, refired) = session_engine(&pe);
    restored.restore(&snap, 0).unwrap();

    original.finish().unwrap();
    restored.finish().unwrap();
    let (a, b) = (sessions(&fired), sessions(&refired));
    assert_eq!(a.len(), keys as usize);
    assert!(a == b, "the restored engine fires the same sessions");
}

/// Fails the second chunk put into it.
struct FailSecondPut<'a>(&'a SledStore, Mutex<u32>);

impl CheckpointStore for FailSecondPut<'_> {
    fn path(&self) -> &str {
        self.0.path()
    }
    fn put_chunk(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let mut n = self.1.lock().unwrap();
        *n += 1;
        if *n == 2 {
            return Err(StateError::Store {
                path: self.path().into(),
                reason: "disk full".into(),
            });
        }
        self.0.put_chunk(id, name, bytes)
    }
    fn commit(&self, meta: &CheckpointMeta) -> Result<(), StateError> {
        self.0.commit(meta)
    }
    fn list(&self) -> Result<Vec<CheckpointMeta>, StateError> {
        self.0.list()
    }
    fn read(&self, id: u64) -> Result<featherflow::state::StoredCheckpoint, StateError> {
        self.0.read(id)
    }
    fn delete(&self, id: u64) -> Result<(), StateError> {
        self.0.delete(id)
    }
    fn discard(&self, id: u64) -> Result<(), StateError> {
        self.0.discard(id)
    }
}

#[test]
fn a_failed_put_leaves_no_chunk_behind() {
    let pe = PluginEngine::new().unwrap();
    let (mut engine, _) = session_engine(&pe);
    feed(&mut engine, 200_000);
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(&dir.path().display().to_string()).unwrap();
    let store = FailSecondPut(&sled, Mutex::new(0));
    let capture = engine.capture().unwrap();
    let mut m = capture.meta(1, 0, "events", vec![], 0);
    let err = capture.put_into(&store, &mut m).unwrap_err().to_string();
    assert!(err.contains("disk full"), "{err}");
    assert_eq!(*store.1.lock().unwrap(), 2, "stopped at the failed put");

    // The first chunk was put, then removed: nothing of checkpoint 1 is on
    // disk, and a commit that claims the chunk is refused.
    assert!(!dir.path().join("chk-1").exists());
    let mut claim = meta(1);
    claim.chunks = vec![featherflow::state::ChunkInfo::of("view/session_features/00000", b"x")];
    let err = sled.commit(&claim).unwrap_err().to_string();
    assert!(err.contains("not committed") && err.contains("00000"), "{err}");
    assert!(sled.list().unwrap().is_empty());
}
