//! The `Sandbox` over `wasi:blobstore` containers (wasm32, feature
//! `blobstore`).
//!
//! A guest path `/<container>/<key>` names the object `<key>` of a container
//! the host granted. There are no directories: creating one does nothing, and
//! a "directory" is the prefix of the keys below it. A file is an upload: its
//! bytes stream to the host, which spills them into a multipart upload, and
//! it becomes an object only at `complete` (`outgoing-value.finish`);
//! dropped before that, the host aborts the upload and no object appears.

use crate::component::wasi::blobstore::blobstore::{copy_object, get_container};
use crate::component::wasi::blobstore::container::Container;
use crate::component::wasi::blobstore::types::{IncomingValue, ObjectId, OutgoingValue};
use crate::component::wasi::io0_2_1::streams::{OutputStream, StreamError};
use checkpoint_storage_core::blob_error;
use checkpoint_storage_core::paths::GuestPath;
use checkpoint_storage_core::sandbox::{EntryKind, FsError, FsErrorKind, ReadFile, Sandbox, Stat, StateFile};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Object names read per `read-stream-object-names` call.
const LIST_BATCH: u64 = 1000;

fn host_error(context: impl std::fmt::Display, error: String) -> FsError {
    FsError::new(blob_error::decode(&error), format!("{context}: {error}"))
}

fn stream_error(context: impl std::fmt::Display, error: StreamError) -> FsError {
    match error {
        StreamError::LastOperationFailed(e) => host_error(context, e.to_debug_string()),
        StreamError::Closed => FsError::new(FsErrorKind::Other, format!("{context}: the upload stream was closed")),
    }
}

/// The containers the host granted, looked up once each.
pub struct BlobSandbox {
    containers: RefCell<BTreeMap<String, Rc<Container>>>,
}

impl BlobSandbox {
    pub fn from_host() -> Self {
        BlobSandbox {
            containers: RefCell::new(BTreeMap::new()),
        }
    }

