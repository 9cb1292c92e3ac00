//! The Redis Cluster writer (`redis.cluster-nodes`): the same contract as
//! the single-server writer in [`super::redis`] (bounded queue, barriers,
//! retry until Redis takes a batch, outages logged once), over redis-rs's
//! cluster connection.
//!
//! Each record is one call of [`WRITE_SCRIPT`] (or, with `redis.write =
//! "restore"`, [`RESTORE_SCRIPT`]) on its key, so each key's
//! fields, `_window_end` and TTL are written atomically in its own slot,
//! and a key never goes back to an older window. A batch goes out as one
//! cluster pipeline: redis-rs splits it per master and sends those
//! pipelines at once, and follows `MOVED` and `ASK` for the commands that
//! get them (a resharding). A batch that fails otherwise (a master that
//! stops answering while its replica takes over) is sent again whole after
//! a backoff, on a fresh connection that reads the slot map anew; the
//! script makes that harmless. Batches are written one at a time: a
//! barrier is passed as soon as it is read.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::FeatureRecord;
use super::redis::{FIRST_BACKOFF, IDLE_PING, Msg, Payloads, RESTORE_SCRIPT, RedisStats, WRITE_SCRIPT};
use crate::outage::Outage;

struct ClusterWriter {
    client: redis::cluster::ClusterClient,
    conn: Option<redis::cluster::ClusterConnection>,
    /// SHA-1 of the script, as `SCRIPT LOAD` (sent to every node) answered.
    sha: String,
    stats: Arc<RedisStats>,
    name: String,
    outage: Outage,
    backoff: Duration,
    /// `redis.write = "restore"`: [`RESTORE_SCRIPT`] in place of [`WRITE_SCRIPT`].
    restore: bool,
    payloads: Payloads,
}

pub(super) fn writer(
    client: redis::cluster::ClusterClient,
    rx: Receiver<Msg>,
    stats: Arc<RedisStats>,
    name: String,
    restore: bool,
) {
    let mut w = ClusterWriter {
        client,
        conn: None,
        sha: String::new(),
        stats,
        name,
        outage: Outage::new("redis"),
        backoff: FIRST_BACKOFF,
        restore,
        payloads: Payloads::default(),
    };
    loop {
        match rx.recv_timeout(IDLE_PING) {
            Ok(Msg::Records(records)) => w.write(records),
            // Every batch read before it is acknowledged.
            Ok(Msg::Barrier(done)) => {
                let _ = done.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => w.ping(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl ClusterWriter {
    /// Write one batch, retrying until the cluster takes all of it.
    fn write(&mut self, records: Vec<FeatureRecord>) {
        loop {
            let sent = Instant::now();
            match self.try_write(&records) {
                Ok(skipped) => {
                    self.answered();
                    self.stats.older_windows_skipped.fetch_add(skipped, Ordering::Relaxed);
                    self.stats.batch_acknowledged(&records, sent, 1);
                    return;
                }
                Err(e) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let what = format!("{}: a write of {} keys failed (retried): {e}", self.name, records.len());
                    self.failed(&what);
                }
            }
        }
    }

    fn try_write(&mut self, records: &[FeatureRecord]) -> Result<u64, String> {
        self.connection()?;
        let mut pipe = redis::cluster::cluster_pipe();
        let mut value = Vec::with_capacity(32);
        for r in records {
            let cmd = pipe.cmd("EVALSHA").arg(&self.sha).arg(1).arg(&*r.key).arg(r.window_end);
            if self.restore {
                cmd.arg(r.ttl_seconds * 1000).arg(self.payloads.of(r, true));
                continue;
            }
            cmd.arg(r.ttl_seconds);
            for (f, v) in r.fields.iter().zip(&r.values) {
                value.clear();
                v.write_redis(&mut value);
                cmd.arg(&*f.name).arg(&value[..]);
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        let replies: Vec<redis::Value> = match pipe.query(conn) {
            Ok(replies) => replies,
            Err(e) => {
                // A fresh connection reads the slot map again and reloads
                // the script (a promoted replica may lack it: NOSCRIPT).
                self.conn = None;
                return Err(e.to_string());
            }
        };
        let mut skipped = 0;
        for v in replies {
            match v {
                redis::Value::Int(1) => {}
                redis::Value::Int(0) => skipped += 1,
                v => {
                    self.conn = None;
                    return Err(format!("unexpected reply to the write script: {v:?}"));
                }
            }
        }
        Ok(skipped)
    }

    /// The connection, made (slot map read, script loaded on every node)
    /// if there is none.
    fn connection(&mut self) -> Result<&mut redis::cluster::ClusterConnection, String> {
        if self.conn.is_none() {
            let mut c = self.client.get_connection().map_err(|e| e.to_string())?;
            self.sha = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(if self.restore { RESTORE_SCRIPT } else { WRITE_SCRIPT })
                .query(&mut c)
                .map_err(|e| format!("cannot load the write script: {e}"))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("made above"))
    }

    fn answered(&mut self) {
        self.outage.ok();
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.tried.store(true, Ordering::Relaxed);
        self.backoff = FIRST_BACKOFF;
    }

    fn failed(&mut self, what: &dyn std::fmt::Display) {
        self.stats.connected.store(false, Ordering::Relaxed);
        self.stats.tried.store(true, Ordering::Relaxed);
        self.outage.failed(what);
        std::thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
    }

    /// Nothing to write for a while: check that the cluster answers.
    fn ping(&mut self) {
        let pinged = self
            .connection()
            .and_then(|c| redis::cmd("PING").query::<()>(c).map_err(|e| e.to_string()));
        match pinged {
            Ok(()) => self.answered(),
            Err(e) => {
                self.conn = None;
                self.stats.connected.store(false, Ordering::Relaxed);
                self.stats.tried.store(true, Ordering::Relaxed);
                self.outage
                    .failed(&format_args!("{} does not answer (idle check): {e}", self.name));
            }
        }
    }
}
