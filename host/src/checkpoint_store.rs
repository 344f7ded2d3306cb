//! The completed-checkpoint store of one job (Flink's
//! `CompletedCheckpointStore` with `CheckpointsCleaner` and the
//! `SharedStateRegistry`): retains the newest `num-retained` completed
//! checkpoints, subsumes older ones (their exclusive directory and the shared
//! files no retained checkpoint references any more), keeps savepoints, and
//! recovers from what is on storage after a restart.
//!
//! It drives the tenant only through the component (coordinator view,
//! `restore`), so it works for any backend the component supports: paths
//! are compared in their guest form, whether the component spells them as
//! guest paths (filesystem build) or `s3://` URIs (object storage build). A
//! checkpoint's metadata is this project's manifest
//! ([`crate::manifest::CheckpointManifest`]): the store reads it back to learn
//! which shared files a checkpoint references.
//!
//! Order of the steps, chosen so that a crash at any point loses nothing
//! retained and leaves only files the orphan collection ([`crate::gc`])
//! removes: the new checkpoint's references are registered before anything
//! is subsumed; a subsumed checkpoint's `_metadata` goes first, then its
//! directory, then the shared files nobody references.

use crate::coordinator::{CompletedCheckpoint, CoordinatorView};
use crate::error::Error;
use crate::manifest::{CheckpointManifest, ManifestError};
use crate::shared_registry::{Owner, RegistryConflict, SharedFile, SharedStateRegistry};
use crate::tenant::Tenant;
use crate::types::{FileHandle, StateHandle, StorageConfig};
use checkpoint_storage_core::entropy::Entropy;
use checkpoint_storage_core::layout::{
    METADATA_FILE_NAME, NON_PERSISTENT_POINTER, SAVEPOINT_DIR_PREFIX, SHARED_STATE_DIR, checkpoint_dir_name,
    parse_checkpoint_dir_name,
};
use checkpoint_storage_core::object_uri;
use checkpoint_storage_core::paths::{GuestPath, PathError};

/// Flink's option for how many completed checkpoints to retain.
pub const NUM_RETAINED_OPTION: &str = "execution.checkpointing.num-retained";
/// Flink's default of [`NUM_RETAINED_OPTION`].
pub const DEFAULT_NUM_RETAINED: u32 = 1;

/// Largest `_metadata` the store reads into memory: a manifest names its
/// states in JSON, far below this; more means the file is not a manifest.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// What the store was asked to do that it cannot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `num-retained` was 0: a job retains at least its latest completed
    /// checkpoint.
    #[error("{NUM_RETAINED_OPTION} must be at least 1, got {0}: a job keeps at least its latest completed checkpoint")]
    NumRetained(u32),
    /// A call into the tenant failed.
    #[error(transparent)]
    Tenant(#[from] Error),
    /// A checkpoint's `_metadata` is not a readable manifest; the store
    /// does not skip it, since it cannot know which shared files it
    /// references.
    #[error(
        "cannot read the metadata of {pointer}: {source}; the store refuses to guess what it references (move the directory away or restore its _metadata)"
    )]
    Manifest {
        /// External pointer (directory) of the checkpoint.
        pointer: String,
        /// Why the manifest could not be parsed.
        source: ManifestError,
    },
    /// A `_metadata` contradicts where it lies: it is larger than
    /// [`MAX_MANIFEST_BYTES`], or names another checkpoint id than its
    /// `chk-<id>` directory.
    #[error("the metadata of {pointer} {problem}")]
    Mismatch {
        /// External pointer (directory) of the checkpoint.
        pointer: String,
        /// What does not match, as the end of a sentence.
        problem: String,
    },
    /// The checkpoint's directory is neither `chk-<id>` directly in this
    /// store's job directory nor a `savepoint-*` directory.
    #[error(
        "{pointer} is neither a checkpoint directory of job {job} (chk-<id> in its job directory: <checkpoints-dir>/{job}, or the checkpoints directory itself with create-subdir off) nor a savepoint directory (savepoint-*)"
    )]
    NotOfThisJob {
        /// External pointer (directory) of the checkpoint.
        pointer: String,
        /// Id of this store's job.
        job: String,
    },
    /// The manifest names another job than this store's. During recovery a
    /// savepoint of another job is skipped instead.
    #[error("the metadata of {pointer} belongs to job {found}, not to this store's job {job}")]
    OtherJob {
        /// External pointer (directory) of the checkpoint.
        pointer: String,
        /// Job id the manifest names.
        found: String,
        /// Id of this store's job.
        job: String,
    },
    /// A checkpoint with this id (or a savepoint at this pointer) is already
    /// retained.
    #[error("checkpoint {0} is already in the store; a checkpoint is added once")]
    Duplicate(u64),
    /// Registering the checkpoint's shared files contradicts what the
    /// shared-state registry already holds.
    #[error(transparent)]
    Registry(#[from] RegistryConflict),
}

