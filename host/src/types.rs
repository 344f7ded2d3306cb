//! WIT `types`: the records and variants every interface shares, with the
//! helpers an embedder needs (configuration builders, Flink's reference
//! encoding and `toString`s). The reference codec itself is the core's.

pub use crate::bindings::exports::flink::checkpoint_storage::types::{
    Backend, ByteStreamHandle, FileHandle, LocationReference, RelativeFileHandle, SegmentHandle, StateHandle,
    StateScope, StorageConfig,
};
use checkpoint_storage_core::config as defaults;
use checkpoint_storage_core::layout::GUEST_MOUNT;
use checkpoint_storage_core::reference;
use std::fmt;

/// Flink's reference magic number: `05 5F 3F 18`.
pub const REFERENCE_MAGIC_NUMBER: [u8; 4] = reference::REFERENCE_MAGIC_NUMBER;

impl StorageConfig {
    /// A filesystem-backend configuration with Flink's defaults, checkpoints
    /// under `/checkpoints`.
    pub fn filesystem(job_id: impl Into<String>) -> Self {
        StorageConfig {
            job_id: job_id.into(),
            checkpoints_dir: Some(GUEST_MOUNT.to_string()),
            create_subdir: None,
            backend: Backend::Filesystem,
            file_state_threshold: defaults::DEFAULT_FILE_STATE_THRESHOLD,
            write_buffer_size: defaults::DEFAULT_WRITE_BUFFER_SIZE,
            max_memory_state_size: defaults::DEFAULT_MAX_MEMORY_STATE_SIZE,
            s3_entropy_key: None,
            s3_entropy_length: None,
        }
    }

    /// A memory-backend configuration with Flink's defaults.
    pub fn memory(job_id: impl Into<String>) -> Self {
        StorageConfig {
            backend: Backend::Memory,
            ..Self::filesystem(job_id)
        }
    }

    /// Checkpoints below `dir` (a guest path, or an `s3://` URI for the
    /// object storage component) instead of `/checkpoints`.
    pub fn with_checkpoints_dir(mut self, dir: impl Into<String>) -> Self {
        self.checkpoints_dir = Some(dir.into());
        self
    }

    /// Flink's `execution.checkpointing.create-subdir`: with `false` the
    /// checkpoints directory is the job's directory itself (no `<job-id>`
    /// directory below it; filesystem backend only, as in Flink).
    pub fn with_create_subdir(mut self, create: bool) -> Self {
        self.create_subdir = Some(create);
        self
    }

    /// No checkpoints directory: Flink's `JobManagerCheckpointStorage`
    /// without one (memory backend only; the filesystem backend refuses
    /// it). A checkpoint's metadata stays in memory and comes back inline;
    /// nothing is written and nothing can be resolved later.
    pub fn without_checkpoints_dir(mut self) -> Self {
        self.checkpoints_dir = None;
        self
    }

    /// States up to this many bytes are returned inline (Flink's
    /// `execution.checkpointing.data-inline-threshold`; default 20 KiB, at most 1 MiB).
    pub fn with_file_state_threshold(mut self, bytes: u32) -> Self {
        self.file_state_threshold = bytes;
        self
    }

    /// Bytes a stream buffers before writing to its file (Flink's
    /// `execution.checkpointing.write-buffer-size`; default 4 KiB; the
    /// effective size is the larger of this and the threshold).
    pub fn with_write_buffer_size(mut self, bytes: u32) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Largest state the memory backend accepts (default 5 MiB).
    pub fn with_max_memory_state_size(mut self, bytes: u32) -> Self {
        self.max_memory_state_size = bytes;
        self
    }

    /// Entropy injection on object storage (Flink's `s3.entropy.key` and
    /// `s3.entropy.length`, `None` for its default of 4): the marker `key`
    /// in `checkpoints_dir` becomes random characters in each state
    /// object's key and is removed from `_metadata`'s.
    pub fn with_s3_entropy(mut self, key: impl Into<String>, length: Option<u32>) -> Self {
        self.s3_entropy_key = Some(key.into());
        self.s3_entropy_length = length;
        self
    }

    /// The stream size at which the guest's stream changes course, which
    /// the host (batching writes) must let the guest see at the very write
    /// that crosses it: the memory backend's maximum state size (beyond it
    /// the write fails) and the filesystem backend's effective buffer size
    /// (beyond it the guest creates the stream's file, which can fail).
    pub(crate) fn exact_boundary(&self) -> u64 {
        u64::from(match self.backend {
            Backend::Memory => self.max_memory_state_size,
            Backend::Filesystem => self.write_buffer_size.max(self.file_state_threshold),
        })
    }
}

impl LocationReference {
    /// Flink's encoding of a path reference: magic ++ UTF-8 path.
    ///
    /// The path is first put in the form Flink's `Path` prints it (trailing
    /// `/` dropped, `file:///x` as `file:/x`, repeated `/` and `.`/`..`
    /// resolved), so the bytes equal Flink's for the same directory.
    pub fn encode_path(path: &str) -> Self {
        Self::from(reference::LocationReference::encode_path(path))
    }

    /// The reference bytes; empty for the default reference (Flink's
    /// `getReferenceBytes`).
    pub fn bytes(&self) -> &[u8] {
        match self {
            LocationReference::Default => &[],
            LocationReference::Encoded(bytes) => bytes,
        }
    }
}

impl From<reference::LocationReference> for LocationReference {
    fn from(r: reference::LocationReference) -> Self {
        match r {
            reference::LocationReference::Default => LocationReference::Default,
            reference::LocationReference::Encoded(bytes) => LocationReference::Encoded(bytes),
        }
    }
}

/// Flink's `toString`: `(default)` or the lowercase hex of the bytes.
impl fmt::Display for LocationReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationReference::Default => f.write_str("(default)"),
            LocationReference::Encoded(bytes) => f.write_str(&reference::hex(bytes)),
        }
    }
}

impl StateHandle {
    /// The file path of a file handle; `None` for inline state.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            StateHandle::ByteStream(_) => None,
            StateHandle::File(f) => Some(&f.path),
            StateHandle::RelativeFile(r) => Some(&r.path),
            StateHandle::Segment(g) => Some(&g.path),
        }
    }

    /// The state's size in bytes.
    pub fn state_size(&self) -> u64 {
        match self {
            StateHandle::ByteStream(b) => b.data.len() as u64,
            StateHandle::File(f) => f.size,
            StateHandle::RelativeFile(r) => r.size,
            StateHandle::Segment(g) => g.size,
        }
    }
}

/// In the manner of Flink's handle `toString`s.
impl fmt::Display for StateHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateHandle::ByteStream(b) => write!(
                f,
                "ByteStreamStateHandle{{handleName='{}', dataBytes={}}}",
                b.name,
                b.data.len()
            ),
            StateHandle::File(h) => write!(f, "File State: {} [{} bytes]", h.path, h.size),
            StateHandle::RelativeFile(h) => {
                write!(
                    f,
                    "RelativeFileStateHandle State: {}, {} [{} bytes]",
                    h.path, h.relative_path, h.size
                )
            }
            StateHandle::Segment(h) => write!(
                f,
                "Segment File State: {} [Starting Position: {}, {} bytes]",
                h.path, h.offset, h.size
            ),
        }
    }
}
