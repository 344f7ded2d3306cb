//! Loading the component: one `Engine`, one compiled `Component` and one
//! `InstancePre` per process, shared by every tenant.

use crate::bindings::CheckpointStoragePre;
use crate::error::{Error, Result};
use crate::tenant::{Tenant, TenantConfig, TenantState};
use std::path::Path;
use wasmtime::component::{Component, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine allocates tenant instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocator {
    /// Memory is mapped per instance when a tenant is created.
    OnDemand,
    /// Slots for up to `max_tenants` live tenants are reserved up front;
    /// creating a tenant reuses a slot (faster start, denser tenants).
    Pooling { max_tenants: u32 },
}

/// Engine-wide options of the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    pub allocator: Allocator,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            allocator: Allocator::OnDemand,
        }
    }
}

/// Path of the component built by `build.rs`.
pub const COMPONENT_PATH: &str = env!("CHECKPOINT_STORAGE_COMPONENT");

/// The loaded plugin: compile once, instantiate per tenant.
#[derive(Clone)]
pub struct Plugin {
    engine: Engine,
    component: Component,
    pre: CheckpointStoragePre<TenantState>,
}

impl Plugin {
    /// Loads the component built with this crate.
    pub fn load() -> Result<Self> {
        Self::from_file(Path::new(COMPONENT_PATH))
    }

    /// Loads the component built with this crate, with engine options.
    pub fn load_with(options: &PluginOptions) -> Result<Self> {
        Self::from_file_with(Path::new(COMPONENT_PATH), options)
    }

    /// Loads (compiles) a component file.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &PluginOptions::default())
    }

    /// Loads (compiles) a component file with engine options.
    pub fn from_file_with(path: &Path, options: &PluginOptions) -> Result<Self> {
        let engine = Engine::new(&engine_config(options)).map_err(Error::Setup)?;
        let component = Component::from_file(&engine, path)
            .with_context(|| format!("compiling component {}", path.display()))
            .map_err(Error::Setup)?;
        Self::from_component(engine, component)
    }

    fn from_component(engine: Engine, component: Component) -> Result<Self> {
        let mut linker = Linker::<TenantState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::Setup)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(CheckpointStoragePre::new)
            .context("linking the component: it must import only WASI")
            .map_err(Error::Setup)?;
        Ok(Plugin { engine, component, pre })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

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
    pub fn tenant(&self, config: TenantConfig) -> Result<Tenant> {
        Tenant::new(&self.engine, &self.pre, config)
    }
}

/// Core instances, memories and tables one instance of our component holds
/// (a Rust wasip2 component has several core instances).
const CORE_INSTANCES_PER_TENANT: u32 = 8;
const MEMORIES_PER_TENANT: u32 = 2;
const TABLES_PER_TENANT: u32 = 4;

fn engine_config(options: &PluginOptions) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    if let Allocator::Pooling { max_tenants } = options.allocator {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(max_tenants)
            .total_core_instances(max_tenants.saturating_mul(CORE_INSTANCES_PER_TENANT))
            .total_memories(max_tenants.saturating_mul(MEMORIES_PER_TENANT))
            .total_tables(max_tenants.saturating_mul(TABLES_PER_TENANT))
            .max_memory_size(64 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Each memory slot reserves this much address space; 4 GiB per slot
        // would exhaust it with thousands of tenants.
        config.memory_reservation(64 << 20);
        config.memory_guard_size(64 << 10);
    }
    config
}
