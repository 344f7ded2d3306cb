//! The wit-bindgen glue, one file per WIT interface (`types`, `worker`,
//! `coordinator`, `restore`, `file-merging`): each converts between WIT
//! types and the core logic's types and calls it, nothing else (wasm32
//! only). One code base, three worlds: the filesystem world by default;
//! its task side (no `coordinator`, no `file-merging`) with the `task`
//! feature; the object store world with the `blobstore` feature (which
//! exports no `file-merging`: merged files are appended to across streams,
//! and an object is written once).

#[cfg(all(feature = "task", feature = "blobstore"))]
compile_error!("the features `task` and `blobstore` select different worlds: enable one of them");

#[cfg(not(feature = "task"))]
mod coordinator;
#[cfg(not(feature = "blobstore"))]
mod direct_io;
#[cfg(not(any(feature = "blobstore", feature = "task")))]
mod file_merging;
mod restore;
mod types;
mod worker;

use types::WitResult;

use checkpoint_storage_core::preopen::SandboxSlot;
use std::rc::Rc;

/// The filesystem worlds: `world` is the full one or its task side.
#[cfg(not(feature = "blobstore"))]
macro_rules! generate_filesystem_world {
    ($world:literal) => {
        wit_bindgen::generate!({
            path: "../wit",
            world: $world,
            // The WASI types the contract names (a descriptor handed to the
            // host) are the `wasip2` crate's, which the sandbox already uses.
            with: {
                "wasi:filesystem/types@0.2.12": wasip2::filesystem::types,
                "wasi:io/streams@0.2.12": wasip2::io::streams,
                "wasi:io/error@0.2.12": wasip2::io::error,
                "wasi:io/poll@0.2.12": wasip2::io::poll,
                "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
            },
        });
    };
}

#[cfg(not(any(feature = "blobstore", feature = "task")))]
generate_filesystem_world!("checkpoint-storage");
#[cfg(feature = "task")]
generate_filesystem_world!("checkpoint-storage-task");

#[cfg(feature = "blobstore")]
wit_bindgen::generate!({
    path: "../wit",
    world: "checkpoint-storage-blobstore",
    // `wasi:io` (streams of `wasi:blobstore`) is generated here too.
    generate_all,
});

/// The sandbox this build keeps state in.
#[cfg(not(feature = "blobstore"))]
pub(crate) type ActiveSandbox = crate::wasi_sandbox::WasiSandbox;
#[cfg(feature = "blobstore")]
pub(crate) type ActiveSandbox = crate::blob_sandbox::BlobSandbox;

/// The component: implements every exported interface.
struct Component;
export!(Component);

thread_local! {
    /// The preopens (or granted containers), read at the first call that
    /// finds any (see `checkpoint_storage_core::preopen`).
    static SANDBOX: SandboxSlot<ActiveSandbox> = const { SandboxSlot::new() };
}

/// How this build finds its storage: `None` while the host has granted
/// nothing.
#[cfg(not(feature = "blobstore"))]
fn open_sandbox() -> Option<ActiveSandbox> {
    ActiveSandbox::from_preopens()
}

/// Containers are looked up by name at first use, so there is nothing to
/// wait for.
#[cfg(feature = "blobstore")]
fn open_sandbox() -> Option<ActiveSandbox> {
    Some(ActiveSandbox::from_host())
}

/// The instance's sandbox; a clear `not-found` while the host has
/// granted no storage.
pub(crate) fn sandbox() -> WitResult<Rc<ActiveSandbox>> {
    SANDBOX
        .with(|slot| slot.get_or_open(open_sandbox))
        .map_err(types::to_wit_error)
}

/// A path from the caller as the core reads it: Flink's `s3://` URIs become
/// guest paths in the object store build.
#[cfg(feature = "blobstore")]
pub(crate) fn path_in(path: String) -> String {
    checkpoint_storage_core::object_uri::to_guest(&path)
}

/// A path for the caller: the inverse of `path_in`.
#[cfg(feature = "blobstore")]
pub(crate) fn path_out(path: String) -> String {
    checkpoint_storage_core::object_uri::from_guest(&path)
}

/// The filesystem build takes and gives guest paths as they are.
#[cfg(not(feature = "blobstore"))]
pub(crate) fn path_in(path: String) -> String {
    path
}

#[cfg(not(feature = "blobstore"))]
pub(crate) fn path_out(path: String) -> String {
    path
}
