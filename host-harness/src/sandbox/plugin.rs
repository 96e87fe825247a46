//! Admins' mapping plugins in the sandbox: checking an upload (a component
//! of the `lms:mapping` `mapper` world that imports nothing dangerous),
//! compiling it once per content hash, and running calls under hard limits.
//! An instance serves at most the users of one engine call (a request or a
//! background batch) of one tenant, and is discarded after any failure.
//!
//! Calls run as futures on the sandbox's own threads ([`CallThreads`]), with
//! WASI's async host functions: whatever a plugin imports (a write to
//! stderr, a sleep, a read of stdin) works or fails as that call, on
//! whichever thread asked, and the call's deadline holds across host calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::{Func, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capture::Capture;
use super::spares::{Make, Refiller, Spares};
use super::threads::CallThreads;
use super::{
    Ticker, cached_path, disallowed, exports, imports, read_or_compile, ticks, write_cached,
};

/// Host-side bindings of the plugin world (`wit/mapper`).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/mapper",
        world: "mapper",
    });
}

pub use bindings::lms::mapping::types::{Grant, GrantKind, Group, MappingError, User};

/// What a plugin may import (any version). WASI's streams, stdio, exit,
/// clocks and randomness are harmless; `wasi:cli/environment` is linked
/// empty (no variables, arguments or working directory), because Rust's
/// standard library imports it even when unused. Files, sockets, HTTP and
/// every other interface are refused at install.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "lms:mapping/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Largest component accepted (a Python plugin carries its interpreter).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;
/// Largest memory cap a tenant may give a plugin.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;
/// Largest fuel budget a tenant may give a plugin per call.
pub const MAX_FUEL: u64 = 1_000_000_000;
/// Largest settings document.
pub const MAX_SETTINGS_BYTES: usize = 64 << 10;
/// Core instances, memories and tables one plugin may have (a Python
/// plugin links its interpreter and libc as separate core modules).
const MAX_CORE_INSTANCES: u32 = 64;
const MAX_MEMORIES: u32 = 2;
const MAX_TABLES: u32 = 16;
/// Bytes of a pooled memory kept mapped between calls.
const KEEP_RESIDENT: usize = 1 << 20;
/// Users one instance serves before it is replaced by a fresh one, which
/// bounds what a plugin's leaks or caches can grow to.
const MAX_CALLS_PER_INSTANCE: u32 = 10_000;
/// Compiled code of uploads never installed (previews, replays) kept in
/// memory, most recently used first; installed plugins do not count.
const RECENT_CODE_BYTES: usize = 256 << 20;
/// Uploads never installed kept compiled in memory, at most.
const RECENT_MAX: usize = 16;
/// Compiled installed plugins kept on disk, at most (the least recently
/// written go first; one evicted is compiled again at the next start).
const DISK_CACHE_BYTES: u64 = 1 << 30;
/// Bytes of a plugin's stdout and of its stderr kept for a failure's detail.
const OUTPUT_KEPT: usize = 2048;
/// Never-called instances of the plugins in force kept ready, in all, at
/// most (and at most a quarter of the instance slots).
const MAX_SPARES: u32 = 8;

/// Limits of one plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// Fuel (roughly, wasm instructions) per call.
    pub fuel: u64,
    /// Linear memory cap, bytes.
    pub memory_bytes: usize,
    /// Wall-clock backstop behind the fuel.
    pub deadline: Duration,
    /// Largest input: the user's JSON, groups and ids, bytes.
    pub max_input: usize,
    /// Largest output: grant names and reasons, bytes.
    pub max_output: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            fuel: 10_000_000,
            memory_bytes: 16 << 20,
            deadline: Duration::from_millis(100),
            max_input: 128 << 10,
            max_output: 20 << 10,
        }
    }
}

