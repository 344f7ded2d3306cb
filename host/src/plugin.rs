//! Loading the component: one `Engine`, one compiled `Component` and one
//! `InstancePre` per process, shared by every tenant.

use crate::bindings::CheckpointStoragePre;
use crate::error::{Error, Result};
use crate::tenant::{Tenant, TenantConfig, TenantState};
use std::path::Path;
use wasmtime::component::{Component, Linker};
use wasmtime::error::Context;
use wasmtime::{Config, Engine};

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

    /// Loads (compiles) a component file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let engine = Engine::new(&engine_config()).map_err(Error::Setup)?;
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

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config
}
