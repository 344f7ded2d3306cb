//! `bench`: what the sandbox costs, against native Rust, in one run.
//!
//! Every figure is paired with a baseline measured in the same run:
//! stream throughput per chunk size against the same policy in native Rust
//! ([`native`]), 1 MiB chunks against plain writes + fsync (the disk), small
//! inline states per second against native, tenant start against opening a
//! directory, and resident memory per idle tenant against its target.

mod chart;
mod dir_sync;
pub mod file_merging;
mod machine;
mod memory;
pub mod native;
pub mod object_storage;
mod report;
mod restore_read;
mod small_state;
mod subsumption;
mod tenant_start;
mod throughput;

pub use chart::write_chart;
/// The progress type `run` reports to (`ProgressBar::hidden()` for none).
pub use indicatif::ProgressBar;
pub use machine::Machine;
pub use memory::MemoryResult;
pub use object_storage::ObjectStorageResult;
pub use report::{Figure, Report, Run, Settings, Spread, TARGET_IDLE_KIB, TARGET_START_US, Target};
pub use small_state::SmallStateResult;
pub use subsumption::SubsumptionResult;
pub use tenant_start::StartResult;
pub use throughput::ThroughputResult;

use checkpoint_storage_host::{LocationReference, StorageConfig, StreamFactory, WorkerView};
use checkpoint_storage_host::{Plugin, PluginOptions};
use checkpoint_storage_host::{Tenant, TenantConfig};
use std::path::PathBuf;

/// Most closes per way for the directory-fsync figure (each costs a few ms
/// on a real disk).
const DIR_SYNC_SAMPLES: u32 = 200;

/// Flink's defaults, which the guest uses too (the native side must match).
const THRESHOLD: usize = 20 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

/// Largest bytes per stream: the stream's bytes are held in memory once.
pub const MAX_STREAM_BYTES: u64 = 1 << 30;
/// Largest bytes written per chunk size and variant.
pub const MAX_BYTES_PER_CHUNK_SIZE: u64 = 64 << 30;
/// Largest idle tenant count (the pooling allocator reserves a slot each).
pub const MAX_MEMORY_TENANTS: u32 = 100_000;
/// Most full runs of one benchmark (`--repeat`).
pub const MAX_REPEAT: u32 = 100;

/// What a benchmark run can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Host(#[from] checkpoint_storage_host::Error),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid benchmark settings: {0}")]
    Invalid(String),
    #[error("drawing the chart failed: {0}")]
    Chart(String),
}

/// Maps an I/O error to [`BenchError::Io`] saying what was being done.
fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> BenchError {
    move |source| BenchError::Io { what, source }
}

/// How much to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Parent of the run's temporary directory (default: the system's).
    pub dir: Option<PathBuf>,
    /// Bytes written per chunk size and variant.
    pub bytes_per_chunk_size: u64,
    /// Bytes per stream (so `bytes_per_chunk_size / stream_bytes` streams).
    pub stream_bytes: u64,
    pub chunk_sizes: Vec<usize>,
    /// Batch of the host-side batching writer.
    pub batch_bytes: usize,
    /// Small (100-byte) states per side.
    pub small_states: u64,
    /// Timed tenant starts per allocator.
    pub start_samples: u32,
    /// Idle tenant counts measured with the pooling allocator.
    pub memory_tenants: Vec<u32>,
    /// Timed subsumptions per case (checkpoint store, 100 shared files).
    pub subsumption_rounds: u32,
    /// Small states written as objects per side on the loopback S3 server.
    pub s3_small_objects: u64,
    /// Full runs, one after the other, 1 to [`MAX_REPEAT`]; each figure is
    /// reported as its median over the runs with its min-max spread.
    pub repeat: u32,
}

impl Default for BenchOptions {
    /// The full run: 256 MiB per chunk size, 1,000 and 10,000 idle tenants.
    fn default() -> Self {
        BenchOptions {
            dir: None,
            bytes_per_chunk_size: 256 << 20,
            stream_bytes: 16 << 20,
            chunk_sizes: vec![64, 4 << 10, 64 << 10, 1 << 20],
            batch_bytes: checkpoint_storage_host::DEFAULT_BATCH_SIZE,
            small_states: 200_000,
            start_samples: 2_000,
            memory_tenants: vec![1_000, 10_000],
            subsumption_rounds: 50,
            s3_small_objects: 2_000,
            repeat: 1,
        }
    }
}

