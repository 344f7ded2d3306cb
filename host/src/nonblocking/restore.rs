//! WIT `restore`, async: reading handles back ([`StateInputStream`]) and
//! discarding state.

use super::{AsyncTenant, Shared, run};
use crate::error::Result;
use crate::restore::StateInputStream;
use crate::types::StateHandle;

impl AsyncTenant {
    /// Opens the bytes of a handle for reading
    /// ([`Tenant::open_input_stream`](crate::Tenant::open_input_stream)).
    pub async fn open_input_stream(&self, handle: StateHandle) -> Result<AsyncStateInputStream> {
        let tenant = self.0.clone();
        let stream = run(move || tenant.open_input_stream(&handle).map(Shared::new)).await?;
        Ok(AsyncStateInputStream(stream))
    }

    /// All bytes of a handle, read through the component in one hop to the
    /// blocking pool ([`Tenant::read_state`](crate::Tenant::read_state)).
    pub async fn read_state(&self, handle: StateHandle) -> Result<Vec<u8>> {
        let tenant = self.0.clone();
        run(move || tenant.read_state(&handle)).await
    }

    /// Deletes the state's file; no-op for inline state, a segment or a
    /// missing file; refused by a read-only tenant
    /// ([`Tenant::discard_state`](crate::Tenant::discard_state)).
    pub async fn discard_state(&self, handle: StateHandle) -> Result<()> {
        let tenant = self.0.clone();
        run(move || tenant.discard_state(&handle)).await
    }
}

/// A readable, seekable view of one handle's bytes ([`StateInputStream`]).
#[derive(Debug)]
pub struct AsyncStateInputStream(Shared<StateInputStream>);

impl AsyncStateInputStream {
    /// Up to `len` bytes from the current position
    /// ([`StateInputStream::read`]); empty only at the end (or when `len` is 0).
    pub async fn read(&self, len: u64) -> Result<Vec<u8>> {
        self.0.call(move |s| s.read(len)).await
    }

    /// Moves to `pos`, which must be at most [`size`](Self::size).
    pub async fn seek(&self, pos: u64) -> Result<()> {
        self.0.call(move |s| s.seek(pos)).await
    }

    /// The current position.
    pub async fn get_pos(&self) -> Result<u64> {
        self.0.call(|s| s.get_pos()).await
    }

    /// Total number of bytes of the state.
    pub async fn size(&self) -> Result<u64> {
        self.0.call(|s| s.size()).await
    }

    /// Everything from the current position to the end, in one hop to the
    /// blocking pool.
    pub async fn read_to_end(&self) -> Result<Vec<u8>> {
        self.0.call(|s| s.read_to_end()).await
    }
}
