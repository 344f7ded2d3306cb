//! Per-tenant limits: memory and execution time trap and discard only the
//! offending tenant's instance; open streams and bytes written refuse one
//! call and the tenant goes on.

use checkpoint_storage_tests::*;
use std::time::Duration;

fn tenant_with(config: TenantConfig) -> Tenant {
    plugin().tenant(config).expect("tenant")
}

fn limit<T: std::fmt::Debug>(r: checkpoint_storage_host::Result<T>) -> LimitExceeded {
    match r {
        Err(Error::Limit(l)) => l,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn memory_cap_traps_only_the_offending_tenant() {
    // A bystander with an open stream and a finished handle.
    let bystander = TestTenant::new();
    bystander.init_job_dirs(&[1]);
    let bview = bystander.view();
    let bfactory = bview
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let done = write_state(
        bfactory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap(),
        &bytes(40_000, 7),
    )
    .unwrap();
    let mut open = bfactory
        .create_checkpoint_state_output_stream(StateScope::Shared)
        .unwrap();
    open.write(&bytes(30_000, 8)).unwrap();

    // The memory backend keeps state in guest memory: 16 MiB of it cannot
    // fit under an 8 MiB cap.
    let dir = tempfile::tempdir().unwrap();
    let cap = 8 << 20;
    let greedy = tenant_with(TenantConfig::new(dir.path()).with_max_memory_bytes(cap));
    let job = job_id();
    let view = greedy
        .open_worker_view(&StorageConfig::memory(&job).with_max_memory_state_size(64 << 20))
        .unwrap();
    let factory = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let mut stream = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    let e = limit(write_until_refused(&mut stream));
    assert!(
        matches!(e, LimitExceeded::Memory { limit, requested } if limit == cap && requested > cap),
        "{e}"
    );
    assert!(e.discards_instance());
    assert!(greedy.is_poisoned());
    assert!(matches!(stream.get_pos(), Err(Error::Poisoned)));
    assert!(matches!(
        greedy.open_worker_view(&StorageConfig::memory(&job)),
        Err(Error::Poisoned)
    ));
    drop((stream, factory, view));
    assert_eq!(greedy.open_streams(), 0, "the stream's slot was released");

    // A new tenant for the same directory works.
    let again = tenant_with(TenantConfig::new(dir.path()).with_max_memory_bytes(cap));
    let v = again.open_worker_view(&StorageConfig::memory(&job)).unwrap();
    let f = v
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let h = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(1000, 1),
    );
    assert!(matches!(h, Some(StateHandle::ByteStream(b)) if b.data == bytes(1000, 1)));

    // The bystander went on untouched.
    open.write(&bytes(30_000, 9)).unwrap();
    let h = open.close_and_get_handle().unwrap().unwrap();
    let mut expected = bytes(30_000, 8);
    expected.extend(bytes(30_000, 9));
    assert_eq!(bystander.read_handle(&h).unwrap(), expected);
    assert_eq!(bystander.read_handle(&done).unwrap(), bytes(40_000, 7));
    assert!(!bystander.tenant.is_poisoned());
}

#[test]
fn memory_cap_below_the_components_initial_memory_refuses_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let e = match plugin().tenant(TenantConfig::new(dir.path()).with_max_memory_bytes(64 << 10)) {
        Err(Error::Limit(e)) => e,
        other => panic!("expected a memory limit, got {other:?}"),
    };
    assert!(matches!(e, LimitExceeded::Memory { limit: 65536, .. }), "{e}");
}

/// Each of a tenant's instances has the whole memory cap: the task side it
/// starts with, and the full component a coordinator view adds beside it.
/// A tenant whose task side fills most of its cap still opens its
/// coordinator side, and what it wrote stays.
#[test]
fn each_instance_of_a_tenant_has_the_whole_memory_cap() {
    // The task side's initial memory, as the limit reports it.
    let dir = tempfile::tempdir().unwrap();
    let initial = match plugin().tenant(TenantConfig::new(dir.path()).with_max_memory_bytes(64 << 10)) {
        Err(Error::Limit(LimitExceeded::Memory { requested, .. })) => requested,
        other => panic!("expected a memory limit, got {other:?}"),
    };
    // Room for one instance and half as much again: not for two together.
    let cap = initial + initial / 2;
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = tenant_with(TenantConfig::new(t.tenant.dir()).with_max_memory_bytes(cap));
    let factory = tenant
        .open_worker_view(&StorageConfig::filesystem(&t.job))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let kept = factory
        .write_state(StateScope::Exclusive, &bytes(30_000, 3))
        .unwrap()
        .unwrap();
    let mut open = factory
        .create_checkpoint_state_output_stream(StateScope::Shared)
        .unwrap();
    open.write(&bytes(40_000, 4)).unwrap();

    let location = tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap()
        .initialize_location_for_checkpoint(2)
        .unwrap();
    drop(location);
    assert!(!tenant.is_poisoned());
    assert_eq!(tenant.read_state(&kept).unwrap(), bytes(30_000, 3));
    open.write(&bytes(10_000, 5)).unwrap();
    let h = open.close_and_get_handle().unwrap().unwrap();
    assert_eq!(
        tenant.read_state(&h).unwrap(),
        [bytes(40_000, 4), bytes(10_000, 5)].concat()
    );
}

