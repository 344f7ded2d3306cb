//! The file-merging snapshot manager of one job on one task manager
//! (Flink's `FileMergingSnapshotManagerBase` with its within- and
//! across-checkpoint variants).
//!
//! Bookkeeping, as Flink's:
//! - a *physical file* is a file in a managed directory; while open it
//!   takes more segments, one stream at a time (a stream holds it from its
//!   first byte on disk until it closes);
//! - a *logical file* is one segment of a physical file, owned by a subtask,
//!   with the last checkpoint that uses it;
//! - a physical file is deleted once it is closed (takes no more segments)
//!   and no logical file lives in it, and only if it is the manager's own
//!   (restored files in foreign directories are never deleted).
//!
//! A physical file is reused by the next stream of the same subtask and
//! scope (exclusive state: of any subtask), within one checkpoint or, with
//! `across-checkpoint-boundary`, across checkpoints, until it reaches
//! `max-file-size` or space control stops it.

use super::options::{FileMergingOptions, SubtaskKey, ValidOptions, check_id};
use super::stream::MergingOutputStream;
use crate::access::{StateScope, StreamFactory, WorkerView, needs_checkpoints_dir};
use crate::any_stream::AnyStream;
use crate::config::{Backend, StorageConfig};
use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::{StateHandle, checked_file_path};
use crate::layout::{self, SHARED_STATE_DIR, TASK_OWNED_STATE_DIR};
use crate::output_stream::CheckpointStateOutputStream;
use crate::paths::GuestPath;
use crate::reference::LocationReference;
use crate::sandbox::{EntryKind, FsErrorKind, Sandbox, SandboxExt, StateFile};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Flink's number of attempts to find an unused random physical file name.
const CREATE_ATTEMPTS: usize = 10;

/// Which pool a physical file returns to: shared state per subtask,
/// exclusive state of all subtasks together; per checkpoint unless merging
/// across checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PoolKey {
    /// `None` for exclusive state.
    owner: Option<SubtaskKey>,
    checkpoint: Option<u64>,
}

struct Physical<F> {
    path: GuestPath,
    /// Open for writing (and so for more segments) while `Some`.
    file: Option<F>,
    pool: Option<PoolKey>,
    size: u64,
    /// Bytes of the logical files living in it.
    live: u64,
    refs: u32,
    /// A stream is writing a segment into it.
    busy: bool,
    /// Takes more segments when returned (false once a failed stream
    /// stopped it).
    reusable: bool,
    /// Space control gave up on it: its segments should not be reused by
    /// later checkpoints (Flink's `couldReuse`), so that it can empty.
    wasteful: bool,
    /// In this manager's managed directories: deleted when unused.
    owned: bool,
}

impl<F> Physical<F> {
    fn wasted(&self) -> u64 {
        self.size.saturating_sub(self.live)
    }
}

struct Logical {
    physical: u64,
    offset: u64,
    length: u64,
    subtask: SubtaskKey,
    last_used: u64,
}

/// Space used by the manager's own physical files (Flink's `SpaceStat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceStat {
    pub physical_file_count: u64,
    pub physical_file_size: u64,
    pub logical_file_count: u64,
    pub logical_file_size: u64,
}

/// The state the manager shares with its streams.
pub(crate) struct State<S: Sandbox> {
    sandbox: Rc<S>,
    options: ValidOptions,
    job_id: String,
    /// `<job>/shared` and the task manager's managed directory below
    /// `<job>/taskowned`; `None` without a checkpoints directory (memory
    /// backend, where merging is refused, so they are never needed).
    shared_state_dir: Option<GuestPath>,
    exclusive_dir: Option<GuestPath>,
    subtasks: BTreeMap<SubtaskKey, GuestPath>,
    physical: BTreeMap<u64, Physical<S::File>>,
    logical: BTreeMap<u64, Logical>,
    /// Logical files by (physical path, offset): how handles find them.
    by_segment: BTreeMap<(String, u64), u64>,
    /// Logical files by the checkpoint that wrote (or restored) them.
    uploaded: BTreeMap<u64, BTreeSet<u64>>,
    pools: BTreeMap<PoolKey, Vec<u64>>,
    next_id: u64,
}

