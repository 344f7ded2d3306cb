//! Flink's FsCheckpointStorageAccessTest (worker side), plus the validation
//! of the storage configuration.

use checkpoint_storage_tests::*;

#[test]
fn default_reference_resolves_to_chk_dir() {
    let t = TestTenant::new();
    let f = t.default_factory(177);
    assert_eq!(
        f.checkpoint_directory().unwrap(),
        format!("/checkpoints/{}/chk-177", t.job)
    );
    assert_eq!(
        f.shared_state_directory().unwrap(),
        format!("/checkpoints/{}/shared", t.job)
    );
}

#[test]
fn opening_and_resolving_create_no_directories() {
    // testStorageLocationMkdirs: the worker side never creates directories.
    let t = TestTenant::new();
    let view = t.view();
    let f = view
        .resolve_checkpoint_storage_location(177, &LocationReference::Default)
        .unwrap();
    let _ = view.create_task_owned_state_stream().unwrap();
    let _ = view.create_task_owned_checkpoint_state_toolset().unwrap();
    let _ = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    assert!(
        !t.host(&t.job).exists(),
        "job directory must not be created by the worker view"
    );
    assert_eq!(std::fs::read_dir(t.tenant.dir()).unwrap().count(), 0);
}

#[test]
fn writing_into_a_missing_checkpoint_directory_is_not_found_naming_it() {
    let t = TestTenant::new();
    let f = t.default_factory(3);
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    s.write(&bytes(100, 1)).unwrap(); // small: still in memory
    let e = storage_error(s.write(&bytes(30_000, 1)));
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.contains(&format!("/checkpoints/{}/chk-3", t.job)),
        "{}",
        e.message
    );
    assert!(e.message.contains("coordinator"), "{}", e.message);
    assert_eq!(code(s.write(b"x")), ErrorCode::Closed, "the failed stream is closed");
    assert!(!t.host(&t.job).exists(), "no directory was created on the way");
}

#[test]
fn savepoint_reference_puts_all_state_in_one_directory() {
    // testSavepointsInOneDirectory*: exclusive, shared (and task-owned for
    // that location) all in the savepoint directory.
    let t = TestTenant::new();
    let sp = format!("savepoint-{}-0123456789ab", &t.job[..6]);
    std::fs::create_dir_all(t.host(&sp)).unwrap();
    let reference = LocationReference::encode_path(&format!("/checkpoints/{sp}"));
    let f = t.view().resolve_checkpoint_storage_location(1, &reference).unwrap();
    let ex = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(30_000, 1),
    )
    .unwrap();
    let sh = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(30_000, 2),
    )
    .unwrap();
    for h in [&ex, &sh] {
        assert_eq!(
            h.file_path().unwrap().rsplit_once('/').unwrap().0,
            format!("/checkpoints/{sp}")
        );
    }
    assert!(matches!(ex, StateHandle::RelativeFile(_)));
    assert!(matches!(sh, StateHandle::File(_)));
    assert_eq!(files_in(&t.host(&sp)).len(), 2);
    assert_eq!(t.read_handle(&ex).unwrap(), bytes(30_000, 1));
    assert_eq!(t.read_handle(&sh).unwrap(), bytes(30_000, 2));
}

#[test]
fn task_owned_state_stream_writes_to_taskowned() {
    // testTaskOwnedStateStream with threshold 10.
    let t = TestTenant::new();
    t.init_job_dirs(&[]);
    let view = t.view_with(
        StorageConfig::filesystem(&t.job)
            .with_file_state_threshold(10)
            .with_write_buffer_size(4096),
    );
    let data = bytes(11, 9);
    let h = write_state(view.create_task_owned_state_stream().unwrap(), &data).unwrap();
    let StateHandle::File(f) = &h else {
        panic!("expected a file handle, got {h:?}")
    };
    assert_eq!(f.path.rsplit('/').nth(1), Some("taskowned"));
    assert_eq!(t.read_handle(&h).unwrap(), data);
}

#[test]
fn task_owned_state_stream_works_with_default_settings() {
    // Flink fails here (raw write buffer 4096 < threshold 20480); we use the
    // effective buffer size.
    let t = TestTenant::new();
    t.init_job_dirs(&[]);
    let view = t.view();
    let small = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(20_480, 1)).unwrap();
    assert!(matches!(small, StateHandle::ByteStream(_)));
    let large = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(20_481, 2)).unwrap();
    assert!(matches!(large, StateHandle::File(_)));
    assert_eq!(t.read_handle(&large).unwrap(), bytes(20_481, 2));
    assert_eq!(files_in(&t.host(&format!("{}/taskowned", t.job))).len(), 1);
}

