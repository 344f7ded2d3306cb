//! The compiled-component cache: a second load deserialises instead of
//! compiling; anything in the cache this code did not write for the same
//! component and engine configuration is refused and rebuilt, never loaded.

use checkpoint_storage_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The full component alone, one cache file: the cache's own behaviour.
/// `Plugin::load_with` (two components, two files) has its own test.
fn single(options: &PluginOptions) -> Result<Plugin> {
    Plugin::from_bytes_with(EMBEDDED_COMPONENT, options)
}

fn load(cache: &Path) -> Plugin {
    single(&PluginOptions::default().with_cache_dir(cache)).expect("plugin loads")
}

/// The cache files (`*.cwasm`) in `dir`.
fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

fn the_cache_file(dir: &Path) -> PathBuf {
    let files = cache_files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn rejected(plugin: &Plugin) -> String {
    match plugin.cache_status() {
        CacheStatus::Miss {
            rejected: Some(reason),
            stored: true,
        } => reason.clone(),
        other => panic!("expected a rejected cache file, got {other:?}"),
    }
}

/// The plugin works: a tenant writes file state and it reads back, and it
/// initialises a checkpoint.
fn works(plugin: &Plugin) {
    let dir = tempfile::tempdir().unwrap();
    let job = job_id();
    std::fs::create_dir_all(dir.path().join(&job).join("taskowned")).unwrap();
    let t = plugin.tenant(TenantConfig::new(dir.path())).unwrap();
    let view = t.open_worker_view(&StorageConfig::filesystem(&job)).unwrap();
    let h = write_state(view.create_task_owned_state_stream().unwrap(), &bytes(30_000, 5)).unwrap();
    assert_eq!(
        std::fs::read(t.host_path(h.file_path().unwrap()).unwrap()).unwrap(),
        bytes(30_000, 5)
    );
    // And the coordinator side (with `Plugin::load_with`, the other
    // component).
    t.open_coordinator_view(&StorageConfig::filesystem(&job), None)
        .unwrap()
        .initialize_location_for_checkpoint(7)
        .unwrap();
    assert!(dir.path().join(&job).join("chk-7").is_dir());
}

#[test]
fn no_cache_dir_means_no_cache() {
    assert_eq!(Plugin::load().unwrap().cache_status(), &CacheStatus::Disabled);
}

#[test]
fn second_load_comes_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("nested/cache");
    let first = load(&dir);
    assert_eq!(
        first.cache_status(),
        &CacheStatus::Miss {
            rejected: None,
            stored: true
        }
    );
    let file = the_cache_file(&dir);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let second = load(&dir);
    assert_eq!(second.cache_status(), &CacheStatus::Hit);
    works(&second);
    works(&first);
    assert_eq!(cache_files(&dir), vec![file], "no temporary files left");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn the_embedded_plugin_caches_both_of_its_components() {
    let cache = tempfile::tempdir().unwrap();
    let options = PluginOptions::default().with_cache_dir(cache.path());
    let first = Plugin::load_with(&options).unwrap();
    assert_eq!(
        first.cache_status(),
        &CacheStatus::Miss {
            rejected: None,
            stored: true
        }
    );
    // The task side and the full component.
    let files = cache_files(cache.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let second = Plugin::load_with(&options).unwrap();
    assert_eq!(second.cache_status(), &CacheStatus::Hit);
    works(&second);
    // One of the two missing: that one is compiled and stored again.
    std::fs::remove_file(&files[0]).unwrap();
    let third = Plugin::load_with(&options).unwrap();
    assert_eq!(
        third.cache_status(),
        &CacheStatus::Miss {
            rejected: None,
            stored: true
        }
    );
    assert_eq!(cache_files(cache.path()), files);
    works(&third);
}

#[test]
fn engine_configuration_and_component_are_part_of_the_key() {
    let (cache, _) = seeded_cache();
    let pooled = single(&PluginOptions::pooling(4).with_cache_dir(cache.path())).unwrap();
    assert!(matches!(
        pooled.cache_status(),
        CacheStatus::Miss {
            rejected: None,
            stored: true
        }
    ));
    assert_eq!(cache_files(cache.path()).len(), 2);
    works(&pooled);

    // The same component with one more custom section is another component.
    let mut other = EMBEDDED_COMPONENT.to_vec();
    let name = b"cache-test";
    other.extend([0, (1 + name.len() + 3) as u8, name.len() as u8]);
    other.extend(name);
    other.extend(b"abc");
    let other_path = cache.path().join("other.wasm");
    std::fs::write(&other_path, &other).unwrap();
    let options = PluginOptions::default().with_cache_dir(cache.path());
    let p = Plugin::from_file_with(&other_path, &options).unwrap();
    assert!(matches!(
        p.cache_status(),
        CacheStatus::Miss {
            rejected: None,
            stored: true
        }
    ));
    assert_eq!(cache_files(cache.path()).len(), 3);
    assert_eq!(
        Plugin::from_file_with(&other_path, &options).unwrap().cache_status(),
        &CacheStatus::Hit
    );
    assert_eq!(load(cache.path()).cache_status(), &CacheStatus::Hit);
}

/// A valid cache file for the default options, compiled once per test
/// binary (each compile costs about a second in a debug build).
fn seed_file() -> &'static Path {
    static SEED: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, file) = SEED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        load(dir.path());
        let file = the_cache_file(dir.path());
        (dir, file)
    });
    file
}

