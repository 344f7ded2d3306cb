//! Faults under a live tenant: its directory deleted, a full disk, a
//! read-only directory. Each is a typed storage error; no handle comes back
//! for partial data, no partial file stays, and handles returned before
//! remain readable.

use checkpoint_storage_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIG: usize = 200_000;

/// The store's error for a refused write or close of `data`, after which no
/// handle comes back and the stream's file is gone once it is dropped.
fn refused_write(t: &TestTenant, mut stream: StateOutputStream, data: &[u8], dir: &Path) -> StorageError {
    let e = match stream.write(data) {
        Err(Error::Storage(e)) => {
            assert!(stream.close_and_get_handle().is_err(), "no handle after a failure");
            e
        }
        Err(other) => panic!("not a storage error: {other}"),
        Ok(()) => storage_error(stream.close_and_get_handle()),
    };
    assert!(
        files_in(dir).is_empty(),
        "partial file left in {}: {:?}",
        dir.display(),
        files_in(dir)
    );
    assert!(!t.tenant.is_poisoned());
    e
}

#[test]
fn directory_deleted_under_a_live_stream() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let view = t.view();
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    // Handles returned before the fault.
    let shared = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(BIG, 1),
    )
    .unwrap();
    let inline = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(100, 2),
    )
    .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    stream.write(&bytes(1_000, 3)).unwrap(); // still buffered
    let chk = t.host(&format!("{}/chk-1", t.job));
    std::fs::remove_dir_all(&chk).unwrap();
    let e = refused_write(&t, stream, &bytes(BIG, 3), &chk);
    assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
    assert!(!chk.exists(), "the deleted directory is not re-created");
    assert_eq!(t.read_handle(&shared).unwrap(), bytes(BIG, 1));
    assert_eq!(t.read_handle(&inline).unwrap(), bytes(100, 2));
    // The tenant goes on: the coordinator re-creates the directory.
    std::fs::create_dir(&chk).unwrap();
    let h = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(BIG, 4),
    )
    .unwrap();
    assert_eq!(t.read_handle(&h).unwrap(), bytes(BIG, 4));
}

#[test]
fn directory_deleted_after_the_stream_spilled_to_a_file() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    let kept = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(BIG, 1),
    )
    .unwrap();
    let mut stream = f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap();
    stream.write(&bytes(BIG, 2)).unwrap(); // over the buffer: now in a file
    let chk = t.host(&format!("{}/chk-1", t.job));
    assert_eq!(files_in(&chk).len(), 1, "the stream spilled to a file");
    std::fs::remove_dir_all(&chk).unwrap();
    // The open file still takes bytes; closing must not hand out a handle
    // to a file no one can read.
    let _ = stream.write(&bytes(1_000, 3));
    let e = storage_error(stream.close_and_get_handle());
    assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
    assert!(e.message.contains("deleted while the stream was open"), "{e:?}");
    assert!(!chk.exists(), "the deleted directory is not re-created");
    assert_eq!(t.read_handle(&kept).unwrap(), bytes(BIG, 1));
    assert!(!t.tenant.is_poisoned());
}

/// Runs this test binary's `test` in a child process with `RLIMIT_FSIZE`
/// of `limit` bytes and SIGXFSZ ignored, so that writes past it fail with
/// EFBIG (a full disk, as the process sees it). Returns the child's output.
fn run_child_with_file_size_limit(test: &str, limit: u64) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("FAULTS_CHILD", "1");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    text
}

/// In the child: small state fits, large state is refused with `io`.
fn full_disk_scenario() {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    let small = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(40_000, 1),
    )
    .unwrap();
    let chk = t.host(&format!("{}/chk-1", t.job));
    let shared = t.host(&format!("{}/shared", t.job));
    let e = refused_write(
        &t,
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(BIG, 2),
        &shared,
    );
    assert_eq!(e.code, ErrorCode::Io, "{e:?}");
    // Written in chunks, the failure comes at some write; same outcome.
    let mut stream = f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap();
    let mut failed = None;
    for chunk in bytes(BIG, 3).chunks(8_192) {
        if let Err(e) = stream.write(chunk) {
            failed = Some(e);
            break;
        }
    }
    let e = match failed {
        Some(e) => {
            assert!(stream.close_and_get_handle().is_err(), "no handle after a failure");
            e
        }
        None => stream.close_and_get_handle().unwrap_err(),
    };
    assert_eq!(e.code(), Some(ErrorCode::Io), "{e}");
    assert!(files_in(&shared).is_empty());
    assert_eq!(files_in(&chk).len(), 1);
    assert_eq!(t.read_handle(&small).unwrap(), bytes(40_000, 1));
    println!("FULL-DISK-SCENARIO-PASSED");
}

