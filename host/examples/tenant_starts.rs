//! Tenant starts for a profiler: N tenants of a pooling plugin, one after
//! another, each created in its own directory, given a worker view and
//! dropped, as the bench's tenant start does. Prints the medians; under
//! callgrind, divide a function's inclusive count by N for its cost per
//! tenant (instruction counts repeat exactly, times on a shared VM do not).
//!
//! `cargo build --release -p checkpoint-storage-host --example tenant_starts`
//! `valgrind --tool=callgrind target/release/examples/tenant_starts 300`

use checkpoint_storage_host::{Plugin, PluginOptions, StorageConfig, TenantConfig};
use std::time::{Duration, Instant};

const JOB: &str = "0123456789abcdef0123456789abcdef";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let starts: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow::anyhow!("the argument is the number of tenant starts, e.g. 300; got '{n}'"))?,
        None => 300,
    };
    let root = tempfile::tempdir()?;
    // The compile cache keeps the compilation out of the profile after the
    // first run.
    let cache = std::env::temp_dir().join("checkpoint-storage-example-cache");
    let plugin = Plugin::load_with(&PluginOptions::pooling(16).with_cache_dir(cache))?;
    let config = StorageConfig::filesystem(JOB);
    let dirs = (0..starts)
        .map(|i| {
            let dir = root.path().join(format!("t{i}"));
            std::fs::create_dir(&dir).map(|_| dir)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mut create, mut open) = (Vec::new(), Vec::new());
    for dir in dirs {
        let started = Instant::now();
        let tenant = plugin.tenant(TenantConfig::new(dir))?;
        let created = started.elapsed();
        let view = tenant.open_worker_view(&config)?;
        open.push(started.elapsed() - created);
        create.push(created);
        drop(view);
        drop(tenant);
    }
    println!(
        "{starts} tenant starts (pooling): create median {:?}, open worker view median {:?}",
        median(create),
        median(open)
    );
    Ok(())
}
