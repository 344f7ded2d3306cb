//! A tenant: one `Store`, one instance and one preopened directory. This is
//! the one place where a tenant's sandbox is configured.

use crate::bindings::exports::flink::checkpoint_storage::{
    coordinator::Guest as CoordinatorGuest, restore::Guest as RestoreGuest,
};
use crate::bindings::{ExportIndices, Exports, NoInstanceBeside, Side};
use crate::error::{Error, Result};
use crate::limits::{
    DEFAULT_MAX_CALL_TIME, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_OPEN_STREAMS, DEFAULT_MAX_READ_STATE_BYTES,
    EpochTicker, LimitExceeded, MemoryLimiter, StreamPermit, Usage,
};
use crate::open_at::Created;
use crate::tenant_slots::TenantSlot;
use crate::worker_exports::WorkerExports;
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use wasmtime::component::InstancePre;
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use checkpoint_storage_core::layout::GUEST_MOUNT;

/// How to set up a tenant: its directory and its limits (see the README's
/// "Limits" section).
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// The host directory the tenant may use, and nothing else. Must exist.
    pub dir: PathBuf,
    /// Cap of each linear memory of the tenant, in bytes, from
    /// [`crate::MIN_MEMORY_BYTES`] to [`crate::MAX_MEMORY_BYTES`] (with the
    /// pooling allocator: to its slot size). An instance has one memory; a
    /// tenant of [`crate::Plugin::load`] has one instance, and a second
    /// (the full component) once it opens a coordinator view or a
    /// file-merging manager, each with this cap. Growing beyond it traps:
    /// [`LimitExceeded::Memory`], the instance is discarded.
    pub max_memory_bytes: usize,
    /// Wall-clock bound of one call into the tenant (epoch interruption).
    /// Exceeding it traps: [`LimitExceeded::ExecutionTime`], the instance is
    /// discarded. Longer than zero and at most [`crate::MAX_CALL_TIME`];
    /// rounded up to the plugin's epoch tick (`PluginOptions::epoch_tick`).
    pub max_call_time: Duration,
    /// Bound of the tenant's live streams (state output, metadata output and
    /// state input streams together: each holds guest memory and, once it
    /// has a file, a host file descriptor); one more is refused with
    /// [`LimitExceeded::OpenStreams`]. At least 1.
    pub max_open_streams: u32,
    /// Bound of the bytes passed to `StateOutputStream::write`,
    /// `StreamFactory::write_state` and `write_states`,
    /// `MergingStreamFactory::write_state` and `MetadataOutputStream::write`
    /// over the tenant's life (`None`: unbounded); a write beyond it is refused with
    /// [`LimitExceeded::BytesWritten`].
    pub max_bytes_written: Option<u64>,
    /// Bound of the bytes [`Tenant::read_state`] collects in host memory for
    /// one state; a larger state is refused with
    /// [`LimitExceeded::StateTooLarge`] before anything is read (read it in
    /// pieces with [`Tenant::open_input_stream`]).
    pub max_read_state_bytes: u64,
    /// Least privilege for restore-only users: the directory is preopened
    /// with read permission only, and every write, create, link, discard and
    /// duplicate is refused with `permission-denied` before it reaches the
    /// disk. Reading state and resolving checkpoints work.
    pub read_only: bool,
    /// Bytes of a state file after which the host asks the kernel to start
    /// writing them to the disk, without waiting ([`crate::writeback`]), so
    /// that the sync at the stream's close waits for the last window only;
    /// 0 leaves all of it to that sync. Default
    /// [`crate::writeback::DEFAULT_WINDOW`]. Linux only; elsewhere ignored.
    pub writeback_window: u64,
    /// Object storage build only: the containers the tenant may use (see
    /// [`crate::BlobGrant`]). A tenant of the blobstore plugin has grants and
    /// no directory (`dir` is empty); a filesystem tenant has none.
    #[cfg(feature = "blobstore")]
    pub blob_grants: Vec<crate::blobstore::BlobGrant>,
}

