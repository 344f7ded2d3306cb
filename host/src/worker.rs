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
            let mut stream = self.create_checkpoint_state_output_stream(scope)?;
            stream.write(data)?;
            return stream.close_and_get_handle();
        }
        let permit = self.owned.tenant.acquire_stream()?;
        permit.metered_write(data.len(), || {
            self.owned
                .call(|g, i, r| g.stream_factory().call_write_state(&mut i.store, r, scope, data))
        })
    }

    /// Many whole states in one call (WIT `write-states`): one result per
    /// state, in order, each what [`write_state`](Self::write_state) of that
    /// state alone would give, limits included (a state beyond the byte
    /// limit is refused, the ones before it are written). A failed state
    /// leaves no file; the others keep their handles. States go to the
    /// component in calls of at most [`MAX_BYTES_PER_CALL`] bytes, a larger
    /// state through its own stream. Each call takes one stream slot while
    /// it runs. If a call traps, its first state gets the trap's error and
    /// every later state [`Error::Poisoned`](crate::Error::Poisoned), as one
    /// call per state would; the handles of the states that trapped call had
    /// finished are lost with the instance (their files stay for `gc`).
    pub fn write_states(&self, scope: StateScope, states: &[Vec<u8>]) -> Vec<Result<Option<StateHandle>>> {
        let mut results = Vec::with_capacity(states.len());
        let mut rest = states;
        while let Some(first) = rest.first() {
            if first.len() > MAX_BYTES_PER_CALL {
                results.push(self.write_state(scope, first));
                rest = &rest[1..];
                continue;
            }
            let mut bytes = 0;
            let fit = rest
                .iter()
                .take_while(|d| {
                    bytes += d.len();
                    bytes <= MAX_BYTES_PER_CALL
                })
                .count();
            let taken = self.write_states_call(scope, &rest[..fit], &mut results);
            rest = &rest[taken..];
        }
        results
    }

    /// One `write-states` call with as many of `states` (at least one, all
    /// in one call's bytes) as the byte limit admits; pushes their results
    /// and returns how many.
    fn write_states_call(
        &self,
        scope: StateScope,
        states: &[Vec<u8>],
        results: &mut Vec<Result<Option<StateHandle>>>,
    ) -> usize {
        let permit = match self.owned.tenant.acquire_stream() {
            Ok(permit) => permit,
            Err(e) => {
                results.push(Err(e));
                return 1;
            }
        };
        let lens: Vec<usize> = states.iter().map(Vec::len).collect();
        let admitted = match permit.admit_prefix(&lens) {
            Ok(n) => n,
            Err(limit) => {
                results.push(Err(limit.into()));
                return 1;
            }
        };
        let batch = &states[..admitted];
        let written = self.owned.call_infallible(|g, i, r| {
            let written = g.stream_factory().call_write_states(&mut i.store, r, scope, batch)?;
            if written.len() != batch.len() {
                // The component broke its contract: treated as a failed instance.
                return Err(wasmtime::format_err!(
                    "the component returned {} results for {} states",
                    written.len(),
                    batch.len()
                ));
            }
            Ok(written)
        });
        match written {
            Ok(written) => {
                for (result, len) in written.into_iter().zip(lens) {
                    if result.is_err() {
                        permit.refund(len);
                    }
                    results.push(result.map_err(crate::Error::Storage));
                }
            }
            Err(e) => {
                lens[..admitted].iter().for_each(|&len| permit.refund(len));
                results.push(Err(e));
                results.extend((1..admitted).map(|_| Err(crate::Error::Poisoned)));
            }
        }
        admitted
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