/// Whether a completed checkpoint is a checkpoint or a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointKind {
    /// `<job>/chk-<id>`, or one the job was started from and claimed:
    /// retained up to `num-retained`, then subsumed.
    Checkpoint,
    /// `savepoint-*`: never subsumed, never deleted by the store.
    Savepoint,
    /// The checkpoint or savepoint the job was started from, not claimed
    /// ([`RecoveryClaimMode::NoClaim`]): never subsumed, never deleted, and
    /// the files it names are never deleted by this store.
    Restored,
}

/// How a job takes over the checkpoint or savepoint it is started from
/// (Flink's `execution.state-recovery.claim-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryClaimMode {
    /// Flink's default: the snapshot stays its owner's. This store never
    /// deletes it nor any file it names (the job's first checkpoint should
    /// not build on its files, as Flink makes it a full one).
    #[default]
    NoClaim,
    /// The job owns the snapshot from now on: it is retained like the
    /// job's own checkpoints and subsumed like them, its `_metadata` and
    /// exclusive files deleted by their handles, and the shared files it
    /// names deleted once no retained checkpoint names them.
    Claim,
}

/// A checkpoint or savepoint in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedCheckpoint {
    /// The checkpoint id its manifest names (for a savepoint, the id of the
    /// checkpoint it was taken as).
    pub checkpoint_id: u64,
    /// Checkpoint or savepoint, from where its directory lies.
    pub kind: CheckpointKind,
    /// The completed checkpoint as the component reported it: external
    /// pointer and `_metadata` handle.
    pub checkpoint: CompletedCheckpoint,
    /// Its manifest, relative-file handles resolved in its directory.
    pub manifest: CheckpointManifest,
}

/// A step of subsumption, reported to the observer (logging, crash tests)
/// right after it happened on storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubsumeStep {
    /// Checkpoint `id` left the store; nothing is deleted yet.
    Removed(u64),
    /// Its directory (`_metadata` first) is gone, and with entropy
    /// injection its exclusive state objects (by their handles).
    ExclusiveDiscarded(u64),
    /// A shared file it was the last to reference is gone.
    SharedDiscarded(String),
}

/// What adding a checkpoint did.
#[derive(Debug, Default)]
pub struct AddOutcome {
    /// Checkpoints subsumed, oldest first.
    pub subsumed: Vec<u64>,
    /// Shared files deleted because no retained checkpoint references them.
    pub discarded_shared: Vec<SharedFile>,
    /// Deletions that failed. As Flink's cleaner, a failed discard does not
    /// fail the add: the checkpoint is out of the store either way, and what
    /// stays on storage is left to the orphan collection.
    pub failures: Vec<Error>,
}

/// How a job ends, for [`CompletedCheckpointStore::shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// The job finished: globally terminal, retained checkpoints are
    /// discarded.
    Finished,
    /// The job was cancelled: globally terminal, retained checkpoints are
    /// discarded.
    Canceled,
    /// The job failed for good: globally terminal, retained checkpoints are
    /// discarded.
    Failed,
    /// The job will resume elsewhere (failover, rescale): keep everything.
    Suspended,
}