/// A cache directory holding a copy of the seed file, and that copy.
fn seeded_cache() -> (tempfile::TempDir, PathBuf) {
    let cache = tempfile::tempdir().unwrap();
    let file = cache.path().join(seed_file().file_name().unwrap());
    std::fs::copy(seed_file(), &file).unwrap();
    assert_eq!(
        load(cache.path()).cache_status(),
        &CacheStatus::Hit,
        "the seed is valid"
    );
    (cache, file)
}

/// Damages the cache file, checks the next load refuses it, rebuilds it and
/// works, and the load after that is a hit again.
fn refused_then_rebuilt(damage: impl FnOnce(&Path), reason: &str) {
    let (cache, file) = seeded_cache();
    damage(&file);
    check_refused_then_rebuilt(cache.path(), reason);
}

fn check_refused_then_rebuilt(cache: &Path, reason: &str) {
    let p = load(cache);
    let why = rejected(&p);
    assert!(why.contains(reason), "{why}");
    works(&p);
    assert_eq!(load(cache).cache_status(), &CacheStatus::Hit);
}

#[test]
fn a_corrupt_artefact_is_refused_and_rebuilt() {
    refused_then_rebuilt(
        |f| {
            let mut b = std::fs::read(f).unwrap();
            let last = b.len() - 1000;
            b[last] ^= 0x55;
            std::fs::write(f, b).unwrap();
        },
        "checksum mismatch",
    );
}

#[test]
fn a_truncated_file_is_refused_and_rebuilt() {
    refused_then_rebuilt(
        |f| {
            let b = std::fs::read(f).unwrap();
            std::fs::write(f, &b[..b.len() / 2]).unwrap();
        },
        "header says",
    );
}

#[test]
fn a_file_shorter_than_the_header_is_refused_and_rebuilt() {
    refused_then_rebuilt(|f| std::fs::write(f, b"CSWC").unwrap(), "the header alone");
}

#[test]
fn a_foreign_file_is_refused_and_rebuilt() {
    // wasmtime's own artefact without our header (what `wasmtime compile`
    // writes) is not ours.
    refused_then_rebuilt(
        |f| {
            let b = std::fs::read(f).unwrap();
            std::fs::write(f, &b[80..]).unwrap();
        },
        "bad magic",
    );
}

#[test]
fn a_file_for_another_key_is_refused_and_rebuilt() {
    refused_then_rebuilt(
        |f| {
            let mut b = std::fs::read(f).unwrap();
            b[20] ^= 1;
            std::fs::write(f, b).unwrap();
        },
        "key mismatch",
    );
}

#[test]
fn a_valid_header_over_a_bad_artefact_is_refused_by_wasmtime() {
    use sha2::Digest;
    refused_then_rebuilt(
        |f| {
            // Our header, our key, a matching checksum, but garbage inside.
            let b = std::fs::read(f).unwrap();
            let key = &b[8..40];
            let artefact = vec![0xAB_u8; 4096];
            let mut out = b"CSWCACH1".to_vec();
            out.extend(key);
            out.extend((artefact.len() as u64).to_le_bytes());
            out.extend(sha2::Sha256::digest(&artefact));
            out.extend(&artefact);
            std::fs::write(f, out).unwrap();
        },
        "wasmtime refused",
    );
}

#[test]
fn a_symlink_in_place_of_the_file_is_refused() {
    refused_then_rebuilt(
        |f| {
            let real = f.with_extension("real");
            std::fs::rename(f, &real).unwrap();
            std::os::unix::fs::symlink(&real, f).unwrap();
        },
        "symbolic link",
    );
}

#[test]
fn a_file_writable_or_owned_by_others_is_refused() {
    refused_then_rebuilt(
        |f| std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).unwrap(),
        "writable by others",
    );
}

#[test]
fn a_file_owned_by_someone_else_is_refused() {
    let (cache, file) = seeded_cache();
    // Only root may give a file away; without root a group-writable file
    // stands in.
    let reason = if std::os::unix::fs::chown(&file, Some(4242), None).is_ok() {
        "belongs to uid 4242"
    } else {
        println!("not root: cannot chown, checking a group-writable file instead");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
        "writable by others"
    };
    check_refused_then_rebuilt(cache.path(), reason);
}

