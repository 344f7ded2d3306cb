//! The `Sandbox` over `wasi:filesystem` descriptors (wasm32 only).
//!
//! Files are opened with `open-at` on the preopened directory using exactly
//! the flags needed (`write` only: no `mutate-directory`, which some WASI
//! hosts refuse) and written with positional `write`, the cheap path under
//! wasmtime-wasi (far cheaper per call than `std::fs`, whose writes go through
//! an output stream). The preopen itself refuses any path
//! that leaves it, a second wall behind the guest's own path checks.

use chacha20::ChaCha20Rng;
use checkpoint_storage_core::paths::GuestPath;
use checkpoint_storage_core::sandbox::{
    EntryKind, FsError, FsErrorKind, HostHandle, ReadFile, Sandbox, Stat, StateFile,
};
use rand_core::{Rng, SeedableRng};
use std::cell::{OnceCell, RefCell};
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags};

/// The directories the host preopened, each with its guest mount path.
pub struct WasiSandbox {
    preopens: Vec<(Descriptor, GuestPath)>,
    /// The host preopened every directory without write permission; asked
    /// at the first write, not at open (a host call and a system call that
    /// a tenant which only restores never needs).
    read_only: OnceCell<bool>,
    /// Randomness of UUID file names: seeded once from `wasi:random` at the
    /// first name, then local (see `random_bytes`).
    names: RefCell<Option<ChaCha20Rng>>,
}

impl WasiSandbox {
    /// The host's preopens with an absolute guest path; `None` if there
    /// is none (the host has not preopened the tenant's directory yet).
    pub fn from_preopens() -> Option<Self> {
        let preopens: Vec<_> = get_directories()
            .into_iter()
            .filter_map(|(d, mount)| GuestPath::parse(&mount).ok().map(|p| (d, p)))
            .collect::<Vec<_>>();
        (!preopens.is_empty()).then_some(WasiSandbox {
            preopens,
            read_only: OnceCell::new(),
            names: RefCell::new(None),
        })
    }

    /// A preopen the host gave read permission only reports `read` without
    /// `mutate-directory`; the tenant is read-only if every preopen says
    /// so. A host that reports no flags at all (jco's preview2-shim gives
    /// none for a preopen) has said nothing: the filesystem itself then
    /// refuses what is not allowed.
    fn preopens_are_read_only(&self) -> bool {
        self.preopens.iter().all(|(d, _)| {
            d.get_flags()
                .is_ok_and(|f| f.contains(DescriptorFlags::READ) && !f.contains(DescriptorFlags::MUTATE_DIRECTORY))
        })
    }

    /// The preopen holding `path` and the path relative to it.
    fn locate<'a>(&'a self, path: &'a GuestPath) -> Result<(&'a Descriptor, &'a str), FsError> {
        self.preopens
            .iter()
            .filter_map(|(d, mount)| path.relative_to(mount).map(|rel| (d, rel, mount.as_str().len())))
            .max_by_key(|(_, _, len)| *len)
            .map(|(d, rel, _)| (d, rel))
            .ok_or_else(|| {
                FsError::new(
                    FsErrorKind::PermissionDenied,
                    format!("{path} is outside the tenant's directory"),
                )
            })
            .and_then(|(d, rel)| match rel {
                "" => Err(FsError::new(
                    FsErrorKind::NotAFile,
                    format!("{path} is the tenant's directory itself, not a file in it"),
                )),
                rel => Ok((d, rel)),
            })
    }
}

impl WasiSandbox {
    /// A second descriptor of the open file `opened` (named `path`), with
    /// `flags`, for the host to read or write it itself. `None` if `path`
    /// no longer names that very file (it was replaced meanwhile).
    fn reopen_for_host(
        &self,
        path: &GuestPath,
        opened: &Descriptor,
        flags: DescriptorFlags,
    ) -> Result<Option<Descriptor>, FsError> {
        let (dir, rel) = self.locate(path)?;
        let again = dir
            .open_at(PathFlags::empty(), rel, OpenFlags::empty(), flags)
            .map_err(fs_error)?;
        Ok(again.is_same_object(opened).then_some(again))
    }

