//! WIT `worker`, async: twins of [`WorkerView`], [`StreamFactory`],
//! [`StateOutputStream`] and [`CheckpointStateToolset`].

use super::{AsyncTenant, Duplicates, Shared, run};
use crate::error::Result;
use crate::tenant::Tenant;
use crate::types::{LocationReference, StateHandle, StateScope, StorageConfig};
use crate::worker::{CheckpointStateToolset, StateOutputStream, StreamFactory, WorkerView};

impl AsyncTenant {
    /// Opens a worker view (Flink's `CheckpointStorageWorkerView`) of a job
    /// ([`Tenant::open_worker_view`]).
    pub async fn open_worker_view(&self, config: StorageConfig) -> Result<AsyncWorkerView> {
        let tenant = self.0.clone();
        let view = run(move || tenant.open_worker_view(&config).map(Shared::new)).await?;
        Ok(AsyncWorkerView {
            inner: view,
            tenant: self.0.clone(),
        })
    }
}

/// A job's worker view inside one tenant ([`WorkerView`]).
#[derive(Debug)]
pub struct AsyncWorkerView {
    inner: Shared<WorkerView>,
    tenant: Tenant,
}

impl AsyncWorkerView {
    /// Flink's `resolveCheckpointStorageLocation`
    /// ([`WorkerView::resolve_checkpoint_storage_location`]).
    pub async fn resolve_checkpoint_storage_location(
        &self,
        checkpoint_id: u64,
        reference: LocationReference,
    ) -> Result<AsyncStreamFactory> {
        let factory = self
            .inner
            .call(move |v| {
                v.resolve_checkpoint_storage_location(checkpoint_id, &reference)
                    .map(Shared::new)
            })
            .await?;
        Ok(AsyncStreamFactory {
            inner: factory,
            tenant: self.tenant.clone(),
        })
    }

    /// Flink's `createTaskOwnedStateStream`
    /// ([`WorkerView::create_task_owned_state_stream`]).
    pub async fn create_task_owned_state_stream(&self) -> Result<AsyncStateOutputStream> {
        let stream = self
            .inner
            .call(|v| v.create_task_owned_state_stream().map(Shared::new))
            .await?;
        Ok(AsyncStateOutputStream::new(stream, &self.tenant))
    }

    /// Flink's `createTaskOwnedCheckpointStateToolset`
    /// ([`WorkerView::create_task_owned_checkpoint_state_toolset`]).
    pub async fn create_task_owned_checkpoint_state_toolset(&self) -> Result<AsyncCheckpointStateToolset> {
        let toolset = self
            .inner
            .call(|v| v.create_task_owned_checkpoint_state_toolset().map(Shared::new))
            .await?;
        Ok(AsyncCheckpointStateToolset {
            inner: toolset,
            tenant: self.tenant.clone(),
        })
    }
}

/// The stream factory of one checkpoint location ([`StreamFactory`]).
#[derive(Debug)]
pub struct AsyncStreamFactory {
    inner: Shared<StreamFactory>,
    tenant: Tenant,
}

impl AsyncStreamFactory {
    /// A new stream for state of `scope`
    /// ([`StreamFactory::create_checkpoint_state_output_stream`]).
    pub async fn create_checkpoint_state_output_stream(&self, scope: StateScope) -> Result<AsyncStateOutputStream> {
        let stream = self
            .inner
            .call(move |f| f.create_checkpoint_state_output_stream(scope).map(Shared::new))
            .await?;
        Ok(AsyncStateOutputStream::new(stream, &self.tenant))
    }

    /// One whole state in one call ([`StreamFactory::write_state`]). If the
    /// future is dropped before it returns, the state's file is discarded.
    pub async fn write_state(&self, scope: StateScope, data: impl Into<Vec<u8>>) -> Result<Option<StateHandle>> {
        let data = data.into();
        self.inner
            .call_handing_out(&self.tenant, move |f| f.write_state(scope, &data))
            .await
    }

    /// Many whole states in one call ([`StreamFactory::write_states`]): one
    /// result per state, in order. If the future is dropped before it
    /// returns, the files of the states it wrote are discarded.
    pub async fn write_states(
        &self,
        scope: StateScope,
        states: Vec<Vec<u8>>,
    ) -> Result<Vec<Result<Option<StateHandle>>>> {
        self.inner
            .call_handing_out(&self.tenant, move |f| Ok(f.write_states(scope, &states)))
            .await
    }

