//! The engine component in its sandbox (see [`crate::sandbox`] for what it
//! shares with mapping plugins).
//!
//! The component is compiled once (and the compiled code cached on disk),
//! pre-linked into an `InstancePre`, and instantiated from a pooling
//! allocator. A SCIM request or a background batch runs in an instance kept
//! warm from an earlier call of the same tenant when one is idle (see
//! [`Warm`]); `mapping-admin` calls and error rendering get fresh ones. Each
//! instance gets a memory cap and an epoch deadline. Of WASI the engine
//! imports, and gets, only the wall clock and random bytes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksCtx, WasiClocksCtxView};
use wasmtime_wasi::p2::bindings::{clocks::wall_clock, random::random};
use wasmtime_wasi::random::{WasiRandom, WasiRandomCtx};

use crate::bindings::exports::lms::scim::handler::DrainStep;
use crate::bindings::lms::scim::outbox::Task;
use crate::bindings::lms::scim::types::{HttpRequest, HttpResponse, RequestContext};
use crate::bindings::lms::scim::{lms, outbox, plugin, store, sync_log};
use crate::bindings::{Engine as EngineWorld, EnginePre};
use crate::imports::SqlStore;
use crate::sandbox::plugin::Plugins;
use crate::sandbox::{Ticker, ctx, load_component, ticks};

/// Bytes of each instance's memory kept mapped between requests (the
/// engine's working set for a request is well below this).
const KEEP_RESIDENT: usize = 8 << 20;

/// Requests one warm instance serves before it is replaced, which bounds
/// what fragmentation of its heap can cost.
const WARM_CALLS: u32 = 1_000;

/// Sandbox limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a request may run inside the engine.
    pub timeout: Duration,
    /// Largest linear memory of an instance, in bytes.
    pub memory_bytes: usize,
    /// Instances that may exist at once (requests in flight).
    pub instances: u32,
    /// Idle instances kept warm for the next request of their tenant
    /// (see [`Warm`]); 0 gives every request a fresh instance.
    pub warm: usize,
}

/// The state of one request's instance.
pub struct RequestState {
    pub store: SqlStore,
    clocks: WasiClocksCtx,
    random: WasiRandomCtx,
    table: ResourceTable,
    limits: Limiter,
}

/// The memory cap, remembering how large the instance's memory grew.
struct Limiter {
    cap: StoreLimits,
    /// Largest linear memory asked for, in bytes.
    peak: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.peak = self.peak.max(desired);
        self.cap.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.cap.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.cap.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.cap.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.cap.instances()
    }

    fn tables(&self) -> usize {
        self.cap.tables()
    }

    fn memories(&self) -> usize {
        self.cap.memories()
    }
}

impl RequestState {
    pub fn new(store: SqlStore, limits: &Limits) -> Self {
        RequestState {
            store,
            clocks: WasiClocksCtx::default(),
            random: WasiRandomCtx::default(),
            table: ResourceTable::new(),
            limits: Limiter {
                cap: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .instances(64)
                    .trap_on_grow_failure(true)
                    .build(),
                peak: 0,
            },
        }
    }
}

/// An engine instance kept between SCIM requests (and background batches)
/// of one tenant.
///
/// Instantiating is a third of a small request's cost, and the engine keeps
/// nothing between calls (its state is the host's store), so an instance is
/// reused rather than rebuilt, under rules that keep reuse invisible:
/// - only for the tenant it first served, so no tenant's request ever runs
///   in memory another tenant's request touched;
/// - never after a trap or timeout (the instance may be inconsistent), after
///   a request whose memory grew past [`KEEP_RESIDENT`] (the slot goes back
///   to the pool and is reset small), or after [`WARM_CALLS`] requests;
/// - each request brings its own store import (transaction, journal, plugin
///   session) and deadline; the instance holds no reference to them after.
struct Warm {
    store: Store<RequestState>,
    engine: EngineWorld,
    tenant: i64,
    calls: u32,
}

/// Links what the engine's world imports: the two WASI interfaces and the
/// host's `lms:scim` implementations.
fn link(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    wall_clock::add_to_linker::<_, WasiClocks>(linker, |s| WasiClocksCtxView {
        ctx: &mut s.clocks,
        table: &mut s.table,
    })?;
    random::add_to_linker::<_, WasiRandom>(linker, |s| &mut s.random)?;
    fn host(s: &mut RequestState) -> &mut SqlStore {
        &mut s.store
    }
    store::add_to_linker::<_, HasSelf<SqlStore>>(linker, host)?;
    lms::add_to_linker::<_, HasSelf<SqlStore>>(linker, host)?;
    outbox::add_to_linker::<_, HasSelf<SqlStore>>(linker, host)?;
    sync_log::add_to_linker::<_, HasSelf<SqlStore>>(linker, host)?;
    plugin::add_to_linker::<_, HasSelf<SqlStore>>(linker, host)
}

