//! Unit tests of the hardening rules: directory syncs before a handle is
//! returned, file identity at close, the size of the file opened, and the
//! read-only sandbox.

use crate::access::{StateScope, WorkerView};
use crate::config::{Backend, StorageConfig};
use crate::coordinator::CoordinatorView;
use crate::error::ErrorCode;
use crate::handle::StateHandle;
use crate::output_stream::{CheckpointStateOutputStream, FsOutputStream};
use crate::paths::GuestPath;
use crate::reference::LocationReference;
use crate::restore::StateInputStream;
use crate::test_support::MemSandbox;
use std::rc::Rc;

const JOB: &str = "0123456789abcdef0123456789abcdef";
const DIR: &str = "/checkpoints/0123456789abcdef0123456789abcdef/chk-1";

fn stream(s: &Rc<MemSandbox>) -> FsOutputStream<MemSandbox> {
    FsOutputStream::new(s.clone(), GuestPath::parse(DIR).unwrap(), 10, 10, true)
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

#[test]
fn the_file_then_its_directory_are_synced_before_the_handle_is_returned() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut out = stream(&s);
    out.write(&[1; 50]).unwrap();
    assert!(s.faults.sync_log.borrow().is_empty(), "nothing synced before close");
    let handle = out.close_and_get_handle().unwrap().unwrap();
    let file = handle.file_path().unwrap().to_string();
    assert_eq!(
        *s.faults.sync_log.borrow(),
        vec![format!("file {file}"), format!("dir {DIR}")]
    );
    // Inline state has no name to make durable.
    let mut small = stream(&s);
    small.write(&[1; 5]).unwrap();
    small.close_and_get_handle().unwrap().unwrap();
    assert_eq!(s.faults.sync_log.borrow().len(), 2);
}

#[test]
fn a_failed_directory_sync_returns_no_handle_and_deletes_the_file() {
    let s = MemSandbox::with_dirs(&[DIR]);
    s.faults.fail_dir_sync.set(true);
    let mut out = stream(&s);
    out.write(&[1; 50]).unwrap();
    let e = out.close_and_get_handle().unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    assert!(e.message.contains("Could not sync the directory"), "{}", e.message);
    assert!(s.files_in(DIR).is_empty());
}

#[test]
fn metadata_is_linked_then_its_directory_synced() {
    let s = MemSandbox::with_dirs(&["/checkpoints"]);
    let coordinator = CoordinatorView::open(s.clone(), &config(Backend::Filesystem), None).unwrap();
    let location = coordinator.initialize_location_for_checkpoint(1).unwrap();
    let mut metadata = location.create_metadata_output_stream().unwrap();
    metadata.write(b"meta").unwrap();
    metadata.close_and_finalize_checkpoint().unwrap();
    let log = s.faults.sync_log.borrow();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].starts_with(&format!("file {DIR}/._metadata_temp")), "{log:?}");
    assert_eq!(log[1], format!("dir {DIR}"));
    assert_eq!(s.read(&format!("{DIR}/_metadata")).unwrap(), b"meta");
}

#[test]
fn a_stream_whose_directory_was_renamed_and_recreated_returns_no_handle() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let mut out = stream(&s);
    out.write(&[7; 50]).unwrap();
    let name = s.files_in(DIR)[0].file_name().unwrap().to_string();
    // chk-1 moves away and a new chk-1 appears, holding another file under
    // the same name.
    s.mkdir("/checkpoints/0123456789abcdef0123456789abcdef/moved");
    s.rename_dir_for_test(DIR, "/checkpoints/0123456789abcdef0123456789abcdef/moved");
    s.mkdir(DIR);
    let impostor = format!("{DIR}/{name}");
    s.files.borrow_mut().insert(
        GuestPath::parse(&impostor).unwrap(),
        Rc::new(std::cell::RefCell::new(b"other".to_vec())),
    );
    let e = out.close_and_get_handle().unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("was moved away"), "{}", e.message);
    // The other file under that name is untouched, and the written bytes
    // are still in the moved directory (not ours to delete by name).
    assert_eq!(s.read(&impostor).unwrap(), b"other");
    assert_eq!(
        s.read(&format!("/checkpoints/0123456789abcdef0123456789abcdef/moved/{name}"))
            .unwrap(),
        vec![7; 50]
    );
}

