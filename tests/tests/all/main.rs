//! Most integration tests, in one binary: each file is a module. One binary
//! links wasmtime once instead of once per file (link time and disk).
//! `ticker` (counts the threads of its process), and `faults`,
//! `file_merging` and `lifecycle_crash` (they re-run themselves in child
//! processes by test name) stay binaries of their own.

mod adversarial;
mod both_backends;
mod buffered_stream;
mod cache;
mod coordinator;
mod direct_io;
mod hardening;
mod isolation;
mod jco;
mod lifecycle;
mod limits;
mod load;
mod location_reference;
mod memory_backend;
mod nonblocking;
mod output_stream;
mod outside_crate;
mod restore;
mod sandbox;
mod storage_access;
mod toolset;
mod write_state;
