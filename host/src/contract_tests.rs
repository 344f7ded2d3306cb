//! What the component asks of any host (`docs/host-contract.md`): the
//! imports it needs, and a clear error from every call that needs the
//! tenant's directory when the host preopened none (not a misleading
//! "outside the tenant's directory"), the instance staying usable.

use crate::{ByteStreamHandle, Error, ErrorCode, Plugin, StateHandle, StorageConfig, TenantConfig};

const JOB: &str = "0123456789abcdef0123456789abcdef";

fn expect_no_preopen<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::Storage(e)) => {
            assert_eq!(e.code, ErrorCode::NotFound, "{what}: {}", e.message);
            assert!(
                e.message.contains("no directory was preopened") && e.message.contains("/checkpoints"),
                "{what}: {}",
                e.message
            );
        }
        other => panic!("{what}: expected the no-preopen error, got {other:?}"),
    }
}

#[test]
fn every_entry_point_names_the_missing_preopen() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::load().unwrap();
    let tenant = plugin.tenant_without_preopen(TenantConfig::new(dir.path())).unwrap();
    let config = StorageConfig::filesystem(JOB);
    let inline = StateHandle::ByteStream(ByteStreamHandle {
        name: "/checkpoints/x".into(),
        data: vec![1, 2, 3],
    });
    // Twice each: the empty preopen list is not kept as "the" sandbox, and
    // the error is an answer, not a trap.
    for _ in 0..2 {
        expect_no_preopen(tenant.open_worker_view(&config), "worker view");
        expect_no_preopen(tenant.open_coordinator_view(&config, None), "coordinator view");
        expect_no_preopen(tenant.open_input_stream(&inline), "input stream");
        expect_no_preopen(tenant.discard_state(&inline), "discard");
    }
    assert!(!tenant.is_poisoned());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");

    // The same plugin with the preopen works.
    let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
    let view = tenant.open_worker_view(&config).unwrap();
    drop(view);
}

/// The functions the component imports from `wasi:filesystem/types`,
/// exactly: the list in `docs/host-contract.md`. It also guards the stdio
/// stand-ins (`guest/src/no_stdio.rs`): wasi-libc's own file I/O would
/// import `write-via-stream` and friends, whose streams must reach a host.
#[test]
fn the_component_imports_exactly_the_documented_filesystem_functions() {
    use wasmtime::component::types::ComponentItem;
    let plugin = Plugin::load().unwrap();
    let engine = plugin.engine();
    let component_type = plugin.component().component_type();
    let (_, types) = component_type
        .imports(engine)
        .find(|(name, _)| name.starts_with("wasi:filesystem/types@"))
        .expect("wasi:filesystem/types is imported");
    let ComponentItem::ComponentInstance(instance) = types.ty else {
        panic!("wasi:filesystem/types is not an instance")
    };
    let mut functions: Vec<String> = instance
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    functions.sort();
    assert_eq!(
        functions,
        [
            "[method]descriptor.create-directory-at",
            "[method]descriptor.get-flags",
            "[method]descriptor.is-same-object",
            "[method]descriptor.link-at",
            "[method]descriptor.metadata-hash",
            "[method]descriptor.metadata-hash-at",
            "[method]descriptor.open-at",
            "[method]descriptor.read",
            "[method]descriptor.read-directory",
            "[method]descriptor.remove-directory-at",
            "[method]descriptor.stat",
            "[method]descriptor.stat-at",
            "[method]descriptor.sync",
            "[method]descriptor.unlink-file-at",
            "[method]descriptor.write",
            "[method]directory-entry-stream.read-directory-entry",
        ]
    );
}

/// The component's imports, exactly: the contract lists them for hosts
/// other than this library. A change here is a change of the contract.
#[test]
fn the_component_imports_exactly_the_documented_wasi_interfaces() {
    let plugin = Plugin::load().unwrap();
    let mut imports = plugin.import_names();
    imports.sort();
    assert_eq!(
        imports,
        [
            "wasi:clocks/wall-clock@0.2.12",
            "wasi:filesystem/preopens@0.2.12",
            "wasi:filesystem/types@0.2.12",
            "wasi:random/random@0.2.12",
        ]
    );
}
