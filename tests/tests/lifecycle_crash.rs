//! Crashes during the lifecycle: a child process (this test binary, run
//! again with an environment variable) is killed with SIGKILL between the
//! steps of a subsumption, or in the middle of writing a checkpoint. Then
//! recovery: nothing retained is lost, every retained checkpoint restores
//! every byte, and the orphan collection removes exactly the left-overs.

use checkpoint_storage_host::checkpoint_store::{CompletedCheckpointStore, SubsumeStep};
use checkpoint_storage_host::gc::{self, GcOptions};
use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_tests::*;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FILE_STATE: usize = 30_000;
const CHILD: &str = "LIFECYCLE_CRASH_CHILD";
const CHILD_DIR: &str = "LIFECYCLE_CRASH_DIR";
const CHILD_JOB: &str = "LIFECYCLE_CRASH_JOB";

fn tenant_of(dir: &Path, job: &str) -> TestTenant {
    TestTenant {
        tenant: plugin().tenant(TenantConfig::new(dir)).unwrap(),
        job: job.to_string(),
        dir: tempfile::tempdir().unwrap(),
    }
}

/// A state named `<kind>-<seed>` holds `bytes(FILE_STATE, seed)`.
fn expected_bytes(name: &str) -> Vec<u8> {
    let seed: u8 = name.rsplit('-').next().unwrap().parse().unwrap();
    bytes(FILE_STATE, seed)
}

/// Writes checkpoint `id` (an exclusive state seeded `id`, new shared
/// states, reused shared states) and adds it to the store.
fn add_checkpoint(
    t: &TestTenant,
    store: &mut CompletedCheckpointStore,
    id: u64,
    new_shared: &[u8],
    reused: &[NamedState],
) -> Vec<NamedState> {
    let location = store.coordinator_view().initialize_location_for_checkpoint(id).unwrap();
    let factory = t.default_factory(id);
    let mut states = vec![NamedState {
        name: format!("exclusive-{id}"),
        handle: factory
            .write_state(StateScope::Exclusive, &bytes(FILE_STATE, id as u8))
            .unwrap()
            .unwrap(),
    }];
    for seed in new_shared {
        states.push(NamedState {
            name: format!("shared-{seed}"),
            handle: factory
                .write_state(StateScope::Shared, &bytes(FILE_STATE, *seed))
                .unwrap()
                .unwrap(),
        });
    }
    states.extend(reused.iter().cloned());
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: id,
        states: states.clone(),
    };
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&manifest.to_json()).unwrap();
    let completed = stream.close_and_finalize_checkpoint().unwrap();
    store.add(&completed).unwrap();
    states
}

fn recover(t: &TestTenant, num_retained: u32) -> CompletedCheckpointStore {
    let store =
        CompletedCheckpointStore::recover(&t.tenant, &StorageConfig::filesystem(&t.job), None, num_retained).unwrap();
    store
        .coordinator_view()
        .initialize_base_locations_for_checkpoint()
        .unwrap();
    store
}

/// Every state of every retained checkpoint reads back exactly.
fn assert_all_restore(t: &TestTenant, store: &CompletedCheckpointStore) {
    for c in store.checkpoints() {
        for s in &c.manifest.states {
            assert_eq!(
                t.tenant.read_state(&s.handle).unwrap(),
                expected_bytes(&s.name),
                "checkpoint {} state {}",
                c.checkpoint_id,
                s.name
            );
        }
    }
}

/// Files of the tenant no retained manifest references (`_metadata` files
/// are the roots themselves).
fn unreferenced(t: &TestTenant, store: &CompletedCheckpointStore) -> BTreeSet<String> {
    let referenced: BTreeSet<String> = store
        .checkpoints()
        .iter()
        .flat_map(|c| c.manifest.states.iter())
        .filter_map(|s| s.handle.file_path())
        .map(|p| p.strip_prefix("/checkpoints/").unwrap().to_string())
        .collect();
    all_files(t.tenant.dir())
        .into_iter()
        .filter(|f| !f.ends_with("/_metadata") && !referenced.contains(f))
        .collect()
}

