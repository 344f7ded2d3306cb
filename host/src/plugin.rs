//! Loading the component: one `Engine`, one compiled `Component` and one
//! `InstancePre` per process, shared by every tenant.

use crate::bindings::{CheckpointStoragePre, ExportIndices};
use crate::cache::CacheStatus;
use crate::error::{Error, Result};
use crate::limits::EpochTicker;
use crate::tenant::{Tenant, TenantConfig, TenantState};
use crate::tenant_slots::TenantSlots;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine allocates tenant instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocator {
    /// Memory is mapped per instance when a tenant is created.
    OnDemand,
    /// Slots for up to `max_tenants` live tenants are reserved up front;
    /// creating a tenant reuses a slot (faster start, denser tenants).
    ///
    /// `keep_resident_bytes`: of a freed slot's linear memory, up to this
    /// many dirty bytes are zeroed in place and stay resident instead of
    /// being returned to the kernel, so the next tenant in the slot takes no
    /// page faults there. The cost: a used slot keeps up to this much memory
    /// resident while unused (only pages its last tenant touched; about
    /// 2 MiB for a typical worker tenant). Default
    /// [`DEFAULT_POOL_KEEP_RESIDENT_BYTES`]; 0 returns everything.
    Pooling {
        /// Live tenants the pool has slots for; one more is refused.
        max_tenants: u32,
        /// See above.
        keep_resident_bytes: usize,
    },
}

/// Engine-wide options of the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    /// How tenant instances are allocated. Default [`Allocator::OnDemand`].
    pub allocator: Allocator,
    /// Interval of the epoch ticker that bounds calls in time
    /// (`TenantConfig::max_call_time` is rounded to it). Default 10 ms.
    pub epoch_tick: Duration,
    /// Directory of the compiled-component cache (see `cache.rs`); `None`
    /// (the default) compiles at every load.
    pub cache_dir: Option<PathBuf>,
}

/// Default of `Allocator::Pooling::keep_resident_bytes`: the least that
/// gives the whole gain (measured with the bench, five runs each: 1 MiB does
/// not help; 2 MiB and 4 MiB both start a tenant in ~18 us; 0 is wasmtime's
/// default of returning everything to the kernel).
pub const DEFAULT_POOL_KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Default interval of the epoch ticker.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(10);

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            allocator: Allocator::OnDemand,
            epoch_tick: DEFAULT_EPOCH_TICK,
            cache_dir: None,
        }
    }
}

impl PluginOptions {
    /// Options with the pooling allocator sized for `max_tenants`.
    pub fn pooling(max_tenants: u32) -> Self {
        PluginOptions {
            allocator: Allocator::Pooling {
                max_tenants,
                keep_resident_bytes: DEFAULT_POOL_KEEP_RESIDENT_BYTES,
            },
            ..Self::default()
        }
    }

    /// Keeps the compiled component in `dir` between runs.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
}

/// The component's bytes, built by `build.rs` from `guest/` and embedded in
/// the library (feature `embedded-component`, on by default). An installed
/// or moved binary carries it; nothing is read from the build machine.
#[cfg(feature = "embedded-component")]
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("CHECKPOINT_STORAGE_COMPONENT"));

/// The task side of [`EMBEDDED_COMPONENT`] (world `checkpoint-storage-task`:
/// worker, restore and direct I/O: no `coordinator`, no `file-merging`),
/// built from the same code. [`Plugin::load`] gives each tenant an instance
/// of it and adds an instance of the full component only when the tenant
/// opens a coordinator view or a file-merging manager.
#[cfg(feature = "embedded-component")]
pub const EMBEDDED_TASK_COMPONENT: &[u8] = include_bytes!(env!("CHECKPOINT_STORAGE_TASK_COMPONENT"));