/// Why an upload is not a plugin that can be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the file is {0} bytes; a plugin may be at most {MAX_COMPONENT_BYTES} bytes")]
    TooLarge(usize),
    #[error(
        "the file is not a WebAssembly component ({0}); build it for the `mapper` world of lms:mapping (see plugin/mappers/README.md)"
    )]
    NotAComponent(String),
    #[error(
        "the plugin imports what plugins may not use: {}; a plugin may import only the `lms:mapping` types and WASI's io, stdio, exit, clocks and random interfaces",
        .0.join(", ")
    )]
    Imports(Vec<String>),
    #[error(
        "the component is not a plugin of the `mapper` world: {0}; it must export `assign: func(user: user, settings: string) -> result<list<grant>, mapping-error>` from lms:mapping@0.1.0"
    )]
    WrongWorld(String),
    #[error("the component could not be compiled: {0}")]
    Compile(String),
}

/// Why a call produced nothing usable: the user keeps its LMS state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Machine-readable (`plugin-fuel`, `plugin-trap`, ...; see the WIT).
    pub reason: &'static str,
    pub detail: String,
}

/// A checked, compiled plugin, ready to instantiate.
pub struct Loaded {
    pub sha256: String,
    pub size: usize,
    /// Bytes of compiled code held in memory.
    code_bytes: usize,
    pre: InstancePre<PluginState>,
}

/// Compiled plugins in memory: each tenant's plugin in force for as long
/// as it is, so that no SCIM write compiles, and the most recently used
/// other uploads (previews, replays, plugins replaced) within
/// [`RECENT_CODE_BYTES`] and [`RECENT_MAX`].
#[derive(Default)]
struct Compiled {
    installed: HashMap<String, Arc<Loaded>>,
    /// The hash each tenant's plugin in force has.
    in_force: HashMap<i64, String>,
    /// Most recently used last.
    recent: Vec<Arc<Loaded>>,
}

impl Compiled {
    /// Puts `sha256` (or nothing) in force for `tenant`; the plugin it
    /// replaces joins the recent uploads once no tenant has it in force.
    fn set_in_force(&mut self, tenant: i64, sha256: Option<&str>) {
        let before = match sha256 {
            Some(sha) => self.in_force.insert(tenant, sha.to_string()),
            None => self.in_force.remove(&tenant),
        };
        let Some(before) = before.filter(|b| Some(b.as_str()) != sha256) else {
            return;
        };
        if self.in_force.values().all(|s| *s != before)
            && let Some(l) = self.installed.remove(&before)
        {
            self.add_recent(l);
        }
    }

    /// The hashes of the plugins in force.
    fn in_force_hashes(&self) -> Vec<String> {
        self.installed.keys().cloned().collect()
    }

    fn get(&mut self, sha256: &str) -> Option<Arc<Loaded>> {
        if let Some(l) = self.installed.get(sha256) {
            return Some(l.clone());
        }
        let i = self.recent.iter().position(|l| l.sha256 == sha256)?;
        let l = self.recent.remove(i);
        self.recent.push(l.clone());
        Some(l)
    }

    fn add_recent(&mut self, l: Arc<Loaded>) {
        self.recent.push(l);
        while self.recent.len() > RECENT_MAX
            || (self.recent.len() > 1
                && self.recent.iter().map(|l| l.code_bytes).sum::<usize>() > RECENT_CODE_BYTES)
        {
            self.recent.remove(0);
        }
    }
}

/// One call's store data.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: Cap,
    stdout: Capture,
    stderr: Capture,
}

/// `assign` as the host calls it.
type Assign = (Result<Vec<Grant>, MappingError>,);

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory cap, remembering whether the plugin hit it (a Rust plugin
/// then aborts, which would otherwise read as a plain trap).
struct Cap {
    memory: usize,
    hit: bool,
}

impl ResourceLimiter for Cap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        4
    }
}

