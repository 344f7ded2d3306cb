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
