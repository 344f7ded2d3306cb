//! The checkpoint lifecycle on the coordinator side, through the host
//! library: the completed-checkpoint store (retain `num-retained`, subsume,
//! recover), the shared-state registry, savepoints, and the refusal to
//! dispose a completed checkpoint. Cases ported from Flink's
//! `StandaloneCompletedCheckpointStoreTest` / `CompletedCheckpointStoreTest`,
//! `DefaultCompletedCheckpointStoreTest`, `SharedStateRegistryTest` and
//! `CheckpointsCleanerTest` where they apply.

use checkpoint_storage_host::checkpoint_store::{
    CheckpointKind, CompletedCheckpointStore, DEFAULT_NUM_RETAINED, JobStatus, RecoveryClaimMode, StoreError,
};
use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_tests::*;

/// Bytes of a state that becomes a file (above the 20 KiB inline threshold).
const FILE_STATE: usize = 30_000;
const SAVEPOINTS: &str = "/checkpoints/savepoints";

/// What one checkpoint wrote: named states and their bytes.
struct Written {
    completed: CompletedCheckpoint,
    states: Vec<(NamedState, Vec<u8>)>,
}

/// Writes checkpoint `id`: one exclusive file state, the shared states
/// `new_shared` (fresh files, seeded by name) and the already written
/// shared states `reused` (incremental checkpoints reference earlier
/// shared files), then its manifest as `_metadata`.
fn checkpoint(t: &TestTenant, id: u64, new_shared: &[u8], reused: &[&(NamedState, Vec<u8>)]) -> Written {
    checkpoint_of(t, &t.job, id, new_shared, reused)
}

/// [`checkpoint`] of another job of the same tenant.
fn checkpoint_of(t: &TestTenant, job: &str, id: u64, new_shared: &[u8], reused: &[&(NamedState, Vec<u8>)]) -> Written {
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(job), Some(SAVEPOINTS))
        .unwrap();
    coordinator.initialize_base_locations_for_checkpoint().unwrap();
    let location = coordinator.initialize_location_for_checkpoint(id).unwrap();
    write_into(t, job, &location, id, new_shared, reused)
}

fn savepoint(t: &TestTenant, id: u64) -> Written {
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), Some(SAVEPOINTS))
        .unwrap();
    let location = coordinator.initialize_location_for_savepoint(id, None).unwrap();
    write_into(t, &t.job, &location, id, &[id as u8 + 100], &[])
}

fn write_into(
    t: &TestTenant,
    job: &str,
    location: &CheckpointStorageLocation,
    id: u64,
    new_shared: &[u8],
    reused: &[&(NamedState, Vec<u8>)],
) -> Written {
    let factory = t
        .view_with(StorageConfig::filesystem(job))
        .resolve_checkpoint_storage_location(id, &location.location_reference().unwrap())
        .unwrap();
    let mut states = vec![];
    let data = bytes(FILE_STATE, id as u8);
    let handle = factory.write_state(StateScope::Exclusive, &data).unwrap().unwrap();
    states.push((
        NamedState {
            name: format!("exclusive-{id}"),
            handle,
        },
        data,
    ));
    for seed in new_shared {
        let data = bytes(FILE_STATE, *seed);
        let handle = factory.write_state(StateScope::Shared, &data).unwrap().unwrap();
        states.push((
            NamedState {
                name: format!("shared-{seed}"),
                handle,
            },
            data,
        ));
    }
    states.extend(reused.iter().map(|s| (*s).clone()));
    let manifest = CheckpointManifest {
        job_id: job.to_string(),
        checkpoint_id: id,
        states: states.iter().map(|(s, _)| s.clone()).collect(),
    };
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&manifest.to_json()).unwrap();
    Written {
        completed: stream.close_and_finalize_checkpoint().unwrap(),
        states,
    }
}

fn store(t: &TestTenant, num_retained: u32) -> CompletedCheckpointStore {
    CompletedCheckpointStore::recover(
        &t.tenant,
        &StorageConfig::filesystem(&t.job),
        Some(SAVEPOINTS),
        num_retained,
    )
    .unwrap()
}

/// Every state of a retained checkpoint reads back, through the component,
/// exactly as written.
fn assert_restores(t: &TestTenant, store: &CompletedCheckpointStore, written: &Written) {
    let retained = store
        .checkpoints()
        .into_iter()
        .find(|c| c.checkpoint.external_pointer == written.completed.external_pointer)
        .expect("retained");
    assert_eq!(retained.manifest.states.len(), written.states.len());
    for (state, (expected, data)) in retained.manifest.states.iter().zip(&written.states) {
        assert_eq!(state.name, expected.name);
        assert_eq!(&t.tenant.read_state(&state.handle).unwrap(), data, "{}", state.name);
    }
}

