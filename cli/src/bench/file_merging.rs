//! File merging (FLIP-306): the same checkpoints of 1,000 states of 100 B to
//! 64 KiB written with and without merging, through the component. The
//! rows compare files created, states per second and bytes on disk (space
//! amplification: bytes on disk over bytes of state), each against the
//! unmerged run of the same invocation.

use super::{BenchError, io_error};
use checkpoint_storage_host::{
    FileMergingOptions, LocationReference, Plugin, StateScope, StorageConfig, SubtaskKey, TenantConfig,
};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// States per checkpoint.
pub const STATES: usize = 1000;
const SMALLEST: usize = 100;
const LARGEST: usize = 64 * 1024;

/// One variant's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MergingRow {
    pub variant: &'static str,
    pub checkpoints: u64,
    pub states: u64,
    /// Files in the tenant directory after the last checkpoint (checkpoint
    /// directories and `_metadata` files are not counted).
    pub files: u64,
    pub states_per_s: f64,
    pub state_bytes: u64,
    pub bytes_on_disk: u64,
    /// `bytes_on_disk / state_bytes`.
    pub space_amplification: f64,
}

/// Size of state `i`: spread over 100 B .. 64 KiB, the same in every run.
fn size_of(i: usize) -> usize {
    SMALLEST + (i * 7919) % (LARGEST - SMALLEST + 1)
}

/// Writes `checkpoints` checkpoints of [`STATES`] states each, with merging
/// as `options` says, and measures them.
pub fn measure_variant(
    plugin: &Plugin,
    root: &Path,
    variant: &'static str,
    options: FileMergingOptions,
    checkpoints: u64,
) -> Result<MergingRow, BenchError> {
    let job = uuid::Uuid::new_v4().simple().to_string();
    let dir = root.join(variant);
    for d in ["shared", "taskowned"]
        .into_iter()
        .map(String::from)
        .chain((1..=checkpoints).map(|id| format!("chk-{id}")))
    {
        std::fs::create_dir_all(dir.join(&job).join(d)).map_err(io_error("creating benchmark directories"))?;
    }
    let tenant = plugin.tenant(TenantConfig::new(&dir))?;
    let manager = tenant.open_file_merging_manager(&StorageConfig::filesystem(&job), "bench-tm", &options)?;
    let subtask = SubtaskKey::new("bench-operator", 0, 1);
    manager.register_subtask(&subtask)?;
    let data = vec![0xa5_u8; LARGEST];
    let mut elapsed = Duration::ZERO;
    let mut state_bytes = 0;
    for id in 1..=checkpoints {
        let factory = manager.resolve_checkpoint_storage_location(&subtask, id, &LocationReference::Default)?;
        let started = Instant::now();
        for i in 0..STATES {
            let scope = if i.is_multiple_of(2) {
                StateScope::Shared
            } else {
                StateScope::Exclusive
            };
            let n = size_of(i);
            std::hint::black_box(factory.write_state(scope, &data[..n])?);
            state_bytes += n as u64;
        }
        elapsed += started.elapsed();
        manager.notify_checkpoint_complete(&subtask, id)?;
    }
    let (files, bytes_on_disk) = files_and_bytes(&dir)?;
    let states = checkpoints * STATES as u64;
    Ok(MergingRow {
        variant,
        checkpoints,
        states,
        files,
        states_per_s: states as f64 / elapsed.as_secs_f64().max(1e-9),
        state_bytes,
        bytes_on_disk,
        space_amplification: bytes_on_disk as f64 / state_bytes.max(1) as f64,
    })
}

/// Number and total size of the regular files below `dir`.
fn files_and_bytes(dir: &Path) -> Result<(u64, u64), BenchError> {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).map_err(io_error("listing benchmark files"))? {
        let entry = entry.map_err(io_error("listing benchmark files"))?;
        let meta = entry.metadata().map_err(io_error("listing benchmark files"))?;
        if meta.is_dir() {
            let (f, b) = files_and_bytes(&entry.path())?;
            files += f;
            bytes += b;
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}

/// Both variants in one run: without merging (the baseline), then merged
/// within each checkpoint.
pub fn measure(plugin: &Plugin, root: &Path, checkpoints: u64) -> Result<Vec<MergingRow>, BenchError> {
    if checkpoints == 0 {
        return Err(BenchError::Invalid("file merging needs at least one checkpoint".into()));
    }
    Ok(vec![
        measure_variant(
            plugin,
            root,
            "unmerged",
            FileMergingOptions::flink_defaults(),
            checkpoints,
        )?,
        measure_variant(plugin, root, "merged", FileMergingOptions::enabled(), checkpoints)?,
    ])
}

/// The rows as a table, with ratios against the first (unmerged) row.
pub fn table(rows: &[MergingRow]) -> String {
    let mut out = format!(
        "File merging: {STATES} states of {SMALLEST} B to {} KiB per checkpoint\n{:<10} {:>6} {:>8} {:>12} {:>10} {:>14} {:>8}\n",
        LARGEST / 1024,
        "variant",
        "ckpts",
        "files",
        "states/s",
        "vs unmerged",
        "bytes on disk",
        "amplif."
    );
    let base = rows.first().map_or(1.0, |r| r.states_per_s.max(1e-9));
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:>6} {:>8} {:>12.0} {:>10.2}x {:>14} {:>8.3}\n",
            r.variant,
            r.checkpoints,
            r.files,
            r.states_per_s,
            r.states_per_s / base,
            r.bytes_on_disk,
            r.space_amplification
        ));
    }
    out
}
