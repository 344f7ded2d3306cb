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
    // The WASI types the contract names (a descriptor handed to the host)
    // are the `wasip2` crate's, which the sandbox already uses.
    with: {
        "wasi:filesystem/types@0.2.12": wasip2::filesystem::types,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
    },
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
