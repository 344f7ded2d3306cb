//! The wit-bindgen glue, one file per WIT interface (`types`, `worker`,
//! `coordinator`, `restore`, `file-merging`): each converts between WIT types and the core
//! logic's types and calls it, nothing else (wasm32 only).

mod coordinator;
mod file_merging;
mod restore;
mod types;
mod worker;

use crate::wasi_sandbox::WasiSandbox;
use std::rc::Rc;

wit_bindgen::generate!({
    path: "../wit",
    world: "checkpoint-storage",
});

/// The component: implements every exported interface.
struct Component;
export!(Component);

thread_local! {
    /// The preopens are the same for the whole instance: read them once.
    static SANDBOX: Rc<WasiSandbox> = Rc::new(WasiSandbox::from_preopens());
}

pub(crate) fn sandbox() -> Rc<WasiSandbox> {
    SANDBOX.with(Rc::clone)
}
