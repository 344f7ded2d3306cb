//! An in-memory sandbox for native unit tests, with fault injection.

use crate::paths::GuestPath;
use crate::sandbox::{EntryKind, FsError, FsErrorKind, HostHandle, ReadFile, Sandbox, Stat, StateFile};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

type Data = Rc<RefCell<Vec<u8>>>;

#[derive(Default)]
pub struct MemSandbox {
    pub root: Option<GuestPath>,
    pub dirs: RefCell<BTreeSet<GuestPath>>,
    pub files: RefCell<BTreeMap<GuestPath, Data>>,
    /// Random bytes handed out before falling back to a counter.
    pub scripted_random: RefCell<VecDeque<[u8; 16]>>,
    counter: Cell<u64>,
    pub links_unsupported: Cell<bool>,
    /// Makes `read_only()` true (the sandbox itself still allows
    /// everything, so a test sees whether the logic refuses first).
    pub read_only: Cell<bool>,
    /// Faults shared with the open files.
    pub faults: Rc<Faults>,
    /// Makes `host_write_handle` answer that there is none.
    pub no_host_handles: Cell<bool>,
}

/// What `MemSandbox::host_write_handle` gives: the file's bytes, for a test
/// to write into as the host would.
pub struct MemHostHandle(Data);

impl MemHostHandle {
    /// Writes `data` at `offset`, as the host's positional write.
    pub fn write_at(&self, data: &[u8], offset: u64) {
        let mut d = self.0.borrow_mut();
        let end = offset as usize + data.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[offset as usize..end].copy_from_slice(data);
    }
}

impl MemSandbox {
    /// A sandbox rooted at `/checkpoints` with the given directories.
    pub fn with_dirs(dirs: &[&str]) -> Rc<Self> {
        let root = GuestPath::parse("/checkpoints").unwrap();
        let s = MemSandbox {
            root: Some(root.clone()),
            ..Default::default()
        };
        s.dirs.borrow_mut().insert(root);
        for d in dirs {
            s.mkdir(d);
        }
        Rc::new(s)
    }

    pub fn mkdir(&self, dir: &str) {
        self.dirs.borrow_mut().insert(GuestPath::parse(dir).unwrap());
    }

    pub fn files_in(&self, dir: &str) -> Vec<GuestPath> {
        let dir = GuestPath::parse(dir).unwrap();
        self.files
            .borrow()
            .keys()
            .filter(|p| p.parent().as_ref() == Some(&dir))
            .cloned()
            .collect()
    }

    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files
            .borrow()
            .get(&GuestPath::parse(path).unwrap())
            .map(|d| d.borrow().clone())
    }

    fn check_parent(&self, path: &GuestPath) -> Result<(), FsError> {
        if !self.contains(path) {
            return Err(FsError::new(FsErrorKind::PermissionDenied, "outside"));
        }
        match path.parent() {
            Some(p) if self.dirs.borrow().contains(&p) => Ok(()),
            _ => Err(FsError::new(FsErrorKind::NotFound, "no such directory")),
        }
    }

    fn new_entry(&self, path: &GuestPath, data: Vec<u8>) -> Result<Data, FsError> {
        self.check_parent(path)?;
        let mut files = self.files.borrow_mut();
        if files.contains_key(path) {
            return Err(FsError::new(FsErrorKind::AlreadyExists, "file exists"));
        }
        let d = Rc::new(RefCell::new(data));
        files.insert(path.clone(), d.clone());
        Ok(d)
    }
}

pub struct MemFile {
    data: Data,
    path: GuestPath,
    faults: Rc<Faults>,
}

/// Fault injection and sync bookkeeping.
#[derive(Default)]
pub struct Faults {
    /// Bytes that may still be written before writes fail with "no space".
    pub budget: Cell<Option<u64>>,
    pub fail_sync: Cell<bool>,
    /// Files whose removal fails with "permission denied".
    pub fail_remove: RefCell<BTreeSet<GuestPath>>,
    pub synced: RefCell<BTreeSet<GuestPath>>,
    /// Every file and directory sync in order: `file <path>` / `dir <path>`.
    pub sync_log: RefCell<Vec<String>>,
    pub fail_dir_sync: Cell<bool>,
}