/// One job's file-merging snapshot manager.
pub struct FileMergingSnapshotManager<S: Sandbox> {
    state: Rc<RefCell<State<S>>>,
    view: WorkerView<S>,
    buffer_size: usize,
}

impl<S: Sandbox + 'static> FileMergingSnapshotManager<S> {
    /// Validates everything, then (when merging) creates the exclusive
    /// managed directory, as Flink's `initFileSystem`.
    pub fn open(
        sandbox: Rc<S>,
        config: &StorageConfig,
        task_manager_id: &str,
        options: &FileMergingOptions,
    ) -> Result<Self> {
        let view = WorkerView::open(sandbox.clone(), config)?;
        let options = options.validate()?;
        check_id("task manager id", task_manager_id)?;
        if options.enabled && config.backend == Backend::Memory {
            return Err(StorageError::new(
                ErrorCode::Unsupported,
                "File merging needs the filesystem backend: the memory backend keeps all state inline. Use the filesystem backend or turn merging off.",
            ));
        }
        let job_id = config.job_id.clone();
        let job_dir = view.job_dir().ok().cloned();
        let exclusive_dir = job_dir.as_ref().map(|dir| {
            dir.join(TASK_OWNED_STATE_DIR)
                .join(&layout::file_merging_manager_dir_name(&job_id, task_manager_id))
        });
        if options.enabled {
            create_managed_dir(&*sandbox, needs_checkpoints_dir(&exclusive_dir)?)?;
        }
        let buffer_size = config.validate()?.effective_buffer_size;
        Ok(FileMergingSnapshotManager {
            state: Rc::new(RefCell::new(State {
                sandbox,
                options,
                job_id,
                shared_state_dir: job_dir.map(|dir| dir.join(SHARED_STATE_DIR)),
                exclusive_dir,
                subtasks: BTreeMap::new(),
                physical: BTreeMap::new(),
                logical: BTreeMap::new(),
                by_segment: BTreeMap::new(),
                uploaded: BTreeMap::new(),
                pools: BTreeMap::new(),
                next_id: 0,
            })),
            view,
            buffer_size,
        })
    }

    pub fn is_merging(&self) -> bool {
        self.state.borrow().options.enabled
    }

    /// Flink's `registerSubtaskForSharedStates`: creates the subtask's
    /// shared managed directory once. Nothing to do when not merging.
    pub fn register_subtask(&self, subtask: &SubtaskKey) -> Result<()> {
        subtask.validate()?;
        let mut st = self.state.borrow_mut();
        if !st.options.enabled || st.subtasks.contains_key(subtask) {
            return Ok(());
        }
        let dir = needs_checkpoints_dir(&st.shared_state_dir)?.join(&subtask.managed_dir_name(&st.job_id));
        create_managed_dir(&*st.sandbox, &dir)?;
        st.subtasks.insert(subtask.clone(), dir);
        Ok(())
    }

    /// The managed directory for `scope` of `subtask`.
    pub fn managed_directory(&self, subtask: &SubtaskKey, scope: StateScope) -> Option<GuestPath> {
        let st = self.state.borrow();
        if !st.options.enabled {
            return None;
        }
        match scope {
            StateScope::Exclusive => st.exclusive_dir.clone(),
            StateScope::Shared => st.subtasks.get(subtask).cloned(),
        }
    }

    /// The stream factory of `subtask` for one checkpoint: merging for the
    /// default reference, plain for a savepoint's encoded reference.
    pub fn resolve_checkpoint_storage_location(
        &self,
        subtask: &SubtaskKey,
        checkpoint_id: u64,
        reference: &LocationReference,
    ) -> Result<MergingStreamFactory<S>> {
        subtask.validate()?;
        let plain = self
            .view
            .resolve_checkpoint_storage_location(checkpoint_id, reference)?;
        if !self.is_merging() || *reference != LocationReference::Default {
            return Ok(MergingStreamFactory(Kind::Plain(plain)));
        }
        self.check_registered(subtask)?;
        Ok(MergingStreamFactory(Kind::Merging {
            state: self.state.clone(),
            subtask: subtask.clone(),
            checkpoint_id,
            buffer_size: self.buffer_size,
        }))
    }

    fn check_registered(&self, subtask: &SubtaskKey) -> Result<()> {
        if self.state.borrow().subtasks.contains_key(subtask) {
            return Ok(());
        }
        Err(StorageError::invalid_argument(format!(
            "Subtask {subtask} is not registered with the file-merging manager, so it has no managed directory for shared state; call register-subtask first."
        )))
    }

    /// Flink's `notifyCheckpointComplete`: within-checkpoint merging closes
    /// the checkpoint's idle physical files. Deletes nothing of use.
    pub fn notify_checkpoint_complete(&self, subtask: &SubtaskKey, checkpoint_id: u64) -> Result<()> {
        subtask.validate()?;
        let mut st = self.state.borrow_mut();
        let mut errors = Errors::default();
        st.close_checkpoint_pools(|cp| cp == checkpoint_id, &mut errors);
        errors.into_result()
    }

    /// Flink's `notifyCheckpointAborted`.
    pub fn notify_checkpoint_aborted(&self, subtask: &SubtaskKey, checkpoint_id: u64) -> Result<()> {
        subtask.validate()?;
        let mut st = self.state.borrow_mut();
        let mut errors = Errors::default();
        st.discard_logical_files(subtask, checkpoint_id, checkpoint_id..=checkpoint_id, &mut errors);
        st.close_checkpoint_pools(|cp| cp == checkpoint_id, &mut errors);
        st.control_space();
        errors.into_result()
    }

    /// Flink's `notifyCheckpointSubsumed`: releases the subtask's logical
    /// files last used at or before `checkpoint_id`.
    pub fn notify_checkpoint_subsumed(&self, subtask: &SubtaskKey, checkpoint_id: u64) -> Result<()> {
        subtask.validate()?;
        let mut st = self.state.borrow_mut();
        let mut errors = Errors::default();
        st.discard_logical_files(subtask, checkpoint_id, 0..=checkpoint_id, &mut errors);
        st.close_checkpoint_pools(|cp| cp <= checkpoint_id, &mut errors);
        st.control_space();
        errors.into_result()
    }

    /// Flink's `reusePreviousStateHandle`: the segments live at least until
    /// `checkpoint_id` is subsumed.
    pub fn reuse_previous_state_handles(&self, checkpoint_id: u64, handles: &[StateHandle]) -> Result<()> {
        let mut st = self.state.borrow_mut();
        for handle in handles {
            // Indexed by the canonical path, as restore and reads parse it: a
            // handle spelled otherwise (a `file:` URI) is the same segment.
            if let StateHandle::Segment { path, offset, .. } = handle
                && let Ok(path) = GuestPath::parse(path)
                && let Some(id) = st.by_segment.get(&(path.to_string(), *offset)).copied()
            {
                let l = st.logical.get_mut(&id).expect("indexed logical file exists");
                l.last_used = l.last_used.max(checkpoint_id);
            }
        }
        Ok(())
    }

    /// Flink's `couldReusePreviousStateHandle`: whether a later checkpoint
    /// may reference this segment again (`reuse_previous_state_handles`)
    /// instead of writing its bytes anew. False for a segment in a file
    /// space control marked wasteful (so that the file can empty and go),
    /// for a segment the manager does not know, and for anything that is not
    /// a segment: write those again.
    pub fn could_reuse_previous_state_handle(&self, handle: &StateHandle) -> bool {
        let st = self.state.borrow();
        let StateHandle::Segment { path, offset, .. } = handle else {
            return false;
        };
        let Ok(path) = GuestPath::parse(path) else {
            return false;
        };
        st.by_segment
            .get(&(path.to_string(), *offset))
            .and_then(|id| st.logical.get(id))
            .and_then(|l| st.physical.get(&l.physical))
            .is_some_and(|p| !p.wasteful)
    }

    /// Flink's `restoreStateHandles`: registers the segments of a restored
    /// checkpoint. Checks every handle before registering any.
    pub fn restore_state_handles(
        &self,
        checkpoint_id: u64,
        subtask: &SubtaskKey,
        handles: &[StateHandle],
    ) -> Result<()> {
        subtask.validate()?;
        if !self.is_merging() {
            return Ok(());
        }
        self.check_registered(subtask)?;
        let mut st = self.state.borrow_mut();
        let mut segments = Vec::new();
        for (i, handle) in handles.iter().enumerate() {
            let StateHandle::Segment {
                offset, size, scope, ..
            } = handle
            else {
                continue;
            };
            let path = checked_file_path(&*st.sandbox, handle)
                .map_err(|e| StorageError::new(e.code, format!("Handle #{i}: {}", e.message)))?
                .expect("segments have paths");
            if offset.checked_add(*size).is_none() {
                return Err(StorageError::invalid_argument(format!(
                    "Handle #{i}: a segment at offset {offset} with {size} bytes ends beyond the largest file size."
                )));
            }
            segments.push((path, *offset, *size, *scope));
        }
        for (path, offset, size, scope) in segments {
            st.restore_segment(checkpoint_id, subtask, path, offset, size, scope);
        }
        Ok(())
    }

    pub fn space_stat(&self) -> SpaceStat {
        self.state.borrow().space_stat()
    }
}

