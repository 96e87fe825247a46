//! Builds the engine component (`plugin/component`) for `wasm32-wasip2` so
//! that `cargo build`, `cargo run` and `cargo test` need no extra step, and
//! hands its path to the host as `SCIM_ENGINE_WASM`.
//!
//! The nested cargo gets its own target directory (`target/engine`, shared by
//! every profile of the host so it stays warm) and none of the outer build's
//! flags, the way wasmtime's test-programs build their guests.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("workspace root").to_path_buf();
    for watched in [
        "plugin/src",
        "plugin/component/src",
        "plugin/Cargo.toml",
        "plugin/component/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SCIM_ENGINE_PREBUILT");

    // An already built component (for example from a release pipeline).
    if let Ok(prebuilt) = env::var("SCIM_ENGINE_PREBUILT") {
        println!("cargo:rustc-env=SCIM_ENGINE_WASM={prebuilt}");
        return;
    }

    ensure_target();
    let target_dir = engine_target_dir(&root);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--package",
            "scim-engine-component",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    let status = cmd
        .status()
        .expect("failed to run cargo for the engine component");
    if !status.success() {
        panic!(
            "building the engine component (plugin/component) for {TARGET} failed; see the output above"
        );
    }
    let wasm = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join("scim_engine_component.wasm");
    assert!(
        wasm.exists(),
        "engine component not found at {}",
        wasm.display()
    );
    println!("cargo:rustc-env=SCIM_ENGINE_WASM={}", wasm.display());
}

/// `target/engine` next to the outer build's target directory.
fn engine_target_dir(root: &Path) -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>/out (or with a target triple
    // in between); find the directory that holds the profile directories.
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(|p| p.join("engine"))
        .unwrap_or_else(|| root.join("target").join("engine"))
}

/// Makes sure the `wasm32-wasip2` standard library is installed: rustup does
/// not fetch targets by itself when `RUSTUP_AUTO_INSTALL=0`.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).join("lib").exists();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        panic!(
            "the {TARGET} Rust target is missing and `rustup target add {TARGET}` failed; \
             install it by hand and build again"
        );
    }
}
