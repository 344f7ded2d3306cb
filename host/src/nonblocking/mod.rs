//! The async typed API (feature `tokio`): async twins of [`Tenant`],
//! [`WorkerView`](crate::WorkerView) and the rest, for hosts that run on
//! tokio (Spin, wasmCloud, most Rust services). No call blocks the
//! executor: each whole tenant call (the boundary crossing, the guest's file
//! I/O and its fsyncs) runs on tokio's blocking pool, one hop per call, and
//! the future awaits it. A tenant's calls stay serialised, as in the sync
//! API; different tenants run in parallel on the pool.
//!
//! Why not wasmtime's own async support: it would send every WASI file
//! operation of the guest through the blocking pool one by one, a thread
//! hop per write instead of one per call, and it would need a second
//! bindgen, linker and in-place write override.
//!
//! Rules the sync API does not have:
//! - Arguments are owned (`Vec<u8>`, [`StateHandle`], [`StorageConfig`]):
//!   they move to the blocking thread.
//! - A call whose future is dropped before it finishes (cancelled, e.g. by a
//!   timeout) still runs to its end. When that call hands out state handles
//!   (`close_and_get_handle`, `write_state`, `write_states`, `duplicate`) nobody can record
//!   them, so their files are discarded, as Flink discards the state of a
//!   cancelled snapshot (never a file the call was given: `duplicate` hands
//!   back a handle already in its target directory as it is).
//!   A view, location or stream a call opens is wrapped on the blocking
//!   thread: if nobody awaits it any more, it is dropped off the executor
//!   as well. A cancelled `close_and_finalize_checkpoint` may
//!   still complete the checkpoint.
//! - Dropping a value (a stream, a view) drops its guest resource on the
//!   blocking pool, not on the executor: a dropped output stream's file is
//!   deleted shortly after the drop, not during it. [`AsyncStateOutputStream::discard`]
//!   and [`AsyncMetadataOutputStream::discard`] do it and await it. Outside a
//!   runtime a drop runs on the dropping thread, as in the sync API.
//! - Concurrent calls on one value (e.g. two writes joined) reach the tenant
//!   in no particular order: await each write before the next.
//! - A call polled outside a tokio runtime fails with
//!   [`BlockingFailure::NoRuntime`].
//!
//! ```no_run
//! use checkpoint_storage_host::nonblocking::AsyncTenant;
//! use checkpoint_storage_host::{LocationReference, Plugin, StateScope, StorageConfig, TenantConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Runtime::new()?;
//! let plugin = Plugin::load()?;
//! runtime.block_on(async {
//!     let tenant = AsyncTenant::new(&plugin, TenantConfig::new("/var/lib/tenant-a")).await?;
//!     let job = "0123456789abcdef0123456789abcdef";
//!     let coordinator = tenant.open_coordinator_view(StorageConfig::filesystem(job), None).await?;
//!     coordinator.initialize_base_locations_for_checkpoint().await?;
//!     let location = coordinator.initialize_location_for_checkpoint(1).await?;
//!
//!     // A task writes its state.
//!     let view = tenant.open_worker_view(StorageConfig::filesystem(job)).await?;
//!     let factory = view
//!         .resolve_checkpoint_storage_location(1, location.location_reference().await?)
//!         .await?;
//!     let stream = factory.create_checkpoint_state_output_stream(StateScope::Exclusive).await?;
//!     stream.write(vec![7u8; 100_000]).await?;
//!     let handle = stream.close_and_get_handle().await?.expect("bytes were written");
//!
//!     // The coordinator completes the checkpoint; a restore reads it back.
//!     let metadata = location.create_metadata_output_stream().await?;
//!     metadata.write(b"my manifest naming the handle".to_vec()).await?;
//!     let done = metadata.close_and_finalize_checkpoint().await?;
//!     let found = coordinator.resolve_checkpoint(done.external_pointer).await?;
//!     assert_eq!(tenant.read_state(found.metadata).await?, b"my manifest naming the handle");
//!     assert_eq!(tenant.read_state(handle).await?, vec![7u8; 100_000]);
//!     Ok::<_, checkpoint_storage_host::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```

mod coordinator;
mod restore;
mod worker;

pub use coordinator::{AsyncCheckpointStorageLocation, AsyncCoordinatorView, AsyncMetadataOutputStream};
pub use restore::AsyncStateInputStream;
pub use worker::{AsyncCheckpointStateToolset, AsyncStateOutputStream, AsyncStreamFactory, AsyncWorkerView};

