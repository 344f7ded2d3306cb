//! A tenant: one `Store`, one instance and one preopened directory. This is
//! the one place where a tenant's sandbox is configured.

use crate::bindings::{CheckpointStorage, CheckpointStoragePre};
use crate::error::{Error, Result};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Where the tenant's directory appears inside the sandbox.
pub const GUEST_MOUNT: &str = "/checkpoints";

/// How to set up a tenant.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// The host directory the tenant may use, and nothing else. Must exist.
    pub dir: PathBuf,
}

impl TenantConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TenantConfig { dir: dir.into() }
    }
}

/// Per-store state: the tenant's WASI context and resource table.
pub struct TenantState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for TenantState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store<TenantState>,
    pub(crate) bindings: CheckpointStorage,
    poisoned: bool,
}

/// A tenant's sandbox. Cheap to clone (shared); calls are serialised.
#[derive(Clone)]
pub struct Tenant {
    inner: Arc<Mutex<Inner>>,
    dir: Arc<PathBuf>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Tenant {
    pub(crate) fn new(engine: &Engine, pre: &CheckpointStoragePre<TenantState>, config: TenantConfig) -> Result<Self> {
        let dir = config
            .dir
            .canonicalize()
            .with_context(|| format!("tenant directory {}", config.dir.display()))
            .map_err(Error::Setup)?;
        let mut wasi = WasiCtxBuilder::new();
        // Must come before `preopened_dir`: it is captured per preopen. It lets
        // file I/O run on the calling thread (no spawn_blocking per write).
        wasi.allow_blocking_current_thread(true);
        wasi.preopened_dir(&dir, GUEST_MOUNT, FsPerms::ReadWrite)
            .map_err(Error::Setup)?;
        let state = TenantState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(engine, state);
        let bindings = pre
            .instantiate(&mut store)
            .context("instantiating the component")
            .map_err(Error::Setup)?;
        Ok(Tenant {
            inner: Arc::new(Mutex::new(Inner {
                store,
                bindings,
                poisoned: false,
            })),
            dir: Arc::new(dir),
        })
    }

    /// The host directory of this tenant.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host path of a guest path inside this tenant's directory, for
    /// display and for tests; `None` if the guest path is not inside it.
    pub fn host_path(&self, guest_path: &str) -> Option<PathBuf> {
        let rest = guest_path.strip_prefix(GUEST_MOUNT)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let rel = Path::new(rest.trim_start_matches('/'));
        if rel.components().any(|c| !matches!(c, PathComponent::Normal(_))) {
            return None;
        }
        Some(self.dir.join(rel))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the store as it was; the
        // poisoned flag (not the mutex's) decides whether it is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one call into the component. A trap poisons the tenant.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> wasmtime::Result<std::result::Result<T, crate::error::StorageError>>,
    ) -> Result<T> {
        let mut inner = self.lock();
        if inner.poisoned {
            return Err(Error::Poisoned);
        }
        match f(&mut inner) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::Storage(e)),
            Err(trap) => {
                inner.poisoned = true;
                tracing::warn!(dir = %self.dir.display(), "tenant trapped: {trap:#}");
                Err(Error::Trapped(trap))
            }
        }
    }

    /// Whether an earlier call trapped.
    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned
    }

    /// Drops a guest resource (runs its destructor). Errors are logged: a
    /// destructor cannot report, and a poisoned instance is gone anyway.
    pub(crate) fn drop_resource(&self, resource: ResourceAny) {
        let mut inner = self.lock();
        if inner.poisoned {
            return;
        }
        if let Err(e) = resource.resource_drop(&mut inner.store) {
            inner.poisoned = true;
            tracing::warn!(dir = %self.dir.display(), "dropping a resource trapped: {e:#}");
        }
    }
}
