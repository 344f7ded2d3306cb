//! File merging (FLIP-306) through the host library: merged checkpoints
//! write few physical files and restore byte for byte, notifications delete
//! what no checkpoint uses, savepoints and merging-off stay plain, and a
//! process killed in the middle of a merged checkpoint leaves the last
//! completed one restorable.

use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

const TM: &str = "tm-1";

fn subtask(i: u32) -> SubtaskKey {
    SubtaskKey::new("a3f1c2d4e5f60718293a4b5c6d7e8f90", i, 2)
}

/// A coordinator view with the base locations and `chk-<id>` created.
fn coordinator(t: &TestTenant, ids: &[u64]) -> (CoordinatorView, Vec<CheckpointStorageLocation>) {
    let c = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    c.initialize_base_locations_for_checkpoint().unwrap();
    let locs = ids
        .iter()
        .map(|&id| c.initialize_location_for_checkpoint(id).unwrap())
        .collect();
    (c, locs)
}

fn manager(t: &TestTenant, options: FileMergingOptions) -> FileMergingSnapshotManager {
    let m = t
        .tenant
        .open_file_merging_manager(&StorageConfig::filesystem(&t.job), TM, &options)
        .unwrap();
    m.register_subtask(&subtask(0)).unwrap();
    m.register_subtask(&subtask(1)).unwrap();
    m
}

/// Size of state `i`: 100 B to 64 KiB, spread.
fn size_of(i: usize) -> usize {
    100 + (i * 7919) % (64 * 1024 - 100)
}

/// Writes `n` states of checkpoint `id` (half shared, half exclusive, over
/// two subtasks) and returns them named `state-<i>`.
fn write_states(m: &FileMergingSnapshotManager, id: u64, n: usize) -> Vec<NamedState> {
    let factories: Vec<_> = (0..2)
        .map(|s| {
            m.resolve_checkpoint_storage_location(&subtask(s), id, &LocationReference::Default)
                .unwrap()
        })
        .collect();
    (0..n)
        .map(|i| {
            let scope = if i.is_multiple_of(2) {
                StateScope::Shared
            } else {
                StateScope::Exclusive
            };
            let handle = factories[i % 2]
                .write_state(scope, &bytes(size_of(i), (i as u64 + id) as u8))
                .unwrap()
                .expect("non-empty state");
            NamedState {
                name: format!("state-{i}"),
                handle,
            }
        })
        .collect()
}

fn finalize(t: &TestTenant, loc: &CheckpointStorageLocation, id: u64, states: Vec<NamedState>) -> String {
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: id,
        states,
    };
    let meta = loc.create_metadata_output_stream().unwrap();
    meta.write(&manifest.to_json()).unwrap();
    meta.close_and_finalize_checkpoint().unwrap().external_pointer
}

/// Restores checkpoint `pointer` in a fresh tenant on the same directory and
/// checks every byte of every state.
fn restore_and_check(dir: &std::path::Path, job: &str, pointer: &str, id: u64, n: usize) {
    let tenant = plugin().tenant(TenantConfig::new(dir)).unwrap();
    let c = tenant
        .open_coordinator_view(&StorageConfig::filesystem(job), None)
        .unwrap();
    let done = c.resolve_checkpoint(pointer).unwrap();
    let manifest =
        CheckpointManifest::from_json_in(&tenant.read_state(&done.metadata).unwrap(), &done.external_pointer).unwrap();
    assert_eq!(manifest.checkpoint_id, id);
    assert_eq!(manifest.states.len(), n);
    for s in &manifest.states {
        let i: usize = s.name.strip_prefix("state-").unwrap().parse().unwrap();
        assert!(matches!(s.handle, StateHandle::Segment(_)), "{}", s.handle);
        assert_eq!(
            tenant.read_state(&s.handle).unwrap(),
            bytes(size_of(i), (i as u64 + id) as u8),
            "{}",
            s.name
        );
    }
}

