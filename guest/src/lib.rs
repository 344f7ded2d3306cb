//! Apache Flink's checkpoint storage as a WebAssembly component: the
//! wit-bindgen glue (`component`, one file per WIT interface) and the WASI
//! sandbox (`wasi_sandbox`, the core's `Sandbox` over `wasi:filesystem`
//! descriptors). All Flink logic lives in `checkpoint-storage-core`, which
//! is unit-tested natively; this crate holds only what needs wasm32.

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod wasi_sandbox;