fn exists(t: &TestTenant, handle: &StateHandle) -> bool {
    t.tenant.host_path(handle.file_path().unwrap()).unwrap().exists()
}

fn chk_dir_exists(t: &TestTenant, id: u64) -> bool {
    t.host(&format!("{}/chk-{id}", t.job)).exists()
}

// Flink: testExceptionOnNoRetainedCheckpoints.
#[test]
fn retaining_no_checkpoint_is_refused() {
    let t = TestTenant::new();
    let e = CompletedCheckpointStore::recover(&t.tenant, &StorageConfig::filesystem(&t.job), None, 0).unwrap_err();
    assert!(matches!(e, StoreError::NumRetained(0)), "{e}");
    assert!(e.to_string().contains("execution.checkpointing.num-retained"), "{e}");
    assert_eq!(DEFAULT_NUM_RETAINED, 1, "Flink's default");
}

/// Without a checkpoints directory (memory backend) the store keeps the
/// checkpoints in memory, as Flink's `StandaloneCompletedCheckpointStore`:
/// it retains and subsumes them, there is nothing on disk to delete, and a
/// new store recovers nothing.
#[test]
fn a_store_without_a_checkpoints_directory_keeps_checkpoints_in_memory() {
    let t = TestTenant::new();
    let config = StorageConfig::memory(&t.job).without_checkpoints_dir();
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    assert!(store.checkpoints().is_empty());
    let write = |id: u64| one_state_checkpoint(&t, &config, id, StateScope::Shared, &bytes(100, id as u8));
    let first = write(1);
    assert_eq!(first.external_pointer, "<checkpoint-not-externally-addressable>");
    assert!(store.add(&first).unwrap().subsumed.is_empty());
    let outcome = store.add(&write(2)).unwrap();
    assert_eq!(outcome.subsumed, [1]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(store.checkpoint_ids(), [2]);
    let latest = store.latest().unwrap();
    assert_eq!(
        t.tenant.read_state(&latest.manifest.states[0].handle).unwrap(),
        bytes(100, 2)
    );
    assert!(matches!(store.add(&write(2)), Err(StoreError::Duplicate(2))));
    // A "kept in memory" checkpoint whose metadata is a file is not one: it
    // would be discarded with the file it names.
    let forged = CompletedCheckpoint {
        metadata: StateHandle::File(FileHandle {
            path: "/checkpoints/other/_metadata".into(),
            size: 10,
        }),
        ..write(3)
    };
    let e = store.add(&forged).unwrap_err();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("not inline"), "{e}");
    assert!(all_files(t.tenant.dir()).is_empty());
    let again = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    assert!(again.checkpoints().is_empty(), "nothing was persisted");
}

/// The in-memory store takes a restored snapshot as any store does: kept
/// untouched without claim, its metadata going with it once claimed and
/// subsumed; a finished job's checkpoints leave nothing to delete.
#[test]
fn a_store_without_a_checkpoints_directory_restores_and_shuts_down() {
    let t = TestTenant::new();
    let config = StorageConfig::memory(&t.job).without_checkpoints_dir();
    let snapshot = |id: u64| {
        let coordinator = t.tenant.open_coordinator_view(&config, None).unwrap();
        let location = coordinator
            .initialize_location_for_savepoint(id, Some(SAVEPOINTS))
            .unwrap();
        let manifest = CheckpointManifest {
            job_id: t.job.clone(),
            checkpoint_id: id,
            states: vec![],
        };
        let stream = location.create_metadata_output_stream().unwrap();
        stream.write(&manifest.to_json()).unwrap();
        stream.close_and_finalize_checkpoint().unwrap()
    };
    let kept = snapshot(5);
    let claimed = snapshot(6);
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    store.add_restored(&kept, RecoveryClaimMode::NoClaim).unwrap();
    store.add_restored(&claimed, RecoveryClaimMode::Claim).unwrap();
    assert_eq!(store.checkpoint_ids(), [6]);
    let write = |id: u64| one_state_checkpoint(&t, &config, id, StateScope::Shared, &bytes(100, id as u8));
    let outcome = store.add(&write(7)).unwrap();
    assert_eq!(outcome.subsumed, [6]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let claimed_metadata = t.tenant.host_path(claimed.metadata.file_path().unwrap()).unwrap();
    assert!(!claimed_metadata.exists(), "claimed, then subsumed: its metadata went");
    let kept_metadata = t.tenant.host_path(kept.metadata.file_path().unwrap()).unwrap();
    assert!(kept_metadata.exists(), "not claimed: untouched");
    let outcome = store.shutdown(JobStatus::Finished);
    assert_eq!(outcome.subsumed, [7]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(kept_metadata.exists());
}

/// Checkpoint `id` of `config`'s job with one state and its manifest.
fn one_state_checkpoint(
    t: &TestTenant,
    config: &StorageConfig,
    id: u64,
    scope: StateScope,
    data: &[u8],
) -> CompletedCheckpoint {
    let location = t
        .tenant
        .open_coordinator_view(config, None)
        .unwrap()
        .initialize_location_for_checkpoint(id)
        .unwrap();
    let factory = t
        .view_with(config.clone())
        .resolve_checkpoint_storage_location(id, &LocationReference::Default)
        .unwrap();
    let handle = factory.write_state(scope, data).unwrap().unwrap();
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: id,
        states: vec![NamedState {
            name: format!("state-{id}"),
            handle,
        }],
    };
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&manifest.to_json()).unwrap();
    stream.close_and_finalize_checkpoint().unwrap()
}

