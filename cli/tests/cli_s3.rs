//! `demo --s3` and `inspect --s3` against a real S3 server on loopback,
//! credentials from the `AWS_*` variables as a user would set them.

use checkpoint_storage_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_checkpoint-storage");

fn run(server: &S3Server, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .args(["--endpoint", &server.endpoint(), "--allow-http"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn s3_demo_then_inspect() {
    let server = S3Server::start(&["demo-bucket"]);
    let stdout = run(&server, &["demo", "--s3", "s3://demo-bucket/team-a"]);
    assert_eq!(stdout.matches("all equal").count(), 2, "{stdout}");
    assert!(
        stdout.contains("RelativeFileStateHandle State: s3://demo-bucket/checkpoints/"),
        "{stdout}"
    );
    // The objects really are on the server, below the prefix.
    let keys = server.object_keys("demo-bucket");
    assert!(keys.iter().all(|k| k.starts_with("team-a/")), "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.ends_with("/_metadata")).count(), 2, "{keys:?}");

    let text = run(&server, &["inspect", "--s3", "s3://demo-bucket/team-a"]);
    assert!(
        text.contains(&format!("{} objects below s3://demo-bucket/team-a", keys.len())),
        "{text}"
    );
    let json = run(&server, &["inspect", "--json", "--s3", "s3://demo-bucket/team-a"]);
    let groups: serde_json::Value = serde_json::from_str(&json).unwrap();
    let with_metadata = groups
        .as_object()
        .unwrap()
        .values()
        .filter(|g| g["has_metadata"] == true)
        .count();
    assert_eq!(with_metadata, 2, "{json}");
}

#[test]
fn s3_inspect_with_a_bad_uri_fails_clearly() {
    let out = Command::new(BIN)
        .args(["inspect", "--s3", "gs://x/y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3://<bucket>/<prefix>"));
}

#[test]
fn s3_loopback_demo_needs_no_server_of_its_own() {
    let out = Command::new(BIN).args(["demo", "--s3-loopback"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("S3 server (s3s-fs) on http://127.0.0.1:"), "{stdout}");
    assert_eq!(stdout.matches("all equal").count(), 2, "{stdout}");
    assert!(stdout.contains("objects below s3://demo-bucket/team-a:"), "{stdout}");
    assert!(stdout.contains("/chk-1/_metadata"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("InternalError"));
}
