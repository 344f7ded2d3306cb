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
    /// MiB written per chunk size and variant, 1 to 65536 (default 256; 32
    /// with --quick).
    #[arg(long, value_parser = mib(bench::MAX_BYTES_PER_CHUNK_SIZE))]
    size: Option<u64>,
    /// MiB per stream, 1 to 1024, at most --size (default 16, the stream
    /// size of the comparison with Flink's own implementation).
    #[arg(long, default_value_t = 16, value_parser = mib(bench::MAX_STREAM_BYTES))]
    stream_size: u64,
    /// A shorter run: 32 MiB per chunk size, fewer samples, 1,000 idle tenants.
    #[arg(long)]
    quick: bool,
    /// Idle tenant counts for the memory figure (comma-separated), each 1
    /// to 100000.
    #[arg(long, value_delimiter = ',', value_parser = whole_number(1, u64::from(bench::MAX_MEMORY_TENANTS), "tenants"))]
    tenants: Option<Vec<u64>>,
    /// Full runs, one after the other, 1 to 100 (default 1); each figure is
    /// then reported as its median over the runs with its min-max spread.
    #[arg(long, default_value_t = 1, value_parser = whole_number(1, u64::from(bench::MAX_REPEAT), "runs"))]
    repeat: u64,
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

/// A parser of a whole number from `min` to `max`, whose error says so in
/// words (clap's own range message prints `1..18446744073709551615`).
fn whole_number(min: u64, max: u64, unit: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |raw: &str| {
        let n: u64 = raw
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number of {unit} from {min} to {max}"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("must be from {min} to {max} {unit}"))
        }
    }
}

/// A parser of a size in MiB, from 1 to `max_bytes` bytes.
fn mib(max_bytes: u64) -> impl Fn(&str) -> Result<u64, String> + Clone {
    whole_number(1, max_bytes >> 20, "MiB")
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
    // In range (the parsers checked): no shift overflows.
    options.stream_bytes = args.stream_size << 20;
    if let Some(mib) = args.size {
        options.bytes_per_chunk_size = mib << 20;
    }
    // In range (the parser checked).
    options.repeat = args.repeat as u32;
    if let Some(tenants) = args.tenants {
        options.memory_tenants = tenants.into_iter().map(|n| n as u32).collect();
    }
    if options.stream_bytes > options.bytes_per_chunk_size {
        anyhow::bail!(
            "--stream-size ({} MiB) must not be larger than --size ({} MiB)",
            args.stream_size,
            options.bytes_per_chunk_size >> 20
        );
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
