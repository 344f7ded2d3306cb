//! The wit-bindgen glue, one file per WIT interface (`types`, `worker`,
//! `coordinator`, `restore`, `file-merging`): each converts between WIT types and the core
//! logic's types and calls it, nothing else (wasm32 only).

mod coordinator;
mod file_merging;
mod restore;
mod types;
mod worker;

use types::WitResult;

use crate::wasi_sandbox::WasiSandbox;
use checkpoint_storage_core::preopen::SandboxSlot;
use std::rc::Rc;

wit_bindgen::generate!({
    path: "../wit",
    world: "checkpoint-storage",
});

/// The component: implements every exported interface.
struct Component;
export!(Component);

thread_local! {
    /// The preopens, read at the first call that finds any (see
    /// `checkpoint_storage_core::preopen`).
    static SANDBOX: SandboxSlot<WasiSandbox> = const { SandboxSlot::new() };
}

/// The instance's sandbox; a clear `not-found` while the host has
/// preopened no directory.
pub(crate) fn sandbox() -> WitResult<Rc<WasiSandbox>> {
    SANDBOX
        .with(|slot| slot.get_or_open(WasiSandbox::from_preopens))
        .map_err(types::to_wit_error)
}
