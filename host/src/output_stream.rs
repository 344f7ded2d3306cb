//! [`StateOutputStream`]: the typed API over the WIT `state-output-stream`,
//! with host-side batching of small writes.
//!
//! Every call into the component is a boundary crossing plus a copy of the
//! bytes into guest memory, so a caller writing records of a few bytes would
//! pay the boundary per record. The stream therefore collects small writes
//! in a host-side batch and hands them to the guest together. Nothing the
//! guest decides changes: whether state ends inline or in a file depends on
//! its total size only, never on how it was chunked. What must stay exact
//! is kept exact:
//! - the write at which the guest's stream changes course: the memory
//!   backend's maximum state size (beyond it the write fails with
//!   `state-too-large`) and the filesystem backend's effective buffer size
//!   (beyond it the guest creates the stream's file, which may fail, e.g.
//!   with `not-found` for a missing directory). The host knows both from the
//!   configuration the view was opened with and hands the write that
//!   crosses them on at once (after the batch), so that very write succeeds
//!   or fails as it would unbatched;
//! - the position: the guest's plus what is batched;
//! - the tenant's byte limit: every write is counted (or refused) when it is
//!   made, batched or not; bytes the guest later refuses are taken back.
//!   Without a limit, the count of batched bytes waits until their batch
//!   leaves the host (or the stream is dropped): one atomic operation per
//!   batch instead of one per write (atomic operations are a large part of
//!   what a small write costs); `Tenant::bytes_written` then lags by at most
//!   the batch of each open stream;
//! - a poisoned tenant refuses every write.
//!
//! Once the guest has refused anything (a closed, failed or discarded
//! stream), every call goes straight to it, so it answers as it always did.
//!
//! Large writes skip guest memory altogether: once the stream's state lives
//! in a file, the guest hands the host a descriptor of that file (one the
//! guest opened itself on the file it created; WIT `prepare-direct-write`)
//! and the host writes the caller's bytes, and its batches, straight into
//! it at the end of the file, telling the guest how many with `advance`
//! before any other call. The guest keeps the position, the inline-or-file
//! decision and the file (its close syncs it, its discard deletes it). A
//! failed direct write is done again through the guest, which then fails it
//! (and discards the stream) exactly as it would have. Streams that do not
//! hand their file over (memory backend, file merging) take the copying
//! path as before.

use crate::bindings::exports::flink::checkpoint_storage::direct_io::DirectAnswer;
use crate::direct_io;
use crate::error::Result;
use crate::limits::StreamPermit;
use crate::resource::{Owned, pieces};
use crate::types::StateHandle;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default batch size: larger than the guest's default effective buffer
/// (20 KiB), so a full batch skips the guest's buffer and goes to the file
/// in one positional write. Writes of at least this size are not batched.
pub const DEFAULT_BATCH_SIZE: usize = 64 * 1024;

/// Smallest write for which the host asks the guest for its file before
/// the stream writes directly: below it, the copy into guest memory costs
/// less than the extra call. Once direct, every write is.
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// A state output stream. Dropping it without `close_and_get_handle`
/// discards it (its file is deleted, batched bytes are dropped). It holds
/// one of its tenant's stream slots until dropped (fields drop in order: the
/// guest resource first).
#[derive(Debug)]
pub struct StateOutputStream {
    io: Io,
    /// A mutex because the async API shares streams (`Arc`); calls on one
    /// stream are serialised anyway. `write` takes `&mut self` and reaches
    /// it without locking (`Mutex::get_mut`): a lock and an unlock per
    /// write were most of the write function's own time on small writes.
    writes: Mutex<Writes>,
}

/// A stream's writes, reached without locking: the `&mut` excludes any
/// other caller. (A function of the field, not of the stream, so that the
/// stream's `io` can be borrowed beside it.)
fn unlocked(writes: &mut Mutex<Writes>) -> &mut Writes {
    writes.get_mut().unwrap_or_else(|e| e.into_inner())
}

/// What a stream's calls reach: its guest resource and its tenant's count.
#[derive(Debug)]
struct Io {
    owned: Owned,
    permit: StreamPermit,
}

