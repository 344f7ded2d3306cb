//! What the directory fsync at close costs: a state file closed the way the
//! component closes it (write, fsync, fsync of its directory) against
//! the same without the directory fsync. Samples of the two alternate, so
//! that both see the same disk conditions; medians are compared.

use super::report::Figure;
use super::{BenchError, io_error};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Bytes of each file: a typical small state file (above the inline
/// threshold).
const FILE_BYTES: usize = 64 << 10;

/// Closes per second with and without the directory fsync.
#[derive(Debug, Clone)]
pub struct DirSyncResult {
    pub with_dir_sync_per_s: f64,
    pub file_sync_only_per_s: f64,
}

fn close_one(dir: &Path, data: &[u8], sync_dir: Option<&std::fs::File>) -> Result<f64, BenchError> {
    let started = Instant::now();
    let path = dir.join(uuid::Uuid::new_v4().to_string());
    let mut f = std::fs::File::create_new(&path).map_err(io_error("dir-sync create"))?;
    f.write_all(data).map_err(io_error("dir-sync write"))?;
    f.sync_all().map_err(io_error("dir-sync fsync of the file"))?;
    if let Some(d) = sync_dir {
        d.sync_all().map_err(io_error("dir-sync fsync of the directory"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).map_err(io_error("dir-sync remove"))?;
    Ok(elapsed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `samples` closes each way, in `dir` (created).
pub fn measure(dir: &Path, samples: u32) -> Result<DirSyncResult, BenchError> {
    std::fs::create_dir_all(dir).map_err(io_error("creating the dir-sync directory"))?;
    let handle = std::fs::File::open(dir).map_err(io_error("opening the dir-sync directory"))?;
    let data = super::pattern(FILE_BYTES);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..samples.max(1) {
        with.push(close_one(dir, &data, Some(&handle))?);
        without.push(close_one(dir, &data, None)?);
    }
    Ok(DirSyncResult {
        with_dir_sync_per_s: 1.0 / median(with).max(f64::MIN_POSITIVE),
        file_sync_only_per_s: 1.0 / median(without).max(f64::MIN_POSITIVE),
    })
}

/// The report line: closes/s with the directory fsync, against without.
pub fn figure(r: &DirSyncResult) -> Figure {
    Figure::new(
        "dir fsync".to_string(),
        "64 KiB file closes with directory fsync (native)".to_string(),
        r.with_dir_sync_per_s,
        "closes/s",
        "file fsync only",
        r.file_sync_only_per_s,
    )
}
