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
use wasmtime::AsContextMut;
use wasmtime::component::{Instance, InstancePre};

/// Which of a tenant's instances a resource lives in, and so which one
/// answers calls on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The instance the tenant starts with.
    Own,
    /// The full component's instance beside a task-side one: created at
    /// the tenant's first call of an interface the task side lacks
    /// (`coordinator`, `file-merging`).
    Beside,
}

/// Where each exported interface's functions sit in the components: found
/// once per plugin, shared by its tenants.
pub(crate) struct ExportIndices {
    /// The component every tenant instantiates: the full one, or its task
    /// side (world `checkpoint-storage-task`), which starts faster because
    /// it exports less.
    own: Interfaces,
    /// With a task side: the full component, and its interfaces.
    beside: Option<(InstancePre<TenantState>, Interfaces)>,
}

/// One component's exported interfaces; `None` where it exports none.
struct Interfaces {
    worker: Arc<WorkerIndices>,
    restore: restore::GuestIndices,
    coordinator: Option<coordinator::GuestIndices>,
    /// The object store build and the task side export no `file-merging`.
    file_merging: Option<file_merging::GuestIndices>,
    /// The object store build has no files to hand over.
    direct_io: Option<direct_io::GuestIndices>,
}

impl Interfaces {
    fn new(pre: &InstancePre<TenantState>) -> wasmtime::Result<Self> {
        Ok(Interfaces {
            worker: Arc::new(WorkerIndices::new(pre.component())?),
            restore: restore::GuestIndices::new(pre)?,
            coordinator: coordinator::GuestIndices::new(pre).ok(),
            file_merging: file_merging::GuestIndices::new(pre).ok(),
            direct_io: direct_io::GuestIndices::new(pre).ok(),
        })
    }
}

impl ExportIndices {
    /// The indices of `pre`'s exports; `beside` is the full component
    /// instantiated next to `pre` when `pre` is the task side.
    pub(crate) fn new(
        pre: &InstancePre<TenantState>,
        beside: Option<InstancePre<TenantState>>,
    ) -> wasmtime::Result<Arc<Self>> {
        let own = Interfaces::new(pre)?;
        let beside = match beside {
            None => None,
            Some(full) => Some(Interfaces::new(&full).map(|interfaces| (full, interfaces))?),
        };
        let exports_coordinator = |i: &Interfaces| i.coordinator.is_some();
        if !exports_coordinator(&own) && !beside.as_ref().is_some_and(|(_, i)| exports_coordinator(i)) {
            wasmtime::bail!("the component exports no `coordinator` interface");
        }
        Ok(Arc::new(ExportIndices { own, beside }))
    }

    /// The component that exports what `has` asks about: the tenant's own
    /// if it does, else the one beside it.
    fn side_with(&self, has: impl Fn(&Interfaces) -> bool) -> Side {
        match &self.beside {
            Some((_, beside)) if !has(&self.own) && has(beside) => Side::Beside,
            _ => Side::Own,
        }
    }

    fn interfaces(&self, side: Side) -> &Interfaces {
        match (side, &self.beside) {
            (Side::Beside, Some((_, beside))) => beside,
            _ => &self.own,
        }
    }
}

/// One instance's exported interfaces, each looked up (and type-checked) on
/// first use rather than at instantiation: a task-side tenant only ever uses
/// `worker`, and loading all three was ~10% of a tenant start. `worker` goes
/// further: each of its functions is looked up at its own first use
/// (`worker_exports`).
#[derive(Default)]
struct Loaded {
    worker: Option<WorkerExports>,
    coordinator: Option<coordinator::Guest>,
    restore: Option<restore::Guest>,
    file_merging: Option<file_merging::Guest>,
    direct_io: Option<direct_io::Guest>,
}

/// A tenant's instances and what was loaded of their exports.
pub(crate) struct Exports {
    indices: Arc<ExportIndices>,
    instances: Instances,
}

/// The instances themselves.
struct Instances {
    own: (Instance, Loaded),
    /// The full component's instance beside a task-side one, once a call
    /// of `coordinator` or `file-merging` made it.
    beside: Option<(Instance, Loaded)>,
    /// Why it could not be made, if so: it is not tried again.
    beside_failed: Option<NoInstanceBeside>,
}

/// The full component could not be instantiated beside a tenant's task
/// side (its pool had no slot left, say). Nothing ran in the tenant's own
/// instance, so the tenant goes on; its coordinator and file-merging calls
/// fail with this error.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the full component could not be instantiated beside the tenant's task side ({cause}); the task side goes on, and coordinator and file-merging calls fail with this error"
)]
pub(crate) struct NoInstanceBeside {
    cause: String,
}