use crate::error::{Error, Result};
use crate::limits::LimitExceeded;
use crate::plugin::Plugin;
use crate::tenant::{Tenant, TenantConfig};
use crate::types::StateHandle;
use std::any::Any;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinError;

/// Why a call of the async API did not run to its end
/// ([`Error::Blocking`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingFailure {
    /// The call was polled outside a tokio runtime; nothing of it happened,
    /// except that a closing call (`close_and_get_handle`,
    /// `close_and_finalize_checkpoint`) consumed its stream, which is then
    /// dropped as any unfinished stream is (its file deleted).
    #[error("it was polled outside a tokio runtime; call it from within one (e.g. inside `Runtime::block_on`)")]
    NoRuntime,
    /// The runtime shut down before the call got a blocking thread; nothing
    /// of it happened.
    #[error("the runtime shut down before the call ran; retry on a running runtime")]
    Cancelled,
    /// The call panicked: a bug of this library. The tenant keeps its state;
    /// [`AsyncTenant::is_poisoned`] tells whether it can still be used.
    #[error("the call panicked ({message}); please report this bug")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

/// A tenant of the async API: a [`Tenant`] (cheap to clone, shared) whose
/// calls run on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct AsyncTenant(Tenant);

impl From<Tenant> for AsyncTenant {
    fn from(tenant: Tenant) -> Self {
        AsyncTenant(tenant)
    }
}

impl AsyncTenant {
    /// Creates a tenant of `plugin` ([`Plugin::tenant`]); instantiating the
    /// component runs on the blocking pool.
    pub async fn new(plugin: &Plugin, config: TenantConfig) -> Result<Self> {
        let plugin = plugin.clone();
        run(move || plugin.tenant(config)).await.map(AsyncTenant)
    }

    /// The sync tenant. Its `dir`, `host_path`, `open_streams` and
    /// `bytes_written` never block; its calls do (they wait for the
    /// tenant's running call), so make them only off the executor.
    pub fn tenant(&self) -> &Tenant {
        &self.0
    }

    /// The sync tenant, by value.
    pub fn into_inner(self) -> Tenant {
        self.0
    }

    /// Whether an earlier call trapped ([`Tenant::is_poisoned`]; it waits
    /// for the tenant's running call, hence async).
    pub async fn is_poisoned(&self) -> Result<bool> {
        let tenant = self.0.clone();
        run(move || Ok(tenant.is_poisoned())).await
    }

    /// The limit whose breach poisoned the tenant
    /// ([`Tenant::poisoned_by_limit`]; async for the same reason).
    pub async fn poisoned_by_limit(&self) -> Result<Option<LimitExceeded>> {
        let tenant = self.0.clone();
        run(move || Ok(tenant.poisoned_by_limit())).await
    }
}

/// Runs one tenant call on the blocking pool and awaits it. A cancelled
/// future leaves the call running to its end.
pub(crate) async fn run<T: Send + 'static>(call: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let runtime = Handle::try_current().map_err(|_| Error::Blocking(BlockingFailure::NoRuntime))?;
    runtime.spawn_blocking(call).await.map_err(join_failure)?
}