impl BenchOptions {
    /// A run of well under a minute, for a first look.
    pub fn quick() -> Self {
        BenchOptions {
            bytes_per_chunk_size: 32 << 20,
            small_states: 20_000,
            start_samples: 300,
            memory_tenants: vec![1_000],
            subsumption_rounds: 20,
            s3_small_objects: 300,
            ..Self::default()
        }
    }

    /// Tiny sizes: checks that everything runs, measures nothing useful.
    pub fn smoke() -> Self {
        BenchOptions {
            bytes_per_chunk_size: 128 << 10,
            stream_bytes: 64 << 10,
            small_states: 20,
            start_samples: 5,
            memory_tenants: vec![8],
            subsumption_rounds: 2,
            s3_small_objects: 5,
            ..Self::default()
        }
    }

    fn streams_per_chunk_size(&self) -> u64 {
        self.bytes_per_chunk_size.div_ceil(self.stream_bytes).max(1)
    }

    /// Streams per side on the loopback S3 server (a server on the same
    /// cores is slower than a disk: fewer suffice).
    fn s3_streams(&self) -> u64 {
        self.streams_per_chunk_size().min(4)
    }

    fn validate(&self) -> Result<(), BenchError> {
        let fail = |m: &str| Err(BenchError::Invalid(m.to_string()));
        if self.stream_bytes == 0 || self.bytes_per_chunk_size == 0 {
            return fail("sizes must be positive");
        }
        if self.chunk_sizes.is_empty() || self.chunk_sizes.contains(&0) {
            return fail("chunk sizes must be positive, and at least one");
        }
        if self.batch_bytes == 0 || self.small_states == 0 || self.start_samples == 0 {
            return fail("batch size, small states and start samples must be positive");
        }
        if self.subsumption_rounds == 0 {
            return fail("subsumption rounds must be positive");
        }
        if self.s3_small_objects == 0 {
            return fail("S3 small objects must be positive");
        }
        if !(1..=MAX_REPEAT).contains(&self.repeat) {
            return Err(BenchError::Invalid(format!(
                "{} runs: the benchmark runs from 1 to {MAX_REPEAT} times",
                self.repeat
            )));
        }
        if self.memory_tenants.is_empty() || self.memory_tenants.contains(&0) {
            return fail("idle tenant counts must be positive, and at least one");
        }
        if self.stream_bytes > MAX_STREAM_BYTES {
            return Err(BenchError::Invalid(format!(
                "a stream of {} bytes is more than the {MAX_STREAM_BYTES} bytes a stream may have (they are held in memory)",
                self.stream_bytes
            )));
        }
        if self.bytes_per_chunk_size > MAX_BYTES_PER_CHUNK_SIZE {
            return Err(BenchError::Invalid(format!(
                "{} bytes per chunk size is more than the allowed {MAX_BYTES_PER_CHUNK_SIZE}",
                self.bytes_per_chunk_size
            )));
        }
        if self.stream_bytes > self.bytes_per_chunk_size {
            return Err(BenchError::Invalid(format!(
                "a stream of {} bytes is larger than the {} bytes written per chunk size; make the stream smaller or the size larger",
                self.stream_bytes, self.bytes_per_chunk_size
            )));
        }
        if let Some(&n) = self.memory_tenants.iter().find(|&&n| n > MAX_MEMORY_TENANTS) {
            return Err(BenchError::Invalid(format!(
                "{n} idle tenants is more than the allowed {MAX_MEMORY_TENANTS}"
            )));
        }
        if self.chunk_sizes.iter().any(|&c| c as u64 > MAX_STREAM_BYTES) {
            return fail("chunk sizes must be at most the largest stream");
        }
        Ok(())
    }

