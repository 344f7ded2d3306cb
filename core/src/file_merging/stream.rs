//! The stream that writes one segment into a shared physical file (Flink's
//! `FileMergingCheckpointStateOutputStream`): the same buffering as the
//! plain filesystem stream, but no inline state (any non-empty state
//! becomes a segment), a physical file taken from the manager at the first
//! flush, and positions relative to the segment's start.

use super::manager::State;
use super::options::SubtaskKey;
use crate::access::StateScope;
use crate::error::{Result, StorageError};
use crate::handle::StateHandle;
use crate::output_stream::CheckpointStateOutputStream;
use crate::paths::GuestPath;
use crate::sandbox::Sandbox;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    FinishedEmpty,
    Closed,
}

/// The physical file a stream writes into, from its first flush on.
struct Assigned {
    id: u64,
    path: GuestPath,
    /// Where the segment starts in the physical file.
    start: u64,
}

pub struct MergingOutputStream<S: Sandbox> {
    state: Rc<RefCell<State<S>>>,
    subtask: SubtaskKey,
    checkpoint_id: u64,
    scope: StateScope,
    buffer_size: usize,
    buf: Vec<u8>,
    assigned: Option<Assigned>,
    /// Bytes of the segment already in the physical file.
    written: u64,
    phase: Phase,
}

impl<S: Sandbox> MergingOutputStream<S> {
    pub(crate) fn new(
        state: Rc<RefCell<State<S>>>,
        subtask: SubtaskKey,
        checkpoint_id: u64,
        scope: StateScope,
        buffer_size: usize,
    ) -> Self {
        MergingOutputStream {
            state,
            subtask,
            checkpoint_id,
            scope,
            buffer_size: buffer_size.max(1),
            buf: Vec::new(),
            assigned: None,
            written: 0,
            phase: Phase::Open,
        }
    }

    /// The physical file once one was assigned (for tests).
    pub fn file_path(&self) -> Option<&GuestPath> {
        self.assigned.as_ref().map(|a| &a.path)
    }

    fn check_open(&self, operation: &str) -> Result<()> {
        match self.phase {
            Phase::Open => Ok(()),
            _ => Err(StorageError::closed(format!(
                "Cannot call {operation}() to a closed stream: it returned its handle, was discarded, or failed. Open a new stream."
            ))),
        }
    }

    fn fail(&mut self, e: StorageError) -> StorageError {
        self.discard();
        e
    }

    /// Flink's `flushToFile`: takes a physical file if needed, writes the buffer.
    fn flush_to_file(&mut self) -> Result<()> {
        let mut st = self.state.borrow_mut();
        if self.assigned.is_none() {
            let (id, path, start) = st.acquire(&self.subtask, self.checkpoint_id, self.scope)?;
            self.assigned = Some(Assigned { id, path, start });
        }
        if !self.buf.is_empty() {
            let id = self.assigned.as_ref().expect("assigned above").id;
            st.append(id, &self.buf)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn append_direct(&mut self, data: &[u8]) -> Result<()> {
        let id = self.assigned.as_ref().expect("flushed first").id;
        self.state.borrow_mut().append(id, data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn write_inner(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() <= self.buffer_size {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.flush_to_file()?;
        if data.len() >= self.buffer_size {
            return self.append_direct(data);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn close_inner(&mut self) -> Result<StateHandle> {
        self.flush_to_file()?;
        let a = self.assigned.as_ref().expect("assigned by flush");
        self.state
            .borrow_mut()
            .finish_segment(a.id, a.start, self.written, &self.subtask, self.checkpoint_id)?;
        Ok(StateHandle::Segment {
            path: a.path.to_string(),
            offset: a.start,
            size: self.written,
            scope: self.scope,
        })
    }
}

impl<S: Sandbox> CheckpointStateOutputStream for MergingOutputStream<S> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.check_open("write")?;
        self.write_inner(data).map_err(|e| self.fail(e))
    }

    fn pos(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// As Flink: writes to the file only once the stream has one, so a
    /// flush never creates a physical file.
    fn flush(&mut self) -> Result<()> {
        self.check_open("flush")?;
        if self.assigned.is_some() {
            self.flush_to_file().map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(a) = &self.assigned {
            let id = a.id;
            let r = self.state.borrow_mut().sync(id);
            r.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn close_and_get_handle(&mut self) -> Result<Option<StateHandle>> {
        match self.phase {
            Phase::FinishedEmpty => return Ok(None),
            Phase::Closed => return Err(StorageError::closed("Stream has already been closed and discarded.")),
            Phase::Open => {}
        }
        if self.assigned.is_none() && self.buf.is_empty() {
            self.phase = Phase::FinishedEmpty;
            return Ok(None);
        }
        match self.close_inner() {
            Ok(handle) => {
                self.phase = Phase::Closed;
                self.assigned = None;
                self.buf = Vec::new();
                Ok(Some(handle))
            }
            Err(e) => {
                let target = self
                    .assigned
                    .as_ref()
                    .map_or_else(|| "a new physical file".to_string(), |a| a.path.to_string());
                self.discard();
                Err(crate::output_stream::close_failed(&target, e))
            }
        }
    }

    fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    fn discard(&mut self) {
        self.phase = Phase::Closed;
        self.buf = Vec::new();
        if let Some(a) = self.assigned.take() {
            self.state.borrow_mut().abandon(a.id);
        }
    }
}

impl<S: Sandbox> Drop for MergingOutputStream<S> {
    fn drop(&mut self) {
        if self.phase == Phase::Open {
            self.discard();
        }
    }
}
