//! The Redis sink: the online feature store (docs/semantics.md, "Redis layout").
//!
//! The engine thread hands batches of records to a writer thread through a
//! bounded queue; when Redis is slow or gone the queue fills and the engine
//! blocks — backpressure instead of dropping or buffering without bound.
//! Each key gets its fields and its TTL atomically, so no reader ever sees
//! a key without its TTL: `HSET` + `EXPIRE` per key inside one
//! `MULTI`/`EXEC` per batch; with `redis.write = "restore"`, one `RESTORE`
//! of the whole hash with its TTL per key ([`super::dump`]: ~40 % less of
//! Redis's CPU per key, and the key holds only the record's fields); or,
//! with `redis.keep-newest`, one call per
//! [`SCRIPT_KEYS`] keys of a small Lua script ([`WRITE_MANY_SCRIPT`], by
//! `EVALSHA`) that also keeps
//! the window's end in `_window_end` and writes only if the key does not
//! hold a newer window already, so that no key goes back in time even when
//! another engine writes the same keys late. (The script costs Redis about
//! twice the CPU per key; one engine alone does not need it: its replays
//! after a restore end where an uninterrupted run ends.) The writer encodes
//! RESP itself into one reused buffer, a pipeline per batch; up to
//! [`IN_FLIGHT`] batches are sent before the first one's replies are read,
//! so Redis is never idle waiting for the writer. On a failure the writer
//! reconnects with backoff and sends every unacknowledged batch again until
//! Redis takes them (writes are deterministic upserts, so a batch applied
//! twice changes nothing).
//!
//! [`RedisSink::barrier`] is how checkpoints keep their promise: it
//! completes once every record handed over before it is acknowledged by
//! Redis.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::wire::{Connect, Reply, Wire};
use super::{Barrier, FeatureRecord, Sink, SinkError};
use crate::outage::Outage;
use crate::plugin::declaration::Field;

/// Counters of the Redis writer, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct RedisStats {
    pub keys_written: AtomicU64,
    /// Writes Redis skipped because the key held a newer window.
    pub older_windows_skipped: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub write_nanos: AtomicU64,
    pub connected: AtomicBool,
    /// Whether the writer has tried Redis yet (a write or an idle ping):
    /// until then `connected` says nothing.
    pub tried: AtomicBool,
    /// Batches handed over and not yet acknowledged.
    pub queued: AtomicU64,
    /// Write latency histogram: counts of batches at or under each bound.
    pub latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len()],
    /// Fire-to-acknowledged latency of keys, in µs (the first few million).
    pub fire_to_ack_us: std::sync::Mutex<Vec<u32>>,
    /// Freshness per view (updated once per acknowledged batch).
    pub views: std::sync::Mutex<std::collections::BTreeMap<String, ViewFreshness>>,
}

/// Upper bounds (ms) of the fire-to-Redis histogram per view.
pub const FIRE_TO_ACK_BOUNDS_MS: [f64; 10] = [
    10.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    f64::INFINITY,
];

/// How fresh one view's features in Redis are.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ViewFreshness {
    /// End (exclusive, ms since the epoch) of the newest window written.
    pub newest_window_end: i64,
    /// When Redis acknowledged the last write of this view (wall ms).
    pub last_write_ms: i64,
    /// Keys written.
    pub keys: u64,
    /// Fire-to-acknowledged latency: keys at or under each bound of
    /// [`FIRE_TO_ACK_BOUNDS_MS`] (not cumulative).
    pub fire_to_ack_buckets: [u64; FIRE_TO_ACK_BOUNDS_MS.len()],
    /// Sum of the fire-to-acknowledged latencies, in seconds.
    pub fire_to_ack_sum_s: f64,
}

impl RedisStats {
    /// (p50, p99, max) of the fire-to-acknowledged latency, in ms.
    pub fn fire_to_ack_percentiles(&self) -> Option<(f64, f64, f64)> {
        let mut v = self.fire_to_ack_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        Some((at(0.5), at(0.99), at(1.0)))
    }

    /// Count an acknowledged batch into the per-view freshness and the
    /// latency samples: one map lookup per run of records of one view (a
    /// batch is one view or a few), one clock difference per record.
    fn acknowledged(&self, records: &[FeatureRecord], now: Instant, now_ms: i64) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        let mut samples = self.fire_to_ack_us.lock().unwrap_or_else(|e| e.into_inner());
        let sample = samples.len() < 4_000_000;
        for run in records.chunk_by(|a, b| a.view == b.view) {
            let view = &*run[0].view;
            if !views.contains_key(view) {
                views.insert(view.to_string(), ViewFreshness::default());
            }
            let f = views.get_mut(view).expect("inserted above");
            f.last_write_ms = now_ms;
            f.keys += run.len() as u64;
            let mut sum_us = 0;
            for r in run {
                f.newest_window_end = f.newest_window_end.max(r.window_end);
                let us = now.duration_since(r.fired_at).as_micros().min(u32::MAX as u128) as u32;
                let ms = f64::from(us) / 1000.0;
                let b = FIRE_TO_ACK_BOUNDS_MS
                    .iter()
                    .position(|&u| ms <= u)
                    .unwrap_or(FIRE_TO_ACK_BOUNDS_MS.len() - 1);
                f.fire_to_ack_buckets[b] += 1;
                sum_us += u64::from(us);
                if sample {
                    samples.push(us);
                }
            }
            f.fire_to_ack_sum_s += sum_us as f64 / 1e6;
        }
    }
}

