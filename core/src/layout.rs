//! Flink's directory layout of checkpoint storage, in one place (the facts
//! Flink keeps in `AbstractFsCheckpointStorageAccess`): the names of the
//! directories and files below a checkpoints directory, and the job id rule
//! that makes a job's directory name.
//!
//! ```text
//! <checkpoints-dir>/<job-id>/chk-<N>/<uuid>     exclusive state of checkpoint N
//! <checkpoints-dir>/<job-id>/chk-<N>/_metadata  the checkpoint's metadata
//! <checkpoints-dir>/<job-id>/shared/<uuid>      shared (incremental) state
//! <checkpoints-dir>/<job-id>/taskowned/<uuid>   task-owned state
//! <savepoint-dir>/savepoint-<job[..6]>-<12 hex>/ a savepoint
//! <checkpoints-dir>/<job-id>/taskowned/job_<job>_tm_<tm-id>/<uuid>
//!                                      merged exclusive state (FLIP-306)
//! <checkpoints-dir>/<job-id>/shared/job_<job>_op_<op>_<index>_<parallelism>/<uuid>
//!                                      merged shared state of one subtask
//! ```
//!
//! With `execution.checkpointing.create-subdir` = false (filesystem backend)
//! `<checkpoints-dir>` itself takes the place of `<checkpoints-dir>/<job-id>`.

use crate::paths::GuestPath;

/// Where a host mounts a tenant's directory inside the sandbox, by
/// convention (the component accepts any preopen; hosts in this project use
/// this one).
pub const GUEST_MOUNT: &str = "/checkpoints";

/// Flink's `CHECKPOINT_DIR_PREFIX`.
pub const CHECKPOINT_DIR_PREFIX: &str = "chk-";
/// Flink's `CHECKPOINT_SHARED_STATE_DIR`.
pub const SHARED_STATE_DIR: &str = "shared";
/// Flink's `CHECKPOINT_TASK_OWNED_STATE_DIR`.
pub const TASK_OWNED_STATE_DIR: &str = "taskowned";
/// Flink's `METADATA_FILE_NAME`.
pub const METADATA_FILE_NAME: &str = "_metadata";
/// Prefix of the temporary metadata file (Flink's `TEMP_METADATA_FILE_NAME`),
/// followed by `-<uuid>` so that concurrent writers never share it.
pub const TEMP_METADATA_FILE_PREFIX: &str = "._metadata_temp";
/// Prefix of a savepoint directory's name: `savepoint-<job[..6]>-<12 hex>`.
pub const SAVEPOINT_DIR_PREFIX: &str = "savepoint-";
/// The job's directory below the checkpoints directory: `<dir>/<job-id>`,
/// or `dir` itself when the filesystem backend is configured with
/// `execution.checkpointing.create-subdir` = false (Flink's
/// `FsCheckpointStorageAccess`; its memory backend always makes the
/// subdirectory, see `job_subdir_off`).
pub fn job_directory(checkpoints_dir: &GuestPath, job_id: &str, subdir_off: bool) -> GuestPath {
    if subdir_off {
        checkpoints_dir.clone()
    } else {
        checkpoints_dir.join(job_id)
    }
}

/// Whether the checkpoints directory is the job's directory itself:
/// `create-subdir` set to false, on the filesystem backend (Flink's memory
/// backend always makes the `<job-id>` directory).
pub fn job_subdir_off(create_subdir: Option<bool>, filesystem_backend: bool) -> bool {
    create_subdir == Some(false) && filesystem_backend
}

/// Flink's `NonPersistentMetadataCheckpointStorageLocation.EXTERNAL_POINTER`:
/// the pointer of a checkpoint whose metadata was kept in memory only.
pub const NON_PERSISTENT_POINTER: &str = "<checkpoint-not-externally-addressable>";

/// Name of the exclusive directory of checkpoint `id`: `chk-<id>`.
pub fn checkpoint_dir_name(id: u64) -> String {
    // Without `format!`: see `any_stream` for why the component avoids
    // indirect calls (the formatting machinery makes them) on this path.
    let mut name = String::from(CHECKPOINT_DIR_PREFIX);
    name.push_str(itoa::Buffer::new().format(id));
    name
}

