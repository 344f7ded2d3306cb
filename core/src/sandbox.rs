//! What the storage logic needs from its environment: files inside the
//! tenant's directory, and randomness for file names. The component
//! implements it over `wasi:filesystem` (`wasi_sandbox`); native unit tests
//! use an in-memory fake (`test_support`).

use crate::paths::GuestPath;
use std::any::Any;
use std::fmt;

/// A file handle the environment gives away to the host (in the component:
/// a `wasi:filesystem` descriptor); opaque to the storage logic.
pub type HostHandle = Box<dyn Any>;

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

/// What a path names (symbolic links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Other,
}

impl EntryKind {
    /// The kind a file type reports (hosts map their own file types with
    /// it): a link first, as `lstat` sees it.
    pub fn of(is_symlink: bool, is_dir: bool, is_file: bool) -> Self {
        if is_symlink {
            EntryKind::Symlink
        } else if is_dir {
            EntryKind::Directory
        } else if is_file {
            EntryKind::File
        } else {
            EntryKind::Other
        }
    }
}

/// The result of `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: EntryKind,
    pub size: u64,
}

/// An open file being read.
pub trait ReadFile {
    /// Reads up to `len` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, len: u64, offset: u64) -> Result<Vec<u8>, FsError>;
    /// The size of the opened file (not of whatever its path names now).
    fn size(&self) -> Result<u64, FsError>;
}

/// An open file being written.
pub trait StateFile {
    /// Writes all of `data` at `offset`.
    fn write_all_at(&mut self, data: &[u8], offset: u64) -> Result<(), FsError>;
    /// Makes the written data durable.
    fn sync_data(&mut self) -> Result<(), FsError>;
    /// Whether the file still has a name in some directory. A file whose
    /// directory was deleted under it takes writes but can never be read
    /// back, so no handle may name it.
    fn is_linked(&self) -> Result<bool, FsError>;
    /// Publishes the file under its name once everything is written. Files
    /// are visible as soon as they are created; an object store's upload
    /// becomes an object only here, and a file dropped before it leaves
    /// nothing behind.
    fn complete(&mut self) -> Result<(), FsError> {
        Ok(())
    }
}

/// The tenant's directory as the guest sees it.
pub trait Sandbox {
    type File: StateFile;
    type Reader: ReadFile;

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
    /// What `path` names, without following a final symbolic link.
    fn stat(&self, path: &GuestPath) -> Result<Stat, FsError>;
    /// Opens a regular file for reading (a symbolic link is refused).
    fn open_read(&self, path: &GuestPath) -> Result<Self::Reader, FsError>;
    /// Creates one directory; `AlreadyExists` if something is there.
    fn create_dir(&self, path: &GuestPath) -> Result<(), FsError>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &GuestPath) -> Result<(), FsError>;
    /// Names and kinds of a directory's entries.
    fn list_dir(&self, path: &GuestPath) -> Result<Vec<(String, EntryKind)>, FsError>;
    /// Whether directories exist on their own. An object store has none:
    /// creating one is a no-op, and a "directory" is the prefix of its
    /// objects' keys.
    fn has_directories(&self) -> bool {
        true
    }
    /// 16 random bytes, for UUID file names.
    fn random_bytes(&self) -> [u8; 16];

    /// Makes the entries of directory `dir` durable (new names, removed
    /// names), as fsync of the directory does. Backends without directories
    /// (where a name is durable with its object) have nothing to do.
    fn sync_dir(&self, dir: &GuestPath) -> Result<(), FsError> {
        let _ = dir;
        Ok(())
    }

    /// Whether `path` names the very file `file` (same identity), not a
    /// file put there since (its directory may have been renamed away and
    /// recreated while the file was being written). Backends whose names
    /// cannot move have nothing to check.
    fn names_file(&self, path: &GuestPath, file: &Self::File) -> Result<bool, FsError> {
        let _ = (path, file);
        Ok(true)
    }

    /// A second handle of the open state file `file` (named `path`), opened
    /// for writing, that the host writes the stream's next bytes into
    /// itself, so that large state never passes through the component's
    /// memory. It must be the very file `file` is (never whatever the path
    /// names now). `None`: this environment has no such handle to give, and
    /// every byte goes through `StateFile::write_all_at`.
    fn host_write_handle(&self, path: &GuestPath, file: &Self::File) -> Result<Option<HostHandle>, FsError> {
        let _ = (path, file);
        Ok(None)
    }

    /// Whether the tenant may only read: every operation that would write,
    /// create, link or delete is refused with `PermissionDenied`.
    fn read_only(&self) -> bool {
        false
    }

    /// A fresh random (version 4) UUID in Flink's lowercase hyphenated form.
    fn random_uuid(&self) -> UuidName {
        UuidName::new(self.random_bytes())
    }
}

/// A random UUID's text, held on the stack: most names are joined into a
/// path at once, and a `String` of their own would be one more allocation
/// for every state written (see `any_stream` for why the component's idle
/// path keeps its heap small).
#[derive(Clone, Copy)]
pub struct UuidName([u8; uuid::fmt::Hyphenated::LENGTH]);

impl UuidName {
    /// The version 4 UUID made of `random` (RFC 9562: its version and
    /// variant bits are set, the rest is `random`).
    pub fn new(random: [u8; 16]) -> Self {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut text);
        UuidName(text)
    }

    pub fn as_str(&self) -> &str {
        // `encode_lower` wrote hexadecimal digits and hyphens only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for UuidName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for UuidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UuidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Operations built from the primitives above.
pub trait SandboxExt: Sandbox {
    /// Creates `path` and its missing parents (inside the sandbox only).
    fn create_dir_all(&self, path: &GuestPath) -> Result<(), FsError> {
        if !self.has_directories() {
            return Ok(());
        }
        match self.stat(path) {
            Ok(s) if s.kind == EntryKind::Directory => return Ok(()),
            Ok(_) => {
                return Err(FsError::new(
                    FsErrorKind::AlreadyExists,
                    format!("{path} exists and is not a directory"),
                ));
            }
            Err(e) if e.kind == FsErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = path.parent().filter(|p| self.contains(p)) {
            self.create_dir_all(&parent)?;
        }
        match self.create_dir(path) {
            Err(e) if e.kind == FsErrorKind::AlreadyExists => Ok(()), // created concurrently
            other => other,
        }
    }

    /// Deletes a directory and everything below it. Symbolic links are
    /// removed, never followed.
    fn remove_dir_all(&self, path: &GuestPath) -> Result<(), FsError> {
        for (name, kind) in self.list_dir(path)? {
            let child = path.join(&name);
            match kind {
                EntryKind::Directory => self.remove_dir_all(&child)?,
                _ => self.remove_file(&child)?,
            }
        }
        self.remove_dir(path)
    }
}

impl<S: Sandbox + ?Sized> SandboxExt for S {}
