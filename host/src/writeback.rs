//! Starting the disk early on state files: after each write the host makes
//! into a state file (its own direct writes and the guest's
//! `descriptor.write`), the windows of the file that write completed are
//! handed to the kernel's writeback at once, so the sync at the stream's
//! close has only the last window left to wait for. Why and which windows:
//! [`checkpoint_storage_core::writeback`]. Set per tenant with
//! [`TenantConfig::writeback_window`](crate::TenantConfig::writeback_window).

use std::fs::File;
use std::ops::Range;

pub use checkpoint_storage_core::writeback::DEFAULT_WINDOW;

/// After a write of `len` bytes at `offset` into `file`: asks the kernel to
/// start writing back the windows of `window` bytes that the write
/// completed, without waiting for the disk. Returns the range asked for.
///
/// A hint only: should the kernel refuse it (a file system without
/// writeback, say), nothing is lost, the bytes stay written and the close's
/// sync writes them as it would have; the refusal is logged. Public so that
/// a native writer (the benchmark's baseline) follows the same policy.
pub fn after_write(file: &File, window: u64, offset: u64, len: u64) -> Option<Range<u64>> {
    let range = checkpoint_storage_core::writeback::completed(window, offset, len)?;
    match start(file, &range) {
        Ok(()) => {
            #[cfg(test)]
            ASKED.with(|asked| asked.borrow_mut().push(range.clone()));
            Some(range)
        }
        Err(e) => {
            tracing::debug!("starting writeback of bytes {range:?} was refused ({e}); the close's sync writes them");
            None
        }
    }
}

#[cfg(target_os = "linux")]
fn start(file: &File, range: &Range<u64>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(range.start), i64::try_from(range.end - range.start)) else {
        return Err(std::io::Error::other("the range is beyond the largest file offset"));
    };
    // SAFETY: a plain system call on a descriptor `file` keeps open; it
    // reads no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere the close's sync does all the writing, as before.
#[cfg(not(target_os = "linux"))]
fn start(_: &File, _: &Range<u64>) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
thread_local! {
    /// The ranges this thread asked for, for tests of the wiring.
    static ASKED: std::cell::RefCell<Vec<Range<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The ranges this thread asked the kernel to write back since the last
/// call (tests only).
#[cfg(test)]
pub(crate) fn take_asked() -> Vec<Range<u64>> {
    ASKED.with(|asked| std::mem::take(&mut *asked.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn each_completed_window_is_asked_for_once_and_the_bytes_stay_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create_new(&path).unwrap();
        take_asked();
        let data: Vec<u8> = (0..(3u32 << 16) + 5).map(|i| (i % 251) as u8).collect();
        let window = 1 << 16;
        let mut asked = Vec::new();
        for (i, chunk) in data.chunks(5000).enumerate() {
            let at = (i * 5000) as u64;
            file.write_all_at(chunk, at).unwrap();
            asked.extend(after_write(&file, window, at, chunk.len() as u64));
        }
        assert_eq!(asked, vec![0..window, window..2 * window, 2 * window..3 * window]);
        assert_eq!(take_asked(), asked);
        file.sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // Window 0: never.
        assert_eq!(after_write(&file, 0, 0, data.len() as u64), None);
        assert!(take_asked().is_empty());
    }

    #[test]
    fn a_refused_hint_is_no_error() {
        // A pipe has no writeback: the kernel refuses (ESPIPE), the write
        // before it stands.
        let (reader, writer) = std::io::pipe().unwrap();
        let writer = File::from(std::os::fd::OwnedFd::from(writer));
        take_asked();
        assert_eq!(after_write(&writer, 4096, 0, 8192), None);
        assert!(take_asked().is_empty());
        drop(reader);
        // Beyond the largest offset: refused before the kernel is asked.
        let dir = tempfile::tempdir().unwrap();
        let file = File::create_new(dir.path().join("f")).unwrap();
        assert_eq!(after_write(&file, 4096, u64::MAX - 8192, 8192), None);
    }
}
