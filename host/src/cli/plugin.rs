//! `featherflow plugin`: test a plugin against recorded events, inspect
//! what it declares, read the deploy history of a running job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::format_ms;
use super::replay::{PluginTestArgs, plugin_test};
use crate::config::Config;
use crate::plugin::{Limits, PluginEngine};

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
    /// Write a ready plugin project: a feature, its unit test, sample
    /// events and their expected output, the SDK and the contract.
    New(super::scaffold::NewArgs),
    /// Build a project made by `plugin new` into a component, installing
    /// the pinned toolchain of its language on first use.
    Build(super::scaffold::BuildArgs),
    /// Print what a plugin declares.
    Inspect {
        wasm: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(c: PluginCommand) -> anyhow::Result<ExitCode> {
    match c {
        PluginCommand::Test(args) => plugin_test(args),
        PluginCommand::New(args) => super::scaffold::new(args),
        PluginCommand::Build(args) => super::scaffold::build(args),
        PluginCommand::Inspect { wasm, json } => plugin_inspect(&wasm, json),
        PluginCommand::History { config, json } => plugin_history(config.as_deref(), json),
    }
}

fn plugin_inspect(wasm: &Path, json: bool) -> anyhow::Result<ExitCode> {
    // The compiled-component cache of the default configuration (and the
    // environment): an interpreted plugin compiles for seconds.
    let config = crate::config::Config::load(None)?;
    let plugin_engine = PluginEngine::from_config(&config)?;
    let p = plugin_engine.load_file(wasm, Limits::from_config(&config))?;
    let d = &p.declaration;
    if json {
        let v = serde_json::json!({
            "path": wasm.display().to_string(),
            "sha256": p.hash,
            "memory_limit_mib": p.limits.memory_bytes >> 20,
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
    println!("memory limit:  {} MiB", p.limits.memory_bytes >> 20);
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
