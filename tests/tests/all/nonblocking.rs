//! The async API (feature `tokio`): the behaviour of the sync API's tests
//! (inline vs file, sizes, bytes back, cleanup, escapes, metadata, restore)
//! through `nonblocking`, its own rules (drops off the executor, cancelled
//! closes discard), and many tenants on two worker threads without blocking
//! the executor.

use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::nonblocking::*;
use checkpoint_storage_tests::*;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// A multi-thread runtime with two worker threads, as a small async host.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// A runtime with one thread and one blocking thread: blocking tasks run
/// one after another in the order they were spawned, so a [`fence`] waits
/// for everything spawned before it.
fn serial_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap()
}

/// Waits until the blocking tasks spawned before it have run (on a
/// [`serial_runtime`]).
async fn fence() {
    tokio::task::spawn_blocking(|| ()).await.unwrap();
}

/// Holds the only blocking thread of a [`serial_runtime`] until the returned
/// sender sends (or is dropped).
fn hold_the_blocking_thread() -> std::sync::mpsc::Sender<()> {
    let (open, gate) = std::sync::mpsc::channel::<()>();
    drop(tokio::task::spawn_blocking(move || gate.recv()));
    open
}

/// Cancels `fut` before its call can run (the only blocking thread is
/// held), then lets the call run, find its caller gone and queue its
/// discards, and lets those run too.
async fn cancel_then_let_it_finish<F: Future>(fut: F) {
    let open = hold_the_blocking_thread();
    poll_once_and_cancel(fut).await;
    open.send(()).unwrap();
    fence().await; // the call ran, found its caller gone, queued the discard
    fence().await; // the discard ran
}

/// Polls `fut` once (starting its call) and drops it: a cancelled call.
async fn poll_once_and_cancel<F: Future>(fut: F) {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending(), "the call cannot have run yet");
        Poll::Ready(())
    })
    .await;
}

fn async_tenant(t: &TestTenant) -> AsyncTenant {
    AsyncTenant::from(t.tenant.clone())
}

/// The async storage error code of a failed call.
fn async_code<T: std::fmt::Debug>(r: checkpoint_storage_host::Result<T>) -> ErrorCode {
    code(r)
}

async fn factory(t: &TestTenant, config: StorageConfig, id: u64) -> AsyncStreamFactory {
    async_tenant(t)
        .open_worker_view(config)
        .await
        .unwrap()
        .resolve_checkpoint_storage_location(id, LocationReference::Default)
        .await
        .unwrap()
}

fn chk_files(t: &TestTenant, id: u64) -> Vec<String> {
    files_in(&t.host(&format!("{}/chk-{id}", t.job)))
}

// ---- Output streams (output_stream.rs through the async API) ----

#[test]
fn inline_or_file_by_threshold_with_exact_sizes_and_bytes_back() {
    // (bytes, write buffer, threshold, file expected): Flink's runTest cases.
    let cases = [
        (999, 1024, 1000, false),
        (896, 1024, 15, true),
        (576_446, 259, 17, true),
        (16_678, 4096, 0, true),
    ];
    runtime().block_on(async {
        for (len, buffer, threshold, expect_file) in cases {
            for (scope, relative) in [(StateScope::Exclusive, true), (StateScope::Shared, false)] {
                let t = TestTenant::new();
                t.init_job_dirs(&[1]);
                let config = StorageConfig::filesystem(&t.job)
                    .with_file_state_threshold(threshold)
                    .with_write_buffer_size(buffer);
                let f = factory(&t, config, 1).await;
                let stream = f.create_checkpoint_state_output_stream(scope).await.unwrap();
                let data = bytes(len, 3);
                let mut pos = 0;
                for (i, chunk) in data.chunks(1 + len / 7).enumerate() {
                    stream.write(chunk).await.unwrap();
                    if i % 2 == 0 {
                        stream.write(Vec::new()).await.unwrap();
                    }
                    pos += chunk.len() as u64;
                    assert_eq!(stream.get_pos().await.unwrap(), pos);
                }
                let handle = stream.close_and_get_handle().await.unwrap().expect("a handle");
                match (&handle, expect_file, relative) {
                    (StateHandle::ByteStream(_), false, _) => {}
                    (StateHandle::RelativeFile(_), true, true) | (StateHandle::File(_), true, false) => {}
                    other => panic!("unexpected handle {other:?} for {len} bytes, threshold {threshold}"),
                }
                assert_eq!(handle.state_size(), len as u64);
                assert_eq!(t.read_handle(&handle).unwrap(), data, "the file holds the bytes");
                assert_eq!(async_tenant(&t).read_state(handle).await.unwrap(), data);
            }
        }
    });
}