impl TenantConfig {
    /// A tenant of `dir` with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TenantConfig {
            dir: dir.into(),
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_call_time: DEFAULT_MAX_CALL_TIME,
            max_open_streams: DEFAULT_MAX_OPEN_STREAMS,
            max_bytes_written: None,
            max_read_state_bytes: DEFAULT_MAX_READ_STATE_BYTES,
            read_only: false,
            writeback_window: crate::writeback::DEFAULT_WINDOW,
            #[cfg(feature = "blobstore")]
            blob_grants: Vec::new(),
        }
    }

    /// A tenant of the blobstore plugin using `grants`, with the default limits.
    #[cfg(feature = "blobstore")]
    pub fn object_store(grants: Vec<crate::blobstore::BlobGrant>) -> Self {
        TenantConfig {
            blob_grants: grants,
            ..Self::new(PathBuf::new())
        }
    }

    /// Sets [`max_memory_bytes`](Self::max_memory_bytes).
    pub fn with_max_memory_bytes(mut self, bytes: usize) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// Sets [`max_call_time`](Self::max_call_time).
    pub fn with_max_call_time(mut self, limit: Duration) -> Self {
        self.max_call_time = limit;
        self
    }

    /// Sets [`max_open_streams`](Self::max_open_streams).
    pub fn with_max_open_streams(mut self, streams: u32) -> Self {
        self.max_open_streams = streams;
        self
    }

    /// Sets [`max_bytes_written`](Self::max_bytes_written).
    pub fn with_max_bytes_written(mut self, bytes: Option<u64>) -> Self {
        self.max_bytes_written = bytes;
        self
    }

    /// Sets [`max_read_state_bytes`](Self::max_read_state_bytes).
    pub fn with_max_read_state_bytes(mut self, bytes: u64) -> Self {
        self.max_read_state_bytes = bytes;
        self
    }

    /// Sets [`writeback_window`](Self::writeback_window).
    pub fn with_writeback_window(mut self, bytes: u64) -> Self {
        self.writeback_window = bytes;
        self
    }

    /// See [`TenantConfig::read_only`].
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

/// Whether WASI file I/O runs on the calling thread (no `spawn_blocking`
/// per call); also given to the descriptors `open_at` creates.
pub(crate) const ALLOW_BLOCKING_CURRENT_THREAD: bool = true;

/// Per-store state: the tenant's WASI context and resource table.
pub struct TenantState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    /// Files the instance created, removed if it traps while they are open.
    pub(crate) created: Created,
    /// `TenantConfig::writeback_window`, for the guest's writes.
    pub(crate) writeback_window: u64,
    #[cfg(feature = "blobstore")]
    blob: Option<crate::blobstore::BlobTenant>,
    /// `descriptor.write` calls served from guest memory in place (only
    /// tests read it: it shows the override is wired).
    #[cfg(test)]
    pub(crate) in_place_writes: u64,
}

impl TenantState {
    pub(crate) fn table(&self) -> &ResourceTable {
        &self.table
    }

    pub(crate) fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// After a trap: deletes the files the instance's open streams were
    /// writing (nothing can finish or discard them any more).
    fn remove_partial_files(&mut self, dir: &Path) {
        let removed = self.created.remove_open_files(&self.table);
        if removed > 0 {
            tracing::info!(dir = %dir.display(), removed, "removed the partial files of a trapped tenant's open streams");
        }
    }

    /// The blobstore host's view (only tenants of the blobstore plugin are
    /// linked to it, and each of them has blob state).
    #[cfg(feature = "blobstore")]
    pub(crate) fn blob_view(&mut self) -> crate::blobstore::BlobView<'_> {
        crate::blobstore::BlobView {
            table: &mut self.table,
            blob: self.blob.as_ref().expect("blobstore tenants have blob state"),
        }
    }
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
    exports: Exports,
    poisoned: bool,
    /// The limit whose breach poisoned the instance, if one did.
    poisoned_by: Option<LimitExceeded>,
    /// The pooling plugin's count of this tenant, given back after the
    /// store (declared after it, so dropped after it).
    slot: Option<TenantSlot>,
}

impl Inner {
    /// Marks the instance unusable after `trap`, removes the files its open
    /// streams were writing, and tells which limit, if any, the trap was.
    fn poison(
        &mut self,
        flag: &AtomicBool,
        dir: &Path,
        trap: &wasmtime::Error,
        max_call_time: Duration,
    ) -> Option<LimitExceeded> {
        self.poisoned = true;
        flag.store(true, Ordering::Release);
        self.store.data_mut().remove_partial_files(dir);
        let limit = classify_trap(&mut self.store, trap, max_call_time);
        self.poisoned_by = limit.clone();
        limit
    }

