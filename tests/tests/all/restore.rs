//! Reading state back through the component (Flink's `openInputStream`,
//! ByteStreamStateHandleTest's stream semantics) and discarding it
//! (FileStateHandleTest), plus whole write–find–restore cycles.

use checkpoint_storage_tests::manifest::{CheckpointManifest, ManifestError, NamedState};
use checkpoint_storage_tests::*;

fn handles(t: &TestTenant) -> (StateHandle, StateHandle, StateHandle) {
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    let inline = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(300, 1),
    )
    .unwrap();
    let file = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(30_000, 2),
    )
    .unwrap();
    let relative = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(40_000, 3),
    )
    .unwrap();
    assert!(matches!(inline, StateHandle::ByteStream(_)));
    assert!(matches!(file, StateHandle::File(_)));
    assert!(matches!(relative, StateHandle::RelativeFile(_)));
    (inline, file, relative)
}

#[test]
fn every_handle_kind_reads_back_through_the_component() {
    let t = TestTenant::new();
    let (inline, file, relative) = handles(&t);
    assert_eq!(t.tenant.read_state(&inline).unwrap(), bytes(300, 1));
    assert_eq!(t.tenant.read_state(&file).unwrap(), bytes(30_000, 2));
    assert_eq!(t.tenant.read_state(&relative).unwrap(), bytes(40_000, 3));
}

#[test]
fn seek_and_pos_follow_flinks_stream_semantics() {
    let t = TestTenant::new();
    let (inline, file, _) = handles(&t);
    for (h, data) in [(inline, bytes(300, 1)), (file, bytes(30_000, 2))] {
        let s = t.tenant.open_input_stream(&h).unwrap();
        let len = data.len() as u64;
        assert_eq!(s.size().unwrap(), len);
        for i in [len, len - 1, len / 2, 1, 0] {
            s.seek(i).unwrap();
            assert_eq!(s.get_pos().unwrap(), i);
            let got = s.read(1).unwrap();
            if i == len {
                assert!(got.is_empty(), "end of stream");
                assert_eq!(s.get_pos().unwrap(), len);
                assert!(s.read(10).unwrap().is_empty(), "still at the end");
            } else {
                assert_eq!(got, vec![data[i as usize]]);
                assert_eq!(s.get_pos().unwrap(), i + 1);
            }
        }
        for bad in [len + 1, u64::MAX] {
            let e = storage_error(s.seek(bad));
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.starts_with("position out of bounds"), "{}", e.message);
        }
        s.seek(7).unwrap();
        assert_eq!(s.read(0).unwrap(), Vec::<u8>::new());
        assert_eq!(s.read(5).unwrap(), data[7..12].to_vec());
        assert_eq!(s.read_to_end().unwrap(), data[12..].to_vec());
    }
}

#[test]
fn empty_inline_state_reads_as_empty() {
    let t = TestTenant::new();
    let h = StateHandle::ByteStream(ByteStreamHandle {
        name: "empty".into(),
        data: vec![],
    });
    let s = t.tenant.open_input_stream(&h).unwrap();
    assert_eq!(s.size().unwrap(), 0);
    assert!(s.read(0).unwrap().is_empty());
    assert!(s.read(1).unwrap().is_empty());
}

#[test]
fn discard_deletes_the_file_but_not_its_directory() {
    let t = TestTenant::new();
    let (inline, file, relative) = handles(&t);
    for h in [&file, &relative] {
        let host = t.tenant.host_path(h.file_path().unwrap()).unwrap();
        assert!(host.exists());
        t.tenant.discard_state(h).unwrap();
        assert!(!host.exists());
        assert!(host.parent().unwrap().is_dir(), "the parent directory stays");
        t.tenant.discard_state(h).unwrap(); // already gone: fine
        assert_eq!(code(t.tenant.open_input_stream(h)), ErrorCode::NotFound);
    }
    t.tenant.discard_state(&inline).unwrap(); // inline: nothing to do
    assert_eq!(t.tenant.read_state(&inline).unwrap(), bytes(300, 1));
}

