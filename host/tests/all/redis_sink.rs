//! The Redis writer against a real redis-server: what a key holds after
//! windows arrive in any order, and after Redis forgets the write script.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use featherflow::plugin::declaration::Field;
use featherflow::plugin::{FieldType, Value};
use featherflow::sink::redis::Form;
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
    // redis.keep-newest = true, with HSET or with RESTORE in the script.
    for form in [Form::KeepNewest, Form::KeepNewestRestore] {
        never_back(form);
    }
}

fn never_back(form: Form) {
    let redis = services::redis();
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 2, form).unwrap();
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
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 2, Form::Hset).unwrap();
    sink.write_owned(vec![record(7_200_000, 2), record(3_600_000, 1), record(3_600_000, 3)])
        .unwrap();
    sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
    let (fields, ttl) = services::dump(redis.port, 0)["user_features:7"].clone();
    assert!(ttl, "{fields:?} has no TTL");
    assert_eq!(fields["view_count"], "3");
    assert!(!fields.contains_key("_window_end"), "{fields:?}");
    assert_eq!(sink.stats.older_windows_skipped.load(Ordering::Relaxed), 0);
}

#[test]
fn keep_newest_writes_many_keys_of_any_shape_per_script_call() {
    for form in [Form::KeepNewest, Form::KeepNewestRestore] {
        many_keys_per_call(form);
    }
}

fn many_keys_per_call(form: Form) {
    // 130 keys in one batch: three script calls (64, 64, 2 keys), keys of
    // one and of two fields, with and without a TTL; then the same keys
    // again with every other one an older window, which must be skipped.
    let redis = services::redis();
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 512, form).unwrap();
    let stats = sink.stats.clone();
    let two: Arc<[Field]> = vec![
        Field {
            name: "event_count".into(),
            ty: FieldType::Integer,
        },
        Field {
            name: "duration_ms".into(),
            ty: FieldType::Integer,
        },
    ]
    .into();
    let shaped = |i: i64, window_end: i64| {
        let mut r = record(window_end, i);
        r.key = format!("k:{i}");
        if i % 2 == 1 {
            r.fields = two.clone();
            r.values = vec![Value::Integer(i), Value::Integer(window_end)];
            r.ttl_seconds = 0;
        }
        r
    };
    sink.write_owned((0..130).map(|i| shaped(i, 7_200_000)).collect())
        .unwrap();
    sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
    sink.write_owned(
        (0..130)
            .map(|i| shaped(i, if i % 4 < 2 { 3_600_000 } else { 7_800_000 }))
            .collect(),
    )
    .unwrap();
    sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
    let dump = services::dump(redis.port, 0);
    assert_eq!(dump.len(), 130);
    for i in 0..130i64 {
        let (fields, ttl) = &dump[&format!("k:{i}")];
        let end = if i % 4 < 2 { 7_200_000 } else { 7_800_000 };
        assert_eq!(fields["_window_end"], end.to_string(), "k:{i}: {fields:?}");
        if i % 2 == 1 {
            assert_eq!(fields.len(), 3, "k:{i}: {fields:?}");
            assert_eq!(fields["duration_ms"], end.to_string(), "k:{i}: {fields:?}");
            assert!(!ttl, "k:{i} has a TTL");
        } else {
            assert_eq!(fields.len(), 2, "k:{i}: {fields:?}");
            assert_eq!(fields["view_count"], i.to_string(), "k:{i}: {fields:?}");
            assert!(ttl, "k:{i} has no TTL");
        }
    }
    // i % 4 in {0, 1}: 64 of the first 128, and 128, 129.
    assert_eq!(stats.older_windows_skipped.load(Ordering::Relaxed), 66);
    assert_eq!(stats.keys_written.load(Ordering::Relaxed), 260);
}

#[test]
fn a_server_that_refuses_the_url_is_an_error_at_start_naming_redis_url() {
    let redis = services::redis_with(&["--requirepass", "s3cret"]);
    let port = redis.port;
    for (url, says) in [
        (format!("redis://:b4dpass@127.0.0.1:{port}/0"), "WRONGPASS"),
        (format!("redis://127.0.0.1:{port}/0"), "NOAUTH"),
        (format!("redis://:s3cret@127.0.0.1:{port}/99"), "SELECT 99"),
    ] {
        let e = RedisSink::start(&url, 16, Form::Hset)
            .err()
            .unwrap_or_else(|| panic!("{url} was taken"));
        let text = e.to_string();
        assert!(text.contains("redis.url") && text.contains(says), "{url}: {text}");
        assert!(
            !text.contains("b4dpass") && !text.contains("s3cret"),
            "the password leaked: {text}"
        );
    }
    // The right password and database: the record lands there.
    let mut sink = RedisSink::start(&format!("redis://:s3cret@127.0.0.1:{port}/3"), 16, Form::Hset).unwrap();
    sink.write_owned(vec![record(7_200_000, 4)]).unwrap();
    sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{port}/3")).unwrap();
    let mut c = client.get_connection().unwrap();
    let count: String = redis::cmd("HGET")
        .arg("user_features:7")
        .arg("view_count")
        .query(&mut c)
        .unwrap();
    assert_eq!(count, "4");
}

