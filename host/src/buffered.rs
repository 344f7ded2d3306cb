//! Host-side batching of small writes to a state stream.
//!
//! Every [`StateOutputStream::write`] is a call into the component (a boundary
//! crossing plus a copy of the bytes), so a caller writing records of a few
//! bytes pays the boundary per record. [`BufferedStateOutputStream`] collects
//! small writes on the host side and crosses the boundary once per batch.
//! Writes of at least the batch size pass straight through (no extra copy).
//!
//! Batching changes nothing the guest decides: whether state ends inline or
//! in a file depends on the total size only, never on how it was chunked.

use crate::error::Result;
use crate::types::StateHandle;
use crate::worker::StateOutputStream;
use std::io;

/// Default batch size. Larger than the guest's default effective buffer
/// (20 KiB), so a full batch skips the guest's buffer and goes to the file
/// in one positional write.
pub const DEFAULT_BATCH_SIZE: usize = 64 * 1024;

/// A [`StateOutputStream`] with a host-side write batch. Dropping it without
/// [`close_and_get_handle`](Self::close_and_get_handle) discards the stream,
/// batched bytes included.
#[derive(Debug)]
pub struct BufferedStateOutputStream {
    inner: StateOutputStream,
    batch: Vec<u8>,
    capacity: usize,
    /// Bytes already handed to the guest: the position without a call.
    handed_over: u64,
}

impl BufferedStateOutputStream {
    /// Batches with [`DEFAULT_BATCH_SIZE`].
    pub fn new(inner: StateOutputStream) -> Self {
        Self::with_capacity(DEFAULT_BATCH_SIZE, inner)
    }

    /// Batches up to `capacity` bytes (at least 1) before calling the guest.
    pub fn with_capacity(capacity: usize, inner: StateOutputStream) -> Self {
        let capacity = capacity.max(1);
        BufferedStateOutputStream {
            inner,
            batch: Vec::with_capacity(capacity),
            capacity,
            handed_over: 0,
        }
    }

    /// Appends bytes; calls the guest only when the batch is full or `data`
    /// alone fills one.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        if data.len() <= self.capacity - self.batch.len() {
            self.batch.extend_from_slice(data);
            return Ok(());
        }
        self.hand_over()?;
        if data.len() >= self.capacity {
            self.handed_over += data.len() as u64;
            return self.inner.write(data);
        }
        self.batch.extend_from_slice(data);
        Ok(())
    }

    /// Number of bytes written so far (batched bytes included); no call.
    pub fn get_pos(&self) -> u64 {
        self.handed_over + self.batch.len() as u64
    }

    /// Hands the batch to the guest, then the guest's `flush`.
    pub fn flush(&mut self) -> Result<()> {
        self.hand_over()?;
        self.inner.flush()
    }

    /// Hands the batch to the guest, then the guest's `sync`.
    pub fn sync(&mut self) -> Result<()> {
        self.hand_over()?;
        self.inner.sync()
    }

    /// Hands the batch to the guest and finishes the stream.
    pub fn close_and_get_handle(mut self) -> Result<Option<StateHandle>> {
        self.hand_over()?;
        self.inner.close_and_get_handle()
    }

    /// The unbatched stream, after handing the batch to the guest.
    pub fn into_inner(mut self) -> Result<StateOutputStream> {
        self.hand_over()?;
        Ok(self.inner)
    }

    /// The unbatched stream (bytes still batched are not in it yet).
    pub fn get_ref(&self) -> &StateOutputStream {
        &self.inner
    }

    fn hand_over(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.handed_over += self.batch.len() as u64;
        // On failure the guest has discarded the stream; the batch is moot.
        let result = self.inner.write(&self.batch);
        self.batch.clear();
        result
    }
}

/// For callers that serialise state through `std::io::Write`. `flush` is the
/// guest's `flush`: small state stays in memory so it can still be inline.
impl io::Write for BufferedStateOutputStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        BufferedStateOutputStream::flush(self).map_err(io::Error::other)
    }
}