#[test]
fn threshold_edge_with_flinks_defaults_through_streams_and_write_state() {
    runtime().block_on(async {
        let t = TestTenant::new();
        t.init_job_dirs(&[1]);
        let f = factory(&t, StorageConfig::filesystem(&t.job), 1).await;
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .await
            .unwrap();
        s.write(bytes(20_480, 1)).await.unwrap();
        let inline = s.close_and_get_handle().await.unwrap().unwrap();
        assert!(matches!(&inline, StateHandle::ByteStream(b) if b.data == bytes(20_480, 1)));
        assert!(chk_files(&t, 1).is_empty(), "inline state has no file");

        let file = f
            .write_state(StateScope::Exclusive, bytes(20_481, 2))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(&file, StateHandle::RelativeFile(r) if r.size == 20_481));
        assert_eq!(chk_files(&t, 1).len(), 1);
        assert_eq!(t.read_handle(&file).unwrap(), bytes(20_481, 2));

        assert_eq!(f.write_state(StateScope::Shared, Vec::new()).await.unwrap(), None);
        let batch = f
            .write_states(
                StateScope::Exclusive,
                vec![bytes(20_480, 3), Vec::new(), bytes(20_481, 4)],
            )
            .await
            .unwrap();
        assert!(matches!(&batch[0], Ok(Some(StateHandle::ByteStream(b))) if b.data == bytes(20_480, 3)));
        assert!(matches!(&batch[1], Ok(None)), "{:?}", batch[1]);
        let Ok(Some(file)) = &batch[2] else {
            panic!("a file handle, got {:?}", batch[2])
        };
        assert!(matches!(file, StateHandle::RelativeFile(r) if r.size == 20_481));
        assert_eq!(t.read_handle(file).unwrap(), bytes(20_481, 4));
        assert_eq!(chk_files(&t, 1).len(), 2);
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Shared)
            .await
            .unwrap();
        assert_eq!(s.close_and_get_handle().await.unwrap(), None, "empty state: no handle");
        assert!(files_in(&t.host(&format!("{}/shared", t.job))).is_empty());
    });
}

#[test]
fn flush_and_sync_create_the_file_only_above_the_threshold() {
    runtime().block_on(async {
        let t = TestTenant::new();
        t.init_job_dirs(&[1]);
        let config = StorageConfig::filesystem(&t.job).with_file_state_threshold(100);
        let f = factory(&t, config, 1).await;
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .await
            .unwrap();
        s.write(bytes(100, 1)).await.unwrap();
        s.flush().await.unwrap();
        assert!(chk_files(&t, 1).is_empty(), "still small enough to be inline");
        s.write(bytes(1, 2)).await.unwrap();
        s.sync().await.unwrap();
        assert_eq!(chk_files(&t, 1).len(), 1, "the file exists once the state is too large");
        let h = s.close_and_get_handle().await.unwrap().unwrap();
        let mut expected = bytes(100, 1);
        expected.extend(bytes(1, 2));
        assert_eq!(t.read_handle(&h).unwrap(), expected);
    });
}

#[test]
fn a_discarded_stream_leaves_no_file_and_frees_its_slot() {
    runtime().block_on(async {
        let t = TestTenant::new();
        t.init_job_dirs(&[1]);
        let f = factory(&t, StorageConfig::filesystem(&t.job).with_file_state_threshold(0), 1).await;
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .await
            .unwrap();
        s.write(vec![1, 2, 3, 4, 5]).await.unwrap();
        s.sync().await.unwrap();
        assert_eq!(chk_files(&t, 1).len(), 1, "the file exists while the stream is open");
        assert_eq!(t.tenant.open_streams(), 1);
        s.discard().await.unwrap();
        assert!(chk_files(&t, 1).is_empty());
        assert_eq!(t.tenant.open_streams(), 0);
    });
}

