//! `scim-host`: the reference LMS host for the SCIM engine component.
//!
//! It terminates HTTP, authenticates tenants, runs each request in one
//! SQLite transaction and hands the raw request to the engine component in a
//! wasmtime sandbox. It knows nothing of SCIM semantics: those live in the
//! engine (`plugin/`).

pub mod db;
pub mod runtime;
pub mod server;
pub mod storage;

/// Host-side bindings generated from `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "engine",
    });
}

/// The engine component built by `build.rs`, embedded so the binary is
/// self-contained.
pub static ENGINE_WASM: &[u8] = include_bytes!(env!("SCIM_ENGINE_WASM"));
