//! Subsumption cost: adding a checkpoint to a completed-checkpoint store
//! that retains one, with 100 shared files. Two cases: the 100 shared files
//! are reused by the new checkpoint (incremental: the registry keeps them
//! and only the old exclusive directory and one shared file go), or none
//! is (all 100 are deleted). The baseline does the same on storage with
//! `std::fs` in the same run: read and parse the new manifest, delete the
//! old checkpoint's directory and the shared files nothing references. Its
//! files are synced when written, as the component's state files are.

use super::{BenchError, io_error};
use checkpoint_storage_host::checkpoint_store::CompletedCheckpointStore;
use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::{FileHandle, Plugin, StateHandle, StateScope, StorageConfig, TenantConfig};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Shared files per checkpoint.
pub const SHARED_FILES: usize = 100;
/// Bytes per shared file: just above the inline threshold, so each is a file.
const FILE_BYTES: usize = 21 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubsumptionResult {
    /// "retained" (the new checkpoint reuses the 100 shared files) or
    /// "deleted" (it uses none of them).
    pub case: String,
    pub shared_files: usize,
    pub rounds: u32,
    /// Median of `CompletedCheckpointStore::add` that subsumes one checkpoint.
    pub component_median_us: f64,
    /// Median of the same storage work with `std::fs`.
    pub native_median_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Progress steps of [`measure`].
pub fn steps(rounds: u32) -> u64 {
    2 * u64::from(rounds)
}

/// Both cases, `rounds` subsumptions each; one progress step per round.
pub fn measure(
    plugin: &Plugin,
    root: &Path,
    job: &str,
    rounds: u32,
    progress: &ProgressBar,
) -> Result<Vec<SubsumptionResult>, BenchError> {
    let mut out = vec![];
    for reuse in [true, false] {
        let case = if reuse { "retained" } else { "deleted" };
        let dir = root.join(case);
        let component = component_side(plugin, &dir.join("tenant"), job, rounds, reuse, progress)?;
        let native = native_side(&dir.join("native"), job, rounds, reuse)?;
        out.push(SubsumptionResult {
            case: case.into(),
            shared_files: SHARED_FILES,
            rounds,
            component_median_us: median(component),
            native_median_us: median(native),
        });
    }
    Ok(out)
}

fn component_side(
    plugin: &Plugin,
    dir: &Path,
    job: &str,
    rounds: u32,
    reuse: bool,
    progress: &ProgressBar,
) -> Result<Vec<f64>, BenchError> {
    std::fs::create_dir_all(dir).map_err(io_error("creating the subsumption benchmark directory"))?;
    let tenant = plugin.tenant(TenantConfig::new(dir))?;
    let config = StorageConfig::filesystem(job);
    let mut store = CompletedCheckpointStore::recover(&tenant, &config, None, 1).map_err(store_error)?;
    store.coordinator_view().initialize_base_locations_for_checkpoint()?;
    let view = tenant.open_worker_view(&config)?;
    let data = vec![7u8; FILE_BYTES];
    let mut shared: Vec<NamedState> = vec![];
    let mut micros = vec![];
    for id in 1..=u64::from(rounds) + 1 {
        let location = store.coordinator_view().initialize_location_for_checkpoint(id)?;
        let factory = view.resolve_checkpoint_storage_location(id, &location.location_reference()?)?;
        let write = |scope, name: String| -> Result<NamedState, BenchError> {
            let handle = factory.write_state(scope, &data)?.expect("a non-empty state");
            Ok(NamedState { name, handle })
        };
        if !reuse || shared.is_empty() {
            shared = (0..SHARED_FILES)
                .map(|i| write(StateScope::Shared, format!("shared-{id}-{i}")))
                .collect::<Result<_, _>>()?;
        }
        let mut states = shared.clone();
        states.push(write(StateScope::Shared, format!("new-shared-{id}"))?);
        states.push(write(StateScope::Exclusive, format!("exclusive-{id}"))?);
        let manifest = CheckpointManifest {
            job_id: job.to_string(),
            checkpoint_id: id,
            states,
        };
        let stream = location.create_metadata_output_stream()?;
        stream.write(&manifest.to_json())?;
        let completed = stream.close_and_finalize_checkpoint()?;
        let started = Instant::now();
        let outcome = store.add(&completed).map_err(store_error)?;
        let elapsed = started.elapsed();
        if let Some(e) = outcome.failures.into_iter().next() {
            return Err(e.into());
        }
        if id > 1 {
            micros.push(elapsed.as_secs_f64() * 1e6);
            progress.inc(1);
        }
    }
    Ok(micros)
}

fn native_side(dir: &Path, job: &str, rounds: u32, reuse: bool) -> Result<Vec<f64>, BenchError> {
    let io = io_error("native subsumption baseline");
    let job_dir = dir.join(job);
    let shared_dir = job_dir.join("shared");
    std::fs::create_dir_all(&shared_dir).map_err(&io)?;
    let data = vec![7u8; FILE_BYTES];
    let file = |path: &Path| -> Result<StateHandle, BenchError> {
        // Synced as the component's state files are at close: deleting a
        // file whose blocks are on disk costs more than deleting one still
        // only in the page cache, and the comparison must be like with like.
        let mut f = std::fs::File::create(path).map_err(io_error("native subsumption baseline"))?;
        f.write_all(&data)
            .and_then(|()| f.sync_all())
            .map_err(io_error("native subsumption baseline"))?;
        Ok(StateHandle::File(FileHandle {
            path: path.display().to_string(),
            size: FILE_BYTES as u64,
        }))
    };
    let mut shared: Vec<NamedState> = vec![];
    let mut previous_own: Vec<String> = vec![];
    let mut micros = vec![];
    for id in 1..=u64::from(rounds) + 1 {
        let chk = job_dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(&chk).map_err(&io)?;
        let mut own = vec![];
        if !reuse || shared.is_empty() {
            shared = (0..SHARED_FILES)
                .map(|i| {
                    let name = format!("shared-{id}-{i}");
                    Ok(NamedState {
                        handle: file(&shared_dir.join(&name))?,
                        name,
                    })
                })
                .collect::<Result<_, BenchError>>()?;
            own.extend(
                shared
                    .iter()
                    .map(|s| s.handle.file_path().unwrap_or_default().to_string()),
            );
        }
        let new_shared = shared_dir.join(format!("new-shared-{id}"));
        let mut states = shared.clone();
        states.push(NamedState {
            name: "new".into(),
            handle: file(&new_shared)?,
        });
        own.push(new_shared.display().to_string());
        states.push(NamedState {
            name: "exclusive".into(),
            handle: file(&chk.join("exclusive"))?,
        });
        let manifest = CheckpointManifest {
            job_id: job.to_string(),
            checkpoint_id: id,
            states,
        };
        std::fs::write(chk.join("_metadata"), manifest.to_json()).map_err(&io)?;
        let started = Instant::now();
        let bytes = std::fs::read(chk.join("_metadata")).map_err(&io)?;
        let parsed =
            CheckpointManifest::from_json(&bytes).map_err(|e| BenchError::Invalid(format!("native manifest: {e}")))?;
        std::hint::black_box(&parsed);
        if id > 1 {
            std::fs::remove_dir_all(job_dir.join(format!("chk-{}", id - 1))).map_err(&io)?;
            for path in previous_own.drain(..) {
                if !parsed
                    .states
                    .iter()
                    .any(|s| s.handle.file_path() == Some(path.as_str()))
                {
                    std::fs::remove_file(&path).map_err(&io)?;
                }
            }
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
        previous_own = own;
    }
    Ok(micros)
}

fn store_error(e: checkpoint_storage_host::checkpoint_store::StoreError) -> BenchError {
    BenchError::Invalid(format!("checkpoint store: {e}"))
}