/// What the host holds back of a stream's writes.
#[derive(Debug)]
struct Writes {
    batch: Vec<u8>,
    /// Writes smaller than this are batched.
    batch_size: usize,
    /// Bytes the guest accepted, for the boundary check.
    handed_over: u64,
    /// `StorageConfig::exact_boundary` until a write crossed it.
    boundary: Option<u64>,
    /// The guest refused a call or the stream was closed: nothing is held
    /// back any more, every call goes to the guest.
    pass_through: bool,
    /// The stream's file as the guest handed it over, for direct writes.
    file: Option<Arc<File>>,
    direct: Direct,
}

impl Writes {
    /// The guest refused a call or the stream is closed: from now on every
    /// call goes to the guest, and the host writes nothing itself.
    fn stop(&mut self) {
        self.pass_through = true;
        self.direct = Direct::Never;
        self.file = None;
    }
}

/// How the host's writes reach the stream's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direct {
    /// Through the guest; ask before the next large write.
    Unasked,
    /// Through the guest, always: the stream never hands its file over.
    Never,
    /// Straight into the file: `offset` is where the guest's file ends,
    /// `unreported` what the host wrote after it since the last `advance`.
    Writing { offset: u64, unreported: u64 },
}

impl StateOutputStream {
    /// A stream resource of the worker or file-merging interface.
    /// `boundary` is `StorageConfig::exact_boundary` of the configuration
    /// the stream's view was opened with.
    pub(crate) fn new(owned: Owned, permit: StreamPermit, boundary: u64) -> Self {
        StateOutputStream {
            io: Io { owned, permit },
            writes: Mutex::new(Writes {
                batch: Vec::new(),
                batch_size: DEFAULT_BATCH_SIZE,
                handed_over: 0,
                boundary: Some(boundary),
                pass_through: false,
                file: None,
                direct: Direct::Unasked,
            }),
        }
    }

    /// Batches writes smaller than `bytes` (default [`DEFAULT_BATCH_SIZE`];
    /// 0 or 1 batches nothing: every write is handed on at once; at most
    /// [`crate::MAX_BYTES_PER_CALL`], larger sizes count as it, since the
    /// batch is held in host memory).
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        unlocked(&mut self.writes).batch_size = bytes.min(crate::MAX_BYTES_PER_CALL);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Writes> {
        // A panic while holding the lock leaves at worst a batch the guest
        // has not seen; the stream is still consistent for the next call.
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `data`. Small writes are batched on the host (see the module
    /// docs); larger ones, and full batches, go straight into the stream's
    /// file once it has one, else to the guest in calls of at most
    /// [`crate::MAX_BYTES_PER_CALL`] bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.io.write(unlocked(&mut self.writes), data)
    }

    /// [`write`](Self::write) on a stream that is shared (the async API
    /// holds it in an `Arc`).
    #[cfg(feature = "tokio")]
    pub(crate) fn write_shared(&self, data: &[u8]) -> Result<()> {
        self.io.write(&mut self.lock(), data)
    }

    /// Bytes written so far (batched bytes included).
    pub fn get_pos(&self) -> Result<u64> {
        let w = self.lock();
        if let Direct::Writing { offset, unreported } = w.direct
            && !w.pass_through
        {
            // The guest's buffer is empty: its position is its file's end.
            self.io.owned.tenant.check_not_poisoned()?;
            return Ok(offset + unreported + w.batch.len() as u64);
        }
        let batched = w.batch.len() as u64;
        self.io
            .owned
            .call_infallible(|g, i, r| position(g.state_output_stream().call_get_pos(&mut i.store, r)?, batched))
    }

    /// Hands the batch to the guest, then writes buffered bytes to the file
    /// if there is one or the state is over the threshold; small state stays
    /// in memory. (A file-merging stream writes only into a physical file it
    /// already has: its flush creates none.)
    pub fn flush(&self) -> Result<()> {
        let mut w = self.lock();
        self.io.after_hand_over(&mut w, || {
            self.io
                .owned
                .call(|g, i, r| g.state_output_stream().call_flush(&mut i.store, r))
        })
    }

    /// [`flush`](Self::flush), then makes the file's data durable.
    pub fn sync(&self) -> Result<()> {
        let mut w = self.lock();
        self.io.after_hand_over(&mut w, || {
            self.io
                .owned
                .call(|g, i, r| g.state_output_stream().call_sync(&mut i.store, r))
        })
    }

    /// Hands the batch to the guest and finishes the stream; `None` if
    /// nothing was written.
    pub fn close_and_get_handle(self) -> Result<Option<StateHandle>> {
        self.close_shared()
    }

    /// [`close_and_get_handle`](Self::close_and_get_handle) of a stream that
    /// is shared (the async API holds it in an `Arc`); later calls on it get
    /// `closed` from the component.
    pub(crate) fn close_shared(&self) -> Result<Option<StateHandle>> {
        let mut w = self.lock();
        let result = self.io.after_hand_over(&mut w, || {
            self.io
                .owned
                .call(|g, i, r| g.state_output_stream().call_close_and_get_handle(&mut i.store, r))
        });
        w.stop();
        result
    }
}

/// For callers that serialise state through `std::io::Write` (`write!`,
/// serde's writers, `io::copy`). A refused write is an `io::Error` whose
/// inner error is the [`crate::Error`] (`get_ref()` + `downcast_ref`).
/// `flush` is the component's `flush`: small state stays in memory so it
/// can still be inline.
impl std::io::Write for StateOutputStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        StateOutputStream::write(self, buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        StateOutputStream::flush(self).map_err(std::io::Error::other)
    }
}

