//! Rust bindings generated from `wit/` (the only place wasmtime's
//! `bindgen!` runs).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "checkpoint-storage",
    additional_derives: [PartialEq, Eq],
    // The contract names WASI types (descriptors handed to the host for
    // direct writes and reads): they are wasmtime-wasi's, in the tenant's
    // resource table.
    with: {
        "wasi:filesystem/types": wasmtime_wasi::p2::bindings::sync::filesystem::types,
        "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

use crate::worker_exports::{WorkerExports, WorkerIndices};
use exports::flink::checkpoint_storage::{coordinator, direct_io, file_merging, restore};
use std::sync::Arc;
use wasmtime::component::{Instance, InstancePre};

/// Where each exported interface's functions sit in the component: found
/// once per plugin, shared by its tenants.
pub(crate) struct ExportIndices {
    worker: Arc<WorkerIndices>,
    coordinator: coordinator::GuestIndices,
    restore: restore::GuestIndices,
    /// `None` for the object store build, which exports no `file-merging`.
    file_merging: Option<file_merging::GuestIndices>,
    /// `None` for the object store build, which has no files to hand over.
    direct_io: Option<direct_io::GuestIndices>,
}

impl ExportIndices {
    pub(crate) fn new<T: 'static>(pre: &InstancePre<T>) -> wasmtime::Result<Arc<Self>> {
        Ok(Arc::new(ExportIndices {
            worker: Arc::new(WorkerIndices::new(pre.component())?),
            coordinator: coordinator::GuestIndices::new(pre)?,
            restore: restore::GuestIndices::new(pre)?,
            file_merging: file_merging::GuestIndices::new(pre).ok(),
            direct_io: direct_io::GuestIndices::new(pre).ok(),
        }))
    }
}

/// One instance's exported interfaces, each looked up (and type-checked) on
/// first use rather than at instantiation: a task-side tenant only ever uses
/// `worker`, and loading all three was ~10% of a tenant start. `worker` goes
/// further: each of its functions is looked up at its own first use
/// (`worker_exports`).
pub(crate) struct Exports {
    instance: Instance,
    indices: Arc<ExportIndices>,
    worker: Option<WorkerExports>,
    coordinator: Option<coordinator::Guest>,
    restore: Option<restore::Guest>,
    file_merging: Option<file_merging::Guest>,
    direct_io: Option<direct_io::Guest>,
}

impl Exports {
    pub(crate) fn new(instance: Instance, indices: Arc<ExportIndices>) -> Self {
        Exports {
            instance,
            indices,
            worker: None,
            coordinator: None,
            restore: None,
            file_merging: None,
            direct_io: None,
        }
    }

    pub(crate) fn worker(&mut self) -> WorkerExports {
        let (indices, instance) = (&self.indices.worker, self.instance);
        self.worker
            .get_or_insert_with(|| WorkerExports::new(instance, indices.clone()))
            .clone()
    }

    pub(crate) fn coordinator(&mut self, store: impl wasmtime::AsContextMut) -> wasmtime::Result<coordinator::Guest> {
        let (indices, instance) = (&self.indices.coordinator, &self.instance);
        cached(&mut self.coordinator, || indices.load(store, instance))
    }

    pub(crate) fn restore(&mut self, store: impl wasmtime::AsContextMut) -> wasmtime::Result<restore::Guest> {
        let (indices, instance) = (&self.indices.restore, &self.instance);
        cached(&mut self.restore, || indices.load(store, instance))
    }
}

impl Exports {
    /// Whether the component exports `direct-io`.
    pub(crate) fn has_direct_io(&self) -> bool {
        self.indices.direct_io.is_some()
    }

    pub(crate) fn direct_io(&mut self, store: impl wasmtime::AsContextMut) -> wasmtime::Result<direct_io::Guest> {
        let (indices, instance) = (&self.indices.direct_io, &self.instance);
        let indices = indices
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("the component exports no direct-io interface"))?;
        cached(&mut self.direct_io, || indices.load(store, instance))
    }

    /// Whether the component exports `file-merging`.
    pub(crate) fn has_file_merging(&self) -> bool {
        self.indices.file_merging.is_some()
    }

    pub(crate) fn file_merging(&mut self, store: impl wasmtime::AsContextMut) -> wasmtime::Result<file_merging::Guest> {
        let (indices, instance) = (&self.indices.file_merging, &self.instance);
        let indices = indices
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("the component exports no file-merging interface"))?;
        cached(&mut self.file_merging, || indices.load(store, instance))
    }
}

/// The value in `slot`, loaded into it first if empty.
fn cached<G: Clone>(slot: &mut Option<G>, load: impl FnOnce() -> wasmtime::Result<G>) -> wasmtime::Result<G> {
    if let Some(g) = slot {
        return Ok(g.clone());
    }
    let g = load()?;
    *slot = Some(g.clone());
    Ok(g)
}
