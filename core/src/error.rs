//! Typed errors of the storage logic. `ErrorCode` maps one to one onto the
//! WIT `error-code` enum; the message is for people.

use std::fmt;

/// The closed set of failure kinds (WIT `error-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    InvalidReference,
    Unsupported,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    Closed,
    StateTooLarge,
    Io,
}

/// A failure of a storage operation: its kind and what to tell a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct StorageError {
    pub code: ErrorCode,
    pub message: String,
}

impl StorageError {
    pub fn new(code: ErrorCode, message: impl fmt::Display) -> Self {
        StorageError {
            code,
            message: message.to_string(),
        }
    }
    pub fn invalid_argument(message: impl fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn invalid_reference(message: impl fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidReference, message)
    }
    pub fn closed(message: impl fmt::Display) -> Self {
        Self::new(ErrorCode::Closed, message)
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// A filesystem failure, with what we were doing in front of it.
    pub fn from_fs(context: impl fmt::Display, e: &crate::sandbox::FsError) -> Self {
        use crate::sandbox::FsErrorKind as K;
        let code = match e.kind {
            K::NotFound => ErrorCode::NotFound,
            K::AlreadyExists => ErrorCode::AlreadyExists,
            K::PermissionDenied => ErrorCode::PermissionDenied,
            K::Unsupported => ErrorCode::Unsupported,
            K::NotAFile => ErrorCode::InvalidArgument,
            K::NoSpace | K::Other => ErrorCode::Io,
        };
        Self::new(code, format!("{context}: {e}"))
    }
}
