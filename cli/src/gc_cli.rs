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
    /// Another container of the same tenant (`s3://<bucket>/<prefix>`, same
    /// endpoint and credentials, container named as the bucket), collected
    /// together with `--s3`: a manifest in any of them keeps what it names
    /// in all (a checkpoint may name state in another container after a
    /// claimed restore). Repeat it for more.
    #[arg(long = "also-s3", value_name = "URI", requires = "s3")]
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
    let targets: Vec<&str> = args
        .s3
        .s3
        .iter()
        .map(String::as_str)
        .chain(args.also_s3.iter().map(String::as_str))
        .collect();
    let grants = targets
        .iter()
        .map(|uri| {
            crate::s3_cli::S3Args {
                s3: Some(uri.to_string()),
                container: if Some(*uri) == args.s3.s3.as_deref() {
                    args.s3.container.clone()
                } else {
                    None
                },
                ..args.s3.clone()
            }
            .grant()
        })
        .collect::<Result<Vec<_>>>()?;
    let reports = blobstore::gc::collect_all(&grants, options)?;
    if args.json {
        let out: Vec<_> = targets
            .iter()
            .zip(&reports)
            .map(|(target, report)| serde_json::json!({ "target": target, "report": report }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (target, report) in targets.iter().zip(&reports) {
            println!("{target}:");
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
