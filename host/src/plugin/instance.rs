//! A sandboxed instance of a plugin: [`PluginInstance`] and the four calls
//! of the contract (`update`, `merge`, `finish`, `migrate`), each under the
//! call deadline; a trap replaces the instance and becomes a [`PluginError`].
//!
//! It owns the host side of a call: decoding the output with the batch codec
//! and naming failures. It must not depend on loading or validating
//! components (`load.rs`).

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
}

impl PluginInstance {
    /// Run one call under the deadline; on a trap replace the instance (its
    /// memory may be in any state) and report the trap.
    pub(super) fn with_deadline<R>(
        &mut self,
        call: impl FnOnce(&Feature, &mut Store<Sandbox>) -> wasmtime::Result<R>,
        name: &'static str,
    ) -> Result<R, PluginError> {
        self.store.set_epoch_deadline(deadline_ticks(self.limits.deadline));
        match call(&self.bindings, &mut self.store) {
            Ok(r) => Ok(r),
            Err(e) => {
                let reason = describe_trap(&e, self.limits);
                self.replace()?;
                Err(PluginError::Trap {
                    plugin: self.label.clone(),
                    call: name,
                    reason,
                })
            }
        }
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
