//! Isolation through the host, beyond `sandbox.rs`: escaping checkpoint
//! directories, crafted references, handles naming other tenants' files and
//! symlinks the host planted. Every attempt is a typed error (never a trap)
//! and nothing outside the tenant's directory changes.

use checkpoint_storage_tests::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A root holding the tenant's directory and, next to it, `outside/` with
/// files the tenant must never reach.
struct Arena {
    root: tempfile::TempDir,
    tenant: Tenant,
    job: String,
    before: BTreeMap<PathBuf, Vec<u8>>,
}

/// Every file below `dir` with its bytes (symlinks not followed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(p.clone(), b"<dir>".to_vec());
                walk(&p, out);
            } else if ft.is_symlink() {
                out.insert(
                    p.clone(),
                    std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes(),
                );
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

impl Arena {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::fs::write(outside.join("sub/deeper"), b"deeper").unwrap();
        let dir = root.path().join("tenant");
        std::fs::create_dir(&dir).unwrap();
        let tenant = plugin().tenant(TenantConfig::new(&dir)).unwrap();
        let job = job_id();
        for d in ["shared", "taskowned", "chk-1"] {
            std::fs::create_dir_all(dir.join(&job).join(d)).unwrap();
        }
        let before = snapshot(&outside);
        Arena {
            root,
            tenant,
            job,
            before,
        }
    }

    fn outside(&self) -> PathBuf {
        self.root.path().join("outside")
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.tenant.dir().join(rel)
    }

    fn view(&self) -> WorkerView {
        self.tenant
            .open_worker_view(&StorageConfig::filesystem(&self.job))
            .unwrap()
    }

    /// Nothing outside the tenant's directory changed, and the tenant is alive.
    fn assert_untouched(&self) {
        assert_eq!(snapshot(&self.outside()), self.before, "outside/ changed");
        let mut names: Vec<_> = std::fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["outside", "tenant"], "nothing new next to the tenant");
        assert!(!self.tenant.is_poisoned());
    }
}

/// A storage error with one of the codes a refusal may have.
fn refusal<T: std::fmt::Debug>(r: checkpoint_storage_host::Result<T>, what: &str) -> StorageError {
    match r {
        Err(Error::Storage(e)) => {
            assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidArgument
                        | ErrorCode::InvalidReference
                        | ErrorCode::Unsupported
                        | ErrorCode::NotFound
                        | ErrorCode::PermissionDenied
                ),
                "{what}: unexpected code {e:?}"
            );
            assert!(!e.message.is_empty(), "{what}: no message");
            e
        }
        other => panic!("{what}: expected a storage error, got {other:?}"),
    }
}

/// Writes file-sized state through `stream`: the write or the close must be
/// refused, and no handle comes back.
fn write_is_refused(mut stream: StateOutputStream, what: &str) {
    let big = bytes(50_000, 1);
    match stream.write(&big) {
        Err(e) => {
            refusal::<()>(Err(e), what);
            assert!(
                stream.close_and_get_handle().is_err(),
                "{what}: a handle after a failed write"
            );
        }
        Ok(()) => {
            refusal(stream.close_and_get_handle(), what);
        }
    }
}

#[test]
fn checkpoint_directories_outside_the_tenant_are_refused() {
    let a = Arena::new();
    let outside = a.outside().to_string_lossy().into_owned();
    for dir in [
        "/",
        "/tmp",
        "/checkpoints/..",
        "/checkpoints/../outside",
        "/checkpoints/a/../../outside",
        "/checkpoints/./../../",
        "//checkpoints/../outside",
        "file:///checkpoints/../outside",
        "file:/etc",
        "hdfs://namenode:8020/checkpoints",
        "s3://bucket/checkpoints",
        "checkpoints",
        "../outside",
        "",
        "/checkpoints\0/x",
        outside.as_str(),
    ] {
        let config = StorageConfig {
            checkpoints_dir: Some(dir.to_string()),
            ..StorageConfig::filesystem(&a.job)
        };
        refusal(a.tenant.open_worker_view(&config), dir);
    }
    a.assert_untouched();
}

