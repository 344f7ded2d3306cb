//! Errors of the host library: a storage error the component returned (a
//! normal, typed outcome), or a failure of the tenant's sandbox itself.

pub use crate::bindings::exports::flink::checkpoint_storage::types::{ErrorCode, StorageError};
use crate::config_check::ConfigError;
use crate::limits::LimitExceeded;
use std::fmt;

/// What a call into a tenant can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The component refused the operation with a typed error.
    #[error("{}", Described(.0))]
    Storage(StorageError),
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
    /// A `TenantConfig` setting is out of its range; no tenant was created.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Setting up a tenant or the engine failed.
    #[error("host setup failed: {0:#}")]
    Setup(wasmtime::Error),
    /// A call of the async API (feature `tokio`) did not run to its end on
    /// tokio's blocking pool.
    #[cfg(feature = "tokio")]
    #[error("tenant call on the blocking pool did not finish: {0}")]
    Blocking(crate::nonblocking::BlockingFailure),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
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

impl ErrorCode {
    /// The code's WIT name, e.g. `invalid-reference`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::InvalidReference => "invalid-reference",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::NotFound => "not-found",
            ErrorCode::AlreadyExists => "already-exists",
            ErrorCode::PermissionDenied => "permission-denied",
            ErrorCode::Closed => "closed",
            ErrorCode::StateTooLarge => "state-too-large",
            ErrorCode::Io => "io",
        }
    }
}

/// A storage error in words: `<message> (<code>)`. The generated `Display`
/// of the WIT record is a debug dump.
struct Described<'a>(&'a StorageError);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0.message, self.0.code.as_str())
    }
}

/// The result of a host library call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_error_displays_in_words() {
        let e = Error::from(StorageError {
            code: ErrorCode::InvalidReference,
            message: "Reference 05 points outside this tenant's directory.".into(),
        });
        assert_eq!(
            e.to_string(),
            "Reference 05 points outside this tenant's directory. (invalid-reference)"
        );
    }
}