#[test]
fn a_stream_dropped_on_the_runtime_is_discarded_on_the_blocking_pool() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    serial_runtime().block_on(async {
        let f = factory(&t, StorageConfig::filesystem(&t.job).with_file_state_threshold(0), 1).await;
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .await
            .unwrap();
        s.write(bytes(1000, 1)).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(chk_files(&t, 1).len(), 1);
        // The drop cannot run here: the only blocking thread is held. It is
        // queued on the pool, and the executor goes on.
        let open = hold_the_blocking_thread();
        drop(s);
        assert_eq!(chk_files(&t, 1).len(), 1, "not deleted on the executor");
        open.send(()).unwrap();
        fence().await;
        assert!(chk_files(&t, 1).is_empty(), "deleted on the blocking pool");
        assert_eq!(t.tenant.open_streams(), 0);
    });
}

#[test]
fn a_stream_dropped_outside_a_runtime_is_discarded_at_once() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let s = runtime().block_on(async {
        let f = factory(&t, StorageConfig::filesystem(&t.job).with_file_state_threshold(0), 1).await;
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Shared)
            .await
            .unwrap();
        s.write(bytes(1000, 1)).await.unwrap();
        s.flush().await.unwrap();
        s
    });
    let shared = t.host(&format!("{}/shared", t.job));
    assert_eq!(files_in(&shared).len(), 1);
    drop(s);
    assert!(files_in(&shared).is_empty());
    assert_eq!(t.tenant.open_streams(), 0);
}

#[test]
fn a_cancelled_close_discards_the_state_it_made() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    serial_runtime().block_on(async {
        let f = factory(&t, StorageConfig::filesystem(&t.job), 1).await;
        let s = f
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .await
            .unwrap();
        s.write(bytes(50_000, 1)).await.unwrap();
        cancel_then_let_it_finish(s.close_and_get_handle()).await;
        assert!(chk_files(&t, 1).is_empty(), "{:?}", chk_files(&t, 1));
        assert_eq!(t.tenant.open_streams(), 0);

        // The same for a whole state in one call, and for duplicates.
        cancel_then_let_it_finish(f.write_state(StateScope::Exclusive, bytes(30_000, 2))).await;
        assert!(chk_files(&t, 1).is_empty(), "{:?}", chk_files(&t, 1));

        cancel_then_let_it_finish(f.write_states(
            StateScope::Exclusive,
            vec![bytes(30_000, 4), bytes(10, 5), bytes(40_000, 6)],
        ))
        .await;
        assert!(chk_files(&t, 1).is_empty(), "{:?}", chk_files(&t, 1));

        let kept = f
            .write_state(StateScope::Exclusive, bytes(30_000, 3))
            .await
            .unwrap()
            .unwrap();
        cancel_then_let_it_finish(f.duplicate(vec![kept.clone()], StateScope::Shared)).await;
        assert!(files_in(&t.host(&format!("{}/shared", t.job))).is_empty());
        assert_eq!(t.read_handle(&kept).unwrap(), bytes(30_000, 3), "the original stays");

        // A handle already in the target directory comes back as it is: it
        // is the caller's own file, and a cancelled call keeps it.
        let shared = f
            .write_state(StateScope::Shared, bytes(30_000, 7))
            .await
            .unwrap()
            .unwrap();
        let fresh = f
            .write_state(StateScope::Exclusive, bytes(30_000, 8))
            .await
            .unwrap()
            .unwrap();
        cancel_then_let_it_finish(f.duplicate(vec![shared.clone(), fresh.clone()], StateScope::Shared)).await;
        assert_eq!(
            files_in(&t.host(&format!("{}/shared", t.job))).len(),
            1,
            "only the original shared file: the duplicate of the other was discarded"
        );
        assert_eq!(
            t.read_handle(&shared).unwrap(),
            bytes(30_000, 7),
            "the caller's own file stays"
        );
        assert_eq!(t.read_handle(&fresh).unwrap(), bytes(30_000, 8));
    });
}