/// The plugin sandbox: its own wasmtime engine (with fuel metering, which
/// the SCIM engine does without), and compiled plugins by content hash.
pub struct Plugins {
    engine: wasmtime::Engine,
    linker: Linker<PluginState>,
    compiled: Mutex<Compiled>,
    cache_dir: Option<PathBuf>,
    threads: CallThreads,
    /// Never-called instances of the plugins in force, by hash, started
    /// under the limits they were asked with.
    spares: Refiller<PluginLimits, Session>,
    _ticker: Ticker,
}

/// Hex SHA-256 of a component.
pub fn sha256(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl Plugins {
    /// A sandbox caching compiled plugins in `cache_dir`, if given, with
    /// `slots` plugin instances at once (each request state holds at most
    /// one; see [`Session`]).
    pub fn new(cache_dir: Option<&Path>, slots: u32) -> Result<Plugins> {
        // Instances come from a pool: a call reuses a slot's memory
        // mapping (its image copy-on-write, dirty pages reset on release)
        // instead of mapping and unmapping memory every time.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * MAX_CORE_INSTANCES)
            .total_memories(slots * MAX_MEMORIES)
            .total_tables(slots * MAX_TABLES)
            .max_memory_size(MAX_MEMORY_BYTES)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            // Async calls run on fiber stacks, pooled like the rest.
            .total_stacks(slots);
        let mut config = Config::new();
        // A plugin compiles on one thread: wasmtime's parallel compilation
        // would take every core for the seconds an 18 MB Python plugin
        // takes, from every tenant's requests.
        config.parallel_compilation(false);
        // Tables are filled when an instance starts, not entry by entry on
        // first use, so that an instance started ahead (see `spares`) has
        // done that work before a request takes it. (A Python plugin's
        // first call still costs about 2 ms: its interpreter's own first
        // run, measured by `cargo bench -p scim-host --bench plugins`.)
        config.table_lazy_init(false);
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let ticker = Ticker::start(&engine, "plugin-epoch")?;
        // One thread for every thread that can call a plugin at once (the
        // HTTP workers, one core per mapping work and the background
        // worker, about twice the cores), so a call never queues behind
        // another's sleep: a waiting plugin holds its thread but no core.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Plugins {
            engine,
            linker,
            compiled: Mutex::default(),
            cache_dir: cache_dir.map(Path::to_path_buf),
            threads: CallThreads::start(2 * cores + 1)?,
            spares: Spares::start(MAX_SPARES.min(slots / 4) as usize)?,
            _ticker: ticker,
        })
    }

    fn compiled(&self) -> std::sync::MutexGuard<'_, Compiled> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks an upload and compiles it (or finds it compiled already). It
    /// stays in memory among the recent uploads until [`Plugins::keep`]
    /// makes it an installed one.
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<Loaded>, Refusal> {
        let hash = sha256(wasm);
        if let Some(l) = self.compiled().get(&hash) {
            return Ok(l);
        }
        if wasm.len() > MAX_COMPONENT_BYTES {
            return Err(Refusal::TooLarge(wasm.len()));
        }
        if !wasmparser_is_component(wasm) {
            let what = if wasm.starts_with(b"\0asm") {
                "it is a core WebAssembly module"
            } else {
                "it does not start with the WebAssembly magic number"
            };
            return Err(Refusal::NotAComponent(what.into()));
        }
        let component = read_or_compile(&self.engine, "plugin", wasm, self.cache_dir.as_deref())
            .map_err(|e| Refusal::Compile(format!("{e:#}")))?;
        let bad = disallowed(&imports(&self.engine, &component), ALLOWED_IMPORTS);
        if !bad.is_empty() {
            return Err(Refusal::Imports(bad));
        }
        if !exports(&self.engine, &component)
            .iter()
            .any(|(name, func)| name == "assign" && *func)
        {
            return Err(Refusal::WrongWorld(
                "it exports no function `assign`".into(),
            ));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(|pre| bindings::MapperPre::new(pre.clone()).map(|_| pre))
            .map_err(|e| Refusal::WrongWorld(format!("{e:#}")))?;
        let range = component.image_range();
        let loaded = Arc::new(Loaded {
            sha256: hash,
            size: wasm.len(),
            code_bytes: (range.end as usize).saturating_sub(range.start as usize),
            pre,
        });
        self.compiled().add_recent(loaded.clone());
        Ok(loaded)
    }

    /// Keeps `tenant`'s plugin in force compiled in memory for as long as it
    /// is in force, and on disk for the next start (within
    /// [`DISK_CACHE_BYTES`]); `wasm` is its component.
    pub fn keep(&self, tenant: i64, loaded: &Arc<Loaded>, wasm: &[u8]) {
        let mut compiled = self.compiled();
        compiled.recent.retain(|l| l.sha256 != loaded.sha256);
        compiled
            .installed
            .insert(loaded.sha256.clone(), loaded.clone());
        compiled.set_in_force(tenant, Some(&loaded.sha256));
        let in_force = compiled.in_force_hashes();
        drop(compiled);
        self.spares.retain(&in_force);
        if let Some(dir) = &self.cache_dir {
            let path = cached_path(&self.engine, "plugin", wasm, dir);
            write_cached(loaded.pre.component(), &path);
            prune_disk_cache(dir, &path);
        }
    }

    /// `tenant` runs no plugin any more: the one it ran joins the recent
    /// uploads.
    pub fn release(&self, tenant: i64) {
        let mut compiled = self.compiled();
        compiled.set_in_force(tenant, None);
        let in_force = compiled.in_force_hashes();
        drop(compiled);
        self.spares.retain(&in_force);
    }

    /// Never-called instances started ahead and ready now, in all.
    pub fn spares_ready(&self) -> usize {
        self.spares.ready()
    }

    /// A never-called instance of `plugin` started ahead under `limits`, if
    /// it is a plugin in force and one is ready; a thread of the sandbox
    /// starts the next one behind it (see [`super::spares`]).
    fn spare(&self, plugin: &Loaded, limits: &PluginLimits) -> Option<Session> {
        // Under the lock, so that a plugin leaving force meanwhile cannot
        // get a shelf after `release` or `keep` emptied it.
        let compiled = self.compiled();
        if !compiled.installed.contains_key(&plugin.sha256) {
            return None;
        }
        self.spares.take(&plugin.sha256, limits, || {
            let (engine, pre) = (self.engine.clone(), plugin.pre.clone());
            let (sha256, limits) = (plugin.sha256.clone(), limits.clone());
            let make: Make<Session> = Arc::new(move |rt| {
                // The timer is made inside the runtime, which it needs.
                rt.block_on(async {
                    tokio::time::timeout(limits.deadline, start(&engine, &pre, &sha256, &limits))
                        .await
                })
                .map_err(|_| timed_out(&limits).detail)?
                .map_err(|f| format!("{}: {}", f.reason, f.detail))
            });
            make
        })
    }

    /// The compiled plugin with this hash, if it was loaded before.
    pub fn get(&self, sha256: &str) -> Option<Arc<Loaded>> {
        self.compiled().get(sha256)
    }

    /// Compiled uploads never installed that are held in memory: their
    /// number and bytes of code.
    pub fn recent(&self) -> (usize, usize) {
        let c = self.compiled();
        (c.recent.len(), c.recent.iter().map(|l| l.code_bytes).sum())
    }

    /// Runs the plugin for one user, in a fresh instance, within `limits`.
    pub fn run(
        &self,
        plugin: &Loaded,
        limits: &PluginLimits,
        user: &User,
        settings: &str,
    ) -> Result<Vec<Grant>, Failure> {
        let mut session = None;
        let outcome = self.run_in(&mut session, plugin, limits, user, settings);
        if let Some(used) = session {
            self.discard(used);
        }
        outcome
    }

    /// Releases an instance that served its engine call, off the caller's
    /// thread (see [`super::spares`]).
    pub fn discard(&self, used: Session) {
        self.spares.discard(used);
    }

    /// Runs the plugin for one user within `limits`, in the instance
    /// `session` holds when it is this plugin's, else in a fresh one. A call
    /// that fails in any way but the plugin's own refusal discards the
    /// instance, and is run again in a fresh one if the instance had served
    /// other users (unless it ran out of time), so reuse never fails a user
    /// a fresh instance would map; otherwise the instance stays in `session`
    /// for the next user of the same tenant and engine call, so a plugin
    /// that is costly to start (Python) starts once per batch rather than
    /// once per user.
    pub fn run_in(
        &self,
        session: &mut Option<Session>,
        plugin: &Loaded,
        limits: &PluginLimits,
        user: &User,
        settings: &str,
    ) -> Result<Vec<Grant>, Failure> {
        let input = input_size(user);
        if input > limits.max_input {
            return Err(Failure {
                reason: "plugin-input-too-large",
                detail: format!(
                    "the user's data is {input} bytes; a plugin receives at most {} bytes",
                    limits.max_input
                ),
            });
        }
        let kept = session
            .take()
            .filter(|s| s.sha256 == plugin.sha256 && s.calls < MAX_CALLS_PER_INSTANCE);
        let served_others = kept.as_ref().is_some_and(|s| s.calls > 0);
        // Not one the engine call kept: a pristine one started ahead, if
        // ready, which is as fresh as one started now.
        let kept = kept.or_else(|| self.spare(plugin, limits));
        let call = Call {
            engine: self.engine.clone(),
            pre: plugin.pre.clone(),
            sha256: plugin.sha256.clone(),
            limits: limits.clone(),
            user: user.clone(),
            settings: settings.to_string(),
        };
        let (back, outcome) = self
            .threads
            .run(move |rt| rt.block_on(call.run(kept)))
            .unwrap_or_else(|| {
                (
                    None,
                    Err(Failure {
                        reason: "plugin-busy",
                        detail: "the host failed while running the plugin; see the server log"
                            .into(),
                    }),
                )
            });
        match &outcome {
            Err(f)
                if served_others
                    && !matches!(
                        f.reason,
                        "plugin-refused" | "plugin-timeout" | "plugin-busy"
                    ) =>
            {
                // What an earlier user left in the instance (a leak, a stale
                // cache) must not fail this one: it gets a fresh instance.
                self.run_in(session, plugin, limits, user, settings)
            }
            _ => {
                *session = back;
                outcome
            }
        }
    }
}

