//! The shared wasmtime engine: [`PluginEngine`] holds the compiler settings
//! and the WASI linker, and runs the epoch ticker thread that enforces call
//! deadlines ([`EPOCH_TICK`], [`deadline_ticks`]).
//!
//! It owns the process-wide wasmtime state only: loading components is
//! `load.rs`'s, the state of one instance `sandbox.rs`'s. It must not depend
//! on plugins, declarations or the batch codec.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use super::PluginError;
use super::sandbox::Sandbox;

/// How often the epoch advances: a call is interrupted between its
/// deadline and one tick later. Each tick wakes the ticker thread, which
/// costs ~25 µs of CPU on a virtual machine (a timer exit); at 5 ms that
/// was 0.28 s of the engine's 3.7 s in a minute of live `run`
/// (`scripts/bench-run.sh`). At 50 ms it is a tenth of that, and a
/// deadline (`plugins.batch-deadline`, 1 s) is still kept to 5 %.
const EPOCH_TICK: Duration = Duration::from_millis(50);

pub(super) struct EngineInner {
    pub(super) engine: Engine,
    pub(super) linker: Linker<Sandbox>,
    /// Where compiled components are kept (`plugins.cache-dir`), if anywhere.
    pub(super) cache_dir: Option<std::path::PathBuf>,
    /// Components being compiled, by content hash. A load of the same
    /// component meanwhile waits for that compilation and shares its
    /// result: in a consumer group every partition's watcher loads a new
    /// plugin at once, and each compiling its own copy of a Python or JS
    /// component (10-20 s, ~600 MiB each) multiplied time and memory by the
    /// number of partitions.
    pub(super) compiling: std::sync::Mutex<std::collections::HashMap<String, Arc<Compiling>>>,
    stop_ticker: Arc<AtomicBool>,
}

/// One compilation of a component, which every load of it meanwhile waits for.
pub(super) type Compiling = std::sync::OnceLock<Result<(wasmtime::component::Component, bool), String>>;

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The shared wasmtime engine: compiler settings, the WASI linker and the
/// epoch ticker thread that enforces call deadlines. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(super) inner: Arc<EngineInner>,
}

impl PluginEngine {
    /// [`PluginEngine::with_cache`] with `plugins.cache-dir`.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, PluginError> {
        let dir = &config.plugins.cache_dir;
        Self::with_cache((!dir.is_empty()).then(|| dir.into()))
    }

    /// The wasmtime engine, its linker (WASI with an empty context) and the
    /// epoch ticker thread; no cache of compiled components.
    pub fn new() -> Result<Self, PluginError> {
        Self::with_cache(None)
    }

    /// [`PluginEngine::new`], keeping compiled components in `cache_dir`
    /// (`plugins.cache-dir`): a component loaded again (a restart, a swap
    /// back) is read instead of compiled. The directory must be writable by
    /// this user only: what is in it runs as compiled code.
    pub fn with_cache(cache_dir: Option<std::path::PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // Plugins are synchronous; without the concurrency machinery every
        // call is ~370 ns cheaper.
        config.concurrency_support(false);
        config.max_wasm_stack(1 << 20);
        if std::env::var_os("PLUGIN_PERF_MAP").is_some_and(|v| v == "1") {
            // Names the plugins' compiled functions for `perf report`
            // (in /tmp/perf-PID.map); a profiling aid, off by default.
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        // Components built with wit-bindgen import the type-only `types`
        // interface; it has no functions, but the instance must exist.
        linker.instance("featherflow:plugin/types@0.1.0").map_err(wasm_err)?;

        let stop = Arc::new(AtomicBool::new(false));
        let inner = Arc::new(EngineInner {
            engine: engine.clone(),
            linker,
            cache_dir,
            compiling: Default::default(),
            stop_ticker: stop.clone(),
        });
        // The ticker holds only a weak reference, so dropping the last
        // PluginEngine stops it.
        let weak: Weak<EngineInner> = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(inner) => inner.engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Engine {
                reason: format!("cannot start the epoch ticker: {e}"),
            })?;
        Ok(Self { inner })
    }
}

/// wasmtime's error type is not `std::error::Error`; keep its full chain.
fn wasm_err(e: wasmtime::Error) -> PluginError {
    PluginError::Engine {
        reason: format!("{e:#}"),
    }
}

pub(super) fn deadline_ticks(d: Duration) -> u64 {
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}
