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
    services::signal(child.0.id(), "TERM");
    let _ = child.0.wait();
    let (history, _) = run_ok(featherflow().args(["plugin", "history", "--config"]).arg(&config));
    assert!(
        history.contains("swapped") && history.contains("user_features@2.0.0"),
        "{history}"
    );
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