/// With `create-subdir` = false the store recovers and subsumes
/// checkpoints in the checkpoints directory itself.
#[test]
fn a_store_finds_checkpoints_without_the_job_subdirectory() {
    let t = TestTenant::new();
    let (config, coordinator) = t.flat_job();
    let write = |id: u64| one_state_checkpoint(&t, &config, id, StateScope::Exclusive, &bytes(FILE_STATE, id as u8));
    let first = write(1);
    assert_eq!(first.external_pointer, "/checkpoints/flat/chk-1");
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    assert_eq!(store.checkpoint_ids(), [1]);
    let second = write(2);
    store.add(&second).unwrap();
    assert_eq!(store.checkpoint_ids(), [2]);
    assert!(!t.host("flat/chk-1").exists(), "subsumed");
    let again = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    assert_eq!(again.checkpoint_ids(), [2]);

    // A savepoint in the same directory (a natural home when the directory
    // is the job's own) is found as a savepoint, not refused.
    let location = coordinator
        .initialize_location_for_savepoint(7, Some("/checkpoints/flat"))
        .unwrap();
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: 7,
        states: vec![],
    };
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&manifest.to_json()).unwrap();
    let savepoint = stream.close_and_finalize_checkpoint().unwrap();
    let with_savepoints = CompletedCheckpointStore::recover(&t.tenant, &config, Some("/checkpoints/flat"), 1).unwrap();
    assert_eq!(with_savepoints.checkpoint_ids(), [2]);
    let latest = with_savepoints.latest().unwrap();
    assert_eq!(
        (latest.kind, &latest.checkpoint.external_pointer),
        (CheckpointKind::Savepoint, &savepoint.external_pointer)
    );
}

// Flink: testEmptyState / testAddAndGetLatestCheckpoint.
#[test]
fn an_empty_store_has_no_latest_and_the_latest_is_the_last_added() {
    let t = TestTenant::new();
    let mut s = store(&t, 4);
    assert!(s.latest().is_none() && s.checkpoints().is_empty());
    let one = checkpoint(&t, 1, &[1], &[]);
    s.add(&one.completed).unwrap();
    assert_eq!(s.latest().unwrap().checkpoint_id, 1);
    let two = checkpoint(&t, 2, &[2], &[]);
    s.add(&two.completed).unwrap();
    assert_eq!(s.latest().unwrap().checkpoint, two.completed);
    assert_eq!(s.checkpoint_ids(), vec![1, 2]);
    let listed: Vec<u64> = s.checkpoints().iter().map(|c| c.checkpoint_id).collect();
    assert_eq!(listed, vec![2, 1], "newest first");
}

