//! The storage configuration and its validation: Flink's defaults and limits
//! (`CheckpointingOptions`, `FsCheckpointStreamFactory`), plus the job id rule.

use crate::entropy::Entropy;
use crate::error::{Result, StorageError};
use crate::paths::GuestPath;

/// `execution.checkpointing.data-inline-threshold` default: 20 KiB.
pub const DEFAULT_FILE_STATE_THRESHOLD: u32 = 20 * 1024;
/// Flink's `FsCheckpointStreamFactory.MAX_FILE_STATE_THRESHOLD`: 1 MiB.
pub const MAX_FILE_STATE_THRESHOLD: u32 = 1024 * 1024;
/// `execution.checkpointing.write-buffer-size` default: 4 KiB.
pub const DEFAULT_WRITE_BUFFER_SIZE: u32 = 4 * 1024;
/// Our cap on the write buffer, so one stream cannot exhaust the sandbox's memory.
pub const MAX_WRITE_BUFFER_SIZE: u32 = 64 * 1024 * 1024;
/// Flink's `MemoryStateBackend.DEFAULT_MAX_STATE_SIZE`: 5 MiB.
pub const DEFAULT_MAX_MEMORY_STATE_SIZE: u32 = 5 * 1024 * 1024;

/// Which implementation backs the worker view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Filesystem,
    Memory,
}

/// The configuration as it crosses the boundary (absent = Flink's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub job_id: String,
    /// `None`: the memory backend without a checkpoint directory.
    pub checkpoints_dir: Option<String>,
    /// `execution.checkpointing.create-subdir` (default true).
    pub create_subdir: Option<bool>,
    pub backend: Backend,
    pub file_state_threshold: Option<u32>,
    pub write_buffer_size: Option<u32>,
    pub max_memory_state_size: Option<u32>,
    /// `s3.entropy.key`: the marker replaced by random characters in data
    /// object keys (object storage only).
    pub s3_entropy_key: Option<String>,
    /// `s3.entropy.length`: how many characters replace the marker.
    pub s3_entropy_length: Option<u32>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidConfig {
    pub job_id: JobId,
    /// `None` only for the memory backend: nothing is persisted (Flink's
    /// `MemoryBackendCheckpointStorageAccess` with a null base directory).
    pub checkpoints_dir: Option<GuestPath>,
    /// `<checkpoints-dir>` is the job's directory itself (filesystem backend
    /// with `create-subdir` = false; Flink's memory backend ignores it).
    pub subdir_off: bool,
    pub backend: Backend,
    pub file_state_threshold: usize,
    /// `max(write-buffer-size, threshold)`, as Flink's stream factory.
    pub effective_buffer_size: usize,
    pub max_memory_state_size: usize,
    /// Entropy injection, when `s3.entropy.key` is set.
    pub entropy: Option<Entropy>,
}

impl StorageConfig {
    /// Checks every field; the first bad one is reported with its value.
    /// Whether the directory lies inside the sandbox is checked by the caller.
    pub fn validate(&self) -> Result<ValidConfig> {
        let job_id = JobId::parse(&self.job_id)?;
        let checkpoints_dir = match (&self.checkpoints_dir, self.backend) {
            (Some(dir), _) => Some(GuestPath::parse(dir).map_err(|e| {
                StorageError::invalid_argument(format!(
                    "Invalid checkpoints directory: {e}. Give an absolute path inside the tenant's directory, e.g. /checkpoints."
                ))
            })?),
            (None, Backend::Memory) => None,
            (None, Backend::Filesystem) => {
                return Err(StorageError::invalid_argument(
                    "The filesystem backend needs a checkpoints directory (execution.checkpointing.dir), e.g. /checkpoints; only the memory backend runs without one.",
                ));
            }
        };
        let threshold = self.file_state_threshold.unwrap_or(DEFAULT_FILE_STATE_THRESHOLD);
        if threshold > MAX_FILE_STATE_THRESHOLD {
            return Err(StorageError::invalid_argument(format!(
                "The threshold for file state size cannot be larger than {MAX_FILE_STATE_THRESHOLD}; got {threshold}."
            )));
        }
        let buffer = self.write_buffer_size.unwrap_or(DEFAULT_WRITE_BUFFER_SIZE);
        if buffer > MAX_WRITE_BUFFER_SIZE {
            return Err(StorageError::invalid_argument(format!(
                "The write buffer size cannot be larger than {MAX_WRITE_BUFFER_SIZE}; got {buffer}."
            )));
        }
        let max_memory = self.max_memory_state_size.unwrap_or(DEFAULT_MAX_MEMORY_STATE_SIZE);
        if max_memory == 0 {
            return Err(StorageError::invalid_argument(
                "The maximum memory-backed state size must be positive; got 0.",
            ));
        }
        let entropy = Entropy::from_options(self.s3_entropy_key.as_deref(), self.s3_entropy_length)?;
        if entropy.is_some() && checkpoints_dir.is_none() {
            return Err(StorageError::invalid_argument(
                "s3.entropy.key is set, but there is no checkpoints directory to inject entropy into. Set checkpoints-dir or remove s3.entropy.key and s3.entropy.length.",
            ));
        }
        Ok(ValidConfig {
            job_id,
            checkpoints_dir,
            subdir_off: crate::layout::job_subdir_off(self.create_subdir, self.backend == Backend::Filesystem),
            backend: self.backend,
            file_state_threshold: threshold as usize,
            effective_buffer_size: buffer.max(threshold) as usize,
            max_memory_state_size: max_memory as usize,
            entropy,
        })
    }
}

