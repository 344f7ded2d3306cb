//! Native tests of file merging over the in-memory sandbox: the applicable
//! cases of Flink's `FileMergingSnapshotManagerTestBase`,
//! `WithinCheckpointFileMergingSnapshotManagerTest`,
//! `AcrossCheckpointFileMergingSnapshotManagerTest` and
//! `FsMergingCheckpointStorageLocationTest`.

use super::manager::{FileMergingSnapshotManager, SpaceStat};
use super::options::{FileMergingOptions, SubtaskKey};
use crate::access::StateScope::{self, Exclusive, Shared};
use crate::config::{Backend, StorageConfig};
use crate::error::ErrorCode;
use crate::handle::StateHandle;
use crate::output_stream::CheckpointStateOutputStream;
use crate::reference::LocationReference;
use crate::restore::{StateInputStream, discard_state};
use crate::test_support::MemSandbox;
use crate::toolset::Toolset;
use std::rc::Rc;

const JOB: &str = "0123456789abcdef0123456789abcdef";
const TM: &str = "tm-1";

fn config() -> StorageConfig {
    StorageConfig {
        job_id: JOB.into(),
        checkpoints_dir: Some("/checkpoints".into()),
        create_subdir: None,
        backend: Backend::Filesystem,
        file_state_threshold: Some(1024),
        write_buffer_size: Some(1024),
        max_memory_state_size: None,
        s3_entropy_key: None,
        s3_entropy_length: None,
    }
}

fn key(op: &str, index: u32) -> SubtaskKey {
    SubtaskKey {
        operator_id: op.into(),
        subtask_index: index,
        parallelism: 2,
    }
}

fn within() -> FileMergingOptions {
    FileMergingOptions {
        enabled: Some(true),
        ..Default::default()
    }
}

fn across() -> FileMergingOptions {
    FileMergingOptions {
        across_checkpoint_boundary: Some(true),
        ..within()
    }
}

fn sandbox() -> Rc<MemSandbox> {
    MemSandbox::with_dirs(&[
        &format!("/checkpoints/{JOB}"),
        &format!("/checkpoints/{JOB}/shared"),
        &format!("/checkpoints/{JOB}/taskowned"),
    ])
}

fn manager(s: &Rc<MemSandbox>, options: FileMergingOptions) -> FileMergingSnapshotManager<MemSandbox> {
    let m = FileMergingSnapshotManager::open(s.clone(), &config(), TM, &options).unwrap();
    m.register_subtask(&key("op", 0)).unwrap();
    m
}

/// Writes `data` as one state of `subtask` in checkpoint `cp`.
fn write(
    m: &FileMergingSnapshotManager<MemSandbox>,
    k: &SubtaskKey,
    cp: u64,
    scope: StateScope,
    data: &[u8],
) -> StateHandle {
    let f = m
        .resolve_checkpoint_storage_location(k, cp, &LocationReference::Default)
        .unwrap();
    f.write_state(scope, data).unwrap().expect("a handle")
}

fn segment(h: &StateHandle) -> (&str, u64, u64) {
    match h {
        StateHandle::Segment { path, offset, size, .. } => (path, *offset, *size),
        other => panic!("expected a segment, got {other:?}"),
    }
}

fn exists(s: &MemSandbox, h: &StateHandle) -> bool {
    s.read(segment(h).0).is_some()
}

fn read_back(s: &Rc<MemSandbox>, h: &StateHandle) -> Vec<u8> {
    let mut input = StateInputStream::open(&**s, h.clone()).unwrap();
    input.read(u64::MAX).unwrap()
}

#[test]
fn managed_directories_are_flinks() {
    let s = sandbox();
    let m = manager(&s, within());
    let excl = format!("/checkpoints/{JOB}/taskowned/job_{JOB}_tm_{TM}");
    let shared = format!("/checkpoints/{JOB}/shared/job_{JOB}_op_op_0_2");
    assert_eq!(m.managed_directory(&key("op", 0), Exclusive).unwrap().as_str(), excl);
    assert_eq!(m.managed_directory(&key("op", 0), Shared).unwrap().as_str(), shared);
    assert!(s.dirs.borrow().iter().any(|d| d.as_str() == excl));
    assert!(s.dirs.borrow().iter().any(|d| d.as_str() == shared));
    assert_eq!(m.managed_directory(&key("other", 0), Shared), None);
    let h = write(&m, &key("op", 0), 1, Shared, b"x");
    assert!(segment(&h).0.starts_with(&format!("{shared}/")));
    let h = write(&m, &key("op", 0), 1, Exclusive, b"x");
    assert!(segment(&h).0.starts_with(&format!("{excl}/")));
}

