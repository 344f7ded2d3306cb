//! Orphan collection, which Flink lacks: finds the files in a tenant
//! directory that no checkpoint or savepoint manifest (`_metadata`)
//! references — state of checkpoints that crashed or were cancelled,
//! left-overs of an interrupted subsumption, stale `._metadata_temp-*`
//! files — and (when asked) deletes them.
//!
//! Rules:
//! - only files below a job directory (`<job-id>/`) or a savepoint directory
//!   (`savepoint-*/`) are considered; anything else in the tenant directory
//!   is not the storage's and is left alone;
//! - every `_metadata` found is a root; one that cannot be read stops the
//!   collection (it might reference anything);
//! - a file or directory modified less than the grace period ago is never
//!   touched: a live writer may own it (keep the grace above the longest
//!   checkpoint, Flink's `execution.checkpointing.timeout`, 10 min by default);
//! - symbolic links are never followed, and never deleted (reported);
//! - an incomplete `chk-<id>` or savepoint directory goes once all it holds
//!   goes.
//!
//! - after the walk, manifests are looked for again (a fast pass, see
//!   `manifest_pass`) until a pass finds none not read yet and nothing
//!   vanished: a checkpoint completing during the walk, while the one it
//!   subsumes goes, could otherwise hide both manifests (and the shared
//!   files they name).
//!
//! It reads the host filesystem directly (it is an operator's tool, like
//! `inspect`), through directory descriptors and never through a link.

use crate::beneath::{Beneath, Entry, Found};
use crate::manifest::{CheckpointManifest, ManifestError};
use checkpoint_storage_core::layout::{
    GUEST_MOUNT, METADATA_FILE_NAME, SAVEPOINT_DIR_PREFIX, SHARED_STATE_DIR, TASK_OWNED_STATE_DIR, is_job_id,
    is_temp_metadata_name, parse_checkpoint_dir_name,
};
use checkpoint_storage_core::paths::GuestPath;
use checkpoint_storage_core::sandbox::EntryKind as Kind;
use serde::Serialize;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default grace period: well above Flink's default checkpoint timeout
/// (10 minutes), so no file of a checkpoint still in progress qualifies.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60 * 60);

/// Largest `_metadata` read (as the checkpoint store).
const MAX_MANIFEST_BYTES: u64 = crate::checkpoint_store::MAX_MANIFEST_BYTES;

/// What to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Files and directories younger than this are kept.
    pub grace: Duration,
    /// Delete the orphans (otherwise: a dry run that only reports).
    pub delete: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: DEFAULT_GRACE,
            delete: false,
        }
    }
}

/// Why something is an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrphanKind {
    /// A `._metadata_temp-*` file of a metadata stream that never finished.
    TempMetadata,
    /// A state file no manifest references.
    UnreferencedFile,
    /// A `chk-<id>` or savepoint directory without `_metadata` that is
    /// empty once its orphans are gone.
    IncompleteDirectory,
}

/// One thing to collect. Paths are relative to the tenant directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// The path relative to the tenant directory, as on the host (not
    /// serialised; see [`Self::display`]).
    #[serde(skip)]
    pub path: PathBuf,
    /// The path for people, non-printable characters escaped.
    pub display: String,
    /// Why it is an orphan.
    pub kind: OrphanKind,
    /// Bytes (0 for a directory).
    pub size: u64,
}

/// What a run found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Manifests read (the roots).
    pub manifests: usize,
    /// Files a manifest references (kept).
    pub referenced: usize,
    /// Orphans older than the grace period: deleted when [`Self::deleted`],
    /// otherwise only reported. Files first, then incomplete directories.
    pub orphans: Vec<Orphan>,
    /// Unreferenced files kept because they are younger than the grace.
    pub young: Vec<Orphan>,
    /// Symbolic links met (never followed, never deleted).
    pub symlinks: Vec<String>,
    /// Whether the orphans were deleted (not a dry run).
    pub deleted: bool,
    /// Deletions that failed: path and reason.
    pub failures: Vec<(String, String)>,
}

impl GcReport {
    /// Bytes of the orphans.
    pub fn orphan_bytes(&self) -> u64 {
        // Saturating: sizes are the files' to claim (sparse files).
        self.orphans.iter().fold(0, |sum, o| sum.saturating_add(o.size))
    }
}

