//! Errors of the host library: a storage error the component returned (a
//! normal, typed outcome), or a failure of the tenant's sandbox itself.

pub use crate::bindings::exports::flink::checkpoint_storage::types::{ErrorCode, StorageError};
use crate::limits::LimitExceeded;

/// What a call into a tenant can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The component refused the operation with a typed error.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The tenant exceeded one of its limits (`TenantConfig`). For memory and
    /// execution time the instance was discarded (see
    /// [`LimitExceeded::discards_instance`]); otherwise only this call was
    /// refused. Other tenants are unaffected.
    #[error("tenant limit exceeded: {0}")]
    Limit(#[from] LimitExceeded),
    /// The tenant's instance trapped; it is unusable and must be re-created.
    /// Other tenants are unaffected.
    #[error("tenant instance failed: {0:#}")]
    Trapped(wasmtime::Error),
    /// An earlier call trapped; the instance was discarded.
    #[error("tenant instance is no longer usable after an earlier failure; create a new tenant")]
    Poisoned,
    /// Setting up a tenant or the engine failed.
    #[error("host setup failed: {0:#}")]
    Setup(wasmtime::Error),
}

impl Error {
    /// The storage error code, if the component returned one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Storage(e) => Some(e.code),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
