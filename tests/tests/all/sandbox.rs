//! The sandbox: a tenant reaches nothing outside its directory, whatever it
//! is handed (absolute host paths, `..`, other tenants' handles, symlinks),
//! and the component imports nothing but WASI.

use checkpoint_storage_tests::*;

#[test]
fn component_imports_only_wasi() {
    let imports = plugin().import_names();
    assert!(!imports.is_empty());
    for name in &imports {
        assert!(name.starts_with("wasi:"), "non-WASI import {name}");
    }
    assert!(imports.iter().any(|n| n.starts_with("wasi:filesystem/types")));
}

#[test]
fn encoded_reference_to_an_absolute_host_path_is_refused() {
    let t = TestTenant::new();
    let outside = tempfile::tempdir().unwrap();
    for dir in [outside.path(), t.tenant.dir()] {
        let reference = LocationReference::encode_path(&dir.to_string_lossy());
        let e = storage_error(t.view().resolve_checkpoint_storage_location(1, &reference));
        assert_eq!(e.code, ErrorCode::InvalidReference, "{}", dir.display());
        assert!(e.message.contains("outside this tenant's directory"), "{}", e.message);
    }
    assert!(all_files(outside.path()).is_empty());
}

#[test]
fn encoded_reference_climbing_out_with_dotdot_is_refused() {
    let t = TestTenant::new();
    for raw in [
        "/checkpoints/../tmp",
        "/checkpoints/a/../../etc",
        "/checkpoints/../../../../etc",
        "file:///checkpoints/../x",
    ] {
        let e = storage_error(
            t.view()
                .resolve_checkpoint_storage_location(1, &LocationReference::encode_path(raw)),
        );
        assert_eq!(e.code, ErrorCode::InvalidReference, "{raw}: {}", e.message);
    }
}

#[test]
fn two_tenants_do_not_see_each_others_files() {
    let a = TestTenant::new();
    let b = TestTenant {
        job: a.job.clone(),
        ..TestTenant::new()
    };
    a.init_job_dirs(&[1]);
    b.init_job_dirs(&[1]);
    let write = |t: &TestTenant, seed| {
        let f = t.default_factory(1);
        write_state(
            f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
            &bytes(50_000, seed),
        )
        .unwrap()
    };
    let ha = write(&a, 1);
    let hb = write(&b, 2);
    // Same job id, same guest directory, different host directories.
    assert_eq!(all_files(a.tenant.dir()).len(), 1);
    assert_eq!(all_files(b.tenant.dir()).len(), 1);
    assert_eq!(a.read_handle(&ha).unwrap(), bytes(50_000, 1));
    assert_eq!(b.read_handle(&hb).unwrap(), bytes(50_000, 2));

    // A's handle means nothing in B: B cannot duplicate A's file.
    let e = storage_error(
        b.view()
            .create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .duplicate(std::slice::from_ref(&ha)),
    );
    assert_eq!(e.code, ErrorCode::NotFound, "{}", e.message);
    assert_eq!(all_files(b.tenant.dir()).len(), 1);
    assert_eq!(a.read_handle(&ha).unwrap(), bytes(50_000, 1));
}

#[test]
fn symlinked_directory_pointing_outside_cannot_be_written_through() {
    let t = TestTenant::new();
    t.init_job_dirs(&[]);
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t.host(&format!("{}/chk-1", t.job))).unwrap();
    let f = t.default_factory(1);
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    s.write(&bytes(100, 1)).unwrap();
    let e = storage_error(s.write(&bytes(50_000, 1)));
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{}", e.message);
    assert!(all_files(outside.path()).is_empty(), "nothing written outside");
}

#[test]
fn symlinked_file_pointing_outside_cannot_be_duplicated() {
    let t = TestTenant::new();
    t.init_job_dirs(&[]);
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::os::unix::fs::symlink(&secret, t.host("link")).unwrap();
    let toolset = t.view().create_task_owned_checkpoint_state_toolset().unwrap();
    let h = StateHandle::File(FileHandle {
        path: "/checkpoints/link".into(),
        size: 6,
    });
    let e = storage_error(toolset.duplicate(&[h]));
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e:?}");
    assert!(e.message.contains("symbolic link"), "{}", e.message);
    assert!(
        files_in(&t.host(&format!("{}/taskowned", t.job))).is_empty(),
        "the secret was not copied in"
    );
    assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
}

#[test]
fn many_tenants_share_one_plugin() {
    let tenants: Vec<TestTenant> = (0..8).map(|_| TestTenant::new()).collect();
    let handles: Vec<StateHandle> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.init_job_dirs(&[]);
            write_state(
                t.view().create_task_owned_state_stream().unwrap(),
                &bytes(30_000, i as u8),
            )
            .unwrap()
        })
        .collect();
    for (i, (t, h)) in tenants.iter().zip(&handles).enumerate() {
        assert_eq!(t.read_handle(h).unwrap(), bytes(30_000, i as u8));
        assert_eq!(all_files(t.tenant.dir()).len(), 1);
    }
}

#[test]
fn directories_cannot_be_duplicated_as_state() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let toolset = t.view().create_task_owned_checkpoint_state_toolset().unwrap();
    let h = StateHandle::File(FileHandle {
        path: format!("/checkpoints/{}/chk-1", t.job),
        size: 0,
    });
    let e = storage_error(toolset.duplicate(&[h]));
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e:?}");
    assert!(e.message.contains("not a regular file"), "{}", e.message);
    assert!(files_in(&t.host(&format!("{}/taskowned", t.job))).is_empty());
}

