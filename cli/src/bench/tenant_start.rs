//! Tenant start: create a tenant (store, WASI context, preopen, instance)
//! and open its worker view, timed per tenant. Each tenant is dropped right
//! after its sample, outside the timing, as a host that churns tenants would.

use super::{BenchError, io_error};
use checkpoint_storage_host::Plugin;
use checkpoint_storage_host::StorageConfig;
use checkpoint_storage_host::TenantConfig;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Unmeasured starts before the samples.
const WARM_UP: u32 = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartResult {
    pub allocator: String,
    pub samples: u32,
    pub median_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    /// Median of the tenant creation alone (store, WASI, instance).
    pub create_median_us: f64,
    /// Median of opening the worker view alone (one call into the guest).
    pub open_view_median_us: f64,
    /// Median of dropping the tenant (not part of the start; with pooling
    /// this is where the slot's dirty pages are reset for the next tenant).
    #[serde(default)]
    pub drop_median_us: f64,
}

/// `samples` timed starts; one progress step each. Directories go under `root`.
pub fn measure(
    plugin: &Plugin,
    allocator: &str,
    samples: u32,
    root: &Path,
    job_id: &str,
    progress: &ProgressBar,
) -> Result<StartResult, BenchError> {
    let dirs = (0..samples + WARM_UP)
        .map(|i| {
            let d = root.join(format!("t{i}"));
            std::fs::create_dir_all(&d).map(|_| d)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error("creating tenant directories"))?;
    let config = StorageConfig::filesystem(job_id);
    let mut micros = Vec::with_capacity(samples as usize);
    let (mut create, mut open, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for (i, dir) in dirs.into_iter().enumerate() {
        let started = Instant::now();
        let tenant = plugin.tenant(TenantConfig::new(dir))?;
        let created = started.elapsed();
        let view = tenant.open_worker_view(&config)?;
        let elapsed = started.elapsed();
        drop(view);
        let dropping = Instant::now();
        drop(tenant);
        let drop_time = dropping.elapsed();
        if i >= WARM_UP as usize {
            dropped.push(drop_time.as_secs_f64() * 1e6);
            micros.push(elapsed.as_secs_f64() * 1e6);
            create.push(created.as_secs_f64() * 1e6);
            open.push((elapsed - created).as_secs_f64() * 1e6);
            progress.inc(1);
        }
    }
    for v in [&mut create, &mut open, &mut dropped] {
        v.sort_by(f64::total_cmp);
    }
    Ok(StartResult {
        create_median_us: percentile(&create, 0.5),
        open_view_median_us: percentile(&open, 0.5),
        drop_median_us: percentile(&dropped, 0.5),
        ..summary(allocator, samples, micros)
    })
}

/// The native equivalent of a tenant start: what the host does outside the
/// sandbox for one (make the path absolute and open the directory, as the
/// preopen does).
pub fn measure_native(samples: u32, root: &Path) -> Result<StartResult, BenchError> {
    let dirs = (0..samples + WARM_UP)
        .map(|i| {
            let d = root.join(format!("n{i}"));
            std::fs::create_dir_all(&d).map(|_| d)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error("creating native tenant directories"))?;
    let mut micros = Vec::with_capacity(samples as usize);
    for (i, dir) in dirs.into_iter().enumerate() {
        let started = Instant::now();
        let dir = std::path::absolute(&dir).map_err(io_error("resolving a directory"))?;
        let handle = std::fs::File::open(&dir).map_err(io_error("opening a directory"))?;
        std::hint::black_box((&dir, &handle));
        let elapsed = started.elapsed();
        if i >= WARM_UP as usize {
            micros.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    Ok(summary("native", samples, micros))
}

fn summary(allocator: &str, samples: u32, mut micros: Vec<f64>) -> StartResult {
    micros.sort_by(f64::total_cmp);
    StartResult {
        allocator: allocator.to_string(),
        samples,
        median_us: percentile(&micros, 0.50),
        p99_us: percentile(&micros, 0.99),
        mean_us: micros.iter().sum::<f64>() / micros.len().max(1) as f64,
        create_median_us: 0.0,
        open_view_median_us: 0.0,
        drop_median_us: 0.0,
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
