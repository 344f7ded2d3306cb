//! `inspect`: what a tenant directory holds, read from the host side for
//! operators: jobs with their checkpoints (`chk-N`), shared and task-owned
//! state, and savepoint directories, each with file counts, bytes and
//! whether `_metadata` is present. Symbolic links are reported, never
//! followed (also in place of `chk-N`, `shared` and `taskowned`, and in
//! place of a state file or `_metadata` inside them); entries
//! that vanish during the scan are skipped; names in the text output are
//! escaped so that a name cannot forge lines. Every directory is opened
//! from the root's descriptor one name at a time without following a link
//! (`crate::beneath`, as `gc`): a directory swapped for a link during the
//! scan is reported as a link, never listed.

use crate::beneath::{Beneath, Entry};
use checkpoint_storage_core::layout::{
    METADATA_FILE_NAME, SAVEPOINT_DIR_PREFIX, SHARED_STATE_DIR, TASK_OWNED_STATE_DIR, is_job_id,
    parse_checkpoint_dir_name,
};
use checkpoint_storage_core::sandbox::EntryKind;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

/// How deep below the tenant directory to look for jobs and savepoints.
const MAX_DEPTH: usize = 4;

/// Files and bytes directly in a directory.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Regular files directly in the directory, `_metadata` not counted.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// One checkpoint directory (`chk-N`) of a job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The checkpoint id `N` of `chk-N`.
    pub id: u64,
    /// The directory, relative to the tenant directory.
    pub path: String,
    /// Its exclusive state files (without `_metadata`).
    pub state: Usage,
    /// Size of `_metadata`, if present (the checkpoint completed).
    pub metadata_bytes: Option<u64>,
}

/// One job directory (named by its job id) with what it holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobInfo {
    /// The job id (the directory's name).
    pub job_id: String,
    /// The directory, relative to the tenant directory.
    pub path: String,
    /// Its checkpoint directories, by ascending id.
    pub checkpoints: Vec<CheckpointInfo>,
    /// Files in its `shared` directory (state the shared-state registry
    /// counts).
    pub shared: Usage,
    /// Files in its `taskowned` directory.
    pub task_owned: Usage,
}

/// One savepoint directory (`savepoint-*`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SavepointInfo {
    /// The directory, relative to the tenant directory.
    pub path: String,
    /// Its state files (without `_metadata`).
    pub state: Usage,
    /// Size of `_metadata`, if present (the savepoint completed).
    pub metadata_bytes: Option<u64>,
}

/// Everything found in a tenant directory. Paths are relative to it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Inventory {
    /// The tenant directory inspected, as given.
    pub root: String,
    /// Job directories found, by path.
    pub jobs: Vec<JobInfo>,
    /// Savepoint directories found, by path.
    pub savepoints: Vec<SavepointInfo>,
    /// Symbolic links met on the way (not followed).
    pub symlinks: Vec<String>,
}

/// What the scan needs from the filesystem (a seam for tests that change
/// the tree during the scan). Paths are relative to the root.
trait Scan {
    /// The entries of the directory `rel`, as `lstat` sees them (one
    /// removed while listed is left out).
    fn entries(&self, rel: &Path) -> io::Result<Vec<Entry>>;
    /// What `rel` names now, not following a link.
    fn kind_of(&self, rel: &Path) -> io::Result<Option<EntryKind>>;
}

impl Scan for Beneath {
    fn entries(&self, rel: &Path) -> io::Result<Vec<Entry>> {
        Beneath::entries(self, rel)
    }

    fn kind_of(&self, rel: &Path) -> io::Result<Option<EntryKind>> {
        Beneath::kind_of(self, rel)
    }
}

