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
    let f = t.default_factory(7);
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
    let (_dir, tenant, f) = adjusted_tenant(|c| c.with_max_bytes_written(Some(100)).with_max_open_streams(1));
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

// ---- write-states: many whole states in one call ----

/// The kinds of handle `write_state` and `write_states` give, with the
/// bytes they name read back: equal whatever way they were written.
fn outcome(t: &TestTenant, r: &checkpoint_storage_host::Result<Option<StateHandle>>) -> String {
    match r {
        Ok(None) => "none".into(),
        Ok(Some(h)) => {
            let kind = match h {
                StateHandle::ByteStream(_) => "inline",
                StateHandle::File(_) => "file",
                StateHandle::RelativeFile(_) => "relative-file",
                StateHandle::Segment(_) => "segment",
            };
            format!("{kind} of {} bytes", t.read_handle(h).unwrap().len())
        }
        Err(Error::Storage(e)) => format!("{:?}: {}", e.code, e.message),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn write_states_gives_per_state_what_write_state_gives() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    // Empty, inline, at the threshold, just above it, and larger than one
    // call takes (it goes through a stream of its own).
    let states = vec![
        Vec::new(),
        bytes(100, 1),
        bytes(20_480, 2),
        bytes(20_481, 3),
        bytes(3 << 20, 4),
        bytes(7, 5),
    ];
    for scope in [StateScope::Exclusive, StateScope::Shared] {
        let batch = f.write_states(scope, &states);
        assert_eq!(batch.len(), states.len());
        let one_by_one: Vec<_> = states.iter().map(|s| f.write_state(scope, s)).collect();
        for ((state, b), one) in states.iter().zip(&batch).zip(&one_by_one) {
            assert_eq!(outcome(&t, b), outcome(&t, one), "{} bytes, {scope:?}", state.len());
            if let Ok(Some(h)) = b {
                assert_eq!(&t.read_handle(h).unwrap(), state);
            }
        }
        let expected_kind = if scope == StateScope::Exclusive {
            "relative-file"
        } else {
            "file"
        };
        assert!(
            outcome(&t, &batch[3]).starts_with(expected_kind),
            "{}",
            outcome(&t, &batch[3])
        );
        assert!(outcome(&t, &batch[1]).starts_with("inline"));
    }
    // Two files per scope and way: 20,481 B and 3 MiB.
    assert_eq!(chk_files(&t).len(), 4);
    assert_eq!(files_in(&t.host(&format!("{}/shared", t.job))).len(), 4);
    assert_eq!(t.tenant.open_streams(), 0, "the calls' stream slots are released");
    assert!(f.write_states(StateScope::Exclusive, &[]).is_empty());
}

#[test]
fn write_states_names_are_fresh_v4_uuids_in_every_tenant() {
    let mut names = std::collections::HashSet::new();
    for _ in 0..2 {
        let t = TestTenant::new();
        t.init_job_dirs(&[1]);
        let f = t.default_factory(1);
        let states: Vec<Vec<u8>> = (0..1000).map(|i| bytes(100, i as u8)).collect();
        for (state, r) in states.iter().zip(f.write_states(StateScope::Exclusive, &states)) {
            let StateHandle::ByteStream(b) = r.unwrap().unwrap() else {
                panic!("100 bytes are inline")
            };
            assert_eq!(&b.data, state);
            let (dir, name) = b.name.rsplit_once('/').unwrap();
            assert_eq!(dir, format!("{GUEST_MOUNT}/{}/chk-1", t.job));
            let uuid = uuid::Uuid::parse_str(name).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{name}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{name}");
            assert_eq!(uuid.hyphenated().to_string(), name, "Flink's lowercase hyphenated form");
            assert!(names.insert(name.to_string()), "{name} was handed out twice");
        }
        // File names come from the same source.
        let h = f
            .write_state(StateScope::Exclusive, &bytes(30_000, 1))
            .unwrap()
            .unwrap();
        let StateHandle::RelativeFile(r) = h else {
            panic!("a file")
        };
        assert_eq!(uuid::Uuid::parse_str(&r.relative_path).unwrap().get_version_num(), 4);
        assert!(names.insert(r.relative_path.clone()));
    }
}

#[test]
fn a_failed_state_does_not_stop_the_others_and_leaves_no_file() {
    // No chk-7 directory: file state fails, inline state needs none.
    let t = TestTenant::new();
    std::fs::create_dir_all(t.host(&t.job)).unwrap();
    let f = t.default_factory(7);
    let states = vec![bytes(50_000, 1), bytes(10, 2), bytes(60_000, 3), bytes(20, 4)];
    let results = f.write_states(StateScope::Exclusive, &states);
    let single = storage_error(f.write_state(StateScope::Exclusive, &states[0]));
    for i in [0, 2] {
        let Err(Error::Storage(e)) = &results[i] else {
            panic!("expected a storage error, got {:?}", results[i])
        };
        assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
        assert_eq!(e.code, single.code);
        assert!(e.message.contains("Could not open output stream"), "{}", e.message);
    }
    for (i, seed) in [(1, 2), (3, 4)] {
        let Ok(Some(StateHandle::ByteStream(b))) = &results[i] else {
            panic!("state {i} is inline: {:?}", results[i])
        };
        assert_eq!(b.data, states[i], "seed {seed}");
    }
    assert!(all_files(t.tenant.dir()).is_empty());
}

#[test]
fn write_states_on_the_memory_backend_refuses_only_the_state_over_its_maximum() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job).with_max_memory_state_size(10));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let results = f.write_states(StateScope::Shared, &[vec![1; 10], vec![2; 11], vec![3; 5]]);
    assert_eq!(
        t.read_handle(results[0].as_ref().unwrap().as_ref().unwrap()).unwrap(),
        vec![1; 10]
    );
    let Err(Error::Storage(e)) = &results[1] else {
        panic!("expected state-too-large, got {:?}", results[1])
    };
    assert_eq!(e.code, ErrorCode::StateTooLarge);
    assert!(e.message.contains("Size=11 , maxSize=10"), "{}", e.message);
    assert_eq!(
        t.read_handle(results[2].as_ref().unwrap().as_ref().unwrap()).unwrap(),
        vec![3; 5]
    );
}

