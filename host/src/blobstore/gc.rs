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
/// objects as `s3://<container>/<key>`. A tenant with grants on several
/// containers is collected with [`collect_all`].
pub fn collect(grant: &BlobGrant, options: &GcOptions) -> Result<GcReport, GcError> {
    let mut reports = collect_all(std::slice::from_ref(grant), options)?;
    Ok(reports.remove(0))
}

/// [`collect`] for all the grants of one tenant at once, one report per
/// grant: a manifest in any of them is a root for all, since a checkpoint
/// may name state in another container (after a restore that claimed a
/// snapshot stored there). Collecting one of those containers alone would
/// see its objects as unreferenced; collect a tenant's containers together.
pub fn collect_all(grants: &[BlobGrant], options: &GcOptions) -> Result<Vec<GcReport>, GcError> {
    refuse_overlaps(grants)?;
    let tools = grants
        .iter()
        .map(|g| PrefixTool::new(&g.store, &g.prefix).map_err(store_error(&g.prefix)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut list = |i: usize| tools[i].list();
    collect_listed(&tools, grants, options, &mut list)
}

/// Grants that name one container, or one store below equal or nested
/// prefixes, would delete each other's referenced objects: refused. (Two
/// stores built apart for the same bucket cannot be told apart here; the
/// CLI compares its targets itself.)
fn refuse_overlaps(grants: &[BlobGrant]) -> Result<(), GcError> {
    for (i, a) in grants.iter().enumerate() {
        for b in &grants[i + 1..] {
            let same_store = std::sync::Arc::ptr_eq(&a.store, &b.store);
            if a.container == b.container || (same_store && prefixes_overlap(&a.prefix, &b.prefix)) {
                let name = |g: &BlobGrant| format!("s3://{}/ (prefix '{}')", g.container, g.prefix);
                return Err(GcError::GrantsOverlap {
                    first: name(a),
                    second: name(b),
                });
            }
        }
    }
    Ok(())
}

/// Whether two prefixes of one store reach common objects: equal, one
/// below the other (by whole segments), or one empty (the whole store).
pub fn prefixes_overlap(a: &str, b: &str) -> bool {
    let below = |inner: &str, outer: &str| {
        outer.is_empty() || inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
    };
    below(a, b) || below(b, a)
}

/// [`collect_all`] with the listing given (tests interleave a live job with it).
fn collect_listed(
    tools: &[PrefixTool],
    grants: &[BlobGrant],
    options: &GcOptions,
    list: &mut dyn FnMut(usize) -> Result<Vec<Listed>, object_store::Error>,
) -> Result<Vec<GcReport>, GcError> {
    let now = SystemTime::now();
    let old = |modified: SystemTime| now.duration_since(modified).is_ok_and(|age| age >= options.grace);
    let mut roots = Roots {
        tools,
        containers: grants
            .iter()
            .map(|g| Container {
                guest_prefix: format!("/{}/", g.container),
                uri_prefix: format!("s3://{}/", g.container),
            })
            .collect(),
        location: grants
            .iter()
            .map(|g| format!("s3://{}/ (prefix '{}')", g.container, g.prefix))
            .collect::<Vec<_>>()
            .join(", "),
        read: BTreeSet::new(),
        referenced: BTreeSet::new(),
        named_by: vec![],
    };
    let mut listings = vec![];
    let mut seen: BTreeSet<(usize, String)> = BTreeSet::new();
    for (i, grant) in grants.iter().enumerate() {
        let listing = list(i).map_err(store_error(&grant.prefix))?;
        seen.extend(listing.iter().map(|o| (i, o.key.clone())));
        roots.read_new(i, &listing)?;
        listings.push(listing);
    }
    look_until_settled(|| {
        let mut any = false;
        for (i, grant) in grants.iter().enumerate() {
            let again = list(i).map_err(store_error(&grant.prefix))?;
            seen.extend(again.iter().map(|o| (i, o.key.clone())));
            any |= roots.read_new(i, &again)?;
        }
        Ok(any)
    })?;
    // A completed checkpoint never names a missing object; one that does
    // means a prefix or a container name is not the tenant's.
    if let Some((manifest, i, key)) = roots
        .named_by
        .iter()
        .find(|(_, i, key)| !seen.contains(&(*i, key.clone())))
    {
        return Err(GcError::NamedObjectMissing {
            manifest: PathBuf::from(manifest),
            named: format!("{}{key}", roots.containers[*i].uri_prefix),
            location: roots.location,
        });
    }

    let mut reports = vec![];
    for (i, (first, tool)) in listings.into_iter().zip(tools).enumerate() {
        let mut report = GcReport {
            manifests: roots.read.iter().filter(|(g, _)| *g == i).count(),
            deleted: options.delete,
            ..Default::default()
        };
        // The objects of the first listing only: one written later is
        // younger than any grace.
        let managed = first
            .into_iter()
            .filter(|o| !is_manifest(o))
            .map(|o| (PathBuf::from(o.key), o.size, o.modified))
            .filter(|(path, ..)| is_managed(path))
            .collect();
        let referenced: BTreeSet<PathBuf> = roots
            .referenced
            .iter()
            .filter(|(g, _)| *g == i)
            .map(|(_, key)| key.clone())
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
        reports.push(report);
    }
    Ok(reports)
}

/// How the tenant names one granted container's objects.
struct Container {
    /// As guest paths: `/<container>/`.
    guest_prefix: String,
    /// As the component names them: `s3://<container>/`.
    uri_prefix: String,
}

/// The manifests read so far and what they name, over all grants (by index).
struct Roots<'a> {
    tools: &'a [PrefixTool<'a>],
    containers: Vec<Container>,
    /// For messages: the containers and their prefixes.
    location: String,
    /// (grant, key) of the manifests read.
    read: BTreeSet<(usize, String)>,
    /// (grant, key relative to its prefix) of what the manifests name.
    referenced: BTreeSet<(usize, PathBuf)>,
    /// (manifest key, grant, named key) for the missing-object check.
    named_by: Vec<(String, usize, String)>,
}

