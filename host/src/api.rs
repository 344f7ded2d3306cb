//! The typed Rust API over the worker view. Callers never touch
//! `ResourceAny`: every resource is a Rust value that calls into its tenant,
//! and dropping it drops the guest resource (for a stream: discards it).

pub use crate::bindings::exports::flink::checkpoint_storage::types::{
    Backend, ByteStreamHandle, FileHandle, LocationReference, RelativeFileHandle, StateHandle, StateScope,
    StorageConfig,
};
use crate::bindings::exports::flink::checkpoint_storage::worker::Guest as WorkerGuest;
use crate::error::Result;
use crate::limits::StreamPermit;
use crate::tenant::{Inner, Tenant};
use std::fmt;
use wasmtime::component::ResourceAny;

/// Flink's reference magic number: `05 5F 3F 18`.
pub const REFERENCE_MAGIC_NUMBER: [u8; 4] = [0x05, 0x5F, 0x3F, 0x18];

impl StorageConfig {
    /// A filesystem-backend configuration with Flink's defaults, checkpoints
    /// under `/checkpoints`.
    pub fn filesystem(job_id: impl Into<String>) -> Self {
        StorageConfig {
            job_id: job_id.into(),
            checkpoints_dir: crate::tenant::GUEST_MOUNT.to_string(),
            backend: Backend::Filesystem,
            file_state_threshold: None,
            write_buffer_size: None,
            max_memory_state_size: None,
        }
    }

    /// A memory-backend configuration with Flink's defaults.
    pub fn memory(job_id: impl Into<String>) -> Self {
        StorageConfig {
            backend: Backend::Memory,
            ..Self::filesystem(job_id)
        }
    }

    pub fn with_file_state_threshold(mut self, bytes: u32) -> Self {
        self.file_state_threshold = Some(bytes);
        self
    }

    pub fn with_write_buffer_size(mut self, bytes: u32) -> Self {
        self.write_buffer_size = Some(bytes);
        self
    }

    pub fn with_max_memory_state_size(mut self, bytes: u32) -> Self {
        self.max_memory_state_size = Some(bytes);
        self
    }
}

impl LocationReference {
    /// Flink's encoding of a path reference: magic ++ UTF-8 path.
    pub fn encode_path(path: &str) -> Self {
        let mut bytes = REFERENCE_MAGIC_NUMBER.to_vec();
        bytes.extend_from_slice(path.as_bytes());
        LocationReference::Encoded(bytes)
    }
}

/// Flink's `toString`: `(default)` or the lowercase hex of the bytes.
impl fmt::Display for LocationReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationReference::Default => f.write_str("(default)"),
            LocationReference::Encoded(bytes) => bytes.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

impl StateHandle {
    /// The file path of a file handle; `None` for inline state.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            StateHandle::ByteStream(_) => None,
            StateHandle::File(f) => Some(&f.path),
            StateHandle::RelativeFile(r) => Some(&r.path),
        }
    }

    /// The state's size in bytes.
    pub fn state_size(&self) -> u64 {
        match self {
            StateHandle::ByteStream(b) => b.data.len() as u64,
            StateHandle::File(f) => f.size,
            StateHandle::RelativeFile(r) => r.size,
        }
    }
}

/// In the manner of Flink's handle `toString`s.
impl fmt::Display for StateHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateHandle::ByteStream(b) => write!(
                f,
                "ByteStreamStateHandle{{handleName='{}', dataBytes={}}}",
                b.name,
                b.data.len()
            ),
            StateHandle::File(h) => write!(f, "File State: {} [{} bytes]", h.path, h.size),
            StateHandle::RelativeFile(h) => {
                write!(
                    f,
                    "RelativeFileStateHandle State: {}, {} [{} bytes]",
                    h.path, h.relative_path, h.size
                )
            }
        }
    }
}

