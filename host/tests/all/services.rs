//! Real services for the end-to-end tests: a `redis-server` and a tansu
//! Kafka-protocol broker, started on free loopback ports and stopped on drop.
//! `scripts/deps.sh` installs both; a missing one fails the test with that
//! instruction, it never skips it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Service {
    pub child: Child,
    pub port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// SIGSTOP / SIGCONT: an outage that keeps the data.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn redis() -> Service {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is not installed: run scripts/deps.sh");
    wait_for_port(port, "redis-server");
    Service { child, port }
}

pub fn tansu_bin() -> PathBuf {
    let p = std::env::var_os("FEATHERFLOW_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join(".tools/tansu"));
    assert!(p.exists(), "{} is missing: run scripts/deps.sh", p.display());
    p
}

/// A broker with the `ecommerce-events` topic of `partitions` partitions.
pub fn tansu(partitions: u32) -> Service {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    wait_for_port(port, "tansu");
    let ok = Command::new(tansu_bin())
        .args([
            "topic",
            "create",
            "ecommerce-events",
            "--partitions",
            &partitions.to_string(),
            "--broker",
            &url,
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "tansu topic create");
    Service { child, port }
}

/// Every key of a Redis database: its hash fields, and whether it has a TTL.
pub type Dump = BTreeMap<String, (BTreeMap<String, String>, bool)>;

pub fn dump(port: u16, db: u8) -> Dump {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/{db}")).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let h: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
            let ttl: i64 = redis::cmd("TTL").arg(&k).query(&mut c).unwrap();
            (k, (h, ttl > 0))
        })
        .collect()
}

/// A short description of how two dumps differ.
pub fn diff(a: &Dump, b: &Dump) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in first: {k} {v:?}")),
            Some(w) if w != v => out.push(format!("differs: {k}: {v:?} vs {w:?}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(format!("only in second: {k} {v:?}"));
        }
    }
    let n = out.len();
    out.truncate(10);
    format!("{n} differences:\n{}", out.join("\n"))
}