/// The object storage build of the component (world
/// `checkpoint-storage-blobstore`), built and embedded like
/// [`EMBEDDED_COMPONENT`] when the `blobstore` feature is on.
#[cfg(all(feature = "embedded-component", feature = "blobstore"))]
pub const EMBEDDED_BLOBSTORE_COMPONENT: &[u8] = include_bytes!(env!("CHECKPOINT_STORAGE_BLOBSTORE_COMPONENT"));

/// The loaded plugin: compile once, instantiate per tenant.
#[derive(Clone)]
pub struct Plugin {
    engine: Engine,
    /// The full component (the contract); with the task side embedded,
    /// the one instantiated beside it for coordinator and file-merging calls.
    component: Component,
    pre: InstancePre<TenantState>,
    indices: Arc<ExportIndices>,
    ticker: Arc<EpochTicker>,
    /// Cap of a linear memory in the pool, if pooling.
    pool_max_memory: Option<usize>,
    /// The pool's `max_tenants`, counted (pooling only).
    slots: Option<Arc<TenantSlots>>,
    cache_status: CacheStatus,
    /// The runtime of object store I/O (blobstore plugins only).
    #[cfg(feature = "blobstore")]
    blob_runtime: Option<Arc<crate::blobstore::BlobRuntime>>,
}

impl Plugin {
    /// Loads the component embedded in this library, with default options.
    #[cfg(feature = "embedded-component")]
    pub fn load() -> Result<Self> {
        Self::load_with(&PluginOptions::default())
    }

    /// Loads the component embedded in this library, with engine options.
    /// Tenants get an instance of its task side
    /// ([`EMBEDDED_TASK_COMPONENT`]); the full component
    /// ([`EMBEDDED_COMPONENT`]) is instantiated beside it at a tenant's
    /// first coordinator or file-merging call. Both are compiled here.
    #[cfg(feature = "embedded-component")]
    pub fn load_with(options: &PluginOptions) -> Result<Self> {
        // `engine_config` checks the options (the epoch tick among them).
        let engine = Engine::new(&engine_config(options)?).map_err(Error::Setup)?;
        let (task, task_cache) = compile(
            &engine,
            EMBEDDED_TASK_COMPONENT,
            options,
            "the task side of the component",
        )?;
        let (full, full_cache) = compile(&engine, EMBEDDED_COMPONENT, options, "the component")?;
        Self::from_component(engine, full, Some(task), options, task_cache.and(full_cache), false)
    }