#[test]
fn full_disk_is_an_io_error_without_partial_files() {
    if std::env::var_os("FAULTS_CHILD").is_some() {
        full_disk_scenario();
        return;
    }
    let out = run_child_with_file_size_limit("full_disk_is_an_io_error_without_partial_files", 64 << 10);
    assert!(out.contains("FULL-DISK-SCENARIO-PASSED"), "{out}");
}

/// A mount that is unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], at: &Path) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| Mount(at.to_path_buf()))
}

#[test]
fn full_tmpfs_is_an_io_error_without_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], dir.path()) else {
        println!("SKIPPED: cannot mount a tmpfs here (needs CAP_SYS_ADMIN); the RLIMIT_FSIZE test covers a full disk");
        return;
    };
    let tenant = plugin().tenant(TenantConfig::new(dir.path())).unwrap();
    let t = TestTenant {
        tenant,
        job: job_id(),
        dir: tempfile::tempdir().unwrap(),
    };
    t.init_job_dirs(&[1]);
    let f = t.default_factory(1);
    let small = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(300_000, 1),
    )
    .unwrap();
    let shared = t.host(&format!("{}/shared", t.job));
    let e = refused_write(
        &t,
        f.create_checkpoint_state_output_stream(StateScope::Shared).unwrap(),
        &bytes(2 << 20, 2),
        &shared,
    );
    assert_eq!(e.code, ErrorCode::Io, "{e:?}");
    assert_eq!(t.read_handle(&small).unwrap(), bytes(300_000, 1));
}

#[test]
fn read_only_directory_is_refused_without_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_id();
    let Some(_mount) = mount(&["-t", "tmpfs", "-o", "size=4m", "tmpfs"], dir.path()) else {
        println!("SKIPPED: cannot mount here (needs CAP_SYS_ADMIN); root ignores permission bits");
        return;
    };
    for d in ["shared", "taskowned", "chk-1"] {
        std::fs::create_dir_all(dir.path().join(&job).join(d)).unwrap();
    }
    let existing = dir.path().join(&job).join("chk-1/existing");
    std::fs::write(&existing, bytes(1000, 9)).unwrap();
    // Not a new mount: `_mount` unmounts the whole thing.
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(remounted.success(), "remounting read-only");
    let tenant = plugin().tenant(TenantConfig::new(dir.path())).unwrap();
    let t = TestTenant {
        tenant,
        job,
        dir: tempfile::tempdir().unwrap(),
    };
    let view = t.view();
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let chk = t.host(&format!("{}/chk-1", t.job));
    let e = refused_write(
        &t,
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(BIG, 1),
        &t.host(&format!("{}/shared", t.job)),
    );
    // wasmtime-wasi reports EROFS as a plain I/O error.
    assert!(matches!(e.code, ErrorCode::Io | ErrorCode::PermissionDenied), "{e:?}");
    assert!(e.message.contains("Could not open output stream"), "{}", e.message);
    // Inline state needs no disk and still works.
    let h = write_state(
        f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
        &bytes(100, 2),
    );
    assert!(matches!(h, Some(StateHandle::ByteStream(_))));
    // Duplication into a read-only directory is refused too.
    let dup = StateHandle::File(FileHandle {
        path: format!("/checkpoints/{}/chk-1/existing", t.job),
        size: 1000,
    });
    let e = storage_error(
        view.create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .duplicate(&[dup]),
    );
    assert!(matches!(e.code, ErrorCode::Io | ErrorCode::PermissionDenied), "{e:?}");
    assert_eq!(files_in(&chk), ["existing"]);
    assert_eq!(std::fs::read(&existing).unwrap(), bytes(1000, 9));
}
