//! The engine component in its sandbox (see [`crate::sandbox`] for what it
//! shares with mapping plugins).
//!
//! The component is compiled once (and the compiled code cached on disk),
//! pre-linked into an `InstancePre`, and instantiated fresh for every request
//! from a pooling allocator, so no state survives from one request or tenant
//! to the next. Each instance gets a memory cap and an epoch deadline; WASI
//! is linked with no filesystem, network, environment or stdio.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::exports::lms::scim::handler::DrainStep;
use crate::bindings::lms::scim::outbox::Task;
use crate::bindings::lms::scim::types::{HttpRequest, HttpResponse, RequestContext};
use crate::bindings::{Engine as EngineWorld, EnginePre};
use crate::imports::SqlStore;
use crate::sandbox::plugin::Plugins;
use crate::sandbox::{Ticker, ctx, load_component, ticks};

/// Bytes of each instance's memory kept mapped between requests (the
/// engine's working set for a request is well below this).
const KEEP_RESIDENT: usize = 8 << 20;

/// Sandbox limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a request may run inside the engine.
    pub timeout: Duration,
    /// Largest linear memory of an instance, in bytes.
    pub memory_bytes: usize,
    /// Instances that may exist at once (requests in flight).
    pub instances: u32,
}

/// The state of one request's instance.
pub struct RequestState {
    pub store: SqlStore,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RequestState {
    pub fn new(store: SqlStore, limits: &Limits) -> Self {
        RequestState {
            store,
            // Clocks and randomness only: no preopens, env, args, stdio or sockets.
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(64)
                .trap_on_grow_failure(true)
                .build(),
        }
    }
}

/// The compiled engine, ready to instantiate.
pub struct Runtime {
    engine: wasmtime::Engine,
    pre: EnginePre<RequestState>,
    limits: Limits,
    /// The sandbox the engine's `plugin` import runs mapping plugins in.
    plugins: Arc<Plugins>,
    _ticker: Ticker,
}

impl Runtime {
    /// Compiles (or loads from `cache_dir`) the component and links it.
    pub fn new(wasm: &[u8], limits: Limits, cache_dir: Option<&Path>) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.instances)
            .total_core_instances(limits.instances * 8)
            .total_memories(limits.instances * 2)
            .total_tables(limits.instances * 4)
            .max_memory_size(limits.memory_bytes)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            // Reset a slot by rewriting just the pages the last request
            // dirtied (found with Linux's PAGEMAP_SCAN) instead of madvise:
            // no page faults when the slot is reused and no TLB-shootdown
            // interrupts across cores. Elsewhere this falls back to madvise.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = ctx(wasmtime::Engine::new(&config), "configuring wasmtime")?;
        let component = load_component(&engine, "engine", wasm, cache_dir)?;

        let mut linker: Linker<RequestState> = Linker::new(&engine);
        ctx(
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker),
            "linking WASI",
        )?;
        ctx(
            EngineWorld::add_to_linker::<_, HasSelf<SqlStore>>(
                &mut linker,
                |s: &mut RequestState| &mut s.store,
            ),
            "linking the store interface",
        )?;
        let pre = ctx(
            linker.instantiate_pre(&component).and_then(EnginePre::new),
            "pre-instantiating the engine",
        )?;

        let ticker = Ticker::start(&engine, "epoch-ticker")?;
        // A plugin instance lives as long as the request state that runs it
        // (a preview keeps its state between engine calls), so slots are not
        // bounded by engine instances alone; reserving more costs only
        // address space.
        let plugins = Arc::new(Plugins::new(cache_dir, limits.instances * 2)?);
        Ok(Runtime {
            engine,
            pre,
            limits,
            plugins,
            _ticker: ticker,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The mapping-plugin sandbox.
    pub fn plugins(&self) -> Arc<Plugins> {
        self.plugins.clone()
    }

    /// Runs `handle` in a fresh instance. The state comes back in every case
    /// so the caller can commit or roll back its transaction.
    pub fn handle(
        &self,
        state: RequestState,
        request: &HttpRequest,
    ) -> (wasmtime::Result<HttpResponse>, RequestState) {
        let mut store = self.store(state);
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|inst| inst.lms_scim_handler().call_handle(&mut store, request));
        (result, store.into_data())
    }

    /// Runs one batch of a background task in a fresh instance.
    pub fn drain(
        &self,
        state: RequestState,
        context: &RequestContext,
        task: &Task,
        batch: u32,
    ) -> (wasmtime::Result<Result<DrainStep, String>>, RequestState) {
        let mut store = self.store(state);
        let result = self.pre.instantiate(&mut store).and_then(|inst| {
            inst.lms_scim_handler()
                .call_drain(&mut store, context, task, batch)
        });
        (result, store.into_data())
    }

    /// Runs `f` against a fresh instance (the `mapping-admin` calls).
    pub fn call<R>(
        &self,
        state: RequestState,
        f: impl FnOnce(&mut Store<RequestState>, &EngineWorld) -> wasmtime::Result<R>,
    ) -> (wasmtime::Result<R>, RequestState) {
        let mut store = self.store(state);
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|inst| f(&mut store, &inst));
        (result, store.into_data())
    }

    /// Renders an error response through the engine (401, 413, 500…).
    pub fn error_response(
        &self,
        state: RequestState,
        context: &RequestContext,
        status: u16,
        detail: &str,
    ) -> (wasmtime::Result<HttpResponse>, RequestState) {
        let mut store = self.store(state);
        let result = self.pre.instantiate(&mut store).and_then(|inst| {
            inst.lms_scim_handler()
                .call_error_response(&mut store, context, status, detail)
        });
        (result, store.into_data())
    }

    fn store(&self, state: RequestState) -> Store<RequestState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(self.limits.timeout));
        store.epoch_deadline_trap();
        store
    }
}
