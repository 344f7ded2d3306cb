//! The wit-bindgen glue, one file per WIT interface (`types`, `worker`,
//! `coordinator`, `restore`): each converts between WIT types and the core
//! logic's types and calls it, nothing else (wasm32 only). One code base,
//! two worlds: the filesystem world by default, the object store world with
//! the `blobstore` feature.

mod coordinator;
mod restore;
mod types;
mod worker;

use std::rc::Rc;

#[cfg(not(feature = "blobstore"))]
wit_bindgen::generate!({
    path: "../wit",
    world: "checkpoint-storage",
});

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
    /// The preopens (or granted containers) are the same for the whole
    /// instance: find them once.
    static SANDBOX: Rc<ActiveSandbox> = Rc::new(ActiveSandbox::from_host());
}

pub(crate) fn sandbox() -> Rc<ActiveSandbox> {
    SANDBOX.with(Rc::clone)
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