#[test]
fn a_merged_checkpoint_of_1000_states_uses_a_handful_of_files_and_restores() {
    let t = TestTenant::new();
    let (_c, locs) = coordinator(&t, &[1]);
    let m = manager(&t, FileMergingOptions::enabled());
    assert!(m.is_merging().unwrap());
    let states = write_states(&m, 1, 1000);
    let total: u64 = states.iter().map(|s| s.handle.state_size()).sum();
    let pointer = finalize(&t, &locs[0], 1, states);
    let files = all_files(t.tenant.dir());
    // 2 subtasks' shared files, the exclusive file(s), _metadata; 32 MiB
    // files hold the ~33 MB in a few more.
    assert!(files.len() <= 8, "{} files: {files:?}", files.len());
    let stat = m.space_stat().unwrap();
    assert_eq!(stat.logical_file_count, 1000);
    assert_eq!(stat.logical_file_size, total);
    assert_eq!(stat.physical_file_size, total, "segments are back to back");
    restore_and_check(t.tenant.dir(), &t.job, &pointer, 1, 1000);
}

#[test]
fn managed_directories_have_flinks_names() {
    let t = TestTenant::new();
    coordinator(&t, &[]);
    let m = manager(&t, FileMergingOptions::enabled());
    let job = &t.job;
    assert_eq!(
        m.managed_directory(&subtask(1), StateScope::Shared).unwrap().unwrap(),
        format!("/checkpoints/{job}/shared/job_{job}_op_a3f1c2d4e5f60718293a4b5c6d7e8f90_1_2")
    );
    assert_eq!(
        m.managed_directory(&subtask(0), StateScope::Exclusive)
            .unwrap()
            .unwrap(),
        format!("/checkpoints/{job}/taskowned/job_{job}_tm_{TM}")
    );
    assert!(t.host(&format!("{job}/taskowned/job_{job}_tm_{TM}")).is_dir());
}

#[test]
fn notifications_delete_physical_files_no_checkpoint_uses() {
    let t = TestTenant::new();
    coordinator(&t, &[]);
    let m = manager(&t, FileMergingOptions::enabled());
    let s0 = subtask(0);
    let f1 = m
        .resolve_checkpoint_storage_location(&s0, 1, &LocationReference::Default)
        .unwrap();
    let a = f1.write_state(StateScope::Shared, b"one").unwrap().unwrap();
    let b = f1.write_state(StateScope::Shared, b"two").unwrap().unwrap();
    assert_eq!(a.file_path(), b.file_path());
    let f2 = m
        .resolve_checkpoint_storage_location(&s0, 2, &LocationReference::Default)
        .unwrap();
    let c = f2.write_state(StateScope::Shared, b"three").unwrap().unwrap();
    let host = |h: &StateHandle| t.tenant.host_path(h.file_path().unwrap()).unwrap();

    // discard-state of a segment deletes nothing.
    t.tenant.discard_state(&a).unwrap();
    assert_eq!(t.read_handle(&b).unwrap(), b"two");

    m.notify_checkpoint_complete(&s0, 1).unwrap();
    assert!(host(&a).exists());
    m.notify_checkpoint_aborted(&s0, 2).unwrap();
    assert!(!host(&c).exists(), "an aborted checkpoint's file goes at once");
    m.notify_checkpoint_subsumed(&s0, 1).unwrap();
    assert!(!host(&a).exists());
    assert_eq!(m.space_stat().unwrap().physical_file_count, 0);
}