// Flink: testAddCheckpointMoreThanMaxRetained, with the registry: the
// subsumed checkpoint's exclusive files and the shared files only it used
// are gone; the retained ones restore every byte.
#[test]
fn three_checkpoints_retaining_two_subsume_the_first() {
    let t = TestTenant::new();
    let mut s = store(&t, 2);
    let one = checkpoint(&t, 1, &[1, 2], &[]);
    let kept_shared = &one.states[2]; // shared-2, reused by checkpoint 2
    let two = checkpoint(&t, 2, &[3], &[kept_shared]);
    let three = checkpoint(&t, 3, &[4], &[]);
    assert!(s.add(&one.completed).unwrap().subsumed.is_empty());
    assert!(s.add(&two.completed).unwrap().subsumed.is_empty());
    let outcome = s.add(&three.completed).unwrap();
    assert_eq!(outcome.subsumed, vec![1]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.discarded_shared.len(), 1);
    assert!(!chk_dir_exists(&t, 1), "exclusive directory gone");
    assert!(!exists(&t, &one.states[1].0.handle), "shared-1 only used by 1: gone");
    assert!(exists(&t, &kept_shared.0.handle), "shared-2 still used by 2");
    assert_eq!(s.checkpoint_ids(), vec![2, 3]);
    assert_restores(&t, &s, &two);
    assert_restores(&t, &s, &three);
    // Nothing of the subsumed checkpoint is listed any more.
    let listed = s.coordinator_view().list_completed_checkpoints().unwrap();
    assert_eq!(listed.iter().map(|l| l.checkpoint_id).collect::<Vec<_>>(), vec![3, 2]);
}

// Flink's SharedStateRegistryTest: a shared file goes exactly when the last
// retained checkpoint that references it goes, never earlier.
#[test]
fn a_shared_file_is_deleted_exactly_with_its_last_user() {
    let t = TestTenant::new();
    let mut s = store(&t, 1);
    let one = checkpoint(&t, 1, &[1], &[]);
    let shared = one.states[1].clone();
    s.add(&one.completed).unwrap();
    let two = checkpoint(&t, 2, &[], &[&shared]);
    assert_eq!(s.add(&two.completed).unwrap().subsumed, vec![1]);
    assert!(exists(&t, &shared.0.handle), "still used by 2");
    assert_eq!(s.registry().users(shared.0.handle.file_path().unwrap()), 1);
    assert_restores(&t, &s, &two);
    let three = checkpoint(&t, 3, &[3], &[]);
    let outcome = s.add(&three.completed).unwrap();
    assert_eq!(outcome.subsumed, vec![2]);
    assert!(!exists(&t, &shared.0.handle), "its last user is gone");
    assert_eq!(s.registry().len(), 1);
}

