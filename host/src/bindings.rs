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

use crate::tenant::TenantState;
use crate::worker_exports::{WorkerExports, WorkerIndices};
use exports::flink::checkpoint_storage::{coordinator, direct_io, file_merging, restore};
use std::sync::Arc;
use wasmtime::component::{Instance, InstancePre};

/// Where each exported interface's functions sit in the component: found
/// once per plugin, shared by its tenants.
pub(crate) struct ExportIndices {
    worker: Arc<WorkerIndices>,
    coordinator: CoordinatorSide,
    restore: restore::GuestIndices,
    /// `None` for the object store build, which exports no `file-merging`.
    file_merging: Option<file_merging::GuestIndices>,
    /// `None` for the object store build, which has no files to hand over.
    direct_io: Option<direct_io::GuestIndices>,
}

/// Which instance answers `coordinator` calls.
enum CoordinatorSide {
    /// The tenant's instance: its component exports `coordinator`.
    Same(coordinator::GuestIndices),
    /// A second instance, of this full component, created in the tenant's
    /// store at its first coordinator call: the tenant's own component is
    /// the task side (world `checkpoint-storage-task`), which starts
    /// faster because it exports less.
    Beside {
        pre: InstancePre<TenantState>,
        indices: coordinator::GuestIndices,
    },
}

impl ExportIndices {
    /// The indices of `pre`'s exports; `coordinator_beside` is the full
    /// component whose instance answers coordinator calls when `pre` is
    /// the task side.
    pub(crate) fn new(
        pre: &InstancePre<TenantState>,
        coordinator_beside: Option<InstancePre<TenantState>>,
    ) -> wasmtime::Result<Arc<Self>> {
        let coordinator = match coordinator_beside {
            None => CoordinatorSide::Same(coordinator::GuestIndices::new(pre)?),
            Some(beside) => CoordinatorSide::Beside {
                indices: coordinator::GuestIndices::new(&beside)?,
                pre: beside,
            },
        };
        Ok(Arc::new(ExportIndices {
            worker: Arc::new(WorkerIndices::new(pre.component())?),
            coordinator,
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
    /// The instance of the full component beside a task-side one, once a
    /// coordinator call made it (`CoordinatorSide::Beside`).
    beside: Option<Instance>,
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
            beside: None,
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

    pub(crate) fn coordinator(
        &mut self,
        mut store: impl wasmtime::AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<coordinator::Guest> {
        if let Some(g) = &self.coordinator {
            return Ok(g.clone());
        }
        let (indices, instance) = match &self.indices.coordinator {
            CoordinatorSide::Same(indices) => (indices, self.instance),
            CoordinatorSide::Beside { pre, indices } => {
                // A failed instantiation leaves nothing to retry with: the
                // caller poisons the tenant, as for a trap.
                let instance = match self.beside {
                    Some(instance) => instance,
                    None => *self.beside.insert(
                        pre.instantiate(&mut store)
                            .map_err(|e| e.context("instantiating the coordinator side of the tenant"))?,
                    ),
                };
                (indices, instance)
            }
        };
        cached(&mut self.coordinator, || indices.load(store, &instance))
    }

    /// Whether this tenant's coordinator side runs in a second instance
    /// that exists now.
    #[cfg(test)]
    pub(crate) fn has_instance_beside(&self) -> bool {
        self.beside.is_some()
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

#[cfg(test)]
mod tests {
    use crate::plugin::{EMBEDDED_COMPONENT, Plugin};
    use crate::tenant::{Tenant, TenantConfig};
    use crate::types::{LocationReference, StateScope, StorageConfig};

    fn has_instance_beside(tenant: &Tenant) -> bool {
        tenant.with_inner(|inner| inner.exports().has_instance_beside())
    }

    #[test]
    fn the_full_component_is_instantiated_only_for_coordinator_calls() {
        let plugin = Plugin::load().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
        let job = "0123456789abcdef0123456789abcdef";
        let config = StorageConfig::filesystem(job);
        let factory = tenant
            .open_worker_view(&config)
            .unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        assert!(!has_instance_beside(&tenant), "a worker view needs the task side only");
        let coordinator = tenant.open_coordinator_view(&config, None).unwrap();
        assert!(has_instance_beside(&tenant));
        // Both answer, each from its own instance, in any order.
        coordinator.initialize_location_for_checkpoint(2).unwrap();
        assert!(dir.path().join(job).join("chk-2").is_dir());
        let handle = factory.write_state(StateScope::Exclusive, &[7; 100]).unwrap().unwrap();
        assert_eq!(tenant.read_state(&handle).unwrap(), vec![7; 100]);
        let second = tenant.open_coordinator_view(&config, None).unwrap();
        assert!(second.has_default_savepoint_location().is_ok_and(|has| !has));
    }

    #[test]
    fn a_plugin_of_one_component_answers_coordinator_calls_from_its_own_instance() {
        let plugin = Plugin::from_bytes(EMBEDDED_COMPONENT).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
        let config = StorageConfig::filesystem("0123456789abcdef0123456789abcdef");
        tenant.open_worker_view(&config).unwrap();
        tenant.open_coordinator_view(&config, None).unwrap();
        assert!(!has_instance_beside(&tenant));
    }
}
