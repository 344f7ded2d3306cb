//! Native unit tests of the stream policy, the worker view's layout and the
//! toolset, over the in-memory sandbox (faults included).

use crate::access::{StateScope, WorkerView};
use crate::config::{Backend, StorageConfig};
use crate::error::ErrorCode;
use crate::handle::StateHandle;
use crate::output_stream::{CheckpointStateOutputStream, FsOutputStream, MemoryOutputStream};
use crate::paths::GuestPath;
use crate::reference::LocationReference;
use crate::sandbox::Sandbox;
use crate::test_support::MemSandbox;
use proptest::prelude::*;
use std::rc::Rc;

const JOB: &str = "0123456789abcdef0123456789abcdef";
const DIR: &str = "/checkpoints/d";

fn stream(s: &Rc<MemSandbox>, threshold: usize, buffer: usize, relative: bool) -> FsOutputStream<MemSandbox> {
    FsOutputStream::new(s.clone(), GuestPath::parse(DIR).unwrap(), threshold, buffer, relative)
}

fn config(backend: Backend) -> StorageConfig {
    StorageConfig {
        job_id: JOB.into(),
        checkpoints_dir: Some("/checkpoints".into()),
        create_subdir: None,
        backend,
        file_state_threshold: None,
        write_buffer_size: None,
        max_memory_state_size: None,
        s3_entropy_key: None,
        s3_entropy_length: None,
    }
}

fn file_of(h: &StateHandle) -> &str {
    h.file_path().expect("a file handle")
}

#[test]
fn empty_stream_gives_no_handle_and_no_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 512, 1024, true);
    st.write(&[]).unwrap();
    assert_eq!(st.close_and_get_handle().unwrap(), None);
    assert_eq!(
        st.close_and_get_handle().unwrap(),
        None,
        "asking again still gives none"
    );
    assert_eq!(st.write(b"x").unwrap_err().code, ErrorCode::Closed);
    assert!(s.files_in(DIR).is_empty());
}

#[test]
fn state_at_threshold_is_inline_one_over_is_a_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut at = stream(&s, 100, 100, true);
    at.write(&[7; 100]).unwrap();
    match at.close_and_get_handle().unwrap().unwrap() {
        StateHandle::ByteStream { name, data } => {
            assert_eq!(data, vec![7; 100]);
            assert!(
                name.starts_with("/checkpoints/d/") && name.len() == DIR.len() + 37,
                "{name}"
            );
        }
        other => panic!("expected inline, got {other:?}"),
    }
    assert!(s.files_in(DIR).is_empty());

    let mut over = stream(&s, 100, 100, true);
    over.write(&[7; 100]).unwrap();
    over.write(&[8]).unwrap();
    let h = over.close_and_get_handle().unwrap().unwrap();
    let StateHandle::RelativeFile {
        path,
        relative_path,
        size,
    } = &h
    else {
        panic!("{h:?}")
    };
    assert_eq!(*size, 101);
    assert_eq!(format!("{DIR}/{relative_path}"), *path);
    let mut expected = vec![7; 100];
    expected.push(8);
    assert_eq!(s.read(path).unwrap(), expected);
    assert!(
        s.faults.synced.borrow().contains(&GuestPath::parse(path).unwrap()),
        "file synced before the handle"
    );
}

#[test]
fn chunking_never_changes_the_result() {
    // One write of exactly the buffer size stays inline (Flink would spill it).
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 100, 100, false);
    st.write(&[1; 100]).unwrap();
    assert!(matches!(
        st.close_and_get_handle().unwrap(),
        Some(StateHandle::ByteStream { .. })
    ));
}

#[test]
fn below_threshold_in_big_buffer_then_above_threshold_goes_to_file_at_close() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 15, 1024, false);
    st.write(&[3; 896]).unwrap();
    assert!(s.files_in(DIR).is_empty(), "still buffered");
    let h = st.close_and_get_handle().unwrap().unwrap();
    assert!(matches!(&h, StateHandle::File { size: 896, .. }));
    assert_eq!(s.read(file_of(&h)).unwrap(), vec![3; 896]);
}

#[test]
fn large_write_creates_file_immediately_and_buffers_the_rest() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 100, 100, false);
    st.write(&[1; 150]).unwrap();
    let files = s.files_in(DIR);
    assert_eq!(files.len(), 1);
    assert_eq!(s.read(files[0].as_str()).unwrap().len(), 150);
    st.write(&[2; 99]).unwrap();
    assert_eq!(s.read(files[0].as_str()).unwrap().len(), 150, "small writes buffered");
    assert_eq!(st.pos(), 249);
}

#[test]
fn flush_keeps_small_state_in_memory() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 10, 4096, false);
    st.write(&[0; 10]).unwrap();
    st.flush().unwrap();
    assert!(s.files_in(DIR).is_empty());
    st.write(&[0]).unwrap();
    st.flush().unwrap();
    assert_eq!(s.files_in(DIR).len(), 1);
    st.sync().unwrap();
    assert_eq!(s.read(s.files_in(DIR)[0].as_str()).unwrap().len(), 11);
}

