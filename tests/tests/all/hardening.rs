//! Hardening: what a tenant or a file it controls can do to the host must
//! stay bounded (allocations, blocking calls, partial files, forged names).

use checkpoint_storage_tests::*;

/// A file of `len` apparent bytes that occupies no disk blocks.
fn sparse_file(path: &std::path::Path, len: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

#[test]
fn read_state_of_a_huge_file_is_a_typed_error_not_an_allocation() {
    let t = TestTenant::new();
    let rel = format!("{}/chk-1/huge", t.job);
    sparse_file(&t.host(&rel), 1 << 40);
    let handle = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: 1 << 40,
    });
    match t.tenant.read_state(&handle) {
        Err(Error::Limit(LimitExceeded::StateTooLarge { limit, size })) => {
            assert_eq!(size, 1 << 40);
            assert_eq!(limit, DEFAULT_MAX_READ_STATE_BYTES);
        }
        other => panic!("expected a state-too-large limit, got {other:?}"),
    }
    // The tenant goes on, and the stream slot was given back.
    assert!(!t.tenant.is_poisoned());
    assert_eq!(t.tenant.open_streams(), 0);
    // The same file read in pieces through a stream works.
    let stream = t.tenant.open_input_stream(&handle).unwrap();
    assert_eq!(stream.size().unwrap(), 1 << 40);
    stream.seek((1 << 40) - 3).unwrap();
    assert_eq!(stream.read_to_end().unwrap(), vec![0, 0, 0]);
}

#[test]
fn read_state_honours_the_tenants_read_limit_and_reads_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_id();
    let tenant = plugin()
        .tenant(TenantConfig::new(dir.path()).with_max_read_state_bytes(3 << 20))
        .unwrap();
    let data = bytes(3 << 20, 7);
    let rel = format!("{job}/chk-1/fits");
    std::fs::create_dir_all(dir.path().join(&job).join("chk-1")).unwrap();
    std::fs::write(dir.path().join(&rel), &data).unwrap();
    let fits = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: data.len() as u64,
    });
    assert_eq!(tenant.read_state(&fits).unwrap(), data);
    let rel = format!("{job}/chk-1/one-more");
    std::fs::write(dir.path().join(&rel), bytes((3 << 20) + 1, 8)).unwrap();
    let too_large = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: (3 << 20) + 1,
    });
    let err = tenant.read_state(&too_large).unwrap_err();
    assert!(
        matches!(err, Error::Limit(LimitExceeded::StateTooLarge { limit, size }) if limit == 3 << 20 && size == (3 << 20) + 1),
        "{err}"
    );
    assert!(
        err.to_string().contains("open_input_stream"),
        "the message says what to do: {err}"
    );
}

/// The configuration error of a tenant that must not be created.
fn config_error(config: TenantConfig) -> ConfigError {
    match plugin().tenant(config) {
        Err(Error::Config(e)) => e,
        Err(e) => panic!("expected a configuration error, got {e}"),
        Ok(_) => panic!("expected a configuration error, the tenant was created"),
    }
}

#[test]
fn out_of_range_tenant_settings_are_typed_errors_naming_field_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let base = || TenantConfig::new(dir.path());
    let e = config_error(base().with_max_call_time(std::time::Duration::MAX));
    assert_eq!(e.field, "max_call_time");
    assert!(e.to_string().contains("at most 86400s"), "{e}");
    assert_eq!(
        config_error(base().with_max_call_time(std::time::Duration::ZERO)).field,
        "max_call_time"
    );
    assert_eq!(config_error(base().with_max_memory_bytes(0)).field, "max_memory_bytes");
    assert_eq!(
        config_error(base().with_max_memory_bytes(usize::MAX)).field,
        "max_memory_bytes"
    );
    assert_eq!(config_error(base().with_max_open_streams(0)).field, "max_open_streams");
    let e = config_error(base().with_max_read_state_bytes(u64::MAX));
    assert_eq!(e.field, "max_read_state_bytes");
    assert!(
        e.to_string()
            .starts_with("invalid tenant configuration: max_read_state_bytes is 18446744073709551615"),
        "{e}"
    );
    // The bounds themselves are allowed, and such a tenant works.
    let tenant = plugin()
        .tenant(
            base()
                .with_max_call_time(MAX_CALL_TIME)
                .with_max_memory_bytes(DEFAULT_MAX_MEMORY_BYTES)
                .with_max_open_streams(1),
        )
        .unwrap();
    assert!(tenant.open_worker_view(&StorageConfig::memory(job_id())).is_ok());
}