/// Bytes dropped in a batch were accepted by `write`: they count as
/// written (a tenant with a byte limit counted them when they were made).
impl Drop for StateOutputStream {
    fn drop(&mut self) {
        let batched = unlocked(&mut self.writes).batch.len();
        self.io.permit.count_handed(batched);
    }
}

impl Io {
    /// [`StateOutputStream::write`].
    fn write(&self, w: &mut Writes, data: &[u8]) -> Result<()> {
        if w.pass_through {
            return self.permit.metered_write(data.len(), || self.guest_write(w, data));
        }
        self.owned.tenant.check_not_poisoned()?;
        if data.is_empty() {
            return Ok(());
        }
        self.permit.reserve_held(data.len())?;
        let result = self.write_held_back(w, data);
        if result.is_err() {
            self.permit.release_held(data.len());
        }
        result
    }

    /// The write of an open stream, its bytes reserved if its tenant
    /// counts each write.
    fn write_held_back(&self, w: &mut Writes, data: &[u8]) -> Result<()> {
        let len = data.len() as u64;
        if let Some(boundary) = w.boundary
            && w.handed_over + w.batch.len() as u64 + len > boundary
        {
            // The guest must see the write that crosses it, and succeed or
            // fail with it itself (its messages name sizes and paths).
            w.boundary = None;
            self.hand_over(w)?;
            return self.send(w, data);
        }
        if w.batch.len() + data.len() < w.batch_size {
            if w.batch.capacity() == 0 {
                w.batch.reserve_exact(w.batch_size);
            }
            w.batch.extend_from_slice(data);
            return Ok(());
        }
        self.hand_over(w)?;
        if data.len() >= w.batch_size {
            return self.send(w, data);
        }
        w.batch.extend_from_slice(data);
        Ok(())
    }

