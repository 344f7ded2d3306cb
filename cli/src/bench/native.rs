//! The baseline: the core's own stream policy (`FsOutputStream`, the very
//! code the component runs) over plain `std::fs`, so the benchmark measures
//! what the sandbox costs and nothing else, and the baseline cannot drift
//! from the policy it is compared with.

use checkpoint_storage_core::handle::StateHandle;
use checkpoint_storage_core::output_stream::{CheckpointStateOutputStream, FsOutputStream};
use checkpoint_storage_core::paths::GuestPath;
use checkpoint_storage_core::sandbox::{EntryKind, FsError, FsErrorKind, ReadFile, Sandbox, Stat, StateFile};
use checkpoint_storage_host::writeback;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The guest path the native sandbox's directory stands for.
const ROOT: &str = checkpoint_storage_core::layout::GUEST_MOUNT;

/// What a finished native stream returns.
#[derive(Debug)]
pub enum NativeHandle {
    /// Inline state.
    Inline { name: String, data: Vec<u8> },
    /// State in the file at `path` (a host path).
    File { path: PathBuf, size: u64 },
}

/// A native state stream writing into a host directory, with the core's
/// policy: a buffer of the effective size, a file with a random UUID name
/// created exclusively when it overflows, positional writes, each followed
/// by the host's writeback of what it completed (the default window, as the
/// benchmark's tenant has), `sync_all` (fsync, as the component) at close, inline when the total is
/// at most the threshold.
pub struct NativeStream {
    sandbox: Rc<NativeSandbox>,
    stream: FsOutputStream<NativeSandbox>,
}

impl NativeStream {
    /// A stream into `dir`; the buffer is the larger of `buffer_size` and
    /// `threshold`, as the component's configuration makes it.
    pub fn new(dir: &Path, threshold: usize, buffer_size: usize) -> Self {
        let sandbox = Rc::new(NativeSandbox { dir: dir.to_path_buf() });
        let root = GuestPath::parse(ROOT).expect("the mount is a valid guest path");
        let stream = FsOutputStream::new(sandbox.clone(), root, threshold, buffer_size.max(threshold), false);
        NativeStream { sandbox, stream }
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write(data).map_err(io::Error::other)
    }

    /// Finishes the stream; `None` if nothing was written.
    pub fn close_and_get_handle(mut self) -> io::Result<Option<NativeHandle>> {
        let handle = self.stream.close_and_get_handle().map_err(io::Error::other)?;
        Ok(handle.map(|h| match h {
            StateHandle::ByteStream { name, data } => NativeHandle::Inline { name, data },
            StateHandle::File { path, size }
            | StateHandle::RelativeFile { path, size, .. }
            | StateHandle::Segment { path, size, .. } => NativeHandle::File {
                path: self
                    .sandbox
                    .host(&GuestPath::parse(&path).expect("the stream's own path")),
                size,
            },
        }))
    }
}

/// The core's `Sandbox` over `std::fs`, rooted at a host directory.
pub struct NativeSandbox {
    dir: PathBuf,
}

impl NativeSandbox {
    fn host(&self, path: &GuestPath) -> PathBuf {
        let root = GuestPath::parse(ROOT).expect("the mount is a valid guest path");
        match path.relative_to(&root) {
            Some("") | None => self.dir.clone(),
            Some(rel) => self.dir.join(rel),
        }
    }
}

fn fs_error(e: io::Error) -> FsError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => FsErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => FsErrorKind::AlreadyExists,
        io::ErrorKind::PermissionDenied => FsErrorKind::PermissionDenied,
        io::ErrorKind::StorageFull => FsErrorKind::NoSpace,
        _ => FsErrorKind::Other,
    };
    FsError::new(kind, e.to_string())
}

fn kind(t: std::fs::FileType) -> EntryKind {
    EntryKind::of(t.is_symlink(), t.is_dir(), t.is_file())
}

/// A native file being written.
pub struct NativeFile(File);

impl StateFile for NativeFile {
    fn write_all_at(&mut self, data: &[u8], offset: u64) -> Result<(), FsError> {
        self.0.write_all_at(data, offset).map_err(fs_error)?;
        writeback::after_write(&self.0, writeback::DEFAULT_WINDOW, offset, data.len() as u64);
        Ok(())
    }
    fn sync_data(&mut self) -> Result<(), FsError> {
        self.0.sync_all().map_err(fs_error)
    }
    fn is_linked(&self) -> Result<bool, FsError> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.0.metadata().map_err(fs_error)?.nlink() > 0)
    }
}

