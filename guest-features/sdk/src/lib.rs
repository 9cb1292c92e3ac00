//! The featherflow guest SDK: write a feature plugin as plain Rust.
//!
//! A plugin implements the `feature` world of `wit/feature.wit`, whose
//! functions take whole batches packed into byte lists. This crate hides
//! that: a feature crate implements [`Feature`] over plain types and ends
//! with one [`export_feature!`] line.
//!
//! ```
//! use featherflow_sdk::{Declaration, Event, Feature, Value, Window};
//!
//! pub struct Count;
//!
//! impl Feature for Count {
//!     type State = u64;
//!     fn declare() -> Declaration {
//!         Declaration::sliding("counts", 3_600_000, 600_000)
//!             .key_field("user_id")
//!             .text("user_id")
//!             .integer("event_count")
//!     }
//!     fn update(n: &mut u64, _: &Event) { *n += 1 }
//!     fn merge(into: &mut u64, other: &u64) { *into += other }
//!     fn finish(n: &u64, w: &Window) -> Vec<Value> {
//!         vec![Value::Text(w.key.into()), Value::Integer(*n as i64)]
//!     }
//!     fn encode(n: &u64, out: &mut Vec<u8>) { out.extend(n.to_le_bytes()) }
//!     fn decode(b: &[u8]) -> Result<u64, String> {
//!         Ok(u64::from_le_bytes(b.try_into().map_err(|_| "expected 8 bytes")?))
//!     }
//! }
//!
//! featherflow_sdk::export_feature!(Count);
//! ```
//!
//! # Layout
//!
//! - [`feature`](Feature): the trait and plain types a feature author sees.
//! - `adapter`: [`Plugin<F>`], the generic implementation of the generated
//!   `Guest` trait that decodes batches, calls `F`, and encodes the results.
//! - [`codec`]: the little-endian primitives of the batch layouts; pure, so
//!   the host can mirror them and tests run natively.
//! - [`bindings`]: the one `wit_bindgen::generate!` of the project's guests.
//!
//! Everything compiles natively as well as for `wasm32-wasip2`; only the
//! symbol exports of [`export_feature!`] are Wasm-only.

mod adapter;
pub mod codec;
mod feature;

pub use adapter::Plugin;
pub use feature::{Declaration, Event, Feature, Field, FieldType, Value, Window, WindowKind};
/// Re-exported so a feature can read [`Event::field`] values without its own
/// dependency (and without a second copy of a different version).
pub use serde_json;

pub mod bindings {
    //! The bindings of the `feature` world, generated from `wit/` (the only
    //! `generate!` for feature plugins).
    //!
    //! Feature crates should not need this module: [`export_feature!`] uses
    //! it. It is public for the export macro, and for test plugins that break
    //! the contract on purpose by implementing [`Guest`] by hand.
    //!
    //! [`export_feature!`]: crate::export_feature

    wit_bindgen::generate!({
        path: "../../wit",
        world: "feature",
        // The export macro is invoked from feature crates, not from here.
        pub_export_macro: true,
        default_bindings_module: "featherflow_sdk::bindings",
        // Lets tests compare declarations and errors with `assert_eq!`.
        additional_derives: [PartialEq],
    });
}

/// Exports a [`Feature`] as the component's `feature` world:
/// `featherflow_sdk::export_feature!(MyFeature);`.
///
/// Expands to nothing when not compiling for Wasm, so a feature crate's native
/// `cargo test` binary does not define C symbols named `update` or `finish`.
#[macro_export]
macro_rules! export_feature {
    ($feature:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            // The generated `export!` takes an identifier, not a generic type.
            type FeatherflowPlugin = $crate::Plugin<$feature>;
    $crate::bindings::export!(FeatherflowPlugin with_types_in $crate::bindings);
        };
    };
}