#[test]
fn restore_and_discard_refuse_paths_outside_the_tenant() {
    let t = TestTenant::new();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), b"secret").unwrap();
    for path in [
        outside.path().to_string_lossy().into_owned(),
        "/checkpoints/../etc/passwd".into(),
        "relative".into(),
        "/checkpoints".into(),
    ] {
        let h = StateHandle::File(FileHandle {
            path: path.clone(),
            size: 6,
        });
        assert_eq!(
            code(t.tenant.open_input_stream(&h)),
            ErrorCode::InvalidArgument,
            "{path}"
        );
        assert_eq!(code(t.tenant.discard_state(&h)), ErrorCode::InvalidArgument, "{path}");
    }
    assert_eq!(std::fs::read(outside.path()).unwrap(), b"secret");
}

#[test]
fn restore_refuses_symlinks_and_discard_refuses_directories() {
    let t = TestTenant::new();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), t.host("link")).unwrap();
    std::fs::create_dir_all(t.host("dir")).unwrap();
    let link = StateHandle::File(FileHandle {
        path: "/checkpoints/link".into(),
        size: 6,
    });
    // Each refusal says what the name is.
    let refused = |h: &StateHandle, expected: ErrorCode, why: &str| {
        let e = storage_error(t.tenant.open_input_stream(h));
        assert_eq!(e.code, expected, "{}", e.message);
        assert!(e.message.contains(why), "{}", e.message);
    };
    refused(
        &link,
        ErrorCode::PermissionDenied,
        "/checkpoints/link is a symbolic link",
    );
    let dir = StateHandle::File(FileHandle {
        path: "/checkpoints/dir".into(),
        size: 0,
    });
    assert_eq!(code(t.tenant.discard_state(&dir)), ErrorCode::InvalidArgument);
    refused(
        &dir,
        ErrorCode::InvalidArgument,
        "/checkpoints/dir is not a regular file",
    );
    assert!(t.host("dir").is_dir());
    // Discarding the link removes the link, never its target.
    t.tenant.discard_state(&link).unwrap();
    assert!(!t.host("link").exists());
    assert_eq!(std::fs::read(outside.path()).unwrap(), b"secret");
}

#[test]
fn a_handle_of_one_tenant_means_nothing_in_another() {
    let a = TestTenant::new();
    let b = TestTenant::new();
    let (_, file, _) = handles(&a);
    assert_eq!(code(b.tenant.open_input_stream(&file)), ErrorCode::NotFound);
    b.tenant.discard_state(&file).unwrap(); // nothing there in b
    assert_eq!(
        a.tenant.read_state(&file).unwrap(),
        bytes(30_000, 2),
        "a's file is untouched"
    );
}

/// Writes a whole checkpoint: base locations, checkpoint location, dozens of
/// states of mixed sizes in both scopes plus task-owned state, and a
/// manifest of all handles as `_metadata`. Returns the pointer and the
/// expected bytes per state name.
fn write_checkpoint(t: &TestTenant, id: u64) -> (String, Vec<(String, Vec<u8>)>) {
    let c = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    c.initialize_base_locations_for_checkpoint().unwrap();
    let loc = c.initialize_location_for_checkpoint(id).unwrap();
    let view = t.view();
    let f = view
        .resolve_checkpoint_storage_location(id, &loc.location_reference().unwrap())
        .unwrap();
    let sizes = [0usize, 1, 100, 20_480, 20_481, 65_536, 300_000, 7, 4096, 1_048_577];
    let mut states = vec![];
    let mut expected = vec![];
    for i in 0..36 {
        let size = sizes[i % sizes.len()];
        let data = bytes(size, i as u8);
        let (name, mut stream) = match i % 3 {
            0 => (
                format!("op-{i}/exclusive"),
                f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
            ),
            1 => (
                format!("op-{i}/shared"),
                f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
            ),
            _ => (
                format!("op-{i}/task-owned"),
                view.create_task_owned_state_stream().unwrap(),
            ),
        };
        for part in data.chunks(10_000) {
            stream.write(part).unwrap();
        }
        match stream.close_and_get_handle().unwrap() {
            Some(handle) => {
                states.push(NamedState {
                    name: name.clone(),
                    handle,
                });
                expected.push((name, data));
            }
            None => assert_eq!(size, 0),
        }
    }
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: id,
        states,
    };
    let meta = loc.create_metadata_output_stream().unwrap();
    meta.write(&manifest.to_json()).unwrap();
    let done = meta.close_and_finalize_checkpoint().unwrap();
    (done.external_pointer, expected)
}

