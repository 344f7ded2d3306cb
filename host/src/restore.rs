//! Typed API over the WIT `restore` interface: reading any handle's bytes
//! back through the component, in the tenant's sandbox, and discarding state.

use crate::bindings::exports::flink::checkpoint_storage::restore::Guest as RestoreGuest;
use crate::error::{Error, Result};
use crate::limits::{LimitExceeded, StreamPermit};
use crate::resource::{GuestResult, Owned};
use crate::tenant::{Inner, Tenant};
use crate::types::StateHandle;
use wasmtime::component::ResourceAny;

/// One call on a restore-interface resource.
fn call<T>(owned: &Owned, f: impl FnOnce(&RestoreGuest, &mut Inner, ResourceAny) -> GuestResult<T>) -> Result<T> {
    owned.call_on(Inner::restore, f)
}

impl Tenant {
    /// Opens the bytes of a handle for reading.
    pub fn open_input_stream(&self, handle: &StateHandle) -> Result<StateInputStream> {
        let permit = self.acquire_stream()?;
        let resource = self.call(|i| i.restore()?.state_input_stream().call_open(&mut i.store, handle))?;
        Ok(StateInputStream(Owned::new(self, resource), permit))
    }

    /// All bytes of a handle, read through the component. A state larger
    /// than `TenantConfig::max_read_state_bytes` is refused with
    /// [`LimitExceeded::StateTooLarge`] (nothing is allocated for it): read
    /// such a state in pieces with [`Tenant::open_input_stream`].
    pub fn read_state(&self, handle: &StateHandle) -> Result<Vec<u8>> {
        self.open_input_stream(handle)?
            .read_to_end_within(self.max_read_state_bytes())
    }

    /// Deletes the state's file; no-op for inline state or a missing file.
    pub fn discard_state(&self, handle: &StateHandle) -> Result<()> {
        self.call(|i| i.restore()?.call_discard_state(&mut i.store, handle))
    }
}

/// A readable, seekable view of one handle's bytes. It holds one of its
/// tenant's stream slots (an open file in the guest) until dropped.
#[derive(Debug)]
pub struct StateInputStream(Owned, #[allow(dead_code)] /* held for its Drop */ StreamPermit);

impl StateInputStream {
    /// Up to `len` bytes from the current position, at most
    /// [`crate::MAX_BYTES_PER_CALL`] per call (they pass through the guest's
    /// capped memory); empty only at the end (or when `len` is 0).
    pub fn read(&self, len: u64) -> Result<Vec<u8>> {
        let len = len.min(crate::MAX_BYTES_PER_CALL as u64);
        call(&self.0, |g, i, r| {
            g.state_input_stream().call_read(&mut i.store, r, len)
        })
    }

    /// Moves to `pos`, which must be at most [`size`](Self::size).
    pub fn seek(&self, pos: u64) -> Result<()> {
        call(&self.0, |g, i, r| {
            g.state_input_stream().call_seek(&mut i.store, r, pos)
        })
    }

    /// The current position.
    pub fn get_pos(&self) -> Result<u64> {
        call(&self.0, |g, i, r| {
            g.state_input_stream().call_get_pos(&mut i.store, r).map(Ok)
        })
    }

    /// Total number of bytes of the state.
    pub fn size(&self) -> Result<u64> {
        call(&self.0, |g, i, r| {
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
        let mut out = Vec::new();
        loop {
            let chunk = self.read(crate::MAX_BYTES_PER_CALL as u64)?;
            if chunk.is_empty() {
                return Ok(out);
            }
            let total = out.len() as u64 + chunk.len() as u64;
            if total > limit {
                return Err(too_large(total));
            }
            out.extend_from_slice(&chunk);
        }
    }
}
