//! Host-side batching (what `StateOutputStream::write` does by itself, and
//! the `BufferedStateOutputStream` wrapper) changes how often the guest is
//! called, never the result: same bytes, same inline-or-file decision, same
//! position, and the same write fails as unbatched.

use checkpoint_storage_tests::*;
use std::io::Write;

fn stream(t: &TestTenant) -> (WorkerView, StreamFactory, StateOutputStream) {
    let view = t.view();
    let factory = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let s = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    (view, factory, s)
}

#[test]
fn small_batched_writes_stay_inline() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, _f, s) = stream(&t);
    let mut b = BufferedStateOutputStream::with_capacity(1024, s);
    let data = bytes(20 * 1024, 3);
    for c in data.chunks(64) {
        b.append(c).unwrap();
    }
    assert_eq!(b.get_pos(), data.len() as u64);
    let handle = b.close_and_get_handle().unwrap().unwrap();
    assert!(matches!(handle, StateHandle::ByteStream(_)), "{handle}");
    assert_eq!(t.read_handle(&handle).unwrap(), data);
}

#[test]
fn mixed_writes_through_io_write_end_in_one_exact_file() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, _f, s) = stream(&t);
    let mut b = BufferedStateOutputStream::new(s);
    let data = bytes(300 * 1024, 9);
    let mut rest = &data[..];
    for size in [1usize, 100, 70_000, 4096, 64 * 1024, 3].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*size).min(rest.len());
        b.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
    }
    b.flush().unwrap();
    assert_eq!(b.get_pos(), data.len() as u64);
    assert_eq!(b.get_ref().get_pos().unwrap(), data.len() as u64);
    let handle = b.close_and_get_handle().unwrap().unwrap();
    assert!(handle.file_path().is_some(), "{handle}");
    assert_eq!(t.read_handle(&handle).unwrap(), data);
}

#[test]
fn dropping_a_batched_stream_discards_it() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, _f, s) = stream(&t);
    let mut b = BufferedStateOutputStream::new(s);
    b.append(&bytes(200 * 1024, 1)).unwrap();
    drop(b);
    assert!(files_in(&t.host(&format!("{}/chk-1", t.job))).is_empty());
}

fn factory_with(t: &TestTenant, config: StorageConfig) -> (WorkerView, StreamFactory) {
    let view = t.view_with(config);
    let factory = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    (view, factory)
}

#[test]
fn the_memory_backend_refuses_the_very_write_that_crosses_its_maximum() {
    let t = TestTenant::new();
    let (_v, f) = factory_with(&t, StorageConfig::memory(&t.job).with_max_memory_state_size(1000));
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    for i in 0..9u64 {
        s.write(&bytes(100, i as u8)).unwrap();
        assert_eq!(s.get_pos().unwrap(), (i + 1) * 100, "the position counts batched bytes");
    }
    s.write(&bytes(100, 9)).unwrap(); // exactly the maximum: still fine
    let e = storage_error(s.write(&[1]));
    assert_eq!(e.code, ErrorCode::StateTooLarge);
    assert!(e.message.contains("Size=1001"), "{}", e.message);
    assert_eq!(t.tenant.bytes_written(), 1000, "the refused byte is not counted");
    assert_eq!(code(s.write(b"x")), ErrorCode::Closed, "the failed stream is closed");
}

#[test]
fn the_stream_itself_is_an_io_write_and_its_errors_keep_their_code() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, _f, mut s) = stream(&t);
    let data = bytes(100_000, 6);
    // `io::Write` through a generic writer: the same bytes as `write`.
    std::io::copy(&mut &data[..30_000], &mut s).unwrap();
    write!(s, "{}", "x".repeat(10)).unwrap();
    std::io::Write::write_all(&mut s, &data[30_000..]).unwrap();
    std::io::Write::flush(&mut s).unwrap();
    let h = s.close_and_get_handle().unwrap().unwrap();
    let mut expected = data[..30_000].to_vec();
    expected.extend_from_slice(b"xxxxxxxxxx");
    expected.extend_from_slice(&data[30_000..]);
    assert_eq!(t.read_handle(&h).unwrap(), expected);

    // A refused write: an io::Error carrying the storage error and its code.
    let (_v, f) = factory_with(&t, StorageConfig::memory(&t.job).with_max_memory_state_size(100));
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    std::io::Write::write_all(&mut s, &bytes(100, 1)).unwrap();
    let e = std::io::Write::write_all(&mut s, b"!").unwrap_err();
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::Storage(storage)) => assert_eq!(storage.code, ErrorCode::StateTooLarge, "{storage:?}"),
        other => panic!("expected the storage error inside, got {other:?} ({e})"),
    }
}

#[test]
fn small_writes_within_the_memory_maximum_end_in_one_inline_handle() {
    let t = TestTenant::new();
    let (_v, f) = factory_with(&t, StorageConfig::memory(&t.job).with_max_memory_state_size(100_000));
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    let data = bytes(100_000, 4);
    for c in data.chunks(64) {
        s.write(c).unwrap();
    }
    let h = s.close_and_get_handle().unwrap().unwrap();
    assert!(matches!(&h, StateHandle::ByteStream(b) if b.data == data), "{h}");
    assert!(all_files(t.tenant.dir()).is_empty());
}

