//! The job-manager side (Flink's `CheckpointStorageCoordinatorView` of
//! `FsCheckpointStorageAccess` / `MemoryBackendCheckpointStorageAccess`):
//! creating base, checkpoint and savepoint locations, writing `_metadata`,
//! resolving checkpoint pointers, disposing failed checkpoints.

use crate::access::{check_checkpoint_id, job_dir_of, needs_checkpoints_dir, validate_config};
use crate::completed;
use crate::config::{Backend, StorageConfig, ValidConfig};
use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::StateHandle;
use crate::layout::{
    METADATA_FILE_NAME, NON_PERSISTENT_POINTER, SAVEPOINT_DIR_PREFIX, SHARED_STATE_DIR, TASK_OWNED_STATE_DIR,
    TEMP_METADATA_FILE_PREFIX, checkpoint_dir_name,
};
use crate::paths::GuestPath;
use crate::reference::{LocationReference, hex};
use crate::sandbox::{EntryKind, FsErrorKind, Sandbox, SandboxExt, StateFile};
use std::rc::Rc;

/// Flink's number of attempts to find an unused savepoint directory name.
const SAVEPOINT_ATTEMPTS: usize = 10;

/// A finished checkpoint: its directory and its metadata file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    pub external_pointer: String,
    pub metadata: StateHandle,
}

/// A job's coordinator view.
pub struct CoordinatorView<S: Sandbox> {
    sandbox: Rc<S>,
    config: ValidConfig,
    /// `None` without a checkpoints directory (memory backend): nothing
    /// of a checkpoint is persisted.
    job_dir: Option<GuestPath>,
    default_savepoint_dir: Option<GuestPath>,
}

/// Parses a directory argument that must lie inside the sandbox.
fn directory_argument<S: Sandbox>(sandbox: &S, what: &str, raw: &str) -> Result<GuestPath> {
    let path =
        GuestPath::parse(raw).map_err(|e| StorageError::invalid_argument(format!("Invalid {what} '{raw}': {e}.")))?;
    if !sandbox.contains(&path) {
        return Err(StorageError::invalid_argument(format!(
            "The {what} '{path}' is outside this tenant's directory; use a path below the directory the host mounted (e.g. /checkpoints)."
        )));
    }
    Ok(path)
}

impl<S: Sandbox> CoordinatorView<S> {
    pub fn open(sandbox: Rc<S>, config: &StorageConfig, default_savepoint_dir: Option<&str>) -> Result<Self> {
        let config = validate_config(&*sandbox, config)?;
        let default_savepoint_dir = default_savepoint_dir
            .map(|d| directory_argument(&*sandbox, "default savepoint directory", d))
            .transpose()?;
        let job_dir = job_dir_of(&config);
        Ok(CoordinatorView {
            sandbox,
            config,
            job_dir,
            default_savepoint_dir,
        })
    }

    /// `dir` with the entropy marker removed (Flink's
    /// `removeEntropyMarkerIfPresent`); `dir` itself without entropy.
    fn without_entropy_marker(&self, dir: &GuestPath) -> Result<GuestPath> {
        match &self.config.entropy {
            Some(e) if e.is_injecting(dir.as_str()) => {
                crate::access::entropy_path(&*self.sandbox, &e.remove(dir.as_str()))
            }
            _ => Ok(dir.clone()),
        }
    }

    pub fn has_default_savepoint_location(&self) -> bool {
        self.default_savepoint_dir.is_some()
    }

    /// Flink's `supportsHighlyAvailableStorage`: completed checkpoints are
    /// persisted (there is a checkpoints directory).
    pub fn supports_highly_available_storage(&self) -> bool {
        self.job_dir.is_some()
    }

    /// Creates `shared/` and `taskowned/` (filesystem backend only).
    pub fn initialize_base_locations_for_checkpoint(&self) -> Result<()> {
        crate::access::refuse_if_read_only(&*self.sandbox, "initialize checkpoint locations")?;
        if self.config.backend == Backend::Memory {
            return Ok(());
        }
        for (dir, what) in [
            (SHARED_STATE_DIR, "shared state"),
            (TASK_OWNED_STATE_DIR, "task owned state"),
        ] {
            let path = needs_checkpoints_dir(&self.job_dir)?.join(dir);
            self.sandbox
                .create_dir_all(&path)
                .map_err(|e| StorageError::from_fs(format!("Failed to create directory for {what}: {path}"), &e))?;
        }
        Ok(())
    }