/// A FIFO at `path` (no process ever opens its other end).
fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_swapped_in_for_a_state_file_never_blocks_the_host() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let rel = format!("{}/chk-1/state", t.job);
    let (file, fifo, spare) = (t.host(&rel), t.host("fifo"), t.host("file"));
    std::fs::write(&spare, b"state bytes").unwrap();
    mkfifo(&fifo);
    let handle = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: 11,
    });
    // Another process swaps a FIFO and a regular file under the name while
    // the tenant opens it: the guest's type check and its open race. Before
    // the host opened with O_NONBLOCK, an open that met the FIFO blocked
    // the calling thread until a writer came, which none does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::hard_link(&fifo, &file);
                let _ = std::fs::remove_file(&file);
                let _ = std::fs::hard_link(&spare, &file);
                let _ = std::fs::remove_file(&file);
            }
        })
    };
    let tenant = t.tenant.clone();
    let (done, finished) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
        for _ in 0..3000 {
            let outcome = match tenant.read_state(&handle) {
                Ok(data) => {
                    assert_eq!(data, b"state bytes");
                    "read".to_string()
                }
                Err(Error::Storage(e)) => e.code.as_str().to_string(),
                Err(e) => panic!("{e}"),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        done.send(outcomes).unwrap();
    });
    let outcomes = finished.recv_timeout(std::time::Duration::from_secs(120));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(_) => {
            // Unblock the stuck open so that the test ends, failing.
            let _ = std::fs::OpenOptions::new().write(true).open(t.host(&rel));
            panic!("reading state blocked on a FIFO");
        }
    };
    reader.join().unwrap();
    // Every outcome is a read of the real bytes or a clean refusal.
    for code in outcomes.keys() {
        assert!(
            ["read", "not-found", "invalid-argument", "unsupported"].contains(&code.as_str()),
            "{outcomes:?}"
        );
    }
}

/// The file names in `dir` (a host path), sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    files_in(dir)
}

#[test]
fn a_memory_trap_leaves_no_partial_files_of_open_streams() {
    let (t, tenant, factory) = adjusted_tenant(|c| c.with_max_memory_bytes(8 << 20));
    let dir = tempfile::tempdir().unwrap();
    // One finished handle (must stay), two open streams with files (must go).
    let done = write_state(
        factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap(),
        &bytes(40_000, 1),
    )
    .unwrap();
    let mut open = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    open.write(&bytes(50_000, 2)).unwrap();
    let mut open_shared = factory
        .create_checkpoint_state_output_stream(StateScope::Shared)
        .unwrap();
    open_shared.write(&bytes(50_000, 3)).unwrap();
    let coordinator = tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let metadata = coordinator
        .initialize_location_for_checkpoint(2)
        .unwrap()
        .create_metadata_output_stream()
        .unwrap();
    metadata.write(b"partial metadata").unwrap();
    let chk1 = t.host(&format!("{}/chk-1", t.job));
    assert_eq!(names(&chk1).len(), 2, "the finished and the open exclusive file");
    assert_eq!(names(&t.host(&format!("{}/shared", t.job))).len(), 1);
    assert_eq!(
        names(&t.host(&format!("{}/chk-2", t.job))).len(),
        1,
        "the metadata's temporary file"
    );

    trap_by_memory(&tenant, &t.job);

    let StateHandle::RelativeFile(kept) = &done else {
        panic!("{done:?}")
    };
    assert_eq!(
        names(&chk1),
        vec![kept.relative_path.clone()],
        "only the finished state is left"
    );
    assert_eq!(t.read_handle(&done).unwrap(), bytes(40_000, 1));
    assert!(names(&t.host(&format!("{}/shared", t.job))).is_empty());
    assert!(names(&t.host(&format!("{}/chk-2", t.job))).is_empty());
    drop(dir);
}

