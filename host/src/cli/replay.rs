//! `featherflow replay` and `featherflow plugin test`: a file of events
//! through the pipeline, every window fired at the end.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::{CommonArgs, load_config, open_log};
use crate::clock;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::pipeline::{Deploys, Pipeline, PipelineOptions};
use crate::plugin::{Limits, Plugin, PluginEngine};
use crate::sink::{Background, FeatureRecord, JsonlSink, LineRenderer, Sink, SinkError};
use crate::source::FileSource;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// JSON-lines events (`-` = stdin).
    #[arg(long)]
    pub events: String,
    /// Directory of .wasm plugins (plugins.dir).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Where fired windows go (`-` = stdout).
    #[arg(long, default_value = "-")]
    pub out: String,
    /// Write to Redis at this URL instead of JSON lines.
    #[arg(long)]
    pub redis: Option<String>,
    /// Watch the plugin directory and hot-swap plugins during the replay.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct PluginTestArgs {
    pub wasm: PathBuf,
    #[arg(long)]
    pub events: String,
    /// Expected output (JSON lines); exit 1 with a diff when the output differs.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Where the output goes (`-` = stdout; default: stdout unless --expect).
    #[arg(long)]
    pub out: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// An engine for a bounded replay of `source` with `plugins` into `sink`.
pub fn replay_engine(
    config: &Config,
    plugins: &[Arc<Plugin>],
    source: &str,
    sink: Box<dyn Sink>,
) -> anyhow::Result<Engine> {
    let mut engine = Engine::new(EngineConfig::from_config(config, clock::now_ms(), false), sink);
    engine.set_source(source);
    engine.set_dead_letter(open_log(&config.output.dead_letter, config)?);
    engine.set_late_log(open_log(&config.output.late, config)?);
    for p in plugins {
        engine.add_view(p.clone())?;
    }
    Ok(engine)
}

/// Run `plugins` over the file `events` into `sink` (applying `deploys`
/// between blocks); returns the engine, for its counters, after the end of
/// input fired every window.
pub fn replay_file(
    config: &Config,
    plugins: &[Arc<Plugin>],
    events: &str,
    sink: Box<dyn Sink>,
    deploys: Option<Deploys>,
) -> anyhow::Result<Engine> {
    let engine = replay_engine(config, plugins, events, sink)?;
    let source = FileSource::open(events)?;
    let mut pipeline = Pipeline::new(engine, Box::new(source), PipelineOptions::default());
    if let Some(d) = deploys {
        pipeline = pipeline.with_deploys(d);
    }
    pipeline.start(None)?;
    pipeline.run(&|| false)?;
    Ok(pipeline.into_engine())
}

/// Every plugin of `dir`; an error when none loads.
pub fn load_plugins(engine: &PluginEngine, dir: &std::path::Path, limits: Limits) -> anyhow::Result<Vec<Arc<Plugin>>> {
    let plugins = crate::plugin::load_dir(engine, dir, limits)?;
    if plugins.is_empty() {
        bail!(
            "no plugin could be loaded from {} (build them with `make build`)",
            dir.display()
        );
    }
    Ok(plugins)
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common)?;
    let dir = args
        .plugins
        .clone()
        .unwrap_or_else(|| PathBuf::from(&config.plugins.dir));
    let plugin_engine = PluginEngine::from_config(&config)?;
    let limits = Limits::from_config(&config);
    let plugins = load_plugins(&plugin_engine, &dir, limits)?;
    let deploys = if args.watch {
        let known = crate::plugin::watch::known(&plugins);
        let events = crate::plugin::watch::watch(&dir, plugin_engine.clone(), limits, known)?;
        Some(Deploys::new(events, None))
    } else {
        None
    };
    let started = Instant::now();
    let sink: Box<dyn Sink> = match &args.redis {
        // The pipeline waits for the sink's barrier at the end: done only
        // when Redis has everything.
        Some(url) => Box::new(crate::sink::RedisSink::start(
            url,
            config.redis.batch,
            crate::sink::redis::Form::of(&config.redis),
        )?),
        // Lines are rendered and written on a thread of their own.
        None => Box::new(Background::start(
            &args.out,
            JsonlSink::create(&args.out, args.common.format)?,
        )?),
    };
    let engine = replay_file(&config, &plugins, &args.events, sink, deploys)?;
    print_summary(&engine, started.elapsed());
    for rec in engine.history() {
        eprintln!(
            "  plugin {} {}: {} -> {} {} (pause {} us)",
            rec.view,
            rec.outcome,
            rec.from.as_deref().unwrap_or("-"),
            rec.to.as_deref().unwrap_or("-"),
            rec.reason,
            rec.pause_us
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The end-of-run summary on stderr.
pub fn print_summary(engine: &Engine, elapsed: std::time::Duration) {
    let s = &engine.stats;
    let secs = elapsed.as_secs_f64();
    eprintln!(
        "records read: {}  events: {}  bad: {}  elapsed: {:.2}s  ({:.0} records/s)",
        s.records_read,
        s.events,
        s.bad_records,
        secs,
        s.records_read as f64 / secs.max(1e-9)
    );
    for (reason, n) in &s.bad_by_reason {
        eprintln!("  bad {reason}: {n}");
    }
    for v in engine.views() {
        let st = &v.stats;
        eprintln!(
            "  view {}: windows fired {}  late {}  plugin errors {}  dead-lettered {}{}",
            v.name(),
            st.windows_fired,
            st.late,
            st.plugin_errors,
            st.dead_lettered,
            v.disabled
                .as_deref()
                .map(|r| format!("  DISABLED: {r}"))
                .unwrap_or_default()
        );
    }
}

pub fn plugin_test(args: PluginTestArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common)?;
    let plugin_engine = PluginEngine::from_config(&config)?;
    let plugin = Arc::new(plugin_engine.load_file(&args.wasm, Limits::from_config(&config))?);
    let out_path = args.out.clone().unwrap_or_else(|| {
        if args.expect.is_some() {
            String::new()
        } else {
            "-".into()
        }
    });
    let collected = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = CollectSink {
        lines: collected.clone(),
        renderer: LineRenderer::new(args.common.format),
        line: String::new(),
    };
    let started = Instant::now();
    let engine = replay_file(&config, &[plugin], &args.events, Box::new(sink), None)?;
    let lines = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    if !out_path.is_empty() {
        let mut out: Box<dyn Write> = if out_path == "-" {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(std::fs::File::create(&out_path).with_context(|| format!("--out {out_path}"))?)
        };
        for l in &lines {
            writeln!(out, "{l}")?;
        }
    }
    print_summary(&engine, started.elapsed());
    if let Some(expect) = &args.expect {
        let text = std::fs::read_to_string(expect).with_context(|| format!("--expect {}", expect.display()))?;
        let diff = crate::testing::diff_jsonl(&text, &lines);
        if diff.is_empty() {
            eprintln!("OK: output matches {} ({} lines)", expect.display(), lines.len());
        } else {
            eprintln!("output differs from {}:\n{diff}", expect.display());
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps rendered lines in memory (for `plugin test`).
struct CollectSink {
    lines: Arc<Mutex<Vec<String>>>,
    renderer: LineRenderer,
    line: String,
}

impl Sink for CollectSink {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for r in records {
            self.renderer.render(r, &mut self.line);
            lines.push(self.line.clone());
        }
        Ok(())
    }
}