/// Upper bounds (ms) of the write-latency histogram buckets.
pub const LATENCY_BOUNDS_MS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 1000.0, f64::INFINITY];

pub(super) enum Msg {
    Records(Vec<FeatureRecord>),
    Barrier(mpsc::Sender<()>),
}

/// Cheap to clone: clones share the writer (the job keeps one for barriers).
#[derive(Clone)]
pub struct RedisSink {
    url: String,
    tx: SyncSender<Msg>,
    /// Records per message (and per pipeline).
    batch: usize,
    pub stats: Arc<RedisStats>,
}

/// How the writer to a single Redis writes a key (fields and TTL
/// atomically in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `HSET` + `EXPIRE` per key, a `MULTI`/`EXEC` per batch.
    Hset,
    /// `RESTORE key ttl payload REPLACE` per key (`redis.write = "restore"`).
    Restore,
    /// [`WRITE_MANY_SCRIPT`] (`redis.keep-newest`).
    KeepNewest,
    /// [`RESTORE_MANY_SCRIPT`] (both).
    KeepNewestRestore,
}

impl Form {
    /// The form `redis.write` and `redis.keep-newest` ask for.
    pub fn of(c: &crate::config::RedisConfig) -> Form {
        match (c.keep_newest, c.write) {
            (true, crate::config::RedisWrite::Restore) => Form::KeepNewestRestore,
            (true, crate::config::RedisWrite::Hset) => Form::KeepNewest,
            (false, crate::config::RedisWrite::Restore) => Form::Restore,
            (false, crate::config::RedisWrite::Hset) => Form::Hset,
        }
    }

    fn restores(self) -> bool {
        matches!(self, Form::Restore | Form::KeepNewestRestore)
    }
}

/// Why this server cannot take [`Form::Restore`]'s writes, if it cannot:
/// older than 7.0 (no listpacks), or `RESTORE` not allowed to this user
/// (ACL). The probe `RESTORE`s an invalid payload: Redis checks the ACL
/// first, and if allowed refuses the payload, so nothing is written.
fn cannot_restore(c: &mut Wire) -> Option<String> {
    if let Ok(Reply::Bulk(info)) = c.command(&[b"INFO", b"server"]) {
        let info = String::from_utf8_lossy(&info);
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(str::trim);
        let major = version.and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if let (Some(v), Some(m)) = (version, major)
            && m < 7
        {
            return Some(format!(
                "needs Redis 7.0 or later (hashes go as listpacks); this server is {v}"
            ));
        }
    }
    match c.command(&[b"RESTORE", b"featherflow:restore-probe", b"0", b"-", b"REPLACE"]) {
        Ok(Reply::Error(e)) if e.starts_with("NOPERM") => Some(format!(
            "this Redis user may not run RESTORE ({e}): allow it (ACL `+restore`)"
        )),
        _ => None,
    }
}

impl RedisSink {
    /// Start the writer for `url`. The URL is checked now; the connection
    /// is made (and remade) by the writer.
    /// `form` is how keys are written (see [`Form`]).
    pub fn start(url: &str, batch: usize, form: Form) -> Result<Self, SinkError> {
        let client = redis::Client::open(url).map_err(|e| SinkError::Store {
            sink: redact(url),
            // redis-rs's message may quote parts of the URL.
            reason: scrub(&format!("invalid redis.url: {e}"), url),
            retryable: false,
        })?;
        // A server that answers but refuses us is a configuration error, to
        // be told now; one that does not answer is an outage: the writer
        // holds the stream until it is back.
        match Wire::probe(&client) {
            Ok(mut c) if form.restores() => {
                if let Some(why) = cannot_restore(&mut c) {
                    return Err(SinkError::Store {
                        sink: redact(url),
                        reason: format!("redis.write = \"restore\": {why}; or use redis.write = \"hset\""),
                        retryable: false,
                    });
                }
            }
            Err(Connect::Refused(e)) => {
                return Err(SinkError::Store {
                    sink: redact(url),
                    reason: scrub(
                        &format!(
                            "Redis refuses the connection redis.url describes (check its password and database): {e}"
                        ),
                        url,
                    ),
                    retryable: false,
                });
            }
            // The writer reports it, as any outage.
            Err(Connect::Unreachable(_)) | Ok(_) => {}
        }
        // 64 batches of up to redis.batch records: bounded memory.
        let (tx, rx) = sync_channel(64);
        let stats = Arc::new(RedisStats::default());
        let writer_stats = stats.clone();
        let name = redact(url);
        let writer_name = name.clone();
        Self::spawn(name, batch, tx, stats, move || {
            writer(client, rx, batch.max(1), form, writer_stats, writer_name)
        })
    }

    /// Start the writer for a Redis Cluster reached through `nodes` (seed
    /// nodes, `redis://` URLs): each key is written by [`WRITE_SCRIPT`]
    /// (atomic in its own slot whatever the batch), goes to the master of its slot,
    /// redirections (`MOVED`, `ASK`) are followed, and a batch that fails
    /// (a master failing over) is sent again until the cluster takes it.
    /// With `restore`, by [`RESTORE_SCRIPT`] (`redis.write = "restore"`).
    pub fn start_cluster(nodes: &[String], batch: usize, restore: bool) -> Result<Self, SinkError> {
        let name = format!(
            "Redis Cluster {}",
            nodes.iter().map(|n| redact(n)).collect::<Vec<_>>().join(",")
        );
        let client = redis::cluster::ClusterClient::builder(nodes.to_vec())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .retries(3)
            .build()
            .map_err(|e| SinkError::Store {
                sink: name.clone(),
                reason: nodes
                    .iter()
                    .fold(format!("invalid redis.cluster-nodes: {e}"), |m, n| scrub(&m, n)),
                retryable: false,
            })?;
        let (tx, rx) = sync_channel(64);
        let stats = Arc::new(RedisStats::default());
        let writer_stats = stats.clone();
        let writer_name = name.clone();
        Self::spawn(name, batch, tx, stats, move || {
            super::redis_cluster::writer(client, rx, writer_stats, writer_name, restore)
        })
    }

