//! Typed API over the WIT `coordinator` interface (Flink's
//! `CheckpointStorageCoordinatorView`).

use crate::bindings::exports::flink::checkpoint_storage::coordinator::Guest as CoordinatorGuest;
pub use crate::bindings::exports::flink::checkpoint_storage::coordinator::{CompletedCheckpoint, ListedCheckpoint};
use crate::bindings::exports::flink::checkpoint_storage::types::LocationReference;
use crate::error::Result;
use crate::limits::StreamPermit;
use crate::resource::{GuestResult, Owned};
use crate::tenant::{Inner, Tenant};
use crate::types::StorageConfig;
use wasmtime::component::ResourceAny;

/// One call on a coordinator-interface resource.
fn call<T>(owned: &Owned, f: impl FnOnce(&CoordinatorGuest, &mut Inner, ResourceAny) -> GuestResult<T>) -> Result<T> {
    owned.call_on(Inner::coordinator, f)
}

impl Tenant {
    /// Opens a coordinator view of a job. `default_savepoint_dir` is a guest
    /// path (Flink's `execution.checkpointing.savepoint-dir`).
    pub fn open_coordinator_view(
        &self,
        config: &StorageConfig,
        default_savepoint_dir: Option<&str>,
    ) -> Result<CoordinatorView> {
        let (resource, side) = self.call(|inner| {
            let opened =
                inner
                    .coordinator()?
                    .coordinator_view()
                    .call_open(&mut inner.store, config, default_savepoint_dir)?;
            Ok(opened.map(|resource| (resource, inner.coordinator_side())))
        })?;
        // Its locations and metadata streams live in the same instance
        // (`Owned::sibling`).
        Ok(CoordinatorView(Owned::on_side(self, resource, side)))
    }
}

/// A job's coordinator view inside one tenant.
#[derive(Debug)]
pub struct CoordinatorView(Owned);

impl CoordinatorView {
    /// Whether a default savepoint directory is configured.
    pub fn has_default_savepoint_location(&self) -> Result<bool> {
        call(&self.0, |g, i, r| {
            g.coordinator_view()
                .call_has_default_savepoint_location(&mut i.store, r)
                .map(Ok)
        })
    }

    /// Flink's `supportsHighlyAvailableStorage`: whether completed
    /// checkpoints are persisted (false without a checkpoints directory).
    pub fn supports_highly_available_storage(&self) -> Result<bool> {
        call(&self.0, |g, i, r| {
            g.coordinator_view()
                .call_supports_highly_available_storage(&mut i.store, r)
                .map(Ok)
        })
    }

    /// Creates `<job>/shared` and `<job>/taskowned`.
    pub fn initialize_base_locations_for_checkpoint(&self) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.coordinator_view()
                .call_initialize_base_locations_for_checkpoint(&mut i.store, r)
        })
    }

    /// Creates `<job>/chk-<id>`; its reference is the default reference.
    pub fn initialize_location_for_checkpoint(&self, checkpoint_id: u64) -> Result<CheckpointStorageLocation> {
        let resource = call(&self.0, |g, i, r| {
            g.coordinator_view()
                .call_initialize_location_for_checkpoint(&mut i.store, r, checkpoint_id)
        })?;
        Ok(CheckpointStorageLocation(self.0.sibling(resource)))
    }

    /// Creates a savepoint directory below `target` (or the default).
    pub fn initialize_location_for_savepoint(
        &self,
        checkpoint_id: u64,
        target: Option<&str>,
    ) -> Result<CheckpointStorageLocation> {
        let resource = call(&self.0, |g, i, r| {
            g.coordinator_view()
                .call_initialize_location_for_savepoint(&mut i.store, r, checkpoint_id, target)
        })?;
        Ok(CheckpointStorageLocation(self.0.sibling(resource)))
    }

    /// Finds a completed checkpoint from its directory or metadata file.
    pub fn resolve_checkpoint(&self, pointer: &str) -> Result<CompletedCheckpoint> {
        call(&self.0, |g, i, r| {
            g.coordinator_view().call_resolve_checkpoint(&mut i.store, r, pointer)
        })
    }

    /// The job's completed checkpoints (`chk-<id>` with `_metadata`),
    /// newest first.
    pub fn list_completed_checkpoints(&self) -> Result<Vec<ListedCheckpoint>> {
        call(&self.0, |g, i, r| {
            g.coordinator_view().call_list_completed_checkpoints(&mut i.store, r)
        })
    }

    /// The job's completed savepoint directories in `directory` (or the
    /// default savepoint directory), by name; read their metadata for ids.
    pub fn list_savepoints(&self, directory: Option<&str>) -> Result<Vec<CompletedCheckpoint>> {
        call(&self.0, |g, i, r| {
            g.coordinator_view().call_list_savepoints(&mut i.store, r, directory)
        })
    }

    /// Deletes `<job>/chk-<id>`, `_metadata` first; shared state stays.
    pub fn discard_completed_checkpoint(&self, checkpoint_id: u64) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.coordinator_view()
                .call_discard_completed_checkpoint(&mut i.store, r, checkpoint_id)
        })
    }
}

