//! Mapping plugins built as their authors build them: the workspace's Rust
//! plugins compiled for wasm32-wasip2 with the `wasm` profile. Shared by the
//! end-to-end tests and the console's browser tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Builds the workspace's Rust plugin `package` for wasm32-wasip2 with the
/// `wasm` profile into `target/mappers`, and returns the component
/// `wasm_name` (seconds when warm, a minute or two cold).
pub fn build_rust_plugin(package: &str, wasm_name: &str) -> Vec<u8> {
    let root = workspace();
    let target = root.join("target/mappers");
    let started = Instant::now();
    scim_engine_build::ensure_target("wasm32-wasip2").unwrap_or_else(|e| panic!("{e:#}"));
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "-p",
            package,
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
            "--target-dir",
        ])
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the Rust plugin {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("Rust plugin {package} built in {:?}", started.elapsed());
    let wasm = target.join("wasm32-wasip2/wasm").join(wasm_name);
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
}
