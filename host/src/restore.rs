//! Typed API over the WIT `restore` interface: reading any handle's bytes
//! back through the component, in the tenant's sandbox, and discarding state.
//!
//! Reads of file state skip guest memory: when the stream opens, the guest
//! hands the host the read-only descriptor it opened on the state's file
//! (WIT `open-direct-read`, in the same call into the tenant as the open),
//! and the host reads the state's bytes from it straight into the caller's
//! buffer. The position and size are then the host's; `seek` still asks the
//! guest, which keeps its checks and errors. A failed direct read is done
//! again by the guest (which reopens its file), and it reports the failure
//! its own way.
//!
//! Asking at the open rather than at the first large read saves a call per
//! restored state, and a direct read of any size costs less than a call
//! into the guest (which reads the same file).

use crate::bindings::Side;
use crate::bindings::exports::flink::checkpoint_storage::restore::Guest as RestoreGuest;
use crate::direct_io;
use crate::error::{Error, Result};
use crate::limits::{LimitExceeded, StreamPermit};
use crate::resource::{GuestResult, Owned};
use crate::tenant::{Inner, Tenant};
use crate::types::StateHandle;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::component::ResourceAny;

/// One call on a restore-interface resource.
fn call<T>(owned: &Owned, f: impl FnOnce(&RestoreGuest, &mut Inner, ResourceAny) -> GuestResult<T>) -> Result<T> {
    owned.call_on(Inner::restore, f)
}

impl Tenant {
    /// Opens the bytes of a handle for reading.
    pub fn open_input_stream(&self, handle: &StateHandle) -> Result<StateInputStream> {
        let permit = self.acquire_stream()?;
        let (resource, direct) = self.call(|i| {
            let resource = match i.restore()?.state_input_stream().call_open(&mut i.store, handle)? {
                Ok(resource) => resource,
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok((resource, take_direct_read(i, resource)?)))
        })?;
        Ok(StateInputStream {
            owned: Owned::new(self, resource),
            _permit: permit,
            direct: Mutex::new(direct),
        })
    }

    /// All bytes of a handle, read through the component. A state larger
    /// than `TenantConfig::max_read_state_bytes` is refused with
    /// [`LimitExceeded::StateTooLarge`] (nothing is allocated for it): read
    /// such a state in pieces with [`Tenant::open_input_stream`].
    pub fn read_state(&self, handle: &StateHandle) -> Result<Vec<u8>> {
        self.open_input_stream(handle)?
            .read_to_end_within(self.max_read_state_bytes())
    }

    /// Deletes the state's file; no-op for inline state, a segment of a
    /// merged file (its manager decides) or a missing file. A read-only
    /// tenant refuses every discard (`permission-denied`).
    pub fn discard_state(&self, handle: &StateHandle) -> Result<()> {
        self.call(|i| i.restore()?.call_discard_state(&mut i.store, handle))
    }
}

/// A readable, seekable view of one handle's bytes. It holds one of its
/// tenant's stream slots (an open file in the guest) until dropped.
#[derive(Debug)]
pub struct StateInputStream {
    owned: Owned,
    /// Held for its Drop (the slot).
    _permit: StreamPermit,
    /// A mutex because the async API shares streams (`Arc`).
    direct: Mutex<DirectRead>,
}

/// Asks the guest for the file of the stream `resource` just opened. A
/// refusal only means reads go through the guest; a trap fails the call.
fn take_direct_read(i: &mut Inner, resource: ResourceAny) -> wasmtime::Result<DirectRead> {
    // State input streams live in the tenant's own instance.
    if !i.has_direct_io(Side::Own) {
        // The object store build: there is no file to hand over.
        return Ok(DirectRead::Never);
    }
    let answer = i.direct_io()?.call_open_direct_read(&mut i.store, resource)?;
    // The descriptor leaves the tenant's table in any case.
    let handed = answer
        .ok()
        .flatten()
        .and_then(|(file, at)| direct_io::take_file(i.store.data_mut().table_mut(), file, false).map(|f| (f, at)));
    Ok(match handed {
        Some((file, at)) if direct_read_fits(at.base, at.size, at.pos) => DirectRead::Reading {
            file,
            base: at.base,
            size: at.size,
            pos: at.pos,
        },
        Some((_, at)) => {
            tracing::warn!(
                "the component handed over a file with an impossible range (base {}, size {}, position {}); reading through the component",
                at.base,
                at.size,
                at.pos
            );
            DirectRead::Never
        }
        None => DirectRead::Never,
    })
}

