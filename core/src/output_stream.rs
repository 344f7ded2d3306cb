//! Checkpoint state output streams (Flink's `FsCheckpointStateOutputStream`
//! and `MemoryCheckpointOutputStream`).
//!
//! Policy of the filesystem stream: bytes collect in a buffer of the
//! effective buffer size (>= threshold). Only when the buffer would overflow,
//! or `flush` is called with more than the threshold buffered, is a file with
//! a random UUID name created (never overwriting) and the buffer written to
//! it. So a stream that wrote at most the threshold never has a file and ends
//! as an inline handle, however the caller chunked its writes (Flink decides
//! by write size here; we decide by total size, see README "Decisions").
//! Any failure, and dropping the stream without a handle, deletes the file.

use crate::entropy::Entropy;
use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::StateHandle;
use crate::paths::GuestPath;
use crate::sandbox::{FsErrorKind, HostHandle, Sandbox, StateFile, UuidName};
use std::rc::Rc;

/// Flink's number of attempts to find an unused random file name.
const CREATE_ATTEMPTS: usize = 10;

/// Flink's error of a stream that could not be finished, naming where it
/// was writing (the stream is discarded by then).
pub(crate) fn close_failed(target: &str, e: StorageError) -> StorageError {
    StorageError::new(
        e.code,
        format!(
            "Could not flush to file and close the file system output stream to {target} in order to obtain the stream state handle: {}",
            e.message
        ),
    )
}

/// The operations of a state stream, for both backends.
pub trait CheckpointStateOutputStream {
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// `write` of bytes the caller gives away; a stream may keep them
    /// without a copy (the component receives every write as its own).
    fn write_owned(&mut self, data: Vec<u8>) -> Result<()> {
        self.write(&data)
    }
    fn pos(&self) -> u64;
    fn flush(&mut self) -> Result<()>;
    fn sync(&mut self) -> Result<()>;
    fn close_and_get_handle(&mut self) -> Result<Option<StateHandle>>;
    /// Discards the stream: deletes its file, if any. Idempotent, never fails.
    fn discard(&mut self);
    /// Neither closed, discarded nor failed.
    fn is_open(&self) -> bool;

    /// Whether the host may write the next `len` bytes into the stream's
    /// file itself (see [`DirectWrite`]). Streams that never hand their file
    /// over (the memory backend, file merging) answer `Never` while open.
    fn prepare_direct_write(&mut self, len: u64) -> Result<DirectWrite> {
        let _ = len;
        refuse_if_closed(self.is_open(), "prepare a direct write")?;
        Ok(DirectWrite::Never)
    }

    /// The host wrote `written` more bytes at the end of the file since the
    /// last `Ready` or `advance`: they become part of the stream.
    fn advance(&mut self, written: u64) -> Result<()> {
        let _ = written;
        refuse_if_closed(self.is_open(), "advance")?;
        Err(StorageError::invalid_argument(
            "advance: this stream never hands its file to the host, so the host wrote nothing into it; write through `write`",
        ))
    }
}

/// The `closed` error every stream gives for `operation` once it is closed.
fn refuse_if_closed(open: bool, operation: &str) -> Result<()> {
    if open {
        return Ok(());
    }
    Err(StorageError::closed(format!(
        "Cannot {operation}: the stream is closed (it returned its handle, was discarded, or failed). Open a new stream."
    )))
}

/// The answer to [`CheckpointStateOutputStream::prepare_direct_write`].
///
/// The stream keeps its position, its threshold decision and its file; it
/// only lets the host put bytes at the end of the file with a handle of its
/// own, and learns of them through `advance` before any other operation.
pub enum DirectWrite {
    /// Write these bytes through `write`: the stream would buffer them (no
    /// file is needed yet, so the state may still end inline).
    Copy,
    /// This stream never hands its file over: always write through `write`.
    Never,
    /// The stream's buffer is in its file; the host may write at `offset`
    /// and on, then `advance`. `file` is the handle to write with, given the
    /// first time only (the host keeps it for the stream's life).
    Ready { offset: u64, file: Option<HostHandle> },
}

impl std::fmt::Debug for DirectWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectWrite::Copy => f.write_str("Copy"),
            DirectWrite::Never => f.write_str("Never"),
            DirectWrite::Ready { offset, file } => f
                .debug_struct("Ready")
                .field("offset", offset)
                .field("file", &file.is_some())
                .finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// `close-and-get-handle` found nothing written; asking again gives none.
    FinishedEmpty,
    /// A handle was returned, or the stream was discarded or failed.
    Closed,
}

