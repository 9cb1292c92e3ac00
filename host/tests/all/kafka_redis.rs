//! The promise of `featherflow run`, tested against a real redis-server and
//! a real Kafka-protocol broker (tansu): equivalence with replay, crash
//! recovery under SIGKILL, outages of Redis and the broker, and restore
//! from an older checkpoint.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::services::{self, Dump, Service};
use crate::{featherflow, plugin_dir, run_ok};

struct Setup {
    api_port: u16,
    redis: Service,
    broker: Service,
    dir: tempfile::TempDir,
    plugins: tempfile::TempDir,
    events: std::path::PathBuf,
    /// Variables for every `featherflow` this setup runs (`AWS_*` for S3).
    env: Vec<(String, String)>,
}

/// Services, a generated event log produced to a 4-partition topic, and
/// the reference: `featherflow replay` of the same log into Redis db 1.
fn setup(events: u64, users: u64, exact: bool) -> Setup {
    let s = setup_unproduced(events, users);
    s.produce(&s.events, exact);
    s
}

/// [`setup`] without producing the log (the test produces it in parts).
fn setup_unproduced(events: u64, users: u64) -> Setup {
    let redis = services::redis();
    let broker = services::tansu(4);
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&["user-activity", "session-stats"]);
    let log = dir.path().join("events.jsonl");
    run_ok(
        featherflow()
            .args([
                "gen",
                "--events",
                &events.to_string(),
                "--users",
                &users.to_string(),
                "--event-rate",
                "200",
                "--disorder-seconds",
                "5",
                "--seed",
                "11",
                "--out",
            ])
            .arg(&log),
    );
    let s = Setup {
        api_port: services::free_port(),
        redis,
        broker,
        dir,
        plugins,
        events: log,
        env: Vec::new(),
    };
    s.replay_into(s.plugins.path(), 1);
    s
}

impl Setup {
    /// Produce the events of `file` to the topic.
    fn produce(&self, file: &Path, exact: bool) {
        let mut produce = featherflow();
        produce
            .args([
                "produce",
                "--brokers",
                &format!("127.0.0.1:{}", self.broker.port),
                "--from-file",
            ])
            .arg(file);
        if exact {
            produce.arg("--exact");
        }
        run_ok(&mut produce);
    }

    /// `featherflow replay` of the whole log with `plugins` into Redis `db`.
    fn replay_into(&self, plugins: &Path, db: u32) {
        run_ok(
            featherflow()
                .args(["replay", "--events"])
                .arg(&self.events)
                .arg("--plugins")
                .arg(plugins)
                .args([
                    "--redis",
                    &format!("redis://127.0.0.1:{}/{db}", self.redis.port),
                    "--dead-letter",
                    "",
                ]),
        );
    }

    fn config(&self, interval: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("featherflow.toml");
        std::fs::write(
            &path,
            format!(
                "[kafka]\nassignment = \"static\"\nbrokers = \"127.0.0.1:{}\"\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n[checkpoint]\ndir = \"{}\"\ninterval = \"{interval}\"\nretain = 3\n[plugins]\ndir = \"{}\"\n[output]\ndead-letter = \"\"\n[api]\nlisten = \"127.0.0.1:{}\"\n",
                self.broker.port,
                self.redis.port,
                self.dir.path().join("checkpoints").display(),
                self.plugins.path().display(),
                self.api_port
            ),
        )
        .unwrap();
        path
    }

