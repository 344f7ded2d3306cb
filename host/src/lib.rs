//! wasmtime host library for the checkpoint storage component (Apache
//! Flink's checkpoint storage as a WebAssembly component).
//!
//! [`Plugin`] compiles the component once per process and keeps an
//! `InstancePre`; [`Plugin::tenant`] creates a [`Tenant`]: its own store, its
//! own instance, and one preopened directory mounted at `/checkpoints` as the
//! only thing it can see. The typed API mirrors the WIT interfaces, one
//! module each: `types`, `worker` ([`WorkerView`], [`StreamFactory`],
//! [`StateOutputStream`], [`CheckpointStateToolset`]), `coordinator`
//! ([`CoordinatorView`]), `restore` ([`StateInputStream`]) and
//! `file-merging` ([`FileMergingSnapshotManager`], FLIP-306).
//!
//! The component is embedded in the library (default feature
//! `embedded-component`): [`Plugin::load`] needs no file. Without the
//! feature, pass the component to [`Plugin::from_bytes`] or
//! [`Plugin::from_file`].
//!
//! A debug build compiles the component with an unoptimised Cranelift,
//! which takes seconds per load. Either give the plugin a compile cache
//! ([`PluginOptions::with_cache_dir`]) or optimise the compiler in your
//! `Cargo.toml` (this workspace does):
//!
//! ```toml
//! [profile.dev.package.cranelift-codegen]
//! opt-level = 2
//! [profile.dev.package.regalloc2]
//! opt-level = 2
//! [profile.dev.package.wasmtime-internal-cranelift]
//! opt-level = 2
//! ```
//!
//! ```no_run
//! use checkpoint_storage_host::{Plugin, TenantConfig, StorageConfig, LocationReference, StateScope};
//! let plugin = Plugin::load()?;
//! let tenant = plugin.tenant(TenantConfig::new("/var/lib/tenant-a"))?;
//! let view = tenant.open_worker_view(&StorageConfig::filesystem("0123456789abcdef0123456789abcdef"))?;
//! let factory = view.resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
//! let mut stream = factory.create_checkpoint_state_output_stream(StateScope::Exclusive)?;
//! stream.write(b"state")?;
//! let handle = stream.close_and_get_handle()?;
//! # Ok::<(), checkpoint_storage_host::Error>(())
//! ```

#![warn(missing_docs)]

mod beneath;
mod bindings;
#[cfg(feature = "blobstore")]
pub mod blobstore;
mod buffered;
mod cache;
pub mod checkpoint_store;
mod config_check;
#[cfg(test)]
mod contract_tests;
mod coordinator;
mod direct_io;
mod error;
mod file_merging;
pub mod gc;
mod in_place_write;
pub mod inspect;
mod limits;
pub mod manifest;
#[cfg(feature = "tokio")]
pub mod nonblocking;
mod open_at;
mod output_stream;
mod plugin;
mod resource;
mod restore;
pub mod shared_registry;
mod tenant;
mod tenant_slots;
mod types;
mod wit_section;
mod worker;
mod worker_exports;
pub mod writeback;

#[cfg(feature = "blobstore")]
pub use blobstore::BlobGrant;
pub use buffered::BufferedStateOutputStream;
pub use cache::{CACHE_STALE_AFTER, CacheStatus};
pub use config_check::{ConfigError, MAX_CALL_TIME, MAX_MEMORY_BYTES, MIN_MEMORY_BYTES};
pub use coordinator::{
    CheckpointStorageLocation, CompletedCheckpoint, CoordinatorView, ListedCheckpoint, MetadataOutputStream,
};
pub use error::{Error, ErrorCode, Result, StorageError};
pub use file_merging::{FileMergingOptions, FileMergingSnapshotManager, MergingStreamFactory, SpaceStat, SubtaskKey};
pub use limits::{
    DEFAULT_MAX_CALL_TIME, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_OPEN_STREAMS, DEFAULT_MAX_READ_STATE_BYTES,
    LimitExceeded,
};
pub use output_stream::DEFAULT_BATCH_SIZE;
#[cfg(all(feature = "embedded-component", feature = "blobstore"))]
pub use plugin::EMBEDDED_BLOBSTORE_COMPONENT;
pub use plugin::{
    Allocator, DEFAULT_EPOCH_TICK, DEFAULT_POOL_KEEP_RESIDENT_BYTES, Plugin, PluginOptions, engine_config,
};
#[cfg(feature = "embedded-component")]
pub use plugin::{EMBEDDED_COMPONENT, EMBEDDED_TASK_COMPONENT};
pub use resource::MAX_BYTES_PER_CALL;
pub use restore::StateInputStream;
pub use tenant::{GUEST_MOUNT, Tenant, TenantConfig, TenantState};
pub use types::*;
pub use wit_section::WIT_PACKAGE_SECTION;
pub use worker::{CheckpointStateToolset, StateOutputStream, StreamFactory, WorkerView};
