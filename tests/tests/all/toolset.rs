//! Flink's FsCheckpointStateToolsetTest: duplicating file state into the
//! task-owned directory (and, through the stream factory, into a location's
//! exclusive or shared directory), keeping names, kinds and sizes.

use checkpoint_storage_tests::*;
use std::os::unix::fs::MetadataExt;

fn file_state(f: &StreamFactory, scope: StateScope, len: usize, seed: u8) -> StateHandle {
    write_state(
        f.create_checkpoint_state_output_stream(scope).unwrap(),
        &bytes(len, seed),
    )
    .unwrap()
}

fn setup() -> (TestTenant, WorkerView, StreamFactory) {
    let t = TestTenant::new();
    t.init_job_dirs(&[1, 2]);
    let view = t.view_with(StorageConfig::filesystem(&t.job).with_file_state_threshold(16));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    (t, view, f)
}

fn name(h: &StateHandle) -> &str {
    h.file_path().unwrap().rsplit('/').next().unwrap()
}

#[test]
fn cannot_duplicate_inline_state() {
    let (_t, view, f) = setup();
    let inline = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        b"tiny",
    )
    .unwrap();
    assert!(matches!(inline, StateHandle::ByteStream(_)));
    assert!(
        !view
            .create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .can_fast_duplicate(&inline)
            .unwrap()
    );
}

#[test]
fn can_duplicate_file_state_from_elsewhere_but_not_in_place() {
    let (_t, view, f) = setup();
    let toolset = view.create_task_owned_checkpoint_state_toolset().unwrap();
    let h = file_state(&f, StateScope::Exclusive, 100, 1);
    assert!(toolset.can_fast_duplicate(&h).unwrap());
    let in_place = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(100, 2)).unwrap();
    assert!(
        !toolset.can_fast_duplicate(&in_place).unwrap(),
        "destination equals source"
    );
}

#[test]
fn duplicating_keeps_order_kind_name_and_size() {
    let (t, view, f) = setup();
    let handles = vec![
        file_state(&f, StateScope::Shared, 100, 1),
        file_state(&f, StateScope::Shared, 200, 2),
        file_state(&f, StateScope::Exclusive, 300, 3),
    ];
    let toolset = view.create_task_owned_checkpoint_state_toolset().unwrap();
    let dups = toolset.duplicate(&handles).unwrap();
    assert_eq!(dups.len(), 3);
    let taskowned = format!("/checkpoints/{}/taskowned", t.job);
    for (orig, dup) in handles.iter().zip(&dups) {
        assert_eq!(dup.file_path().unwrap(), format!("{taskowned}/{}", name(orig)));
        assert_eq!(dup.state_size(), orig.state_size());
        assert_eq!(std::mem::discriminant(dup), std::mem::discriminant(orig));
        assert_eq!(t.read_handle(dup).unwrap(), t.read_handle(orig).unwrap());
        // Fast: a hard link, not a copy.
        let (a, b) = (
            std::fs::metadata(t.tenant.host_path(orig.file_path().unwrap()).unwrap()).unwrap(),
            std::fs::metadata(t.tenant.host_path(dup.file_path().unwrap()).unwrap()).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
    }
    let StateHandle::RelativeFile(r) = &dups[2] else {
        panic!()
    };
    assert_eq!(r.relative_path, name(&handles[2]));
}

#[test]
fn duplicate_refuses_inline_handles_before_touching_anything() {
    let (t, view, f) = setup();
    let file = file_state(&f, StateScope::Exclusive, 100, 1);
    let inline = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        b"x",
    )
    .unwrap();
    let e = storage_error(
        view.create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .duplicate(&[file, inline]),
    );
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains("We can duplicate only file handles") && e.message.contains("#1"),
        "{}",
        e.message
    );
    assert!(files_in(&t.host(&format!("{}/taskowned", t.job))).is_empty());
}

