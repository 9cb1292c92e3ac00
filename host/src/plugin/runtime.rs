//! Loading, validating and calling plugins with wasmtime.
//!
//! This file is the only `bindgen!` site; the rest of the host sees
//! [`Plugin`] (a validated, pre-linked component) and [`PluginInstance`] (a
//! sandboxed instance of it, with the four calls of the contract).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::PluginError;
use super::codec::{self, Packed};
use super::declaration::{Declaration, Field, FieldType, WindowSpec};
use crate::sink::Value;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "feature",
    });
}

use bindings::featherflow::plugin::types as wit;
use bindings::{Feature, FeaturePre};

/// Resource limits of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call (one batch). Enforced with epoch
    /// interruption rather than fuel: fuel costs every instruction, epochs
    /// cost one check per loop header and function entry.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(1),
        }
    }
}

/// How often the epoch advances; the resolution of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The per-store data: an empty WASI context plus the limiter.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock stopped at the epoch: plugins compiled for `wasm32-wasip2` import
/// the WASI clocks through std, but a feature must not depend on when it runs.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

struct EngineInner {
    engine: Engine,
    linker: Linker<Sandbox>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The shared wasmtime engine: compiler settings, the WASI linker and the
/// epoch ticker thread that enforces call deadlines. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

impl PluginEngine {
    pub fn new() -> anyhow::Result<Self> {
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
            stop_ticker: stop.clone(),
        });
        // The ticker holds only a weak reference, so dropping the last
        // PluginEngine stops it.
        let weak: Weak<EngineInner> = Arc::downgrade(&inner);
        std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(inner) => inner.engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
        Ok(Self { inner })
    }

    /// Load a plugin from a file.
    pub fn load_file(&self, path: &std::path::Path, limits: Limits) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&bytes, &path.display().to_string(), limits)
    }

    /// Compile, link, instantiate and validate a component: the world must
    /// match, the declaration must be valid, and a dry run on a small batch
    /// must succeed. Nothing here touches a running view.
    pub fn load(&self, bytes: &[u8], source: &str, limits: Limits) -> Result<Plugin, PluginError> {
        let hash = hex::encode(Sha256::digest(bytes));
        let refused = |reason: String| PluginError::Refused {
            plugin: source.to_string(),
            reason,
        };
        let started = Instant::now();
        let component = Component::from_binary(&self.inner.engine, bytes)
            .map_err(|e| refused(format!("not a valid WebAssembly component: {e:#}")))?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| refused(format!("imports something the sandbox does not provide: {e:#}")))?;
        let pre = FeaturePre::new(pre).map_err(|e| {
            refused(format!(
                "does not implement the featherflow:plugin/feature world: {e:#}"
            ))
        })?;
        let mut plugin = Plugin {
            declaration: placeholder_declaration(),
            hash,
            source: source.to_string(),
            pre,
            engine: self.clone(),
            limits,
            compile_time: Duration::ZERO,
        };
        let mut instance = plugin.instantiate()?;
        let wit_decl = instance.with_deadline(|b, s| b.call_describe(s), "describe")?;
        let declaration = convert_declaration(wit_decl).map_err(&refused)?;
        declaration
            .validate()
            .map_err(|e| refused(format!("invalid declaration: {e}")))?;
        plugin.declaration = declaration.clone();
        instance.label = plugin.label();
        dry_run(&mut instance, &declaration).map_err(|e| refused(format!("dry run failed: {e}")))?;
        plugin.compile_time = started.elapsed();
        Ok(plugin)
    }
}

/// wasmtime's error type is not `std::error::Error`; keep its full chain.
fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

fn placeholder_declaration() -> Declaration {
    Declaration {
        view: String::new(),
        version: String::new(),
        description: String::new(),
        window: WindowSpec::Session { gap_ms: 1 },
        key_field: String::new(),
        fields: Arc::from(Vec::new()),
        ttl_seconds: 0,
        state_version: 0,
    }
}