    /// Hands the batch to the guest. On failure its bytes, refused by the
    /// guest, no longer count against the tenant's limit (without a limit
    /// they were never counted).
    fn hand_over(&self, w: &mut Writes) -> Result<()> {
        if w.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut w.batch);
        let result = self.send(w, &batch);
        if result.is_err() {
            self.permit.release_held(batch.len());
        }
        w.batch = batch;
        w.batch.clear();
        result
    }

    /// Writes `data` (a batch or a write held back no longer) into the
    /// stream's file, and counts it if its tenant counts writes only once
    /// they leave the host.
    fn send(&self, w: &mut Writes, data: &[u8]) -> Result<()> {
        let result = self.send_uncounted(w, data);
        if result.is_ok() {
            self.permit.count_handed(data.len());
        }
        result
    }

    /// Writes `data` into the stream's file directly when the guest allows
    /// it, else through the guest.
    fn send_uncounted(&self, w: &mut Writes, data: &[u8]) -> Result<()> {
        if w.direct == Direct::Unasked && data.len() >= DIRECT_WRITE_MIN {
            self.ask_direct(w, data.len())?;
        }
        if let (Direct::Writing { offset, unreported }, Some(file)) = (&mut w.direct, &w.file) {
            let at = *offset + *unreported;
            match direct_io::write_all_at(file, data, at) {
                Ok(()) => {
                    crate::writeback::after_write(file, self.owned.tenant.writeback_window(), at, data.len() as u64);
                    *unreported += data.len() as u64;
                    w.handed_over += data.len() as u64;
                    return Ok(());
                }
                Err(e) => {
                    // The guest writes the same bytes at the same place and
                    // reports a failure its own way (discarding the stream).
                    tracing::debug!("a direct write failed ({e}); writing through the component");
                    self.report(w)?;
                    w.direct = Direct::Never;
                    w.file = None;
                }
            }
        }
        self.guest_write(w, data)
    }

    /// Asks the guest whether the next `len` bytes may go straight into
    /// its file.
    fn ask_direct(&self, w: &mut Writes, len: usize) -> Result<()> {
        if !self.owned.tenant.lock().has_direct_io(self.owned.side) {
            // The object store build: there is no file to hand over.
            w.direct = Direct::Never;
            return Ok(());
        }
        let answer = self.owned.call_direct_io(|g, i, r| {
            let answer = g.call_prepare_direct_write(&mut i.store, r, len as u64)?;
            // The descriptor leaves the tenant's table in any case: the host
            // keeps the file itself, and nothing of the guest refers to it.
            Ok(answer.map(|(answer, file)| {
                let file = file.and_then(|f| direct_io::take_file(i.store.data_mut().table_mut(), f, true));
                (answer, file)
            }))
        });
        let (answer, file) = answer.inspect_err(|_| w.stop())?;
        if let Some(file) = file {
            w.file = Some(file);
        }
        w.direct = direct_after(answer, w.file.is_some());
        Ok(())
    }

    /// Tells the guest what the host wrote into its file since the last
    /// report; before any other call on the stream.
    fn report(&self, w: &mut Writes) -> Result<()> {
        let Direct::Writing { offset, unreported } = &mut w.direct else {
            return Ok(());
        };
        if *unreported == 0 {
            return Ok(());
        }
        let written = *unreported;
        let result = self
            .owned
            .call_direct_io(|g, i, r| g.call_advance(&mut i.store, r, written));
        match result {
            Ok(()) => {
                *offset += written;
                *unreported = 0;
            }
            Err(_) => w.stop(),
        }
        result
    }

    /// `write` calls into the guest (at most [`crate::MAX_BYTES_PER_CALL`]
    /// bytes each).
    fn guest_write(&self, w: &mut Writes, data: &[u8]) -> Result<()> {
        let result = pieces(data).try_for_each(|piece| {
            self.owned
                .call(|g, i, r| g.state_output_stream().call_write(&mut i.store, r, piece))
        });
        match result {
            Ok(()) => w.handed_over += data.len() as u64,
            Err(_) => w.stop(),
        }
        result
    }

    /// Runs a guest call on the stream after its batch was handed over.
    fn after_hand_over<T>(&self, w: &mut Writes, call: impl FnOnce() -> Result<T>) -> Result<T> {
        // Before the batch: the host would write it into the file itself,
        // and a trap has already removed that file.
        let result = self
            .owned
            .tenant
            .check_not_poisoned()
            .and_then(|()| self.hand_over(w))
            .and_then(|()| self.report(w))
            .and_then(|()| call());
        if result.is_err() {
            w.stop();
        }
        result
    }
}

/// The stream's position: the component's plus the host's batch. A
/// position no stream can reach breaks the component's contract: treated
/// as a trap (the tenant is poisoned), never added up.
fn position(guest: u64, batched: u64) -> wasmtime::Result<u64> {
    guest
        .checked_add(batched)
        .filter(|p| *p <= i64::MAX as u64)
        .ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "the component broke its contract: `get-pos` answered {guest}, past the largest file offset"
            ))
        })
}