/// Why the collection could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// Listing a directory or reading a file's metadata or a manifest
    /// failed.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// Host path that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `_metadata` is not a readable manifest. The collection stops: it
    /// cannot know what that checkpoint references.
    #[error(
        "cannot read the manifest {}: {source}; gc stops because it cannot know what that checkpoint references (move it away or fix it, then run gc again)",
        .path.display()
    )]
    Manifest {
        /// Host path of the `_metadata` file.
        path: PathBuf,
        /// Why it could not be parsed.
        source: ManifestError,
    },
    /// A `_metadata` is larger than the checkpoint store's
    /// [`MAX_MANIFEST_BYTES`](crate::checkpoint_store::MAX_MANIFEST_BYTES),
    /// so it is not a manifest; the collection stops.
    #[error("the manifest {} is {size} bytes, more than a manifest may have; gc stops (move it away, then run gc again)", .path.display())]
    ManifestTooLarge {
        /// Host path of the `_metadata` file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A manifest names a file (by its path inside the tenant) that is not
    /// below the directory given. A completed checkpoint never names missing
    /// state, so the directory is most likely not the tenant's own (e.g. the
    /// directory above several tenants): every file the manifests name would
    /// look unreferenced. The collection stops before deleting anything.
    #[error(
        "the manifest {} names {}, which is not in {}: is that the tenant's own directory (the one the host mounts at {GUEST_MOUNT})? gc stops without deleting anything",
        .manifest.display(), .missing.display(), .root.display()
    )]
    ReferencedFileMissing {
        /// Host path of the `_metadata` file.
        manifest: PathBuf,
        /// The named file, relative to the directory given.
        missing: PathBuf,
        /// The directory given.
        root: PathBuf,
    },
    /// A manifest names a file through a symbolic link in place of a
    /// directory. gc follows no link, so it cannot tell whether the file the
    /// link leads to is referenced; it stops before deleting anything.
    #[error(
        "the manifest {} names {}, reached through the symbolic link {}; gc follows no link, so it stops without deleting anything (replace the link with the directory it points to)",
        .manifest.display(), .named.display(), .link.display()
    )]
    ReferencedThroughLink {
        /// Host path of the `_metadata` file.
        manifest: PathBuf,
        /// The named file, relative to the directory given.
        named: PathBuf,
        /// The link on the way, relative to the directory given.
        link: PathBuf,
    },
    /// A manifest below an object store prefix names an object that is not
    /// below it, or not an object of the container the collection was told
    /// the tenant uses. Every object the manifests name would look
    /// unreferenced, so the collection stops before deleting anything.
    #[error(
        "the manifest {} names {named}, which is not an object below {location}: is that the prefix the tenant is granted, and the container name it uses in its s3:// paths? gc stops without deleting anything",
        .manifest.display()
    )]
    NamedObjectMissing {
        /// Key of the `_metadata` object, relative to the prefix.
        manifest: PathBuf,
        /// The path the manifest names, as written.
        named: String,
        /// Where the collection looked: `s3://<container>/` over the prefix.
        location: String,
    },
    /// Two grants collected together name the same container, or reach
    /// the same objects (one store, equal or nested prefixes): each would
    /// see the other's referenced objects as its own unreferenced ones.
    #[error(
        "{first} and {second} overlap (the same container name, or the same objects below nested prefixes); gc collects each of a tenant's containers once: give each only once"
    )]
    GrantsOverlap {
        /// One of the two, as `s3://<container>/ (prefix '…')`.
        first: String,
        /// The other.
        second: String,
    },
    /// Checkpoints kept completing while the collection listed the
    /// directory or prefix: every new listing showed a manifest the previous
    /// one did not, so the collection could not be sure it saw every live
    /// manifest.
    #[error(
        "new checkpoints completed during each of {rounds} listings; gc stops without deleting anything (run it again, or when the job checkpoints less often)"
    )]
    Unsettled {
        /// Listings made.
        rounds: usize,
    },
}

