//! Deploys while running: adding a view, swapping a view's plugin (with
//! its states kept, migrated or reset), removing a view, and the history of
//! every such decision.
//!
//! The policy lives here, as data: a deploy's result is a [`SwapOutcome`],
//! never a string to be matched. Deploys happen between two batches, on the
//! event loop; everything slow (compiling, validating) was done before, off
//! the hot path. No clock is read here: a record's time is the engine's
//! time ([`Engine::set_now`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::plugin::{Plugin, PluginInstance};

/// What a deploy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapOutcome {
    /// A new view started.
    Added,
    /// The view's plugin was replaced; its states continue as they are.
    Swapped,
    /// The view's plugin was replaced and its states converted by the new one.
    Migrated,
    /// The view's plugin was replaced and its states dropped (asked for).
    Reset,
    /// The view stopped (its plugin file was removed).
    Removed,
    /// Nothing changed: the running version keeps serving, and the reason says why.
    Refused,
    /// The view went back to its previous version after repeated failures.
    RolledBack,
    /// The same plugin was deployed again.
    Unchanged,
}

impl SwapOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SwapOutcome::Added => "added",
            SwapOutcome::Swapped => "swapped",
            SwapOutcome::Migrated => "migrated",
            SwapOutcome::Reset => "reset",
            SwapOutcome::Removed => "removed",
            SwapOutcome::Refused => "refused",
            SwapOutcome::RolledBack => "rolled_back",
            SwapOutcome::Unchanged => "unchanged",
        }
    }
}

impl std::fmt::Display for SwapOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the plugin swap history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwapRecord {
    pub at_ms: i64,
    pub view: String,
    pub from: Option<String>,
    pub from_hash: Option<String>,
    pub to: Option<String>,
    pub to_hash: Option<String>,
    pub outcome: SwapOutcome,
    pub reason: String,
    /// How long the event loop was paused for it.
    pub pause_us: u64,
}

impl SwapRecord {
    fn new(at_ms: i64, view: &str, from: Option<&Arc<Plugin>>, to: Option<&Arc<Plugin>>) -> Self {
        Self {
            at_ms,
            view: view.to_string(),
            from: from.map(|p| p.label()),
            from_hash: from.map(|p| p.hash.clone()),
            to: to.map(|p| p.label()),
            to_hash: to.map(|p| p.hash.clone()),
            outcome: SwapOutcome::Refused,
            reason: String::new(),
            pause_us: 0,
        }
    }
}

impl Engine {
    /// Deploy a plugin while running, between two batches: a new view, or
    /// a new version of a view that continues on the view's states (same
    /// window; same state version, or migrated). Refused — the running
    /// version untouched — when the window changed or the states cannot be
    /// migrated, unless `reset` asks to drop the view's state.
    pub fn deploy(&mut self, plugin: Arc<Plugin>, instance: PluginInstance, reset: bool) -> SwapRecord {
        let started = std::time::Instant::now();
        let mut rec = SwapRecord::new(self.now_ms(), &plugin.declaration.view, None, Some(&plugin));
        let Some(i) = self.views.iter().position(|v| v.name() == plugin.declaration.view) else {
            match self.add_view(plugin) {
                Ok(()) => rec.outcome = SwapOutcome::Added,
                Err(e) => {
                    rec.outcome = SwapOutcome::Refused;
                    rec.reason = e.to_string();
                }
            }
            return self.record(rec, started);
        };
        let now = self.now_ms();
        let view = &mut self.views[i];
        let old = view.plugin().clone();
        rec.from = Some(old.label());
        rec.from_hash = Some(old.hash.clone());
        if old.hash == plugin.hash && !reset {
            rec.outcome = SwapOutcome::Unchanged;
            return self.record(rec, started);
        }
        let (od, nd) = (old.declaration.clone(), plugin.declaration.clone());
        if od.window != nd.window && !reset {
            rec.outcome = SwapOutcome::Refused;
            rec.reason = format!(
                "the window changed ({} -> {}): old states cannot be reinterpreted; deploy it as a new view, or with reset",
                od.window, nd.window
            );
            return self.record(rec, started);
        }
        // Pending events were read under the old version: apply them with it.
        view.flush(
            &self.keys[view.key_table],
            &mut self.records,
            &self.dead_letter,
            &self.source,
        );
        if reset {
            view.replace_plugin(plugin, instance, false, now);
            view.reset_states();
            rec.outcome = SwapOutcome::Reset;
            rec.reason = "deployed with reset: the view's state was dropped".into();
        } else if od.state_version == nd.state_version {
            view.replace_plugin(plugin, instance, true, now);
            rec.outcome = SwapOutcome::Swapped;
        } else {
            let mut instance = instance;
            match view.migrate_with(&mut instance, od.state_version) {
                Ok(()) => {
                    view.replace_plugin(plugin, instance, false, now);
                    rec.outcome = SwapOutcome::Migrated;
                    rec.reason = format!(
                        "states migrated from state version {} to {}",
                        od.state_version, nd.state_version
                    );
                }
                Err(e) => {
                    rec.outcome = SwapOutcome::Refused;
                    rec.reason = format!(
                        "state version {} -> {} and the new plugin cannot migrate: {e}; deploy with reset to drop the view's state",
                        od.state_version, nd.state_version
                    );
                }
            }
        }
        self.record(rec, started)
    }

