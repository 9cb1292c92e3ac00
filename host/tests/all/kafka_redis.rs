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
}

/// Services, a generated event log produced to a 4-partition topic, and
/// the reference: `featherflow replay` of the same log into Redis db 1.
fn setup(events: u64, users: u64, exact: bool) -> Setup {
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
                "--rate",
                "200",
                "--disorder-seconds",
                "5",
                "--seed",
                "11",
                "--out",
            ])
            .arg(&log),
    );
    let mut produce = featherflow();
    produce
        .args([
            "produce",
            "--brokers",
            &format!("127.0.0.1:{}", broker.port),
            "--from-file",
        ])
        .arg(&log);
    if exact {
        produce.arg("--exact");
    }
    run_ok(&mut produce);
    run_ok(
        featherflow()
            .args(["replay", "--events"])
            .arg(&log)
            .arg("--plugins")
            .arg(plugins.path())
            .args([
                "--redis",
                &format!("redis://127.0.0.1:{}/1", redis.port),
                "--dead-letter",
                "",
            ]),
    );
    Setup {
        api_port: services::free_port(),
        redis,
        broker,
        dir,
        plugins,
        events: log,
    }
}

impl Setup {
    fn config(&self, interval: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("featherflow.toml");
        std::fs::write(
            &path,
            format!(
                "[kafka]\nbrokers = \"127.0.0.1:{}\"\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n[checkpoint]\ndir = \"{}\"\ninterval = \"{interval}\"\nretain = 3\n[plugins]\ndir = \"{}\"\n[output]\ndead-letter = \"\"\n[api]\nlisten = \"127.0.0.1:{}\"\n",
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

    fn run(&self, config: &Path, extra: &[&str]) -> Child {
        featherflow()
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

    fn actual(&self) -> Dump {
        services::dump(self.redis.port, 0)
    }

    fn checkpoint_ids(&self, config: &Path) -> Vec<u64> {
        let (out, _) = run_ok(
            featherflow()
                .args(["checkpoints", "list", "--json", "--config"])
                .arg(config),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    }
}

fn wait_ok(mut child: Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "featherflow run failed: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "featherflow run did not finish in {limit:?}");
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

#[test]
fn sigkill_at_random_moments_then_restart_is_exact() {
    let s = setup(300_000, 5_000, false);
    let config = s.config("150ms");
    let mut seed = 0x9e37_79b9_u64;
    let mut interrupted = 0;
    for round in 0..4 {
        let child = s.run(&config, &[]);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let after = Duration::from_millis(300 + (seed >> 33) % 1200);
        std::thread::sleep(after);
        services::signal(child.id(), "KILL");
        let mut child = child;
        let _ = child.wait();
        // Did the kill land before the stream was fully read?
        let (out, _) = run_ok(
            featherflow()
                .args(["checkpoints", "list", "--json", "--config"])
                .arg(&config),
        );
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        let read: i64 = list.as_array().unwrap().last().map_or(0, |m| {
            m["offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o[1].as_i64().unwrap())
                .sum()
        });
        if read < 300_000 {
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
            let plugins = http_get(s.api_port, "/api/plugins");
            assert!(
                plugins.contains("user_features") && plugins.contains("session_features"),
                "{plugins}"
            );
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
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("API reachable");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}
