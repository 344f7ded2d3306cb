//! Shared harness for the integration tests: they reach the component only
//! through the host library, as a user of the host would.

use anyhow::{Context, bail};
pub use checkpoint_storage_host::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The plugin, compiled once per test binary.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    // A compile cache shared by the test binaries: each loads the component
    // in milliseconds instead of compiling it.
    let cache = test_cache_dir();
    PLUGIN.get_or_init(|| {
        Plugin::load_with(&PluginOptions::default().with_cache_dir(cache)).expect("the component loads")
    })
}

/// The compile cache of the test binaries (below the system's temporary
/// directory; the cache checks owner and mode of every file it uses).
pub fn test_cache_dir() -> PathBuf {
    std::env::temp_dir().join("checkpoint-storage-test-cache")
}

/// A fresh random job id in Flink's format (32 lowercase hex).
/// A location reference with `path`'s bytes exactly as given (magic ++
/// UTF-8), not normalised as `LocationReference::encode_path` does: what a
/// foreign or hostile writer may send.
pub fn raw_reference(path: &str) -> LocationReference {
    let mut bytes = vec![0x05, 0x5f, 0x3f, 0x18];
    bytes.extend_from_slice(path.as_bytes());
    LocationReference::Encoded(bytes)
}

pub fn job_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A tenant with its own temporary directory (removed on drop).
pub struct TestTenant {
    pub tenant: Tenant,
    pub job: String,
    pub dir: tempfile::TempDir,
}

impl TestTenant {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tenant = plugin().tenant(TenantConfig::new(dir.path())).expect("tenant");
        TestTenant {
            tenant,
            job: job_id(),
            dir,
        }
    }

    /// The host path of `rel` inside the tenant's directory.
    pub fn host(&self, rel: &str) -> PathBuf {
        self.tenant.dir().join(rel)
    }

    /// Guest path of the job directory.
    pub fn job_guest_dir(&self) -> String {
        format!("{GUEST_MOUNT}/{}", self.job)
    }

    /// Creates what Flink's coordinator creates before tasks write:
    /// `<job>/shared`, `<job>/taskowned` and `<job>/chk-<id>` for each id.
    pub fn init_job_dirs(&self, checkpoint_ids: &[u64]) {
        let mut dirs = vec![format!("{}/shared", self.job), format!("{}/taskowned", self.job)];
        dirs.extend(checkpoint_ids.iter().map(|id| format!("{}/chk-{id}", self.job)));
        for d in dirs {
            std::fs::create_dir_all(self.host(&d)).unwrap();
        }
    }

    /// A worker view with Flink's defaults.
    pub fn view(&self) -> WorkerView {
        self.view_with(StorageConfig::filesystem(&self.job))
    }

    /// The stream factory of checkpoint `id` at its default location.
    pub fn default_factory(&self, id: u64) -> StreamFactory {
        self.view()
            .resolve_checkpoint_storage_location(id, &LocationReference::Default)
            .expect("default location resolves")
    }

    /// This job's configuration with `create-subdir` off: the checkpoints
    /// directory `/checkpoints/flat` is the job's directory, and its
    /// coordinator has made `shared` and `taskowned` there.
    pub fn flat_job(&self) -> (StorageConfig, CoordinatorView) {
        let config = StorageConfig::filesystem(&self.job)
            .with_checkpoints_dir("/checkpoints/flat")
            .with_create_subdir(false);
        let coordinator = self
            .tenant
            .open_coordinator_view(&config, None)
            .expect("coordinator view opens");
        coordinator
            .initialize_base_locations_for_checkpoint()
            .expect("base locations are made");
        (config, coordinator)
    }

    pub fn view_with(&self, config: StorageConfig) -> WorkerView {
        self.tenant.open_worker_view(&config).expect("worker view opens")
    }

    /// The bytes a handle stands for: inline data, or the file's bytes.
    pub fn read_handle(&self, handle: &StateHandle) -> anyhow::Result<Vec<u8>> {
        match handle {
            StateHandle::ByteStream(b) => Ok(b.data.clone()),
            other => {
                let guest = other.file_path().unwrap();
                let host = self
                    .tenant
                    .host_path(guest)
                    .with_context(|| format!("{guest} is outside the tenant"))?;
                let mut data = std::fs::read(&host).with_context(|| format!("reading {}", host.display()))?;
                if let StateHandle::Segment(g) = other {
                    // A segment is a range of its physical file.
                    let end = g.offset.saturating_add(g.size);
                    if end > data.len() as u64 {
                        bail!("segment ends at {end}, file has {} bytes", data.len());
                    }
                    data = data[g.offset as usize..end as usize].to_vec();
                }
                if data.len() as u64 != other.state_size() {
                    bail!("handle says {} bytes, file has {}", other.state_size(), data.len());
                }
                Ok(data)
            }
        }
    }
}