/// A Flink `JobID` in its string form: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobId(String);

impl JobId {
    pub fn parse(raw: &str) -> Result<Self> {
        if crate::layout::is_job_id(raw) {
            Ok(JobId(raw.to_string()))
        } else {
            Err(StorageError::invalid_argument(format!(
                "Invalid job id {raw:?}: a job id is exactly 32 lowercase hex characters, as Flink's JobID.toString() (e.g. 3f2a0b1c4d5e6f708192a3b4c5d6e7f8)."
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn config() -> StorageConfig {
        StorageConfig {
            job_id: "0123456789abcdef0123456789abcdef".into(),
            checkpoints_dir: Some("/checkpoints".into()),
            create_subdir: None,
            backend: Backend::Filesystem,
            file_state_threshold: None,
            write_buffer_size: None,
            max_memory_state_size: None,
            s3_entropy_key: None,
            s3_entropy_length: None,
        }
    }

    #[test]
    fn defaults_are_flinks() {
        let v = config().validate().unwrap();
        assert_eq!(v.file_state_threshold, 20480);
        assert_eq!(v.effective_buffer_size, 20480);
        assert_eq!(v.max_memory_state_size, 5 * 1024 * 1024);
    }

    #[test]
    fn effective_buffer_is_max_of_buffer_and_threshold() {
        let mut c = config();
        c.file_state_threshold = Some(10);
        c.write_buffer_size = Some(4096);
        assert_eq!(c.validate().unwrap().effective_buffer_size, 4096);
        c.write_buffer_size = Some(0);
        assert_eq!(c.validate().unwrap().effective_buffer_size, 10);
    }

    #[test]
    fn threshold_above_one_mib_is_refused() {
        let mut c = config();
        c.file_state_threshold = Some(MAX_FILE_STATE_THRESHOLD);
        assert!(c.validate().is_ok());
        c.file_state_threshold = Some(MAX_FILE_STATE_THRESHOLD + 1);
        let e = c.validate().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("cannot be larger than 1048576"));
    }

    #[test]
    fn oversized_buffer_and_zero_memory_limit_are_refused() {
        let mut c = config();
        c.write_buffer_size = Some(MAX_WRITE_BUFFER_SIZE + 1);
        assert_eq!(c.validate().unwrap_err().code, ErrorCode::InvalidArgument);
        let mut c = config();
        c.max_memory_state_size = Some(0);
        assert_eq!(c.validate().unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn job_id_must_be_32_lowercase_hex() {
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF0123456789ABCDEF",
            "../../../../../../../../../../etc",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
        ] {
            let mut c = config();
            c.job_id = bad.into();
            let e = c.validate().unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(e.message.contains("32 lowercase hex"));
        }
    }

    #[test]
    fn create_subdir_false_applies_to_the_filesystem_backend_only() {
        let mut c = config();
        assert!(!c.validate().unwrap().subdir_off, "Flink's default: a job directory");
        c.create_subdir = Some(false);
        assert!(c.validate().unwrap().subdir_off);
        c.backend = Backend::Memory;
        assert!(!c.validate().unwrap().subdir_off, "Flink's memory backend ignores it");
    }

    #[test]
    fn only_the_memory_backend_runs_without_a_checkpoints_directory() {
        let mut c = config();
        c.checkpoints_dir = None;
        let e = c.validate().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("needs a checkpoints directory"), "{}", e.message);
        c.backend = Backend::Memory;
        assert_eq!(c.validate().unwrap().checkpoints_dir, None);
        c.s3_entropy_key = Some("_entropy_".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("no checkpoints directory"), "{}", e.message);
    }

    #[test]
    fn checkpoints_dir_must_be_absolute() {
        let mut c = config();
        c.checkpoints_dir = Some("checkpoints".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("relative"));
    }
}
