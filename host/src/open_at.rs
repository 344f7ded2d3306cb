//! A `wasi:filesystem` `descriptor.open-at` that never blocks on what it
//! opens, and remembers the files it creates.
//!
//! wasmtime-wasi's own `open-at` calls open(2) without `O_NONBLOCK`: a FIFO
//! swapped in between the guest's type check and its open would block the
//! host thread until some process opens the other end, and epoch
//! interruption cannot cut a host call. This version opens with
//! `O_NONBLOCK` and checks the type on the opened descriptor (fstat): only
//! regular files and directories are handed to the guest, anything else is
//! closed and refused with `unsupported`. Everything else is wasmtime-wasi's
//! semantics: the preopen's permissions, symlink handling, sandboxed path
//! resolution (cap-primitives) and its errno mapping.
//!
//! Files created here (`create` flag) are recorded with their identity, so
//! that when the tenant's instance traps, the files its open streams were
//! still writing can be removed (see [`Created`]).

use crate::tenant::{ALLOW_BLOCKING_CURRENT_THREAD, TenantState};
use cap_primitives::fs::{FollowSymlinks, OpenOptions, OpenOptionsExt};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir, File, OpenMode};
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as IoErrorCode;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

/// The `wasi:filesystem/types` instance wasmtime-wasi 48 defines.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
const OPEN_AT: &str = "[method]descriptor.open-at";

/// Replaces wasmtime-wasi's `descriptor.open-at` in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TenantState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = linker.instance(FILESYSTEM_TYPES).and_then(|mut types| {
        types.func_wrap(
            OPEN_AT,
            |mut store: StoreContextMut<'_, TenantState>,
             (fd, path_flags, path, oflags, flags): (
                Resource<Descriptor>,
                PathFlags,
                String,
                OpenFlags,
                DescriptorFlags,
            )| {
                let state = store.data_mut();
                let dir = match state.table().get(&fd) {
                    Ok(Descriptor::Dir(d)) => d,
                    Ok(Descriptor::File(_)) => return Ok((Err(ErrorCode::NotDirectory),)),
                    Err(_) => return Ok((Err(ErrorCode::BadDescriptor),)),
                };
                let parent = Arc::clone(&dir.dir);
                let opened = match open_at(dir, path_flags, &path, oflags, flags) {
                    Ok(d) => d,
                    Err(e) => return Ok((Err(e),)),
                };
                // A merged physical file stays open while its manager appends
                // segments, and the segments already in it belong to states
                // handed out: it is never a partial file to remove.
                let identity = match &opened {
                    Descriptor::File(f)
                        if oflags.contains(OpenFlags::CREATE)
                            && !checkpoint_storage_core::layout::is_merged_physical_file(&path) =>
                    {
                        identity(&f.file).ok()
                    }
                    _ => None,
                };
                // A full table is a trap, as in wasmtime-wasi.
                let resource = state.table_mut().push(opened)?;
                if let Some(identity) = identity {
                    state.created.record(resource.rep(), parent, path, identity);
                }
                Ok((Ok(resource),))
            },
        )
    });
    linker.allow_shadowing(false);
    result
}

/// Device and inode: what makes a file the same file.
type Identity = (u64, u64);

fn identity(file: &std::fs::File) -> std::io::Result<Identity> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

fn io_error(e: std::io::Error) -> ErrorCode {
    ErrorCode::from(IoErrorCode::from(e))
}

/// `open-at` on plain values: wasmtime-wasi's checks, a non-blocking open
/// and a type check on the opened descriptor.
pub(crate) fn open_at(
    dir: &Dir,
    path_flags: PathFlags,
    path: &str,
    oflags: OpenFlags,
    flags: DescriptorFlags,
) -> Result<Descriptor, ErrorCode> {
    let mut opts = OpenOptions::new();
    let mut open_mode = OpenMode::empty();
    let create = oflags.contains(OpenFlags::CREATE);
    if create {
        if oflags.contains(OpenFlags::EXCLUSIVE) {
            opts.create_new(true);
        } else {
            opts.create(true);
        }
        opts.write(true);
        open_mode |= OpenMode::WRITE;
    }
    if oflags.contains(OpenFlags::TRUNCATE) {
        opts.truncate(true).write(true);
        open_mode |= OpenMode::WRITE;
    }
    if flags.contains(DescriptorFlags::READ) {
        opts.read(true);
        open_mode |= OpenMode::READ;
    }
    if flags.contains(DescriptorFlags::WRITE) {
        opts.write(true);
        open_mode |= OpenMode::WRITE;
    } else {
        // As wasmtime-wasi: open for reading so the OS lets us open it; the
        // permissions refuse other uses later.
        opts.read(true);
        open_mode |= OpenMode::READ;
    }
    opts._cap_fs_ext_follow(if path_flags.contains(PathFlags::SYMLINK_FOLLOW) {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    });
    if flags.intersects(
        DescriptorFlags::FILE_INTEGRITY_SYNC
            | DescriptorFlags::DATA_INTEGRITY_SYNC
            | DescriptorFlags::REQUESTED_WRITE_SYNC,
    ) {
        return Err(ErrorCode::Unsupported);
    }
    if oflags.contains(OpenFlags::DIRECTORY)
        && oflags.intersects(OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE)
    {
        return Err(ErrorCode::Invalid);
    }
    if dir.perms.write_not_permitted() && (create || open_mode.contains(OpenMode::WRITE)) {
        return Err(ErrorCode::NotPermitted);
    }
    // The one difference from wasmtime-wasi: a FIFO (or device) must not
    // block the open; on regular files and directories it changes nothing.
    opts.custom_flags(libc::O_NONBLOCK);
    let file = cap_primitives::fs::open(&dir.dir, path.as_ref(), &opts).map_err(io_error)?;
    let file_type = file.metadata().map_err(io_error)?.file_type();
    if file_type.is_dir() {
        Ok(Descriptor::Dir(Dir::new(
            file,
            dir.perms,
            open_mode,
            ALLOW_BLOCKING_CURRENT_THREAD,
        )))
    } else if oflags.contains(OpenFlags::DIRECTORY) {
        Err(ErrorCode::NotDirectory)
    } else if file_type.is_file() {
        Ok(Descriptor::File(File::new(
            file,
            dir.perms,
            open_mode,
            ALLOW_BLOCKING_CURRENT_THREAD,
        )))
    } else {
        // A FIFO, socket or device: reading or writing it could block too.
        Err(ErrorCode::Unsupported)
    }
}

