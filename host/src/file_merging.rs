//! WIT `file-merging`: the typed API over the file-merging snapshot manager
//! (Flink's FLIP-306 `FileMergingSnapshotManager`) and its stream factories.
//! Streams are ordinary [`StateOutputStream`]s whose handles are segments.

use crate::bindings::exports::flink::checkpoint_storage::file_merging::Guest as FileMergingGuest;
pub use crate::bindings::exports::flink::checkpoint_storage::file_merging::{
    FileMergingOptions, SpaceStat, SubtaskKey,
};
use crate::error::Result;
use crate::resource::{GuestResult, MAX_BYTES_PER_CALL, Owned};
use crate::tenant::{Inner, Tenant};
use crate::types::{LocationReference, StateHandle, StateScope, StorageConfig};
use crate::worker::StateOutputStream;
use wasmtime::component::ResourceAny;

/// One call on a file-merging resource.
fn call<T>(owned: &Owned, f: impl FnOnce(&FileMergingGuest, &mut Inner, ResourceAny) -> GuestResult<T>) -> Result<T> {
    owned.call_on(Inner::file_merging, f)
}

impl FileMergingOptions {
    /// Every option absent: Flink's defaults (merging off).
    pub fn flink_defaults() -> Self {
        FileMergingOptions {
            enabled: None,
            across_checkpoint_boundary: None,
            max_file_size: None,
            pool_blocking: None,
            max_space_amplification_percent: None,
        }
    }

    /// Merging on, every other option at Flink's default.
    pub fn enabled() -> Self {
        FileMergingOptions {
            enabled: Some(true),
            ..Self::flink_defaults()
        }
    }

    /// Sets `across-checkpoint-boundary`: whether a physical file keeps
    /// taking segments of later checkpoints (true) or every checkpoint
    /// starts new physical files (false, Flink's default).
    pub fn with_across_checkpoint_boundary(mut self, across: bool) -> Self {
        self.across_checkpoint_boundary = Some(across);
        self
    }

    /// Sets `max-file-size` in bytes (positive): a physical file takes no
    /// more segments once it is this large. Soft: a state is never split,
    /// so a file can end above it.
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = Some(bytes);
        self
    }

    /// `max-space-amplification` in percent: 200 is Flink's 2.0.
    pub fn with_max_space_amplification_percent(mut self, percent: u32) -> Self {
        self.max_space_amplification_percent = Some(percent);
        self
    }
}

impl SubtaskKey {
    /// The key of subtask `subtask_index` (below `parallelism`) of operator
    /// `operator_id` (Flink's `OperatorID`, e.g. 32 hex characters).
    pub fn new(operator_id: impl Into<String>, subtask_index: u32, parallelism: u32) -> Self {
        SubtaskKey {
            operator_id: operator_id.into(),
            subtask_index,
            parallelism,
        }
    }
}

impl Tenant {
    /// Opens a job's file-merging snapshot manager on task manager
    /// `task_manager_id` (when merging is enabled this creates its managed
    /// directory for exclusive state).
    pub fn open_file_merging_manager(
        &self,
        config: &StorageConfig,
        task_manager_id: &str,
        options: &FileMergingOptions,
    ) -> Result<FileMergingSnapshotManager> {
        // Merged files are appended to by many streams; an object is
        // written once, so the object store build has no file merging.
        if !self.lock().has_file_merging() {
            return Err(crate::Error::from(crate::StorageError {
                code: crate::ErrorCode::Unsupported,
                message: "file merging is not available in the object store build of the component; \
                          write state with plain streams (StreamFactory) instead"
                    .into(),
            }));
        }
        let (resource, side) = self.call(|i| {
            let opened = i.file_merging()?.file_merging_snapshot_manager().call_open(
                &mut i.store,
                config,
                task_manager_id,
                *options,
            )?;
            Ok(opened.map(|resource| (resource, i.file_merging_side())))
        })?;
        // Its factories and their streams live in the same instance
        // (`Owned::sibling`).
        Ok(FileMergingSnapshotManager(
            Owned::on_side(self, resource, side),
            config.exact_boundary(),
        ))
    }
}

/// A job's file-merging snapshot manager inside one tenant. Its bookkeeping
/// lives in the tenant's instance: dropping it forgets which segments are
/// live (their files stay; a later manager learns them from
/// [`Self::restore_state_handles`]).
#[derive(Debug)]
pub struct FileMergingSnapshotManager(Owned, u64);