#[test]
fn whole_checkpoint_restores_in_a_fresh_tenant() {
    let t = TestTenant::new();
    let (pointer, expected) = write_checkpoint(&t, 12);
    assert!(expected.len() >= 30);

    // A new instance of the component on the same directory (as after a restart).
    let fresh = plugin().tenant(TenantConfig::new(t.tenant.dir())).unwrap();
    let c = fresh
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let done = c.resolve_checkpoint(&pointer).unwrap();
    let manifest = CheckpointManifest::from_json(&fresh.read_state(&done.metadata).unwrap()).unwrap();
    assert_eq!((manifest.job_id.as_str(), manifest.checkpoint_id), (t.job.as_str(), 12));
    assert_eq!(manifest.states.len(), expected.len());
    let mut total = 0;
    for (state, (name, data)) in manifest.states.iter().zip(&expected) {
        assert_eq!(&state.name, name);
        let got = fresh.read_state(&state.handle).unwrap();
        assert!(got == *data, "{name}: {} bytes back, {} written", got.len(), data.len());
        total += got.len();
    }
    assert!(total > 3_000_000);
}

#[test]
fn savepoint_round_trip_through_an_encoded_reference() {
    let t = TestTenant::new();
    let c = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), Some("/checkpoints/savepoints"))
        .unwrap();
    let loc = c.initialize_location_for_savepoint(5, None).unwrap();
    let reference = loc.location_reference().unwrap();
    assert!(matches!(reference, LocationReference::Encoded(_)));
    // The task gets only the reference bytes.
    let f = t.view().resolve_checkpoint_storage_location(5, &reference).unwrap();
    let h = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(50_000, 9),
    )
    .unwrap();
    let manifest = CheckpointManifest {
        job_id: t.job.clone(),
        checkpoint_id: 5,
        states: vec![NamedState {
            name: "s".into(),
            handle: h,
        }],
    };
    let meta = loc.create_metadata_output_stream().unwrap();
    meta.write(&manifest.to_json()).unwrap();
    let done = meta.close_and_finalize_checkpoint().unwrap();

    let fresh = plugin().tenant(TenantConfig::new(t.tenant.dir())).unwrap();
    let c = fresh
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let found = c.resolve_checkpoint(done.metadata.file_path().unwrap()).unwrap();
    assert_eq!(found.external_pointer, loc.checkpoint_directory().unwrap());
    let m = CheckpointManifest::from_json(&fresh.read_state(&found.metadata).unwrap()).unwrap();
    assert_eq!(fresh.read_state(&m.states[0].handle).unwrap(), bytes(50_000, 9));
}

#[test]
fn failed_checkpoint_disposed_leaves_no_exclusive_files_and_keeps_shared() {
    let t = TestTenant::new();
    let (_, expected) = write_checkpoint(&t, 1);
    let c = t
        .tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let loc = c.initialize_location_for_checkpoint(2).unwrap();
    let f = t.default_factory(2);
    let shared = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(70_000, 1),
    )
    .unwrap();
    for _ in 0..3 {
        write_state(
            f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
            &bytes(70_000, 2),
        )
        .unwrap();
    }
    let shared_before = files_in(&t.host(&format!("{}/shared", t.job)));
    loc.dispose_on_failure().unwrap();
    assert!(!t.host(&format!("{}/chk-2", t.job)).exists());
    assert_eq!(files_in(&t.host(&format!("{}/shared", t.job))), shared_before);
    assert_eq!(t.tenant.read_state(&shared).unwrap(), bytes(70_000, 1));
    assert!(
        t.host(&format!("{}/chk-1/_metadata", t.job)).is_file(),
        "the completed checkpoint is untouched"
    );
    assert!(!expected.is_empty());
}