/// One plugin call, moved to a plugin thread.
struct Call {
    engine: wasmtime::Engine,
    pre: InstancePre<PluginState>,
    sha256: String,
    limits: PluginLimits,
    user: User,
    settings: String,
}

impl Call {
    /// Runs the call in `kept` or a fresh instance; the instance comes back
    /// when it may serve the next user.
    async fn run(self, kept: Option<Session>) -> (Option<Session>, Result<Vec<Grant>, Failure>) {
        let limits = &self.limits;
        let mut current = match kept {
            Some(s) => s,
            None => match tokio::time::timeout(
                limits.deadline,
                start(&self.engine, &self.pre, &self.sha256, limits),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(f)) => return (None, Err(f)),
                Err(_) => return (None, Err(timed_out(limits))),
            },
        };
        let state = current.store.data_mut();
        state.cap = Cap {
            memory: limits.memory_bytes,
            hit: false,
        };
        state.stdout.clear();
        state.stderr.clear();
        current
            .store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled on the plugin engine");
        current.store.set_epoch_deadline(ticks(limits.deadline));
        current.store.set_hostcall_fuel(copy_budget(limits));
        current.calls += 1;
        let outcome = match tokio::time::timeout(
            limits.deadline,
            current.assign(&self.user, &self.settings, limits),
        )
        .await
        {
            Ok(outcome) => outcome,
            // The plugin waited (a sleep, a poll) past its deadline; the
            // instance was left mid-call and is dropped.
            Err(_) => return (None, Err(timed_out(limits))),
        };
        let keep = match &outcome {
            Ok(_) => true,
            Err(f) => f.reason == "plugin-refused",
        };
        (keep.then_some(current), outcome)
    }
}

