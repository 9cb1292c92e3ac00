//! `featherflow run` with `kafka.assignment = "group"`: the engines of one
//! consumer group share the topic's partitions.
//!
//! The partition is the unit of ownership. Each partition this engine owns
//! runs a pipeline of its own on a thread of its own: its own engine core
//! (so its watermark, lateness and firing depend on its records only, never
//! on which engine owns which partitions), its own checkpoints in
//! `partition-{p}` of the store, its own offsets. The partitions share the
//! plugin directory, the Redis writer (with `redis.keep-newest` on, so a
//! replay or an engine that lost its partitions without noticing never
//! moves a key back to an older window), the dead-letter and late logs and
//! the API, whose status adds the partitions' own.
//!
//! - Assigned: the partition arrives paused; its thread restores the
//!   partition's newest checkpoint, seeks to its offsets and resumes it.
//! - Revoked: inside the rebalance, its pipeline stops, takes a final
//!   checkpoint, and only then is the partition handed back.
//! - Lost (this engine was out of the group past its session timeout): its
//!   pipeline stops without a checkpoint; the new owner restores the last
//!   one and reads on from there.
//! - SIGTERM: every partition is checkpointed, then the engine leaves the
//!   group, so the others take its partitions at once.
//!
//! `--bounded` reads every partition alone (no group), each to the end
//! offset found at its start, and fires every window.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::open_log;
use super::replay::load_plugins;
use super::run::{
    EXIT_NO_FINAL_CHECKPOINT, RunArgs, job_status, pipeline_options, report, spawn_api, spawn_signal_listener,
};
use crate::api::Status;
use crate::clock;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::pipeline::checkpoint::CheckpointStats;
use crate::pipeline::{Checkpointer, Deploys, Pipeline, StatusPublisher, Summary};
use crate::plugin::watch::WatchHub;
use crate::plugin::{Limits, PluginEngine};
use crate::sink::{RecordLog, RedisSink};
use crate::source::Source;
use crate::source::kafka_group::{KafkaGroup, PartitionSource};

/// What every partition's pipeline shares.
struct Shared {
    config: Config,
    plugin_engine: PluginEngine,
    limits: Limits,
    redis: RedisSink,
    dead_letter: RecordLog,
    late: RecordLog,
    bounded: bool,
    /// The plugin history file's deploys, written once whichever partition
    /// applies them first.
    history: crate::pipeline::deploy::SharedHistory,
    /// The one watcher of the plugin directory; each partition subscribes.
    plugins: WatchHub,
    /// The chosen start, and the partitions already started from it (a
    /// partition assigned again later starts from its newest).
    start_from: Mutex<(StartFrom, BTreeSet<u32>)>,
}

/// A partition's pipeline, on its thread.
struct Task {
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    thread: JoinHandle<anyhow::Result<(Summary, CheckpointStats)>>,
}

type Tasks = Arc<Mutex<BTreeMap<i32, Task>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the partitions start (`--from-checkpoint`, else `restore.path`):
/// each partition has checkpoints of its own, so a chosen point is a time
/// or one checkpoint per partition.
#[derive(Debug, Clone, PartialEq)]
enum StartFrom {
    /// Each partition's newest checkpoint.
    Newest,
    /// `@TIME`: each partition's newest checkpoint taken at or before it.
    Before(i64),
    /// `P:ID,...`: these checkpoints; the partitions not named, their newest.
    Ids(BTreeMap<u32, u64>),
}

fn parse_start(s: &str) -> anyhow::Result<StartFrom> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(StartFrom::Newest);
    }
    if let Some(t) = s.strip_prefix('@') {
        let ms = match t.parse::<i64>() {
            Ok(ms) => ms,
            Err(_) => humantime::parse_rfc3339_weak(t)
                .map_err(|e| {
                    anyhow::anyhow!("{t:?} is not a time (RFC 3339, e.g. 2026-12-07T05:00:00Z, or epoch ms): {e}")
                })?
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64,
        };
        return Ok(StartFrom::Before(ms));
    }
    let mut ids = BTreeMap::new();
    for part in s.split(',') {
        let (p, id) = part.split_once(':').with_context(|| {
            format!(
                "{s:?}: with kafka.assignment = \"group\" each partition has checkpoints of its own: give @TIME (each partition's newest checkpoint taken then or before) or P:ID,P:ID (one per partition)"
            )
        })?;
        let p: u32 = p
            .trim()
            .parse()
            .with_context(|| format!("{part:?}: {p:?} is not a partition"))?;
        let id = crate::state::parse_checkpoint_ref(id.trim())
            .with_context(|| format!("{part:?}: {id:?} is not a checkpoint id"))?;
        ids.insert(p, id);
    }
    Ok(StartFrom::Ids(ids))
}

