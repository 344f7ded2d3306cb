//! WIT `coordinator`: the coordinator view, checkpoint locations and
//! metadata output streams.

use super::exports::flink::checkpoint_storage::coordinator as coord;
use super::exports::flink::checkpoint_storage::types as wit;
use super::types::*;
use super::{ActiveSandbox as WasiSandbox, Component, path_in, path_out, sandbox};
use checkpoint_storage_core::coordinator as coordinator_logic;
use checkpoint_storage_core::coordinator::CompletedCheckpoint;
use std::cell::RefCell;

impl coord::Guest for Component {
    type CoordinatorView = CoordinatorViewImpl;
    type CheckpointStorageLocation = LocationImpl;
    type MetadataOutputStream = MetadataStreamImpl;
}

pub struct CoordinatorViewImpl(coordinator_logic::CoordinatorView<WasiSandbox>);

impl coord::GuestCoordinatorView for CoordinatorViewImpl {
    fn open(config: wit::StorageConfig, default_savepoint_dir: Option<String>) -> WitResult<coord::CoordinatorView> {
        let view = coordinator_logic::CoordinatorView::open(
            sandbox()?,
            &from_wit_config(config),
            default_savepoint_dir.map(path_in).as_deref(),
        )
        .map_err(to_wit_error)?;
        Ok(coord::CoordinatorView::new(CoordinatorViewImpl(view)))
    }

    fn has_default_savepoint_location(&self) -> bool {
        self.0.has_default_savepoint_location()
    }

    fn supports_highly_available_storage(&self) -> bool {
        self.0.supports_highly_available_storage()
    }

    fn initialize_base_locations_for_checkpoint(&self) -> WitResult<()> {
        self.0.initialize_base_locations_for_checkpoint().map_err(to_wit_error)
    }

    fn initialize_location_for_checkpoint(&self, checkpoint_id: u64) -> WitResult<coord::CheckpointStorageLocation> {
        let location = self
            .0
            .initialize_location_for_checkpoint(checkpoint_id)
            .map_err(to_wit_error)?;
        Ok(coord::CheckpointStorageLocation::new(LocationImpl(location)))
    }

    fn initialize_location_for_savepoint(
        &self,
        checkpoint_id: u64,
        target: Option<String>,
    ) -> WitResult<coord::CheckpointStorageLocation> {
        let location = self
            .0
            .initialize_location_for_savepoint(checkpoint_id, target.map(path_in).as_deref())
            .map_err(to_wit_error)?;
        Ok(coord::CheckpointStorageLocation::new(LocationImpl(location)))
    }

    fn resolve_checkpoint(&self, pointer: String) -> WitResult<coord::CompletedCheckpoint> {
        self.0
            .resolve_checkpoint(&path_in(pointer))
            .map(to_wit_completed)
            .map_err(to_wit_error)
    }

    fn list_completed_checkpoints(&self) -> WitResult<Vec<coord::ListedCheckpoint>> {
        let listed = self.0.list_completed_checkpoints().map_err(to_wit_error)?;
        Ok(listed
            .into_iter()
            .map(|l| coord::ListedCheckpoint {
                checkpoint_id: l.checkpoint_id,
                checkpoint: to_wit_completed(l.checkpoint),
            })
            .collect())
    }

    fn list_savepoints(&self, directory: Option<String>) -> WitResult<Vec<coord::CompletedCheckpoint>> {
        let directory = directory.map(path_in);
        let found = self.0.list_savepoints(directory.as_deref()).map_err(to_wit_error)?;
        Ok(found.into_iter().map(to_wit_completed).collect())
    }

    fn discard_completed_checkpoint(&self, checkpoint_id: u64) -> WitResult<()> {
        self.0.discard_completed_checkpoint(checkpoint_id).map_err(to_wit_error)
    }
}

pub struct LocationImpl(coordinator_logic::Location<WasiSandbox>);

impl coord::GuestCheckpointStorageLocation for LocationImpl {
    fn location_reference(&self) -> wit::LocationReference {
        to_wit_reference(self.0.location_reference())
    }

    fn checkpoint_directory(&self) -> WitResult<String> {
        let dir = self.0.checkpoint_directory().map_err(to_wit_error)?;
        Ok(path_out(dir.to_string()))
    }

    fn metadata_file_path(&self) -> WitResult<String> {
        let path = self.0.metadata_file_path().map_err(to_wit_error)?;
        Ok(path_out(path.to_string()))
    }

    fn create_metadata_output_stream(&self) -> WitResult<coord::MetadataOutputStream> {
        let stream = self.0.create_metadata_output_stream().map_err(to_wit_error)?;
        Ok(coord::MetadataOutputStream::new(MetadataStreamImpl(RefCell::new(
            stream,
        ))))
    }

    fn dispose_on_failure(&self) -> WitResult<()> {
        self.0.dispose_on_failure().map_err(to_wit_error)
    }
}

pub struct MetadataStreamImpl(RefCell<coordinator_logic::MetadataOutputStream<WasiSandbox>>);

impl coord::GuestMetadataOutputStream for MetadataStreamImpl {
    fn write(&self, data: Vec<u8>) -> WitResult<()> {
        self.0.borrow_mut().write(&data).map_err(to_wit_error)
    }

    fn get_pos(&self) -> u64 {
        self.0.borrow().pos()
    }

    fn sync(&self) -> WitResult<()> {
        self.0.borrow_mut().sync().map_err(to_wit_error)
    }

    fn close_and_finalize_checkpoint(&self) -> WitResult<coord::CompletedCheckpoint> {
        self.0
            .borrow_mut()
            .close_and_finalize_checkpoint()
            .map(to_wit_completed)
            .map_err(to_wit_error)
    }
}

fn to_wit_completed(c: CompletedCheckpoint) -> coord::CompletedCheckpoint {
    coord::CompletedCheckpoint {
        external_pointer: path_out(c.external_pointer),
        metadata: to_wit_handle(c.metadata),
    }
}
