//! The host library as an outside crate takes it: `tests/outside-crate` (not
//! a workspace member, its own lock file, a path dependency on `host/`) is
//! built with cargo, its binary is copied alone into an empty directory
//! (nothing of a build tree is reachable from there) and run twice from it:
//! one process writes three tenants' checkpoints, a second restores them.
//!
//! The build shares this workspace's target directory, so the dependencies
//! the workspace already compiled (wasmtime above all) are reused and only
//! the outside crate is compiled. Cargo holds the target directory's lock
//! while it compiles, not while test binaries run; should a cargo hold it
//! now (another build running), the build moves to a directory of its own
//! instead of waiting for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Three tenants, three checkpoints, each 100 inline bytes and two files of 48 KiB.
const STATE_BYTES: usize = 3 * 3 * (100 + 2 * 48 * 1024);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The target directory this test binary was built in (`<target>/debug/deps/<test>`).
fn own_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<binary>")
        .to_path_buf()
}

/// `cargo build` of the outside crate into `target_dir`; `None` if cargo
/// had to wait for that directory's lock (the build was stopped).
fn cargo_build(target_dir: &Path) -> Option<PathBuf> {
    let manifest = workspace().join("tests/outside-crate/Cargo.toml");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--offline", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // What the outer cargo set for this test must not steer the inner build.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().expect("cargo runs");
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        // The package cache's lock is held briefly; a build directory's for a whole build.
        if line.contains("Blocking waiting for file lock") && !line.contains("package cache") {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "building the outside crate failed:\n{log}");
    if log.contains("Compiling wasmtime v") {
        // Not a failure (a lone `cargo test -p` unifies other features), but
        // in `cargo test --workspace` it costs minutes: say what to align.
        eprintln!(
            "note: the outside crate compiled wasmtime again instead of reusing the workspace's; align the features in tests/outside-crate/Cargo.toml with what `cargo test --workspace` builds"
        );
    }
    Some(target_dir.join("debug/outside-embedder"))
}

fn run(bin: &Path, cwd: &Path, mode: &str) -> String {
    let out = Command::new(bin)
        .current_dir(cwd)
        .args([mode, "data"])
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{mode} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn an_outside_crate_writes_and_a_second_process_restores() {
    let shared = own_target_dir();
    let built = cargo_build(&shared)
        .or_else(|| cargo_build(&shared.join("outside-crate")))
        .expect("a build in a directory of its own does not wait");

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("outside-embedder");
    std::fs::copy(&built, &bin).unwrap();

    let written = run(&bin, dir.path(), "write");
    assert!(
        written.contains(&format!("wrote {STATE_BYTES} bytes of state")),
        "{written}"
    );
    assert_eq!(written.matches("completed at /checkpoints/").count(), 9, "{written}");
    for t in 1..=3 {
        assert!(dir.path().join(format!("data/tenant-{t}")).is_dir());
    }

    let restored = run(&bin, dir.path(), "restore");
    assert!(
        restored.contains(&format!("restored {STATE_BYTES} bytes of state, all equal")),
        "{restored}"
    );
    assert_eq!(restored.matches(", equal").count(), 9, "{restored}");
    assert!(
        restored.contains("Hit"),
        "the second process loads the compiled component from the cache: {restored}"
    );
}

/// The `[profile.dev...]` sections of a Cargo.toml: each header with its
/// settings, comments and blank lines left out.
fn dev_profiles(manifest: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_dev = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dev = line.starts_with("[profile.dev");
            if in_dev {
                sections.push((line.to_string(), Vec::new()));
            }
        } else if in_dev && !line.is_empty() && !line.starts_with('#') {
            sections.last_mut().unwrap().1.push(line.to_string());
        }
    }
    sections.sort();
    sections
}

/// The outside crate builds in the workspace's target directory to reuse its
/// compiled dependencies; that only works if both build them with the same
/// profile (otherwise the test compiles wasmtime and Cranelift a second time).
#[test]
fn the_outside_crate_builds_with_the_workspaces_dev_profile() {
    let read = |p: &str| std::fs::read_to_string(workspace().join(p)).unwrap();
    let ours = dev_profiles(&read("Cargo.toml"));
    assert!(
        ours.iter().any(|(h, _)| h == "[profile.dev]"),
        "the workspace sets a dev profile: {ours:?}"
    );
    assert_eq!(dev_profiles(&read("tests/outside-crate/Cargo.toml")), ours);
}
