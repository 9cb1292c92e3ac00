//! `featherflow run`: Kafka in, Redis out, exactly once.
//!
//! One thread runs the loop: poll Kafka, feed the engine, and every
//! `checkpoint.interval` take a checkpoint:
//!
//! 1. `Engine::capture` applies pending batches and finishes fired windows
//!    (their records go to the Redis writer), then takes a copy-on-write
//!    snapshot of every open state (microseconds: see `cow`). This is the
//!    only pause of the event loop.
//! 2. A barrier is sent after those records; a background thread encodes
//!    the snapshot, waits until Redis has acknowledged everything before
//!    the barrier, then writes the
//!    checkpoint (offsets, watermarks, states, plugins) atomically and prunes
//!    old ones. So a checkpoint never completes while an output fired before
//!    it is unacknowledged.
//! 3. When it is durable, the offsets are committed to Kafka (a courtesy).
//!
//! On restart the job restores the newest complete checkpoint (or the one
//! asked for), seeks to its offsets and replays: every write is a
//! deterministic upsert, so Redis ends exactly as after an uninterrupted run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use smallvec::SmallVec;

use crate::api::{ApiState, PartitionStatus, Status, ViewStatus};
use crate::app::{engine_config, limits, load_plugin_dir, now_ms};
use crate::config::Config;
use crate::engine::{Engine, EngineCapture, EngineSnapshot, ViewSnapshot};
use crate::plugin::PluginEngine;
use crate::sink::{RecordLog, RedisSink};
use crate::source::file::BLOCK;
use crate::source::kafka::{KafkaSource, StartAt};
use crate::state::{CheckpointMeta, CheckpointStore, ChunkInfo, SledStore, StateError, parse_checkpoint_ref};

#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Read up to the end offsets found at start, fire everything, stop
    /// (Flink's bounded Kafka source). For tests and backfills.
    pub bounded: bool,
    /// `ID` or `.../chk-ID`; overrides `restore.path`.
    pub from_checkpoint: Option<String>,
    /// Do not serve the HTTP API.
    pub no_api: bool,
}

/// What a finished job reports.
#[derive(Debug, Default)]
pub struct JobSummary {
    pub events: u64,
    pub checkpoints: u64,
    pub last_checkpoint: Option<u64>,
    pub max_pause: Duration,
    pub last_pause: Duration,
    pub max_checkpoint: Duration,
    /// From the first event read to the end.
    pub busy: Duration,
    /// (p50, p99, max) ms from a window firing to its key acknowledged by Redis.
    pub fire_to_redis_ms: Option<(f64, f64, f64)>,
    pub max_open_states: u64,
}

/// Read a checkpoint into an engine snapshot plus its metadata.
pub fn load_checkpoint(store: &dyn CheckpointStore, id: u64) -> Result<(CheckpointMeta, EngineSnapshot), StateError> {
    let (meta, chunks) = store.read(id)?;
    let mut views: Vec<ViewSnapshot> = meta
        .plugins
        .iter()
        .map(|p| ViewSnapshot {
            plugin: p.clone(),
            chunks: Vec::new(),
            parts: 0,
        })
        .collect();
    // The chunks move into their views (a checkpoint can be large).
    for (name, bytes) in chunks {
        let of_view = |v: &&mut ViewSnapshot| {
            name.strip_prefix("view/")
                .and_then(|rest| rest.strip_prefix(v.plugin.view.as_str()))
                .is_some_and(|rest| rest.starts_with('/'))
        };
        if let Some(v) = views.iter_mut().find(of_view) {
            v.chunks.push(bytes);
        }
    }
    let snap = EngineSnapshot {
        watermark: meta.watermark,
        partition_watermarks: meta.partition_watermarks.clone(),
        views,
    };
    Ok((meta, snap))
}

