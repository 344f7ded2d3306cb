//! [`BufferedStateOutputStream`]: kept for callers written against it.
//!
//! [`StateOutputStream::write`] batches small writes on the host by itself
//! (see `output_stream.rs`) and implements `std::io::Write` itself, so this
//! is a thin wrapper now: a position without a call and a batch size.

use crate::error::Result;
use crate::types::StateHandle;
use crate::worker::StateOutputStream;
use std::io;

/// A [`StateOutputStream`] with a position known without a call and
/// `std::io::Write`. Dropping it without
/// [`close_and_get_handle`](Self::close_and_get_handle) discards the stream,
/// batched bytes included.
#[derive(Debug)]
pub struct BufferedStateOutputStream {
    inner: StateOutputStream,
    /// Bytes accepted by `append`: the position without a call.
    written: u64,
}

impl BufferedStateOutputStream {
    /// Batches with the stream's batch size ([`crate::DEFAULT_BATCH_SIZE`]
    /// unless set).
    pub fn new(inner: StateOutputStream) -> Self {
        BufferedStateOutputStream { inner, written: 0 }
    }

    /// Batches writes smaller than `capacity` bytes
    /// ([`StateOutputStream::with_batch_size`]).
    pub fn with_capacity(capacity: usize, inner: StateOutputStream) -> Self {
        Self::new(inner.with_batch_size(capacity))
    }

    /// Appends bytes ([`StateOutputStream::write`]).
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        self.inner.write(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Number of bytes appended through this wrapper (batched bytes
    /// included); no call. Wrap a stream before writing to it for its
    /// position.
    pub fn get_pos(&self) -> u64 {
        self.written
    }

    /// [`StateOutputStream::flush`].
    pub fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }

    /// [`StateOutputStream::sync`].
    pub fn sync(&mut self) -> Result<()> {
        self.inner.sync()
    }

    /// Finishes the stream ([`StateOutputStream::close_and_get_handle`]).
    pub fn close_and_get_handle(self) -> Result<Option<StateHandle>> {
        self.inner.close_and_get_handle()
    }

    /// The stream itself (it batches on its own).
    pub fn into_inner(self) -> Result<StateOutputStream> {
        Ok(self.inner)
    }

    /// The stream itself.
    pub fn get_ref(&self) -> &StateOutputStream {
        &self.inner
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
