//! Flink's AbstractFileCheckpointStorageAccessTestBase and the coordinator
//! cases of FsCheckpointStorageAccessTest and MemoryCheckpointStorageAccessTest:
//! locations, savepoints, metadata, pointer resolution, disposal.

use checkpoint_storage_tests::*;

fn coordinator(t: &TestTenant, default_savepoint_dir: Option<&str>) -> CoordinatorView {
    t.tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), default_savepoint_dir)
        .unwrap()
}

fn write_metadata(location: &CheckpointStorageLocation, data: &[u8]) -> CompletedCheckpoint {
    let s = location.create_metadata_output_stream().unwrap();
    s.write(data).unwrap();
    assert_eq!(s.get_pos().unwrap(), data.len() as u64);
    s.close_and_finalize_checkpoint().unwrap()
}

#[test]
fn pointer_path_resolution() {
    let t = TestTenant::new();
    let dir = t.host("some/checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let data = bytes(23_686, 3);
    std::fs::write(dir.join("_metadata"), &data).unwrap();
    let c = coordinator(&t, None);
    for pointer in [
        "/checkpoints/some/checkpoint/_metadata",
        "/checkpoints/some/checkpoint",
        "/checkpoints/some/checkpoint/",
        "file:///checkpoints/some/checkpoint",
    ] {
        let done = c.resolve_checkpoint(pointer).unwrap();
        assert_eq!(done.external_pointer, "/checkpoints/some/checkpoint", "{pointer}");
        assert_eq!(t.tenant.read_state(&done.metadata).unwrap(), data);
        assert!(matches!(done.metadata, StateHandle::File(ref f) if f.size == 23_686));
    }
}

#[test]
fn failing_pointer_path_resolution() {
    let t = TestTenant::new();
    std::fs::create_dir_all(t.host("empty-dir")).unwrap();
    std::fs::write(t.host("a-file"), b"x").unwrap();
    let c = coordinator(&t, None);
    let e = storage_error(c.resolve_checkpoint(""));
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::InvalidArgument, "empty checkpoint pointer")
    );
    let e = storage_error(c.resolve_checkpoint("this-is_not/a#filepath.at.all"));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("is not a valid file URI"), "{}", e.message);
    let e = storage_error(c.resolve_checkpoint("/checkpoints/a-file_not_existing"));
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(
        e.message,
        "Cannot find checkpoint or savepoint file/directory '/checkpoints/a-file_not_existing' on file system 'file'."
    );
    let e = storage_error(c.resolve_checkpoint("/checkpoints/empty-dir"));
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.starts_with(
            "Cannot find meta data file '_metadata' in directory '/checkpoints/empty-dir'. Please try to load"
        ),
        "{}",
        e.message
    );
    for outside in ["/etc", "/checkpoints/../etc/passwd"] {
        assert_eq!(
            code(c.resolve_checkpoint(outside)),
            ErrorCode::InvalidArgument,
            "{outside}"
        );
    }
}

#[test]
fn persist_multiple_metadata_only_checkpoints() {
    let t = TestTenant::new();
    let other = job_id();
    let c1 = coordinator(&t, None);
    let c2 = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&other), None)
        .unwrap();
    let mut pointers = vec![];
    for (c, data) in [(&c1, [77u8, 66, 55, 99, 88]), (&c2, [1, 3, 2, 5, 4])] {
        c.initialize_base_locations_for_checkpoint().unwrap();
        let loc = c.initialize_location_for_checkpoint(177).unwrap();
        let done = write_metadata(&loc, &data);
        assert!(
            t.tenant
                .host_path(&format!("{}/_metadata", done.external_pointer))
                .unwrap()
                .is_file()
        );
        pointers.push((done.external_pointer, data));
    }
    assert_eq!(
        std::fs::read_dir(t.tenant.dir()).unwrap().count(),
        2,
        "one directory per job"
    );
    for c in [&c1, &c2] {
        for (pointer, data) in &pointers {
            let done = c.resolve_checkpoint(pointer).unwrap();
            assert_eq!(&t.tenant.read_state(&done.metadata).unwrap(), data);
        }
    }
}

#[test]
fn write_to_already_existing_checkpoint_fails() {
    let t = TestTenant::new();
    let c = coordinator(&t, None);
    let loc = c.initialize_location_for_checkpoint(177).unwrap();
    write_metadata(&loc, b"first");
    let e = storage_error(loc.create_metadata_output_stream());
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    let again = c.initialize_location_for_checkpoint(177).unwrap();
    assert_eq!(code(again.create_metadata_output_stream()), ErrorCode::AlreadyExists);
    assert_eq!(
        std::fs::read(t.host(&format!("{}/chk-177/_metadata", t.job))).unwrap(),
        b"first"
    );
}

