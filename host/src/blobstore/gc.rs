//! Orphan collection below an object store prefix: the same rules as
//! [`crate::gc`] for a directory, on objects. Every `_metadata` below the
//! prefix is a root; an object below a job or savepoint "directory" that
//! no manifest references and that was written longer than the grace
//! period ago is an orphan. There are no directories, so there are no
//! incomplete-directory orphans and no symbolic links.
//!
//! A listing is paged in key order, so next to a live job one listing can
//! miss a checkpoint's manifest written behind its cursor while the
//! manifest it subsumed is deleted ahead of it (`chk-10` sorts before
//! `chk-9`): the shared objects both name would look unreferenced. So the
//! prefix is listed again after the manifests are read, and again while a
//! listing shows a manifest not read yet. Once a listing shows nothing new,
//! every manifest that could name an object older than the grace has been
//! read: a checkpoint completing during that listing names only what its
//! predecessor (read) named, plus objects written within the grace.

use super::BlobGrant;
use super::listing::{Listed, PrefixTool};
use crate::gc::{GcError, GcOptions, GcReport, is_managed, look_until_settled, sort_files};
use crate::manifest::CheckpointManifest;
use checkpoint_storage_core::layout::METADATA_FILE_NAME;
use checkpoint_storage_core::object_uri;
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

fn is_manifest(o: &Listed) -> bool {
    Path::new(&o.key).file_name().is_some_and(|n| n == METADATA_FILE_NAME)
}

/// Finds the orphans below the grant's prefix and, with `options.delete`,
/// deletes them. Keys in the report are relative to the prefix. The
/// grant's container name must be the one the tenant uses: manifests name
/// objects as `s3://<container>/<key>`.
pub fn collect(grant: &BlobGrant, options: &GcOptions) -> Result<GcReport, GcError> {
    let tool = PrefixTool::new(&grant.store, &grant.prefix).map_err(store_error(&grant.prefix))?;
    collect_listed(&tool, grant, options, &mut || tool.list())
}

/// [`collect`] with the listing given (tests interleave a live job with it).
fn collect_listed(
    tool: &PrefixTool,
    grant: &BlobGrant,
    options: &GcOptions,
    list: &mut dyn FnMut() -> Result<Vec<Listed>, object_store::Error>,
) -> Result<GcReport, GcError> {
    let now = SystemTime::now();
    let old = |modified: SystemTime| now.duration_since(modified).is_ok_and(|age| age >= options.grace);
    let mut roots = Roots {
        tool,
        guest_prefix: format!("/{}/", grant.container),
        uri_prefix: format!("s3://{}/", grant.container),
        location: format!("s3://{}/ (prefix '{}')", grant.container, grant.prefix),
        read: BTreeSet::new(),
        referenced: BTreeSet::new(),
        named_by: vec![],
    };
    let first = list().map_err(store_error(&grant.prefix))?;
    let mut seen: BTreeSet<String> = first.iter().map(|o| o.key.clone()).collect();
    roots.read_new(&first)?;
    look_until_settled(|| {
        let again = list().map_err(store_error(&grant.prefix))?;
        seen.extend(again.iter().map(|o| o.key.clone()));
        roots.read_new(&again)
    })?;
    // A completed checkpoint never names a missing object; one that does
    // means the prefix or the container name is not the tenant's.
    if let Some((manifest, key)) = roots.named_by.iter().find(|(_, key)| !seen.contains(key)) {
        return Err(GcError::NamedObjectMissing {
            manifest: PathBuf::from(manifest),
            named: format!("{}{key}", roots.uri_prefix),
            location: roots.location,
        });
    }

    let mut report = GcReport {
        manifests: roots.read.len(),
        deleted: options.delete,
        ..Default::default()
    };
    // The objects of the first listing only: one written later is younger
    // than any grace.
    let managed = first
        .into_iter()
        .filter(|o| !is_manifest(o))
        .map(|o| (PathBuf::from(o.key), o.size, o.modified))
        .filter(|(path, ..)| is_managed(path))
        .collect();
    sort_files(managed, &roots.referenced, &old, &mut report);
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

/// The manifests read so far and what they name.
struct Roots<'a> {
    tool: &'a PrefixTool<'a>,
    /// The container's objects as guest paths: `/<container>/`.
    guest_prefix: String,
    /// How the component names the container's objects: `s3://<container>/`.
    uri_prefix: String,
    /// For messages: the container and the prefix.
    location: String,
    /// Keys of the manifests read.
    read: BTreeSet<String>,
    /// Keys (relative to the prefix) the manifests name.
    referenced: BTreeSet<PathBuf>,
    /// (manifest key, named key) for the missing-object check.
    named_by: Vec<(String, String)>,
}

