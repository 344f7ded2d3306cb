//! The wit-bindgen glue: converts between WIT types and the logic's types
//! and nothing else (wasm32 only).

use crate::access::{self, BoxedStream, StateScope};
use crate::config::{Backend, StorageConfig};
use crate::coordinator::{self as coordinator_logic, CompletedCheckpoint};
use crate::error::{ErrorCode, StorageError};
use crate::handle::StateHandle;
use crate::reference::LocationReference;
use crate::restore as restore_logic;
use crate::wasi_sandbox::WasiReader;
use crate::wasi_sandbox::WasiSandbox;
use std::cell::RefCell;
use std::rc::Rc;

wit_bindgen::generate!({
    path: "../wit",
    world: "checkpoint-storage",
});

use exports::flink::checkpoint_storage::coordinator as coord;
use exports::flink::checkpoint_storage::restore;
use exports::flink::checkpoint_storage::types as wit;
use exports::flink::checkpoint_storage::worker::{
    CheckpointStateToolset, Guest, GuestCheckpointStateToolset, GuestStateOutputStream, GuestStreamFactory,
    GuestWorkerView, StateOutputStream, StreamFactory, WorkerView,
};

struct Component;
export!(Component);

impl Guest for Component {
    type WorkerView = WorkerViewImpl;
    type StreamFactory = StreamFactoryImpl;
    type StateOutputStream = StreamImpl;
    type CheckpointStateToolset = ToolsetImpl;
}

thread_local! {
    /// The preopens are the same for the whole instance: read them once.
    static SANDBOX: Rc<WasiSandbox> = Rc::new(WasiSandbox::from_preopens());
}

fn sandbox() -> Rc<WasiSandbox> {
    SANDBOX.with(Rc::clone)
}

type WitResult<T> = Result<T, wit::StorageError>;

fn to_wit_error(e: StorageError) -> wit::StorageError {
    let code = match e.code {
        ErrorCode::InvalidArgument => wit::ErrorCode::InvalidArgument,
        ErrorCode::InvalidReference => wit::ErrorCode::InvalidReference,
        ErrorCode::Unsupported => wit::ErrorCode::Unsupported,
        ErrorCode::NotFound => wit::ErrorCode::NotFound,
        ErrorCode::AlreadyExists => wit::ErrorCode::AlreadyExists,
        ErrorCode::PermissionDenied => wit::ErrorCode::PermissionDenied,
        ErrorCode::Closed => wit::ErrorCode::Closed,
        ErrorCode::StateTooLarge => wit::ErrorCode::StateTooLarge,
        ErrorCode::Io => wit::ErrorCode::Io,
    };
    wit::StorageError {
        code,
        message: e.message,
    }
}

fn scope(s: wit::StateScope) -> StateScope {
    match s {
        wit::StateScope::Exclusive => StateScope::Exclusive,
        wit::StateScope::Shared => StateScope::Shared,
    }
}

fn from_wit_handle(h: wit::StateHandle) -> StateHandle {
    match h {
        wit::StateHandle::ByteStream(b) => StateHandle::ByteStream {
            name: b.name,
            data: b.data,
        },
        wit::StateHandle::File(f) => StateHandle::File {
            path: f.path,
            size: f.size,
        },
        wit::StateHandle::RelativeFile(r) => StateHandle::RelativeFile {
            path: r.path,
            relative_path: r.relative_path,
            size: r.size,
        },
    }
}

fn to_wit_handle(h: StateHandle) -> wit::StateHandle {
    match h {
        StateHandle::ByteStream { name, data } => wit::StateHandle::ByteStream(wit::ByteStreamHandle { name, data }),
        StateHandle::File { path, size } => wit::StateHandle::File(wit::FileHandle { path, size }),
        StateHandle::RelativeFile {
            path,
            relative_path,
            size,
        } => wit::StateHandle::RelativeFile(wit::RelativeFileHandle {
            path,
            relative_path,
            size,
        }),
    }
}

fn from_wit_reference(reference: wit::LocationReference) -> Result<LocationReference, StorageError> {
    match reference {
        wit::LocationReference::Default => Ok(LocationReference::Default),
        wit::LocationReference::Encoded(bytes) => LocationReference::from_bytes(bytes),
    }
}

fn to_wit_reference(reference: &LocationReference) -> wit::LocationReference {
    match reference {
        LocationReference::Default => wit::LocationReference::Default,
        LocationReference::Encoded(bytes) => wit::LocationReference::Encoded(bytes.clone()),
    }
}

