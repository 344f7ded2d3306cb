//! One object being written by a tenant: the `outgoing-value` and its
//! `output-stream`. Bytes collect in a buffer; at `PART_SIZE` they spill
//! into a multipart upload, part by part. `finish` makes the object: one
//! conditional put (never overwriting) if it never spilled, else the last
//! part and the upload's completion. Dropped without `finish`, or failed,
//! the upload is aborted and no object appears.

use crate::blobstore::error::BlobError;
use crate::blobstore::runtime::{BlobRuntime, Deadline};
use bytes::Bytes;
use checkpoint_storage_core::sandbox::FsErrorKind;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, PutMode, PutOptions, PutPayload};
use std::sync::{Arc, Mutex};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Size of each part of a multipart upload (S3's smallest part but the last).
pub const PART_SIZE: usize = 5 << 20;
/// Bytes one stream `write` may pass (what `check-write` permits): keeps the
/// host buffer of one upload below `PART_SIZE + MAX_WRITE`.
pub const MAX_WRITE: usize = 1 << 20;

/// Where the object goes, once `write-data` named it.
pub(crate) struct Target {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) path: Path,
}

pub(crate) struct Upload {
    runtime: Arc<BlobRuntime>,
    deadline: Deadline,
    target: Option<Target>,
    buf: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
    failed: Option<BlobError>,
    finished: bool,
}

pub(crate) type SharedUpload = Arc<Mutex<Upload>>;

pub(crate) fn lock(u: &SharedUpload) -> std::sync::MutexGuard<'_, Upload> {
    u.lock().unwrap_or_else(|e| e.into_inner())
}

impl Upload {
    pub(crate) fn new(runtime: Arc<BlobRuntime>, deadline: Deadline) -> SharedUpload {
        Arc::new(Mutex::new(Upload {
            runtime,
            deadline,
            target: None,
            buf: Vec::new(),
            multipart: None,
            failed: None,
            finished: false,
        }))
    }

    /// `write-data`: names the object this value becomes.
    pub(crate) fn bind(&mut self, target: Target) -> Result<(), BlobError> {
        if self.target.is_some() {
            return Err(BlobError::new(
                FsErrorKind::Unsupported,
                "this outgoing value was already given to write-data; use a new value per object",
            ));
        }
        self.target = Some(target);
        Ok(())
    }

    fn target(&self) -> Result<&Target, BlobError> {
        self.target.as_ref().ok_or_else(|| {
            BlobError::new(
                FsErrorKind::Unsupported,
                "write-data must name the object before its body is written or finished",
            )
        })
    }

    /// Sends one full part (starting the multipart upload if needed).
    fn spill(&mut self) -> Result<(), BlobError> {
        let part = Bytes::from(std::mem::take(&mut self.buf));
        if self.multipart.is_none() {
            let t = self.target()?;
            let (store, path) = (t.store.clone(), t.path.clone());
            let what = format!("starting the upload of {path}");
            let mp = self.runtime.run(&self.deadline, async move {
                store.put_multipart(&path).await.map_err(|e| BlobError::store(&what, e))
            })?;
            self.multipart = Some(mp);
        }
        let part_future = self
            .multipart
            .as_mut()
            .expect("started above")
            .put_part(PutPayload::from(part));
        self.runtime.run(&self.deadline, async move {
            part_future.await.map_err(|e| BlobError::store("uploading a part", e))
        })
    }

    /// Appends bytes (a part goes out each time `PART_SIZE` collect).
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished {
            return Err(BlobError::io("the value is already finished"));
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= PART_SIZE
            && let Err(e) = self.spill()
        {
            self.fail(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// `finish`: makes the object, or fails and leaves none.
    pub(crate) fn finish(&mut self) -> Result<(), BlobError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.complete();
        match &result {
            Ok(()) => self.finished = true,
            Err(e) => self.fail(e.clone()),
        }
        result
    }

    fn complete(&mut self) -> Result<(), BlobError> {
        let t = self.target()?;
        let (store, path) = (t.store.clone(), t.path.clone());
        let last = Bytes::from(std::mem::take(&mut self.buf));
        match self.multipart.take() {
            None => {
                let what = format!("writing {path}");
                // Conditional: the object is created, never overwritten.
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                self.runtime.run(&self.deadline, async move {
                    store
                        .put_opts(&path, PutPayload::from(last), opts)
                        .await
                        .map(|_| ())
                        .map_err(|e| BlobError::store(&what, e))
                })
            }
            Some(mut mp) => {
                let last_part = (!last.is_empty()).then(|| mp.put_part(PutPayload::from(last)));
                let what = format!("completing the upload of {path}");
                self.runtime.run(&self.deadline, async move {
                    if let Some(part) = last_part {
                        part.await.map_err(|e| BlobError::store(&what, e))?;
                    }
                    mp.complete().await.map(|_| ()).map_err(|e| BlobError::store(&what, e))
                })
            }
        }
    }

    /// Ends the upload without an object.
    fn fail(&mut self, e: BlobError) {
        self.failed = Some(e);
        self.abort();
    }

    fn abort(&mut self) {
        self.buf = Vec::new();
        if let Some(mut mp) = self.multipart.take() {
            // Best effort: S3 also expires incomplete uploads by lifecycle
            // rule. Within the call's time the caller waits for it; after
            // (the upload failed at the deadline) it goes on in the
            // background, so the parts do not stay until that rule.
            let abort = async move { mp.abort().await.map_err(|e| BlobError::store("aborting an upload", e)) };
            if self.deadline.is_over() {
                self.runtime.detach(abort);
            } else {
                let _ = self.runtime.run(&self.deadline, abort);
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.finished {
            self.abort();
        }
    }
}

/// The `output-stream` of an outgoing value.
pub(crate) struct UploadStream(pub(crate) SharedUpload);

impl OutputStream for UploadStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > MAX_WRITE {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "wrote {} bytes where check-write permitted {MAX_WRITE}",
                bytes.len()
            )));
        }
        lock(&self.0)
            .write(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!("{}", e.wire())))
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Bytes are with the host once written; nothing to push further
        // until a part is full or the value is finished.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match &lock(&self.0).failed {
            Some(e) => Err(StreamError::LastOperationFailed(wasmtime::format_err!("{}", e.wire()))),
            None => Ok(MAX_WRITE),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for UploadStream {
    async fn ready(&mut self) {
        // Always writable: writes complete (or fail) within the call.
    }
}
