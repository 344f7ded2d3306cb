//! The worker view on object storage, against a real S3 server on loopback:
//! the write, close, restore, discard cycle, inline state, multipart state,
//! and streams that never become objects.

use checkpoint_storage_tests::*;

#[test]
fn state_round_trips_through_an_object() {
    let t = S3Tenant::new();
    let factory = t.default_factory(1);
    // No directories on object storage: resolving created nothing.
    assert!(t.object_keys().is_empty());
    let data = bytes(100_000, 1);
    let handle = write_state(
        factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap(),
        &data,
    )
    .expect("a handle");
    let StateHandle::RelativeFile(h) = &handle else {
        panic!("expected a relative file handle, got {handle:?}")
    };
    assert_eq!(h.size, data.len() as u64);
    let dir = format!("s3://{BUCKET}/checkpoints/{}/chk-1", t.job);
    assert_eq!(h.path, format!("{dir}/{}", h.relative_path));
    assert_eq!(factory.checkpoint_directory().unwrap(), dir);
    assert_eq!(t.object_keys(), vec![t.key_of(&h.path)]);
    assert_eq!(t.object_bytes(&h.path), data);
    assert_eq!(t.tenant.read_state(&handle).unwrap(), data);

    t.tenant.discard_state(&handle).unwrap();
    assert!(t.object_keys().is_empty());
    // Discarding again is a no-op, as for a missing file.
    t.tenant.discard_state(&handle).unwrap();
}

#[test]
fn small_state_stays_inline_and_makes_no_object() {
    let t = S3Tenant::new();
    let factory = t.default_factory(2);
    let handle = factory.write_state(StateScope::Shared, b"tiny").unwrap().unwrap();
    let StateHandle::ByteStream(b) = &handle else {
        panic!("expected inline state, got {handle:?}")
    };
    assert_eq!(b.data, b"tiny");
    assert!(
        b.name
            .starts_with(&format!("s3://{BUCKET}/checkpoints/{}/shared/", t.job))
    );
    assert!(t.object_keys().is_empty());
}

#[test]
fn shared_state_goes_to_the_shared_prefix() {
    let t = S3Tenant::new();
    let data = bytes(30_000, 2);
    let handle = t
        .default_factory(3)
        .write_state(StateScope::Shared, &data)
        .unwrap()
        .unwrap();
    let StateHandle::File(f) = &handle else {
        panic!("expected a file handle, got {handle:?}")
    };
    assert!(
        f.path
            .starts_with(&format!("s3://{BUCKET}/checkpoints/{}/shared/", t.job))
    );
    assert_eq!(t.object_bytes(&f.path), data);
}

#[test]
fn seek_reads_ranges() {
    let t = S3Tenant::new();
    let data = bytes(1 << 20, 3);
    let handle = t
        .default_factory(4)
        .write_state(StateScope::Exclusive, &data)
        .unwrap()
        .unwrap();
    let input = t.tenant.open_input_stream(&handle).unwrap();
    assert_eq!(input.size().unwrap(), data.len() as u64);
    input.seek(700_000).unwrap();
    assert_eq!(input.read(10).unwrap(), &data[700_000..700_010]);
    input.seek(5).unwrap();
    assert_eq!(input.read(3).unwrap(), &data[5..8]);
    input.seek(data.len() as u64).unwrap();
    assert!(input.read(10).unwrap().is_empty());
    assert_eq!(code(input.seek(data.len() as u64 + 1)), ErrorCode::InvalidArgument);
}

#[test]
fn multipart_state_of_64_mib_round_trips() {
    let t = S3Tenant::new();
    let mut stream = t
        .default_factory(5)
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    let chunk = bytes(1 << 20, 5);
    for _ in 0..64 {
        stream.write(&chunk).unwrap();
    }
    let handle = stream.close_and_get_handle().unwrap().unwrap();
    assert_eq!(handle.state_size(), 64 << 20);
    let back = t.tenant.read_state(&handle).unwrap();
    assert_eq!(back.len(), 64 << 20);
    assert!(back.chunks(1 << 20).all(|c| c == chunk.as_slice()));
}

