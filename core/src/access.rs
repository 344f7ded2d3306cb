//! The worker view of a job's checkpoint storage (Flink's
//! `FsCheckpointStorageAccess` / `MemoryBackendCheckpointStorageAccess`, task
//! side) and the stream factories it resolves (Flink's
//! `FsCheckpointStorageLocation` / `MemCheckpointStreamFactory`).
//!
//! Layout below the checkpoints directory: `<job-id>/chk-<N>` (exclusive
//! state), `<job-id>/shared`, `<job-id>/taskowned`. A non-default reference
//! puts exclusive, shared and task-owned state all into its decoded path.
//! Nothing here creates directories.

use crate::any_stream::AnyStream;
use crate::config::{Backend, StorageConfig, ValidConfig};
use crate::entropy::Entropy;
use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::StateHandle;
use crate::layout::{SHARED_STATE_DIR, TASK_OWNED_STATE_DIR, checkpoint_dir_name};
use crate::output_stream::{CheckpointStateOutputStream, FsOutputStream, MemoryOutputStream};
use crate::paths::{GuestPath, PathError};
use crate::reference::LocationReference;
use crate::sandbox::Sandbox;
use crate::toolset::Toolset;
use std::borrow::Cow;
use std::rc::Rc;

/// Which scope a stream writes (WIT `state-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateScope {
    Exclusive,
    Shared,
}

/// Validates a configuration; its checkpoints directory must lie inside the sandbox.
pub fn validate_config<S: Sandbox>(sandbox: &S, config: &StorageConfig) -> Result<ValidConfig> {
    let config = config.validate()?;
    if config.entropy.is_some() && sandbox.has_directories() {
        // Flink injects entropy on its S3 file systems only; a marker
        // directory on a filesystem would be a real directory of that name.
        return Err(StorageError::invalid_argument(
            "s3.entropy.key is set, but this tenant stores state on a filesystem: entropy injection applies to object storage only. Remove s3.entropy.key and s3.entropy.length.",
        ));
    }
    if let Some(dir) = config.checkpoints_dir.as_ref().filter(|d| !sandbox.contains(d)) {
        return Err(StorageError::invalid_argument(format!(
            "The checkpoints directory '{dir}' is outside this tenant's directory; use a path below the directory the host mounted (e.g. /checkpoints)."
        )));
    }
    Ok(config)
}

/// The job's directory, `<checkpoints-dir>/<job-id>`; `None` without a
/// checkpoints directory (memory backend).
pub(crate) fn job_dir_of(config: &ValidConfig) -> Option<GuestPath> {
    config
        .checkpoints_dir
        .as_ref()
        .map(|dir| crate::layout::job_directory(dir, config.job_id.as_str(), config.subdir_off))
}

/// A directory below the checkpoints directory, for what only the
/// filesystem backend does; validation gives that backend a checkpoints
/// directory, so a missing one is refused as the configuration error it
/// would be.
pub(crate) fn needs_checkpoints_dir(dir: &Option<GuestPath>) -> Result<&GuestPath> {
    dir.as_ref().ok_or_else(|| {
        StorageError::invalid_argument(
            "This needs a checkpoints directory (execution.checkpointing.dir), and the configuration has none.",
        )
    })
}

/// A path made by entropy injection or marker removal, checked like any
/// other path (an unusual marker could leave one that is not valid).
pub(crate) fn entropy_path<S: Sandbox + ?Sized>(sandbox: &S, raw: &str) -> Result<GuestPath> {
    GuestPath::parse(raw)
        .ok()
        .filter(|p| sandbox.contains(p))
        .ok_or_else(|| {
            StorageError::invalid_argument(format!(
                "Entropy injection made '{raw}', which is not a usable path; choose an s3.entropy.key that stands for a whole path segment (e.g. _entropy_)."
            ))
        })
}

/// Refuses checkpoint ids Flink cannot represent (its ids are signed longs).
/// Refuses `what` in a read-only sandbox, before anything is buffered or
/// written (state that could never be stored is not accepted).
pub fn refuse_if_read_only<S: Sandbox + ?Sized>(sandbox: &S, what: &str) -> Result<()> {
    if sandbox.read_only() {
        return Err(StorageError::new(
            crate::error::ErrorCode::PermissionDenied,
            format!("Cannot {what}: this tenant is read-only (it may restore state, not write, link or delete it)."),
        ));
    }
    Ok(())
}

pub fn check_checkpoint_id(checkpoint_id: u64) -> Result<()> {
    if checkpoint_id > i64::MAX as u64 {
        return Err(StorageError::invalid_argument(format!(
            "Illegal checkpoint id {checkpoint_id}: Flink's checkpoint ids are non-negative 64-bit signed values (at most {}).",
            i64::MAX
        )));
    }
    Ok(())
}

/// A job's worker view.
pub struct WorkerView<S: Sandbox> {
    sandbox: Rc<S>,
    config: ValidConfig,
    /// `None` without a checkpoints directory (memory backend).
    job_dir: Option<GuestPath>,
}