/// Moves a finished checkpoint directory elsewhere in the tenant (as an
/// operator relocating a savepoint would) and restores it from there.
#[test]
fn a_moved_checkpoint_restores_through_its_relative_handles() {
    let t = TestTenant::new();
    let (pointer, expected) = write_checkpoint(&t, 21);
    let moved_rel = format!("{}/relocated/chk-21", t.job);
    std::fs::create_dir_all(t.host(&format!("{}/relocated", t.job))).unwrap();
    let old_host = t.tenant.host_path(&pointer).unwrap();
    std::fs::rename(&old_host, t.host(&moved_rel)).unwrap();
    let moved = format!("{GUEST_MOUNT}/{moved_rel}");

    let fresh = plugin().tenant(TenantConfig::new(t.tenant.dir())).unwrap();
    let c = fresh
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    assert_eq!(
        code(c.resolve_checkpoint(&pointer)),
        ErrorCode::NotFound,
        "the old place is gone"
    );
    let found = c.resolve_checkpoint(&moved).unwrap();
    assert_eq!(found.external_pointer, moved);
    let bytes_found = fresh.read_state(&found.metadata).unwrap();

    // As written, relative handles still name the old directory.
    let as_written = CheckpointManifest::from_json(&bytes_found).unwrap();
    let stale = as_written
        .states
        .iter()
        .find(|s| matches!(s.handle, StateHandle::RelativeFile(_)))
        .expect("the checkpoint has exclusive file state");
    assert_eq!(code(fresh.read_state(&stale.handle)), ErrorCode::NotFound);

    // Resolved where the manifest was found, every state reads back.
    let manifest = CheckpointManifest::from_json_in(&bytes_found, &found.external_pointer).unwrap();
    let mut relocated = 0;
    for (state, (name, data)) in manifest.states.iter().zip(&expected) {
        if let StateHandle::RelativeFile(r) = &state.handle {
            assert_eq!(r.path, format!("{moved}/{}", r.relative_path));
            relocated += 1;
        }
        let got = fresh.read_state(&state.handle).unwrap();
        assert!(got == *data, "{name}: {} bytes back, {} written", got.len(), data.len());
    }
    assert!(relocated > 0, "the checkpoint has relative handles");
}

#[test]
fn a_relative_path_that_leaves_its_directory_is_refused() {
    let handle = |relative: &str| NamedState {
        name: "s".into(),
        handle: StateHandle::RelativeFile(RelativeFileHandle {
            path: format!("{GUEST_MOUNT}/j/chk-1/{relative}"),
            relative_path: relative.into(),
            size: 1,
        }),
    };
    for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\0b"] {
        let m = CheckpointManifest {
            job_id: job_id(),
            checkpoint_id: 1,
            states: vec![handle(bad)],
        };
        match CheckpointManifest::from_json_in(&m.to_json(), "/checkpoints/elsewhere") {
            Err(ManifestError::RelativePath { relative_path, .. }) => assert_eq!(relative_path, bad),
            other => panic!("{bad:?}: expected a refusal, got {other:?}"),
        }
    }
    let good = CheckpointManifest {
        job_id: job_id(),
        checkpoint_id: 1,
        states: vec![handle("f")],
    };
    let m = CheckpointManifest::from_json_in(&good.to_json(), "/checkpoints/elsewhere/").unwrap();
    assert_eq!(m.states[0].handle.file_path(), Some("/checkpoints/elsewhere/f"));
}
