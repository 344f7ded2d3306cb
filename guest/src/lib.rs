//! Apache Flink's task-side checkpoint storage (`CheckpointStorageWorkerView`)
//! as a WebAssembly component.
//!
//! The pure logic lives in plain modules that know nothing of WASI or
//! wit-bindgen and are unit-tested natively:
//! `reference` (location reference codec), `paths` (guest path rules),
//! `config` (defaults and validation), `output_stream` (buffering and
//! inline-vs-file policy), `toolset` (duplication), `access` (the worker view
//! and its stream factories). `sandbox` is the seam to the filesystem:
//! `wasi_sandbox` implements it over `wasi:filesystem`, and `component` is the
//! thin wit-bindgen glue; both exist only on wasm32.

pub mod access;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod handle;
pub mod output_stream;
pub mod paths;
pub mod reference;
pub mod restore;
pub mod sandbox;
pub mod toolset;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod wasi_sandbox;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
