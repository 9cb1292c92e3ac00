//! The sandbox of one instance: its store data ([`Sandbox`]: an empty WASI
//! context, clocks frozen at zero, the memory limiter), the [`Limits`] a
//! plugin runs under, and [`new_store`], which builds a store with them and
//! instantiates a pre-linked component in it.
//!
//! It owns every capability a plugin gets (none beyond memory and CPU time).
//! It must not depend on declarations, the batch codec or the calls.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Feature, FeaturePre};
use super::engine::{PluginEngine, deadline_ticks};
use super::output::GuestOutput;

/// Resource limits of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// The most a plugin may declare for itself in place of `memory_bytes`
    /// (see [`super::sections`]); a plugin declaring more is refused.
    pub max_memory_bytes: usize,
    /// Wall-clock budget of one call (one batch). Enforced with epoch
    /// interruption rather than fuel: fuel costs every instruction, epochs
    /// cost one check per loop header and function entry.
    pub deadline: Duration,
}

impl Limits {
    /// An instance whose memory has grown past this (three quarters of the
    /// limit) is replaced between two calls: the host keeps the states, so
    /// a fresh instance loses nothing.
    pub fn high_water_bytes(&self) -> usize {
        self.memory_bytes / 4 * 3
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            max_memory_bytes: 512 << 20,
            deadline: Duration::from_secs(1),
        }
    }
}

/// The per-store data: an empty WASI context (but for stdout and stderr,
/// kept in memory) plus the limiter.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limiter,
    pub(super) stdout: GuestOutput,
    pub(super) stderr: GuestOutput,
}

impl Sandbox {
    /// The largest linear memory of the instance so far, in bytes.
    pub(super) fn memory_bytes(&self) -> usize {
        self.limits.largest_memory
    }
}

/// [`StoreLimits`], noting how large the instance's memories have grown.
/// Interpreted guests (CPython, SpiderMonkey) grow their heap call after
/// call and rarely give it back; the host replaces such an instance before
/// it reaches the limit ([`Limits::high_water_bytes`]).
struct Limiter {
    inner: StoreLimits,
    largest_memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.largest_memory = self.largest_memory.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
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

pub(super) fn new_store(
    engine: &PluginEngine,
    pre: &FeaturePre<Sandbox>,
    limits: Limits,
) -> wasmtime::Result<(Store<Sandbox>, Feature)> {
    let (stdout, stderr) = (GuestOutput::default(), GuestOutput::default());
    let wasi = WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .insecure_random_seed(0)
        .secure_random(<rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(0))
        .build();
    let sandbox = Sandbox {
        wasi,
        table: ResourceTable::new(),
        stdout,
        stderr,
        limits: Limiter {
            largest_memory: 0,
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                // A Rust guest is 2 core instances; a CPython one (componentize-py)
                // about 14, a SpiderMonkey one (componentize-js) a few more.
                .instances(32)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
        },
    };
    let mut store = Store::new(&engine.inner.engine, sandbox);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(deadline_ticks(limits.deadline));
    let bindings = pre.instantiate(&mut store)?;
    Ok((store, bindings))
}