/// A trap (here the memory cap) must not delete a merged physical file:
/// its manager keeps it open to append more segments, but the segments
/// already in it belong to states that were handed out.
#[test]
fn a_trap_keeps_the_physical_files_of_handed_out_segments() {
    let t = TestTenant::new();
    coordinator(&t, &[1]);
    let tenant = plugin()
        .tenant(TenantConfig::new(t.tenant.dir()).with_max_memory_bytes(8 << 20))
        .unwrap();
    let m = tenant
        .open_file_merging_manager(&StorageConfig::filesystem(&t.job), TM, &FileMergingOptions::enabled())
        .unwrap();
    m.register_subtask(&subtask(0)).unwrap();
    let f = m
        .resolve_checkpoint_storage_location(&subtask(0), 1, &LocationReference::Default)
        .unwrap();
    let shared = f.write_state(StateScope::Shared, &bytes(5000, 1)).unwrap().unwrap();
    let exclusive = f.write_state(StateScope::Exclusive, &bytes(6000, 2)).unwrap().unwrap();
    for h in [&shared, &exclusive] {
        assert!(matches!(h, StateHandle::Segment(_)), "{h}");
    }

    trap_by_memory(&tenant, &t.job);
    assert_eq!(t.read_handle(&shared).unwrap(), bytes(5000, 1));
    assert_eq!(t.read_handle(&exclusive).unwrap(), bytes(6000, 2));
}

#[test]
fn across_checkpoint_merging_appends_to_the_open_file() {
    let t = TestTenant::new();
    coordinator(&t, &[]);
    let m = manager(&t, FileMergingOptions::enabled().with_across_checkpoint_boundary(true));
    let s0 = subtask(0);
    let mut handles = vec![];
    for id in 1..=3 {
        let f = m
            .resolve_checkpoint_storage_location(&s0, id, &LocationReference::Default)
            .unwrap();
        handles.push(
            f.write_state(StateScope::Shared, &bytes(50, id as u8))
                .unwrap()
                .unwrap(),
        );
        m.notify_checkpoint_complete(&s0, id).unwrap();
        if id > 1 {
            m.notify_checkpoint_subsumed(&s0, id - 1).unwrap();
        }
    }
    assert!(handles.iter().all(|h| h.file_path() == handles[0].file_path()));
    assert_eq!(t.read_handle(&handles[2]).unwrap(), bytes(50, 3));
    let StateHandle::Segment(last) = &handles[2] else {
        panic!()
    };
    assert_eq!(last.offset, 100);
}

#[test]
fn savepoints_and_merging_off_are_plain() {
    let t = TestTenant::new();
    let (c, _) = coordinator(&t, &[1]);
    let m = manager(&t, FileMergingOptions::enabled());
    let sp = c.initialize_location_for_savepoint(9, Some("/checkpoints/sp")).unwrap();
    let f = m
        .resolve_checkpoint_storage_location(&subtask(0), 9, &sp.location_reference().unwrap())
        .unwrap();
    assert!(!f.is_merging().unwrap());
    assert!(matches!(
        f.write_state(StateScope::Exclusive, b"x").unwrap(),
        Some(StateHandle::ByteStream(_))
    ));

    let off = t
        .tenant
        .open_file_merging_manager(
            &StorageConfig::filesystem(&t.job),
            TM,
            &FileMergingOptions::flink_defaults(),
        )
        .unwrap();
    assert!(!off.is_merging().unwrap());
    off.register_subtask(&subtask(0)).unwrap();
    assert_eq!(off.managed_directory(&subtask(0), StateScope::Shared).unwrap(), None);
    let f = off
        .resolve_checkpoint_storage_location(&subtask(0), 1, &LocationReference::Default)
        .unwrap();
    let h = f
        .write_state(StateScope::Exclusive, &bytes(30_000, 1))
        .unwrap()
        .unwrap();
    assert!(matches!(h, StateHandle::RelativeFile(_)), "{h}");
    assert_eq!(t.read_handle(&h).unwrap(), bytes(30_000, 1));
}

