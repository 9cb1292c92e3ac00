//! `featherflow run`: Kafka in, Redis out, exactly once.
//!
//! Builds the pipeline — Kafka source, Redis sink, sled checkpoints, the
//! plugin watcher, the API — and runs it until SIGINT/SIGTERM (or, with
//! `--bounded`, until the topic is read to the end offsets found at start).
//! Restores the newest complete checkpoint (or the one asked for) first:
//! every write is a deterministic upsert, so Redis ends exactly as after
//! an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::open_log;
use super::replay::load_plugins;
use crate::api::{ApiState, Member, Status};
use crate::clock;
use crate::config::{Assignment, Config};
use crate::engine::{Engine, EngineConfig};
use crate::pipeline::checkpoint::CheckpointStats;
use crate::pipeline::{Checkpointer, Deploys, Pipeline, PipelineOptions, StatusPublisher, Summary};
use crate::plugin::{Limits, PluginEngine};
use crate::sink::RedisSink;
use crate::sink::redis::RedisStats;
use crate::source::KafkaSource;
use crate::state::{CheckpointStore, parse_checkpoint_ref};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Restore this checkpoint (an id, or a path ending in chk-ID) instead of the latest.
    #[arg(long)]
    pub from_checkpoint: Option<String>,
    /// Read the topic up to its end offsets at start, fire every window, stop.
    #[arg(long)]
    pub bounded: bool,
    /// Do not serve the dashboard and API (api.listen).
    #[arg(long)]
    pub no_api: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    if config.kafka.assignment == Assignment::Group {
        return super::run_group::run(args, config);
    }
    let store: Arc<dyn CheckpointStore> = crate::state::open_store(&config.checkpoint)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let next = store.clone();
    spawn_signal_listener(
        shutdown.clone(),
        config.engine.shutdown_timeout,
        Arc::new(move || next_start(next.as_ref())),
    )?;
    let stop = || shutdown.load(Ordering::Relaxed);

    let plugin_engine = PluginEngine::from_config(&config)?;
    let limits = Limits::from_config(&config);
    let plugins_dir = Path::new(&config.plugins.dir);
    let plugins = load_plugins(&plugin_engine, plugins_dir, limits)?;
    let redis = RedisSink::from_config(&config.redis)?;
    let redis_stats = redis.stats.clone();
    let status = job_status(&config, store.list()?);
    if !args.no_api {
        spawn_api(&config, status.clone(), &redis, &plugin_engine, limits)?;
    }
    let mut engine = Engine::new(
        EngineConfig::from_config(&config, clock::now_ms(), !args.bounded),
        Box::new(redis),
    );
    engine.set_source(&config.kafka.topic);
    engine.set_dead_letter(open_log(&config.output.dead_letter, &config)?);
    engine.set_late_log(open_log(&config.output.late, &config)?);
    for p in &plugins {
        engine.add_view(p.clone())?;
    }

    // Hot deploys: the watcher validates off the hot path; the loop swaps.
    let known = crate::plugin::watch::known(&plugins);
    let events = crate::plugin::watch::watch(plugins_dir, plugin_engine.clone(), limits, known)?;
    let deploys = Deploys::new(
        events,
        Some(Path::new(&config.checkpoint.dir).join("plugin-history.jsonl")),
    );

    let mut source = KafkaSource::connect(&config.kafka, &stop)?;
    if args.bounded {
        source = source.bounded()?;
    }
    let checkpoints = Checkpointer::new(
        store.clone(),
        &config.kafka.topic,
        config.checkpoint.interval,
        config.checkpoint.retain,
    )?;
    let mut pipeline = Pipeline::new(engine, Box::new(source), pipeline_options(&config))
        .with_deploys(deploys)
        .with_checkpoints(checkpoints)
        .with_status(StatusPublisher::new(status));

    // Restore: the checkpoint asked for, else the newest complete one.
    let wanted = args
        .from_checkpoint
        .clone()
        .or_else(|| Some(config.restore.path.clone()).filter(|s| !s.is_empty()));
    let from = match wanted {
        Some(r) => Some(
            parse_checkpoint_ref(&r)
                .with_context(|| format!("--from-checkpoint {r:?}: expected an id or a path ending in chk-ID"))?,
        ),
        None => None,
    };
    let started = Instant::now();
    pipeline.start(from)?;
    let summary = pipeline.run(&stop)?.clone();
    let c = pipeline.checkpoints().map(|c| c.stats().clone()).unwrap_or_default();
    // The process ends now: closing the consumer waits for a broker that
    // may be gone (librdkafka's close), and the partitions were assigned,
    // not subscribed, so there is no group to leave. Whatever the pipeline
    // holds goes with the process.
    std::mem::forget(pipeline);
    report(&summary, &c, &redis_stats);
    tracing::info!(events = summary.records, checkpoints = c.completed, last = ?c.last_id, restarts = summary.restarts, max_pause_ms = c.max_pause.as_secs_f64() * 1000.0, max_checkpoint_ms = c.max_duration.as_millis() as u64, uptime_s = started.elapsed().as_secs(), "job stopped");
    if summary.final_checkpoint_missed {
        // Said in the log already, with the checkpoint a restart restores.
        return Ok(ExitCode::from(EXIT_NO_FINAL_CHECKPOINT));
    }
    Ok(ExitCode::SUCCESS)
}

