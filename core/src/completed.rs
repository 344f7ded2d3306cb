//! Completed checkpoints on storage, for the job manager's lifecycle:
//! finding a job's completed checkpoints and savepoints (a directory that
//! holds `_metadata`) and discarding a completed checkpoint's directory.
//!
//! Everything goes through the sandbox, so a host needs no access to the
//! files itself (the store that retains and subsumes checkpoints lives in
//! the host library and calls these through the component).

use crate::coordinator::CompletedCheckpoint;
use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::StateHandle;
use crate::layout::{METADATA_FILE_NAME, SAVEPOINT_DIR_PREFIX, parse_checkpoint_dir_name};
use crate::paths::GuestPath;
use crate::sandbox::{EntryKind, FsErrorKind, Sandbox, SandboxExt};

/// A completed checkpoint found in a job's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCheckpoint {
    pub checkpoint_id: u64,
    pub checkpoint: CompletedCheckpoint,
}

/// The completed checkpoint of `dir` if it holds a regular `_metadata` file.
fn completed_in<S: Sandbox>(sandbox: &S, dir: &GuestPath) -> Result<Option<CompletedCheckpoint>> {
    let metadata = dir.join(METADATA_FILE_NAME);
    match sandbox.stat(&metadata) {
        Ok(s) if s.kind == EntryKind::File => Ok(Some(CompletedCheckpoint {
            external_pointer: dir.to_string(),
            metadata: StateHandle::File {
                path: metadata.to_string(),
                size: s.size,
            },
        })),
        // A symbolic link or a directory named `_metadata` is not metadata.
        Ok(_) => Ok(None),
        Err(e) if e.kind == FsErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::from_fs(format!("Could not check {metadata}"), &e)),
    }
}

/// Directory entries of `dir`, or none if it does not exist.
fn entries_or_none<S: Sandbox>(sandbox: &S, dir: &GuestPath) -> Result<Vec<(String, EntryKind)>> {
    match sandbox.list_dir(dir) {
        Ok(entries) => Ok(entries),
        Err(e) if e.kind == FsErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(StorageError::from_fs(format!("Could not list {dir}"), &e)),
    }
}

/// The completed checkpoints (`chk-<id>` directories holding `_metadata`)
/// of a job directory, newest (highest id) first. Directories without
/// `_metadata` (in progress, failed, or half discarded) are not listed; a
/// missing job directory has none.
pub fn list_completed_checkpoints<S: Sandbox>(sandbox: &S, job_dir: &GuestPath) -> Result<Vec<ListedCheckpoint>> {
    let mut found = vec![];
    for (name, kind) in entries_or_none(sandbox, job_dir)? {
        let Some(checkpoint_id) = parse_checkpoint_dir_name(&name) else {
            continue;
        };
        if kind != EntryKind::Directory {
            continue;
        }
        if let Some(checkpoint) = completed_in(sandbox, &job_dir.join(&name))? {
            found.push(ListedCheckpoint {
                checkpoint_id,
                checkpoint,
            });
        }
    }
    found.sort_by_key(|c| std::cmp::Reverse(c.checkpoint_id));
    Ok(found)
}

/// The completed savepoints of a job in `dir`: directories named
/// `savepoint-<first 6 of job id>-*` holding `_metadata`, sorted by name.
/// The name does not carry the checkpoint id and six characters do not
/// tell jobs apart for sure, so the caller reads the metadata for both.
pub fn list_savepoints<S: Sandbox>(sandbox: &S, dir: &GuestPath, job_id: &str) -> Result<Vec<CompletedCheckpoint>> {
    let prefix = format!("{SAVEPOINT_DIR_PREFIX}{}-", &job_id[..6.min(job_id.len())]);
    let mut names: Vec<String> = entries_or_none(sandbox, dir)?
        .into_iter()
        .filter(|(name, kind)| *kind == EntryKind::Directory && name.starts_with(&prefix))
        .map(|(name, _)| name)
        .collect();
    names.sort();
    let mut found = vec![];
    for name in names {
        if let Some(c) = completed_in(sandbox, &dir.join(&name))? {
            found.push(c);
        }
    }
    Ok(found)
}