// Flink: testRecoverSortedCheckpoints; the registry is rebuilt from the
// retained manifests, so the next subsumption deletes the right files.
#[test]
fn a_restarted_store_recovers_checkpoints_and_registry_from_storage() {
    let t = TestTenant::new();
    let mut s = store(&t, 3);
    let one = checkpoint(&t, 1, &[1], &[]);
    let two = checkpoint(&t, 2, &[2], &[&one.states[1]]);
    let three = checkpoint(&t, 3, &[3], &[]);
    for w in [&one, &two, &three] {
        s.add(&w.completed).unwrap();
    }
    drop(s);
    // A fresh process: a new tenant of the same directory, a new store that
    // retains fewer; recovery keeps all, the next add subsumes down.
    let fresh = TestTenant {
        tenant: plugin().tenant(TenantConfig::new(t.dir.path())).unwrap(),
        job: t.job.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    let mut s = store(&fresh, 1);
    assert_eq!(s.checkpoint_ids(), vec![1, 2, 3]);
    assert_eq!(s.latest().unwrap().checkpoint_id, 3);
    assert_eq!(s.registry().users(one.states[1].0.handle.file_path().unwrap()), 2);
    for w in [&one, &two, &three] {
        assert_restores(&fresh, &s, w);
    }
    let four = checkpoint(&fresh, 4, &[4], &[&three.states[1]]);
    let outcome = s.add(&four.completed).unwrap();
    assert_eq!(outcome.subsumed, vec![1, 2, 3]);
    assert!(!exists(&fresh, &one.states[1].0.handle));
    assert!(!exists(&fresh, &two.states[1].0.handle));
    assert!(exists(&fresh, &three.states[1].0.handle), "reused by 4");
    assert_restores(&fresh, &s, &four);
}

// Savepoints are never subsumed and keep the shared files they name; the
// latest includes savepoints (Flink's getLatestCheckpoint).
#[test]
fn savepoints_are_never_subsumed() {
    let t = TestTenant::new();
    let mut s = store(&t, 1);
    let one = checkpoint(&t, 1, &[1], &[]);
    s.add(&one.completed).unwrap();
    let sp = savepoint(&t, 2);
    assert!(s.add(&sp.completed).unwrap().subsumed.is_empty());
    assert_eq!(s.latest().unwrap().kind, CheckpointKind::Savepoint);
    assert_eq!(s.latest_checkpoint().unwrap().checkpoint_id, 1);
    for id in 3..=5 {
        let w = checkpoint(&t, id, &[id as u8], &[]);
        s.add(&w.completed).unwrap();
    }
    assert_eq!(s.checkpoint_ids(), vec![5]);
    let all: Vec<_> = s.checkpoints().iter().map(|c| (c.checkpoint_id, c.kind)).collect();
    assert_eq!(
        all,
        vec![(5, CheckpointKind::Checkpoint), (2, CheckpointKind::Savepoint)]
    );
    assert_restores(&t, &s, &sp);
    // A restarted store finds the savepoint again.
    let again = store(&t, 1);
    assert!(again.checkpoints().iter().any(|c| c.checkpoint == sp.completed));
    assert_restores(&t, &again, &sp);
    // Shutting down a finished job keeps it too.
    let outcome = again.shutdown(JobStatus::Finished);
    assert_eq!(outcome.subsumed, vec![5]);
    assert!(
        t.tenant
            .host_path(&sp.completed.external_pointer)
            .unwrap()
            .join("_metadata")
            .exists()
    );
}

// Flink's DefaultCompletedCheckpointStoreTest: shutdown discards in a
// globally terminal state only.
#[test]
fn shutdown_discards_when_finished_and_keeps_when_suspended() {
    let t = TestTenant::new();
    let mut s = store(&t, 2);
    let one = checkpoint(&t, 1, &[1], &[]);
    let two = checkpoint(&t, 2, &[2], &[&one.states[1]]);
    s.add(&one.completed).unwrap();
    s.add(&two.completed).unwrap();
    let outcome = s.shutdown(JobStatus::Suspended);
    assert!(outcome.subsumed.is_empty());
    let s = store(&t, 2);
    assert_restores(&t, &s, &one);
    assert_restores(&t, &s, &two);
    let outcome = s.shutdown(JobStatus::Finished);
    assert_eq!(outcome.subsumed, vec![1, 2]);
    assert!(!chk_dir_exists(&t, 1) && !chk_dir_exists(&t, 2));
    assert!(files_in(&t.host(&format!("{}/shared", t.job))).is_empty());
    assert!(store(&t, 2).checkpoints().is_empty());
}

// Flink's testAddCheckpointWithFailedRemove / CheckpointsCleaner: a failed
// discard does not fail the add; the failure is reported.
#[test]
fn a_failed_discard_is_reported_and_does_not_fail_the_add() {
    let t = TestTenant::new();
    let mut s = store(&t, 1);
    let one = checkpoint(&t, 1, &[1], &[]);
    s.add(&one.completed).unwrap();
    // The shared file is replaced by a directory: discard-state refuses it.
    let shared = t.tenant.host_path(one.states[1].0.handle.file_path().unwrap()).unwrap();
    std::fs::remove_file(&shared).unwrap();
    std::fs::create_dir(&shared).unwrap();
    let two = checkpoint(&t, 2, &[2], &[]);
    let outcome = s.add(&two.completed).unwrap();
    assert_eq!(outcome.subsumed, vec![1]);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(
        outcome.failures[0].code(),
        Some(ErrorCode::InvalidArgument),
        "{}",
        outcome.failures[0]
    );
    assert!(!chk_dir_exists(&t, 1));
    assert_eq!(s.checkpoint_ids(), vec![2]);
}

/// The order of a discard holds on failure too: when the checkpoint's own
/// directory cannot be discarded (its `_metadata` may still name them), its
/// shared files are kept.
#[test]
fn a_failed_exclusive_discard_keeps_the_shared_files() {
    let t = TestTenant::new();
    let mut s = store(&t, 1);
    let one = checkpoint(&t, 1, &[1], &[]);
    s.add(&one.completed).unwrap();
    // `_metadata` replaced by a non-empty directory: removing it fails.
    let metadata = t.host(&format!("{}/chk-1/_metadata", t.job));
    std::fs::remove_file(&metadata).unwrap();
    std::fs::create_dir(&metadata).unwrap();
    std::fs::write(metadata.join("x"), b"x").unwrap();
    let two = checkpoint(&t, 2, &[2], &[]);
    let outcome = s.add(&two.completed).unwrap();
    assert_eq!(outcome.subsumed, vec![1]);
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert!(outcome.discarded_shared.is_empty(), "{:?}", outcome.discarded_shared);
    assert!(
        exists(&t, &one.states[1].0.handle),
        "the shared file of checkpoint 1 stays"
    );
    assert_eq!(s.checkpoint_ids(), vec![2]);
}

#[test]
fn adding_a_checkpoint_twice_or_of_another_job_is_refused() {
    let t = TestTenant::new();
    let mut s = store(&t, 2);
    let one = checkpoint(&t, 1, &[1], &[]);
    s.add(&one.completed).unwrap();
    assert!(matches!(s.add(&one.completed), Err(StoreError::Duplicate(1))));
    let other = TestTenant {
        tenant: t.tenant.clone(),
        job: job_id(),
        dir: tempfile::tempdir().unwrap(),
    };
    let foreign = checkpoint(&other, 2, &[2], &[]);
    let e = s.add(&foreign.completed).unwrap_err();
    assert!(matches!(e, StoreError::NotOfThisJob { .. }), "{e}");
    assert_eq!(s.checkpoint_ids(), vec![1]);
}

#[test]
fn a_manifest_that_does_not_match_its_directory_is_refused() {
    let t = TestTenant::new();
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let location = coordinator.initialize_location_for_checkpoint(7).unwrap();
    let stream = location.create_metadata_output_stream().unwrap();
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: 8,
        states: vec![],
    };
    stream.write(&manifest.to_json()).unwrap();
    stream.close_and_finalize_checkpoint().unwrap();
    let e = CompletedCheckpointStore::recover(&t.tenant, &StorageConfig::filesystem(&t.job), None, 1).unwrap_err();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("checkpoint 8") && e.to_string().contains("checkpoint 7"),
        "{e}"
    );
    // Fix the directory, then try a file that is not a manifest.
    std::fs::remove_dir_all(t.host(&format!("{}/chk-7", t.job))).unwrap();
    let mut s = store(&t, 1);
    let location = coordinator.initialize_location_for_checkpoint(9).unwrap();
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(b"not json").unwrap();
    let garbage = stream.close_and_finalize_checkpoint().unwrap();
    let e = s.add(&garbage).unwrap_err();
    assert!(matches!(e, StoreError::Manifest { .. }), "{e}");
    assert!(e.to_string().contains("chk-9"), "{e}");
    assert!(s.checkpoints().is_empty());
}

