//! When to start writing a growing state file's bytes to the disk, before
//! the sync at its close.
//!
//! A state file is synced when its stream is closed, and the checkpoint
//! waits for that sync. Written as fast as the page cache takes it, a file
//! leaves all its bytes to that one sync: the disk idles while the file is
//! written, then the close waits for all of it. Asking the kernel to start
//! writing each completed window of the file as soon as it is written lets
//! the disk work while the writer goes on, so the close waits for the last
//! window only. Nothing about durability changes: the close still syncs,
//! and reports any I/O error. PostgreSQL's `checkpoint_flush_after` and
//! RocksDB's `bytes_per_sync` do the same.

use std::ops::Range;

/// Default window: large enough that the request to the kernel is rare
/// next to the writes it follows, small enough that the close's sync has
/// little left to wait for.
pub const DEFAULT_WINDOW: u64 = 1 << 20;

/// The windows of the file (`window` bytes each, aligned to multiples of
/// it) that a write of `len` bytes at `offset` completed, as one range of
/// the file to start writing back; `None` if it completed none, or if
/// `window` is 0 (never). Windows are counted by offset, so a sequential
/// writer asks once per window however its writes are cut.
pub fn completed(window: u64, offset: u64, len: u64) -> Option<Range<u64>> {
    if window == 0 || len == 0 {
        return None;
    }
    let end = offset.checked_add(len)?;
    let first = offset / window * window;
    let last = end / window * window;
    (last > first).then_some(first..last)
}

#[cfg(test)]
mod tests {
    use super::completed;

    #[test]
    fn a_write_completes_the_windows_its_end_passes() {
        let w = 1 << 20;
        // Inside the first window: nothing yet.
        assert_eq!(completed(w, 0, 4096), None);
        assert_eq!(completed(w, 4096, w - 4097), None);
        // The write that fills it asks for the whole window, also what
        // earlier writes put there.
        assert_eq!(completed(w, w - 10, 10), Some(0..w));
        assert_eq!(completed(w, w - 10, 20), Some(0..w));
        // One write over several windows asks for all it completed at once.
        assert_eq!(completed(w, 100, 3 * w), Some(0..3 * w));
        assert_eq!(completed(w, 2 * w, w), Some(2 * w..3 * w));
        assert_eq!(completed(w, 2 * w, w - 1), None);
    }

    #[test]
    fn a_sequential_writer_asks_once_per_window_whatever_its_chunks() {
        let w = 1 << 20;
        for chunk in [1u64, 64, 4096, 20 * 1024, 65536, w, 3 * w + 7] {
            let total = 5 * w + 123;
            let mut asked = Vec::new();
            let mut at = 0;
            while at < total {
                let len = chunk.min(total - at);
                asked.extend(completed(w, at, len));
                at += len;
            }
            let covered: u64 = asked.iter().map(|r| r.end - r.start).sum();
            assert_eq!(covered, 5 * w, "chunk {chunk}");
            assert!(
                asked.windows(2).all(|p| p[0].end == p[1].start),
                "chunk {chunk}: {asked:?}"
            );
            if chunk <= w {
                assert_eq!(asked.len(), 5, "chunk {chunk}");
            }
        }
    }

    #[test]
    fn window_zero_never_asks_and_huge_offsets_do_not_overflow() {
        assert_eq!(completed(0, 0, u64::MAX), None);
        assert_eq!(completed(4096, 0, 0), None);
        assert_eq!(completed(4096, u64::MAX - 10, 100), None);
        assert_eq!(
            completed(4096, u64::MAX - 5000, 5000),
            Some((u64::MAX - 5000) / 4096 * 4096..u64::MAX / 4096 * 4096)
        );
    }
}