#[test]
fn get_pos_counts_every_byte() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 17, 31, false);
    for i in 0..64u64 {
        assert_eq!(st.pos(), i);
        st.write(&[i as u8]).unwrap();
    }
    let h = st.close_and_get_handle().unwrap().unwrap();
    assert_eq!(s.read(file_of(&h)).unwrap(), (0..64u8).collect::<Vec<_>>());
}

#[test]
fn dropped_stream_deletes_its_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 0, 4, false);
    st.write(&[1; 5]).unwrap();
    assert_eq!(s.files_in(DIR).len(), 1);
    drop(st);
    assert!(s.files_in(DIR).is_empty());
}

#[test]
fn closed_stream_refuses_everything() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 0, 4, false);
    st.write(&[1; 177]).unwrap();
    st.discard();
    assert!(s.files_in(DIR).is_empty());
    for e in [
        st.write(b"x").unwrap_err(),
        st.flush().unwrap_err(),
        st.sync().unwrap_err(),
    ] {
        assert_eq!(e.code, ErrorCode::Closed);
    }
    let e = st.close_and_get_handle().unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Closed, "Stream has already been closed and discarded.")
    );
}

#[test]
fn second_close_and_get_handle_fails_and_keeps_the_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 0, 4, false);
    st.write(&[1; 9]).unwrap();
    let h = st.close_and_get_handle().unwrap().unwrap();
    assert_eq!(st.close_and_get_handle().unwrap_err().code, ErrorCode::Closed);
    drop(st);
    assert_eq!(s.read(file_of(&h)).unwrap(), vec![1; 9]);
}

#[test]
fn missing_directory_is_not_found_naming_it() {
    let s = MemSandbox::with_dirs(&[]);
    let mut st = stream(&s, 0, 4, false);
    let e = st.write(&[1; 10]).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains(DIR), "{}", e.message);
    assert_eq!(
        st.write(b"x").unwrap_err().code,
        ErrorCode::Closed,
        "a failed stream is closed"
    );
}

#[test]
fn name_clash_retries_then_gives_up_after_ten() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let clash = [9u8; 16];
    // Occupy the clashing name, then script 3 clashes: the 4th name works.
    let taken = GuestPath::parse(DIR)
        .unwrap()
        .join(&uuid::Builder::from_random_bytes(clash).into_uuid().to_string());
    s.files.borrow_mut().insert(taken.clone(), Default::default());
    s.scripted_random.borrow_mut().extend([clash; 3]);
    let mut st = stream(&s, 0, 4, false);
    st.write(&[1; 10]).unwrap();
    let h = st.close_and_get_handle().unwrap().unwrap();
    assert_ne!(file_of(&h), taken.as_str());
    assert!(
        s.read(taken.as_str()).unwrap().is_empty(),
        "the existing file is untouched"
    );

    s.scripted_random.borrow_mut().extend([clash; 10]);
    let mut st = stream(&s, 0, 4, false);
    let e = st.write(&[1; 10]).unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert!(e.message.contains("10 random file names"));
}

#[test]
fn failed_write_deletes_the_partial_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    s.faults.budget.set(Some(150));
    let mut st = stream(&s, 0, 100, false);
    st.write(&[1; 120]).unwrap();
    let e = st.write(&[1; 120]).unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    assert!(e.message.contains("no space"));
    assert!(s.files_in(DIR).is_empty());
    assert_eq!(st.close_and_get_handle().unwrap_err().code, ErrorCode::Closed);
}

#[test]
fn failed_sync_at_close_deletes_the_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    s.faults.fail_sync.set(true);
    let mut st = stream(&s, 0, 100, false);
    st.write(&[1; 120]).unwrap();
    let e = st.close_and_get_handle().unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    assert!(
        e.message
            .starts_with("Could not flush to file and close the file system output stream to /checkpoints/d/"),
        "{}",
        e.message
    );
    assert!(s.files_in(DIR).is_empty());
}

#[test]
fn file_deleted_under_a_spilled_stream_gives_no_handle() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut st = stream(&s, 0, 100, false);
    st.write(&[1; 120]).unwrap();
    let file = st.file_path().expect("spilled to a file").to_string();
    s.remove_file_for_test(&file);
    st.write(&[2; 120]).unwrap(); // the open file still takes writes
    let e = st.close_and_get_handle().unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.contains("was deleted while the stream was open"),
        "{}",
        e.message
    );
    assert!(s.files_in(DIR).is_empty());
    assert_eq!(st.close_and_get_handle().unwrap_err().code, ErrorCode::Closed);
}

#[test]
fn default_reference_resolves_to_chk_dir_and_shared_dir() {
    let s = MemSandbox::with_dirs(&[]);
    let w = WorkerView::open(s, &config(Backend::Filesystem)).unwrap();
    let f = w
        .resolve_checkpoint_storage_location(42, &LocationReference::Default)
        .unwrap();
    assert_eq!(
        f.checkpoint_directory().unwrap().as_str(),
        format!("/checkpoints/{JOB}/chk-42")
    );
    assert_eq!(
        f.shared_state_directory().unwrap().as_str(),
        format!("/checkpoints/{JOB}/shared")
    );
    assert_eq!(
        w.task_owned_state_dir().unwrap().as_str(),
        format!("/checkpoints/{JOB}/taskowned")
    );
}