/// The status the API shows, before the pipeline publishes.
pub(super) fn job_status(config: &Config, checkpoints: Vec<crate::state::CheckpointMeta>) -> Arc<Mutex<Status>> {
    Arc::new(Mutex::new(Status {
        started_ms: clock::now_ms(),
        topic: config.kafka.topic.clone(),
        checkpoint_interval_ms: config.checkpoint.interval.as_millis() as u64,
        checkpoints,
        member: Member::of(config),
        ..Status::default()
    }))
}

/// The pipeline's settings under `run`.
pub(super) fn pipeline_options(config: &Config) -> PipelineOptions {
    PipelineOptions {
        finish_at_end: true,
        final_checkpoint: true,
        // Within the shutdown timeout, with a margin for the rest of the
        // way out (the watchdog ends the process at the timeout itself).
        final_checkpoint_timeout: config
            .engine
            .shutdown_timeout
            .saturating_sub(std::time::Duration::from_secs(2))
            .max(std::time::Duration::from_millis(500)),
        ..PipelineOptions::default()
    }
}

/// Serve the dashboard and the API over `status`.
pub(super) fn spawn_api(
    config: &Config,
    status: Arc<Mutex<Status>>,
    redis: &RedisSink,
    plugin_engine: &PluginEngine,
    limits: Limits,
) -> anyhow::Result<()> {
    crate::api::spawn(
        &config.api.listen,
        ApiState {
            status,
            redis: redis.stats.clone(),
            admin: (!config.api.token.is_empty()).then(|| {
                Arc::new(crate::api::Admin {
                    token: config.api.token.clone(),
                    plugins_dir: PathBuf::from(&config.plugins.dir),
                    engine: plugin_engine.clone(),
                    limits,
                })
            }),
        },
    )?;
    Ok(())
}

/// The line `run` ends with: events, checkpoints, fire-to-Redis latency.
pub(super) fn report(summary: &Summary, c: &CheckpointStats, redis_stats: &RedisStats) {
    let secs = summary.busy.as_secs_f64().max(1e-9);
    eprintln!(
        "run: {} events in {:.2} s ({:.0} events/s); checkpoints {} (max pause {:.1} ms, max duration {} ms, max open window parts {}); fire-to-Redis latency {}",
        summary.records,
        secs,
        summary.records as f64 / secs,
        c.completed,
        c.max_pause.as_secs_f64() * 1000.0,
        c.max_duration.as_millis(),
        c.max_open_states,
        redis_stats
            .fire_to_ack_percentiles()
            .map(|(p50, p99, max)| format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"))
            .unwrap_or_else(|| "n/a".into())
    );
}

/// Stopped, but without the final checkpoint: the next start restores an
/// earlier one and reads again from its offsets (nothing is lost).
pub(super) const EXIT_NO_FINAL_CHECKPOINT: u8 = 3;

/// The checkpoint a restart restores, for people.
fn next_start(store: &dyn CheckpointStore) -> String {
    match store.list().ok().and_then(|mut l| l.pop()) {
        Some(m) => store.checkpoint_path(m.id),
        None => {
            "no checkpoint (none was taken yet): it reads from the group's committed offsets, else the earliest".into()
        }
    }
}

/// SIGINT/SIGTERM set `flag`; the pipeline notices, takes a final
/// checkpoint and returns. (The pipeline itself installs no handler.) A
/// watchdog then ends the process at `timeout` whatever blocks (Redis or the
/// broker gone), and a second signal ends it at once; either way a
/// checkpoint is complete or absent, never partial, and the log says which
/// one the next start restores.
pub(super) fn spawn_signal_listener(
    flag: Arc<AtomicBool>,
    timeout: Duration,
    next_start: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async move {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
            let mut received = 0;
            loop {
                let name = tokio::select! {
                    _ = tokio::signal::ctrl_c() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                received += 1;
                if received == 1 {
                    tracing::info!(timeout_s = timeout.as_secs_f64(), "{name} received: stopping with a final checkpoint (a second signal exits at once)");
                    flag.store(true, Ordering::Relaxed);
                    let next_start = next_start.clone();
                    let watchdog = std::thread::Builder::new().name("shutdown-watchdog".into()).spawn(move || {
                        std::thread::sleep(timeout);
                        let next = next_start();
                        tracing::error!("shutdown did not complete within {} s (engine.shutdown-timeout): exiting now; the next start restores {next}", timeout.as_secs_f64());
                        eprintln!("featherflow: shutdown timed out after {} s; the next start restores {next}", timeout.as_secs_f64());
                        std::process::exit(EXIT_NO_FINAL_CHECKPOINT as i32);
                    });
                    if let Err(e) = watchdog {
                        tracing::error!(error = %e, "cannot start the shutdown watchdog");
                    }
                } else {
                    let next = next_start();
                    tracing::error!("second signal ({name}): exiting at once; the next start restores {next}");
                    eprintln!("featherflow: exiting at once ({name}); the next start restores {next}");
                    std::process::exit(130);
                }
            }
        });
    })?;
    Ok(())
}