/// A fresh instance: a new store whose limits the first call sets,
/// instantiated from the pre-linked template (this runs the plugin's start
/// function, under the same fuel and deadline).
async fn start(
    engine: &wasmtime::Engine,
    pre: &InstancePre<PluginState>,
    sha256: &str,
    limits: &PluginLimits,
) -> Result<Session, Failure> {
    let (stdout, stderr) = (Capture::new(OUTPUT_KEPT), Capture::new(OUTPUT_KEPT));
    let state = PluginState {
        // stdin is empty; no variables, arguments, files or sockets.
        wasi: WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build(),
        table: ResourceTable::new(),
        cap: Cap {
            memory: limits.memory_bytes,
            hit: false,
        },
        stdout,
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.cap);
    store
        .set_fuel(limits.fuel)
        .expect("fuel is enabled on the plugin engine");
    store.set_epoch_deadline(ticks(limits.deadline));
    store.epoch_deadline_trap();
    match pre.instantiate_async(&mut store).await {
        Ok(instance) => {
            let func = instance
                .get_func(&mut store, "assign")
                .ok_or_else(|| Failure {
                    reason: "plugin-output-invalid",
                    detail: "the plugin exports no function `assign`".into(),
                })?;
            Ok(Session {
                store,
                func,
                sha256: sha256.to_string(),
                calls: 0,
            })
        }
        Err(e) if e.downcast_ref::<Trap>().is_none() && !store.data().cap.hit => {
            // Not the plugin's doing: every instance slot is in use.
            Err(Failure {
                reason: "plugin-busy",
                detail: format!("the host could not start the plugin: {e:#}"),
            })
        }
        Err(e) => Err(classify(&e, store.data(), limits)),
    }
}

