//! Reading state back and discarding it (Flink's `StreamStateHandle`
//! `openInputStream` / `discardState`, `ByteStreamStateHandle`'s in-memory
//! stream semantics: `seek` up to and including the size).

use crate::error::{ErrorCode, Result, StorageError};
use crate::handle::{StateHandle, checked_file_path};
use crate::paths::GuestPath;
use crate::sandbox::{EntryKind, FsErrorKind, ReadFile, Sandbox};

/// Most bytes one `read` returns, so a caller cannot make the guest
/// allocate without bound.
pub const MAX_READ: u64 = 16 * 1024 * 1024;

enum Source<R> {
    Inline(Vec<u8>),
    /// `base` is where the state starts in the file (a segment's offset).
    /// `reader` is `None` once handed over (see `hand_over_reader`).
    File {
        reader: Option<R>,
        path: GuestPath,
        base: u64,
    },
}

/// A readable, seekable view of one handle's bytes.
pub struct StateInputStream<R> {
    source: Source<R>,
    size: u64,
    pos: u64,
}

impl<R: ReadFile> StateInputStream<R> {
    /// Opens any handle; file handles must name regular files inside the sandbox.
    pub fn open<S: Sandbox<Reader = R>>(sandbox: &S, handle: StateHandle) -> Result<Self> {
        let path = match checked_file_path(sandbox, &handle)? {
            None => {
                let StateHandle::ByteStream { data, .. } = handle else {
                    unreachable!("only inline handles have no path")
                };
                return Ok(StateInputStream {
                    size: data.len() as u64,
                    source: Source::Inline(data),
                    pos: 0,
                });
            }
            Some(path) => path,
        };
        let context = || format!("Could not open state file {path}");
        let reader = sandbox
            .open_read(&path)
            .map_err(|e| StorageError::from_fs(context(), &e))?;
        // The size of the file opened, not of a path looked at before: the
        // name may have been pointed at another file in between.
        let file_size = reader.size().map_err(|e| StorageError::from_fs(context(), &e))?;
        let (base, size) = match handle {
            StateHandle::Segment { offset, size, .. } => {
                // A segment must lie inside its file: reading past the end
                // would return fewer bytes than the handle promises.
                if offset.checked_add(size).is_none_or(|end| end > file_size) {
                    return Err(StorageError::invalid_argument(format!(
                        "The segment at offset {offset} with {size} bytes does not fit in {path}, which has {file_size} bytes; the handle does not belong to this file."
                    )));
                }
                (offset, size)
            }
            _ => (0, file_size),
        };
        Ok(StateInputStream {
            source: Source::File {
                reader: Some(reader),
                path,
                base,
            },
            size,
            pos: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Gives the opened file away (for a host that reads it itself) with
    /// where the state starts in it; `None` for inline state or a file
    /// already given away. The stream keeps its size and position; should
    /// it be asked to read again, [`reopen`](Self::reopen) opens its file
    /// anew first. Handing over the open file, rather than opening a second
    /// one, spares a restore the open and the identity checks that a second
    /// descriptor would need.
    pub fn hand_over_reader(&mut self) -> Option<(R, u64)> {
        match &mut self.source {
            Source::Inline(_) => None,
            Source::File { reader, base, .. } => reader.take().map(|r| (r, *base)),
        }
    }

    /// Whether the file was handed over and `read` needs a
    /// [`reopen`](Self::reopen) first.
    pub fn handed_over(&self) -> bool {
        matches!(self.source, Source::File { reader: None, .. })
    }

    /// Opens the stream's file again by its name if it was handed over, so
    /// that `read` works as before.
    pub fn reopen<S: Sandbox<Reader = R>>(&mut self, sandbox: &S) -> Result<()> {
        if let Source::File {
            reader: reader @ None,
            path,
            ..
        } = &mut self.source
        {
            let opened = sandbox
                .open_read(path)
                .map_err(|e| StorageError::from_fs(format!("Could not open state file {path}"), &e))?;
            *reader = Some(opened);
        }
        Ok(())
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Moves to `pos` (at most the size).
    pub fn seek(&mut self, pos: u64) -> Result<()> {
        if pos > self.size {
            return Err(StorageError::invalid_argument(format!(
                "position out of bounds: {pos} is beyond the end of the state ({} bytes)",
                self.size
            )));
        }
        self.pos = pos;
        Ok(())
    }

    /// Up to `len` bytes (at most `MAX_READ`); empty at the end.
    pub fn read(&mut self, len: u64) -> Result<Vec<u8>> {
        let len = len.min(MAX_READ).min(self.size - self.pos);
        let data = match &self.source {
            Source::Inline(data) => data[self.pos as usize..(self.pos + len) as usize].to_vec(),
            Source::File {
                reader: Some(reader),
                path,
                base,
            } => reader
                .read_at(len, base + self.pos)
                .map_err(|e| StorageError::from_fs(format!("Could not read state file {path}"), &e))?,
            Source::File { reader: None, path, .. } => {
                return Err(StorageError::new(
                    ErrorCode::Io,
                    format!("The file {path} was handed over for direct reads; reopen the stream to read it here."),
                ));
            }
        };
        self.pos += data.len() as u64;
        Ok(data)
    }
}

/// Deletes a handle's file (never its directory). Inline state and a file
/// that is already gone are no-ops, as in newer Flink. A segment is a no-op
/// too (Flink's `SegmentFileStateHandle`): its physical file holds other
/// states, and the file-merging manager's reference counts decide when it goes.
pub fn discard_state<S: Sandbox>(sandbox: &S, handle: &StateHandle) -> Result<()> {
    crate::access::refuse_if_read_only(sandbox, "discard state")?;
    let Some(path) = checked_file_path(sandbox, handle)? else {
        return Ok(());
    };
    if matches!(handle, StateHandle::Segment { .. }) {
        return Ok(());
    }
    let context = || format!("Could not discard state file {path}");
    match sandbox.stat(&path) {
        Err(e) if e.kind == FsErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::from_fs(context(), &e)),
        Ok(s) if s.kind == EntryKind::Directory || s.kind == EntryKind::Other => {
            return Err(StorageError::new(
                ErrorCode::InvalidArgument,
                format!("{path} is not a state file; refusing to discard it"),
            ));
        }
        Ok(_) => {}
    }
    match sandbox.remove_file(&path) {
        Err(e) if e.kind == FsErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| StorageError::from_fs(context(), &e)),
    }
}