    /// Stop a view (its plugin file was removed): its pending events are
    /// applied and its fired windows finished, then it and its state go.
    pub fn remove_view(&mut self, view: &str) -> Option<SwapRecord> {
        let started = std::time::Instant::now();
        let i = self.views.iter().position(|v| v.name() == view)?;
        let mut v = self.views.remove(i);
        v.flush(
            &self.keys[v.key_table],
            &mut self.records,
            &self.dead_letter,
            &self.source,
        );
        let mut rec = SwapRecord::new(self.now_ms(), view, Some(v.plugin()), None);
        rec.outcome = SwapOutcome::Removed;
        Some(self.record(rec, started))
    }

    /// A deploy that was refused before reaching the engine (validation).
    pub fn refused(&mut self, source: &str, reason: String) -> SwapRecord {
        let mut rec = SwapRecord::new(self.now_ms(), source, None, None);
        rec.outcome = SwapOutcome::Refused;
        rec.reason = reason;
        self.record(rec, std::time::Instant::now())
    }

    fn record(&mut self, mut rec: SwapRecord, started: std::time::Instant) -> SwapRecord {
        rec.pause_us = started.elapsed().as_micros() as u64;
        if rec.outcome == SwapOutcome::Refused {
            tracing::error!(view = %rec.view, reason = %rec.reason, "plugin deploy refused; the running version keeps serving");
        } else {
            tracing::info!(view = %rec.view, outcome = %rec.outcome, from = ?rec.from, to = ?rec.to, pause_us = rec.pause_us, "plugin deployed");
        }
        self.history.push(rec.clone());
        rec
    }

    /// Add a note to the newest history record (and return it).
    pub fn annotate_last(&mut self, note: &str) -> SwapRecord {
        let rec = self.history.last_mut().expect("a record was just made");
        rec.reason = if rec.reason.is_empty() {
            note.to_string()
        } else {
            format!("{}; {note}", rec.reason)
        };
        rec.clone()
    }

    /// Swaps, refusals and rollbacks so far.
    pub fn history(&self) -> &[SwapRecord] {
        &self.history
    }

    /// Record rollbacks views did on their own after repeated failures.
    pub(super) fn collect_rollbacks(&mut self) {
        let now = self.now_ms();
        for v in &mut self.views {
            if let Some((bad, good, reason)) = v.rolled_back.take() {
                v.loaded_since_ms = now;
                let mut rec = SwapRecord::new(now, v.name(), Some(&bad), Some(&good));
                rec.outcome = SwapOutcome::RolledBack;
                rec.reason = reason;
                self.history.push(rec);
            }
        }
    }
}
