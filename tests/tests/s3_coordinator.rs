//! The coordinator view on object storage against a real S3 server:
//! no directories, `_metadata` published once and never overwritten,
//! savepoint references carrying `s3://` paths, disposal by prefix.

use checkpoint_storage_tests::*;

fn coordinator(t: &S3Tenant, savepoints: Option<&str>) -> CoordinatorView {
    t.tenant
        .open_coordinator_view(&t.config(), savepoints)
        .expect("coordinator opens")
}

#[test]
fn a_checkpoint_is_written_finalized_and_resolved() {
    let t = S3Tenant::new();
    let c = coordinator(&t, None);
    c.initialize_base_locations_for_checkpoint().unwrap();
    let location = c.initialize_location_for_checkpoint(7).unwrap();
    // Object stores have no directories: nothing was created.
    assert!(t.object_keys().is_empty());
    let dir = format!("s3://{BUCKET}/checkpoints/{}/chk-7", t.job);
    assert_eq!(location.checkpoint_directory().unwrap(), dir);
    assert_eq!(location.metadata_file_path().unwrap(), format!("{dir}/_metadata"));
    assert_eq!(location.location_reference().unwrap(), LocationReference::Default);

    let state = t
        .default_factory(7)
        .write_state(StateScope::Exclusive, &bytes(50_000, 1))
        .unwrap()
        .unwrap();
    let metadata = bytes(3000, 2);
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&metadata).unwrap();
    let done = stream.close_and_finalize_checkpoint().unwrap();
    assert_eq!(done.external_pointer, dir);
    let StateHandle::File(f) = &done.metadata else {
        panic!("metadata is a file handle")
    };
    assert_eq!(f.path, format!("{dir}/_metadata"));
    assert_eq!(f.size, metadata.len() as u64);
    // The temporary object is gone: the state and `_metadata` remain.
    let mut expected = vec![t.key_of(state.file_path().unwrap()), t.key_of(&f.path)];
    expected.sort();
    assert_eq!(t.object_keys(), expected);
    assert_eq!(t.object_bytes(&f.path), metadata);

    for pointer in [dir.clone(), format!("{dir}/_metadata"), format!("{dir}/")] {
        let resolved = c.resolve_checkpoint(&pointer).unwrap();
        assert_eq!(resolved.external_pointer, dir, "{pointer}");
        assert_eq!(resolved.metadata, done.metadata, "{pointer}");
    }
    assert_eq!(t.tenant.read_state(&done.metadata).unwrap(), metadata);
}

#[test]
fn metadata_is_never_overwritten() {
    let t = S3Tenant::new();
    let location = coordinator(&t, None).initialize_location_for_checkpoint(1).unwrap();
    // Two writers race for the same checkpoint: the first to finalize wins.
    let first = location.create_metadata_output_stream().unwrap();
    let second = location.create_metadata_output_stream().unwrap();
    first.write(b"first").unwrap();
    second.write(b"second").unwrap();
    let done = first.close_and_finalize_checkpoint().unwrap();
    assert_eq!(code(second.close_and_finalize_checkpoint()), ErrorCode::AlreadyExists);
    assert_eq!(t.tenant.read_state(&done.metadata).unwrap(), b"first");
    assert_eq!(code(location.create_metadata_output_stream()), ErrorCode::AlreadyExists);
    // Only `_metadata` is left: both temporary objects are gone.
    assert_eq!(t.object_keys(), vec![t.key_of(done.metadata.file_path().unwrap())]);
}

#[test]
fn a_dropped_metadata_stream_leaves_nothing() {
    let t = S3Tenant::new();
    let location = coordinator(&t, None).initialize_location_for_checkpoint(1).unwrap();
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&bytes(10_000, 1)).unwrap();
    drop(stream);
    assert!(t.object_keys().is_empty());
    let resolved = coordinator(&t, None).resolve_checkpoint(&location.checkpoint_directory().unwrap());
    assert_eq!(code(resolved), ErrorCode::NotFound);
}

#[test]
fn savepoint_references_carry_s3_paths() {
    let t = S3Tenant::new();
    let target = format!("s3://{BUCKET}/savepoints");
    let c = coordinator(&t, Some(&target));
    assert!(c.has_default_savepoint_location().unwrap());
    let location = c.initialize_location_for_savepoint(3, None).unwrap();
    let dir = location.checkpoint_directory().unwrap();
    let name = dir.strip_prefix(&format!("{target}/")).expect("below the target");
    assert!(name.starts_with(&format!("savepoint-{}-", &t.job[..6])), "{name}");
    let reference = location.location_reference().unwrap();
    assert_eq!(reference, LocationReference::encode_path(&dir));

    // A task resolves the reference and writes into the savepoint.
    let factory = t.view().resolve_checkpoint_storage_location(3, &reference).unwrap();
    let handle = factory
        .write_state(StateScope::Exclusive, &bytes(40_000, 3))
        .unwrap()
        .unwrap();
    assert!(handle.file_path().unwrap().starts_with(&format!("{dir}/")));
    assert_eq!(t.tenant.read_state(&handle).unwrap(), bytes(40_000, 3));
}

#[test]
fn dispose_on_failure_deletes_the_checkpoint_but_not_shared_state() {
    let t = S3Tenant::new();
    let location = coordinator(&t, None).initialize_location_for_checkpoint(4).unwrap();
    let factory = t.default_factory(4);
    let exclusive = factory
        .write_state(StateScope::Exclusive, &bytes(30_000, 1))
        .unwrap()
        .unwrap();
    let shared = factory
        .write_state(StateScope::Shared, &bytes(30_000, 2))
        .unwrap()
        .unwrap();
    location.dispose_on_failure().unwrap();
    assert_eq!(t.object_keys(), vec![t.key_of(shared.file_path().unwrap())]);
    assert_eq!(code(t.tenant.read_state(&exclusive)), ErrorCode::NotFound);
    // Disposing a location with nothing in it is fine too.
    location.dispose_on_failure().unwrap();
}

#[test]
fn a_missing_checkpoint_is_not_found() {
    let t = S3Tenant::new();
    let c = coordinator(&t, None);
    let pointer = format!("s3://{BUCKET}/checkpoints/{}/chk-99", t.job);
    assert_eq!(code(c.resolve_checkpoint(&pointer)), ErrorCode::NotFound);
}