#[test]
fn concurrent_metadata_writers_never_overwrite() {
    let t = TestTenant::new();
    let loc = coordinator(&t, None).initialize_location_for_checkpoint(1).unwrap();
    let a = loc.create_metadata_output_stream().unwrap();
    let b = loc.create_metadata_output_stream().unwrap();
    a.write(b"from a").unwrap();
    b.write(b"from b").unwrap();
    a.close_and_finalize_checkpoint().unwrap();
    let e = storage_error(b.close_and_finalize_checkpoint());
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    let dir = t.host(&format!("{}/chk-1", t.job));
    assert_eq!(std::fs::read(dir.join("_metadata")).unwrap(), b"from a");
    assert_eq!(files_in(&dir), vec!["_metadata"], "no temporary file is left");
}

#[test]
fn metadata_is_invisible_until_finalized_and_dropped_stream_leaves_nothing() {
    let t = TestTenant::new();
    let loc = coordinator(&t, None).initialize_location_for_checkpoint(5).unwrap();
    let dir = t.host(&format!("{}/chk-5", t.job));
    let s = loc.create_metadata_output_stream().unwrap();
    s.write(&bytes(10_000, 1)).unwrap();
    s.sync().unwrap();
    assert!(
        !dir.join("_metadata").exists(),
        "a reader never sees half-written metadata"
    );
    assert_eq!(
        code(coordinator(&t, None).resolve_checkpoint(&loc.checkpoint_directory().unwrap())),
        ErrorCode::NotFound
    );
    drop(s);
    assert!(files_in(&dir).is_empty(), "the temporary file is gone");
    let done = write_metadata(&loc, b"ok");
    assert_eq!(done.metadata.file_path().unwrap(), loc.metadata_file_path().unwrap());
    let s = loc.create_metadata_output_stream();
    assert!(s.is_err());
}

// A finalized metadata stream is consumed by `close_and_finalize_checkpoint`;
// the component's `closed` answer to a later write is a core unit test.

#[test]
fn storage_location_mkdirs() {
    let t = TestTenant::new();
    let c = coordinator(&t, None);
    assert!(!t.host(&t.job).exists(), "opening creates nothing");
    c.initialize_base_locations_for_checkpoint().unwrap();
    c.initialize_base_locations_for_checkpoint().unwrap(); // idempotent
    assert!(t.host(&format!("{}/shared", t.job)).is_dir());
    assert!(t.host(&format!("{}/taskowned", t.job)).is_dir());
    assert!(!t.host(&format!("{}/chk-177", t.job)).exists());
    let loc = c.initialize_location_for_checkpoint(177).unwrap();
    assert!(t.host(&format!("{}/chk-177", t.job)).is_dir());
    assert_eq!(loc.location_reference().unwrap(), LocationReference::Default);
    assert_eq!(
        loc.checkpoint_directory().unwrap(),
        format!("/checkpoints/{}/chk-177", t.job)
    );
    assert_eq!(
        loc.metadata_file_path().unwrap(),
        format!("/checkpoints/{}/chk-177/_metadata", t.job)
    );
}

fn assert_savepoint_under(t: &TestTenant, loc: &CheckpointStorageLocation, base: &str) {
    let dir = loc.checkpoint_directory().unwrap();
    let (parent, name) = dir.rsplit_once('/').unwrap();
    assert_eq!(parent, base);
    let suffix = name
        .strip_prefix(&format!("savepoint-{}-", &t.job[..6]))
        .expect("savepoint-<job6>-");
    assert!(
        suffix.len() == 12 && suffix.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{name}"
    );
    assert_eq!(loc.location_reference().unwrap(), LocationReference::encode_path(&dir));
    let done = write_metadata(loc, b"savepoint");
    assert_eq!(done.external_pointer, dir);
    assert_eq!(done.metadata.file_path().unwrap(), format!("{dir}/_metadata"));
}

#[test]
fn savepoint_path_configured_and_target() {
    let t = TestTenant::new();
    let loc = coordinator(&t, Some("/checkpoints/default-sp"))
        .initialize_location_for_savepoint(1337, Some("/checkpoints/target"))
        .unwrap();
    assert_savepoint_under(&t, &loc, "/checkpoints/target");
    assert!(!t.host("default-sp").exists());
}

#[test]
fn savepoint_path_configured_no_target() {
    let t = TestTenant::new();
    let c = coordinator(&t, Some("/checkpoints/default-sp"));
    assert!(c.has_default_savepoint_location().unwrap());
    let loc = c.initialize_location_for_savepoint(1337, None).unwrap();
    assert_savepoint_under(&t, &loc, "/checkpoints/default-sp");
}

#[test]
fn no_savepoint_path_configured_and_target() {
    let t = TestTenant::new();
    let loc = coordinator(&t, None)
        .initialize_location_for_savepoint(1337, Some("file:///checkpoints/x/"))
        .unwrap();
    assert_savepoint_under(&t, &loc, "/checkpoints/x");
}

#[test]
fn no_savepoint_path_configured_no_target() {
    let t = TestTenant::new();
    let c = coordinator(&t, None);
    assert!(!c.has_default_savepoint_location().unwrap());
    let e = storage_error(c.initialize_location_for_savepoint(1337, None));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert_eq!(
        e.message,
        "No savepoint location given and no default location configured."
    );
}