#[test]
fn pooling_refuses_a_memory_cap_above_its_slots() {
    let plugin = Plugin::load_with(&PluginOptions::pooling(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = plugin
        .tenant(TenantConfig::new(dir.path()).with_max_memory_bytes(DEFAULT_MAX_MEMORY_BYTES + 1))
        .unwrap_err();
    assert!(matches!(&e, Error::Config(c) if c.field == "max_memory_bytes"), "{e}");
    assert!(e.to_string().contains("pooling allocator"), "{e}");
    // The default cap fits.
    plugin.tenant(TenantConfig::new(dir.path())).unwrap();
}

#[test]
fn zero_epoch_tick_is_refused() {
    let options = PluginOptions {
        epoch_tick: Duration::ZERO,
        ..PluginOptions::default()
    };
    let e = Plugin::load_with(&options).err().expect("refused");
    assert!(e.to_string().contains("epoch tick"), "{e}");
}

#[test]
fn a_zero_call_time_is_refused() {
    // Instantiation runs guest code under the same deadline: zero could not
    // even create the instance.
    let dir = tempfile::tempdir().unwrap();
    let e = plugin()
        .tenant(TenantConfig::new(dir.path()).with_max_call_time(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(&e, Error::Config(c) if c.field == "max_call_time"), "{e}");
    assert!(e.to_string().contains("max_call_time"), "{e}");
}

#[test]
fn a_long_call_is_interrupted_by_the_ticker() {
    // Duplicating many files takes far longer than one 1 ms tick: the guest
    // sees the epoch pass its deadline between two files.
    let t = TestTenant::new();
    t.init_job_dirs(&[]);
    let bystander = TestTenant::new();
    bystander.init_job_dirs(&[]);
    let bview = bystander.view();
    // Batches with distinct names: duplicates keep the source's name.
    let batch = |b: usize, n: usize| -> Vec<StateHandle> {
        (0..n)
            .map(|i| {
                let name = format!("src-{b}-{i}");
                std::fs::write(t.host(&name), b"x").unwrap();
                StateHandle::File(FileHandle {
                    path: format!("{GUEST_MOUNT}/{name}"),
                    size: 1,
                })
            })
            .collect()
    };
    let batches: Vec<Vec<StateHandle>> = (0..4).map(|b| batch(b, 500)).collect();
    let options = PluginOptions {
        epoch_tick: Duration::from_millis(1),
        ..PluginOptions::default()
    };
    let plugin = Plugin::load_with(&options).unwrap();
    // On a loaded machine even instantiation or the first call can take
    // longer than 1 ms; whichever is cut, it is the same limit.
    let mut created = None;
    let e = match plugin
        .tenant(TenantConfig::new(t.tenant.dir()).with_max_call_time(Duration::from_millis(1)))
        .and_then(|tenant| {
            created = Some(tenant.clone());
            tenant.open_worker_view(&StorageConfig::filesystem(&t.job))
        })
        .and_then(|v| {
            let toolset = v.create_task_owned_checkpoint_state_toolset()?;
            // Each call gets a fresh deadline; one of them is cut.
            for sources in &batches {
                toolset.duplicate(sources)?;
            }
            Ok(())
        }) {
        Err(Error::Limit(e)) => e,
        other => panic!("expected the deadline to cut a call, got {other:?}"),
    };
    assert_eq!(
        e,
        LimitExceeded::ExecutionTime {
            limit: Duration::from_millis(1)
        }
    );
    if let Some(tenant) = created {
        assert!(tenant.is_poisoned());
        assert_eq!(tenant.poisoned_by_limit(), Some(e.clone()), "the tenant tells why");
    }
    assert!(!t.tenant.is_poisoned(), "another tenant of the same directory goes on");
    assert_eq!(t.tenant.poisoned_by_limit(), None);
    let copies = t
        .view()
        .create_task_owned_checkpoint_state_toolset()
        .unwrap()
        .duplicate(&batch(9, 3))
        .unwrap();
    assert_eq!(t.read_handle(&copies[2]).unwrap(), b"x");
    let h = write_state(bview.create_task_owned_state_stream().unwrap(), &bytes(25_000, 4)).unwrap();
    assert_eq!(bystander.read_handle(&h).unwrap(), bytes(25_000, 4));
}

#[test]
fn open_streams_are_bounded_and_slots_come_back_on_drop() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = tenant_with(TenantConfig::new(t.tenant.dir()).with_max_open_streams(3));
    let view = tenant.open_worker_view(&StorageConfig::filesystem(&t.job)).unwrap();
    let factory = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let a = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    let b = factory
        .create_checkpoint_state_output_stream(StateScope::Shared)
        .unwrap();
    let c = view.create_task_owned_state_stream().unwrap();
    assert_eq!(tenant.open_streams(), 3);
    // Both ways of creating a stream are bounded; the tenant is not harmed.
    let e = limit(factory.create_checkpoint_state_output_stream(StateScope::Exclusive));
    assert_eq!(e, LimitExceeded::OpenStreams { limit: 3 });
    assert!(!e.discards_instance());
    assert!(e.to_string().contains("at most 3 streams"), "{e}");
    assert_eq!(
        limit(view.create_task_owned_state_stream()),
        LimitExceeded::OpenStreams { limit: 3 }
    );
    assert!(!tenant.is_poisoned());

    // Closing consumes the stream and gives its slot back.
    let h = write_state(a, &bytes(30_000, 1)).unwrap();
    assert_eq!(tenant.open_streams(), 2);
    let d = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), bytes(30_000, 1));
    drop((b, c, d));
    assert_eq!(tenant.open_streams(), 0);
    let streams: Vec<_> = (0..3).map(|_| view.create_task_owned_state_stream().unwrap()).collect();
    assert_eq!(tenant.open_streams(), 3);
    drop(streams);
}