/// A path for people: UTF-8 with control characters escaped, other bytes
/// as `\xNN`.
pub fn escape(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

struct Scan {
    /// Regular files in managed directories: relative path, size, mtime.
    files: Vec<(PathBuf, u64, SystemTime)>,
    /// Incomplete `chk-<id>` / savepoint directories: path, mtime.
    incomplete_dirs: Vec<(PathBuf, SystemTime)>,
    /// Relative paths of directories holding something that is not a
    /// regular file (a sub-directory, a symlink, a device).
    dirs_with_other: BTreeSet<PathBuf>,
    manifests: Vec<PathBuf>,
    symlinks: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> GcError + '_ {
    move |source| GcError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn scan(root: &Path, tree: &Beneath) -> Result<Scan, GcError> {
    let mut s = Scan {
        files: vec![],
        incomplete_dirs: vec![],
        dirs_with_other: BTreeSet::new(),
        manifests: vec![],
        symlinks: vec![],
    };
    // (relative dir, inside a managed tree); an explicit stack, no recursion.
    let mut stack = vec![(PathBuf::new(), false)];
    while let Some((rel, managed)) = stack.pop() {
        let mut has_metadata = false;
        let Some(entries) = entries_if_present(root, tree, &rel)? else {
            // Removed since its parent was listed (a subsumed checkpoint):
            // nothing left to collect there.
            continue;
        };
        for entry in entries {
            let child = rel.join(&entry.name);
            let name = entry.name.to_str().unwrap_or("");
            match entry.kind {
                Kind::Symlink => {
                    s.symlinks.push(escape(&child));
                    s.dirs_with_other.insert(rel.clone());
                }
                Kind::Directory => {
                    s.dirs_with_other.insert(rel.clone());
                    let managed = managed || is_job_id(name) || name.starts_with(SAVEPOINT_DIR_PREFIX);
                    stack.push((child, managed));
                }
                Kind::File if name == METADATA_FILE_NAME => {
                    s.manifests.push(child);
                    has_metadata = true;
                }
                Kind::File if managed => {
                    let mtime = entry.modified.map_err(io_err(&root.join(&child)))?;
                    s.files.push((child, entry.len, mtime));
                }
                Kind::File => {}
                Kind::Other => {
                    s.dirs_with_other.insert(rel.clone());
                }
            }
        }
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_checkpoint_dir = parse_checkpoint_dir_name(name).is_some()
            && rel
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .is_some_and(is_job_id);
        if managed && !has_metadata && (is_checkpoint_dir || name.starts_with(SAVEPOINT_DIR_PREFIX)) {
            let mtime = match tree.dir_modified(&rel) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other.map_err(io_err(&root.join(&rel)))?,
            };
            s.incomplete_dirs.push((rel, mtime));
        }
    }
    Ok(s)
}

/// The entries of the directory `rel`; `None` when it was removed since its
/// parent was listed (the root itself must be there).
fn entries_if_present(root: &Path, tree: &Beneath, rel: &Path) -> Result<Option<Vec<Entry>>, GcError> {
    match tree.entries(rel) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => Ok(None),
        other => other.map(Some).map_err(io_err(&root.join(rel))),
    }
}

/// The relative host path of a guest path inside the tenant, if it is one.
fn relative_of(guest: &str) -> Option<PathBuf> {
    let path = GuestPath::parse(guest).ok()?;
    let rest = path.as_str().strip_prefix(GUEST_MOUNT)?.strip_prefix('/')?;
    Some(PathBuf::from(rest))
}

/// The manifests read so far and the files (relative paths) they name.
#[derive(Default)]
struct Roots {
    read: BTreeSet<PathBuf>,
    referenced: BTreeSet<PathBuf>,
}

/// Reads the manifests not read yet; whether there were any, or one
/// vanished before it could be read (a subsumption: its successor is for a
/// later walk to find).
fn read_new(root: &Path, tree: &Beneath, manifests: &[PathBuf], roots: &mut Roots) -> Result<bool, GcError> {
    let mut changed = false;
    for rel in manifests {
        if roots.read.contains(rel) {
            continue;
        }
        changed = true;
        let path = root.join(rel);
        let bytes = match tree.read_file(rel, MAX_MANIFEST_BYTES) {
            Ok(bytes) => bytes,
            Err(Ok(size)) => return Err(GcError::ManifestTooLarge { path, size }),
            Err(Err(e)) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(Err(source)) => return Err(GcError::Io { path, source }),
        };
        let dir = rel.parent().unwrap_or(Path::new(""));
        let guest_dir = format!("{GUEST_MOUNT}/{}", dir.to_string_lossy());
        let manifest = CheckpointManifest::from_json_in(&bytes, &guest_dir).map_err(|source| GcError::Manifest {
            path: path.clone(),
            source,
        })?;
        let mut names = vec![];
        for named in manifest
            .states
            .iter()
            .filter_map(|s| s.handle.file_path())
            .filter_map(relative_of)
        {
            match tree.lookup(&named).map_err(io_err(&root.join(&named)))? {
                Found::Yes => {}
                // Subsumed since it was read (`_metadata` goes first, then
                // the files): a change, not a foreign directory.
                Found::Missing if tree.lookup(rel).map_err(io_err(&path))? == Found::Missing => break,
                Found::Missing => {
                    return Err(GcError::ReferencedFileMissing {
                        manifest: path,
                        missing: named,
                        root: root.to_path_buf(),
                    });
                }
                Found::ThroughLink(link) => {
                    return Err(GcError::ReferencedThroughLink {
                        manifest: path,
                        named,
                        link,
                    });
                }
            }
            names.push(named);
        }
        // Even a manifest that vanished keeps what it named found so far:
        // keeping a file is never wrong.
        roots.referenced.extend(names);
        roots.read.insert(rel.clone());
    }
    Ok(changed)
}

/// The `_metadata` files of a tree, found fast, and whether something
/// vanished while they were looked for.
struct Pass {
    manifests: Vec<PathBuf>,
    vanished: bool,
}