/// A native file being read.
pub struct NativeReader(File);

impl ReadFile for NativeReader {
    fn read_at(&self, len: u64, offset: u64) -> Result<Vec<u8>, FsError> {
        let mut buf = vec![0; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .0
                .read_at(&mut buf[filled..], offset + filled as u64)
                .map_err(fs_error)?
            {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
    fn size(&self) -> Result<u64, FsError> {
        Ok(self.0.metadata().map_err(fs_error)?.len())
    }
}

impl Sandbox for NativeSandbox {
    type File = NativeFile;
    type Reader = NativeReader;

    fn contains(&self, path: &GuestPath) -> bool {
        path.is_inside(&GuestPath::parse(ROOT).expect("the mount is a valid guest path"))
    }
    fn create_new(&self, path: &GuestPath) -> Result<NativeFile, FsError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.host(path))
            .map_err(fs_error)?;
        Ok(NativeFile(file))
    }
    fn remove_file(&self, path: &GuestPath) -> Result<(), FsError> {
        std::fs::remove_file(self.host(path)).map_err(fs_error)
    }
    fn hard_link(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        std::fs::hard_link(self.host(src), self.host(dst)).map_err(fs_error)
    }
    fn copy_file(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        let data = std::fs::read(self.host(src)).map_err(fs_error)?;
        let mut file = self.create_new(dst)?;
        file.write_all_at(&data, 0)?;
        file.sync_data()
    }
    fn stat(&self, path: &GuestPath) -> Result<Stat, FsError> {
        let meta = std::fs::symlink_metadata(self.host(path)).map_err(fs_error)?;
        Ok(Stat {
            kind: kind(meta.file_type()),
            size: meta.len(),
        })
    }
    fn open_read(&self, path: &GuestPath) -> Result<NativeReader, FsError> {
        File::open(self.host(path)).map(NativeReader).map_err(fs_error)
    }
    fn create_dir(&self, path: &GuestPath) -> Result<(), FsError> {
        std::fs::create_dir(self.host(path)).map_err(fs_error)
    }
    fn remove_dir(&self, path: &GuestPath) -> Result<(), FsError> {
        std::fs::remove_dir(self.host(path)).map_err(fs_error)
    }
    fn list_dir(&self, path: &GuestPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        std::fs::read_dir(self.host(path))
            .map_err(fs_error)?
            .map(|e| {
                let e = e.map_err(fs_error)?;
                let t = e.file_type().map_err(fs_error)?;
                Ok((e.file_name().to_string_lossy().into_owned(), kind(t)))
            })
            .collect()
    }
    fn sync_dir(&self, dir: &GuestPath) -> Result<(), FsError> {
        File::open(self.host(dir)).and_then(|d| d.sync_all()).map_err(fs_error)
    }
    fn random_bytes(&self) -> [u8; 16] {
        *uuid::Uuid::new_v4().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_state_is_inline_and_large_state_is_a_synced_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = NativeStream::new(dir.path(), 100, 4096);
        s.write(&[1; 60]).unwrap();
        s.write(&[2; 40]).unwrap();
        match s.close_and_get_handle().unwrap() {
            Some(NativeHandle::Inline { data, .. }) => assert_eq!(data.len(), 100),
            other => panic!("expected inline, got {other:?}"),
        }
        let mut s = NativeStream::new(dir.path(), 100, 4096);
        for _ in 0..5 {
            s.write(&[3; 1000]).unwrap();
        }
        match s.close_and_get_handle().unwrap() {
            Some(NativeHandle::File { path, size }) => {
                assert_eq!(size, 5000);
                assert_eq!(path.parent(), Some(dir.path()));
                assert_eq!(std::fs::read(path).unwrap(), vec![3; 5000]);
            }
            other => panic!("expected a file, got {other:?}"),
        }
    }

    #[test]
    fn dropping_an_unfinished_stream_deletes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = NativeStream::new(dir.path(), 10, 10);
        s.write(&[0; 100]).unwrap();
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