    /// Like `locate`, but the mount point itself is allowed (as `.`).
    fn locate_dir<'a>(&'a self, path: &'a GuestPath) -> Result<(&'a Descriptor, &'a str), FsError> {
        if let Some((d, _)) = self.preopens.iter().find(|(_, mount)| mount == path) {
            return Ok((d, "."));
        }
        self.locate(path)
    }
}

fn fs_error(e: ErrorCode) -> FsError {
    let kind = match e {
        ErrorCode::NoEntry => FsErrorKind::NotFound,
        ErrorCode::Exist => FsErrorKind::AlreadyExists,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => FsErrorKind::PermissionDenied,
        ErrorCode::Unsupported | ErrorCode::CrossDevice => FsErrorKind::Unsupported,
        ErrorCode::InsufficientSpace | ErrorCode::Quota | ErrorCode::FileTooLarge => FsErrorKind::NoSpace,
        _ => FsErrorKind::Other,
    };
    FsError::new(kind, in_words(e))
}

/// A WASI error code in plain words (the generated `message()` is the WIT
/// documentation, e.g. "No such file or directory, similar to `ENOENT` in
/// POSIX.").
fn in_words(e: ErrorCode) -> &'static str {
    match e {
        ErrorCode::NoEntry => "not found",
        ErrorCode::Exist => "already exists",
        ErrorCode::Access | ErrorCode::NotPermitted => "permission denied",
        ErrorCode::ReadOnly => "the file system is read-only",
        ErrorCode::Unsupported => "not supported here (e.g. not a regular file or directory)",
        ErrorCode::CrossDevice => "not possible across file systems",
        ErrorCode::InsufficientSpace => "no space left on the device",
        ErrorCode::Quota => "disk quota exceeded",
        ErrorCode::FileTooLarge => "file too large",
        ErrorCode::IsDirectory => "is a directory",
        ErrorCode::NotDirectory => "not a directory",
        ErrorCode::NotEmpty => "directory not empty",
        ErrorCode::Loop => "a symbolic link is in the way",
        ErrorCode::NameTooLong => "name too long",
        ErrorCode::Invalid => "invalid argument",
        ErrorCode::BadDescriptor => "bad file descriptor",
        ErrorCode::Io => "input/output error",
        ErrorCode::Busy => "resource busy",
        ErrorCode::WouldBlock => "the operation would block",
        ErrorCode::TooManyLinks => "too many links",
        ErrorCode::NoDevice => "no such device",
        _ => "file system error",
    }
}

/// State is only ever read from regular files: a symlink is refused (it
/// could lead out of the sandbox for a host that follows it) and so is a
/// directory.
fn require_regular_file(dir: &Descriptor, rel: &str, path: &GuestPath) -> Result<(), FsError> {
    let stat = dir.stat_at(PathFlags::empty(), rel).map_err(fs_error)?;
    require_kind(stat.type_, path)
}

fn require_kind(kind: DescriptorType, path: &GuestPath) -> Result<(), FsError> {
    match kind {
        DescriptorType::RegularFile => Ok(()),
        DescriptorType::SymbolicLink => Err(FsError::new(
            FsErrorKind::PermissionDenied,
            format!("{path} is a symbolic link; state files must be regular files"),
        )),
        other => Err(FsError::new(
            FsErrorKind::NotAFile,
            format!("{path} is not a regular file ({other:?})"),
        )),
    }
}