#[test]
fn an_unsafe_cache_directory_is_not_used() {
    let (cache, _) = seeded_cache();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = load(cache.path());
    match p.cache_status() {
        CacheStatus::Miss {
            rejected: Some(why),
            stored: false,
        } => assert!(why.contains("writable by others"), "{why}"),
        other => panic!("expected the directory to be refused, got {other:?}"),
    }
    works(&p);
}

#[test]
fn an_unusable_cache_directory_only_costs_a_compile() {
    let cache = tempfile::tempdir().unwrap();
    let not_a_dir = cache.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let p = load(&not_a_dir);
    match p.cache_status() {
        CacheStatus::Miss {
            rejected: Some(why),
            stored: false,
        } => assert!(why.contains("cannot create cache directory"), "{why}"),
        other => panic!("expected the directory to be refused, got {other:?}"),
    }
    works(&p);
    assert_eq!(std::fs::read(&not_a_dir).unwrap(), b"x");
}

/// Sets a file's modification time `days` days into the past.
fn age(path: &Path, days: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(then)
        .unwrap();
}

#[test]
fn stale_cache_files_are_deleted_when_another_is_stored() {
    let (cache, seed) = seeded_cache();
    let dir = cache.path();
    let days = CACHE_STALE_AFTER.as_secs() / (24 * 3600);
    let stale = dir.join(format!("{}.cwasm", "a".repeat(64)));
    let fresh = dir.join(format!("{}.cwasm", "b".repeat(64)));
    let not_ours = [
        dir.join("notes.cwasm"),
        dir.join(format!("{}.cwasm.bak", "c".repeat(64))),
    ];
    for f in [&stale, &fresh].into_iter().chain(&not_ours) {
        std::fs::write(f, b"old").unwrap();
    }
    age(&stale, days + 1);
    age(&fresh, days - 1);
    for f in &not_ours {
        age(f, days + 100);
    }
    // A symlink with our name pattern is never followed or deleted.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    let link = dir.join(format!("{}.cwasm", "d".repeat(64)));
    std::os::unix::fs::symlink(&target, &link).unwrap();

    // Another engine configuration stores its artefact: the prune runs.
    let pooled = single(&PluginOptions::pooling(4).with_cache_dir(dir)).unwrap();
    assert!(matches!(pooled.cache_status(), CacheStatus::Miss { stored: true, .. }));
    assert!(!stale.exists(), "unused for longer than {CACHE_STALE_AFTER:?}: deleted");
    assert!(fresh.exists() && seed.exists(), "recently used files stay");
    for f in &not_ours {
        assert!(f.exists(), "{} is not a cache file name of ours", f.display());
    }
    assert!(link.symlink_metadata().is_ok());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert_eq!(load(dir).cache_status(), &CacheStatus::Hit);
}

#[test]
fn a_hit_marks_its_file_as_used() {
    let (cache, seed) = seeded_cache();
    let days = CACHE_STALE_AFTER.as_secs() / (24 * 3600);
    age(&seed, days + 10);
    assert_eq!(load(cache.path()).cache_status(), &CacheStatus::Hit);
    let modified = std::fs::metadata(&seed).unwrap().modified().unwrap();
    let since = std::time::SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    assert!(
        since < std::time::Duration::from_secs(600),
        "mtime not refreshed: {since:?} ago"
    );
    // So storing another configuration's artefact keeps it.
    single(&PluginOptions::pooling(4).with_cache_dir(cache.path())).unwrap();
    assert!(seed.exists());
}

#[test]
fn a_fifo_in_place_of_the_file_does_not_block_the_load() {
    let (cache, file) = seeded_cache();
    std::fs::remove_file(&file).unwrap();
    let c_path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let (done, loaded) = std::sync::mpsc::channel();
    let dir = cache.path().to_path_buf();
    let loader = std::thread::spawn(move || done.send(load(&dir)).unwrap());
    // A load that blocks in open(2) would wait for a writer forever; after a
    // generous bound, become that writer so the test ends (and fails).
    let plugin = match loaded.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(p) => p,
        Err(_) => {
            let _ = std::fs::OpenOptions::new().write(true).open(&file);
            loader.join().unwrap();
            panic!("loading the plugin blocked on a FIFO in the cache");
        }
    };
    loader.join().unwrap();
    let why = rejected(&plugin);
    assert!(why.contains("not a regular file"), "{why}");
    works(&plugin);
    // The FIFO was replaced by a valid file.
    assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    assert_eq!(load(cache.path()).cache_status(), &CacheStatus::Hit);
}