    /// Starts the wall-clock deadline of host I/O for one call (epoch
    /// interruption bounds guest code, not a host waiting on the network).
    fn begin_call(&mut self) {
        #[cfg(feature = "blobstore")]
        if let Some(blob) = &self.store.data().blob {
            blob.deadline.begin_call();
        }
    }

    #[cfg(test)]
    pub(crate) fn exports(&self) -> &Exports {
        &self.exports
    }

    pub(crate) fn worker(&mut self) -> wasmtime::Result<WorkerExports> {
        self.exports.worker(Side::Own, &mut self.store)
    }

    /// The `worker` functions of the instance beside (for the state output
    /// streams of a file-merging factory living there).
    pub(crate) fn worker_beside(&mut self) -> wasmtime::Result<WorkerExports> {
        self.exports.worker(Side::Beside, &mut self.store)
    }

    pub(crate) fn coordinator(&mut self) -> wasmtime::Result<CoordinatorGuest> {
        self.exports.coordinator(&mut self.store)
    }

    /// The instance the coordinator view and its resources live in.
    pub(crate) fn coordinator_side(&self) -> Side {
        self.exports.coordinator_side()
    }

    pub(crate) fn restore(&mut self) -> wasmtime::Result<RestoreGuest> {
        self.exports.restore(&mut self.store)
    }

    pub(crate) fn file_merging(
        &mut self,
    ) -> wasmtime::Result<crate::bindings::exports::flink::checkpoint_storage::file_merging::Guest> {
        self.exports.file_merging(&mut self.store)
    }

    /// The instance the file-merging manager and its resources live in.
    pub(crate) fn file_merging_side(&self) -> Side {
        self.exports.file_merging_side()
    }

    pub(crate) fn direct_io(
        &mut self,
    ) -> wasmtime::Result<crate::bindings::exports::flink::checkpoint_storage::direct_io::Guest> {
        self.exports.direct_io(Side::Own, &mut self.store)
    }

    pub(crate) fn direct_io_beside(
        &mut self,
    ) -> wasmtime::Result<crate::bindings::exports::flink::checkpoint_storage::direct_io::Guest> {
        self.exports.direct_io(Side::Beside, &mut self.store)
    }

    /// Whether the component of `side` exports `direct-io` (the filesystem
    /// build does; the object store build has no files to hand over).
    pub(crate) fn has_direct_io(&self, side: Side) -> bool {
        self.exports.has_direct_io(side)
    }

    /// Whether this tenant's components export `file-merging`.
    pub(crate) fn has_file_merging(&self) -> bool {
        self.exports.has_file_merging()
    }
}

