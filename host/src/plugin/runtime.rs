//! Loading, validating and calling plugins with wasmtime, under the path the
//! rest of the host knows: `crate::plugin::runtime`. The rest of the host
//! sees [`Plugin`] (a validated, pre-linked component) and [`PluginInstance`]
//! (a sandboxed instance of it, with the four calls of the contract).
//!
//! Only re-exports: the items live in `engine.rs`, `sandbox.rs`, `load.rs`
//! and `instance.rs` (the `bindgen!` site in `bindings.rs`). Add nothing here.

pub use super::engine::PluginEngine;
pub use super::instance::PluginInstance;
pub use super::load::Plugin;
pub use super::sandbox::{Limits, Sandbox};
