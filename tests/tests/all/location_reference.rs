//! Flink's CheckpointStorageLocationReferenceTest and
//! FsStorageLocationReferenceTest, through `resolve-checkpoint-storage-location`:
//! the reference bytes Flink writes resolve to the directory they name, and
//! bad references give Flink's errors as `invalid-reference`.

use checkpoint_storage_tests::*;

fn resolve_dir(t: &TestTenant, reference: &LocationReference) -> checkpoint_storage_host::Result<String> {
    t.view()
        .resolve_checkpoint_storage_location(7, reference)?
        .checkpoint_directory()
}

#[test]
fn encoding_matches_flinks_bytes() {
    // Observed from Flink 2.3.0: /a/b -> 055f3f182f612f62.
    assert_eq!(LocationReference::encode_path("/a/b").to_string(), "055f3f182f612f62");
    assert_eq!(LocationReference::Default.to_string(), "(default)");
}

#[test]
fn encoded_reference_resolves_to_its_path_for_all_scopes() {
    let t = TestTenant::new();
    let f = t
        .view()
        .resolve_checkpoint_storage_location(7, &LocationReference::encode_path("/checkpoints/savepoints/sp-1"))
        .unwrap();
    assert_eq!(f.checkpoint_directory().unwrap(), "/checkpoints/savepoints/sp-1");
    assert_eq!(f.shared_state_directory().unwrap(), "/checkpoints/savepoints/sp-1");
}

#[test]
fn flink_file_uris_and_unnormalised_paths_are_accepted() {
    let t = TestTenant::new();
    for raw in [
        "file:/checkpoints/sp",
        "file:///checkpoints/sp",
        "/checkpoints/sp/",
        "/checkpoints//sp",
        "/checkpoints/./x/../sp",
    ] {
        assert_eq!(
            resolve_dir(&t, &raw_reference(raw)).unwrap(),
            "/checkpoints/sp",
            "{raw}"
        );
        assert_eq!(
            resolve_dir(&t, &LocationReference::encode_path(raw)).unwrap(),
            "/checkpoints/sp",
            "{raw}, encoded"
        );
    }
}

#[test]
fn spaces_and_non_ascii_are_raw_utf8() {
    let t = TestTenant::new();
    let path = "/checkpoints/save point/größe-✓";
    assert_eq!(resolve_dir(&t, &LocationReference::encode_path(path)).unwrap(), path);
}

#[test]
fn random_paths_round_trip() {
    // FsStorageLocationReferenceTest.testEncodeAndDecode, with paths that
    // stay inside the tenant's directory.
    let t = TestTenant::new();
    let view = t.view();
    let mut seed = 17u32;
    let mut next = |n: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) % n
    };
    for _ in 0..50 {
        let segments = 1 + next(5);
        let mut path = String::from("/checkpoints");
        for _ in 0..segments {
            path.push('/');
            for _ in 0..3 + next(13) {
                path.push((b'a' + next(26) as u8) as char);
            }
        }
        let f = view
            .resolve_checkpoint_storage_location(1, &LocationReference::encode_path(&path))
            .unwrap();
        assert_eq!(f.checkpoint_directory().unwrap(), path);
    }
}

#[test]
fn decoding_the_default_reference_is_not_needed() {
    // The default reference resolves to the configured location, never decoded.
    let t = TestTenant::new();
    assert_eq!(
        resolve_dir(&t, &LocationReference::Default).unwrap(),
        format!("{}/chk-7", t.job_guest_dir())
    );
}

#[test]
fn too_short_reference_is_refused() {
    let t = TestTenant::new();
    for bytes in [vec![0u8; 2], vec![0x05, 0x5f, 0x3f, 0x18], vec![1, 2, 3, 4]] {
        let e = storage_error(resolve_dir(&t, &LocationReference::Encoded(bytes)));
        assert_eq!(e.code, ErrorCode::InvalidReference);
        assert!(e.message.starts_with("Reference too short."), "{}", e.message);
    }
}

#[test]
fn garbage_reference_has_the_wrong_magic() {
    let t = TestTenant::new();
    let e = storage_error(resolve_dir(&t, &LocationReference::Encoded((1..=12).collect())));
    assert_eq!(e.code, ErrorCode::InvalidReference);
    assert!(
        e.message.starts_with("Reference starts with the wrong magic number"),
        "{}",
        e.message
    );
}

#[test]
fn empty_encoded_reference_is_refused() {
    let t = TestTenant::new();
    let e = storage_error(resolve_dir(&t, &LocationReference::Encoded(vec![])));
    assert_eq!(e.code, ErrorCode::InvalidReference);
    assert!(e.message.contains("must not be empty"), "{}", e.message);
}

#[test]
fn invalid_utf8_and_nul_are_refused() {
    let t = TestTenant::new();
    let mut bad = vec![0x05, 0x5f, 0x3f, 0x18];
    bad.extend_from_slice(b"/checkpoints/\xff");
    let e = storage_error(resolve_dir(&t, &LocationReference::Encoded(bad)));
    assert_eq!(e.code, ErrorCode::InvalidReference);
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    let e = storage_error(resolve_dir(&t, &raw_reference("/checkpoints/a\0b")));
    assert_eq!(e.code, ErrorCode::InvalidReference);
    assert!(e.message.contains("NUL"), "{}", e.message);
}

#[test]
fn relative_paths_are_invalid_references() {
    let t = TestTenant::new();
    for raw in ["checkpoints/sp", "./sp", "file:sp"] {
        let e = storage_error(resolve_dir(&t, &raw_reference(raw)));
        assert_eq!(e.code, ErrorCode::InvalidReference, "{raw}");
        assert!(e.message.contains("relative"), "{}", e.message);
    }
}

#[test]
fn other_schemes_are_unsupported() {
    let t = TestTenant::new();
    for raw in [
        "hdfs://namenode:8020/flink/sp",
        "s3://bucket/sp",
        "file://remote-host/checkpoints/sp",
    ] {
        let e = storage_error(resolve_dir(&t, &raw_reference(raw)));
        assert_eq!(e.code, ErrorCode::Unsupported, "{raw}: {}", e.message);
    }
}

#[test]
fn memory_backend_ignores_the_reference() {
    // Flink's MemoryBackendCheckpointStorageAccess never decodes references.
    let t = TestTenant::new();
    let view = t.view_with(StorageConfig::memory(&t.job));
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Encoded(vec![1, 2]))
        .unwrap();
    assert_eq!(f.checkpoint_directory().unwrap(), "");
}