fn from_wit_config(config: wit::StorageConfig) -> StorageConfig {
    StorageConfig {
        job_id: config.job_id,
        checkpoints_dir: config.checkpoints_dir,
        backend: match config.backend {
            wit::Backend::Filesystem => Backend::Filesystem,
            wit::Backend::Memory => Backend::Memory,
        },
        file_state_threshold: config.file_state_threshold,
        write_buffer_size: config.write_buffer_size,
        max_memory_state_size: config.max_memory_state_size,
    }
}

fn to_wit_completed(c: CompletedCheckpoint) -> coord::CompletedCheckpoint {
    coord::CompletedCheckpoint {
        external_pointer: c.external_pointer,
        metadata: to_wit_handle(c.metadata),
    }
}

fn to_wit_handles(r: Result<Vec<StateHandle>, StorageError>) -> WitResult<Vec<wit::StateHandle>> {
    r.map(|hs| hs.into_iter().map(to_wit_handle).collect())
        .map_err(to_wit_error)
}

pub struct WorkerViewImpl(access::WorkerView<WasiSandbox>);

impl GuestWorkerView for WorkerViewImpl {
    fn open(config: wit::StorageConfig) -> WitResult<WorkerView> {
        let view = access::WorkerView::open(sandbox(), &from_wit_config(config)).map_err(to_wit_error)?;
        Ok(WorkerView::new(WorkerViewImpl(view)))
    }

    fn resolve_checkpoint_storage_location(
        &self,
        checkpoint_id: u64,
        reference: wit::LocationReference,
    ) -> WitResult<StreamFactory> {
        let reference = from_wit_reference(reference).map_err(to_wit_error)?;
        let factory = self
            .0
            .resolve_checkpoint_storage_location(checkpoint_id, &reference)
            .map_err(to_wit_error)?;
        Ok(StreamFactory::new(StreamFactoryImpl(factory)))
    }

    fn create_task_owned_state_stream(&self) -> WitResult<StateOutputStream> {
        let stream = self.0.create_task_owned_state_stream().map_err(to_wit_error)?;
        Ok(StateOutputStream::new(StreamImpl(RefCell::new(stream))))
    }

    fn create_task_owned_checkpoint_state_toolset(&self) -> WitResult<CheckpointStateToolset> {
        let toolset = self
            .0
            .create_task_owned_checkpoint_state_toolset()
            .map_err(to_wit_error)?;
        Ok(CheckpointStateToolset::new(ToolsetImpl(toolset)))
    }
}

pub struct StreamFactoryImpl(access::StreamFactory<WasiSandbox>);

impl GuestStreamFactory for StreamFactoryImpl {
    fn create_checkpoint_state_output_stream(&self, s: wit::StateScope) -> WitResult<StateOutputStream> {
        let stream = self
            .0
            .create_checkpoint_state_output_stream(scope(s))
            .map_err(to_wit_error)?;
        Ok(StateOutputStream::new(StreamImpl(RefCell::new(stream))))
    }

    fn write_state(&self, s: wit::StateScope, data: Vec<u8>) -> WitResult<Option<wit::StateHandle>> {
        self.0
            .write_state(scope(s), &data)
            .map(|h| h.map(to_wit_handle))
            .map_err(to_wit_error)
    }

    fn can_fast_duplicate(&self, handle: wit::StateHandle, s: wit::StateScope) -> bool {
        self.0.can_fast_duplicate(&from_wit_handle(handle), scope(s))
    }

    fn duplicate(&self, handles: Vec<wit::StateHandle>, s: wit::StateScope) -> WitResult<Vec<wit::StateHandle>> {
        let handles: Vec<_> = handles.into_iter().map(from_wit_handle).collect();
        to_wit_handles(self.0.duplicate(&handles, scope(s)))
    }

    fn checkpoint_directory(&self) -> String {
        self.0.checkpoint_directory().map(|p| p.to_string()).unwrap_or_default()
    }

    fn shared_state_directory(&self) -> String {
        self.0
            .shared_state_directory()
            .map(|p| p.to_string())
            .unwrap_or_default()
    }
}

/// Resource methods take `&self`; the stream needs `&mut`.
pub struct StreamImpl(RefCell<BoxedStream>);

