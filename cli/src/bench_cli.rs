//! The `bench` subcommand: options, progress bar, table / JSON, chart.

use anyhow::{Context, Result};
use checkpoint_storage_cli::bench::{self, BenchOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Parent of the run's temporary directory (default: the system's temp
    /// directory); the filesystem under test.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// MiB written per chunk size and variant (default 256; 32 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    size: Option<u64>,
    /// MiB per stream.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    stream_size: u64,
    /// A shorter run: 32 MiB per chunk size, fewer samples, 1,000 idle tenants.
    #[arg(long)]
    quick: bool,
    /// Idle tenant counts for the memory figure (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tenants: Option<Vec<u32>>,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also write a chart of the results (SVG) to this path.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Instead: file merging (FLIP-306) against no merging, over this many
    /// checkpoints of 1,000 states of 100 B to 64 KiB.
    #[arg(long, value_name = "CHECKPOINTS")]
    file_merging: Option<u64>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build measures the debug host; use `cargo run --release`");
    }
    if let Some(checkpoints) = args.file_merging {
        return file_merging(args.dir, checkpoints, args.json);
    }
    let mut options = if args.quick {
        BenchOptions::quick()
    } else {
        BenchOptions::default()
    };
    options.dir = args.dir;
    options.stream_bytes = args.stream_size << 20;
    if let Some(mib) = args.size {
        options.bytes_per_chunk_size = mib << 20;
    }
    if let Some(tenants) = args.tenants {
        options.memory_tenants = tenants;
    }
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
            .context("progress bar template")?,
    );
    let report = bench::run(&options, &progress)?;
    progress.finish_and_clear();
    if args.json {
        eprint!("{}", report.table());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = args.chart {
        bench::write_chart(&report, &path)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

/// `bench --file-merging N`.
fn file_merging(dir: Option<PathBuf>, checkpoints: u64, json: bool) -> Result<()> {
    let parent = dir.unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("checkpoint-storage-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let plugin = checkpoint_storage_host::Plugin::load()?;
    let rows = bench::file_merging::measure(&plugin, root.path(), checkpoints)?;
    if json {
        eprint!("{}", bench::file_merging::table(&rows));
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", bench::file_merging::table(&rows));
    }
    Ok(())
}
