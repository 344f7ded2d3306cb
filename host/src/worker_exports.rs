//! Calls of the `worker` interface's exports. bindgen's `GuestIndices::load`
//! looks up and type-checks every function of an interface at its first
//! use in an instance (18 here); that was most of opening a tenant's first
//! worker view. Here each function is looked up at its own first use in an
//! instance, so a tenant pays only for the functions it calls, and
//! type-checked at its first use in the plugin (its type is the
//! component's, the same in every instance). The methods
//! carry bindgen's names and signatures (`g.stream_factory().call_write(..)`),
//! so call sites read as with bindgen's `Guest`.

use crate::bindings::exports::flink::checkpoint_storage::types::{
    LocationReference, StateHandle, StateScope, StorageConfig, StorageError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use wasmtime::AsContextMut;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Func, Instance, Lift, Lower, ResourceAny, TypedFunc,
};

/// The exported interface, as the component names it.
const INTERFACE: &str = "flink:checkpoint-storage/worker@0.2.0";

/// Declares the functions: their export names (in slot order) and one call
/// method each, whose parameter and result types serve both the type check
/// at first use and the call.
macro_rules! worker_functions {
    ($(
        $accessor:ident: $calls:ident {
            $( $slot:ident = $name:literal => fn $method:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*
        }
    )*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        enum Slot { $($($slot,)*)* }

        /// Export names, indexed by `Slot`.
        const NAMES: &[&str] = &[$($($name,)*)*];

        impl WorkerExports {
            $(
                pub(crate) fn $accessor(&self) -> $calls<'_> {
                    $calls(self)
                }
            )*
        }

        $(
            /// Calls of one resource's functions (bindgen's accessor of the same name).
            pub(crate) struct $calls<'a>(&'a WorkerExports);

            impl $calls<'_> {
                $(
                    pub(crate) fn $method<S: AsContextMut>(&self, mut store: S, $($arg: $ty),*) -> wasmtime::Result<$ret> {
                        let func = self.0.func::<($($ty,)*), ($ret,)>(&mut store, Slot::$slot)?;
                        // SAFETY: `func`, or the same export of the same
                        // component in another instance, passed `Func::typed`
                        // with exactly these parameter and result types
                        // (`WorkerExports::func`).
                        let callee = unsafe { TypedFunc::<($($ty,)*), ($ret,)>::new_unchecked(func) };
                        let (ret,) = callee.call(store.as_context_mut(), ($($arg,)*))?;
                        Ok(ret)
                    }
                )*
            }
        )*

        /// Looks up and type-checks every function (tests: every signature
        /// above matches the component).
        #[cfg(test)]
        pub(crate) fn check_all(exports: &WorkerExports, mut store: impl AsContextMut) -> wasmtime::Result<()> {
            $($(
                exports.func::<($($ty,)*), ($ret,)>(&mut store, Slot::$slot)?;
            )*)*
            Ok(())
        }
    };
}

type Stored<T> = Result<T, StorageError>;

worker_functions! {
    worker_view: WorkerViewCalls {
        OPEN = "[static]worker-view.open"
            => fn call_open(config: &StorageConfig) -> Stored<ResourceAny>;
        RESOLVE = "[method]worker-view.resolve-checkpoint-storage-location"
            => fn call_resolve_checkpoint_storage_location(view: ResourceAny, checkpoint_id: u64, reference: &LocationReference) -> Stored<ResourceAny>;
        TASK_OWNED_STREAM = "[method]worker-view.create-task-owned-state-stream"
            => fn call_create_task_owned_state_stream(view: ResourceAny) -> Stored<ResourceAny>;
        TASK_OWNED_TOOLSET = "[method]worker-view.create-task-owned-checkpoint-state-toolset"
            => fn call_create_task_owned_checkpoint_state_toolset(view: ResourceAny) -> Stored<ResourceAny>;
    }
    stream_factory: StreamFactoryCalls {
        CREATE_STREAM = "[method]stream-factory.create-checkpoint-state-output-stream"
            => fn call_create_checkpoint_state_output_stream(factory: ResourceAny, scope: StateScope) -> Stored<ResourceAny>;
        WRITE_STATE = "[method]stream-factory.write-state"
            => fn call_write_state(factory: ResourceAny, scope: StateScope, data: &[u8]) -> Stored<Option<StateHandle>>;
        WRITE_STATES = "[method]stream-factory.write-states"
            => fn call_write_states(factory: ResourceAny, scope: StateScope, states: &[Vec<u8>]) -> Vec<Stored<Option<StateHandle>>>;
        FACTORY_CAN_FAST_DUPLICATE = "[method]stream-factory.can-fast-duplicate"
            => fn call_can_fast_duplicate(factory: ResourceAny, handle: &StateHandle, scope: StateScope) -> bool;
        FACTORY_DUPLICATE = "[method]stream-factory.duplicate"
            => fn call_duplicate(factory: ResourceAny, handles: &[StateHandle], scope: StateScope) -> Stored<Vec<StateHandle>>;
        CHECKPOINT_DIRECTORY = "[method]stream-factory.checkpoint-directory"
            => fn call_checkpoint_directory(factory: ResourceAny) -> String;
        SHARED_STATE_DIRECTORY = "[method]stream-factory.shared-state-directory"
            => fn call_shared_state_directory(factory: ResourceAny) -> String;
    }
    state_output_stream: StateOutputStreamCalls {
        WRITE = "[method]state-output-stream.write"
            => fn call_write(stream: ResourceAny, data: &[u8]) -> Stored<()>;
        GET_POS = "[method]state-output-stream.get-pos"
            => fn call_get_pos(stream: ResourceAny) -> u64;
        FLUSH = "[method]state-output-stream.flush"
            => fn call_flush(stream: ResourceAny) -> Stored<()>;
        SYNC = "[method]state-output-stream.sync"
            => fn call_sync(stream: ResourceAny) -> Stored<()>;
        CLOSE = "[method]state-output-stream.close-and-get-handle"
            => fn call_close_and_get_handle(stream: ResourceAny) -> Stored<Option<StateHandle>>;
    }
    checkpoint_state_toolset: ToolsetCalls {
        TOOLSET_CAN_FAST_DUPLICATE = "[method]checkpoint-state-toolset.can-fast-duplicate"
            => fn call_can_fast_duplicate(toolset: ResourceAny, handle: &StateHandle) -> bool;
        TOOLSET_DUPLICATE = "[method]checkpoint-state-toolset.duplicate"
            => fn call_duplicate(toolset: ResourceAny, handles: &[StateHandle]) -> Stored<Vec<StateHandle>>;
    }
}

