//! `checkpoint-storage` CLI: demos of the component through the host.

use anyhow::{Context, Result};
use checkpoint_storage_host::manifest::{CheckpointManifest, NamedState};
use checkpoint_storage_host::{Plugin, StateScope, StorageConfig, Tenant, TenantConfig, inspect};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

mod bench_cli;
mod demo_file_merging;
mod demo_lifecycle;
mod gc_cli;
mod s3_cli;

#[derive(Parser)]
#[command(
    version,
    about = "Flink's task-side checkpoint storage as a sandboxed WebAssembly component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Several tenants each write checkpoint and savepoint state through the
    /// component; prints the handles and each tenant's directory tree.
    Demo {
        /// Parent directory for the tenants' directories (default: a new
        /// temporary directory, kept after the run).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of tenants.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        tenants: u32,
        /// Instead: one checkpoint of 1,000 small states written with file
        /// merging (FLIP-306) into a handful of files, then restored.
        #[arg(long)]
        file_merging: bool,
        #[command(flatten)]
        s3: s3_cli::S3Args,
        /// Instead: start a real S3 server (s3s-fs) on 127.0.0.1 for the
        /// length of the demo and run the object storage demo against it.
        #[arg(long, conflicts_with_all = ["s3", "file_merging", "dir"])]
        s3_loopback: bool,
    },
    /// Lists the checkpoints and savepoints of a tenant directory: ids,
    /// files, bytes, whether `_metadata` is present.
    Inspect {
        /// The tenant directory (what the tenant sees as /checkpoints).
        #[arg(required_unless_present = "s3")]
        dir: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        s3: s3_cli::S3Args,
    },
    /// What the sandbox costs against native Rust, in one run: stream
    /// throughput, small states, tenant start and idle memory (use a
    /// release build).
    Bench(bench_cli::BenchArgs),
    /// Orphan collection: finds files in a tenant directory that no
    /// checkpoint or savepoint manifest references, and stale temporary
    /// metadata files, older than a grace period; lists them with their sizes
    /// (a dry run) or deletes them with --delete. Never follows symlinks.
    /// With --s3, the same below a bucket prefix.
    Gc(gc_cli::GcArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo { s3_loopback: true, .. } => s3_cli::demo_loopback(),
        Command::Demo { s3, .. } if s3.s3.is_some() => s3_cli::demo(&s3),
        Command::Demo {
            dir,
            tenants,
            file_merging,
            ..
        } => demo(dir, tenants, file_merging),
        Command::Inspect { s3, json, .. } if s3.s3.is_some() => s3_cli::inspect(&s3, json),
        Command::Inspect { dir, json, .. } => {
            let dir = dir.context("a directory or --s3 is required")?;
            let root = inspect::check_root(&dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
            let inventory = inspect::inspect(&root).with_context(|| format!("reading {}", root.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inventory)?);
            } else {
                print!("{}", inspect::render(&inventory));
            }
            Ok(())
        }
        Command::Bench(args) => bench_cli::run(args),
        Command::Gc(args) => gc_cli::run(args),
    }
}

/// `RUST_LOG`, with the loopback S3 server's own request log off unless
/// asked for: s3s-fs answers a HEAD on a key that is a directory on its disk
/// with a logged 500 (S3 answers 404), which the host handles.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::from_default_env();
    match std::env::var("RUST_LOG") {
        Ok(v) if v.contains("s3s") => filter,
        _ => filter.add_directive("s3s=off".parse().expect("a valid directive")),
    }
}

fn demo(dir: Option<PathBuf>, tenants: u32, file_merging: bool) -> Result<()> {
    let root = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("checkpoint-storage-demo-")
            .tempdir()?
            .keep(),
    };
    let started = std::time::Instant::now();
    let plugin = Plugin::load()?;
    println!("component loaded and compiled in {:.0?}", started.elapsed());
    if file_merging {
        let tenant = plugin.tenant(TenantConfig::new(&root))?;
        demo_file_merging::run(&plugin, &tenant)?;
        print_tree(tenant.dir())?;
        println!("\nEverything is kept under {}", root.display());
        return Ok(());
    }
    for i in 1..=tenants {
        let tenant_dir = root.join(format!("tenant-{i}"));
        std::fs::create_dir_all(&tenant_dir)?;
        let tenant = plugin.tenant(TenantConfig::new(&tenant_dir))?;
        println!(
            "\n=== tenant-{i}: {} (seen inside as /checkpoints)",
            tenant.dir().display()
        );
        let fresh = || -> Result<Tenant> { Ok(plugin.tenant(TenantConfig::new(tenant.dir()))?) };
        let dirs = DemoDirs {
            checkpoints: "/checkpoints".into(),
            savepoints: "/checkpoints/savepoints".into(),
        };
        demo_tenant(&tenant, &fresh, i, &dirs)?;
        print_tree(tenant.dir())?;
    }
    demo_lifecycle::run(&plugin, &root.join("lifecycle"))?;
    println!("\nEverything is kept under {}", root.display());
    Ok(())
}