    /// Whether [`duplicate`](Self::duplicate) would be cheap
    /// ([`StreamFactory::can_fast_duplicate`]).
    pub async fn can_fast_duplicate(&self, handle: StateHandle, scope: StateScope) -> Result<bool> {
        self.inner.call(move |f| f.can_fast_duplicate(&handle, scope)).await
    }

    /// Duplicates file state into the directory of `scope`
    /// ([`StreamFactory::duplicate`]). If the future is dropped before it
    /// returns, the duplicates it made are discarded (a handle that was
    /// already in that directory comes back as it is and is kept).
    pub async fn duplicate(&self, handles: Vec<StateHandle>, scope: StateScope) -> Result<Vec<StateHandle>> {
        self.inner
            .call_handing_out(&self.tenant, move |f| {
                Ok(Duplicates::new(f.duplicate(&handles, scope)?, &handles))
            })
            .await
            .map(Duplicates::into_vec)
    }

    /// Guest path of the exclusive-state directory ("" for the memory backend).
    pub async fn checkpoint_directory(&self) -> Result<String> {
        self.inner.call(|f| f.checkpoint_directory()).await
    }

    /// Guest path of the shared-state directory ("" for the memory backend).
    pub async fn shared_state_directory(&self) -> Result<String> {
        self.inner.call(|f| f.shared_state_directory()).await
    }
}

/// A state output stream ([`StateOutputStream`]). Dropping it without
/// [`close_and_get_handle`](Self::close_and_get_handle) discards it on the
/// blocking pool (its file is deleted shortly after);
/// [`discard`](Self::discard) does the same and waits for it.
#[derive(Debug)]
pub struct AsyncStateOutputStream {
    inner: Shared<StateOutputStream>,
    tenant: Tenant,
}

impl AsyncStateOutputStream {
    /// `stream` was wrapped on the blocking thread, so that a result nobody
    /// awaits any more is dropped off the executor too.
    fn new(stream: Shared<StateOutputStream>, tenant: &Tenant) -> Self {
        AsyncStateOutputStream {
            inner: stream,
            tenant: tenant.clone(),
        }
    }

    /// Appends `data` ([`StateOutputStream::write`]). A cancelled write
    /// still happens.
    pub async fn write(&self, data: impl Into<Vec<u8>>) -> Result<()> {
        let data = data.into();
        self.inner.call(move |s| s.write_shared(&data)).await
    }

    /// Bytes written so far.
    pub async fn get_pos(&self) -> Result<u64> {
        self.inner.call(|s| s.get_pos()).await
    }

    /// [`StateOutputStream::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.inner.call(|s| s.flush()).await
    }

    /// [`StateOutputStream::sync`]: flush, then make the file's data durable.
    pub async fn sync(&self) -> Result<()> {
        self.inner.call(|s| s.sync()).await
    }

    /// Finishes the stream; `None` if nothing was written. If the future is
    /// dropped before it returns, the state's file is discarded.
    pub async fn close_and_get_handle(self) -> Result<Option<StateHandle>> {
        let tenant = self.tenant.clone();
        self.inner.finish_handing_out(&tenant, |s| s.close_shared()).await
    }

    /// Discards the stream (its file is deleted) and waits until it is done.
    pub async fn discard(self) -> Result<()> {
        self.inner.discard().await
    }
}

/// The task-owned toolset ([`CheckpointStateToolset`]).
#[derive(Debug)]
pub struct AsyncCheckpointStateToolset {
    inner: Shared<CheckpointStateToolset>,
    tenant: Tenant,
}

impl AsyncCheckpointStateToolset {
    /// Whether [`duplicate`](Self::duplicate) would be cheap for `handle`.
    pub async fn can_fast_duplicate(&self, handle: StateHandle) -> Result<bool> {
        self.inner.call(move |t| t.can_fast_duplicate(&handle)).await
    }

    /// Duplicates file state into the task-owned directory
    /// ([`CheckpointStateToolset::duplicate`]). If the future is dropped
    /// before it returns, the duplicates it made are discarded (a handle
    /// that was already task-owned comes back as it is and is kept).
    pub async fn duplicate(&self, handles: Vec<StateHandle>) -> Result<Vec<StateHandle>> {
        self.inner
            .call_handing_out(&self.tenant, move |t| {
                Ok(Duplicates::new(t.duplicate(&handles)?, &handles))
            })
            .await
            .map(Duplicates::into_vec)
    }
}
