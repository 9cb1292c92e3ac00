//! A sandboxed instance of a plugin: [`PluginInstance`] and the four calls
//! of the contract (`update`, `merge`, `finish`, `migrate`), each under the
//! call deadline; a trap replaces the instance and becomes a [`PluginError`].
//!
//! It owns the host side of a call: decoding the output with the batch codec
//! and naming failures. It must not depend on loading or validating
//! components (`load.rs`).
//!
//! After every call it collects what the guest printed (logged, at most one
//! line per instance every 10 s, and added to the reason of a failed call),
//! and replaces an instance whose memory passed the high-water mark
//! ([`Limits::high_water_bytes`]) before it can hit the limit.

use std::time::{Duration, Instant};

use wasmtime::Store;

use super::PluginError;
use super::Value;
use super::bindings::featherflow::plugin::types as wit;
use super::bindings::{Feature, FeaturePre};
use super::codec;
use super::declaration::Field;
use super::engine::{PluginEngine, deadline_ticks};
use super::sandbox::{Limits, Sandbox, new_store};

/// One sandboxed instance of a plugin. Not shared: each view owns one.
pub struct PluginInstance {
    pub(super) label: String,
    pub(super) store: Store<Sandbox>,
    pub(super) bindings: Feature,
    pub(super) pre: FeaturePre<Sandbox>,
    pub(super) engine: PluginEngine,
    pub(super) limits: Limits,
    /// How often the instance was replaced after a trap.
    pub replaced: u64,
    /// How often it was replaced because its memory passed the high-water
    /// mark (no call failed).
    pub recycled: u64,
    pub(super) printed: Printed,
    /// What the guest wrote to stderr during the last call (for the reason
    /// of an error it returned).
    pub(super) last_stderr: String,
}

/// Rate limit of the log lines of guest output.
#[derive(Default)]
pub(super) struct Printed {
    last_logged: Option<Instant>,
    /// Drains not logged since the last line.
    held_back: u64,
}

/// How often an instance's output may reach the log.
const PRINT_EVERY: Duration = Duration::from_secs(10);

/// At most this much of the guest's stderr goes into a failure reason.
const REASON_OUTPUT: usize = 2048;

impl PluginInstance {
    /// Run one call under the deadline; on a trap replace the instance (its
    /// memory may be in any state) and report the trap.
    pub(super) fn with_deadline<R>(
        &mut self,
        call: impl FnOnce(&Feature, &mut Store<Sandbox>) -> wasmtime::Result<R>,
        name: &'static str,
    ) -> Result<R, PluginError> {
        self.store.set_epoch_deadline(deadline_ticks(self.limits.deadline));
        let result = call(&self.bindings, &mut self.store);
        let stderr = self.collect_output(name);
        self.last_stderr.clone_from(&stderr);
        match result {
            Ok(r) => {
                if self.store.data().memory_bytes() > self.limits.high_water_bytes() {
                    self.recycle()?;
                }
                Ok(r)
            }
            Err(e) => {
                let mut reason = describe_trap(&e, self.limits);
                append_output(&mut reason, &stderr);
                self.replace()?;
                Err(PluginError::Trap {
                    plugin: self.label.clone(),
                    call: name,
                    reason,
                })
            }
        }
    }

    /// Log what the guest printed during call `call` (rate-limited) and
    /// return its stderr, for a failure reason.
    fn collect_output(&mut self, call: &str) -> String {
        let data = self.store.data();
        let (out, err) = (data.stdout.drain(), data.stderr.drain());
        if out.is_none() && err.is_none() {
            return String::new();
        }
        let now = Instant::now();
        let p = &mut self.printed;
        if p.last_logged.is_none_or(|t| now.duration_since(t) >= PRINT_EVERY) {
            for (stream, text) in [("stdout", &out), ("stderr", &err)] {
                if let Some((text, dropped)) = text {
                    tracing::warn!(plugin = %self.label, call, stream, dropped_bytes = dropped, held_back = p.held_back, "plugin printed: {}", text.trim_end());
                }
            }
            p.last_logged = Some(now);
            p.held_back = 0;
        } else {
            p.held_back += 1;
        }
        err.map(|(text, _)| text).unwrap_or_default()
    }

    /// Replace an instance that has grown too large between two calls.
    fn recycle(&mut self) -> Result<(), PluginError> {
        let grown = self.store.data().memory_bytes();
        self.replace()?;
        self.replaced -= 1;
        self.recycled += 1;
        tracing::debug!(plugin = %self.label, memory_mib = grown >> 20, recycled = self.recycled, "instance replaced: its memory passed the high-water mark");
        Ok(())
    }

