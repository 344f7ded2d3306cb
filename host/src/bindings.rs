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

use exports::flink::checkpoint_storage::{coordinator, file_merging, restore, worker};
use std::sync::Arc;
use wasmtime::component::{Instance, InstancePre};

/// Where each exported interface's functions sit in the component: found
/// once per plugin, shared by its tenants.
pub(crate) struct ExportIndices {
    worker: worker::GuestIndices,
    coordinator: coordinator::GuestIndices,
    restore: restore::GuestIndices,
    file_merging: file_merging::GuestIndices,
}

impl ExportIndices {
    pub(crate) fn new<T: 'static>(pre: &InstancePre<T>) -> wasmtime::Result<Arc<Self>> {
        Ok(Arc::new(ExportIndices {
            worker: worker::GuestIndices::new(pre)?,
            coordinator: coordinator::GuestIndices::new(pre)?,
            restore: restore::GuestIndices::new(pre)?,
            file_merging: file_merging::GuestIndices::new(pre)?,
        }))
    }
}

/// One instance's exported interfaces, each looked up (and type-checked) on
/// first use rather than at instantiation: a task-side tenant only ever uses
/// `worker`, and loading all three was ~10% of a tenant start.
pub(crate) struct Exports {
    instance: Instance,
    indices: Arc<ExportIndices>,
    worker: Option<worker::Guest>,
    coordinator: Option<coordinator::Guest>,
    restore: Option<restore::Guest>,
    file_merging: Option<file_merging::Guest>,
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
        }
    }

    pub(crate) fn worker(&mut self, store: impl wasmtime::AsContextMut) -> wasmtime::Result<worker::Guest> {
        let (indices, instance) = (&self.indices.worker, &self.instance);
        cached(&mut self.worker, || indices.load(store, instance))
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
    pub(crate) fn file_merging(&mut self, store: impl wasmtime::AsContextMut) -> wasmtime::Result<file_merging::Guest> {
        let (indices, instance) = (&self.indices.file_merging, &self.instance);
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