/// The entries of the directory `rel` still there when looked at, sorted
/// by name. A directory gone meanwhile has none (the inventory is a
/// snapshot of a live tree); one swapped for a symbolic link goes to
/// `symlinks`, unread.
fn entries(fs: &impl Scan, rel: &Path, symlinks: &mut Vec<String>) -> io::Result<Vec<(String, PathBuf, Entry)>> {
    let listed = match fs.entries(rel) {
        Ok(listed) => listed,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return match fs.kind_of(rel) {
                Ok(Some(EntryKind::Symlink)) => {
                    symlinks.push(rel.display().to_string());
                    Ok(vec![])
                }
                // Still a directory: it cannot be read (permissions, I/O).
                Ok(Some(EntryKind::Directory)) => Err(e),
                // Gone, replaced by a file, or a directory above it swapped
                // for a link since it was listed: the tree changed under
                // the scan, and nothing of it is read.
                Ok(None | Some(EntryKind::File | EntryKind::Other)) | Err(_) => Ok(vec![]),
            };
        }
    };
    let mut out: Vec<_> = listed
        .into_iter()
        .map(|entry| {
            let name = entry.name.to_string_lossy().into_owned();
            (name, rel.join(&entry.name), entry)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Files and bytes of `dir` and its `_metadata`; symbolic links in it go
/// to `symlinks` (a state file's name may be one: reported, never read).
fn usage_and_metadata(fs: &impl Scan, dir: &Path, symlinks: &mut Vec<String>) -> io::Result<(Usage, Option<u64>)> {
    let mut usage = Usage::default();
    let mut metadata = None;
    for (name, path, entry) in entries(fs, dir, symlinks)? {
        match entry.kind {
            EntryKind::Symlink => symlinks.push(path.display().to_string()),
            EntryKind::File if name == METADATA_FILE_NAME => metadata = Some(entry.len),
            EntryKind::File => {
                usage.files += 1;
                // Saturating: sizes are the files' to claim (sparse files).
                usage.bytes = usage.bytes.saturating_add(entry.len);
            }
            EntryKind::Directory | EntryKind::Other => {}
        }
    }
    Ok((usage, metadata))
}

/// Reads the inventory of a tenant directory.
pub fn inspect(root: &Path) -> io::Result<Inventory> {
    inspect_with(&Beneath::open(root)?, root)
}

fn inspect_with(fs: &impl Scan, root: &Path) -> io::Result<Inventory> {
    let mut inv = Inventory {
        root: root.display().to_string(),
        jobs: vec![],
        savepoints: vec![],
        symlinks: vec![],
    };
    walk(fs, Path::new(""), 0, &mut inv)?;
    inv.jobs.sort_by(|a, b| a.path.cmp(&b.path));
    inv.savepoints.sort_by(|a, b| a.path.cmp(&b.path));
    inv.symlinks.sort();
    Ok(inv)
}

fn walk(fs: &impl Scan, dir: &Path, depth: usize, inv: &mut Inventory) -> io::Result<()> {
    for (name, path, entry) in entries(fs, dir, &mut inv.symlinks)? {
        match entry.kind {
            EntryKind::Symlink => inv.symlinks.push(path.display().to_string()),
            EntryKind::Directory if is_job_id(&name) => {
                let job = job(fs, &path, name, inv)?;
                inv.jobs.push(job);
            }
            EntryKind::Directory if name.starts_with(SAVEPOINT_DIR_PREFIX) => {
                let (state, metadata_bytes) = usage_and_metadata(fs, &path, &mut inv.symlinks)?;
                inv.savepoints.push(SavepointInfo {
                    path: path.display().to_string(),
                    state,
                    metadata_bytes,
                });
            }
            EntryKind::Directory if depth < MAX_DEPTH => walk(fs, &path, depth + 1, inv)?,
            _ => {}
        }
    }
    Ok(())
}

fn job(fs: &impl Scan, dir: &Path, job_id: String, inv: &mut Inventory) -> io::Result<JobInfo> {
    let mut checkpoints = vec![];
    let (mut shared, mut task_owned) = (Usage::default(), Usage::default());
    for (name, path, entry) in entries(fs, dir, &mut inv.symlinks)? {
        // A symbolic link (a symlinked `chk-N`, `shared` or `taskowned`
        // may point anywhere) is reported, never read.
        if entry.kind == EntryKind::Symlink {
            inv.symlinks.push(path.display().to_string());
            continue;
        }
        if entry.kind != EntryKind::Directory {
            continue;
        }
        match parse_checkpoint_dir_name(&name) {
            Some(id) => {
                let (state, metadata_bytes) = usage_and_metadata(fs, &path, &mut inv.symlinks)?;
                checkpoints.push(CheckpointInfo {
                    id,
                    path: path.display().to_string(),
                    state,
                    metadata_bytes,
                });
            }
            None if name == SHARED_STATE_DIR => shared = usage_and_metadata(fs, &path, &mut inv.symlinks)?.0,
            None if name == TASK_OWNED_STATE_DIR => task_owned = usage_and_metadata(fs, &path, &mut inv.symlinks)?.0,
            None => {}
        }
    }
    checkpoints.sort_by_key(|c| c.id);
    Ok(JobInfo {
        job_id,
        path: dir.display().to_string(),
        checkpoints,
        shared,
        task_owned,
    })
}

/// `name` safe to print on a terminal: control characters (newlines, ANSI
/// escapes) and invisible reordering marks are written as `\u{..}` escapes,
/// so a name a tenant chose cannot forge lines or restyle the output.
fn printable(name: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    if !name.chars().any(|c| hidden(c) || c == '\\') {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The inventory for people.
pub fn render(inv: &Inventory) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let meta = |m: Option<u64>| m.map_or("no _metadata (incomplete)".to_string(), |b| format!("_metadata {b} B"));
    let _ = writeln!(out, "{}", printable(&inv.root));
    if inv.jobs.is_empty() && inv.savepoints.is_empty() {
        let _ = writeln!(out, "  no checkpoints or savepoints found");
    }
    for job in &inv.jobs {
        let _ = writeln!(out, "  job {} ({})", printable(&job.job_id), printable(&job.path));
        for c in &job.checkpoints {
            let _ = writeln!(
                out,
                "    checkpoint {:>6}: {:>4} files {:>12} B, {}",
                c.id,
                c.state.files,
                c.state.bytes,
                meta(c.metadata_bytes)
            );
        }
        let _ = writeln!(
            out,
            "    shared:            {:>4} files {:>12} B",
            job.shared.files, job.shared.bytes
        );
        let _ = writeln!(
            out,
            "    task-owned:        {:>4} files {:>12} B",
            job.task_owned.files, job.task_owned.bytes
        );
    }
    for s in &inv.savepoints {
        let _ = writeln!(
            out,
            "  savepoint {}: {} files {} B, {}",
            printable(&s.path),
            s.state.files,
            s.state.bytes,
            meta(s.metadata_bytes)
        );
    }
    for l in &inv.symlinks {
        let _ = writeln!(out, "  symlink (not followed): {}", printable(l));
    }
    out
}

/// The directory to inspect must exist and be a directory.
pub fn check_root(path: &Path) -> io::Result<PathBuf> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", path.display()),
        ));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_jobs_checkpoints_and_savepoints() {
        let d = tempfile::tempdir().unwrap();
        let job = "0123456789abcdef0123456789abcdef";
        let w = |p: &str, n: usize| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![0; n]).unwrap();
        };
        w(&format!("{job}/chk-2/a"), 10);
        w(&format!("{job}/chk-2/_metadata"), 5);
        w(&format!("{job}/chk-10/b"), 7);
        w(&format!("{job}/shared/s"), 3);
        w("sp/savepoint-012345-aaaaaaaaaaaa/_metadata", 4);
        std::fs::create_dir_all(d.path().join(format!("{job}/taskowned"))).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        let inv = inspect(d.path()).unwrap();
        assert_eq!(inv.jobs.len(), 1);
        let j = &inv.jobs[0];
        assert_eq!(j.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, 10]);
        assert_eq!(j.checkpoints[0].state, Usage { files: 1, bytes: 10 });
        assert_eq!(j.checkpoints[0].metadata_bytes, Some(5));
        assert_eq!(j.checkpoints[1].metadata_bytes, None);
        assert_eq!(j.shared, Usage { files: 1, bytes: 3 });
        assert_eq!(j.task_owned, Usage::default());
        assert_eq!(inv.savepoints.len(), 1);
        assert_eq!(inv.savepoints[0].metadata_bytes, Some(4));
        assert_eq!(inv.symlinks, vec!["link"]);
        let text = render(&inv);
        assert!(
            text.contains("checkpoint      2") && text.contains("no _metadata"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&inv).unwrap();
        assert_eq!(json["jobs"][0]["checkpoints"][0]["metadata_bytes"], 5);
    }

    const JOB: &str = "0123456789abcdef0123456789abcdef";

    fn write(root: &Path, rel: &str, len: usize) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![0; len]).unwrap();
    }

    #[test]
    fn symlinked_checkpoint_shared_and_taskowned_dirs_are_reported_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", 1000);
        write(outside.path(), METADATA_FILE_NAME, 9);
        write(d.path(), &format!("{JOB}/chk-1/a"), 10);
        for name in ["chk-2", SHARED_STATE_DIR, TASK_OWNED_STATE_DIR] {
            std::os::unix::fs::symlink(outside.path(), d.path().join(JOB).join(name)).unwrap();
        }
        let inv = inspect(d.path()).unwrap();
        let j = &inv.jobs[0];
        assert_eq!(j.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(j.shared, Usage::default());
        assert_eq!(j.task_owned, Usage::default());
        assert_eq!(
            inv.symlinks,
            vec![
                format!("{JOB}/chk-2"),
                format!("{JOB}/shared"),
                format!("{JOB}/taskowned")
            ]
        );
    }

    #[test]
    fn symlinks_in_place_of_state_files_or_metadata_are_reported_not_counted() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", 1000);
        write(d.path(), &format!("{JOB}/chk-1/a"), 10);
        write(d.path(), &format!("{JOB}/shared/s"), 20);
        write(d.path(), &format!("sp/savepoint-abc/{METADATA_FILE_NAME}"), 4);
        let secret = outside.path().join("secret");
        for rel in [
            format!("{JOB}/chk-1/{METADATA_FILE_NAME}"),
            format!("{JOB}/chk-1/b"),
            format!("{JOB}/shared/t"),
            format!("{JOB}/elsewhere"),
            "sp/savepoint-abc/state".to_string(),
        ] {
            std::os::unix::fs::symlink(&secret, d.path().join(&rel)).unwrap();
        }
        let inv = inspect(d.path()).unwrap();
        let j = &inv.jobs[0];
        assert_eq!(j.checkpoints[0].state, Usage { files: 1, bytes: 10 });
        assert_eq!(j.checkpoints[0].metadata_bytes, None, "a linked _metadata is not one");
        assert_eq!(j.shared, Usage { files: 1, bytes: 20 });
        assert_eq!(inv.savepoints[0].state, Usage::default());
        assert_eq!(
            inv.symlinks,
            vec![
                format!("{JOB}/chk-1/_metadata"),
                format!("{JOB}/chk-1/b"),
                format!("{JOB}/elsewhere"),
                format!("{JOB}/shared/t"),
                "sp/savepoint-abc/state".to_string(),
            ]
        );
    }

    #[test]
    fn tenant_chosen_names_cannot_forge_lines_or_escape_sequences() {
        let d = tempfile::tempdir().unwrap();
        let forged = format!("savepoint-x\n  job {JOB} (forged)\x1b[31m\u{202e}");
        write(d.path(), &format!("sp/{forged}/_metadata"), 4);
        std::os::unix::fs::symlink("/etc", d.path().join("link\r\nsymlink (not followed): x")).unwrap();
        let text = render(&inspect(d.path()).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "root, one savepoint, one symlink: {text}");
        assert!(
            !text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(
            lines[1].starts_with("  savepoint sp/savepoint-x\\u{a}  job 0123456789abcdef0123456789abcdef (forged)\\u{1b}[31m\\u{202e}: 0 files"),
            "{text}"
        );
        assert_eq!(
            lines[2],
            "  symlink (not followed): link\\u{d}\\u{a}symlink (not followed): x"
        );
        assert_eq!(
            printable("a\\u{a}"),
            "a\\\\u{a}",
            "a backslash is escaped too, so escapes are unambiguous"
        );
        assert_eq!(printable("chk-1/ok"), "chk-1/ok");
    }

    /// The disk, with directories that change between being listed and
    /// being read: gone, swapped for a symbolic link, replaced by a file,
    /// or below a directory swapped for a link.
    struct Changing {
        disk: Beneath,
        gone: &'static str,
        swapped: &'static str,
        now_a_file: &'static str,
        below_a_swap: &'static str,
    }

    impl Scan for Changing {
        fn entries(&self, rel: &Path) -> io::Result<Vec<Entry>> {
            if rel.ends_with(self.gone) {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            if rel.ends_with(self.swapped) || rel.ends_with(self.below_a_swap) {
                // What opening a link with O_NOFOLLOW gives.
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            if rel.ends_with(self.now_a_file) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            self.disk.entries(rel)
        }

        fn kind_of(&self, rel: &Path) -> io::Result<Option<EntryKind>> {
            if rel.ends_with(self.gone) {
                return Ok(None);
            }
            if rel.ends_with(self.swapped) {
                return Ok(Some(EntryKind::Symlink));
            }
            if rel.ends_with(self.now_a_file) {
                return Ok(Some(EntryKind::File));
            }
            if rel.ends_with(self.below_a_swap) {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            self.disk.kind_of(rel)
        }
    }

    #[test]
    fn directories_that_vanish_or_become_links_during_the_scan_are_skipped_or_reported() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &format!("{JOB}/chk-1/a"), 10);
        write(d.path(), &format!("{JOB}/chk-2/b"), 20);
        write(d.path(), &format!("{JOB}/chk-3/c"), 30);
        write(d.path(), &format!("{JOB}/chk-4/d"), 40);
        write(d.path(), &format!("{JOB}/chk-5/e"), 50);
        write(d.path(), &format!("{JOB}/shared/s"), 3);
        let fs = Changing {
            disk: Beneath::open(d.path()).unwrap(),
            gone: "chk-1",
            swapped: "shared",
            now_a_file: "chk-3",
            below_a_swap: "chk-4",
        };
        let inv = inspect_with(&fs, d.path()).unwrap();
        let job = &inv.jobs[0];
        assert_eq!(
            job.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        for (i, expected) in [(0, Usage::default()), (2, Usage::default()), (3, Usage::default())] {
            assert_eq!(
                job.checkpoints[i].state, expected,
                "changed under the scan: nothing counted"
            );
        }
        assert_eq!(job.checkpoints[1].state, Usage { files: 1, bytes: 20 });
        assert_eq!(job.checkpoints[4].state, Usage { files: 1, bytes: 50 });
        assert_eq!(job.shared, Usage::default(), "a link is not read");
        assert_eq!(inv.symlinks, [format!("{JOB}/shared")]);
        // Any other failure is an error, not a silent gap.
        struct Broken(Beneath);
        impl Scan for Broken {
            fn entries(&self, rel: &Path) -> io::Result<Vec<Entry>> {
                if rel.ends_with("chk-2") {
                    return Err(io::Error::from(io::ErrorKind::PermissionDenied));
                }
                self.0.entries(rel)
            }
            fn kind_of(&self, rel: &Path) -> io::Result<Option<EntryKind>> {
                self.0.kind_of(rel)
            }
        }
        let e = inspect_with(&Broken(Beneath::open(d.path()).unwrap()), d.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }

    /// A real swap: the scan reaches `chk-1` through descriptors, so a
    /// link in its place is never followed, even if made after the root
    /// was opened.
    #[test]
    fn a_directory_swapped_for_a_link_is_never_listed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", 1000);
        write(d.path(), &format!("{JOB}/chk-1/a"), 10);
        let disk = Beneath::open(d.path()).unwrap();
        std::fs::remove_dir_all(d.path().join(JOB).join("chk-1")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join(JOB).join("chk-1")).unwrap();
        let rel = PathBuf::from(JOB).join("chk-1");
        assert!(disk.entries(&rel).is_err(), "not followed");
        let mut symlinks = vec![];
        assert!(entries(&disk, &rel, &mut symlinks).unwrap().is_empty());
        assert_eq!(symlinks, [format!("{JOB}/chk-1")]);
    }

    #[test]
    fn missing_root_is_an_error() {
        assert!(check_root(Path::new("/definitely/not/here")).is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(check_root(f.path()).is_err());
    }
}