/// Encode `capture` into the chunks of checkpoint `meta.id`, putting each
/// into `store` as soon as it is made (one chunk in memory at a time, not
/// the whole encoding), and describe them in `meta`. The checkpoint exists
/// once `store.commit(meta)` returns; if a put fails, the chunks already put
/// are deleted.
pub fn put_capture(
    store: &dyn CheckpointStore,
    capture: &EngineCapture,
    meta: &mut CheckpointMeta,
) -> Result<(), StateError> {
    let id = meta.id;
    let (mut chunks, mut size) = (Vec::new(), 0);
    let put = capture.encode_each(|name, bytes| {
        store.put_chunk(id, &name, bytes)?;
        size += bytes.len() as u64;
        chunks.push(ChunkInfo::of(&name, bytes));
        Ok(())
    });
    if let Err(e) = put {
        let _ = store.delete(id);
        return Err(e);
    }
    meta.chunks = chunks;
    meta.size_bytes = size;
    Ok(())
}

/// Publishes the job's state for the API a few times a second.
struct Publisher {
    status: Arc<Mutex<Status>>,
    last: Instant,
    last_records: u64,
    last_ends: Instant,
    ends: BTreeMap<i32, i64>,
}

impl Publisher {
    fn publish(
        &mut self,
        engine: &Engine,
        source: &KafkaSource,
        next_offsets: &BTreeMap<i32, i64>,
        kafka_errors: u64,
        summary: &JobSummary,
        force: bool,
    ) {
        let dt = self.last.elapsed();
        if !force && dt < Duration::from_millis(500) {
            return;
        }
        if self.last_ends.elapsed() >= Duration::from_secs(5) {
            self.ends = source.end_offsets_quick(Duration::from_millis(200));
            self.last_ends = Instant::now();
        }
        let now = now_ms();
        let records = engine.stats.records_read;
        let rate = (records - self.last_records) as f64 / dt.as_secs_f64().max(1e-3);
        self.last_records = records;
        self.last = Instant::now();
        let views = engine
            .views()
            .iter()
            .map(|v| {
                let p = v.plugin();
                ViewStatus {
                    view: p.declaration.view.clone(),
                    version: p.declaration.version.clone(),
                    hash: p.hash.clone(),
                    state_version: p.declaration.state_version,
                    window: p.declaration.window.to_string(),
                    loaded_since_ms: v.loaded_since_ms,
                    open_states: v.open_states(),
                    disabled: v.disabled.clone(),
                    stats: v.stats.clone(),
                }
            })
            .collect();
        let partitions = engine
            .watermarks()
            .partitions()
            .filter(|(p, _, _)| source.partitions.contains(&(*p as i32)))
            .map(|(p, wm, idle)| PartitionStatus {
                partition: p as u32,
                watermark: wm,
                idle,
                position: next_offsets.get(&(p as i32)).copied().unwrap_or(0),
                end: self.ends.get(&(p as i32)).copied().unwrap_or(-1),
            })
            .collect();
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.updated_ms = now;
        s.topic = source.topic.clone();
        s.sources_assigned = true;
        s.kafka_errors = kafka_errors;
        s.watermark = engine.watermark();
        s.engine = engine.stats.clone();
        s.views = views;
        s.partitions = partitions;
        s.last_checkpoint_pause_ms = summary.last_pause.as_secs_f64() * 1000.0;
        s.throughput.push((now, rate));
        if s.throughput.len() > 300 {
            s.throughput.remove(0);
        }
    }
}