/// Finds the manifests without reading what cannot hold one (a job's
/// `shared/` and `taskowned/`, the files of checkpoint and savepoint
/// directories). In a job directory its `chk-<id>` directories are looked
/// at right after it is listed, in ascending id order: a checkpoint
/// completing and subsuming its predecessor during the pass then shows one
/// of the two (the predecessor's `_metadata` goes only after the new one is
/// written); to hide both, two checkpoints must complete within the few
/// lookups of one job directory.
fn manifest_pass(root: &Path, tree: &Beneath) -> Result<Pass, GcError> {
    let mut pass = Pass {
        manifests: vec![],
        vanished: false,
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Some(entries) = entries_if_present(root, tree, &rel)? else {
            pass.vanished = true;
            continue;
        };
        let in_job = rel.file_name().and_then(|n| n.to_str()).is_some_and(is_job_id);
        let mut checkpoints = vec![];
        for entry in entries {
            let child = rel.join(&entry.name);
            let name = entry.name.to_str().unwrap_or("");
            match entry.kind {
                Kind::File if name == METADATA_FILE_NAME => pass.manifests.push(child),
                Kind::Directory if in_job && (name == SHARED_STATE_DIR || name == TASK_OWNED_STATE_DIR) => {}
                Kind::Directory if in_job && parse_checkpoint_dir_name(name).is_some() => {
                    checkpoints.push((parse_checkpoint_dir_name(name), child));
                }
                Kind::Directory if name.starts_with(SAVEPOINT_DIR_PREFIX) => checkpoints.push((None, child)),
                Kind::Directory => stack.push(child),
                _ => {}
            }
        }
        checkpoints.sort();
        for (_, dir) in checkpoints {
            let metadata = dir.join(METADATA_FILE_NAME);
            match tree.kind_of(&metadata).map_err(io_err(&root.join(&metadata)))? {
                Some(Kind::File) => pass.manifests.push(metadata),
                Some(_) => {}
                None => pass.vanished |= tree.lookup(&dir).map_err(io_err(&root.join(&dir)))? == Found::Missing,
            }
        }
    }
    Ok(pass)
}

/// Walks (listings) at most this many times; more means checkpoints
/// complete faster than the tree can be listed.
pub(crate) const MAX_LISTINGS: usize = 16;

/// After a first look, looks again (`look` answers whether it found
/// something new) until a look finds nothing new, at most
/// [`MAX_LISTINGS`] looks in all; then [`GcError::Unsettled`].
pub(crate) fn look_until_settled(mut look: impl FnMut() -> Result<bool, GcError>) -> Result<(), GcError> {
    let mut looks = 1;
    loop {
        looks += 1;
        if !look()? {
            return Ok(());
        }
        if looks >= MAX_LISTINGS {
            return Err(GcError::Unsettled { rounds: looks });
        }
    }
}

/// Sorts the managed files (relative path, size, modification time) into
/// referenced (counted), orphans and young orphans; returns the directories
/// that keep something.
pub(crate) fn sort_files(
    files: Vec<(PathBuf, u64, SystemTime)>,
    referenced: &BTreeSet<PathBuf>,
    old: &dyn Fn(SystemTime) -> bool,
    report: &mut GcReport,
) -> BTreeSet<PathBuf> {
    let mut kept_in: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, size, mtime) in files {
        if referenced.contains(&path) {
            report.referenced += 1;
            kept_in.extend(path.parent().map(Path::to_path_buf));
            continue;
        }
        let kind = match path.file_name().and_then(|n| n.to_str()) {
            Some(n) if is_temp_metadata_name(n) => OrphanKind::TempMetadata,
            _ => OrphanKind::UnreferencedFile,
        };
        let orphan = Orphan {
            display: escape(&path),
            path,
            kind,
            size,
        };
        if old(mtime) {
            report.orphans.push(orphan);
        } else {
            kept_in.extend(orphan.path.parent().map(Path::to_path_buf));
            report.young.push(orphan);
        }
    }
    kept_in
}

/// Whether a relative path lies in a tree the storage manages: below a
/// job directory or a savepoint directory. (The object store's collector
/// asks it of every key; the directory walk only descends into such trees.)
#[cfg(feature = "blobstore")]
pub(crate) fn is_managed(path: &Path) -> bool {
    let mut parents = path.parent().into_iter().flat_map(Path::components);
    parents.any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|n| is_job_id(n) || n.starts_with(SAVEPOINT_DIR_PREFIX))
    })
}