/// Deletes the exclusive directory of checkpoint `chk-<id>` of a job:
/// `_metadata` first (from then on the checkpoint is no longer complete, so
/// a crash part way leaves a directory the orphan collection removes, never
/// a `_metadata` naming missing files), then everything else, then the
/// directory. Shared and task-owned state are not touched. A directory that
/// is already gone is fine (discarding twice is a no-op).
pub fn discard_completed_checkpoint<S: Sandbox>(sandbox: &S, job_dir: &GuestPath, checkpoint_id: u64) -> Result<()> {
    let dir = job_dir.join(&crate::layout::checkpoint_dir_name(checkpoint_id));
    match sandbox.stat(&dir) {
        Ok(s) if s.kind == EntryKind::Directory => {}
        Ok(_) => {
            return Err(StorageError::new(
                ErrorCode::InvalidArgument,
                format!("{dir} is not a directory; refusing to discard it as checkpoint {checkpoint_id}"),
            ));
        }
        Err(e) if e.kind == FsErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::from_fs(format!("Could not check {dir}"), &e)),
    }
    let metadata = dir.join(METADATA_FILE_NAME);
    match sandbox.remove_file(&metadata) {
        Ok(()) => {}
        Err(e) if e.kind == FsErrorKind::NotFound => {}
        Err(e) => {
            return Err(StorageError::from_fs(
                format!("Could not discard the metadata of checkpoint {checkpoint_id} ({metadata})"),
                &e,
            ));
        }
    }
    match sandbox.remove_dir_all(&dir) {
        Err(e) if e.kind == FsErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| {
            StorageError::from_fs(
                format!("Could not discard the directory of checkpoint {checkpoint_id} ({dir})"),
                &e,
            )
        }),
    }
}