impl StateFile for MemFile {
    fn write_all_at(&mut self, data: &[u8], offset: u64) -> Result<(), FsError> {
        if let Some(left) = self.faults.budget.get() {
            if (data.len() as u64) > left {
                return Err(FsError::new(FsErrorKind::NoSpace, "no space left on device"));
            }
            self.faults.budget.set(Some(left - data.len() as u64));
        }
        let mut d = self.data.borrow_mut();
        let end = offset as usize + data.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[offset as usize..end].copy_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> Result<(), FsError> {
        if self.faults.fail_sync.get() {
            return Err(FsError::new(FsErrorKind::Other, "I/O error"));
        }
        self.faults.synced.borrow_mut().insert(self.path.clone());
        self.faults.sync_log.borrow_mut().push(format!("file {}", self.path));
        Ok(())
    }

    fn is_linked(&self) -> Result<bool, FsError> {
        // The sandbox's map holds one reference per name; the file holds one.
        Ok(Rc::strong_count(&self.data) > 1)
    }
}

pub struct MemReader(Vec<u8>);

impl ReadFile for MemReader {
    fn size(&self) -> Result<u64, FsError> {
        Ok(self.0.len() as u64)
    }

    fn read_at(&self, len: u64, offset: u64) -> Result<Vec<u8>, FsError> {
        let start = (offset as usize).min(self.0.len());
        let end = start.saturating_add(len as usize).min(self.0.len());
        Ok(self.0[start..end].to_vec())
    }
}

fn not_found() -> FsError {
    FsError::new(FsErrorKind::NotFound, "no such file or directory")
}

impl Sandbox for MemSandbox {
    type File = MemFile;
    type Reader = MemReader;

    fn stat(&self, path: &GuestPath) -> Result<Stat, FsError> {
        if self.dirs.borrow().contains(path) || self.root.as_ref() == Some(path) {
            return Ok(Stat {
                kind: EntryKind::Directory,
                size: 0,
            });
        }
        let files = self.files.borrow();
        let data = files.get(path).ok_or_else(not_found)?;
        Ok(Stat {
            kind: EntryKind::File,
            size: data.borrow().len() as u64,
        })
    }

    fn open_read(&self, path: &GuestPath) -> Result<MemReader, FsError> {
        if self.dirs.borrow().contains(path) {
            return Err(FsError::new(FsErrorKind::NotAFile, "is a directory"));
        }
        self.read(path.as_str()).map(MemReader).ok_or_else(not_found)
    }

    fn create_dir(&self, path: &GuestPath) -> Result<(), FsError> {
        if self.stat(path).is_ok() {
            return Err(FsError::new(FsErrorKind::AlreadyExists, "exists"));
        }
        self.check_parent(path)?;
        self.dirs.borrow_mut().insert(path.clone());
        Ok(())
    }

    fn remove_dir(&self, path: &GuestPath) -> Result<(), FsError> {
        if !self.list_dir(path)?.is_empty() {
            return Err(FsError::new(FsErrorKind::Other, "directory not empty"));
        }
        self.dirs.borrow_mut().remove(path);
        Ok(())
    }

    fn list_dir(&self, path: &GuestPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        if self.stat(path)?.kind != EntryKind::Directory {
            return Err(FsError::new(FsErrorKind::NotAFile, "not a directory"));
        }
        let child = |p: &GuestPath| (p.parent().as_ref() == Some(path)).then(|| p.file_name().unwrap().to_string());
        let mut out: Vec<_> = self
            .dirs
            .borrow()
            .iter()
            .filter_map(child)
            .map(|n| (n, EntryKind::Directory))
            .collect();
        out.extend(
            self.files
                .borrow()
                .keys()
                .filter_map(child)
                .map(|n| (n, EntryKind::File)),
        );
        Ok(out)
    }

    fn contains(&self, path: &GuestPath) -> bool {
        self.root.as_ref().is_some_and(|r| path.is_inside(r))
    }