#[test]
fn directories_for_exclusive_and_shared_state() {
    // testDirectoriesForExclusiveAndSharedState.
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let view = t.view_with(StorageConfig::filesystem(&t.job).with_file_state_threshold(0));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let chk = t.host(&format!("{}/chk-1", t.job));
    let shared = t.host(&format!("{}/shared", t.job));

    let mut ex = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    ex.write(&[42]).unwrap();
    ex.flush().unwrap();
    let ex = ex.close_and_get_handle().unwrap().unwrap();
    assert_eq!((files_in(&chk).len(), files_in(&shared).len()), (1, 0));

    let mut sh = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    sh.write(&[42]).unwrap();
    sh.flush().unwrap();
    let sh = sh.close_and_get_handle().unwrap().unwrap();
    assert_eq!((files_in(&chk).len(), files_in(&shared).len()), (1, 1));
    assert_eq!(t.read_handle(&ex).unwrap(), vec![42]);
    assert_eq!(t.read_handle(&sh).unwrap(), vec![42]);
}

#[test]
fn two_jobs_share_a_tenant_without_mixing() {
    let t = TestTenant::new();
    let other = job_id();
    t.init_job_dirs(&[1]);
    std::fs::create_dir_all(t.host(&format!("{other}/chk-1"))).unwrap();
    let a = t.default_factory(1);
    let b = t
        .view_with(StorageConfig::filesystem(&other))
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let ha = write_state(
        a.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(40_000, 1),
    )
    .unwrap();
    let hb = write_state(
        b.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(40_000, 2),
    )
    .unwrap();
    assert!(ha.file_path().unwrap().contains(&t.job));
    assert!(hb.file_path().unwrap().contains(&other));
    assert_eq!(t.read_handle(&ha).unwrap(), bytes(40_000, 1));
    assert_eq!(t.read_handle(&hb).unwrap(), bytes(40_000, 2));
}

#[test]
fn job_id_must_be_32_lowercase_hex() {
    let t = TestTenant::new();
    for bad in [
        "",
        "abc",
        "0123456789ABCDEF0123456789ABCDEF",
        "../0123456789abcdef0123456789abc",
        "0123456789abcdef0123456789abcdef/",
    ] {
        let e = storage_error(t.tenant.open_worker_view(&StorageConfig::filesystem(bad)));
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad:?}");
        assert!(e.message.contains("32 lowercase hex"), "{}", e.message);
    }
}

#[test]
fn threshold_above_one_mib_is_refused_at_the_limit_accepted() {
    let t = TestTenant::new();
    let at = StorageConfig::filesystem(&t.job).with_file_state_threshold(1024 * 1024);
    assert!(t.tenant.open_worker_view(&at).is_ok());
    let over = StorageConfig::filesystem(&t.job).with_file_state_threshold(1024 * 1024 + 1);
    let e = storage_error(t.tenant.open_worker_view(&over));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message
            .contains("The threshold for file state size cannot be larger than 1048576"),
        "{}",
        e.message
    );
}

#[test]
fn oversized_write_buffer_and_zero_memory_limit_are_refused() {
    let t = TestTenant::new();
    let e = storage_error(
        t.tenant
            .open_worker_view(&StorageConfig::filesystem(&t.job).with_write_buffer_size(u32::MAX)),
    );
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("write buffer size"), "{}", e.message);
    let e = storage_error(
        t.tenant
            .open_worker_view(&StorageConfig::memory(&t.job).with_max_memory_state_size(0)),
    );
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[test]
fn checkpoints_dir_must_be_inside_the_tenant_directory() {
    let t = TestTenant::new();
    for (dir, hint) in [
        ("/tmp", "outside"),
        ("relative", "relative"),
        ("/checkpoints/../etc", "outside"),
        ("/..", "above"),
    ] {
        let mut c = StorageConfig::filesystem(&t.job);
        c.checkpoints_dir = Some(dir.into());
        let e = storage_error(t.tenant.open_worker_view(&c));
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{dir}");
        assert!(e.message.contains(hint), "{dir}: {}", e.message);
    }
    let mut c = StorageConfig::filesystem(&t.job);
    c.checkpoints_dir = Some("/checkpoints/flink/cp".into());
    let f = t
        .tenant
        .open_worker_view(&c)
        .unwrap()
        .resolve_checkpoint_storage_location(2, &LocationReference::Default)
        .unwrap();
    assert_eq!(
        f.checkpoint_directory().unwrap(),
        format!("/checkpoints/flink/cp/{}/chk-2", t.job)
    );
}