/// A plugin instance kept between calls (see [`Plugins::run_in`]). It holds
/// one of the sandbox's instance slots until dropped.
pub struct Session {
    store: Store<PluginState>,
    func: Func,
    sha256: String,
    calls: u32,
}

impl Session {
    /// The users this instance has served.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Calls `assign`; what the host copies of its output is bounded by
    /// [`copy_budget`] (wasmtime's host-call fuel), then measured.
    async fn assign(
        &mut self,
        user: &User,
        settings: &str,
        limits: &PluginLimits,
    ) -> Result<Vec<Grant>, Failure> {
        let typed = self
            .func
            .typed::<(&User, &str), Assign>(&self.store)
            .map_err(|e| Failure {
                reason: "plugin-output-invalid",
                detail: format!("the plugin's `assign` has the wrong type: {e:#}"),
            })?;
        match typed.call_async(&mut self.store, (user, settings)).await {
            Ok((Ok(grants),)) => {
                let size = output_size(&grants);
                if size > limits.max_output {
                    return Err(too_large(
                        &format!("{} grants in {size} bytes", grants.len()),
                        limits,
                    ));
                }
                Ok(grants)
            }
            Ok((Err(e),)) => Err(Failure {
                reason: "plugin-refused",
                detail: format!(
                    "the plugin refused the user: {}: {}",
                    clip(&e.code, 100),
                    clip(&e.message, 500)
                ),
            }),
            Err(e) if format!("{e:#}").contains("fuel allocated for hostcalls") => Err(too_large(
                &format!(
                    "more than the {} bytes the host copies of an output (it was refused uncopied)",
                    copy_budget(limits)
                ),
                limits,
            )),
            Err(e) => Err(classify(&e, self.store.data(), limits)),
        }
    }
}

