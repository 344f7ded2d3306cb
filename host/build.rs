//! Builds the guest component (wasm32-wasip2) so that plain `cargo build`,
//! `cargo test` and `cargo run` do everything, in the manner of wasmtime's
//! `test-programs/artifacts/build.rs`: a nested cargo with its own target
//! directory (the outer one is locked), a clean environment, and
//! `rerun-if-changed` lines from the guest's dep-info file.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use wasm_encoder::{CustomSection, Section};

#[path = "src/wit_section.rs"]
mod wit_section;

const GUEST: &str = "checkpoint-storage-guest";
const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_EMBEDDED_COMPONENT").is_none() {
        // The embedder brings its own component bytes: nothing to build.
        return;
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    // One guest target dir for every host profile (debug, release, clippy),
    // so the guest is built once, not once per OUT_DIR.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-build");

    build_guest(&workspace, &target_dir, &[], "CHECKPOINT_STORAGE_COMPONENT");
    // The task side (no `coordinator`, no `file-merging`), which a tenant
    // instantiates first; same code, its own target dir like the object
    // store artefact below.
    build_guest(
        &workspace,
        &target_dir.with_file_name("guest-build-task"),
        &["--features", "task"],
        "CHECKPOINT_STORAGE_TASK_COMPONENT",
    );
    if env::var_os("CARGO_FEATURE_BLOBSTORE").is_some() {
        // The object store artefact: same code, world selected by feature,
        // its own target dir so that the two artefacts never overwrite each
        // other (and each build stays incremental).
        build_guest(
            &workspace,
            &target_dir.with_file_name("guest-build-blobstore"),
            &["--features", "blobstore"],
            "CHECKPOINT_STORAGE_BLOBSTORE_COMPONENT",
        );
    }
}

/// Builds one guest artefact and exports its path to the library as `env_var`.
fn build_guest(workspace: &Path, target_dir: &Path, extra_args: &[&str], env_var: &str) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", GUEST, "--target", TARGET, "--profile", PROFILE])
        .args(extra_args)
        .arg("--target-dir")
        .arg(target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("failed to run cargo to build the guest component");
    if !status.success() {
        panic!(
            "building the guest component failed ({status}); is the target installed? run `rustup target add {TARGET}`"
        );
    }

    let out = target_dir.join(TARGET).join(PROFILE);
    let wasm = out.join("checkpoint_storage_guest.wasm");
    assert!(wasm.exists(), "guest artefact missing: {}", wasm.display());
    let embedded = PathBuf::from(env::var("OUT_DIR").unwrap()).join(format!("{env_var}.wasm"));
    with_wit_package(&wasm, &workspace.join("wit"), &embedded);
    println!("cargo:rustc-env={env_var}={}", embedded.display());

    rerun_from_dep_info(&out.join("checkpoint_storage_guest.d"), workspace);
}

/// Writes the component at `wasm` to `out` with the WIT package of
/// `wit_dir` appended as a custom section (see `src/wit_section.rs`).
fn with_wit_package(wasm: &Path, wit_dir: &Path, out: &Path) {
    let mut resolve = wit_parser::Resolve::new();
    let (package, _) = resolve
        .push_dir(wit_dir)
        .unwrap_or_else(|e| panic!("parsing {}: {e:#}", wit_dir.display()));
    let encoded =
        wit_component::encode(&resolve, package).unwrap_or_else(|e| panic!("encoding the WIT package: {e:#}"));
    let mut component = std::fs::read(wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    // A custom section is encoded alike in modules and components (id 0),
    // so the core encoder serves; appended last, it is valid there.
    CustomSection {
        name: wit_section::WIT_PACKAGE_SECTION.into(),
        data: encoded.into(),
    }
    .append_to(&mut component);
    std::fs::write(out, component).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Emits `rerun-if-changed` for every source file the guest build read.
fn rerun_from_dep_info(dep_file: &Path, workspace: &Path) {
    match std::fs::read_to_string(dep_file) {
        Ok(contents) => {
            for line in contents.lines() {
                let Some((_, deps)) = line.split_once(": ") else {
                    continue;
                };
                // Paths are space-separated; spaces inside paths are escaped.
                let deps = deps.replace("\\ ", "\u{0}");
                for dep in deps.split(' ').filter(|d| !d.is_empty()) {
                    let dep = dep.replace('\u{0}', " ");
                    if Path::new(&dep).starts_with(workspace) {
                        println!("cargo:rerun-if-changed={dep}");
                    }
                }
            }
        }
        Err(_) => {
            for dir in ["guest", "core", "wit"] {
                println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
            }
        }
    }
    // New files are not in the dep-info yet.
    for dir in ["guest/src", "core/src", "wit", "guest/Cargo.toml", "core/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
}