#[test]
fn checkpoint_id_beyond_flinks_long_is_refused() {
    let t = TestTenant::new();
    let view = t.view();
    assert_eq!(
        code(view.resolve_checkpoint_storage_location(u64::MAX, &LocationReference::Default)),
        ErrorCode::InvalidArgument
    );
    let f = view
        .resolve_checkpoint_storage_location(i64::MAX as u64, &LocationReference::Default)
        .unwrap();
    assert_eq!(
        f.checkpoint_directory().unwrap(),
        format!("/checkpoints/{}/chk-{}", t.job, i64::MAX)
    );
}

#[test]
fn entropy_injection_is_refused_on_a_filesystem() {
    // Flink injects entropy on S3 only; a marker directory on disk would be
    // a real directory named after the marker.
    let t = TestTenant::new();
    let config = StorageConfig {
        checkpoints_dir: Some("/checkpoints/_entropy_".into()),
        ..StorageConfig::filesystem(&t.job)
    }
    .with_s3_entropy("_entropy_", None);
    let e = storage_error(t.tenant.open_worker_view(&config));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("object storage only"), "{}", e.message);
    let e = storage_error(t.tenant.open_coordinator_view(&config, None));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert_eq!(std::fs::read_dir(t.tenant.dir()).unwrap().count(), 0);
}

/// `execution.checkpointing.create-subdir` = false (Flink's
/// `FsCheckpointStorageAccess` with `createCheckpointSubDirs` off): the
/// checkpoints directory is the job's directory; every kind of state and
/// the metadata land right below it, and the coordinator finds them there.
#[test]
fn without_the_job_subdirectory_the_checkpoints_directory_is_the_jobs() {
    let t = TestTenant::new();
    let (config, coordinator) = t.flat_job();
    assert!(t.host("flat/shared").is_dir() && t.host("flat/taskowned").is_dir());
    let location = coordinator.initialize_location_for_checkpoint(3).unwrap();
    assert_eq!(location.checkpoint_directory().unwrap(), "/checkpoints/flat/chk-3");

    let view = t.view_with(config.clone());
    let factory = view
        .resolve_checkpoint_storage_location(3, &location.location_reference().unwrap())
        .unwrap();
    assert_eq!(factory.shared_state_directory().unwrap(), "/checkpoints/flat/shared");
    let (exclusive, shared) = exclusive_and_shared_files(&factory);
    let owned = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(30_000, 3)).unwrap();
    for (handle, dir, seed) in [
        (&exclusive, "chk-3", 1),
        (&shared, "shared", 2),
        (&owned, "taskowned", 3),
    ] {
        let path = handle.file_path().unwrap();
        assert!(path.starts_with(&format!("/checkpoints/flat/{dir}/")), "{path}");
        assert_eq!(t.read_handle(handle).unwrap(), bytes(30_000, seed));
    }
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(b"metadata").unwrap();
    let completed = stream.close_and_finalize_checkpoint().unwrap();
    assert_eq!(completed.external_pointer, "/checkpoints/flat/chk-3");
    let listed = coordinator.list_completed_checkpoints().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].checkpoint, completed);
    coordinator.discard_completed_checkpoint(3).unwrap();
    assert!(!t.host("flat/chk-3").exists());
    assert!(
        !t.host(&format!("flat/{}", t.job)).exists(),
        "no job directory was made"
    );
    assert!(!t.host(&t.job).exists());
}

/// As in Flink, the memory backend always puts its checkpoints into the
/// job's directory, whatever `create-subdir` says.
#[test]
fn the_memory_backend_keeps_the_job_subdirectory() {
    let t = TestTenant::new();
    let config = StorageConfig::memory(&t.job).with_create_subdir(false);
    let coordinator = t.tenant.open_coordinator_view(&config, None).unwrap();
    let location = coordinator.initialize_location_for_checkpoint(1).unwrap();
    assert_eq!(
        location.checkpoint_directory().unwrap(),
        format!("/checkpoints/{}/chk-1", t.job)
    );
}