#[test]
fn the_size_of_an_input_stream_is_the_opened_files() {
    let s = MemSandbox::with_dirs(&[DIR]);
    let path = format!("{DIR}/f");
    s.files.borrow_mut().insert(
        GuestPath::parse(&path).unwrap(),
        Rc::new(std::cell::RefCell::new(vec![3; 12])),
    );
    let handle = StateHandle::File { path, size: 99 };
    let mut input = StateInputStream::open(&*s, handle).unwrap();
    assert_eq!(input.size(), 12);
    assert_eq!(input.read(100).unwrap(), vec![3; 12]);
}

#[test]
fn a_read_only_sandbox_refuses_every_write_before_it_is_buffered() {
    let s = MemSandbox::with_dirs(&[DIR, "/checkpoints/0123456789abcdef0123456789abcdef/taskowned"]);
    s.read_only.set(true);
    for backend in [Backend::Filesystem, Backend::Memory] {
        let view = WorkerView::open(s.clone(), &config(backend)).unwrap();
        let factory = view
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        for scope in [StateScope::Exclusive, StateScope::Shared] {
            let e = factory.create_checkpoint_state_output_stream(scope).err().unwrap();
            assert_eq!(e.code, ErrorCode::PermissionDenied);
            assert!(e.message.contains("read-only"), "{}", e.message);
            assert_eq!(
                factory.write_state(scope, b"x").unwrap_err().code,
                ErrorCode::PermissionDenied
            );
        }
        assert_eq!(
            view.create_task_owned_state_stream().err().unwrap().code,
            ErrorCode::PermissionDenied
        );
    }
    let coordinator = CoordinatorView::open(s.clone(), &config(Backend::Filesystem), Some("/checkpoints")).unwrap();
    // Even where nothing would be created (chk-1 exists), the call is refused.
    for e in [
        coordinator.initialize_location_for_checkpoint(1).err().unwrap(),
        coordinator.initialize_location_for_savepoint(1, None).err().unwrap(),
        coordinator.initialize_base_locations_for_checkpoint().unwrap_err(),
        crate::restore::discard_state(
            &*s,
            &StateHandle::File {
                path: format!("{DIR}/x"),
                size: 1,
            },
        )
        .unwrap_err(),
    ] {
        assert_eq!(e.code, ErrorCode::PermissionDenied, "{}", e.message);
    }
    assert!(s.files.borrow().is_empty(), "nothing was written");
    // Reading still works.
    let path = format!("{DIR}/f");
    s.files.borrow_mut().insert(
        GuestPath::parse(&path).unwrap(),
        Rc::new(std::cell::RefCell::new(vec![1, 2])),
    );
    let handle = StateHandle::File { path, size: 2 };
    assert_eq!(
        StateInputStream::open(&*s, handle.clone()).unwrap().read(9).unwrap(),
        vec![1, 2]
    );
}

#[test]
fn a_savepoint_reference_decodes_the_same_with_or_without_flinks_file_scheme() {
    let s = MemSandbox::with_dirs(&["/checkpoints/sp"]);
    let view = WorkerView::open(s.clone(), &config(Backend::Filesystem)).unwrap();
    let plain = LocationReference::encode_path("/checkpoints/sp/savepoint-012345-aaaaaaaaaaaa");
    let qualified = LocationReference::encode_path("file:/checkpoints/sp/savepoint-012345-aaaaaaaaaaaa");
    let dir = view.decode_location(&plain).unwrap();
    assert_eq!(dir.as_str(), "/checkpoints/sp/savepoint-012345-aaaaaaaaaaaa");
    assert_eq!(view.decode_location(&qualified).unwrap(), dir);
}