/// The location of one checkpoint or savepoint.
#[derive(Debug)]
pub struct CheckpointStorageLocation(Owned);

impl CheckpointStorageLocation {
    /// The reference tasks pass to `WorkerView::resolve_checkpoint_storage_location`.
    pub fn location_reference(&self) -> Result<LocationReference> {
        call(&self.0, |g, i, r| {
            g.checkpoint_storage_location()
                .call_location_reference(&mut i.store, r)
                .map(Ok)
        })
    }

    /// Guest path of the directory for this checkpoint's exclusive state;
    /// `unsupported` for a location that keeps its metadata in memory (no
    /// checkpoints directory).
    pub fn checkpoint_directory(&self) -> Result<String> {
        call(&self.0, |g, i, r| {
            g.checkpoint_storage_location()
                .call_checkpoint_directory(&mut i.store, r)
        })
    }

    /// Guest path of the metadata file (`<checkpoint directory>/_metadata`,
    /// without the entropy marker when entropy injection is on);
    /// `unsupported` without a checkpoints directory.
    pub fn metadata_file_path(&self) -> Result<String> {
        call(&self.0, |g, i, r| {
            g.checkpoint_storage_location().call_metadata_file_path(&mut i.store, r)
        })
    }

    /// A stream for `_metadata` (published only when finalized).
    pub fn create_metadata_output_stream(&self) -> Result<MetadataOutputStream> {
        let permit = self.0.tenant.acquire_stream()?;
        let resource = call(&self.0, |g, i, r| {
            g.checkpoint_storage_location()
                .call_create_metadata_output_stream(&mut i.store, r)
        })?;
        Ok(MetadataOutputStream(self.0.sibling(resource), permit))
    }

    /// Deletes the checkpoint directory (exclusive state); shared state
    /// stays. Refused (`already-exists`) once `_metadata` exists.
    pub fn dispose_on_failure(&self) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.checkpoint_storage_location().call_dispose_on_failure(&mut i.store, r)
        })
    }
}

/// Writes a checkpoint's metadata; dropping it unfinalized removes the
/// temporary file. Without a checkpoints directory (memory backend) the
/// bytes stay in the component's memory (its memory cap applies) and come
/// back inline. It holds one of its tenant's stream slots until dropped,
/// and its bytes count against the tenant's byte limit.
#[derive(Debug)]
pub struct MetadataOutputStream(Owned, StreamPermit);

impl MetadataOutputStream {
    /// Appends `data` (in calls of at most [`crate::MAX_BYTES_PER_CALL`] bytes).
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.1.metered_write(data.len(), || {
            crate::resource::pieces(data).try_for_each(|piece| {
                call(&self.0, |g, i, r| {
                    g.metadata_output_stream().call_write(&mut i.store, r, piece)
                })
            })
        })
    }

    /// Bytes written so far.
    pub fn get_pos(&self) -> Result<u64> {
        call(&self.0, |g, i, r| {
            g.metadata_output_stream().call_get_pos(&mut i.store, r).map(Ok)
        })
    }

    /// Makes the bytes written so far durable.
    pub fn sync(&self) -> Result<()> {
        call(&self.0, |g, i, r| g.metadata_output_stream().call_sync(&mut i.store, r))
    }

    /// Publishes `_metadata` and returns the completed checkpoint (without
    /// a checkpoints directory: the metadata as a byte-stream handle under
    /// the pointer `<checkpoint-not-externally-addressable>`).
    pub fn close_and_finalize_checkpoint(self) -> Result<CompletedCheckpoint> {
        self.finalize_shared()
    }

    /// [`close_and_finalize_checkpoint`](Self::close_and_finalize_checkpoint)
    /// of a stream that is shared (the async API holds it in an `Arc`).
    pub(crate) fn finalize_shared(&self) -> Result<CompletedCheckpoint> {
        call(&self.0, |g, i, r| {
            g.metadata_output_stream()
                .call_close_and_finalize_checkpoint(&mut i.store, r)
        })
    }
}