impl Roots<'_> {
    /// Reads the manifests of a listing not read yet; whether there were
    /// any, or one vanished before it could be read (a subsumption: its
    /// successor is for a later listing to find).
    fn read_new(&mut self, listing: &[Listed]) -> Result<bool, GcError> {
        let mut any = false;
        for m in listing.iter().filter(|o| is_manifest(o)) {
            if self.read.contains(&m.key) {
                continue;
            }
            any = true;
            if self.read(m)? {
                self.read.insert(m.key.clone());
            }
        }
        Ok(any)
    }

    /// Reads one manifest; `false` if it is gone.
    fn read(&mut self, m: &Listed) -> Result<bool, GcError> {
        if m.size > crate::checkpoint_store::MAX_MANIFEST_BYTES {
            return Err(GcError::ManifestTooLarge {
                path: PathBuf::from(&m.key),
                size: m.size,
            });
        }
        let bytes = match self.tool.read(&m.key) {
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            other => other.map_err(store_error(&m.key))?,
        };
        let dir = m.key.rsplit_once('/').map_or("", |(d, _)| d);
        let manifest =
            CheckpointManifest::from_json_in(&bytes, &format!("{}{dir}", self.uri_prefix)).map_err(|source| {
                GcError::Manifest {
                    path: PathBuf::from(&m.key),
                    source,
                }
            })?;
        for named in manifest.states.iter().filter_map(|s| s.handle.file_path()) {
            // `s3a://`, `s3p://` and any case of the scheme name the same object.
            let guest = object_uri::to_guest(named);
            let Some(key) = guest.strip_prefix(&self.guest_prefix) else {
                return Err(GcError::NamedObjectMissing {
                    manifest: PathBuf::from(&m.key),
                    named: named.to_string(),
                    location: self.location.clone(),
                });
            };
            self.referenced.insert(PathBuf::from(key));
            self.named_by.push((m.key.clone(), key.to_string()));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::NamedState;
    use crate::types::{FileHandle, StateHandle};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use std::sync::Arc;
    use std::time::Duration;

    const JOB: &str = "0123456789abcdef0123456789abcdef";

    fn grant() -> BlobGrant {
        BlobGrant::new("bucket", Arc::new(InMemory::new()) as Arc<dyn ObjectStore>, "team-a")
    }

    fn put(tool: &PrefixTool, grant: &BlobGrant, key: &str, bytes: Vec<u8>) {
        let path = object_store::path::Path::from(format!("{}/{key}", grant.prefix));
        futures::executor::block_on(grant.store.put(&path, bytes.into())).unwrap();
        assert!(tool.list().unwrap().iter().any(|o| o.key == key));
    }

    /// The `_metadata` of checkpoint `id`, naming `shared` objects by `uri_prefix`.
    fn manifest(id: u64, uri_prefix: &str, shared: &[&str]) -> Vec<u8> {
        let states = shared
            .iter()
            .map(|s| NamedState {
                name: s.to_string(),
                handle: StateHandle::File(FileHandle {
                    path: format!("{uri_prefix}checkpoints/{JOB}/shared/{s}"),
                    size: 1,
                }),
            })
            .collect();
        CheckpointManifest {
            job_id: JOB.into(),
            checkpoint_id: id,
            states,
        }
        .to_json()
    }

    fn no_grace(delete: bool) -> GcOptions {
        GcOptions {
            grace: Duration::ZERO,
            delete,
        }
    }

    fn keys(tool: &PrefixTool) -> Vec<String> {
        tool.list().unwrap().into_iter().map(|o| o.key).collect()
    }

    /// Checkpoint 10 completes and subsumes 9 during the first listing:
    /// either the paged listing sees neither manifest (10 is written behind
    /// its cursor, 9 deleted ahead of it), or it sees 9's, which is gone
    /// before it is read. Either way the object 10 names stays.
    #[test]
    fn a_checkpoint_completing_behind_the_listing_keeps_its_objects() {
        for seen_before_read in [false, true] {
            a_checkpoint_completes_during_the_listing(seen_before_read);
        }
    }

    fn a_checkpoint_completes_during_the_listing(seen_before_read: bool) {
        let g = grant();
        let tool = PrefixTool::new(&g.store, &g.prefix).unwrap();
        let shared = format!("checkpoints/{JOB}/shared/s1");
        put(&tool, &g, &shared, vec![1]);
        put(&tool, &g, &format!("checkpoints/{JOB}/shared/stray"), vec![2]);
        put(
            &tool,
            &g,
            &format!("checkpoints/{JOB}/chk-9/_metadata"),
            manifest(9, "s3://bucket/", &["s1"]),
        );
        let mut calls = 0;
        let mut list = || {
            calls += 1;
            if calls == 1 {
                let seen: Vec<Listed> = tool
                    .list()?
                    .into_iter()
                    .filter(|o| seen_before_read || !is_manifest(o))
                    .collect();
                put(
                    &tool,
                    &g,
                    &format!("checkpoints/{JOB}/chk-10/_metadata"),
                    manifest(10, "s3://bucket/", &["s1"]),
                );
                tool.delete(&format!("checkpoints/{JOB}/chk-9/_metadata"))?;
                return Ok(seen);
            }
            tool.list()
        };
        let report = collect_listed(&tool, &g, &no_grace(true), &mut list).unwrap();
        assert_eq!(calls, 3, "listed until a listing showed nothing new");
        assert_eq!(report.manifests, 1);
        let now = keys(&tool);
        assert!(
            now.contains(&shared),
            "the shared object checkpoint 10 names stays: {now:?}"
        );
        assert!(!now.contains(&format!("checkpoints/{JOB}/shared/stray")), "{now:?}");
    }

    #[test]
    fn a_prefix_that_keeps_changing_stops_the_collection() {
        let g = grant();
        let tool = PrefixTool::new(&g.store, &g.prefix).unwrap();
        put(&tool, &g, &format!("checkpoints/{JOB}/shared/stray"), vec![2]);
        let mut id = 0;
        let mut list = || {
            id += 1;
            put(
                &tool,
                &g,
                &format!("checkpoints/{JOB}/chk-{id}/_metadata"),
                manifest(id, "s3://bucket/", &[]),
            );
            tool.list()
        };
        let e = collect_listed(&tool, &g, &no_grace(true), &mut list).unwrap_err();
        assert!(
            matches!(
                e,
                GcError::Unsettled {
                    rounds: crate::gc::MAX_LISTINGS
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("run it again"), "{e}");
        assert!(
            keys(&tool).contains(&format!("checkpoints/{JOB}/shared/stray")),
            "nothing deleted"
        );
    }

    #[test]
    fn a_manifest_naming_another_container_or_a_missing_object_stops_the_collection() {
        for (uri_prefix, shared_exists) in [("s3://other-name/", true), ("s3://bucket/", false)] {
            let g = grant();
            let tool = PrefixTool::new(&g.store, &g.prefix).unwrap();
            let shared = format!("checkpoints/{JOB}/shared/s1");
            if shared_exists {
                put(&tool, &g, &shared, vec![1]);
            }
            put(&tool, &g, &format!("checkpoints/{JOB}/shared/stray"), vec![2]);
            put(
                &tool,
                &g,
                &format!("checkpoints/{JOB}/chk-1/_metadata"),
                manifest(1, uri_prefix, &["s1"]),
            );
            let e = collect(&g, &no_grace(true)).unwrap_err();
            let GcError::NamedObjectMissing { named, .. } = &e else {
                panic!("{e}")
            };
            assert_eq!(named, &format!("{uri_prefix}{shared}"));
            assert!(e.to_string().contains("container name"), "{e}");
            let now = keys(&tool);
            assert!(
                now.contains(&format!("checkpoints/{JOB}/shared/stray")),
                "nothing deleted"
            );
            assert_eq!(now.contains(&shared), shared_exists, "nothing deleted");
        }
    }

    #[test]
    fn handles_in_any_spelling_of_the_scheme_name_the_same_object() {
        let g = grant();
        let tool = PrefixTool::new(&g.store, &g.prefix).unwrap();
        for (i, scheme) in ["s3a://", "S3://", "s3p://"].iter().enumerate() {
            put(&tool, &g, &format!("checkpoints/{JOB}/shared/s1"), vec![1]);
            put(
                &tool,
                &g,
                &format!("checkpoints/{JOB}/chk-{i}/_metadata"),
                manifest(i as u64, &format!("{scheme}bucket/"), &["s1"]),
            );
            let r = collect(&g, &no_grace(true)).unwrap();
            assert!(r.orphans.is_empty(), "{scheme}: {:?}", r.orphans);
            assert!(
                keys(&tool).contains(&format!("checkpoints/{JOB}/shared/s1")),
                "{scheme}"
            );
        }
    }

    #[test]
    fn objects_a_manifest_names_are_kept_and_the_rest_collected() {
        let g = grant();
        let tool = PrefixTool::new(&g.store, &g.prefix).unwrap();
        put(&tool, &g, &format!("checkpoints/{JOB}/shared/s1"), vec![1]);
        put(&tool, &g, &format!("checkpoints/{JOB}/chk-1/crashed"), vec![3]);
        put(&tool, &g, "README", vec![4]);
        put(
            &tool,
            &g,
            &format!("checkpoints/{JOB}/chk-1/_metadata"),
            manifest(1, "s3://bucket/", &["s1"]),
        );
        let dry = collect(&g, &no_grace(false)).unwrap();
        assert_eq!(
            dry.orphans.iter().map(|o| o.display.clone()).collect::<Vec<_>>(),
            vec![format!("checkpoints/{JOB}/chk-1/crashed")]
        );
        assert_eq!((dry.manifests, dry.referenced), (1, 1));
        assert_eq!(keys(&tool).len(), 4, "a dry run deletes nothing");
        collect(&g, &no_grace(true)).unwrap();
        assert_eq!(
            keys(&tool),
            vec![
                "README".to_string(),
                format!("checkpoints/{JOB}/chk-1/_metadata"),
                format!("checkpoints/{JOB}/shared/s1"),
            ]
        );
    }
}
