//! State handles: how to find a finished state's bytes again (Flink's
//! `ByteStreamStateHandle`, `FileStateHandle`, `RelativeFileStateHandle`).

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
}

impl StateHandle {
    /// The file path of a file-backed handle; `None` for inline state.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            StateHandle::ByteStream { .. } => None,
            StateHandle::File { path, .. } | StateHandle::RelativeFile { path, .. } => Some(path),
        }
    }
}
