//! The epoch ticker thread lives as long as the plugin or any of its
//! tenants, and no longer. Alone in its binary: it counts threads.

use checkpoint_storage_tests::*;

fn ticker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "cs-epoch-ticker")
        .count()
}

#[test]
fn the_ticker_stops_with_the_last_plugin_or_tenant() {
    let before = ticker_threads();
    let plugin = Plugin::load_with(&PluginOptions::default()).unwrap();
    assert_eq!(ticker_threads(), before + 1);
    let dir = tempfile::tempdir().unwrap();
    let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
    let clone = plugin.clone();
    drop(plugin);
    drop(clone);
    // The tenant still needs its deadlines enforced.
    assert_eq!(ticker_threads(), before + 1);
    assert!(tenant.open_worker_view(&StorageConfig::memory(job_id())).is_ok());
    drop(tenant);
    assert_eq!(ticker_threads(), before);
}