/// Runs `test` of this binary in a child with `env`, expecting SIGKILL.
fn run_child_expecting_sigkill(test: &str, env: &[(&str, String)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "child was not killed: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sigkill_self() -> ! {
    // SAFETY: sends a signal to this process; no memory is touched.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL cannot be caught")
}

/// In the child: three checkpoints retaining two; adding the third
/// subsumes the first, whose steps are: removed, exclusive directory
/// discarded, shared-1 and shared-2 discarded (shared-3 is reused by 2).
/// The child kills itself right after step `kill_at` (1-based).
fn subsuming_child(dir: &Path, job: &str, kill_at: usize) {
    let t = tenant_of(dir, job);
    let mut store = recover(&t, 2);
    let one = add_checkpoint(&t, &mut store, 1, &[11, 12, 13], &[]);
    add_checkpoint(&t, &mut store, 2, &[21], &[one[3].clone()]);
    let mut steps = 0;
    store.set_step_observer(move |step: &SubsumeStep| {
        steps += 1;
        println!("step {steps}: {step:?}");
        if steps == kill_at {
            sigkill_self();
        }
    });
    add_checkpoint(&t, &mut store, 3, &[31], &[]);
    println!("all steps done without being killed");
}

#[test]
fn sigkill_between_subsumption_steps_loses_nothing_retained() {
    if let Ok(kill_at) = std::env::var(CHILD) {
        let dir = std::env::var(CHILD_DIR).unwrap();
        let job = std::env::var(CHILD_JOB).unwrap();
        subsuming_child(Path::new(&dir), &job, kill_at.parse().unwrap());
        return;
    }
    // After step k: (checkpoints recovered, left-overs for gc).
    let expected = [
        (1, vec![1, 2, 3], 0), // removed from the store only: nothing happened on storage
        (2, vec![2, 3], 2),    // exclusive directory gone; shared-11 and shared-12 left
        (3, vec![2, 3], 1),    // one of them deleted
        (4, vec![2, 3], 0),    // both deleted: the subsumption was complete
    ];
    for (kill_at, retained, leftovers) in expected {
        let dir = tempfile::tempdir().unwrap();
        let job = job_id();
        run_child_expecting_sigkill(
            "sigkill_between_subsumption_steps_loses_nothing_retained",
            &[
                (CHILD, kill_at.to_string()),
                (CHILD_DIR, dir.path().display().to_string()),
                (CHILD_JOB, job.clone()),
            ],
        );
        let t = tenant_of(dir.path(), &job);
        let store = recover(&t, 2);
        assert_eq!(store.checkpoint_ids(), retained, "killed after step {kill_at}");
        assert_all_restore(&t, &store);
        let orphans = unreferenced(&t, &store);
        assert_eq!(orphans.len(), leftovers, "killed after step {kill_at}: {orphans:?}");
        assert!(
            orphans.iter().all(|f| f.starts_with(&format!("{job}/shared/"))),
            "{orphans:?}"
        );
        let report = gc::collect(
            t.tenant.dir(),
            &GcOptions {
                grace: Duration::ZERO,
                delete: true,
            },
        )
        .unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let collected: BTreeSet<String> = report.orphans.iter().map(|o| o.display.clone()).collect();
        assert_eq!(
            collected, orphans,
            "killed after step {kill_at}: gc collects exactly the left-overs"
        );
        // Recovery still works after gc, and the next add subsumes down.
        let mut store = recover(&t, 2);
        assert_all_restore(&t, &store);
        let reused = store.latest_checkpoint().unwrap().manifest.states[1].clone();
        add_checkpoint(&t, &mut store, 4, &[41], &[reused]);
        assert_eq!(store.checkpoint_ids(), vec![3, 4]);
        assert_all_restore(&t, &store);
        assert!(
            unreferenced(&t, &store).is_empty(),
            "nothing left over after a clean subsumption"
        );
    }
}

/// In the child: checkpoints 1 and 2 complete; checkpoint 3 is half
/// written (an exclusive and a shared state, a stream that spilled to its
/// file, metadata being written) when the child is killed.
fn writer_child(dir: &Path, job: &str) {
    let t = tenant_of(dir, job);
    let mut store = recover(&t, 2);
    let one = add_checkpoint(&t, &mut store, 1, &[11], &[]);
    add_checkpoint(&t, &mut store, 2, &[21], &[one[1].clone()]);
    let location = store.coordinator_view().initialize_location_for_checkpoint(3).unwrap();
    let factory = t.default_factory(3);
    factory
        .write_state(StateScope::Exclusive, &bytes(FILE_STATE, 3))
        .unwrap();
    factory.write_state(StateScope::Shared, &bytes(FILE_STATE, 31)).unwrap();
    let mut open = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    open.write(&bytes(FILE_STATE, 32)).unwrap(); // above the buffer: in its file
    let metadata = location.create_metadata_output_stream().unwrap();
    metadata.write(b"{\"format\": \"flink-checkpoint-st").unwrap();
    sigkill_self();
}

#[test]
fn gc_after_a_writer_killed_mid_checkpoint_removes_exactly_the_orphans() {
    if std::env::var_os(CHILD).is_some() {
        let dir = std::env::var(CHILD_DIR).unwrap();
        let job = std::env::var(CHILD_JOB).unwrap();
        writer_child(Path::new(&dir), &job);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let job = job_id();
    run_child_expecting_sigkill(
        "gc_after_a_writer_killed_mid_checkpoint_removes_exactly_the_orphans",
        &[
            (CHILD, "writer".into()),
            (CHILD_DIR, dir.path().display().to_string()),
            (CHILD_JOB, job.clone()),
        ],
    );
    let t = tenant_of(dir.path(), &job);
    let store = recover(&t, 2);
    assert_eq!(
        store.checkpoint_ids(),
        vec![1, 2],
        "the half-written checkpoint is not complete"
    );
    let orphans = unreferenced(&t, &store);
    // chk-3: exclusive state, the open stream's file, the temporary
    // metadata; shared: checkpoint 3's shared state.
    assert_eq!(orphans.len(), 4, "{orphans:?}");
    assert_eq!(orphans.iter().filter(|f| f.contains("/chk-3/")).count(), 3);
    assert!(
        orphans.iter().any(|f| f.contains("/chk-3/._metadata_temp-")),
        "{orphans:?}"
    );

    // Within the grace period nothing is touched: a live writer may own it.
    let report = gc::collect(
        t.tenant.dir(),
        &GcOptions {
            delete: true,
            ..GcOptions::default()
        },
    )
    .unwrap();
    assert!(report.orphans.is_empty(), "{:?}", report.orphans);
    assert_eq!(report.young.len(), 4);
    assert_eq!(unreferenced(&t, &store), orphans);

    // A dry run without grace lists them (and the directory) and deletes nothing.
    let no_grace = |delete| GcOptions {
        grace: Duration::ZERO,
        delete,
    };
    let dry = gc::collect(t.tenant.dir(), &no_grace(false)).unwrap();
    let listed: BTreeSet<String> = dry
        .orphans
        .iter()
        .filter(|o| o.kind != gc::OrphanKind::IncompleteDirectory)
        .map(|o| o.display.clone())
        .collect();
    assert_eq!(listed, orphans);
    assert_eq!(
        dry.orphan_bytes(),
        orphans
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
            .sum::<u64>()
    );
    assert_eq!(unreferenced(&t, &store), orphans, "a dry run deletes nothing");

    let report = gc::collect(t.tenant.dir(), &no_grace(true)).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.orphans.len(), 5, "four files and the chk-3 directory");
    assert!(unreferenced(&t, &store).is_empty());
    assert!(!t.host(&format!("{job}/chk-3")).exists());
    let store = recover(&t, 2);
    assert_eq!(store.checkpoint_ids(), vec![1, 2]);
    assert_all_restore(&t, &store);
}