    /// Loads (compiles) a component given as bytes (a `.wasm` component
    /// binary), with default options.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_with(bytes, &PluginOptions::default())
    }

    /// Loads (compiles) a component given as bytes, with engine options.
    pub fn from_bytes_with(bytes: &[u8], options: &PluginOptions) -> Result<Self> {
        let engine = Engine::new(&engine_config(options)?).map_err(Error::Setup)?;
        Self::with_engine(&engine, bytes, options)
    }

    /// Loads (compiles) a component file, with default options.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &PluginOptions::default())
    }

    /// Loads (compiles) a component file, with engine options.
    pub fn from_file_with(path: &Path, options: &PluginOptions) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading component {}", path.display()))
            .map_err(Error::Setup)?;
        Self::from_bytes_with(&bytes, options)
    }

    /// Loads a component into an engine the embedder made itself (to share
    /// it with other components). The engine must have been built from
    /// [`engine_config`] (or a `Config` with the same settings: the
    /// component model, `epoch_interruption(true)` so that calls are bounded
    /// in time, and for `Allocator::Pooling` the same pooling limits). The
    /// plugin starts its own ticker thread that increments the engine's
    /// epoch every `options.epoch_tick`. `options.allocator` must describe
    /// the engine's allocator: it decides the per-tenant memory cap check.
    pub fn with_engine(engine: &Engine, bytes: &[u8], options: &PluginOptions) -> Result<Self> {
        Self::with_engine_for(engine, bytes, options, false)
    }

    /// Loads the embedded object storage component: tenants keep state in
    /// the object stores their grants name (`TenantConfig::object_store`).
    #[cfg(all(feature = "embedded-component", feature = "blobstore"))]
    pub fn load_blobstore_with(options: &PluginOptions) -> Result<Self> {
        Self::blobstore_from_bytes_with(EMBEDDED_BLOBSTORE_COMPONENT, options)
    }

    /// Loads an object storage component (one importing `wasi:blobstore`)
    /// given as bytes. The plugin owns a small tokio runtime for the I/O.
    #[cfg(feature = "blobstore")]
    pub fn blobstore_from_bytes_with(bytes: &[u8], options: &PluginOptions) -> Result<Self> {
        let engine = Engine::new(&engine_config(options)?).map_err(Error::Setup)?;
        Self::with_engine_for(&engine, bytes, options, true)
    }

    fn with_engine_for(engine: &Engine, bytes: &[u8], options: &PluginOptions, blobstore: bool) -> Result<Self> {
        check_epoch_tick(options)?;
        let (component, cache_status) = compile(engine, bytes, options, "the component")?;
        Self::from_component(engine.clone(), component, None, options, cache_status, blobstore)
    }

    /// `task`: the task side of `component`, which tenants then instantiate
    /// first (`component` only for coordinator and file-merging calls).
    fn from_component(
        engine: Engine,
        component: Component,
        task: Option<Component>,
        options: &PluginOptions,
        cache_status: CacheStatus,
        blobstore: bool,
    ) -> Result<Self> {
        let mut linker = Linker::<TenantState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::Setup)?;
        #[cfg(feature = "blobstore")]
        let blob_runtime = if blobstore {
            crate::blobstore::add_to_linker(&mut linker, TenantState::blob_view)
                .context("adding wasi:blobstore")
                .map_err(Error::Setup)?;
            Some(
                crate::blobstore::BlobRuntime::new()
                    .context("starting the object store runtime")
                    .map_err(Error::Setup)?,
            )
        } else {
            None
        };
        #[cfg(not(feature = "blobstore"))]
        let _ = blobstore;
        crate::in_place_write::add_to_linker(&mut linker)
            .context("replacing descriptor.write")
            .map_err(Error::Setup)?;
        crate::open_at::add_to_linker(&mut linker)
            .context("replacing descriptor.open-at")
            .map_err(Error::Setup)?;
        // Every export of the full filesystem world is checked for its types
        // once, at load, by `CheckpointStoragePre::new`; the object store
        // world (no `file-merging`) and the task side (no `coordinator`) by
        // the interface lookups of `ExportIndices::new`.
        let full = linker
            .instantiate_pre(&component)
            .and_then(|pre| match blobstore {
                false => CheckpointStoragePre::new(pre).map(|checked| checked.instance_pre().clone()),
                true => Ok(pre),
            })
            .context("linking the component: it must import only WASI")
            .map_err(Error::Setup)?;
        let (pre, indices) = match &task {
            None => ExportIndices::new(&full, None).map(|indices| (full, indices)),
            Some(task) => linker
                .instantiate_pre(task)
                .and_then(|pre| ExportIndices::new(&pre, Some(full)).map(|indices| (pre, indices))),
        }
        .context("finding the component's exports")
        .map_err(Error::Setup)?;
        let ticker = EpochTicker::start(&engine, options.epoch_tick)
            .context("starting the epoch ticker thread")
            .map_err(Error::Setup)?;
        let pool_max_memory = matches!(options.allocator, Allocator::Pooling { .. }).then_some(POOL_MAX_MEMORY_BYTES);
        let slots = match options.allocator {
            Allocator::Pooling { max_tenants, .. } => Some(TenantSlots::new(max_tenants)),
            Allocator::OnDemand => None,
        };
        Ok(Plugin {
            engine,
            component,
            pre,
            indices,
            ticker,
            pool_max_memory,
            slots,
            cache_status,
            #[cfg(feature = "blobstore")]
            blob_runtime,
        })
    }

    /// Whether the compiled component came from the cache.
    pub fn cache_status(&self) -> &CacheStatus {
        &self.cache_status
    }

    /// The engine the component was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// Names of everything the component imports (e.g. `wasi:filesystem/types@0.2.x`).
    pub fn import_names(&self) -> Vec<String> {
        self.component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Creates a tenant: its own store and instance, seeing only `config.dir`.
    /// Every setting of `config` is checked first: one out of its range is
    /// [`Error::Config`], naming the field and the range.
    pub fn tenant(&self, config: TenantConfig) -> Result<Tenant> {
        // The pool would refuse a growth beyond its slots before our limiter
        // could name it.
        let (max_memory, allocator) = match self.pool_max_memory {
            Some(pool_max) => (pool_max, "pooling"),
            None => (crate::config_check::MAX_MEMORY_BYTES, "on-demand"),
        };
        crate::config_check::check(&config, max_memory, allocator)?;
        let slot = self.slots.as_ref().map(|slots| slots.take()).transpose()?;
        let tenant = Tenant::new(
            &self.engine,
            &self.pre,
            &self.indices,
            &self.ticker,
            #[cfg(feature = "blobstore")]
            self.blob_runtime.as_ref(),
            config,
        )?;
        if let Some(slot) = slot {
            tenant.hold_slot(slot);
        }
        Ok(tenant)
    }

    /// A tenant whose instance has no preopened directory (tests only).
    #[cfg(test)]
    pub(crate) fn tenant_without_preopen(&self, config: TenantConfig) -> Result<Tenant> {
        Tenant::without_preopen(&self.engine, &self.pre, &self.indices, &self.ticker, config)
    }
}