/// Where each function sits in the component, found once per plugin, and
/// which functions have passed the type check. A function's type is the
/// component's, the same in every instance of it, so the check at the first
/// use in any tenant holds for all later tenants of the plugin: they skip it
/// (it was a tenth of opening a tenant's first view).
pub(crate) struct WorkerIndices(Vec<ComponentExportIndex>, Vec<AtomicBool>);

impl WorkerIndices {
    /// Fails if the component lacks the interface or one of its functions.
    pub(crate) fn new(component: &Component) -> wasmtime::Result<Self> {
        let interface = component
            .get_export_index(None, INTERFACE)
            .ok_or_else(|| wasmtime::format_err!("the component exports no `{INTERFACE}`"))?;
        NAMES
            .iter()
            .map(|name| {
                component
                    .get_export_index(Some(&interface), name)
                    .ok_or_else(|| wasmtime::format_err!("`{INTERFACE}` has no function `{name}`"))
            })
            .collect::<wasmtime::Result<_>>()
            .map(|indices| WorkerIndices(indices, NAMES.iter().map(|_| AtomicBool::new(false)).collect()))
    }
}

/// One instance's `worker` functions, each filled in at its first call.
/// Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct WorkerExports {
    instance: Instance,
    indices: Arc<WorkerIndices>,
    funcs: Arc<[OnceLock<Func>]>,
}

impl WorkerExports {
    pub(crate) fn new(instance: Instance, indices: Arc<WorkerIndices>) -> Self {
        WorkerExports {
            instance,
            funcs: NAMES.iter().map(|_| OnceLock::new()).collect(),
            indices,
        }
    }

    /// The function in `slot`, looked up at its first use in this instance
    /// and type-checked as `P -> R` at its first use in the plugin.
    fn func<P, R>(&self, mut store: impl AsContextMut, slot: Slot) -> wasmtime::Result<Func>
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        let cell = &self.funcs[slot as usize];
        if let Some(func) = cell.get() {
            return Ok(*func);
        }
        let name = NAMES[slot as usize];
        let func = self
            .instance
            .get_func(&mut store, self.indices.0[slot as usize])
            .ok_or_else(|| wasmtime::format_err!("the instance has no function `{name}`"))?;
        let checked = &self.indices.1[slot as usize];
        if !checked.load(Ordering::Acquire) {
            func.typed::<P, R>(&store)
                .map_err(|e| e.context(format!("`{name}` of `{INTERFACE}`")))?;
            checked.store(true, Ordering::Release);
        }
        Ok(*cell.get_or_init(|| func))
    }
}

#[cfg(test)]
mod tests {
    use super::check_all;
    use crate::plugin::Plugin;
    use crate::tenant::TenantConfig;

    #[test]
    fn every_call_signature_matches_the_component() {
        let plugin = Plugin::load().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
        tenant.with_inner(|inner| {
            let exports = inner.worker().unwrap();
            check_all(&exports, &mut inner.store).unwrap();
        });
    }
}
