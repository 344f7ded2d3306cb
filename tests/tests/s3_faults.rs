//! Object storage under faults, against a real S3 server on loopback: the
//! server stopping mid-stream, a server that never answers, wrong
//! credentials, and a writer killed with SIGKILL. In every case no handle
//! names a partial object and no partial object becomes visible.

use checkpoint_storage_tests::s3::{S3Server, S3Settings, SilentServer};
use checkpoint_storage_tests::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn server_stopped_mid_stream_is_an_io_error_and_leaves_no_object() {
    let mut t = S3Tenant::new();
    let mut stream = t
        .default_factory(1)
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    // More than one part: the multipart upload has begun on the server.
    stream.write(&bytes(6 << 20, 1)).unwrap();
    t.server.stop();
    let failed = stream
        .write(&bytes(6 << 20, 2))
        .and_then(|()| stream.close_and_get_handle().map(|_| ()));
    let e = storage_error(failed.map(|()| "a handle"));
    assert_eq!(e.code, ErrorCode::Io, "{}", e.message);
    let restarted = t.server.restart();
    assert!(restarted.object_keys(BUCKET).is_empty());
    assert_eq!(t.tenant.open_streams(), 0);
}

#[test]
fn a_silent_server_is_cut_off_by_the_call_deadline() {
    let silent = SilentServer::start();
    let settings = S3Settings {
        endpoint: Some(silent.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("k".into()),
        secret_access_key: Some("s".into()),
        allow_http: true,
        ..S3Settings::from_env(BUCKET)
    };
    let grant = BlobGrant::new(BUCKET, settings.build().unwrap(), "t");
    let tenant = blob_plugin()
        .tenant(TenantConfig::object_store(vec![grant]).with_max_call_time(Duration::from_millis(500)))
        .unwrap();
    let factory = s3_default_factory(&tenant, 1);
    let e = storage_error(factory.write_state(StateScope::Exclusive, &bytes(100_000, 1)));
    assert_eq!(e.code, ErrorCode::Io, "{}", e.message);
    assert!(e.message.contains("time limit"), "{}", e.message);
    // The tenant is still usable: the host gave up, the guest reported.
    assert!(!tenant.is_poisoned());
}

#[test]
fn wrong_credentials_are_permission_denied() {
    let server = S3Server::start(&[BUCKET]);
    let settings = S3Settings {
        secret_access_key: Some("not-the-secret".into()),
        ..server.settings(BUCKET)
    };
    let grant = BlobGrant::new(BUCKET, settings.build().unwrap(), "t");
    let tenant = blob_plugin().tenant(TenantConfig::object_store(vec![grant])).unwrap();
    let factory = s3_default_factory(&tenant, 1);
    let e = storage_error(factory.write_state(StateScope::Exclusive, &bytes(100_000, 1)));
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{}", e.message);
    assert!(server.object_keys(BUCKET).is_empty());
}

/// In the child: writes past one part into a stream, says so, and waits
/// to be killed.
#[test]
fn sigkill_child_writer() {
    let Ok(endpoint) = std::env::var("S3_SIGKILL_ENDPOINT") else {
        return; // only runs as the child of the test below
    };
    let settings = S3Settings {
        endpoint: Some(endpoint),
        ..S3Settings {
            bucket: BUCKET.into(),
            endpoint: None,
            region: Some("us-east-1".into()),
            access_key_id: Some(s3::ACCESS_KEY.into()),
            secret_access_key: Some(s3::SECRET_KEY.into()),
            allow_http: true,
        }
    };
    let grant = BlobGrant::new(BUCKET, settings.build().unwrap(), "t");
    let tenant = blob_plugin().tenant(TenantConfig::object_store(vec![grant])).unwrap();
    let mut stream = s3_default_factory(&tenant, 1)
        .create_checkpoint_state_output_stream(StateScope::Exclusive)
        .unwrap();
    stream.write(&bytes(12 << 20, 1)).unwrap();
    println!("WRITTEN");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_writer_killed_with_sigkill_leaves_no_visible_object() {
    let server = S3Server::start(&[BUCKET]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkill_child_writer", "--nocapture", "--test-threads=1"])
        .env("S3_SIGKILL_ENDPOINT", server.endpoint())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let written = lines.any(|l| l.map(|l| l.contains("WRITTEN")).unwrap_or(false));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(written, "the child never reported its write");
    assert!(server.object_keys(BUCKET).is_empty());
}