    /// Creates `chk-<id>` and returns its location (default reference).
    /// Without a checkpoints directory nothing is created: the location
    /// keeps its metadata in memory (Flink's
    /// `NonPersistentMetadataCheckpointStorageLocation`).
    pub fn initialize_location_for_checkpoint(&self, checkpoint_id: u64) -> Result<Location<S>> {
        check_checkpoint_id(checkpoint_id)?;
        // A read-only tenant restores and never checkpoints, whether or not
        // the checkpoint would be written (as its state streams).
        crate::access::refuse_if_read_only(&*self.sandbox, "initialize a checkpoint location")?;
        let Some(job_dir) = &self.job_dir else {
            return Ok(Location {
                sandbox: self.sandbox.clone(),
                place: None,
                reference: LocationReference::Default,
            });
        };
        let dir = job_dir.join(&checkpoint_dir_name(checkpoint_id));
        self.sandbox
            .create_dir_all(&dir)
            .map_err(|e| StorageError::from_fs(format!("Failed to create checkpoint directory {dir}"), &e))?;
        Ok(Location {
            sandbox: self.sandbox.clone(),
            place: Some(Place {
                metadata_dir: self.without_entropy_marker(&dir)?,
                dir,
            }),
            reference: LocationReference::Default,
        })
    }

    /// Creates `savepoint-<job[..6]>-<12 hex>` below the target or default
    /// directory, retrying on name clashes as Flink does.
    pub fn initialize_location_for_savepoint(&self, checkpoint_id: u64, target: Option<&str>) -> Result<Location<S>> {
        check_checkpoint_id(checkpoint_id)?;
        crate::access::refuse_if_read_only(&*self.sandbox, "initialize a savepoint location")?;
        let base = match (target, &self.default_savepoint_dir) {
            (Some(t), _) => directory_argument(&*self.sandbox, "savepoint target directory", t)?,
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err(StorageError::invalid_argument(
                    "No savepoint location given and no default location configured.",
                ));
            }
        };
        self.sandbox
            .create_dir_all(&base)
            .map_err(|e| StorageError::from_fs(format!("Failed to create savepoint directory at {base}"), &e))?;
        let prefix = format!("{SAVEPOINT_DIR_PREFIX}{}-", &self.config.job_id.as_str()[..6]);
        let mut latest = None;
        for _ in 0..SAVEPOINT_ATTEMPTS {
            let random = self.sandbox.random_bytes();
            let dir = base.join(&format!("{prefix}{}", &hex(&random[..6])));
            match self.sandbox.create_dir(&dir) {
                Ok(()) => {
                    let reference = match self.config.backend {
                        // The memory backend inlines all task state: its
                        // savepoints use the default reference (as Flink).
                        Backend::Memory => LocationReference::Default,
                        Backend::Filesystem => LocationReference::encode_path(dir.as_str()),
                    };
                    return Ok(Location {
                        sandbox: self.sandbox.clone(),
                        place: Some(Place {
                            metadata_dir: self.without_entropy_marker(&dir)?,
                            dir,
                        }),
                        reference,
                    });
                }
                Err(e) => latest = Some(e),
            }
        }
        let e = latest.expect("at least one attempt");
        Err(StorageError::from_fs(
            format!("Failed to create savepoint directory at {base}"),
            &e,
        ))
    }

    /// Finds a completed checkpoint from its directory or metadata file.
    pub fn resolve_checkpoint(&self, pointer: &str) -> Result<CompletedCheckpoint> {
        resolve_checkpoint_pointer(&*self.sandbox, pointer)
    }

    /// The job's completed checkpoints, newest first. With entropy
    /// injection they are where their `_metadata` is: below the job
    /// directory without the marker.
    pub fn list_completed_checkpoints(&self) -> Result<Vec<completed::ListedCheckpoint>> {
        match &self.job_dir {
            Some(job_dir) => {
                completed::list_completed_checkpoints(&*self.sandbox, &self.without_entropy_marker(job_dir)?)
            }
            // Nothing is persisted without a checkpoints directory.
            None => Ok(Vec::new()),
        }
    }

    /// The job's completed savepoints in `dir` (or the default savepoint
    /// directory); without either: `invalid-argument`.
    pub fn list_savepoints(&self, dir: Option<&str>) -> Result<Vec<CompletedCheckpoint>> {
        let dir = match (dir, &self.default_savepoint_dir) {
            (Some(d), _) => directory_argument(&*self.sandbox, "savepoint directory", d)?,
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err(StorageError::invalid_argument(
                    "No savepoint directory given and no default savepoint directory configured; pass the directory to list.",
                ));
            }
        };
        completed::list_savepoints(&*self.sandbox, &dir, self.config.job_id.as_str())
    }

    /// Deletes the directory of a completed checkpoint, `_metadata` first.
    /// With entropy injection that is the directory without the marker
    /// (where `_metadata` is); the state objects carry random characters
    /// instead and go with their handles, as in Flink.
    pub fn discard_completed_checkpoint(&self, checkpoint_id: u64) -> Result<()> {
        check_checkpoint_id(checkpoint_id)?;
        crate::access::refuse_if_read_only(&*self.sandbox, "discard a completed checkpoint")?;
        let Some(job_dir) = &self.job_dir else {
            // Nothing was stored (Flink's non-persistent location disposes
            // of nothing).
            return Ok(());
        };
        let job_dir = self.without_entropy_marker(job_dir)?;
        completed::discard_completed_checkpoint(&*self.sandbox, &job_dir, checkpoint_id)
    }
}