    /// The writer `redis.cluster-nodes` or else `redis.url` names.
    pub fn from_config(c: &crate::config::RedisConfig) -> Result<Self, SinkError> {
        if c.cluster_nodes.is_empty() {
            Self::start(&c.url, c.batch, Form::of(c))
        } else {
            Self::start_cluster(&c.cluster_nodes, c.batch, c.write == crate::config::RedisWrite::Restore)
        }
    }

    fn spawn(
        name: String,
        batch: usize,
        tx: SyncSender<Msg>,
        stats: Arc<RedisStats>,
        writer: impl FnOnce() + Send + 'static,
    ) -> Result<Self, SinkError> {
        std::thread::Builder::new()
            .name("redis-writer".into())
            .spawn(writer)
            .map_err(|e| SinkError::Store {
                sink: name.clone(),
                reason: format!("cannot start the writer thread: {e}"),
                retryable: false,
            })?;
        Ok(Self {
            url: name,
            tx,
            batch: batch.max(1),
            stats,
        })
    }

    fn send(&self, records: Vec<FeatureRecord>) -> Result<(), SinkError> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Msg::Records(records)).map_err(|_| SinkError::Store {
            sink: self.url.clone(),
            reason: "the writer thread stopped".into(),
            retryable: false,
        })
    }

    /// Completes once everything written before is acknowledged by Redis.
    pub fn barrier(&self) -> Barrier {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Barrier(tx)).is_err() {
            tracing::error!(redis = %self.url, "the Redis writer is gone");
        }
        Barrier::pending(self.url.clone(), rx)
    }
}

impl Sink for RedisSink {
    fn barrier(&mut self) -> Barrier {
        RedisSink::barrier(self)
    }

    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        for chunk in records.chunks(self.batch) {
            self.send(chunk.to_vec())?;
        }
        Ok(())
    }

    /// Split into messages of `redis.batch` records, so that the bounded
    /// queue bounds memory whatever one firing produces (a million windows
    /// fire together every slide with a million keys).
    fn write_owned(&mut self, records: Vec<FeatureRecord>) -> Result<(), SinkError> {
        if records.len() <= self.batch {
            return self.send(records);
        }
        let mut records = records.into_iter();
        loop {
            let chunk: Vec<FeatureRecord> = records.by_ref().take(self.batch).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            self.send(chunk)?;
        }
    }
}

/// The URL without its password, for logs and errors:
/// [`crate::config::redact_url`] (user info and `pass` query values
/// masked). A Redis URL is only ever printed through it (the API and the
/// metrics show none).
pub fn redact(url: &str) -> String {
    crate::config::redact_url(url)
}

/// `text` (a message of redis-rs about `url`) with the URL redacted and
/// every secret of it masked, should the message quote one.
fn scrub(text: &str, url: &str) -> String {
    let mut out = if url.is_empty() {
        text.to_string()
    } else {
        text.replace(url, &redact(url))
    };
    for secret in crate::config::url_secrets(url) {
        out = out.replace(&secret, "***");
    }
    out
}

/// Writes one record: `KEYS[1]` the key, `ARGV[1]` the window's end (ms),
/// `ARGV[2]` the TTL in seconds (0: none), then field, value, ... Skips
/// the write (returns 0) when the key holds a window that ends later; an
/// equal end is written again (a replay of the same window).
pub const WRITE_SCRIPT: &str = r#"-- featherflow: one window's features, never over a newer window's
local held = tonumber(redis.call('HGET', KEYS[1], '_window_end'))
if held and held > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], '_window_end', ARGV[1], unpack(ARGV, 3))
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"#;

/// [`WRITE_SCRIPT`] with `redis.write = "restore"`: `ARGV[1]` the window's
/// end (ms), `ARGV[2]` the TTL in ms (0: none), `ARGV[3]` the hash's
/// `RESTORE` payload ([`super::dump`], `_window_end` its first field).
pub const RESTORE_SCRIPT: &str = r#"-- featherflow: one window's features, never over a newer window's
local held = tonumber(redis.call('HGET', KEYS[1], '_window_end'))
if held and held > tonumber(ARGV[1]) then return 0 end
redis.call('RESTORE', KEYS[1], ARGV[2], ARGV[3], 'REPLACE')
return 1
"#;

/// [`RESTORE_SCRIPT`] for many keys in one call: per key in turn, the
/// window's end, the TTL in ms and the payload. Returns how many it skipped.
/// Redis 7.0 alone, 100 k keys of 6 fields, 64 per call: 4.9–6.4 µs of
/// Redis CPU per key, against 6.1–9.1 for [`WRITE_MANY_SCRIPT`].
pub const RESTORE_MANY_SCRIPT: &str = r#"-- featherflow: windows' features, each never over a newer window's
local skipped, a = 0, 1
for _, key in ipairs(KEYS) do
  local held = tonumber(redis.call('HGET', key, '_window_end'))
  if held and held > tonumber(ARGV[a]) then
    skipped = skipped + 1
  else
    redis.call('RESTORE', key, ARGV[a + 1], ARGV[a + 2], 'REPLACE')
  end
  a = a + 3