#[test]
fn pooling_allocator_runs_tenants() {
    let plugin = Plugin::load_with(&PluginOptions::pooling(4)).unwrap();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let tenants: Vec<Tenant> = dirs
        .iter()
        .map(|d| plugin.tenant(TenantConfig::new(d.path())).unwrap())
        .collect();
    for (i, t) in tenants.iter().enumerate() {
        let job = job_id();
        std::fs::create_dir_all(t.dir().join(&job).join("taskowned")).unwrap();
        let view = t.open_worker_view(&StorageConfig::filesystem(&job)).unwrap();
        let h = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(30_000, i as u8)).unwrap();
        assert_eq!(
            std::fs::read(t.host_path(h.file_path().unwrap()).unwrap()).unwrap(),
            bytes(30_000, i as u8)
        );
        // Every tenant may add its coordinator instance: the pool has room
        // for the second instance of each.
        t.open_coordinator_view(&StorageConfig::filesystem(&job), None)
            .unwrap()
            .initialize_location_for_checkpoint(1)
            .unwrap();
        assert!(t.dir().join(&job).join("chk-1").is_dir());
    }
    // The pool is full: a fifth tenant is a setup error, not a crash.
    let extra = tempfile::tempdir().unwrap();
    let e = plugin.tenant(TenantConfig::new(extra.path())).unwrap_err();
    assert!(matches!(e, Error::Setup(_)), "{e}");
    assert!(e.to_string().contains("all 4 tenant slots"), "{e}");
    drop(tenants);
    assert!(
        plugin.tenant(TenantConfig::new(extra.path())).is_ok(),
        "slots are reused after tenants are dropped"
    );
}

#[test]
fn a_tenant_needs_an_existing_directory() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("missing");
    let file = root.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    for dir in [&missing, &file] {
        let e = match plugin().tenant(TenantConfig::new(dir)) {
            Err(Error::Setup(e)) => format!("{e:#}"),
            other => panic!("expected a setup error for {}, got {other:?}", dir.display()),
        };
        assert!(e.contains(&dir.display().to_string()), "{e}");
        assert!(e.contains("must be an existing directory"), "{e}");
    }
    assert!(!missing.exists(), "nothing is created");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn a_relative_tenant_directory_is_made_absolute() {
    // The test runs in the tests crate's directory; `src` exists there.
    let tenant = plugin().tenant(TenantConfig::new("src")).unwrap();
    assert!(tenant.dir().is_absolute(), "{}", tenant.dir().display());
    assert_eq!(tenant.dir(), std::env::current_dir().unwrap().join("src"));
}

#[test]
fn an_absolute_tenant_directory_is_taken_as_given() {
    // `.` and a repeated separator are kept (they name the same directory);
    // state lands in that directory and its host path resolves there.
    let dir = tempfile::tempdir().unwrap();
    let given = std::path::PathBuf::from(format!("{}/.//", dir.path().display()));
    let tenant = plugin().tenant(TenantConfig::new(&given)).unwrap();
    assert_eq!(tenant.dir(), given.as_path());
    let job = job_id();
    std::fs::create_dir_all(dir.path().join(&job).join("taskowned")).unwrap();
    let view = tenant.open_worker_view(&StorageConfig::filesystem(&job)).unwrap();
    let h = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(30_000, 7)).unwrap();
    let host = tenant.host_path(h.file_path().unwrap()).unwrap();
    assert_eq!(std::fs::read(&host).unwrap(), bytes(30_000, 7));
    assert_eq!(
        std::fs::canonicalize(host.parent().unwrap()).unwrap(),
        std::fs::canonicalize(dir.path().join(&job).join("taskowned")).unwrap()
    );
}

#[test]
fn reused_pool_slots_work_with_and_without_keeping_memory_resident() {
    for keep in [0, DEFAULT_POOL_KEEP_RESIDENT_BYTES] {
        let options = PluginOptions {
            allocator: Allocator::Pooling {
                max_tenants: 1,
                keep_resident_bytes: keep,
            },
            ..PluginOptions::default()
        };
        let plugin = Plugin::load_with(&options).unwrap();
        // One slot, used by one tenant after another: each starts clean.
        for round in 0..3u8 {
            let dir = tempfile::tempdir().unwrap();
            let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
            let job = job_id();
            std::fs::create_dir_all(dir.path().join(&job).join("taskowned")).unwrap();
            let view = tenant.open_worker_view(&StorageConfig::memory(&job)).unwrap();
            let stream = view.create_task_owned_state_stream().unwrap();
            assert_eq!(stream.get_pos().unwrap(), 0, "keep {keep}, round {round}");
            let h = write_state(stream, &bytes(300_000, round)).unwrap();
            assert_eq!(tenant.read_state(&h).unwrap(), bytes(300_000, round));
            // Nothing of the slot's previous tenant (its preopen, its open
            // files) leaks in: file state lands in this tenant's directory.
            let view = tenant.open_worker_view(&StorageConfig::filesystem(&job)).unwrap();
            let h = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(30_000, round)).unwrap();
            let file = tenant.host_path(h.file_path().unwrap()).unwrap();
            assert!(file.starts_with(dir.path()), "{}", file.display());
            assert_eq!(std::fs::read(&file).unwrap(), bytes(30_000, round));
            assert_eq!(all_files(dir.path()).len(), 1, "keep {keep}, round {round}");
        }
    }
}