impl Default for TestTenant {
    fn default() -> Self {
        Self::new()
    }
}

/// Names of the files directly in a host directory (sorted); empty if the
/// directory does not exist.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file below a directory, recursively, relative to it (sorted).
pub fn all_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Deterministic test bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i >> 8) as u8)
        })
        .collect()
}

/// A tenant of its own directory whose config `adjust` changes (limits),
/// with what the coordinator makes before tasks write (`<job>/chk-1`,
/// `shared`, `taskowned`) and the factory of checkpoint 1 at its default
/// location. Keep the returned test tenant alive: it owns the directory.
pub fn adjusted_tenant(adjust: impl FnOnce(TenantConfig) -> TenantConfig) -> (TestTenant, Tenant, StreamFactory) {
    let t = TestTenant::new();
    t.init_job_dirs(&[1]);
    let tenant = plugin()
        .tenant(adjust(TenantConfig::new(t.tenant.dir())))
        .expect("tenant");
    let factory = tenant
        .open_worker_view(&StorageConfig::filesystem(&t.job))
        .expect("worker view opens")
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .expect("default location resolves");
    (t, tenant, factory)
}

/// A memory-backend stream of `tenant` that may hold up to 64 MiB: filling
/// it meets a smaller `max_memory_bytes` (see [`write_until_refused`]).
pub fn greedy_memory_stream(tenant: &Tenant, job: &str, scope: StateScope) -> StateOutputStream {
    tenant
        .open_worker_view(&StorageConfig::memory(job).with_max_memory_state_size(64 << 20))
        .expect("memory view opens")
        .resolve_checkpoint_storage_location(1, &LocationReference::Default)
        .expect("default location resolves")
        .create_checkpoint_state_output_stream(scope)
        .expect("stream opens")
}

/// Makes `tenant` (whose `max_memory_bytes` is below 16 MiB) trap on its
/// memory cap, through a memory-backend stream of job `job`, and checks that
/// it did and is poisoned.
pub fn trap_by_memory(tenant: &Tenant, job: &str) {
    let mut greedy = greedy_memory_stream(tenant, job, StateScope::Exclusive);
    let outcome = write_until_refused(&mut greedy);
    assert!(
        matches!(outcome, Err(Error::Limit(LimitExceeded::Memory { .. }))),
        "{outcome:?}"
    );
    assert!(tenant.is_poisoned());
    assert!(
        matches!(tenant.poisoned_by_limit(), Some(LimitExceeded::Memory { .. })),
        "{:?}",
        tenant.poisoned_by_limit()
    );
}

/// Writes 1 MiB chunks, 16 at most, until a write fails: the memory backend
/// keeps state in guest memory, so 16 MiB cannot fit under an 8 MiB cap.
/// The first failure, or `Ok` if all fit.
pub fn write_until_refused(stream: &mut StateOutputStream) -> checkpoint_storage_host::Result<()> {
    let chunk = bytes(1 << 20, 3);
    (0..16).try_for_each(|_| stream.write(&chunk))
}

/// One exclusive and one shared state through `factory`, each 30,000 bytes
/// (above the inline threshold, so files), of seeds 1 and 2.
pub fn exclusive_and_shared_files(factory: &StreamFactory) -> (StateHandle, StateHandle) {
    let write = |scope, seed| {
        factory
            .write_state(scope, &bytes(30_000, seed))
            .expect("state written")
            .expect("a non-empty state")
    };
    (write(StateScope::Exclusive, 1), write(StateScope::Shared, 2))
}

/// Writes `data` to a stream in one call and closes it.
pub fn write_state(mut stream: StateOutputStream, data: &[u8]) -> Option<StateHandle> {
    stream.write(data).expect("write");
    stream.close_and_get_handle().expect("close and get handle")
}