end
return skipped
"#;

/// [`WRITE_SCRIPT`] for many keys in one call (`redis.keep-newest` on one
/// server): `KEYS` the keys; `ARGV`, per key in turn, the window's end
/// (ms), the TTL in seconds (0: none), the number of fields `n`, then `n`
/// field, value pairs. Returns how many keys it skipped because they held
/// a window that ends later. Against one call per key it sends a quarter
/// fewer bytes and gets one reply per call; Redis's CPU per key drops a
/// little (the script's `HGET`, `HSET` and `EXPIRE` per key are most of it).
pub const WRITE_MANY_SCRIPT: &str = r#"-- featherflow: windows' features, each never over a newer window's
local skipped, a = 0, 1
for _, key in ipairs(KEYS) do
  local ttl, n = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local held = tonumber(redis.call('HGET', key, '_window_end'))
  if held and held > tonumber(ARGV[a]) then
    skipped = skipped + 1
  else
    redis.call('HSET', key, '_window_end', ARGV[a], unpack(ARGV, a + 3, a + 2 + 2 * n))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
  a = a + 3 + 2 * n
end
return skipped
"#;

/// Keys per call of [`WRITE_MANY_SCRIPT`]: few enough that one call holds
/// Redis for well under a millisecond.
pub const SCRIPT_KEYS: usize = 64;

/// Batches the writer sends before it reads the first one's replies: Redis
/// executes one while the writer encodes the next and parses the last.
const IN_FLIGHT: usize = 4;

/// With nothing to write for this long, the writer pings Redis, so that an
/// outage is reported (log, metrics, /health/ready) before a write needs it.
pub(super) const IDLE_PING: Duration = Duration::from_secs(5);

pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Batches sent and not yet acknowledged, oldest first, with the barriers
/// that complete once they are.
struct Batch {
    records: Vec<FeatureRecord>,
    /// Replies it gets (one per record).
    replies: usize,
    /// Barriers that were queued right after it.
    barriers: Vec<mpsc::Sender<()>>,
    /// Batches handed over that it stands for (more than 1 once merged
    /// for a resend).
    parts: u64,
}

struct Writer {
    client: redis::Client,
    conn: Option<Wire>,
    stats: Arc<RedisStats>,
    name: String,
    /// Redis down is logged once, then at most every 10 s, then once back.
    outage: Outage,
    /// The encoded commands of the batch being sent (reused).
    buf: Vec<u8>,
    in_flight: std::collections::VecDeque<(Batch, Instant)>,
    /// When Redis last answered a write or a ping (or the last ping failed).
    last_answer: Instant,
    /// Wait before the next reconnect: doubles up to 2 s while Redis
    /// fails, back to 50 ms once it answers.
    backoff: Duration,
    /// Redis's id of the current connection (`CLIENT ID`), if it told.
    client_id: Option<i64>,
    /// How keys are written.
    form: Form,
    /// The SHA-1 of [`WRITE_MANY_SCRIPT`], as `SCRIPT LOAD` on the current
    /// connection answered (loaded again on every connection: a restarted
    /// or failed-over server has an empty script cache).
    script_sha: String,
    /// Connections given up on after a failure whose input Redis may still
    /// hold (a stopped or slow server): killed on the next connection
    /// before anything is sent again, so that their stale batches cannot
    /// run after newer ones.
    stale_clients: Vec<i64>,
}

fn writer(client: redis::Client, rx: Receiver<Msg>, batch: usize, form: Form, stats: Arc<RedisStats>, name: String) {
    let mut w = Writer {
        client,
        conn: None,
        stats,
        name,
        outage: Outage::new("redis"),
        buf: Vec::with_capacity(256 << 10),
        in_flight: std::collections::VecDeque::with_capacity(IN_FLIGHT),
        last_answer: Instant::now(),
        backoff: FIRST_BACKOFF,
        client_id: None,
        form,
        script_sha: String::new(),
        stale_clients: Vec::new(),
    };
    loop {
        // Wait only when nothing is in flight: else take what is queued and
        // acknowledge the oldest batch meanwhile.
        let msg = if w.in_flight.is_empty() {
            // Barriers come without writes: the clock is Redis's last answer.
            let Some(wait) = IDLE_PING.checked_sub(w.last_answer.elapsed()) else {
                w.ping();
                continue;
            };
            match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::TryRecvError::Empty) => {
                    w.receive_oldest();
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    while !w.in_flight.is_empty() {
                        w.receive_oldest();
                    }
                    return;
                }
            }
        };
        match msg {
            Msg::Barrier(done) => match w.in_flight.back_mut() {
                Some((last, _)) => last.barriers.push(done),
                None => {
                    let _ = done.send(());
                }
            },
            Msg::Records(records) => {
                let mut records = records;
                while records.len() > batch {
                    // One more batch than was handed over.
                    w.stats.queued.fetch_add(1, Ordering::Relaxed);
                    let rest = records.split_off(batch);
                    w.send(records);
                    records = rest;
                }
                w.send(records);
            }
        }
    }
}

