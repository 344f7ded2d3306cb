//! Flink's file-merging options (`execution.checkpointing.file-merging.*`)
//! with their defaults and validation, and the subtask key.

use crate::error::{Result, StorageError};
use crate::layout;

/// `max-file-size` default: 32 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 32 * 1024 * 1024;
/// `max-space-amplification` default.
pub const DEFAULT_MAX_SPACE_AMPLIFICATION: f32 = 2.0;
/// Longest operator or task manager id we accept: both become part of a
/// directory name, which filesystems limit to 255 bytes.
pub const MAX_ID_LEN: usize = 128;

/// The options as they cross the boundary (absent = Flink's default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileMergingOptions {
    pub enabled: Option<bool>,
    pub across_checkpoint_boundary: Option<bool>,
    pub max_file_size: Option<u64>,
    pub pool_blocking: Option<bool>,
    pub max_space_amplification: Option<f32>,
}

/// Validated options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidOptions {
    pub enabled: bool,
    pub across_checkpoint_boundary: bool,
    pub max_file_size: u64,
    pub pool_blocking: bool,
    /// `None` when space control is off (the option was below 1).
    pub max_space_amplification: Option<f32>,
}

impl FileMergingOptions {
    pub fn validate(&self) -> Result<ValidOptions> {
        let max_file_size = self.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE);
        if max_file_size == 0 {
            return Err(StorageError::invalid_argument(
                "The file-merging max-file-size must be positive; got 0. Leave it unset for Flink's default of 32 MiB.",
            ));
        }
        let amplification = self.max_space_amplification.unwrap_or(DEFAULT_MAX_SPACE_AMPLIFICATION);
        if !amplification.is_finite() {
            return Err(StorageError::invalid_argument(format!(
                "The file-merging max-space-amplification must be a finite number; got {amplification}. Use a value below 1 to turn space control off."
            )));
        }
        Ok(ValidOptions {
            enabled: self.enabled.unwrap_or(false),
            across_checkpoint_boundary: self.across_checkpoint_boundary.unwrap_or(false),
            max_file_size,
            pool_blocking: self.pool_blocking.unwrap_or(false),
            max_space_amplification: (amplification >= 1.0).then_some(amplification),
        })
    }
}

/// An id that becomes part of a directory name: 1 to [`MAX_ID_LEN`]
/// characters, no control characters.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(StorageError::invalid_argument(format!(
            "Invalid {what} {id:?}: it must have 1 to {MAX_ID_LEN} characters and no control characters."
        )));
    }
    Ok(())
}

/// Identifies a subtask (Flink's `SubtaskKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubtaskKey {
    pub operator_id: String,
    pub subtask_index: u32,
    pub parallelism: u32,
}

impl SubtaskKey {
    pub fn validate(&self) -> Result<()> {
        check_id("operator id", &self.operator_id)?;
        if self.parallelism == 0 || self.subtask_index >= self.parallelism {
            return Err(StorageError::invalid_argument(format!(
                "Invalid subtask {self}: the parallelism must be positive and the subtask index below it."
            )));
        }
        Ok(())
    }

    /// Name of the subtask's managed directory for shared state.
    pub fn managed_dir_name(&self, job_id: &str) -> String {
        layout::subtask_shared_dir_name(job_id, &self.operator_id, self.subtask_index, self.parallelism)
    }
}

/// Flink's `toString`: `op(index/parallelism)`.
impl std::fmt::Display for SubtaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({}/{})", self.operator_id, self.subtask_index, self.parallelism)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn defaults_are_flinks() {
        let v = FileMergingOptions::default().validate().unwrap();
        assert!(!v.enabled);
        assert!(!v.across_checkpoint_boundary);
        assert_eq!(v.max_file_size, 32 * 1024 * 1024);
        assert!(!v.pool_blocking);
        assert_eq!(v.max_space_amplification, Some(2.0));
    }

    #[test]
    fn amplification_below_one_turns_space_control_off() {
        let o = FileMergingOptions {
            max_space_amplification: Some(0.5),
            ..Default::default()
        };
        assert_eq!(o.validate().unwrap().max_space_amplification, None);
    }

    #[test]
    fn bad_options_are_refused() {
        for o in [
            FileMergingOptions {
                max_file_size: Some(0),
                ..Default::default()
            },
            FileMergingOptions {
                max_space_amplification: Some(f32::NAN),
                ..Default::default()
            },
            FileMergingOptions {
                max_space_amplification: Some(f32::INFINITY),
                ..Default::default()
            },
        ] {
            assert_eq!(o.validate().unwrap_err().code, ErrorCode::InvalidArgument, "{o:?}");
        }
    }

    #[test]
    fn subtask_keys_are_checked() {
        let key = |op: &str, i, p| SubtaskKey {
            operator_id: op.into(),
            subtask_index: i,
            parallelism: p,
        };
        assert!(key("op", 0, 1).validate().is_ok());
        assert_eq!(key("op", 1, 1).to_string(), "op(1/1)");
        for bad in [
            key("", 0, 1),
            key("op", 1, 1),
            key("op", 0, 0),
            key("a\0b", 0, 1),
            key(&"x".repeat(129), 0, 1),
        ] {
            assert_eq!(bad.validate().unwrap_err().code, ErrorCode::InvalidArgument, "{bad:?}");
        }
    }
}