    /// `featherflow` with this setup's variables.
    fn featherflow(&self) -> Command {
        let mut c = featherflow();
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn run(&self, config: &Path, extra: &[&str]) -> Child {
        self.featherflow()
            .env("RUST_LOG", "info")
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(extra)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    fn reference(&self) -> Dump {
        services::dump(self.redis.port, 1)
    }

    /// The replay of the whole log with `v2-user-activity` in place of
    /// user-activity, in Redis db 2.
    fn reference_with_v2(&self) -> Dump {
        let v2_dir = plugin_dir(&["session-stats"]);
        std::fs::copy(
            crate::guest("v2-user-activity"),
            v2_dir.path().join("user-activity.wasm"),
        )
        .unwrap();
        self.replay_into(v2_dir.path(), 2);
        services::dump(self.redis.port, 2)
    }

    fn actual(&self) -> Dump {
        services::dump(self.redis.port, 0)
    }

    fn checkpoint_ids(&self, config: &Path) -> Vec<u64> {
        self.checkpoints(config)
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    }

    /// `featherflow checkpoints list --json`, oldest first.
    fn checkpoints(&self, config: &Path) -> Vec<serde_json::Value> {
        let (out, _) = run_ok(
            self.featherflow()
                .args(["checkpoints", "list", "--json", "--config"])
                .arg(config),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array().unwrap().clone()
    }
}

/// How many keys Redis holds.
fn keys_in_redis(s: &Setup) -> u64 {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", s.redis.port)).unwrap();
    redis::cmd("DBSIZE")
        .query(&mut client.get_connection().unwrap())
        .unwrap()
}

/// Events a checkpoint had read: the sum of its next offsets.
fn events_read(meta: &serde_json::Value) -> i64 {
    meta["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o[1].as_i64().unwrap())
        .sum()
}

/// The content hash a checkpoint records for `view`'s plugin.
fn plugin_hash(meta: &serde_json::Value, view: &str) -> String {
    meta["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["view"] == view)
        .map(|p| p["hash"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {view} in {meta}"))
}

/// Deploy v2 of user-activity the safe way: write beside, then rename.
fn deploy_v2(plugins: &Path) {
    let tmp = plugins.join("user-activity.wasm.tmp");
    std::fs::copy(crate::guest("v2-user-activity"), &tmp).unwrap();
    std::fs::rename(&tmp, plugins.join("user-activity.wasm")).unwrap();
}

/// A job's `plugin history --json`, and its records of `view`.
fn history_of(config: &Path, view: &str) -> (String, Vec<String>) {
    let (history, _) = run_ok(
        featherflow()
            .args(["plugin", "history", "--json", "--config"])
            .arg(config),
    );
    let records = history
        .lines()
        .filter(|l| l.contains(&format!("\"{view}\"")))
        .map(String::from)
        .collect();
    (history, records)
}

/// The content hash of the plugin serving `view`, from `/api/plugins`.
fn serving_hash(port: u16, view: &str) -> String {
    let response = http_get(port, "/api/plugins");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let plugins: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
    plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["view"] == view)
        .and_then(|p| p["hash"].as_str())
        .unwrap_or_else(|| panic!("no {view} in {body}"))
        .to_string()
}

fn wait_ok(mut child: Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "featherflow run failed: {status}");
            return;
        }
        if Instant::now() >= deadline {
            // Not left running after the test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("featherflow run did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_same(reference: &Dump, actual: &Dump) {
    assert!(!reference.is_empty());
    assert!(reference.values().all(|(_, ttl)| *ttl), "every reference key has a TTL");
    assert!(
        reference == actual,
        "Redis differs from the replay reference: {}",
        services::diff(reference, actual)
    );
}

#[test]
fn run_equals_replay() {
    let s = setup(20_000, 300, true);
    let config = s.config("30s");
    wait_ok(s.run(&config, &["--bounded"]), Duration::from_secs(60));
    let reference = s.reference();
    assert!(reference.keys().any(|k| k.starts_with("session_features:")));
    assert!(reference.keys().any(|k| k.starts_with("user_features:")));
    assert_same(&reference, &s.actual());
    let _ = &s.events;
}

/// `redis.write = "restore"` (one `RESTORE` per key): Redis holds what the
/// replay wrote with `HSET` + `EXPIRE`, the same objects byte for byte; and
/// in a consumer group (RESTORE inside the keep-newest script).
#[test]
fn run_writing_with_restore_equals_replay() {
    let mut s = setup(20_000, 300, true);
    s.env.push(("FEATHERFLOW_REDIS_WRITE".into(), "restore".into()));
    let config = s.config("30s");
    wait_ok(s.run(&config, &["--bounded"]), Duration::from_secs(60));
    let reference = s.reference();
    assert_same(&reference, &s.actual());
    assert_eq!(
        services::object_dumps(s.redis.port, 1),
        services::object_dumps(s.redis.port, 0)
    );
    // A consumer group writes with the keep-newest script, here with
    // RESTORE inside it: the same features, plus `_window_end`.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", s.redis.port)).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    assert_same(&reference, &rerun_as_a_group(&s, &config, "restore"));
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut c).unwrap();
    assert!(
        stats.contains("cmdstat_restore:") && !stats.contains("cmdstat_hset:"),
        "the group wrote without RESTORE: {stats}"
    );
}

/// Run `config` again from the start as a consumer group of its own
/// (`group`, its own checkpoints), into an emptied Redis; returns Redis's
/// keys without the `_window_end` group members write (they write with
/// redis.keep-newest).
fn rerun_as_a_group(s: &Setup, config: &Path, group: &str) -> Dump {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", s.redis.port)).unwrap();
    let _: () = redis::cmd("FLUSHDB")
        .query(&mut client.get_connection().unwrap())
        .unwrap();
    assert!(s.actual().is_empty());
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace(
            "assignment = \"static\"\n",
            &format!("assignment = \"group\"\ngroup = \"{group}\"\n"),
        )
        .replace("/checkpoints\"", "/group-checkpoints\"")
        + "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n";
    assert!(
        text.contains("group-checkpoints") && text.contains("\"group\""),
        "{text}"
    );
    std::fs::write(config, text).unwrap();
    wait_ok(s.run(config, &["--bounded"]), Duration::from_secs(90));
    let mut actual = s.actual();
    for (key, (fields, _)) in actual.iter_mut() {
        assert!(fields.remove("_window_end").is_some(), "{key} has no _window_end");
    }
    actual
}

/// A topic written by a transactional producer has offsets that carry no
/// message (each commit's marker): a bounded run must still end, with
/// Redis equal to the replay.
#[test]
fn a_bounded_run_over_transactional_writes_ends() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let s = setup_unproduced(4_000, 80);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", s.broker.port))
        .set("transactional.id", "featherflow-test")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&s.events)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Four transactions over every partition (keyed by user, as `produce`
    // does): a marker after each in each partition.
    for chunk in lines.chunks(lines.len().div_ceil(4)) {
        producer.begin_transaction().unwrap();
        for line in chunk {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let user = event["user_id"].as_str().unwrap();
            let record = BaseRecord::to("ecommerce-events").payload(line.as_str()).key(user);
            producer.send(record).map_err(|(e, _)| e).unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.commit_transaction(Duration::from_secs(30)).unwrap();
    }
    let config = s.config("30s");
    wait_ok(s.run(&config, &["--bounded"]), Duration::from_secs(60));
    assert_same(&s.reference(), &s.actual());

    // The same in group mode (a source per partition), from the start: a
    // group of its own, its own checkpoints, Redis emptied first.
    assert_same(&s.reference(), &rerun_as_a_group(&s, &config, "transactional"));
}

#[test]
fn sigkill_at_random_moments_then_restart_is_exact() {
    // At 200 events/s of event time the first windows fire a fifth of the
    // way in, so most of the stream is still to read when the first keys
    // reach Redis (with 300 k events, two fifths: a CI run read the rest
    // within the 245 ms that round 0 waited after the first key, and no
    // round could be interrupted after that).
    const EVENTS: u64 = 600_000;
    let s = setup(EVENTS, 5_000, false);
    let config = s.config("150ms");
    let mut seed = 0x9e37_79b9_u64;
    let mut interrupted = 0;
    for round in 0..4 {
        let child = s.run(&config, &[]);
        let started = Instant::now();
        // A random moment after the first keys reach Redis (or 5 s): a
        // fixed delay after the start landed after the end of the stream
        // when the machine read it faster than usual.
        while keys_in_redis(&s) == 0 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 400));
        let after = started.elapsed();
        services::signal(child.id(), "KILL");
        let mut child = child;
        let _ = child.wait();
        // Did the kill land before the stream was fully read?
        let read = s.checkpoints(&config).last().map_or(0, events_read);
        if read < EVENTS as i64 {
            interrupted += 1;
        }
        eprintln!("round {round}: killed after {after:?}; last checkpoint had read {read} events");
    }
    assert!(interrupted >= 1, "no kill landed while the stream was being processed");
    assert!(
        !s.checkpoint_ids(&config).is_empty(),
        "checkpoints were taken between the kills"
    );
    wait_ok(s.run(&config, &["--bounded"]), Duration::from_secs(120));
    assert_same(&s.reference(), &s.actual());
}

#[test]
fn redis_and_broker_outages_lose_nothing() {
    let s = setup(200_000, 5_000, false);
    let config = s.config("200ms");
    let child = s.run(&config, &["--bounded"]);
    std::thread::sleep(Duration::from_millis(400));
    s.redis.pause();
    std::thread::sleep(Duration::from_secs(2));
    s.redis.resume();
    s.broker.pause();
    std::thread::sleep(Duration::from_secs(2));
    s.broker.resume();
    wait_ok(child, Duration::from_secs(120));
    assert_same(&s.reference(), &s.actual());
}

/// `checkpoint.url = url`: checkpoints taken until SIGTERM land in that
/// store (as `stored` checks), nothing in `checkpoint.dir`, `checkpoints
/// show` verifies one there, and a bounded run restored from the oldest
/// converges to the replay.
fn restore_from_a_shared_store(s: &Setup, url: &str, stored: &dyn Fn(u64)) {
    let config = s.config("200ms");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[checkpoint]\n", &format!("[checkpoint]\nurl = \"{url}\"\n"));
    std::fs::write(&config, text).unwrap();
    let child = s.run(&config, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    services::signal(child.id(), "TERM");
    wait_ok(child, Duration::from_secs(30));
    let ids = s.checkpoint_ids(&config);
    assert!(ids.len() >= 2, "retained checkpoints: {ids:?}");
    stored(ids[0]);
    // Nothing of it went to checkpoint.dir's local store.
    assert!(!s.dir.path().join("checkpoints").join("db").exists());
    let (show, _) = run_ok(
        s.featherflow()
            .args(["checkpoints", "show", &ids[0].to_string(), "--config"])
            .arg(&config),
    );
    let name = format!("{}/chk-{}", url.strip_prefix("file://").unwrap_or(url), ids[0]);
    assert!(show.contains("verified") && show.contains(&name), "{show}");
    wait_ok(
        s.run(&config, &["--bounded", "--from-checkpoint", &ids[0].to_string()]),
        Duration::from_secs(120),
    );
    assert_same(&s.reference(), &s.actual());
}

#[test]
fn checkpoints_in_a_file_url_directory_restore_and_converge() {
    // checkpoint.url = file://...: plain files in a directory that may be a
    // shared mount; commit records are create-only.
    let s = setup(100_000, 3_000, false);
    let shared = s.dir.path().join("shared");
    restore_from_a_shared_store(&s, &format!("file://{}", shared.display()), &|id| {
        assert!(
            shared.join(format!("chk-{id}.json")).is_file() && shared.join(format!("chk-{id}")).is_dir(),
            "{:?}",
            std::fs::read_dir(&shared).unwrap().collect::<Vec<_>>()
        )
    });
}

#[test]
fn checkpoints_in_an_s3_bucket_restore_and_converge() {
    // checkpoint.url = s3://...: a real S3-compatible store (SeaweedFS),
    // reached through the AWS_* variables.
    let server = featherflow::state::LocalS3::start();
    let mut s = setup(100_000, 3_000, false);
    s.env = server.env();
    let store = server.store("jobs/one");
    restore_from_a_shared_store(&s, "s3://ckpt/jobs/one", &|id| {
        use featherflow::state::CheckpointStore;
        assert!(store.read(id).is_ok(), "{:?}", store.list());
    });
}

#[test]
fn a_redis_cluster_gets_what_one_redis_gets_through_a_failover() {
    // redis.cluster-nodes: 3 masters with a replica each; one master is
    // failed over (CLUSTER FAILOVER) while the engine writes.
    let cluster = services::RedisCluster::start(3, 1);
    let s = setup(200_000, 5_000, false);
    let config = s.config("200ms");
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[redis]\n",
        &format!("[redis]\ncluster-nodes = [{}]\n", nodes.join(", ")),
    );
    std::fs::write(&config, text).unwrap();
    let mut child = Running(s.run(&config, &["--bounded"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.dump().is_empty() {
        assert!(Instant::now() < deadline, "nothing reached the cluster");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = cluster.masters();
    cluster.fail_over(before[0]);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the run ended before the failover: the test needs more events"
    );
    assert_ne!(cluster.masters(), before, "the failover changed no master");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "featherflow run failed: {status}");
    // The cluster writes with the script, which keeps `_window_end`.
    let mut actual = cluster.dump();
    for (key, (fields, _)) in actual.iter_mut() {
        assert!(fields.remove("_window_end").is_some(), "{key} has no _window_end");
    }
    assert_same(&s.reference(), &actual);
    for port in cluster.masters() {
        assert!(!services::dump(port, 0).is_empty(), "the master on {port} holds no key");
    }
}

#[test]
fn redis_stopped_while_nothing_is_written_is_reported() {
    // The engine has caught up and fires nothing for now: an outage must
    // still show (the writer checks an idle connection), and its end too.
    let s = setup(5_000, 500, false);
    let config = s.config("1s");
    let log_path = s.dir.path().join("engine.log");
    let mut child = Running(
        featherflow()
            .env("RUST_LOG", "info")
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let ready = |want: &str, within: Duration| {
        let deadline = Instant::now() + within;
        loop {
            let r = http_get(s.api_port, "/health/ready");
            if r.contains(want) {
                return r;
            }
            assert!(Instant::now() < deadline, "no {want} within {within:?}: {r}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    ready("\"redis_reachable\":true", Duration::from_secs(30));
    // Caught up (every event read, the windows that could fire written) and
    // idle past the writer's first check of the idle connection.
    std::thread::sleep(Duration::from_secs(7));
    ready("\"redis_reachable\":true", Duration::from_secs(1));
    s.redis.pause();
    let down = ready("\"redis_reachable\":false", Duration::from_secs(20));
    assert!(down.contains("503"), "{down}");
    s.redis.resume();
    ready("\"redis_reachable\":true", Duration::from_secs(20));
    services::signal(child.0.id(), "TERM");
    child.0.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("redis failing") && log.contains("does not answer (idle check)") && log.contains("redis is back"),
        "{log}"
    );
}

#[test]
fn restore_an_older_checkpoint_converges() {
    let s = setup(200_000, 5_000, false);
    let config = s.config("100ms");
    // Stop (SIGTERM: final checkpoint) part-way, twice, keeping checkpoints.
    for round in 0..2 {
        let child = s.run(&config, &[]);
        std::thread::sleep(Duration::from_millis(900));
        if round == 0 {
            // The running engine serves its metrics and health.
            let metrics = http_get(s.api_port, "/metrics");
            assert!(
                metrics.contains("200 OK") && metrics.contains("featherflow_records_read_total"),
                "{metrics}"
            );
            // The views are listed once the job has restored and started.
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let plugins = http_get(s.api_port, "/api/plugins");
                if plugins.contains("user_features") && plugins.contains("session_features") {
                    break;
                }
                assert!(Instant::now() < deadline, "{plugins}");
                std::thread::sleep(Duration::from_millis(50));
            }
            // Freshness per view, once windows have fired into Redis.
            loop {
                let metrics = http_get(s.api_port, "/metrics");
                let overview = http_get(s.api_port, "/api/overview");
                if metrics.contains("featherflow_fire_to_redis_seconds_count{view=\"user_features\"}")
                    && metrics.contains("featherflow_view_newest_window_age_seconds{view=\"user_features\"}")
                    && overview.contains("\"freshness\":{\"")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no freshness figures:\n{metrics}\n{overview}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        services::signal(child.id(), "TERM");
        wait_ok(child, Duration::from_secs(30));
    }
    let ids = s.checkpoint_ids(&config);
    assert!(ids.len() >= 2, "retained checkpoints: {ids:?}");
    let oldest = ids[0];
    let (show, _) = run_ok(
        featherflow()
            .args(["checkpoints", "show", &oldest.to_string(), "--config"])
            .arg(&config),
    );
    assert!(show.contains("offsets:") && show.contains("user_features"), "{show}");
    wait_ok(
        s.run(
            &config,
            &[
                "--bounded",
                "--from-checkpoint",
                &format!("{}/chk-{oldest}", s.dir.path().join("checkpoints").display()),
            ],
        ),
        Duration::from_secs(120),
    );
    assert_same(&s.reference(), &s.actual());
}

/// Hot swap under `run`, with crashes: half the log is consumed under v1,
/// v2 (same state, average + 1000) is renamed into the plugin directory,
/// the rest is produced, and the engine is SIGKILLed mid-stream and
/// restarted. The restarted engine continues with v2 on the checkpointed
/// states, whichever version wrote the checkpoint it restored: every key's
/// last window (fired after the swap) holds v2's values, exactly what a
/// replay of the whole log with v2 writes, and no key is missing or extra.
#[test]
fn hot_swap_then_sigkill_resumes_with_the_new_version() {
    let s = setup_unproduced(240_000, 2_000);
    let lines: Vec<String> = std::fs::read_to_string(&s.events)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let half = lines.len() / 2;
    let (first, second) = (s.dir.path().join("first.jsonl"), s.dir.path().join("second.jsonl"));
    std::fs::write(&first, lines[..half].join("\n") + "\n").unwrap();
    std::fs::write(&second, lines[half..].join("\n") + "\n").unwrap();
    // The reference with v2: what every key's last window must hold.
    let (reference_v1, reference_v2) = (s.reference(), s.reference_with_v2());
    assert!(
        reference_v1.len() == reference_v2.len() && reference_v1 != reference_v2,
        "v1 and v2 must write the same keys with distinguishable values"
    );

    let config = s.config("150ms");
    s.produce(&first, true);
    let mut child = Running(s.run(&config, &[]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get(s.api_port, "/api/overview").contains(&format!("\"records_read\":{half}")) {
        assert!(Instant::now() < deadline, "the first half was not consumed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v1_hash = serving_hash(s.api_port, "user_features");
    // `checkpoints list` works while the job holds the store (its index).
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .checkpoints(&config)
        .last()
        .is_none_or(|m| events_read(m) != half as i64)
    {
        assert!(Instant::now() < deadline, "no checkpoint of the first half is listed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        plugin_hash(s.checkpoints(&config).last().unwrap(), "user_features"),
        v1_hash
    );
    deploy_v2(s.plugins.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(s.api_port, "/api/plugins").contains("\"version\":\"2.0.0\"") {
        assert!(Instant::now() < deadline, "v2 was not deployed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The second half is produced while the engine runs and is killed.
    let mut producing = featherflow()
        .args([
            "produce",
            "--brokers",
            &format!("127.0.0.1:{}", s.broker.port),
            "--rate",
            "60000",
            "--from-file",
        ])
        .arg(&second)
        .spawn()
        .unwrap();
    let total = lines.len() as i64;
    let mut seed = 0x5eed_u64;
    let mut interrupted = 0;
    for round in 0..3 {
        if round > 0 {
            child = Running(s.run(&config, &[]));
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let after = Duration::from_millis(200 + (seed >> 33) % 700);
        std::thread::sleep(after);
        services::signal(child.0.id(), "KILL");
        let _ = child.0.wait();
        let last = s.checkpoints(&config).last().cloned().expect("a checkpoint");
        let read = events_read(&last);
        if read < total {
            interrupted += 1;
        }
        eprintln!(
            "round {round}: killed after {after:?}; last checkpoint read {read} of {total}, user_features by {}",
            &plugin_hash(&last, "user_features")[..12]
        );
    }
    assert!(interrupted >= 1, "no kill landed while the stream was being processed");
    assert!(producing.wait().unwrap().success());
    wait_ok(s.run(&config, &["--bounded"]), Duration::from_secs(120));
    let last = s.checkpoints(&config).last().cloned().expect("a final checkpoint");
    assert_eq!(events_read(&last), total);
    let v2_hash = plugin_hash(&last, "user_features");
    assert_ne!(v2_hash, v1_hash, "the final checkpoint records v2's states");
    assert_same(&reference_v2, &s.actual());
}

#[test]
fn damaged_or_missing_checkpoint_is_a_clear_error() {
    let s = setup(2_000, 50, true);
    let config = s.config("30s");
    let out = featherflow()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--from-checkpoint", "77"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chk-77") && err.contains("does not exist"), "{err}");
    let _ = Command::new("true");
}

/// A plain HTTP/1.0 GET on loopback; returns status line, headers and body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = connect(port);
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// The dashboard in real headless Chromium, against a running engine: it
/// loads, shows live numbers, logs no console errors. The screenshot is kept
/// in target/test-artifacts/ as a test artifact.
#[test]
fn dashboard_shows_live_numbers_in_headless_chromium() {
    let s = setup(50_000, 500, false);
    let config = s.config("500ms");
    let child = Running(s.run(&config, &[]));
    // Wait until the engine has read events and taken a checkpoint.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let overview = http_get(s.api_port, "/api/overview");
        if overview.contains("\"records_read\":50000") && http_get(s.api_port, "/api/checkpoints").contains("\"id\"") {
            break;
        }
        assert!(Instant::now() < deadline, "engine did not catch up: {overview}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let artifacts = crate::root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", s.api_port);
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=5000",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium is not installed: run scripts/deps.sh")
    };
    let dom = chromium(&["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(
        html.contains("id=\"kpi-recordsread\">50000<"),
        "live record count in the page:\n{html}"
    );
    assert!(
        html.contains("user_features") && html.contains("session_features"),
        "plugins listed"
    );
    assert!(
        html.contains("<td>0</td>") || html.contains("<td>1</td>"),
        "partition rows rendered:\n{html}"
    );
    // The freshness table is there (this log is too short to fire a window;
    // `restore_an_older_checkpoint_converges` checks the figures).
    assert!(
        html.contains("id=\"freshness\"") && html.contains("<th>fire to Redis p50</th>"),
        "freshness table rendered:\n{html}"
    );
    for bad in ["Uncaught", "CONSOLE("] {
        assert!(!log.contains(bad), "console error ({bad}):\n{log}");
    }
    assert!(
        !html.contains("id=\"updated\">engine unreachable"),
        "the page reached the API:\n{html}"
    );
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(&[&format!("--screenshot={}", shot.display())]);
    assert!(out.status.success());
    assert!(
        std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false),
        "screenshot written"
    );
    drop(child);
}

fn http_send(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = connect(port);
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Deploys through the admin API: bearer token required, uploads validated
/// before they reach the plugin directory, then hot-swapped by the watcher.
#[test]
fn admin_api_deploys_with_a_token_and_refuses_bad_plugins() {
    let s = setup(2_000, 50, true);
    let config = s.config("30s");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("token = \"s3cret\"\n");
    std::fs::write(&config, text).unwrap();
    let mut child = Running(s.run(&config, &[]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(s.api_port, "/api/overview").contains("\"records_read\":2000") {
        assert!(Instant::now() < deadline, "engine did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v2 = std::fs::read(crate::guest("v2-user-activity")).unwrap();
    assert!(http_send(s.api_port, "PUT", "/api/plugins/user-activity", None, &v2).contains("401"));
    assert!(http_send(s.api_port, "PUT", "/api/plugins/user-activity", Some("wrong"), &v2).contains("401"));
    let bad = std::fs::read(crate::guest("wrong-world")).unwrap();
    let refused = http_send(s.api_port, "PUT", "/api/plugins/user-activity", Some("s3cret"), &bad);
    assert!(
        refused.contains("422") && refused.contains("featherflow:plugin/feature"),
        "{refused}"
    );
    let ok = http_send(s.api_port, "PUT", "/api/plugins/user-activity", Some("s3cret"), &v2);
    assert!(ok.contains("202") && ok.contains("2.0.0"), "{ok}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = http_get(s.api_port, "/api/plugins/history");
        if h.contains("\"outcome\":\"swapped\"")
            && http_get(s.api_port, "/api/plugins").contains("\"version\":\"2.0.0\"")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the upload was not deployed: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // v3 has a new state version and migrates from v2's: migrated.
    let v3 = std::fs::read(crate::guest("v3-user-activity")).unwrap();
    assert!(http_send(s.api_port, "PUT", "/api/plugins/user-activity", Some("s3cret"), &v3).contains("202"));
    wait_history(s.api_port, "migrated", 1);
    // Back to v1: it cannot read state version 2, so it is refused...
    let v1 = std::fs::read(crate::guest("user-activity")).unwrap();
    assert!(http_send(s.api_port, "PUT", "/api/plugins/user-activity", Some("s3cret"), &v1).contains("202"));
    wait_history(s.api_port, "refused", 1);
    let plugins = http_get(s.api_port, "/api/plugins");
    assert!(
        plugins.contains("\"version\":\"3.0.0\""),
        "{plugins}\n{}",
        http_get(s.api_port, "/api/plugins/history")
    );
    // ...unless the deploy asks for a reset.
    let reset = http_send(
        s.api_port,
        "PUT",
        "/api/plugins/user-activity?reset=true",
        Some("s3cret"),
        &v1,
    );
    assert!(reset.contains("202") && reset.contains("\"reset\":true"), "{reset}");
    wait_history(s.api_port, "reset", 1);
    assert!(http_get(s.api_port, "/api/plugins").contains("\"version\":\"0.1.0\""));
    assert!(
        !s.plugins.path().join("user-activity.reset").exists(),
        "the reset marker is consumed"
    );
    services::signal(child.0.id(), "TERM");
    let _ = child.0.wait();
    let (history, _) = run_ok(featherflow().args(["plugin", "history", "--config"]).arg(&config));
    assert!(
        history.contains("swapped") && history.contains("user_features@2.0.0") && history.contains("reset"),
        "{history}"
    );
}

/// Wait (up to 20 s) until the swap history holds `n` records of `outcome`.
fn wait_history(port: u16, outcome: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = http_get(port, "/api/plugins/history");
        if h.matches(&format!("\"outcome\":\"{outcome}\"")).count() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no {outcome} deploy: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connect to the engine's API, waiting (up to 15 s) for it to listen.
fn connect(port: u16) -> std::net::TcpStream {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) => assert!(Instant::now() < deadline, "API on {port} not reachable: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running engine, killed if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What is gone when the engine is told to stop.
#[derive(Clone, Copy, Debug)]
enum Gone {
    Redis,
    Broker,
    Both,
}

/// Run the job, take `gone` away, SIGTERM it: it must end within
/// `engine.shutdown-timeout` (5 s here) plus a little, with a final
/// checkpoint when Redis answers and, when it does not, exit code 3 and a
/// message naming the checkpoint the next start restores.
fn stop_with(gone: Gone) {
    let mut s = setup_unproduced(200_000, 5_000);
    // Half the log now; the other half once something is gone, so that the
    // engine has outputs Redis never acknowledges.
    let text = std::fs::read_to_string(&s.events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = (s.dir.path().join("first.jsonl"), s.dir.path().join("second.jsonl"));
    std::fs::write(&first, lines[..lines.len() / 2].join("\n") + "\n").unwrap();
    std::fs::write(&second, lines[lines.len() / 2..].join("\n") + "\n").unwrap();
    s.produce(&first, false);
    let config = s.config("500ms");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[engine]\nshutdown-timeout = \"5s\"\n");
    std::fs::write(&config, text).unwrap();
    let log = s.dir.path().join("engine.log");
    let mut child = featherflow()
        .env("RUST_LOG", "info")
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Running, with at least one checkpoint taken.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap().contains("checkpoint complete") {
        assert!(Instant::now() < deadline, "no checkpoint within 30 s");
        assert!(child.try_wait().unwrap().is_none(), "the engine exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    if matches!(gone, Gone::Redis | Gone::Both) {
        s.redis.child.kill().unwrap();
        s.produce(&second, false);
        // Read past the 10-minute boundary at 120 000 events (200 events
        // per second of event time), so windows fire into the dead Redis.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let overview = http_get(s.api_port, "/api/overview");
            let read = overview
                .split("\"records_read\":")
                .nth(1)
                .and_then(|t| t.split([',', '}']).next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if read >= 150_000 {
                break;
            }
            assert!(Instant::now() < deadline, "the engine did not read on: {read} records");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if matches!(gone, Gone::Broker | Gone::Both) {
        s.broker.child.kill().unwrap();
    }
    // Let the writer and the consumer notice.
    std::thread::sleep(Duration::from_secs(1));
    let before = std::fs::read_to_string(&log).unwrap().len();
    let asked = Instant::now();
    services::signal(child.id(), "TERM");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(8),
            "{gone:?} gone: still running 8 s after SIGTERM (shutdown-timeout 5 s)"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = asked.elapsed();
    let log = std::fs::read_to_string(&log).unwrap();
    let after = &log[before..];
    match gone {
        Gone::Broker => {
            assert!(
                status.success(),
                "broker gone, Redis up: a clean stop ({status}):\n{after}"
            );
            assert!(
                after.contains("checkpoint complete"),
                "the final checkpoint is taken:\n{after}"
            );
        }
        Gone::Redis | Gone::Both => {
            assert_eq!(
                status.code(),
                Some(3),
                "Redis gone: no final checkpoint ({status}):\n{after}"
            );
            assert!(
                after.contains("the next start restores") && after.contains("chk-"),
                "the log says which checkpoint the next start restores:\n{after}"
            );
        }
    }
    // Quiet: an outage is a few lines, not one per retry.
    let warnings = after
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    assert!(warnings <= 12, "{warnings} warning/error lines in {took:?}:\n{after}");
}

#[test]
fn sigterm_with_redis_gone_ends_within_the_shutdown_timeout() {
    stop_with(Gone::Redis);
}

#[test]
fn sigterm_with_the_broker_gone_still_takes_the_final_checkpoint() {
    stop_with(Gone::Broker);
}

#[test]
fn sigterm_with_redis_and_the_broker_gone_ends_within_the_shutdown_timeout() {
    stop_with(Gone::Both);
}

/// `produce` without a broker: one clear line within 10 s, not a stream of
/// librdkafka errors.
#[test]
fn produce_without_a_broker_fails_fast_with_one_clear_line() {
    let port = services::free_port();
    let started = Instant::now();
    let out = featherflow()
        .env("RUST_LOG", "info")
        .args(["produce", "--brokers", &format!("127.0.0.1:{port}"), "--events", "10"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(13), "took {took:?}:\n{stderr}");
    assert!(stderr.contains("cannot reach the Kafka broker"), "{stderr}");
    let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 3, "{lines} lines:\n{stderr}");
}

/// The partitions the engine serving its API on `port` owns now (`None`
/// while it does not answer).
fn owned(port: u16) -> Option<Vec<u64>> {
    let response = http_get(port, "/api/overview");
    let body = response.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(v["partitions"].as_array()?.iter().filter_map(|p| p.as_u64()).collect())
}

/// Wait until `check` holds for the partitions the engine on `port` owns.
fn wait_owned(port: u16, what: &str, check: impl Fn(&[u64]) -> bool) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(ps) = owned(port)
            && check(&ps)
        {
            return ps;
        }
        assert!(
            Instant::now() < deadline,
            "the engine on {port} never {what}: owns {:?}",
            owned(port)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A log produced in three parts to a group of engines sharing a
/// `checkpoint.url` store, and the reference replay of all of it.
struct Group {
    s: Setup,
    parts: Vec<std::path::PathBuf>,
    config: std::path::PathBuf,
}

impl Group {
    fn new(s: Setup, url: &str) -> Self {
        let text = std::fs::read_to_string(&s.events).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let parts = lines
            .chunks(lines.len().div_ceil(3))
            .enumerate()
            .map(|(i, chunk)| {
                let path = s.dir.path().join(format!("part-{i}.jsonl"));
                std::fs::write(&path, chunk.join("\n") + "\n").unwrap();
                path
            })
            .collect();
        let config = s.config("300ms");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .replace("assignment = \"static\"\n", "assignment = \"group\"\n")
            .replace("[checkpoint]\n", &format!("[checkpoint]\nurl = \"{url}\"\n"))
            // A join waits about half the session timeout on the test broker.
            + "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n";
        std::fs::write(&config, text).unwrap();
        Group { s, parts, config }
    }

    fn produce(&self, part: usize) {
        self.s.produce(&self.parts[part], false);
    }

    /// A group member serving its API on `port`.
    fn worker(&self, port: u16) -> Running {
        Running(
            self.s
                .featherflow()
                .env("RUST_LOG", "info")
                .env("FEATHERFLOW_API_LISTEN", format!("127.0.0.1:{port}"))
                .arg("run")
                .arg("--config")
                .arg(&self.config)
                .stderr(std::fs::File::create(self.s.dir.path().join(format!("worker-{port}.log"))).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    /// Two members: A alone first, then B joining; returns their shares.
    fn start_two(&self, port_a: u16, port_b: u16) -> (Running, Running, Vec<u64>, Vec<u64>) {
        self.produce(0);
        let a = self.worker(port_a);
        wait_owned(port_a, "owned every partition alone", |ps| ps.len() == 4);
        self.produce(1);
        let b = self.worker(port_b);
        // A cooperative rebalance moves partitions in steps: wait until the
        // two shares are settled, each non-empty, together every partition.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let (Some(of_a), Some(of_b)) = (owned(port_a), owned(port_b)) {
                let mut all: Vec<u64> = of_a.iter().chain(&of_b).copied().collect();
                all.sort();
                if !of_a.is_empty() && !of_b.is_empty() && all == [0, 1, 2, 3] {
                    return (a, b, of_a, of_b);
                }
            }
            assert!(
                Instant::now() < deadline,
                "A and B never shared the partitions: A {:?}, B {:?}",
                owned(port_a),
                owned(port_b)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop a member with SIGTERM; it must exit cleanly.
    fn stop(&self, mut w: Running, name: &str) {
        services::signal(w.0.id(), "TERM");
        let status = w.0.wait().unwrap();
        assert!(status.success(), "{name} did not stop cleanly: {status}");
    }

    /// A bounded run fires what is still open; Redis must then equal the
    /// replay (group members write `_window_end`: redis.keep-newest).
    fn finish_and_compare(&self) {
        self.finish_and_compare_with(&[], || self.s.actual())
    }

    fn finish_and_compare_with(&self, extra: &[&str], actual: impl FnOnce() -> Dump) {
        self.finish_and_compare_to(extra, self.s.reference(), actual)
    }

    fn finish_and_compare_to(&self, extra: &[&str], reference: Dump, actual: impl FnOnce() -> Dump) {
        wait_ok(
            self.s
                .featherflow()
                .args(["run", "--bounded", "--no-api", "--config"])
                .arg(&self.config)
                .args(extra)
                .spawn()
                .unwrap(),
            Duration::from_secs(120),
        );
        let mut actual = actual();
        for (key, (fields, _)) in actual.iter_mut() {
            assert!(fields.remove("_window_end").is_some(), "{key} has no _window_end");
        }
        assert_same(&reference, &actual);
    }
}

#[test]
fn a_consumer_group_shares_the_partitions_through_joins_kills_and_leaves() {
    // Checkpoints in a file:// store (a directory any engine reaches).
    let s = setup_unproduced(240_000, 4_000);
    let shared = s.dir.path().join("shared");
    let url = format!("file://{}", shared.display());
    joins_kills_and_leaves(Group::new(s, &url), &|p| {
        std::fs::read_dir(shared.join(format!("partition-{p}")))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    });
}

#[test]
fn a_consumer_group_with_checkpoints_in_s3_shares_the_partitions_through_joins_kills_and_leaves() {
    // The same with checkpoints in S3 (SeaweedFS, through the AWS_* variables).
    let server = featherflow::state::LocalS3::start();
    let mut s = setup_unproduced(240_000, 4_000);
    s.env = server.env();
    let stores: Vec<_> = (0..4).map(|p| server.store(&format!("group/partition-{p}"))).collect();
    joins_kills_and_leaves(Group::new(s, "s3://ckpt/group"), &|p| {
        use featherflow::state::CheckpointStore;
        let store = &stores[p as usize];
        let mut names: Vec<String> = store
            .list()
            .unwrap()
            .iter()
            .map(|m| format!("chk-{}.json", m.id))
            .collect();
        // A generation claimed: the first checkpoint id of generation 1 or later.
        if store
            .list()
            .unwrap()
            .iter()
            .any(|m| m.id > featherflow::state::GENERATION_IDS)
        {
            names.push("gen-".into());
        }
        names
    });
}

/// Engine A starts alone, B joins mid-stream, A is SIGKILLed (B takes its
/// partitions after the session timeout) and restarted, B leaves with
/// SIGTERM; a bounded run then fires what is still open, from a chosen
/// point. Redis ends as the replay of the whole log. `stored(p)` lists
/// what partition `p`'s store holds.
fn joins_kills_and_leaves(g: Group, stored: &dyn Fn(u32) -> Vec<String>) {
    let (port_a, port_b) = (services::free_port(), services::free_port());
    let (mut a, b, _, _) = g.start_two(port_a, port_b);
    // A dies: B gets everything once A's session times out.
    std::thread::sleep(Duration::from_millis(700));
    services::signal(a.0.id(), "KILL");
    let _ = a.0.wait();
    wait_owned(port_b, "took A's partitions after the kill", |ps| ps.len() == 4);
    let a = g.worker(port_a);
    g.produce(2);
    wait_owned(port_a, "came back with a share", |ps| !ps.is_empty());
    std::thread::sleep(Duration::from_millis(700));
    // B leaves: A gets everything at once (B hands its partitions over).
    g.stop(b, "B");
    wait_owned(port_a, "took B's partitions after it left", |ps| ps.len() == 4);
    g.stop(a, "A");
    // Every partition has checkpoints of its own in the shared store, each
    // numbered in a generation its writer claimed.
    for p in 0..4 {
        let names = stored(p);
        assert!(
            names.iter().any(|n| n.ends_with(".json")),
            "no checkpoint of partition {p}: {names:?}"
        );
        assert!(
            names.iter().any(|n| n.starts_with("gen-")),
            "no generation claimed for partition {p}: {names:?}"
        );
    }
    // `checkpoints list` reads every partition's store.
    let listed = g.s.checkpoints(&g.config);
    let mut partitions: Vec<i64> = listed
        .iter()
        .flat_map(|m| m["offsets"].as_array().unwrap().iter().map(|o| o[0].as_i64().unwrap()))
        .collect();
    partitions.sort();
    partitions.dedup();
    assert_eq!(partitions, [0, 1, 2, 3], "{listed:?}");
    // Each partition's watermark moved on its own events (a core reading
    // partition 3 alone waits for no partition 0 to 2).
    for m in &listed {
        assert!(m["watermark"].as_i64().unwrap() > i64::MIN, "no watermark in {m}");
    }
    // Finish from a chosen point: each partition's newest checkpoint taken
    // at or before the time every partition had one.
    let partition = |m: &serde_json::Value| m["offsets"][0][0].as_i64();
    let at = (0..4)
        .map(|p| {
            listed
                .iter()
                .filter(|m| partition(m) == Some(p))
                .map(|m| m["created_ms"].as_i64().unwrap())
                .min()
                .unwrap()
        })
        .max()
        .unwrap();
    g.finish_and_compare_with(&["--from-checkpoint", &format!("@{at}")], || g.s.actual());
}

#[test]
fn a_frozen_group_member_that_lost_its_partitions_moves_nothing_back() {
    // Checkpoints in S3 (SeaweedFS). A is frozen with SIGSTOP past its
    // session timeout: B restores A's partitions and reads on, more events
    // arrive, then A thaws. A's stale windows and checkpoints must change
    // nothing: Redis keeps each key's newest window (`_window_end`), and
    // A's checkpoints are numbered in an older generation than B's.
    let server = featherflow::state::LocalS3::start();
    let mut s = setup_unproduced(240_000, 4_000);
    s.env = server.env();
    let g = Group::new(s, "s3://ckpt/group");
    let (port_a, port_b) = (services::free_port(), services::free_port());
    let (a, b, of_a, _) = g.start_two(port_a, port_b);
    std::thread::sleep(Duration::from_millis(700));
    services::signal(a.0.id(), "STOP");
    wait_owned(port_b, "took the frozen A's partitions", |ps| ps.len() == 4);
    g.produce(2);
    std::thread::sleep(Duration::from_secs(2));
    services::signal(a.0.id(), "CONT");
    // A finds out it lost its partitions (its own status still lists them
    // until then), drops them without a checkpoint, and rejoins.
    let log_path = g.s.dir.path().join(format!("worker-{port_a}.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains("lost=true") {
            break;
        }
        let group_lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("kafka_group") || l.contains("run_group"))
            .collect();
        assert!(
            Instant::now() < deadline,
            "A never saw its assignment lost (it owned {of_a:?}):\n{}",
            group_lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_owned(port_a, "rejoined with a share", |ps| !ps.is_empty() && ps.len() < 4);
    std::thread::sleep(Duration::from_millis(700));
    g.stop(b, "B");
    g.stop(a, "A");
    g.finish_and_compare();
}

#[test]
fn a_consumer_group_writes_a_redis_cluster_through_a_failover() {
    // Two group members write a Redis Cluster (3 masters, a replica each);
    // a master fails over while both write, then one member leaves.
    let cluster = services::RedisCluster::start(3, 1);
    let s = setup_unproduced(240_000, 4_000);
    let shared = s.dir.path().join("shared");
    let g = Group::new(s, &format!("file://{}", shared.display()));
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let text = std::fs::read_to_string(&g.config).unwrap().replace(
        "[redis]\n",
        &format!("[redis]\ncluster-nodes = [{}]\n", nodes.join(", ")),
    );
    std::fs::write(&g.config, text).unwrap();
    let (port_a, port_b) = (services::free_port(), services::free_port());
    let (a, b, _, _) = g.start_two(port_a, port_b);
    g.produce(2);
    let before = cluster.masters();
    cluster.fail_over(before[0]);
    assert_ne!(cluster.masters(), before, "the failover changed no master");
    std::thread::sleep(Duration::from_millis(700));
    g.stop(b, "B");
    wait_owned(port_a, "took B's partitions after it left", |ps| ps.len() == 4);
    g.stop(a, "A");
    g.finish_and_compare_with(&[], || cluster.dump());
}

/// A group of one owning the 4 partitions of `s`'s topic (checkpoints in a
/// shared directory), the log's first part produced: the group, its member,
/// the member's API port and the hash of the plugin serving user_features.
fn group_of_one(s: Setup) -> (Group, Running, u16, String) {
    let shared = s.dir.path().join("shared");
    let g = Group::new(s, &format!("file://{}", shared.display()));
    let port = services::free_port();
    g.produce(0);
    let a = g.worker(port);
    wait_owned(port, "owned every partition", |ps| ps.len() == 4);
    let v1_hash = serving_hash(port, "user_features");
    (g, a, port, v1_hash)
}

#[test]
fn a_deploy_with_a_reset_resets_every_partition_of_a_group_member() {
    // One watcher decides for all 4 engine cores: the x.reset marker, which
    // the deploy consumes, applies to every partition (with a watcher per
    // core, only the first to scan saw it; the others kept their states).
    let (g, a, port, v1_hash) = group_of_one(setup_unproduced(60_000, 2_000));
    std::fs::write(g.s.plugins.path().join("user-activity.reset"), b"").unwrap();
    deploy_v2(g.s.plugins.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while serving_hash(port, "user_features") == v1_hash {
        assert!(Instant::now() < deadline, "the deploy was not applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every core applies it as a reset: the history (written once per
    // distinct outcome) holds one record for the view, a reset.
    std::thread::sleep(Duration::from_secs(2));
    let (history, records) = history_of(&g.config, "user_features");
    assert_eq!(records.len(), 1, "{history}");
    assert!(records[0].contains("\"reset\""), "{history}");
    assert!(!g.s.plugins.path().join("user-activity.reset").exists());
    g.stop(a, "A");
}

#[test]
fn a_hot_swap_reaches_every_partition_of_a_group_member() {
    // A group of one owns 4 partitions, each in its own engine core: a
    // deploy must reach every one, with its states kept. Every user's last
    // windows fire after the swap, so Redis ends as a replay with v2.
    let s = setup_unproduced(240_000, 2_000);
    let reference_v2 = s.reference_with_v2();
    let (g, a, _, v1_hash) = group_of_one(s);
    deploy_v2(g.s.plugins.path());
    // Every partition's newest checkpoint is taken by v2.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = g.s.checkpoints(&g.config);
        let newest: std::collections::BTreeMap<i64, String> = listed
            .iter()
            // (A checkpoint taken before the partition's first record has no offset.)
            .filter_map(|m| Some((m["offsets"][0][0].as_i64()?, plugin_hash(m, "user_features"))))
            .collect();
        if newest.len() == 4 && newest.values().all(|h| *h != v1_hash) {
            break;
        }
        assert!(Instant::now() < deadline, "not every partition swapped: {newest:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The history has the swap once, not once per partition.
    let (history, swaps) = history_of(&g.config, "user_features");
    assert_eq!(swaps.len(), 1, "{history}");
    assert!(
        swaps[0].contains("\"swapped\"") || swaps[0].contains("\"migrated\""),
        "{history}"
    );
    g.produce(1);
    g.produce(2);
    std::thread::sleep(Duration::from_secs(1));
    g.stop(a, "A");
    g.finish_and_compare_to(&[], reference_v2, || g.s.actual());
}
