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

/// A savepoint directory given as an `s3://` path is listed like the
/// default one (the path is translated like every other path argument).
#[test]
fn savepoints_are_listed_by_their_s3_directory() {
    let t = S3Tenant::new();
    let target = format!("s3://{BUCKET}/savepoints");
    let c = coordinator(&t, Some(&target));
    assert!(c.list_savepoints(Some(&target)).unwrap().is_empty());
    let location = c.initialize_location_for_savepoint(3, None).unwrap();
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&bytes(100, 4)).unwrap();
    let done = stream.close_and_finalize_checkpoint().unwrap();
    assert!(done.external_pointer.starts_with(&format!("{target}/")));
    assert_eq!(c.list_savepoints(Some(&target)).unwrap(), vec![done.clone()]);
    assert_eq!(c.list_savepoints(None).unwrap(), vec![done]);
    let elsewhere = format!("s3://{BUCKET}/elsewhere");
    assert!(c.list_savepoints(Some(&elsewhere)).unwrap().is_empty());
}

#[test]
fn dispose_on_failure_deletes_the_checkpoint_but_not_shared_state() {
    let t = S3Tenant::new();
    let location = coordinator(&t, None).initialize_location_for_checkpoint(4).unwrap();
    let factory = t.default_factory(4);
    let (exclusive, shared) = exclusive_and_shared_files(&factory);
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

/// `s3://flink/<6 letters or digits>/checkpoints/<job>/<sub>/<uuid>`.
fn assert_entropy_key(t: &S3Tenant, path: &str, sub: &str) -> String {
    let rest = path
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("{path}"));
    let (entropy, rest) = rest.split_once('/').unwrap();
    assert_eq!(entropy.len(), 6, "{path}");
    assert!(entropy.bytes().all(|b| b.is_ascii_alphanumeric()), "{path}");
    assert_ne!(entropy, "_entropy_", "{path}");
    let name = rest
        .strip_prefix(&format!("checkpoints/{}/{sub}/", t.job))
        .unwrap_or_else(|| panic!("{path} is not below checkpoints/<job>/{sub}"));
    assert_eq!(name.len(), 36, "{path}");
    entropy.to_string()
}

/// The tenant's configuration with the marker `_entropy_` (6 characters).
fn entropy_config(t: &S3Tenant) -> StorageConfig {
    StorageConfig {
        checkpoints_dir: Some(format!("s3://{BUCKET}/_entropy_/checkpoints")),
        ..StorageConfig::filesystem(&t.job)
    }
    .with_s3_entropy("_entropy_", Some(6))
}

#[test]
fn entropy_spreads_state_keys_and_keeps_metadata_findable() {
    let t = S3Tenant::new();
    let config = entropy_config(&t);
    let c = t.tenant.open_coordinator_view(&config, None).unwrap();
    let location = c.initialize_location_for_checkpoint(3).unwrap();
    let marked = format!("s3://{BUCKET}/_entropy_/checkpoints/{}/chk-3", t.job);
    let plain = format!("s3://{BUCKET}/checkpoints/{}/chk-3", t.job);
    assert_eq!(location.checkpoint_directory().unwrap(), marked);
    assert_eq!(location.metadata_file_path().unwrap(), format!("{plain}/_metadata"));

    let factory = t
        .tenant
        .open_worker_view(&config)
        .unwrap()
        .resolve_checkpoint_storage_location(3, &LocationReference::Default)
        .unwrap();
    let (a, b, shared) = (bytes(40_000, 1), bytes(40_000, 2), bytes(30_000, 3));
    let ha = factory.write_state(StateScope::Exclusive, &a).unwrap().unwrap();
    let hb = factory.write_state(StateScope::Exclusive, &b).unwrap().unwrap();
    let hs = factory.write_state(StateScope::Shared, &shared).unwrap().unwrap();
    // Exclusive state with entropy gets absolute handles, as in Flink.
    for h in [&ha, &hb, &hs] {
        assert!(matches!(h, StateHandle::File(_)), "{h:?}");
    }
    let ea = assert_entropy_key(&t, ha.file_path().unwrap(), "chk-3");
    let eb = assert_entropy_key(&t, hb.file_path().unwrap(), "chk-3");
    assert_ne!(ea, eb, "each object draws its own characters");
    assert_entropy_key(&t, hs.file_path().unwrap(), "shared");
    for (h, data) in [(&ha, &a), (&hb, &b), (&hs, &shared)] {
        assert_eq!(&t.object_bytes(h.file_path().unwrap()), data);
        assert_eq!(&t.tenant.read_state(h).unwrap(), data);
    }
    // Duplicating into the exclusive scope injects fresh entropy too.
    let dup = factory
        .duplicate(std::slice::from_ref(&hs), StateScope::Exclusive)
        .unwrap();
    assert_entropy_key(&t, dup[0].file_path().unwrap(), "chk-3");
    assert_eq!(t.tenant.read_state(&dup[0]).unwrap(), shared);

    // `_metadata` has no marker and no entropy: found from the pointer alone.
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(b"metadata").unwrap();
    let done = stream.close_and_finalize_checkpoint().unwrap();
    assert_eq!(done.external_pointer, plain);
    assert_eq!(done.metadata.file_path(), Some(format!("{plain}/_metadata").as_str()));
    assert!(t.object_keys().contains(&t.key_of(&format!("{plain}/_metadata"))));
    let resolved = c.resolve_checkpoint(&plain).unwrap();
    assert_eq!(t.tenant.read_state(&resolved.metadata).unwrap(), b"metadata");
    assert!(
        !t.object_keys().iter().any(|k| k.contains("_entropy_")),
        "{:?}",
        t.object_keys()
    );
}