/// Where the demo's checkpoints and savepoints go.
pub(crate) struct DemoDirs {
    pub(crate) checkpoints: String,
    pub(crate) savepoints: String,
}

/// The demo of one tenant; `fresh` makes a new instance of it for restore.
pub(crate) fn demo_tenant(
    tenant: &Tenant,
    fresh: &dyn Fn() -> Result<Tenant>,
    index: u32,
    dirs: &DemoDirs,
) -> Result<()> {
    let job = uuid::Uuid::new_v4().simple().to_string();
    let config = StorageConfig {
        checkpoints_dir: Some(dirs.checkpoints.clone()),
        ..StorageConfig::filesystem(&job)
    };
    println!("job {job}");

    // Job manager side: create the locations and hand out references.
    let coordinator = tenant.open_coordinator_view(&config, Some(&dirs.savepoints))?;
    coordinator.initialize_base_locations_for_checkpoint()?;
    let checkpoint = coordinator.initialize_location_for_checkpoint(1)?;
    let savepoint = coordinator.initialize_location_for_savepoint(2, None)?;

    // Task side: resolve the references, write state.
    let view = tenant.open_worker_view(&config)?;
    let mut to_duplicate = None;
    let mut completed = vec![];
    for (label, location, id) in [("checkpoint 1", &checkpoint, 1), ("savepoint", &savepoint, 2)] {
        let reference = location.location_reference()?;
        let factory = view.resolve_checkpoint_storage_location(id, &reference)?;
        println!(
            "\n{label}, reference {reference}\n  exclusive -> {}\n  shared    -> {}",
            factory.checkpoint_directory()?,
            factory.shared_state_directory()?
        );
        let mut states = vec![];
        for scope in [StateScope::Exclusive, StateScope::Shared] {
            for (size, what) in [(100usize, "small"), (64 * 1024, "large")] {
                let mut stream = factory.create_checkpoint_state_output_stream(scope)?;
                stream.write(&pattern(size, index))?;
                let handle = stream.close_and_get_handle()?.context("a handle")?;
                let scope = match scope {
                    StateScope::Exclusive => "exclusive",
                    StateScope::Shared => "shared",
                };
                println!("  {scope:9} {what} ({size} B): {handle}");
                if to_duplicate.is_none() && handle.file_path().is_some() {
                    to_duplicate = Some(handle.clone());
                }
                states.push(NamedState {
                    name: format!("{scope}-{what}"),
                    handle,
                });
            }
        }
        // Job manager side again: the handles go into the metadata.
        let manifest = CheckpointManifest {
            job_id: job.clone(),
            checkpoint_id: id,
            states,
        };
        let metadata = location.create_metadata_output_stream()?;
        metadata.write(&manifest.to_json())?;
        let done = metadata.close_and_finalize_checkpoint()?;
        println!(
            "  completed: {} ({} B of metadata)",
            done.external_pointer,
            done.metadata.state_size()
        );
        completed.push((done.external_pointer, manifest));
    }

    let mut stream = view.create_task_owned_state_stream()?;
    stream.write(&pattern(30 * 1024, index))?;
    let handle = stream.close_and_get_handle()?.context("a handle")?;
    println!("\ntask-owned stream (30 KiB): {handle}");

    let toolset = view.create_task_owned_checkpoint_state_toolset()?;
    let original = to_duplicate.context("a file handle to duplicate")?;
    println!(
        "\nduplicate into taskowned (fast: {}):\n  from {original}",
        toolset.can_fast_duplicate(&original)?
    );
    for copy in toolset.duplicate(std::slice::from_ref(&original))? {
        println!("  to   {copy}");
    }

    // Restore in a fresh instance: find each checkpoint from its pointer,
    // load its manifest, read every state back through the component.
    let fresh = fresh()?;
    let coordinator = fresh.open_coordinator_view(&config, None)?;
    println!("\nrestore in a fresh instance:");
    for (pointer, written) in completed {
        let found = coordinator.resolve_checkpoint(&pointer)?;
        let manifest = CheckpointManifest::from_json_in(&fresh.read_state(&found.metadata)?, &found.external_pointer)?;
        let mut bytes = 0;
        for (state, expected) in manifest.states.iter().zip(&written.states) {
            let data = fresh.read_state(&state.handle)?;
            anyhow::ensure!(state == expected, "state {} has a different handle", state.name);
            anyhow::ensure!(data == pattern(data.len(), index), "state {} differs", state.name);
            bytes += data.len();
        }
        println!(
            "  {pointer}: {} states, {bytes} bytes read back, all equal",
            manifest.states.len()
        );
    }
    Ok(())
}

fn pattern(size: usize, seed: u32) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect()
}

fn print_tree(dir: &Path) -> Result<()> {
    println!("\ntree of {}:", dir.display());
    fn walk(dir: &Path, depth: usize) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let meta = e.metadata()?;
            let name = e.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                println!("{}{name}/", "  ".repeat(depth + 1));
                walk(&e.path(), depth + 1)?;
            } else {
                println!("{}{name}  ({} bytes)", "  ".repeat(depth + 1), meta.len());
            }
        }
        Ok(())
    }
    walk(dir, 0)
}