/// Core instances, memories and tables a tenant's instances hold together
/// (a Rust wasip2 component has several core instances; a tenant has one
/// or two component instances).
const CORE_INSTANCES_PER_TENANT: u32 = 8;
/// The task side and, once a coordinator view or a file-merging manager is
/// opened, the full component beside it.
const COMPONENT_INSTANCES_PER_TENANT: u32 = 2;
const MEMORIES_PER_TENANT: u32 = 2;
const TABLES_PER_TENANT: u32 = 4;
/// Largest linear memory in the pool (and the address space reserved per
/// memory slot); also the largest `TenantConfig::max_memory_bytes` it allows.
const POOL_MAX_MEMORY_BYTES: usize = crate::limits::DEFAULT_MAX_MEMORY_BYTES;

/// Tables are small; this covers them whole.
const POOL_TABLE_KEEP_RESIDENT_BYTES: usize = 64 << 10;

fn check_epoch_tick(options: &PluginOptions) -> Result<()> {
    if options.epoch_tick.is_zero() {
        return Err(Error::Setup(wasmtime::format_err!(
            "the epoch tick must be longer than zero"
        )));
    }
    Ok(())
}

/// The engine configuration the plugin needs for `options`: the component
/// model, epoch interruption (every call into a tenant has a deadline) and,
/// for [`Allocator::Pooling`], the pool sized for the component. An
/// embedder that builds its own engine for [`Plugin::with_engine`] starts
/// from this `Config` and may add settings of its own.
pub fn engine_config(options: &PluginOptions) -> Result<Config> {
    check_epoch_tick(options)?;
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Bounded execution: every call gets a deadline (`TenantConfig::max_call_time`).
    config.epoch_interruption(true);
    if let Allocator::Pooling {
        max_tenants,
        keep_resident_bytes,
    } = options.allocator
    {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(max_tenants.saturating_mul(COMPONENT_INSTANCES_PER_TENANT))
            .total_core_instances(max_tenants.saturating_mul(CORE_INSTANCES_PER_TENANT))
            .total_memories(max_tenants.saturating_mul(MEMORIES_PER_TENANT))
            .total_tables(max_tenants.saturating_mul(TABLES_PER_TENANT))
            .max_memory_size(POOL_MAX_MEMORY_BYTES);
        // A freed slot's dirty pages are zeroed in place instead of being
        // returned to the kernel, so the next tenant in the slot does not take
        // a page fault for every page it touches. Without `pagemap_scan` that
        // reset zeroes the whole kept region at every drop, touched or not;
        // with it (Linux 6.7+, `PAGEMAP_SCAN`; elsewhere `Auto` falls back)
        // only the pages the tenant wrote are reset.
        pool.linear_memory_keep_resident(keep_resident_bytes)
            .table_keep_resident(POOL_TABLE_KEEP_RESIDENT_BYTES)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Each memory slot reserves this much address space; 4 GiB per slot
        // would exhaust it with thousands of tenants.
        config.memory_reservation(POOL_MAX_MEMORY_BYTES as u64);
        config.memory_guard_size(64 << 10);
    }
    Ok(config)
}