#[test]
fn failed_duplicate_removes_what_it_made() {
    let (t, view, f) = setup();
    let a = file_state(&f, StateScope::Exclusive, 100, 1);
    let missing = StateHandle::File(FileHandle {
        path: format!("/checkpoints/{}/chk-1/no-such-file", t.job),
        size: 5,
    });
    let e = storage_error(
        view.create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .duplicate(&[a.clone(), missing]),
    );
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("no-such-file"), "{}", e.message);
    assert!(files_in(&t.host(&format!("{}/taskowned", t.job))).is_empty());
    assert_eq!(t.read_handle(&a).unwrap(), bytes(100, 1), "the source is untouched");
}

#[test]
fn duplicate_never_overwrites() {
    let (t, view, f) = setup();
    let a = file_state(&f, StateScope::Exclusive, 100, 1);
    let taken = t.host(&format!("{}/taskowned/{}", t.job, name(&a)));
    std::fs::write(&taken, b"someone else's").unwrap();
    let e = storage_error(
        view.create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .duplicate(std::slice::from_ref(&a)),
    );
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert_eq!(std::fs::read(&taken).unwrap(), b"someone else's");
}

#[test]
fn stream_factory_duplicates_into_the_directory_of_the_scope() {
    let (t, view, f) = setup();
    let f2 = view
        .resolve_checkpoint_storage_location(2, &LocationReference::Default)
        .unwrap();
    let h = file_state(&f, StateScope::Exclusive, 100, 1);
    assert!(f2.can_fast_duplicate(&h, StateScope::Exclusive).unwrap());
    assert!(
        !f.can_fast_duplicate(&h, StateScope::Exclusive).unwrap(),
        "already in chk-1"
    );
    let ex = f2.duplicate(std::slice::from_ref(&h), StateScope::Exclusive).unwrap();
    assert_eq!(
        ex[0].file_path().unwrap(),
        format!("/checkpoints/{}/chk-2/{}", t.job, name(&h))
    );
    let sh = f2.duplicate(std::slice::from_ref(&h), StateScope::Shared).unwrap();
    assert_eq!(
        sh[0].file_path().unwrap(),
        format!("/checkpoints/{}/shared/{}", t.job, name(&h))
    );
    assert_eq!(t.read_handle(&sh[0]).unwrap(), bytes(100, 1));
}

#[test]
fn handles_outside_the_tenant_directory_are_refused() {
    let (t, view, _f) = setup();
    let toolset = view.create_task_owned_checkpoint_state_toolset().unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), b"secret").unwrap();
    for path in [
        outside.path().to_string_lossy().into_owned(),
        "/checkpoints/../etc/hostname".to_string(),
        "/etc/hostname".to_string(),
        "relative/file".to_string(),
        "hdfs://nn/file".to_string(),
    ] {
        let h = StateHandle::File(FileHandle {
            path: path.clone(),
            size: 6,
        });
        assert!(!toolset.can_fast_duplicate(&h).unwrap(), "{path}");
        let e = storage_error(toolset.duplicate(&[h]));
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{path}: {}", e.message);
    }
    assert!(files_in(&t.host(&format!("{}/taskowned", t.job))).is_empty());
}

#[test]
fn memory_backend_toolset_does_not_duplicate() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job));
    let toolset = view.create_task_owned_checkpoint_state_toolset().unwrap();
    let h = StateHandle::File(FileHandle {
        path: "/checkpoints/x".into(),
        size: 1,
    });
    assert!(!toolset.can_fast_duplicate(&h).unwrap());
    let e = storage_error(toolset.duplicate(std::slice::from_ref(&h)));
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(e.message.contains("does not support duplication"), "{}", e.message);
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    assert!(!f.can_fast_duplicate(&h, StateScope::Shared).unwrap());
    assert_eq!(code(f.duplicate(&[h], StateScope::Shared)), ErrorCode::Unsupported);
}