/// The compiled engine, ready to instantiate.
pub struct Runtime {
    engine: wasmtime::Engine,
    pre: EnginePre<RequestState>,
    limits: Limits,
    /// The sandbox the engine's `plugin` import runs mapping plugins in.
    plugins: Arc<Plugins>,
    /// Idle warm instances, most recently used last.
    warm: Mutex<Vec<Warm>>,
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
        // For profiling: `perf` reads engine function names from
        // /tmp/perf-<pid>.map (names need an engine built unstripped).
        if std::env::var_os("SCIM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = ctx(wasmtime::Engine::new(&config), "configuring wasmtime")?;
        let component = load_component(&engine, "engine", wasm, cache_dir)?;

        let mut linker: Linker<RequestState> = Linker::new(&engine);
        ctx(link(&mut linker), "linking the engine's imports")?;
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
            warm: Mutex::new(Vec::new()),
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

    /// Runs `handle` with `store` as the instance's store import, in a warm
    /// instance of the store's tenant if one is idle (see [`Warm`]). The
    /// store comes back in every case so the caller can commit or roll back
    /// its transaction.
    pub fn handle(
        &self,
        store: SqlStore,
        request: &HttpRequest,
    ) -> (wasmtime::Result<HttpResponse>, SqlStore) {
        self.in_warm(store, |engine, wstore| {
            engine.lms_scim_handler().call_handle(wstore, request)
        })
    }

    /// Runs one batch of a background task, in a warm instance as
    /// [`Runtime::handle`] does: a fresh one per batch grew its memory and
    /// faulted it in every time (`mprotect`, page faults and instantiation
    /// were about 4% of a re-mapping's CPU in a profile).
    pub fn drain(
        &self,
        store: SqlStore,
        context: &RequestContext,
        task: &Task,
        batch: u32,
    ) -> (wasmtime::Result<Result<DrainStep, String>>, SqlStore) {
        self.in_warm(store, |engine, wstore| {
            engine
                .lms_scim_handler()
                .call_drain(wstore, context, task, batch)
        })
    }

    /// Runs `call` in a warm instance of the store's tenant (a fresh one if
    /// none is idle) with `store` as its store import, and keeps the
    /// instance for the next call when the rules of [`Warm`] allow.
    fn in_warm<R>(
        &self,
        mut store: SqlStore,
        call: impl FnOnce(&EngineWorld, &mut Store<RequestState>) -> wasmtime::Result<R>,
    ) -> (wasmtime::Result<R>, SqlStore) {
        let mut warm = match self.take_warm(store.tenant()) {
            Some(w) => w,
            None => match self.instantiate(store.tenant()) {
                Ok(w) => w,
                Err(e) => return (Err(e), store),
            },
        };
        let data = warm.store.data_mut();
        std::mem::swap(&mut data.store, &mut store);
        data.limits.peak = 0;
        warm.store.set_epoch_deadline(ticks(self.limits.timeout));
        let result = call(&warm.engine, &mut warm.store);
        let data = warm.store.data_mut();
        std::mem::swap(&mut data.store, &mut store);
        warm.calls += 1;
        if result.is_ok() && data.limits.peak <= KEEP_RESIDENT && warm.calls < WARM_CALLS {
            self.keep_warm(warm);
        }
        (result, store)
    }

    /// The idle warm instances: tenant and requests served, oldest first.
    #[cfg(test)]
    fn idle(&self) -> Vec<(i64, u32)> {
        let idle = self.warm.lock().unwrap();
        idle.iter().map(|w| (w.tenant, w.calls)).collect()
    }

    /// An idle warm instance of `tenant`, if any.
    fn take_warm(&self, tenant: i64) -> Option<Warm> {
        let mut idle = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle.iter().rposition(|w| w.tenant == tenant)?;
        Some(idle.remove(i))
    }

    fn keep_warm(&self, warm: Warm) {
        if self.limits.warm == 0 {
            return;
        }
        let mut idle = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= self.limits.warm {
            idle.remove(0);
        }
        idle.push(warm);
    }

    /// A fresh instance for `tenant`. Idle warm instances hold pool slots,
    /// so when the pool is exhausted they are let go and the allocation
    /// retried once.
    fn instantiate(&self, tenant: i64) -> wasmtime::Result<Warm> {
        let fresh = || -> wasmtime::Result<Warm> {
            let mut store = self.store(RequestState::new(SqlStore::detached(), &self.limits));
            let engine = self.pre.instantiate(&mut store)?;
            Ok(Warm {
                store,
                engine,
                tenant,
                calls: 0,
            })
        };
        fresh().or_else(|e| {
            let idle = std::mem::take(&mut *self.warm.lock().unwrap_or_else(|e| e.into_inner()));
            if idle.is_empty() {
                return Err(e);
            }
            drop(idle);
            fresh()
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::lms::scim::outbox::Work;
    use crate::bindings::lms::scim::types::RequestContext;
    use crate::db::{self, Checkpoints};

    fn request(method: &str, path: &str, body: Vec<u8>) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/scim+json".into())],
            body,
            context: RequestContext {
                tenant: "t".into(),
                base_url: "http://localhost/scim/v2".into(),
                request_id: "r".into(),
                subject: None,
                max_payload_bytes: 64 << 20,
                signing_key: vec![7; 32],
            },
        }
    }

    /// What a host must provide: the `lms:scim` interfaces and two WASI
    /// functions' interfaces, nothing else (the build checks it too).
    #[test]
    fn the_engine_imports_lms_scim_and_two_wasi_interfaces() {
        let engine = wasmtime::Engine::default();
        let component = wasmtime::component::Component::new(&engine, crate::ENGINE_WASM).unwrap();
        let mut imports = crate::sandbox::imports(&engine, &component);
        imports.retain(|name| !name.starts_with("lms:scim/"));
        assert_eq!(
            imports,
            ["wasi:clocks/wall-clock@0.2.0", "wasi:random/random@0.2.0"]
        );
    }

    /// Instances are reused only by their own tenant, and let go after a
    /// request that grew their memory.
    #[test]
    fn warm_instances_serve_one_tenant_and_stay_small() {
        let runtime = Runtime::new(
            crate::ENGINE_WASM,
            Limits {
                timeout: Duration::from_secs(30),
                memory_bytes: 256 << 20,
                instances: 6,
                warm: 2,
            },
            None,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pool = db::open_file(&dir.path().join("t.db"), 2, Checkpoints::InCommit).unwrap();
        for name in ["a", "b"] {
            db::add_tenant(&pool.get().unwrap(), name).unwrap();
        }
        let run = |tenant: i64, req: &HttpRequest| {
            let store = SqlStore::new(pool.get().unwrap(), tenant);
            let (result, store) = runtime.handle(store, req);
            assert!(store.into_conn().is_some(), "the store comes back");
            result.unwrap().status
        };
        let config = request("GET", "/ServiceProviderConfig", Vec::new());

        assert_eq!(run(1, &config), 200);
        assert_eq!(runtime.idle(), [(1, 1)]);
        assert_eq!(run(2, &config), 200);
        assert_eq!(
            runtime.idle(),
            [(1, 1), (2, 1)],
            "b did not get a's instance"
        );
        assert_eq!(run(1, &config), 200);
        assert_eq!(
            runtime.idle(),
            [(2, 1), (1, 2)],
            "a's instance served a again"
        );

        // A body larger than what an instance keeps resident: the instance
        // that read it goes back to the pool instead of staying warm.
        let big = format!(
            r#"{{"userName":"big","nickName":"{}"}}"#,
            "x".repeat(9 << 20)
        );
        assert_eq!(run(1, &request("POST", "/Users", big.into_bytes())), 201);
        assert_eq!(runtime.idle(), [(2, 1)]);

        // A full pool of idle instances never blocks a new tenant: at most
        // `warm` stay, the oldest is let go.
        assert_eq!(run(1, &config), 200);
        assert_eq!(run(3, &config), 200);
        assert_eq!(runtime.idle(), [(1, 1), (3, 1)]);

        // A background batch runs in its tenant's warm instance too.
        let task = Task {
            work: Work::Users(Vec::new()),
            cursor: None,
        };
        let store = SqlStore::new(pool.get().unwrap(), 1);
        let (result, store) = runtime.drain(store, &config.context, &task, 10);
        assert!(store.into_conn().is_some(), "the store comes back");
        assert!(matches!(result.unwrap(), Ok(DrainStep::Done)));
        assert_eq!(runtime.idle(), [(3, 1), (1, 2)]);
    }
}