    fn container(&self, name: &str) -> Result<Rc<Container>, FsError> {
        if let Some(c) = self.containers.borrow().get(name) {
            return Ok(c.clone());
        }
        let c = Rc::new(get_container(name).map_err(|e| {
            let mut e = host_error(format_args!("container '{name}'"), e);
            if e.kind == FsErrorKind::NotFound {
                e.kind = FsErrorKind::PermissionDenied;
            }
            e
        })?);
        self.containers.borrow_mut().insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The container of `path` and the key below it (empty for the
    /// container itself).
    fn locate(&self, path: &GuestPath) -> Result<(Rc<Container>, String), FsError> {
        let rel = &path.as_str()[1..];
        let (name, key) = rel.split_once('/').unwrap_or((rel, ""));
        if name.is_empty() {
            return Err(FsError::new(
                FsErrorKind::PermissionDenied,
                format!("{path} names no container"),
            ));
        }
        Ok((self.container(name)?, key.to_string()))
    }

    fn locate_object(&self, path: &GuestPath) -> Result<(Rc<Container>, String), FsError> {
        let (c, key) = self.locate(path)?;
        if key.is_empty() {
            return Err(FsError::new(
                FsErrorKind::NotAFile,
                format!("{path} is a container, not an object in it"),
            ));
        }
        Ok((c, key))
    }

    /// Every object name of a container (the 0.2.0-draft lists no prefix).
    fn names(&self, c: &Container) -> Result<Vec<String>, FsError> {
        let stream = c.list_objects().map_err(|e| host_error("listing objects", e))?;
        let mut out = Vec::new();
        loop {
            let (batch, end) = stream
                .read_stream_object_names(LIST_BATCH)
                .map_err(|e| host_error("listing objects", e))?;
            out.extend(batch);
            if end {
                return Ok(out);
            }
        }
    }

    fn has_object(&self, c: &Container, key: &str, path: &GuestPath) -> Result<bool, FsError> {
        c.has_object(key)
            .map_err(|e| host_error(format_args!("checking {path}"), e))
    }

    fn copy(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        let (sc, skey) = self.locate_object(src)?;
        let (dc, dkey) = self.locate_object(dst)?;
        // Never overwrite: this host's copy refuses an existing target
        // itself; the check makes other hosts refuse too (with a race).
        if self.has_object(&dc, &dkey, dst)? {
            return Err(FsError::new(
                FsErrorKind::AlreadyExists,
                format!("{dst} already exists"),
            ));
        }
        let id = |c: &Container, key: String| -> Result<ObjectId, FsError> {
            Ok(ObjectId {
                container: c.name().map_err(|e| host_error("container name", e))?,
                object: key,
            })
        };
        copy_object(&id(&sc, skey)?, &id(&dc, dkey)?).map_err(|e| host_error(format_args!("copying {src} to {dst}"), e))
    }
}

/// An upload in progress. The stream is declared first: it must be dropped
/// before its outgoing value.
pub struct BlobFile {
    stream: Option<OutputStream>,
    value: Option<OutgoingValue>,
    path: String,
    written: u64,
}

impl StateFile for BlobFile {
    fn write_all_at(&mut self, mut data: &[u8], offset: u64) -> Result<(), FsError> {
        if offset != self.written {
            return Err(FsError::new(
                FsErrorKind::Unsupported,
                format!("{}: objects are written from start to end only", self.path),
            ));
        }
        let stream = self
            .stream
            .as_ref()
            .ok_or_else(|| FsError::new(FsErrorKind::Other, format!("{} is already complete", self.path)))?;
        let context = || format!("writing {}", self.path);
        while !data.is_empty() {
            let permitted = stream.check_write().map_err(|e| stream_error(context(), e))?;
            if permitted == 0 {
                stream.subscribe().block();
                continue;
            }
            let n = usize::try_from(permitted).unwrap_or(usize::MAX).min(data.len());
            stream.write(&data[..n]).map_err(|e| stream_error(context(), e))?;
            self.written += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn sync_data(&mut self) -> Result<(), FsError> {
        // Hands the bytes to the host; an object is durable only once complete.
        match &self.stream {
            Some(s) => s
                .blocking_flush()
                .map_err(|e| stream_error(format_args!("flushing {}", self.path), e)),
            None => Ok(()),
        }
    }

    fn is_linked(&self) -> Result<bool, FsError> {
        Ok(true)
    }

    fn complete(&mut self) -> Result<(), FsError> {
        drop(self.stream.take());
        match self.value.take() {
            Some(value) => {
                OutgoingValue::finish(value).map_err(|e| host_error(format_args!("completing {}", self.path), e))
            }
            None => Ok(()),
        }
    }
}

impl Drop for BlobFile {
    fn drop(&mut self) {
        // The stream goes before its parent value; the host aborts the upload.
        drop(self.stream.take());
        drop(self.value.take());
    }
}

/// An object being read: each read is one ranged `get-data`.
pub struct BlobReader {
    container: Rc<Container>,
    key: String,
    path: String,
    /// The size when opened: objects are written once, so it never changes.
    size: u64,
}

impl ReadFile for BlobReader {
    fn size(&self) -> Result<u64, FsError> {
        Ok(self.size)
    }

    fn read_at(&self, len: u64, offset: u64) -> Result<Vec<u8>, FsError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let context = || format!("reading {} at {offset}", self.path);
        let end = offset.saturating_add(len - 1); // inclusive
        let value = self
            .container
            .get_data(&self.key, offset, end)
            .map_err(|e| host_error(context(), e))?;
        IncomingValue::incoming_value_consume_sync(value).map_err(|e| host_error(context(), e))
    }
}

impl Sandbox for BlobSandbox {
    type File = BlobFile;
    type Reader = BlobReader;

    fn contains(&self, path: &GuestPath) -> bool {
        self.locate(path).is_ok()
    }

    fn create_new(&self, path: &GuestPath) -> Result<BlobFile, FsError> {
        let (c, key) = self.locate_object(path)?;
        let value = OutgoingValue::new_outgoing_value();
        c.write_data(&key, &value)
            .map_err(|e| host_error(format_args!("creating {path}"), e))?;
        let stream = value.outgoing_value_write_body().map_err(|()| {
            FsError::new(
                FsErrorKind::Other,
                format!("creating {path}: the host gave no upload stream"),
            )
        })?;
        Ok(BlobFile {
            stream: Some(stream),
            value: Some(value),
            path: path.to_string(),
            written: 0,
        })
    }

    fn remove_file(&self, path: &GuestPath) -> Result<(), FsError> {
        let (c, key) = self.locate_object(path)?;
        c.delete_object(&key)
            .map_err(|e| host_error(format_args!("deleting {path}"), e))
    }

    fn hard_link(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        self.copy(src, dst)
    }

    fn copy_file(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        self.copy(src, dst)
    }

    fn stat(&self, path: &GuestPath) -> Result<Stat, FsError> {
        let (c, key) = self.locate(path)?;
        if key.is_empty() {
            return Ok(Stat {
                kind: EntryKind::Directory,
                size: 0,
            });
        }
        // Objects first (one request); a "directory" needs a listing. Some
        // S3 servers fail (rather than miss) the object check of a key that
        // is also a prefix, so a failed check falls back to the listing too.
        let checked = self.has_object(&c, &key, path);
        if let Ok(true) = checked {
            let info = c
                .object_info(&key)
                .map_err(|e| host_error(format_args!("stat {path}"), e))?;
            return Ok(Stat {
                kind: EntryKind::File,
                size: info.size,
            });
        }
        let prefix = format!("{key}/");
        if self.names(&c)?.iter().any(|n| n.starts_with(&prefix)) {
            return Ok(Stat {
                kind: EntryKind::Directory,
                size: 0,
            });
        }
        checked?;
        Err(FsError::new(FsErrorKind::NotFound, format!("{path} does not exist")))
    }

    fn open_read(&self, path: &GuestPath) -> Result<BlobReader, FsError> {
        let (c, key) = self.locate_object(path)?;
        // One request both checks that the object exists (a missing one is
        // `not-found`) and fixes the size the reader reports.
        let info = c
            .object_info(&key)
            .map_err(|e| host_error(format_args!("opening {path}"), e))?;
        Ok(BlobReader {
            container: c,
            key,
            path: path.to_string(),
            size: info.size,
        })
    }

    fn create_dir(&self, _path: &GuestPath) -> Result<(), FsError> {
        Ok(())
    }

    fn remove_dir(&self, _path: &GuestPath) -> Result<(), FsError> {
        Ok(())
    }

    fn list_dir(&self, path: &GuestPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let (c, key) = self.locate(path)?;
        let prefix = if key.is_empty() {
            String::new()
        } else {
            format!("{key}/")
        };
        let mut entries: Vec<(String, EntryKind)> = Vec::new();
        for name in self.names(&c)? {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let entry = match rest.split_once('/') {
                Some((dir, _)) => (dir.to_string(), EntryKind::Directory),
                None => (rest.to_string(), EntryKind::File),
            };
            if !entry.0.is_empty() && !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            return Err(FsError::new(FsErrorKind::NotFound, format!("{path} does not exist")));
        }
        Ok(entries)
    }

    fn has_directories(&self) -> bool {
        false
    }

    fn random_bytes(&self) -> [u8; 16] {
        let bytes = wasip2::random::random::get_random_bytes(16);
        let mut out = [0u8; 16];
        out.copy_from_slice(&bytes[..16]);
        out
    }
}