#[test]
fn a_dropped_stream_leaves_no_object() {
    let t = S3Tenant::new();
    let mut stream = t
        .default_factory(6)
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    // Past the threshold and past one part: an upload is in progress.
    stream.write(&bytes(6 << 20, 6)).unwrap();
    drop(stream);
    assert!(t.object_keys().is_empty());
    assert_eq!(t.tenant.open_streams(), 0);
}

#[test]
fn file_merging_is_refused_as_unsupported() {
    let t = S3Tenant::new();
    let config = t.config();
    let err = t
        .tenant
        .open_file_merging_manager(&config, "tm-1", &FileMergingOptions::enabled())
        .expect_err("the object store build has no file merging");
    assert_eq!(err.code(), Some(ErrorCode::Unsupported), "{err}");
    assert!(err.to_string().contains("file merging"), "{err}");
    // The tenant is not harmed: plain streams still work.
    let handle = t
        .default_factory(7)
        .write_state(StateScope::Shared, &bytes(30_000, 7))
        .unwrap()
        .unwrap();
    assert_eq!(t.tenant.read_state(&handle).unwrap(), bytes(30_000, 7));
}

#[test]
fn the_tenants_limits_hold_for_object_storage_too() {
    let t = S3Tenant::with(|c| c.with_max_open_streams(2).with_max_bytes_written(Some(8 << 20)));
    let factory = t.default_factory(8);
    let mut a = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    let mut b = factory
        .create_checkpoint_state_output_stream(StateScope::Shared)
        .unwrap();
    let Err(Error::Limit(e)) = factory.create_checkpoint_state_output_stream(StateScope::Exclusive) else {
        panic!("a third stream must be refused")
    };
    assert_eq!(e, LimitExceeded::OpenStreams { limit: 2 });
    // 6 MiB spills into a multipart upload; 3 MiB more would cross 8 MiB.
    a.write(&bytes(6 << 20, 1)).unwrap();
    let Err(Error::Limit(e)) = b.write(&bytes(3 << 20, 2)) else {
        panic!("the write crossing max_bytes_written must be refused")
    };
    assert!(
        matches!(e, LimitExceeded::BytesWritten { limit, .. } if limit == 8 << 20),
        "{e}"
    );
    let handle = a.close_and_get_handle().unwrap().unwrap();
    assert_eq!(t.tenant.read_state(&handle).unwrap(), bytes(6 << 20, 1));
    drop(b);
    // Only the completed object exists; the refused stream left nothing.
    assert_eq!(t.object_keys(), vec![t.key_of(handle.file_path().unwrap())]);
    assert!(!t.tenant.is_poisoned());
}

/// Duplicating from a container in one store into a container in another
/// goes part by part (no server-side copy between stores): a state of
/// several parts arrives whole, and a small one too.
#[test]
fn a_duplicate_across_stores_arrives_whole() {
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    let (a, b): (std::sync::Arc<dyn ObjectStore>, std::sync::Arc<dyn ObjectStore>) = (
        std::sync::Arc::new(InMemory::new()),
        std::sync::Arc::new(InMemory::new()),
    );
    let tenant = blob_plugin()
        .tenant(TenantConfig::object_store(vec![
            BlobGrant::new("a", a, "x"),
            BlobGrant::new("b", b.clone(), "y"),
        ]))
        .unwrap();
    let job = job_id();
    let factory = |container: &str| {
        let config = StorageConfig {
            checkpoints_dir: Some(format!("s3://{container}/checkpoints")),
            ..StorageConfig::filesystem(&job)
        };
        tenant
            .open_worker_view(&config)
            .unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap()
    };
    let big = bytes(2 * checkpoint_storage_host::blobstore::PART_SIZE + 12_345, 7);
    let small = bytes(40_000, 8);
    let handles = [&big, &small].map(|data| factory("a").write_state(StateScope::Shared, data).unwrap().unwrap());
    let copies = factory("b").duplicate(&handles, StateScope::Shared).unwrap();
    for (copy, data) in copies.iter().zip([&big, &small]) {
        assert!(copy.file_path().unwrap().starts_with("s3://b/"), "{copy:?}");
        assert_eq!(&tenant.read_state(copy).unwrap(), data);
    }
    let keys: Vec<String> = futures::executor::block_on(futures::TryStreamExt::try_collect::<Vec<_>>(b.list(None)))
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("y/checkpoints/")), "{keys:?}");
    assert!(!tenant.is_poisoned());
}
