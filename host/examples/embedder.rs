//! A whole embedder cycle with the public API only:
//!
//! 1. load the plugin (the embedded component, with a compile cache);
//! 2. three tenants, each in its own directory: the coordinator creates the
//!    base locations and checkpoints 1..3, the tasks write inline and file
//!    state (exclusive and shared) through the worker view, the coordinator
//!    stores the handles as a manifest in `_metadata` and finalizes;
//! 3. "restart": everything is dropped, a new plugin and new tenants open the
//!    same directories, find the latest completed checkpoint, restore every
//!    state and compare the bytes;
//! 4. clean up as Flink does: discard the states of the subsumed checkpoints
//!    and dispose a checkpoint that failed.
//!
//! Run with `cargo run -p checkpoint-storage-host --example embedder`. It
//! exits non-zero on any mismatch.

use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::{
    CoordinatorView, GUEST_MOUNT, Plugin, PluginOptions, StateHandle, StateScope, StorageConfig, Tenant, TenantConfig,
    inspect,
};
use std::path::{Path, PathBuf};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const TENANTS: u32 = 3;
const CHECKPOINTS: u64 = 3;

/// The states each checkpoint writes: name, scope and size. 100 bytes stay
/// inline (below Flink's 20 KiB threshold); 64 KiB go to a file.
const STATES: [(&str, StateScope, usize); 4] = [
    ("operator/inline-exclusive", StateScope::Exclusive, 100),
    ("operator/file-exclusive", StateScope::Exclusive, 64 * 1024),
    ("operator/inline-shared", StateScope::Shared, 100),
    ("operator/file-shared", StateScope::Shared, 64 * 1024),
];

/// What the embedder keeps across the restart: where each tenant lives and
/// which job it ran (Flink's job id, which the embedder knows).
struct TenantRecord {
    dir: PathBuf,
    job: String,
}

fn main() -> Result<()> {
    let root = tempfile::tempdir()?;
    let cache = root.path().join("compile-cache");
    println!("working in {}", root.path().display());

    // ---- first life: write three checkpoints per tenant -----------------
    let records = {
        let plugin = load(&cache)?;
        let mut records = vec![];
        for t in 1..=TENANTS {
            let dir = root.path().join(format!("tenant-{t}"));
            std::fs::create_dir_all(&dir)?;
            let job = format!("{:032x}", 0xe3be_dde2_0000_u64 + u64::from(t));
            let tenant = plugin.tenant(TenantConfig::new(&dir))?;
            println!("\n== tenant-{t}: {} (job {job})", dir.display());
            write_checkpoints(&tenant, &job, t)?;
            records.push(TenantRecord { dir, job });
        }
        records
        // The plugin and every tenant are dropped here.
    };

    // ---- second life: a new plugin on the same directories ---------------
    println!("\n== restart");
    let plugin = load(&cache)?;
    let mut restored = 0usize;
    for (t, record) in (1..).zip(&records) {
        let tenant = plugin.tenant(TenantConfig::new(&record.dir))?;
        restored += restore_and_clean_up(&tenant, record, t)?;
    }
    println!("\nrestored {restored} bytes in {TENANTS} tenants, all equal");
    Ok(())
}

fn load(cache: &Path) -> Result<Plugin> {
    let started = std::time::Instant::now();
    let plugin = Plugin::load_with(&PluginOptions::default().with_cache_dir(cache))?;
    println!(
        "plugin loaded in {:.0?} (compile cache: {:?})",
        started.elapsed(),
        plugin.cache_status()
    );
    Ok(plugin)
}

/// Deterministic bytes of one state, distinct per tenant, checkpoint and state.
fn pattern(len: usize, tenant: u32, checkpoint: u64, state: usize) -> Vec<u8> {
    let seed = (tenant as usize) * 131 + (checkpoint as usize) * 17 + state;
    (0..len).map(|i| (i.wrapping_mul(31) ^ seed) as u8).collect()
}

fn write_checkpoints(tenant: &Tenant, job: &str, t: u32) -> Result<()> {
    let config = StorageConfig::filesystem(job);
    // Job manager side: the coordinator view creates the locations.
    let coordinator = tenant.open_coordinator_view(&config, None)?;
    coordinator.initialize_base_locations_for_checkpoint()?;
    // Task side: the worker view resolves the reference each checkpoint
    // barrier carries.
    let worker = tenant.open_worker_view(&config)?;
    for id in 1..=CHECKPOINTS {
        let location = coordinator.initialize_location_for_checkpoint(id)?;
        let factory = worker.resolve_checkpoint_storage_location(id, &location.location_reference()?)?;
        let mut states = vec![];
        for (i, (name, scope, len)) in STATES.into_iter().enumerate() {
            let mut stream = factory.create_checkpoint_state_output_stream(scope)?;
            stream.write(&pattern(len, t, id, i))?;
            let handle = stream
                .close_and_get_handle()?
                .ok_or_else(|| format!("{name}: no handle for {len} bytes"))?;
            println!("  checkpoint {id} {name}: {handle}");
            states.push(NamedState {
                name: name.to_string(),
                handle,
            });
        }
        // Job manager side again: the handles go into `_metadata`.
        let manifest = CheckpointManifest {
            job_id: job.to_string(),
            checkpoint_id: id,
            states,
        };
        let metadata = location.create_metadata_output_stream()?;
        metadata.write(&manifest.to_json())?;
        let completed = metadata.close_and_finalize_checkpoint()?;
        println!("  checkpoint {id} completed: {}", completed.external_pointer);
    }
    Ok(())
}