impl<S: Sandbox + 'static> WorkerView<S> {
    /// Validates the configuration; the checkpoints directory must lie
    /// inside the sandbox.
    pub fn open(sandbox: Rc<S>, config: &StorageConfig) -> Result<Self> {
        let config = validate_config(&*sandbox, config)?;
        let job_dir = job_dir_of(&config);
        Ok(WorkerView {
            sandbox,
            config,
            job_dir,
        })
    }

    /// The job's directory; an error without a checkpoints directory.
    pub fn job_dir(&self) -> Result<&GuestPath> {
        needs_checkpoints_dir(&self.job_dir)
    }

    pub fn shared_state_dir(&self) -> Result<GuestPath> {
        Ok(self.job_dir()?.join(SHARED_STATE_DIR))
    }

    pub fn task_owned_state_dir(&self) -> Result<GuestPath> {
        Ok(self.job_dir()?.join(TASK_OWNED_STATE_DIR))
    }

    /// Flink's `resolveCheckpointStorageLocation`.
    pub fn resolve_checkpoint_storage_location(
        &self,
        checkpoint_id: u64,
        reference: &LocationReference,
    ) -> Result<StreamFactory<S>> {
        check_checkpoint_id(checkpoint_id)?;
        if self.config.backend == Backend::Memory {
            // As Flink: the memory backend inlines all state and ignores the reference.
            return Ok(StreamFactory::Memory {
                max_size: self.config.max_memory_state_size,
                sandbox: self.sandbox.clone(),
            });
        }
        let (exclusive, shared) = match reference {
            LocationReference::Default => (
                self.job_dir()?.join(&checkpoint_dir_name(checkpoint_id)),
                self.shared_state_dir()?,
            ),
            encoded => {
                let dir = self.decode_location(encoded)?;
                (dir.clone(), dir)
            }
        };
        Ok(StreamFactory::Fs(FsFactory {
            sandbox: self.sandbox.clone(),
            checkpoint_dir: exclusive,
            shared_dir: shared,
            threshold: self.config.file_state_threshold,
            buffer_size: self.config.effective_buffer_size,
            entropy: self.config.entropy.clone(),
        }))
    }

    /// Decodes an encoded reference into a directory inside the sandbox.
    pub fn decode_location(&self, reference: &LocationReference) -> Result<GuestPath> {
        let raw = reference.decode_path()?;
        let path = GuestPath::parse(raw).map_err(|e| {
            let code = match e {
                PathError::UnsupportedScheme(..) | PathError::RemoteFile(..) => ErrorCode::Unsupported,
                _ => ErrorCode::InvalidReference,
            };
            StorageError::new(
                code,
                format!("Reference {reference} cannot be decoded to a usable path: {e}."),
            )
        })?;
        if !self.sandbox.contains(&path) {
            return Err(StorageError::invalid_reference(format!(
                "Reference {reference} points to '{path}', which is outside this tenant's directory; references must point below the directory the host mounted (e.g. /checkpoints)."
            )));
        }
        Ok(path)
    }

    /// Flink's `createTaskOwnedStateStream`. Uses the effective buffer size
    /// (Flink passes the raw one and fails with default settings).
    pub fn create_task_owned_state_stream(&self) -> Result<AnyStream<S>> {
        refuse_if_read_only(&*self.sandbox, "create a state stream")?;
        Ok(match self.config.backend {
            Backend::Memory => AnyStream::Memory(MemoryOutputStream::new(
                self.config.max_memory_state_size,
                self.sandbox.random_uuid().as_str().to_owned(),
            )),
            Backend::Filesystem => AnyStream::File(
                FsOutputStream::new(
                    self.sandbox.clone(),
                    self.task_owned_state_dir()?,
                    self.config.file_state_threshold,
                    self.config.effective_buffer_size,
                    false,
                )
                .with_entropy(self.config.entropy.clone()),
            ),
        })
    }

    /// Flink's `createTaskOwnedCheckpointStateToolset`.
    pub fn create_task_owned_checkpoint_state_toolset(&self) -> Result<StateToolset<S>> {
        Ok(match self.config.backend {
            Backend::Memory => StateToolset::NotDuplicating,
            Backend::Filesystem => StateToolset::Fs {
                sandbox: self.sandbox.clone(),
                toolset: Toolset {
                    base: self.task_owned_state_dir()?,
                    entropy: self.config.entropy.clone(),
                },
            },
        })
    }
}

/// The filesystem stream factory of one location.
pub struct FsFactory<S: Sandbox> {
    sandbox: Rc<S>,
    checkpoint_dir: GuestPath,
    shared_dir: GuestPath,
    threshold: usize,
    buffer_size: usize,
    entropy: Option<Entropy>,
}

/// A resolved location: creates the state streams of one checkpoint.
pub enum StreamFactory<S: Sandbox> {
    Fs(FsFactory<S>),
    Memory { max_size: usize, sandbox: Rc<S> },
}