#[test]
fn restore_re_registers_segments_in_a_new_manager() {
    let t = TestTenant::new();
    coordinator(&t, &[]);
    let states = {
        let m = manager(&t, FileMergingOptions::enabled());
        let s = write_states(&m, 1, 20);
        m.notify_checkpoint_complete(&subtask(0), 1).unwrap();
        m.notify_checkpoint_complete(&subtask(1), 1).unwrap();
        s
    };
    let tenant = plugin().tenant(TenantConfig::new(t.tenant.dir())).unwrap();
    let m = tenant
        .open_file_merging_manager(&StorageConfig::filesystem(&t.job), TM, &FileMergingOptions::enabled())
        .unwrap();
    for s in 0..2 {
        m.register_subtask(&subtask(s)).unwrap();
        let mine: Vec<_> = states
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == s as usize)
            .map(|(_, n)| n.handle.clone())
            .collect();
        m.restore_state_handles(1, &subtask(s), &mine).unwrap();
    }
    assert_eq!(m.space_stat().unwrap().logical_file_count, 20);
    for s in 0..2 {
        m.notify_checkpoint_subsumed(&subtask(s), 1).unwrap();
    }
    for n in &states {
        assert!(!t.tenant.host_path(n.handle.file_path().unwrap()).unwrap().exists());
    }
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let t = TestTenant::new();
    coordinator(&t, &[]);
    let cfg = StorageConfig::filesystem(&t.job);
    let e = storage_error(t.tenant.open_file_merging_manager(
        &cfg,
        TM,
        &FileMergingOptions::enabled().with_max_file_size(0),
    ));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("max-file-size"), "{e:?}");
    assert_eq!(
        code(
            t.tenant
                .open_file_merging_manager(&cfg, "a\nb", &FileMergingOptions::enabled())
        ),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(
            t.tenant
                .open_file_merging_manager(&StorageConfig::memory(&t.job), TM, &FileMergingOptions::enabled())
        ),
        ErrorCode::Unsupported
    );
    let m = manager(&t, FileMergingOptions::enabled());
    let stranger = SubtaskKey::new("other", 0, 1);
    let e = storage_error(m.resolve_checkpoint_storage_location(&stranger, 1, &LocationReference::Default));
    assert!(e.message.contains("register-subtask"), "{e:?}");
    assert_eq!(
        code(m.register_subtask(&SubtaskKey::new("op", 3, 2))),
        ErrorCode::InvalidArgument
    );

    // Crafted segments: outside the tenant, or beyond their file.
    let real = m
        .resolve_checkpoint_storage_location(&subtask(0), 1, &LocationReference::Default)
        .unwrap()
        .write_state(StateScope::Shared, b"abc")
        .unwrap()
        .unwrap();
    let StateHandle::Segment(real) = real else { panic!() };
    for (path, offset, size) in [
        ("/checkpoints/../etc/passwd".to_string(), 0, 1),
        ("/etc/passwd".to_string(), 0, 1),
        (real.path.clone(), 2, 2),
        (real.path.clone(), u64::MAX, 1),
    ] {
        let h = StateHandle::Segment(SegmentHandle {
            path,
            offset,
            size,
            scope: StateScope::Shared,
        });
        assert_eq!(code(t.tenant.read_state(&h)), ErrorCode::InvalidArgument, "{h}");
    }
    let outside = StateHandle::Segment(SegmentHandle {
        path: "/elsewhere/x".into(),
        offset: 0,
        size: 1,
        scope: StateScope::Shared,
    });
    assert_eq!(
        code(m.restore_state_handles(1, &subtask(0), &[outside])),
        ErrorCode::InvalidArgument
    );
    assert!(!t.tenant.is_poisoned());
}