/// A blocking task that did not return: it panicked or never ran.
pub(crate) fn join_failure(e: JoinError) -> Error {
    Error::Blocking(match e.try_into_panic() {
        Ok(panic) => BlockingFailure::Panicked {
            message: panic_message(panic.as_ref()),
        },
        Err(_) => BlockingFailure::Cancelled,
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `job` on the blocking pool when a runtime is current (it may wait
/// for the tenant's lock and delete files), else on this thread.
fn off_executor(job: impl FnOnce() + Send + 'static) {
    match Handle::try_current() {
        // If the runtime is shutting down the job is dropped unrun, and with
        // it what it owns: the drop then happens here.
        Ok(runtime) => drop(runtime.spawn_blocking(job)),
        Err(_) => job(),
    }
}

/// A value of the sync API shared with the blocking tasks that call it. Its
/// last drop runs off the executor.
#[derive(Debug)]
pub(crate) struct Shared<T: Send + Sync + 'static>(Option<Arc<T>>);

impl<T: Send + Sync + 'static> Shared<T> {
    pub(crate) fn new(value: T) -> Self {
        Shared(Some(Arc::new(value)))
    }

    fn arc(&self) -> Arc<T> {
        // Only `into_arc` and `drop` take it, and both consume `self`.
        self.0.clone().expect("a shared value is present until consumed")
    }

    fn into_arc(mut self) -> Arc<T> {
        self.0.take().expect("a shared value is present until consumed")
    }

    /// One call on the value, on the blocking pool.
    pub(crate) async fn call<R: Send + 'static>(&self, f: impl FnOnce(&T) -> Result<R> + Send + 'static) -> Result<R> {
        let value = self.arc();
        run(move || f(&value)).await
    }

    /// A closing call: the value moves into it, so its last drop happens on
    /// the blocking thread after the call.
    pub(crate) async fn finish<R: Send + 'static>(self, f: impl FnOnce(&T) -> Result<R> + Send + 'static) -> Result<R> {
        let value = self.into_arc();
        run(move || f(&value)).await
    }

    /// A closing call that hands out state handles (see [`run_handing_out`]).
    pub(crate) async fn finish_handing_out<R: HandsOut>(
        self,
        tenant: &Tenant,
        f: impl FnOnce(&T) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let value = self.into_arc();
        run_handing_out(tenant, move || f(&value)).await
    }

    /// A call that hands out state handles (see [`run_handing_out`]).
    pub(crate) async fn call_handing_out<R: HandsOut>(
        &self,
        tenant: &Tenant,
        f: impl FnOnce(&T) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let value = self.arc();
        run_handing_out(tenant, move || f(&value)).await
    }

    /// Drops the value on the blocking pool and waits for it (if another
    /// call still holds it, that call's end drops it).
    pub(crate) async fn discard(self) -> Result<()> {
        let value = self.into_arc();
        run(move || {
            drop(value);
            Ok(())
        })
        .await
    }
}

impl<T: Send + Sync + 'static> Drop for Shared<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take().and_then(Arc::into_inner) {
            off_executor(move || drop(value));
        }
    }
}

/// The result of a call that hands out state handles. `Default` is the
/// result with none.
pub(crate) trait HandsOut: Default + Send + 'static {
    /// The handles, taken out of the result.
    fn into_handles(self) -> Vec<StateHandle>;
}

impl HandsOut for Option<StateHandle> {
    fn into_handles(self) -> Vec<StateHandle> {
        self.into_iter().collect()
    }
}

impl HandsOut for Vec<StateHandle> {
    fn into_handles(self) -> Vec<StateHandle> {
        self
    }
}

impl HandsOut for Vec<Result<Option<StateHandle>>> {
    fn into_handles(self) -> Vec<StateHandle> {
        self.into_iter().filter_map(|r| r.ok().flatten()).collect()
    }
}

/// What `duplicate` returned, with the files it was given: a handle already
/// in the target directory comes back as it is, and it is the caller's
/// original, so a cancelled call must not discard it.
#[derive(Default)]
pub(crate) struct Duplicates {
    handles: Vec<StateHandle>,
    originals: Vec<String>,
}

impl Duplicates {
    pub(crate) fn new(handles: Vec<StateHandle>, of: &[StateHandle]) -> Self {
        let originals = of.iter().filter_map(|h| h.file_path()).map(file_key).collect();
        Duplicates { handles, originals }
    }

    pub(crate) fn into_vec(self) -> Vec<StateHandle> {
        self.handles
    }
}

impl HandsOut for Duplicates {
    fn into_handles(self) -> Vec<StateHandle> {
        let originals = self.originals;
        self.handles
            .into_iter()
            .filter(|h| h.file_path().is_some_and(|p| !originals.contains(&file_key(p))))
            .collect()
    }
}

/// One spelling per file: a caller's handle may name its file as a `file:`
/// URI, an `s3://` URI or with redundant slashes, the component's answer in
/// its own canonical form.
fn file_key(path: &str) -> String {
    let guest = checkpoint_storage_core::object_uri::to_guest(path);
    match checkpoint_storage_core::paths::GuestPath::parse(&guest) {
        Ok(p) => p.to_string(),
        Err(_) => guest,
    }
}

/// Handles a call made that its caller has not taken yet. Dropped unclaimed
/// (the caller's future is gone) it discards their files: nobody can record
/// them any more.
struct Unclaimed<R: HandsOut> {
    value: R,
    tenant: Tenant,
}

