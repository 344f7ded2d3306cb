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