#[test]
fn write_state_is_a_stream_written_once_and_closed() {
    let chk = format!("/checkpoints/{JOB}/chk-1");
    let s = MemSandbox::with_dirs(&[&format!("/checkpoints/{JOB}"), &chk]);
    let w = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
    let f = w
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    assert_eq!(f.write_state(StateScope::Exclusive, &[]).unwrap(), None);
    assert!(matches!(
        f.write_state(StateScope::Exclusive, &[1; 20_480]).unwrap(),
        Some(StateHandle::ByteStream { .. })
    ));
    assert!(s.files_in(&chk).is_empty());
    let Some(StateHandle::RelativeFile { path, size, .. }) =
        f.write_state(StateScope::Exclusive, &[2; 20_481]).unwrap()
    else {
        panic!("expected a relative file handle")
    };
    assert_eq!(size, 20_481);
    assert_eq!(s.read(&path).unwrap(), vec![2; 20_481]);
    // A failed write removes its file.
    s.faults.budget.set(Some(100));
    let e = f.write_state(StateScope::Exclusive, &[3; 30_000]).unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    assert_eq!(s.files_in(&chk).len(), 1, "only the earlier state's file");
}

proptest! {
    /// `write_state` takes a shortcut for inline state; it must give the
    /// very handle (name included, the randomness being the same) and file
    /// set a stream written once and closed gives, on both sides of the
    /// threshold and for both scopes, borrowed or owned.
    #[test]
    fn write_state_gives_what_a_stream_gives(len in 0usize..20_600, shared in any::<bool>(), owned in any::<bool>()) {
        let scope = if shared { StateScope::Shared } else { StateScope::Exclusive };
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let outcome = |via_stream: bool| {
            let chk = format!("/checkpoints/{JOB}/chk-1");
            let s = MemSandbox::with_dirs(&[&format!("/checkpoints/{JOB}"), &chk, &format!("/checkpoints/{JOB}/shared")]);
            let w = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
            let f = w.resolve_checkpoint_storage_location(1, &LocationReference::Default).unwrap();
            let handle = if via_stream {
                let mut st = f.create_checkpoint_state_output_stream(scope).unwrap();
                st.write(&data).unwrap();
                st.close_and_get_handle().unwrap()
            } else if owned {
                f.write_owned_state(scope, data.clone()).unwrap()
            } else {
                f.write_state(scope, &data).unwrap()
            };
            let files: Vec<(GuestPath, usize)> = s.files.borrow().iter().map(|(p, d)| (p.clone(), d.borrow().len())).collect();
            (handle, files)
        };
        let (by_call, by_stream) = (outcome(false), outcome(true));
        prop_assert_eq!(by_call, by_stream);
    }
}

#[test]
fn memory_stream_buffer_never_grows_past_the_maximum() {
    let max = 5 * 1024 * 1024;
    let mut st = MemoryOutputStream::new(max, "n".into());
    for _ in 0..5 * 1024 {
        st.write(&[7; 1024]).unwrap();
        assert!(st.capacity() <= max, "{}", st.capacity());
    }
    assert_eq!(st.pos(), max as u64);
    assert_eq!(st.write(&[1]).unwrap_err().code, ErrorCode::StateTooLarge);
}

/// A memory stream given only a zero-length write gives no handle (as an
/// empty file stream); one byte gives an inline handle.
#[test]
fn memory_stream_with_only_a_zero_length_write_gives_no_handle() {
    let mut st = MemoryOutputStream::new(100, "n".into());
    st.write(&[]).unwrap();
    assert_eq!(st.pos(), 0);
    assert_eq!(st.close_and_get_handle().unwrap(), None);
    let mut one = MemoryOutputStream::new(100, "n".into());
    one.write(&[]).unwrap();
    one.write(&[9]).unwrap();
    assert!(matches!(
        one.close_and_get_handle().unwrap(),
        Some(StateHandle::ByteStream { data, .. }) if data == [9]
    ));
}

#[test]
fn encoded_reference_puts_all_state_in_its_directory() {
    let s = MemSandbox::with_dirs(&[]);
    let w = WorkerView::open(s, &config(Backend::Filesystem)).unwrap();
    for raw in [
        "/checkpoints/sp-1",
        "file:///checkpoints/sp-1/",
        "file:/checkpoints/./x/../sp-1",
    ] {
        let f = w
            .resolve_checkpoint_storage_location(1, &LocationReference::encode_path(raw))
            .unwrap();
        assert_eq!(f.checkpoint_directory().unwrap().as_str(), "/checkpoints/sp-1");
        assert_eq!(f.shared_state_directory().unwrap().as_str(), "/checkpoints/sp-1");
    }
}

#[test]
fn references_outside_the_sandbox_are_refused() {
    let s = MemSandbox::with_dirs(&[]);
    let w = WorkerView::open(s, &config(Backend::Filesystem)).unwrap();
    for (raw, code) in [
        ("/etc", ErrorCode::InvalidReference),
        ("/checkpoints/../etc", ErrorCode::InvalidReference),
        ("/checkpoints/../../etc", ErrorCode::InvalidReference),
        ("/checkpointsX", ErrorCode::InvalidReference),
        ("relative/dir", ErrorCode::InvalidReference),
        ("hdfs://namenode/checkpoints", ErrorCode::Unsupported),
        ("s3://bucket/x", ErrorCode::Unsupported),
    ] {
        let e = w
            .resolve_checkpoint_storage_location(1, &LocationReference::encode_path(raw))
            .err()
            .unwrap();
        assert_eq!(e.code, code, "{raw}: {}", e.message);
    }
}

