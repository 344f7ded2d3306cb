//! Files below a root directory, reached from the root's descriptor one
//! name at a time and never through a symbolic link.
//!
//! The operator's tools that delete (`gc`) must not be steered outside the
//! directory they were given. Joining names to a path and asking the kernel
//! by path leaves a window between listing and unlinking in which a
//! process could swap a directory for a symlink to somewhere else; opening
//! each directory with `O_NOFOLLOW` relative to its parent's descriptor
//! closes it: a swapped name fails to open instead of being followed.

use cap_primitives::fs::{FollowSymlinks, OpenOptions, OpenOptionsExt};
use cap_primitives::{ambient_authority, fs as cap};
use checkpoint_storage_core::sandbox::EntryKind;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// What a path names, looked up one name at a time without following links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Something is there (a link in the last place counts).
    Yes,
    /// Nothing is there (or a file stands where a directory should).
    Missing,
    /// A symbolic link stands in place of this directory on the way.
    ThroughLink(PathBuf),
}

/// One entry of a directory, as `lstat` sees it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub name: OsString,
    /// Its own type (a link is not followed); `Other` is a device, socket or pipe.
    pub kind: EntryKind,
    pub len: u64,
    pub modified: io::Result<SystemTime>,
}

/// A root directory, held open.
pub(crate) struct Beneath {
    root: File,
}

impl Beneath {
    /// Opens the root (the operator's path, followed as given).
    pub fn open(root: &Path) -> io::Result<Self> {
        Ok(Beneath {
            root: cap::open_ambient_dir(root, ambient_authority())?,
        })
    }

    /// The directory `rel` below the root, opened name by name without
    /// following a link; `..`, `.` and absolute parts are refused.
    pub fn dir(&self, rel: &Path) -> io::Result<File> {
        let mut dir = cap::open_dir_nofollow(&self.root, Path::new("."))?;
        for name in plain_names(rel)? {
            dir = cap::open_dir_nofollow(&dir, Path::new(name))?;
        }
        Ok(dir)
    }

    /// The parent directory of `rel` (opened as [`Self::dir`]) and its last name.
    fn parent<'a>(&self, rel: &'a Path) -> io::Result<(File, &'a Path)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", rel.display())))?;
        Ok((self.dir(rel.parent().unwrap_or(Path::new("")))?, Path::new(name)))
    }

    /// The entries of the directory `rel`, each as `lstat` sees it. An
    /// entry removed while it is listed is left out.
    pub fn entries(&self, rel: &Path) -> io::Result<Vec<Entry>> {
        let dir = self.dir(rel)?;
        let mut out = vec![];
        for entry in cap::read_base_dir(&dir)? {
            let entry = entry?;
            let meta = match entry.metadata() {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other?,
            };
            out.push(Entry {
                name: entry.file_name(),
                kind: kind(&meta.file_type()),
                len: meta.len(),
                modified: meta.modified().map(|t| t.into_std()),
            });
        }
        Ok(out)
    }

    /// The modification time of the directory `rel` itself.
    pub fn dir_modified(&self, rel: &Path) -> io::Result<SystemTime> {
        self.dir(rel)?.metadata()?.modified()
    }

    /// The kind of what `rel` names (a link is not followed); `None` when
    /// nothing is there, or its directory is not.
    pub fn kind_of(&self, rel: &Path) -> io::Result<Option<EntryKind>> {
        let (dir, name) = match self.parent(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        let meta = match cap::stat(&dir, name, FollowSymlinks::No) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        Ok(Some(kind(&meta.file_type())))
    }

    /// What `rel` names, without following a link on the way.
    pub fn lookup(&self, rel: &Path) -> io::Result<Found> {
        let names = plain_names(rel)?;
        let mut dir = cap::open_dir_nofollow(&self.root, Path::new("."))?;
        let mut walked = PathBuf::new();
        for (i, name) in names.iter().enumerate() {
            walked.push(name);
            let meta = match cap::stat(&dir, Path::new(name), FollowSymlinks::No) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
                other => other?,
            };
            if i + 1 == names.len() {
                break;
            }
            if meta.file_type().is_symlink() {
                return Ok(Found::ThroughLink(walked));
            }
            if !meta.is_dir() {
                return Ok(Found::Missing);
            }
            dir = cap::open_dir_nofollow(&dir, Path::new(name))?;
        }
        Ok(Found::Yes)
    }

    /// The regular file `rel`, read whole if it holds at most `max` bytes;
    /// otherwise `Err(Ok(size))`.
    pub fn read_file(&self, rel: &Path, max: u64) -> Result<Vec<u8>, Result<u64, io::Error>> {
        let (dir, name) = self.parent(rel).map_err(Err)?;
        let mut opts = OpenOptions::new();
        // O_NONBLOCK: a FIFO planted in place of the file must not make the
        // open wait for a writer (a regular file ignores the flag).
        opts.read(true)
            ._cap_fs_ext_follow(FollowSymlinks::No)
            .custom_flags(libc::O_NONBLOCK);
        let file = cap::open(&dir, name, &opts).map_err(Err)?;
        let meta = file.metadata().map_err(Err)?;
        if !meta.is_file() {
            return Err(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", rel.display()),
            )));
        }
        let size = meta.len();
        if size > max {
            return Err(Ok(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // `take`: the file may grow between the size and the read.
        file.take(max + 1).read_to_end(&mut bytes).map_err(Err)?;
        if bytes.len() as u64 > max {
            return Err(Ok(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Unlinks the name `rel` (a link itself, never its target).
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        cap::remove_file(&dir, name)
    }

    /// Removes the empty directory `rel`.
    pub fn remove_dir(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        cap::remove_dir(&dir, name)
    }
}

fn kind(ft: &cap::FileType) -> EntryKind {
    EntryKind::of(ft.is_symlink(), ft.is_dir(), ft.is_file())
}

/// The names of a plain relative path; `..`, `.` and absolute parts are
/// refused.
fn plain_names(rel: &Path) -> io::Result<Vec<&std::ffi::OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a plain relative path", rel.display()),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_swapped_for_a_symlink_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::fs::write(outside.path().join("f"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let b = Beneath::open(root.path()).unwrap();
        assert!(b.dir(Path::new("real")).is_ok());
        assert!(b.dir(Path::new("link")).is_err());
        assert!(b.remove_file(Path::new("link/f")).is_err());
        assert!(b.read_file(Path::new("link/f"), 100).is_err());
        assert_eq!(
            b.lookup(Path::new("link/f")).unwrap(),
            Found::ThroughLink(PathBuf::from("link"))
        );
        assert_eq!(
            b.lookup(Path::new("link")).unwrap(),
            Found::Yes,
            "the link itself is there"
        );
        assert_eq!(b.lookup(Path::new("real")).unwrap(), Found::Yes);
        assert_eq!(b.lookup(Path::new("real/nothing")).unwrap(), Found::Missing);
        assert_eq!(b.lookup(Path::new("nothing/x")).unwrap(), Found::Missing);
        assert_eq!(std::fs::read(outside.path().join("f")).unwrap(), b"keep");
        for bad in ["../x", "/etc", "real/../real"] {
            assert_eq!(
                b.dir(Path::new(bad)).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_file_larger_than_asked_is_not_read() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("big"), [1u8; 10]).unwrap();
        let b = Beneath::open(root.path()).unwrap();
        assert!(matches!(b.read_file(Path::new("big"), 9), Err(Ok(10))));
        assert_eq!(b.read_file(Path::new("big"), 10).unwrap(), [1u8; 10]);
    }
}
