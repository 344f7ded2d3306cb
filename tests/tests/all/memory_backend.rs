//! The memory backend (Flink's MemoryBackendCheckpointStorageAccess and
//! MemCheckpointStreamFactory): every state inline, bounded in size.

use checkpoint_storage_tests::*;

#[test]
fn all_state_is_inline_and_no_file_is_written() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    for scope in [StateScope::Exclusive, StateScope::Shared] {
        let h = write_state(
            f.create_checkpoint_state_output_stream(scope).unwrap(),
            &bytes(1024 * 1024, 1),
        )
        .unwrap();
        let StateHandle::ByteStream(b) = &h else { panic!("{h}") };
        assert_eq!(b.data, bytes(1024 * 1024, 1));
        assert_eq!(b.name.len(), 36, "a bare UUID, as Flink");
    }
    let h = write_state(view.create_task_owned_state_stream().unwrap(), b"wal").unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), b"wal");
    assert!(all_files(t.tenant.dir()).is_empty());
}

#[test]
fn max_state_size_is_inclusive_and_exceeding_it_says_what_to_do() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job).with_max_memory_state_size(10));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    assert!(
        write_state(
            f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
            &[1; 10]
        )
        .is_some()
    );
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    s.write(&[1; 6]).unwrap();
    let e = storage_error(s.write(&[1; 5]));
    assert_eq!(e.code, ErrorCode::StateTooLarge);
    assert!(e.message.contains("Size=11 , maxSize=10"), "{}", e.message);
    assert!(e.message.contains("File System State backend"), "{}", e.message);
    assert_eq!(code(s.close_and_get_handle()), ErrorCode::Closed);
}

#[test]
fn default_max_state_size_is_five_mib() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job));
    let mut s = view.create_task_owned_state_stream().unwrap();
    s.write(&vec![0; 5 * 1024 * 1024]).unwrap();
    assert_eq!(code(s.write(&[0])), ErrorCode::StateTooLarge);
}

#[test]
fn empty_stream_gives_no_handle_and_a_written_one_an_inline_handle() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job));
    let s = view.create_task_owned_state_stream().unwrap();
    assert_eq!(s.close_and_get_handle().unwrap(), None);
    let mut s = view.create_task_owned_state_stream().unwrap();
    s.write(b"abc").unwrap();
    assert_eq!(s.get_pos().unwrap(), 3);
    // A closed stream is consumed; the core's unit tests cover `closed`.
    let handle = s.close_and_get_handle().unwrap().unwrap();
    assert!(
        matches!(&handle, StateHandle::ByteStream(b) if b.data == b"abc"),
        "{handle:?}"
    );
}

// Without a checkpoints directory: Flink's `MemoryBackendCheckpointStorageAccess`
// with a null base directory (the default `JobManagerCheckpointStorage`).

fn no_dir(job: &str) -> StorageConfig {
    StorageConfig::memory(job).without_checkpoints_dir()
}

// Flink: MemoryCheckpointStorageAccessTest.testParametrizationDefault / testParametrizationDirectories.
#[test]
fn without_a_checkpoints_directory_storage_is_not_highly_available() {
    let t = TestTenant::new();
    let view = t.tenant.open_coordinator_view(&no_dir(&t.job), None).unwrap();
    assert!(!view.supports_highly_available_storage().unwrap());
    assert!(!view.has_default_savepoint_location().unwrap());
    let with_dirs = t
        .tenant
        .open_coordinator_view(&StorageConfig::memory(&t.job), Some("/checkpoints/sp"))
        .unwrap();
    assert!(with_dirs.supports_highly_available_storage().unwrap());
    assert!(with_dirs.has_default_savepoint_location().unwrap());
    let fs = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    assert!(fs.supports_highly_available_storage().unwrap());
}

// Flink: MemoryCheckpointStorageAccessTest.testNonPersistentCheckpointLocation
// and testLocationReference (no directories: the default reference).
#[test]
fn a_checkpoint_without_a_directory_keeps_its_metadata_inline_and_writes_nothing() {
    let t = TestTenant::new();
    let view = t.tenant.open_coordinator_view(&no_dir(&t.job), None).unwrap();
    view.initialize_base_locations_for_checkpoint().unwrap();
    let location = view.initialize_location_for_checkpoint(9).unwrap();
    assert_eq!(location.location_reference().unwrap(), LocationReference::Default);
    assert_eq!(
        view.initialize_location_for_checkpoint(42)
            .unwrap()
            .location_reference()
            .unwrap(),
        LocationReference::Default
    );
    for e in [
        storage_error(location.checkpoint_directory()),
        storage_error(location.metadata_file_path()),
    ] {
        assert_eq!(e.code, ErrorCode::Unsupported);
        assert!(e.message.contains("without a checkpoints directory"), "{}", e.message);
    }

    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(&[99]).unwrap();
    stream.write(b" and more").unwrap();
    assert_eq!(stream.get_pos().unwrap(), 10);
    stream.sync().unwrap();
    let completed = stream.close_and_finalize_checkpoint().unwrap();
    assert_eq!(completed.external_pointer, "<checkpoint-not-externally-addressable>");
    let StateHandle::ByteStream(metadata) = &completed.metadata else {
        panic!("{}", completed.metadata)
    };
    assert_eq!(metadata.data, b"c and more");
    assert_eq!(metadata.name.len(), 36, "a UUID, as Flink's handle name");
    assert_eq!(t.read_handle(&completed.metadata).unwrap(), b"c and more");

    // Nothing to find again, nothing to dispose of, nothing on disk.
    let e = storage_error(view.resolve_checkpoint(&completed.external_pointer));
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("kept in memory only"), "{}", e.message);
    location.dispose_on_failure().unwrap();
    assert!(view.list_completed_checkpoints().unwrap().is_empty());
    view.discard_completed_checkpoint(9).unwrap();
    assert!(all_files(t.tenant.dir()).is_empty());
    assert_eq!(
        std::fs::read_dir(t.tenant.dir()).unwrap().count(),
        0,
        "no directory either"
    );
}

