//! What the storage logic needs from its environment: files inside the
//! tenant's directory, and randomness for file names. The component
//! implements it over `wasi:filesystem` (`wasi_sandbox`); native unit tests
//! use an in-memory fake (`test_support`).

use crate::paths::GuestPath;
use std::fmt;

/// Kinds of filesystem failure the logic distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsErrorKind {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    /// The operation is not available here (e.g. hard links).
    Unsupported,
    NoSpace,
    /// A path that must name a regular file names something else (a
    /// directory, a device).
    NotAFile,
    Other,
}

/// A filesystem failure with the underlying detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    pub kind: FsErrorKind,
    pub detail: String,
}

impl FsError {
    pub fn new(kind: FsErrorKind, detail: impl Into<String>) -> Self {
        FsError {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// An open file being written.
pub trait StateFile {
    /// Writes all of `data` at `offset`.
    fn write_all_at(&mut self, data: &[u8], offset: u64) -> Result<(), FsError>;
    /// Makes the written data durable.
    fn sync_data(&mut self) -> Result<(), FsError>;
}

/// The tenant's directory as the guest sees it.
pub trait Sandbox {
    type File: StateFile;

    /// Whether `path` lies inside a directory this component may use.
    fn contains(&self, path: &GuestPath) -> bool;
    /// Creates a new file for writing; fails with `AlreadyExists` if the
    /// name is taken (never overwrites).
    fn create_new(&self, path: &GuestPath) -> Result<Self::File, FsError>;
    /// Deletes a file (not a directory).
    fn remove_file(&self, path: &GuestPath) -> Result<(), FsError>;
    /// Makes `dst` (which must not exist) a hard link to `src`.
    fn hard_link(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError>;
    /// Copies `src` to a new file `dst` (which must not exist) and syncs it.
    fn copy_file(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError>;
    /// 16 random bytes, for UUID file names.
    fn random_bytes(&self) -> [u8; 16];

    /// A fresh random (version 4) UUID in Flink's lowercase hyphenated form.
    fn random_uuid(&self) -> String {
        uuid::Builder::from_random_bytes(self.random_bytes())
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}