impl Writer {
    /// Send one batch (at most `redis.batch` records) as one pipeline,
    /// first making room (at most [`IN_FLIGHT`] batches unacknowledged).
    fn send(&mut self, records: Vec<FeatureRecord>) {
        if records.is_empty() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.receive_oldest();
        }
        let mut batch = Batch {
            replies: 0,
            records,
            barriers: Vec::new(),
            parts: 1,
        };
        let sent = match self.connected() {
            true => {
                self.buf.clear();
                let commands = Commands::of(self.form, &self.script_sha);
                batch.replies = encode_batch(&batch.records, commands, &mut self.buf);
                self.conn.as_mut().expect("connected").send(&self.buf)
            }
            false => Err(String::new()),
        };
        self.in_flight.push_back((batch, Instant::now()));
        if let Err(e) = sent {
            self.failed(&e);
        }
    }

    /// Read the replies of the oldest batch in flight and acknowledge it;
    /// on any failure, reconnect and send every batch in flight again (the
    /// writes are upserts) until they are all acknowledged.
    fn receive_oldest(&mut self) {
        let Some((batch, _)) = self.in_flight.front() else {
            return;
        };
        let replies = batch.replies;
        let read = match self.conn.as_mut() {
            Some(c) => {
                c.expect(reply_bytes_at_least(replies, self.form));
                let restores = self.form.restores();
                read_replies(c, replies).map_err(|e| match () {
                    _ if restores && e.contains("DUMP payload") => {
                        format!("{e} (redis.write = \"restore\" needs Redis 7.0 or later)")
                    }
                    _ if restores && e.starts_with("NOPERM") => {
                        format!("{e} (redis.write = \"restore\": allow RESTORE to this user)")
                    }
                    _ => e,
                })
            }
            None => Err("not connected".into()),
        };
        match read {
            Ok(skipped) => {
                self.stats.older_windows_skipped.fetch_add(skipped, Ordering::Relaxed);
                self.outage.ok();
                self.stats.connected.store(true, Ordering::Relaxed);
                self.stats.tried.store(true, Ordering::Relaxed);
                self.last_answer = Instant::now();
                self.backoff = FIRST_BACKOFF;
                let (batch, sent) = self.in_flight.pop_front().expect("checked above");
                self.acknowledged(batch, sent);
            }
            Err(e) => self.failed(&e),
        }
    }

    /// A send or a read failed: back off, reconnect, and send every batch in
    /// flight again, merged into one (Redis may have applied some of them:
    /// the script skips what a newer window already holds), until Redis
    /// takes them.
    fn failed(&mut self, error: &str) {
        let mut error = error.to_string();
        self.drop_connection();
        if self.in_flight.len() > 1 {
            let mut merged = Batch {
                records: Vec::new(),
                replies: 0,
                barriers: Vec::new(),
                parts: 0,
            };
            for (b, _) in self.in_flight.drain(..) {
                merged.records.extend(b.records);
                merged.barriers.extend(b.barriers);
                merged.parts += b.parts;
            }
            self.in_flight.push_back((merged, Instant::now()));
        }
        loop {
            self.stats.connected.store(false, Ordering::Relaxed);
            self.stats.tried.store(true, Ordering::Relaxed);
            if !error.is_empty() {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                let keys: usize = self.in_flight.iter().map(|(b, _)| b.records.len()).sum();
                self.outage.failed(&format_args!(
                    "{}: a write of {keys} keys failed (retried): {error}",
                    self.name
                ));
            }
            std::thread::sleep(self.backoff);
            self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
            if !self.connected() {
                error = String::new();
                continue;
            }
            let Some((batch, sent)) = self.in_flight.front_mut() else {
                return;
            };
            self.buf.clear();
            let commands = Commands::of(self.form, &self.script_sha);
            batch.replies = encode_batch(&batch.records, commands, &mut self.buf);
            *sent = Instant::now();
            let c = self.conn.as_mut().expect("connected");
            match c.send(&self.buf) {
                // Its replies are read as usual.
                Ok(()) => return,
                Err(e) => {
                    error = e;
                    self.drop_connection();
                }
            }
        }
    }

    /// Give up the connection; Redis may still hold input of it.
    fn drop_connection(&mut self) {
        self.conn = None;
        if let Some(id) = self.client_id.take() {
            self.stale_clients.push(id);
        }
    }

    /// Check that Redis answers (nothing is in flight): a failure is
    /// reported and the connection dropped, to be made again by the next
    /// ping or write.
    fn ping(&mut self) {
        self.last_answer = Instant::now();
        if !self.connected() {
            return;
        }
        let c = self.conn.as_mut().expect("connected");
        let answer = match c.command(&[b"PING"]) {
            Ok(Reply::Error(e)) => Err(e),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match answer {
            Ok(()) => {
                self.stats.connected.store(true, Ordering::Relaxed);
                self.stats.tried.store(true, Ordering::Relaxed);
                self.backoff = FIRST_BACKOFF;
                self.outage.ok();
            }
            Err(e) => {
                self.stats.connected.store(false, Ordering::Relaxed);
                self.stats.tried.store(true, Ordering::Relaxed);
                self.outage
                    .failed(&format_args!("{} does not answer (idle check): {e}", self.name));
                self.drop_connection();
            }
        }
    }

    /// Whether there is a connection, made if there was none (a failure
    /// is reported).
    fn connected(&mut self) -> bool {
        if self.conn.is_none() {
            match Wire::connect(&self.client).and_then(|mut c| {
                let id = client_id(&mut c)?;
                kill_clients(&mut c, &self.stale_clients)?;
                let script = match self.form {
                    Form::KeepNewest => WRITE_MANY_SCRIPT,
                    Form::KeepNewestRestore => RESTORE_MANY_SCRIPT,
                    Form::Hset | Form::Restore => "",
                };
                let sha = match script.is_empty() {
                    false => match c.command(&[b"SCRIPT", b"LOAD", script.as_bytes()])? {
                        Reply::Bulk(sha) => String::from_utf8_lossy(&sha).into_owned(),
                        other => return Err(format!("SCRIPT LOAD answered {other:?}")),
                    },
                    true => String::new(),
                };
                Ok((c, id, sha))
            }) {
                // `connected` waits for an answer: a stopped server
                // accepts connections it never serves.
                Ok((c, id, sha)) => {
                    self.conn = Some(c);
                    self.client_id = id;
                    self.script_sha = sha;
                    self.stale_clients.clear();
                }
                Err(e) => {
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.stats.tried.store(true, Ordering::Relaxed);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.outage
                        .failed(&format_args!("{} unreachable (holding the stream): {e}", self.name));
                    return false;
                }
            }
        }
        true
    }

    fn acknowledged(&mut self, batch: Batch, sent: Instant) {
        self.stats.batch_acknowledged(&batch.records, sent, batch.parts);
        for done in batch.barriers {
            let _ = done.send(());
        }
    }
}