#[test]
fn savepoint_targets_outside_the_tenant_are_refused() {
    let t = TestTenant::new();
    for bad in ["/tmp", "/checkpoints/../x", "relative", "s3://bucket/x"] {
        assert_eq!(
            code(coordinator(&t, None).initialize_location_for_savepoint(1, Some(bad))),
            ErrorCode::InvalidArgument,
            "{bad}"
        );
        assert_eq!(
            code(
                t.tenant
                    .open_coordinator_view(&StorageConfig::filesystem(&t.job), Some(bad))
            ),
            ErrorCode::InvalidArgument,
            "{bad}"
        );
    }
}

#[test]
fn savepoints_in_one_directory_and_disposed_on_failure() {
    // testSavepointsInOneDirectory{Default,Custom}Location.
    let t = TestTenant::new();
    let c = coordinator(&t, Some("/checkpoints/sp"));
    let loc = c.initialize_location_for_savepoint(1, None).unwrap();
    let dir = loc.checkpoint_directory().unwrap();
    let f = t
        .view()
        .resolve_checkpoint_storage_location(1, &loc.location_reference().unwrap())
        .unwrap();
    assert_eq!(f.checkpoint_directory().unwrap(), dir);
    assert_eq!(f.shared_state_directory().unwrap(), dir);
    write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(30_000, 1),
    )
    .unwrap();
    write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(30_000, 2),
    )
    .unwrap();
    assert_eq!(files_in(&t.tenant.host_path(&dir).unwrap()).len(), 2);
    loc.dispose_on_failure().unwrap();
    assert!(!t.tenant.host_path(&dir).unwrap().exists());
    assert!(t.host("sp").is_dir(), "the savepoint base stays");
    loc.dispose_on_failure().unwrap(); // already gone: fine
}

#[test]
fn dispose_on_failure_removes_exclusive_state_and_keeps_shared() {
    let t = TestTenant::new();
    let c = coordinator(&t, None);
    c.initialize_base_locations_for_checkpoint().unwrap();
    let loc = c.initialize_location_for_checkpoint(3).unwrap();
    let f = t
        .view()
        .resolve_checkpoint_storage_location(3, &loc.location_reference().unwrap())
        .unwrap();
    let shared = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(30_000, 1),
    )
    .unwrap();
    write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(30_000, 2),
    )
    .unwrap();
    std::fs::create_dir_all(t.host(&format!("{}/chk-3/nested", t.job))).unwrap();
    std::fs::write(t.host(&format!("{}/chk-3/nested/f", t.job)), b"x").unwrap();
    loc.dispose_on_failure().unwrap();
    assert!(!t.host(&format!("{}/chk-3", t.job)).exists());
    assert_eq!(t.tenant.read_state(&shared).unwrap(), bytes(30_000, 1));
}

#[test]
fn dispose_removes_symlinks_without_following_them() {
    let t = TestTenant::new();
    let loc = coordinator(&t, None).initialize_location_for_checkpoint(4).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"keep").unwrap();
    std::os::unix::fs::symlink(outside.path(), t.host(&format!("{}/chk-4/link", t.job))).unwrap();
    loc.dispose_on_failure().unwrap();
    assert!(!t.host(&format!("{}/chk-4", t.job)).exists());
    assert_eq!(std::fs::read(outside.path().join("keep")).unwrap(), b"keep");
}

#[test]
fn checkpoint_id_beyond_flinks_long_is_refused() {
    let t = TestTenant::new();
    assert_eq!(
        code(coordinator(&t, None).initialize_location_for_checkpoint(u64::MAX)),
        ErrorCode::InvalidArgument
    );
    assert!(!t.host(&t.job).exists());
}

mod memory_backend {
    use super::*;

    fn memory(t: &TestTenant, sp: Option<&str>) -> CoordinatorView {
        t.tenant
            .open_coordinator_view(&StorageConfig::memory(&t.job), sp)
            .unwrap()
    }

    #[test]
    fn location_reference_is_always_default() {
        let t = TestTenant::new();
        let c = memory(&t, None);
        assert_eq!(
            c.initialize_location_for_checkpoint(42)
                .unwrap()
                .location_reference()
                .unwrap(),
            LocationReference::Default
        );
        let sp = c
            .initialize_location_for_savepoint(42, Some("/checkpoints/sp"))
            .unwrap();
        assert_eq!(sp.location_reference().unwrap(), LocationReference::Default);
    }

    #[test]
    fn storage_location_mkdirs() {
        let t = TestTenant::new();
        let c = memory(&t, None);
        c.initialize_base_locations_for_checkpoint().unwrap();
        assert!(!t.host(&t.job).exists(), "the memory backend has no base locations");
        c.initialize_location_for_checkpoint(177).unwrap();
        assert!(t.host(&format!("{}/chk-177", t.job)).is_dir());
    }

    #[test]
    fn metadata_round_trips() {
        let t = TestTenant::new();
        let c = memory(&t, Some("/checkpoints/sp"));
        assert!(c.has_default_savepoint_location().unwrap());
        let done = write_metadata(&c.initialize_location_for_checkpoint(9).unwrap(), &[99]);
        assert_eq!(
            t.tenant
                .read_state(&c.resolve_checkpoint(&done.external_pointer).unwrap().metadata)
                .unwrap(),
            vec![99]
        );
    }
}