pub fn run(args: RunArgs, mut config: Config) -> anyhow::Result<ExitCode> {
    let wanted = args
        .from_checkpoint
        .clone()
        .unwrap_or_else(|| config.restore.path.clone());
    let start_from = parse_start(&wanted).context("--from-checkpoint / restore.path")?;
    if !config.redis.keep_newest {
        tracing::info!("kafka.assignment = \"group\": writing Redis with redis.keep-newest on");
        config.redis.keep_newest = true;
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let where_ = config.checkpoint.partition_store(0).map_err(anyhow::Error::msg)?;
    spawn_signal_listener(
        shutdown.clone(),
        config.engine.shutdown_timeout,
        Arc::new(move || format!("each partition's newest checkpoint ({where_:?}, one store per partition)")),
    )?;
    let stop = || shutdown.load(Ordering::Relaxed);

    let plugin_engine = PluginEngine::from_config(&config)?;
    let limits = Limits::from_config(&config);
    // Refuse a broken plugin directory before joining the group.
    let loaded = load_plugins(&plugin_engine, Path::new(&config.plugins.dir), limits)?;
    let plugins = WatchHub::start(
        Path::new(&config.plugins.dir),
        plugin_engine.clone(),
        limits,
        crate::plugin::watch::known(&loaded),
    )?;
    let redis = RedisSink::from_config(&config.redis)?;
    let redis_stats = redis.stats.clone();
    let status = job_status(&config, Vec::new());
    if !args.no_api {
        spawn_api(&config, status.clone(), &redis, &plugin_engine, limits)?;
    }
    let shared = Arc::new(Shared {
        dead_letter: open_log(&config.output.dead_letter, &config)?,
        late: open_log(&config.output.late, &config)?,
        plugin_engine,
        limits,
        redis,
        bounded: args.bounded,
        history: Default::default(),
        plugins,
        start_from: Mutex::new((start_from, BTreeSet::new())),
        config,
    });

    let tasks: Tasks = Arc::new(Mutex::new(BTreeMap::new()));
    // What the partitions released so far did (for the last line).
    let done: Arc<Mutex<(Summary, CheckpointStats)>> = Arc::default();
    let mut group = if args.bounded {
        KafkaGroup::fixed(&shared.config.kafka, &stop)?
    } else {
        let tasks = tasks.clone();
        let done = done.clone();
        KafkaGroup::join(
            &shared.config.kafka,
            Box::new(move |ps, lost| {
                let taken: Vec<(i32, Task)> = {
                    let mut t = lock(&tasks);
                    ps.iter().filter_map(|p| t.remove(p).map(|task| (*p, task))).collect()
                };
                for (_, t) in &taken {
                    t.lost.store(lost, Ordering::Relaxed);
                    t.stop.store(true, Ordering::Relaxed);
                }
                for (p, t) in taken {
                    match t.thread.join() {
                        Ok(Ok((s, c))) => {
                            add_summary(&done, &s, &c);
                            tracing::info!(partition = p, lost, "partition released")
                        }
                        Ok(Err(e)) => tracing::error!(
                            partition = p,
                            error = format!("{e:#}"),
                            "partition released after a failure"
                        ),
                        Err(_) => tracing::error!(partition = p, "the partition's thread panicked"),
                    }
                }
            }),
        )?
    };

    let started = Instant::now();
    let mut failure: Option<anyhow::Error> = None;
    let mut last_publish = Instant::now();
    let mut ever_assigned = false;
    loop {
        if stop() {
            tracing::info!("stopping: releasing every partition with a final checkpoint");
            break;
        }
        for source in group.poll(Duration::from_millis(100)) {
            ever_assigned = true;
            let p = source.partition;
            let task = spawn_partition(shared.clone(), source)?;
            if let Some(old) = lock(&tasks).insert(p, task) {
                // Assigned again before the old one was released: cannot
                // happen with the group's callbacks, but never run two.
                old.stop.store(true, Ordering::Relaxed);
                let _ = old.thread.join();
            }
        }
        // A partition's pipeline that ended on its own: the end of a
        // bounded run, or a failure that stops the job.
        let finished: Vec<(i32, Task)> = {
            let mut t = lock(&tasks);
            let ps: Vec<i32> = t
                .iter()
                .filter(|(_, t)| t.thread.is_finished())
                .map(|(p, _)| *p)
                .collect();
            ps.into_iter()
                .filter_map(|p| t.remove(&p).map(|task| (p, task)))
                .collect()
        };
        for (p, t) in finished {
            match t.thread.join() {
                Ok(Ok((s, c))) => add_summary(&done, &s, &c),
                Ok(Err(e)) => failure = Some(e.context(format!("partition {p}"))),
                Err(_) => failure = Some(anyhow::anyhow!("partition {p}: its thread panicked")),
            }
        }
        if failure.is_some() || (shared.bounded && ever_assigned && lock(&tasks).is_empty()) {
            break;
        }
        if last_publish.elapsed() >= Duration::from_millis(500) {
            publish(&tasks, &status, group.is_failing());
            last_publish = Instant::now();
        }
    }
    // Stop what is left, each with a final checkpoint (the pipelines bound
    // it by engine.shutdown-timeout), then leave the group.
    let left: Vec<(i32, Task)> = std::mem::take(&mut *lock(&tasks)).into_iter().collect();
    for (_, t) in &left {
        t.stop.store(true, Ordering::Relaxed);
    }
    for (p, t) in left {
        match t.thread.join() {
            Ok(Ok((s, c))) => add_summary(&done, &s, &c),
            Ok(Err(e)) => {
                failure.get_or_insert(e.context(format!("partition {p}")));
            }
            Err(_) => {
                failure.get_or_insert(anyhow::anyhow!("partition {p}: its thread panicked"));
            }
        }
    }
    publish(&tasks, &status, group.is_failing());
    if !shared.bounded {
        group.leave();
    }
    if group.strays > 0 {
        tracing::debug!(
            records = group.strays,
            "records fetched before their partition's queue was split were dropped (read again after the seek)"
        );
    }
    // As in the static mode, closing the consumer could wait on a broker
    // that is gone: the process ends now.
    std::mem::forget(group);
    let (done, done_checkpoints) = lock(&done).clone();
    report(&done, &done_checkpoints, &redis_stats);
    tracing::info!(
        events = done.records,
        checkpoints = done_checkpoints.completed,
        uptime_s = started.elapsed().as_secs(),
        "job stopped"
    );
    if let Some(e) = failure {
        return Err(e);
    }
    if done.final_checkpoint_missed {
        return Ok(ExitCode::from(EXIT_NO_FINAL_CHECKPOINT));
    }
    Ok(ExitCode::SUCCESS)
}

/// Partition `source.partition`'s pipeline, started on its own thread.
fn spawn_partition(shared: Arc<Shared>, source: PartitionSource) -> anyhow::Result<Task> {
    let p = source.partition;
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let status = Arc::new(Mutex::new(Status::default()));
    let (stop2, lost2, status2) = (stop.clone(), lost.clone(), status.clone());
    let thread = std::thread::Builder::new()
        .name(format!("partition-{p}"))
        .spawn(move || run_partition(&shared, source, stop2, lost2, status2))
        .with_context(|| format!("cannot start the thread of partition {p}"))?;
    Ok(Task {
        stop,
        lost,
        status,
        thread,
    })
}

/// Restore the partition's newest checkpoint, seek, resume, and run until
/// stopped (revoked, lost, SIGTERM) or, bounded, read to the end.
fn run_partition(
    shared: &Shared,
    source: PartitionSource,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
) -> anyhow::Result<(Summary, CheckpointStats)> {
    let config = &shared.config;
    let p = source.partition as u32;
    let store = crate::state::open_partition_store(&config.checkpoint, p)?;
    let plugins_dir = Path::new(&config.plugins.dir);
    // Deploys from now on (a deploy while the directory is loaded arrives
    // too, and changes nothing if it was loaded).
    let events = shared.plugins.subscribe();
    let plugins = load_plugins(&shared.plugin_engine, plugins_dir, shared.limits)?;
    let mut engine = Engine::new(
        EngineConfig::from_config(config, clock::now_ms(), !shared.bounded),
        Box::new(shared.redis.clone()),
    );
    engine.set_source(&config.kafka.topic);
    engine.set_dead_letter(shared.dead_letter.clone());
    engine.set_late_log(shared.late.clone());
    for plugin in &plugins {
        engine.add_view(plugin.clone())?;
    }
    // Every partition applies the same deploys: the history file gets each
    // once, from the partition that applies it first.
    let history = Path::new(&config.checkpoint.dir).join("plugin-history.jsonl");
    let checkpoints = Checkpointer::new(
        store,
        &config.kafka.topic,
        config.checkpoint.interval,
        config.checkpoint.retain,
    )?
    .claim_generation()?;
    let source: Box<dyn Source> = if shared.bounded {
        Box::new(source.bounded())
    } else {
        Box::new(source)
    };
    lock(&status).checkpoints = checkpoints.store().list().unwrap_or_default();
    let mut pipeline = Pipeline::new(engine, source, pipeline_options(config))
        .with_deploys(Deploys::shared(events, history, shared.history.clone()))
        .with_checkpoints(checkpoints)
        .with_status(StatusPublisher::new(status))
        .with_lost(lost.clone());
    let from = chosen_checkpoint(shared, p, pipeline.checkpoints().map(|c| c.store().as_ref()))?;
    if stop.load(Ordering::Relaxed) && from.is_none() {
        tracing::info!(
            partition = p,
            "released before it started: its newest checkpoint stands"
        );
        return Ok((pipeline.summary().clone(), CheckpointStats::default()));
    }
    let restored = pipeline.start(from)?;
    tracing::info!(
        partition = p,
        checkpoint = ?restored.as_ref().map(|m| m.id),
        restore_ms = pipeline.summary().restore_time.map(|d| d.as_secs_f64() * 1000.0),
        "partition started"
    );
    let stopped = || stop.load(Ordering::Relaxed);
    if stopped() && from.is_none() {
        // Revoked (or the job stopped) while the newest checkpoint was
        // being restored: nothing was read since, so that checkpoint still
        // is the partition's newest and the next owner restores it (or,
        // with none, starts where this one started). A final checkpoint
        // would write the same state again and hold up the rebalance for
        // as long again as the restore took. (A chosen older checkpoint is
        // not the newest: that start runs on and takes its final
        // checkpoint.)
        tracing::info!(partition = p, "released while starting: its newest checkpoint stands");
        return Ok((pipeline.summary().clone(), CheckpointStats::default()));
    }
    let summary = pipeline.run(&stopped)?.clone();
    let c = pipeline.checkpoints().map(|c| c.stats().clone()).unwrap_or_default();
    // Dropped (its store and plugin instances freed): the consumer it
    // shares stays open with the group.
    drop(pipeline);
    Ok((summary, c))
}

/// The checkpoint partition `p` starts from the first time this engine
/// is assigned it (`None`: its newest).
fn chosen_checkpoint(
    shared: &Shared,
    p: u32,
    store: Option<&dyn crate::state::CheckpointStore>,
) -> anyhow::Result<Option<u64>> {
    let mut guard = lock(&shared.start_from);
    let (start, started) = &mut *guard;
    if !started.insert(p) {
        return Ok(None);
    }
    Ok(match start {
        StartFrom::Newest => None,
        StartFrom::Ids(ids) => ids.get(&p).copied(),
        StartFrom::Before(t) => {
            let Some(store) = store else { return Ok(None) };
            let found = store.list()?.into_iter().rev().find(|m| m.created_ms <= *t);
            match found {
                Some(m) => Some(m.id),
                None => bail!(
                    "partition {p} has no checkpoint taken at or before {} in {}",
                    super::format_ms(*t),
                    store.path()
                ),
            }
        }
    })
}

/// Add what a released partition did to the job's totals.
fn add_summary(done: &Mutex<(Summary, CheckpointStats)>, s: &Summary, c: &CheckpointStats) {
    let mut d = lock(done);
    let (total, checkpoints) = &mut *d;
    total.records += s.records;
    total.busy = total.busy.max(s.busy);
    total.restarts += s.restarts;
    total.source_errors += s.source_errors;
    total.final_checkpoint_missed |= s.final_checkpoint_missed;
    checkpoints.completed += c.completed;
    checkpoints.max_pause = checkpoints.max_pause.max(c.max_pause);
    checkpoints.max_duration = checkpoints.max_duration.max(c.max_duration);
    checkpoints.max_open_states = checkpoints.max_open_states.max(c.max_open_states);
}

/// The API's status: the partitions' own, added up.
fn publish(tasks: &Tasks, status: &Mutex<Status>, broker_failing: bool) {
    let parts: Vec<Status> = lock(tasks).values().map(|t| lock(&t.status).clone()).collect();
    let mut s = lock(status);
    crate::pipeline::status::merge(&parts, &mut s);
    if broker_failing && !s.failing.iter().any(|f| f == "the source") {
        s.failing.push("the source".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_start_is_a_time_or_one_checkpoint_per_partition() {
        assert_eq!(parse_start("").unwrap(), StartFrom::Newest);
        assert_eq!(
            parse_start("@1700000000000").unwrap(),
            StartFrom::Before(1_700_000_000_000)
        );
        assert_eq!(
            parse_start("@2023-11-14T22:13:20Z").unwrap(),
            StartFrom::Before(1_700_000_000_000)
        );
        assert_eq!(
            parse_start("0:1000000007, 3:chk-2000000001").unwrap(),
            StartFrom::Ids(BTreeMap::from([(0, 1_000_000_007), (3, 2_000_000_001)]))
        );
        let err = format!("{:#}", parse_start("42").unwrap_err());
        assert!(err.contains("@TIME") && err.contains("P:ID"), "{err}");
        assert!(parse_start("@yesterday").is_err());
        assert!(parse_start("x:1").is_err());
    }
}
