//! `write-state`: one whole state in one call gives what a stream written
//! once and closed gives (handles, inline-or-file decision, errors, cleanup).

use checkpoint_storage_tests::*;

fn chk_files(t: &TestTenant) -> Vec<String> {
    files_in(&t.host(&format!("{}/chk-1", t.job)))
}

#[test]
fn threshold_edge_matches_the_stream_path() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    // At the threshold (Flink's default 20 KiB): inline, no file.
    let h = f
        .write_state(StateScope::Exclusive, &bytes(20_480, 1))
        .unwrap()
        .unwrap();
    let StateHandle::ByteStream(b) = &h else {
        panic!("expected inline, got {h}")
    };
    assert_eq!(b.data, bytes(20_480, 1));
    assert!(
        b.name.starts_with(&format!("{GUEST_MOUNT}/{}/chk-1/", t.job)),
        "{}",
        b.name
    );
    assert!(chk_files(&t).is_empty());
    // One byte more: a file with a relative handle, bytes on disk.
    let h = f
        .write_state(StateScope::Exclusive, &bytes(20_481, 2))
        .unwrap()
        .unwrap();
    assert!(matches!(&h, StateHandle::RelativeFile(r) if r.size == 20_481), "{h}");
    assert_eq!(t.read_handle(&h).unwrap(), bytes(20_481, 2));
    assert_eq!(chk_files(&t).len(), 1);
    // Large shared state: a file handle in the shared directory.
    let h = f.write_state(StateScope::Shared, &bytes(3 << 20, 3)).unwrap().unwrap();
    assert!(
        matches!(&h, StateHandle::File(file) if file.path.contains("/shared/")),
        "{h}"
    );
    assert_eq!(t.tenant.read_state(&h).unwrap(), bytes(3 << 20, 3));
    assert_eq!(t.tenant.open_streams(), 0, "the call's stream slot is released");
}

#[test]
fn empty_state_gives_no_handle_and_no_file() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    assert_eq!(f.write_state(StateScope::Exclusive, &[]).unwrap(), None);
    assert!(all_files(t.tenant.dir()).is_empty());
}

#[test]
fn a_failed_write_state_leaves_no_file() {
    // No checkpoint directory: the file cannot be created.
    let t = TestTenant::new();
    std::fs::create_dir_all(t.host(&t.job)).unwrap();
    let f = t
        .view()
        .resolve_checkpoint_storage_location(7, &LocationReference::Default)
        .unwrap();
    let e = storage_error(f.write_state(StateScope::Exclusive, &bytes(50_000, 4)));
    assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
    assert!(e.message.contains("Could not open output stream"), "{}", e.message);
    assert!(all_files(t.tenant.dir()).is_empty());
    // Small state needs no directory: inline, as with a stream.
    assert!(matches!(
        f.write_state(StateScope::Exclusive, &bytes(10, 5)).unwrap(),
        Some(StateHandle::ByteStream(_))
    ));
}

#[test]
fn memory_backend_refuses_state_over_its_maximum() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job).with_max_memory_state_size(10));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let h = f.write_state(StateScope::Shared, &[1; 10]).unwrap().unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), vec![1; 10]);
    let e = storage_error(f.write_state(StateScope::Shared, &[1; 11]));
    assert_eq!(e.code, ErrorCode::StateTooLarge);
    assert!(e.message.contains("Size=11 , maxSize=10"), "{}", e.message);
}

#[test]
fn write_state_counts_against_the_tenant_limits() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = plugin()
        .tenant(
            TenantConfig::new(t.tenant.dir())
                .with_max_bytes_written(Some(100))
                .with_max_open_streams(1),
        )
        .unwrap();
    let f = tenant
        .open_worker_view(&StorageConfig::filesystem(&t.job))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    f.write_state(StateScope::Exclusive, &[1; 60]).unwrap();
    match f.write_state(StateScope::Exclusive, &[2; 60]) {
        Err(Error::Limit(LimitExceeded::BytesWritten {
            limit: 100,
            written: 60,
            requested: 60,
        })) => {}
        other => panic!("expected the byte limit, got {other:?}"),
    }
    // With the only stream slot taken, the call is refused as a stream would be.
    let open = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    match f.write_state(StateScope::Exclusive, &[3; 10]) {
        Err(Error::Limit(LimitExceeded::OpenStreams { limit: 1 })) => {}
        other => panic!("expected the stream limit, got {other:?}"),
    }
    drop(open);
    assert!(f.write_state(StateScope::Exclusive, &[3; 10]).unwrap().is_some());
    assert_eq!(tenant.bytes_written(), 70);
    assert!(!tenant.is_poisoned());
}