/// Whether a range the component hands over can be read with positional
/// reads: it ends where a file offset can (`i64::MAX`) and the position is
/// inside it. Anything else is not a state any component wrote; reads then
/// stay with the component, and the host's arithmetic never overflows.
fn direct_read_fits(base: u64, size: u64, pos: u64) -> bool {
    pos <= size && base.checked_add(size).is_some_and(|end| end <= i64::MAX as u64)
}

/// The component's `read` answer, checked against what was asked: more
/// bytes than `len` breaks its contract, and is treated as a trap (the
/// tenant is poisoned), never trusted.
fn checked_read(len: u64, answer: GuestResult<Vec<u8>>) -> GuestResult<Vec<u8>> {
    if let Ok(Ok(data)) = &answer
        && data.len() as u64 > len
    {
        return Err(wasmtime::Error::msg(format!(
            "the component broke its contract: `read` returned {} bytes for a request of {len}",
            data.len()
        )));
    }
    answer
}

/// How reads reach the state's bytes.
#[derive(Debug)]
enum DirectRead {
    /// Through the guest, always (inline state, or no descriptor).
    Never,
    /// From the file the guest handed over: the state is
    /// `[base, base + size)` of it; `pos` is the stream's position.
    Reading {
        file: Arc<File>,
        base: u64,
        size: u64,
        pos: u64,
    },
}

impl StateInputStream {
    fn lock(&self) -> MutexGuard<'_, DirectRead> {
        self.direct.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `len` bytes from the current position, at most
    /// [`crate::MAX_BYTES_PER_CALL`] per call; empty only at the end (or
    /// when `len` is 0).
    pub fn read(&self, len: u64) -> Result<Vec<u8>> {
        let len = len.min(crate::MAX_BYTES_PER_CALL as u64);
        let mut d = self.lock();
        if !self.direct_ready(&d)? {
            return self.read_guest(len);
        }
        let mut out = Vec::new();
        self.read_direct(&mut d, &mut out, len)?;
        Ok(out)
    }

