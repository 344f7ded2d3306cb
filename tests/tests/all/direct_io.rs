//! Large writes and reads that skip guest memory: once a stream has its
//! file, the host writes the caller's bytes into a descriptor the guest
//! opened on that file, and restores read large state from one. Same bytes,
//! same handles, same positions and the same failures as through the
//! component; the host never writes or reads a file by a path of its own.

use checkpoint_storage_tests::*;

fn factory(t: &TestTenant) -> StreamFactory {
    t.init_job_dirs(&[1]);
    t.default_factory(1)
}

fn chk1(t: &TestTenant) -> Vec<String> {
    files_in(&t.host(&format!("{}/chk-1", t.job)))
}

#[test]
fn large_and_mixed_writes_end_in_one_exact_file_at_exact_positions() {
    let t = TestTenant::new();
    let f = factory(&t);
    let data = bytes(5 << 20, 11);
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    let mut at = 0;
    // Large chunks, then small ones (batched, then written directly), a
    // flush, odd sizes, and large ones again.
    for size in [1 << 20, 64 << 10, 100, 3, 4096, 70_000, 1, 1 << 20, 65_535]
        .iter()
        .cycle()
    {
        if at == data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        s.write(&data[at..end]).unwrap();
        at = end;
        assert_eq!(s.get_pos().unwrap(), at as u64);
        if at % 7 == 0 {
            s.flush().unwrap();
        }
    }
    s.sync().unwrap();
    let files = chk1(&t);
    assert_eq!(files.len(), 1);
    let on_disk = std::fs::read(t.host(&format!("{}/chk-1/{}", t.job, files[0]))).unwrap();
    assert_eq!(on_disk, data, "after sync every byte is in the file");
    let h = s.close_and_get_handle().unwrap().unwrap();
    assert_eq!(h.state_size(), data.len() as u64);
    assert_eq!(t.read_handle(&h).unwrap(), data);
    assert_eq!(t.tenant.read_state(&h).unwrap(), data);
}

#[test]
fn a_dropped_stream_written_directly_leaves_no_file() {
    let t = TestTenant::new();
    let f = factory(&t);
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    s.write(&bytes(3 << 20, 1)).unwrap();
    assert_eq!(chk1(&t).len(), 1);
    drop(s);
    assert!(chk1(&t).is_empty());
}

#[test]
fn a_trap_removes_a_directly_written_file_and_the_stream_answers_poisoned() {
    let (t, tenant, f) = adjusted_tenant(|c| c.with_max_memory_bytes(8 << 20));
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    s.write(&bytes(2 << 20, 1)).unwrap();
    assert_eq!(chk1(&t).len(), 1);
    trap_by_memory(&tenant, &t.job);
    assert!(chk1(&t).is_empty(), "the open stream's file was removed");
    assert!(matches!(s.write(&bytes(2 << 20, 1)), Err(Error::Poisoned)));
    assert!(matches!(s.get_pos(), Err(Error::Poisoned)));
    assert!(chk1(&t).is_empty(), "nothing was written after the trap");
}

#[test]
fn the_byte_limit_refuses_a_direct_write_that_crosses_it() {
    let (_dir, tenant, f) = adjusted_tenant(|c| c.with_max_bytes_written(Some(3 << 20)));
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    let chunk = bytes(1 << 20, 2);
    for _ in 0..3 {
        s.write(&chunk).unwrap();
    }
    assert!(matches!(
        s.write(&chunk),
        Err(Error::Limit(LimitExceeded::BytesWritten { requested, .. })) if requested == 1 << 20
    ));
    assert_eq!(s.get_pos().unwrap(), 3 << 20);
    let h = s.close_and_get_handle().unwrap().unwrap();
    assert_eq!(tenant.read_state(&h).unwrap(), chunk.repeat(3));
}

#[test]
fn the_memory_backend_refuses_the_large_write_that_crosses_its_maximum() {
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job).with_max_memory_state_size(3 << 20));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    for _ in 0..3 {
        s.write(&bytes(1 << 20, 3)).unwrap();
    }
    assert_eq!(code(s.write(&bytes(1 << 20, 3))), ErrorCode::StateTooLarge);
    assert!(all_files(t.tenant.dir()).is_empty());
}

#[test]
fn a_stream_whose_file_was_replaced_is_never_written_by_path() {
    // The guest hands over a descriptor only after checking that its path
    // still names the very file it created; here it does not, so nothing is
    // handed over, the bytes go to the guest's own file, and close refuses
    // a handle (the path no longer names the bytes written).
    let t = TestTenant::new();
    let f = factory(&t);
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    s.write(&bytes(30_000, 1)).unwrap(); // past the buffer: the file exists
    let name = chk1(&t).remove(0);
    let path = t.host(&format!("{}/chk-1/{name}", t.job));
    std::fs::rename(&path, t.host(&format!("{}/moved", t.job))).unwrap();
    std::fs::write(&path, b"impostor").unwrap();
    s.write(&bytes(2 << 20, 2)).unwrap();
    assert_eq!(code(s.close_and_get_handle()), ErrorCode::NotFound);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"impostor",
        "the file at the path was never written"
    );
}