impl FileMergingSnapshotManager {
    /// Whether this manager merges (the `enabled` option). When it does
    /// not, its streams behave exactly as the worker view's.
    pub fn is_merging(&self) -> Result<bool> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_is_merging(&mut i.store, r)
                .map(Ok)
        })
    }

    /// Flink's `registerSubtaskForSharedStates`.
    pub fn register_subtask(&self, subtask: &SubtaskKey) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_register_subtask(&mut i.store, r, subtask)
        })
    }

    /// Guest path of the managed directory for `scope` of `subtask`.
    pub fn managed_directory(&self, subtask: &SubtaskKey, scope: StateScope) -> Result<Option<String>> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_managed_directory(&mut i.store, r, subtask, scope)
                .map(Ok)
        })
    }

    /// The stream factory of `subtask` for one checkpoint (merging for the
    /// default reference, plain for a savepoint's).
    pub fn resolve_checkpoint_storage_location(
        &self,
        subtask: &SubtaskKey,
        checkpoint_id: u64,
        reference: &LocationReference,
    ) -> Result<MergingStreamFactory> {
        let resource = call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_resolve_checkpoint_storage_location(&mut i.store, r, subtask, checkpoint_id, reference)
        })?;
        Ok(MergingStreamFactory(self.0.sibling(resource), self.1))
    }

    /// Flink's `notifyCheckpointComplete`.
    pub fn notify_checkpoint_complete(&self, subtask: &SubtaskKey, checkpoint_id: u64) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_notify_checkpoint_complete(&mut i.store, r, subtask, checkpoint_id)
        })
    }

    /// Flink's `notifyCheckpointAborted`.
    pub fn notify_checkpoint_aborted(&self, subtask: &SubtaskKey, checkpoint_id: u64) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_notify_checkpoint_aborted(&mut i.store, r, subtask, checkpoint_id)
        })
    }

    /// Flink's `notifyCheckpointSubsumed`.
    pub fn notify_checkpoint_subsumed(&self, subtask: &SubtaskKey, checkpoint_id: u64) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_notify_checkpoint_subsumed(&mut i.store, r, subtask, checkpoint_id)
        })
    }

    /// Flink's `reusePreviousStateHandle`.
    pub fn reuse_previous_state_handles(&self, checkpoint_id: u64, handles: &[StateHandle]) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_reuse_previous_state_handles(&mut i.store, r, checkpoint_id, handles)
        })
    }

    /// Flink's `couldReusePreviousStateHandle`: whether a later checkpoint
    /// may name this segment again ([`Self::reuse_previous_state_handles`])
    /// instead of writing its bytes anew. False for a segment of a file space
    /// control marked wasteful, an unknown segment, or a handle that is not
    /// a segment.
    pub fn could_reuse_previous_state_handle(&self, handle: &StateHandle) -> Result<bool> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_could_reuse_previous_state_handle(&mut i.store, r, handle)
                .map(Ok)
        })
    }

    /// Flink's `restoreStateHandles`.
    pub fn restore_state_handles(
        &self,
        checkpoint_id: u64,
        subtask: &SubtaskKey,
        handles: &[StateHandle],
    ) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager().call_restore_state_handles(
                &mut i.store,
                r,
                checkpoint_id,
                subtask,
                handles,
            )
        })
    }

    /// Space used by the manager's own physical files: physical files and
    /// their bytes against the live segments (logical files) in them
    /// (Flink's `SpaceStat`).
    pub fn space_stat(&self) -> Result<SpaceStat> {
        call(&self.0, |g, i, r| {
            g.file_merging_snapshot_manager()
                .call_space_stat(&mut i.store, r)
                .map(Ok)
        })
    }
}

/// The stream factory of one subtask for one checkpoint.
#[derive(Debug)]
pub struct MergingStreamFactory(
    Owned,
    /// `StorageConfig::exact_boundary` of the manager's configuration.
    u64,
);

impl MergingStreamFactory {
    /// Whether its streams merge (false for savepoints and with merging off).
    pub fn is_merging(&self) -> Result<bool> {
        call(&self.0, |g, i, r| {
            g.merging_stream_factory().call_is_merging(&mut i.store, r).map(Ok)
        })
    }

    /// A new stream; takes one of the tenant's stream slots.
    pub fn create_checkpoint_state_output_stream(&self, scope: StateScope) -> Result<StateOutputStream> {
        let permit = self.0.tenant.acquire_stream()?;
        let resource = call(&self.0, |g, i, r| {
            g.merging_stream_factory()
                .call_create_checkpoint_state_output_stream(&mut i.store, r, scope)
        })?;
        Ok(StateOutputStream::new(self.0.sibling(resource), permit, self.1))
    }

    /// One whole state in one call (as [`crate::StreamFactory::write_state`]).
    pub fn write_state(&self, scope: StateScope, data: &[u8]) -> Result<Option<StateHandle>> {
        if data.len() > MAX_BYTES_PER_CALL {
            let mut stream = self.create_checkpoint_state_output_stream(scope)?;
            stream.write(data)?;
            return stream.close_and_get_handle();
        }
        let permit = self.0.tenant.acquire_stream()?;
        permit.metered_write(data.len(), || {
            call(&self.0, |g, i, r| {
                g.merging_stream_factory()
                    .call_write_state(&mut i.store, r, scope, data)
            })
        })
    }
}
