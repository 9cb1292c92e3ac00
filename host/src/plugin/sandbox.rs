//! The sandbox of one instance: its store data ([`Sandbox`]: an empty WASI
//! context, clocks frozen at zero, the memory limiter), the [`Limits`] a
//! plugin runs under, and [`new_store`], which builds a store with them and
//! instantiates a pre-linked component in it.
//!
//! It owns every capability a plugin gets (none beyond memory and CPU time).
//! It must not depend on declarations, the batch codec or the calls.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Feature, FeaturePre};
use super::engine::{PluginEngine, deadline_ticks};

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

pub(super) fn new_store(
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