/// Creates a managed directory (and its parents), or reuses one; a file in
/// its place is an error, as in Flink.
fn create_managed_dir<S: Sandbox + ?Sized>(sandbox: &S, dir: &GuestPath) -> Result<()> {
    match sandbox.stat(dir) {
        Ok(s) if s.kind == EntryKind::Directory => return Ok(()),
        Ok(_) => {
            return Err(StorageError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "The managed path {dir} for file-merging is occupied by another file. Cannot create directory. Remove it or use another task manager id."
                ),
            ));
        }
        Err(e) if e.kind == FsErrorKind::NotFound => {}
        Err(e) => {
            return Err(StorageError::from_fs(
                format!("Cannot create directory {dir} for file-merging"),
                &e,
            ));
        }
    }
    sandbox
        .create_dir_all(dir)
        .map_err(|e| StorageError::from_fs(format!("Cannot create directory {dir} for file-merging"), &e))
}

/// Failures of best-effort deletions: every deletion is tried, the first
/// failure is reported.
#[derive(Default)]
struct Errors(Option<StorageError>);

impl Errors {
    fn push(&mut self, e: StorageError) {
        self.0.get_or_insert(e);
    }
    fn into_result(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl<S: Sandbox> State<S> {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pool_key(&self, subtask: &SubtaskKey, checkpoint_id: u64, scope: StateScope) -> PoolKey {
        PoolKey {
            owner: (scope == StateScope::Shared).then(|| subtask.clone()),
            checkpoint: (!self.options.across_checkpoint_boundary).then_some(checkpoint_id),
        }
    }

    /// A physical file for the next segment: an idle one from the pool, or
    /// a new one in the managed directory. It stays busy until returned.
    pub(crate) fn acquire(
        &mut self,
        subtask: &SubtaskKey,
        checkpoint_id: u64,
        scope: StateScope,
    ) -> Result<(u64, GuestPath, u64)> {
        let key = self.pool_key(subtask, checkpoint_id, scope);
        while let Some(id) = self.pools.get_mut(&key).and_then(Vec::pop) {
            let max = self.options.max_file_size;
            let p = self.physical.get_mut(&id).expect("pooled file exists");
            if p.file.is_some() && p.reusable && p.size < max {
                p.busy = true;
                return Ok((id, p.path.clone(), p.size));
            }
        }
        let dir = match scope {
            StateScope::Exclusive => needs_checkpoints_dir(&self.exclusive_dir)?.clone(),
            StateScope::Shared => self.subtasks.get(subtask).cloned().ok_or_else(|| {
                StorageError::invalid_argument(format!(
                    "Could not get SHARED path for subtask {subtask}, the directory may have not been created; call register-subtask first."
                ))
            })?,
        };
        let (file, path) = self.create_physical_file(&dir)?;
        let id = self.next_id();
        self.physical.insert(
            id,
            Physical {
                path: path.clone(),
                file: Some(file),
                pool: Some(key),
                size: 0,
                live: 0,
                refs: 0,
                busy: true,
                reusable: true,
                wasteful: false,
                owned: true,
            },
        );
        Ok((id, path, 0))
    }

    fn create_physical_file(&self, dir: &GuestPath) -> Result<(S::File, GuestPath)> {
        let mut last = None;
        for _ in 0..CREATE_ATTEMPTS {
            let path = dir.join(&self.sandbox.random_uuid());
            match self.sandbox.create_new(&path) {
                Ok(file) => return Ok((file, path)),
                Err(e) if e.kind == FsErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(StorageError::from_fs(
                        format!("Could not open output stream for state file merging in {dir}"),
                        &e,
                    ));
                }
            }
        }
        Err(StorageError::from_fs(
            format!(
                "Could not open output stream for state file merging: {CREATE_ATTEMPTS} random file names in {dir} were all taken"
            ),
            &last.expect("at least one attempt"),
        ))
    }

    /// Appends `data` to a busy physical file.
    pub(crate) fn append(&mut self, id: u64, data: &[u8]) -> Result<()> {
        let p = self.physical.get_mut(&id).expect("busy file exists");
        let file = p.file.as_mut().expect("a busy file is open");
        file.write_all_at(data, p.size)
            .map_err(|e| StorageError::from_fs(format!("Could not write state to {}", p.path), &e))?;
        p.size += data.len() as u64;
        Ok(())
    }

    pub(crate) fn sync(&mut self, id: u64) -> Result<()> {
        let p = self.physical.get_mut(&id).expect("busy file exists");
        let file = p.file.as_mut().expect("a busy file is open");
        file.sync_data()
            .map_err(|e| StorageError::from_fs(format!("Could not sync {}", p.path), &e))
    }

    /// Ends a segment: syncs it (as Flink, after every segment), records it
    /// as a logical file of `checkpoint_id` and returns the physical file
    /// for reuse (or closes it).
    pub(crate) fn finish_segment(
        &mut self,
        id: u64,
        offset: u64,
        length: u64,
        subtask: &SubtaskKey,
        checkpoint_id: u64,
    ) -> Result<()> {
        self.sync(id)?;
        let p = self.physical.get_mut(&id).expect("busy file exists");
        let file = p.file.as_mut().expect("a busy file is open");
        let linked = file
            .is_linked()
            .map_err(|e| StorageError::from_fs(format!("Could not check {}", p.path), &e))?;
        if !linked {
            return Err(StorageError::new(
                ErrorCode::NotFound,
                format!(
                    "the physical file {} was deleted while the stream was open (was its directory removed?); its bytes cannot be read back, so no handle is returned.",
                    p.path
                ),
            ));
        }
        p.refs += 1;
        p.live += length;
        p.busy = false;
        let path = p.path.to_string();
        let lid = self.next_id();
        self.logical.insert(
            lid,
            Logical {
                physical: id,
                offset,
                length,
                subtask: subtask.clone(),
                last_used: checkpoint_id,
            },
        );
        self.by_segment.insert((path, offset), lid);
        self.uploaded.entry(checkpoint_id).or_default().insert(lid);
        self.return_for_reuse(id);
        Ok(())
    }

    fn return_for_reuse(&mut self, id: u64) {
        let max = self.options.max_file_size;
        let p = self.physical.get(&id).expect("file exists");
        if p.file.is_some()
            && p.reusable
            && p.size < max
            && let Some(key) = p.pool.clone()
        {
            self.pools.entry(key).or_default().push(id);
        } else {
            // Nothing to delete: the file just got a live segment.
            let _ = self.close_physical(id);
        }
    }

    /// A stream gave up its physical file without a segment: the file takes
    /// no more segments (its end may hold the failed bytes) and goes if
    /// nothing lives in it.
    pub(crate) fn abandon(&mut self, id: u64) {
        if let Some(p) = self.physical.get_mut(&id) {
            p.busy = false;
            p.reusable = false;
        }
        // Best effort, as Flink: the stream is already failing.
        let _ = self.close_physical(id);
    }

    fn close_physical(&mut self, id: u64) -> Result<()> {
        let Some(p) = self.physical.get_mut(&id) else {
            return Ok(());
        };
        p.file = None;
        if let Some(key) = p.pool.take()
            && let Some(pool) = self.pools.get_mut(&key)
        {
            pool.retain(|&f| f != id);
            if pool.is_empty() {
                self.pools.remove(&key);
            }
        }
        self.delete_if_unused(id)
    }

    fn delete_if_unused(&mut self, id: u64) -> Result<()> {
        let Some(p) = self.physical.get(&id) else { return Ok(()) };
        if p.file.is_some() || p.busy || p.refs > 0 {
            return Ok(());
        }
        let p = self.physical.remove(&id).expect("checked above");
        if !p.owned {
            return Ok(());
        }
        match self.sandbox.remove_file(&p.path) {
            Err(e) if e.kind != FsErrorKind::NotFound => Err(StorageError::from_fs(
                format!("Could not delete the unused physical file {}", p.path),
                &e,
            )),
            _ => Ok(()),
        }
    }

    /// Discards the subtask's logical files recorded for checkpoints in
    /// `range` whose last use is at or before `checkpoint_id`.
    fn discard_logical_files(
        &mut self,
        subtask: &SubtaskKey,
        checkpoint_id: u64,
        range: std::ops::RangeInclusive<u64>,
        errors: &mut Errors,
    ) {
        let mut discard = Vec::new();
        for set in self.uploaded.range(range).map(|(_, s)| s) {
            discard.extend(set.iter().copied().filter(|lid| {
                let l = &self.logical[lid];
                l.subtask == *subtask && l.last_used <= checkpoint_id
            }));
        }
        for lid in discard {
            let l = self.logical.remove(&lid).expect("listed logical file exists");
            for set in self.uploaded.values_mut() {
                set.remove(&lid);
            }
            let p = self
                .physical
                .get_mut(&l.physical)
                .expect("a logical file's physical file exists");
            self.by_segment.remove(&(p.path.to_string(), l.offset));
            p.refs -= 1;
            p.live -= l.length;
            if let Err(e) = self.delete_if_unused(l.physical) {
                errors.push(e);
            }
        }
        self.uploaded.retain(|_, set| !set.is_empty());
    }

    /// Within-checkpoint merging: the files of finished checkpoints take no
    /// more segments.
    fn close_checkpoint_pools(&mut self, finished: impl Fn(u64) -> bool, errors: &mut Errors) {
        if self.options.across_checkpoint_boundary {
            return;
        }
        let ids: Vec<u64> = self
            .pools
            .iter()
            .filter(|(k, _)| k.checkpoint.is_some_and(&finished))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        for id in ids {
            if let Err(e) = self.close_physical(id) {
                errors.push(e);
            }
        }
    }

    /// Flink's space control: when the manager's physical bytes exceed
    /// `max-space-amplification` times its live bytes, the closed files that
    /// waste most are marked wasteful (their segments should not be reused
    /// by later checkpoints, see `could_reuse_previous_state_handle`) until
    /// the files still worth reusing fit the goal. Open files are left as
    /// they are: new writes go where they went, and nothing is closed or
    /// deleted here.
    fn control_space(&mut self) {
        let Some(amp) = self.options.max_space_amplification else {
            return;
        };
        let stat = self.space_stat();
        let goal = (stat.logical_file_size as f64 * amp as f64).round();
        if stat.physical_file_size as f64 <= goal {
            return;
        }
        // Files with live segments still worth reusing.
        let candidates: Vec<(u64, &Physical<_>)> = self
            .physical
            .iter()
            .filter(|(_, p)| p.refs > 0 && !p.wasteful)
            .map(|(&id, p)| (id, p))
            .collect();
        let mut alive: f64 = candidates.iter().map(|(_, p)| p.size as f64).sum();
        if alive <= goal {
            return;
        }
        let mut closed: Vec<(u64, u64)> = candidates
            .iter()
            .filter(|(_, p)| p.file.is_none())
            .map(|(id, p)| (*id, p.wasted()))
            .collect();
        closed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (id, wasted) in closed {
            let p = self.physical.get_mut(&id).expect("listed file exists");
            if p.size as f64 <= p.live as f64 * amp as f64 {
                continue;
            }
            p.wasteful = true;
            alive -= wasted as f64;
            if alive <= goal {
                break;
            }
        }
    }

    fn restore_segment(
        &mut self,
        checkpoint_id: u64,
        subtask: &SubtaskKey,
        path: GuestPath,
        offset: u64,
        length: u64,
        scope: StateScope,
    ) {
        let key = (path.to_string(), offset);
        if let Some(lid) = self.by_segment.get(&key) {
            let l = self.logical.get_mut(lid).expect("indexed logical file exists");
            l.last_used = l.last_used.max(checkpoint_id);
            return;
        }
        let known = self.physical.iter().find(|(_, p)| p.path == path).map(|(&id, _)| id);
        let pid = match known {
            Some(id) => id,
            None => {
                let managed = match scope {
                    StateScope::Exclusive => self.exclusive_dir.as_ref(),
                    StateScope::Shared => self.subtasks.get(subtask),
                };
                let owned = managed.is_some_and(|dir| path.parent().as_ref() == Some(dir));
                let id = self.next_id();
                self.physical.insert(
                    id,
                    Physical {
                        path,
                        file: None,
                        pool: None,
                        size: offset + length,
                        live: 0,
                        refs: 0,
                        busy: false,
                        reusable: false,
                        wasteful: false,
                        owned,
                    },
                );
                id
            }
        };
        let p = self.physical.get_mut(&pid).expect("just found or made");
        p.refs += 1;
        p.live += length;
        p.size = p.size.max(offset + length);
        let lid = self.next_id();
        self.logical.insert(
            lid,
            Logical {
                physical: pid,
                offset,
                length,
                subtask: subtask.clone(),
                last_used: checkpoint_id,
            },
        );
        self.by_segment.insert(key, lid);
        self.uploaded.entry(checkpoint_id).or_default().insert(lid);
    }

    fn space_stat(&self) -> SpaceStat {
        let mut s = SpaceStat::default();
        for p in self.physical.values().filter(|p| p.owned) {
            s.physical_file_count += 1;
            s.physical_file_size += p.size;
            s.logical_file_count += p.refs as u64;
            s.logical_file_size += p.live;
        }
        s
    }
}

/// The stream factory of one subtask for one checkpoint.
pub struct MergingStreamFactory<S: Sandbox>(Kind<S>);

enum Kind<S: Sandbox> {
    /// Savepoints, and everything when merging is off.
    Plain(StreamFactory<S>),
    Merging {
        state: Rc<RefCell<State<S>>>,
        subtask: SubtaskKey,
        checkpoint_id: u64,
        buffer_size: usize,
    },
}

impl<S: Sandbox + 'static> MergingStreamFactory<S> {
    pub fn is_merging(&self) -> bool {
        matches!(self.0, Kind::Merging { .. })
    }

    pub fn create_checkpoint_state_output_stream(&self, scope: StateScope) -> Result<AnyStream<S>> {
        match &self.0 {
            Kind::Plain(f) => f.create_checkpoint_state_output_stream(scope),
            Kind::Merging {
                state,
                subtask,
                checkpoint_id,
                buffer_size,
            } => Ok(AnyStream::Merging(MergingOutputStream::new(
                state.clone(),
                subtask.clone(),
                *checkpoint_id,
                scope,
                *buffer_size,
            ))),
        }
    }

    /// One whole state in one call.
    pub fn write_state(&self, scope: StateScope, data: &[u8]) -> Result<Option<StateHandle>> {
        let mut stream = self.create_checkpoint_state_output_stream(scope)?;
        stream.write(data)?;
        stream.close_and_get_handle()
    }
}