impl Exports {
    pub(crate) fn new(instance: Instance, indices: Arc<ExportIndices>) -> Self {
        Exports {
            indices,
            instances: Instances {
                own: (instance, Loaded::default()),
                beside: None,
                beside_failed: None,
            },
        }
    }

    /// Whether the tenant's second instance exists now.
    #[cfg(test)]
    pub(crate) fn has_instance_beside(&self) -> bool {
        self.instances.beside.is_some()
    }

    /// The `worker` functions of `side`'s instance (a state output stream
    /// made by a file-merging factory lives where `file-merging` does).
    pub(crate) fn worker(
        &mut self,
        side: Side,
        mut store: impl AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<WorkerExports> {
        let indices = &self.indices;
        let (instance, loaded) = self.instances.get(indices, side, &mut store)?;
        Ok(loaded
            .worker
            .get_or_insert_with(|| WorkerExports::new(instance, indices.interfaces(side).worker.clone()))
            .clone())
    }

    /// The instance `coordinator` lives in, and with it every resource it
    /// makes.
    pub(crate) fn coordinator_side(&self) -> Side {
        self.indices.side_with(|i| i.coordinator.is_some())
    }

    pub(crate) fn coordinator(
        &mut self,
        mut store: impl AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<coordinator::Guest> {
        let side = self.coordinator_side();
        let (instance, loaded) = self.instances.get(&self.indices, side, &mut store)?;
        let Some(coordinator) = &self.indices.interfaces(side).coordinator else {
            wasmtime::bail!("the component exports no coordinator interface")
        };
        cached(&mut loaded.coordinator, || coordinator.load(store, &instance))
    }

    pub(crate) fn restore(
        &mut self,
        mut store: impl AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<restore::Guest> {
        let (instance, loaded) = self.instances.get(&self.indices, Side::Own, &mut store)?;
        cached(&mut loaded.restore, || self.indices.own.restore.load(store, &instance))
    }

    /// Whether `side`'s component exports `direct-io`.
    pub(crate) fn has_direct_io(&self, side: Side) -> bool {
        self.indices.interfaces(side).direct_io.is_some()
    }

    pub(crate) fn direct_io(
        &mut self,
        side: Side,
        mut store: impl AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<direct_io::Guest> {
        let (instance, loaded) = self.instances.get(&self.indices, side, &mut store)?;
        let Some(direct_io) = &self.indices.interfaces(side).direct_io else {
            wasmtime::bail!("the component exports no direct-io interface")
        };
        cached(&mut loaded.direct_io, || direct_io.load(store, &instance))
    }

    /// Whether the tenant's components export `file-merging`.
    pub(crate) fn has_file_merging(&self) -> bool {
        self.indices.interfaces(self.file_merging_side()).file_merging.is_some()
    }

    /// The instance `file-merging` lives in, and with it every resource
    /// it makes (its state output streams too).
    pub(crate) fn file_merging_side(&self) -> Side {
        self.indices.side_with(|i| i.file_merging.is_some())
    }

    pub(crate) fn file_merging(
        &mut self,
        mut store: impl AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<file_merging::Guest> {
        let side = self.file_merging_side();
        let (instance, loaded) = self.instances.get(&self.indices, side, &mut store)?;
        let Some(file_merging) = &self.indices.interfaces(side).file_merging else {
            wasmtime::bail!("the component exports no file-merging interface")
        };
        cached(&mut loaded.file_merging, || file_merging.load(store, &instance))
    }
}

impl Instances {
    /// The instance of `side` and what was loaded of it; the instance
    /// beside is made at its first use. If that fails, the error is
    /// [`NoInstanceBeside`], now and at every later use (a failed
    /// instantiation may leave parts of the instance in the store; trying
    /// again would pile them up).
    fn get(
        &mut self,
        indices: &ExportIndices,
        side: Side,
        store: &mut impl AsContextMut<Data = TenantState>,
    ) -> wasmtime::Result<(Instance, &mut Loaded)> {
        let pre = match (side, &indices.beside) {
            (Side::Beside, Some((pre, _))) => pre,
            _ => return Ok((self.own.0, &mut self.own.1)),
        };
        if let Some(failed) = &self.beside_failed {
            return Err(wasmtime::Error::new(failed.clone()));
        }
        if self.beside.is_none() {
            // The component starts no guest code when instantiated: a
            // failure is the pool's or the limiter's refusal, and the store
            // and the tenant's own instance are as they were.
            let instance = pre.instantiate(&mut *store).map_err(|e| {
                let failed = NoInstanceBeside {
                    cause: format!("{e:#}"),
                };
                self.beside_failed = Some(failed.clone());
                wasmtime::Error::new(failed)
            })?;
            self.beside = Some((instance, Loaded::default()));
        }
        let (instance, loaded) = self.beside.as_mut().expect("made above");
        Ok((*instance, loaded))
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
    use crate::file_merging::{FileMergingOptions, SubtaskKey};
    use crate::plugin::{EMBEDDED_COMPONENT, Plugin};
    use crate::tenant::{Tenant, TenantConfig};
    use crate::types::{LocationReference, StateScope, StorageConfig};

    const JOB: &str = "0123456789abcdef0123456789abcdef";

    fn has_instance_beside(tenant: &Tenant) -> bool {
        tenant.with_inner(|inner| inner.exports().has_instance_beside())
    }

    /// A tenant of `plugin` in a directory of its own, and the job's config.
    fn tenant_of(plugin: &Plugin) -> (tempfile::TempDir, Tenant, StorageConfig) {
        let dir = tempfile::tempdir().unwrap();
        let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
        (dir, tenant, StorageConfig::filesystem(JOB))
    }

    #[test]
    fn the_full_component_is_instantiated_only_for_coordinator_calls() {
        let (dir, tenant, config) = tenant_of(&Plugin::load().unwrap());
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
        assert!(dir.path().join(JOB).join("chk-2").is_dir());
        let handle = factory.write_state(StateScope::Exclusive, &[7; 100]).unwrap().unwrap();
        assert_eq!(tenant.read_state(&handle).unwrap(), vec![7; 100]);
        let second = tenant.open_coordinator_view(&config, None).unwrap();
        assert!(second.has_default_savepoint_location().is_ok_and(|has| !has));
    }

    /// File merging lives beside too, and so do the streams its factories
    /// make: their `worker` and `direct-io` calls go to that instance,
    /// while the worker view's streams stay in the tenant's own.
    #[test]
    fn file_merging_and_its_streams_live_in_the_instance_beside() {
        let (dir, tenant, config) = tenant_of(&Plugin::load().unwrap());
        std::fs::create_dir_all(dir.path().join(JOB).join("chk-1")).unwrap();
        let plain = tenant
            .open_worker_view(&config)
            .unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        let manager = tenant
            .open_file_merging_manager(&config, "tm-1", &FileMergingOptions::enabled())
            .unwrap();
        assert!(has_instance_beside(&tenant));
        let subtask = SubtaskKey::new("a3f1c2d4e5f60718293a4b5c6d7e8f90", 0, 1);
        manager.register_subtask(&subtask).unwrap();
        let merging = manager
            .resolve_checkpoint_storage_location(&subtask, 1, &LocationReference::Default)
            .unwrap();
        // Small and large writes (the large ones go straight into the file
        // through the instance beside's `direct-io`), interleaved with a
        // stream of the worker view.
        let small: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..3_000_000u32).map(|i| (i / 7) as u8).collect();
        let mut merged = merging
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap();
        let mut own = plain
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap();
        merged.write(&small).unwrap();
        own.write(&small).unwrap();
        merged.write(&large).unwrap();
        own.write(&large).unwrap();
        assert_eq!(merged.get_pos().unwrap(), (small.len() + large.len()) as u64);
        let merged = merged.close_and_get_handle().unwrap().unwrap();
        let own = own.close_and_get_handle().unwrap().unwrap();
        let expected = [small, large].concat();
        assert_eq!(tenant.read_state(&merged).unwrap(), expected);
        assert_eq!(tenant.read_state(&own).unwrap(), expected);
        assert!(!tenant.is_poisoned());
    }

    #[test]
    fn a_plugin_of_one_component_answers_every_call_from_its_own_instance() {
        let (_dir, tenant, config) = tenant_of(&Plugin::from_bytes(EMBEDDED_COMPONENT).unwrap());
        tenant.open_worker_view(&config).unwrap();
        tenant.open_coordinator_view(&config, None).unwrap();
        tenant
            .open_file_merging_manager(&config, "tm-1", &FileMergingOptions::enabled())
            .unwrap();
        assert!(!has_instance_beside(&tenant));
    }
}
