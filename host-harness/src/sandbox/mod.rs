//! The wasmtime sandbox, one home for what the engine component and
//! admins' mapping plugins share: the epoch ticker behind every deadline,
//! the on-disk cache of compiled code, and the check of what a component
//! imports. An LMS vendor embedding the engine uses the same pieces.

mod capture;
pub mod plugin;
mod spares;
pub mod threads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// Epoch tick; deadlines are counted in ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Advances an engine's epoch every [`TICK`] until dropped, so a store's
/// epoch deadline bounds how long wasm runs.
pub struct Ticker(Arc<AtomicBool>);

impl Ticker {
    pub fn start(engine: &wasmtime::Engine, name: &str) -> Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, stop2) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker(stop))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Ticks in a deadline of `d` (at least one).
pub fn ticks(d: Duration) -> u64 {
    (d.as_millis() / TICK.as_millis()).max(1) as u64
}

/// The instance imports of a component, by name (`wasi:io/streams@0.2.6`).
pub fn imports(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The function exports of a component's world, by name, and whether a
/// name is an exported instance rather than a function.
pub fn exports(engine: &wasmtime::Engine, component: &Component) -> Vec<(String, bool)> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, item)| {
            (
                name.to_string(),
                matches!(item.ty, ComponentItem::ComponentFunc(_)),
            )
        })
        .collect()
}

/// The imports not covered by `allowed`: each entry is an interface name
/// without its version (`wasi:io/streams`), matched against the import's
/// name with any `@version` removed.
pub fn disallowed(imports: &[String], allowed: &[&str]) -> Vec<String> {
    imports
        .iter()
        .filter(|name| {
            let bare = name.split_once('@').map_or(name.as_str(), |(b, _)| b);
            !allowed.contains(&bare)
        })
        .cloned()
        .collect()
}

/// Converts a wasmtime error, adding what was being done.
pub fn ctx<T>(r: wasmtime::Result<T>, what: &'static str) -> Result<T> {
    r.map_err(anyhow::Error::from).context(what)
}

/// Compiles a component, or loads the compiled code a previous start
/// cached under a key of the component bytes, the host's version and the
/// engine's configuration, and caches what it compiled. `kind` names the
/// cache file and the errors.
pub fn load_component(
    engine: &wasmtime::Engine,
    kind: &str,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Component> {
    let component = read_or_compile(engine, kind, wasm, cache_dir)?;
    if let Some(dir) = cache_dir {
        write_cached(&component, &cached_path(engine, kind, wasm, dir));
    }
    Ok(component)
}

/// The compiled code a previous start cached (see [`load_component`]), or
/// the component compiled now, which is not cached.
pub fn read_or_compile(
    engine: &wasmtime::Engine,
    kind: &str,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Component> {
    if let Some(dir) = cache_dir {
        let path = cached_path(engine, kind, wasm, dir);
        if path.exists() {
            // SAFETY: the file was written by `write_cached` into the host's
            // own cache directory; wasmtime also checks its version and config.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "ignoring unusable compiled cache")
                }
            }
        }
    }
    Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling the {kind} component"))
}

/// Where the compiled code of `wasm` is cached in `dir`.
pub fn cached_path(engine: &wasmtime::Engine, kind: &str, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut h = Sha256::new();
    h.update(wasm);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    let mut compat = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut compat);
    h.update(std::hash::Hasher::finish(&compat).to_le_bytes());
    dir.join(format!("{kind}-{}.cwasm", hex::encode(&h.finalize()[..16])))
}

/// Writes compiled code to `path` (atomically), unless it is there already.
pub fn write_cached(component: &Component, path: &Path) {
    if path.exists() {
        return;
    }
    let Some(dir) = path.parent() else {
        return;
    };
    if let Ok(bytes) = component.serialize() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, bytes))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not cache a compiled component");
        }
    }
}
