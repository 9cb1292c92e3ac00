//! featherflow: a streaming feature engine.
//!
//! Events come in (a file or Kafka), get an event time and a watermark, are
//! grouped per key into windows, and every fired window is turned into feature
//! values by a WebAssembly plugin and written out (JSON lines or Redis).
//!
//! # Layout
//!
//! The modules are layered, leaves first; each imports only from the layers
//! below it (`make lint` checks this with `scripts/check-layers.py`):
//!
//! 1. Leaves: [`clock`] (the wall clock, read only by the top layers),
//!    [`cow`] (the copy-on-write vector behind microsecond checkpoint
//!    captures), [`outage`] (repeated failures, logged quietly),
//!    [`testing`] (comparing JSON-lines outputs), [`event`] (the
//!    event model and its parser; bad input is classified here), [`time`]
//!    (watermarks; pure), [`window`] (sliding windows by slices, sessions;
//!    pure).
//! 2. [`config`]: one validated configuration tree.
//! 3. [`plugin`]: everything wasmtime — the one `bindgen!` site, limits,
//!    loading, the watcher that validates hot deploys off the hot path.
//! 4. [`state`] (checkpoint stores and the checkpoint byte format),
//!    [`sink`] (JSON lines, Redis, counting), [`source`] (files, Kafka).
//! 5. [`engine`]: one view = a plugin + its windows + its states; the batch
//!    loop that crosses into Wasm once per batch. Reads no clock.
//! 6. [`api`]: HTTP — Prometheus metrics, health, JSON API, the dashboard.
//! 7. [`pipeline`]: the one loop — source -> engine -> sink, deploys,
//!    checkpoints, status — that `replay`, `run`, `bench` and `plugin test`
//!    all run.
//! 8. [`cli`]: the commands; the only module that knows every stage.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cow;
pub mod engine;
pub mod event;
pub mod outage;
pub mod pipeline;
pub mod plugin;
pub mod sink;
pub mod source;
pub mod state;
pub mod testing;
pub mod time;
pub mod window;