    /// Progress steps of one run: streams, batches, samples, tenants.
    fn steps(&self) -> u64 {
        let memory: u64 = self.memory_tenants.iter().map(|&n| u64::from(n)).sum();
        let on_demand = self.memory_tenants.iter().min().map_or(0, |&n| u64::from(n));
        self.chunk_sizes.len() as u64 * self.streams_per_chunk_size()
            + small_state::steps(self.small_states)
            + subsumption::steps(self.subsumption_rounds)
            + 2 * u64::from(self.start_samples)
            + memory
            + on_demand
            + object_storage::steps(self.s3_streams(), self.s3_small_objects)
    }
}

/// The tenant the I/O benchmarks write through, and the native side's
/// directories on the same filesystem.
pub struct Workspace {
    // Fields drop in order: guest resources before their tenant.
    factory: StreamFactory,
    _view: WorkerView,
    tenant: Tenant,
    native_dir: PathBuf,
    disk_dir: PathBuf,
    threshold: usize,
    buffer_size: usize,
}

impl Workspace {
    fn new(plugin: &Plugin, root: &std::path::Path, job: &str) -> Result<Self, BenchError> {
        let tenant_dir = root.join("tenant");
        let native_dir = root.join("native");
        let disk_dir = root.join("disk");
        for d in [tenant_dir.join(job).join("chk-1"), native_dir.clone(), disk_dir.clone()] {
            std::fs::create_dir_all(&d).map_err(io_error("creating benchmark directories"))?;
        }
        let tenant = plugin.tenant(TenantConfig::new(&tenant_dir))?;
        let view = tenant.open_worker_view(&StorageConfig::filesystem(job))?;
        let factory = view.resolve_checkpoint_storage_location(1, &LocationReference::Default)?;
        Ok(Workspace {
            factory,
            _view: view,
            tenant,
            native_dir,
            disk_dir,
            threshold: THRESHOLD,
            buffer_size: WRITE_BUFFER.max(THRESHOLD),
        })
    }
}

/// Runs every benchmark `options.repeat` times, one full run after the
/// other (so that a slow spell of the machine shows as spread of every
/// figure rather than skewing one); `progress` gets its length and
/// messages here.
pub fn run(options: &BenchOptions, progress: &ProgressBar) -> Result<Report, BenchError> {
    options.validate()?;
    let parent = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).map_err(io_error("creating the benchmark directory"))?;
    let root = tempfile::Builder::new()
        .prefix("checkpoint-storage-bench-")
        .tempdir_in(&parent)
        .map_err(io_error("creating the benchmark directory"))?;
    let machine = Machine::detect(root.path());
    progress.set_length(options.steps() * u64::from(options.repeat));
    // Every run loads its plugins anew (a pool whose slots an earlier run
    // used would start tenants in warm slots and hide their memory); the
    // compile cache makes the later loads cheap.
    let cache = root.path().join("compiled");
    progress.set_message("compiling the component");
    for plugin_options in plugin_options(options, &cache) {
        // Compiled here, so that every run loads its plugins alike (from the cache).
        drop(Plugin::load_with(&plugin_options)?);
    }
    let job = uuid::Uuid::new_v4().simple().to_string();
    let mut runs = Vec::with_capacity(options.repeat as usize);
    for i in 0..options.repeat {
        let dir = root.path().join(format!("run-{i}"));
        let prefix = if options.repeat > 1 {
            format!("run {} of {}: ", i + 1, options.repeat)
        } else {
            String::new()
        };
        runs.push(run_once(options, &dir, &cache, &job, &prefix, progress)?);
        // Best effort: the next run does not need them, the disk may.
        let _ = std::fs::remove_dir_all(&dir);
    }
    progress.set_message("done");
    let per_run: Vec<Vec<Figure>> = runs.iter().map(|r| r.figures.clone()).collect();
    Ok(Report {
        machine,
        settings: Settings {
            bytes_per_chunk_size: options.streams_per_chunk_size() * options.stream_bytes,
            stream_bytes: options.stream_bytes,
            batch_bytes: options.batch_bytes,
            small_states: options.small_states,
            start_samples: options.start_samples,
            memory_tenants: options.memory_tenants.clone(),
            repeat: options.repeat,
        },
        figures: report::combine(&per_run)?,
        runs,
    })
}

