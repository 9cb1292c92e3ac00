//! The one `wasmtime::component::bindgen!` site: the Rust side of the
//! `feature` world of `wit/feature.wit` ([`Feature`], [`FeaturePre`] and the
//! `featherflow:plugin/types` interface).
//!
//! Only the other files of `plugin` use these types, through their wrappers;
//! nothing outside `plugin` may depend on them, and nothing else belongs here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "feature",
});