#[test]
fn flush_hands_the_batch_to_the_file_and_the_position_stays_exact() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, f, mut s) = stream(&t);
    let data = bytes(50_000, 5);
    s.write(&data[..30_000]).unwrap(); // past the buffer: the file exists
    let files = files_in(&t.host(&format!("{}/chk-1", t.job)));
    assert_eq!(files.len(), 1);
    let file = t.host(&format!("{}/chk-1/{}", t.job, files[0]));
    for c in data[30_000..].chunks(100) {
        s.write(c).unwrap();
    }
    assert_eq!(s.get_pos().unwrap(), 50_000);
    s.flush().unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), data, "flush wrote every batched byte");
    let h = s.close_and_get_handle().unwrap().unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), data);
    drop(f);
}

#[test]
fn dropping_a_stream_with_batched_bytes_discards_its_file() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, _f, mut s) = stream(&t);
    s.write(&bytes(30_000, 1)).unwrap();
    for _ in 0..10 {
        s.write(&bytes(100, 2)).unwrap();
    }
    assert_eq!(files_in(&t.host(&format!("{}/chk-1", t.job))).len(), 1);
    drop(s);
    assert!(files_in(&t.host(&format!("{}/chk-1", t.job))).is_empty());
}

#[test]
fn the_byte_limit_refuses_the_batched_write_that_crosses_it() {
    let (_dir, tenant, f) = adjusted_tenant(|c| c.with_max_bytes_written(Some(1000)));
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    for i in 0..10 {
        s.write(&bytes(100, i)).unwrap();
    }
    assert_eq!(tenant.bytes_written(), 1000, "batched bytes count when written");
    match s.write(&[1]) {
        Err(Error::Limit(LimitExceeded::BytesWritten {
            limit: 1000,
            written: 1000,
            requested: 1,
        })) => {}
        other => panic!("expected the byte limit, got {other:?}"),
    }
    let h = s.close_and_get_handle().unwrap().unwrap();
    assert_eq!(h.state_size(), 1000, "the refused write is not in the state");
}

#[test]
fn without_a_byte_limit_batched_bytes_count_when_their_batch_leaves_the_host() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let (_v, _f, mut s) = stream(&t);
    for _ in 0..10 {
        s.write(&bytes(100, 1)).unwrap();
    }
    assert_eq!(t.tenant.bytes_written(), 0, "held back in the stream's batch");
    assert_eq!(s.get_pos().unwrap(), 1000, "the position counts them");
    s.flush().unwrap();
    assert_eq!(t.tenant.bytes_written(), 1000, "counted when handed over");
    s.write(&bytes(50, 2)).unwrap();
    drop(s);
    assert_eq!(t.tenant.bytes_written(), 1050, "a dropped batch was accepted too");

    // A write of at least the batch size is not held back: counted at once.
    let (_v, _f, mut s) = stream(&t);
    s.write(&bytes(DEFAULT_BATCH_SIZE, 3)).unwrap();
    assert_eq!(t.tenant.bytes_written(), 1050 + DEFAULT_BATCH_SIZE as u64);
    let h = s.close_and_get_handle().unwrap().unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), bytes(DEFAULT_BATCH_SIZE, 3));
}

#[test]
fn a_missing_directory_fails_the_write_that_needs_the_file() {
    // The stream's file is created when the state outgrows the guest's
    // buffer: the host hands that very write to the guest, batch or not.
    let t = TestTenant::new();
    let f = t.default_factory(3);
    let mut s = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    for _ in 0..204 {
        s.write(&bytes(100, 1)).unwrap(); // 20,400 bytes: within the buffer
    }
    assert_eq!(code(s.write(&bytes(100, 1))), ErrorCode::NotFound);
    assert_eq!(t.tenant.bytes_written(), 20_400, "the refused write is not counted");
    assert_eq!(code(s.write(b"x")), ErrorCode::Closed);
}

#[test]
fn a_trapped_tenant_refuses_small_writes_too() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = plugin()
        .tenant(TenantConfig::new(dir.path()).with_max_memory_bytes(8 << 20))
        .unwrap();
    let job = job_id();
    let view = tenant
        .open_worker_view(&StorageConfig::memory(&job).with_max_memory_state_size(64 << 20))
        .unwrap();
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let mut small = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    small.write(b"batched").unwrap();
    let mut greedy = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    let chunk = bytes(1 << 20, 3);
    let trapped = (0..16).map(|_| greedy.write(&chunk)).find(|r| r.is_err());
    assert!(
        matches!(trapped, Some(Err(Error::Limit(LimitExceeded::Memory { .. })))),
        "{trapped:?}"
    );
    assert!(matches!(small.write(b"more"), Err(Error::Poisoned)));
    assert!(matches!(small.close_and_get_handle(), Err(Error::Poisoned)));
}

/// A stream in direct mode holding a batch: after a trap, flush, sync and
/// close are refused before the host writes the batch into the (removed)
/// file: the batch is not handed over (an unlimited tenant counts batched
/// bytes at hand-over; a dropped batch counts at the drop).
#[test]
fn after_a_trap_a_held_batch_is_not_written() {
    let (t, tenant, factory) = adjusted_tenant(|c| c.with_max_memory_bytes(8 << 20));
    let mut stream = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    stream.write(&bytes(1 << 20, 1)).unwrap();
    stream.write(b"held in the batch").unwrap();
    trap_by_memory(&tenant, &t.job);
    let counted = tenant.bytes_written();
    assert!(matches!(stream.flush(), Err(Error::Poisoned)));
    assert!(matches!(stream.sync(), Err(Error::Poisoned)));
    assert_eq!(tenant.bytes_written(), counted, "the batch was never sent");
    assert!(matches!(stream.close_and_get_handle(), Err(Error::Poisoned)));
}
