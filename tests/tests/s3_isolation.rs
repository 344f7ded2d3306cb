//! Tenants on object storage reach only their own container and prefix,
//! whatever paths, references or handles they craft; the component's
//! artefacts import what their worlds say.

use checkpoint_storage_tests::*;
use proptest::prelude::*;

#[test]
fn each_artefact_imports_its_own_storage_only() {
    let blob = blob_plugin().import_names();
    assert!(
        blob.iter()
            .any(|n| n.starts_with("wasi:blobstore/blobstore@0.2.0-draft")),
        "{blob:?}"
    );
    assert!(!blob.iter().any(|n| n.starts_with("wasi:filesystem")), "{blob:?}");
    assert!(blob.iter().all(|n| n.starts_with("wasi:")), "{blob:?}");
    let fs = plugin().import_names();
    assert!(!fs.iter().any(|n| n.starts_with("wasi:blobstore")), "{fs:?}");
    // Exactly: a change is a change of the object storage artefact's host
    // contract. `wasi:io` carries the blobstore's data streams; no `wasi:cli`.
    let mut blob = blob;
    blob.sort();
    assert_eq!(
        blob,
        [
            "wasi:blobstore/blobstore@0.2.0-draft",
            "wasi:blobstore/container@0.2.0-draft",
            "wasi:blobstore/types@0.2.0-draft",
            "wasi:io/error@0.2.12",
            "wasi:io/poll@0.2.12",
            "wasi:io/streams@0.2.12",
            "wasi:random/random@0.2.12",
        ]
    );
}

#[test]
fn an_ungranted_container_is_refused() {
    let t = S3Tenant::new();
    for dir in [
        "s3://other/checkpoints",
        "s3://",
        "/flink/../other",
        "hdfs://nn/x",
        "/checkpoints",
    ] {
        let config = StorageConfig {
            checkpoints_dir: Some(dir.to_string()),
            ..t.config()
        };
        let c = code(t.tenant.open_worker_view(&config));
        assert!(
            matches!(c, ErrorCode::InvalidArgument | ErrorCode::Unsupported),
            "{dir}: {c:?}"
        );
    }
}

#[test]
fn a_tenant_cannot_create_grants_or_use_both_backends() {
    assert!(blob_plugin().tenant(TenantConfig::object_store(vec![])).is_err());
    let t = S3Tenant::new();
    let grant = BlobGrant::new(BUCKET, t.server.store(BUCKET), "x");
    assert!(
        plugin()
            .tenant(TenantConfig::object_store(vec![grant.clone()]))
            .is_err()
    );
    for prefix in ["../x", "/x", "a//b", "a/%2F"] {
        let bad = BlobGrant::new(BUCKET, t.server.store(BUCKET), prefix);
        assert!(
            blob_plugin().tenant(TenantConfig::object_store(vec![bad])).is_err(),
            "{prefix}"
        );
    }
}

fn crafted_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("%2F..".to_string()),
        Just("%2e%2e".to_string()),
        Just("tenant-b".to_string()),
        Just("".to_string()),
        Just("\\..\\".to_string()),
        Just("x".repeat(1100)),
        "[a-z0-9/._%-]{1,12}",
    ];
    (
        prop::collection::vec(segment, 0..6),
        prop_oneof![
            Just("s3://flink/"),
            Just("s3://flink//"),
            Just("/flink/"),
            Just("s3:///")
        ],
    )
        .prop_map(|(segments, start)| format!("{start}{}", segments.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Tenant A shares the bucket with tenant B (prefix `tenant-b`); no
    /// handle A crafts reads or deletes B's object.
    #[test]
    fn tenant_a_cannot_reach_tenant_b(paths in prop::collection::vec(crafted_path(), 1..6)) {
        let a = S3Tenant::new();
        let grant_b = BlobGrant::new(BUCKET, a.server.store(BUCKET), "tenant-b");
        let b = blob_plugin().tenant(TenantConfig::object_store(vec![grant_b])).unwrap();
        let config_b = StorageConfig { checkpoints_dir: Some(format!("s3://{BUCKET}/ckpt")), ..StorageConfig::filesystem(&a.job) };
        let secret = bytes(30_000, 9);
        let handle_b = b.open_worker_view(&config_b).unwrap()
            .resolve_checkpoint_storage_location(1, &LocationReference::Default).unwrap()
            .write_state(StateScope::Exclusive, &secret).unwrap().unwrap();
        let key_b = format!("tenant-b/{}", handle_b.file_path().unwrap().strip_prefix(&format!("s3://{BUCKET}/")).unwrap());
        let mut targets = paths.clone();
        // B's own path, as B sees it, names A's prefix when A uses it.
        targets.push(handle_b.file_path().unwrap().to_string());
        for path in &targets {
            let handle = StateHandle::File(FileHandle { path: path.clone(), size: secret.len() as u64 });
            if let Ok(data) = a.tenant.read_state(&handle) {
                prop_assert_ne!(&data, &secret, "{} read tenant B's object", path);
            }
            let _ = a.tenant.discard_state(&handle);
            let config = StorageConfig { checkpoints_dir: Some(path.clone()), ..a.config() };
            if let Ok(view) = a.tenant.open_worker_view(&config)
                && let Ok(f) = view.resolve_checkpoint_storage_location(1, &LocationReference::Default)
            {
                let _ = f.write_state(StateScope::Exclusive, &bytes(30_000, 1));
            }
            let reference = LocationReference::encode_path(path);
            if let Ok(f) = a.view().resolve_checkpoint_storage_location(1, &reference) {
                let _ = f.write_state(StateScope::Shared, &bytes(30_000, 2));
            }
        }
        prop_assert!(!a.tenant.is_poisoned());
        // B's object is intact and A wrote nothing outside its prefix.
        prop_assert_eq!(b.read_state(&handle_b).unwrap(), secret);
        for key in a.object_keys() {
            prop_assert!(key == key_b || key.starts_with("tenant-a/"), "{} escaped", key);
        }
    }
}
