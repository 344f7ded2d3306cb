//! `demo --file-merging`: one checkpoint of 1,000 small states written with
//! file merging (FLIP-306) into a handful of physical files, then restored
//! in a fresh instance with every byte checked.

use anyhow::{Context, Result, ensure};
use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::{
    FileMergingOptions, LocationReference, Plugin, StateScope, StorageConfig, SubtaskKey, Tenant, TenantConfig,
};

const STATES: usize = 1000;
const SUBTASKS: u32 = 4;

/// Size of state `i`: 100 B to 4 KiB.
fn size_of(i: usize) -> usize {
    100 + (i * 7919) % 4000
}

fn state_bytes(i: usize) -> Vec<u8> {
    (0..size_of(i))
        .map(|b| (b as u32).wrapping_mul(31).wrapping_add(i as u32) as u8)
        .collect()
}

pub fn run(plugin: &Plugin, tenant: &Tenant) -> Result<()> {
    let job = uuid::Uuid::new_v4().simple().to_string();
    let config = StorageConfig::filesystem(&job);
    println!("job {job}, file merging on (Flink's defaults otherwise)");
    let coordinator = tenant.open_coordinator_view(&config, None)?;
    coordinator.initialize_base_locations_for_checkpoint()?;
    let location = coordinator.initialize_location_for_checkpoint(1)?;

    let manager = tenant.open_file_merging_manager(&config, "demo-tm", &FileMergingOptions::enabled())?;
    let subtasks: Vec<_> = (0..SUBTASKS)
        .map(|i| SubtaskKey::new("9f8e7d6c5b4a39281706f5e4d3c2b1a0", i, SUBTASKS))
        .collect();
    let mut factories = vec![];
    for s in &subtasks {
        manager.register_subtask(s)?;
        factories.push(manager.resolve_checkpoint_storage_location(s, 1, &LocationReference::Default)?);
    }
    let mut states = vec![];
    let mut total = 0;
    for i in 0..STATES {
        // Every subtask writes both scopes: one shared file each, one exclusive file for all.
        let scope = if (i / SUBTASKS as usize).is_multiple_of(2) {
            StateScope::Shared
        } else {
            StateScope::Exclusive
        };
        let data = state_bytes(i);
        total += data.len();
        let handle = factories[i % factories.len()]
            .write_state(scope, &data)?
            .context("a handle")?;
        if i < 3 {
            println!("  state-{i} ({} B): {handle}", data.len());
        }
        states.push(NamedState {
            name: format!("state-{i}"),
            handle,
        });
    }
    let manifest = CheckpointManifest {
        job_id: job.clone(),
        checkpoint_id: 1,
        states,
    };
    let metadata = location.create_metadata_output_stream()?;
    metadata.write(&manifest.to_json())?;
    let done = metadata.close_and_finalize_checkpoint()?;
    for s in &subtasks {
        manager.notify_checkpoint_complete(s, 1)?;
    }
    let stat = manager.space_stat()?;
    println!(
        "  {STATES} states, {total} bytes, in {} physical files of {} bytes; completed: {}",
        stat.physical_file_count, stat.physical_file_size, done.external_pointer
    );

    let fresh = plugin.tenant(TenantConfig::new(tenant.dir()))?;
    let found = fresh
        .open_coordinator_view(&config, None)?
        .resolve_checkpoint(&done.external_pointer)?;
    let restored = CheckpointManifest::from_json_in(&fresh.read_state(&found.metadata)?, &found.external_pointer)?;
    let mut bytes = 0;
    for (i, state) in restored.states.iter().enumerate() {
        let data = fresh.read_state(&state.handle)?;
        ensure!(data == state_bytes(i), "state {} differs", state.name);
        bytes += data.len();
    }
    println!(
        "restore in a fresh instance: {} states, {bytes} bytes read back, all equal",
        restored.states.len()
    );
    Ok(())
}