// A savepoint whose manifest names another job is refused by `add`, and
// skipped when recovering (six characters of a job id do not tell jobs apart).
#[test]
fn a_savepoint_of_another_job_is_refused_and_skipped_on_recovery() {
    let t = TestTenant::new();
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), Some(SAVEPOINTS))
        .unwrap();
    let location = coordinator.initialize_location_for_savepoint(3, None).unwrap();
    let stream = location.create_metadata_output_stream().unwrap();
    let manifest = CheckpointManifest {
        job_id: job_id(),
        checkpoint_id: 3,
        states: vec![],
    };
    stream.write(&manifest.to_json()).unwrap();
    let foreign = stream.close_and_finalize_checkpoint().unwrap();
    let mut s = store(&t, 1);
    assert!(s.checkpoints().is_empty(), "skipped on recovery");
    let e = s.add(&foreign).unwrap_err();
    assert!(matches!(e, StoreError::OtherJob { .. }), "{e}");
    assert!(e.to_string().contains(&t.job), "{e}");
}

// Issue 11: disposing a completed checkpoint through dispose-on-failure was
// accepted without a word; now it is refused and nothing is deleted.
#[test]
fn dispose_on_failure_refuses_a_completed_checkpoint() {
    let t = TestTenant::new();
    let one = checkpoint(&t, 1, &[1], &[]);
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let location = coordinator.initialize_location_for_checkpoint(1).unwrap();
    let e = storage_error(location.dispose_on_failure());
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert!(e.message.contains("discard-completed-checkpoint"), "{}", e.message);
    let s = store(&t, 1);
    assert_restores(&t, &s, &one);
    // A checkpoint that did not complete is still disposed.
    let failed = coordinator.initialize_location_for_checkpoint(2).unwrap();
    failed.dispose_on_failure().unwrap();
    assert!(!chk_dir_exists(&t, 2));
}