#[test]
fn managed_path_taken_by_a_file_is_refused() {
    let s = sandbox();
    s.files.borrow_mut().insert(
        crate::paths::GuestPath::parse(&format!("/checkpoints/{JOB}/taskowned/job_{JOB}_tm_{TM}")).unwrap(),
        Default::default(),
    );
    let e = FileMergingSnapshotManager::open(s.clone(), &config(), TM, &within())
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert!(e.message.contains("occupied by another file"), "{e:?}");
}

#[test]
fn unregistered_subtask_and_bad_ids_are_refused() {
    let s = sandbox();
    let m = manager(&s, within());
    let e = m
        .resolve_checkpoint_storage_location(&key("nobody", 0), 1, &LocationReference::Default)
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("register-subtask"), "{e:?}");
    assert_eq!(
        m.register_subtask(&key("", 0)).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    let e = FileMergingSnapshotManager::open(s.clone(), &config(), "", &within())
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let mut memory = config();
    memory.backend = Backend::Memory;
    let e = FileMergingSnapshotManager::open(s.clone(), &memory, TM, &within())
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::Unsupported);
}

/// A manager that does not merge works for a memory backend without a
/// checkpoints directory too: it has no managed directories and its
/// streams are the view's (inline).
#[test]
fn a_manager_that_does_not_merge_needs_no_checkpoints_directory() {
    let s = MemSandbox::with_dirs(&[]);
    let mut memory = config();
    memory.backend = Backend::Memory;
    memory.checkpoints_dir = None;
    let m = FileMergingSnapshotManager::open(s.clone(), &memory, TM, &FileMergingOptions::default()).unwrap();
    assert!(!m.is_merging());
    m.register_subtask(&key("op", 0)).unwrap();
    assert_eq!(m.managed_directory(&key("op", 0), Exclusive), None);
    assert_eq!(m.managed_directory(&key("op", 0), Shared), None);
    let h = write(&m, &key("op", 0), 1, Shared, b"inline");
    assert!(
        matches!(&h, StateHandle::ByteStream { data, .. } if data == b"inline"),
        "{h:?}"
    );
    assert!(s.files.borrow().is_empty(), "nothing written");
}

/// `testWriteMultipleStateFilesWithinCheckpoint`: small states are not
/// inlined; they share one physical file, back to back.
#[test]
fn small_states_of_a_checkpoint_share_one_physical_file() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let states: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 2 + 7 * i as usize]).collect();
    let handles: Vec<_> = states.iter().map(|d| write(&m, &k, 1, Shared, d)).collect();
    let path = segment(&handles[0]).0;
    let mut offset = 0;
    for (h, d) in handles.iter().zip(&states) {
        assert_eq!(segment(h), (path, offset, d.len() as u64));
        offset += d.len() as u64;
        assert_eq!(&read_back(&s, h), d);
    }
    assert_eq!(s.read(path).unwrap(), states.concat());
}

#[test]
fn shared_and_exclusive_state_go_to_separate_files_and_subtasks_share_exclusive() {
    let s = sandbox();
    let m = manager(&s, within());
    m.register_subtask(&key("op", 1)).unwrap();
    let a = write(&m, &key("op", 0), 1, Shared, b"a");
    let b = write(&m, &key("op", 1), 1, Shared, b"b");
    let c = write(&m, &key("op", 0), 1, Exclusive, b"c");
    let d = write(&m, &key("op", 1), 1, Exclusive, b"d");
    assert_ne!(segment(&a).0, segment(&b).0);
    assert_ne!(segment(&a).0, segment(&c).0);
    assert_eq!(segment(&c).0, segment(&d).0);
}

#[test]
fn empty_state_gives_no_handle_and_no_file() {
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    assert_eq!(f.write_state(Shared, b"").unwrap(), None);
    assert_eq!(s.files.borrow().len(), 0);
}