#[test]
fn a_time_trap_leaves_no_partial_files_of_open_streams() {
    use std::time::Duration;
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    // Many sources: duplicating them takes far longer than the 5 ms limit
    // (a few ticks, so that on a loaded machine the short calls before it
    // are seldom the ones cut).
    let sources: Vec<Vec<StateHandle>> = (0..8)
        .map(|b| {
            (0..500)
                .map(|i| {
                    let name = format!("src-{b}-{i}");
                    std::fs::write(t.host(&name), b"x").unwrap();
                    StateHandle::File(FileHandle {
                        path: format!("{GUEST_MOUNT}/{name}"),
                        size: 1,
                    })
                })
                .collect()
        })
        .collect();
    let plugin = Plugin::load_with(&PluginOptions {
        epoch_tick: Duration::from_millis(1),
        ..PluginOptions::default()
    })
    .unwrap();
    let chk1 = t.host(&format!("{}/chk-1", t.job));
    // On a loaded machine any call may be the one cut; try again until the
    // stream's file exists when the trap comes. Whatever is cut, no file of
    // an open stream may stay.
    let mut proven = false;
    for _ in 0..50 {
        let mut created = None;
        let attempt = (|| -> checkpoint_storage_host::Result<()> {
            let tenant =
                plugin.tenant(TenantConfig::new(t.tenant.dir()).with_max_call_time(Duration::from_millis(5)))?;
            created = Some(tenant.clone());
            let view = tenant.open_worker_view(&StorageConfig::filesystem(&t.job))?;
            let mut stream = view
                .resolve_checkpoint_storage_location(1, &LocationReference::Default)?
                .create_checkpoint_state_output_stream(StateScope::Exclusive)?;
            stream.write(&bytes(50_000, 5))?;
            assert_eq!(names(&chk1).len(), 1, "the open stream's file");
            let toolset = view.create_task_owned_checkpoint_state_toolset()?;
            for batch in &sources {
                toolset.duplicate(batch)?;
            }
            panic!("no call was cut");
        })();
        match attempt {
            Err(Error::Limit(LimitExceeded::ExecutionTime { .. })) => {}
            // The cut came in a destructor (the factory above is dropped at
            // the end of its statement): a drop cannot return the error, so
            // the tenant is poisoned, the next call says so, and the tenant
            // tells which limit it was.
            Err(Error::Poisoned) => {
                let limit = created.as_ref().and_then(|tenant| tenant.poisoned_by_limit());
                assert!(
                    matches!(limit, Some(LimitExceeded::ExecutionTime { .. })),
                    "poisoned by {limit:?}"
                );
            }
            other => panic!("expected the time limit, got {other:?}"),
        }
        assert!(names(&chk1).is_empty(), "{:?}", names(&chk1));
        // Proven once the stream had its file before the cut.
        if std::fs::read_dir(t.host(&format!("{}/taskowned", t.job)))
            .unwrap()
            .next()
            .is_some()
        {
            proven = true;
            break;
        }
    }
    assert!(proven, "the trap never came after the stream had its file");
}