struct OpenFile<F> {
    file: F,
    path: GuestPath,
    name: UuidName,
    /// Bytes already written to the file.
    len: u64,
}

/// A stream writing into a directory of the tenant's sandbox.
pub struct FsOutputStream<S: Sandbox> {
    sandbox: Rc<S>,
    dir: GuestPath,
    threshold: usize,
    buffer_size: usize,
    /// Exclusive state: return `relative-file` handles.
    relative_handles: bool,
    buf: Vec<u8>,
    file: Option<OpenFile<S::File>>,
    phase: Phase,
    /// Object storage: the marker in a new file's key becomes random
    /// characters.
    entropy: Option<Entropy>,
    /// How far the host writes into the file itself.
    host: HostWrites,
}

/// The stream's side of direct writes by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostWrites {
    /// The host has no handle of the file yet.
    NoHandle,
    /// The host has a handle; `ready`: the buffer is empty, so the host may
    /// append at the end of the file (until the stream buffers again).
    Handed { ready: bool },
    /// The environment gives no handle: everything goes through `write`.
    Unavailable,
}

impl<S: Sandbox> FsOutputStream<S> {
    /// `buffer_size` must be at least `threshold` (the config guarantees it).
    pub fn new(sandbox: Rc<S>, dir: GuestPath, threshold: usize, buffer_size: usize, relative_handles: bool) -> Self {
        debug_assert!(buffer_size >= threshold);
        FsOutputStream {
            sandbox,
            dir,
            threshold,
            buffer_size,
            relative_handles,
            buf: Vec::new(),
            file: None,
            phase: Phase::Open,
            entropy: None,
            host: HostWrites::NoHandle,
        }
    }

    /// Injects entropy into the key of the file the stream creates.
    pub fn with_entropy(mut self, entropy: Option<Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// The file's guest path once one was created (for tests and display).
    pub fn file_path(&self) -> Option<&GuestPath> {
        self.file.as_ref().map(|f| &f.path)
    }

    fn check_open(&self, operation: &str) -> Result<()> {
        refuse_if_closed(self.phase == Phase::Open, operation)
    }

    /// Creates the file with a fresh UUID name, retrying on name clashes.
    fn ensure_file(&mut self) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..CREATE_ATTEMPTS {
            let name = self.sandbox.random_uuid();
            let path = self.dir.join(&name);
            let path = match &self.entropy {
                Some(e) if e.is_injecting(path.as_str()) => {
                    let injected = e.inject(path.as_str(), &mut || self.sandbox.random_bytes());
                    crate::access::entropy_path(&*self.sandbox, &injected)?
                }
                _ => path,
            };
            match self.sandbox.create_new(&path) {
                Ok(file) => {
                    self.file = Some(OpenFile {
                        file,
                        path,
                        name,
                        len: 0,
                    });
                    return Ok(());
                }
                Err(e) if e.kind == FsErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    let hint = match e.kind {
                        FsErrorKind::NotFound => {
                            " (the directory does not exist: the coordinator creates checkpoint directories before tasks write into them)"
                        }
                        _ => "",
                    };
                    return Err(StorageError::from_fs(
                        format!(
                            "Could not open output stream for state backend in directory {}{hint}",
                            self.dir
                        ),
                        &e,
                    ));
                }
            }
        }
        let e = last.expect("at least one attempt");
        Err(StorageError::from_fs(
            format!(
                "Could not open output stream for state backend: {CREATE_ATTEMPTS} random file names in {} were all taken",
                self.dir
            ),
            &e,
        ))
    }

    /// Writes `data` at the end of the file.
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let f = self.file.as_mut().expect("file exists");
        f.file
            .write_all_at(data, f.len)
            .map_err(|e| StorageError::from_fs(format!("Could not write state to {}", f.path), &e))?;
        f.len += data.len() as u64;
        Ok(())
    }

    /// Creates the file if needed and writes the buffer to it.
    fn flush_to_file(&mut self) -> Result<()> {
        self.ensure_file()?;
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let result = self.append(&buf);
            self.buf = buf;
            self.buf.clear();
            result?;
        }
        Ok(())
    }

    /// Ends the stream after a failure: the partial file goes away.
    fn fail(&mut self, e: StorageError) -> StorageError {
        self.discard();
        e
    }

    /// What every write does first: refuse a closed stream, and take back
    /// the host's leave to append (buffered bytes come before any it adds).
    fn start_write(&mut self) -> Result<()> {
        self.check_open("write")?;
        if let HostWrites::Handed { ready } = &mut self.host {
            *ready = false;
        }
        Ok(())
    }

    fn write_inner(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() <= self.buffer_size {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        // The buffer overflows: from here on the state lives in a file.
        self.buf.reserve(self.buffer_size.saturating_sub(self.buf.len()));
        if data.len() >= self.buffer_size {
            self.flush_to_file()?;
            return self.append(data);
        }
        let room = self.buffer_size - self.buf.len();
        self.buf.extend_from_slice(&data[..room]);
        self.flush_to_file()?;
        self.buf.extend_from_slice(&data[room..]);
        Ok(())
    }

    fn close_to_file(&mut self) -> Result<StateHandle> {
        self.flush_to_file()?;
        let f = self.file.as_mut().expect("file exists");
        f.file
            .sync_data()
            .map_err(|e| StorageError::from_fs(format!("Could not sync {}", f.path), &e))?;
        f.file
            .complete()
            .map_err(|e| StorageError::from_fs(format!("Could not complete {}", f.path), &e))?;
        let linked = f
            .file
            .is_linked()
            .map_err(|e| StorageError::from_fs(format!("Could not check {}", f.path), &e))?;
        if !linked {
            return Err(StorageError::new(
                ErrorCode::NotFound,
                format!(
                    "the state file {} was deleted while the stream was open (was its directory removed?); its bytes cannot be read back, so no handle is returned. Write the state again into an existing directory.",
                    f.path
                ),
            ));
        }
        let named = self
            .sandbox
            .names_file(&f.path, &f.file)
            .map_err(|e| StorageError::from_fs(format!("Could not check {}", f.path), &e))?;
        if !named {
            // Its name now belongs to another file (or none): deleting the
            // name on discard would hit that file, so the file is let go.
            let f = self.file.take().expect("file exists");
            return Err(StorageError::new(
                ErrorCode::NotFound,
                format!(
                    "the state file {} was moved away while the stream was open (was its directory renamed?); the path no longer names the bytes written, so no handle is returned. Write the state again.",
                    f.path
                ),
            ));
        }
        // The file's name must be as durable as its bytes before a handle
        // names it: a crash after the handle is used must not lose the name.
        self.sandbox
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::from_fs(format!("Could not sync the directory {}", self.dir), &e))?;
        let f = self.file.take().expect("file exists");
        let path = f.path.into_string();
        Ok(if self.relative_handles {
            StateHandle::RelativeFile {
                path,
                relative_path: f.name.as_str().to_owned(),
                size: f.len,
            }
        } else {
            StateHandle::File { path, size: f.len }
        })
    }
}