/// Compiles `bytes` (`what`, for the error), through the cache when
/// `options` names one.
fn compile(engine: &Engine, bytes: &[u8], options: &PluginOptions, what: &str) -> Result<(Component, CacheStatus)> {
    match &options.cache_dir {
        None => Component::new(engine, bytes).map(|component| (component, CacheStatus::Disabled)),
        Some(dir) => crate::cache::load_or_compile(engine, bytes, dir),
    }
    .with_context(|| format!("compiling {what}"))
    .map_err(Error::Setup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LocationReference, StateScope, StorageConfig};

    /// A pool with room for one component instance, shared, say, with
    /// other components: the instance beside cannot be made. The tenant's
    /// task side goes on, with its open stream; coordinator and
    /// file-merging calls fail with a clear error, every time.
    #[test]
    fn a_tenant_whose_instance_beside_cannot_be_made_goes_on() {
        let mut config = engine_config(&PluginOptions::default()).unwrap();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1)
            .total_core_instances(CORE_INSTANCES_PER_TENANT)
            .total_memories(MEMORIES_PER_TENANT)
            .total_tables(TABLES_PER_TENANT)
            .max_memory_size(POOL_MAX_MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config.memory_reservation(POOL_MAX_MEMORY_BYTES as u64);
        let engine = Engine::new(&config).unwrap();
        let options = PluginOptions::default();
        let task = Component::new(&engine, EMBEDDED_TASK_COMPONENT).unwrap();
        let full = Component::new(&engine, EMBEDDED_COMPONENT).unwrap();
        let plugin = Plugin::from_component(engine, full, Some(task), &options, CacheStatus::Disabled, false).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
        let job = "0123456789abcdef0123456789abcdef";
        let storage = StorageConfig::filesystem(job);
        std::fs::create_dir_all(dir.path().join(job).join("chk-1")).unwrap();
        let factory = tenant
            .open_worker_view(&storage)
            .unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        let mut open = factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap();
        open.write(&[1; 30_000]).unwrap();
        for _ in 0..2 {
            let e = tenant.open_coordinator_view(&storage, None).unwrap_err();
            assert!(matches!(e, Error::Setup(_)), "{e}");
            let text = e.to_string();
            assert!(text.contains("could not be instantiated beside"), "{text}");
            assert!(text.contains("the task side goes on"), "{text}");
            let e = tenant
                .open_file_merging_manager(&storage, "tm-1", &crate::FileMergingOptions::enabled())
                .unwrap_err();
            assert!(e.to_string().contains("could not be instantiated beside"), "{e}");
        }
        assert!(!tenant.is_poisoned());
        assert_eq!(tenant.poisoned_by_limit(), None);
        open.write(&[2; 30_000]).unwrap();
        let handle = open.close_and_get_handle().unwrap().unwrap();
        assert_eq!(tenant.read_state(&handle).unwrap(), [[1; 30_000], [2; 30_000]].concat());
    }
}
