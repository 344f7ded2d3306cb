//! `demo --s3` and `inspect --s3`: the demo and the inventory against a
//! bucket prefix instead of a directory. Endpoint, region and credentials
//! come from the flags or the usual `AWS_*` variables.

use anyhow::{Context, Result, bail};
use checkpoint_storage_host::blobstore::{S3Settings, list_prefix};
use checkpoint_storage_host::{BlobGrant, Plugin, PluginOptions, Tenant, TenantConfig};
use std::collections::BTreeMap;

/// Where the object storage target is and how to reach it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct S3Args {
    /// Use object storage instead of a directory: `s3://<bucket>/<prefix>`.
    /// The tenant is granted `<bucket>`, its keys go below `<prefix>`.
    #[arg(long, value_name = "URI")]
    pub s3: Option<String>,
    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default:
    /// AWS_ENDPOINT_URL, else AWS).
    #[arg(long, requires = "s3")]
    pub endpoint: Option<String>,
    /// Region (default: AWS_REGION / AWS_DEFAULT_REGION).
    #[arg(long, requires = "s3")]
    pub region: Option<String>,
    /// Access key id (default: AWS_ACCESS_KEY_ID).
    #[arg(long, requires = "s3")]
    pub access_key_id: Option<String>,
    /// Secret access key (default: AWS_SECRET_ACCESS_KEY; prefer the
    /// variable: a flag shows in the process list).
    #[arg(long, requires = "s3")]
    pub secret_access_key: Option<String>,
    /// Allow a plain http:// endpoint (local servers).
    #[arg(long, requires = "s3")]
    pub allow_http: bool,
    /// The container name the tenant uses in its `s3://` paths, when its
    /// host grants the bucket under another name (default: the bucket's
    /// name). `gc` needs it right: manifests name objects by it.
    #[arg(long, requires = "s3")]
    pub container: Option<String>,
}

impl S3Args {
    /// Bucket and prefix of `--s3`.
    pub(crate) fn target(&self) -> Result<(String, String)> {
        let uri = self.s3.as_deref().context("--s3 is required")?;
        let Some(rest) = uri.strip_prefix("s3://") else {
            bail!("--s3 takes s3://<bucket>/<prefix>, got '{uri}'");
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("--s3 '{uri}' names no bucket");
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    pub(crate) fn grant(&self) -> Result<BlobGrant> {
        let (bucket, prefix) = self.target()?;
        let settings = S3Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            allow_http: self.allow_http,
            ..S3Settings::from_env(&bucket)
        };
        let store = settings
            .build()
            .with_context(|| format!("S3 client for bucket '{bucket}'"))?;
        let container = self.container.clone().unwrap_or(bucket);
        Ok(BlobGrant::new(container, store, prefix))
    }
}

/// The demo on object storage: one tenant granted the bucket below the prefix.
pub fn demo(args: &S3Args) -> Result<()> {
    let grant = args.grant()?;
    let started = std::time::Instant::now();
    let plugin = Plugin::load_blobstore_with(&PluginOptions::default())?;
    println!(
        "object storage component loaded and compiled in {:.0?}",
        started.elapsed()
    );
    let tenant = plugin.tenant(TenantConfig::object_store(vec![grant.clone()]))?;
    let dirs = crate::DemoDirs {
        checkpoints: format!("s3://{}/checkpoints", grant.container),
        savepoints: format!("s3://{}/savepoints", grant.container),
    };
    println!(
        "\n=== tenant-1: container '{}' = bucket below '{}'",
        grant.container, grant.prefix
    );
    let fresh = || -> Result<Tenant> { Ok(plugin.tenant(TenantConfig::object_store(vec![grant.clone()]))?) };
    crate::demo_tenant(&tenant, &fresh, 1, &dirs)?;
    println!("\nobjects below {}:", args.s3.as_deref().unwrap_or_default());
    for (key, size) in list_prefix(&grant.store, &grant.prefix)? {
        println!("  {key}  ({size} bytes)");
    }
    Ok(())
}

/// `demo --s3-loopback`: a real S3 server (s3s-fs over a temporary
/// directory) on 127.0.0.1 for the length of the demo, and the object
/// storage demo against it.
pub fn demo_loopback() -> Result<()> {
    let server = s3_loopback::S3Server::start(&["demo-bucket"]);
    println!(
        "S3 server (s3s-fs) on {} over {}",
        server.endpoint(),
        server.root().display()
    );
    let args = S3Args {
        s3: Some("s3://demo-bucket/team-a".into()),
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some(s3_loopback::ACCESS_KEY.into()),
        secret_access_key: Some(s3_loopback::SECRET_KEY.into()),
        allow_http: true,
        container: None,
    };
    demo(&args)?;
    println!(
        "
The server stops now; its objects go with its temporary directory."
    );
    Ok(())
}

/// One checkpoint directory's objects.
#[derive(Default, serde::Serialize)]
struct Group {
    objects: usize,
    bytes: u64,
    has_metadata: bool,
}

/// Lists the objects below the prefix, grouped by their directory
/// (`<job>/chk-<N>`, `<job>/shared`, a savepoint, ...).
pub fn inspect(args: &S3Args, json: bool) -> Result<()> {
    let grant = args.grant()?;
    let objects = list_prefix(&grant.store, &grant.prefix)?;
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (key, size) in &objects {
        let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
        let g = groups.entry(dir.to_string()).or_default();
        g.objects += 1;
        g.bytes += size;
        g.has_metadata |= name == checkpoint_storage_core::layout::METADATA_FILE_NAME;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    println!(
        "{} objects below {}",
        objects.len(),
        args.s3.as_deref().unwrap_or_default()
    );
    for (dir, g) in &groups {
        let metadata = if g.has_metadata { ", _metadata" } else { "" };
        println!("  {dir}/: {} objects, {} bytes{metadata}", g.objects, g.bytes);
    }
    Ok(())
}
