//! WIT `coordinator`, async: twins of [`CoordinatorView`],
//! [`CheckpointStorageLocation`] and [`MetadataOutputStream`].

use super::{AsyncTenant, Shared, run};
use crate::coordinator::{CheckpointStorageLocation, CompletedCheckpoint, CoordinatorView, MetadataOutputStream};
use crate::error::Result;
use crate::types::{LocationReference, StorageConfig};

impl AsyncTenant {
    /// Opens a coordinator view of a job ([`Tenant::open_coordinator_view`](crate::Tenant::open_coordinator_view));
    /// `default_savepoint_dir` is a guest path.
    pub async fn open_coordinator_view(
        &self,
        config: StorageConfig,
        default_savepoint_dir: Option<String>,
    ) -> Result<AsyncCoordinatorView> {
        let tenant = self.0.clone();
        let view = run(move || {
            tenant
                .open_coordinator_view(&config, default_savepoint_dir.as_deref())
                .map(Shared::new)
        })
        .await?;
        Ok(AsyncCoordinatorView(view))
    }
}

/// A job's coordinator view inside one tenant ([`CoordinatorView`]).
#[derive(Debug)]
pub struct AsyncCoordinatorView(Shared<CoordinatorView>);

impl AsyncCoordinatorView {
    /// Whether a default savepoint directory is configured.
    pub async fn has_default_savepoint_location(&self) -> Result<bool> {
        self.0.call(|c| c.has_default_savepoint_location()).await
    }

    /// Whether completed checkpoints are persisted (Flink's
    /// `supportsHighlyAvailableStorage`; false without a checkpoints directory).
    pub async fn supports_highly_available_storage(&self) -> Result<bool> {
        self.0.call(|c| c.supports_highly_available_storage()).await
    }

    /// Creates `<job>/shared` and `<job>/taskowned`.
    pub async fn initialize_base_locations_for_checkpoint(&self) -> Result<()> {
        self.0.call(|c| c.initialize_base_locations_for_checkpoint()).await
    }

    /// Creates `<job>/chk-<id>`
    /// ([`CoordinatorView::initialize_location_for_checkpoint`]).
    pub async fn initialize_location_for_checkpoint(
        &self,
        checkpoint_id: u64,
    ) -> Result<AsyncCheckpointStorageLocation> {
        let location = self
            .0
            .call(move |c| c.initialize_location_for_checkpoint(checkpoint_id).map(Shared::new))
            .await?;
        Ok(AsyncCheckpointStorageLocation(location))
    }

    /// Creates a savepoint directory below `target` (or the default)
    /// ([`CoordinatorView::initialize_location_for_savepoint`]).
    pub async fn initialize_location_for_savepoint(
        &self,
        checkpoint_id: u64,
        target: Option<String>,
    ) -> Result<AsyncCheckpointStorageLocation> {
        let location = self
            .0
            .call(move |c| {
                c.initialize_location_for_savepoint(checkpoint_id, target.as_deref())
                    .map(Shared::new)
            })
            .await?;
        Ok(AsyncCheckpointStorageLocation(location))
    }

    /// Finds a completed checkpoint from its directory or metadata file
    /// ([`CoordinatorView::resolve_checkpoint`]).
    pub async fn resolve_checkpoint(&self, pointer: impl Into<String>) -> Result<CompletedCheckpoint> {
        let pointer = pointer.into();
        self.0.call(move |c| c.resolve_checkpoint(&pointer)).await
    }
}

/// The location of one checkpoint or savepoint ([`CheckpointStorageLocation`]).
#[derive(Debug)]
pub struct AsyncCheckpointStorageLocation(Shared<CheckpointStorageLocation>);

impl AsyncCheckpointStorageLocation {
    /// The reference tasks pass to
    /// [`AsyncWorkerView::resolve_checkpoint_storage_location`](super::AsyncWorkerView::resolve_checkpoint_storage_location).
    pub async fn location_reference(&self) -> Result<LocationReference> {
        self.0.call(|l| l.location_reference()).await
    }

    /// Guest path of the directory for this checkpoint's exclusive state.
    pub async fn checkpoint_directory(&self) -> Result<String> {
        self.0.call(|l| l.checkpoint_directory()).await
    }

    /// Guest path of the metadata file (`<checkpoint directory>/_metadata`,
    /// without the entropy marker when entropy injection is on).
    pub async fn metadata_file_path(&self) -> Result<String> {
        self.0.call(|l| l.metadata_file_path()).await
    }

    /// A stream for `_metadata`, published only when finalized
    /// ([`CheckpointStorageLocation::create_metadata_output_stream`]).
    pub async fn create_metadata_output_stream(&self) -> Result<AsyncMetadataOutputStream> {
        let stream = self
            .0
            .call(|l| l.create_metadata_output_stream().map(Shared::new))
            .await?;
        Ok(AsyncMetadataOutputStream(stream))
    }

    /// Deletes the checkpoint directory (exclusive state); shared state stays.
    pub async fn dispose_on_failure(&self) -> Result<()> {
        self.0.call(|l| l.dispose_on_failure()).await
    }
}

/// Writes a checkpoint's metadata ([`MetadataOutputStream`]). Dropping it
/// unfinalized removes the temporary file on the blocking pool (shortly
/// after the drop); [`discard`](Self::discard) does it and waits.
#[derive(Debug)]
pub struct AsyncMetadataOutputStream(Shared<MetadataOutputStream>);

impl AsyncMetadataOutputStream {
    /// Appends `data` ([`MetadataOutputStream::write`]). A cancelled write
    /// still happens.
    pub async fn write(&self, data: impl Into<Vec<u8>>) -> Result<()> {
        let data = data.into();
        self.0.call(move |s| s.write(&data)).await
    }

    /// Bytes written so far.
    pub async fn get_pos(&self) -> Result<u64> {
        self.0.call(|s| s.get_pos()).await
    }

    /// Makes the bytes written so far durable.
    pub async fn sync(&self) -> Result<()> {
        self.0.call(|s| s.sync()).await
    }

    /// Publishes `_metadata` and returns the completed checkpoint. If the
    /// future is dropped before it returns, the checkpoint may still be
    /// completed (resolvable by its pointer).
    pub async fn close_and_finalize_checkpoint(self) -> Result<CompletedCheckpoint> {
        self.0.finish(|s| s.finalize_shared()).await
    }

    /// Drops the stream unfinalized (its temporary file is removed) and
    /// waits until it is done.
    pub async fn discard(self) -> Result<()> {
        self.0.discard().await
    }
}
