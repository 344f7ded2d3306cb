//! A second runtime: the component under jco (Node.js), so that `cargo test
//! --workspace` also checks it outside wasmtime. The test itself is
//! JavaScript (`tests/node/*.test.mjs`, `node:test`); this file installs its
//! packages when needed and runs it, failing with Node's and npm's output.
//!
//! Needs Node.js 20 or newer with npm; the first run installs jco and
//! preview2-shim from the npm registry (`npm ci`, exact versions of
//! `tests/node/package-lock.json`), later runs only when the lock file
//! changes. See `docs/other-runtimes.md`.

use checkpoint_storage_host::EMBEDDED_COMPONENT;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

const MIN_NODE_MAJOR: u32 = 20;
const INSTALL_NODE: &str = "install Node.js 20 or newer (with npm): https://nodejs.org/en/download";

/// The workspace root (this crate lives in `<root>/tests`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// The component the host library embeds, written to a file for jco (the
/// same bytes every wasmtime tenant in these tests runs). The temporary
/// directory lives as long as the returned guard.
fn component_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("checkpoint_storage_guest.wasm");
    std::fs::write(&path, EMBEDDED_COMPONENT).expect("writing the component");
    (dir, path)
}

fn output_text(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; panics with its output unless it exits successfully.
/// `missing` is the message when the program itself cannot be started.
fn run(cmd: &mut Command, what: &str, missing: &str) -> Output {
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{missing} ({e})"),
        Err(e) => panic!("{what}: could not start it: {e}"),
    };
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        output_text(&out)
    );
    out
}

/// Node.js must be there and new enough: no silent skip.
fn check_node() -> String {
    let out = run(
        Command::new("node").arg("--version"),
        "node --version",
        &format!("Node.js was not found on PATH; the jco test needs it: {INSTALL_NODE}"),
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("could not read the Node.js version from {version:?}"));
    assert!(
        major >= MIN_NODE_MAJOR,
        "Node.js {version} is too old for the jco test: {INSTALL_NODE}"
    );
    version
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// `npm ci` when `node_modules` is missing or older than the lock file.
/// npm stamps every install with `node_modules/.package-lock.json`.
fn install_packages(node_dir: &Path) {
    let lock = node_dir.join("package-lock.json");
    let lock_time = modified(&lock).unwrap_or_else(|| panic!("{} is missing", lock.display()));
    let installed = modified(&node_dir.join("node_modules").join(".package-lock.json"));
    if installed.is_some_and(|t| t >= lock_time) {
        return;
    }
    eprintln!("jco test: installing tests/node packages (npm ci)...");
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(node_dir),
        "npm ci in tests/node",
        &format!("npm was not found on PATH; the jco test needs it: {INSTALL_NODE}"),
    );
}

#[test]
fn the_component_runs_under_jco_in_node() {
    let root = workspace_root();
    let node_dir = root.join("tests").join("node");
    let (_component_dir, component) = component_file();
    let version = check_node();
    install_packages(&node_dir);

    let out = run(
        Command::new("node")
            .args(["--test", "--test-reporter=spec", "--test-timeout=120000", "tests/node/"])
            .current_dir(&root)
            .env("CHECKPOINT_STORAGE_COMPONENT", &component)
            // Jco's generated code logs every call when this is set.
            .env_remove("JCO_DEBUG"),
        &format!("node --test tests/node/ (Node.js {version})"),
        &format!("Node.js was not found on PATH; the jco test needs it: {INSTALL_NODE}"),
    );
    // Shown with `-- --nocapture`: the test list and the timings (not asserted).
    println!(
        "Node.js {version}, component {}\n{}",
        component.display(),
        output_text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The spec reporter's summary: every test passed, none was skipped.
    for (label, want_zero) in [
        ("fail", true),
        ("skipped", true),
        ("todo", true),
        ("cancelled", true),
        ("pass", false),
    ] {
        let count = stdout
            .lines()
            .find_map(|l| l.trim_start_matches(['ℹ', ' ']).strip_prefix(&format!("{label} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no '{label}' count in node's summary:\n{}", output_text(&out)));
        assert_eq!(count == 0, want_zero, "{label} {count}:\n{}", output_text(&out));
    }
}
