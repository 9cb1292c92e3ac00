//! `featherflow checkpoints`: list and show the checkpoints of a job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::format_ms;
use crate::config::{Config, StoreLocation};
use crate::state::CheckpointStore;

#[derive(Debug, Subcommand)]
pub enum CheckpointsCommand {
    /// Complete checkpoints, oldest first.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
        /// A local checkpoint store (checkpoint.dir), instead of the
        /// configuration's.
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

/// Where the checkpoints are: `--dir` (a local store), else the
/// configuration's `checkpoint.url` or `checkpoint.dir`.
fn location(config: Option<&Path>, dir: Option<String>) -> anyhow::Result<StoreLocation> {
    Ok(match dir {
        Some(d) => StoreLocation::Local(d),
        None => Config::load(config)?
            .checkpoint
            .store_dir()
            .map_err(anyhow::Error::msg)?,
    })
}

/// Every checkpoint's metadata, and whether chunks can be verified: a local
/// store a running job holds is read from its index instead (after saying
/// so); a directory store is read beside the job.
fn open_checkpoints(at: &StoreLocation) -> anyhow::Result<(String, Option<Box<dyn CheckpointStore>>)> {
    match at {
        StoreLocation::Dir(dir) => Ok((
            dir.clone(),
            Some(Box::new(crate::state::DirStore::open_read_only(dir)?)),
        )),
        StoreLocation::S3(url) => Ok((url.clone(), Some(Box::new(crate::state::S3Store::open_read_only(url)?)))),
        StoreLocation::Local(dir) => match crate::state::SledStore::open(dir) {
            Ok(store) => Ok((dir.clone(), Some(Box::new(store)))),
            Err(crate::state::StateError::InUse { .. }) if Path::new(dir).join("index.json").exists() => {
                eprintln!(
                    "note: {dir} is in use (a running job?): showing its index as of the last checkpoint, chunks not verified"
                );
                Ok((dir.clone(), None))
            }
            Err(e) => Err(e.into()),
        },
    }
}

pub fn run(c: CheckpointsCommand) -> anyhow::Result<ExitCode> {
    match c {
        CheckpointsCommand::List { config, dir, json } => {
            let (dir, store) = open_checkpoints(&location(config.as_deref(), dir)?)?;
            let all = match store {
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
            let n = crate::state::parse_checkpoint_ref(&id)
                .with_context(|| format!("{id:?} is not a checkpoint id or chk-ID path"))?;
            let (dir, store) = open_checkpoints(&location(config.as_deref(), dir)?)?;
            let (meta, verified) = match store {
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
