//! The Redis writer against a real redis-server: what a key holds after
//! windows arrive in any order, and after Redis forgets the write script.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use featherflow::plugin::declaration::Field;
use featherflow::plugin::{FieldType, Value};
use featherflow::sink::{FeatureRecord, RedisSink, Sink};

use crate::services;

fn record(window_end: i64, count: i64) -> FeatureRecord {
    let fields: Arc<[Field]> = vec![Field {
        name: "view_count".into(),
        ty: FieldType::Integer,
    }]
    .into();
    FeatureRecord {
        view: "user_features".into(),
        key: "user_features:7".into(),
        entity_span: 14..15,
        window_start: window_end - 3_600_000,
        window_end,
        fields,
        values: vec![Value::Integer(count)],
        ttl_seconds: 7200,
        fired_at: Instant::now(),
    }
}

#[test]
fn a_key_never_goes_back_to_an_older_window() {
    let redis = services::redis();
    // redis.keep-newest = true
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 2, true).unwrap();
    let stats = sink.stats.clone();
    let mut write = |records: Vec<FeatureRecord>| {
        sink.write_owned(records).unwrap();
        sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
        let dump = services::dump(redis.port, 0);
        let (fields, ttl) = dump["user_features:7"].clone();
        assert!(ttl, "{fields:?} has no TTL");
        (fields["view_count"].clone(), fields["_window_end"].clone())
    };
    // An older window after a newer one (a replay after a restore, or an
    // engine that lost the key's partition) is skipped...
    assert_eq!(
        write(vec![record(7_200_000, 2), record(3_600_000, 1)]),
        ("2".into(), "7200000".into())
    );
    // ...the same window again is written (a replay of it)...
    assert_eq!(write(vec![record(7_200_000, 5)]), ("5".into(), "7200000".into()));
    // ...and a newer one, of course.
    assert_eq!(write(vec![record(7_800_000, 7)]), ("7".into(), "7800000".into()));
    assert_eq!(stats.older_windows_skipped.load(Ordering::Relaxed), 1);

    // Redis forgets the script (SCRIPT FLUSH, a restart, a failover): the
    // writer loads it again and loses nothing.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", redis.port)).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    assert_eq!(write(vec![record(8_400_000, 8)]), ("8".into(), "8400000".into()));
    assert!(stats.retries.load(Ordering::Relaxed) >= 1);
}

#[test]
fn without_keep_newest_the_last_write_wins() {
    // redis.keep-newest = false (one engine): MULTI/EXEC batches, the last
    // write wins, with its TTL and no `_window_end`.
    let redis = services::redis();
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 2, false).unwrap();
    sink.write_owned(vec![record(7_200_000, 2), record(3_600_000, 1), record(3_600_000, 3)])
        .unwrap();
    sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
    let (fields, ttl) = services::dump(redis.port, 0)["user_features:7"].clone();
    assert!(ttl, "{fields:?} has no TTL");
    assert_eq!(fields["view_count"], "3");
    assert!(!fields.contains_key("_window_end"), "{fields:?}");
    assert_eq!(sink.stats.older_windows_skipped.load(Ordering::Relaxed), 0);
}
