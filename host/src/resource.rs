//! Guest resources owned by Rust values. Callers never touch `ResourceAny`:
//! every resource is a Rust value that calls into its tenant, and dropping
//! it drops the guest resource (for a stream: discards it).

use crate::bindings::Side;
use crate::bindings::exports::flink::checkpoint_storage::direct_io::Guest as DirectIoGuest;
use crate::error::Result;
use crate::tenant::{Inner, Tenant};
use crate::worker_exports::WorkerExports as WorkerGuest;
use wasmtime::component::ResourceAny;

/// Most bytes handed to the guest in one call. Every call's bytes are copied
/// into the tenant's linear memory, which has a cap
/// (`TenantConfig::max_memory_bytes`), so a larger write is split into calls
/// of this size: the guest sees the same bytes in the same order, and a
/// write of any size is not a memory trap.
pub const MAX_BYTES_PER_CALL: usize = 1 << 20;

/// `data` in pieces of at most [`MAX_BYTES_PER_CALL`]; empty data is one
/// empty piece (a write to a closed stream must still fail).
pub(crate) fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty = data.is_empty().then_some(data);
    data.chunks(MAX_BYTES_PER_CALL).chain(empty)
}

/// A guest resource owned by a Rust value; dropped with it.
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) tenant: Tenant,
    pub(crate) resource: ResourceAny,
    /// The instance the resource lives in: calls of `worker` and
    /// `direct-io` functions on it go there.
    pub(crate) side: Side,
}

/// What a call on an owned resource returns from the guest.
pub(crate) type GuestResult<T> = wasmtime::Result<std::result::Result<T, crate::error::StorageError>>;

impl Owned {
    /// Takes ownership of `resource` of `tenant`'s own instance.
    pub(crate) fn new(tenant: &Tenant, resource: ResourceAny) -> Owned {
        Owned::on_side(tenant, resource, Side::Own)
    }

    /// Takes ownership of `resource` of `tenant`'s instance `side`.
    pub(crate) fn on_side(tenant: &Tenant, resource: ResourceAny, side: Side) -> Owned {
        Owned {
            tenant: tenant.clone(),
            resource,
            side,
        }
    }

    /// Another resource of the same tenant, made by this one (so in the
    /// same instance).
    pub(crate) fn sibling(&self, resource: ResourceAny) -> Owned {
        Owned::on_side(&self.tenant, resource, self.side)
    }

    /// One call on this resource through the interface `guest` loads.
    pub(crate) fn call_on<G, T>(
        &self,
        guest: fn(&mut Inner) -> wasmtime::Result<G>,
        f: impl FnOnce(&G, &mut Inner, ResourceAny) -> GuestResult<T>,
    ) -> Result<T> {
        let resource = self.resource;
        self.tenant.call(|inner| {
            let g = guest(inner)?;
            f(&g, inner, resource)
        })
    }

    pub(crate) fn call<T>(&self, f: impl FnOnce(&WorkerGuest, &mut Inner, ResourceAny) -> GuestResult<T>) -> Result<T> {
        match self.side {
            Side::Own => self.call_on(Inner::worker, f),
            Side::Beside => self.call_on(Inner::worker_beside, f),
        }
    }

    /// One `direct-io` call on this resource, in its instance.
    pub(crate) fn call_direct_io<T>(
        &self,
        f: impl FnOnce(&DirectIoGuest, &mut Inner, ResourceAny) -> GuestResult<T>,
    ) -> Result<T> {
        match self.side {
            Side::Own => self.call_on(Inner::direct_io, f),
            Side::Beside => self.call_on(Inner::direct_io_beside, f),
        }
    }

    pub(crate) fn call_infallible<T>(
        &self,
        f: impl FnOnce(&WorkerGuest, &mut Inner, ResourceAny) -> wasmtime::Result<T>,
    ) -> Result<T> {
        self.call(|g, i, r| f(g, i, r).map(Ok))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.tenant.drop_resource(self.resource);
    }
}
