//! WIT `file-merging`: the file-merging snapshot manager and its stream
//! factories. Streams are the worker interface's `state-output-stream`.

use super::ActiveSandbox as WasiSandbox;
use super::exports::flink::checkpoint_storage::file_merging as fm;
use super::exports::flink::checkpoint_storage::types as wit;
use super::exports::flink::checkpoint_storage::worker::StateOutputStream;
use super::types::*;
use super::worker::{stream_resource, written_state};
use super::{Component, sandbox};
use checkpoint_storage_core::file_merging::manager::{FileMergingSnapshotManager, MergingStreamFactory};
use checkpoint_storage_core::file_merging::options::{FileMergingOptions, SubtaskKey};
use checkpoint_storage_core::handle::StateHandle;

impl fm::Guest for Component {
    type FileMergingSnapshotManager = ManagerImpl;
    type MergingStreamFactory = FactoryImpl;
}

fn subtask(k: fm::SubtaskKey) -> SubtaskKey {
    SubtaskKey {
        operator_id: k.operator_id,
        subtask_index: k.subtask_index,
        parallelism: k.parallelism,
    }
}

fn handles(hs: Vec<wit::StateHandle>) -> Vec<StateHandle> {
    hs.into_iter().map(from_wit_handle).collect()
}

pub struct ManagerImpl(FileMergingSnapshotManager<WasiSandbox>);

impl fm::GuestFileMergingSnapshotManager for ManagerImpl {
    fn open(
        config: wit::StorageConfig,
        task_manager_id: String,
        options: fm::FileMergingOptions,
    ) -> WitResult<fm::FileMergingSnapshotManager> {
        let options = FileMergingOptions {
            enabled: options.enabled,
            across_checkpoint_boundary: options.across_checkpoint_boundary,
            max_file_size: options.max_file_size,
            pool_blocking: options.pool_blocking,
            max_space_amplification: options.max_space_amplification_percent.map(|p| p as f32 / 100.0),
        };
        let manager =
            FileMergingSnapshotManager::open(sandbox()?, &from_wit_config(config), &task_manager_id, &options)
                .map_err(to_wit_error)?;
        Ok(fm::FileMergingSnapshotManager::new(ManagerImpl(manager)))
    }

    fn is_merging(&self) -> bool {
        self.0.is_merging()
    }

    fn register_subtask(&self, key: fm::SubtaskKey) -> WitResult<()> {
        self.0.register_subtask(&subtask(key)).map_err(to_wit_error)
    }

    fn managed_directory(&self, key: fm::SubtaskKey, s: wit::StateScope) -> Option<String> {
        self.0.managed_directory(&subtask(key), scope(s)).map(|p| p.to_string())
    }

    fn resolve_checkpoint_storage_location(
        &self,
        key: fm::SubtaskKey,
        checkpoint_id: u64,
        reference: wit::LocationReference,
    ) -> WitResult<fm::MergingStreamFactory> {
        let reference = from_wit_reference(reference).map_err(to_wit_error)?;
        let factory = self
            .0
            .resolve_checkpoint_storage_location(&subtask(key), checkpoint_id, &reference)
            .map_err(to_wit_error)?;
        Ok(fm::MergingStreamFactory::new(FactoryImpl(factory)))
    }

    fn notify_checkpoint_complete(&self, key: fm::SubtaskKey, checkpoint_id: u64) -> WitResult<()> {
        self.0
            .notify_checkpoint_complete(&subtask(key), checkpoint_id)
            .map_err(to_wit_error)
    }

    fn notify_checkpoint_aborted(&self, key: fm::SubtaskKey, checkpoint_id: u64) -> WitResult<()> {
        self.0
            .notify_checkpoint_aborted(&subtask(key), checkpoint_id)
            .map_err(to_wit_error)
    }

    fn notify_checkpoint_subsumed(&self, key: fm::SubtaskKey, checkpoint_id: u64) -> WitResult<()> {
        self.0
            .notify_checkpoint_subsumed(&subtask(key), checkpoint_id)
            .map_err(to_wit_error)
    }

    fn reuse_previous_state_handles(&self, checkpoint_id: u64, hs: Vec<wit::StateHandle>) -> WitResult<()> {
        self.0
            .reuse_previous_state_handles(checkpoint_id, &handles(hs))
            .map_err(to_wit_error)
    }

    fn could_reuse_previous_state_handle(&self, h: wit::StateHandle) -> bool {
        self.0.could_reuse_previous_state_handle(&from_wit_handle(h))
    }

    fn restore_state_handles(
        &self,
        checkpoint_id: u64,
        key: fm::SubtaskKey,
        hs: Vec<wit::StateHandle>,
    ) -> WitResult<()> {
        self.0
            .restore_state_handles(checkpoint_id, &subtask(key), &handles(hs))
            .map_err(to_wit_error)
    }

    fn space_stat(&self) -> fm::SpaceStat {
        let s = self.0.space_stat();
        fm::SpaceStat {
            physical_file_count: s.physical_file_count,
            physical_file_size: s.physical_file_size,
            logical_file_count: s.logical_file_count,
            logical_file_size: s.logical_file_size,
        }
    }
}

pub struct FactoryImpl(MergingStreamFactory<WasiSandbox>);

impl fm::GuestMergingStreamFactory for FactoryImpl {
    fn is_merging(&self) -> bool {
        self.0.is_merging()
    }

    fn create_checkpoint_state_output_stream(&self, s: wit::StateScope) -> WitResult<StateOutputStream> {
        stream_resource(self.0.create_checkpoint_state_output_stream(scope(s)))
    }

    fn write_state(&self, s: wit::StateScope, data: Vec<u8>) -> WitResult<Option<wit::StateHandle>> {
        written_state(self.0.write_state(scope(s), &data))
    }
}