impl JobStatus {
    /// Flink's `isGloballyTerminalState`.
    pub fn is_globally_terminal(self) -> bool {
        !matches!(self, JobStatus::Suspended)
    }
}

/// The completed checkpoints of one job.
pub struct CompletedCheckpointStore {
    tenant: Tenant,
    view: CoordinatorView,
    job_id: String,
    /// `None` without a checkpoints directory (memory backend): the
    /// checkpoints are kept in memory only, as by Flink's
    /// `StandaloneCompletedCheckpointStore`, and nothing is recovered.
    layout: Option<JobLayout>,
    num_retained: u32,
    /// Oldest first.
    checkpoints: Vec<RetainedCheckpoint>,
    savepoints: Vec<RetainedCheckpoint>,
    registry: SharedStateRegistry,
    /// `shared/` directories of claimed snapshots of other jobs: their
    /// files count as shared state of this job.
    claimed_shared_dirs: Vec<GuestPath>,
    observer: Option<StepObserver>,
}

/// Called after each subsumption step.
type StepObserver = Box<dyn FnMut(&SubsumeStep) + Send>;

impl std::fmt::Debug for CompletedCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletedCheckpointStore")
            .field("job_id", &self.job_id)
            .field("num_retained", &self.num_retained)
            .field("checkpoints", &self.checkpoint_ids())
            .finish_non_exhaustive()
    }
}

impl CompletedCheckpointStore {
    /// Recovers the store of `config`'s job from storage: every completed
    /// checkpoint in the job's directory (none without a checkpoints
    /// directory: the store then keeps what is added in memory only), and
    /// (with `savepoint_dir`, a guest
    /// path) the job's savepoints there. All are retained, even more than
    /// `num_retained` (Flink's recovery too): the next add subsumes down.
    /// A `_metadata` the store cannot read is an error, never skipped.
    pub fn recover(
        tenant: &Tenant,
        config: &StorageConfig,
        savepoint_dir: Option<&str>,
        num_retained: u32,
    ) -> Result<Self, StoreError> {
        if num_retained == 0 {
            return Err(StoreError::NumRetained(num_retained));
        }
        let view = tenant.open_coordinator_view(config, savepoint_dir)?;
        let mut store = CompletedCheckpointStore {
            tenant: tenant.clone(),
            layout: JobLayout::of(config)?,
            job_id: config.job_id.clone(),
            view,
            num_retained,
            checkpoints: vec![],
            savepoints: vec![],
            registry: SharedStateRegistry::new(),
            claimed_shared_dirs: vec![],
            observer: None,
        };
        let mut listed = store.view.list_completed_checkpoints()?;
        listed.reverse(); // oldest first
        for l in listed {
            let retained = store.load(&l.checkpoint)?;
            store.register(&retained)?;
            store.checkpoints.push(retained);
        }
        if savepoint_dir.is_some() {
            for sp in store.view.list_savepoints(None)? {
                let retained = match store.load(&sp) {
                    // Another job whose id starts with the same six characters.
                    Err(StoreError::OtherJob { .. }) => continue,
                    other => other?,
                };
                store.register(&retained)?;
                store.savepoints.push(retained);
            }
        }
        Ok(store)
    }