#[test]
fn write_states_counts_each_state_against_the_tenant_limits() {
    let (_dir, tenant, f) = adjusted_tenant(|c| c.with_max_bytes_written(Some(100)).with_max_open_streams(1));
    // 60 fits; 60 more would make 120; 30 after it still fits (90).
    let results = f.write_states(
        StateScope::Exclusive,
        &[vec![1; 60], vec![2; 60], vec![3; 30], vec![4; 20]],
    );
    assert!(matches!(&results[0], Ok(Some(StateHandle::ByteStream(b))) if b.data == vec![1; 60]));
    match &results[1] {
        Err(Error::Limit(LimitExceeded::BytesWritten {
            limit: 100,
            written: 60,
            requested: 60,
        })) => {}
        other => panic!("expected the byte limit, got {other:?}"),
    }
    assert!(matches!(&results[2], Ok(Some(StateHandle::ByteStream(b))) if b.data == vec![3; 30]));
    match &results[3] {
        Err(Error::Limit(LimitExceeded::BytesWritten {
            limit: 100,
            written: 90,
            requested: 20,
        })) => {}
        other => panic!("expected the byte limit, got {other:?}"),
    }
    assert_eq!(tenant.bytes_written(), 90);
    // With the only stream slot taken, every state is refused as a single call would be.
    let open = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    let results = f.write_states(StateScope::Exclusive, &[vec![5; 1], vec![6; 1]]);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(
            matches!(r, Err(Error::Limit(LimitExceeded::OpenStreams { limit: 1 }))),
            "{r:?}"
        );
    }
    drop(open);
    assert_eq!(tenant.open_streams(), 0);
    assert_eq!(tenant.bytes_written(), 90);
    assert!(!tenant.is_poisoned());
}

