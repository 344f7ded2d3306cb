//! wasmtime host for the checkpoint storage component.
//!
//! [`Plugin`] compiles the component once per process and keeps an
//! `InstancePre`; [`Plugin::tenant`] creates a [`Tenant`]: its own store, its
//! own instance, and one preopened directory mounted at `/checkpoints` as the
//! only thing it can see. The typed API ([`WorkerView`], [`StreamFactory`],
//! [`StateOutputStream`], [`CheckpointStateToolset`]) mirrors the WIT
//! `worker` interface.
//!
//! ```no_run
//! use checkpoint_storage_host::{Plugin, TenantConfig, StorageConfig, LocationReference, StateScope};
//! let plugin = Plugin::load()?;
//! let tenant = plugin.tenant(TenantConfig::new("/var/lib/tenant-a"))?;
//! let view = tenant.open_worker_view(&StorageConfig::filesystem("0123456789abcdef0123456789abcdef"))?;
//! let factory = view.resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
//! let stream = factory.create_checkpoint_state_output_stream(StateScope::Exclusive)?;
//! stream.write(b"state")?;
//! let handle = stream.close_and_get_handle()?;
//! # Ok::<(), checkpoint_storage_host::Error>(())
//! ```

mod api;
pub mod bench;
mod bindings;
mod buffered;
mod cache;
mod coordinator;
mod error;
mod in_place_write;
pub mod inspect;
mod limits;
pub mod manifest;
mod plugin;
mod restore;
mod tenant;

pub use api::*;
pub use buffered::{BufferedStateOutputStream, DEFAULT_BATCH_SIZE};
pub use cache::{CACHE_STALE_AFTER, CacheStatus};
pub use coordinator::{CheckpointStorageLocation, CompletedCheckpoint, CoordinatorView, MetadataOutputStream};
pub use error::{Error, ErrorCode, Result, StorageError};
pub use limits::{DEFAULT_MAX_CALL_TIME, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_OPEN_STREAMS, LimitExceeded};
pub use plugin::{
    Allocator, COMPONENT_PATH, DEFAULT_EPOCH_TICK, DEFAULT_POOL_KEEP_RESIDENT_BYTES, Plugin, PluginOptions,
};
pub use restore::StateInputStream;
pub use tenant::{GUEST_MOUNT, Tenant, TenantConfig, TenantState};
