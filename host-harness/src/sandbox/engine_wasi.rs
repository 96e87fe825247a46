//! What the engine component may reach of WASI.
//!
//! The engine runs synchronously on the server's Tokio workers, and
//! wasmtime-wasi's synchronous bindings finish any stream or poll call with
//! `Handle::block_on`, which panics there. Rust's standard library links
//! stdio (a panic's message goes to stderr) even though the engine never
//! prints, so the engine's WASI keeps clocks, randomness and the empty
//! environment, and every way to a stream or a pollable (the stdio handles
//! and the clock's subscriptions) traps instead: the engine call fails,
//! its transaction rolls back, and the thread stays out of `block_on`.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Result;
use wasmtime::component::{Component, Linker};

/// Functions replaced by traps, by interface (any version).
const TRAPPED: &[(&str, &[&str])] = &[
    ("wasi:cli/stdin", &["get-stdin"]),
    ("wasi:cli/stdout", &["get-stdout"]),
    ("wasi:cli/stderr", &["get-stderr"]),
];

/// The monotonic clock's subscriptions, which hand out pollables.
const CLOCK: &str = "wasi:clocks/monotonic-clock";

/// Replaces, for `component`, the WASI functions that lead to a stream or a
/// pollable with traps; call after linking WASI.
pub fn restrict<T: 'static>(
    linker: &mut Linker<T>,
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<()> {
    linker.allow_shadowing(true);
    for name in super::imports(engine, component) {
        let bare = name.split_once('@').map_or(name.as_str(), |(b, _)| b);
        // An instance defined under the component's exact import name wins
        // over the one wasmtime-wasi defined for a compatible version.
        if let Some((_, funcs)) = TRAPPED.iter().find(|(i, _)| *i == bare) {
            let mut instance = linker.instance(&name)?;
            for f in *funcs {
                trap(&mut instance, &name, f)?;
            }
        } else if bare == CLOCK {
            let mut instance = linker.instance(&name)?;
            instance.func_wrap("now", |_, (): ()| Ok((nanos_since_start(),)))?;
            instance.func_wrap("resolution", |_, (): ()| Ok((1u64,)))?;
            for f in ["subscribe-duration", "subscribe-instant"] {
                trap(&mut instance, &name, f)?;
            }
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

fn trap<T: 'static>(
    instance: &mut wasmtime::component::LinkerInstance<'_, T>,
    interface: &str,
    func: &str,
) -> Result<()> {
    let what = format!("{interface}#{func}");
    instance.func_new(func, move |_, _, _, _| {
        Err(wasmtime::Error::msg(format!(
            "the engine called {what}, which the host does not provide to it"
        )))
    })?;
    Ok(())
}

/// The monotonic clock: nanoseconds since the first reading.
fn nanos_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