/// Files this instance created, by the table slot of their descriptor.
///
/// After a trap the instance is gone, and with it the guest's knowledge of
/// which files its open streams were writing. Those are exactly the files
/// it created whose descriptors are still in its table (the guest drops a
/// stream's descriptor before it returns a handle naming the file, and on
/// discard). File merging's physical files are the exception, kept open
/// across handed-out segments, and so are never recorded. Both identities are checked before anything is deleted: the
/// descriptor in the slot must still be the created file (slots are
/// reused), and the path must still name it (the tenant may have renamed
/// it, and something else may carry its old name now).
#[derive(Default)]
pub(crate) struct Created {
    files: HashMap<u32, CreatedFile>,
}

struct CreatedFile {
    parent: Arc<std::fs::File>,
    path: String,
    identity: Identity,
}

impl Created {
    fn record(&mut self, rep: u32, parent: Arc<std::fs::File>, path: String, identity: Identity) {
        // A reused slot replaces its old record: the map stays as small as the table.
        self.files.insert(rep, CreatedFile { parent, path, identity });
    }

    /// Deletes the created files whose descriptors are still open in
    /// `table`; returns how many were deleted.
    pub(crate) fn remove_open_files(&mut self, table: &wasmtime::component::ResourceTable) -> usize {
        let mut removed = 0;
        for (rep, created) in self.files.drain() {
            let still_open = match table.get(&Resource::<Descriptor>::new_own(rep)) {
                Ok(Descriptor::File(f)) => identity(&f.file).ok() == Some(created.identity),
                _ => false,
            };
            if !still_open {
                continue;
            }
            let named =
                cap_primitives::fs::stat(&created.parent, created.path.as_ref(), FollowSymlinks::No).is_ok_and(|m| {
                    (
                        cap_primitives::fs::MetadataExt::dev(&m),
                        cap_primitives::fs::MetadataExt::ino(&m),
                    ) == created.identity
                });
            if named && cap_primitives::fs::remove_file(&created.parent, created.path.as_ref()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::FsPerms;

    fn dir_descriptor(path: &std::path::Path, perms: FsPerms) -> Dir {
        let d = std::fs::File::open(path).unwrap();
        Dir::new(d, perms, OpenMode::READ | OpenMode::WRITE, true)
    }

    fn mkfifo(path: &std::path::Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking_and_files_open_as_before() {
        let tmp = tempfile::tempdir().unwrap();
        mkfifo(&tmp.path().join("fifo"));
        std::fs::write(tmp.path().join("file"), b"abc").unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        let dir = dir_descriptor(tmp.path(), FsPerms::ReadWrite);
        let read = DescriptorFlags::READ;
        // Before: open(2) of a FIFO for reading waits for a writer forever.
        assert_eq!(
            open_at(&dir, PathFlags::empty(), "fifo", OpenFlags::empty(), read).err(),
            Some(ErrorCode::Unsupported)
        );
        // For writing, with no reader, the OS refuses at once (ENXIO).
        assert!(
            open_at(
                &dir,
                PathFlags::empty(),
                "fifo",
                OpenFlags::empty(),
                DescriptorFlags::WRITE
            )
            .is_err()
        );
        match open_at(&dir, PathFlags::empty(), "file", OpenFlags::empty(), read) {
            Ok(Descriptor::File(f)) => {
                let mut buf = [0u8; 3];
                std::os::unix::fs::FileExt::read_at(&*f.file, &mut buf, 0).unwrap();
                assert_eq!(&buf, b"abc");
            }
            _ => panic!("a regular file opens"),
        }
        assert!(matches!(
            open_at(&dir, PathFlags::empty(), "sub", OpenFlags::DIRECTORY, read),
            Ok(Descriptor::Dir(_))
        ));
        assert_eq!(
            open_at(&dir, PathFlags::empty(), "file", OpenFlags::DIRECTORY, read).err(),
            Some(ErrorCode::NotDirectory)
        );
        // Still sandboxed, still no symlink following, still exclusive create.
        std::os::unix::fs::symlink("file", tmp.path().join("link")).unwrap();
        assert_eq!(
            open_at(&dir, PathFlags::empty(), "link", OpenFlags::empty(), read).err(),
            Some(ErrorCode::Loop)
        );
        assert!(open_at(&dir, PathFlags::empty(), "../x", OpenFlags::empty(), read).is_err());
        assert_eq!(
            open_at(
                &dir,
                PathFlags::empty(),
                "file",
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::WRITE
            )
            .err(),
            Some(ErrorCode::Exist)
        );
        // A read-only preopen refuses creation before the OS sees it.
        let ro = dir_descriptor(tmp.path(), FsPerms::ReadOnly);
        assert_eq!(
            open_at(
                &ro,
                PathFlags::empty(),
                "new",
                OpenFlags::CREATE,
                DescriptorFlags::WRITE
            )
            .err(),
            Some(ErrorCode::NotPermitted)
        );
        assert!(!tmp.path().join("new").exists());
    }
}
