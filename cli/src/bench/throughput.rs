//! Stream write throughput per chunk size: the component (one call per
//! chunk, and with host-side batching) against the native policy, and the
//! largest chunk size against plain large writes (the disk baseline: the
//! whole stream in one `write`, then fsync, leaving all of the writing to
//! the fsync as a program that does not start writeback early does; the
//! streams, native and component alike, start it every window, see
//! `checkpoint_storage_host::writeback`, and so may beat it). Chunks smaller
//! than the batch are also written natively into a plain batch (a `Vec` of
//! the batch size, each full batch one positional write, the same
//! writeback): the least any stream must do that takes small writes and
//! copies them, hence the ceiling of every batching design.
//!
//! Every stream is timed from its creation to its handle (fsync included),
//! and the variants take turns stream by stream, so all of them see the same
//! disk and page-cache conditions; files are deleted between streams,
//! outside the timing.

use super::native::{NativeHandle, NativeStream};
use super::{BenchError, Workspace, io_error};
use checkpoint_storage_host::BufferedStateOutputStream;
use checkpoint_storage_host::StateScope;
use checkpoint_storage_host::writeback;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The ways of writing one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The policy in native Rust.
    Native,
    /// Through the component, one `write` call per chunk.
    Component,
    /// Through the component with a host-side batch.
    Batched,
    /// Plain `write` of the whole stream into a new file, then fsync.
    Disk,
    /// Native: chunks copied into a plain batch, full batches written with
    /// one positional write each and the host's writeback policy, then
    /// fsync.
    NativeBatch,
}

/// Throughput of each variant for one chunk size: the median over its
/// streams (MiB/s), robust to the disk's stalls from other processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThroughputResult {
    pub chunk_bytes: usize,
    pub streams: u64,
    pub bytes_per_variant: u64,
    pub native_mib_s: f64,
    pub component_mib_s: f64,
    pub batched_mib_s: f64,
    /// Set for the largest chunk size only.
    pub disk_mib_s: Option<f64>,
    /// Set for chunks smaller than the batch only.
    #[serde(default)]
    pub native_batch_mib_s: Option<f64>,
}

/// Per-stream throughputs of one variant.
#[derive(Default)]
struct Tally(Vec<f64>);

impl Tally {
    fn add(&mut self, bytes: usize, time: Duration) {
        self.0
            .push(bytes as f64 / (1024.0 * 1024.0) / time.as_secs_f64().max(1e-9));
    }

    fn median_mib_s(&mut self) -> f64 {
        self.0.sort_by(f64::total_cmp);
        self.0.get(self.0.len() / 2).copied().unwrap_or_default()
    }
}

/// What the throughput runs share.
pub struct Setup<'a> {
    pub ws: &'a Workspace,
    pub data: &'a [u8],
    pub batch_size: usize,
}

impl Setup<'_> {
    /// Measures one chunk size: `streams` streams of `data.len()` bytes per
    /// variant, after one unmeasured warm-up stream each.
    pub fn measure(
        &self,
        chunk: usize,
        streams: u64,
        with_disk: bool,
        progress: &ProgressBar,
    ) -> Result<ThroughputResult, BenchError> {
        let mut variants = vec![Variant::Native, Variant::Component, Variant::Batched];
        if with_disk {
            variants.push(Variant::Disk);
        }
        if chunk < self.batch_size {
            variants.push(Variant::NativeBatch);
        }
        let mut tallies: Vec<Tally> = variants.iter().map(|_| Tally::default()).collect();
        for &v in &variants {
            self.stream(v, chunk)?;
        }
        for round in 0..streams {
            // Rotating the order spreads any position effect over all variants.
            for k in 0..variants.len() {
                let i = (k + round as usize) % variants.len();
                let time = self.stream(variants[i], chunk)?;
                tallies[i].add(self.data.len(), time);
            }
            progress.inc(1);
        }
        let mut of = |v: Variant| variants.iter().position(|&x| x == v).map(|i| tallies[i].median_mib_s());
        Ok(ThroughputResult {
            chunk_bytes: chunk,
            streams,
            bytes_per_variant: streams * self.data.len() as u64,
            native_mib_s: of(Variant::Native).unwrap_or_default(),
            component_mib_s: of(Variant::Component).unwrap_or_default(),
            batched_mib_s: of(Variant::Batched).unwrap_or_default(),
            disk_mib_s: of(Variant::Disk),
            native_batch_mib_s: of(Variant::NativeBatch),
        })
    }

    /// Writes one stream, returns its time, deletes its file.
    fn stream(&self, variant: Variant, chunk: usize) -> Result<Duration, BenchError> {
        let ws = self.ws;
        let started = Instant::now();
        let file = match variant {
            Variant::Native => {
                let mut s = NativeStream::new(&ws.native_dir, ws.threshold, ws.buffer_size);
                for c in self.data.chunks(chunk) {
                    s.write(c).map_err(io_error("native stream write"))?;
                }
                match s.close_and_get_handle().map_err(io_error("native stream close"))? {
                    Some(NativeHandle::File { path, .. }) => Some(path),
                    _ => None,
                }
            }
            Variant::Component => {
                let mut s = ws
                    .factory
                    .create_checkpoint_state_output_stream(StateScope::Exclusive)?;
                for c in self.data.chunks(chunk) {
                    s.write(c)?;
                }
                let handle = s.close_and_get_handle()?;

                handle.and_then(|h| h.file_path().and_then(|p| ws.tenant.host_path(p)))
            }
            Variant::Batched => {
                let s = ws
                    .factory
                    .create_checkpoint_state_output_stream(StateScope::Exclusive)?;
                let mut s = BufferedStateOutputStream::with_capacity(self.batch_size, s);
                for c in self.data.chunks(chunk) {
                    s.append(c)?;
                }
                let handle = s.close_and_get_handle()?;

                handle.and_then(|h| h.file_path().and_then(|p| ws.tenant.host_path(p)))
            }
            Variant::Disk => {
                let path = ws.disk_dir.join(uuid::Uuid::new_v4().to_string());
                let mut f = std::fs::File::create_new(&path).map_err(io_error("disk baseline create"))?;
                f.write_all(self.data).map_err(io_error("disk baseline write"))?;
                f.sync_all().map_err(io_error("disk baseline fsync"))?;
                Some(path)
            }
            Variant::NativeBatch => {
                use std::os::unix::fs::FileExt;
                let path = ws.disk_dir.join(uuid::Uuid::new_v4().to_string());
                let f = std::fs::File::create_new(&path).map_err(io_error("native batch create"))?;
                let mut batch = Vec::with_capacity(self.batch_size);
                let mut at = 0;
                let write = |batch: &[u8], at: u64| {
                    f.write_all_at(batch, at).map_err(io_error("native batch write"))?;
                    writeback::after_write(&f, writeback::DEFAULT_WINDOW, at, batch.len() as u64);
                    Ok::<_, BenchError>(())
                };
                for c in self.data.chunks(chunk) {
                    if batch.len() + c.len() > self.batch_size {
                        write(&batch, at)?;
                        at += batch.len() as u64;
                        batch.clear();
                    }
                    batch.extend_from_slice(c);
                }
                write(&batch, at)?;
                f.sync_all().map_err(io_error("native batch fsync"))?;
                Some(path)
            }
        };
        let elapsed = started.elapsed();
        remove(file)?;
        Ok(elapsed)
    }
}

fn remove(file: Option<PathBuf>) -> Result<(), BenchError> {
    match file {
        Some(path) => std::fs::remove_file(&path).map_err(io_error("removing a benchmark file")),
        None => Ok(()),
    }
}
