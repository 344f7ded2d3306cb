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
    pub(crate) fn new(limit: Duration) -> Self {
        Deadline(Arc::new(Mutex::new((limit, Instant::now() + limit))))
    }

    /// Starts a call: it may take `limit` from now.
    pub(crate) fn begin_call(&self) {
        let mut d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        d.1 = Instant::now() + d.0;
    }

    fn remaining(&self) -> (Duration, Duration) {
        let d = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (d.0, d.1.saturating_duration_since(Instant::now()))
    }
}