#[test]
fn the_coordinator_lists_and_discards_through_the_component() {
    let t = TestTenant::new();
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), Some(SAVEPOINTS))
        .unwrap();
    assert!(coordinator.list_completed_checkpoints().unwrap().is_empty());
    assert!(coordinator.list_savepoints(None).unwrap().is_empty());
    let one = checkpoint(&t, 1, &[1], &[]);
    let two = checkpoint(&t, 2, &[2], &[]);
    coordinator.initialize_location_for_checkpoint(3).unwrap(); // in progress
    let sp = savepoint(&t, 4);
    let listed = coordinator.list_completed_checkpoints().unwrap();
    assert_eq!(
        listed,
        vec![
            ListedCheckpoint {
                checkpoint_id: 2,
                checkpoint: two.completed.clone()
            },
            ListedCheckpoint {
                checkpoint_id: 1,
                checkpoint: one.completed.clone()
            },
        ]
    );
    assert_eq!(
        coordinator.list_savepoints(Some(SAVEPOINTS)).unwrap(),
        vec![sp.completed]
    );
    let e = storage_error(coordinator.list_savepoints(Some("/elsewhere")));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    coordinator.discard_completed_checkpoint(1).unwrap();
    assert!(!chk_dir_exists(&t, 1));
    assert!(exists(&t, &one.states[1].0.handle), "shared state is the caller's");
    coordinator.discard_completed_checkpoint(1).unwrap();
    assert_eq!(
        code(coordinator.discard_completed_checkpoint(u64::MAX)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(coordinator.list_completed_checkpoints().unwrap().len(), 1);
}

/// A job started from another job's retained checkpoint without claiming
/// it (Flink's default `NO_CLAIM`): the store keeps it as restored, and
/// nothing of it is deleted while the new job's checkpoints come and go,
/// not even at shutdown.
#[test]
fn a_restored_checkpoint_not_claimed_is_never_deleted() {
    let t = TestTenant::new();
    let old_job = job_id();
    let old = checkpoint_of(&t, &old_job, 7, &[1], &[]);
    let mut s = store(&t, 1);
    let outcome = s.add_restored(&old.completed, RecoveryClaimMode::NoClaim).unwrap();
    assert!(outcome.subsumed.is_empty());
    assert_eq!(s.checkpoints()[0].kind, CheckpointKind::Restored);
    assert_eq!(s.checkpoints()[0].checkpoint_id, 7);
    assert!(matches!(
        s.add_restored(&old.completed, RecoveryClaimMode::NoClaim),
        Err(StoreError::Duplicate(7))
    ));
    for id in 8..=10 {
        s.add(&checkpoint(&t, id, &[id as u8], &[]).completed).unwrap();
    }
    assert_eq!(s.checkpoint_ids(), vec![10]);
    s.shutdown(JobStatus::Finished);
    for (state, data) in &old.states {
        assert_eq!(&t.tenant.read_state(&state.handle).unwrap(), data, "{}", state.name);
    }
    assert!(t.host(&format!("{old_job}/chk-7/_metadata")).exists());
}

/// Claimed (`CLAIM`), the old job's checkpoint belongs to the new job: it
/// is subsumed like the job's own, its `_metadata` and exclusive file go,
/// and its shared file lives while a retained checkpoint builds on it.
#[test]
fn a_claimed_restored_checkpoint_is_subsumed_and_its_shared_files_follow_their_users() {
    let t = TestTenant::new();
    let old_job = job_id();
    let old = checkpoint_of(&t, &old_job, 7, &[1], &[]);
    let (old_exclusive, old_shared) = (&old.states[0], &old.states[1]);
    let mut s = store(&t, 1);
    s.add_restored(&old.completed, RecoveryClaimMode::Claim).unwrap();
    assert_eq!(s.checkpoint_ids(), vec![7]);
    // Checkpoint 8 builds on the claimed shared file and subsumes 7.
    let eight = checkpoint(&t, 8, &[], &[old_shared]);
    let outcome = s.add(&eight.completed).unwrap();
    assert_eq!(outcome.subsumed, vec![7]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(
        !t.host(&format!("{old_job}/chk-7/_metadata")).exists(),
        "_metadata first"
    );
    assert!(!exists(&t, &old_exclusive.0.handle), "its exclusive file");
    assert!(exists(&t, &old_shared.0.handle), "checkpoint 8 builds on it");
    assert_restores(&t, &s, &eight);
    // Checkpoint 9 does not: the shared file goes with 8.
    let outcome = s.add(&checkpoint(&t, 9, &[9], &[]).completed).unwrap();
    assert_eq!(outcome.subsumed, vec![8]);
    assert!(!exists(&t, &old_shared.0.handle), "its last user is gone");
    assert!(
        outcome
            .discarded_shared
            .iter()
            .any(|f| Some(f.path.as_str()) == old_shared.0.handle.file_path()),
        "{:?}",
        outcome.discarded_shared
    );
}

#[test]
fn a_restored_snapshot_must_be_what_its_pointer_names() {
    let t = TestTenant::new();
    let mut s = store(&t, 1);
    // Metadata that is not its directory's `_metadata`.
    let elsewhere = CompletedCheckpoint {
        external_pointer: format!("/checkpoints/{}/chk-3", job_id()),
        metadata: StateHandle::ByteStream(ByteStreamHandle {
            name: "m".into(),
            data: b"{}".to_vec(),
        }),
    };
    // A `_metadata` that is no manifest.
    let job = job_id();
    let coordinator = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&job), None)
        .unwrap();
    let location = coordinator.initialize_location_for_checkpoint(3).unwrap();
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(b"{ not a manifest").unwrap();
    let garbage = stream.close_and_finalize_checkpoint().unwrap();
    // A manifest of checkpoint 7 in the directory of checkpoint 8.
    let seven = checkpoint_of(&t, &job, 7, &[], &[]);
    let mut renamed = seven.completed.clone();
    std::fs::rename(t.host(&format!("{job}/chk-7")), t.host(&format!("{job}/chk-8"))).unwrap();
    renamed.external_pointer = renamed.external_pointer.replace("chk-7", "chk-8");
    renamed.metadata = StateHandle::File(FileHandle {
        path: renamed.metadata.file_path().unwrap().replace("chk-7", "chk-8"),
        size: renamed.metadata.state_size(),
    });
    for mode in [RecoveryClaimMode::NoClaim, RecoveryClaimMode::Claim] {
        let e = s.add_restored(&elsewhere, mode).unwrap_err();
        assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("metadata"), "{e}");
        let e = s.add_restored(&garbage, mode).unwrap_err();
        assert!(matches!(e, StoreError::Manifest { .. }), "{e}");
        let e = s.add_restored(&renamed, mode).unwrap_err();
        assert!(e.to_string().contains("names checkpoint 7"), "{e}");
    }
    assert!(s.checkpoints().is_empty());
}