fn convert_declaration(d: wit::Declaration) -> Result<Declaration, String> {
    let ms = |v: u64, what: &str| i64::try_from(v).map_err(|_| format!("{what} {v} ms is too large"));
    let window = match d.window {
        wit::Window::Tumbling(size) => {
            let size = ms(size, "tumbling size")?;
            WindowSpec::Sliding {
                size_ms: size,
                slide_ms: size,
            }
        }
        wit::Window::Sliding(s) => WindowSpec::Sliding {
            size_ms: ms(s.size_ms, "sliding size")?,
            slide_ms: ms(s.slide_ms, "sliding slide")?,
        },
        wit::Window::Session(s) => WindowSpec::Session {
            gap_ms: ms(s.gap_ms, "session gap")?,
        },
    };
    let fields: Vec<Field> = d
        .fields
        .into_iter()
        .map(|f| Field {
            name: f.name,
            ty: match f.type_ {
                wit::FieldType::Text => FieldType::Text,
                wit::FieldType::Integer => FieldType::Integer,
                wit::FieldType::Float => FieldType::Float,
                wit::FieldType::Boolean => FieldType::Boolean,
            },
        })
        .collect();
    Ok(Declaration {
        view: d.view,
        version: d.version,
        description: d.description,
        window,
        key_field: d.key_field,
        fields: fields.into(),
        ttl_seconds: d.ttl_seconds,
        state_version: d.state_version,
    })
}

/// Exercise every call on a small synthetic batch before the plugin may
/// serve: update two events into a new state, merge, finish, and check the
/// output against the declaration.
fn dry_run(instance: &mut PluginInstance, decl: &Declaration) -> Result<(), PluginError> {
    let mut states = Packed::default();
    states.clear();
    states.push_state(&[]);
    let mut events = Packed::default();
    events.clear();
    events.push_event(0, 1_000, 1.5, "view", "dry-run", "");
    events.push_event(0, 2_000, 2.5, "purchase", "dry-run", "");
    let new = instance.update(states.bytes(), events.bytes(), 1)?;
    let state = new.into_iter().next().unwrap_or_default();
    let mut group = Packed::default();
    group.clear();
    group.push_group([state.as_slice(), state.as_slice()].into_iter());
    instance.merge(group.bytes(), 1)?;
    let mut windows = Packed::default();
    windows.clear();
    windows.push_window("dry-run", 0, 3_000, std::iter::once(state.as_slice()));
    let mut values = Vec::new();
    instance.finish(windows.bytes(), 1, &decl.fields, &mut values)?;
    Ok(())
}

/// A loaded, validated plugin: compiled and pre-linked, ready to instantiate.
pub struct Plugin {
    pub declaration: Declaration,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
    /// Where it came from (a path, or "upload").
    pub source: String,
    pub limits: Limits,
    /// Time to compile, link, instantiate and dry-run it.
    pub compile_time: Duration,
    pre: FeaturePre<Sandbox>,
    engine: PluginEngine,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("view", &self.declaration.view)
            .field("version", &self.declaration.version)
            .field("hash", &self.short_hash())
            .finish()
    }
}

impl Plugin {
    pub fn short_hash(&self) -> &str {
        &self.hash[..12.min(self.hash.len())]
    }

    /// `view@version (hash)`, for logs and errors.
    pub fn label(&self) -> String {
        format!(
            "{}@{} ({})",
            self.declaration.view,
            self.declaration.version,
            self.short_hash()
        )
    }

    /// A fresh sandboxed instance.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        let (store, bindings) = self.new_store()?;
        Ok(PluginInstance {
            label: self.label(),
            store,
            bindings,
            pre: self.pre.clone(),
            engine: self.engine.clone(),
            limits: self.limits,
            replaced: 0,
        })
    }

    fn new_store(&self) -> Result<(Store<Sandbox>, Feature), PluginError> {
        new_store(&self.engine, &self.pre, self.limits).map_err(|e| PluginError::Refused {
            plugin: self.label(),
            reason: format!("cannot instantiate: {e:#}"),
        })
    }
}

fn new_store(
    engine: &PluginEngine,
    pre: &FeaturePre<Sandbox>,
    limits: Limits,
) -> wasmtime::Result<(Store<Sandbox>, Feature)> {
    let wasi = WasiCtx::builder()
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .insecure_random_seed(0)
        .secure_random(<rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(0))
        .build();
    let sandbox = Sandbox {
        wasi,
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(8)
            .trap_on_grow_failure(true)
            .build(),
    };
    let mut store = Store::new(&engine.inner.engine, sandbox);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(deadline_ticks(limits.deadline));
    let bindings = pre.instantiate(&mut store)?;
    Ok((store, bindings))
}

fn deadline_ticks(d: Duration) -> u64 {
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

/// One sandboxed instance of a plugin. Not shared: each view owns one.
pub struct PluginInstance {
    label: String,
    store: Store<Sandbox>,
    bindings: Feature,
    pre: FeaturePre<Sandbox>,
    engine: PluginEngine,
    limits: Limits,
    /// How often the instance was replaced after a trap.
    pub replaced: u64,
}

impl PluginInstance {
    /// Run one call under the deadline; on a trap replace the instance (its
    /// memory may be in any state) and report the trap.
    fn with_deadline<R>(
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