    /// Reads up to `buf.len()` bytes (at most [`crate::MAX_BYTES_PER_CALL`])
    /// from the current position into `buf`, as `std::io::Read::read`:
    /// returns how many, 0 only at the end (or for an empty `buf`). Reads
    /// of file state go from the file straight into `buf`.
    pub fn read_into(&self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len().min(crate::MAX_BYTES_PER_CALL);
        let mut d = self.lock();
        if self.direct_ready(&d)?
            && let DirectRead::Reading { file, base, size, pos } = &mut *d
        {
            // `pos` passes `size` only if the component accepted a seek
            // past the end: then this is the end.
            let len = len.min(size.saturating_sub(*pos).try_into().unwrap_or(usize::MAX));
            if len == 0 {
                return Ok(0);
            }
            // In range: `pos < size` and `base + size` fits (`direct_read_fits`).
            match direct_io::read_at(file, &mut buf[..len], *base + *pos) {
                Ok(n) => {
                    *pos += n as u64;
                    return Ok(n);
                }
                Err(e) => {
                    tracing::debug!("a direct read failed ({e}); reading through the component");
                    let at = *pos;
                    *d = DirectRead::Never;
                    self.seek_guest(at)?;
                }
            }
        }
        drop(d);
        let data = self.read(len as u64)?;
        // `read` never returns more than asked (`read_guest` checks).
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Whether reads go to the file directly.
    fn direct_ready(&self, d: &DirectRead) -> Result<bool> {
        if matches!(d, DirectRead::Reading { .. }) {
            self.owned.tenant.check_not_poisoned()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Appends up to `len` bytes from the file to `out` (a direct read).
    fn read_direct(&self, d: &mut DirectRead, out: &mut Vec<u8>, len: u64) -> Result<usize> {
        let DirectRead::Reading { file, base, size, pos } = d else {
            unreachable!("only called when reading directly")
        };
        let len = len.min(size.saturating_sub(*pos)) as usize;
        if len == 0 {
            return Ok(0);
        }
        // In range: `pos < size` and `base + size` fits (`direct_read_fits`).
        match direct_io::read_at_into(file, out, len, *base + *pos) {
            Ok(n) => {
                *pos += n as u64;
                Ok(n)
            }
            Err(e) => {
                // The guest reads from here on, from the same position, and
                // reports a failure its own way.
                tracing::debug!("a direct read failed ({e}); reading through the component");
                let at = *pos;
                *d = DirectRead::Never;
                self.seek_guest(at)?;
                let data = self.read_guest(len as u64)?;
                out.extend_from_slice(&data);
                Ok(data.len())
            }
        }
    }

    /// Up to `len` bytes through the component (checked: never more).
    fn read_guest(&self, len: u64) -> Result<Vec<u8>> {
        call(&self.owned, |g, i, r| {
            checked_read(len, g.state_input_stream().call_read(&mut i.store, r, len))
        })
    }

    fn seek_guest(&self, pos: u64) -> Result<()> {
        call(&self.owned, |g, i, r| {
            g.state_input_stream().call_seek(&mut i.store, r, pos)
        })
    }

    /// Moves to `pos`, which must be at most [`size`](Self::size).
    pub fn seek(&self, pos: u64) -> Result<()> {
        let mut d = self.lock();
        // The guest checks the position (and says why it is refused).
        self.seek_guest(pos)?;
        if let DirectRead::Reading { pos: at, .. } = &mut *d {
            *at = pos;
        }
        Ok(())
    }

    /// The current position.
    pub fn get_pos(&self) -> Result<u64> {
        let d = self.lock();
        if let DirectRead::Reading { pos, .. } = *d {
            self.owned.tenant.check_not_poisoned()?;
            return Ok(pos);
        }
        call(&self.owned, |g, i, r| {
            g.state_input_stream().call_get_pos(&mut i.store, r).map(Ok)
        })
    }

    /// Total number of bytes of the state.
    pub fn size(&self) -> Result<u64> {
        let d = self.lock();
        if let DirectRead::Reading { size, .. } = *d {
            self.owned.tenant.check_not_poisoned()?;
            return Ok(size);
        }
        call(&self.owned, |g, i, r| {
            g.state_input_stream().call_size(&mut i.store, r).map(Ok)
        })
    }

    /// Everything from the current position to the end. The bytes collect
    /// in host memory: for a state of unknown size prefer [`Self::read`] in
    /// a loop, or [`Tenant::read_state`] (which is bounded).
    pub fn read_to_end(&self) -> Result<Vec<u8>> {
        self.read_to_end_within(u64::MAX)
    }

    /// Everything from the current position to the end, if that is at most
    /// `limit` bytes. The size the file reports is checked first, and the
    /// bytes actually read are counted too (the file may grow meanwhile);
    /// memory grows with the bytes read, never with a size the file claims.
    pub(crate) fn read_to_end_within(&self, limit: u64) -> Result<Vec<u8>> {
        let remaining = self.size()?.saturating_sub(self.get_pos()?);
        let too_large = |size| Error::Limit(LimitExceeded::StateTooLarge { limit, size });
        if remaining > limit {
            return Err(too_large(remaining));
        }
        let chunk = crate::MAX_BYTES_PER_CALL as u64;
        let mut out = Vec::new();
        loop {
            let mut d = self.lock();
            if self.direct_ready(&d)? {
                // Straight into `out`: the size was checked above and a
                // direct read never goes past it.
                if self.read_direct(&mut d, &mut out, chunk)? == 0 {
                    return Ok(out);
                }
                continue;
            }
            drop(d);
            let piece = self.read(chunk)?;
            if piece.is_empty() {
                return Ok(out);
            }
            let total = out.len() as u64 + piece.len() as u64;
            if total > limit {
                return Err(too_large(total));
            }
            out.extend_from_slice(&piece);
        }
    }
}

/// For callers that deserialise state through `std::io::Read`
/// ([`StateInputStream::read_into`]).
impl std::io::Read for &StateInputStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_into(buf).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::{DirectRead, checked_read, direct_read_fits};

    #[test]
    fn a_component_that_breaks_the_read_contract_is_not_trusted() {
        // More bytes than asked: a failure (the tenant is poisoned), never
        // a copy past the caller's buffer.
        let e = checked_read(3, Ok(Ok(vec![0; 4]))).unwrap_err();
        assert!(e.to_string().contains("returned 4 bytes for a request of 3"), "{e}");
        assert_eq!(checked_read(3, Ok(Ok(vec![7; 3]))).unwrap().unwrap(), [7; 3]);
        assert_eq!(checked_read(3, Ok(Ok(vec![]))).unwrap().unwrap(), [0u8; 0]);
        // Ranges no file can have are not read directly.
        let max = i64::MAX as u64;
        assert!(direct_read_fits(0, 10, 10));
        assert!(direct_read_fits(max - 10, 10, 0));
        assert!(!direct_read_fits(0, 10, 11), "position past the end");
        assert!(!direct_read_fits(max - 9, 10, 0), "ends past the largest offset");
        assert!(!direct_read_fits(u64::MAX, 1, 0), "overflows");
    }
    use crate::{LocationReference, Plugin, StateScope, StorageConfig, TenantConfig};

    #[test]
    fn file_state_is_read_from_the_file_handed_over_at_open_inline_state_through_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let job = "0123456789abcdef0123456789abcdef";
        std::fs::create_dir_all(dir.path().join(job).join("shared")).unwrap();
        let tenant = Plugin::load().unwrap().tenant(TenantConfig::new(dir.path())).unwrap();
        let view = tenant.open_worker_view(&StorageConfig::filesystem(job)).unwrap();
        let f = view
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        let data: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 249) as u8).collect();
        let file = f.write_state(StateScope::Shared, &data).unwrap().unwrap();
        let input = tenant.open_input_stream(&file).unwrap();
        assert!(
            matches!(*input.lock(), DirectRead::Reading { .. }),
            "handed over at open"
        );
        assert_eq!(input.read(100).unwrap(), &data[..100]);
        assert_eq!(input.read(1 << 20).unwrap(), &data[100..(1 << 20) + 100]);
        assert_eq!(input.get_pos().unwrap(), (1 << 20) + 100);