/// The storage error code of a failed call (panics on success or a trap).
pub fn code<T: std::fmt::Debug>(r: checkpoint_storage_host::Result<T>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(Error::Storage(e)) => e.code,
        Err(e) => panic!("expected a storage error, got {e}"),
    }
}

/// The storage error of a failed call (panics on success or a trap).
pub fn storage_error<T: std::fmt::Debug>(r: checkpoint_storage_host::Result<T>) -> StorageError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(Error::Storage(e)) => e,
        Err(e) => panic!("expected a storage error, got {e}"),
    }
}

pub mod s3;

/// The object storage plugin (component built for `wasi:blobstore`),
/// compiled once per test binary.
pub fn blob_plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    let cache = test_cache_dir();
    PLUGIN.get_or_init(|| {
        Plugin::load_blobstore_with(&PluginOptions::default().with_cache_dir(cache))
            .expect("the blobstore component loads")
    })
}

/// The container (= bucket) name the S3 tests grant.
pub const BUCKET: &str = "flink";

/// The default location of checkpoint `id` of a fresh job, for a blob
/// tenant granted [`BUCKET`] (checkpoints below `s3://flink/checkpoints`).
pub fn s3_default_factory(tenant: &Tenant, id: u64) -> StreamFactory {
    let config = StorageConfig {
        checkpoints_dir: Some(format!("s3://{BUCKET}/checkpoints")),
        ..StorageConfig::filesystem(job_id())
    };
    tenant
        .open_worker_view(&config)
        .expect("worker view opens")
        .resolve_checkpoint_storage_location(id, &LocationReference::Default)
        .expect("default location resolves")
}

/// A tenant on a real S3 server: container `flink` granted below `prefix`.
pub struct S3Tenant {
    pub server: s3::S3Server,
    pub tenant: Tenant,
    pub job: String,
    pub prefix: String,
}

impl S3Tenant {
    pub fn new() -> Self {
        Self::with(|c| c)
    }

    /// A tenant whose config `adjust` may change (limits).
    pub fn with(adjust: impl FnOnce(TenantConfig) -> TenantConfig) -> Self {
        let server = s3::S3Server::start(&[BUCKET]);
        let prefix = "tenant-a".to_string();
        let grant = BlobGrant::new(BUCKET, server.store(BUCKET), prefix.clone());
        let tenant = blob_plugin()
            .tenant(adjust(TenantConfig::object_store(vec![grant])))
            .expect("blob tenant");
        S3Tenant {
            server,
            tenant,
            job: job_id(),
            prefix,
        }
    }

    /// The checkpoints directory as Flink writes it.
    pub fn checkpoints_dir(&self) -> String {
        format!("s3://{BUCKET}/checkpoints")
    }

    pub fn config(&self) -> StorageConfig {
        StorageConfig {
            checkpoints_dir: Some(self.checkpoints_dir()),
            ..StorageConfig::filesystem(&self.job)
        }
    }

    pub fn view(&self) -> WorkerView {
        self.tenant.open_worker_view(&self.config()).expect("worker view opens")
    }

    pub fn default_factory(&self, id: u64) -> StreamFactory {
        self.view()
            .resolve_checkpoint_storage_location(id, &LocationReference::Default)
            .expect("default location resolves")
    }

    /// The server-side key of an `s3://flink/...` URI of this tenant.
    pub fn key_of(&self, uri: &str) -> String {
        let rest = uri
            .strip_prefix(&format!("s3://{BUCKET}/"))
            .unwrap_or_else(|| panic!("{uri} is not in s3://{BUCKET}/"));
        format!("{}/{rest}", self.prefix)
    }

    /// Keys of the complete objects in the bucket.
    pub fn object_keys(&self) -> Vec<String> {
        self.server.object_keys(BUCKET)
    }

    /// The bytes of an object, read by the test directly from the server.
    pub fn object_bytes(&self, uri: &str) -> Vec<u8> {
        let store = self.server.store(BUCKET);
        let path = object_store::path::Path::from(self.key_of(uri));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { store.get(&path).await.unwrap().bytes().await.unwrap().to_vec() })
    }
}

impl Default for S3Tenant {
    fn default() -> Self {
        Self::new()
    }
}
