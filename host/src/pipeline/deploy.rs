//! Hot deploys, applied by the event loop between two blocks.
//!
//! The watcher ([`crate::plugin::watch`]) has done everything slow (read,
//! compile, validate, instantiate) on its own thread; here the engine only
//! swaps, and the outcome goes to the history: the engine's, the API's, and
//! a JSON-lines file (`featherflow plugin history`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::StatusPublisher;
use crate::engine::{Engine, SwapRecord};
use crate::plugin::watch::PluginEvent;

/// What the watcher sends, and where its outcomes are written down.
pub struct Deploys {
    events: Receiver<PluginEvent>,
    /// `plugin-history.jsonl`, if kept.
    history_file: Option<PathBuf>,
    /// Shared by engine cores that all apply the same deploys: per view,
    /// the last deploy written to the history file.
    written: Option<SharedHistory>,
}

/// What engine cores that apply the same deploys (one per partition) have
/// written to the history file, per view: each deploy is written once, by
/// whichever core applies it first, however partitions come and go.
pub type SharedHistory = Arc<Mutex<HashMap<String, String>>>;

impl Deploys {
    pub fn new(events: Receiver<PluginEvent>, history_file: Option<PathBuf>) -> Self {
        Self {
            events,
            history_file,
            written: None,
        }
    }

    /// One of several cores that all apply the same deploys.
    pub fn shared(events: Receiver<PluginEvent>, history_file: PathBuf, written: SharedHistory) -> Self {
        Self {
            events,
            history_file: Some(history_file),
            written: Some(written),
        }
    }

    /// Whether `rec` is this deploy's first record among the cores sharing
    /// the history (always, for a core alone).
    fn first_to_record(&self, rec: &SwapRecord) -> bool {
        let Some(written) = &self.written else {
            return true;
        };
        // (A swap's reason holds this core's timing; a refusal's is the
        // refusal, the same in every core.)
        let reason = if rec.outcome == crate::engine::SwapOutcome::Refused {
            rec.reason.as_str()
        } else {
            ""
        };
        let what = format!("{:?} {:?} {:?} {reason}", rec.from_hash, rec.to_hash, rec.outcome);
        let mut written = written.lock().unwrap_or_else(|e| e.into_inner());
        if written.get(&rec.view) == Some(&what) {
            return false;
        }
        written.insert(rec.view.clone(), what);
        true
    }

    /// Apply every deploy waiting.
    /// Returns whether anything was applied (or refused).
    pub fn apply_pending(&mut self, engine: &mut Engine, status: Option<&StatusPublisher>) -> bool {
        let mut any = false;
        while let Ok(ev) = self.events.try_recv() {
            any = true;
            if let Some(rec) = apply(engine, ev) {
                if let Some(path) = &self.history_file
                    && self.first_to_record(&rec)
                {
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
    // (With checkpoints in checkpoint.url, nothing else makes checkpoint.dir.)
    let res = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(path))
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "cannot append to the plugin history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SwapOutcome;

    #[test]
    fn cores_sharing_a_history_write_each_deploy_once() {
        let written = SharedHistory::default();
        let core = || Deploys::shared(std::sync::mpsc::channel().1, PathBuf::from("h.jsonl"), written.clone());
        let (a, b) = (core(), core());
        let rec = |from: &str, to: &str, pause_us| SwapRecord {
            at_ms: 0,
            view: "user_features".into(),
            from: None,
            from_hash: Some(from.into()),
            to: None,
            to_hash: Some(to.into()),
            outcome: SwapOutcome::Swapped,
            reason: String::new(),
            pause_us,
        };
        assert!(a.first_to_record(&rec("v1", "v2", 10)));
        let mut later = rec("v1", "v2", 99);
        later.reason = "210 ms from the file change".into();
        assert!(!b.first_to_record(&later), "the same deploy, applied by another core");
        // A swap back is another deploy; so is a core that joins later.
        assert!(b.first_to_record(&rec("v2", "v1", 5)));
        assert!(!a.first_to_record(&rec("v2", "v1", 5)));
        assert!(!core().first_to_record(&rec("v2", "v1", 7)));
        // A core alone writes everything.
        let alone = Deploys::new(std::sync::mpsc::channel().1, None);
        assert!(alone.first_to_record(&rec("v2", "v1", 5)));
    }
}