#[test]
fn entropy_options_are_checked() {
    let t = S3Tenant::new();
    let with = |key: &str, length: Option<u32>| {
        StorageConfig {
            checkpoints_dir: Some(format!("s3://{BUCKET}/_e_/checkpoints")),
            ..StorageConfig::filesystem(&t.job)
        }
        .with_s3_entropy(key, length)
    };
    for (config, needle) in [
        (with("%2F", None), "s3.entropy.key"),
        (with("", None), "s3.entropy.key"),
        (with("a/b", None), "s3.entropy.key"),
        (with("_e_", Some(0)), "s3.entropy.length"),
        (with("_e_", Some(65)), "s3.entropy.length"),
    ] {
        let e = storage_error(t.tenant.open_worker_view(&config));
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{config:?}");
        assert!(e.message.contains(needle), "{}", e.message);
    }
    let mut length_only = with("_e_", Some(4));
    length_only.s3_entropy_key = None;
    let e = storage_error(t.tenant.open_coordinator_view(&length_only, None));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    // Nothing was written by the refused views.
    assert!(t.object_keys().is_empty());
}

/// Checkpoint `id` on object storage: one exclusive state, one new shared
/// state (seeded `id`) and the shared states in `reused`, and its manifest
/// as `_metadata`. Returns the completed checkpoint and its shared handles.
fn s3_checkpoint(
    t: &S3Tenant,
    id: u64,
    reused: &[checkpoint_storage_host::manifest::NamedState],
) -> (CompletedCheckpoint, Vec<checkpoint_storage_host::manifest::NamedState>) {
    s3_checkpoint_with(t, &t.config(), id, reused)
}

/// [`s3_checkpoint`] with a storage configuration of its own.
fn s3_checkpoint_with(
    t: &S3Tenant,
    config: &StorageConfig,
    id: u64,
    reused: &[checkpoint_storage_host::manifest::NamedState],
) -> (CompletedCheckpoint, Vec<checkpoint_storage_host::manifest::NamedState>) {
    use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
    let c = t.tenant.open_coordinator_view(config, None).unwrap();
    let location = c.initialize_location_for_checkpoint(id).unwrap();
    let factory = t
        .tenant
        .open_worker_view(config)
        .unwrap()
        .resolve_checkpoint_storage_location(id, &LocationReference::Default)
        .unwrap();
    let state = |name: String, scope, seed| NamedState {
        name,
        handle: factory.write_state(scope, &bytes(30_000, seed)).unwrap().unwrap(),
    };
    let shared = vec![state(format!("shared-{id}"), StateScope::Shared, id as u8)];
    let mut states = vec![state(format!("exclusive-{id}"), StateScope::Exclusive, 100 + id as u8)];
    states.extend(shared.iter().cloned());
    states.extend(reused.iter().cloned());
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: id,
        states,
    };
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&manifest.to_json()).unwrap();
    (stream.close_and_finalize_checkpoint().unwrap(), shared)
}