impl GuestStateOutputStream for StreamImpl {
    fn write(&self, data: Vec<u8>) -> WitResult<()> {
        self.0.borrow_mut().write(&data).map_err(to_wit_error)
    }

    fn get_pos(&self) -> u64 {
        self.0.borrow().pos()
    }

    fn flush(&self) -> WitResult<()> {
        self.0.borrow_mut().flush().map_err(to_wit_error)
    }

    fn sync(&self) -> WitResult<()> {
        self.0.borrow_mut().sync().map_err(to_wit_error)
    }

    fn close_and_get_handle(&self) -> WitResult<Option<wit::StateHandle>> {
        self.0
            .borrow_mut()
            .close_and_get_handle()
            .map(|h| h.map(to_wit_handle))
            .map_err(to_wit_error)
    }
}

pub struct ToolsetImpl(access::StateToolset<WasiSandbox>);

impl GuestCheckpointStateToolset for ToolsetImpl {
    fn can_fast_duplicate(&self, handle: wit::StateHandle) -> bool {
        self.0.can_fast_duplicate(&from_wit_handle(handle))
    }

    fn duplicate(&self, handles: Vec<wit::StateHandle>) -> WitResult<Vec<wit::StateHandle>> {
        let handles: Vec<_> = handles.into_iter().map(from_wit_handle).collect();
        to_wit_handles(self.0.duplicate(&handles))
    }
}

impl coord::Guest for Component {
    type CoordinatorView = CoordinatorViewImpl;
    type CheckpointStorageLocation = LocationImpl;
    type MetadataOutputStream = MetadataStreamImpl;
}

pub struct CoordinatorViewImpl(coordinator_logic::CoordinatorView<WasiSandbox>);

impl coord::GuestCoordinatorView for CoordinatorViewImpl {
    fn open(config: wit::StorageConfig, default_savepoint_dir: Option<String>) -> WitResult<coord::CoordinatorView> {
        let view = coordinator_logic::CoordinatorView::open(
            sandbox(),
            &from_wit_config(config),
            default_savepoint_dir.as_deref(),
        )
        .map_err(to_wit_error)?;
        Ok(coord::CoordinatorView::new(CoordinatorViewImpl(view)))
    }

    fn has_default_savepoint_location(&self) -> bool {
        self.0.has_default_savepoint_location()
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
            .initialize_location_for_savepoint(checkpoint_id, target.as_deref())
            .map_err(to_wit_error)?;
        Ok(coord::CheckpointStorageLocation::new(LocationImpl(location)))
    }

    fn resolve_checkpoint(&self, pointer: String) -> WitResult<coord::CompletedCheckpoint> {
        self.0
            .resolve_checkpoint(&pointer)
            .map(to_wit_completed)
            .map_err(to_wit_error)
    }
}

pub struct LocationImpl(coordinator_logic::Location<WasiSandbox>);

impl coord::GuestCheckpointStorageLocation for LocationImpl {
    fn location_reference(&self) -> wit::LocationReference {
        to_wit_reference(self.0.location_reference())
    }

    fn checkpoint_directory(&self) -> String {
        self.0.checkpoint_directory().to_string()
    }

    fn metadata_file_path(&self) -> String {
        self.0.metadata_file_path().to_string()
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

impl restore::Guest for Component {
    type StateInputStream = InputStreamImpl;

    fn discard_state(handle: wit::StateHandle) -> WitResult<()> {
        restore_logic::discard_state(&*sandbox(), &from_wit_handle(handle)).map_err(to_wit_error)
    }
}

pub struct InputStreamImpl(RefCell<restore_logic::StateInputStream<WasiReader>>);

impl restore::GuestStateInputStream for InputStreamImpl {
    fn open(handle: wit::StateHandle) -> WitResult<restore::StateInputStream> {
        let stream =
            restore_logic::StateInputStream::open(&*sandbox(), from_wit_handle(handle)).map_err(to_wit_error)?;
        Ok(restore::StateInputStream::new(InputStreamImpl(RefCell::new(stream))))
    }

    fn read(&self, len: u64) -> WitResult<Vec<u8>> {
        self.0.borrow_mut().read(len).map_err(to_wit_error)
    }

    fn seek(&self, pos: u64) -> WitResult<()> {
        self.0.borrow_mut().seek(pos).map_err(to_wit_error)
    }

    fn get_pos(&self) -> u64 {
        self.0.borrow().pos()
    }

    fn size(&self) -> u64 {
        self.0.borrow().size()
    }
}