impl<R: HandsOut> Unclaimed<R> {
    fn claim(mut self) -> R {
        std::mem::take(&mut self.value)
    }
}

impl<R: HandsOut> Drop for Unclaimed<R> {
    fn drop(&mut self) {
        let handles: Vec<StateHandle> = std::mem::take(&mut self.value)
            .into_handles()
            .into_iter()
            .filter(|h| h.file_path().is_some())
            .collect();
        if handles.is_empty() {
            return;
        }
        let tenant = self.tenant.clone();
        off_executor(move || {
            for handle in handles {
                if let Err(e) = tenant.discard_state(&handle) {
                    tracing::warn!(dir = %tenant.dir().display(), "discarding {handle} of a cancelled call: {e}");
                }
            }
        });
    }
}

/// [`run`] for a call that hands out state handles: if the caller's future
/// is dropped before it takes them, they are discarded.
async fn run_handing_out<R: HandsOut>(tenant: &Tenant, call: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    let runtime = Handle::try_current().map_err(|_| Error::Blocking(BlockingFailure::NoRuntime))?;
    let tenant = tenant.clone();
    let (tx, rx) = oneshot::channel();
    let task = runtime.spawn_blocking(move || {
        let result = call().map(|value| Unclaimed { value, tenant });
        // Refused when the caller is gone: the result drops here, unclaimed.
        let _ = tx.send(result);
    });
    match rx.await {
        Ok(result) => result.map(Unclaimed::claim),
        // The task ended without sending: it panicked or never ran.
        Err(_) => Err(match task.await {
            Err(e) => join_failure(e),
            Ok(()) => Error::Blocking(BlockingFailure::Cancelled),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    fn file(path: &str) -> StateHandle {
        StateHandle::File(crate::types::FileHandle {
            path: path.to_string(),
            size: 1,
        })
    }

    #[test]
    fn a_cancelled_duplicate_discards_only_the_files_it_made() {
        let given = [
            file("file:///checkpoints/j/shared/a"),
            file("s3://bucket/j/shared/b"),
            file("/checkpoints/j/chk-1/c"),
        ];
        let returned = vec![
            file("/checkpoints/j/shared/a"),
            file("s3://bucket/j/shared/b"),
            file("/checkpoints/j/shared/c"),
        ];
        let discarded = Duplicates::new(returned.clone(), &given).into_handles();
        assert_eq!(discarded, vec![file("/checkpoints/j/shared/c")]);
        assert_eq!(Duplicates::new(returned.clone(), &given).into_vec(), returned);
    }

    fn blocking_failure(e: Error) -> BlockingFailure {
        match e {
            Error::Blocking(f) => f,
            other => panic!("expected a blocking failure, got {other}"),
        }
    }

    #[test]
    fn a_call_polled_outside_a_runtime_is_refused_in_words() {
        let mut call = pin!(run(|| Ok(1)));
        let Poll::Ready(result) = call.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("outside a runtime the call is refused at once");
        };
        let e = result.unwrap_err();
        assert!(e.to_string().contains("outside a tokio runtime"), "{e}");
        assert_eq!(blocking_failure(e), BlockingFailure::NoRuntime);
    }

    #[test]
    fn a_panicking_call_is_a_typed_error_with_its_message() {
        let e = runtime()
            .block_on(run(|| -> Result<()> { panic!("boom in the call") }))
            .unwrap_err();
        assert_eq!(
            blocking_failure(e),
            BlockingFailure::Panicked {
                message: "boom in the call".into()
            }
        );
        let e = runtime()
            .block_on(run(|| -> Result<()> { std::panic::panic_any(7u8) }))
            .unwrap_err();
        assert_eq!(
            blocking_failure(e),
            BlockingFailure::Panicked {
                message: "a panic without a message".into()
            }
        );
    }

    #[test]
    fn a_task_that_never_ran_is_cancelled() {
        // A blocking task cannot be aborted once queued, but any aborted
        // task gives the runtime's "cancelled" join error, as a blocking
        // task dropped at shutdown does.
        let failure = runtime().block_on(async {
            let never = tokio::spawn(std::future::pending::<()>());
            never.abort();
            join_failure(never.await.unwrap_err())
        });
        assert_eq!(blocking_failure(failure), BlockingFailure::Cancelled);
    }
}
