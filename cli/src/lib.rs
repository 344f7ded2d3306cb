//! The `checkpoint-storage` command line: `demo`, `inspect` and `bench`.
//! The library part holds the benchmark so that its smoke test can run it;
//! embedders use `checkpoint-storage-host`, not this crate.

pub mod bench;
