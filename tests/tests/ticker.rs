//! The epoch ticker thread lives as long as the plugin or any of its
//! tenants, and no longer. Alone in its binary: it counts threads.

use checkpoint_storage_tests::*;
use std::time::{Duration, Instant};

fn ticker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "cs-epoch-ticker")
        .count()
}

/// The ticker count once it settles at `expected`. A joined thread has run
/// to its end, but the kernel may list it in /proc/self/task for a moment
/// longer (it is reaped after `join` returns), so a drop is awaited, within
/// a bound far beyond that moment; a thread that really lives on stays
/// counted and fails the caller's assertion.
fn ticker_threads_settling_at(expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = ticker_threads();
        if n == expected || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_ticker_stops_with_the_last_plugin_or_tenant() {
    let before = ticker_threads();
    let plugin = Plugin::load_with(&PluginOptions::default()).unwrap();
    // Loading returns once the thread runs: no waiting here.
    assert_eq!(ticker_threads(), before + 1);
    let dir = tempfile::tempdir().unwrap();
    let tenant = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
    let clone = plugin.clone();
    drop(plugin);
    drop(clone);
    // The tenant still needs its deadlines enforced: the thread must not
    // even begin to stop, so the count is read at once.
    assert_eq!(ticker_threads(), before + 1);
    assert!(tenant.open_worker_view(&StorageConfig::memory(job_id())).is_ok());
    assert_eq!(ticker_threads(), before + 1);
    drop(tenant);
    assert_eq!(ticker_threads_settling_at(before), before);
}
