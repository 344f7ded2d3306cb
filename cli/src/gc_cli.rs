//! The `gc` subcommand: orphan collection in a tenant directory or below
//! an object store prefix.

use anyhow::{Context, Result};
use checkpoint_storage_host::{blobstore, gc, inspect};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct GcArgs {
    /// The tenant directory (what the tenant sees as /checkpoints).
    #[arg(required_unless_present = "s3")]
    dir: Option<PathBuf>,
    /// Delete the orphans. Without it, only list what would go.
    #[arg(long)]
    delete: bool,
    /// Files and directories modified more recently than this are kept (a
    /// live writer may own them), e.g. `90s`, `30m`, `2h`. Keep it above the
    /// longest a checkpoint may take (Flink's checkpoint timeout).
    #[arg(long, default_value = "1h", value_parser = parse_grace)]
    grace: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    s3: crate::s3_cli::S3Args,
    /// Another container of the same tenant, `s3://<bucket>/<prefix>` or
    /// `s3://<bucket>/<prefix>=<container>` when the tenant names it
    /// otherwise than its bucket (same endpoint and credentials), collected
    /// together with `--s3`: a manifest in any of them keeps what it names
    /// in all (a checkpoint may name state in another container after a
    /// claimed restore). Repeat it for more; targets must not overlap.
    #[arg(long = "also-s3", value_name = "URI[=CONTAINER]", requires = "s3")]
    also_s3: Vec<String>,
}

fn parse_grace(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("'{raw}' is not a duration ({e}); write it like 90s, 30m or 2h"))
}

pub fn run(args: GcArgs) -> Result<()> {
    let options = gc::GcOptions {
        grace: args.grace,
        delete: args.delete,
    };
    if args.s3.s3.is_some() && !args.also_s3.is_empty() {
        return run_containers(&args, &options);
    }
    let report = match &args.dir {
        _ if args.s3.s3.is_some() => blobstore::gc::collect(&args.s3.grant()?, &options)?,
        Some(dir) => {
            let root = inspect::check_root(dir).with_context(|| format!("cannot collect in {}", dir.display()))?;
            gc::collect(&root, &options)?
        }
        None => anyhow::bail!("a directory or --s3 is required"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", gc::render(&report));
    }
    deleted_all(report.failures.len())
}

/// Several containers of one tenant: one report each, `--s3` first (JSON:
/// an array of `{ "target", "report" }`).
fn run_containers(args: &GcArgs, options: &gc::GcOptions) -> Result<()> {
    let mut targets = vec![args.s3.clone()];
    for raw in &args.also_s3 {
        let (uri, container) = match raw.split_once('=') {
            Some((uri, container)) if !container.is_empty() => (uri.to_string(), Some(container.to_string())),
            Some(_) => {
                anyhow::bail!("--also-s3 '{raw}' names an empty container; write s3://<bucket>/<prefix>=<container>")
            }
            None => (raw.clone(), None),
        };
        targets.push(crate::s3_cli::S3Args {
            s3: Some(uri),
            container,
            ..args.s3.clone()
        });
    }
    let uri = |t: &crate::s3_cli::S3Args| t.s3.clone().unwrap_or_default();
    let grants = targets
        .iter()
        .map(|t| t.grant().with_context(|| format!("target {}", uri(t))))
        .collect::<Result<Vec<_>>>()?;
    // Separate stores for one bucket look unrelated to the library: nested
    // prefixes of one bucket are refused here.
    let buckets_and_prefixes = targets.iter().map(|t| t.target()).collect::<Result<Vec<_>>>()?;
    for (i, (bucket_a, prefix_a)) in buckets_and_prefixes.iter().enumerate() {
        for (j, (bucket_b, prefix_b)) in buckets_and_prefixes.iter().enumerate().skip(i + 1) {
            if bucket_a == bucket_b && blobstore::gc::prefixes_overlap(prefix_a, prefix_b) {
                anyhow::bail!(
                    "{} and {} overlap (one bucket, nested prefixes): give each of the tenant's containers once",
                    uri(&targets[i]),
                    uri(&targets[j])
                );
            }
        }
    }
    let reports = blobstore::gc::collect_all(&grants, options)?;
    if args.json {
        let out: Vec<_> = targets
            .iter()
            .zip(&reports)
            .map(|(target, report)| serde_json::json!({ "target": uri(target), "report": report }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (target, report) in targets.iter().zip(&reports) {
            println!("{}:", uri(target));
            print!("{}", gc::render(report));
        }
    }
    deleted_all(reports.iter().map(|r| r.failures.len()).sum())
}

fn deleted_all(failures: usize) -> Result<()> {
    anyhow::ensure!(failures == 0, "{failures} orphans could not be deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_parses_human_durations_and_refuses_others() {
        assert_eq!(parse_grace("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_grace("2h").unwrap(), Duration::from_secs(7200));
        let e = parse_grace("soon").unwrap_err();
        assert!(e.contains("'soon' is not a duration"), "{e}");
    }
}