impl Roots<'_> {
    /// Reads the manifests of grant `g`'s listing not read yet; whether
    /// there were any, or one vanished before it could be read (a
    /// subsumption: its successor is for a later listing to find).
    fn read_new(&mut self, g: usize, listing: &[Listed]) -> Result<bool, GcError> {
        let mut any = false;
        for m in listing.iter().filter(|o| is_manifest(o)) {
            if self.read.contains(&(g, m.key.clone())) {
                continue;
            }
            any = true;
            if self.read(g, m)? {
                self.read.insert((g, m.key.clone()));
            }
        }
        Ok(any)
    }

    /// Reads one manifest of grant `g`; `false` if it is gone.
    fn read(&mut self, g: usize, m: &Listed) -> Result<bool, GcError> {
        if m.size > crate::checkpoint_store::MAX_MANIFEST_BYTES {
            return Err(GcError::ManifestTooLarge {
                path: PathBuf::from(&m.key),
                size: m.size,
            });
        }
        let bytes = match self.tools[g].read(&m.key) {
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            other => other.map_err(store_error(&m.key))?,
        };
        let dir = m.key.rsplit_once('/').map_or("", |(d, _)| d);
        let manifest = CheckpointManifest::from_json_in(&bytes, &format!("{}{dir}", self.containers[g].uri_prefix))
            .map_err(|source| GcError::Manifest {
                path: PathBuf::from(&m.key),
                source,
            })?;
        for named in manifest.states.iter().filter_map(|s| s.handle.file_path()) {
            // `s3a://`, `s3p://` and any case of the scheme name the same object.
            let guest = object_uri::to_guest(named);
            let Some((i, key)) = self
                .containers
                .iter()
                .enumerate()
                .find_map(|(i, c)| guest.strip_prefix(&c.guest_prefix).map(|key| (i, key)))
            else {
                return Err(GcError::NamedObjectMissing {
                    manifest: PathBuf::from(&m.key),
                    named: named.to_string(),
                    location: self.location.clone(),
                });
            };
            self.referenced.insert((i, PathBuf::from(key)));
            self.named_by.push((m.key.clone(), i, key.to_string()));
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
        let report = collect_listed(
            std::slice::from_ref(&tool),
            std::slice::from_ref(&g),
            &no_grace(true),
            &mut |_| list(),
        )
        .unwrap()
        .remove(0);
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
        let e = collect_listed(
            std::slice::from_ref(&tool),
            std::slice::from_ref(&g),
            &no_grace(true),
            &mut |_| list(),
        )
        .unwrap_err();
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

    /// A tenant's checkpoints in one container name state in another (a
    /// claimed restore): collected together, the named object stays in
    /// the other container while its strays go; one missing there stops
    /// the collection.
    #[test]
    fn containers_of_one_tenant_are_collected_together() {
        let a = grant();
        let b = BlobGrant::new(
            "savepoints",
            Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
            "team-a",
        );
        let (ta, tb) = (
            PrefixTool::new(&a.store, &a.prefix).unwrap(),
            PrefixTool::new(&b.store, &b.prefix).unwrap(),
        );
        let claimed = format!("checkpoints/{JOB}/shared/s1");
        put(&tb, &b, &claimed, vec![1]);
        put(&tb, &b, &format!("checkpoints/{JOB}/shared/stray"), vec![2]);
        put(&ta, &a, &format!("checkpoints/{JOB}/shared/stray"), vec![3]);
        put(
            &ta,
            &a,
            &format!("checkpoints/{JOB}/chk-1/_metadata"),
            manifest(1, "s3://savepoints/", &["s1"]),
        );
        let reports = collect_all(&[a.clone(), b.clone()], &no_grace(true)).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!((reports[0].manifests, reports[1].manifests), (1, 0));
        assert_eq!(keys(&ta), [format!("checkpoints/{JOB}/chk-1/_metadata")]);
        assert_eq!(
            keys(&tb),
            std::slice::from_ref(&claimed),
            "named from the other container: kept"
        );

        tb.delete(&claimed).unwrap();
        put(&tb, &b, &format!("checkpoints/{JOB}/shared/stray"), vec![2]);
        let e = collect_all(&[a.clone(), b.clone()], &no_grace(true)).unwrap_err();
        let GcError::NamedObjectMissing { named, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(named, &format!("s3://savepoints/{claimed}"));
        assert_eq!(
            keys(&tb),
            [format!("checkpoints/{JOB}/shared/stray")],
            "nothing deleted"
        );
    }

    #[test]
    fn grants_that_overlap_are_refused_before_anything_is_listed() {
        let a = grant();
        let nested = BlobGrant::new("other", a.store.clone(), "team-a/sp");
        let renamed = BlobGrant::new("bucket", Arc::new(InMemory::new()) as Arc<dyn ObjectStore>, "x");
        let tool = PrefixTool::new(&a.store, &a.prefix).unwrap();
        put(&tool, &a, &format!("checkpoints/{JOB}/shared/stray"), vec![1]);
        for other in [a.clone(), nested, renamed] {
            let e = collect_all(&[a.clone(), other], &no_grace(true)).unwrap_err();
            assert!(matches!(e, GcError::GrantsOverlap { .. }), "{e}");
            assert!(e.to_string().contains("give each only once"), "{e}");
        }
        let apart = BlobGrant::new("other", a.store.clone(), "team-b");
        assert_eq!(collect_all(&[a.clone(), apart], &no_grace(false)).unwrap().len(), 2);
        assert_eq!(
            keys(&tool),
            [format!("checkpoints/{JOB}/shared/stray")],
            "nothing deleted"
        );
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
