//! Restore read throughput: reading large states back through the
//! component (`Tenant::open_input_stream` and `read_into` one reused buffer)
//! against a native read of the same bytes (`std::fs::File` and `read` into
//! one reused buffer).
//!
//! Both read the very same file (the state's, found by its handle), just
//! written, so the page cache serves it: what remains is the cost of each
//! side, which is what the component adds. The two take turns state by
//! state, so that both see the same machine conditions; medians are
//! compared.

use super::report::{Figure, Target};
use super::{BenchError, Workspace, io_error};
use checkpoint_storage_host::{StateHandle, StateScope};
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

/// Read sizes measured: a large record and the most one call returns.
const READ_SIZES: [usize; 2] = [64 << 10, 1 << 20];

/// Target of issue 12: restore reads at least this share of a native read.
const TARGET_RESTORE_READ: f64 = 0.97;

/// Median MiB/s of each side for one read size.
#[derive(Debug, Clone)]
pub struct RestoreReadResult {
    pub read_bytes: usize,
    pub states: usize,
    pub component_mib_s: f64,
    pub native_mib_s: f64,
}

fn mib_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds.max(1e-9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Writes `states` states of `data` through the component, then reads each
/// back both ways per read size.
pub fn measure(ws: &Workspace, data: &[u8], states: u64) -> Result<Vec<RestoreReadResult>, BenchError> {
    let mut written: Vec<(StateHandle, PathBuf)> = Vec::new();
    for _ in 0..states.max(1) {
        let mut stream = ws
            .factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)?;
        stream.write(data)?;
        let handle = stream
            .close_and_get_handle()?
            .ok_or_else(|| BenchError::Invalid("a restore state was empty".into()))?;
        let path = handle
            .file_path()
            .and_then(|p| ws.tenant.host_path(p))
            .ok_or_else(|| BenchError::Invalid(format!("the restore state {handle} is not a file")))?;
        written.push((handle, path));
    }
    let mut results = Vec::new();
    let mut buf = vec![0u8; READ_SIZES.iter().copied().max().unwrap_or(0)];
    for read_size in READ_SIZES {
        // One unmeasured read each way first (allocator, first calls).
        read_component(ws, &written[0].0, &mut buf[..read_size], data.len())?;
        read_native(&written[0].1, &mut buf[..read_size], data.len())?;
        let (mut component, mut native) = (Vec::new(), Vec::new());
        let buf = &mut buf[..read_size];
        for (round, (handle, path)) in written.iter().enumerate() {
            // Alternating which goes first spreads any order effect.
            let mut sides = [true, false];
            if round % 2 == 1 {
                sides.reverse();
            }
            for through_component in sides {
                let started = Instant::now();
                if through_component {
                    read_component(ws, handle, buf, data.len())?;
                    component.push(mib_s(data.len(), started.elapsed().as_secs_f64()));
                } else {
                    read_native(path, buf, data.len())?;
                    native.push(mib_s(data.len(), started.elapsed().as_secs_f64()));
                }
            }
        }
        results.push(RestoreReadResult {
            read_bytes: read_size,
            states: written.len(),
            component_mib_s: median(component),
            native_mib_s: median(native),
        });
    }
    for (handle, _) in written {
        ws.tenant.discard_state(&handle)?;
    }
    Ok(results)
}

/// Reads a whole state through the component into `buf`, reused for every
/// read, as the native side does.
fn read_component(ws: &Workspace, handle: &StateHandle, buf: &mut [u8], expected: usize) -> Result<(), BenchError> {
    let input = ws.tenant.open_input_stream(handle)?;
    let mut total = 0;
    loop {
        let n = input.read_into(buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    check_len(total, expected)
}

/// Reads a whole file natively into `buf`, reused for every read.
fn read_native(path: &std::path::Path, buf: &mut [u8], expected: usize) -> Result<(), BenchError> {
    let mut file = std::fs::File::open(path).map_err(io_error("opening a native restore state"))?;
    let mut total = 0;
    loop {
        let n = file.read(buf).map_err(io_error("reading a native restore state"))?;
        if n == 0 {
            break;
        }
        total += n;
    }
    check_len(total, expected)
}

fn check_len(read: usize, expected: usize) -> Result<(), BenchError> {
    if read != expected {
        return Err(BenchError::Invalid(format!(
            "a restore read returned {read} bytes of a {expected}-byte state"
        )));
    }
    Ok(())
}

/// The report lines: MiB/s read through the component against native.
pub fn figures(results: &[RestoreReadResult]) -> Vec<Figure> {
    results
        .iter()
        .map(|r| {
            let size = if r.read_bytes >= 1 << 20 {
                format!("{} MiB", r.read_bytes >> 20)
            } else {
                format!("{} KiB", r.read_bytes >> 10)
            };
            Figure::new(
                format!("restore read {size}"),
                format!("restore, reads of {size} ({} states)", r.states),
                r.component_mib_s,
                "MiB/s",
                "native read",
                r.native_mib_s,
            )
            .with_target(Target::MinRatio(TARGET_RESTORE_READ))
        })
        .collect()
}