/// How writes go after the component's answer to `prepare-direct-write`.
fn direct_after(answer: DirectAnswer, has_file: bool) -> Direct {
    match answer {
        DirectAnswer::Copy => Direct::Unasked,
        // An end past what a file offset can be is no file the component
        // wrote: keep writing through it (and the host's offset arithmetic
        // never overflows).
        DirectAnswer::Ready(offset) if has_file && offset <= i64::MAX as u64 => {
            Direct::Writing { offset, unreported: 0 }
        }
        DirectAnswer::Ready(_) | DirectAnswer::Never => Direct::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::{Direct, DirectAnswer, direct_after, position};

    #[test]
    fn a_position_past_the_largest_offset_breaks_the_contract() {
        assert_eq!(position(10, 5).unwrap(), 15);
        assert_eq!(position(i64::MAX as u64 - 5, 5).unwrap(), i64::MAX as u64);
        for (guest, batched) in [(u64::MAX, 1), (i64::MAX as u64, 1), (u64::MAX, 0)] {
            let e = position(guest, batched).unwrap_err();
            assert!(e.to_string().contains("broke its contract"), "{e}");
            assert!(e.to_string().contains(&guest.to_string()), "{e}");
        }
    }

    #[test]
    fn a_direct_write_answer_no_file_can_have_keeps_writes_with_the_component() {
        let max = i64::MAX as u64;
        assert_eq!(
            direct_after(DirectAnswer::Ready(max), true),
            Direct::Writing {
                offset: max,
                unreported: 0
            }
        );
        assert_eq!(direct_after(DirectAnswer::Ready(max + 1), true), Direct::Never);
        assert_eq!(direct_after(DirectAnswer::Ready(u64::MAX), true), Direct::Never);
        assert_eq!(
            direct_after(DirectAnswer::Ready(0), false),
            Direct::Never,
            "no file handed over"
        );
        assert_eq!(direct_after(DirectAnswer::Copy, true), Direct::Unasked);
        assert_eq!(direct_after(DirectAnswer::Never, true), Direct::Never);
    }
    use crate::{FileMergingOptions, LocationReference, Plugin, StateScope, StorageConfig, SubtaskKey, TenantConfig};

    #[test]
    fn file_streams_write_large_state_directly_merging_and_memory_streams_copy() {
        let dir = tempfile::tempdir().unwrap();
        let job = "0123456789abcdef0123456789abcdef";
        std::fs::create_dir_all(dir.path().join(job).join("chk-1")).unwrap();
        std::fs::create_dir_all(dir.path().join(job).join("shared")).unwrap();
        let tenant = Plugin::load().unwrap().tenant(TenantConfig::new(dir.path())).unwrap();
        let chunk = vec![5u8; 1 << 20];
        let direct_after_write = |mut stream: crate::StateOutputStream| {
            assert_eq!(stream.lock().direct, Direct::Unasked);
            stream.write(&chunk).unwrap();
            stream.write(&chunk).unwrap();
            let direct = stream.lock().direct;
            assert_eq!(stream.get_pos().unwrap(), 2 << 20);
            assert!(stream.close_and_get_handle().unwrap().is_some());
            direct
        };

        let view = tenant.open_worker_view(&StorageConfig::filesystem(job)).unwrap();
        let plain = view
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        let direct = direct_after_write(
            plain
                .create_checkpoint_state_output_stream(StateScope::Exclusive)
                .unwrap(),
        );
        assert_eq!(
            direct,
            Direct::Writing {
                offset: 0,
                unreported: 2 << 20
            }
        );

        let memory = tenant
            .open_worker_view(&StorageConfig::memory(job))
            .unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        let stream = memory
            .create_checkpoint_state_output_stream(StateScope::Shared)
            .unwrap();
        assert_eq!(direct_after_write(stream), Direct::Never);

        let manager = tenant
            .open_file_merging_manager(&StorageConfig::filesystem(job), "tm-1", &FileMergingOptions::enabled())
            .unwrap();
        let subtask = SubtaskKey::new("a3f1c2d4e5f60718293a4b5c6d7e8f90", 0, 1);
        manager.register_subtask(&subtask).unwrap();
        let merging = manager
            .resolve_checkpoint_storage_location(&subtask, 1, &LocationReference::Default)
            .unwrap();
        let stream = merging
            .create_checkpoint_state_output_stream(StateScope::Shared)
            .unwrap();
        assert_eq!(direct_after_write(stream), Direct::Never);
    }
}