impl<S: Sandbox + 'static> StreamFactory<S> {
    pub fn create_checkpoint_state_output_stream(&self, scope: StateScope) -> Result<AnyStream<S>> {
        let sandbox = match self {
            StreamFactory::Memory { sandbox, .. } => sandbox,
            StreamFactory::Fs(f) => &f.sandbox,
        };
        refuse_if_read_only(&**sandbox, "create a state stream")?;
        Ok(match self {
            StreamFactory::Memory { max_size, sandbox } => AnyStream::Memory(MemoryOutputStream::new(
                *max_size,
                sandbox.random_uuid().as_str().to_owned(),
            )),
            StreamFactory::Fs(f) => {
                let (dir, exclusive) = match scope {
                    StateScope::Exclusive => (f.checkpoint_dir.clone(), true),
                    StateScope::Shared => (f.shared_dir.clone(), false),
                };
                // As Flink: state whose key gets entropy is not below its
                // directory's name, so its handle is absolute.
                let relative = exclusive && !f.entropy.as_ref().is_some_and(|e| e.is_injecting(dir.as_str()));
                AnyStream::File(
                    FsOutputStream::new(f.sandbox.clone(), dir, f.threshold, f.buffer_size, relative)
                        .with_entropy(f.entropy.clone()),
                )
            }
        })
    }

    /// One whole state in one call: a stream of `scope`, `data` written to
    /// it, closed. A failed write discards the stream (its file goes away).
    pub fn write_state(&self, scope: StateScope, data: &[u8]) -> Result<Option<StateHandle>> {
        self.write_state_from(scope, Cow::Borrowed(data))
    }

    /// [`write_state`](Self::write_state) of bytes the caller gives away:
    /// inline state keeps them as they are, without a copy.
    pub fn write_owned_state(&self, scope: StateScope, data: Vec<u8>) -> Result<Option<StateHandle>> {
        self.write_state_from(scope, Cow::Owned(data))
    }

    fn write_state_from(&self, scope: StateScope, data: Cow<'_, [u8]>) -> Result<Option<StateHandle>> {
        if let StreamFactory::Fs(f) = self
            && data.len() <= f.threshold
        {
            // What a stream would give, without building one: it would
            // buffer these bytes (the buffer is at least the threshold)
            // and return them inline under a fresh name in its directory.
            refuse_if_read_only(&*f.sandbox, "create a state stream")?;
            if data.is_empty() {
                return Ok(None);
            }
            let dir = match scope {
                StateScope::Exclusive => &f.checkpoint_dir,
                StateScope::Shared => &f.shared_dir,
            };
            return Ok(Some(StateHandle::ByteStream {
                name: dir.join(&f.sandbox.random_uuid()).into_string(),
                data: data.into_owned(),
            }));
        }
        let mut stream = self.create_checkpoint_state_output_stream(scope)?;
        stream.write(&data)?;
        stream.close_and_get_handle()
    }

    pub fn checkpoint_directory(&self) -> Option<&GuestPath> {
        match self {
            StreamFactory::Fs(f) => Some(&f.checkpoint_dir),
            StreamFactory::Memory { .. } => None,
        }
    }

    pub fn shared_state_directory(&self) -> Option<&GuestPath> {
        match self {
            StreamFactory::Fs(f) => Some(&f.shared_dir),
            StreamFactory::Memory { .. } => None,
        }
    }

    fn toolset(&self, scope: StateScope) -> Option<(&S, Toolset)> {
        match self {
            StreamFactory::Fs(f) => Some((
                &f.sandbox,
                Toolset {
                    base: match scope {
                        StateScope::Exclusive => f.checkpoint_dir.clone(),
                        StateScope::Shared => f.shared_dir.clone(),
                    },
                    entropy: f.entropy.clone(),
                },
            )),
            StreamFactory::Memory { .. } => None,
        }
    }

    pub fn can_fast_duplicate(&self, handle: &StateHandle, scope: StateScope) -> bool {
        self.toolset(scope)
            .is_some_and(|(s, t)| t.can_fast_duplicate(s, handle))
    }

    pub fn duplicate(&self, handles: &[StateHandle], scope: StateScope) -> Result<Vec<StateHandle>> {
        match self.toolset(scope) {
            Some((s, t)) => t.duplicate(s, handles),
            None => Err(no_duplication()),
        }
    }
}

/// The task-owned toolset of either backend.
pub enum StateToolset<S: Sandbox> {
    Fs {
        sandbox: Rc<S>,
        toolset: Toolset,
    },
    /// Flink's `NotDuplicatingCheckpointStateToolset`.
    NotDuplicating,
}

impl<S: Sandbox> StateToolset<S> {
    pub fn can_fast_duplicate(&self, handle: &StateHandle) -> bool {
        match self {
            StateToolset::Fs { sandbox, toolset } => toolset.can_fast_duplicate(&**sandbox, handle),
            StateToolset::NotDuplicating => false,
        }
    }

    pub fn duplicate(&self, handles: &[StateHandle]) -> Result<Vec<StateHandle>> {
        match self {
            StateToolset::Fs { sandbox, toolset } => toolset.duplicate(&**sandbox, handles),
            StateToolset::NotDuplicating => Err(no_duplication()),
        }
    }
}

fn no_duplication() -> StorageError {
    StorageError::new(
        ErrorCode::Unsupported,
        "The toolset does not support duplication: the memory backend keeps all state inline; use the filesystem backend to duplicate file state.",
    )
}