#[test]
fn checkpoint_id_beyond_flinks_long_is_refused() {
    let w = WorkerView::open(MemSandbox::with_dirs(&[]), &config(Backend::Filesystem)).unwrap();
    let e = w
        .resolve_checkpoint_storage_location(u64::MAX, &LocationReference::Default)
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        w.resolve_checkpoint_storage_location(i64::MAX as u64, &LocationReference::Default)
            .is_ok()
    );
}

#[test]
fn checkpoints_dir_outside_sandbox_is_refused() {
    let mut c = config(Backend::Filesystem);
    c.checkpoints_dir = Some("/tmp".into());
    let e = WorkerView::open(MemSandbox::with_dirs(&[]), &c).err().unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("outside"));
}

#[test]
fn task_owned_stream_works_with_default_settings() {
    let job = format!("/checkpoints/{JOB}");
    let to = format!("{job}/taskowned");
    let s = MemSandbox::with_dirs(&["/checkpoints", &job, &to]);
    let w = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
    let mut st = w.create_task_owned_state_stream().unwrap();
    st.write(&[5; 30000]).unwrap();
    let h = st.close_and_get_handle().unwrap().unwrap();
    assert!(matches!(&h, StateHandle::File { size: 30000, .. }));
    assert!(file_of(&h).starts_with(&to));
}

#[test]
fn toolset_duplicates_keeping_name_and_kind() {
    let job = format!("/checkpoints/{JOB}");
    let to = format!("{job}/taskowned");
    let chk = format!("{job}/chk-1");
    let s = MemSandbox::with_dirs(&["/checkpoints", &job, &to, &chk]);
    let w = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
    let f = w
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let mut a = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    a.write(&[1; 30000]).unwrap();
    let a = a.close_and_get_handle().unwrap().unwrap();
    let t = w.create_task_owned_checkpoint_state_toolset().unwrap();
    assert!(t.can_fast_duplicate(&a));
    for links_unsupported in [false, true] {
        s.links_unsupported.set(links_unsupported);
        let d = t.duplicate(std::slice::from_ref(&a)).unwrap();
        let StateHandle::RelativeFile {
            path,
            relative_path,
            size,
        } = &d[0]
        else {
            panic!()
        };
        assert_eq!(
            (path.as_str(), *size),
            (format!("{to}/{relative_path}").as_str(), 30000)
        );
        assert_eq!(Some(relative_path.as_str()), file_of(&a).rsplit('/').next());
        assert_eq!(s.read(path).unwrap(), vec![1; 30000]);
        assert!(!t.can_fast_duplicate(&d[0]), "already in place");
        assert_eq!(t.duplicate(&d).unwrap(), d, "in place: returned as it is");
        s.remove_file_for_test(path);
    }
}

#[test]
fn toolset_refuses_inline_and_outside_handles_before_touching_anything() {
    let job = format!("/checkpoints/{JOB}");
    let to = format!("{job}/taskowned");
    let s = MemSandbox::with_dirs(&["/checkpoints", &job, &to, "/checkpoints/x"]);
    s.files
        .borrow_mut()
        .insert(GuestPath::parse("/checkpoints/x/f").unwrap(), Default::default());
    let w = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
    let t = w.create_task_owned_checkpoint_state_toolset().unwrap();
    let good = StateHandle::File {
        path: "/checkpoints/x/f".into(),
        size: 0,
    };
    let inline = StateHandle::ByteStream {
        name: "n".into(),
        data: vec![1],
    };
    assert!(!t.can_fast_duplicate(&inline));
    let e = t.duplicate(&[good.clone(), inline]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("only file handles"));
    for bad in [
        "/etc/passwd",
        "/checkpoints/../etc/passwd",
        "relative",
        "file://host/checkpoints/x/f",
    ] {
        let h = StateHandle::File {
            path: bad.into(),
            size: 1,
        };
        assert!(!t.can_fast_duplicate(&h));
        assert_eq!(
            t.duplicate(&[good.clone(), h]).unwrap_err().code,
            ErrorCode::InvalidArgument,
            "{bad}"
        );
    }
    assert!(s.files_in(&to).is_empty());
}

#[test]
fn failed_duplicate_removes_the_duplicates_it_made() {
    let job = format!("/checkpoints/{JOB}");
    let to = format!("{job}/taskowned");
    let s = MemSandbox::with_dirs(&["/checkpoints", &job, &to, "/checkpoints/x"]);
    for name in ["a", "b"] {
        s.files.borrow_mut().insert(
            GuestPath::parse(&format!("/checkpoints/x/{name}")).unwrap(),
            Default::default(),
        );
    }
    let w = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
    let t = w.create_task_owned_checkpoint_state_toolset().unwrap();
    let h = |n: &str| StateHandle::File {
        path: format!("/checkpoints/x/{n}"),
        size: 0,
    };
    let e = t.duplicate(&[h("a"), h("b"), h("missing")]).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(s.files_in(&to).is_empty());
    assert_eq!(s.files_in("/checkpoints/x").len(), 2, "sources untouched");
}

