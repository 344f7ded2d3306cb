//! Resident memory per idle tenant: `count` tenants alive at once, each with
//! an open worker view that has written one small (inline) state. The growth
//! of the process's resident set divided by the tenants is the figure.

use super::{BenchError, io_error};
use checkpoint_storage_host::Plugin;
use checkpoint_storage_host::{LocationReference, StateScope, StorageConfig, WorkerView};
use checkpoint_storage_host::{Tenant, TenantConfig};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryResult {
    pub allocator: String,
    /// Tenants asked for.
    pub requested: u32,
    /// Tenants that were alive when measured (fewer if a limit was hit).
    pub alive: u32,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Growth of the anonymous part of the resident set (heap, linear memories).
    pub anon_growth_kib: u64,
    /// Growth of VmRSS per tenant.
    pub per_tenant_kib: f64,
    /// Growth of the proportional set size per tenant: a page shared by `n`
    /// mappings counts `1/n`, so the component's initial data, mapped
    /// copy-on-write into every slot from one image, counts once, not once
    /// per tenant as in VmRSS. What the tenants cost the machine.
    /// `None` where the kernel does not report it.
    #[serde(default)]
    pub pss_per_tenant_kib: Option<f64>,
    /// Why fewer than requested are alive, if so.
    pub note: Option<String>,
}

/// Resident set of this process, from /proc/self/status: (VmRSS, RssAnon) in KiB.
pub fn resident_kib() -> Result<(u64, u64), BenchError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(io_error("reading /proc/self/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .ok_or_else(|| BenchError::Invalid(format!("/proc/self/status has no {name} line")))
    };
    Ok((field("VmRSS:")?, field("RssAnon:")?))
}

/// Proportional set size of this process in KiB, from
/// /proc/self/smaps_rollup; `None` where the kernel has no such file
/// (before Linux 4.14, some sandboxes): the figure is then left out.
pub fn proportional_kib() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
}

/// One idle tenant: what a host keeps per tenant between checkpoints.
struct Idle {
    _view: WorkerView,
    _tenant: Tenant,
}

fn start_idle(plugin: &Plugin, dir: &Path, config: &StorageConfig, state: &[u8]) -> Result<Idle, BenchError> {
    let tenant = plugin.tenant(TenantConfig::new(dir))?;
    let view = tenant.open_worker_view(config)?;
    {
        let factory = view.resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
        let mut stream = factory.create_checkpoint_state_output_stream(StateScope::Exclusive)?;
        stream.write(state)?;
        stream.close_and_get_handle()?;
    }
    Ok(Idle {
        _view: view,
        _tenant: tenant,
    })
}

/// Measures `count` idle tenants; one progress step per tenant.
pub fn measure(
    plugin: &Plugin,
    allocator: &str,
    count: u32,
    root: &Path,
    job_id: &str,
    progress: &ProgressBar,
) -> Result<MemoryResult, BenchError> {
    let config = StorageConfig::filesystem(job_id);
    let state = [7_u8; 100];
    let dirs = (0..count)
        .map(|i| {
            let d = root.join(format!("t{i}"));
            std::fs::create_dir_all(&d).map(|_| d)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error("creating tenant directories"))?;
    // Warm-up: whatever is allocated once per process is not counted.
    for d in dirs.iter().take(10) {
        drop(start_idle(plugin, d, &config, &state)?);
    }
    release_free_heap();
    let (before, anon_before) = resident_kib()?;
    let pss_before = proportional_kib();
    let mut alive = Vec::with_capacity(count as usize);
    let mut note = None;
    for d in &dirs {
        match start_idle(plugin, d, &config, &state) {
            Ok(t) => alive.push(t),
            Err(e) => {
                note = Some(format!("only {} tenants fit: {e}", alive.len()));
                break;
            }
        }
        progress.inc(1);
    }
    let (after, anon_after) = resident_kib()?;
    let pss_after = proportional_kib();
    let n = alive.len() as u32;
    drop(alive);
    Ok(MemoryResult {
        allocator: allocator.to_string(),
        requested: count,
        alive: n,
        rss_before_kib: before,
        rss_after_kib: after,
        anon_growth_kib: anon_after.saturating_sub(anon_before),
        per_tenant_kib: after.saturating_sub(before) as f64 / f64::from(n.max(1)),
        pss_per_tenant_kib: pss_before
            .zip(pss_after)
            .map(|(before, after)| after.saturating_sub(before) as f64 / f64::from(n.max(1))),
        note,
    })
}

/// Hands memory the allocator holds free back to the kernel, so that the
/// tenants measured next fault in their own pages. Otherwise they would
/// reuse what earlier benchmarks freed (thousands of dropped tenants), which
/// is already resident, and the growth would depend on what ran before
/// (between runs it varied by a third).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's allocator to
    // the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
