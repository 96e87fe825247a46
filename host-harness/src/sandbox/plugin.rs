//! Admins' mapping plugins in the sandbox: checking an upload (a component
//! of the `lms:mapping` `mapper` world that imports nothing dangerous),
//! compiling it once per content hash, and running calls under hard limits.
//! An instance serves at most the users of one engine call (a request or a
//! background batch) of one tenant, and is discarded after any failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{Ticker, disallowed, exports, imports, load_component, ticks};

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
/// Plugin stderr kept for a failure's detail.
const STDERR_BYTES: usize = 2048;

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
    pre: bindings::MapperPre<PluginState>,
}

/// One call's store data.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: Cap,
    stderr: MemoryOutputPipe,
}

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
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    cache_dir: Option<PathBuf>,
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
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let ticker = Ticker::start(&engine, "plugin-epoch")?;
        Ok(Plugins {
            engine,
            linker,
            loaded: Mutex::new(HashMap::new()),
            cache_dir: cache_dir.map(Path::to_path_buf),
            _ticker: ticker,
        })
    }

    /// Checks an upload and compiles it (or finds it compiled already).
    pub fn load(&self, wasm: &[u8]) -> Result<Arc<Loaded>, Refusal> {
        let hash = sha256(wasm);
        if let Some(l) = self.loaded.lock().expect("plugin cache").get(&hash) {
            return Ok(l.clone());
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
        let component = load_component(&self.engine, "plugin", wasm, self.cache_dir.as_deref())
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
            .and_then(bindings::MapperPre::new)
            .map_err(|e| Refusal::WrongWorld(format!("{e:#}")))?;
        let loaded = Arc::new(Loaded {
            sha256: hash.clone(),
            size: wasm.len(),
            pre,
        });
        self.loaded
            .lock()
            .expect("plugin cache")
            .insert(hash, loaded.clone());
        Ok(loaded)
    }

    /// The compiled plugin with this hash, if it was loaded before.
    pub fn get(&self, sha256: &str) -> Option<Arc<Loaded>> {
        self.loaded
            .lock()
            .expect("plugin cache")
            .get(sha256)
            .cloned()
    }

    /// Runs the plugin for one user, in a fresh instance, within `limits`.
    pub fn run(
        &self,
        plugin: &Loaded,
        limits: &PluginLimits,
        user: &User,
        settings: &str,
    ) -> Result<Vec<Grant>, Failure> {
        self.run_in(&mut None, plugin, limits, user, settings)
    }

    /// Runs the plugin for one user within `limits`, in the instance
    /// `session` holds when it is this plugin's, else in a fresh one. A call
    /// that fails in any way but the plugin's own refusal discards the
    /// instance, and is run again in a fresh one if the instance had served
    /// other users, so reuse never fails a user a fresh instance would map;
    /// otherwise the instance stays in `session` for the next user of the
    /// same tenant and engine call, so a plugin that is costly to start
    /// (Python) starts once per batch rather than once per user.
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
        let mut current = match session.take() {
            Some(s) if s.sha256 == plugin.sha256 && s.calls < MAX_CALLS_PER_INSTANCE => s,
            _ => self.start(plugin, limits)?,
        };
        let store = &mut current.store;
        store.data_mut().cap = Cap {
            memory: limits.memory_bytes,
            hit: false,
        };
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled on the plugin engine");
        store.set_epoch_deadline(ticks(limits.deadline));
        current.calls += 1;
        let result = current
            .mapper
            .call_assign(&mut current.store, user, settings);
        let outcome = match result {
            Ok(Ok(grants)) => {
                let size = output_size(&grants);
                if size > limits.max_output {
                    Err(Failure {
                        reason: "plugin-output-too-large",
                        detail: format!(
                            "the plugin returned {} grants in {size} bytes; at most {} bytes are accepted",
                            grants.len(),
                            limits.max_output
                        ),
                    })
                } else {
                    Ok(grants)
                }
            }
            Ok(Err(e)) => Err(Failure {
                reason: "plugin-refused",
                detail: format!(
                    "the plugin refused the user: {}: {}",
                    clip(&e.code, 100),
                    clip(&e.message, 500)
                ),
            }),
            Err(e) => Err(classify(&e, current.store.data(), limits)),
        };
        // A clean instance is kept; one that failed, or wrote to stderr
        // (whose buffer is bounded), is dropped and its slot reset.
        let clean = match &outcome {
            Ok(_) => true,
            Err(f) => f.reason == "plugin-refused",
        };
        if clean && current.store.data().stderr.contents().is_empty() {
            *session = Some(current);
        } else if !clean && current.calls > 1 {
            // What an earlier user left in the instance (a leak, a stale
            // cache) must not fail this one: it gets a fresh instance.
            return self.run_in(session, plugin, limits, user, settings);
        }
        outcome
    }

    /// A fresh instance of `plugin`: a new store whose limits the first
    /// call sets, instantiated from the pre-linked template (this runs the
    /// plugin's start function, under the same fuel and deadline).
    fn start(&self, plugin: &Loaded, limits: &PluginLimits) -> Result<Session, Failure> {
        let stderr = MemoryOutputPipe::new(STDERR_BYTES);
        let state = PluginState {
            wasi: WasiCtxBuilder::new().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            cap: Cap {
                memory: limits.memory_bytes,
                hit: false,
            },
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.cap);
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled on the plugin engine");
        store.set_epoch_deadline(ticks(limits.deadline));
        store.epoch_deadline_trap();
        match plugin.pre.instantiate(&mut store) {
            Ok(mapper) => Ok(Session {
                store,
                mapper,
                sha256: plugin.sha256.clone(),
                calls: 0,
            }),
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
}

/// A plugin instance kept between calls (see [`Plugins::run_in`]). It holds
/// one of the sandbox's instance slots until dropped.
pub struct Session {
    store: Store<PluginState>,
    mapper: bindings::Mapper,
    sha256: String,
    calls: u32,
}

impl Session {
    /// The users this instance has served.
    pub fn calls(&self) -> u32 {
        self.calls
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
    let stderr = String::from_utf8_lossy(&state.stderr.contents())
        .trim()
        .to_string();
    let said = if stderr.is_empty() {
        String::new()
    } else {
        format!("; it wrote: {}", clip(&stderr, 500))
    };
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure {
            reason: "plugin-fuel",
            detail: format!(
                "the plugin used its whole budget of {} fuel units without returning",
                limits.fuel
            ),
        },
        Some(Trap::Interrupt) => Failure {
            reason: "plugin-timeout",
            detail: format!(
                "the plugin ran past its {} ms deadline",
                limits.deadline.as_millis()
            ),
        },
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

fn output_size(grants: &[Grant]) -> usize {
    grants
        .iter()
        .map(|g| g.name.len() + g.reason.len() + 1)
        .sum()
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
