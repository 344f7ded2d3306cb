//! WIT `worker`: the worker view, stream factories, state output streams
//! and the task-owned toolset.

use super::exports::flink::checkpoint_storage::types as wit;
use super::exports::flink::checkpoint_storage::worker::{
    CheckpointStateToolset, Guest, GuestCheckpointStateToolset, GuestStateOutputStream, GuestStreamFactory,
    GuestWorkerView, StateOutputStream, StreamFactory, WorkerView,
};
use super::types::*;
use super::{ActiveSandbox as WasiSandbox, path_out};
use super::{Component, sandbox};
use checkpoint_storage_core::access;
use checkpoint_storage_core::any_stream::AnyStream;
use checkpoint_storage_core::output_stream::CheckpointStateOutputStream;
use std::cell::RefCell;

impl Guest for Component {
    type WorkerView = WorkerViewImpl;
    type StreamFactory = StreamFactoryImpl;
    type StateOutputStream = StreamImpl;
    type CheckpointStateToolset = ToolsetImpl;
}

pub struct WorkerViewImpl(access::WorkerView<WasiSandbox>);

impl GuestWorkerView for WorkerViewImpl {
    fn open(config: wit::StorageConfig) -> WitResult<WorkerView> {
        let view = access::WorkerView::open(sandbox()?, &from_wit_config(config)).map_err(to_wit_error)?;
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
        stream_resource(self.0.create_task_owned_state_stream())
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
        stream_resource(self.0.create_checkpoint_state_output_stream(scope(s)))
    }

    fn write_state(&self, s: wit::StateScope, data: Vec<u8>) -> WitResult<Option<wit::StateHandle>> {
        written_state(self.0.write_owned_state(scope(s), data))
    }

    fn write_states(&self, s: wit::StateScope, states: Vec<Vec<u8>>) -> Vec<WitResult<Option<wit::StateHandle>>> {
        let s = scope(s);
        states
            .into_iter()
            .map(|data| written_state(self.0.write_owned_state(s, data)))
            .collect()
    }

    fn can_fast_duplicate(&self, handle: wit::StateHandle, s: wit::StateScope) -> bool {
        self.0.can_fast_duplicate(&from_wit_handle(handle), scope(s))
    }

    fn duplicate(&self, handles: Vec<wit::StateHandle>, s: wit::StateScope) -> WitResult<Vec<wit::StateHandle>> {
        let handles: Vec<_> = handles.into_iter().map(from_wit_handle).collect();
        to_wit_handles(self.0.duplicate(&handles, scope(s)))
    }

    fn checkpoint_directory(&self) -> String {
        self.0
            .checkpoint_directory()
            .map(|p| path_out(p.to_string()))
            .unwrap_or_default()
    }

    fn shared_state_directory(&self) -> String {
        self.0
            .shared_state_directory()
            .map(|p| path_out(p.to_string()))
            .unwrap_or_default()
    }
}

/// Resource methods take `&self`; the stream needs `&mut`.
pub struct StreamImpl(pub(super) RefCell<AnyStream<WasiSandbox>>);

/// A new stream of any factory (plain or merging) as a WIT resource.
pub(super) fn stream_resource(
    stream: Result<AnyStream<WasiSandbox>, checkpoint_storage_core::error::StorageError>,
) -> WitResult<StateOutputStream> {
    let stream = stream.map_err(to_wit_error)?;
    Ok(StateOutputStream::new(StreamImpl(RefCell::new(stream))))
}

/// The result of `write-state` of any factory (plain or merging).
pub(super) fn written_state(
    handle: Result<Option<checkpoint_storage_core::handle::StateHandle>, checkpoint_storage_core::error::StorageError>,
) -> WitResult<Option<wit::StateHandle>> {
    handle.map(|h| h.map(to_wit_handle)).map_err(to_wit_error)
}

impl GuestStateOutputStream for StreamImpl {
    fn write(&self, data: Vec<u8>) -> WitResult<()> {
        self.0.borrow_mut().write_owned(data).map_err(to_wit_error)
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