#[test]
fn memory_backend_inlines_and_bounds_state() {
    let mut c = config(Backend::Memory);
    c.max_memory_state_size = Some(10);
    let s = MemSandbox::with_dirs(&[]);
    let w = WorkerView::open(s.clone(), &c).unwrap();
    let f = w
        .resolve_checkpoint_storage_location(1, &LocationReference::encode_path("/anything"))
        .unwrap();
    let mut st = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    st.write(&[1; 10]).unwrap();
    let Some(StateHandle::ByteStream { name, data }) = st.close_and_get_handle().unwrap() else {
        panic!()
    };
    assert_eq!((name.len(), data), (36, vec![1; 10]));
    let mut st = w.create_task_owned_state_stream().unwrap();
    st.write(&[1; 5]).unwrap();
    let e = st.write(&[1; 6]).unwrap_err();
    assert_eq!(e.code, ErrorCode::StateTooLarge);
    assert!(e.message.contains("Size=11 , maxSize=10") && e.message.contains("File System State backend"));
    assert_eq!(st.close_and_get_handle().unwrap_err().code, ErrorCode::Closed);
    let e = w
        .create_task_owned_checkpoint_state_toolset()
        .unwrap()
        .duplicate(&[])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(s.files.borrow().is_empty());
}

proptest! {
    /// However the bytes are chunked, the handle kind depends only on the
    /// total size and the bytes come back unchanged.
    #[test]
    fn any_chunking_round_trips(
        chunks in proptest::collection::vec(0usize..300, 0..20),
        threshold in 0usize..200,
        extra in 0usize..200,
    ) {
        let s = MemSandbox::with_dirs(&[DIR]);
        let mut st = stream(&s, threshold, threshold + extra, true);
        let mut all = Vec::new();
        for (i, len) in chunks.iter().enumerate() {
            let data: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
            st.write(&data).unwrap();
            all.extend_from_slice(&data);
            prop_assert_eq!(st.pos(), all.len() as u64);
        }
        let h = st.close_and_get_handle().unwrap();
        match h {
            None => prop_assert!(all.is_empty()),
            Some(StateHandle::ByteStream { data, .. }) => {
                prop_assert!(all.len() <= threshold);
                prop_assert_eq!(data, all);
                prop_assert!(s.files_in(DIR).is_empty());
            }
            Some(StateHandle::RelativeFile { path, size, .. }) => {
                prop_assert!(all.len() > threshold);
                prop_assert_eq!(size, all.len() as u64);
                prop_assert_eq!(s.read(&path).unwrap(), all);
                prop_assert_eq!(s.files_in(DIR).len(), 1);
            }
            Some(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

mod coordinator_and_restore {
    use super::*;
    use crate::coordinator::CoordinatorView;
    use crate::restore::{StateInputStream, discard_state};

    fn coordinator(s: &Rc<MemSandbox>) -> CoordinatorView<MemSandbox> {
        CoordinatorView::open(s.clone(), &config(Backend::Filesystem), Some("/checkpoints/sp")).unwrap()
    }

    /// Flink's non-persistent metadata stream: finalized once ("Already
    /// closed" after), writes after that refused, the bytes inline.
    #[test]
    fn an_in_memory_metadata_stream_is_finalized_once() {
        let s = MemSandbox::with_dirs(&[]);
        let dirs_before = s.dirs.borrow().clone();
        let mut c = config(Backend::Memory);
        c.checkpoints_dir = None;
        let view = CoordinatorView::open(s.clone(), &c, None).unwrap();
        assert!(!view.supports_highly_available_storage());
        let location = view.initialize_location_for_checkpoint(1).unwrap();
        let mut stream = location.create_metadata_output_stream().unwrap();
        stream.write(b"meta").unwrap();
        assert_eq!(stream.pos(), 4);
        let done = stream.close_and_finalize_checkpoint().unwrap();
        assert_eq!(done.external_pointer, crate::layout::NON_PERSISTENT_POINTER);
        assert!(matches!(&done.metadata, StateHandle::ByteStream { data, .. } if data == b"meta"));
        assert_eq!(
            stream.close_and_finalize_checkpoint().unwrap_err().code,
            ErrorCode::Closed
        );
        assert_eq!(stream.write(b"x").unwrap_err().code, ErrorCode::Closed);
        assert_eq!(stream.pos(), 4, "Flink's getPos after finalizing");
        assert!(s.files.borrow().is_empty());
        assert_eq!(*s.dirs.borrow(), dirs_before, "no directory made");
    }

    /// Flink's texts when a base location cannot be made (here: a file
    /// stands where the directory goes).
    #[test]
    fn base_locations_that_cannot_be_made_name_the_directory() {
        for (dir, what) in [("shared", "shared state"), ("taskowned", "task owned state")] {
            let s = MemSandbox::with_dirs(&["/checkpoints/sp", &format!("/checkpoints/{JOB}")]);
            let occupied = GuestPath::parse(&format!("/checkpoints/{JOB}/{dir}")).unwrap();
            s.create_new(&occupied).unwrap();
            let e = coordinator(&s).initialize_base_locations_for_checkpoint().unwrap_err();
            assert!(
                e.message
                    .starts_with(&format!("Failed to create directory for {what}: {occupied}")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn savepoint_names_retry_on_clashes_then_give_up() {
        let s = MemSandbox::with_dirs(&["/checkpoints/sp"]);
        let c = coordinator(&s);
        let clash = [0xabu8; 16];
        s.mkdir("/checkpoints/sp/savepoint-012345-abababababab");
        s.scripted_random.borrow_mut().extend([clash; 3]);
        let loc = c.initialize_location_for_savepoint(1, None).unwrap();
        assert_ne!(
            loc.checkpoint_directory().unwrap().as_str(),
            "/checkpoints/sp/savepoint-012345-abababababab"
        );
        assert!(
            loc.checkpoint_directory()
                .unwrap()
                .as_str()
                .starts_with("/checkpoints/sp/savepoint-012345-")
        );
        s.scripted_random.borrow_mut().extend([clash; 10]);
        let e = c.initialize_location_for_savepoint(1, None).err().unwrap();
        assert!(
            e.message
                .starts_with("Failed to create savepoint directory at /checkpoints/sp"),
            "{}",
            e.message
        );
    }

    #[test]
    fn metadata_is_published_once_and_temp_files_never_stay() {
        let s = MemSandbox::with_dirs(&[]);
        let c = coordinator(&s);
        let loc = c.initialize_location_for_checkpoint(3).unwrap();
        let dir = format!("/checkpoints/{JOB}/chk-3");
        let mut m = loc.create_metadata_output_stream().unwrap();
        m.write(b"meta").unwrap();
        assert!(s.read(&format!("{dir}/_metadata")).is_none());
        let done = m.close_and_finalize_checkpoint().unwrap();
        assert_eq!(done.external_pointer, dir);
        assert_eq!(s.read(&format!("{dir}/_metadata")).unwrap(), b"meta");
        assert_eq!(s.files_in(&dir).len(), 1, "only _metadata remains");
        assert_eq!(
            loc.create_metadata_output_stream().err().unwrap().code,
            ErrorCode::AlreadyExists
        );
        assert_eq!(c.resolve_checkpoint(&dir).unwrap(), done);
    }

    #[test]
    fn failed_metadata_write_removes_the_temp_file() {
        let s = MemSandbox::with_dirs(&[]);
        let loc = coordinator(&s).initialize_location_for_checkpoint(3).unwrap();
        s.faults.budget.set(Some(2));
        let mut m = loc.create_metadata_output_stream().unwrap();
        assert_eq!(m.write(b"too long").unwrap_err().code, ErrorCode::Io);
        assert!(s.files_in(&format!("/checkpoints/{JOB}/chk-3")).is_empty());
        assert_eq!(m.close_and_finalize_checkpoint().unwrap_err().code, ErrorCode::Closed);
    }

    #[test]
    fn input_stream_reads_seeks_and_bounds() {
        let s = MemSandbox::with_dirs(&["/checkpoints/d"]);
        s.files.borrow_mut().insert(
            GuestPath::parse("/checkpoints/d/f").unwrap(),
            Rc::new(std::cell::RefCell::new((0..50u8).collect())),
        );
        let h = StateHandle::File {
            path: "/checkpoints/d/f".into(),
            size: 50,
        };
        let mut r = StateInputStream::open(&*s, h.clone()).unwrap();
        assert_eq!((r.size(), r.pos()), (50, 0));
        assert_eq!(r.read(10).unwrap(), (0..10u8).collect::<Vec<_>>());
        r.seek(50).unwrap();
        assert!(r.read(1).unwrap().is_empty());
        assert_eq!(r.seek(51).unwrap_err().code, ErrorCode::InvalidArgument);
        discard_state(&*s, &h).unwrap();
        assert!(s.files_in("/checkpoints/d").is_empty());
        discard_state(&*s, &h).unwrap();
        assert_eq!(StateInputStream::open(&*s, h).err().unwrap().code, ErrorCode::NotFound);
    }

    #[test]
    fn a_handed_over_file_is_reopened_by_name_before_the_stream_reads_again() {
        let s = MemSandbox::with_dirs(&["/checkpoints/d"]);
        s.files.borrow_mut().insert(
            GuestPath::parse("/checkpoints/d/seg").unwrap(),
            Rc::new(std::cell::RefCell::new((0..50u8).collect())),
        );
        let h = StateHandle::Segment {
            path: "/checkpoints/d/seg".into(),
            offset: 20,
            size: 10,
            scope: crate::access::StateScope::Shared,
        };
        let mut r = StateInputStream::open(&*s, h).unwrap();
        r.seek(4).unwrap();
        let (reader, base) = r.hand_over_reader().unwrap();
        assert_eq!(base, 20);
        assert_eq!(
            crate::sandbox::ReadFile::read_at(&reader, 2, base).unwrap(),
            vec![20, 21],
            "the very file"
        );
        assert!(r.handed_over());
        assert!(r.hand_over_reader().is_none(), "handed over once");
        assert_eq!((r.size(), r.pos()), (10, 4), "size and position stay");
        let e = r.read(1).unwrap_err();
        assert_eq!(e.code, ErrorCode::Io);
        assert!(e.message.contains("/checkpoints/d/seg"), "{}", e.message);
        r.reopen(&*s).unwrap();
        assert!(!r.handed_over());
        assert_eq!(r.read(3).unwrap(), vec![24, 25, 26]);

        // Reopening a file that is gone says so, and the stream stays usable
        // for another try.
        let mut r = StateInputStream::open(
            &*s,
            StateHandle::File {
                path: "/checkpoints/d/seg".into(),
                size: 50,
            },
        )
        .unwrap();
        r.hand_over_reader().unwrap();
        s.files.borrow_mut().clear();
        assert_eq!(r.reopen(&*s).unwrap_err().code, ErrorCode::NotFound);
        assert!(r.handed_over());

        // Inline state has no file to hand over.
        let mut inline = StateInputStream::open(
            &*s,
            StateHandle::ByteStream {
                name: "n".into(),
                data: vec![1, 2],
            },
        )
        .unwrap();
        assert!(inline.hand_over_reader().is_none());
        inline.reopen(&*s).unwrap();
        assert_eq!(inline.read(5).unwrap(), vec![1, 2]);
    }
    #[test]
    fn dispose_removes_the_tree() {
        let s = MemSandbox::with_dirs(&[]);
        let loc = coordinator(&s).initialize_location_for_checkpoint(8).unwrap();
        let dir = format!("/checkpoints/{JOB}/chk-8");
        s.mkdir(&format!("{dir}/sub"));
        s.files
            .borrow_mut()
            .insert(GuestPath::parse(&format!("{dir}/sub/x")).unwrap(), Default::default());
        loc.dispose_on_failure().unwrap();
        assert!(s.stat(&GuestPath::parse(&dir).unwrap()).is_err());
        assert!(s.files.borrow().is_empty());
        loc.dispose_on_failure().unwrap();
    }
}

mod direct_writes {
    //! The host writing large state into the stream's file itself: the
    //! stream keeps its position, its threshold decision and its file.
    use super::*;
    use crate::output_stream::DirectWrite;
    use crate::test_support::MemHostHandle;

    fn ready(answer: DirectWrite) -> (u64, Option<Box<MemHostHandle>>) {
        match answer {
            DirectWrite::Ready { offset, file } => (offset, file.map(|f| f.downcast::<MemHostHandle>().unwrap())),
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    #[test]
    fn the_host_appends_after_the_buffer_and_the_handle_has_every_byte() {
        let s = MemSandbox::with_dirs(&[DIR]);
        let mut st = stream(&s, 10, 100, false);
        st.write(&[1; 60]).unwrap();
        // Fits the buffer: the stream would keep it, so the host copies.
        assert!(matches!(st.prepare_direct_write(40).unwrap(), DirectWrite::Copy));
        assert!(s.files_in(DIR).is_empty(), "no file yet: the state may still be inline");
        let (offset, file) = ready(st.prepare_direct_write(41).unwrap());
        assert_eq!(offset, 60, "the buffer went to the file first");
        let file = file.expect("the first Ready hands the file over");
        file.write_at(&[2; 41], offset);
        st.advance(41).unwrap();
        assert_eq!(st.pos(), 101);
        // Later answers give the offset only; the host keeps its handle.
        let (offset, again) = ready(st.prepare_direct_write(1000).unwrap());
        assert_eq!((offset, again.is_none()), (101, true));
        file.write_at(&[3; 1000], offset);
        st.advance(1000).unwrap();
        let h = st.close_and_get_handle().unwrap().unwrap();
        assert!(matches!(&h, StateHandle::File { size: 1101, .. }), "{h:?}");
        let mut expected = vec![1; 60];
        expected.extend([2; 41]);
        expected.extend([3; 1000]);
        assert_eq!(s.read(file_of(&h)).unwrap(), expected);
    }

    #[test]
    fn advance_without_a_prepared_direct_write_is_invalid() {
        let s = MemSandbox::with_dirs(&[DIR]);
        let mut st = stream(&s, 10, 100, false);
        assert_eq!(st.advance(5).unwrap_err().code, ErrorCode::InvalidArgument);
        let (offset, _file) = ready(st.prepare_direct_write(500).unwrap());
        assert_eq!(offset, 0);
        st.write(&[1; 5]).unwrap(); // buffered again: the host must ask anew
        assert_eq!(st.advance(5).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(st.pos(), 5);
        let (offset, file) = ready(st.prepare_direct_write(500).unwrap());
        assert_eq!((offset, file.is_none()), (5, true));
        assert_eq!(st.advance(u64::MAX).unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn a_closed_stream_refuses_direct_writes_and_advance() {
        let s = MemSandbox::with_dirs(&[DIR]);
        let mut st = stream(&s, 10, 100, false);
        st.write(&[1; 200]).unwrap();
        st.discard();
        assert_eq!(st.prepare_direct_write(500).unwrap_err().code, ErrorCode::Closed);
        assert_eq!(st.advance(1).unwrap_err().code, ErrorCode::Closed);
    }

    #[test]
    fn a_file_that_cannot_be_created_fails_the_prepare_and_discards_the_stream() {
        let s = MemSandbox::with_dirs(&[]);
        let mut st = stream(&s, 0, 4, false);
        let e = st.prepare_direct_write(500).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(st.write(b"x").unwrap_err().code, ErrorCode::Closed);
    }

    #[test]
    fn without_a_host_handle_every_byte_takes_the_copying_path() {
        let s = MemSandbox::with_dirs(&[DIR]);
        s.no_host_handles.set(true);
        let mut st = stream(&s, 10, 100, false);
        assert!(matches!(st.prepare_direct_write(500).unwrap(), DirectWrite::Never));
        assert!(matches!(st.prepare_direct_write(500).unwrap(), DirectWrite::Never));
        st.write(&[4; 500]).unwrap();
        let h = st.close_and_get_handle().unwrap().unwrap();
        assert_eq!(s.read(file_of(&h)).unwrap(), vec![4; 500]);
    }

    #[test]
    fn memory_streams_never_hand_a_file_over() {
        let mut st = MemoryOutputStream::new(100, "n".into());
        assert!(matches!(st.prepare_direct_write(500).unwrap(), DirectWrite::Never));
        assert_eq!(st.advance(1).unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn memory_streams_answer_closed_after_close_or_discard() {
        let mut st = MemoryOutputStream::new(100, "n".into());
        st.write(b"abc").unwrap();
        st.close_and_get_handle().unwrap().unwrap();
        assert_eq!(st.prepare_direct_write(5).unwrap_err().code, ErrorCode::Closed);
        assert_eq!(st.advance(1).unwrap_err().code, ErrorCode::Closed);
        let mut empty = MemoryOutputStream::new(100, "n".into());
        assert!(empty.close_and_get_handle().unwrap().is_none());
        assert_eq!(empty.prepare_direct_write(5).unwrap_err().code, ErrorCode::Closed);
        let mut discarded = MemoryOutputStream::new(100, "n".into());
        discarded.discard();
        assert_eq!(discarded.advance(1).unwrap_err().code, ErrorCode::Closed);
    }
}

/// The bytes a stream ended with: inline data, or its file's contents.
fn contents(s: &MemSandbox, handle: Option<StateHandle>) -> Vec<u8> {
    match handle {
        None => vec![],
        Some(StateHandle::ByteStream { data, .. }) => data,
        Some(h) => s.read(file_of(&h)).expect("the handle's file exists"),
    }
}

mod owned_writes {
    use super::*;

    proptest! {
        /// `write_owned` (how the component receives every write) may keep
        /// the caller's bytes as its buffer; whatever the mix of owned and
        /// borrowed writes, the stream ends exactly as with `write` alone.
        #[test]
        fn owned_and_borrowed_writes_end_alike(
            chunks in proptest::collection::vec((0usize..300, any::<bool>()), 0..8),
        ) {
            let (threshold, buffer) = (100, 256);
            let s = MemSandbox::with_dirs(&[DIR]);
            let (mut mixed, mut plain) = (stream(&s, threshold, buffer, true), stream(&s, threshold, buffer, true));
            let mut expected = Vec::new();
            for (i, (len, owned)) in chunks.iter().enumerate() {
                let chunk = vec![i as u8; *len];
                expected.extend_from_slice(&chunk);
                plain.write(&chunk).unwrap();
                if *owned {
                    mixed.write_owned(chunk).unwrap();
                } else {
                    mixed.write(&chunk).unwrap();
                }
                prop_assert_eq!(mixed.pos(), expected.len() as u64);
            }
            let (mixed, plain) = (mixed.close_and_get_handle().unwrap(), plain.close_and_get_handle().unwrap());
            prop_assert_eq!(
                std::mem::discriminant(&mixed),
                std::mem::discriminant(&plain),
                "owned writes must not change where the state ends up"
            );
            prop_assert_eq!(
                mixed.as_ref().map(|h| matches!(h, StateHandle::ByteStream { .. })),
                plain.as_ref().map(|h| matches!(h, StateHandle::ByteStream { .. }))
            );
            prop_assert_eq!(contents(&s, mixed), expected.clone());
            prop_assert_eq!(contents(&s, plain), expected);
        }
    }

    #[test]
    fn an_owned_write_to_a_closed_stream_is_refused() {
        let s = MemSandbox::with_dirs(&[DIR]);
        let mut st = stream(&s, 100, 256, true);
        st.write_owned(vec![1; 10]).unwrap();
        assert!(st.close_and_get_handle().unwrap().is_some());
        assert_eq!(st.write_owned(vec![2; 10]).unwrap_err().code, ErrorCode::Closed);
    }
}

#[test]
fn uuid_names_are_version_4_in_lowercase_hyphenated_form() {
    for random in [[0u8; 16], [0xff; 16], [0x5a; 16]] {
        let name = crate::sandbox::UuidName::new(random);
        let expected = uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .hyphenated()
            .to_string();
        assert_eq!(name.as_str(), expected);
        assert_eq!(name.to_string(), expected);
        assert_eq!(format!("{name:?}"), format!("{expected:?}"));
        assert_eq!(name.as_bytes()[14], b'4', "version 4: {name}");
        assert!(
            matches!(name.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "RFC variant: {name}"
        );
    }
}
