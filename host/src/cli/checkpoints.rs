//! `featherflow checkpoints`: list and show the checkpoints of a job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::format_ms;
use crate::config::{Assignment, Config, StoreLocation};
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
        /// With kafka.assignment = "group": the partition whose checkpoint
        /// it is (each partition has its own).
        #[arg(long)]
        partition: Option<u32>,
    },
}

/// Where the checkpoints are: `--dir` (a local store), else the
/// configuration's `checkpoint.url` or `checkpoint.dir`; with
/// `kafka.assignment = "group"`, each partition's store found there.
fn locations(config: Option<&Path>, dir: Option<String>) -> anyhow::Result<Vec<(Option<u32>, StoreLocation)>> {
    if let Some(d) = dir {
        return Ok(vec![(None, StoreLocation::Local(d))]);
    }
    let config = Config::load(config)?;
    let c = &config.checkpoint;
    if config.kafka.assignment != Assignment::Group {
        return Ok(vec![(None, c.store_dir().map_err(anyhow::Error::msg)?)]);
    }
    let found: Vec<u32> = match c.partition_store(0).map_err(anyhow::Error::msg)? {
        StoreLocation::S3(url) => {
            let root = url.trim_end_matches("/partition-0");
            crate::state::S3Store::open_read_only(root)?.partitions()?
        }
        StoreLocation::Dir(dir) | StoreLocation::Local(dir) => {
            let root = Path::new(dir.trim_end_matches("/partition-0"));
            match std::fs::read_dir(root) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("partition-")?.parse().ok())
                    .collect(),
                Err(_) => Vec::new(),
            }
        }
    };
    let mut out = Vec::new();
    for p in found {
        out.push((Some(p), c.partition_store(p).map_err(anyhow::Error::msg)?));
    }
    out.sort_by_key(|(p, _)| *p);
    Ok(out)
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
            let stores = locations(config.as_deref(), dir)?;
            let mut all = Vec::new();
            let mut dirs = Vec::new();
            for (_, at) in &stores {
                let (dir, store) = open_checkpoints(at)?;
                all.extend(match store {
                    Some(store) => store.list()?,
                    None => crate::state::SledStore::read_index(&dir)?,
                });
                dirs.push(dir);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>12}  {:<24}  {:>10}  {:>10}  {:<24}  plugins / offsets",
                "id", "taken", "size", "states", "watermark"
            );
            for m in &all {
                println!(
                    "{:>12}  {:<24}  {:>10}  {:>10}  {:<24}  {} / {}",
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
                match dirs.as_slice() {
                    [] => println!("(no partition store yet: no group member took a checkpoint)"),
                    d => println!("(no complete checkpoint in {})", d.join(", ")),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CheckpointsCommand::Show {
            id,
            config,
            dir,
            partition,
        } => {
            let n = crate::state::parse_checkpoint_ref(&id)
                .with_context(|| format!("{id:?} is not a checkpoint id or chk-ID path"))?;
            let stores = locations(config.as_deref(), dir)?;
            let at = match (stores.as_slice(), partition) {
                ([(None, at)], _) => at.clone(),
                (_, Some(p)) => stores
                    .iter()
                    .find(|(q, _)| *q == Some(p))
                    .map(|(_, at)| at.clone())
                    .with_context(|| format!("partition {p} has no checkpoint store"))?,
                (_, None) => anyhow::bail!(
                    "kafka.assignment = \"group\": each partition has its own checkpoints; say which with --partition N"
                ),
            };
            let (dir, store) = open_checkpoints(&at)?;
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
