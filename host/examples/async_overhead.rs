//! What the async API costs and what it buys, measured in one run:
//! 1. the cost per call: the same small writes through the sync API on the
//!    calling thread and through the async API (one hop to tokio's blocking
//!    pool per call), as a ratio;
//! 2. a load: 32 tenants writing and syncing, through the sync API on a
//!    thread per tenant and through the async API on a runtime with two
//!    worker threads, where a ticker task shows how late the runtime runs.
//!
//! `cargo run --release -p checkpoint-storage-host --features tokio --example async_overhead`

use checkpoint_storage_host::nonblocking::AsyncTenant;
use checkpoint_storage_host::{LocationReference, Plugin, StateScope, StorageConfig, Tenant, TenantConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const JOB: &str = "0123456789abcdef0123456789abcdef";
const WRITES: usize = 20_000;
const WRITE_SIZE: usize = 4096;
const TENANTS: usize = 32;
const STREAMS: usize = 4;
const STATE_SIZE: usize = 1 << 20;

fn tenant(plugin: &Plugin, root: &std::path::Path, name: &str) -> anyhow::Result<Tenant> {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join(JOB).join("chk-1"))?;
    std::fs::create_dir_all(dir.join(JOB).join("shared"))?;
    Ok(plugin.tenant(TenantConfig::new(dir))?)
}

/// Per-call time of `WRITES` writes through the sync API.
fn sync_writes(tenant: &Tenant) -> anyhow::Result<Duration> {
    let config = StorageConfig::filesystem(JOB).with_file_state_threshold(0);
    let f = tenant
        .open_worker_view(&config)?
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive)?;
    let data = vec![1u8; WRITE_SIZE];
    let start = Instant::now();
    for _ in 0..WRITES {
        s.write(&data)?;
    }
    let per_call = start.elapsed() / WRITES as u32;
    s.close_and_get_handle()?;
    Ok(per_call)
}

/// Per-call time of `WRITES` writes through the async API.
async fn async_writes(tenant: AsyncTenant) -> anyhow::Result<Duration> {
    let config = StorageConfig::filesystem(JOB).with_file_state_threshold(0);
    let f = tenant
        .open_worker_view(config)
        .await?
        .resolve_checkpoint_storage_location(1, LocationReference::Default)
        .await?;
    let s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).await?;
    let data = vec![1u8; WRITE_SIZE];
    let start = Instant::now();
    for _ in 0..WRITES {
        s.write(data.clone()).await?;
    }
    let per_call = start.elapsed() / WRITES as u32;
    s.close_and_get_handle().await?;
    Ok(per_call)
}

/// A task that ticks every millisecond until stopped; returns the longest
/// gap between two ticks.
fn ticker(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        let (mut last, mut max_gap) = (Instant::now(), Duration::ZERO);
        while !stop.load(Ordering::SeqCst) {
            interval.tick().await;
            max_gap = max_gap.max(last.elapsed());
            last = Instant::now();
        }
        max_gap
    })
}

/// One tenant's load: `STREAMS` streams of `STATE_SIZE`, written in 64 KiB
/// pieces, synced and closed.
fn sync_load(tenant: &Tenant) -> anyhow::Result<()> {
    let f = tenant
        .open_worker_view(&StorageConfig::filesystem(JOB))?
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
    for _ in 0..STREAMS {
        let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive)?;
        for part in vec![2u8; STATE_SIZE].chunks(64 * 1024) {
            s.write(part)?;
        }
        s.sync()?;
        s.close_and_get_handle()?;
    }
    Ok(())
}

async fn async_load(tenant: AsyncTenant) -> anyhow::Result<()> {
    let f = tenant
        .open_worker_view(StorageConfig::filesystem(JOB))
        .await?
        .resolve_checkpoint_storage_location(1, LocationReference::Default)
        .await?;
    for _ in 0..STREAMS {
        let s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).await?;
        for part in vec![2u8; STATE_SIZE].chunks(64 * 1024) {
            s.write(part).await?;
        }
        s.sync().await?;
        s.close_and_get_handle().await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let plugin = Plugin::load()?;
    let root = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;

    let sync_per_call = sync_writes(&tenant(&plugin, root.path(), "sync-calls")?)?;
    let async_tenant = AsyncTenant::from(tenant(&plugin, root.path(), "async-calls")?);
    let async_per_call = runtime.block_on(async_writes(async_tenant))?;
    println!(
        "{WRITES} writes of {WRITE_SIZE} B: sync {sync_per_call:?}/call, async {async_per_call:?}/call \
         (x{:.1})",
        async_per_call.as_secs_f64() / sync_per_call.as_secs_f64()
    );

    let tenants = |prefix: &str| -> anyhow::Result<Vec<Tenant>> {
        (0..TENANTS)
            .map(|i| tenant(&plugin, root.path(), &format!("{prefix}-{i}")))
            .collect()
    };
    // Baseline: the sync API on one OS thread per tenant. (The sync API
    // cannot run on a tokio worker thread: wasmtime-wasi's file operations
    // panic there, "Cannot start a runtime from within a runtime".)
    let threaded = tenants("threads")?;
    let start = Instant::now();
    std::thread::scope(|scope| {
        let jobs: Vec<_> = threaded.iter().map(|t| scope.spawn(move || sync_load(t))).collect();
        jobs.into_iter().try_for_each(|j| j.join().expect("no panic"))
    })?;
    let threads_time = start.elapsed();
    let nonblocking = tenants("nonblocking")?;
    let (async_time, async_gap) = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let tick = ticker(stop.clone());
        let start = Instant::now();
        let jobs: Vec<_> = nonblocking
            .into_iter()
            .map(|t| tokio::spawn(async_load(AsyncTenant::from(t))))
            .collect();
        for job in jobs {
            job.await??;
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        anyhow::Ok((elapsed, tick.await?))
    })?;
    let mib = (TENANTS * STREAMS * STATE_SIZE) >> 20;
    println!(
        "{TENANTS} tenants x {STREAMS} streams x {} MiB (64 KiB writes, sync, close), {mib} MiB:",
        STATE_SIZE >> 20
    );
    println!("  sync API, a thread per tenant:     {threads_time:?}");
    println!(
        "  async API, 2 worker threads:       {async_time:?} (x{:.2}); longest ticker gap {async_gap:?}",
        async_time.as_secs_f64() / threads_time.as_secs_f64()
    );
    Ok(())
}