/// `testCheckpointStreamClosedExceptionally`.
#[test]
fn dropped_stream_deletes_its_fresh_physical_file() {
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(Exclusive).unwrap();
    stream.write(&[7; 2000]).unwrap();
    assert_eq!(s.files.borrow().len(), 1, "the buffer overflowed into a physical file");
    drop(stream);
    assert_eq!(s.files.borrow().len(), 0);
}

#[test]
fn dropped_stream_keeps_a_file_with_live_segments_but_stops_reusing_it() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let kept = write(&m, &k, 1, Shared, b"kept");
    let f = m
        .resolve_checkpoint_storage_location(&k, 1, &LocationReference::Default)
        .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(Shared).unwrap();
    stream.write(&[1; 1500]).unwrap();
    drop(stream);
    assert_eq!(read_back(&s, &kept), b"kept");
    let next = write(&m, &k, 1, Shared, b"next");
    assert_ne!(
        segment(&next).0,
        segment(&kept).0,
        "the file with failed bytes takes no more segments"
    );
}

/// `testWritingToClosedStream`.
#[test]
fn closed_stream_refuses_writes_and_second_close() {
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(Shared).unwrap();
    stream.write(b"abc").unwrap();
    stream.close_and_get_handle().unwrap().unwrap();
    assert_eq!(stream.write(b"x").unwrap_err().code, ErrorCode::Closed);
    let e = stream.flush().unwrap_err();
    assert_eq!(e.code, ErrorCode::Closed);
    // Flink: "Cannot call flushToFile() to a closed stream."
    assert!(
        e.message.starts_with("Cannot call flush() to a closed stream"),
        "{}",
        e.message
    );
    let e = stream.close_and_get_handle().unwrap_err();
    assert_eq!(e.code, ErrorCode::Closed);
    assert_eq!(e.message, "Stream has already been closed and discarded.");
}

/// A merging stream never hands its file over; once closed it answers
/// `closed`, as `direct-io` documents, not `never` or `invalid-argument`.
#[test]
fn merging_stream_direct_io_is_never_while_open_and_closed_after() {
    use crate::output_stream::DirectWrite;
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(Exclusive).unwrap();
    assert!(matches!(
        stream.prepare_direct_write(1 << 20).unwrap(),
        DirectWrite::Never
    ));
    assert_eq!(stream.advance(1).unwrap_err().code, ErrorCode::InvalidArgument);
    stream.write(b"abc").unwrap();
    stream.close_and_get_handle().unwrap().unwrap();
    assert_eq!(
        stream.prepare_direct_write(1 << 20).unwrap_err().code,
        ErrorCode::Closed
    );
    assert_eq!(stream.advance(1).unwrap_err().code, ErrorCode::Closed);
}

/// A flush before anything reached a file creates no file (Flink's
/// `flush` only writes to an assigned physical file).
#[test]
fn flush_without_a_physical_file_creates_none() {
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(Shared).unwrap();
    stream.write(b"abc").unwrap();
    stream.flush().unwrap();
    stream.sync().unwrap();
    assert_eq!(s.files.borrow().len(), 0);
    assert_eq!(stream.pos(), 3);
}

/// `testWriteAndReadPositionInformation`: positions are relative to the
/// segment, even when the physical file holds earlier segments.
#[test]
fn segment_positions_are_relative_to_its_start() {
    let s = sandbox();
    let m = manager(
        &s,
        FileMergingOptions {
            max_file_size: Some(128),
            ..across()
        },
    );
    let k = key("op", 0);
    write(&m, &k, 1, Shared, &[9; 10]);
    for cp in 2..10u64 {
        let f = m
            .resolve_checkpoint_storage_location(&k, cp, &LocationReference::Default)
            .unwrap();
        let mut stream = f.create_checkpoint_state_output_stream(Shared).unwrap();
        stream.write(&[cp as u8; 64]).unwrap();
        let values: Vec<u64> = (0..10).map(|i| cp * 100 + i).collect();
        for v in &values {
            stream.write(&v.to_be_bytes()).unwrap();
        }
        assert_eq!(stream.pos(), 64 + 80);
        let h = stream.close_and_get_handle().unwrap().unwrap();
        let mut input = StateInputStream::open(&*s, h).unwrap();
        assert_eq!(input.size(), 144);
        for (i, v) in values.iter().enumerate().rev() {
            input.seek(64 + 8 * i as u64).unwrap();
            assert_eq!(input.read(8).unwrap(), v.to_be_bytes());
        }
        input.seek(0).unwrap();
        assert_eq!(input.read(64).unwrap(), vec![cp as u8; 64]);
        input.seek(144).unwrap();
        assert!(input.read(10).unwrap().is_empty(), "reads end at the segment's end");
    }
}