/// Flink's `resolveCheckpointPointer`, with its error texts.
pub fn resolve_checkpoint_pointer<S: Sandbox>(sandbox: &S, pointer: &str) -> Result<CompletedCheckpoint> {
    if pointer.is_empty() {
        return Err(StorageError::invalid_argument("empty checkpoint pointer"));
    }
    if pointer == NON_PERSISTENT_POINTER {
        return Err(StorageError::new(
            ErrorCode::NotFound,
            format!(
                "The checkpoint '{pointer}' was kept in memory only (memory backend without a checkpoints directory): nothing was persisted that could be resolved. Configure a checkpoints directory to resolve checkpoints later."
            ),
        ));
    }
    let path = GuestPath::parse(pointer).map_err(|e| {
        StorageError::invalid_argument(format!(
            "Checkpoint/savepoint path '{pointer}' is not a valid file URI. Either the pointer path is invalid, or the checkpoint was created by a different state backend. ({e})"
        ))
    })?;
    if !sandbox.contains(&path) {
        return Err(StorageError::invalid_argument(format!(
            "Checkpoint/savepoint path '{path}' is outside this tenant's directory."
        )));
    }
    let not_found = || {
        StorageError::new(
            ErrorCode::NotFound,
            format!("Cannot find checkpoint or savepoint file/directory '{pointer}' on file system 'file'."),
        )
    };
    let stat = match sandbox.stat(&path) {
        Ok(s) => s,
        Err(e) if e.kind == FsErrorKind::NotFound => return Err(not_found()),
        Err(e) => {
            return Err(StorageError::from_fs(
                format!("Cannot access checkpoint/savepoint path '{path}'"),
                &e,
            ));
        }
    };
    let (dir, metadata) = match stat.kind {
        EntryKind::Directory => {
            let metadata = path.join(METADATA_FILE_NAME);
            match sandbox.stat(&metadata) {
                Ok(s) if s.kind == EntryKind::File => (path, (metadata, s.size)),
                Ok(_) | Err(_) => {
                    return Err(StorageError::new(
                        ErrorCode::NotFound,
                        format!(
                            "Cannot find meta data file '{METADATA_FILE_NAME}' in directory '{path}'. Please try to load the checkpoint/savepoint directly from the metadata file instead of the directory."
                        ),
                    ));
                }
            }
        }
        EntryKind::File => (path.parent().expect("a file has a parent"), (path, stat.size)),
        _ => {
            return Err(StorageError::invalid_argument(format!(
                "Checkpoint/savepoint path '{path}' is neither a directory nor a regular file."
            )));
        }
    };
    Ok(CompletedCheckpoint {
        external_pointer: dir.to_string(),
        metadata: StateHandle::File {
            path: metadata.0.to_string(),
            size: metadata.1,
        },
    })
}

/// The location of one checkpoint or savepoint.
pub struct Location<S: Sandbox> {
    sandbox: Rc<S>,
    /// `None`: the metadata stays in memory (no checkpoints directory).
    place: Option<Place>,
    reference: LocationReference,
}

/// Where a persisted location's files go.
struct Place {
    dir: GuestPath,
    /// Where `_metadata` goes: `dir` without the entropy marker (the same
    /// directory without entropy injection), so that the checkpoint is
    /// found from its pointer alone.
    metadata_dir: GuestPath,
}

impl<S: Sandbox> Location<S> {
    pub fn location_reference(&self) -> &LocationReference {
        &self.reference
    }

