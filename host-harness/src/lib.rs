//! `scim-host`: the reference LMS host for the SCIM engine component.
//!
//! It terminates HTTP, authenticates tenants, runs each request in one
//! SQLite transaction and hands the raw request to the engine component in a
//! wasmtime sandbox; it keeps the reference LMS the engine provisions, the
//! outbox it drains in the background, and the sync log. It knows nothing
//! of SCIM semantics: those live in the engine (`plugin/`).
//!
//! Layout: [`http`] routes SCIM, the admin API and metrics; [`app`] runs a
//! request's transaction; [`imports`] implements the WIT interfaces the
//! engine imports; [`lms`] is the reference LMS model; [`db`] holds the
//! schema and tenants; [`outbox`] and [`worker`] are the background work;
//! [`events`] is the sync log; [`metrics`] the Prometheus registry;
//! [`fault`] the panics tests inject (debug builds only); [`alerts`] the
//! tenants' webhooks and their delivery queue.

pub mod alert_worker;
pub mod alerts;
pub mod app;
pub mod checkpoints;
pub mod db;
pub mod event;
pub mod events;
pub mod fault;
pub mod gate;
pub mod http;
pub mod imports;
pub mod jobs;
pub mod lms;
pub mod mapper;
pub mod mapping;
pub mod metrics;
pub mod outbox;
pub mod runtime;
pub mod sandbox;
pub mod worker;

/// Host-side bindings generated from `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "engine",
        // The engine's two WASI imports are wasmtime-wasi's own.
        with: {
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "wasi:random/random": wasmtime_wasi::p2::bindings::random::random,
        },
    });
}

/// The engine component built by `build.rs`, embedded so the binary is
/// self-contained.
pub static ENGINE_WASM: &[u8] = include_bytes!(env!("SCIM_ENGINE_WASM"));
