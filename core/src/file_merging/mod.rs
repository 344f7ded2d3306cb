//! Task-side file merging of checkpoint state (Flink's FLIP-306):
//!
//! - [`options`]: Flink's `execution.checkpointing.file-merging.*` options
//!   and the subtask key;
//! - [`manager`]: the file-merging snapshot manager: managed directories,
//!   physical files shared by segments, reference counts, notifications,
//!   space control, restore;
//! - [`stream`]: the output stream that writes one segment.
//!
//! The manager is the one owner of its physical files: handles it gives out
//! are segments, which `discard-state` never deletes.

pub mod manager;
pub mod options;
pub mod stream;

#[cfg(test)]
mod tests;
