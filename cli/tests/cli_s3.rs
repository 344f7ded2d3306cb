//! `demo --s3` and `inspect --s3` against a real S3 server on loopback,
//! credentials from the `AWS_*` variables as a user would set them.

use checkpoint_storage_tests::s3::{ACCESS_KEY, ObjectStore, S3Server, SECRET_KEY};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_checkpoint-storage");

/// The CLI with `args`, pointed at `server` as a user would do it.
fn command(server: &S3Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["--endpoint", &server.endpoint(), "--allow-http"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1");
    cmd
}

/// Runs the CLI expecting it to fail; its stderr.
fn fails(server: &S3Server, args: &[&str]) -> String {
    let out = command(server, args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run(server: &S3Server, args: &[&str]) -> String {
    let out = command(server, args).output().unwrap();
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

/// Writes an object straight to the server, as another process would.
fn put(server: &S3Server, key: &str, data: &[u8]) {
    put_in(server, "demo-bucket", key, data);
}

fn put_in(server: &S3Server, bucket: &str, key: &str, data: &[u8]) {
    let store = server.store(bucket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put(&key.into(), data.to_vec().into())).unwrap();
}

#[test]
fn s3_gc_finds_and_deletes_only_unreferenced_objects_below_the_prefix() {
    let server = S3Server::start(&["demo-bucket"]);
    run(&server, &["demo", "--s3", "s3://demo-bucket/team-a"]);
    let before = server.object_keys("demo-bucket");
    let job = before
        .iter()
        .find_map(|k| k.strip_prefix("team-a/checkpoints/")?.split('/').next())
        .unwrap()
        .to_string();
    let planted = [
        format!("team-a/checkpoints/{job}/chk-1/crashed-writer"),
        format!("team-a/checkpoints/{job}/chk-9/never-finished"),
        format!("team-a/checkpoints/{job}/chk-9/._metadata_temp-1"),
    ];
    for key in &planted {
        put(&server, key, b"orphan");
    }
    // Not the storage's (no job or savepoint directory above it), and
    // another tenant's prefix: never touched.
    put(&server, "team-a/README", b"mine");
    put(&server, &format!("team-b/checkpoints/{job}/chk-1/x"), b"theirs");

    // Default grace: everything is young.
    let out = run(&server, &["gc", "--s3", "s3://demo-bucket/team-a"]);
    assert!(out.contains(" 0 orphans"), "{out}");

    let out = run(
        &server,
        &["gc", "--s3", "s3://demo-bucket/team-a", "--grace", "0s", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["manifests"], 2, "{out}");
    let orphans: Vec<String> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("team-a/{}", o["display"].as_str().unwrap()))
        .collect();
    for key in &planted {
        assert!(orphans.contains(key), "{key} in {orphans:?}");
    }
    assert!(
        orphans
            .iter()
            .all(|k| !k.ends_with("/_metadata") && k != "team-a/README"),
        "{orphans:?}"
    );
    assert_eq!(
        server.object_keys("demo-bucket").len(),
        before.len() + 5,
        "a dry run deletes nothing"
    );

    // Told a container name the tenant does not use, every manifest names
    // objects of another container: gc stops and deletes nothing.
    let err = fails(
        &server,
        &[
            "gc",
            "--s3",
            "s3://demo-bucket/team-a",
            "--container",
            "not-the-tenants",
            "--grace",
            "0s",
            "--delete",
        ],
    );
    assert!(err.contains("s3://demo-bucket/checkpoints/"), "{err}");
    assert!(err.contains("container name"), "{err}");
    assert_eq!(
        server.object_keys("demo-bucket").len(),
        before.len() + 5,
        "nothing deleted"
    );

    run(
        &server,
        &["gc", "--s3", "s3://demo-bucket/team-a", "--grace", "0s", "--delete"],
    );
    let after = server.object_keys("demo-bucket");
    for key in &orphans {
        assert!(!after.contains(key), "{key} deleted");
    }
    for key in ["team-a/README".to_string(), format!("team-b/checkpoints/{job}/chk-1/x")] {
        assert!(after.contains(&key), "{key} kept");
    }
    // Every object a manifest references is still there: the checkpoints
    // still restore.
    assert_eq!(after.iter().filter(|k| k.ends_with("/_metadata")).count(), 2);
    let out = run(&server, &["gc", "--s3", "s3://demo-bucket/team-a", "--grace", "0s"]);
    assert!(out.contains(" 0 orphans"), "{out}");
}

#[test]
fn s3_gc_stops_at_an_unreadable_manifest_and_deletes_nothing() {
    let server = S3Server::start(&["demo-bucket"]);
    let job = "0123456789abcdef0123456789abcdef";
    put(
        &server,
        &format!("team-a/checkpoints/{job}/chk-1/_metadata"),
        b"{ not a manifest",
    );
    put(&server, &format!("team-a/checkpoints/{job}/chk-1/state"), b"state");
    let err = fails(
        &server,
        &["gc", "--s3", "s3://demo-bucket/team-a", "--grace", "0s", "--delete"],
    );
    assert!(err.contains("cannot read the manifest"), "{err}");
    assert!(err.contains("chk-1/_metadata"), "{err}");
    assert_eq!(server.object_keys("demo-bucket").len(), 2, "nothing deleted");
}

/// A tenant's checkpoint in one bucket names shared state in another (a
/// claimed restore): collected together (`--also-s3`), the named object
/// stays and the strays of both buckets go.
#[test]
fn s3_gc_collects_a_tenants_containers_together() {
    use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
    use checkpoint_storage_host::{FileHandle, StateHandle};
    let server = S3Server::start(&["ckpt", "claimed"]);
    let job = "0123456789abcdef0123456789abcdef";
    let named = format!("checkpoints/{job}/shared/s1");
    let manifest = CheckpointManifest {
        job_id: job.into(),
        checkpoint_id: 1,
        states: vec![NamedState {
            name: "s1".into(),
            handle: StateHandle::File(FileHandle {
                path: format!("s3://claimed/{named}"),
                size: 5,
            }),
        }],
    };
    put_in(
        &server,
        "ckpt",
        &format!("t/checkpoints/{job}/chk-1/_metadata"),
        &manifest.to_json(),
    );
    put_in(&server, "ckpt", &format!("t/checkpoints/{job}/shared/stray"), b"stray");
    put_in(&server, "claimed", &format!("t/{named}"), b"state");
    put_in(
        &server,
        "claimed",
        &format!("t/checkpoints/{job}/shared/stray"),
        b"stray",
    );
    let both = [
        "gc",
        "--s3",
        "s3://ckpt/t",
        "--also-s3",
        "s3://claimed/t",
        "--grace",
        "0s",
    ];
    let out = run(&server, &[&both[..], &["--json"]].concat());
    let reports: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reports[0]["target"], "s3://ckpt/t", "{out}");
    assert_eq!(reports[1]["report"]["orphans"].as_array().unwrap().len(), 1, "{out}");
    run(&server, &[&both[..], &["--delete"]].concat());
    assert_eq!(
        server.object_keys("ckpt"),
        [format!("t/checkpoints/{job}/chk-1/_metadata")]
    );
    assert_eq!(
        server.object_keys("claimed"),
        [format!("t/{named}")],
        "named from the other bucket: kept"
    );
    let err = fails(&server, &["gc", "--also-s3", "s3://claimed/t", "t-dir"]);
    assert!(err.contains("--s3"), "{err}");

    // Targets that reach the same objects would take each other's
    // referenced objects for orphans: refused, nothing deleted.
    put_in(&server, "claimed", &format!("t/sp/checkpoints/{job}/shared/x"), b"x");
    let before = server.object_keys("claimed");
    for other in ["s3://claimed/t", "s3://claimed/t/sp=sp", "s3://claimed=x"] {
        let err = fails(
            &server,
            &[
                "gc",
                "--s3",
                "s3://claimed/t",
                "--also-s3",
                other,
                "--grace",
                "0s",
                "--delete",
            ],
        );
        assert!(err.contains("overlap"), "{other}: {err}");
    }
    let err = fails(&server, &["gc", "--s3", "s3://claimed/t", "--also-s3", "s3://ckpt/t="]);
    assert!(err.contains("empty container"), "{err}");
    assert_eq!(server.object_keys("claimed"), before, "nothing deleted");
    // A container named otherwise than its bucket.
    let renamed = run(
        &server,
        &[
            "gc",
            "--s3",
            "s3://ckpt/t",
            "--also-s3",
            "s3://claimed/t=claimed",
            "--grace",
            "0s",
            "--json",
        ],
    );
    assert!(renamed.contains("\"target\""), "{renamed}");
}