impl RedisStats {
    /// Count a batch Redis acknowledged: `parts` batches handed over, sent
    /// at `sent`.
    pub(super) fn batch_acknowledged(&self, records: &[FeatureRecord], sent: Instant, parts: u64) {
        let took = sent.elapsed();
        self.write_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.keys_written.fetch_add(records.len() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.queued.fetch_sub(parts, Ordering::Relaxed);
        let ms = took.as_secs_f64() * 1000.0;
        let b = LATENCY_BOUNDS_MS
            .iter()
            .position(|&u| ms <= u)
            .unwrap_or(LATENCY_BOUNDS_MS.len() - 1);
        self.latency_buckets[b].fetch_add(1, Ordering::Relaxed);
        self.acknowledged(records, Instant::now(), crate::clock::now_ms());
    }
}

/// Read `n` replies; returns how many writes [`WRITE_MANY_SCRIPT`] skipped
/// (the key held a newer window: each call answers how many; nothing else
/// the writer sends answers an integer at the top). An error reply (also inside
/// `EXEC`'s; `NOSCRIPT` after a `SCRIPT FLUSH`) is a failure: the writer
/// reconnects (loading the script again) and resends.
fn read_replies(conn: &mut Wire, n: usize) -> Result<u64, String> {
    let mut skipped = 0;
    for _ in 0..n {
        match conn.read()? {
            Reply::Int(n) => skipped += n.max(0) as u64,
            // EXEC of a transaction that was aborted.
            Reply::Nil => return Err("the transaction was aborted".into()),
            Reply::Error(e) => return Err(e),
            Reply::Bulk(_) | Reply::Ok => {}
        }
    }
    Ok(skipped)
}

/// The fewest bytes `replies` replies to [`encode_batch`]'s commands can
/// take. A script call answers an integer (`:0\r\n`) or an error; a
/// `RESTORE`, `+OK` or an error. A
/// transaction: `+OK` to `MULTI`, then `+QUEUED` (or a longer error) to
/// each command, then at least `*-1\r\n` or an empty array to `EXEC`.
/// A lower bound, so that the reads wait for no byte that may not come.
fn reply_bytes_at_least(replies: usize, form: Form) -> usize {
    match form {
        Form::KeepNewest | Form::KeepNewestRestore => 4 * replies,
        Form::Restore => b"+OK\r\n".len() * replies,
        Form::Hset => b"+OK\r\n".len() + b"+QUEUED\r\n".len() * replies.saturating_sub(2) + b"*0\r\n".len(),
    }
}

/// The commands a batch is written with.
#[derive(Clone, Copy)]
enum Commands<'a> {
    /// `MULTI`, `HSET` + `EXPIRE` per record, `EXEC`.
    Transaction,
    /// `RESTORE key ttl-ms payload REPLACE` per record.
    Restore,
    /// `EVALSHA` of [`WRITE_MANY_SCRIPT`] (by this SHA-1) per [`SCRIPT_KEYS`] records.
    Script(&'a str),
    /// `EVALSHA` of [`RESTORE_MANY_SCRIPT`] (by this SHA-1) per [`SCRIPT_KEYS`] records.
    RestoreScript(&'a str),
}

impl Commands<'_> {
    /// The commands of `form`; `sha` is the script's, if it is loaded.
    fn of(form: Form, sha: &str) -> Commands<'_> {
        match form {
            Form::Hset => Commands::Transaction,
            Form::Restore => Commands::Restore,
            Form::KeepNewest => Commands::Script(sha),
            Form::KeepNewestRestore => Commands::RestoreScript(sha),
        }
    }
}

/// Redis's id of this connection; `None` where `CLIENT` is not allowed
/// (an ACL user without it: stale connections then cannot be killed).
fn client_id(c: &mut Wire) -> Result<Option<i64>, String> {
    match c.command(&[b"CLIENT", b"ID"])? {
        Reply::Int(id) => Ok(Some(id)),
        _ => Ok(None),
    }
}

/// Close the connections given up on, so that input of theirs Redis has
/// not run yet never runs (an answer of "no such client" is fine).
fn kill_clients(c: &mut Wire, ids: &[i64]) -> Result<(), String> {
    for id in ids {
        c.command(&[b"CLIENT", b"KILL", b"ID", id.to_string().as_bytes()])?;
    }
    Ok(())
}