fn too_large(what: &str, limits: &PluginLimits) -> Failure {
    Failure {
        reason: "plugin-output-too-large",
        detail: format!(
            "the plugin returned {what}; at most {} bytes are accepted",
            limits.max_output
        ),
    }
}

/// Bytes of output the host copies out of the plugin at most: the largest
/// accepted output in its host form (a grant's two strings and kind, each
/// grant at least one byte), so that a plugin cannot make the host copy
/// more than that before the output is measured.
fn copy_budget(limits: &PluginLimits) -> usize {
    limits
        .max_output
        .saturating_mul(std::mem::size_of::<Grant>() + 1)
}

fn output_size(grants: &[Grant]) -> usize {
    grants
        .iter()
        .map(|g| g.name.len() + g.reason.len() + 1)
        .sum()
}

fn timed_out(limits: &PluginLimits) -> Failure {
    Failure {
        reason: "plugin-timeout",
        detail: format!(
            "the plugin ran past its {} ms deadline",
            limits.deadline.as_millis()
        ),
    }
}

/// Removes the least recently written compiled plugins from `dir` until
/// they fit [`DISK_CACHE_BYTES`], keeping `just_written`.
fn prune_disk_cache(dir: &Path, just_written: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("plugin-") && name.ends_with(".cwasm")
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    for (_, len, path) in files {
        if total <= DISK_CACHE_BYTES {
            break;
        }
        if path != just_written && std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

/// Whether the bytes are a component (not a core module).
fn wasmparser_is_component(wasm: &[u8]) -> bool {
    // The preamble: magic, then a version whose layer field is 1 for
    // components (see the component model's binary format).
    wasm.len() >= 8 && wasm.starts_with(b"\0asm") && wasm[6..8] == [1, 0]
}

/// What a failed call ran into.
fn classify(e: &wasmtime::Error, state: &PluginState, limits: &PluginLimits) -> Failure {
    if state.cap.hit {
        return Failure {
            reason: "plugin-memory",
            detail: format!(
                "the plugin needed more than its {} MiB of memory",
                limits.memory_bytes >> 20
            ),
        };
    }
    let said = said(state);
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Failure {
            reason: "plugin-trap",
            detail: format!("the plugin exited with status {}{said}", exit.0),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure {
            reason: "plugin-fuel",
            detail: format!(
                "the plugin used its whole budget of {} fuel units without returning",
                limits.fuel
            ),
        },
        Some(Trap::Interrupt) => timed_out(limits),
        Some(Trap::StackOverflow) => Failure {
            reason: "plugin-trap",
            detail: format!("the plugin overflowed its stack (unbounded recursion?){said}"),
        },
        Some(trap) => Failure {
            reason: "plugin-trap",
            detail: format!("the plugin trapped: {trap}{said}"),
        },
        None => Failure {
            reason: "plugin-output-invalid",
            detail: format!(
                "the plugin's call failed: {}{said}",
                clip(&format!("{e:#}"), 500)
            ),
        },
    }
}

/// What the plugin wrote to stderr (else stdout), for a failure's detail.
fn said(state: &PluginState) -> String {
    let (err, err_total) = state.stderr.text();
    let (out, out_total) = state.stdout.text();
    let (text, total, stream) = if err_total > 0 {
        (err, err_total, "stderr")
    } else {
        (out, out_total, "stdout")
    };
    if total == 0 {
        return String::new();
    }
    let more = if total as usize > OUTPUT_KEPT {
        format!(" ({total} bytes in all)")
    } else {
        String::new()
    };
    format!("; it wrote to {stream}{more}: {}", clip(&text, 500))
}

fn input_size(u: &User) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    u.id.len()
        + u.user_name.len()
        + opt(&u.external_id)
        + u.scim_json.len()
        + u.groups
            .iter()
            .map(|g| g.id.len() + opt(&g.display_name) + opt(&g.external_id))
            .sum::<usize>()
}

/// At most `n` characters of untrusted text, without control characters.
fn clip(s: &str, n: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(n)
        .collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}