/// The completed-checkpoint store on object storage: subsumption deletes a
/// checkpoint's objects and the shared objects only it referenced, and a
/// restarted store recovers the retained checkpoint and its references.
#[test]
fn the_checkpoint_store_subsumes_and_recovers_on_object_storage() {
    use checkpoint_storage_host::checkpoint_store::CompletedCheckpointStore;
    let t = S3Tenant::new();
    let keys_below = |dir: &str| {
        let prefix = t.key_of(&format!("{dir}/"));
        t.object_keys().into_iter().filter(|k| k.starts_with(&prefix)).count()
    };
    let chk = |id: u64| format!("{}/{}/chk-{id}", t.checkpoints_dir(), t.job);
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &t.config(), None, 1).unwrap();
    assert!(store.checkpoint_ids().is_empty());

    let (one, shared_one) = s3_checkpoint(&t, 1, &[]);
    assert_eq!(one.external_pointer, chk(1));
    store.add(&one).unwrap();
    let (two, _) = s3_checkpoint(&t, 2, &shared_one);
    let outcome = store.add(&two).unwrap();
    assert_eq!(outcome.subsumed, vec![1]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(keys_below(&chk(1)), 0, "checkpoint 1's objects are gone");
    let shared_path = shared_one[0].handle.file_path().unwrap().to_string();
    assert_eq!(
        t.tenant.read_state(&shared_one[0].handle).unwrap(),
        bytes(30_000, 1),
        "still referenced by 2"
    );
    assert_eq!(store.registry().users(&shared_path), 1);

    // A restarted store finds checkpoint 2 and its reference to shared-1.
    drop(store);
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &t.config(), None, 1).unwrap();
    assert_eq!(store.checkpoint_ids(), vec![2]);
    assert_eq!(store.registry().users(&shared_path), 1);
    let (three, _) = s3_checkpoint(&t, 3, &[]);
    let outcome = store.add(&three).unwrap();
    assert_eq!(outcome.subsumed, vec![2]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(
        outcome.discarded_shared.iter().any(|f| f.path == shared_path),
        "{:?}",
        outcome.discarded_shared
    );
    assert!(
        !t.object_keys().contains(&t.key_of(&shared_path)),
        "its last user is gone"
    );
    assert_eq!(keys_below(&chk(2)), 0);
    assert!(keys_below(&chk(3)) >= 2, "checkpoint 3 keeps its state and _metadata");
}

/// The completed-checkpoint store with entropy injection: pointers and
/// `_metadata` are below the directory without the marker, state objects
/// below random characters. Subsumption deletes the `_metadata`, each
/// exclusive object by its handle and the shared objects nobody references;
/// a restarted store finds the retained checkpoint.
#[test]
fn the_checkpoint_store_subsumes_and_recovers_with_entropy_injection() {
    use checkpoint_storage_host::checkpoint_store::CompletedCheckpointStore;
    let t = S3Tenant::new();
    let config = entropy_config(&t);
    let objects_of = |id: u64| {
        let below = format!("/checkpoints/{}/chk-{id}/", t.job);
        t.object_keys().into_iter().filter(|k| k.contains(&below)).count()
    };
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    let (one, shared_one) = s3_checkpoint_with(&t, &config, 1, &[]);
    assert_eq!(
        one.external_pointer,
        format!("s3://{BUCKET}/checkpoints/{}/chk-1", t.job)
    );
    let shared_path = shared_one[0].handle.file_path().unwrap().to_string();
    assert_entropy_key(&t, &shared_path, "shared");
    store.add(&one).unwrap();
    assert_eq!(
        objects_of(1),
        2,
        "an exclusive object with entropy and _metadata without"
    );
    assert_eq!(store.registry().users(&shared_path), 1);

    let (two, _) = s3_checkpoint_with(&t, &config, 2, &shared_one);
    let outcome = store.add(&two).unwrap();
    assert_eq!(outcome.subsumed, vec![1]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(
        objects_of(1),
        0,
        "checkpoint 1's objects are gone: {:?}",
        t.object_keys()
    );
    assert_eq!(t.tenant.read_state(&shared_one[0].handle).unwrap(), bytes(30_000, 1));
    assert_eq!(store.registry().users(&shared_path), 1, "still referenced by 2");

    drop(store);
    let mut store = CompletedCheckpointStore::recover(&t.tenant, &config, None, 1).unwrap();
    assert_eq!(store.checkpoint_ids(), vec![2]);
    assert_eq!(store.registry().users(&shared_path), 1);
    let (three, _) = s3_checkpoint_with(&t, &config, 3, &[]);
    let outcome = store.add(&three).unwrap();
    assert_eq!(outcome.subsumed, vec![2]);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(
        !t.object_keys().contains(&t.key_of(&shared_path)),
        "its last user is gone"
    );
    assert_eq!(objects_of(2), 0);
    assert_eq!(objects_of(3), 2);
    assert!(!t.object_keys().iter().any(|k| k.contains("_entropy_")));
}