/// Append the commands that write `records`, in RESP, to `out`; returns
/// the number of replies they get. A script (its SHA-1): one
/// `EVALSHA sha k key… (window_end ttl n field value…)…` per
/// [`SCRIPT_KEYS`] records (see [`WRITE_MANY_SCRIPT`]). A transaction: one
/// `MULTI` … `EXEC` block of `HSET key field value …` and `EXPIRE key ttl`
/// per record. `RESTORE`: `RESTORE key ttl-ms payload REPLACE` per record
/// (TTL 0: none).
fn encode_batch(records: &[FeatureRecord], commands: Commands<'_>, out: &mut Vec<u8>) -> usize {
    let mut value = Vec::with_capacity(32);
    let mut n = itoa::Buffer::new();
    let pairs = |r: &FeatureRecord| r.fields.len().min(r.values.len());
    let mut names = FieldNames::default();
    let mut fields = |out: &mut Vec<u8>, value: &mut Vec<u8>, r: &FeatureRecord| {
        for (name, v) in names.of(&r.fields).iter().zip(&r.values) {
            out.extend_from_slice(name);
            value.clear();
            v.write_redis(value);
            resp_bulk(out, value);
        }
    };
    if let Commands::Restore = commands {
        let mut payloads = Payloads::default();
        for r in records {
            out.extend_from_slice(b"*5\r\n$7\r\nRESTORE\r\n");
            resp_bulk(out, r.key.as_bytes());
            resp_bulk(out, n.format(r.ttl_seconds * 1000).as_bytes());
            resp_bulk(out, payloads.of(r, false));
            out.extend_from_slice(b"$7\r\nREPLACE\r\n");
        }
        return records.len();
    }
    if let Commands::Script(sha) | Commands::RestoreScript(sha) = commands {
        // RESTORE_MANY_SCRIPT takes the end, the TTL in ms and the payload.
        let restore = matches!(commands, Commands::RestoreScript(_));
        let mut payloads = Payloads::default();
        let mut calls = 0;
        for chunk in records.chunks(SCRIPT_KEYS) {
            let args: usize = chunk
                .iter()
                .map(|r| 1 + 3 + if restore { 0 } else { 2 * pairs(r) })
                .sum();
            resp_array_len(out, 3 + args);
            resp_bulk(out, b"EVALSHA");
            resp_bulk(out, sha.as_bytes());
            resp_bulk(out, n.format(chunk.len()).as_bytes());
            for r in chunk {
                resp_bulk(out, r.key.as_bytes());
            }
            for r in chunk {
                resp_bulk(out, n.format(r.window_end).as_bytes());
                if restore {
                    resp_bulk(out, n.format(r.ttl_seconds * 1000).as_bytes());
                    resp_bulk(out, payloads.of(r, true));
                    continue;
                }
                resp_bulk(out, n.format(r.ttl_seconds).as_bytes());
                resp_bulk(out, n.format(pairs(r)).as_bytes());
                fields(out, &mut value, r);
            }
            calls += 1;
        }
        return calls;
    }
    let mut replies = 2;
    // The last TTL as RESP (a view's records share theirs).
    let mut ttl = (0, Vec::new());
    out.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
    for r in records {
        resp_array_len(out, 2 + 2 * pairs(r));
        out.extend_from_slice(b"$4\r\nHSET\r\n");
        resp_bulk(out, r.key.as_bytes());
        fields(out, &mut value, r);
        replies += 1;
        if r.ttl_seconds > 0 {
            if ttl.0 != r.ttl_seconds {
                ttl = (r.ttl_seconds, resp_bulk_vec(n.format(r.ttl_seconds).as_bytes()));
            }
            out.extend_from_slice(b"*3\r\n$6\r\nEXPIRE\r\n");
            resp_bulk(out, r.key.as_bytes());
            out.extend_from_slice(&ttl.1);
            replies += 1;
        }
    }
    out.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
    replies
}

/// Builds records' `RESTORE` payloads ([`super::dump`]), reusing its buffers.
#[derive(Default)]
pub(super) struct Payloads {
    /// A record's values as text, one after another, and where each ends.
    text: Vec<u8>,
    ends: Vec<usize>,
    scratch: Vec<u8>,
    payload: Vec<u8>,
}

impl Payloads {
    /// The payload of the hash `r` writes; with `window_end`, `_window_end`
    /// first (as the keep-newest scripts write it).
    pub(super) fn of(&mut self, r: &FeatureRecord, window_end: bool) -> &[u8] {
        let k = r.fields.len().min(r.values.len());
        self.text.clear();
        self.ends.clear();
        if window_end {
            self.text
                .extend_from_slice(itoa::Buffer::new().format(r.window_end).as_bytes());
        }
        let first = self.text.len();
        for v in &r.values[..k] {
            v.write_redis(&mut self.text);
            self.ends.push(self.text.len());
        }
        let (text, ends) = (&self.text, &self.ends);
        let value = |i: usize| &text[if i == 0 { first } else { ends[i - 1] }..ends[i]];
        let names = r.fields[..k].iter().map(|f| f.name.as_bytes());
        let fields = names.enumerate().flat_map(|(i, name)| [name, value(i)]);
        let head = window_end.then_some([&b"_window_end"[..], &text[..first]]);
        self.payload.clear();
        super::dump::hash_payload(
            head.into_iter().flatten().chain(fields),
            &mut self.scratch,
            &mut self.payload,
        );
        &self.payload
    }
}

pub(super) fn resp_array_len(out: &mut Vec<u8>, n: usize) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A view's field names as RESP bulk strings, encoded once per run of
/// records of that view rather than once per record.
#[derive(Default)]
struct FieldNames {
    fields: Option<Arc<[Field]>>,
    encoded: Vec<Vec<u8>>,
}