    fn place(&self) -> Result<&Place> {
        self.place.as_ref().ok_or_else(|| {
            StorageError::new(
                ErrorCode::Unsupported,
                "This checkpoint location keeps its metadata in memory (memory backend without a checkpoints directory): it has no directory and no metadata file.",
            )
        })
    }

    pub fn checkpoint_directory(&self) -> Result<&GuestPath> {
        Ok(&self.place()?.dir)
    }

    pub fn metadata_file_path(&self) -> Result<GuestPath> {
        Ok(self.place()?.metadata_dir.join(METADATA_FILE_NAME))
    }

    /// A metadata stream; refused if `_metadata` already exists. Without a
    /// directory the bytes stay in memory.
    pub fn create_metadata_output_stream(&self) -> Result<MetadataOutputStream<S>> {
        crate::access::refuse_if_read_only(&*self.sandbox, "write checkpoint metadata")?;
        let Some(place) = &self.place else {
            return Ok(MetadataOutputStream::Memory(MemoryMetadataStream {
                sandbox: self.sandbox.clone(),
                bytes: Some(Vec::new()),
                len: 0,
            }));
        };
        let target = place.metadata_dir.join(METADATA_FILE_NAME);
        match self.sandbox.stat(&target) {
            Err(e) if e.kind == FsErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::from_fs(format!("Could not check {target}"), &e)),
            Ok(_) => {
                return Err(StorageError::new(
                    ErrorCode::AlreadyExists,
                    format!("The metadata file {target} already exists; a checkpoint's metadata is written once."),
                ));
            }
        }
        let temp = place
            .metadata_dir
            .join(&format!("{TEMP_METADATA_FILE_PREFIX}-{}", self.sandbox.random_uuid()));
        let file = self.sandbox.create_new(&temp).map_err(|e| {
            StorageError::from_fs(
                format!("Could not create the metadata file in {}", place.metadata_dir),
                &e,
            )
        })?;
        Ok(MetadataOutputStream::File(FileMetadataStream {
            sandbox: self.sandbox.clone(),
            dir: place.metadata_dir.clone(),
            temp,
            target,
            file: Some(file),
            pos: 0,
        }))
    }

    /// Deletes the checkpoint directory recursively (gone already: fine).
    /// A completed checkpoint (its `_metadata` exists) is refused. Nothing
    /// to do without a directory.
    pub fn dispose_on_failure(&self) -> Result<()> {
        let Some(place) = &self.place else {
            return Ok(());
        };
        crate::access::refuse_if_read_only(&*self.sandbox, "dispose a checkpoint location")?;
        completed::refuse_if_completed(&*self.sandbox, &place.metadata_dir)?;
        // With entropy injection the marker directory holds nothing (state
        // objects carry random characters instead, and go with their
        // handles, as in Flink); the marker-free one may hold a temporary
        // metadata object.
        let mut dirs = vec![&place.dir];
        if place.metadata_dir != place.dir {
            dirs.push(&place.metadata_dir);
        }
        for dir in dirs {
            match self.sandbox.remove_dir_all(dir) {
                Err(e) if e.kind == FsErrorKind::NotFound => {}
                other => other.map_err(|e| StorageError::from_fs(format!("Could not dispose {dir}"), &e))?,
            }
        }
        Ok(())
    }
}

/// Writes a checkpoint's metadata (Flink's `CheckpointMetadataOutputStream`).
pub enum MetadataOutputStream<S: Sandbox> {
    /// `_metadata` in the checkpoint's directory.
    File(FileMetadataStream<S>),
    /// In memory, returned inline (no checkpoints directory).
    Memory(MemoryMetadataStream<S>),
}

impl<S: Sandbox> MetadataOutputStream<S> {
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            MetadataOutputStream::File(f) => f.write(data),
            MetadataOutputStream::Memory(m) => m.write(data),
        }
    }

    pub fn pos(&self) -> u64 {
        match self {
            MetadataOutputStream::File(f) => f.pos(),
            MetadataOutputStream::Memory(m) => m.len,
        }
    }

    pub fn sync(&mut self) -> Result<()> {
        match self {
            MetadataOutputStream::File(f) => f.sync(),
            // Nothing to make durable (Flink: a no-op).
            MetadataOutputStream::Memory(_) => Ok(()),
        }
    }

    pub fn close_and_finalize_checkpoint(&mut self) -> Result<CompletedCheckpoint> {
        match self {
            MetadataOutputStream::File(f) => f.close_and_finalize_checkpoint(),
            MetadataOutputStream::Memory(m) => m.close_and_finalize_checkpoint(),
        }
    }
}