/// Refuses to dispose a location whose checkpoint completed: Flink's
/// `disposeOnFailure` is for checkpoints that failed, and deleting a
/// completed one would take `_metadata` from under the checkpoint store.
pub fn refuse_if_completed<S: Sandbox>(sandbox: &S, dir: &GuestPath) -> Result<()> {
    if completed_in(sandbox, dir)?.is_some() {
        return Err(StorageError::new(
            ErrorCode::AlreadyExists,
            format!(
                "The checkpoint in {dir} has completed (its {METADATA_FILE_NAME} exists), so dispose-on-failure refuses to delete it; discard a completed checkpoint with coordinator-view.discard-completed-checkpoint (savepoints are kept until you delete them)."
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend, StorageConfig};
    use crate::coordinator::CoordinatorView;
    use crate::test_support::MemSandbox;
    use std::rc::Rc;

    const JOB: &str = "0123456789abcdef0123456789abcdef";
    const JOB_DIR: &str = "/checkpoints/0123456789abcdef0123456789abcdef";

    fn coordinator(s: &Rc<MemSandbox>) -> CoordinatorView<MemSandbox> {
        let config = StorageConfig {
            job_id: JOB.into(),
            checkpoints_dir: Some("/checkpoints".into()),
            create_subdir: None,
            backend: Backend::Filesystem,
            file_state_threshold: None,
            write_buffer_size: None,
            max_memory_state_size: None,
            s3_entropy_key: None,
            s3_entropy_length: None,
        };
        CoordinatorView::open(s.clone(), &config, Some("/checkpoints/sp")).unwrap()
    }

    fn put(s: &MemSandbox, path: &str, data: &[u8]) {
        s.files.borrow_mut().insert(
            GuestPath::parse(path).unwrap(),
            Rc::new(std::cell::RefCell::new(data.to_vec())),
        );
    }

    /// Completes checkpoint `id` with metadata `meta` and one exclusive file.
    fn complete(s: &Rc<MemSandbox>, c: &CoordinatorView<MemSandbox>, id: u64, meta: &[u8]) -> CompletedCheckpoint {
        let loc = c.initialize_location_for_checkpoint(id).unwrap();
        put(s, &format!("{JOB_DIR}/chk-{id}/state"), b"exclusive");
        let mut m = loc.create_metadata_output_stream().unwrap();
        m.write(meta).unwrap();
        m.close_and_finalize_checkpoint().unwrap()
    }

    #[test]
    fn lists_completed_checkpoints_newest_first_skipping_incomplete_ones() {
        let s = MemSandbox::with_dirs(&[]);
        let c = coordinator(&s);
        assert!(c.list_completed_checkpoints().unwrap().is_empty(), "no job dir yet");
        let two = complete(&s, &c, 2, b"m2");
        let ten = complete(&s, &c, 10, b"m10");
        c.initialize_location_for_checkpoint(11).unwrap(); // in progress
        s.mkdir(&format!("{JOB_DIR}/chk-x"));
        s.mkdir(&format!("{JOB_DIR}/chk-12/_metadata")); // a directory, not metadata
        put(&s, &format!("{JOB_DIR}/chk-13"), b"a file, not a directory");
        let listed = c.list_completed_checkpoints().unwrap();
        assert_eq!(
            listed,
            vec![
                ListedCheckpoint {
                    checkpoint_id: 10,
                    checkpoint: ten
                },
                ListedCheckpoint {
                    checkpoint_id: 2,
                    checkpoint: two
                },
            ]
        );
    }

    #[test]
    fn lists_the_jobs_savepoints_in_a_directory() {
        let s = MemSandbox::with_dirs(&["/checkpoints/sp"]);
        let c = coordinator(&s);
        let loc = c.initialize_location_for_savepoint(4, None).unwrap();
        let mut m = loc.create_metadata_output_stream().unwrap();
        m.write(b"sp").unwrap();
        let done = m.close_and_finalize_checkpoint().unwrap();
        c.initialize_location_for_savepoint(5, None).unwrap(); // not finished
        s.mkdir("/checkpoints/sp/savepoint-fedcba-aaaaaaaaaaaa"); // another job
        put(&s, "/checkpoints/sp/savepoint-fedcba-aaaaaaaaaaaa/_metadata", b"x");
        assert_eq!(c.list_savepoints(None).unwrap(), vec![done]);
        assert!(c.list_savepoints(Some("/checkpoints/none")).unwrap().is_empty());
        let e = c.list_savepoints(Some("/elsewhere")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{e:?}");
    }

    #[test]
    fn listing_savepoints_without_a_directory_is_refused() {
        let s = MemSandbox::with_dirs(&[]);
        let config = StorageConfig {
            job_id: JOB.into(),
            checkpoints_dir: Some("/checkpoints".into()),
            create_subdir: None,
            backend: Backend::Filesystem,
            file_state_threshold: None,
            write_buffer_size: None,
            max_memory_state_size: None,
            s3_entropy_key: None,
            s3_entropy_length: None,
        };
        let c = CoordinatorView::open(s, &config, None).unwrap();
        let e = c.list_savepoints(None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("no default savepoint directory"), "{}", e.message);
    }

    #[test]
    fn discarding_a_completed_checkpoint_removes_its_directory_only() {
        let s = MemSandbox::with_dirs(&[]);
        let c = coordinator(&s);
        c.initialize_base_locations_for_checkpoint().unwrap();
        complete(&s, &c, 1, b"m1");
        complete(&s, &c, 2, b"m2");
        put(&s, &format!("{JOB_DIR}/shared/s"), b"shared");
        c.discard_completed_checkpoint(1).unwrap();
        assert!(s.stat(&GuestPath::parse(&format!("{JOB_DIR}/chk-1")).unwrap()).is_err());
        assert_eq!(s.read(&format!("{JOB_DIR}/shared/s")).unwrap(), b"shared");
        assert_eq!(s.read(&format!("{JOB_DIR}/chk-2/_metadata")).unwrap(), b"m2");
        c.discard_completed_checkpoint(1).unwrap(); // already gone: no-op
        assert_eq!(
            c.discard_completed_checkpoint(u64::MAX).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        put(&s, &format!("{JOB_DIR}/chk-7"), b"not a dir");
        assert_eq!(
            c.discard_completed_checkpoint(7).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(s.read(&format!("{JOB_DIR}/chk-7")).unwrap(), b"not a dir");
    }

    #[test]
    fn a_discard_failing_part_way_has_removed_the_metadata_first() {
        let s = MemSandbox::with_dirs(&[]);
        let c = coordinator(&s);
        complete(&s, &c, 3, b"m3");
        let stuck = format!("{JOB_DIR}/chk-3/state");
        s.faults
            .fail_remove
            .borrow_mut()
            .insert(GuestPath::parse(&stuck).unwrap());
        let e = c.discard_completed_checkpoint(3).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied, "{e:?}");
        assert!(e.message.contains("checkpoint 3"), "{}", e.message);
        // No longer complete: never a `_metadata` naming missing files.
        assert!(s.read(&format!("{JOB_DIR}/chk-3/_metadata")).is_none());
        assert!(c.list_completed_checkpoints().unwrap().is_empty());
        // Once the fault is gone a second discard finishes the job.
        s.faults.fail_remove.borrow_mut().clear();
        c.discard_completed_checkpoint(3).unwrap();
        assert!(s.files.borrow().is_empty());
    }

    #[test]
    fn dispose_on_failure_refuses_a_completed_checkpoint() {
        let s = MemSandbox::with_dirs(&[]);
        let c = coordinator(&s);
        let loc = c.initialize_location_for_checkpoint(5).unwrap();
        put(&s, &format!("{JOB_DIR}/chk-5/state"), b"exclusive");
        let mut m = loc.create_metadata_output_stream().unwrap();
        m.write(b"meta").unwrap();
        m.close_and_finalize_checkpoint().unwrap();
        let e = loc.dispose_on_failure().unwrap_err();
        assert_eq!(e.code, ErrorCode::AlreadyExists);
        assert!(e.message.contains("discard-completed-checkpoint"), "{}", e.message);
        assert_eq!(s.read(&format!("{JOB_DIR}/chk-5/_metadata")).unwrap(), b"meta");
        assert_eq!(s.read(&format!("{JOB_DIR}/chk-5/state")).unwrap(), b"exclusive");
        // A fresh location for the same id is refused too.
        let again = c.initialize_location_for_checkpoint(5).unwrap();
        assert_eq!(again.dispose_on_failure().unwrap_err().code, ErrorCode::AlreadyExists);
    }
}
