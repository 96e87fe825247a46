//! The engine as a WebAssembly component: wit-bindgen glue that converts
//! between the WIT types and the engine core's native mirror of them.
//!
//! The glue exists only for `wasm32`: built natively (as `cargo build
//! --workspace` does), this crate is empty, because the component's export
//! names are not valid symbols for a native linker. `plugin/build` builds
//! the real component, for `wasm32-unknown-unknown`.

#[cfg(target_arch = "wasm32")]
mod glue;

/// Talc instead of the default dlmalloc: a background batch allocates and
/// frees millions of small strings and maps, and dlmalloc's `free` was the
/// engine's largest single cost in a profile of one.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