fn entry_kind(t: DescriptorType) -> EntryKind {
    match t {
        DescriptorType::RegularFile => EntryKind::File,
        DescriptorType::Directory => EntryKind::Directory,
        DescriptorType::SymbolicLink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// A state file opened for reading, with its size when opened.
pub struct WasiReader {
    file: Descriptor,
    size: u64,
}

impl WasiReader {
    /// The descriptor, for the host to read the file itself (WIT
    /// `open-direct-read`).
    pub fn into_descriptor(self) -> Descriptor {
        self.file
    }
}

impl ReadFile for WasiReader {
    fn size(&self) -> Result<u64, FsError> {
        Ok(self.size)
    }

    fn read_at(&self, len: u64, offset: u64) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        // `read` may return less than asked before the end; keep going.
        while (out.len() as u64) < len {
            let (data, end) = self
                .file
                .read(len - out.len() as u64, offset + out.len() as u64)
                .map_err(fs_error)?;
            let done = end || data.is_empty();
            out.extend_from_slice(&data);
            if done {
                break;
            }
        }
        Ok(out)
    }
}

pub struct WasiFile(Descriptor);

impl StateFile for WasiFile {
    fn write_all_at(&mut self, mut data: &[u8], mut offset: u64) -> Result<(), FsError> {
        while !data.is_empty() {
            let n = self.0.write(data, offset).map_err(fs_error)?;
            if n == 0 {
                return Err(FsError::new(FsErrorKind::Other, "the file accepted no bytes"));
            }
            data = &data[n as usize..];
            offset += n;
        }
        Ok(())
    }

    /// `sync` (fsync), as Java's `FileDescriptor.sync()` behind Flink's
    /// streams. For a file just written it costs what `sync-data` would
    /// (its size and blocks changed, so both write the inode), and it is one
    /// WASI function fewer that every instance links at its start.
    fn sync_data(&mut self) -> Result<(), FsError> {
        self.0.sync().map_err(fs_error)
    }

    fn is_linked(&self) -> Result<bool, FsError> {
        Ok(self.0.stat().map_err(fs_error)?.link_count > 0)
    }
}

impl Sandbox for WasiSandbox {
    type File = WasiFile;
    type Reader = WasiReader;

    fn contains(&self, path: &GuestPath) -> bool {
        self.preopens.iter().any(|(_, mount)| path.is_inside(mount))
    }

    fn create_new(&self, path: &GuestPath) -> Result<WasiFile, FsError> {
        let (dir, rel) = self.locate(path)?;
        dir.open_at(
            PathFlags::empty(),
            rel,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        )
        .map(WasiFile)
        .map_err(fs_error)
    }

    fn remove_file(&self, path: &GuestPath) -> Result<(), FsError> {
        let (dir, rel) = self.locate(path)?;
        dir.unlink_file_at(rel).map_err(fs_error)
    }

    fn hard_link(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        let (src_dir, src_rel) = self.locate(src)?;
        // Without this, linking a symlink would plant a copy of the symlink.
        require_regular_file(src_dir, src_rel, src)?;
        let (dst_dir, dst_rel) = self.locate(dst)?;
        src_dir
            .link_at(PathFlags::empty(), src_rel, dst_dir, dst_rel)
            .map_err(fs_error)
    }

    fn copy_file(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        const CHUNK: u64 = 256 * 1024;
        let (src_dir, src_rel) = self.locate(src)?;
        require_regular_file(src_dir, src_rel, src)?;
        let input = src_dir
            .open_at(PathFlags::empty(), src_rel, OpenFlags::empty(), DescriptorFlags::READ)
            .map_err(fs_error)?;
        let mut output = self.create_new(dst)?;
        let result = (|| {
            let mut offset = 0;
            loop {
                let (data, end) = input.read(CHUNK, offset).map_err(fs_error)?;
                output.write_all_at(&data, offset)?;
                offset += data.len() as u64;
                if end || data.is_empty() {
                    return output.sync_data();
                }
            }
        })();
        if result.is_err() {
            let _ = self.remove_file(dst);
        }
        result
    }

    fn stat(&self, path: &GuestPath) -> Result<Stat, FsError> {
        let (dir, rel) = self.locate_dir(path)?;
        let stat = dir.stat_at(PathFlags::empty(), rel).map_err(fs_error)?;
        Ok(Stat {
            kind: entry_kind(stat.type_),
            size: stat.size,
        })
    }

    /// Opens first and looks at what was opened (a `stat` of the
    /// descriptor gives its kind and size), instead of looking at the path
    /// first: one lookup of the name instead of two per restored state. The
    /// open never follows a symlink (no `symlink-follow`), so only a
    /// failure is looked at by name, to say what the name is.
    fn open_read(&self, path: &GuestPath) -> Result<WasiReader, FsError> {
        let (dir, rel) = self.locate(path)?;
        let file = match dir.open_at(PathFlags::empty(), rel, OpenFlags::empty(), DescriptorFlags::READ) {
            Ok(file) => file,
            Err(e) => {
                require_regular_file(dir, rel, path)?;
                return Err(fs_error(e));
            }
        };
        let stat = file.stat().map_err(fs_error)?;
        require_kind(stat.type_, path)?;
        Ok(WasiReader { file, size: stat.size })
    }

    fn create_dir(&self, path: &GuestPath) -> Result<(), FsError> {
        let (dir, rel) = self.locate(path)?;
        dir.create_directory_at(rel).map_err(fs_error)
    }

    fn remove_dir(&self, path: &GuestPath) -> Result<(), FsError> {
        let (dir, rel) = self.locate(path)?;
        dir.remove_directory_at(rel).map_err(fs_error)
    }

    fn list_dir(&self, path: &GuestPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let (dir, rel) = self.locate_dir(path)?;
        let opened;
        let target = if rel == "." {
            dir
        } else {
            opened = dir
                .open_at(PathFlags::empty(), rel, OpenFlags::DIRECTORY, DescriptorFlags::READ)
                .map_err(fs_error)?;
            &opened
        };
        let entries = target.read_directory().map_err(fs_error)?;
        let mut out = Vec::new();
        while let Some(entry) = entries.read_directory_entry().map_err(fs_error)? {
            out.push((entry.name, entry_kind(entry.type_)));
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &GuestPath) -> Result<(), FsError> {
        let (base, rel) = self.locate_dir(dir)?;
        if rel == "." {
            return base.sync().map_err(fs_error);
        }
        let opened = base
            .open_at(PathFlags::empty(), rel, OpenFlags::DIRECTORY, DescriptorFlags::READ)
            .map_err(fs_error)?;
        opened.sync().map_err(fs_error)
    }

    fn names_file(&self, path: &GuestPath, file: &WasiFile) -> Result<bool, FsError> {
        // The metadata hash is the file's identity (device and inode under
        // wasmtime-wasi): equal only for the very same file.
        let (dir, rel) = self.locate(path)?;
        let at_path = match dir.metadata_hash_at(PathFlags::empty(), rel) {
            Ok(h) => h,
            Err(ErrorCode::NoEntry) => return Ok(false),
            Err(e) => return Err(fs_error(e)),
        };
        let opened = file.0.metadata_hash().map_err(fs_error)?;
        Ok(at_path.lower == opened.lower && at_path.upper == opened.upper)
    }

    fn host_write_handle(&self, path: &GuestPath, file: &WasiFile) -> Result<Option<HostHandle>, FsError> {
        Ok(self
            .reopen_for_host(path, &file.0, DescriptorFlags::WRITE)?
            .map(|d| Box::new(d) as HostHandle))
    }

    fn read_only(&self) -> bool {
        *self.read_only.get_or_init(|| self.preopens_are_read_only())
    }

    /// A call into the host per name cost more than the rest of writing an
    /// inline state, so names come from a ChaCha20 generator of this
    /// instance, seeded with 32 bytes of the host's `wasi:random` (a CSPRNG)
    /// at the first name. Names stay unique as v4 UUIDs are: every instance
    /// (tenant, restart) draws its own 256-bit seed, so two instances share
    /// a name stream only by a seed collision, and files are created
    /// exclusively anyway. The seed is drawn at the first name, not at
    /// start, so a tenant start pays nothing for it.
    fn random_bytes(&self) -> [u8; 16] {
        let mut names = self.names.borrow_mut();
        let rng = names.get_or_insert_with(|| {
            let mut seed = [0u8; 32];
            seed.iter_mut()
                .zip(wasip2::random::random::get_random_bytes(32))
                .for_each(|(s, b)| *s = b);
            ChaCha20Rng::from_seed(seed)
        });
        let mut out = [0u8; 16];
        rng.fill_bytes(&mut out);
        out
    }
}
