//! The command line: the only module that knows every stage.
//!
//! Each command has its file; each builds a pipeline (or a tool around
//! one) from the configuration and its flags. Nothing imports `cli`.
//!
//! - [`replay`]: `replay` and `plugin test` — a file through the plugins.
//! - [`run`]: `run` — Kafka in, Redis out, checkpoints, the API.
//! - [`plugin`]: `plugin inspect`, `plugin history`.
//! - [`checkpoints`]: `checkpoints list|show`.
//! - [`generate`], [`bench`], [`produce`]: tools around the engine: the event
//!   generator, the replay benchmark, and a Kafka producer.

pub mod bench;
pub mod checkpoints;
pub mod generate;
pub mod plugin;
pub mod produce;
pub mod replay;
pub mod run;
mod run_group;
pub mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::sink::{JsonlFormat, RecordLog};

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
    Replay(replay::ReplayArgs),
    /// Work with one plugin: test it against recorded events, inspect it.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Write a deterministic event log (the benchmark's input; no broker needed).
    Gen(generate::GenArgs),
    /// Benchmark: generate a log and replay it through the plugins into a counting sink.
    Bench(bench::BenchArgs),
    /// Run the job: consume Kafka, write features to Redis, checkpoint, recover.
    Run(run::RunArgs),
    /// Send events to Kafka, keyed by user_id: generated, or from a file.
    Produce(produce::ProduceArgs),
    /// Inspect checkpoints.
    #[command(subcommand)]
    Checkpoints(checkpoints::CheckpointsCommand),
}

/// Flags shared by the commands that replay a file.
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

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours for a terminal only: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay::replay(args),
        Command::Plugin(c) => plugin::run(c),
        Command::Gen(args) => {
            generate::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => bench::run(args),
        Command::Run(args) => run::run(args),
        Command::Produce(args) => {
            produce::produce(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoints(c) => checkpoints::run(c),
    }
}

/// The config, with the command-line flags applied on top (the last step
/// of the precedence written down in `config`).
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

/// A record log at `path` (empty: off), rotated by the limits of `output.*`.
fn open_log(path: &str, config: &Config) -> anyhow::Result<RecordLog> {
    if path.is_empty() {
        Ok(RecordLog::disabled())
    } else {
        RecordLog::open_with(path, config.output.log_limits()).with_context(|| format!("cannot open {path}"))
    }
}

/// Format ms since the epoch for people.
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
