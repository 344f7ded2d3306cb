//! An async host: eight tenants on a tokio runtime each write a checkpoint
//! (state streams, metadata) and read it back, concurrently, without
//! blocking the runtime's worker threads.
//!
//! `cargo run -p checkpoint-storage-host --features tokio --example async_embedder`

use checkpoint_storage_host::nonblocking::AsyncTenant;
use checkpoint_storage_host::{Plugin, StateScope, StorageConfig, TenantConfig};

const JOB: &str = "0123456789abcdef0123456789abcdef";

async fn one_tenant(plugin: Plugin, dir: std::path::PathBuf, seed: u8) -> checkpoint_storage_host::Result<usize> {
    let tenant = AsyncTenant::new(&plugin, TenantConfig::new(dir)).await?;
    let config = StorageConfig::filesystem(JOB);
    let coordinator = tenant.open_coordinator_view(config.clone(), None).await?;
    coordinator.initialize_base_locations_for_checkpoint().await?;
    let location = coordinator.initialize_location_for_checkpoint(1).await?;

    let view = tenant.open_worker_view(config).await?;
    let factory = view
        .resolve_checkpoint_storage_location(1, location.location_reference().await?)
        .await?;
    let state = vec![seed; 200_000];
    let stream = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .await?;
    stream.write(state.clone()).await?;
    stream.sync().await?;
    let handle = stream.close_and_get_handle().await?.expect("bytes were written");

    let metadata = location.create_metadata_output_stream().await?;
    metadata.write(handle.to_string()).await?;
    let done = metadata.close_and_finalize_checkpoint().await?;

    let found = coordinator.resolve_checkpoint(done.external_pointer).await?;
    let manifest = tenant.read_state(found.metadata).await?;
    assert_eq!(manifest, handle.to_string().as_bytes());
    let back = tenant.read_state(handle).await?;
    assert_eq!(back, state);
    Ok(back.len())
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
    let plugin = Plugin::load()?;
    let root = tempfile::tempdir()?;
    let total = runtime.block_on(async {
        let mut tasks = Vec::new();
        for seed in 0..8u8 {
            let dir = root.path().join(format!("tenant-{seed}"));
            std::fs::create_dir(&dir)?;
            tasks.push(tokio::spawn(one_tenant(plugin.clone(), dir, seed)));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await??;
        }
        anyhow::Ok(total)
    })?;
    println!("8 tenants wrote and read back {total} bytes of state");
    Ok(())
}