/// Flink's non-persistent metadata stream: the bytes are kept and returned
/// as a byte-stream handle under the pointer
/// `<checkpoint-not-externally-addressable>`. No size limit of its own, as
/// Flink's: the bytes live in the component's memory, so they count
/// against the tenant's memory cap.
pub struct MemoryMetadataStream<S: Sandbox> {
    /// For the handle's name.
    sandbox: Rc<S>,
    /// `None` once finalized.
    bytes: Option<Vec<u8>>,
    /// Bytes written, also after finalizing (Flink's `getPos`).
    len: u64,
}

impl<S: Sandbox> MemoryMetadataStream<S> {
    fn open_bytes(&mut self) -> Result<&mut Vec<u8>> {
        self.bytes
            .as_mut()
            .ok_or_else(|| StorageError::closed("The metadata stream is already closed."))
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.open_bytes()?.extend_from_slice(data);
        self.len += data.len() as u64;
        Ok(())
    }

    fn close_and_finalize_checkpoint(&mut self) -> Result<CompletedCheckpoint> {
        let data = std::mem::take(self.open_bytes()?);
        self.bytes = None;
        Ok(CompletedCheckpoint {
            external_pointer: NON_PERSISTENT_POINTER.to_string(),
            metadata: StateHandle::ByteStream {
                name: self.sandbox.random_uuid().as_str().to_owned(),
                data,
            },
        })
    }
}

/// Writes `_metadata` through a temporary file published on finalize.
pub struct FileMetadataStream<S: Sandbox> {
    sandbox: Rc<S>,
    dir: GuestPath,
    temp: GuestPath,
    target: GuestPath,
    /// `None` once finalized or failed.
    file: Option<S::File>,
    pos: u64,
}

impl<S: Sandbox> FileMetadataStream<S> {
    fn open_file(&mut self) -> Result<&mut S::File> {
        self.file
            .as_mut()
            .ok_or_else(|| StorageError::closed("The metadata stream is already closed."))
    }

    /// Ends the stream after a failure: the temporary file goes away.
    fn fail(&mut self, e: StorageError) -> StorageError {
        if self.file.take().is_some() {
            let _ = self.sandbox.remove_file(&self.temp);
        }
        e
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let pos = self.pos;
        let r = self.open_file()?.write_all_at(data, pos);
        r.map_err(|e| {
            let e = StorageError::from_fs(format!("Could not write metadata to {}", self.temp), &e);
            self.fail(e)
        })?;
        self.pos += data.len() as u64;
        Ok(())
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn sync(&mut self) -> Result<()> {
        let r = self.open_file()?.sync_data();
        r.map_err(|e| {
            let e = StorageError::from_fs(format!("Could not sync {}", self.temp), &e);
            self.fail(e)
        })
    }

    /// Syncs, then publishes the file as `_metadata` with a hard link
    /// (atomic and never overwriting), then removes the temporary name.
    pub fn close_and_finalize_checkpoint(&mut self) -> Result<CompletedCheckpoint> {
        self.sync()?;
        let r = self.open_file()?.complete();
        r.map_err(|e| {
            let e = StorageError::from_fs(format!("Could not complete {}", self.temp), &e);
            self.fail(e)
        })?;
        self.file = None;
        if let Err(e) = self.sandbox.hard_link(&self.temp, &self.target) {
            let _ = self.sandbox.remove_file(&self.temp);
            let mut err = StorageError::from_fs(format!("Could not publish the metadata file {}", self.target), &e);
            if err.code == ErrorCode::AlreadyExists {
                err.message
                    .push_str(" (another writer finalized this checkpoint first)");
            }
            return Err(err);
        }
        // The metadata is published; a leftover temporary name is harmless.
        let _ = self.sandbox.remove_file(&self.temp);
        // One directory sync makes both the new name and the removal durable;
        // until it succeeds the checkpoint is not complete.
        self.sandbox
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::from_fs(format!("Could not sync the checkpoint directory {}", self.dir), &e))?;
        Ok(CompletedCheckpoint {
            external_pointer: self.dir.to_string(),
            metadata: StateHandle::File {
                path: self.target.to_string(),
                size: self.pos,
            },
        })
    }
}

impl<S: Sandbox> Drop for FileMetadataStream<S> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = self.sandbox.remove_file(&self.temp);
        }
    }
}