        // A direct read that fails (here: a descriptor the OS refuses to
        // read from) is done again by the guest, which reopens its file by
        // name, from the same position; later reads stay with the guest.
        let path = tenant.host_path(file.file_path().unwrap()).unwrap();
        if let DirectRead::Reading { file, .. } = &mut *input.lock() {
            *file = std::sync::Arc::new(std::fs::OpenOptions::new().write(true).open(&path).unwrap());
        }
        let mut buf = vec![0; 1000];
        assert_eq!(input.read_into(&mut buf).unwrap(), 1000);
        assert_eq!(buf, &data[(1 << 20) + 100..(1 << 20) + 1100]);
        assert!(matches!(*input.lock(), DirectRead::Never));
        assert_eq!(input.read(10).unwrap(), &data[(1 << 20) + 1100..(1 << 20) + 1110]);
        assert_eq!(input.get_pos().unwrap(), (1 << 20) + 1110);
        input.seek(0).unwrap();
        assert_eq!(input.read_to_end().unwrap(), data);

        // A position past the end (a component that accepted such a seek)
        // reads as the end, with no arithmetic overflow.
        let input = tenant.open_input_stream(&file).unwrap();
        let end = match &mut *input.lock() {
            DirectRead::Reading { pos, size, .. } => {
                *pos = *size + 5;
                *pos
            }
            DirectRead::Never => panic!("handed over at open"),
        };
        assert_eq!(input.read_into(&mut buf).unwrap(), 0);
        assert_eq!(input.read(10).unwrap(), b"");
        assert_eq!(input.get_pos().unwrap(), end);

        let inline = f.write_state(StateScope::Shared, b"small").unwrap().unwrap();
        let input = tenant.open_input_stream(&inline).unwrap();
        assert!(matches!(*input.lock(), DirectRead::Never), "inline state has no file");
        assert_eq!(input.read(1 << 20).unwrap(), b"small");
    }
}