pub fn run_job(config: &Config, opts: JobOptions, shutdown: Arc<AtomicBool>) -> anyhow::Result<JobSummary> {
    let store: Arc<dyn CheckpointStore> = Arc::new(SledStore::open(&config.checkpoint.dir)?);
    let plugin_engine = PluginEngine::new()?;
    let plugins = load_plugin_dir(
        &plugin_engine,
        std::path::Path::new(&config.plugins.dir),
        limits(config),
    )?;
    if plugins.is_empty() {
        bail!(
            "no plugin could be loaded from {} (build them with `make build`)",
            config.plugins.dir
        );
    }
    let redis = RedisSink::start(&config.redis.url, config.redis.batch)?;
    let status = Arc::new(Mutex::new(Status {
        started_ms: now_ms(),
        topic: config.kafka.topic.clone(),
        checkpoint_interval_ms: config.checkpoint.interval.as_millis() as u64,
        checkpoints: store.list()?,
        ..Status::default()
    }));
    if !opts.no_api {
        crate::api::spawn(
            &config.api.listen,
            ApiState {
                status: status.clone(),
                redis: redis.stats.clone(),
                admin: (!config.api.token.is_empty()).then(|| {
                    Arc::new(crate::api::Admin {
                        token: config.api.token.clone(),
                        plugins_dir: std::path::PathBuf::from(&config.plugins.dir),
                        engine: plugin_engine.clone(),
                        limits: limits(config),
                    })
                }),
            },
        )?;
    }
    let mut ecfg = engine_config(config);
    ecfg.idle_timeout_ms = Some(config.time.idle_timeout.as_millis() as i64);
    let mut engine = Engine::new(ecfg, Box::new(redis.clone()));
    engine.set_source(&config.kafka.topic);
    engine.set_dead_letter(open_log(&config.output.dead_letter)?);
    engine.set_late_log(open_log(&config.output.late)?);
    for p in &plugins {
        engine.add_view(p.clone())?;
    }

    // Restore: the checkpoint asked for, else the newest complete one.
    let wanted = opts
        .from_checkpoint
        .clone()
        .or_else(|| Some(config.restore.path.clone()).filter(|s| !s.is_empty()));
    let restored: Option<CheckpointMeta> = match wanted {
        Some(r) => {
            let id = parse_checkpoint_ref(&r)
                .with_context(|| format!("--from-checkpoint {r:?}: expected an id or a path ending in chk-ID"))?;
            let (meta, snap) = load_checkpoint(store.as_ref(), id)?;
            engine
                .restore(&snap, now_ms())
                .with_context(|| format!("restoring {}", store.checkpoint_path(id)))?;
            Some(meta)
        }
        None => match store.list()?.last() {
            Some(latest) => {
                let (meta, snap) = load_checkpoint(store.as_ref(), latest.id)?;
                engine
                    .restore(&snap, now_ms())
                    .with_context(|| format!("restoring {}", store.checkpoint_path(latest.id)))?;
                Some(meta)
            }
            None => None,
        },
    };

    // Hot deploys: the watcher validates off the hot path; the loop swaps.
    let known = plugins
        .iter()
        .map(|p| {
            (
                std::path::PathBuf::from(&p.source),
                (p.declaration.view.clone(), p.hash.clone()),
            )
        })
        .collect();
    let plugin_events = crate::plugin::watch::watch(
        std::path::Path::new(&config.plugins.dir),
        plugin_engine.clone(),
        limits(config),
        known,
    )?;
    let history_path = std::path::Path::new(&config.checkpoint.dir).join("plugin-history.jsonl");

    let stop = || shutdown.load(Ordering::Relaxed);
    let source = KafkaSource::connect(&config.kafka, &stop)?;
    let mut start: BTreeMap<i32, StartAt> = BTreeMap::new();
    let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    match &restored {
        Some(meta) => {
            tracing::info!(checkpoint = %store.checkpoint_path(meta.id), watermark = meta.watermark, offsets = ?meta.offsets, "restored; resuming from the checkpoint's offsets");
            for &(p, o) in &meta.offsets {
                start.insert(p as i32, StartAt::Offset(o));
                next_offsets.insert(p as i32, o);
            }
        }
        None => {
            let committed = source.committed();
            tracing::info!(committed = ?committed, "no checkpoint; starting from the group's committed offsets, else the earliest");
            for (p, o) in committed {
                start.insert(p, StartAt::Offset(o));
                next_offsets.insert(p, o);
            }
        }
    }
    source.assign(&start)?;
    let wall = now_ms();
    for &p in &source.partitions {
        engine.add_partition(p as u32, wall);
    }
    let end_offsets = if opts.bounded {
        Some(source.end_offsets()?)
    } else {
        None
    };
    if let Some(end) = &end_offsets {
        tracing::info!(end = ?end, "bounded run: reading up to these offsets");
    }

    let mut summary = JobSummary::default();
    let mut next_id = store.list()?.last().map_or(1, |m| m.id + 1);
    let mut last_checkpoint = Instant::now();
    let mut in_flight: Option<JoinHandle<Result<CheckpointMeta, StateError>>> = None;
    let mut last_idle_check = Instant::now();
    let mut poll_errors = 0u64;
    let mut last_message = Instant::now();
    let mut first_event: Option<Instant> = None;
    let mut publisher = Publisher {
        status: status.clone(),
        last: Instant::now(),
        last_records: 0,
        last_ends: Instant::now() - Duration::from_secs(60),
        ends: BTreeMap::new(),
    };
    // The API lists the views and partitions from now on, not from the
    // first periodic publish.
    publisher.publish(&engine, &source, &next_offsets, 0, &summary, true);
    let interval = config.checkpoint.interval;
    let retain = config.checkpoint.retain;

    let take_checkpoint = |engine: &mut Engine,
                           next_offsets: &BTreeMap<i32, i64>,
                           id: u64,
                           summary: &mut JobSummary|
     -> anyhow::Result<JoinHandle<Result<CheckpointMeta, StateError>>> {
        let started = Instant::now();
        let capture = engine.capture()?;
        let open_states: u64 = engine.views().iter().map(|v| v.open_states() as u64).sum();
        summary.max_open_states = summary.max_open_states.max(open_states);
        let barrier = redis.barrier();
        let pause = started.elapsed();
        summary.max_pause = summary.max_pause.max(pause);
        summary.last_pause = pause;
        let offsets = next_offsets.iter().map(|(&p, &o)| (p as u32, o)).collect();
        let mut meta = capture.meta(id, &config.kafka.topic, offsets, open_states);
        let store = store.clone();
        Ok(std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            // Encoding runs here, beside the event loop: the capture is a
            // frozen copy-on-write view of the state.
            put_capture(store.as_ref(), &capture, &mut meta)?;
            drop(capture);
            // Everything fired before the snapshot must be in Redis first.
            let _ = barrier.recv();
            store.commit(&meta)?;
            meta.duration_ms = started.elapsed().as_millis() as u64;
            store.retain(retain)?;
            tracing::info!(checkpoint = %store.checkpoint_path(meta.id), size = meta.size_bytes, open_states = meta.open_states, pause_ms = pause.as_secs_f64() * 1000.0, duration_ms = meta.duration_ms, "checkpoint complete");
            Ok(meta)
        })?)
    };

    loop {
        if stop() {
            tracing::info!("stopping: taking a final checkpoint");
            break;
        }
        // Bounded: done when every partition is read to its end offset and
        // the topic has been quiet for a moment (some brokers, tansu among
        // them, report the high watermark of a batched produce short).
        if let Some(end) = &end_offsets
            && last_message.elapsed() >= Duration::from_millis(500)
            && end.iter().all(|(p, &e)| next_offsets.get(p).copied().unwrap_or(0) >= e)
        {
            tracing::info!("bounded run: all partitions read to their end offsets");
            engine.finish()?;
            let _ = redis.barrier().recv();
            if let Some(h) = in_flight.take() {
                finish_checkpoint(h, &source, &mut summary)?;
            }
            summary.busy = first_event.map_or(Duration::ZERO, |t| t.elapsed());
            summary.fire_to_redis_ms = redis.stats.fire_to_ack_percentiles();
            return Ok(summary);
        }
        match source.poll(Duration::from_millis(50)) {
            Some(Ok(first)) => {
                // Take what else is already here, up to a block, and feed
                // each partition's run of it to the engine at once.
                let mut block: SmallVec<[BorrowedMessage<'_>; BLOCK]> = smallvec::smallvec![first];
                let mut failed = None;
                while block.len() < BLOCK {
                    match source.poll(Duration::ZERO) {
                        Some(Ok(m)) => block.push(m),
                        Some(Err(e)) => {
                            failed = Some(e);
                            break;
                        }
                        None => break,
                    }
                }
                let now = now_ms();
                for run in block.chunk_by(|a, b| a.partition() == b.partition()) {
                    let lines: SmallVec<[(u64, &[u8]); BLOCK]> = run
                        .iter()
                        .map(|m| (m.offset() as u64, m.payload().unwrap_or(b"")))
                        .collect();
                    let p = run[0].partition();
                    engine.process_lines(p as u32, &lines, now)?;
                    next_offsets.insert(p, run[run.len() - 1].offset() + 1);
                }
                summary.events += block.len() as u64;
                first_event.get_or_insert_with(Instant::now);
                last_message = Instant::now();
                if poll_errors > 0 {
                    tracing::info!(errors = poll_errors, "Kafka is back");
                    poll_errors = 0;
                }
                if let Some(e) = failed {
                    poll_errors += 1;
                    if poll_errors == 1 || poll_errors.is_multiple_of(100) {
                        tracing::warn!(error = %e, errors = poll_errors, "Kafka poll failed; retrying");
                    }
                }
            }
            Some(Err(e)) => {
                poll_errors += 1;
                if poll_errors == 1 || poll_errors.is_multiple_of(100) {
                    tracing::warn!(error = %e, errors = poll_errors, "Kafka poll failed; retrying");
                }
            }
            None => {
                // Quiet: hand over what has fired, let idle partitions go.
                engine.flush()?;
            }
        }
        if last_idle_check.elapsed() >= Duration::from_millis(200) {
            let now = now_ms();
            engine.set_now(now);
            engine.check_idle(now)?;
            last_idle_check = Instant::now();
        }
        if let Some(h) = in_flight.take_if(|h| h.is_finished())
            && let Some(meta) = finish_checkpoint(h, &source, &mut summary)?
        {
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.checkpoints.push(meta);
            let keep = s.checkpoints.len().saturating_sub(50);
            s.checkpoints.drain(..keep);
        }
        while let Ok(ev) = plugin_events.try_recv() {
            if let Some(rec) = crate::plugin::watch::apply(&mut engine, ev) {
                append_history(&history_path, &rec);
                status.lock().unwrap_or_else(|e| e.into_inner()).history.push(rec);
            }
        }
        publisher.publish(&engine, &source, &next_offsets, poll_errors, &summary, false);
        if in_flight.is_none() && last_checkpoint.elapsed() >= interval {
            in_flight = Some(take_checkpoint(&mut engine, &next_offsets, next_id, &mut summary)?);
            next_id += 1;
            last_checkpoint = Instant::now();
        }
    }
    if let Some(h) = in_flight.take() {
        finish_checkpoint(h, &source, &mut summary)?;
    }
    let h = take_checkpoint(&mut engine, &next_offsets, next_id, &mut summary)?;
    finish_checkpoint(h, &source, &mut summary)?;
    summary.busy = first_event.map_or(Duration::ZERO, |t| t.elapsed());
    summary.fire_to_redis_ms = redis.stats.fire_to_ack_percentiles();
    Ok(summary)
}

