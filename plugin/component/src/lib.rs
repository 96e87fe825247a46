//! The engine as a WebAssembly component: wit-bindgen glue that converts
//! between the WIT types and the engine core's native mirror of them.
//!
//! The glue exists only for `wasm32`: built natively (as `cargo build
//! --workspace` does), this crate is empty, because the component's export
//! names are not valid symbols for a native linker. The host's build script
//! builds the real component for `wasm32-wasip2`.

#[cfg(target_arch = "wasm32")]
mod glue;
