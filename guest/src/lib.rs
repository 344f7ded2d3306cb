//! Apache Flink's checkpoint storage as a WebAssembly component: the
//! wit-bindgen glue (`component`, one file per WIT interface) and the
//! sandbox the core's logic runs on: `wasi_sandbox` (files through
//! `wasi:filesystem`, the default build) or `blob_sandbox` (objects through
//! `wasi:blobstore`, feature `blobstore`). All Flink logic lives in
//! `checkpoint-storage-core`, which is unit-tested natively; this crate
//! holds only what needs wasm32.

#[cfg(all(target_arch = "wasm32", feature = "blobstore"))]
mod blob_sandbox;
#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod no_stdio;
#[cfg(all(target_arch = "wasm32", not(feature = "blobstore")))]
mod wasi_sandbox;
