//! Hot deploys, applied by the event loop between two blocks.
//!
//! The watcher ([`crate::plugin::watch`]) has done everything slow (read,
//! compile, validate, instantiate) on its own thread; here the engine only
//! swaps, and the outcome goes to the history: the engine's, the API's, and
//! a JSON-lines file (`featherflow plugin history`).

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use super::StatusPublisher;
use crate::engine::{Engine, SwapRecord};
use crate::plugin::watch::PluginEvent;

/// What the watcher sends, and where its outcomes are written down.
pub struct Deploys {
    events: Receiver<PluginEvent>,
    /// `plugin-history.jsonl`, if kept.
    history_file: Option<PathBuf>,
}

impl Deploys {
    pub fn new(events: Receiver<PluginEvent>, history_file: Option<PathBuf>) -> Self {
        Self { events, history_file }
    }

    /// Apply every deploy waiting.
    /// Returns whether anything was applied (or refused).
    pub fn apply_pending(&mut self, engine: &mut Engine, status: Option<&StatusPublisher>) -> bool {
        let mut any = false;
        while let Ok(ev) = self.events.try_recv() {
            any = true;
            if let Some(rec) = apply(engine, ev) {
                if let Some(path) = &self.history_file {
                    append_history(path, &rec);
                }
                if let Some(status) = status {
                    status.deployed(rec);
                }
            }
        }
        any
    }
}

/// Apply one watcher event to an engine; returns the history record.
pub fn apply(engine: &mut Engine, event: PluginEvent) -> Option<SwapRecord> {
    match event {
        PluginEvent::Deploy {
            plugin,
            instance,
            noticed,
            reset,
            ..
        } => {
            engine.deploy(plugin, *instance, reset);
            Some(engine.annotate_last(&format!("{} ms from the file change", noticed.elapsed().as_millis())))
        }
        PluginEvent::Refused { path, reason } => Some(engine.refused(&path.display().to_string(), reason)),
        PluginEvent::Removed { view, .. } => engine.remove_view(&view),
    }
}

/// Append a swap record to the history file.
pub fn append_history(path: &std::path::Path, rec: &SwapRecord) {
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