/// A snapshot already in the store, however its pointer is spelled, is
/// refused: the job's own retained checkpoint cannot come in again as a
/// restored one (whose subsumption would then delete it twice over).
#[test]
fn a_restored_snapshot_already_retained_is_a_duplicate() {
    let t = TestTenant::new();
    let mut s = store(&t, 1);
    let own = checkpoint(&t, 5, &[5], &[]);
    s.add(&own.completed).unwrap();
    let mut spelled = own.completed.clone();
    spelled.external_pointer = format!("file:{}/", spelled.external_pointer);
    for mode in [RecoveryClaimMode::NoClaim, RecoveryClaimMode::Claim] {
        assert!(matches!(s.add_restored(&spelled, mode), Err(StoreError::Duplicate(5))));
    }
    assert_eq!(s.checkpoint_ids(), vec![5]);
}

/// After a restart the job's retained checkpoints are read before the
/// claim is repeated; claiming again counts their references to the old
/// job's shared files, so none goes while a retained checkpoint needs it.
#[test]
fn claiming_again_after_a_restart_keeps_the_shared_files_retained_checkpoints_use() {
    let t = TestTenant::new();
    let old_job = job_id();
    let old = checkpoint_of(&t, &old_job, 7, &[1], &[]);
    let old_shared = &old.states[1];
    let mut s = store(&t, 2);
    s.add_restored(&old.completed, RecoveryClaimMode::Claim).unwrap();
    s.add(&checkpoint(&t, 8, &[], &[old_shared]).completed).unwrap();
    drop(s);
    let mut s = store(&t, 2);
    assert_eq!(s.checkpoint_ids(), vec![8]);
    s.add_restored(&old.completed, RecoveryClaimMode::Claim).unwrap();
    assert_eq!(s.checkpoint_ids(), vec![7, 8]);
    let outcome = s.add(&checkpoint(&t, 9, &[9], &[]).completed).unwrap();
    assert_eq!(outcome.subsumed, vec![7]);
    assert!(exists(&t, &old_shared.0.handle), "checkpoint 8 still names it");
    let outcome = s.add(&checkpoint(&t, 10, &[10], &[]).completed).unwrap();
    assert_eq!(outcome.subsumed, vec![8]);
    assert!(!exists(&t, &old_shared.0.handle), "its last user is gone");
}