impl FieldNames {
    fn of(&mut self, fields: &Arc<[Field]>) -> &[Vec<u8>] {
        if !self.fields.as_ref().is_some_and(|f| Arc::ptr_eq(f, fields)) {
            self.encoded = fields.iter().map(|f| resp_bulk_vec(f.name.as_bytes())).collect();
            self.fields = Some(Arc::clone(fields));
        }
        &self.encoded
    }
}

fn resp_bulk_vec(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    resp_bulk(&mut out, bytes);
    out
}

pub(super) fn resp_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut b = itoa::Buffer::new();
    out.push(b'$');
    out.extend_from_slice(b.format(bytes.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_encoded_as_redis_rs_would() {
        use crate::plugin::declaration::Field;
        use crate::plugin::{FieldType, Value};
        let fields: Arc<[Field]> = vec![
            Field {
                name: "view_count".into(),
                ty: FieldType::Integer,
            },
            Field {
                name: "avg_view_price".into(),
                ty: FieldType::Float,
            },
        ]
        .into();
        let record = |key: &str, values: Vec<Value>, ttl: u64| FeatureRecord {
            view: "v".into(),
            key: key.into(),
            entity_span: 0..1,
            window_start: 0,
            window_end: 1,
            fields: fields.clone(),
            values,
            ttl_seconds: ttl,
            fired_at: Instant::now(),
        };
        let records = [
            record("user_features:1", vec![Value::Integer(3), Value::Float(29.99)], 7200),
            record("session_features:ü:17", vec![Value::Integer(-1), Value::Float(0.0)], 0),
        ];
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg("5ca1ab1e")
            .arg(2)
            .arg("user_features:1")
            .arg("session_features:ü:17")
            .arg(1)
            .arg(7200u64)
            .arg(2)
            .arg("view_count")
            .arg("3")
            .arg("avg_view_price")
            .arg("29.99")
            .arg(1)
            .arg(0)
            .arg(2)
            .arg("view_count")
            .arg("-1")
            .arg("avg_view_price")
            .arg("0.0");
        let mut out = Vec::new();
        assert_eq!(encode_batch(&records, Commands::Script("5ca1ab1e"), &mut out), 1);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&pipe.get_packed_pipeline())
        );

        // Without the script: one MULTI/EXEC of HSET and EXPIRE (when
        // there is a TTL) per record.
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HSET")
            .arg("user_features:1")
            .arg("view_count")
            .arg("3")
            .arg("avg_view_price")
            .arg("29.99");
        pipe.cmd("EXPIRE").arg("user_features:1").arg(7200u64);
        pipe.cmd("HSET")
            .arg("session_features:ü:17")
            .arg("view_count")
            .arg("-1")
            .arg("avg_view_price")
            .arg("0.0");
        let mut out = Vec::new();
        // OK, QUEUED for each of the 3 commands, EXEC.
        assert_eq!(encode_batch(&records, Commands::Transaction, &mut out), 5);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&pipe.get_packed_pipeline())
        );
    }

    #[test]
    fn passwords_are_redacted() {
        for (url, redacted) in [
            ("redis://:secret@host:6379/0", "redis://***@host:6379/0"),
            ("redis://user:secret@host", "redis://***@host"),
            (
                "rediss://default:secret@cache.example.com:6380/1",
                "rediss://***@cache.example.com:6380/1",
            ),
            ("rediss://:secret@h/#insecure", "rediss://***@h/#insecure"),
            // Unencoded `@`, `/`, `:` in the password: masked whole.
            ("redis://:se@c/r:et@host:6379", "redis://***@host:6379"),
            ("redis://:s%40cret@host", "redis://***@host"),
            // redis-rs takes a Unix socket's password from the query.
            (
                "unix:///run/redis.sock?db=1&pass=secret",
                "unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "redis+unix:///s?PASSWORD=secret&db=2",
                "redis+unix:///s?PASSWORD=***&db=2",
            ),
            ("unix:///s?pa%73s=secret", "unix:///s?pa%73s=***"),
            ("unix:///s?pass=se@cret", "unix://***"),
            // No password: unchanged.
            ("redis://host:6379/0", "redis://host:6379/0"),
            ("rediss://host", "rediss://host"),
            ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
            ("", ""),
            // Not URLs.
            ("redis:secret@host", "***@host"),
            ("secret@host", "***@host"),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }

    #[test]
    fn invalid_urls_never_echo_the_password() {
        for url in [
            "redis://:secret@host:notaport/0",
            "redis://:secret@host/notadb",
            "redis://:secret@",
            "rediss://:secret@host/#sure",
            "redis://:secret@host/?protocol=9",
            "redis://:se%ZZcret@host:x",
            "http://:secret@host",
            "redis:secret@host",
            "unix:///?pass=secret&db=x",
        ] {
            let err = match RedisSink::start(url, 16, Form::Hset) {
                Ok(_) => panic!("{url} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(!err.contains("secret"), "{url}: {err}");
            assert!(err.contains("invalid redis.url"), "{url}: {err}");
        }
    }

    #[test]
    fn messages_quoting_the_url_are_scrubbed() {
        let url = "redis://admin:p%40ss@host:6379/0";
        let text = format!("cannot use {url}: bad password p@ss (p%40ss, admin:p%40ss)");
        let scrubbed = scrub(&text, url);
        assert!(!scrubbed.contains("p@ss") && !scrubbed.contains("p%40ss"), "{scrubbed}");
        assert!(scrubbed.contains("redis://***@host:6379/0"), "{scrubbed}");
        assert_eq!(scrub("connection refused", url), "connection refused");
        assert_eq!(scrub("connection refused", ""), "connection refused");
    }
}
