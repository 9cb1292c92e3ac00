//! The wiring of every command: the only module that knows every stage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::event::ParserConfig;
use crate::plugin::{Limits, Plugin, PluginEngine};
use crate::sink::{CountingSink, JsonlFormat, JsonlSink, RecordLog, Sink};
use crate::source::file;

#[derive(Debug, Parser)]
#[command(
    name = "featherflow",
    version,
    about = "A streaming feature engine with WebAssembly feature plugins"
)]
pub struct Cli {
    /// Log format (levels via RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a file of events through the plugins; write one JSON line per fired window.
    Replay(ReplayArgs),
    /// Work with one plugin: test it against recorded events, inspect it.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Write a deterministic event log (the benchmark's input).
    Gen(GenArgs),
    /// Benchmark: generate a log and replay it through the plugins into a counting sink.
    Bench(BenchArgs),
    /// Run the job: consume Kafka, write features to Redis, checkpoint, recover.
    Run(RunArgs),
    /// Send events to Kafka, keyed by user_id: generated, or from a file.
    Produce(ProduceArgs),
    /// Inspect checkpoints.
    #[command(subcommand)]
    Checkpoints(CheckpointsCommand),
}

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

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    #[arg(long, default_value = "ecommerce-events")]
    pub topic: String,
    /// Send the lines of this file instead of generating events.
    #[arg(long)]
    pub from_file: Option<String>,
    /// Events to generate.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,
    /// Events per second of wall time (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 500)]
    pub event_rate: u64,
    #[arg(long, default_value_t = 5.0)]
    pub disorder_seconds: f64,
    #[arg(long, default_value_t = 0.0)]
    pub malformed: f64,
    /// Fraction of events out of order (by up to --disorder-seconds).
    #[arg(long, default_value_t = 1.0)]
    pub out_of_order: f64,
    /// Fraction of late events (stamped 30 minutes in the past).
    #[arg(long, default_value_t = 0.0)]
    pub late: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop after this long (e.g. 10m), whatever --count says.
    #[arg(long)]
    pub duration: Option<humantime::Duration>,
    /// Also write every produced line to this file (JSON lines).
    #[arg(long)]
    pub to_file: Option<String>,
    /// A fixed scenario instead of random events: `sessions` reproduces the
    /// Flink project's notebook checks and prints the Redis keys to look at.
    #[arg(long)]
    pub scenario: Option<String>,
    /// One message per produce batch (exact high watermarks on tansu; slow).
    #[arg(long)]
    pub exact: bool,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointsCommand {
    /// Complete checkpoints, oldest first.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Checkpoint directory (checkpoint.dir).
        #[arg(long)]
        dir: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One checkpoint in detail (verifies its chunks).
    Show {
        /// An id, or a path ending in chk-ID.
        id: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        dir: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Configuration file (TOML); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Zone of timestamps without an offset: UTC, +09:00, ... (time.zone).
    #[arg(long)]
    pub time_zone: Option<String>,
    /// Bad records with reason and line number (output.dead-letter; `-` = stderr).
    #[arg(long)]
    pub dead_letter: Option<String>,
    /// Late events (output.late).
    #[arg(long)]
    pub late: Option<String>,
    /// Output line shape.
    #[arg(long, value_enum, default_value_t = JsonlFormat::Record)]
    pub format: JsonlFormat,
    /// Events per plugin call (engine.batch-size).
    #[arg(long)]
    pub batch_size: Option<usize>,
}

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

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run one plugin in isolation over recorded events.
    Test(PluginTestArgs),
    /// Deploys, swaps, refusals and rollbacks of a running job (newest last).
    History {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print what a plugin declares.
    Inspect {
        wasm: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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

#[derive(Debug, Args, Clone)]
pub struct GenArgs {
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Events are up to this many seconds out of order.
    #[arg(long, default_value_t = 9.0)]
    pub disorder_seconds: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of malformed lines.
    #[arg(long, default_value_t = 0.0)]
    pub malformed: f64,
    /// Fraction of events that are out of order (by up to --disorder-seconds).
    #[arg(long, default_value_t = 1.0)]
    pub out_of_order: f64,
    /// Fraction of late events: stamped 30 minutes in the past.
    #[arg(long, default_value_t = 0.0)]
    pub late: f64,
    #[arg(long, default_value = "-")]
    pub out: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub gen_args: GenArgs,
    /// Directory of .wasm plugins.
    #[arg(long, default_value = "plugins")]
    pub plugins: PathBuf,
    /// Where to cache the generated log.
    #[arg(long, default_value = "data/bench")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Replay the log this many times and print each run and the median
    /// throughput (ignored with --checkpoints).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Measure checkpoints instead: replay 90 % of the log (every window
    /// still open), checkpoint to sled as `run` does while the last 10 %
    /// is replayed, and report the pause, encode and write times, then
    /// restore the checkpoint into a fresh engine.
    #[arg(long)]
    pub checkpoints: bool,
}

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test(args),
        Command::Plugin(PluginCommand::Inspect { wasm, json }) => plugin_inspect(&wasm, json),
        Command::Plugin(PluginCommand::History { config, json }) => plugin_history(config.as_deref(), json),
        Command::Gen(args) => {
            crate::bench::generate(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => crate::bench::run(args),
        Command::Run(args) => run_command(args),
        Command::Produce(args) => {
            crate::produce::produce(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoints(c) => checkpoints_command(c),
    }
}

/// The config, with the command-line flags applied on top.
fn load_config(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(zone) = &common.time_zone {
        crate::event::parse_zone(zone).map_err(|e| anyhow::anyhow!("--time-zone: {e}"))?;
        config.time.zone = zone.clone();
    }
    if let Some(p) = &common.dead_letter {
        config.output.dead_letter = p.clone();
    }
    if let Some(p) = &common.late {
        config.output.late = p.clone();
    }
    if let Some(n) = common.batch_size {
        if n == 0 {
            bail!("--batch-size: must be at least 1");
        }
        config.engine.batch_size = n;
    }
    Ok(config)
}

/// Engine settings for a bounded input (no idle partitions).
pub fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        batch_size: config.engine.batch_size,
        parser: ParserConfig {
            zone_offset_ms: config.zone_offset_ms(),
            max_future_skew_ms: Some(config.time.max_future_skew.as_millis() as i64),
            now_ms: now_ms(),
        },
        out_of_orderness_ms: config.time.out_of_orderness.as_millis() as i64,
        idle_timeout_ms: None,
        max_plugin_failures: config.plugins.max_failures,
    }
}

pub fn limits(config: &Config) -> Limits {
    Limits {
        memory_bytes: config.plugins.memory_limit_mib << 20,
        deadline: config.plugins.batch_deadline,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Load every `.wasm` in `dir`, in name order. A plugin that fails to load is
/// reported and skipped; the rest run.
pub fn load_plugin_dir(engine: &PluginEngine, dir: &Path, limits: Limits) -> anyhow::Result<Vec<Arc<Plugin>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("plugin directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    for path in paths {
        match engine.load_file(&path, limits) {
            Ok(p) => {
                if let Some(other) = plugins.iter().find(|o| o.declaration.view == p.declaration.view) {
                    tracing::error!(path = %path.display(), view = %p.declaration.view, other = %other.source, "plugin refused: another plugin already serves this view");
                    continue;
                }
                tracing::info!(path = %path.display(), view = %p.declaration.view, version = %p.declaration.version, hash = %p.short_hash(), window = %p.declaration.window, load_ms = p.compile_time.as_millis() as u64, "plugin loaded");
                plugins.push(Arc::new(p));
            }
            Err(e) => tracing::error!(path = %path.display(), error = %e, "plugin refused"),
        }
    }
    Ok(plugins)
}

fn open_log(path: &str) -> anyhow::Result<RecordLog> {
    if path.is_empty() {
        Ok(RecordLog::disabled())
    } else {
        RecordLog::open(path).with_context(|| format!("cannot open {path}"))
    }
}

/// Run `plugins` over the file `events` into `sink`; returns the engine (for
/// its counters) after the end of input fired every window.
pub fn replay_file(
    config: &Config,
    plugins: &[Arc<Plugin>],
    events: &str,
    sink: Box<dyn Sink>,
) -> anyhow::Result<Engine> {
    replay_file_watching(config, plugins, events, sink, None)
}

/// [`replay_file`], applying hot deploys from `watch` between records.
pub fn replay_file_watching(
    config: &Config,
    plugins: &[Arc<Plugin>],
    events: &str,
    sink: Box<dyn Sink>,
    watch: Option<&std::sync::mpsc::Receiver<crate::plugin::watch::PluginEvent>>,
) -> anyhow::Result<Engine> {
    let mut engine = Engine::new(engine_config(config), sink);
    engine.set_source(events);
    engine.set_dead_letter(open_log(&config.output.dead_letter)?);
    engine.set_late_log(open_log(&config.output.late)?);
    for p in plugins {
        engine.add_view(p.clone())?;
    }
    file::for_each_block(events, |block| {
        if let Some(rx) = watch {
            while let Ok(ev) = rx.try_recv() {
                crate::plugin::watch::apply(&mut engine, ev);
            }
        }
        engine.process_lines(0, block, 0)
    })?;
    engine.finish()?;
    Ok(engine)
}

fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common)?;
    let dir = args
        .plugins
        .clone()
        .unwrap_or_else(|| PathBuf::from(&config.plugins.dir));
    let plugin_engine = PluginEngine::new()?;
    let plugins = load_plugin_dir(&plugin_engine, &dir, limits(&config))?;
    if plugins.is_empty() {
        bail!(
            "no plugin could be loaded from {} (build them with `make build`)",
            dir.display()
        );
    }
    let watch = if args.watch {
        let known = plugins
            .iter()
            .map(|p| (PathBuf::from(&p.source), (p.declaration.view.clone(), p.hash.clone())))
            .collect();
        Some(crate::plugin::watch::watch(
            &dir,
            plugin_engine.clone(),
            limits(&config),
            known,
        )?)
    } else {
        None
    };
    let started = Instant::now();
    let engine = match &args.redis {
        Some(url) => {
            let redis = crate::sink::RedisSink::start(url, config.redis.batch)?;
            let engine =
                replay_file_watching(&config, &plugins, &args.events, Box::new(redis.clone()), watch.as_ref())?;
            // Done only when Redis has everything.
            let _ = redis.barrier().recv();
            engine
        }
        None => {
            let sink = JsonlSink::create(&args.out, args.common.format)?;
            replay_file_watching(&config, &plugins, &args.events, Box::new(sink), watch.as_ref())?
        }
    };
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

fn plugin_test(args: PluginTestArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.common)?;
    let plugin_engine = PluginEngine::new()?;
    let plugin = Arc::new(plugin_engine.load_file(&args.wasm, limits(&config))?);
    let out_path = args.out.clone().unwrap_or_else(|| {
        if args.expect.is_some() {
            String::new()
        } else {
            "-".into()
        }
    });
    let collected = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = CollectSink {
        lines: collected.clone(),
        format: args.common.format,
        line: String::new(),
    };
    let started = Instant::now();
    let engine = replay_file(&config, &[plugin], &args.events, Box::new(sink))?;
    let lines = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    if !out_path.is_empty() {
        let mut out: Box<dyn std::io::Write> = if out_path == "-" {
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
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    format: JsonlFormat,
    line: String,
}

impl Sink for CollectSink {
    fn write(&mut self, records: &[crate::sink::FeatureRecord]) -> Result<(), crate::sink::SinkError> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for r in records {
            JsonlSink::render(r, self.format, &mut self.line);
            lines.push(self.line.clone());
        }
        Ok(())
    }
}

fn plugin_inspect(wasm: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let plugin_engine = PluginEngine::new()?;
    let p = plugin_engine.load_file(wasm, Limits::default())?;
    let d = &p.declaration;
    if json {
        let v = serde_json::json!({
            "path": wasm.display().to_string(),
            "sha256": p.hash,
            "declaration": d,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("plugin:        {}", wasm.display());
    println!("sha256:        {}", p.hash);
    println!("view:          {}", d.view);
    println!("version:       {}", d.version);
    println!("description:   {}", d.description);
    println!("window:        {}", d.window);
    println!("key field:     {}", d.key_field);
    println!("ttl:           {} s", d.ttl_seconds);
    println!("state version: {}", d.state_version);
    println!("fields:");
    for f in d.fields.iter() {
        println!("  {:<24} {:?}", f.name, f.ty);
    }
    println!(
        "validated:     yes (world, declaration, dry run) in {} ms",
        p.compile_time.as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

/// Keep `CountingSink` readable after a run.
pub struct SharedCounting(pub Arc<std::sync::Mutex<CountingSink>>);

impl Sink for SharedCounting {
    fn write(&mut self, records: &[crate::sink::FeatureRecord]) -> Result<(), crate::sink::SinkError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(records)
    }
}

fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_signal_listener(shutdown.clone())?;
    let opts = crate::job::JobOptions {
        bounded: args.bounded,
        from_checkpoint: args.from_checkpoint,
        no_api: args.no_api,
    };
    let summary = crate::job::run_job(&config, opts, shutdown)?;
    let secs = summary.busy.as_secs_f64().max(1e-9);
    eprintln!(
        "run: {} events in {:.2} s ({:.0} events/s); checkpoints {} (max pause {:.1} ms, max duration {} ms, max open window parts {}); fire-to-Redis latency {}",
        summary.events,
        secs,
        summary.events as f64 / secs,
        summary.checkpoints,
        summary.max_pause.as_secs_f64() * 1000.0,
        summary.max_checkpoint.as_millis(),
        summary.max_open_states,
        summary
            .fire_to_redis_ms
            .map(|(p50, p99, max)| format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"))
            .unwrap_or_else(|| "n/a".into())
    );
    tracing::info!(events = summary.events, checkpoints = summary.checkpoints, last = ?summary.last_checkpoint, max_pause_ms = summary.max_pause.as_secs_f64() * 1000.0, max_checkpoint_ms = summary.max_checkpoint.as_millis() as u64, "job stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT/SIGTERM set `flag`; the job loop notices, takes a final
/// checkpoint and returns. (The loop itself installs no handler.)
fn spawn_signal_listener(flag: Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
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
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    })?;
    Ok(())
}

fn checkpoint_dir(config: Option<&Path>, dir: Option<String>) -> anyhow::Result<String> {
    Ok(match dir {
        Some(d) => d,
        None => Config::load(config)?.checkpoint.dir,
    })
}

/// The checkpoint store, or — when a running job holds its lock — `None`
/// after saying so: the caller reads the store's index instead.
fn open_checkpoints(dir: &str) -> anyhow::Result<Option<crate::state::SledStore>> {
    match crate::state::SledStore::open(dir) {
        Ok(store) => Ok(Some(store)),
        Err(e) if e.to_string().contains("lock") && Path::new(dir).join("index.json").exists() => {
            eprintln!(
                "note: {dir} is in use (a running job?): showing its index as of the last checkpoint, chunks not verified"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn format_ms(ms: i64) -> String {
    match ms {
        i64::MIN => "none".into(),
        i64::MAX => "end of input".into(),
        ms => {
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
                .to_string()
        }
    }
}

fn checkpoints_command(c: CheckpointsCommand) -> anyhow::Result<ExitCode> {
    use crate::state::CheckpointStore;
    match c {
        CheckpointsCommand::List { config, dir, json } => {
            let dir = checkpoint_dir(config.as_deref(), dir)?;
            let all = match open_checkpoints(&dir)? {
                Some(store) => store.list()?,
                None => crate::state::SledStore::read_index(&dir)?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>6}  {:<24}  {:>10}  {:>10}  {:<24}  plugins / offsets",
                "id", "taken", "size", "states", "watermark"
            );
            for m in &all {
                println!(
                    "{:>6}  {:<24}  {:>10}  {:>10}  {:<24}  {} / {}",
                    m.id,
                    format_ms(m.created_ms),
                    m.size_bytes,
                    m.open_states,
                    format_ms(m.watermark),
                    m.plugins
                        .iter()
                        .map(|p| format!("{}@{}", p.view, p.version))
                        .collect::<Vec<_>>()
                        .join(","),
                    m.offsets
                        .iter()
                        .map(|(p, o)| format!("{p}:{o}"))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            if all.is_empty() {
                println!("(no complete checkpoint in {dir})");
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointsCommand::Show { id, config, dir } => {
            let dir = checkpoint_dir(config.as_deref(), dir)?;
            let n = crate::state::parse_checkpoint_ref(&id)
                .with_context(|| format!("{id:?} is not a checkpoint id or chk-ID path"))?;
            let (meta, verified) = match open_checkpoints(&dir)? {
                Some(store) => (store.read(n)?.0, "verified"),
                None => (
                    crate::state::SledStore::read_index(&dir)?
                        .into_iter()
                        .find(|m| m.id == n)
                        .with_context(|| format!("{dir}/chk-{n} is not in the index"))?,
                    "not verified: the store is in use",
                ),
            };
            println!("checkpoint:  {dir}/chk-{}", meta.id);
            println!("taken:       {}", format_ms(meta.created_ms));
            println!("format:      {}", meta.format);
            println!("topic:       {}", meta.topic);
            println!("watermark:   {} ({})", meta.watermark, format_ms(meta.watermark));
            for (p, wm) in &meta.partition_watermarks {
                println!("  partition {p} watermark {}", format_ms(*wm));
            }
            println!(
                "offsets:     {}",
                meta.offsets
                    .iter()
                    .map(|(p, o)| format!("{p}:{o}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "size:        {} bytes in {} chunks ({verified})",
                meta.size_bytes,
                meta.chunks.len()
            );
            println!("states:      {} open window parts", meta.open_states);
            println!("took:        {} ms", meta.duration_ms);
            println!("plugins:");
            for p in &meta.plugins {
                println!(
                    "  {} {} state v{} {} sha256 {}",
                    p.view, p.version, p.state_version, p.window, p.hash
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn plugin_history(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let path = Path::new(&config.checkpoint.dir).join("plugin-history.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("(no plugin history in {})", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    for line in text.lines() {
        let rec: crate::engine::SwapRecord =
            serde_json::from_str(line).with_context(|| format!("{}: {line}", path.display()))?;
        if json {
            println!("{line}");
        } else {
            println!(
                "{}  {:<18} {:<11} {} -> {}  {}",
                format_ms(rec.at_ms),
                rec.view,
                rec.outcome,
                rec.from.as_deref().unwrap_or("-"),
                rec.to.as_deref().unwrap_or("-"),
                rec.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
