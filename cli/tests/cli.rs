//! The CLI as a user runs it: `demo` writes, restores and verifies; `inspect`
//! reads the demo's output back (text and JSON).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_checkpoint-storage");

#[test]
fn demo_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--tenants", "2", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("all equal").count(),
        4,
        "two tenants restore a checkpoint and a savepoint each"
    );
    assert!(stdout.contains("RelativeFileStateHandle State: /checkpoints/"));

    for tenant in ["tenant-1", "tenant-2"] {
        let out = Command::new(BIN)
            .arg("inspect")
            .arg(dir.path().join(tenant))
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success());
        let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let jobs = inv["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0]["checkpoints"][0]["id"], 1);
        assert!(jobs[0]["checkpoints"][0]["metadata_bytes"].as_u64().unwrap() > 0);
        assert_eq!(
            jobs[0]["checkpoints"][0]["state"]["files"], 1,
            "the large exclusive state"
        );
        assert_eq!(
            jobs[0]["task_owned"]["files"], 2,
            "the task-owned stream and the duplicate"
        );
        let savepoints = inv["savepoints"].as_array().unwrap();
        assert_eq!(savepoints.len(), 1);
        assert!(savepoints[0]["metadata_bytes"].as_u64().unwrap() > 0);

        let out = Command::new(BIN)
            .arg("inspect")
            .arg(dir.path().join(tenant))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("checkpoint      1:") && text.contains("savepoint savepoints/savepoint-"),
            "{text}"
        );
    }
}

#[test]
fn inspect_of_a_missing_directory_fails_clearly() {
    let out = Command::new(BIN)
        .args(["inspect", "/definitely/not/here"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot inspect /definitely/not/here"));
}

/// `bench` with `args`: it must fail at once with a message in words.
fn bench_refuses(args: &[&str]) -> String {
    let out = Command::new(BIN).arg("bench").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} must be a usage error: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("overflow"), "{stderr}");
    assert!(!stderr.contains("18446744073709551615"), "{stderr}");
    stderr
}

#[test]
fn out_of_range_bench_values_are_refused_in_words() {
    let e = bench_refuses(&["--stream-size", "8796093022208"]);
    assert!(
        e.contains("'--stream-size <STREAM_SIZE>': must be from 1 to 1024 MiB"),
        "{e}"
    );
    let e = bench_refuses(&["--size", "0"]);
    assert!(e.contains("'--size <SIZE>': must be from 1 to 65536 MiB"), "{e}");
    let e = bench_refuses(&["--size=-3"]);
    assert!(e.contains("expected a whole number of MiB from 1 to 65536"), "{e}");
    let e = bench_refuses(&["--tenants", "10,0"]);
    assert!(e.contains("must be from 1 to 100000 tenants"), "{e}");
    let e = bench_refuses(&["--tenants", "4294967296"]);
    assert!(e.contains("must be from 1 to 100000 tenants"), "{e}");
    let e = bench_refuses(&["--repeat", "0"]);
    assert!(e.contains("'--repeat <REPEAT>': must be from 1 to 100 runs"), "{e}");
    let e = bench_refuses(&["--repeat", "two"]);
    assert!(e.contains("expected a whole number of runs from 1 to 100"), "{e}");
}

#[test]
fn a_stream_larger_than_the_size_is_refused() {
    let out = Command::new(BIN)
        .args(["bench", "--size", "2", "--stream-size", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--stream-size (3 MiB) must not be larger than --size (2 MiB)"),
        "{stderr}"
    );
}

/// The installed binary needs nothing of the build tree: copied alone to
/// an empty directory and run from there, `demo` loads the component
/// embedded in it and restores everything.
#[test]
fn a_copied_binary_runs_the_demo_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("checkpoint-storage");
    std::fs::copy(BIN, &bin).unwrap();
    let out = Command::new(&bin)
        .current_dir(dir.path())
        .args(["demo", "--tenants", "1", "--dir", "out"])
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("all equal").count(),
        2,
        "one tenant restores a checkpoint and a savepoint: {stdout}"
    );
    assert!(dir.path().join("out/tenant-1").is_dir(), "the demo wrote below the cwd");
}