#[test]
fn states_the_component_refuses_are_not_counted_against_the_byte_limit() {
    let t = TestTenant::new();
    let tenant = plugin()
        .tenant(TenantConfig::new(t.tenant.dir()).with_max_bytes_written(Some(30)))
        .unwrap();
    let f = tenant
        .open_worker_view(&StorageConfig::memory(&t.job).with_max_memory_state_size(10))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    // 20 bytes are refused by the memory backend (over its 10), so the 25
    // after them fit the byte limit of 30.
    let results = f.write_states(
        StateScope::Shared,
        &[vec![1; 20], vec![2; 10], vec![3; 10], vec![4; 10]],
    );
    assert!(
        matches!(&results[0], Err(Error::Storage(e)) if e.code == ErrorCode::StateTooLarge),
        "{:?}",
        results[0]
    );
    assert!(results[1..].iter().all(|r| matches!(r, Ok(Some(_)))), "{results:?}");
    assert_eq!(tenant.bytes_written(), 30);
    assert!(matches!(
        f.write_states(StateScope::Shared, &[vec![5; 1]])[0],
        Err(Error::Limit(LimitExceeded::BytesWritten {
            limit: 30,
            written: 30,
            requested: 1
        }))
    ));
}

#[test]
fn a_read_only_tenant_refuses_every_state_of_a_batch() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let reader = plugin().tenant(TenantConfig::new(t.tenant.dir()).read_only()).unwrap();
    let f = reader
        .open_worker_view(&StorageConfig::filesystem(&t.job))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let results = f.write_states(StateScope::Exclusive, &[bytes(10, 1), Vec::new(), bytes(30_000, 2)]);
    for r in &results {
        assert!(
            matches!(r, Err(Error::Storage(e)) if e.code == ErrorCode::PermissionDenied && e.message.contains("read-only")),
            "{r:?}"
        );
    }
    assert!(all_files(t.tenant.dir()).is_empty());
    assert_eq!(reader.bytes_written(), 0);
}

#[test]
fn a_batch_over_one_calls_bytes_is_split_and_a_trap_poisons_the_rest() {
    // Larger than one call takes in all: split into calls, every byte back.
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    let states: Vec<Vec<u8>> = (0..5).map(|i| bytes(600 << 10, i)).collect();
    let results = f.write_states(StateScope::Shared, &states);
    for (state, r) in states.iter().zip(&results) {
        let h = r.as_ref().unwrap().as_ref().unwrap();
        assert!(matches!(h, StateHandle::File(_)), "{h}");
        assert_eq!(&t.tenant.read_state(h).unwrap(), state);
    }

    // The least memory cap the component starts with, then 256 KiB more:
    // a call of 800 KiB of states cannot be copied into it.
    let dir = tempfile::tempdir().unwrap();
    let (tenant, cap) = (1..)
        .map(|pages: usize| (64 << 10) * pages)
        .find_map(|cap| {
            let cap = cap + (256 << 10);
            plugin()
                .tenant(TenantConfig::new(dir.path()).with_max_memory_bytes(cap))
                .ok()
                .map(|t| (t, cap))
        })
        .unwrap();
    let job = job_id();
    let f = tenant
        .open_worker_view(&StorageConfig::filesystem(&job))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let states: Vec<Vec<u8>> = (0..4).map(|i| bytes(200 << 10, i)).collect();
    let results = f.write_states(StateScope::Shared, &states);
    assert_eq!(results.len(), 4);
    assert!(
        matches!(&results[0], Err(Error::Limit(LimitExceeded::Memory { limit, .. })) if *limit == cap),
        "{:?}",
        results[0]
    );
    assert!(
        results[1..].iter().all(|r| matches!(r, Err(Error::Poisoned))),
        "{results:?}"
    );
    assert!(tenant.is_poisoned());
    assert_eq!(
        tenant.bytes_written(),
        0,
        "states that were not written are not counted"
    );
    assert!(all_files(dir.path()).is_empty());
}
