//! WIT `restore`: state input streams and discarding state.

use super::ActiveSandbox;
use super::exports::flink::checkpoint_storage::restore;
use super::exports::flink::checkpoint_storage::types as wit;
use super::types::*;
use super::{Component, sandbox};
use checkpoint_storage_core::restore as restore_logic;
use checkpoint_storage_core::sandbox::Sandbox;
use std::cell::RefCell;

type WasiReader = <ActiveSandbox as Sandbox>::Reader;

impl restore::Guest for Component {
    type StateInputStream = InputStreamImpl;

    fn discard_state(handle: wit::StateHandle) -> WitResult<()> {
        restore_logic::discard_state(&*sandbox()?, &from_wit_handle(handle)).map_err(to_wit_error)
    }
}

pub struct InputStreamImpl(pub(super) RefCell<restore_logic::StateInputStream<WasiReader>>);

impl restore::GuestStateInputStream for InputStreamImpl {
    fn open(handle: wit::StateHandle) -> WitResult<restore::StateInputStream> {
        let stream =
            restore_logic::StateInputStream::open(&*sandbox()?, from_wit_handle(handle)).map_err(to_wit_error)?;
        Ok(restore::StateInputStream::new(InputStreamImpl(RefCell::new(stream))))
    }

    fn read(&self, len: u64) -> WitResult<Vec<u8>> {
        let mut stream = self.0.borrow_mut();
        if stream.handed_over() {
            stream.reopen(&*sandbox()?).map_err(to_wit_error)?;
        }
        stream.read(len).map_err(to_wit_error)
    }

    fn seek(&self, pos: u64) -> WitResult<()> {
        self.0.borrow_mut().seek(pos).map_err(to_wit_error)
    }

    fn get_pos(&self) -> u64 {
        self.0.borrow().pos()
    }

    fn size(&self) -> u64 {
        self.0.borrow().size()
    }
}
