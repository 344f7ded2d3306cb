//! The host-side batching writer changes how often the guest is called,
//! never the result: same bytes, same inline-or-file decision, same position.

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
