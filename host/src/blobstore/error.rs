//! Failures of blob operations, as the `wasi:blobstore` error strings this
//! host sends: a kind the component reads back (`checkpoint_storage_core::
//! blob_error`), then words for people.

use checkpoint_storage_core::blob_error;
use checkpoint_storage_core::sandbox::FsErrorKind;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobError {
    pub(crate) kind: FsErrorKind,
    pub(crate) detail: String,
}

impl BlobError {
    pub(crate) fn new(kind: FsErrorKind, detail: impl Into<String>) -> Self {
        BlobError {
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(detail: impl Into<String>) -> Self {
        Self::new(FsErrorKind::Other, detail)
    }

    pub(crate) fn deadline(limit: Duration) -> Self {
        Self::io(format!(
            "the object store did not answer within {limit:?}, the part of the call's time limit its requests may take; the operation was abandoned"
        ))
    }

    /// An object store failure while doing `what`.
    pub(crate) fn store(what: &str, e: object_store::Error) -> Self {
        use object_store::Error as E;
        let kind = match &e {
            E::NotFound { .. } => FsErrorKind::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } => FsErrorKind::AlreadyExists,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => FsErrorKind::PermissionDenied,
            E::NotImplemented | E::NotSupported { .. } => FsErrorKind::Unsupported,
            _ => FsErrorKind::Other,
        };
        let hint = match kind {
            FsErrorKind::PermissionDenied => " (check the credentials the host was given for this store)",
            _ => "",
        };
        Self::new(kind, format!("{what}: {e}{hint}"))
    }

    /// The string sent to the component.
    pub(crate) fn wire(&self) -> String {
        blob_error::encode(self.kind, &self.detail)
    }
}