/// The plugins of a run: on-demand, and pooling with a slot for every idle
/// tenant measured.
fn plugin_options(options: &BenchOptions, cache: &std::path::Path) -> [PluginOptions; 2] {
    let max_tenants = options
        .memory_tenants
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .saturating_add(16);
    [
        PluginOptions::default().with_cache_dir(cache),
        PluginOptions::pooling(max_tenants).with_cache_dir(cache),
    ]
}

/// One full run of every benchmark, in `root` (created).
fn run_once(
    options: &BenchOptions,
    root: &std::path::Path,
    cache: &std::path::Path,
    job: &str,
    prefix: &str,
    progress: &ProgressBar,
) -> Result<Run, BenchError> {
    progress.set_message(format!("{prefix}loading the component"));
    let [on_demand, pooling] = plugin_options(options, cache);
    let (on_demand, pooling) = (Plugin::load_with(&on_demand)?, Plugin::load_with(&pooling)?);

    let ws = Workspace::new(&on_demand, &root.join("io"), job)?;
    let data = pattern(options.stream_bytes as usize);
    let setup = throughput::Setup {
        ws: &ws,
        data: &data,
        batch_size: options.batch_bytes,
    };
    let largest = options.chunk_sizes.iter().copied().max().unwrap_or(0);
    let mut throughput = Vec::new();
    for &chunk in &options.chunk_sizes {
        progress.set_message(format!("{prefix}stream throughput, {chunk} B chunks"));
        throughput.push(setup.measure(chunk, options.streams_per_chunk_size(), chunk == largest, progress)?);
    }
    progress.set_message(format!("{prefix}small states"));
    let small = small_state::measure(&ws, options.small_states, progress)?;
    progress.set_message(format!("{prefix}restore reads"));
    let restore = restore_read::measure(&ws, &data, options.streams_per_chunk_size())?;
    drop(ws);

    progress.set_message(format!("{prefix}subsumption, 100 shared files"));
    let subsumption = subsumption::measure(
        &on_demand,
        &root.join("subsumption"),
        job,
        options.subsumption_rounds,
        progress,
    )?;

    progress.set_message(format!("{prefix}tenant start"));
    let starts_dir = root.join("start");
    let native_start = tenant_start::measure_native(options.start_samples, &starts_dir.join("native"))?;
    let mut starts = Vec::new();
    for (name, plugin) in [("on-demand", &on_demand), ("pooling", &pooling)] {
        let dir = starts_dir.join(name);
        starts.push(tenant_start::measure(
            plugin,
            name,
            options.start_samples,
            &dir,
            job,
            progress,
        )?);
    }

    let mut memory = Vec::new();
    let mem_dir = root.join("memory");
    for &count in &options.memory_tenants {
        progress.set_message(format!("{prefix}idle memory, {count} tenants (pooling)"));
        let dir = mem_dir.join(format!("pooling-{count}"));
        memory.push(memory::measure(&pooling, "pooling", count, &dir, job, progress)?);
    }
    if let Some(&count) = options.memory_tenants.iter().min() {
        progress.set_message(format!("{prefix}idle memory, {count} tenants (on-demand)"));
        let dir = mem_dir.join(format!("on-demand-{count}"));
        memory.push(memory::measure(&on_demand, "on-demand", count, &dir, job, progress)?);
    }

    progress.set_message(format!("{prefix}object storage (loopback S3)"));
    let object_storage = object_storage::measure(
        options.s3_streams(),
        options.stream_bytes,
        options.s3_small_objects,
        cache,
        progress,
    )?;

    progress.set_message(format!("{prefix}directory fsync at close"));
    let dir_sync = dir_sync::measure(&root.join("dir-sync"), options.start_samples.min(DIR_SYNC_SAMPLES))?;

    let mut figures = report::figures(&throughput, &small, &native_start, &starts, &memory);
    figures.push(dir_sync::figure(&dir_sync));
    figures.extend(restore_read::figures(&restore));
    figures.extend(report::subsumption_figures(&subsumption));
    figures.extend(object_storage::figures(&object_storage));
    Ok(Run {
        throughput,
        small_state: small,
        native_start,
        tenant_start: starts,
        memory,
        subsumption,
        object_storage: Some(object_storage),
        figures,
    })
}

/// Stream contents: not all one byte, so nothing can shortcut zeros.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8).collect()
}