#[test]
fn crafted_references_are_refused_or_stay_inside() {
    let a = Arena::new();
    let view = a.view();
    let outside = a.outside().to_string_lossy().into_owned();
    let mut magic = REFERENCE_MAGIC_NUMBER.to_vec();
    let encoded = |tail: &[u8]| {
        let mut b = REFERENCE_MAGIC_NUMBER.to_vec();
        b.extend_from_slice(tail);
        LocationReference::Encoded(b)
    };
    let refused: Vec<(String, LocationReference)> = vec![
        ("magic only".into(), LocationReference::Encoded(magic.clone())),
        ("empty".into(), LocationReference::Encoded(vec![])),
        (
            "wrong magic".into(),
            LocationReference::Encoded(b"\x05\x5F\x3F\x19/checkpoints/x".to_vec()),
        ),
        ("short magic".into(), LocationReference::Encoded(vec![0x05, 0x5F])),
        ("NUL".into(), encoded(b"/checkpoints/x\0/../../outside")),
        ("invalid UTF-8".into(), encoded(b"/checkpoints/\xff\xfe")),
        ("relative".into(), encoded(b"outside/secret")),
        ("dotdot".into(), encoded(b"/checkpoints/../outside")),
        ("dotdot deep".into(), encoded(b"/checkpoints/x/y/../../../outside/sub")),
        ("host path".into(), encoded(outside.as_bytes())),
        ("file with host".into(), encoded(b"file://evil/checkpoints/x")),
        ("file dotdot".into(), encoded(b"file:/checkpoints/../../outside")),
        ("other scheme".into(), encoded(b"hdfs://nn:8020/checkpoints/x")),
        ("s3".into(), encoded(b"s3://bucket/x")),
        ("root".into(), encoded(b"/")),
        ("etc".into(), encoded(b"/etc/passwd")),
        ("mount prefix".into(), encoded(b"/checkpointsX/y")),
    ];
    for (what, reference) in &refused {
        refusal(view.resolve_checkpoint_storage_location(1, reference), what);
    }
    // Odd but inside: names that look like escapes are only names.
    magic.extend_from_slice(b"/checkpoints/sp/..%2F..%2Foutside");
    let inside: Vec<(&str, LocationReference)> = vec![
        ("percent-encoded dotdot", LocationReference::Encoded(magic)),
        ("backslashes", encoded(b"/checkpoints/sp\\..\\..\\outside")),
        (
            "fullwidth dots",
            encoded("/checkpoints/sp/\u{ff0e}\u{ff0e}/x".as_bytes()),
        ),
        ("dots inside", encoded(b"/checkpoints/sp/a/../b/./c")),
    ];
    for (what, reference) in &inside {
        let f = view.resolve_checkpoint_storage_location(1, reference).unwrap();
        let dir = f.checkpoint_directory().unwrap();
        let host = a
            .tenant
            .host_path(&dir)
            .unwrap_or_else(|| panic!("{what}: {dir} is outside"));
        std::fs::create_dir_all(&host).unwrap();
        let h = write_state(
            f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
            &bytes(50_000, 2),
        )
        .unwrap();
        let file = a.tenant.host_path(h.file_path().unwrap()).unwrap();
        assert!(file.starts_with(a.tenant.dir()), "{what}: {}", file.display());
        assert_eq!(std::fs::read(&file).unwrap(), bytes(50_000, 2), "{what}");
    }
    a.assert_untouched();
}

#[test]
fn handles_naming_another_tenants_files_are_refused() {
    // Two tenants side by side: b is handed paths to a's file every way we know.
    let a = Arena::new();
    let b_dir = a.root.path().join("outside/b");
    std::fs::create_dir(&b_dir).unwrap();
    let b = plugin().tenant(TenantConfig::new(&b_dir)).unwrap();
    std::fs::create_dir_all(b_dir.join(&a.job).join("taskowned")).unwrap();
    std::fs::create_dir_all(b_dir.join(&a.job).join("chk-1")).unwrap();
    let a_handle = write_state(a.view().create_task_owned_state_stream().unwrap(), &bytes(40_000, 3)).unwrap();
    let a_guest = a_handle.file_path().unwrap().to_string();
    let a_host = a.tenant.host_path(&a_guest).unwrap();
    let a_rel = a_host
        .strip_prefix(a.tenant.dir())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let b_view = b.open_worker_view(&StorageConfig::filesystem(&a.job)).unwrap();
    let toolset = b_view.create_task_owned_checkpoint_state_toolset().unwrap();
    let factory = b_view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    let b_before = snapshot(&b_dir);

    let file = |path: String| StateHandle::File(FileHandle { path, size: 40_000 });
    let handles = vec![
        file(a_host.to_string_lossy().into_owned()),
        file(format!("file://{}", a_host.display())),
        file(format!("/checkpoints/../../tenant/{a_rel}")),
        file(format!("/checkpoints/../{a_rel}")),
        file(format!("/checkpoints/{}/../../../tenant/{a_rel}", a.job)),
        file(format!("../../tenant/{a_rel}")),
        file(format!("/checkpoints/x/\0/../{a_rel}")),
        StateHandle::RelativeFile(RelativeFileHandle {
            path: format!("/checkpoints/../../tenant/{a_rel}"),
            relative_path: "../../../tenant".into(),
            size: 40_000,
        }),
        StateHandle::RelativeFile(RelativeFileHandle {
            path: a_host.to_string_lossy().into_owned(),
            relative_path: a_rel.clone(),
            size: 40_000,
        }),
    ];
    for h in &handles {
        let what = format!("{h}");
        refusal(toolset.duplicate(std::slice::from_ref(h)), &what);
        refusal(factory.duplicate(std::slice::from_ref(h), StateScope::Exclusive), &what);
        assert!(
            !matches!(toolset.can_fast_duplicate(h), Ok(true)),
            "{what}: fast duplication offered"
        );
        assert!(
            !matches!(factory.can_fast_duplicate(h, StateScope::Shared), Ok(true)),
            "{what}: fast duplication offered"
        );
    }
    // The whole batch at once is refused too, with nothing half done.
    refusal(toolset.duplicate(&handles), "batch");
    assert_eq!(snapshot(&b_dir), b_before, "b's directory unchanged");
    assert_eq!(
        a.tenant.host_path(&a_guest).map(std::fs::read).unwrap().unwrap(),
        bytes(40_000, 3)
    );
    assert!(!b.is_poisoned());
}