#[test]
fn a_read_only_tenant_restores_and_refuses_every_write() {
    // A writer leaves a completed checkpoint with file and inline state.
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let factory = t.default_factory(1);
    let file_state = write_state(
        factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap(),
        &bytes(40_000, 9),
    )
    .unwrap();
    let config = StorageConfig::filesystem(&t.job);
    let coordinator = t.tenant.open_coordinator_view(&config, None).unwrap();
    let metadata = coordinator
        .initialize_location_for_checkpoint(1)
        .unwrap()
        .create_metadata_output_stream()
        .unwrap();
    metadata.write(b"the manifest").unwrap();
    let done = metadata.close_and_finalize_checkpoint().unwrap();
    let before = all_files(t.tenant.dir());

    let reader = plugin().tenant(TenantConfig::new(t.tenant.dir()).read_only()).unwrap();
    // Restore works.
    let found = reader
        .open_coordinator_view(&config, None)
        .unwrap()
        .resolve_checkpoint(&done.external_pointer)
        .unwrap();
    assert_eq!(reader.read_state(&found.metadata).unwrap(), b"the manifest");
    assert_eq!(reader.read_state(&file_state).unwrap(), bytes(40_000, 9));

    // Everything that writes is refused with permission-denied, in words.
    let denied = |what: &str, r: checkpoint_storage_host::Result<()>| {
        let e = match r {
            Err(Error::Storage(e)) => e,
            other => panic!("{what}: expected permission-denied, got {other:?}"),
        };
        assert_eq!(e.code, ErrorCode::PermissionDenied, "{what}: {}", e.message);
        assert!(
            !e.message.contains("POSIX") && !e.message.contains('`'),
            "{what}: {}",
            e.message
        );
    };
    let view = reader.open_worker_view(&config).unwrap();
    let rfactory = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    denied(
        "stream",
        rfactory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .map(drop),
    );
    denied(
        "shared stream",
        rfactory
            .create_checkpoint_state_output_stream(StateScope::Shared)
            .map(drop),
    );
    denied(
        "write_state",
        rfactory.write_state(StateScope::Exclusive, b"tiny").map(drop),
    );
    denied("task-owned stream", view.create_task_owned_state_stream().map(drop));
    let memory_view = reader.open_worker_view(&StorageConfig::memory(&t.job)).unwrap();
    denied(
        "memory stream",
        memory_view
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap()
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .map(drop),
    );
    denied("discard", reader.discard_state(&file_state));
    let toolset = view.create_task_owned_checkpoint_state_toolset().unwrap();
    denied(
        "duplicate",
        toolset.duplicate(std::slice::from_ref(&file_state)).map(drop),
    );
    let rcoordinator = reader
        .open_coordinator_view(&config, Some("/checkpoints/savepoints"))
        .unwrap();
    denied(
        "base locations",
        rcoordinator.initialize_base_locations_for_checkpoint(),
    );
    denied(
        "checkpoint location",
        rcoordinator.initialize_location_for_checkpoint(2).map(drop),
    );
    denied(
        "savepoint location",
        rcoordinator.initialize_location_for_savepoint(3, None).map(drop),
    );
    let location = coordinator.initialize_location_for_checkpoint(4).unwrap();
    let before_4 = all_files(t.tenant.dir());
    let rlocation = rcoordinator.initialize_location_for_checkpoint(4);
    denied("existing checkpoint location", rlocation.map(drop));
    drop(location);
    assert_eq!(all_files(t.tenant.dir()), before_4, "nothing reached the disk");
    assert!(before_4.len() >= before.len());
    assert!(!reader.is_poisoned());
}

#[test]
fn filesystem_errors_read_in_plain_words() {
    let t = TestTenant::new();
    // No chk-1: the stream cannot create its file.
    let mut stream = t
        .default_factory(1)
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    let e = storage_error(stream.write(&bytes(100_000, 1)));
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains(": not found"), "{}", e.message);
    assert!(
        !e.message.contains("POSIX") && !e.message.contains("ENOENT"),
        "{}",
        e.message
    );
}

#[test]
fn a_checkpoint_directory_renamed_away_while_a_stream_is_open_gives_no_handle() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let mut stream = t
        .default_factory(1)
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    stream.write(&bytes(50_000, 3)).unwrap();
    let chk1 = t.host(&format!("{}/chk-1", t.job));
    let name = files_in(&chk1).pop().unwrap();
    let moved = t.host(&format!("{}/moved", t.job));
    std::fs::rename(&chk1, &moved).unwrap();
    std::fs::create_dir(&chk1).unwrap();
    // Another file now carries the name the handle would give.
    std::fs::write(chk1.join(&name), b"someone else's").unwrap();
    let e = storage_error(stream.close_and_get_handle());
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("moved away"), "{}", e.message);
    assert_eq!(
        std::fs::read(chk1.join(&name)).unwrap(),
        b"someone else's",
        "not deleted"
    );
    assert_eq!(std::fs::read(moved.join(&name)).unwrap(), bytes(50_000, 3));
}