#[test]
fn a_server_that_does_not_answer_yet_is_waited_for() {
    let port = services::free_port();
    // Nothing listens yet: an outage, not an error.
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{port}/0"), 16, Form::Hset).unwrap();
    sink.write_owned(vec![record(7_200_000, 9)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let redis = services::redis_on(port);
    sink.barrier().wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(services::dump(redis.port, 0)["user_features:7"].0["view_count"], "9");
}

#[test]
fn restore_refused_by_the_acl_is_an_error_at_start() {
    let redis = services::redis_with(&["--user", "default", "on", "nopass", "~*", "&*", "+@all", "-restore"]);
    let e = RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 16, Form::Restore)
        .err()
        .expect("a user without RESTORE was taken");
    let text = e.to_string();
    assert!(
        text.contains("redis.write = \"restore\"") && text.contains("NOPERM") && text.contains("+restore"),
        "{text}"
    );
    // The same user writes with HSET; and a user allowed RESTORE is taken
    // without the probe leaving a key behind.
    RedisSink::start(&format!("redis://127.0.0.1:{}/0", redis.port), 16, Form::Hset).unwrap();
    let open = services::redis();
    RedisSink::start(&format!("redis://127.0.0.1:{}/0", open.port), 16, Form::Restore).unwrap();
    assert!(services::dump(open.port, 0).is_empty());
}

#[test]
fn restore_writes_the_object_hset_makes() {
    // redis.write = "restore": one RESTORE per key. Each value below is
    // written both ways, to db 0 by HSET and to db 1 by RESTORE; Redis must
    // then hold the same object, byte for byte (integers of every listpack
    // width, strings that look like integers but are not, strings of each
    // length encoding up to hash-max-listpack-value, floats, booleans).
    let redis = services::redis();
    let values: Vec<Value> = [0i64, 1, 127, 128, -1, -4096, 4095, 4096, -4097, 32767, -32768, 32768]
        .into_iter()
        .chain([
            8388607,
            -8388608,
            8388608,
            i32::MAX as i64,
            i32::MIN as i64,
            1 << 40,
            i64::MAX,
            i64::MIN,
        ])
        .map(Value::Integer)
        .chain(
            ["", "007", "-0", "+1", "1.0", " 1", "9223372036854775808", "ü", "x"]
                .into_iter()
                .map(|t| Value::Text(t.into())),
        )
        .chain([Value::Text("y".repeat(63)), Value::Text("z".repeat(64))])
        .chain([
            Value::Float(29.99),
            Value::Float(-0.0),
            Value::Float(1e300),
            Value::Boolean(true),
        ])
        .collect();
    let fields: Arc<[Field]> = vec![
        Field {
            name: "user_id".into(),
            ty: FieldType::Text,
        },
        Field {
            name: "value".into(),
            ty: FieldType::Text,
        },
    ]
    .into();
    let records: Vec<FeatureRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut r = record(7_200_000, 0);
            r.key = format!("k:{i}");
            r.fields = fields.clone();
            r.values = vec![Value::Text(i.to_string()), v.clone()];
            r.ttl_seconds = if i % 5 == 4 { 0 } else { 7200 };
            r
        })
        .collect();
    let forms = [
        (0, Form::Hset),
        (1, Form::Restore),
        (2, Form::KeepNewest),
        (3, Form::KeepNewestRestore),
    ];
    for (db, form) in forms {
        let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/{db}", redis.port), 16, form).unwrap();
        sink.write_owned(records.clone()).unwrap();
        sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(sink.stats.retries.load(Ordering::Relaxed), 0, "{form:?}");
    }
    let (by_hset, by_restore) = (
        services::object_dumps(redis.port, 0),
        services::object_dumps(redis.port, 1),
    );
    assert_eq!(by_hset.len(), values.len());
    for (key, d) in &by_hset {
        assert_eq!(Some(d), by_restore.get(key), "{key}: HSET's object, then RESTORE's");
    }
    assert_eq!(
        services::dump(redis.port, 0),
        services::dump(redis.port, 1),
        "fields or TTLs differ"
    );
    // The same with the keep-newest scripts (`_window_end` first).
    let (by_script, by_restore_script) = (
        services::object_dumps(redis.port, 2),
        services::object_dumps(redis.port, 3),
    );
    assert_eq!(by_script.len(), values.len());
    for (key, d) in &by_script {
        assert_eq!(
            Some(d),
            by_restore_script.get(key),
            "{key}: the HSET script's object, then RESTORE's"
        );
    }
    assert_eq!(
        services::dump(redis.port, 2),
        services::dump(redis.port, 3),
        "fields or TTLs differ"
    );

    // A Redis Cluster (always the keep-newest script, one key per call)
    // gets the same objects.
    let cluster = services::RedisCluster::start(3, 0);
    let mut sink = RedisSink::start_cluster(&cluster.urls(), 16, true).unwrap();
    sink.write_owned(records.clone()).unwrap();
    sink.barrier().wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(cluster.dump(), services::dump(redis.port, 2), "fields or TTLs differ");
    for port in cluster.masters() {
        for (key, d) in services::object_dumps(port, 0) {
            assert_eq!(
                Some(&d),
                by_script.get(&key),
                "{key}: the HSET script's object, then the cluster's"
            );
        }
    }

    // A TTL is the view's, to the millisecond; TTL 0 is none.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/1", redis.port)).unwrap();
    let mut c = client.get_connection().unwrap();
    let pttl = |c: &mut redis::Connection, k: &str| -> i64 { redis::cmd("PTTL").arg(k).query(c).unwrap() };
    assert!((7_190_000..=7_200_000).contains(&pttl(&mut c, "k:0")));
    assert_eq!(pttl(&mut c, "k:4"), -1);

    // RESTORE replaces the whole hash: a field the record does not carry
    // is gone (HSET would have kept it).
    let _: () = redis::cmd("HSET")
        .arg("k:1")
        .arg("stale")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let mut sink = RedisSink::start(&format!("redis://127.0.0.1:{}/1", redis.port), 16, Form::Restore).unwrap();
    sink.write_owned(vec![records[1].clone()]).unwrap();
    sink.barrier().wait(Some(Duration::from_secs(10))).unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS").arg("k:1").query(&mut c).unwrap();
    assert_eq!(fields, ["user_id", "value"]);
}
