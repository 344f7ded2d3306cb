//! The tokio runtime the plugin owns for object store I/O, and the one way
//! tenant calls use it: run a future to completion on the runtime, bounded
//! by the deadline of the call into the tenant.
//!
//! The calling thread waits on a channel, not on `block_on`, so the host
//! works whether or not the embedder's thread is inside a runtime of its own.

use crate::blobstore::error::BlobError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Worker threads of the runtime: I/O bound work, shared by all tenants.
const WORKER_THREADS: usize = 2;

pub(crate) struct BlobRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlobRuntime {
    pub(crate) fn new() -> std::io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("cs-blobstore")
            .enable_all()
            .build()?;
        Ok(Arc::new(BlobRuntime { runtime: Some(runtime) }))
    }

    /// Runs `fut` on the runtime; gives up (dropping it) at `deadline`.
    pub(crate) fn run<T, F>(&self, deadline: &Deadline, fut: F) -> Result<T, BlobError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, BlobError>> + Send + 'static,
    {
        let (limit, remaining) = deadline.remaining();
        if remaining.is_zero() {
            return Err(BlobError::deadline(limit));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        runtime.spawn(async move {
            let result = match tokio::time::timeout(remaining, fut).await {
                Ok(r) => r,
                Err(_) => Err(BlobError::deadline(limit)),
            };
            let _ = tx.send(result);
        });
        // The task always sends (the timeout ends it); a closed channel
        // means the runtime is shutting down.
        rx.recv()
            .unwrap_or_else(|_| Err(BlobError::io("the object store runtime shut down")))
    }
}

impl BlobRuntime {
    /// Starts `fut` on the runtime and returns at once: clean-up that must
    /// not wait for a call (bounded by [`DETACHED_LIMIT`]; its result is
    /// dropped).
    pub(crate) fn detach<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(DETACHED_LIMIT, fut).await;
            });
        }
    }
}

/// How long detached clean-up may run.
const DETACHED_LIMIT: Duration = Duration::from_secs(60);

impl Drop for BlobRuntime {
    fn drop(&mut self) {
        // Never block the dropping thread on stray I/O.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The deadline of the current call into a tenant, shared with the
/// tenant's uploads (which run inside `wasi:io` stream calls).
#[derive(Clone)]
pub(crate) struct Deadline(Arc<Mutex<(Duration, Instant)>>);

impl Deadline {
    /// The deadline of calls that may take `call_limit`. Requests end at
    /// four fifths of it: the component needs the rest to turn the failure
    /// into an `io` error; were both to end together, the epoch interrupt
    /// would often win under load and discard the tenant instead.
    pub(crate) fn new(call_limit: Duration) -> Self {
        let limit = io_limit(call_limit);
        Deadline(Arc::new(Mutex::new((limit, Instant::now() + limit))))
    }

    /// Starts a call: its requests may take the I/O limit from now.
    pub(crate) fn begin_call(&self) {
        let mut d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        d.1 = Instant::now() + d.0;
    }

    /// Whether the current call has no time left for requests.
    pub(crate) fn is_over(&self) -> bool {
        self.remaining().1.is_zero()
    }

    /// (the I/O limit, the time left of it)
    fn remaining(&self) -> (Duration, Duration) {
        let d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (d.0, d.1.saturating_duration_since(Instant::now()))
    }
}

/// How long the requests of one call may take: four fifths of the call's
/// limit (see [`Deadline::new`]).
fn io_limit(call_limit: Duration) -> Duration {
    call_limit - call_limit / 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_leave_the_component_a_fifth_of_the_call() {
        assert_eq!(io_limit(Duration::from_millis(500)), Duration::from_millis(400));
        assert_eq!(io_limit(Duration::from_secs(30)), Duration::from_secs(24));
        assert_eq!(io_limit(Duration::from_nanos(1)), Duration::from_nanos(1));
        let d = Deadline::new(Duration::from_secs(10));
        let (limit, remaining) = d.remaining();
        assert_eq!(limit, Duration::from_secs(8));
        assert!(
            remaining <= limit && remaining > Duration::from_secs(7),
            "{remaining:?}"
        );
    }
}