/// Most bytes handed to the guest in one call. Every call's bytes are copied
/// into the tenant's linear memory, which has a cap
/// (`TenantConfig::max_memory_bytes`), so a larger write is split into calls
/// of this size: the guest sees the same bytes in the same order, and a
/// write of any size is not a memory trap.
pub const MAX_BYTES_PER_CALL: usize = 1 << 20;

/// `data` in pieces of at most [`MAX_BYTES_PER_CALL`]; empty data is one
/// empty piece (a write to a closed stream must still fail).
pub(crate) fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty = data.is_empty().then_some(data);
    data.chunks(MAX_BYTES_PER_CALL).chain(empty)
}

/// A guest resource owned by a Rust value; dropped with it.
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) tenant: Tenant,
    pub(crate) resource: ResourceAny,
}

/// What a call on an owned resource returns from the guest.
pub(crate) type GuestResult<T> = wasmtime::Result<std::result::Result<T, crate::error::StorageError>>;

impl Owned {
    /// Another resource of the same tenant.
    pub(crate) fn sibling(&self, resource: ResourceAny) -> Owned {
        self.tenant.owned(resource)
    }

    /// One call on this resource through the interface `guest` loads.
    pub(crate) fn call_on<G, T>(
        &self,
        guest: fn(&mut Inner) -> wasmtime::Result<G>,
        f: impl FnOnce(&G, &mut Inner, ResourceAny) -> GuestResult<T>,
    ) -> Result<T> {
        let resource = self.resource;
        self.tenant.call(|inner| {
            let g = guest(inner)?;
            f(&g, inner, resource)
        })
    }

    fn call<T>(&self, f: impl FnOnce(&WorkerGuest, &mut Inner, ResourceAny) -> GuestResult<T>) -> Result<T> {
        self.call_on(Inner::worker, f)
    }

    fn call_infallible<T>(
        &self,
        f: impl FnOnce(&WorkerGuest, &mut Inner, ResourceAny) -> wasmtime::Result<T>,
    ) -> Result<T> {
        self.call(|g, i, r| f(g, i, r).map(Ok))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.tenant.drop_resource(self.resource);
    }
}

impl Tenant {
    /// Opens a worker view (Flink's `CheckpointStorageWorkerView`) of a job.
    pub fn open_worker_view(&self, config: &StorageConfig) -> Result<WorkerView> {
        let resource = self.call(|inner| {
            let guest = inner.worker()?;
            guest.worker_view().call_open(&mut inner.store, config)
        })?;
        Ok(WorkerView(self.owned(resource)))
    }
}

/// A job's worker view inside one tenant.
#[derive(Debug)]
pub struct WorkerView(Owned);

impl WorkerView {
    /// Flink's `resolveCheckpointStorageLocation`.
    pub fn resolve_checkpoint_storage_location(
        &self,
        checkpoint_id: u64,
        reference: &LocationReference,
    ) -> Result<StreamFactory> {
        let resource = self.0.call(|g, i, r| {
            g.worker_view()
                .call_resolve_checkpoint_storage_location(&mut i.store, r, checkpoint_id, reference)
        })?;
        Ok(StreamFactory(self.0.sibling(resource)))
    }

    /// Flink's `createTaskOwnedStateStream`.
    pub fn create_task_owned_state_stream(&self) -> Result<StateOutputStream> {
        let permit = self.0.tenant.acquire_stream()?;
        let resource = self
            .0
            .call(|g, i, r| g.worker_view().call_create_task_owned_state_stream(&mut i.store, r))?;
        Ok(StateOutputStream(self.0.sibling(resource), permit))
    }

    /// Flink's `createTaskOwnedCheckpointStateToolset`.
    pub fn create_task_owned_checkpoint_state_toolset(&self) -> Result<CheckpointStateToolset> {
        let resource = self.0.call(|g, i, r| {
            g.worker_view()
                .call_create_task_owned_checkpoint_state_toolset(&mut i.store, r)
        })?;
        Ok(CheckpointStateToolset(self.0.sibling(resource)))
    }
}