    /// Calls `observer` after each subsumption step.
    pub fn set_step_observer(&mut self, observer: impl FnMut(&SubsumeStep) + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// `execution.checkpointing.num-retained` of this store.
    pub fn num_retained(&self) -> u32 {
        self.num_retained
    }

    /// The coordinator view the store uses (for creating locations).
    pub fn coordinator_view(&self) -> &CoordinatorView {
        &self.view
    }

    /// Adds a completed checkpoint or savepoint (as returned by
    /// `close-and-finalize-checkpoint` or `resolve-checkpoint`) and
    /// subsumes checkpoints beyond `num-retained`, oldest first. Savepoints
    /// are never subsumed and do not count.
    pub fn add(&mut self, completed: &CompletedCheckpoint) -> Result<AddOutcome, StoreError> {
        let retained = self.load(completed)?;
        self.add_loaded(retained)
    }

    fn add_loaded(&mut self, retained: RetainedCheckpoint) -> Result<AddOutcome, StoreError> {
        let id = retained.checkpoint_id;
        let taken = match retained.kind {
            CheckpointKind::Checkpoint => self.checkpoints.iter().any(|c| c.checkpoint_id == id),
            CheckpointKind::Savepoint | CheckpointKind::Restored => self
                .savepoints
                .iter()
                .any(|c| c.checkpoint.external_pointer == retained.checkpoint.external_pointer),
        };
        if taken {
            return Err(StoreError::Duplicate(id));
        }
        // Register before subsuming: files the new checkpoint shares with
        // the subsumed ones must survive.
        self.register(&retained)?;
        let mut outcome = AddOutcome::default();
        match retained.kind {
            CheckpointKind::Savepoint | CheckpointKind::Restored => self.savepoints.push(retained),
            CheckpointKind::Checkpoint => {
                let at = self.checkpoints.partition_point(|c| c.checkpoint_id < id);
                self.checkpoints.insert(at, retained);
                while self.checkpoints.len() > self.num_retained as usize {
                    let oldest = self.checkpoints.remove(0);
                    self.discard(&oldest, &mut outcome);
                    outcome.subsumed.push(oldest.checkpoint_id);
                }
            }
        }
        Ok(outcome)
    }

    /// Removes retained checkpoint `checkpoint_id` from the store and
    /// discards it with the shared files only it referenced. `None` if it
    /// is not in the store (savepoints are never discarded by the store).
    pub fn discard_checkpoint(&mut self, checkpoint_id: u64) -> Option<AddOutcome> {
        let at = self.checkpoints.iter().position(|c| c.checkpoint_id == checkpoint_id)?;
        let retained = self.checkpoints.remove(at);
        let mut outcome = AddOutcome::default();
        self.discard(&retained, &mut outcome);
        outcome.subsumed.push(checkpoint_id);
        Some(outcome)
    }

    /// Ends the store (Flink's `shutdown`): a globally terminal job
    /// discards every retained checkpoint and the shared files they
    /// referenced; a suspended one keeps everything for recovery. Savepoints
    /// are kept either way.
    pub fn shutdown(mut self, status: JobStatus) -> AddOutcome {
        let mut outcome = AddOutcome::default();
        if status.is_globally_terminal() {
            for c in std::mem::take(&mut self.checkpoints) {
                self.discard(&c, &mut outcome);
                outcome.subsumed.push(c.checkpoint_id);
            }
        }
        outcome
    }

    /// Retained checkpoints and savepoints, newest (highest id) first.
    pub fn checkpoints(&self) -> Vec<&RetainedCheckpoint> {
        let mut all: Vec<_> = self.checkpoints.iter().chain(&self.savepoints).collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.checkpoint_id));
        all
    }

    /// Ids of the retained checkpoints (not savepoints), oldest first.
    pub fn checkpoint_ids(&self) -> Vec<u64> {
        self.checkpoints.iter().map(|c| c.checkpoint_id).collect()
    }

    /// The newest checkpoint or savepoint (Flink's `getLatestCheckpoint`,
    /// which includes savepoints).
    pub fn latest(&self) -> Option<&RetainedCheckpoint> {
        self.checkpoints
            .iter()
            .chain(&self.savepoints)
            .max_by_key(|c| c.checkpoint_id)
    }

    /// The newest retained checkpoint, savepoints left out.
    pub fn latest_checkpoint(&self) -> Option<&RetainedCheckpoint> {
        self.checkpoints.last()
    }

    /// The shared-state registry (read only).
    pub fn registry(&self) -> &SharedStateRegistry {
        &self.registry
    }

    fn step(&mut self, step: SubsumeStep) {
        tracing::debug!(job = %self.job_id, ?step, "subsumption step");
        if let Some(observer) = &mut self.observer {
            observer(&step);
        }
    }

    /// Discards a checkpoint that already left `self.checkpoints`.
    fn discard(&mut self, retained: &RetainedCheckpoint, outcome: &mut AddOutcome) {
        let checkpoint_id = retained.checkpoint_id;
        self.step(SubsumeStep::Removed(checkpoint_id));
        let own = self
            .layout
            .as_ref()
            .filter(|l| l.is_checkpoint_dir(&retained.checkpoint.external_pointer, checkpoint_id));
        let exclusive = if let Some(layout) = own {
            if let Err(e) = self.view.discard_completed_checkpoint(checkpoint_id) {
                // Its `_metadata` may still be there, naming the shared files:
                // they stay (registered to it) until a later recovery or the
                // orphan collection finds the checkpoint gone.
                outcome.failures.push(e);
                return;
            }
            // With entropy injection its exclusive state objects are not
            // below its directory: each goes with its handle (as in Flink).
            layout.exclusive_outside_dir(&retained.manifest, checkpoint_id)
        } else {
            // A claimed snapshot of another job or directory, or a
            // checkpoint kept in memory (its inline metadata needs no
            // discard): `_metadata` first; its files are claimed shared state and go through the
            // registry below once no retained checkpoint names them (its
            // directory stays, emptied, for the orphan collection).
            if let Err(e) = self.tenant.discard_state(&retained.checkpoint.metadata) {
                outcome.failures.push(e);
                return;
            }
            vec![]
        };
        // One that fails to go is left for the orphan collection; `_metadata`
        // is gone.
        for handle in exclusive {
            if let Err(e) = self.tenant.discard_state(handle) {
                outcome.failures.push(e);
            }
        }
        self.step(SubsumeStep::ExclusiveDiscarded(checkpoint_id));
        for file in self.registry.release(&Owner::Checkpoint(checkpoint_id)) {
            let handle = StateHandle::File(FileHandle {
                path: file.path.clone(),
                size: file.size,
            });
            match self.tenant.discard_state(&handle) {
                Ok(()) => {
                    self.step(SubsumeStep::SharedDiscarded(file.path.clone()));
                    outcome.discarded_shared.push(file);
                }
                Err(e) => outcome.failures.push(e),
            }
        }
    }

    fn register(&mut self, c: &RetainedCheckpoint) -> Result<(), StoreError> {
        let owner = match c.kind {
            CheckpointKind::Checkpoint => Owner::Checkpoint(c.checkpoint_id),
            CheckpointKind::Savepoint | CheckpointKind::Restored => {
                Owner::Savepoint(c.checkpoint.external_pointer.clone())
            }
        };
        let shared_dir = self
            .layout
            .as_ref()
            .map(|l| (l, l.marked_job_dir.join(SHARED_STATE_DIR)));
        let files = shared_files_where(&c.manifest, |p| {
            shared_dir.as_ref().is_some_and(|(l, dir)| l.is_in(dir, p))
                || p.parent().is_some_and(|d| self.claimed_shared_dirs.contains(&d))
        });
        Ok(self.registry.register(&owner, &files)?)
    }

    /// Adds the checkpoint or savepoint the job was started from (Flink's
    /// restore, `execution.state-recovery.claim-mode`), from any job and any
    /// directory of the tenant. With [`RecoveryClaimMode::NoClaim`] it is
    /// kept as [`CheckpointKind::Restored`]: never subsumed, nothing it names
    /// ever deleted. With [`RecoveryClaimMode::Claim`] it joins the retained
    /// checkpoints (and may subsume older ones at once); the shared files in
    /// its job's `shared/` count as this job's from now on, so checkpoints
    /// that build on them keep them. The manifest must be readable; its job
    /// id may differ from this store's.
    pub fn add_restored(
        &mut self,
        completed: &CompletedCheckpoint,
        mode: RecoveryClaimMode,
    ) -> Result<AddOutcome, StoreError> {
        let mut restored = self.load_any(completed)?;
        let dir = parse_path(&restored.checkpoint.external_pointer).expect("checked by load_any");
        let retained = |c: &RetainedCheckpoint| parse_path(&c.checkpoint.external_pointer).ok();
        if self
            .checkpoints()
            .into_iter()
            .any(|c| retained(c).as_ref() == Some(&dir))
        {
            return Err(StoreError::Duplicate(restored.checkpoint_id));
        }
        match mode {
            RecoveryClaimMode::NoClaim => {
                restored.kind = CheckpointKind::Restored;
                self.register(&restored)?;
                self.savepoints.push(restored);
                Ok(AddOutcome::default())
            }
            RecoveryClaimMode::Claim => {
                // Files in its directory and in its job's `shared/` become
                // this job's shared state, deleted only when no retained
                // checkpoint names them; the retained ones are registered
                // again so that their references to those files count
                // (after a restart they were read before the claim).
                let before = self.claimed_shared_dirs.len();
                for claimed in [Some(dir.clone()), dir.parent().map(|job| job.join(SHARED_STATE_DIR))]
                    .into_iter()
                    .flatten()
                {
                    if !self.claimed_shared_dirs.contains(&claimed) {
                        self.claimed_shared_dirs.push(claimed);
                    }
                }
                restored.kind = CheckpointKind::Checkpoint;
                let result = self.register_all_again().and_then(|()| self.add_loaded(restored));
                if result.is_err() {
                    self.claimed_shared_dirs.truncate(before);
                }
                result
            }
        }
    }

    /// Registers every retained checkpoint and savepoint again (idempotent;
    /// picks up files that count as shared since).
    fn register_all_again(&mut self) -> Result<(), StoreError> {
        let all: Vec<RetainedCheckpoint> = self.checkpoints.iter().chain(&self.savepoints).cloned().collect();
        all.iter().try_for_each(|c| self.register(c))
    }

    /// Reads the manifest of a snapshot the job was started from, wherever
    /// it lies and whichever job wrote it.
    /// Its `_metadata` must be the one in its directory, and a `chk-<id>`
    /// directory must hold checkpoint `id`.
    fn load_any(&self, completed: &CompletedCheckpoint) -> Result<RetainedCheckpoint, StoreError> {
        let pointer = &completed.external_pointer;
        let mismatch = |problem: String| StoreError::Mismatch {
            pointer: pointer.clone(),
            problem,
        };
        let dir = parse_path(pointer).map_err(|e| mismatch(format!("is not a path: {e}")))?;
        let metadata = completed.metadata.file_path().and_then(|raw| parse_path(raw).ok());
        if metadata.as_ref() != Some(&dir.join(METADATA_FILE_NAME)) {
            return Err(mismatch(format!(
                "is not where its metadata handle points ({:?}); a snapshot's metadata is its directory's {METADATA_FILE_NAME}",
                completed.metadata.file_path()
            )));
        }
        let manifest = self.read_manifest(completed)?;
        if let Some(id) =
            parse_checkpoint_dir_name(dir.file_name().unwrap_or_default()).filter(|id| *id != manifest.checkpoint_id)
        {
            return Err(mismatch(format!(
                "names checkpoint {}, but its directory is that of checkpoint {id}",
                manifest.checkpoint_id
            )));
        }
        Ok(RetainedCheckpoint {
            checkpoint_id: manifest.checkpoint_id,
            kind: CheckpointKind::Checkpoint,
            checkpoint: completed.clone(),
            manifest,
        })
    }

    /// The manifest in a completed checkpoint's `_metadata`, relative-file
    /// handles resolved in its directory.
    fn read_manifest(&self, completed: &CompletedCheckpoint) -> Result<CheckpointManifest, StoreError> {
        let pointer = &completed.external_pointer;
        let size = completed.metadata.state_size();
        if size > MAX_MANIFEST_BYTES {
            return Err(StoreError::Mismatch {
                pointer: pointer.clone(),
                problem: format!(
                    "is {size} bytes, more than the {MAX_MANIFEST_BYTES} bytes a manifest may have; it is not a checkpoint manifest"
                ),
            });
        }
        let bytes = self.tenant.read_state(&completed.metadata)?;
        CheckpointManifest::from_json_in(&bytes, pointer).map_err(|source| StoreError::Manifest {
            pointer: pointer.clone(),
            source,
        })
    }

    /// Reads and checks the manifest of a completed checkpoint.
    fn load(&self, completed: &CompletedCheckpoint) -> Result<RetainedCheckpoint, StoreError> {
        let pointer = completed.external_pointer.clone();
        let not_ours = || StoreError::NotOfThisJob {
            pointer: pointer.clone(),
            job: self.job_id.clone(),
        };
        let (kind, dir_id) = match &self.layout {
            // Kept in memory: the metadata is the only trace, and it must
            // be inline (a file handle here would be discarded with it).
            None if pointer == NON_PERSISTENT_POINTER => match completed.metadata {
                StateHandle::ByteStream(_) => (CheckpointKind::Checkpoint, None),
                _ => {
                    return Err(StoreError::Mismatch {
                        pointer,
                        problem: "is a checkpoint kept in memory, but its metadata is not inline".into(),
                    });
                }
            },
            layout => {
                let dir = parse_path(&pointer).map_err(|_| not_ours())?;
                let name = dir.file_name().unwrap_or_default();
                // A savepoint may sit in the job's directory too (with
                // `create-subdir` off that is the checkpoints directory).
                let in_job_dir = layout
                    .as_ref()
                    .is_some_and(|l| dir.parent().as_ref() == Some(&l.job_dir));
                match parse_checkpoint_dir_name(name) {
                    Some(id) if in_job_dir => (CheckpointKind::Checkpoint, Some(id)),
                    _ if name.starts_with(SAVEPOINT_DIR_PREFIX) => (CheckpointKind::Savepoint, None),
                    _ => return Err(not_ours()),
                }
            }
        };
        let manifest = self.read_manifest(completed)?;
        if manifest.job_id != self.job_id {
            return Err(StoreError::OtherJob {
                pointer,
                found: manifest.job_id,
                job: self.job_id.clone(),
            });
        }
        if let Some(id) = dir_id.filter(|id| *id != manifest.checkpoint_id) {
            return Err(StoreError::Mismatch {
                pointer,
                problem: format!(
                    "names checkpoint {}, but its directory is that of checkpoint {id}",
                    manifest.checkpoint_id
                ),
            });
        }
        Ok(RetainedCheckpoint {
            checkpoint_id: manifest.checkpoint_id,
            kind,
            checkpoint: completed.clone(),
            manifest,
        })
    }
}