// ---- Worker view (storage_access.rs) ----

#[test]
fn default_savepoint_and_task_owned_locations() {
    runtime().block_on(async {
        let t = TestTenant::new();
        t.init_job_dirs(&[3]);
        let view = async_tenant(&t)
            .open_worker_view(StorageConfig::filesystem(&t.job))
            .await
            .unwrap();
        let f = view
            .resolve_checkpoint_storage_location(3, LocationReference::Default)
            .await
            .unwrap();
        assert_eq!(
            f.checkpoint_directory().await.unwrap(),
            format!("{}/chk-3", t.job_guest_dir())
        );
        assert_eq!(
            f.shared_state_directory().await.unwrap(),
            format!("{}/shared", t.job_guest_dir())
        );

        std::fs::create_dir_all(t.host("savepoints/sp-1")).unwrap();
        let sp = view
            .resolve_checkpoint_storage_location(4, LocationReference::encode_path("/checkpoints/savepoints/sp-1"))
            .await
            .unwrap();
        let h = sp
            .write_state(StateScope::Shared, bytes(25_000, 4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            files_in(&t.host("savepoints/sp-1")).len(),
            1,
            "savepoint state in one directory"
        );
        assert_eq!(t.read_handle(&h).unwrap(), bytes(25_000, 4));

        let owned = view.create_task_owned_state_stream().await.unwrap();
        owned.write(bytes(30_000, 5)).await.unwrap();
        let h = owned.close_and_get_handle().await.unwrap().unwrap();
        assert!(
            h.file_path()
                .unwrap()
                .starts_with(&format!("{}/taskowned/", t.job_guest_dir()))
        );
        assert_eq!(t.read_handle(&h).unwrap(), bytes(30_000, 5));

        let toolset = view.create_task_owned_checkpoint_state_toolset().await.unwrap();
        let file = f
            .write_state(StateScope::Shared, bytes(40_000, 6))
            .await
            .unwrap()
            .unwrap();
        assert!(toolset.can_fast_duplicate(file.clone()).await.unwrap());
        let copies = toolset.duplicate(vec![file.clone()]).await.unwrap();
        assert_eq!(copies.len(), 1);
        assert!(copies[0].file_path().unwrap().contains("/taskowned/"));
        assert_eq!(t.read_handle(&copies[0]).unwrap(), bytes(40_000, 6));
        assert!(f.can_fast_duplicate(file.clone(), StateScope::Exclusive).await.unwrap());
        let copies = f.duplicate(vec![file], StateScope::Exclusive).await.unwrap();
        assert_eq!(t.read_handle(&copies[0]).unwrap(), bytes(40_000, 6));
    });
}

#[test]
fn escapes_are_refused_with_exact_codes() {
    runtime().block_on(async {
        let t = TestTenant::new();
        let tenant = async_tenant(&t);
        for dir in ["/tmp", "relative", "/checkpoints/../etc", "/.."] {
            let mut c = StorageConfig::filesystem(&t.job);
            c.checkpoints_dir = Some(dir.into());
            let e = storage_error(tenant.open_worker_view(c).await);
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{dir}: {}", e.message);
        }
        let view = tenant
            .open_worker_view(StorageConfig::filesystem(&t.job))
            .await
            .unwrap();
        for path in ["/etc", "/checkpoints/../etc"] {
            assert_eq!(
                async_code(
                    view.resolve_checkpoint_storage_location(1, LocationReference::encode_path(path))
                        .await
                ),
                ErrorCode::InvalidReference,
                "{path}"
            );
        }
        assert_eq!(
            async_code(
                view.resolve_checkpoint_storage_location(u64::MAX, LocationReference::Default)
                    .await
            ),
            ErrorCode::InvalidArgument
        );

        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), b"secret").unwrap();
        for path in [
            outside.path().to_string_lossy().into_owned(),
            "/checkpoints/../etc/passwd".into(),
            "relative".into(),
        ] {
            let h = StateHandle::File(FileHandle {
                path: path.clone(),
                size: 6,
            });
            assert_eq!(
                async_code(tenant.read_state(h.clone()).await),
                ErrorCode::InvalidArgument,
                "{path}"
            );
            assert_eq!(
                async_code(tenant.open_input_stream(h.clone()).await),
                ErrorCode::InvalidArgument,
                "{path}"
            );
            assert_eq!(
                async_code(tenant.discard_state(h).await),
                ErrorCode::InvalidArgument,
                "{path}"
            );
        }
        assert_eq!(std::fs::read(outside.path()).unwrap(), b"secret");

        let c = tenant
            .open_coordinator_view(StorageConfig::filesystem(&t.job), None)
            .await
            .unwrap();
        for bad in ["/tmp", "/checkpoints/../x", "relative"] {
            assert_eq!(
                async_code(c.initialize_location_for_savepoint(1, Some(bad.into())).await),
                ErrorCode::InvalidArgument,
                "{bad}"
            );
            assert_eq!(
                async_code(
                    tenant
                        .open_coordinator_view(StorageConfig::filesystem(&t.job), Some(bad.into()))
                        .await
                ),
                ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
        assert!(
            !tenant.is_poisoned().await.unwrap(),
            "refusals are not failures of the tenant"
        );
        assert_eq!(tenant.poisoned_by_limit().await.unwrap(), None);
    });
}

#[test]
fn a_trapped_async_tenant_tells_which_limit() {
    let t = TestTenant::new();
    let capped = plugin()
        .tenant(TenantConfig::new(t.tenant.dir()).with_max_memory_bytes(8 << 20))
        .unwrap();
    // Trapped through the sync API, outside the runtime (its WASI calls
    // must not block an executor).
    trap_by_memory(&capped, &t.job);
    let capped = AsyncTenant::from(capped);
    runtime().block_on(async {
        assert!(capped.is_poisoned().await.unwrap());
        assert!(matches!(
            capped.poisoned_by_limit().await.unwrap(),
            Some(LimitExceeded::Memory { .. })
        ));
    });
}

// ---- Coordinator and restore (coordinator.rs, restore.rs) ----

#[test]
fn metadata_is_invisible_until_finalized_and_a_discarded_stream_leaves_nothing() {
    runtime().block_on(async {
        let t = TestTenant::new();
        let c = async_tenant(&t)
            .open_coordinator_view(StorageConfig::filesystem(&t.job), None)
            .await
            .unwrap();
        let loc = c.initialize_location_for_checkpoint(5).await.unwrap();
        let dir = t.host(&format!("{}/chk-5", t.job));
        let s = loc.create_metadata_output_stream().await.unwrap();
        s.write(bytes(10_000, 1)).await.unwrap();
        s.sync().await.unwrap();
        assert!(!dir.join("_metadata").exists());
        let pointer = loc.checkpoint_directory().await.unwrap();
        assert_eq!(
            async_code(c.resolve_checkpoint(pointer.clone()).await),
            ErrorCode::NotFound
        );
        s.discard().await.unwrap();
        assert!(files_in(&dir).is_empty(), "the temporary file is gone");

        let s = loc.create_metadata_output_stream().await.unwrap();
        s.write(b"ok".to_vec()).await.unwrap();
        assert_eq!(s.get_pos().await.unwrap(), 2);
        let done = s.close_and_finalize_checkpoint().await.unwrap();
        assert_eq!(
            done.metadata.file_path().unwrap(),
            loc.metadata_file_path().await.unwrap()
        );
        assert_eq!(files_in(&dir), vec!["_metadata"]);
        let found = c.resolve_checkpoint(pointer).await.unwrap();
        assert_eq!(async_tenant(&t).read_state(found.metadata).await.unwrap(), b"ok");

        // Metadata is written once: no second writer.
        assert_eq!(
            async_code(loc.create_metadata_output_stream().await),
            ErrorCode::AlreadyExists
        );
        assert_eq!(std::fs::read(dir.join("_metadata")).unwrap(), b"ok");
    });
}

#[test]
fn savepoints_and_dispose_on_failure() {
    runtime().block_on(async {
        let t = TestTenant::new();
        let tenant = async_tenant(&t);
        let c = tenant
            .open_coordinator_view(
                StorageConfig::filesystem(&t.job),
                Some("/checkpoints/savepoints".into()),
            )
            .await
            .unwrap();
        assert!(c.has_default_savepoint_location().await.unwrap());
        assert!(c.supports_highly_available_storage().await.unwrap());
        c.initialize_base_locations_for_checkpoint().await.unwrap();
        assert!(t.host(&format!("{}/shared", t.job)).is_dir());
        assert!(t.host(&format!("{}/taskowned", t.job)).is_dir());
        let sp = c.initialize_location_for_savepoint(9, None).await.unwrap();
        let sp_dir = sp.checkpoint_directory().await.unwrap();
        assert!(sp_dir.starts_with("/checkpoints/savepoints/savepoint-"), "{sp_dir}");
        let loc = c.initialize_location_for_checkpoint(2).await.unwrap();
        let f = tenant
            .open_worker_view(StorageConfig::filesystem(&t.job))
            .await
            .unwrap()
            .resolve_checkpoint_storage_location(2, loc.location_reference().await.unwrap())
            .await
            .unwrap();
        let exclusive = f
            .write_state(StateScope::Exclusive, bytes(30_000, 1))
            .await
            .unwrap()
            .unwrap();
        let shared = f
            .write_state(StateScope::Shared, bytes(30_000, 2))
            .await
            .unwrap()
            .unwrap();
        loc.dispose_on_failure().await.unwrap();
        assert!(!t.host(&format!("{}/chk-2", t.job)).exists(), "exclusive state is gone");
        assert!(
            t.tenant
                .host_path(exclusive.file_path().unwrap())
                .is_some_and(|p| !p.exists())
        );
        assert_eq!(t.read_handle(&shared).unwrap(), bytes(30_000, 2), "shared state stays");
    });
}

#[test]
fn input_streams_seek_and_read_like_flinks() {
    runtime().block_on(async {
        let t = TestTenant::new();
        t.init_job_dirs(&[1]);
        let tenant = async_tenant(&t);
        let f = factory(&t, StorageConfig::filesystem(&t.job), 1).await;
        let inline = f.write_state(StateScope::Shared, bytes(300, 1)).await.unwrap().unwrap();
        let file = f
            .write_state(StateScope::Shared, bytes(30_000, 2))
            .await
            .unwrap()
            .unwrap();
        for (h, data) in [(inline, bytes(300, 1)), (file.clone(), bytes(30_000, 2))] {
            let s = tenant.open_input_stream(h).await.unwrap();
            let len = data.len() as u64;
            assert_eq!(s.size().await.unwrap(), len);
            for i in [len, len - 1, len / 2, 1, 0] {
                s.seek(i).await.unwrap();
                assert_eq!(s.get_pos().await.unwrap(), i);
                let got = s.read(1).await.unwrap();
                if i == len {
                    assert!(got.is_empty(), "end of stream");
                } else {
                    assert_eq!(got, vec![data[i as usize]]);
                    assert_eq!(s.get_pos().await.unwrap(), i + 1);
                }
            }
            s.seek(10).await.unwrap();
            assert_eq!(s.read_to_end().await.unwrap(), data[10..]);
            assert_eq!(async_code(s.seek(len + 1).await), ErrorCode::InvalidArgument);
        }
        let host = t.tenant.host_path(file.file_path().unwrap()).unwrap();
        tenant.discard_state(file.clone()).await.unwrap();
        assert!(!host.exists());
        assert_eq!(async_code(tenant.read_state(file).await), ErrorCode::NotFound);
    });
}

/// Writes a checkpoint through the async API: states of mixed sizes in both
/// scopes and task-owned, then a manifest of them as `_metadata`. Returns
/// the pointer and the expected bytes per state name.
async fn write_checkpoint(t: &TestTenant, id: u64) -> (String, Vec<(String, Vec<u8>)>) {
    let tenant = async_tenant(t);
    let c = tenant
        .open_coordinator_view(StorageConfig::filesystem(&t.job), None)
        .await
        .unwrap();
    c.initialize_base_locations_for_checkpoint().await.unwrap();
    let loc = c.initialize_location_for_checkpoint(id).await.unwrap();
    let view = tenant
        .open_worker_view(StorageConfig::filesystem(&t.job))
        .await
        .unwrap();
    let f = view
        .resolve_checkpoint_storage_location(id, loc.location_reference().await.unwrap())
        .await
        .unwrap();
    let sizes = [0usize, 1, 20_480, 20_481, 300_000, 1_048_577];
    let (mut states, mut expected) = (vec![], vec![]);
    for i in 0..18 {
        let size = sizes[i % sizes.len()];
        let data = bytes(size, i as u8);
        let (name, stream) = match i % 3 {
            0 => (
                format!("op-{i}/exclusive"),
                f.create_checkpoint_state_output_stream(StateScope::Exclusive)
                    .await
                    .unwrap(),
            ),
            1 => (
                format!("op-{i}/shared"),
                f.create_checkpoint_state_output_stream(StateScope::Shared)
                    .await
                    .unwrap(),
            ),
            _ => (
                format!("op-{i}/task-owned"),
                view.create_task_owned_state_stream().await.unwrap(),
            ),
        };
        for part in data.chunks(100_000) {
            stream.write(part).await.unwrap();
        }
        match stream.close_and_get_handle().await.unwrap() {
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
    let meta = loc.create_metadata_output_stream().await.unwrap();
    meta.write(manifest.to_json()).await.unwrap();
    let done = meta.close_and_finalize_checkpoint().await.unwrap();
    (done.external_pointer, expected)
}

#[test]
fn a_whole_checkpoint_finalizes_resolves_and_restores_in_a_fresh_tenant() {
    runtime().block_on(async {
        let t = TestTenant::new();
        let (pointer, expected) = write_checkpoint(&t, 12).await;
        assert_eq!(expected.len(), 15, "three of 18 states were empty");

        // A new instance on the same directory, as after a restart.
        let fresh = AsyncTenant::new(plugin(), TenantConfig::new(t.tenant.dir()))
            .await
            .unwrap();
        let c = fresh
            .open_coordinator_view(StorageConfig::filesystem(&t.job), None)
            .await
            .unwrap();
        let done = c.resolve_checkpoint(pointer).await.unwrap();
        let manifest = CheckpointManifest::from_json(&fresh.read_state(done.metadata).await.unwrap()).unwrap();
        assert_eq!((manifest.job_id.as_str(), manifest.checkpoint_id), (t.job.as_str(), 12));
        assert_eq!(manifest.states.len(), expected.len());
        for (state, (name, data)) in manifest.states.into_iter().zip(&expected) {
            assert_eq!(&state.name, name);
            let got = fresh.read_state(state.handle).await.unwrap();
            assert!(got == *data, "{name}: {} bytes back, {} written", got.len(), data.len());
        }
    });
}

#[test]
fn a_tenant_made_in_a_directory_that_does_not_exist_is_a_setup_error() {
    let missing = tempfile::tempdir().unwrap().path().join("missing");
    let e = runtime()
        .block_on(AsyncTenant::new(plugin(), TenantConfig::new(&missing)))
        .unwrap_err();
    assert!(matches!(e, Error::Setup(_)), "{e}");
}

// ---- Not blocking the executor ----

#[test]
fn the_executor_runs_while_a_tenant_call_is_pending() {
    // One executor thread and one blocking thread. The tenant call waits for
    // the blocking thread, which the gate holds; were the call made on the
    // executor, it would have finished before the executor came back here.
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    serial_runtime().block_on(async {
        let f = factory(&t, StorageConfig::filesystem(&t.job), 1).await;
        let stream = f
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .await
            .unwrap();
        let (started, finished) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let open = hold_the_blocking_thread();
        let job = tokio::spawn({
            let (started, finished) = (started.clone(), finished.clone());
            async move {
                started.store(true, Ordering::SeqCst);
                stream.write(bytes(4 << 20, 7)).await.unwrap();
                stream.sync().await.unwrap();
                let h = stream.close_and_get_handle().await.unwrap().unwrap();
                finished.store(true, Ordering::SeqCst);
                h
            }
        });
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        assert!(!finished.load(Ordering::SeqCst), "the call did not run on the executor");
        open.send(()).unwrap();
        let h = job.await.unwrap();
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(t.read_handle(&h).unwrap(), bytes(4 << 20, 7));
    });
}

#[test]
fn thirty_two_tenants_on_two_worker_threads_every_byte_back_while_a_ticker_ticks() {
    const TENANTS: usize = 32;
    const STREAMS: usize = 4;
    let sizes = [1usize, 20_481, 150_000, 600_000];
    let tenants: Vec<TestTenant> = (0..TENANTS).map(|_| TestTenant::new()).collect();
    for t in &tenants {
        t.init_job_dirs(&[1]);
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let ticks_in_flight = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // The jobs meet the ticker halfway (streams open, synced, not closed):
    // the ticker has ticked by then, so it ran while they were in flight.
    let halfway = Arc::new(tokio::sync::Barrier::new(TENANTS + 1));
    let rt = runtime();
    let (max_gap, ticks) = rt.block_on(async {
        let ticker = tokio::spawn({
            let (in_flight, ticks_in_flight, stop, halfway) = (
                in_flight.clone(),
                ticks_in_flight.clone(),
                stop.clone(),
                halfway.clone(),
            );
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(1));
                let (mut last, mut max_gap, mut ticks, mut met) = (Instant::now(), Duration::ZERO, 0u64, false);
                while !stop.load(Ordering::SeqCst) {
                    interval.tick().await;
                    let now = Instant::now();
                    max_gap = max_gap.max(now - last);
                    last = now;
                    ticks += 1;
                    if in_flight.load(Ordering::SeqCst) > 0 {
                        ticks_in_flight.fetch_add(1, Ordering::SeqCst);
                    }
                    if !met && ticks_in_flight.load(Ordering::SeqCst) > 0 {
                        met = true;
                        halfway.wait().await;
                        last = Instant::now(); // waiting here is no lateness
                    }
                }
                (max_gap, ticks)
            }
        });
        let jobs: Vec<_> = tenants
            .iter()
            .enumerate()
            .map(|(n, t)| {
                let (tenant, job, in_flight, halfway) =
                    (async_tenant(t), t.job.clone(), in_flight.clone(), halfway.clone());
                tokio::spawn(async move {
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let f = tenant
                        .open_worker_view(StorageConfig::filesystem(job))
                        .await
                        .unwrap()
                        .resolve_checkpoint_storage_location(1, LocationReference::Default)
                        .await
                        .unwrap();
                    let mut streams = Vec::new();
                    for (i, size) in sizes.iter().enumerate().take(STREAMS) {
                        let scope = if i % 2 == 0 {
                            StateScope::Exclusive
                        } else {
                            StateScope::Shared
                        };
                        let s = f.create_checkpoint_state_output_stream(scope).await.unwrap();
                        let data = bytes(*size, (n * STREAMS + i) as u8);
                        for part in data.chunks(64 * 1024) {
                            s.write(part).await.unwrap();
                        }
                        s.sync().await.unwrap();
                        streams.push((s, data));
                    }
                    halfway.wait().await;
                    for (s, data) in streams {
                        let h = s.close_and_get_handle().await.unwrap().unwrap();
                        assert_eq!(h.state_size(), data.len() as u64);
                        assert!(tenant.read_state(h).await.unwrap() == data, "tenant {n}");
                    }
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for job in jobs {
            job.await.unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        ticker.await.unwrap()
    });
    assert!(
        ticks_in_flight.load(Ordering::SeqCst) >= 1,
        "the ticker ran while tenants wrote"
    );
    for t in &tenants {
        assert_eq!(t.tenant.open_streams(), 0);
        let files = all_files(t.tenant.dir()).len();
        assert_eq!(files, STREAMS - 1, "every state but the 1-byte one is a file");
    }
    println!(
        "{TENANTS} tenants x {STREAMS} streams on 2 worker threads: ticker ticked {ticks} times \
         ({} while tenants wrote), longest gap between ticks {max_gap:?}",
        ticks_in_flight.load(Ordering::SeqCst)
    );
}