/// `WithinCheckpoint...testCreateAndReuseFiles` and its notifications.
#[test]
fn within_checkpoint_reuses_files_only_inside_a_checkpoint() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let a1 = write(&m, &k, 1, Shared, b"a1");
    let b1 = write(&m, &k, 1, Shared, b"b1");
    let a2 = write(&m, &k, 2, Shared, b"a2");
    assert_eq!(segment(&a1).0, segment(&b1).0);
    assert_ne!(segment(&a1).0, segment(&a2).0, "a new checkpoint starts new files");

    // Completing deletes nothing; subsuming frees the file.
    m.notify_checkpoint_complete(&k, 1).unwrap();
    assert!(exists(&s, &a1));
    let c1 = write(&m, &k, 1, Shared, b"late");
    assert_ne!(
        segment(&c1).0,
        segment(&a1).0,
        "a completed checkpoint's files are closed"
    );
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    assert!(!exists(&s, &a1));
    assert!(!exists(&s, &c1));
    assert!(exists(&s, &a2));

    // Aborting deletes the checkpoint's files at once.
    m.notify_checkpoint_aborted(&k, 2).unwrap();
    assert!(!exists(&s, &a2));
    assert_eq!(s.files.borrow().len(), 0);
}

/// An exclusive file with segments of two subtasks goes only after both
/// are notified.
#[test]
fn exclusive_file_of_two_subtasks_goes_after_both_notifications() {
    let s = sandbox();
    let m = manager(&s, within());
    let (k0, k1) = (key("op", 0), key("op", 1));
    m.register_subtask(&k1).unwrap();
    let a = write(&m, &k0, 1, Exclusive, b"a");
    let b = write(&m, &k1, 1, Exclusive, b"b");
    assert_eq!(segment(&a).0, segment(&b).0);
    m.notify_checkpoint_complete(&k0, 1).unwrap();
    m.notify_checkpoint_subsumed(&k0, 1).unwrap();
    assert!(exists(&s, &a));
    assert_eq!(read_back(&s, &b), b"b");
    m.notify_checkpoint_subsumed(&k1, 1).unwrap();
    assert!(!exists(&s, &a));
}

/// `AcrossCheckpoint...testCreateAndReuseFiles`: later checkpoints append to
/// the open file until it reaches max-file-size; an open file is never
/// deleted, a closed one goes when its last segment does.
#[test]
fn across_checkpoint_reuses_files_until_max_file_size() {
    let s = sandbox();
    let m = manager(
        &s,
        FileMergingOptions {
            max_file_size: Some(100),
            max_space_amplification: Some(0.0),
            ..across()
        },
    );
    let k = key("op", 0);
    let a = write(&m, &k, 1, Shared, &[1; 60]);
    let b = write(&m, &k, 2, Shared, &[2; 60]);
    assert_eq!(
        segment(&a).0,
        segment(&b).0,
        "checkpoint 2 appends to checkpoint 1's file"
    );
    assert_eq!(segment(&b).1, 60);
    let c = write(&m, &k, 3, Shared, &[3; 10]);
    assert_ne!(
        segment(&c).0,
        segment(&a).0,
        "the file reached max-file-size (soft: it holds 120 bytes)"
    );
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    assert!(exists(&s, &a));
    m.notify_checkpoint_subsumed(&k, 2).unwrap();
    assert!(!exists(&s, &a), "closed at rollover and without live segments");
    m.notify_checkpoint_subsumed(&k, 3).unwrap();
    assert!(exists(&s, &c), "still open for more segments");
    assert_eq!(read_back(&s, &c), [3; 10]);
    let d = write(&m, &k, 4, Shared, &[4; 5]);
    assert_eq!(segment(&d), (segment(&c).0, 10, 5));
}