impl<S: Sandbox> CheckpointStateOutputStream for FsOutputStream<S> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.start_write()?;
        self.write_inner(data).map_err(|e| self.fail(e))
    }

    fn write_owned(&mut self, data: Vec<u8>) -> Result<()> {
        self.start_write()?;
        if self.buf.capacity() == 0 && data.len() <= self.buffer_size {
            // The buffer would begin as a copy of `data`: it takes `data`.
            self.buf = data;
            return Ok(());
        }
        self.write_inner(&data).map_err(|e| self.fail(e))
    }

    fn prepare_direct_write(&mut self, len: u64) -> Result<DirectWrite> {
        self.check_open("write")?;
        if self.host == HostWrites::Unavailable {
            return Ok(DirectWrite::Never);
        }
        if (self.buf.len() as u64).saturating_add(len) <= self.buffer_size as u64 {
            return Ok(DirectWrite::Copy);
        }
        // The write would overflow the buffer, so it goes to the file: the
        // file is created (its failures are the write's) and takes the buffer.
        self.flush_to_file().map_err(|e| self.fail(e))?;
        let f = self.file.as_ref().expect("file exists");
        let file = match self.host {
            HostWrites::Handed { .. } => None,
            _ => match self.sandbox.host_write_handle(&f.path, &f.file) {
                Ok(Some(handle)) => Some(handle),
                // No handle (or none that is surely this file): the bytes
                // take the copying path, which fails or not as it always did.
                Ok(None) | Err(_) => {
                    self.host = HostWrites::Unavailable;
                    return Ok(DirectWrite::Never);
                }
            },
        };
        self.host = HostWrites::Handed { ready: true };
        Ok(DirectWrite::Ready { offset: f.len, file })
    }

    fn advance(&mut self, written: u64) -> Result<()> {
        self.check_open("advance")?;
        let f = match (&self.host, self.file.as_mut()) {
            (HostWrites::Handed { ready: true }, Some(f)) => f,
            _ => {
                return Err(StorageError::invalid_argument(
                    "advance: no direct write is prepared (the stream has buffered bytes since, or never handed its file over); call prepare-direct-write first",
                ));
            }
        };
        f.len = f.len.checked_add(written).ok_or_else(|| {
            StorageError::invalid_argument(format!(
                "advance: {written} more bytes would take the file past the largest size"
            ))
        })?;
        Ok(())
    }

    fn pos(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.len) + self.buf.len() as u64
    }

    fn flush(&mut self) -> Result<()> {
        self.check_open("flush")?;
        // Small state stays in memory so it can still become an inline handle.
        if self.file.is_some() || self.buf.len() > self.threshold {
            self.flush_to_file().map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(f) = self.file.as_mut() {
            let r = f
                .file
                .sync_data()
                .map_err(|e| StorageError::from_fs(format!("Could not sync {}", f.path), &e));
            r.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn close_and_get_handle(&mut self) -> Result<Option<StateHandle>> {
        match self.phase {
            Phase::FinishedEmpty => return Ok(None),
            Phase::Closed => {
                return Err(StorageError::closed("Stream has already been closed and discarded."));
            }
            Phase::Open => {}
        }
        if self.file.is_none() {
            if self.buf.is_empty() {
                self.phase = Phase::FinishedEmpty;
                return Ok(None);
            }
            if self.buf.len() <= self.threshold {
                self.phase = Phase::Closed;
                let name = self.dir.join(&self.sandbox.random_uuid()).into_string();
                return Ok(Some(StateHandle::ByteStream {
                    name,
                    data: std::mem::take(&mut self.buf),
                }));
            }
        }
        match self.close_to_file() {
            Ok(handle) => {
                self.phase = Phase::Closed;
                self.buf = Vec::new();
                Ok(Some(handle))
            }
            Err(e) => {
                let target = self
                    .file
                    .as_ref()
                    .map_or_else(|| self.dir.to_string(), |f| f.path.to_string());
                self.discard();
                Err(close_failed(&target, e))
            }
        }
    }

    fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    fn discard(&mut self) {
        self.phase = Phase::Closed;
        self.buf = Vec::new();
        if let Some(f) = self.file.take() {
            drop(f.file);
            // Best effort, as Flink: nothing else can be done about a failed delete.
            let _ = self.sandbox.remove_file(&f.path);
        }
    }
}

impl<S: Sandbox> Drop for FsOutputStream<S> {
    fn drop(&mut self) {
        if self.phase == Phase::Open {
            self.discard();
        }
    }
}

/// A stream of the memory backend: all state inline, bounded by a maximum.
pub struct MemoryOutputStream {
    max_size: usize,
    buf: Vec<u8>,
    name: String,
    phase: Phase,
}

impl MemoryOutputStream {
    /// `name` is the handle's name (a random UUID).
    pub fn new(max_size: usize, name: String) -> Self {
        MemoryOutputStream {
            max_size,
            buf: Vec::new(),
            name,
            phase: Phase::Open,
        }
    }

    /// Bytes the buffer has room for (for tests of its growth).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn too_large(&self, size: usize) -> StorageError {
        StorageError::new(
            ErrorCode::StateTooLarge,
            format!(
                "Size of the state is larger than the maximum permitted memory-backed state. Size={size} , maxSize={} . Consider using a different state backend, like the File System State backend.",
                self.max_size
            ),
        )
    }
}

impl CheckpointStateOutputStream for MemoryOutputStream {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.phase != Phase::Open {
            return Err(StorageError::closed("stream has already been closed"));
        }
        // Checked while writing (Flink checks at close) so that one stream
        // cannot fill the sandbox's memory before it is refused.
        let size = self.buf.len().saturating_add(data.len());
        if size > self.max_size {
            let e = self.too_large(size);
            self.discard();
            return Err(e);
        }
        if size > self.buf.capacity() {
            // Grow geometrically but never past the maximum: a stream's
            // buffer stays within `max_size` of the sandbox's capped memory.
            let target = size.max(self.buf.capacity().saturating_mul(2)).min(self.max_size);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn pos(&self) -> u64 {
        self.buf.len() as u64
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(())
    }

    fn close_and_get_handle(&mut self) -> Result<Option<StateHandle>> {
        match self.phase {
            Phase::FinishedEmpty => Ok(None),
            Phase::Closed => Err(StorageError::closed("stream has already been closed")),
            Phase::Open if self.buf.is_empty() => {
                self.phase = Phase::FinishedEmpty;
                Ok(None)
            }
            Phase::Open => {
                self.phase = Phase::Closed;
                Ok(Some(StateHandle::ByteStream {
                    name: std::mem::take(&mut self.name),
                    data: std::mem::take(&mut self.buf),
                }))
            }
        }
    }

    fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    fn discard(&mut self) {
        self.phase = Phase::Closed;
        self.buf = Vec::new();
    }
}