    /// Throw the instance away and start a fresh one.
    pub fn replace(&mut self) -> Result<(), PluginError> {
        let (store, bindings) = new_store(&self.engine, &self.pre, self.limits).map_err(|e| PluginError::Trap {
            plugin: self.label.clone(),
            call: "instantiate",
            reason: format!("{e:#}"),
        })?;
        self.store = store;
        self.bindings = bindings;
        self.replaced += 1;
        Ok(())
    }

    fn returned(&self, call: &'static str, e: wit::PluginError) -> PluginError {
        let reason = match e {
            wit::PluginError::InvalidState(s) => format!("invalid state: {s}"),
            wit::PluginError::InvalidBatch(s) => format!("invalid batch: {s}"),
            wit::PluginError::Unsupported(s) => format!("unsupported: {s}"),
            wit::PluginError::Other(s) => s,
        };
        let mut reason = reason;
        append_output(&mut reason, &self.last_stderr);
        PluginError::Returned {
            plugin: self.label.clone(),
            call,
            reason,
        }
    }

    fn malformed(&self, call: &'static str, reason: String) -> PluginError {
        PluginError::Malformed {
            plugin: self.label.clone(),
            call,
            reason,
        }
    }

    /// `update`: returns the new states, one per given state.
    pub fn update(&mut self, states: &[u8], events: &[u8], n_states: usize) -> Result<Vec<Vec<u8>>, PluginError> {
        let out = self
            .with_deadline(|b, s| b.call_update(s, states, events), "update")?
            .map_err(|e| self.returned("update", e))?;
        let states = codec::read_states(&out, n_states).map_err(|e| self.malformed("update", e))?;
        Ok(states.into_iter().map(<[u8]>::to_vec).collect())
    }

    /// `update`, handing each new state to `apply` instead of allocating.
    pub fn update_with(
        &mut self,
        states: &[u8],
        events: &[u8],
        n_states: usize,
        mut apply: impl FnMut(usize, &[u8]),
    ) -> Result<(), PluginError> {
        let out = self
            .with_deadline(|b, s| b.call_update(s, states, events), "update")?
            .map_err(|e| self.returned("update", e))?;
        let states = codec::read_states(&out, n_states).map_err(|e| self.malformed("update", e))?;
        for (i, s) in states.into_iter().enumerate() {
            apply(i, s);
        }
        Ok(())
    }

    /// `merge`: one state per group.
    pub fn merge(&mut self, groups: &[u8], n_groups: usize) -> Result<Vec<Vec<u8>>, PluginError> {
        let out = self
            .with_deadline(|b, s| b.call_merge(s, groups), "merge")?
            .map_err(|e| self.returned("merge", e))?;
        let states = codec::read_states(&out, n_groups).map_err(|e| self.malformed("merge", e))?;
        Ok(states.into_iter().map(<[u8]>::to_vec).collect())
    }

    /// `finish`: appends `n_windows × fields.len()` values to `out`.
    pub fn finish(
        &mut self,
        windows: &[u8],
        n_windows: usize,
        fields: &[Field],
        out: &mut Vec<Value>,
    ) -> Result<(), PluginError> {
        let bytes = self
            .with_deadline(|b, s| b.call_finish(s, windows), "finish")?
            .map_err(|e| self.returned("finish", e))?;
        let before = out.len();
        codec::read_values(&bytes, n_windows, fields, out).map_err(|e| {
            out.truncate(before);
            self.malformed("finish", e)
        })
    }

    /// `migrate` states from an older state version.
    pub fn migrate(&mut self, from_version: u32, states: &[u8], n_states: usize) -> Result<Vec<Vec<u8>>, PluginError> {
        let out = self
            .with_deadline(|b, s| b.call_migrate(s, from_version, states), "migrate")?
            .map_err(|e| self.returned("migrate", e))?;
        let states = codec::read_states(&out, n_states).map_err(|e| self.malformed("migrate", e))?;
        Ok(states.into_iter().map(<[u8]>::to_vec).collect())
    }
}

/// `reason`, then the end of what the guest wrote to stderr, if anything.
fn append_output(reason: &mut String, stderr: &str) {
    let text = stderr.trim_end();
    if text.is_empty() {
        return;
    }
    let mut from = text.len().saturating_sub(REASON_OUTPUT);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    reason.push_str("; the plugin wrote to stderr: ");
    if from > 0 {
        reason.push('…');
    }
    reason.push_str(&text[from..]);
}

fn describe_trap(e: &wasmtime::Error, limits: Limits) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            format!("ran past its deadline of {:?}", limits.deadline)
        }
        Some(wasmtime::Trap::StackOverflow) => "stack overflow".into(),
        Some(t) => {
            let msg = format!("{e:#}");
            if msg.contains("memory") && msg.contains("grow") || msg.contains("limit") {
                format!("{t}: memory limit of {} MiB: {msg}", limits.memory_bytes >> 20)
            } else {
                format!("{t}: {msg}")
            }
        }
        None => format!("{e:#}"),
    }
}