#[test]
fn metadata_and_input_streams_take_stream_slots_too() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = tenant_with(TenantConfig::new(t.tenant.dir()).with_max_open_streams(2));
    let coordinator = tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let location = coordinator.initialize_location_for_checkpoint(2).unwrap();
    let view = tenant.open_worker_view(&StorageConfig::filesystem(&t.job)).unwrap();
    let factory = view
        .resolve_checkpoint_storage_location(2, &LocationReference::Default)
        .unwrap();
    let handle = write_state(
        factory
            .create_checkpoint_state_output_stream(StateScope::Exclusive)
            .unwrap(),
        &bytes(30_000, 1),
    )
    .unwrap();
    assert_eq!(tenant.open_streams(), 0);

    let input = tenant.open_input_stream(&handle).unwrap();
    let metadata = location.create_metadata_output_stream().unwrap();
    assert_eq!(tenant.open_streams(), 2);
    // Each kind is refused once the slots are taken, before it reaches the guest.
    assert_eq!(
        limit(location.create_metadata_output_stream()),
        LimitExceeded::OpenStreams { limit: 2 }
    );
    assert_eq!(
        limit(tenant.open_input_stream(&handle)),
        LimitExceeded::OpenStreams { limit: 2 }
    );
    assert_eq!(
        limit(factory.create_checkpoint_state_output_stream(StateScope::Shared)),
        LimitExceeded::OpenStreams { limit: 2 }
    );
    assert!(!tenant.is_poisoned());

    // The open streams still work, and their slots come back when dropped.
    assert_eq!(input.read(10).unwrap(), bytes(30_000, 1)[..10].to_vec());
    metadata.write(b"metadata").unwrap();
    let completed = metadata.close_and_finalize_checkpoint().unwrap();
    drop(input);
    assert_eq!(tenant.open_streams(), 0);
    assert_eq!(tenant.read_state(&completed.metadata).unwrap(), b"metadata");
    assert_eq!(tenant.open_streams(), 0, "read_state releases its input stream");
}

#[test]
fn metadata_bytes_count_against_the_byte_limit() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = tenant_with(TenantConfig::new(t.tenant.dir()).with_max_bytes_written(Some(100)));
    let coordinator = tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap();
    let location = coordinator.initialize_location_for_checkpoint(2).unwrap();
    let metadata = location.create_metadata_output_stream().unwrap();
    metadata.write(&bytes(80, 1)).unwrap();
    let e = limit(metadata.write(&bytes(30, 2)));
    assert_eq!(
        e,
        LimitExceeded::BytesWritten {
            limit: 100,
            written: 80,
            requested: 30
        }
    );
    assert_eq!(
        metadata.get_pos().unwrap(),
        80,
        "nothing of the refused write was written"
    );
    let completed = metadata.close_and_finalize_checkpoint().unwrap();
    assert_eq!(tenant.read_state(&completed.metadata).unwrap(), bytes(80, 1));
    assert_eq!(tenant.bytes_written(), 80);
}

