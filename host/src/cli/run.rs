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
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::open_log;
use super::replay::load_plugins;
use crate::api::{ApiState, Status};
use crate::clock;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::pipeline::{Checkpointer, Deploys, Pipeline, PipelineOptions, StatusPublisher};
use crate::plugin::{Limits, PluginEngine};
use crate::sink::RedisSink;
use crate::source::KafkaSource;
use crate::state::{CheckpointStore, SledStore, parse_checkpoint_ref};

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
    let shutdown = Arc::new(AtomicBool::new(false));
    spawn_signal_listener(shutdown.clone())?;
    let stop = || shutdown.load(Ordering::Relaxed);

    let store: Arc<dyn CheckpointStore> = Arc::new(SledStore::open(&config.checkpoint.dir)?);
    let plugin_engine = PluginEngine::new()?;
    let limits = Limits::from_config(&config);
    let plugins_dir = Path::new(&config.plugins.dir);
    let plugins = load_plugins(&plugin_engine, plugins_dir, limits)?;
    let redis = RedisSink::start(&config.redis.url, config.redis.batch)?;
    let redis_stats = redis.stats.clone();
    let status = Arc::new(Mutex::new(Status {
        started_ms: clock::now_ms(),
        topic: config.kafka.topic.clone(),
        checkpoint_interval_ms: config.checkpoint.interval.as_millis() as u64,
        checkpoints: store.list()?,
        ..Status::default()
    }));
    if !args.no_api {
        crate::api::spawn(
            &config.api.listen,
            ApiState {
                status: status.clone(),
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
    }
    let mut engine = Engine::new(
        EngineConfig::from_config(&config, clock::now_ms(), !args.bounded),
        Box::new(redis),
    );
    engine.set_source(&config.kafka.topic);
    engine.set_dead_letter(open_log(&config.output.dead_letter)?);
    engine.set_late_log(open_log(&config.output.late)?);
    for p in &plugins {
        engine.add_view(p.clone())?;
    }

    // Hot deploys: the watcher validates off the hot path; the loop swaps.
    let known = plugins
        .iter()
        .map(|p| (PathBuf::from(&p.source), (p.declaration.view.clone(), p.hash.clone())))
        .collect();
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
    let opts = PipelineOptions {
        finish_at_end: true,
        final_checkpoint: true,
        ..PipelineOptions::default()
    };
    let mut pipeline = Pipeline::new(engine, Box::new(source), opts)
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
    tracing::info!(events = summary.records, checkpoints = c.completed, last = ?c.last_id, restarts = summary.restarts, max_pause_ms = c.max_pause.as_secs_f64() * 1000.0, max_checkpoint_ms = c.max_duration.as_millis() as u64, uptime_s = started.elapsed().as_secs(), "job stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT/SIGTERM set `flag`; the pipeline notices, takes a final
/// checkpoint and returns. (The pipeline itself installs no handler.)
fn spawn_signal_listener(flag: Arc<AtomicBool>) -> anyhow::Result<()> {
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
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
            flag.store(true, Ordering::Relaxed);
        });
    })?;
    Ok(())
}