#[test]
fn tasks_of_a_job_without_a_checkpoints_directory_inline_all_state() {
    let t = TestTenant::new();
    let view = t.view_with(no_dir(&t.job));
    for reference in [
        LocationReference::Default,
        LocationReference::encode_path("/checkpoints/sp"),
    ] {
        let f = view.resolve_checkpoint_storage_location(3, &reference).unwrap();
        let h = f.write_state(StateScope::Shared, &bytes(30_000, 4)).unwrap().unwrap();
        let StateHandle::ByteStream(b) = &h else { panic!("{h}") };
        assert_eq!(b.data, bytes(30_000, 4));
    }
    let h = write_state(view.create_task_owned_state_stream().unwrap(), b"log").unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), b"log");
    assert!(all_files(t.tenant.dir()).is_empty());
}

// Flink: savepoints of the memory backend go to their (persistent) target
// even without a checkpoints directory.
#[test]
fn a_savepoint_without_a_checkpoints_directory_is_written_to_its_target() {
    let t = TestTenant::new();
    let view = t.tenant.open_coordinator_view(&no_dir(&t.job), None).unwrap();
    let e = storage_error(view.initialize_location_for_savepoint(5, None));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let location = view
        .initialize_location_for_savepoint(5, Some("/checkpoints/savepoints"))
        .unwrap();
    assert_eq!(location.location_reference().unwrap(), LocationReference::Default);
    let stream = location.create_metadata_output_stream().unwrap();
    stream.write(b"savepoint").unwrap();
    let completed = stream.close_and_finalize_checkpoint().unwrap();
    assert!(
        completed
            .external_pointer
            .starts_with("/checkpoints/savepoints/savepoint-")
    );
    assert_eq!(t.read_handle(&completed.metadata).unwrap(), b"savepoint");
    let found = view.resolve_checkpoint(&completed.external_pointer).unwrap();
    assert_eq!(found, completed);
}

#[test]
fn the_filesystem_backend_needs_a_checkpoints_directory() {
    let t = TestTenant::new();
    let config = StorageConfig::filesystem(&t.job).without_checkpoints_dir();
    for e in [
        storage_error(t.tenant.open_worker_view(&config)),
        storage_error(t.tenant.open_coordinator_view(&config, None)),
    ] {
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("needs a checkpoints directory"), "{}", e.message);
    }
    assert!(all_files(t.tenant.dir()).is_empty());
}

/// A read-only tenant restores and never checkpoints, also where nothing
/// would be written (no checkpoints directory).
#[test]
fn a_read_only_tenant_does_not_checkpoint_even_without_a_directory() {
    let t = TestTenant::new();
    let reader = plugin().tenant(TenantConfig::new(t.tenant.dir()).read_only()).unwrap();
    let view = reader.open_coordinator_view(&no_dir(&t.job), None).unwrap();
    assert!(!view.supports_highly_available_storage().unwrap());
    for e in [
        storage_error(view.initialize_base_locations_for_checkpoint()),
        storage_error(view.initialize_location_for_checkpoint(1)),
        storage_error(view.discard_completed_checkpoint(1)),
    ] {
        assert_eq!(e.code, ErrorCode::PermissionDenied, "{}", e.message);
        assert!(e.message.contains("read-only"), "{}", e.message);
    }
    // The same configuration checkpoints in a tenant that may write.
    let writer = t.tenant.open_coordinator_view(&no_dir(&t.job), None).unwrap();
    assert!(writer.initialize_location_for_checkpoint(1).is_ok());
}

/// Without a checkpoints directory the metadata lives in the component's
/// memory: more than the tenant's memory cap ends that tenant (a limit, as
/// for the memory backend's state buffers), and no other.
#[test]
fn in_memory_metadata_counts_against_the_memory_cap() {
    let t = TestTenant::new();
    let bystander = TestTenant::new();
    let bystander_view = bystander
        .tenant
        .open_coordinator_view(&no_dir(&bystander.job), None)
        .unwrap();
    let cap = 8 << 20;
    let tenant = plugin()
        .tenant(TenantConfig::new(t.tenant.dir()).with_max_memory_bytes(cap))
        .unwrap();
    let view = tenant.open_coordinator_view(&no_dir(&t.job), None).unwrap();
    let stream = view
        .initialize_location_for_checkpoint(1)
        .unwrap()
        .create_metadata_output_stream()
        .unwrap();
    let chunk = bytes(1 << 20, 5);
    let e = (0..16)
        .find_map(|_| stream.write(&chunk).err())
        .expect("the cap is met");
    assert!(
        matches!(e, Error::Limit(LimitExceeded::Memory { limit, .. }) if limit == cap),
        "{e}"
    );
    assert!(tenant.is_poisoned());
    let other = bystander_view.initialize_location_for_checkpoint(1).unwrap();
    let s = other.create_metadata_output_stream().unwrap();
    s.write(b"fine").unwrap();
    assert_eq!(
        bystander
            .read_handle(&s.close_and_finalize_checkpoint().unwrap().metadata)
            .unwrap(),
        b"fine"
    );
}