#[test]
fn writes_larger_than_the_memory_cap_are_split_not_a_trap() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let cap = 16 << 20;
    let tenant = tenant_with(TenantConfig::new(t.tenant.dir()).with_max_memory_bytes(cap));
    let f = tenant
        .open_worker_view(&StorageConfig::filesystem(&t.job))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let big = bytes(2 * cap + 12_345, 1);
    // One write call of more than twice the guest's memory cap.
    let mut stream = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    stream.write(&big).unwrap();
    assert_eq!(stream.get_pos().unwrap(), big.len() as u64);
    let h = stream.close_and_get_handle().unwrap().unwrap();
    assert_eq!(tenant.read_state(&h).unwrap(), big);
    // The same through write_state and the metadata stream.
    let h = f.write_state(StateScope::Shared, &big).unwrap().unwrap();
    assert!(
        matches!(&h, StateHandle::File(file) if file.size == big.len() as u64),
        "{h}"
    );
    assert_eq!(tenant.read_state(&h).unwrap(), big);
    let location = tenant
        .open_coordinator_view(&StorageConfig::filesystem(&t.job), None)
        .unwrap()
        .initialize_location_for_checkpoint(2)
        .unwrap();
    let meta = location.create_metadata_output_stream().unwrap();
    meta.write(&big).unwrap();
    let done = meta.close_and_finalize_checkpoint().unwrap();
    assert_eq!(tenant.read_state(&done.metadata).unwrap(), big);
    // Reads are bounded per call too: asking for everything gives one piece.
    let input = tenant.open_input_stream(&h).unwrap();
    assert_eq!(input.read(u64::MAX).unwrap(), big[..MAX_BYTES_PER_CALL].to_vec());
    assert_eq!(input.get_pos().unwrap(), MAX_BYTES_PER_CALL as u64);
    drop(input);
    assert!(!tenant.is_poisoned());

    // The memory backend still refuses state over its maximum with an error.
    let mem = tenant
        .open_worker_view(&StorageConfig::memory(&t.job))
        .unwrap()
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let e = storage_error(mem.write_state(StateScope::Exclusive, &big));
    assert_eq!(e.code, ErrorCode::StateTooLarge, "{e:?}");
    assert!(!tenant.is_poisoned());
}

#[test]
fn bytes_written_are_bounded_per_tenant() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = tenant_with(TenantConfig::new(t.tenant.dir()).with_max_bytes_written(Some(1000)));
    let view = tenant.open_worker_view(&StorageConfig::filesystem(&t.job)).unwrap();
    let factory = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let mut s1 = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    s1.write(&bytes(600, 1)).unwrap();
    // The bound is per tenant, across streams.
    let mut s2 = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    let e = limit(s2.write(&bytes(500, 2)));
    assert_eq!(
        e,
        LimitExceeded::BytesWritten {
            limit: 1000,
            written: 600,
            requested: 500
        }
    );
    assert!(!e.discards_instance());
    assert_eq!(
        s2.get_pos().unwrap(),
        0,
        "nothing of the refused write reached the stream"
    );
    s2.write(&bytes(400, 3)).unwrap();
    assert_eq!(tenant.bytes_written(), 1000);
    let h1 = s1.close_and_get_handle().unwrap().unwrap();
    let h2 = s2.close_and_get_handle().unwrap().unwrap();
    assert_eq!(t.read_handle(&h1).unwrap(), bytes(600, 1));
    assert_eq!(t.read_handle(&h2).unwrap(), bytes(400, 3));

    // Past the limit, even a new stream's first byte is refused.
    let mut s3 = factory
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    assert!(matches!(
        s3.write(&[1]),
        Err(Error::Limit(LimitExceeded::BytesWritten { .. }))
    ));
    assert!(!tenant.is_poisoned());
}

#[test]
fn a_refused_write_is_not_counted() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let view = t.view_with(StorageConfig::memory(&t.job).with_max_memory_state_size(120));
    let mut s = view.create_task_owned_state_stream().unwrap();
    s.write(&bytes(100, 1)).unwrap();
    assert_eq!(code(s.write(&bytes(50, 1))), ErrorCode::StateTooLarge);
    assert_eq!(t.tenant.bytes_written(), 100);
}
