//! Orphan collection below an object store prefix: the same rules as
//! [`crate::gc`] for a directory, on objects. Every `_metadata` below the
//! prefix is a root; an object below a job or savepoint "directory" that
//! no manifest references and that was written longer than the grace
//! period ago is an orphan. There are no directories, so there are no
//! incomplete-directory orphans and no symbolic links.

use super::BlobGrant;
use super::listing::PrefixTool;
use crate::gc::{GcError, GcOptions, GcReport, is_managed, sort_files};
use crate::manifest::CheckpointManifest;
use checkpoint_storage_core::layout::METADATA_FILE_NAME;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn store_error(key: &str) -> impl FnOnce(object_store::Error) -> GcError + '_ {
    move |e| GcError::Io {
        path: PathBuf::from(key),
        source: io::Error::other(e),
    }
}

/// Finds the orphans below the grant's prefix and, with `options.delete`,
/// deletes them. Keys in the report are relative to the prefix.
pub fn collect(grant: &BlobGrant, options: &GcOptions) -> Result<GcReport, GcError> {
    let now = SystemTime::now();
    let old = |modified: SystemTime| now.duration_since(modified).is_ok_and(|age| age >= options.grace);
    let tool = PrefixTool::new(&grant.store, &grant.prefix).map_err(store_error(&grant.prefix))?;
    let objects = tool.list().map_err(store_error(&grant.prefix))?;
    let (manifests, files): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| Path::new(&o.key).file_name().is_some_and(|n| n == METADATA_FILE_NAME));

    // Handles name objects as the tenant does: `s3://<container>/<key>`.
    let uri_prefix = format!("s3://{}/", grant.container);
    let mut referenced = BTreeSet::new();
    for m in &manifests {
        if m.size > crate::checkpoint_store::MAX_MANIFEST_BYTES {
            return Err(GcError::ManifestTooLarge {
                path: PathBuf::from(&m.key),
                size: m.size,
            });
        }
        let bytes = tool.read(&m.key).map_err(store_error(&m.key))?;
        let dir = m.key.rsplit_once('/').map_or("", |(d, _)| d);
        let manifest = CheckpointManifest::from_json_in(&bytes, &format!("{uri_prefix}{dir}")).map_err(|source| {
            GcError::Manifest {
                path: PathBuf::from(&m.key),
                source,
            }
        })?;
        referenced.extend(
            manifest
                .states
                .iter()
                .filter_map(|s| s.handle.file_path())
                .filter_map(|p| p.strip_prefix(&uri_prefix))
                .map(PathBuf::from),
        );
    }

    let mut report = GcReport {
        manifests: manifests.len(),
        deleted: options.delete,
        ..Default::default()
    };
    let managed = files
        .into_iter()
        .map(|o| (PathBuf::from(o.key), o.size, o.modified))
        .filter(|(path, ..)| is_managed(path))
        .collect();
    sort_files(managed, &referenced, &old, &mut report);
    report.orphans.sort_by(|a, b| a.path.cmp(&b.path));
    report.young.sort_by(|a, b| a.path.cmp(&b.path));
    if options.delete {
        for o in &report.orphans {
            if let Err(e) = tool.delete(&o.path.to_string_lossy()) {
                report.failures.push((o.display.clone(), e.to_string()));
            }
        }
    }
    Ok(report)
}