/// Finds the orphans of a tenant directory and, with `options.delete`,
/// deletes them (files first, then the directories they leave empty).
///
/// Every directory is opened from the root's descriptor one name at a
/// time without following links, for the listing and again for each
/// deletion: a directory swapped for a symlink in between makes that
/// deletion fail (reported in [`GcReport::failures`]); it never reaches
/// outside `root`.
pub fn collect(root: &Path, options: &GcOptions) -> Result<GcReport, GcError> {
    let tree = Beneath::open(root).map_err(io_err(root))?;
    let mut report = plan(root, &tree, options)?;
    if options.delete {
        delete(&tree, &mut report);
    }
    Ok(report)
}

/// The report of what [`collect`] would delete.
fn plan(root: &Path, tree: &Beneath, options: &GcOptions) -> Result<GcReport, GcError> {
    plan_walked(root, tree, options, &mut || scan(root, tree), &mut || {
        manifest_pass(root, tree)
    })
}

/// [`plan`] with the walk and the manifest passes given (tests interleave
/// a live job with them).
fn plan_walked(
    root: &Path,
    tree: &Beneath,
    options: &GcOptions,
    walk: &mut dyn FnMut() -> Result<Scan, GcError>,
    pass: &mut dyn FnMut() -> Result<Pass, GcError>,
) -> Result<GcReport, GcError> {
    let now = SystemTime::now();
    let old = |mtime: SystemTime| now.duration_since(mtime).is_ok_and(|age| age >= options.grace);
    let scan = walk()?;
    let mut roots = Roots::default();
    read_new(root, tree, &scan.manifests, &mut roots)?;
    // Next to a live job the walk can miss a checkpoint completing behind
    // it while the one it subsumes goes ahead of it: look for manifests
    // again until a pass finds none not read yet and nothing vanished
    // (see `manifest_pass` for why one such pass suffices).
    look_until_settled(|| {
        let again = pass()?;
        Ok(read_new(root, tree, &again.manifests, &mut roots)? || again.vanished)
    })?;
    let referenced = roots.referenced;
    let mut report = GcReport {
        manifests: roots.read.len(),
        symlinks: scan.symlinks,
        deleted: options.delete,
        ..Default::default()
    };
    let kept_in = sort_files(scan.files, &referenced, &old, &mut report);
    for (dir, mtime) in scan.incomplete_dirs {
        if old(mtime) && !kept_in.contains(&dir) && !scan.dirs_with_other.contains(&dir) {
            report.orphans.push(Orphan {
                display: escape(&dir),
                path: dir,
                kind: OrphanKind::IncompleteDirectory,
                size: 0,
            });
        }
    }
    report.orphans.sort_by(|a, b| {
        (a.kind == OrphanKind::IncompleteDirectory, &a.path).cmp(&(b.kind == OrphanKind::IncompleteDirectory, &b.path))
    });
    report.young.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Deletes the orphans of a plan, recording each failure.
fn delete(tree: &Beneath, report: &mut GcReport) {
    for o in &report.orphans {
        // An unlink removes a name (never a link's target); `remove_dir`
        // removes only an empty directory.
        let r = match o.kind {
            OrphanKind::IncompleteDirectory => tree.remove_dir(&o.path),
            _ => tree.remove_file(&o.path),
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => report.failures.push((o.display.clone(), e.to_string())),
        }
    }
}

/// The report for people.
pub fn render(report: &GcReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let verb = if report.deleted { "deleted" } else { "would delete" };
    for o in &report.orphans {
        let what = match o.kind {
            OrphanKind::TempMetadata => "unfinished metadata",
            OrphanKind::UnreferencedFile => "unreferenced",
            OrphanKind::IncompleteDirectory => "incomplete checkpoint directory",
        };
        let _ = writeln!(out, "{verb} {:>12} B  {}  ({what})", o.size, o.display);
    }
    for (path, why) in &report.failures {
        let _ = writeln!(out, "FAILED to delete {path}: {why}");
    }
    for l in &report.symlinks {
        let _ = writeln!(out, "symlink (not followed, kept): {l}");
    }
    let _ = writeln!(
        out,
        "{} manifests, {} referenced files kept; {} orphans, {} B {}; {} unreferenced files younger than the grace period kept ({} B)",
        report.manifests,
        report.referenced,
        report.orphans.len(),
        report.orphan_bytes(),
        if report.deleted {
            "deleted"
        } else {
            "to delete (dry run: pass --delete)"
        },
        report.young.len(),
        report.young.iter().fold(0u64, |sum, o| sum.saturating_add(o.size)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::NamedState;
    use crate::types::{FileHandle, RelativeFileHandle, StateHandle};
    use std::fs::File;

    const JOB: &str = "0123456789abcdef0123456789abcdef";
    const HOUR: Duration = Duration::from_secs(3600);

    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new() -> Self {
            Dir(tempfile::tempdir().unwrap())
        }
        fn root(&self) -> &Path {
            self.0.path()
        }
        /// Writes a file `age` old (its directory made as old too).
        fn file(&self, rel: &str, len: usize, age: Duration) {
            let p = self.root().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![7; len]).unwrap();
            self.age(rel, age);
        }
        fn age(&self, rel: &str, age: Duration) {
            let p = self.root().join(rel);
            let f = File::options().read(true).open(&p).unwrap();
            f.set_modified(SystemTime::now() - age).unwrap();
            if let Some(parent) = Path::new(rel).parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(self.root().join(parent))
                    .unwrap()
                    .set_modified(SystemTime::now() - age)
                    .unwrap();
            }
        }
        fn exists(&self, rel: &str) -> bool {
            self.root().join(rel).symlink_metadata().is_ok()
        }
        /// A manifest in `dir` naming shared `shared` and exclusive `exclusive` files.
        fn manifest(&self, dir: &str, id: u64, shared: &[&str], exclusive: &[&str]) {
            let mut states = vec![];
            for s in shared {
                states.push(NamedState {
                    name: s.to_string(),
                    handle: StateHandle::File(FileHandle {
                        path: format!("/checkpoints/{s}"),
                        size: 1,
                    }),
                });
            }
            for e in exclusive {
                states.push(NamedState {
                    name: e.to_string(),
                    // Written elsewhere: relocated to where it is found.
                    handle: StateHandle::RelativeFile(RelativeFileHandle {
                        path: format!("/old/place/{e}"),
                        relative_path: e.to_string(),
                        size: 1,
                    }),
                });
            }
            let m = CheckpointManifest {
                job_id: JOB.into(),
                checkpoint_id: id,
                states,
            };
            let p = self.root().join(dir).join(METADATA_FILE_NAME);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, m.to_json()).unwrap();
            self.age(&format!("{dir}/{METADATA_FILE_NAME}"), 2 * HOUR);
        }
    }

    fn options(grace: Duration, delete: bool) -> GcOptions {
        GcOptions { grace, delete }
    }

    fn paths(orphans: &[Orphan]) -> Vec<String> {
        orphans.iter().map(|o| o.display.clone()).collect()
    }

    fn layout() -> Dir {
        let d = Dir::new();
        let old = 2 * HOUR;
        d.file(&format!("{JOB}/chk-1/a"), 10, old);
        d.file(&format!("{JOB}/chk-1/stray"), 11, old);
        d.file(&format!("{JOB}/shared/s1"), 12, old);
        d.file(&format!("{JOB}/shared/s2"), 13, old);
        d.file(&format!("{JOB}/chk-2/b"), 14, old);
        d.file(&format!("{JOB}/chk-2/._metadata_temp-1234"), 15, old);
        d.manifest(&format!("{JOB}/chk-1"), 1, &[&format!("{JOB}/shared/s1")], &["a"]);
        d.file("sp/savepoint-012345-abcdefabcdef/x", 16, old);
        d.manifest("sp/savepoint-012345-abcdefabcdef", 3, &[], &["x"]);
        d.file("notes.txt", 17, old); // not the storage's
        d
    }

    #[test]
    fn a_dry_run_lists_exactly_the_orphans_and_deletes_nothing() {
        let d = layout();
        let r = collect(d.root(), &options(HOUR, false)).unwrap();
        assert_eq!(
            paths(&r.orphans),
            vec![
                format!("{JOB}/chk-1/stray"),
                format!("{JOB}/chk-2/._metadata_temp-1234"),
                format!("{JOB}/chk-2/b"),
                format!("{JOB}/shared/s2"),
                format!("{JOB}/chk-2"),
            ]
        );
        assert_eq!(r.orphans[4].kind, OrphanKind::IncompleteDirectory);
        assert_eq!(r.orphans[1].kind, OrphanKind::TempMetadata);
        assert_eq!(r.orphan_bytes(), 11 + 15 + 14 + 13);
        assert_eq!((r.manifests, r.referenced), (2, 3));
        assert!(d.exists(&format!("{JOB}/chk-2/b")), "dry run");
        let text = render(&r);
        assert!(text.contains("would delete"), "{text}");
        assert!(text.contains("dry run"), "{text}");
    }

    #[test]
    fn delete_removes_exactly_the_orphans() {
        let d = layout();
        // chk-2's directory (old, no `_metadata`) goes once its files go.
        let r = collect(d.root(), &options(HOUR, true)).unwrap();
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.orphans.last().unwrap().kind, OrphanKind::IncompleteDirectory);
        for gone in ["chk-1/stray", "chk-2", "shared/s2"] {
            assert!(!d.exists(&format!("{JOB}/{gone}")), "{gone}");
        }
        for kept in ["chk-1/a", "chk-1/_metadata", "shared/s1"] {
            assert!(d.exists(&format!("{JOB}/{kept}")), "{kept}");
        }
        assert!(d.exists("sp/savepoint-012345-abcdefabcdef/x"));
        assert!(d.exists("notes.txt"));
        let again = collect(d.root(), &options(Duration::ZERO, true)).unwrap();
        assert!(again.orphans.is_empty(), "{:?}", again.orphans);
    }

    #[test]
    fn files_younger_than_the_grace_are_kept() {
        let d = layout();
        d.file(&format!("{JOB}/chk-4/in-progress"), 20, Duration::from_secs(60));
        let r = collect(d.root(), &options(HOUR, true)).unwrap();
        assert_eq!(paths(&r.young), vec![format!("{JOB}/chk-4/in-progress")]);
        assert!(d.exists(&format!("{JOB}/chk-4/in-progress")));
        assert!(!r.orphans.iter().any(|o| o.path.starts_with(format!("{JOB}/chk-4"))));
        // Default options: an hour of grace, and a dry run.
        let r = collect(d.root(), &GcOptions::default()).unwrap();
        assert!(!r.deleted);
        assert_eq!(r.young.len(), 1);
    }

    #[test]
    fn symlinks_are_never_followed_nor_deleted() {
        let d = layout();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.root().join(format!("{JOB}/chk-2/link-dir"))).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("precious"),
            d.root().join(format!("{JOB}/shared/link-file")),
        )
        .unwrap();
        let r = collect(d.root(), &options(Duration::ZERO, true)).unwrap();
        assert_eq!(r.symlinks.len(), 2, "{:?}", r.symlinks);
        assert_eq!(std::fs::read(outside.path().join("precious")).unwrap(), b"keep");
        assert!(d.exists(&format!("{JOB}/shared/link-file")));
        assert!(
            d.exists(&format!("{JOB}/chk-2/link-dir")),
            "the directory holding a link stays"
        );
        assert!(!d.exists(&format!("{JOB}/chk-2/b")));
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_after_the_listing_is_not_followed() {
        let d = layout();
        let options = options(HOUR, true);
        let tree = Beneath::open(d.root()).unwrap();
        let mut report = plan(d.root(), &tree, &options).unwrap();
        assert!(paths(&report.orphans).contains(&format!("{JOB}/chk-2/b")));
        // Between the listing and the deletion, chk-2 becomes a link to a
        // directory outside holding files of the same names.
        let outside = tempfile::tempdir().unwrap();
        for name in ["b", "._metadata_temp-1234"] {
            std::fs::write(outside.path().join(name), b"keep").unwrap();
        }
        let moved = d.root().join("moved-away");
        std::fs::rename(d.root().join(format!("{JOB}/chk-2")), &moved).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.root().join(format!("{JOB}/chk-2"))).unwrap();
        delete(&tree, &mut report);
        for name in ["b", "._metadata_temp-1234"] {
            assert_eq!(std::fs::read(outside.path().join(name)).unwrap(), b"keep", "{name}");
        }
        let failed: Vec<&str> = report.failures.iter().map(|(p, _)| p.as_str()).collect();
        assert!(failed.contains(&format!("{JOB}/chk-2/b").as_str()), "{failed:?}");
        assert!(
            d.exists(&format!("{JOB}/chk-2")),
            "the link itself is not removed as a directory"
        );
        // The other orphans still went.
        assert!(!d.exists(&format!("{JOB}/chk-1/stray")));
        assert!(!d.exists(&format!("{JOB}/shared/s2")));
    }

    /// Checkpoint 10 completes and subsumes 9 while gc walks: either the
    /// walk sees neither manifest, or it sees 9's, which is gone before it
    /// is read. Then checkpoint 11 completes and subsumes 10 between the
    /// first manifest pass and the reading of 10's manifest. The shared file
    /// all three name stays.
    #[test]
    fn checkpoints_completing_during_the_walk_keep_their_files() {
        for seen_before_read in [false, true] {
            let d = layout();
            let tree = Beneath::open(d.root()).unwrap();
            let meta = |id: u64| PathBuf::from(format!("{JOB}/chk-{id}/_metadata"));
            let shared = format!("{JOB}/shared/s2");
            d.manifest(&format!("{JOB}/chk-9"), 9, &[&shared], &[]);
            let complete = |id: u64| {
                d.manifest(&format!("{JOB}/chk-{id}"), id, &[&shared], &[]);
                std::fs::remove_file(d.root().join(meta(id - 1))).unwrap();
            };
            let mut walk = || {
                let mut s = scan(d.root(), &tree)?;
                if !seen_before_read {
                    s.manifests.retain(|m| *m != meta(9));
                }
                complete(10);
                Ok(s)
            };
            let mut passes = 0;
            let mut pass = || {
                passes += 1;
                let found = manifest_pass(d.root(), &tree);
                if passes == 1 {
                    // Found 10's manifest; 11 completes before it is read.
                    complete(11);
                }
                found
            };
            let mut report = plan_walked(d.root(), &tree, &options(HOUR, true), &mut walk, &mut pass).unwrap();
            assert_eq!(passes, 3, "looked until a pass found nothing new");
            delete(&tree, &mut report);
            assert!(report.failures.is_empty(), "{:?}", report.failures);
            assert!(d.exists(&shared), "named by checkpoint 11");
            assert!(!d.exists(&format!("{JOB}/chk-1/stray")), "orphans still go");
        }
    }

    #[test]
    fn a_manifest_pass_looks_at_checkpoints_in_ascending_order_and_not_into_state() {
        let d = layout();
        for id in [10, 9] {
            d.manifest(&format!("{JOB}/chk-{id}"), id, &[], &[]);
        }
        // Not where a manifest lives: not looked at by a pass.
        d.file(&format!("{JOB}/shared/_metadata"), 1, HOUR);
        d.file(&format!("{JOB}/chk-9/nested/_metadata"), 1, HOUR);
        let tree = Beneath::open(d.root()).unwrap();
        let pass = manifest_pass(d.root(), &tree).unwrap();
        let job: Vec<String> = pass
            .manifests
            .iter()
            .filter(|m| m.starts_with(JOB))
            .map(|m| m.display().to_string())
            .collect();
        let expected: Vec<String> = [1, 9, 10]
            .iter()
            .map(|id| format!("{JOB}/chk-{id}/_metadata"))
            .collect();
        assert_eq!(job, expected);
        assert!(
            pass.manifests
                .contains(&PathBuf::from("sp/savepoint-012345-abcdefabcdef/_metadata")),
            "{:?}",
            pass.manifests
        );
        assert!(!pass.vanished);
    }

    #[test]
    fn a_file_named_through_a_symlinked_directory_stops_the_collection() {
        let d = layout();
        // shared/ is a link to a directory elsewhere in the tenant's tree.
        std::fs::rename(
            d.root().join(format!("{JOB}/shared")),
            d.root().join(format!("{JOB}/real-shared")),
        )
        .unwrap();
        std::os::unix::fs::symlink("real-shared", d.root().join(format!("{JOB}/shared"))).unwrap();
        let e = collect(d.root(), &options(Duration::ZERO, true)).unwrap_err();
        let GcError::ReferencedThroughLink { link, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(link, &PathBuf::from(format!("{JOB}/shared")));
        assert!(e.to_string().contains("replace the link"), "{e}");
        assert!(d.exists(&format!("{JOB}/real-shared/s1")), "nothing deleted");
        assert!(d.exists(&format!("{JOB}/chk-1/stray")), "nothing deleted");
    }

    #[test]
    fn a_directory_above_the_tenants_stops_before_deleting_anything() {
        let d = layout();
        // The same tenant one level down: its manifests name /checkpoints/<job>/...,
        // which the directory above does not hold.
        let above = Dir::new();
        std::fs::rename(d.root(), above.root().join("tenant-a")).unwrap();
        std::fs::create_dir(d.root()).unwrap(); // for TempDir's cleanup
        let e = collect(above.root(), &options(HOUR, true)).unwrap_err();
        assert!(matches!(e, GcError::ReferencedFileMissing { .. }), "{e}");
        assert!(e.to_string().contains("the tenant's own directory"), "{e}");
        assert!(above.exists(&format!("tenant-a/{JOB}/shared/s1")), "nothing deleted");
        assert!(above.exists(&format!("tenant-a/{JOB}/chk-1/stray")), "nothing deleted");
    }

    #[test]
    fn an_unreadable_manifest_stops_the_collection() {
        let d = layout();
        d.file(&format!("{JOB}/chk-9/_metadata"), 3, 2 * HOUR);
        let e = collect(d.root(), &options(Duration::ZERO, true)).unwrap_err();
        assert!(matches!(e, GcError::Manifest { .. }), "{e}");
        assert!(e.to_string().contains("chk-9"), "{e}");
        assert!(d.exists(&format!("{JOB}/chk-1/stray")), "nothing deleted");
    }

    #[test]
    fn names_are_escaped_for_display() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(escape(Path::new("a\nb\u{7}")), "a\\nb\\u{7}");
        assert_eq!(escape(Path::new("é")), "é");
        let raw = std::ffi::OsStr::from_bytes(b"x\xff\n");
        assert_eq!(escape(Path::new(raw)), "x\\xff\\n");
        let d = layout();
        d.file(&format!("{JOB}/shared/evil\nname"), 1, 2 * HOUR);
        let r = collect(d.root(), &options(HOUR, false)).unwrap();
        assert!(render(&r).contains("shared/evil\\nname"), "{}", render(&r));
    }
}
