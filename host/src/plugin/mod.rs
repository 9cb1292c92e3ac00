//! Feature plugins: WebAssembly components that implement `wit/feature.wit`.
//!
//! Everything wasmtime lives here, behind a narrow wrapper:
//!
//! - `bindings`: the one `bindgen!` site (the Rust side of `wit/feature.wit`).
//! - `engine`: the shared [`PluginEngine`] (compilation, the WASI linker, the
//!   epoch ticker that enforces call deadlines, the compiled-component cache
//!   directory).
//! - `load`: loading and validating a component into a [`Plugin`], compiled
//!   or read from the cache.
//! - `sandbox`: what each instance's store holds (an empty WASI context but
//!   for stdout and stderr, frozen clocks, the memory limiter that notes the
//!   largest memory) and the [`Limits`] it runs under.
//! - `output`: a guest's stdout and stderr, kept in memory for the log and
//!   for failure reasons.
//! - `instance`: a sandboxed [`PluginInstance`] and the four calls of the
//!   contract; replaces an instance after a trap or past its memory
//!   high-water mark.
//! - [`runtime`]: the items of the five above under their established path,
//!   `plugin::runtime` (re-exports only).
//! - [`declaration`]: what a plugin says it is, validated.
//! - [`codec`]: the packed batch layouts of the contract, host side.
//! - [`watch`]: hot deploys — watching the plugin directory, validating off
//!   the hot path.
//! - [`value`]: the values a plugin's `finish` produces.
//!
//! Sandbox: no ambient capabilities (no preopened directories, environment,
//! arguments, network; clocks frozen at zero and randomness seeded
//! deterministically, so a feature is a pure function of its inputs), a memory
//! limit per instance and a wall-clock deadline per call. A trap, a deadline overrun
//! or a memory-limit hit becomes a [`PluginError`]; the instance is replaced.

mod bindings;
pub mod codec;
pub mod declaration;
mod dir;
mod engine;
mod instance;
mod load;
mod output;
pub mod runtime;
mod sandbox;
pub mod sections;
pub mod value;
pub mod watch;

pub use declaration::{Declaration, FieldType, WindowSpec};
pub use dir::load_dir;
pub use runtime::{Limits, Plugin, PluginEngine, PluginInstance};
pub use value::Value;

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
    /// The plugin runtime itself cannot start (wasmtime refused its
    /// configuration, or a thread could not be started).
    #[error("plugin runtime: {reason}")]
    Engine { reason: String },
    /// The plugin directory cannot be watched (hot deploys are off).
    #[error("plugin directory {dir}: cannot watch: {reason}")]
    Watch { dir: String, reason: String },
    /// The plugin returned bytes that do not follow the contract.
    #[error("plugin {plugin}: {call} returned malformed output: {reason}")]
    Malformed {
        plugin: String,
        call: &'static str,
        reason: String,
    },
}

impl PluginError {
    /// Whether trying again can help: a trap or a deadline may not recur on
    /// the next batch, a file may become readable; a refused component, a
    /// malformed answer or an error value will come back the same.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PluginError::Trap { .. } | PluginError::Io { .. } | PluginError::Watch { .. }
        )
    }

    /// A short label for metrics and dead-letter records.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Io { .. } => "io",
            PluginError::Refused { .. } => "refused",
            PluginError::Trap { .. } => "trap",
            PluginError::Returned { .. } => "error",
            PluginError::Malformed { .. } => "malformed",
            PluginError::Watch { .. } => "watch",
            PluginError::Engine { .. } => "engine",
        }
    }
}