#[test]
fn a_merging_stream_takes_the_copying_path_and_restores_exactly() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let m = t
        .tenant
        .open_file_merging_manager(
            &StorageConfig::filesystem(&t.job),
            "tm-1",
            &FileMergingOptions::enabled(),
        )
        .unwrap();
    let subtask = SubtaskKey::new("a3f1c2d4e5f60718293a4b5c6d7e8f90", 0, 1);
    m.register_subtask(&subtask).unwrap();
    let f = m
        .resolve_checkpoint_storage_location(&subtask, 1, &LocationReference::Default)
        .unwrap();
    let mut handles = Vec::new();
    for seed in 0..2 {
        let mut s = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
        let data = bytes(3 << 20, seed);
        for c in data.chunks(1 << 20) {
            s.write(c).unwrap();
        }
        let h = s.close_and_get_handle().unwrap().unwrap();
        assert!(matches!(h, StateHandle::Segment(_)), "{h}");
        handles.push((h, data));
    }
    for (h, data) in &handles {
        // A segment is read directly too, from its offset in the file.
        let input = t.tenant.open_input_stream(h).unwrap();
        assert_eq!(input.size().unwrap(), data.len() as u64);
        let mut back = Vec::new();
        loop {
            let piece = input.read(1 << 20).unwrap();
            if piece.is_empty() {
                break;
            }
            back.extend(piece);
        }
        assert_eq!(&back, data);
    }
}

#[test]
fn large_reads_seek_and_position_as_the_component_does() {
    let t = TestTenant::new();
    let f = factory(&t);
    let data = bytes(3 << 20, 5);
    let h = f.write_state(StateScope::Shared, &data).unwrap().unwrap();
    let input = t.tenant.open_input_stream(&h).unwrap();
    assert_eq!(
        input.read(10).unwrap(),
        &data[..10],
        "a small read through the component"
    );
    assert_eq!(input.read(1 << 20).unwrap(), &data[10..(1 << 20) + 10]);
    assert_eq!(input.get_pos().unwrap(), (1 << 20) + 10);
    assert_eq!(input.size().unwrap(), data.len() as u64);
    input.seek(100).unwrap();
    assert_eq!(input.read(64 << 10).unwrap(), &data[100..100 + (64 << 10)]);
    let e = storage_error(input.seek(data.len() as u64 + 1));
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("position out of bounds"), "{}", e.message);
    assert_eq!(
        input.get_pos().unwrap(),
        100 + (64 << 10),
        "a refused seek moves nothing"
    );
    input.seek(data.len() as u64 - 5).unwrap();
    assert_eq!(input.read(1 << 20).unwrap(), &data[data.len() - 5..]);
    assert!(input.read(1 << 20).unwrap().is_empty(), "empty at the end");
    input.seek(0).unwrap();
    assert_eq!(input.read_to_end().unwrap(), data);
}

#[test]
fn a_state_file_replaced_after_open_is_still_read_from_the_opened_file() {
    // The guest hands over a descriptor only if its path still names the
    // file the stream opened: the bytes read are that file's, never those
    // of whatever the path names now.
    let t = TestTenant::new();
    let f = factory(&t);
    let data = bytes(2 << 20, 6);
    let h = f.write_state(StateScope::Shared, &data).unwrap().unwrap();
    let input = t.tenant.open_input_stream(&h).unwrap();
    let path = t.tenant.host_path(h.file_path().unwrap()).unwrap();
    std::fs::rename(&path, t.host(&format!("{}/kept", t.job))).unwrap();
    std::fs::write(&path, bytes(2 << 20, 7)).unwrap();
    assert_eq!(input.read_to_end().unwrap(), data);
}

#[test]
fn read_state_of_a_large_state_is_bounded_as_before() {
    let (_dir, tenant, f) = adjusted_tenant(|c| c.with_max_read_state_bytes(1 << 20));
    let h = f.write_state(StateScope::Shared, &bytes(2 << 20, 1)).unwrap().unwrap();
    assert!(matches!(
        tenant.read_state(&h),
        Err(Error::Limit(LimitExceeded::StateTooLarge { size, .. })) if size == 2 << 20
    ));
}

#[test]
fn read_into_and_io_read_give_the_states_bytes() {
    use std::io::Read;
    let t = TestTenant::new();
    let f = factory(&t);
    let data = bytes(3 << 20, 8);
    let h = f.write_state(StateScope::Exclusive, &data).unwrap().unwrap();
    let input = t.tenant.open_input_stream(&h).unwrap();
    let mut small = [0u8; 100];
    assert_eq!(
        input.read_into(&mut small).unwrap(),
        100,
        "a small read through the component"
    );
    assert_eq!(&small[..], &data[..100]);
    let mut big = vec![0u8; 2 << 20];
    let n = input.read_into(&mut big).unwrap();
    assert_eq!(n, 1 << 20, "at most MAX_BYTES_PER_CALL per call");
    assert_eq!(&big[..n], &data[100..100 + n]);
    let mut rest = Vec::new();
    Read::read_to_end(&mut &input, &mut rest).unwrap();
    assert_eq!(rest, &data[100 + n..]);
    assert_eq!(input.read_into(&mut big).unwrap(), 0, "0 at the end");
    // Inline state reads the same way.
    let inline = f.write_state(StateScope::Exclusive, b"tiny").unwrap().unwrap();
    let mut back = String::new();
    (&t.tenant.open_input_stream(&inline).unwrap())
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(back, "tiny");
}