/// `testRefCountBetweenLogicalAndPhysicalFiles`, and what `space-stat` reports.
#[test]
fn physical_files_are_counted_through_their_segments() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    write(&m, &k, 1, Shared, &[0; 123]);
    write(&m, &k, 1, Shared, &[0; 456]);
    assert_eq!(
        m.space_stat(),
        SpaceStat {
            physical_file_count: 1,
            physical_file_size: 579,
            logical_file_count: 2,
            logical_file_size: 579
        }
    );
    m.notify_checkpoint_complete(&k, 1).unwrap();
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    assert_eq!(m.space_stat(), SpaceStat::default());
    assert_eq!(s.files.borrow().len(), 0);
}

/// `reusePreviousStateHandle`: a segment reused by checkpoint 2 keeps its
/// file until checkpoint 2 is subsumed.
#[test]
fn reused_segment_lives_until_the_reusing_checkpoint_is_subsumed() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let a = write(&m, &k, 1, Shared, b"incremental");
    m.notify_checkpoint_complete(&k, 1).unwrap();
    m.reuse_previous_state_handles(2, std::slice::from_ref(&a)).unwrap();
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    assert!(exists(&s, &a));
    m.notify_checkpoint_subsumed(&k, 2).unwrap();
    assert!(!exists(&s, &a));
}

/// A reused handle that spells its file as a `file:` URI is the same
/// segment: it keeps its file alive like the canonical spelling.
#[test]
fn a_reused_segment_is_found_whatever_the_spelling_of_its_path() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let a = write(&m, &k, 1, Shared, b"incremental");
    let StateHandle::Segment {
        path,
        offset,
        size,
        scope,
    } = &a
    else {
        panic!("{a:?}")
    };
    let spelled = StateHandle::Segment {
        path: format!("file://{path}"),
        offset: *offset,
        size: *size,
        scope: *scope,
    };
    m.notify_checkpoint_complete(&k, 1).unwrap();
    m.reuse_previous_state_handles(2, &[spelled]).unwrap();
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    assert!(exists(&s, &a), "reused by checkpoint 2");
    m.notify_checkpoint_subsumed(&k, 2).unwrap();
    assert!(!exists(&s, &a));
}

/// Flink's `testSpaceControl` (sizes scaled down: files of 32 KiB, states
/// of an eighth of that): above `max-space-amplification` (2.0) the closed
/// file that wastes most is marked wasteful, so its segments are no longer
/// offered for reuse, while the open file keeps taking new segments; no
/// file is closed or deleted early.
#[test]
fn space_control_stops_reuse_of_segments_in_wasteful_closed_files() {
    let s = sandbox();
    let eighth = 4 << 10;
    let m = manager(
        &s,
        FileMergingOptions {
            max_file_size: Some(8 * eighth as u64),
            ..across()
        },
    );
    let k = key("op", 0);
    let state = |cp: u64| write(&m, &k, cp, Shared, &vec![cp as u8; eighth]);
    let counts = || {
        let st = m.space_stat();
        (st.physical_file_count, st.logical_file_count)
    };
    // Checkpoint 1: six states, one file.
    let h: Vec<StateHandle> = (0..6).map(|_| state(1)).collect();
    m.notify_checkpoint_complete(&k, 1).unwrap();
    assert_eq!(counts(), (1, 6));
    // Checkpoint 2: three new states (the file fills up at eight and a
    // second one starts) and state 1 reused.
    assert!(m.could_reuse_previous_state_handle(&h[0]));
    let h7 = state(2);
    let _h8 = state(2);
    let h9 = state(2);
    assert_eq!(segment(&h7).0, segment(&h[0]).0);
    assert_ne!(segment(&h9).0, segment(&h[0]).0);
    m.reuse_previous_state_handles(2, std::slice::from_ref(&h[0])).unwrap();
    m.notify_checkpoint_complete(&k, 2).unwrap();
    assert_eq!(counts(), (2, 9));
    // Subsuming 1 leaves 3 live eighths in the full first file: 36 on disk
    // for 16 live, above 2.0, so the closed first file is marked wasteful.
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    assert_eq!(counts(), (2, 4));
    assert!(!m.could_reuse_previous_state_handle(&h[0]));
    assert!(!m.could_reuse_previous_state_handle(&h7));
    assert!(m.could_reuse_previous_state_handle(&h9), "the open file is not touched");
    // Checkpoint 3 writes into the open second file as before.
    let h10 = state(3);
    state(3);
    state(3);
    assert_eq!(segment(&h10).0, segment(&h9).0);
    m.notify_checkpoint_complete(&k, 3).unwrap();
    assert_eq!(counts(), (2, 7));
    // Subsuming 2 empties the first file, which goes.
    m.notify_checkpoint_subsumed(&k, 2).unwrap();
    assert_eq!(counts(), (1, 3));
    assert!(!exists(&s, &h[0]));
    assert!(exists(&s, &h10));
    // Not a segment, or not one of this manager's: write it again.
    assert!(!m.could_reuse_previous_state_handle(&StateHandle::ByteStream {
        name: "x".into(),
        data: vec![1]
    }));
    let mut unknown = h10.clone();
    if let StateHandle::Segment { offset, .. } = &mut unknown {
        *offset += 1;
    }
    assert!(!m.could_reuse_previous_state_handle(&unknown));
}

