//! A state stream of any kind, dispatched statically.
//!
//! Every stream the views hand out is one of three kinds; an enum instead of
//! a `Box<dyn CheckpointStateOutputStream>` means no allocation for the box
//! and no indirect calls. In the component an indirect call fills an entry of
//! the instance's function table, so a stream through a trait object dirtied
//! one more page per tenant on the path every tenant takes (open, write a
//! small state, close).

use crate::error::Result;
use crate::file_merging::stream::MergingOutputStream;
use crate::handle::StateHandle;
use crate::output_stream::{CheckpointStateOutputStream, DirectWrite, FsOutputStream, MemoryOutputStream};
use crate::sandbox::Sandbox;

/// A stream of either backend, or of file merging.
pub enum AnyStream<S: Sandbox> {
    File(FsOutputStream<S>),
    Memory(MemoryOutputStream),
    Merging(MergingOutputStream<S>),
}

/// Runs `$body` with `$s` bound to whichever stream `$stream` holds.
macro_rules! on_stream {
    ($stream:expr, $s:ident => $body:expr) => {
        match $stream {
            AnyStream::File($s) => $body,
            AnyStream::Memory($s) => $body,
            AnyStream::Merging($s) => $body,
        }
    };
}

impl<S: Sandbox> CheckpointStateOutputStream for AnyStream<S> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        on_stream!(self, s => s.write(data))
    }

    fn write_owned(&mut self, data: Vec<u8>) -> Result<()> {
        on_stream!(self, s => s.write_owned(data))
    }

    fn pos(&self) -> u64 {
        on_stream!(self, s => s.pos())
    }

    fn flush(&mut self) -> Result<()> {
        on_stream!(self, s => s.flush())
    }

    fn sync(&mut self) -> Result<()> {
        on_stream!(self, s => s.sync())
    }

    fn close_and_get_handle(&mut self) -> Result<Option<StateHandle>> {
        on_stream!(self, s => s.close_and_get_handle())
    }

    fn discard(&mut self) {
        on_stream!(self, s => s.discard())
    }

    fn is_open(&self) -> bool {
        on_stream!(self, s => s.is_open())
    }

    fn prepare_direct_write(&mut self, len: u64) -> Result<DirectWrite> {
        on_stream!(self, s => s.prepare_direct_write(len))
    }

    fn advance(&mut self, written: u64) -> Result<()> {
        on_stream!(self, s => s.advance(written))
    }
}