/// A tenant's sandbox. Cheap to clone (shared); calls are serialised.
#[derive(Clone)]
pub struct Tenant {
    inner: Arc<Mutex<Inner>>,
    dir: Arc<PathBuf>,
    usage: Arc<Usage>,
    /// Held so the epoch keeps advancing while the tenant lives.
    _ticker: Arc<EpochTicker>,
    max_call_time: Duration,
    /// `max_call_time` in epoch ticks: the deadline set before every call.
    deadline: u64,
    max_read_state_bytes: u64,
    writeback_window: u64,
    /// Mirrors `Inner::poisoned` for checks that do not take the lock: a
    /// write the host batches or writes into a file itself must still be
    /// refused once the instance is gone.
    poisoned: Arc<AtomicBool>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Tenant {
    pub(crate) fn new(
        engine: &Engine,
        pre: &InstancePre<TenantState>,
        indices: &Arc<ExportIndices>,
        ticker: &Arc<EpochTicker>,
        #[cfg(feature = "blobstore")] blob_runtime: Option<&Arc<crate::blobstore::BlobRuntime>>,
        config: TenantConfig,
    ) -> Result<Self> {
        Self::instantiate(
            engine,
            pre,
            indices,
            ticker,
            #[cfg(feature = "blobstore")]
            blob_runtime,
            config,
            true,
        )
    }

    /// A tenant whose instance has no preopened directory at all (how the
    /// component answers a host that forgot it).
    #[cfg(test)]
    pub(crate) fn without_preopen(
        engine: &Engine,
        pre: &InstancePre<TenantState>,
        indices: &Arc<ExportIndices>,
        ticker: &Arc<EpochTicker>,
        config: TenantConfig,
    ) -> Result<Self> {
        Self::instantiate(
            engine,
            pre,
            indices,
            ticker,
            #[cfg(feature = "blobstore")]
            None,
            config,
            false,
        )
    }

    fn instantiate(
        engine: &Engine,
        pre: &InstancePre<TenantState>,
        indices: &Arc<ExportIndices>,
        ticker: &Arc<EpochTicker>,
        #[cfg(feature = "blobstore")] blob_runtime: Option<&Arc<crate::blobstore::BlobRuntime>>,
        config: TenantConfig,
        preopen: bool,
    ) -> Result<Self> {
        if config.max_call_time.is_zero() {
            return Err(Error::Setup(wasmtime::format_err!(
                "max_call_time must be longer than zero (instantiation runs guest code too)"
            )));
        }
        #[cfg(feature = "blobstore")]
        let blob = match (blob_runtime, config.blob_grants.is_empty()) {
            (Some(runtime), false) => {
                let deadline = crate::blobstore::Deadline::new(config.max_call_time);
                Some(
                    crate::blobstore::BlobTenant::new(&config.blob_grants, runtime.clone(), deadline)
                        .map_err(|e| Error::Setup(wasmtime::format_err!("blob grants: {e}")))?,
                )
            }
            (Some(_), true) => {
                return Err(Error::Setup(wasmtime::format_err!(
                    "a tenant of the blobstore plugin needs at least one container grant (TenantConfig::object_store)"
                )));
            }
            (None, false) => {
                return Err(Error::Setup(wasmtime::format_err!(
                    "container grants need the blobstore plugin (Plugin::load_blobstore_with); this plugin uses directories"
                )));
            }
            (None, true) => None,
        };
        #[cfg(feature = "blobstore")]
        let uses_dir = blob.is_none();
        #[cfg(not(feature = "blobstore"))]
        let uses_dir = true;
        let mut wasi = WasiCtxBuilder::new();
        // Must come before `preopened_dir`: it is captured per preopen. It lets
        // file I/O run on the calling thread (no spawn_blocking per write).
        wasi.allow_blocking_current_thread(ALLOW_BLOCKING_CURRENT_THREAD);
        let perms = if config.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        let dir = if uses_dir {
            // Made absolute without resolving symbolic links: `canonicalize` costs
            // a readlink per path component, and the preopen below resolves the
            // path once anyway; after that the tenant holds the directory itself,
            // not its name.
            // An absolute path is taken as it is: `absolute` would only drop
            // `.` components and repeated separators, work on every start for
            // nothing.
            let dir = if config.dir.is_absolute() {
                config.dir.clone()
            } else {
                std::path::absolute(&config.dir)
                    .with_context(|| format!("tenant directory {}", config.dir.display()))
                    .map_err(Error::Setup)?
            };
            if preopen {
                wasi.preopened_dir(&dir, GUEST_MOUNT, perms)
                .with_context(|| {
                    format!(
                        "opening tenant directory {}: it must be an existing directory this process can read and write",
                        dir.display()
                    )
                })
                .map_err(Error::Setup)?;
            }
            dir
        } else {
            PathBuf::new()
        };
        let state = TenantState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(config.max_memory_bytes),
            created: Created::default(),
            writeback_window: config.writeback_window,
            #[cfg(feature = "blobstore")]
            blob,
            #[cfg(test)]
            in_place_writes: 0,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        // Instantiation may run guest code too: same deadline as a call.
        let deadline = ticker.ticks_for(config.max_call_time);
        store.set_epoch_deadline(deadline);
        let instance = match pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => {
                return Err(match classify_trap(&mut store, &e, config.max_call_time) {
                    Some(limit) => Error::Limit(limit),
                    None => Error::Setup(e.context("instantiating the component")),
                });
            }
        };
        Ok(Tenant {
            inner: Arc::new(Mutex::new(Inner {
                store,
                exports: Exports::new(instance, indices.clone()),
                poisoned: false,
                poisoned_by: None,
                slot: None,
            })),
            dir: Arc::new(dir),
            usage: Usage::new(config.max_open_streams, config.max_bytes_written),
            _ticker: ticker.clone(),
            max_call_time: config.max_call_time,
            deadline,
            max_read_state_bytes: config.max_read_state_bytes,
            writeback_window: config.writeback_window,
            poisoned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Counts this tenant in its pooling plugin until its store is gone.
    pub(crate) fn hold_slot(&self, slot: TenantSlot) {
        self.lock().slot = Some(slot);
    }

    /// The host directory of this tenant: `TenantConfig::dir` made absolute
    /// (symbolic links in it are not resolved).
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

    /// `descriptor.write` calls the guest made through the in-place path.
    #[cfg(test)]
    pub(crate) fn in_place_writes(&self) -> u64 {
        self.lock().store.data().in_place_writes
    }

    /// Runs `f` on the tenant's store and instance (tests only).
    #[cfg(test)]
    pub(crate) fn with_inner<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.lock())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
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
        inner.store.set_epoch_deadline(self.deadline);
        inner.begin_call();
        match f(&mut inner) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::Storage(e)),
            Err(e) if e.downcast_ref::<NoInstanceBeside>().is_some() => {
                // A refusal of the instance beside's memory is no trap of
                // this tenant's: it must not name a later one.
                inner.store.data_mut().limiter.take_exceeded();
                Err(Error::Setup(e))
            }
            Err(trap) => {
                tracing::warn!(dir = %self.dir.display(), "tenant trapped: {trap:#}");
                match inner.poison(&self.poisoned, &self.dir, &trap, self.max_call_time) {
                    Some(limit) => Err(Error::Limit(limit)),
                    None => Err(Error::Trapped(trap)),
                }
            }
        }
    }

    /// `TenantConfig::writeback_window` of this tenant.
    pub(crate) fn writeback_window(&self) -> u64 {
        self.writeback_window
    }

    /// `TenantConfig::max_read_state_bytes` of this tenant.
    pub(crate) fn max_read_state_bytes(&self) -> u64 {
        self.max_read_state_bytes
    }

    /// Takes one of the tenant's stream slots (see `max_open_streams`).
    pub(crate) fn acquire_stream(&self) -> Result<StreamPermit> {
        Ok(self.usage.acquire_stream()?)
    }

    /// Streams of this tenant that are open (not yet dropped): state output,
    /// metadata output and state input streams.
    pub fn open_streams(&self) -> u32 {
        self.usage.open_streams()
    }

    /// Bytes accepted by `StateOutputStream::write`,
    /// `StreamFactory::write_state` and `write_states`,
    /// `MergingStreamFactory::write_state` and `MetadataOutputStream::write` over
    /// the tenant's life. With `max_bytes_written` set, every write counts
    /// when it is made; without, the small writes a stream holds back in its
    /// host-side batch count when the batch leaves the host (a larger write,
    /// a full batch, `flush`, `sync`, close or drop), so the figure lags by
    /// at most [`crate::DEFAULT_BATCH_SIZE`] (or the stream's batch size) per
    /// open stream.
    pub fn bytes_written(&self) -> u64 {
        self.usage.bytes_written()
    }

    /// Whether an earlier call trapped.
    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned
    }

    /// The limit whose breach poisoned the tenant: `None` while it is
    /// usable, and when a trap of another kind (a fault in the component)
    /// did. A destructor cannot return its error, so after
    /// [`Error::Poisoned`] this tells whether a drop was cut by a limit.
    pub fn poisoned_by_limit(&self) -> Option<LimitExceeded> {
        self.lock().poisoned_by.clone()
    }

    /// [`Err(Error::Poisoned)`](Error::Poisoned) once an earlier call
    /// trapped, without waiting for the tenant's running call.
    pub(crate) fn check_not_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// Drops a guest resource (runs its destructor). Errors are logged: a
    /// destructor cannot report, and a poisoned instance is gone anyway.
    pub(crate) fn drop_resource(&self, resource: ResourceAny) {
        let mut inner = self.lock();
        if inner.poisoned {
            return;
        }
        inner.store.set_epoch_deadline(self.deadline);
        inner.begin_call();
        if let Err(e) = resource.resource_drop(&mut inner.store) {
            tracing::warn!(dir = %self.dir.display(), "dropping a resource trapped: {e:#}");
            inner.poison(&self.poisoned, &self.dir, &e, self.max_call_time);
        }
    }
}

/// The limit behind a trap, if it was one: the memory limiter's refusal, or
/// the epoch deadline.
fn classify_trap(
    store: &mut Store<TenantState>,
    trap: &wasmtime::Error,
    max_call_time: Duration,
) -> Option<LimitExceeded> {
    if let Some(limit) = store.data_mut().limiter.take_exceeded() {
        return Some(limit);
    }
    if let Some(limit) = trap.downcast_ref::<LimitExceeded>() {
        return Some(limit.clone());
    }
    matches!(trap.downcast_ref::<Trap>(), Some(Trap::Interrupt))
        .then_some(LimitExceeded::ExecutionTime { limit: max_call_time })
}