/// Across checkpoints, a file still open for more segments is never
/// deleted, even when every segment in it was subsumed and space control
/// is on (its default, 2.0).
#[test]
fn an_open_file_outlives_its_segments_with_space_control_on() {
    let s = sandbox();
    let m = manager(&s, across());
    let k = key("op", 0);
    let big = write(&m, &k, 1, Shared, &[1; 1000]);
    let small = write(&m, &k, 2, Shared, &[2; 10]);
    assert_eq!(segment(&big).0, segment(&small).0);
    m.notify_checkpoint_subsumed(&k, 2).unwrap();
    assert!(exists(&s, &big), "open for more segments");
    let next = write(&m, &k, 3, Shared, &[3; 10]);
    assert_eq!(segment(&next).0, segment(&big).0, "still takes segments");
}

#[test]
fn space_control_below_one_is_off() {
    let s = sandbox();
    let eighth = 4 << 10;
    let m = manager(
        &s,
        FileMergingOptions {
            max_space_amplification: Some(0.5),
            max_file_size: Some(8 * eighth as u64),
            ..across()
        },
    );
    let k = key("op", 0);
    let first: Vec<StateHandle> = (0..9).map(|_| write(&m, &k, 1, Shared, &vec![1; eighth])).collect();
    let last = write(&m, &k, 2, Shared, &vec![2; eighth]);
    assert_ne!(
        segment(&first[0]).0,
        segment(&last).0,
        "the first file is full and closed"
    );
    m.reuse_previous_state_handles(2, std::slice::from_ref(&first[0]))
        .unwrap();
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    // One live eighth in a file of eight: far above any amplification, but
    // control is off.
    assert!(m.could_reuse_previous_state_handle(&first[0]));
}

/// Savepoints are never merged: an encoded reference gives plain streams.
#[test]
fn savepoints_are_not_merged() {
    let s = sandbox();
    s.mkdir("/checkpoints/sp");
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 5, &LocationReference::encode_path("/checkpoints/sp"))
        .unwrap();
    assert!(!f.is_merging());
    assert!(matches!(
        f.write_state(Exclusive, b"small").unwrap(),
        Some(StateHandle::ByteStream { .. })
    ));
    let big = f.write_state(Exclusive, &[1; 30_000]).unwrap().unwrap();
    assert!(matches!(big, StateHandle::RelativeFile { ref path, .. } if path.starts_with("/checkpoints/sp/")));
}

#[test]
fn merging_off_gives_the_worker_views_streams() {
    let s = sandbox();
    s.mkdir(&format!("/checkpoints/{JOB}/chk-1"));
    let m = FileMergingSnapshotManager::open(s.clone(), &config(), TM, &FileMergingOptions::default()).unwrap();
    assert!(!m.is_merging());
    m.register_subtask(&key("op", 0)).unwrap();
    assert_eq!(s.dirs.borrow().len(), 5, "no managed directories");
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    assert!(!f.is_merging());
    let h = f.write_state(Exclusive, &[5; 2000]).unwrap().unwrap();
    assert!(matches!(h, StateHandle::RelativeFile { ref path, .. } if path.contains("/chk-1/")));
}

/// `discard-state` of a segment never deletes the physical file.
#[test]
fn discarding_a_segment_keeps_the_physical_file() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let a = write(&m, &k, 1, Shared, b"a");
    let b = write(&m, &k, 1, Shared, b"b");
    discard_state(&*s, &a).unwrap();
    assert!(exists(&s, &a));
    assert_eq!(read_back(&s, &b), b"b");
}

