//! Object storage: the component on `wasi:blobstore` against `object_store`
//! called natively, both on the same loopback S3 server (`s3-loopback`) in
//! the same run. Two figures: stream throughput (whole streams in 1 MiB
//! chunks, multipart above 5 MiB) and the rate of small states that become
//! objects (just above the inline threshold, one PUT each).
//!
//! The native side does what the component's host does for the same
//! state: one PUT for a small object, a multipart upload of 5 MiB parts for
//! a large one. Both pay the same server, so the ratio is the sandbox's
//! cost on this path.

use super::report::Figure;
use super::{BenchError, io_error};
use checkpoint_storage_host::blobstore::S3Settings;
use checkpoint_storage_host::{
    BlobGrant, LocationReference, Plugin, PluginOptions, StateScope, StorageConfig, TenantConfig,
};
use indicatif::ProgressBar;
use object_store::{ObjectStore, PutPayload, WriteMultipart, path::Path as ObjectPath};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "bench";
/// Bytes per write call of a stream.
const CHUNK: usize = 1 << 20;
/// S3's smallest multipart part, which both sides upload in.
const PART: usize = 5 << 20;
/// A state just above the inline threshold (Flink's 20 KiB): one object.
pub const SMALL_OBJECT_BYTES: usize = 24 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStorageResult {
    pub stream_bytes: u64,
    pub streams: u64,
    pub component_mib_s: f64,
    pub native_mib_s: f64,
    pub small_object_bytes: usize,
    pub small_objects: u64,
    pub component_objects_per_s: f64,
    pub native_objects_per_s: f64,
}

/// Number of progress steps `measure` makes.
pub fn steps(streams: u64, small_objects: u64) -> u64 {
    2 * streams + small_objects.div_ceil(100)
}

/// Measures both sides, alternating, on one loopback server.
pub fn measure(
    streams: u64,
    stream_bytes: u64,
    small_objects: u64,
    cache: &std::path::Path,
    progress: &ProgressBar,
) -> Result<ObjectStorageResult, BenchError> {
    let server = s3_loopback::S3Server::start(&[BUCKET]);
    let settings = S3Settings {
        bucket: BUCKET.into(),
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some(s3_loopback::ACCESS_KEY.into()),
        secret_access_key: Some(s3_loopback::SECRET_KEY.into()),
        allow_http: true,
    };
    // One client per side: a client's pooled connections are driven by the
    // runtime that opened them, and the two sides run on different runtimes.
    let client = || {
        settings
            .build()
            .map_err(|e| BenchError::Invalid(format!("S3 client: {e}")))
    };
    let store = client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("starting the native object store runtime"))?;
    let plugin = Plugin::load_blobstore_with(&PluginOptions::default().with_cache_dir(cache))?;
    let tenant = plugin.tenant(TenantConfig::object_store(vec![BlobGrant::new(
        BUCKET,
        store,
        "component",
    )]))?;
    let job = uuid::Uuid::new_v4().simple().to_string();
    let config = StorageConfig {
        checkpoints_dir: Some(format!("s3://{BUCKET}/checkpoints")),
        ..StorageConfig::filesystem(&job)
    };
    let view = tenant.open_worker_view(&config)?;
    let factory = view.resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
    let native = Native {
        store: client()?,
        runtime,
    };

    let data = super::pattern(stream_bytes as usize);
    let (mut component_t, mut native_t) = (Duration::ZERO, Duration::ZERO);
    for i in 0..streams {
        let started = Instant::now();
        let mut stream = factory.create_checkpoint_state_output_stream(StateScope::Exclusive)?;
        for chunk in data.chunks(CHUNK) {
            stream.write(chunk)?;
        }
        std::hint::black_box(stream.close_and_get_handle()?);
        component_t += started.elapsed();
        progress.inc(1);

        let started = Instant::now();
        native.large(&format!("native/{job}/chk-1/{i}"), &data)?;
        native_t += started.elapsed();
        progress.inc(1);
    }

    let small = super::pattern(SMALL_OBJECT_BYTES);
    let (mut component_s, mut native_s) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < small_objects {
        let n = 100.min(small_objects - done);
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(factory.write_state(StateScope::Shared, &small)?);
        }
        component_s += started.elapsed();
        let started = Instant::now();
        for k in 0..n {
            native.small(&format!("native/{job}/shared/{}", done + k), &small)?;
        }
        native_s += started.elapsed();
        done += n;
        progress.inc(1);
    }

    let mib = (streams * stream_bytes) as f64 / f64::from(1 << 20);
    Ok(ObjectStorageResult {
        stream_bytes,
        streams,
        component_mib_s: mib / component_t.as_secs_f64().max(1e-9),
        native_mib_s: mib / native_t.as_secs_f64().max(1e-9),
        small_object_bytes: SMALL_OBJECT_BYTES,
        small_objects,
        component_objects_per_s: small_objects as f64 / component_s.as_secs_f64().max(1e-9),
        native_objects_per_s: small_objects as f64 / native_s.as_secs_f64().max(1e-9),
    })
}

/// `object_store` called directly, as a native Rust service would.
struct Native {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl Native {
    fn small(&self, key: &str, data: &[u8]) -> Result<(), BenchError> {
        let payload = PutPayload::from(data.to_vec());
        self.runtime
            .block_on(self.store.put(&ObjectPath::from(key), payload))
            .map(drop)
            .map_err(|e| BenchError::Invalid(format!("native put: {e}")))
    }

    fn large(&self, key: &str, data: &[u8]) -> Result<(), BenchError> {
        self.runtime
            .block_on(async {
                let upload = self.store.put_multipart(&ObjectPath::from(key)).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
                for chunk in data.chunks(CHUNK) {
                    writer.write(chunk);
                }
                writer.finish().await.map(drop)
            })
            .map_err(|e| BenchError::Invalid(format!("native multipart upload: {e}")))
    }
}

/// The two report lines.
pub fn figures(r: &ObjectStorageResult) -> Vec<Figure> {
    vec![
        Figure::new(
            "s3 stream".into(),
            format!(
                "S3 stream throughput, {} MiB streams in 1 MiB chunks (loopback s3s-fs)",
                r.stream_bytes >> 20
            ),
            r.component_mib_s,
            "MiB/s",
            "native object_store",
            r.native_mib_s,
        ),
        Figure::new(
            "s3 small".into(),
            format!(
                "S3 small states, {} KiB each, one object per state (loopback s3s-fs)",
                r.small_object_bytes >> 10
            ),
            r.component_objects_per_s,
            "objects/s",
            "native object_store",
            r.native_objects_per_s,
        ),
    ]
}