fn finish_checkpoint(
    h: JoinHandle<Result<CheckpointMeta, StateError>>,
    source: &KafkaSource,
    summary: &mut JobSummary,
) -> anyhow::Result<Option<CheckpointMeta>> {
    match h.join() {
        Ok(Ok(meta)) => {
            source.commit(&meta.offsets);
            summary.checkpoints += 1;
            summary.last_checkpoint = Some(meta.id);
            summary.max_checkpoint = summary.max_checkpoint.max(Duration::from_millis(meta.duration_ms));
            Ok(Some(meta))
        }
        Ok(Err(e)) => {
            // The next checkpoint tries again; nothing is lost, replay from
            // the previous one just gets longer.
            tracing::error!(error = %e, "checkpoint failed");
            Ok(None)
        }
        Err(_) => bail!("the checkpoint thread panicked"),
    }
}

/// Append a swap record to the history file (`featherflow plugin history`).
pub fn append_history(path: &std::path::Path, rec: &crate::engine::SwapRecord) {
    use std::io::Write;
    let line = match serde_json::to_string(rec) {
        Ok(l) => l,
        Err(_) => return,
    };
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "cannot append to the plugin history");
    }
}

fn open_log(path: &str) -> anyhow::Result<RecordLog> {
    if path.is_empty() {
        Ok(RecordLog::disabled())
    } else {
        RecordLog::open(path).with_context(|| format!("cannot open {path}"))
    }
}