#[test]
fn segments_cannot_be_duplicated() {
    let s = sandbox();
    let m = manager(&s, within());
    let a = write(&m, &key("op", 0), 1, Shared, b"a");
    let t = Toolset {
        entropy: None,
        base: crate::paths::GuestPath::parse(&format!("/checkpoints/{JOB}/taskowned")).unwrap(),
    };
    assert!(!t.can_fast_duplicate(&*s, &a));
    let e = t.duplicate(&*s, &[a]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("segment"), "{e:?}");
}

#[test]
fn a_segment_beyond_its_file_is_refused_on_read() {
    let s = sandbox();
    let m = manager(&s, within());
    let h = write(&m, &key("op", 0), 1, Shared, b"abc");
    let path = segment(&h).0;
    for (offset, size) in [(0, 4), (3, 1), (u64::MAX, 2)] {
        let h = StateHandle::Segment {
            path: path.to_string(),
            offset,
            size,
            scope: Shared,
        };
        let e = StateInputStream::open(&*s, h).err().unwrap();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("does not fit"), "{e:?}");
    }
}

/// `testRestore`: a new manager re-registers the restored checkpoint's
/// segments; files in its managed directories become its own and go when
/// the checkpoint is subsumed, foreign ones are kept.
#[test]
fn restore_re_registers_segments() {
    let s = sandbox();
    let k = key("op", 0);
    let handles = {
        let m = manager(&s, within());
        let hs = vec![
            write(&m, &k, 1, Shared, b"one"),
            write(&m, &k, 1, Shared, b"two"),
            write(&m, &k, 1, Exclusive, b"three"),
        ];
        m.notify_checkpoint_complete(&k, 1).unwrap();
        hs
    };
    s.mkdir("/checkpoints/foreign");
    let foreign_path = "/checkpoints/foreign/f";
    s.files.borrow_mut().insert(
        crate::paths::GuestPath::parse(foreign_path).unwrap(),
        Rc::new(std::cell::RefCell::new(b"xyz".to_vec())),
    );
    let foreign = StateHandle::Segment {
        path: foreign_path.into(),
        offset: 1,
        size: 2,
        scope: Shared,
    };
    let m = manager(&s, within());
    let mut all = handles.clone();
    all.push(foreign.clone());
    all.push(StateHandle::ByteStream {
        name: "inline".into(),
        data: vec![1],
    });
    m.restore_state_handles(1, &k, &all).unwrap();
    assert_eq!(m.space_stat().logical_file_count, 3, "the foreign file is not counted");
    for (h, want) in handles.iter().zip([&b"one"[..], b"two", b"three"]) {
        assert_eq!(read_back(&s, h), want);
    }
    m.notify_checkpoint_subsumed(&k, 1).unwrap();
    for h in &handles {
        assert!(!exists(&s, h));
    }
    assert!(s.read(foreign_path).is_some());
}

#[test]
fn restore_refuses_segments_outside_the_sandbox_before_registering_any() {
    let s = sandbox();
    let m = manager(&s, within());
    let k = key("op", 0);
    let good = write(&m, &k, 1, Shared, b"good");
    let bad = StateHandle::Segment {
        path: "/etc/passwd".into(),
        offset: 0,
        size: 1,
        scope: Shared,
    };
    let e = m.restore_state_handles(7, &k, &[good, bad]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.starts_with("Handle #1"), "{e:?}");
    let e = m.restore_state_handles(7, &key("nobody", 0), &[]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[test]
fn write_failure_discards_the_stream_and_its_file() {
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    s.faults.budget.set(Some(100));
    let mut stream = f.create_checkpoint_state_output_stream(Shared).unwrap();
    let e = stream.write(&[1; 5000]).unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    assert_eq!(s.files.borrow().len(), 0);
    assert_eq!(stream.write(b"x").unwrap_err().code, ErrorCode::Closed);
}

#[test]
fn sync_failure_at_close_returns_no_handle() {
    let s = sandbox();
    let m = manager(&s, within());
    let f = m
        .resolve_checkpoint_storage_location(&key("op", 0), 1, &LocationReference::Default)
        .unwrap();
    s.faults.fail_sync.set(true);
    let e = f.write_state(Shared, b"abc").unwrap_err();
    assert!(
        e.message.contains("in order to obtain the stream state handle"),
        "{e:?}"
    );
    assert_eq!(s.files.borrow().len(), 0);
    assert_eq!(m.space_stat(), SpaceStat::default());
}