    fn create_new(&self, path: &GuestPath) -> Result<MemFile, FsError> {
        let data = self.new_entry(path, Vec::new())?;
        Ok(MemFile {
            data,
            path: path.clone(),
            faults: self.faults.clone(),
        })
    }

    fn remove_file(&self, path: &GuestPath) -> Result<(), FsError> {
        if self.faults.fail_remove.borrow().contains(path) {
            return Err(FsError::new(FsErrorKind::PermissionDenied, "permission denied"));
        }
        self.files
            .borrow_mut()
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| FsError::new(FsErrorKind::NotFound, "no such file"))
    }

    fn hard_link(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        if self.links_unsupported.get() {
            return Err(FsError::new(FsErrorKind::Unsupported, "links not supported"));
        }
        let data = self
            .files
            .borrow()
            .get(src)
            .cloned()
            .ok_or_else(|| FsError::new(FsErrorKind::NotFound, "no such file"))?;
        self.check_parent(dst)?;
        let mut files = self.files.borrow_mut();
        if files.contains_key(dst) {
            return Err(FsError::new(FsErrorKind::AlreadyExists, "file exists"));
        }
        files.insert(dst.clone(), data);
        Ok(())
    }

    fn copy_file(&self, src: &GuestPath, dst: &GuestPath) -> Result<(), FsError> {
        let data = self
            .read(src.as_str())
            .ok_or_else(|| FsError::new(FsErrorKind::NotFound, "no such file"))?;
        self.new_entry(dst, data).map(|_| ())
    }

    fn sync_dir(&self, dir: &GuestPath) -> Result<(), FsError> {
        if self.faults.fail_dir_sync.get() {
            return Err(FsError::new(FsErrorKind::Other, "I/O error"));
        }
        if self.stat(dir)?.kind != EntryKind::Directory {
            return Err(FsError::new(FsErrorKind::NotAFile, "not a directory"));
        }
        self.faults.sync_log.borrow_mut().push(format!("dir {dir}"));
        Ok(())
    }

    fn names_file(&self, path: &GuestPath, file: &MemFile) -> Result<bool, FsError> {
        Ok(self.files.borrow().get(path).is_some_and(|d| Rc::ptr_eq(d, &file.data)))
    }

    fn host_write_handle(&self, _path: &GuestPath, file: &MemFile) -> Result<Option<HostHandle>, FsError> {
        if self.no_host_handles.get() {
            return Ok(None);
        }
        Ok(Some(Box::new(MemHostHandle(file.data.clone()))))
    }

    fn read_only(&self) -> bool {
        self.read_only.get()
    }

    fn random_bytes(&self) -> [u8; 16] {
        if let Some(b) = self.scripted_random.borrow_mut().pop_front() {
            return b;
        }
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    }
}

impl MemSandbox {
    /// Moves a directory and everything below it to `to`, as rename(2) does
    /// (open files keep their data and lose the old name).
    pub fn rename_dir_for_test(&self, from: &str, to: &str) {
        let (from, to) = (GuestPath::parse(from).unwrap(), GuestPath::parse(to).unwrap());
        let moved = |p: &GuestPath| {
            p.relative_to(&from).map(|rel| {
                if rel.is_empty() {
                    to.clone()
                } else {
                    GuestPath::parse(&format!("{to}/{rel}")).unwrap()
                }
            })
        };
        let dirs: Vec<_> = self.dirs.borrow().iter().cloned().collect();
        let mut new_dirs = BTreeSet::new();
        for d in dirs {
            new_dirs.insert(moved(&d).unwrap_or(d));
        }
        *self.dirs.borrow_mut() = new_dirs;
        let files = std::mem::take(&mut *self.files.borrow_mut());
        *self.files.borrow_mut() = files.into_iter().map(|(p, d)| (moved(&p).unwrap_or(p), d)).collect();
    }

    pub fn remove_file_for_test(&self, path: &str) {
        self.files.borrow_mut().remove(&GuestPath::parse(path).unwrap());
    }
}