#[test]
fn symlinked_directories_pointing_outside_cannot_be_written_through() {
    for (what, link, target, make_view) in [
        ("shared dir", "shared", "outside", 0),
        ("taskowned dir", "taskowned", "outside", 1),
        ("job dir", "", "outside", 0),
        ("relative link", "chk-1", "../../outside/sub", 2),
    ] {
        let a = Arena::new();
        let link_path = if link.is_empty() {
            a.host(&a.job)
        } else {
            a.host(&format!("{}/{link}", a.job))
        };
        std::fs::remove_dir_all(&link_path).unwrap();
        let target = if target == "outside" {
            a.outside()
        } else {
            PathBuf::from(target)
        };
        std::os::unix::fs::symlink(&target, &link_path).unwrap();
        let view = a.view();
        let stream = match make_view {
            1 => view.create_task_owned_state_stream(),
            scope => view
                .resolve_checkpoint_storage_location(1, &LocationReference::Default)
                .and_then(|f| {
                    f.create_checkpoint_state_output_stream(if scope == 0 {
                        StateScope::Shared
                    } else {
                        StateScope::Exclusive
                    })
                }),
        };
        match stream {
            Ok(s) => write_is_refused(s, what),
            Err(e) => {
                refusal::<()>(Err(e), what);
            }
        }
        a.assert_untouched();
    }
}

#[test]
fn symlinked_savepoint_and_checkpoints_directories_cannot_be_written_through() {
    let a = Arena::new();
    std::os::unix::fs::symlink(a.outside(), a.host("savepoint")).unwrap();
    let f = a
        .view()
        .resolve_checkpoint_storage_location(1, &LocationReference::encode_path("/checkpoints/savepoint"));
    match f {
        Ok(f) => write_is_refused(
            f.create_checkpoint_state_output_stream(StateScope::Exclusive).unwrap(),
            "savepoint",
        ),
        Err(e) => {
            refusal::<()>(Err(e), "savepoint");
        }
    }
    // The whole checkpoints directory behind a link.
    std::os::unix::fs::symlink(a.outside(), a.host("base")).unwrap();
    let config = StorageConfig {
        checkpoints_dir: Some("/checkpoints/base".into()),
        ..StorageConfig::filesystem(&a.job)
    };
    match a
        .tenant
        .open_worker_view(&config)
        .and_then(|view| view.create_task_owned_state_stream())
    {
        Ok(s) => write_is_refused(s, "checkpoints dir"),
        Err(e) => {
            refusal::<()>(Err(e), "checkpoints dir");
        }
    }
    a.assert_untouched();
}

#[test]
fn a_symlinked_file_behind_a_relative_handle_cannot_be_duplicated() {
    let a = Arena::new();
    let name = format!("{}/chk-1/state", a.job);
    std::os::unix::fs::symlink(a.outside().join("secret"), a.host(&name)).unwrap();
    let h = StateHandle::RelativeFile(RelativeFileHandle {
        path: format!("/checkpoints/{name}"),
        relative_path: "state".into(),
        size: 6,
    });
    let view = a.view();
    let e = refusal(
        view.create_task_owned_checkpoint_state_toolset()
            .unwrap()
            .duplicate(std::slice::from_ref(&h)),
        "toolset",
    );
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{e:?}");
    let f = view
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .unwrap();
    refusal(f.duplicate(std::slice::from_ref(&h), StateScope::Shared), "factory");
    assert!(files_in(&a.host(&format!("{}/shared", a.job))).is_empty());
    assert!(files_in(&a.host(&format!("{}/taskowned", a.job))).is_empty());
    a.assert_untouched();
}
