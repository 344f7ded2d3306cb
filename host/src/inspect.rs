//! `inspect`: what a tenant directory holds, read from the host side for
//! operators: jobs with their checkpoints (`chk-N`), shared and task-owned
//! state, and savepoint directories, each with file counts, bytes and
//! whether `_metadata` is present. Symbolic links are reported, never followed.

use checkpoint_storage_core::layout::{
    METADATA_FILE_NAME, SAVEPOINT_DIR_PREFIX, SHARED_STATE_DIR, TASK_OWNED_STATE_DIR, is_job_id,
    parse_checkpoint_dir_name,
};
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

/// How deep below the tenant directory to look for jobs and savepoints.
const MAX_DEPTH: usize = 4;

/// Files and bytes directly in a directory.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub id: u64,
    pub path: String,
    pub state: Usage,
    /// Size of `_metadata`, if present (the checkpoint completed).
    pub metadata_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobInfo {
    pub job_id: String,
    pub path: String,
    pub checkpoints: Vec<CheckpointInfo>,
    pub shared: Usage,
    pub task_owned: Usage,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SavepointInfo {
    pub path: String,
    pub state: Usage,
    pub metadata_bytes: Option<u64>,
}

/// Everything found in a tenant directory. Paths are relative to it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Inventory {
    pub root: String,
    pub jobs: Vec<JobInfo>,
    pub savepoints: Vec<SavepointInfo>,
    /// Symbolic links met on the way (not followed).
    pub symlinks: Vec<String>,
}

fn usage_and_metadata(dir: &Path) -> io::Result<(Usage, Option<u64>)> {
    let mut usage = Usage::default();
    let mut metadata = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if !meta.is_file() {
            continue;
        }
        if entry.file_name() == METADATA_FILE_NAME {
            metadata = Some(meta.len());
        } else {
            usage.files += 1;
            usage.bytes += meta.len();
        }
    }
    Ok((usage, metadata))
}

fn usage(dir: &Path) -> io::Result<Usage> {
    match usage_and_metadata(dir) {
        Ok((u, _)) => Ok(u),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Usage::default()),
        Err(e) => Err(e),
    }
}

/// Reads the inventory of a tenant directory.
pub fn inspect(root: &Path) -> io::Result<Inventory> {
    let mut inv = Inventory {
        root: root.display().to_string(),
        jobs: vec![],
        savepoints: vec![],
        symlinks: vec![],
    };
    walk(root, root, 0, &mut inv)?;
    inv.jobs.sort_by(|a, b| a.path.cmp(&b.path));
    inv.savepoints.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(inv)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn walk(root: &Path, dir: &Path, depth: usize, inv: &mut Inventory) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = path.symlink_metadata()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.file_type().is_symlink() {
            inv.symlinks.push(relative(root, &path));
        } else if !meta.is_dir() {
            continue;
        } else if is_job_id(&name) {
            inv.jobs.push(job(root, &path, name)?);
        } else if name.starts_with(SAVEPOINT_DIR_PREFIX) {
            let (state, metadata_bytes) = usage_and_metadata(&path)?;
            inv.savepoints.push(SavepointInfo {
                path: relative(root, &path),
                state,
                metadata_bytes,
            });
        } else if depth < MAX_DEPTH {
            walk(root, &path, depth + 1, inv)?;
        }
    }
    Ok(())
}

fn job(root: &Path, dir: &Path, job_id: String) -> io::Result<JobInfo> {
    let mut checkpoints = vec![];
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = parse_checkpoint_dir_name(&name);
        if let (Some(id), true) = (id, entry.path().symlink_metadata()?.is_dir()) {
            let (state, metadata_bytes) = usage_and_metadata(&entry.path())?;
            checkpoints.push(CheckpointInfo {
                id,
                path: relative(root, &entry.path()),
                state,
                metadata_bytes,
            });
        }
    }
    checkpoints.sort_by_key(|c| c.id);
    Ok(JobInfo {
        job_id,
        path: relative(root, dir),
        checkpoints,
        shared: usage(&dir.join(SHARED_STATE_DIR))?,
        task_owned: usage(&dir.join(TASK_OWNED_STATE_DIR))?,
    })
}

/// The inventory for people.
pub fn render(inv: &Inventory) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let meta = |m: Option<u64>| m.map_or("no _metadata (incomplete)".to_string(), |b| format!("_metadata {b} B"));
    let _ = writeln!(out, "{}", inv.root);
    if inv.jobs.is_empty() && inv.savepoints.is_empty() {
        let _ = writeln!(out, "  no checkpoints or savepoints found");
    }
    for job in &inv.jobs {
        let _ = writeln!(out, "  job {} ({})", job.job_id, job.path);
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
            s.path,
            s.state.files,
            s.state.bytes,
            meta(s.metadata_bytes)
        );
    }
    for l in &inv.symlinks {
        let _ = writeln!(out, "  symlink (not followed): {l}");
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

    #[test]
    fn missing_root_is_an_error() {
        assert!(check_root(Path::new("/definitely/not/here")).is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(check_root(f.path()).is_err());
    }
}
