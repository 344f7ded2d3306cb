//! Duplicating file state into another directory (Flink's
//! `FsCheckpointStateToolset` over a `DuplicatingFileSystem`): each file
//! keeps its name and its handle kind; a hard link where the filesystem
//! allows it, a copy otherwise.

use crate::entropy::Entropy;
use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::{StateHandle, checked_file_path};
use crate::paths::GuestPath;
use crate::sandbox::{FsErrorKind, Sandbox};

/// Duplicates into `base`.
#[derive(Debug, Clone)]
pub struct Toolset {
    pub base: GuestPath,
    /// Object storage: the marker in `base` becomes random characters in
    /// each duplicate's key (Flink's `addEntropy`).
    pub entropy: Option<Entropy>,
}

/// A file handle's source path, checked to be a file path inside the sandbox.
fn source_path<S: Sandbox>(sandbox: &S, index: usize, handle: &StateHandle) -> Result<GuestPath> {
    if matches!(handle, StateHandle::Segment { .. }) {
        // As Flink's merging location: a segment shares its physical file
        // with other states, so duplicating the file would duplicate them too.
        return Err(StorageError::invalid_argument(format!(
            "Handle #{index} is a segment of a merged physical file, which cannot be duplicated on its own; read the segment and write it as a new state instead."
        )));
    }
    match checked_file_path(sandbox, handle) {
        Ok(Some(path)) => Ok(path),
        Ok(None) => Err(StorageError::invalid_argument(format!(
            "We can duplicate only file handles: handle #{index} is an inline byte-stream handle, whose data travels in the handle itself; keep it as it is."
        ))),
        Err(e) => Err(StorageError::new(e.code, format!("Handle #{index}: {}", e.message))),
    }
}

impl Toolset {
    fn destination(&self, src: &GuestPath) -> GuestPath {
        self.base.join(src.file_name().expect("checked by source_path"))
    }

    /// True for a file handle inside the sandbox whose duplicate would be a
    /// different file.
    pub fn can_fast_duplicate<S: Sandbox>(&self, sandbox: &S, handle: &StateHandle) -> bool {
        match source_path(sandbox, 0, handle) {
            Ok(src) => self.destination(&src) != src && sandbox.contains(&self.base),
            Err(_) => false,
        }
    }

    /// Duplicates all handles or none: every handle is checked before any
    /// file is touched, and the duplicates made so far are removed when one
    /// fails. A handle already in `base` is returned as it is.
    pub fn duplicate<S: Sandbox>(&self, sandbox: &S, handles: &[StateHandle]) -> Result<Vec<StateHandle>> {
        crate::access::refuse_if_read_only(sandbox, "duplicate state")?;
        if !sandbox.contains(&self.base) {
            return Err(StorageError::invalid_argument(format!(
                "The duplication target '{}' is outside this tenant's directory.",
                self.base
            )));
        }
        let sources = handles
            .iter()
            .enumerate()
            .map(|(i, h)| source_path(sandbox, i, h))
            .collect::<Result<Vec<_>>>()?;
        let mut made: Vec<GuestPath> = Vec::new();
        let mut out = Vec::with_capacity(handles.len());
        for (handle, src) in handles.iter().zip(&sources) {
            let dst = match &self.entropy {
                Some(e) if e.is_injecting(self.base.as_str()) => {
                    let planned = self.destination(src);
                    let injected = e.inject(planned.as_str(), &mut || sandbox.random_bytes());
                    crate::access::entropy_path(sandbox, &injected)?
                }
                _ => self.destination(src),
            };
            if dst != *src {
                if let Err(e) = link_or_copy(sandbox, src, &dst) {
                    for path in &made {
                        let _ = sandbox.remove_file(path);
                    }
                    return Err(e);
                }
                made.push(dst.clone());
            }
            let path = dst.to_string();
            out.push(match handle {
                StateHandle::RelativeFile { size, .. } => StateHandle::RelativeFile {
                    path,
                    relative_path: dst.file_name().expect("a file").to_string(),
                    size: *size,
                },
                StateHandle::File { size, .. } => StateHandle::File { path, size: *size },
                StateHandle::ByteStream { .. } | StateHandle::Segment { .. } => unreachable!("refused by source_path"),
            });
        }
        Ok(out)
    }
}

fn link_or_copy<S: Sandbox>(sandbox: &S, src: &GuestPath, dst: &GuestPath) -> Result<()> {
    let context = || format!("Could not duplicate {src} to {dst}");
    match sandbox.hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.kind, FsErrorKind::Unsupported | FsErrorKind::Other) => sandbox
            .copy_file(src, dst)
            .map_err(|e| StorageError::from_fs(context(), &e)),
        Err(e) => {
            let mut err = StorageError::from_fs(context(), &e);
            if err.code == ErrorCode::AlreadyExists {
                err.message
                    .push_str(" (a file of that name is already in the target directory)");
            }
            Err(err)
        }
    }
}
