//! The worker, coordinator and restore behaviour that does not depend on
//! where state lives, run on both backends: a tenant directory (filesystem
//! component) and a bucket prefix on a real S3 server (blobstore
//! component). Each case runs the same code against each backend and
//! checks what is stored with the backend's own eyes (files on the host,
//! objects on the server).

use checkpoint_storage_tests::*;

/// One backend: a tenant, its storage config, and a way to see what is
/// stored from outside the sandbox.
struct Backend {
    name: &'static str,
    tenant: Tenant,
    config: StorageConfig,
    /// Whether the state a handle path names is stored.
    stored: Box<dyn Fn(&str) -> bool>,
    /// How many files / objects the tenant stores in all.
    count: Box<dyn Fn() -> usize>,
    /// Keeps the directory or the server alive.
    _keep: Box<dyn std::any::Any>,
}

fn filesystem() -> Backend {
    let t = TestTenant::new();
    let host = t.tenant.clone();
    let root = t.tenant.dir().to_path_buf();
    Backend {
        name: "filesystem",
        config: StorageConfig::filesystem(&t.job),
        tenant: t.tenant.clone(),
        stored: Box::new(move |path| host.host_path(path).is_some_and(|p| p.is_file())),
        count: Box::new(move || all_files(&root).len()),
        _keep: Box::new(t),
    }
}

fn object_storage() -> Backend {
    let t = std::rc::Rc::new(S3Tenant::new());
    let (a, b) = (t.clone(), t.clone());
    Backend {
        name: "object storage",
        config: t.config(),
        tenant: t.tenant.clone(),
        stored: Box::new(move |path| a.object_keys().contains(&a.key_of(path))),
        count: Box::new(move || b.object_keys().len()),
        _keep: Box::new(t),
    }
}

fn backends() -> [Backend; 2] {
    [filesystem(), object_storage()]
}

/// The coordinator's set-up of checkpoint `id`, then the task's factory.
fn location(b: &Backend, id: u64) -> (CheckpointStorageLocation, StreamFactory) {
    let c = b.tenant.open_coordinator_view(&b.config, None).unwrap();
    c.initialize_base_locations_for_checkpoint().unwrap();
    let location = c.initialize_location_for_checkpoint(id).unwrap();
    let factory = b
        .tenant
        .open_worker_view(&b.config)
        .unwrap()
        .resolve_checkpoint_storage_location(id, &LocationReference::Default)
        .unwrap();
    (location, factory)
}

#[test]
fn inline_up_to_the_threshold_and_a_file_above_it() {
    for b in backends() {
        let (_, f) = location(&b, 1);
        let at = bytes(20 * 1024, 1);
        let above = bytes(20 * 1024 + 1, 2);
        let inline = f.write_state(StateScope::Exclusive, &at).unwrap().unwrap();
        assert!(matches!(inline, StateHandle::ByteStream(_)), "{}: {inline:?}", b.name);
        let file = f.write_state(StateScope::Exclusive, &above).unwrap().unwrap();
        assert!(matches!(file, StateHandle::RelativeFile(_)), "{}: {file:?}", b.name);
        let shared = f.write_state(StateScope::Shared, &above).unwrap().unwrap();
        assert!(matches!(shared, StateHandle::File(_)), "{}: {shared:?}", b.name);
        assert_eq!((b.count)(), 2, "{}: only the two large states are stored", b.name);
        for (h, data) in [(&inline, &at), (&file, &above), (&shared, &above)] {
            assert_eq!(&b.tenant.read_state(h).unwrap(), data, "{}", b.name);
        }
    }
}

#[test]
fn a_dropped_or_failed_stream_leaves_nothing() {
    for b in backends() {
        let (_, f) = location(&b, 2);
        let mut s = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
        s.write(&bytes(3 << 20, 3)).unwrap();
        drop(s);
        assert_eq!((b.count)(), 0, "{}", b.name);
        // A zero-length stream gives no handle and stores nothing.
        let s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
        assert!(s.close_and_get_handle().unwrap().is_none(), "{}", b.name);
        assert_eq!((b.count)(), 0, "{}", b.name);
    }
}

