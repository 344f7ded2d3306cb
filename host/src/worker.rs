//! WIT `worker`: the typed Rust API over the worker view (Flink's
//! `CheckpointStorageWorkerView`), its stream factories, state output
//! streams and the task-owned toolset.

use crate::error::Result;
pub use crate::output_stream::StateOutputStream;
use crate::resource::{MAX_BYTES_PER_CALL, Owned};
use crate::tenant::Tenant;
use crate::types::{LocationReference, StateHandle, StateScope, StorageConfig};

impl Tenant {
    /// Opens a worker view (Flink's `CheckpointStorageWorkerView`) of a job.
    pub fn open_worker_view(&self, config: &StorageConfig) -> Result<WorkerView> {
        let resource = self.call(|inner| {
            let guest = inner.worker()?;
            guest.worker_view().call_open(&mut inner.store, config)
        })?;
        Ok(WorkerView {
            owned: Owned::new(self, resource),
            boundary: config.exact_boundary(),
        })
    }
}

/// A job's worker view inside one tenant.
#[derive(Debug)]
pub struct WorkerView {
    owned: Owned,
    /// `StorageConfig::exact_boundary` of its configuration, for its streams.
    boundary: u64,
}

impl WorkerView {
    /// Flink's `resolveCheckpointStorageLocation`.
    pub fn resolve_checkpoint_storage_location(
        &self,
        checkpoint_id: u64,
        reference: &LocationReference,
    ) -> Result<StreamFactory> {
        let resource = self.owned.call(|g, i, r| {
            g.worker_view()
                .call_resolve_checkpoint_storage_location(&mut i.store, r, checkpoint_id, reference)
        })?;
        Ok(StreamFactory {
            owned: self.owned.sibling(resource),
            boundary: self.boundary,
        })
    }

    /// Flink's `createTaskOwnedStateStream`.
    pub fn create_task_owned_state_stream(&self) -> Result<StateOutputStream> {
        let permit = self.owned.tenant.acquire_stream()?;
        let resource = self
            .owned
            .call(|g, i, r| g.worker_view().call_create_task_owned_state_stream(&mut i.store, r))?;
        Ok(StateOutputStream::new(
            self.owned.sibling(resource),
            permit,
            self.boundary,
        ))
    }

    /// Flink's `createTaskOwnedCheckpointStateToolset`.
    pub fn create_task_owned_checkpoint_state_toolset(&self) -> Result<CheckpointStateToolset> {
        let resource = self.owned.call(|g, i, r| {
            g.worker_view()
                .call_create_task_owned_checkpoint_state_toolset(&mut i.store, r)
        })?;
        Ok(CheckpointStateToolset(self.owned.sibling(resource)))
    }
}

/// The stream factory of one checkpoint location.
#[derive(Debug)]
pub struct StreamFactory {
    owned: Owned,
    boundary: u64,
}

impl StreamFactory {
    /// A new stream for state of `scope` (Flink's
    /// `createCheckpointStateOutputStream`). Takes one of the tenant's
    /// stream slots until it is closed or dropped.
    pub fn create_checkpoint_state_output_stream(&self, scope: StateScope) -> Result<StateOutputStream> {
        let permit = self.owned.tenant.acquire_stream()?;
        let resource = self.owned.call(|g, i, r| {
            g.stream_factory()
                .call_create_checkpoint_state_output_stream(&mut i.store, r, scope)
        })?;
        Ok(StateOutputStream::new(
            self.owned.sibling(resource),
            permit,
            self.boundary,
        ))
    }

    /// One whole state in one call: the same handle (or none for empty
    /// `data`) and errors as a stream of `scope` that is written once and
    /// closed, with one boundary crossing instead of four. Takes a stream
    /// slot for the call and counts `data` against the byte limit.
    pub fn write_state(&self, scope: StateScope, data: &[u8]) -> Result<Option<StateHandle>> {
        if data.len() > MAX_BYTES_PER_CALL {
            // Too large for one call (see `MAX_BYTES_PER_CALL`): a stream
            // gives the same handle and errors.
            let stream = self.create_checkpoint_state_output_stream(scope)?;
            stream.write(data)?;
            return stream.close_and_get_handle();
        }
        let permit = self.owned.tenant.acquire_stream()?;
        permit.metered_write(data.len(), || {
            self.owned
                .call(|g, i, r| g.stream_factory().call_write_state(&mut i.store, r, scope, data))
        })
    }

    /// Whether [`duplicate`](Self::duplicate) would be cheap for `handle`
    /// into the directory of `scope`.
    pub fn can_fast_duplicate(&self, handle: &StateHandle, scope: StateScope) -> Result<bool> {
        self.owned.call_infallible(|g, i, r| {
            g.stream_factory()
                .call_can_fast_duplicate(&mut i.store, r, handle, scope)
        })
    }

    /// Duplicates file state into the directory of `scope` (hard links
    /// where possible); inline handles are refused before anything is made.
    pub fn duplicate(&self, handles: &[StateHandle], scope: StateScope) -> Result<Vec<StateHandle>> {
        self.owned
            .call(|g, i, r| g.stream_factory().call_duplicate(&mut i.store, r, handles, scope))
    }

    /// Guest path of the exclusive-state directory ("" for the memory backend).
    pub fn checkpoint_directory(&self) -> Result<String> {
        self.owned
            .call_infallible(|g, i, r| g.stream_factory().call_checkpoint_directory(&mut i.store, r))
    }

    /// Guest path of the shared-state directory ("" for the memory backend).
    pub fn shared_state_directory(&self) -> Result<String> {
        self.owned
            .call_infallible(|g, i, r| g.stream_factory().call_shared_state_directory(&mut i.store, r))
    }
}

/// The task-owned toolset.
#[derive(Debug)]
pub struct CheckpointStateToolset(Owned);

impl CheckpointStateToolset {
    /// Whether [`duplicate`](Self::duplicate) would be cheap for `handle`.
    pub fn can_fast_duplicate(&self, handle: &StateHandle) -> Result<bool> {
        self.0.call_infallible(|g, i, r| {
            g.checkpoint_state_toolset()
                .call_can_fast_duplicate(&mut i.store, r, handle)
        })
    }

    /// Duplicates file state into the task-owned directory.
    pub fn duplicate(&self, handles: &[StateHandle]) -> Result<Vec<StateHandle>> {
        self.0
            .call(|g, i, r| g.checkpoint_state_toolset().call_duplicate(&mut i.store, r, handles))
    }
}
