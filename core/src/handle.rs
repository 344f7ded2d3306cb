//! State handles: how to find a finished state's bytes again (Flink's
//! `ByteStreamStateHandle`, `FileStateHandle`, `RelativeFileStateHandle`,
//! `SegmentFileStateHandle`).

use crate::access::StateScope;
use crate::error::{Result, StorageError};
use crate::paths::GuestPath;
use crate::sandbox::Sandbox;

/// A state handle, as in WIT `state-handle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateHandle {
    ByteStream {
        name: String,
        data: Vec<u8>,
    },
    File {
        path: String,
        size: u64,
    },
    RelativeFile {
        path: String,
        relative_path: String,
        size: u64,
    },
    /// Bytes `offset .. offset + size` of a merged physical file.
    Segment {
        path: String,
        offset: u64,
        size: u64,
        scope: StateScope,
    },
}

impl StateHandle {
    /// The file path of a file-backed handle; `None` for inline state.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            StateHandle::ByteStream { .. } => None,
            StateHandle::File { path, .. }
            | StateHandle::RelativeFile { path, .. }
            | StateHandle::Segment { path, .. } => Some(path),
        }
    }
}

/// The checked path of a file handle: a normalised path of a file (not the
/// root) inside the sandbox. `None` for inline state. Handles come from
/// callers, so their paths are untrusted input.
pub fn checked_file_path<S: Sandbox + ?Sized>(sandbox: &S, handle: &StateHandle) -> Result<Option<GuestPath>> {
    let Some(raw) = handle.file_path() else { return Ok(None) };
    let path = GuestPath::parse(raw)
        .map_err(|e| StorageError::invalid_argument(format!("The handle has an invalid path: {e}.")))?;
    if path.file_name().is_none() || !sandbox.contains(&path) {
        return Err(StorageError::invalid_argument(format!(
            "The handle names '{path}', which is outside this tenant's directory; only state inside it can be used."
        )));
    }
    Ok(Some(path))
}
