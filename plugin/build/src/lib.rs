//! Builds the engine component (`plugin/component`): one home for the
//! recipe that `scim-host`'s build script and the other hosts' launchers
//! (through the `scim-engine-build` command) share.
//!
//! The engine is compiled for `wasm32-unknown-unknown`, not `wasm32-wasip2`:
//! Rust's standard library on WASI links stdio, the environment and `exit`
//! (a panic's message goes to stderr) even though the engine never uses
//! them, and every host would have to provide them. On the bare target it
//! imports exactly what its WIT world names, and `wit-component` turns the
//! core module into the component. The build then checks the component's
//! import list against [`ALLOWED_IMPORTS`], so a dependency that starts
//! reaching for WASI fails the build instead of every foreign host.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The Rust target the engine core is compiled for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The cargo profile of the engine (small and fast; see the workspace
/// `Cargo.toml`).
pub const PROFILE: &str = "wasm";

/// Interfaces the component may import, by name without version: the
/// `lms:scim` package and two WASI functions' interfaces.
pub const ALLOWED_IMPORTS: &[&str] = &["wasi:clocks/wall-clock", "wasi:random/random"];

/// The package whose interfaces the component imports besides
/// [`ALLOWED_IMPORTS`].
const OWN_PACKAGE: &str = "lms:scim/";

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The workspace root (the directory of the top-level `Cargo.toml`).
    pub root: PathBuf,
    /// The nested cargo's target directory; the component is written inside.
    pub target_dir: PathBuf,
    /// Cargo features of `scim-engine-component` (benchmarks only).
    pub features: Vec<String>,
}

/// Builds the component and returns its path. The file is rewritten only
/// when its bytes change, so that builds depending on it stay fresh.
pub fn build(opts: &Options) -> Result<PathBuf> {
    ensure_target(TARGET)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&opts.root)
        .args(["build", "--package", "scim-engine-component"])
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&opts.target_dir);
    if !opts.features.is_empty() {
        cmd.args(["--features", &opts.features.join(",")]);
    }
    // None of an outer build's flags: the nested build is a build of its own,
    // the way wasmtime's test-programs build their guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().context("running cargo for the engine")?;
    if !status.success() {
        bail!("building the engine (plugin/component) for {TARGET} failed; see the output above");
    }
    let dir = opts.target_dir.join(TARGET).join(PROFILE);
    let core = dir.join("scim_engine_component.wasm");
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let component = componentize(&module)?;
    let out = dir.join("scim-engine.wasm");
    if std::fs::read(&out).ok().as_deref() != Some(&component[..]) {
        std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(out)
}

/// Turns the core module into a component and checks what it imports.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    let component = wit_component::ComponentEncoder::default()
        .module(module)
        .context("reading the engine's component metadata")?
        .validate(true)
        .encode()
        .context("making the engine a component (an import outside its WIT world?)")?;
    let unexpected: Vec<String> = imports(&component)?
        .into_iter()
        .filter(|name| !allowed(name))
        .collect();
    if !unexpected.is_empty() {
        bail!(
            "the engine component imports {}; it may import only lms:scim and {} \
             (a dependency reaching for WASI? see plugin/build/src/lib.rs)",
            unexpected.join(", "),
            ALLOWED_IMPORTS.join(", ")
        );
    }
    Ok(component)
}

/// The names of the interfaces a component imports.
pub fn imports(component: &[u8]) -> Result<Vec<String>> {
    let decoded = wit_component::decode(component).context("decoding the engine component")?;
    let wit_component::DecodedWasm::Component(resolve, world) = decoded else {
        bail!("the engine's build produced a WIT package, not a component");
    };
    Ok(resolve.worlds[world]
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect())
}

fn allowed(name: &str) -> bool {
    let bare = name.split_once('@').map_or(name, |(b, _)| b);
    name.starts_with(OWN_PACKAGE) || ALLOWED_IMPORTS.contains(&bare)
}

/// Makes sure `target`'s standard library is installed: rustup does not
/// fetch targets by itself when `RUSTUP_AUTO_INSTALL=0`. Also used by the
/// tests and benchmarks that build mapping plugins for `wasm32-wasip2`.
pub fn ensure_target(target: &str) -> Result<()> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(target).join("lib").exists();
    if sysroot.as_deref().is_some_and(installed) {
        return Ok(());
    }
    eprintln!("installing the {target} target with rustup");
    let ok = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "the {target} Rust target is missing and `rustup target add {target}` failed; \
             install it by hand and build again"
        );
    }
    Ok(())
}