/// The checkpoint id of a directory named `chk-<id>` (decimal, as Flink
/// writes it); `None` for any other name.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(CHECKPOINT_DIR_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is a Flink `JobID` in its string form: exactly 32
/// lowercase hex characters (`JobID.toString()`).
pub fn is_job_id(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` is a temporary metadata file left by a metadata stream
/// that never finished.
pub fn is_temp_metadata_name(name: &str) -> bool {
    name.starts_with(TEMP_METADATA_FILE_PREFIX)
}

/// Name of a file-merging manager's directory for exclusive state, below
/// `taskowned/`: `job_<job-id>_tm_<task-manager-id>`, with each of
/// `;/?:@&=+$,[]` in the task manager id replaced by `-` (as Flink).
pub fn file_merging_manager_dir_name(job_id: &str, task_manager_id: &str) -> String {
    let tm: String = task_manager_id
        .chars()
        .map(|c| if ";/?:@&=+$,[]".contains(c) { '-' } else { c })
        .collect();
    format!("job_{job_id}_tm_{tm}")
}

/// Name of a subtask's directory for merged shared state, below `shared/`:
/// `job_<job-id>_op_<operator-id>_<index>_<parallelism>`, with every
/// character outside `[a-zA-Z0-9-]` replaced by `_` (as Flink).
pub fn subtask_shared_dir_name(job_id: &str, operator_id: &str, subtask_index: u32, parallelism: u32) -> String {
    format!("job_{job_id}_op_{operator_id}_{subtask_index}_{parallelism}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// Whether `path` (components separated by `/`) names a file directly in a
/// file-merging managed directory (`.../shared/job_*/<file>` or
/// `.../taskowned/job_*/<file>`): a physical file that holds segments of
/// many states, which its manager keeps open while it appends to it. Plain
/// state files lie directly in `shared/`, `taskowned/` or `chk-N/`.
pub fn is_merged_physical_file(path: &str) -> bool {
    let mut parts = path.rsplit('/').filter(|p| !p.is_empty());
    let (Some(_file), Some(dir), Some(scope)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    dir.starts_with("job_") && (scope == SHARED_STATE_DIR || scope == TASK_OWNED_STATE_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_physical_files_are_told_from_plain_state_files() {
        let job = "0123456789abcdef0123456789abcdef";
        let tm = file_merging_manager_dir_name(job, "tm-1");
        let op = subtask_shared_dir_name(job, "op", 0, 2);
        assert!(is_merged_physical_file(&format!("{job}/taskowned/{tm}/f")));
        assert!(is_merged_physical_file(&format!("/checkpoints/{job}/shared/{op}/f")));
        for plain in [
            format!("{job}/shared/f"),
            format!("{job}/taskowned/f"),
            format!("{job}/chk-1/f"),
            format!("{job}/chk-1/job_x/f"),
            format!("{job}/shared/{op}"),
            "f".to_string(),
            String::new(),
        ] {
            assert!(!is_merged_physical_file(&plain), "{plain}");
        }
    }

    #[test]
    fn checkpoint_dir_names_round_trip() {
        assert_eq!(checkpoint_dir_name(17), "chk-17");
        assert_eq!(parse_checkpoint_dir_name("chk-17"), Some(17));
        assert_eq!(
            parse_checkpoint_dir_name(&checkpoint_dir_name(u64::MAX)),
            Some(u64::MAX)
        );
    }

    #[test]
    fn other_names_are_not_checkpoint_dirs() {
        for name in [
            "chk-",
            "chk-x",
            "chk--1",
            "chk-01",
            "chk-1 ",
            "shared",
            "chk-18446744073709551616",
        ] {
            assert_eq!(parse_checkpoint_dir_name(name), None, "{name}");
        }
    }

    #[test]
    fn file_merging_dir_names_are_flinks() {
        let job = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            file_merging_manager_dir_name(job, "tm:1/a[b]"),
            format!("job_{job}_tm_tm-1-a-b-")
        );
        assert_eq!(
            subtask_shared_dir_name(job, "op.x/../y", 3, 8),
            format!("job_{job}_op_op_x____y_3_8")
        );
    }

    #[test]
    fn job_id_rule() {
        assert!(is_job_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_job_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_job_id("0123456789abcdef"));
        assert!(!is_job_id("0123456789abcdef0123456789abcdeg"));
    }
}