/// The files of a manifest directly in the job's `shared/` directory: the
/// state the registry counts. Exclusive state goes with its checkpoint's
/// directory; task-owned state belongs to the task side and is never
/// deleted by the store (as in Flink).
pub fn shared_files(manifest: &CheckpointManifest, shared_dir: &GuestPath) -> Vec<SharedFile> {
    shared_files_where(manifest, |p| p.parent().as_ref() == Some(shared_dir))
}

/// The files of a manifest whose guest path passes `in_shared_dir`.
fn shared_files_where(manifest: &CheckpointManifest, in_shared_dir: impl Fn(&GuestPath) -> bool) -> Vec<SharedFile> {
    let mut files: Vec<SharedFile> = manifest
        .states
        .iter()
        .filter_map(|s| {
            let raw = s.handle.file_path()?;
            let path = parse_path(raw).ok()?;
            in_shared_dir(&path).then(|| SharedFile {
                // Spelled as the component spells it, so that it can be
                // handed back to the component to discard.
                path: if is_object_uri(raw) {
                    object_uri::from_guest(path.as_str())
                } else {
                    path.to_string()
                },
                size: s.handle.state_size(),
            })
        })
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Where a job's files are, in guest form. With entropy injection
/// (`s3-entropy-key`), `_metadata` and the `chk-<id>` directories the
/// pointers name are below the job directory without the marker, while
/// state objects are below it with random characters in place of the
/// marker; each is matched by what the component wrote.
#[derive(Debug)]
struct JobLayout {
    /// `<checkpoints-dir>/<job>` without the marker: pointers and `_metadata`.
    job_dir: GuestPath,
    /// `<checkpoints-dir>/<job>` as configured (the marker in it, if any):
    /// the template of the state objects' directories.
    marked_job_dir: GuestPath,
    entropy: Option<Entropy>,
}

impl JobLayout {
    /// `None` without a checkpoints directory.
    fn of(config: &StorageConfig) -> Result<Option<Self>, StoreError> {
        let invalid = |message: String| {
            StoreError::Tenant(Error::from(crate::StorageError {
                code: crate::ErrorCode::InvalidArgument,
                message,
            }))
        };
        let Some(checkpoints_dir) = &config.checkpoints_dir else {
            return Ok(None);
        };
        let subdir_off = checkpoint_storage_core::layout::job_subdir_off(
            config.create_subdir,
            config.backend == crate::Backend::Filesystem,
        );
        let marked_job_dir = checkpoint_storage_core::layout::job_directory(
            &parse_path(checkpoints_dir).map_err(|e| invalid(e.to_string()))?,
            &config.job_id,
            subdir_off,
        );
        let entropy = Entropy::from_options(config.s3_entropy_key.as_deref(), config.s3_entropy_length)
            .map_err(|e| invalid(e.message))?;
        let job_dir = match &entropy {
            Some(e) => GuestPath::parse(&e.remove(marked_job_dir.as_str())).map_err(|e| invalid(e.to_string()))?,
            None => marked_job_dir.clone(),
        };
        Ok(Some(JobLayout {
            job_dir,
            marked_job_dir,
            entropy,
        }))
    }

    /// Whether `path` lies directly in `template` (a directory below
    /// [`Self::marked_job_dir`]) or in a form of it with entropy injected.
    fn is_in(&self, template: &GuestPath, path: &GuestPath) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        match &self.entropy {
            Some(e) => e.is_injected_form_of(template.as_str(), parent.as_str()),
            None => parent == *template,
        }
    }

    /// Whether `pointer` is this job's `chk-<id>` directory.
    fn is_checkpoint_dir(&self, pointer: &str, id: u64) -> bool {
        parse_path(pointer).is_ok_and(|dir| dir == self.job_dir.join(&checkpoint_dir_name(id)))
    }

    /// The exclusive state of checkpoint `id` that its directory does not
    /// hold (so the directory's discard does not take it): with entropy
    /// injection, every exclusive state object. Empty otherwise.
    fn exclusive_outside_dir<'a>(&self, manifest: &'a CheckpointManifest, id: u64) -> Vec<&'a StateHandle> {
        if self.marked_job_dir == self.job_dir {
            return vec![];
        }
        let name = checkpoint_dir_name(id);
        let (template, dir) = (self.marked_job_dir.join(&name), self.job_dir.join(&name));
        manifest
            .states
            .iter()
            .map(|s| &s.handle)
            .filter(|h| {
                h.file_path()
                    .and_then(|raw| parse_path(raw).ok())
                    .is_some_and(|p| self.is_in(&template, &p) && p.parent().as_ref() != Some(&dir))
            })
            .collect()
    }
}

/// A path as the component gives or takes it (a guest path, a `file:` URI,
/// or an `s3://` URI in the object storage build) in its guest form.
fn parse_path(raw: &str) -> Result<GuestPath, PathError> {
    GuestPath::parse(&object_uri::to_guest(raw))
}

/// Whether `raw` is an object store URI (its guest form differs).
fn is_object_uri(raw: &str) -> bool {
    object_uri::to_guest(raw) != raw
}
