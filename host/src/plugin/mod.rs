//! Feature plugins: WebAssembly components that implement `wit/feature.wit`.
//!
//! Everything wasmtime lives here, behind a narrow wrapper:
//!
//! - [`runtime`]: the one `bindgen!` site, the shared [`PluginEngine`]
//!   (compilation, the epoch ticker), loading and validating a component into
//!   a [`Plugin`], and a sandboxed [`PluginInstance`] to call it.
//! - [`declaration`]: what a plugin says it is, validated.
//! - [`codec`]: the packed batch layouts of the contract, host side.
//! - [`watch`]: hot deploys — watching the plugin directory, validating off
//!   the hot path.
//!
//! Sandbox: no ambient capabilities (no preopened directories, environment,
//! arguments, network; clocks frozen at zero and randomness seeded
//! deterministically, so a feature is a pure function of its inputs), a memory
//! limit per instance and a CPU deadline per call. A trap, a deadline overrun
//! or a memory-limit hit becomes a [`PluginError`]; the instance is replaced.

pub mod codec;
pub mod declaration;
pub mod runtime;
pub mod watch;

pub use declaration::{Declaration, FieldType, WindowSpec};
pub use runtime::{Limits, Plugin, PluginEngine, PluginInstance};

/// A plugin failed. Every variant names the plugin (view and file or hash).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("plugin {path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not a valid component, or not the `feature` world: retrying the same
    /// bytes cannot help.
    #[error("plugin {plugin}: refused: {reason}")]
    Refused { plugin: String, reason: String },
    /// The plugin trapped, ran past its deadline or hit its memory limit. The
    /// instance was replaced; the next batch may succeed.
    #[error("plugin {plugin}: {call} trapped: {reason}")]
    Trap {
        plugin: String,
        call: &'static str,
        reason: String,
    },
    /// The plugin returned an error value.
    #[error("plugin {plugin}: {call} returned an error: {reason}")]
    Returned {
        plugin: String,
        call: &'static str,
        reason: String,
    },
    /// The plugin returned bytes that do not follow the contract.
    #[error("plugin {plugin}: {call} returned malformed output: {reason}")]
    Malformed {
        plugin: String,
        call: &'static str,
        reason: String,
    },
}

impl PluginError {
    /// A short label for metrics and dead-letter records.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Io { .. } => "io",
            PluginError::Refused { .. } => "refused",
            PluginError::Trap { .. } => "trap",
            PluginError::Returned { .. } => "error",
            PluginError::Malformed { .. } => "malformed",
        }
    }
}
