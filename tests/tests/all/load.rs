//! Many tenants at once: a pool of 1,000 live tenants, tenants created,
//! used and dropped from many threads, and a load of 32 tenants on several
//! threads writing over a thousand streams, every byte verified.

use checkpoint_storage_tests::*;
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[test]
fn tenants_and_plugins_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Plugin>();
    send_sync::<Tenant>();
    send_sync::<WorkerView>();
    send_sync::<StreamFactory>();
    send_sync::<StateOutputStream>();
    send_sync::<CheckpointStateToolset>();
}

#[test]
fn a_pool_holds_a_thousand_live_tenants() {
    const N: u32 = 1000;
    let plugin = Plugin::load_with(&PluginOptions::pooling(N)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let job = job_id();
    let tenants: Vec<Tenant> = (0..N)
        .map(|i| {
            let dir = root.path().join(i.to_string());
            std::fs::create_dir(&dir).unwrap();
            plugin.tenant(TenantConfig::new(&dir)).unwrap()
        })
        .collect();
    // Every one of them works (memory backend: no disk I/O to wait for).
    for (i, t) in tenants.iter().enumerate() {
        let view = t.open_worker_view(&StorageConfig::memory(&job)).unwrap();
        let f = view
            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
            .unwrap();
        let data = bytes(100, i as u8);
        let h = write_state(
            f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
            &data,
        );
        assert!(matches!(h, Some(StateHandle::ByteStream(b)) if b.data == data));
    }
    let extra = root.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    assert!(
        matches!(plugin.tenant(TenantConfig::new(&extra)), Err(Error::Setup(_))),
        "the pool is full"
    );
    drop(tenants);
    assert!(plugin.tenant(TenantConfig::new(&extra)).is_ok());
}

#[test]
fn tenants_are_created_used_and_dropped_from_many_threads() {
    // A small pool shared by more threads than slots: slots are reused.
    let plugin = Arc::new(Plugin::load_with(&PluginOptions::pooling(16)).unwrap());
    let root = Arc::new(tempfile::tempdir().unwrap());
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let plugin = plugin.clone();
            let root = root.clone();
            std::thread::spawn(move || {
                for round in 0..10 {
                    let dir = root.path().join(format!("{thread}-{round}"));
                    std::fs::create_dir(&dir).unwrap();
                    let tenant = plugin.tenant(TenantConfig::new(&dir)).unwrap();
                    let job = job_id();
                    std::fs::create_dir_all(dir.join(&job).join("taskowned")).unwrap();
                    let view = tenant.open_worker_view(&StorageConfig::filesystem(&job)).unwrap();
                    // Used from a second thread too: a tenant is shared, calls serialise.
                    let t2 = tenant.clone();
                    let inline = std::thread::spawn(move || {
                        let v = t2.open_worker_view(&StorageConfig::memory(job_id())).unwrap();
                        let f = v
                            .resolve_checkpoint_storage_location(1, &LocationReference::Default)
                            .unwrap();
                        write_state(
                            f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
                            b"x",
                        )
                    });
                    let data = bytes(25_000, (thread * 10 + round) as u8);
                    let h = write_state(view.create_task_owned_state_stream().unwrap(), &data).unwrap();
                    let path = tenant.host_path(h.file_path().unwrap()).unwrap();
                    assert_eq!(std::fs::read(&path).unwrap(), data);
                    assert!(matches!(inline.join().unwrap(), Some(StateHandle::ByteStream(b)) if b.data == b"x"));
                    drop((view, tenant));
                    // The state outlives the tenant.
                    assert_eq!(std::fs::read(&path).unwrap(), data);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(all_files(root.path()).len(), 80);
}

/// One stream's expected content: its size, and its checksum.
struct Written {
    handle: StateHandle,
    len: usize,
    sha: [u8; 32],
}

#[test]
fn thirty_two_tenants_write_over_a_thousand_streams_and_every_byte_reads_back() {
    const TENANTS: usize = 32;
    const THREADS: usize = 4;
    const STREAMS_PER_TENANT: usize = 34;
    let started = std::time::Instant::now();
    let root = Arc::new(tempfile::tempdir().unwrap());
    let per_thread = TENANTS / THREADS;
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for k in 0..per_thread {
                    let n = thread * per_thread + k;
                    let dir = root.path().join(format!("tenant-{n}"));
                    std::fs::create_dir(&dir).unwrap();
                    let tenant = plugin().tenant(TenantConfig::new(&dir)).unwrap();
                    let job = job_id();
                    for d in ["shared", "taskowned", "chk-1", "chk-2"] {
                        std::fs::create_dir_all(dir.join(&job).join(d)).unwrap();
                    }
                    let view = tenant.open_worker_view(&StorageConfig::filesystem(&job)).unwrap();
                    let factories = [1, 2].map(|id| {
                        view.resolve_checkpoint_storage_location(id, &LocationReference::Default)
                            .unwrap()
                    });
                    let mut written = Vec::new();
                    for s in 0..STREAMS_PER_TENANT {
                        // Mixed: mostly inline (<= 20 KiB), every third one a file
                        // of up to ~150 KiB; written in uneven chunks.
                        let seed = (n * 131 + s * 7) as u8;
                        let len = if s % 3 == 0 {
                            20_481 + (n * 997 + s * 4_099) % 130_000
                        } else {
                            (n * 313 + s * 1_237) % 20_480
                        };
                        let data = bytes(len, seed);
                        let mut stream = match s % 4 {
                            0 => view.create_task_owned_state_stream().unwrap(),
                            1 => factories[0]
                                .create_checkpoint_state_output_stream(StateScope::Shared)
                                .unwrap(),
                            _ => factories[s % 2]
                                .create_checkpoint_state_output_stream(StateScope::Exclusive)
                                .unwrap(),
                        };
                        for chunk in data.chunks(64 + (s * 977) % 9_000) {
                            stream.write(chunk).unwrap();
                        }
                        match stream.close_and_get_handle().unwrap() {
                            Some(handle) => written.push(Written {
                                handle,
                                len,
                                sha: Sha256::digest(&data).into(),
                            }),
                            None => assert_eq!(len, 0),
                        }
                    }
                    out.push((tenant, written));
                }
                out
            })
        })
        .collect();
    let tenants: Vec<(Tenant, Vec<Written>)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let write_time = started.elapsed();

    let (mut streams, mut files, mut inline, mut total) = (0, 0, 0, 0u64);
    for (tenant, written) in &tenants {
        for w in written {
            let data = match &w.handle {
                StateHandle::ByteStream(b) => {
                    inline += 1;
                    b.data.clone()
                }
                other => {
                    files += 1;
                    let path = tenant.host_path(other.file_path().unwrap()).unwrap();
                    assert!(path.starts_with(tenant.dir()));
                    std::fs::read(path).unwrap()
                }
            };
            assert_eq!(data.len(), w.len);
            assert_eq!(w.handle.state_size(), w.len as u64);
            assert_eq!(<[u8; 32]>::from(Sha256::digest(&data)), w.sha, "{}", w.handle);
            streams += 1;
            total += data.len() as u64;
        }
        // Exactly the files of the handles: no leftovers.
        let handle_files = written.iter().filter(|w| w.handle.file_path().is_some()).count();
        assert_eq!(all_files(tenant.dir()).len(), handle_files);
        assert!(!tenant.is_poisoned());
    }
    assert_eq!(tenants.len(), TENANTS);
    assert!(streams >= 1000, "{streams} streams");
    assert!(files >= 300 && inline >= 600, "{files} files, {inline} inline");
    println!(
        "{TENANTS} tenants on {THREADS} threads: {streams} streams ({files} files, {inline} inline), {total} bytes verified; written in {write_time:.1?}, total {:.1?}",
        started.elapsed()
    );
}
