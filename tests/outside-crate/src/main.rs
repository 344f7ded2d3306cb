//! An embedder outside the workspace: `outside-embedder write <dir>` runs
//! three tenants through three checkpoints each and stores every
//! checkpoint's handles in its `_metadata` (the host library's manifest);
//! `outside-embedder restore <dir>` is a second process that finds each
//! checkpoint again, restores every state and checks every byte.
//!
//! Only the host library's public API is used. The component is the one
//! embedded in the library: the binary reads no file of the build tree.

use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::{
    CoordinatorView, GUEST_MOUNT, Plugin, PluginOptions, StateScope, StorageConfig, Tenant, TenantConfig,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const TENANTS: u32 = 3;
const CHECKPOINTS: u64 = 3;
/// Below Flink's default inline threshold (20 KiB): returned inline.
const INLINE_BYTES: usize = 100;
/// Above it: a file.
const FILE_BYTES: usize = 48 * 1024;

type AnyError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.as_slice() {
        [_, mode, dir] if mode == "write" => write(Path::new(dir)),
        [_, mode, dir] if mode == "restore" => restore(Path::new(dir)),
        _ => Err("usage: outside-embedder write|restore <dir>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The plugin with a compile cache inside `dir`, so the second process
/// loads the compiled component instead of compiling it again.
fn load(dir: &Path) -> Result<Plugin, AnyError> {
    let started = std::time::Instant::now();
    let plugin = Plugin::load_with(&PluginOptions::default().with_cache_dir(dir.join("compile-cache")))?;
    println!(
        "plugin loaded in {} ms ({:?})",
        started.elapsed().as_millis(),
        plugin.cache_status()
    );
    Ok(plugin)
}

fn tenant_dir(dir: &Path, tenant: u32) -> PathBuf {
    dir.join(format!("tenant-{tenant}"))
}

/// A fixed job id per tenant, so the restoring process knows it.
fn job_id(tenant: u32) -> String {
    format!("{:032x}", 0xe3be_dde2_u64 + u64::from(tenant))
}

/// The bytes of one state: different for every tenant, checkpoint and state.
fn pattern(len: usize, tenant: u32, checkpoint: u64, state: u8) -> Vec<u8> {
    let seed = tenant as usize * 131 + checkpoint as usize * 17 + state as usize;
    (0..len).map(|i| (i.wrapping_mul(31) ^ seed) as u8).collect()
}

/// The states every checkpoint writes: (name, scope, length, pattern id).
const STATES: [(&str, StateScope, usize, u8); 3] = [
    ("inline-exclusive", StateScope::Exclusive, INLINE_BYTES, 0),
    ("file-exclusive", StateScope::Exclusive, FILE_BYTES, 1),
    ("file-shared", StateScope::Shared, FILE_BYTES, 2),
];

fn write(dir: &Path) -> Result<(), AnyError> {
    let plugin = load(dir)?;
    let mut total = 0usize;
    for t in 1..=TENANTS {
        let tdir = tenant_dir(dir, t);
        std::fs::create_dir_all(&tdir)?;
        let tenant = plugin.tenant(TenantConfig::new(&tdir))?;
        let config = StorageConfig::filesystem(job_id(t));
        let coordinator = tenant.open_coordinator_view(&config, None)?;
        coordinator.initialize_base_locations_for_checkpoint()?;
        let worker = tenant.open_worker_view(&config)?;
        for id in 1..=CHECKPOINTS {
            let location = coordinator.initialize_location_for_checkpoint(id)?;
            let factory = worker.resolve_checkpoint_storage_location(id, &location.location_reference()?)?;
            let mut states = vec![];
            for (name, scope, len, p) in STATES {
                let mut stream = factory.create_checkpoint_state_output_stream(scope)?;
                stream.write(&pattern(len, t, id, p))?;
                let handle = stream
                    .close_and_get_handle()?
                    .ok_or("no handle for a non-empty state")?;
                total += len;
                states.push(NamedState {
                    name: name.to_string(),
                    handle,
                });
            }
            let manifest = CheckpointManifest {
                job_id: job_id(t),
                checkpoint_id: id,
                states,
            };
            let metadata = location.create_metadata_output_stream()?;
            metadata.write(&manifest.to_json())?;
            let done = metadata.close_and_finalize_checkpoint()?;
            println!("tenant-{t}: checkpoint {id} completed at {}", done.external_pointer);
        }
    }
    println!("wrote {total} bytes of state");
    Ok(())
}

fn restore(dir: &Path) -> Result<(), AnyError> {
    let plugin = load(dir)?;
    let mut total = 0usize;
    for t in 1..=TENANTS {
        let tenant = plugin.tenant(TenantConfig::new(tenant_dir(dir, t)))?;
        let coordinator = tenant.open_coordinator_view(&StorageConfig::filesystem(job_id(t)), None)?;
        for id in 1..=CHECKPOINTS {
            total += restore_checkpoint(&tenant, &coordinator, t, id)?;
        }
    }
    println!("restored {total} bytes of state, all equal");
    Ok(())
}

fn restore_checkpoint(tenant: &Tenant, coordinator: &CoordinatorView, t: u32, id: u64) -> Result<usize, AnyError> {
    let pointer = format!("{GUEST_MOUNT}/{}/chk-{id}", job_id(t));
    let found = coordinator.resolve_checkpoint(&pointer)?;
    let manifest = CheckpointManifest::from_json_in(&tenant.read_state(&found.metadata)?, &found.external_pointer)?;
    if manifest.checkpoint_id != id || manifest.states.len() != STATES.len() {
        return Err(format!(
            "{pointer}: manifest of checkpoint {} with {} states",
            manifest.checkpoint_id,
            manifest.states.len()
        )
        .into());
    }
    let mut bytes = 0;
    for ((name, _, len, p), state) in STATES.iter().zip(&manifest.states) {
        let data = tenant.read_state(&state.handle)?;
        if state.name != *name || data != pattern(*len, t, id, *p) {
            return Err(format!("tenant-{t} checkpoint {id}: state {name} differs from what was written").into());
        }
        bytes += data.len();
    }
    println!(
        "tenant-{t}: checkpoint {id}: {} states, {bytes} bytes, equal",
        manifest.states.len()
    );
    Ok(bytes)
}
