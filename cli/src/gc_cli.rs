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
}

fn parse_grace(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("'{raw}' is not a duration ({e}); write it like 90s, 30m or 2h"))
}

pub fn run(args: GcArgs) -> Result<()> {
    let options = gc::GcOptions {
        grace: args.grace,
        delete: args.delete,
    };
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
    anyhow::ensure!(
        report.failures.is_empty(),
        "{} orphans could not be deleted",
        report.failures.len()
    );
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
