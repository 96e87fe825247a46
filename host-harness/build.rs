//! Builds the engine component (`plugin/component`, with the recipe in
//! `plugin/build`) so that `cargo build`, `cargo run` and `cargo test` need
//! no extra step, and hands its path to the host as `SCIM_ENGINE_WASM`.
//!
//! The nested cargo gets its own target directory (`target/engine`, shared by
//! every profile of the host and by `scim-engine-build`, so it stays warm).

use std::env;
use std::path::{Path, PathBuf};

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

    let opts = scim_engine_build::Options {
        target_dir: engine_target_dir(&root),
        root,
        features: Vec::new(),
    };
    match scim_engine_build::build(&opts) {
        Ok(wasm) => println!("cargo:rustc-env=SCIM_ENGINE_WASM={}", wasm.display()),
        Err(e) => panic!("{e:#}"),
    }
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
