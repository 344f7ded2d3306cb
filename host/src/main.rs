//! `checkpoint-storage` CLI: demos of the component through the host.

use anyhow::{Context, Result};
use checkpoint_storage_host::{LocationReference, Plugin, StateScope, StorageConfig, Tenant, TenantConfig};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

mod bench_cli;

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
    },
    /// What the sandbox costs against native Rust, in one run: stream
    /// throughput, small states, tenant start and idle memory (use a
    /// release build).
    Bench(bench_cli::BenchArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo { dir, tenants } => demo(dir, tenants),
        Command::Bench(args) => bench_cli::run(args),
    }
}

fn demo(dir: Option<PathBuf>, tenants: u32) -> Result<()> {
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
    for i in 1..=tenants {
        let tenant_dir = root.join(format!("tenant-{i}"));
        std::fs::create_dir_all(&tenant_dir)?;
        let tenant = plugin.tenant(TenantConfig::new(&tenant_dir))?;
        println!(
            "\n=== tenant-{i}: {} (seen inside as /checkpoints)",
            tenant.dir().display()
        );
        demo_tenant(&tenant, i)?;
        print_tree(tenant.dir())?;
    }
    println!("\nEverything is kept under {}", root.display());
    Ok(())
}

/// Stands in for the coordinator (issue 4 brings the coordinator view):
/// creates the directories Flink's job manager creates before tasks write.
fn prepare_directories(tenant: &Tenant, job: &str, savepoint: &str) -> Result<()> {
    for d in [
        format!("{job}/shared"),
        format!("{job}/taskowned"),
        format!("{job}/chk-1"),
        savepoint.to_string(),
    ] {
        std::fs::create_dir_all(tenant.dir().join(d))?;
    }
    Ok(())
}

fn demo_tenant(tenant: &Tenant, index: u32) -> Result<()> {
    let job = uuid::Uuid::new_v4().simple().to_string();
    let savepoint = format!("savepoint-{}-{:012x}", &job[..6], index);
    prepare_directories(tenant, &job, &savepoint)?;
    let view = tenant.open_worker_view(&StorageConfig::filesystem(&job))?;
    println!("job {job}");

    let savepoint_ref = LocationReference::encode_path(&format!("/checkpoints/{savepoint}"));
    let mut to_duplicate = None;
    for (label, reference) in [
        ("checkpoint 1, default reference", LocationReference::Default),
        ("savepoint, encoded reference", savepoint_ref),
    ] {
        let factory = view.resolve_checkpoint_storage_location(1, &reference)?;
        println!(
            "\n{label} {reference}\n  exclusive -> {}\n  shared    -> {}",
            factory.checkpoint_directory()?,
            factory.shared_state_directory()?
        );
        for scope in [StateScope::Exclusive, StateScope::Shared] {
            for (size, what) in [(100usize, "small"), (64 * 1024, "large")] {
                let stream = factory.create_checkpoint_state_output_stream(scope)?;
                stream.write(&pattern(size, index))?;
                let handle = stream.close_and_get_handle()?.context("a handle")?;
                let scope = match scope {
                    StateScope::Exclusive => "exclusive",
                    StateScope::Shared => "shared",
                };
                println!("  {scope:9} {what} ({size} B): {handle}");
                if to_duplicate.is_none() && handle.file_path().is_some() {
                    to_duplicate = Some(handle);
                }
            }
        }
    }

    let stream = view.create_task_owned_state_stream()?;
    stream.write(&pattern(30 * 1024, index))?;
    let handle = stream.close_and_get_handle()?.context("a handle")?;
    println!("\ntask-owned stream (30 KiB): {}", handle);

    let toolset = view.create_task_owned_checkpoint_state_toolset()?;
    let original = to_duplicate.context("a file handle to duplicate")?;
    println!(
        "\nduplicate into taskowned (fast: {}):\n  from {}",
        toolset.can_fast_duplicate(&original)?,
        original
    );
    for copy in toolset.duplicate(std::slice::from_ref(&original))? {
        println!("  to   {}", copy);
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
