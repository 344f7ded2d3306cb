//! The lifecycle part of `demo`: three checkpoints with
//! `execution.checkpointing.num-retained` = 2. The first is subsumed: its
//! exclusive directory and the shared files no retained checkpoint uses are
//! deleted; the two retained checkpoints restore in a fresh instance.

use anyhow::{Context, Result, ensure};
use checkpoint_storage_host::checkpoint_store::{CompletedCheckpointStore, NUM_RETAINED_OPTION};
use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::{Plugin, StateScope, StorageConfig, Tenant, TenantConfig};
use std::path::Path;

const NUM_RETAINED: u32 = 2;
/// Above the inline threshold, so every state is a file.
const STATE_BYTES: usize = 30 * 1024;

fn data(seed: u8) -> Vec<u8> {
    (0..STATE_BYTES)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Writes checkpoint `id`: an exclusive state, new shared states
/// `shared-<n>` and the shared states of earlier checkpoints it still uses
/// (incremental).
fn write_checkpoint(
    tenant: &Tenant,
    store: &CompletedCheckpointStore,
    config: &StorageConfig,
    id: u64,
    new_shared: &[u8],
    reused: &[NamedState],
) -> Result<(checkpoint_storage_host::CompletedCheckpoint, Vec<NamedState>)> {
    let location = store.coordinator_view().initialize_location_for_checkpoint(id)?;
    let factory = tenant
        .open_worker_view(config)?
        .resolve_checkpoint_storage_location(id, &location.location_reference()?)?;
    let mut states = vec![];
    let exclusive = (format!("exclusive-{id}"), StateScope::Exclusive, id as u8);
    let shared = new_shared
        .iter()
        .map(|n| (format!("shared-{n}"), StateScope::Shared, 100 + n));
    for (name, scope, seed) in std::iter::once(exclusive).chain(shared) {
        let handle = factory.write_state(scope, &data(seed))?.context("a handle")?;
        states.push(NamedState { name, handle });
    }
    states.extend(reused.iter().cloned());
    let manifest = CheckpointManifest {
        job_id: config.job_id.clone(),
        checkpoint_id: id,
        states: states.clone(),
    };
    let metadata = location.create_metadata_output_stream()?;
    metadata.write(&manifest.to_json())?;
    Ok((metadata.close_and_finalize_checkpoint()?, states))
}

fn seed_of(name: &str) -> u8 {
    let (kind, id) = name.rsplit_once('-').expect("kind-id");
    let id: u8 = id.parse().expect("an id");
    if kind == "shared" { 100 + id } else { id }
}

fn exists(tenant: &Tenant, state: &NamedState) -> bool {
    state
        .handle
        .file_path()
        .and_then(|p| tenant.host_path(p))
        .is_some_and(|p| p.exists())
}

pub fn run(plugin: &Plugin, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tenant = plugin.tenant(TenantConfig::new(dir))?;
    let job = uuid::Uuid::new_v4().simple().to_string();
    let config = StorageConfig::filesystem(&job);
    println!(
        "\n=== lifecycle: {} (job {job}), {NUM_RETAINED_OPTION} = {NUM_RETAINED}",
        tenant.dir().display()
    );
    let mut store = CompletedCheckpointStore::recover(&tenant, &config, None, NUM_RETAINED)?;
    store.coordinator_view().initialize_base_locations_for_checkpoint()?;

    // 2 still uses shared-11 of 1; 3 still uses shared-2 of 2.
    let (c1, s1) = write_checkpoint(&tenant, &store, &config, 1, &[1, 11], &[])?;
    let (c2, s2) = write_checkpoint(&tenant, &store, &config, 2, &[2], &s1[2..3])?;
    let (c3, s3) = write_checkpoint(&tenant, &store, &config, 3, &[3], &s2[1..2])?;
    for (id, completed, states) in [(1, &c1, &s1), (2, &c2, &s2), (3, &c3, &s3)] {
        let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
        let outcome = store.add(completed)?;
        println!("checkpoint {id} completed, references {}", names.join(", "));
        for f in &outcome.failures {
            println!("  could not delete: {f}");
        }
        if !outcome.subsumed.is_empty() {
            println!(
                "  subsumed checkpoint {:?}: chk dir discarded, {} unreferenced shared file(s) deleted",
                outcome.subsumed,
                outcome.discarded_shared.len()
            );
        }
    }
    ensure!(
        store.checkpoint_ids() == [2, 3],
        "retained {:?}",
        store.checkpoint_ids()
    );
    ensure!(!tenant.dir().join(&job).join("chk-1").exists(), "chk-1 is gone");
    ensure!(
        !exists(&tenant, &s1[0]) && !exists(&tenant, &s1[1]),
        "checkpoint 1's own files are gone"
    );
    ensure!(
        exists(&tenant, &s1[2]),
        "shared-11, still used by checkpoint 2, is kept"
    );
    println!("on disk: chk-1/ gone, exclusive-1 and shared-1 gone; shared-11 kept (checkpoint 2 uses it)");

    // A fresh instance recovers the store from the `_metadata` manifests.
    let fresh = plugin.tenant(TenantConfig::new(tenant.dir()))?;
    let recovered = CompletedCheckpointStore::recover(&fresh, &config, None, NUM_RETAINED)?;
    println!("recovered in a fresh instance, newest first:");
    for c in recovered.checkpoints() {
        let mut bytes = 0;
        for s in &c.manifest.states {
            let read = fresh.read_state(&s.handle)?;
            ensure!(read == data(seed_of(&s.name)), "state {} differs", s.name);
            bytes += read.len();
        }
        println!(
            "  checkpoint {} ({}): {} states, {bytes} bytes restored, every byte equal",
            c.checkpoint_id,
            c.checkpoint.external_pointer,
            c.manifest.states.len()
        );
    }
    ensure!(recovered.latest().map(|c| c.checkpoint_id) == Some(3), "latest is 3");
    Ok(())
}