#[test]
fn restore_reads_ranges_and_discard_removes_the_state() {
    for b in backends() {
        let (_, f) = location(&b, 3);
        let data = bytes(200_000, 4);
        let h = f.write_state(StateScope::Exclusive, &data).unwrap().unwrap();
        let path = h.file_path().unwrap().to_string();
        assert!((b.stored)(&path), "{}", b.name);
        let input = b.tenant.open_input_stream(&h).unwrap();
        assert_eq!(input.size().unwrap(), data.len() as u64, "{}", b.name);
        input.seek(150_000).unwrap();
        assert_eq!(input.read(1000).unwrap(), data[150_000..151_000], "{}", b.name);
        input.seek(10).unwrap();
        assert_eq!(input.read(5).unwrap(), data[10..15], "{}", b.name);
        assert_eq!(input.get_pos().unwrap(), 15, "{}", b.name);
        drop(input);
        b.tenant.discard_state(&h).unwrap();
        assert!(!(b.stored)(&path), "{}", b.name);
        // Discarding again is a no-op; reading is `not-found`.
        b.tenant.discard_state(&h).unwrap();
        assert_eq!(code(b.tenant.read_state(&h)), ErrorCode::NotFound, "{}", b.name);
    }
}

#[test]
fn metadata_is_written_once_and_the_checkpoint_resolves() {
    for b in backends() {
        let (location, f) = location(&b, 4);
        let state = f
            .write_state(StateScope::Exclusive, &bytes(30_000, 5))
            .unwrap()
            .unwrap();
        let first = location.create_metadata_output_stream().unwrap();
        first.write(b"the metadata").unwrap();
        let done = first.close_and_finalize_checkpoint().unwrap();
        let again = location.create_metadata_output_stream();
        assert_eq!(code(again), ErrorCode::AlreadyExists, "{}", b.name);
        let c = b.tenant.open_coordinator_view(&b.config, None).unwrap();
        let resolved = c.resolve_checkpoint(&done.external_pointer).unwrap();
        assert_eq!(resolved.metadata, done.metadata, "{}", b.name);
        assert_eq!(
            b.tenant.read_state(&resolved.metadata).unwrap(),
            b"the metadata",
            "{}",
            b.name
        );
        assert!((b.stored)(state.file_path().unwrap()), "{}", b.name);
    }
}

#[test]
fn a_failed_checkpoint_is_disposed_and_shared_state_stays() {
    for b in backends() {
        let (location, f) = location(&b, 5);
        let exclusive = f
            .write_state(StateScope::Exclusive, &bytes(30_000, 6))
            .unwrap()
            .unwrap();
        let shared = f.write_state(StateScope::Shared, &bytes(30_000, 7)).unwrap().unwrap();
        location.dispose_on_failure().unwrap();
        assert!(!(b.stored)(exclusive.file_path().unwrap()), "{}", b.name);
        assert!((b.stored)(shared.file_path().unwrap()), "{}", b.name);
        assert_eq!(b.tenant.read_state(&shared).unwrap(), bytes(30_000, 7), "{}", b.name);
    }
}

#[test]
fn duplicate_copies_into_the_target_scope() {
    for b in backends() {
        let (_, f) = location(&b, 6);
        let data = bytes(50_000, 8);
        let shared = f.write_state(StateScope::Shared, &data).unwrap().unwrap();
        assert!(
            f.can_fast_duplicate(&shared, StateScope::Exclusive).unwrap(),
            "{}",
            b.name
        );
        let dup = f
            .duplicate(std::slice::from_ref(&shared), StateScope::Exclusive)
            .unwrap();
        let dup_path = dup[0].file_path().unwrap();
        assert_ne!(dup_path, shared.file_path().unwrap(), "{}", b.name);
        assert!(dup_path.contains("/chk-6/"), "{}: {dup_path}", b.name);
        assert_eq!(b.tenant.read_state(&dup[0]).unwrap(), data, "{}", b.name);
        // An inline handle cannot be duplicated, on either backend.
        let inline = f.write_state(StateScope::Shared, b"tiny").unwrap().unwrap();
        let e = storage_error(f.duplicate(&[inline], StateScope::Exclusive));
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{}", b.name);
    }
}

#[test]
fn references_outside_the_tenant_are_refused() {
    for b in backends() {
        let view = b.tenant.open_worker_view(&b.config).unwrap();
        for path in ["/etc", "s3://other-bucket/x", "/checkpoints/../../etc"] {
            let e = storage_error(view.resolve_checkpoint_storage_location(1, &LocationReference::encode_path(path)));
            assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidReference | ErrorCode::PermissionDenied | ErrorCode::Unsupported
                ),
                "{}: {path}: {e:?}",
                b.name
            );
        }
    }
}
