//! A local S3-compatible server for the tests of S3 checkpoints (unit and
//! end to end): not used by the engine itself.

/// An S3-compatible object store for tests of `checkpoint.url = "s3://…"`:
/// SeaweedFS (`weed mini`, installed by `scripts/deps.sh` as
/// `.tools/weed`, or `FEATHERFLOW_WEED`) on loopback ports, with credentials
/// required and one bucket, `ckpt`; stopped and its data removed on drop.
pub struct LocalS3 {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl LocalS3 {
    const KEY: &'static str = "featherflow-test";
    const SECRET: &'static str = "featherflow-test-secret";

    pub fn start() -> Self {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let bin = std::env::var_os("FEATHERFLOW_WEED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/weed"));
        assert!(bin.exists(), "{} is missing: run scripts/deps.sh", bin.display());
        // A port can still be taken between choosing it and the server
        // binding it (by another test's server): the server then exits, and
        // is started again on other ports.
        let mut last_log = String::new();
        for _ in 0..5 {
            let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("featherflow-s3-{}-{n}", std::process::id()));
            match Self::try_start(&bin, dir) {
                Ok(server) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("SeaweedFS exited at start 5 times; last log: {last_log}")
    }

    /// Start the server in `dir` and wait until it serves the bucket; `Err`
    /// with its log if it exited first.
    fn try_start(bin: &std::path::Path, dir: std::path::PathBuf) -> Result<Self, String> {
        use std::process::{Command, Stdio};
        std::fs::create_dir_all(&dir).unwrap();
        // Every port explicit: the defaults (and port + 10000 for gRPC)
        // collide between servers, or pass 65535.
        let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
        let log = std::fs::File::create(dir.join("weed.log")).unwrap();
        let child = Command::new(bin)
            .arg("mini")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket=ckpt"])
            .args(["-master.telemetry=false", "-webdav=false", "-admin.ui=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.port={}", ports[0]))
            .arg(format!("-s3.port.grpc={}", ports[1]))
            .arg(format!("-master.port={}", ports[2]))
            .arg(format!("-master.port.grpc={}", ports[3]))
            .arg(format!("-volume.port={}", ports[4]))
            .arg(format!("-volume.port.grpc={}", ports[5]))
            .arg(format!("-filer.port={}", ports[6]))
            .arg(format!("-filer.port.grpc={}", ports[7]))
            // Credentials on the server's side make it check signatures.
            .env("AWS_ACCESS_KEY_ID", Self::KEY)
            .env("AWS_SECRET_ACCESS_KEY", Self::SECRET)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = LocalS3 {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
        };
        let log = |s: &LocalS3| std::fs::read_to_string(s.dir.join("weed.log")).unwrap_or_default();
        // Ready when the bucket answers a signed list.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match super::S3Store::connect("s3://ckpt/ready", &server.env()) {
                Ok(_) => return Ok(server),
                Err(_) if server.child.try_wait().is_ok_and(|s| s.is_some()) => return Err(log(&server)),
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!(
                        "SeaweedFS did not serve the bucket within 60 s: {e}; log: {}",
                        log(&server)
                    )
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
    }

    /// The `AWS_*` variables that reach this server (also settings for
    /// [`super::S3Store::connect`]).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), Self::KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), Self::SECRET.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// The store under `prefix` of the bucket.
    pub fn store(&self, prefix: &str) -> super::S3Store {
        super::S3Store::connect(&format!("s3://ckpt/{prefix}"), &self.env()).unwrap()
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that is free now, below Linux's ephemeral range
/// (32768–60999 by default), so that no outgoing connection (the tests'
/// clients of Redis and the broker) takes it before the server binds it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Ports taken in turn, from a place that differs between processes.
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let start = u64::from(std::process::id()) * 997;
    loop {
        let port = 20_000 + ((start + DRAWN.fetch_add(1, Ordering::Relaxed)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
