//! Apache Flink's checkpoint storage logic, with no wasm and no I/O of its
//! own: the one home of every Flink fact this project relies on.
//!
//! - [`reference`]: Flink's location reference codec;
//! - [`paths`]: the rules a guest path must obey;
//! - [`layout`]: directory and file names, the job id rule;
//! - [`config`]: Flink's options, defaults and validation;
//! - [`output_stream`]: the buffering, threshold and inline-vs-file policy;
//! - [`access`], [`coordinator`], [`restore`], [`toolset`]: the worker view,
//!   the coordinator view, reading back, duplication;
//! - [`completed`]: finding and discarding completed checkpoints.
//! - [`file_merging`]: task-side file merging (FLIP-306).
//! - [`preopen`]: when a component instance reads its host's preopens.
//! - [`writeback`]: when the host starts writing a state file to the disk.
//!
//! Everything that touches files goes through the [`sandbox::Sandbox`]
//! trait: the component implements it over `wasi:filesystem`, native unit
//! tests over an in-memory fake, and the host's benchmark over `std::fs`, so
//! all three run the same policy.

pub mod access;
pub mod any_stream;
pub mod blob_error;
pub mod completed;
pub mod config;
pub mod coordinator;
pub mod entropy;
pub mod error;
pub mod file_merging;
pub mod handle;
pub mod layout;
pub mod object_uri;
pub mod output_stream;
pub mod paths;
pub mod preopen;
pub mod reference;
pub mod restore;
pub mod sandbox;
pub mod toolset;
pub mod writeback;

#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