/// In the child: checkpoint 1 completes; checkpoint 2 is in the middle of
/// its states when the parent kills the process.
#[test]
fn crash_child_writes_merged_checkpoints() {
    let Ok(dir) = std::env::var("FILE_MERGING_CRASH_DIR") else {
        return;
    };
    let job = std::env::var("FILE_MERGING_CRASH_JOB").unwrap();
    let tenant = plugin().tenant(TenantConfig::new(&dir)).unwrap();
    let t = TestTenant {
        tenant,
        job,
        dir: tempfile::tempdir().unwrap(),
    };
    let (_c, locs) = coordinator(&t, &[1, 2]);
    let m = manager(&t, FileMergingOptions::enabled().with_across_checkpoint_boundary(true));
    let states = write_states(&m, 1, 200);
    let pointer = finalize(&t, &locs[0], 1, states);
    std::fs::write(std::path::Path::new(&dir).join("..").join("pointer"), &pointer).unwrap();
    // Checkpoint 2 appends to checkpoint 1's open files until killed.
    let f = m
        .resolve_checkpoint_storage_location(&subtask(0), 2, &LocationReference::Default)
        .unwrap();
    // Bounded, so that an orphaned child ends by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        let mut stream = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
        stream.write(&bytes(size_of(i % 50), 2)).unwrap();
        if i == 10 {
            std::fs::write(std::path::Path::new(&dir).join("..").join("ready"), b"").unwrap();
        }
        if i >= 10 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stream.close_and_get_handle().unwrap();
        assert!(Instant::now() < deadline, "the parent never killed this child");
    }
}

#[test]
fn sigkill_in_the_middle_of_a_merged_checkpoint_keeps_the_last_completed_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tenant");
    std::fs::create_dir(&dir).unwrap();
    let job = job_id();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writes_merged_checkpoints",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FILE_MERGING_CRASH_DIR", &dir)
        .env("FILE_MERGING_CRASH_JOB", &job)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !root.path().join("ready").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended before the crash point: {status}");
        }
        assert!(Instant::now() < deadline, "the child never reached checkpoint 2");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let pointer = std::fs::read_to_string(root.path().join("pointer")).unwrap();
    restore_and_check(&dir, &job, &pointer, 1, 200);
}

/// Space control through the component (Flink's `testSpaceControl` in
/// short): once a closed file holds far more bytes than live segments, its
/// segments are no longer offered for reuse; the open file's still are.
#[test]
fn space_control_stops_reuse_of_segments_in_a_wasteful_file() {
    let t = TestTenant::new();
    let (_c, _locs) = coordinator(&t, &[1, 2]);
    let m = manager(
        &t,
        FileMergingOptions::enabled()
            .with_across_checkpoint_boundary(true)
            .with_max_file_size(8 << 10),
    );
    let factory = |id| {
        m.resolve_checkpoint_storage_location(&subtask(0), id, &LocationReference::Default)
            .unwrap()
    };
    let write = |id: u64| {
        factory(id)
            .write_state(StateScope::Shared, &bytes(1 << 10, id as u8))
            .unwrap()
            .unwrap()
    };
    // Eight states fill the first file, the ninth starts the second.
    let first: Vec<StateHandle> = (0..9).map(|_| write(1)).collect();
    assert_ne!(first[0].file_path(), first[8].file_path());
    assert!(m.could_reuse_previous_state_handle(&first[0]).unwrap());
    m.reuse_previous_state_handles(2, std::slice::from_ref(&first[0]))
        .unwrap();
    m.notify_checkpoint_subsumed(&subtask(0), 1).unwrap();
    // 9 KiB on disk for 1 KiB live (first[0], reused by checkpoint 2).
    assert!(!m.could_reuse_previous_state_handle(&first[0]).unwrap());
    assert!(t.tenant.read_state(&first[0]).is_ok(), "still live for checkpoint 2");
    let again = write(2);
    assert_eq!(
        again.file_path(),
        first[8].file_path(),
        "the open file still takes segments"
    );
    assert!(m.could_reuse_previous_state_handle(&again).unwrap());
    let inline = StateHandle::ByteStream(ByteStreamHandle {
        name: "x".into(),
        data: vec![1],
    });
    assert!(!m.could_reuse_previous_state_handle(&inline).unwrap());
}
