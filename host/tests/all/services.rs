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
    redis_with(&[])
}

/// A redis-server with more options (`["--requirepass", "pw"]`).
pub fn redis_with(options: &[&str]) -> Service {
    start_redis(free_port(), options)
}

/// A redis-server on `port`.
pub fn redis_on(port: u16) -> Service {
    start_redis(port, &[])
}

fn start_redis(port: u16, options: &[&str]) -> Service {
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
        .args(options)
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

/// `DUMP` of every key of `db`, uncompressed (as `redis.write = "restore"`
/// writes them).
pub fn object_dumps(port: u16, db: u8) -> std::collections::BTreeMap<String, Vec<u8>> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/{db}")).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdbcompression")
        .arg("no")
        .query(&mut c)
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let d: Vec<u8> = redis::cmd("DUMP").arg(&k).query(&mut c).unwrap();
            (k, d)
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

/// A Redis Cluster on loopback: `masters` masters with `replicas` replicas
/// each, slots spread by `redis-cli --cluster create`; stopped on drop.
pub struct RedisCluster {
    pub nodes: Vec<Service>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start(masters: usize, replicas: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Service> = (0..masters * (1 + replicas))
            .map(|i| {
                let port = free_port();
                let child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                    .arg("--cluster-config-file")
                    .arg(dir.path().join(format!("nodes-{i}.conf")))
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("redis-server is not installed: run scripts/deps.sh");
                wait_for_port(port, "redis-server (cluster)");
                Service { child, port }
            })
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster
            .nodes
            .iter()
            .all(|n| cluster.info(n.port).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// `redis://` URLs of every node (the seed list).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn info(&self, port: u16) -> String {
        self.cli(port, &["cluster", "info"])
    }

    /// Ports of the masters, as the cluster sees them now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| self.cli(n.port, &["role"]).starts_with("master"))
            .map(|n| n.port)
            .collect()
    }

    /// A planned failover: a replica of the master on `port` takes over
    /// (`CLUSTER FAILOVER`: the master stops taking writes, the replica
    /// catches up, then they swap). Returns once the replica is a master.
    pub fn fail_over(&self, port: u16) {
        let replica = self
            .nodes
            .iter()
            .find(|n| {
                let role = self.cli(n.port, &["role"]);
                role.starts_with("slave") && role.lines().nth(2) == Some(&port.to_string())
            })
            .unwrap_or_else(|| panic!("no replica of the master on {port}"))
            .port;
        assert!(self.cli(replica, &["cluster", "failover"]).contains("OK"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.cli(replica, &["role"]).starts_with("master") {
            assert!(Instant::now() < deadline, "the replica on {replica} did not take over");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every key on every master, as [`dump`] gives one server's.
    pub fn dump(&self) -> Dump {
        let mut all = Dump::new();
        for port in self.masters() {
            all.extend(dump(port, 0));
        }
        all
    }
}
