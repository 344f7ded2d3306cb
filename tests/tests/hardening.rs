//! Hardening: what a tenant or a file it controls can do to the host must
//! stay bounded (allocations, blocking calls, partial files, forged names).

use checkpoint_storage_tests::*;

/// A file of `len` apparent bytes that occupies no disk blocks.
fn sparse_file(path: &std::path::Path, len: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

#[test]
fn read_state_of_a_huge_file_is_a_typed_error_not_an_allocation() {
    let t = TestTenant::new();
    let rel = format!("{}/chk-1/huge", t.job);
    sparse_file(&t.host(&rel), 1 << 40);
    let handle = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: 1 << 40,
    });
    match t.tenant.read_state(&handle) {
        Err(Error::Limit(LimitExceeded::StateTooLarge { limit, size })) => {
            assert_eq!(size, 1 << 40);
            assert_eq!(limit, DEFAULT_MAX_READ_STATE_BYTES);
        }
        other => panic!("expected a state-too-large limit, got {other:?}"),
    }
    // The tenant goes on, and the stream slot was given back.
    assert!(!t.tenant.is_poisoned());
    assert_eq!(t.tenant.open_streams(), 0);
    // The same file read in pieces through a stream works.
    let stream = t.tenant.open_input_stream(&handle).unwrap();
    assert_eq!(stream.size().unwrap(), 1 << 40);
    stream.seek((1 << 40) - 3).unwrap();
    assert_eq!(stream.read_to_end().unwrap(), vec![0, 0, 0]);
}

#[test]
fn read_state_honours_the_tenants_read_limit_and_reads_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_id();
    let tenant = plugin()
        .tenant(TenantConfig::new(dir.path()).with_max_read_state_bytes(3 << 20))
        .unwrap();
    let data = bytes(3 << 20, 7);
    let rel = format!("{job}/chk-1/fits");
    std::fs::create_dir_all(dir.path().join(&job).join("chk-1")).unwrap();
    std::fs::write(dir.path().join(&rel), &data).unwrap();
    let fits = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: data.len() as u64,
    });
    assert_eq!(tenant.read_state(&fits).unwrap(), data);
    let rel = format!("{job}/chk-1/one-more");
    std::fs::write(dir.path().join(&rel), bytes((3 << 20) + 1, 8)).unwrap();
    let too_large = StateHandle::File(FileHandle {
        path: format!("{GUEST_MOUNT}/{rel}"),
        size: (3 << 20) + 1,
    });
    let err = tenant.read_state(&too_large).unwrap_err();
    assert!(
        matches!(err, Error::Limit(LimitExceeded::StateTooLarge { limit, size }) if limit == 3 << 20 && size == (3 << 20) + 1),
        "{err}"
    );
    assert!(
        err.to_string().contains("open_input_stream"),
        "the message says what to do: {err}"
    );
}

/// The configuration error of a tenant that must not be created.
fn config_error(config: TenantConfig) -> ConfigError {
    match plugin().tenant(config) {
        Err(Error::Config(e)) => e,
        Err(e) => panic!("expected a configuration error, got {e}"),
        Ok(_) => panic!("expected a configuration error, the tenant was created"),
    }
}

#[test]
fn out_of_range_tenant_settings_are_typed_errors_naming_field_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let base = || TenantConfig::new(dir.path());
    let e = config_error(base().with_max_call_time(std::time::Duration::MAX));
    assert_eq!(e.field, "max_call_time");
    assert!(e.to_string().contains("at most 86400s"), "{e}");
    assert_eq!(
        config_error(base().with_max_call_time(std::time::Duration::ZERO)).field,
        "max_call_time"
    );
    assert_eq!(config_error(base().with_max_memory_bytes(0)).field, "max_memory_bytes");
    assert_eq!(
        config_error(base().with_max_memory_bytes(usize::MAX)).field,
        "max_memory_bytes"
    );
    assert_eq!(config_error(base().with_max_open_streams(0)).field, "max_open_streams");
    let e = config_error(base().with_max_read_state_bytes(u64::MAX));
    assert_eq!(e.field, "max_read_state_bytes");
    assert!(
        e.to_string()
            .starts_with("invalid tenant configuration: max_read_state_bytes is 18446744073709551615"),
        "{e}"
    );
    // The bounds themselves are allowed, and such a tenant works.
    let tenant = plugin()
        .tenant(
            base()
                .with_max_call_time(MAX_CALL_TIME)
                .with_max_memory_bytes(DEFAULT_MAX_MEMORY_BYTES)
                .with_max_open_streams(1),
        )
        .unwrap();
    assert!(tenant.open_worker_view(&StorageConfig::memory(job_id())).is_ok());
}