/// The completed checkpoints of `job` in the tenant's directory (those with
/// a `_metadata`), as external pointers, oldest first.
///
/// LISTING: the library has no call that lists completed checkpoints yet,
/// so this reads the host-side inventory (`inspect`). Replace it with the
/// listing API once the library has one.
fn completed_checkpoints(tenant: &Tenant, job: &str) -> Result<Vec<(u64, String)>> {
    let inventory = inspect::inspect(tenant.dir())?;
    let job_info = inventory
        .jobs
        .iter()
        .find(|j| j.job_id == job)
        .ok_or_else(|| format!("job {job} not found in {}", tenant.dir().display()))?;
    let mut found: Vec<(u64, String)> = job_info
        .checkpoints
        .iter()
        .filter(|c| c.metadata_bytes.is_some())
        .map(|c| (c.id, format!("{GUEST_MOUNT}/{}", c.path)))
        .collect();
    found.sort();
    Ok(found)
}

fn restore_and_clean_up(tenant: &Tenant, record: &TenantRecord, t: u32) -> Result<usize> {
    println!("\n== tenant-{t}: {}", record.dir.display());
    let config = StorageConfig::filesystem(&record.job);
    let coordinator = tenant.open_coordinator_view(&config, None)?;
    let completed = completed_checkpoints(tenant, &record.job)?;
    let Some((latest, latest_pointer)) = completed.last().cloned() else {
        return Err(format!("tenant-{t}: no completed checkpoint").into());
    };
    println!(
        "  completed checkpoints: {:?}",
        completed.iter().map(|c| c.0).collect::<Vec<_>>()
    );
    if latest != CHECKPOINTS {
        return Err(format!("tenant-{t}: latest completed checkpoint is {latest}, expected {CHECKPOINTS}").into());
    }

    // Restore: resolve the pointer, load the manifest, read every state.
    let (_, manifest) = load_manifest(tenant, &coordinator, &latest_pointer)?;
    if manifest.states.len() != STATES.len() {
        return Err(format!(
            "tenant-{t}: {} states in the manifest, {} written",
            manifest.states.len(),
            STATES.len()
        )
        .into());
    }
    let mut bytes = 0;
    for (i, ((name, _, len), state)) in STATES.iter().zip(&manifest.states).enumerate() {
        let data = tenant.read_state(&state.handle)?;
        if state.name != *name || data != pattern(*len, t, latest, i) {
            return Err(format!(
                "tenant-{t} checkpoint {latest}: state {} differs from what was written",
                state.name
            )
            .into());
        }
        bytes += data.len();
    }
    println!(
        "  restored checkpoint {latest}: {} states, {bytes} bytes, all equal",
        manifest.states.len()
    );

    // Subsumed checkpoints: discard their states (each checkpoint here wrote
    // its own shared state, so none is still referenced), then their
    // metadata, so they no longer count as completed.
    for (id, pointer) in &completed[..completed.len() - 1] {
        let (metadata, old) = load_manifest(tenant, &coordinator, pointer)?;
        for handle in old.states.iter().map(|s| &s.handle).chain([&metadata]) {
            tenant.discard_state(handle)?;
            expect_gone(tenant, handle)?;
        }
        println!(
            "  checkpoint {id} subsumed: {} states and its metadata discarded",
            old.states.len()
        );
    }

    // A checkpoint that fails after the restart: its directory goes, the
    // restored checkpoint stays.
    let failed_id = latest + 1;
    let location = coordinator.initialize_location_for_checkpoint(failed_id)?;
    let worker = tenant.open_worker_view(&config)?;
    let factory = worker.resolve_checkpoint_storage_location(failed_id, &location.location_reference()?)?;
    let partial = factory
        .write_state(StateScope::Exclusive, &pattern(64 * 1024, t, failed_id, 0))?
        .ok_or("no handle for the failed checkpoint's state")?;
    let failed_dir = location.checkpoint_directory()?;
    location.dispose_on_failure()?;
    expect_gone(tenant, &partial)?;
    let host_dir = tenant
        .host_path(&failed_dir)
        .ok_or("checkpoint directory outside the tenant")?;
    if host_dir.exists() {
        return Err(format!("{} still exists after dispose_on_failure", host_dir.display()).into());
    }
    println!("  checkpoint {failed_id} failed and was disposed: {failed_dir} is gone");
    let left: Vec<u64> = completed_checkpoints(tenant, &record.job)?
        .iter()
        .map(|c| c.0)
        .collect();
    if left != [latest] {
        return Err(format!("tenant-{t}: completed checkpoints left {left:?}, expected [{latest}]").into());
    }
    println!("  completed checkpoints left: {left:?}");
    Ok(bytes)
}

fn load_manifest(
    tenant: &Tenant,
    coordinator: &CoordinatorView,
    pointer: &str,
) -> Result<(StateHandle, CheckpointManifest)> {
    let found = coordinator.resolve_checkpoint(pointer)?;
    let bytes = tenant.read_state(&found.metadata)?;
    let manifest = CheckpointManifest::from_json_in(&bytes, &found.external_pointer)?;
    Ok((found.metadata, manifest))
}

/// A discarded file state's file no longer exists (inline state has none).
fn expect_gone(tenant: &Tenant, handle: &StateHandle) -> Result<()> {
    if let Some(path) = handle.file_path() {
        let host = tenant.host_path(path).ok_or("state path outside the tenant")?;
        if host.exists() {
            return Err(format!("{} still exists after it was discarded", host.display()).into());
        }
    }
    Ok(())
}