/// The stream factory of one checkpoint location.
#[derive(Debug)]
pub struct StreamFactory(Owned);

impl StreamFactory {
    pub fn create_checkpoint_state_output_stream(&self, scope: StateScope) -> Result<StateOutputStream> {
        let permit = self.0.tenant.acquire_stream()?;
        let resource = self.0.call(|g, i, r| {
            g.stream_factory()
                .call_create_checkpoint_state_output_stream(&mut i.store, r, scope)
        })?;
        Ok(StateOutputStream(self.0.sibling(resource), permit))
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
        let permit = self.0.tenant.acquire_stream()?;
        permit.metered_write(data.len(), || {
            self.0
                .call(|g, i, r| g.stream_factory().call_write_state(&mut i.store, r, scope, data))
        })
    }

    pub fn can_fast_duplicate(&self, handle: &StateHandle, scope: StateScope) -> Result<bool> {
        self.0.call_infallible(|g, i, r| {
            g.stream_factory()
                .call_can_fast_duplicate(&mut i.store, r, handle, scope)
        })
    }

    pub fn duplicate(&self, handles: &[StateHandle], scope: StateScope) -> Result<Vec<StateHandle>> {
        self.0
            .call(|g, i, r| g.stream_factory().call_duplicate(&mut i.store, r, handles, scope))
    }

    /// Guest path of the exclusive-state directory ("" for the memory backend).
    pub fn checkpoint_directory(&self) -> Result<String> {
        self.0
            .call_infallible(|g, i, r| g.stream_factory().call_checkpoint_directory(&mut i.store, r))
    }

    /// Guest path of the shared-state directory ("" for the memory backend).
    pub fn shared_state_directory(&self) -> Result<String> {
        self.0
            .call_infallible(|g, i, r| g.stream_factory().call_shared_state_directory(&mut i.store, r))
    }
}

/// A state output stream. Dropping it without `close_and_get_handle`
/// discards it (its file is deleted). It holds one of its tenant's stream
/// slots until dropped (fields drop in order: the guest resource first).
#[derive(Debug)]
pub struct StateOutputStream(Owned, StreamPermit);

impl StateOutputStream {
    /// Appends `data` (in calls of at most [`MAX_BYTES_PER_CALL`] bytes).
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.1.metered_write(data.len(), || {
            pieces(data).try_for_each(|piece| {
                self.0
                    .call(|g, i, r| g.state_output_stream().call_write(&mut i.store, r, piece))
            })
        })
    }

    pub fn get_pos(&self) -> Result<u64> {
        self.0
            .call_infallible(|g, i, r| g.state_output_stream().call_get_pos(&mut i.store, r))
    }

    pub fn flush(&self) -> Result<()> {
        self.0
            .call(|g, i, r| g.state_output_stream().call_flush(&mut i.store, r))
    }

    pub fn sync(&self) -> Result<()> {
        self.0
            .call(|g, i, r| g.state_output_stream().call_sync(&mut i.store, r))
    }

    /// Finishes the stream; `None` if nothing was written.
    pub fn close_and_get_handle(&self) -> Result<Option<StateHandle>> {
        self.0
            .call(|g, i, r| g.state_output_stream().call_close_and_get_handle(&mut i.store, r))
    }
}

/// The task-owned toolset.
#[derive(Debug)]
pub struct CheckpointStateToolset(Owned);

impl CheckpointStateToolset {
    pub fn can_fast_duplicate(&self, handle: &StateHandle) -> Result<bool> {
        self.0.call_infallible(|g, i, r| {
            g.checkpoint_state_toolset()
                .call_can_fast_duplicate(&mut i.store, r, handle)
        })
    }

    pub fn duplicate(&self, handles: &[StateHandle]) -> Result<Vec<StateHandle>> {
        self.0
            .call(|g, i, r| g.checkpoint_state_toolset().call_duplicate(&mut i.store, r, handles))
    }
}
