//! The host's own reads and writes of a file the guest handed over (WIT
//! `prepare-direct-write`, `open-direct-read`): large state moves between
//! the caller's memory and the file without passing through the guest's.
//!
//! The sandbox holds because the host never opens anything itself: it only
//! uses descriptors the guest opened in its preopen (through the same
//! `open-at` every guest file goes through) and returned from a call. Such
//! a descriptor is taken out of the tenant's resource table at once, so
//! the guest cannot use or drop it again, and it is checked as
//! wasmtime-wasi checks a descriptor before a `write` or `read`: a file (not
//! a directory), opened for the access, whose preopen allows it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::filesystem::{Descriptor, OpenMode};

/// Takes the descriptor `handed` out of `table` and returns its file if it
/// may be written (`write`) or read: `None` for anything else (the caller
/// then goes through the guest).
pub(crate) fn take_file(table: &mut ResourceTable, handed: Resource<Descriptor>, write: bool) -> Option<Arc<File>> {
    match table.delete(handed).ok()? {
        Descriptor::File(f) if write && f.open_mode.contains(OpenMode::WRITE) && !f.perms.write_not_permitted() => {
            Some(f.file.clone())
        }
        Descriptor::File(f) if !write && f.open_mode.contains(OpenMode::READ) => Some(f.file.clone()),
        _ => None,
    }
}

/// Writes all of `data` at `offset`.
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    file.write_all_at(data, offset)
}

/// One positional read into `buf`; returns how many bytes (0 at the end).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Appends up to `len` bytes read at `offset` to `out`, without zeroing
/// the room first; fewer only at the end of the file. Returns how many.
pub(crate) fn read_at_into(file: &File, out: &mut Vec<u8>, len: usize, offset: u64) -> std::io::Result<usize> {
    out.reserve(len);
    let start = out.len();
    let mut filled = 0;
    while filled < len {
        // `out` grows with every piece read, so its spare room is what is left.
        let room = &mut out.spare_capacity_mut()[..len - filled];
        let at = offset + filled as u64;
        // SAFETY: `room` is `len - filled` bytes of spare capacity owned by
        // `out`; pread writes at most that many bytes into it and returns
        // how many it wrote, which are then initialised.
        let n = unsafe { libc::pread(file_fd(file), room.as_mut_ptr().cast(), room.len(), at as libc::off_t) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        filled += n as usize;
        // SAFETY: the first `filled` bytes after `start` were written by pread.
        unsafe { out.set_len(start + filled) };
    }
    Ok(filled)
}

fn file_fd(file: &File) -> libc::c_int {
    use std::os::fd::AsRawFd;
    file.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_append_what_is_there_and_stop_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let mut out = b"ab".to_vec();
        assert_eq!(read_at_into(&file, &mut out, 4, 3).unwrap(), 4);
        assert_eq!(out, b"ab3456");
        assert_eq!(read_at_into(&file, &mut out, 100, 8).unwrap(), 2);
        assert_eq!(out, b"ab345689");
        assert_eq!(read_at_into(&file, &mut out, 5, 10).unwrap(), 0);
        // A file opened for writing only: the OS refuses the read.
        let write_only = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(read_at_into(&write_only, &mut out, 1, 0).is_err());
        assert_eq!(out, b"ab345689", "nothing appended on failure");
    }

    #[test]
    fn only_files_opened_for_the_access_are_taken() {
        use wasmtime_wasi::filesystem::{Dir, File as WasiFile, FsPerms};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let mut table = ResourceTable::new();
        let open = |mode, perms| {
            Descriptor::File(WasiFile::new(
                std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap(),
                perms,
                mode,
                true,
            ))
        };
        let rw = table
            .push(open(OpenMode::READ | OpenMode::WRITE, FsPerms::ReadWrite))
            .unwrap();
        assert!(take_file(&mut table, rw, true).is_some());
        let read_only = table.push(open(OpenMode::READ, FsPerms::ReadWrite)).unwrap();
        assert!(take_file(&mut table, read_only, true).is_none());
        let not_permitted = table.push(open(OpenMode::WRITE, FsPerms::ReadOnly)).unwrap();
        assert!(take_file(&mut table, not_permitted, true).is_none());
        let write_only = table.push(open(OpenMode::WRITE, FsPerms::ReadWrite)).unwrap();
        assert!(take_file(&mut table, write_only, false).is_none());
        let a_dir = Descriptor::Dir(Dir::new(
            File::open(dir.path()).unwrap(),
            FsPerms::ReadWrite,
            OpenMode::all(),
            true,
        ));
        let a_dir = table.push(a_dir).unwrap();
        assert!(take_file(&mut table, a_dir, false).is_none());
        assert!(table.is_empty(), "every descriptor left the table");
    }
}
