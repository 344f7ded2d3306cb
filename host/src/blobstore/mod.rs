//! The `wasi:blobstore` host (0.2.0-draft) over the `object_store` crate,
//! for the object storage build of the component (feature `blobstore`).
//!
//! Host contract (what the component relies on; see docs):
//! - containers are granted per tenant: a container name maps to a store and
//!   a key prefix ([`BlobGrant`]); `get-container` of any other name fails
//!   with `permission-denied`, and containers cannot be created or deleted;
//! - object names are checked ([`keys`]) and always placed below the prefix;
//! - `write-data` names the object an `outgoing-value` becomes; the object
//!   exists only after `finish`; a value dropped unfinished leaves nothing;
//! - objects are not overwritten: `finish` of an object below one multipart
//!   part is a conditional put (a larger one completes a multipart upload,
//!   which is unconditional; its name is a fresh random UUID), and
//!   `copy-object` onto an existing name fails with
//!   `already-exists` (the draft says it overwrites; checkpoint storage
//!   never wants that);
//! - `get-data` reads the inclusive byte range asked for, at most
//!   [`MAX_GET_BYTES`] at a time;
//! - every error string starts with its kind (`not-found: ...`);
//! - all I/O runs on the plugin's runtime, bounded by the call's deadline.

mod error;
pub mod gc;
pub mod keys;
mod listing;
mod runtime;
mod s3;
mod upload;

pub use listing::{Listed, PrefixTool, list_prefix};
pub(crate) use runtime::{BlobRuntime, Deadline};
pub use s3::S3Settings;
pub use upload::{MAX_WRITE, PART_SIZE};

use crate::blobstore::error::BlobError;
use crate::blobstore::upload::{SharedUpload, Target, Upload, UploadStream};
use checkpoint_storage_core::sandbox::FsErrorKind;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasi:blobstore/imports",
        imports: { default: trappable },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/types.outgoing-value": super::OutgoingValue,
            "wasi:blobstore/types.incoming-value": super::IncomingValue,
            "wasi:blobstore/container.container": super::Container,
            "wasi:blobstore/container.stream-object-names": super::ObjectNames,
        },
    });
}

use bindings::wasi::blobstore::{blobstore, container, types};

/// Largest range one `get-data` returns (the component reads at most 16 MiB
/// per call; the bound keeps a crafted range from filling host memory).
pub const MAX_GET_BYTES: u64 = 64 << 20;
/// Most names one `list-objects` collects.
pub const MAX_LISTED_OBJECTS: usize = 1_000_000;

/// One container a tenant may use: its name as the tenant writes it (the
/// bucket of `s3://<container>/...`), the store behind it, and the key
/// prefix below which all of the tenant's objects go.
///
/// Give the plugin a client of its own (another `S3Settings::build()`), not
/// one your code also drives from a current-thread runtime: a client's
/// pooled connections are driven by the runtime that opened them, and one
/// opened on a runtime that is not running stalls the tenant's calls until
/// their deadline.
#[derive(Debug, Clone)]
pub struct BlobGrant {
    /// The container name the tenant uses (the bucket of its `s3://` URIs).
    pub container: String,
    /// The store the container's objects live in.
    pub store: Arc<dyn ObjectStore>,
    /// Every key of the tenant's objects starts with this prefix.
    pub prefix: String,
}

impl BlobGrant {
    /// Grants `container`, backed by `store` below `prefix` (`a/b`, no
    /// leading or trailing `/`; empty for the whole store).
    pub fn new(container: impl Into<String>, store: Arc<dyn ObjectStore>, prefix: impl Into<String>) -> Self {
        BlobGrant {
            container: container.into(),
            store,
            prefix: prefix.into(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.container.is_empty() || self.container.contains('/') {
            return Err(format!(
                "container name '{}' must be non-empty and without '/'",
                self.container
            ));
        }
        keys::check_prefix(&self.prefix).map_err(|e| format!("prefix of container '{}': {e}", self.container))
    }

    fn path(&self, name: &str) -> Result<Path, BlobError> {
        keys::object_path(&self.prefix, name).map_err(|e| {
            BlobError::new(
                FsErrorKind::PermissionDenied,
                format!("object name refused in container '{}': {e}", self.container),
            )
        })
    }
}

/// A tenant's blob state: its grants, the runtime, its call deadline.
pub(crate) struct BlobTenant {
    grants: HashMap<String, Arc<BlobGrant>>,
    runtime: Arc<BlobRuntime>,
    pub(crate) deadline: Deadline,
}

impl BlobTenant {
    pub(crate) fn new(grants: &[BlobGrant], runtime: Arc<BlobRuntime>, deadline: Deadline) -> Result<Self, String> {
        let mut map = HashMap::new();
        for g in grants {
            g.check()?;
            if map.insert(g.container.clone(), Arc::new(g.clone())).is_some() {
                return Err(format!("container '{}' is granted twice", g.container));
            }
        }
        Ok(BlobTenant {
            grants: map,
            runtime,
            deadline,
        })
    }

    fn grant(&self, name: &str) -> Result<Arc<BlobGrant>, BlobError> {
        self.grants.get(name).cloned().ok_or_else(|| {
            BlobError::new(
                FsErrorKind::PermissionDenied,
                format!("container '{name}' is not granted to this tenant"),
            )
        })
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, BlobError>> + Send + 'static,
    ) -> Result<T, BlobError> {
        self.runtime.run(&self.deadline, fut)
    }
}

/// `container` resource: a granted container.
pub struct Container(Arc<BlobGrant>);

/// `outgoing-value` resource.
pub struct OutgoingValue {
    upload: SharedUpload,
    body_taken: bool,
}

/// `incoming-value` resource: the bytes of one `get-data`.
pub struct IncomingValue(bytes::Bytes);

/// `stream-object-names` resource.
pub struct ObjectNames(VecDeque<String>);

/// What the blobstore host functions see of the store's data.
pub(crate) struct BlobView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) blob: &'a BlobTenant,
}

struct BlobHost;
impl HasData for BlobHost {
    type Data<'a> = BlobView<'a>;
}

/// Adds `wasi:blobstore` to a linker; `view` finds a store's blob state.
/// The byte range of a `get-data(start, end)` (inclusive end) as a
/// half-open range: refused when empty, longer than [`MAX_GET_BYTES`], or
/// ending past the largest offset (whoever asks, the host's arithmetic
/// never overflows).
fn get_range(start: u64, end: u64) -> Result<std::ops::Range<u64>, BlobError> {
    match end.checked_add(1) {
        Some(stop) if start <= end && end - start < MAX_GET_BYTES => Ok(start..stop),
        _ => Err(BlobError::new(
            FsErrorKind::Unsupported,
            format!("range {start}..={end} is empty, longer than {MAX_GET_BYTES} bytes or past the largest offset"),
        )),
    }
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> BlobView<'_>,
) -> wasmtime::Result<()> {
    // Only the blobstore interfaces: `wasi:io` comes from wasmtime-wasi.
    types::add_to_linker::<T, BlobHost>(linker, view)?;
    container::add_to_linker::<T, BlobHost>(linker, view)?;
    blobstore::add_to_linker::<T, BlobHost>(linker, view)
}

type Wire<T> = wasmtime::Result<Result<T, String>>;

fn wire<T>(r: Result<T, BlobError>) -> Wire<T> {
    Ok(r.map_err(|e| e.wire()))
}

impl BlobView<'_> {
    fn grant_of(&self, c: &Resource<Container>) -> wasmtime::Result<Arc<BlobGrant>> {
        Ok(self.table.get(c)?.0.clone())
    }

    fn list(&self, grant: &Arc<BlobGrant>) -> Result<Vec<String>, BlobError> {
        let g = grant.clone();
        self.blob.run(async move {
            let prefix = keys::prefix_path(&g.prefix);
            let mut stream = g.store.list(prefix.as_ref());
            let mut names = Vec::new();
            while let Some(meta) = stream
                .try_next()
                .await
                .map_err(|e| BlobError::store("listing objects", e))?
            {
                if let Some(name) = keys::name_below(&g.prefix, &meta.location) {
                    if names.len() >= MAX_LISTED_OBJECTS {
                        return Err(BlobError::io(format!(
                            "more than {MAX_LISTED_OBJECTS} objects in container '{}'",
                            g.container
                        )));
                    }
                    names.push(name);
                }
            }
            Ok(names)
        })
    }

    fn head(&self, grant: &Arc<BlobGrant>, name: &str) -> Result<Option<object_store::ObjectMeta>, BlobError> {
        let path = grant.path(name)?;
        let store = grant.store.clone();
        self.blob.run(async move {
            match store.head(&path).await {
                Ok(meta) => Ok(Some(meta)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(BlobError::store(&format!("checking {path}"), e)),
            }
        })
    }

    fn delete(&self, grant: &Arc<BlobGrant>, name: &str) -> Result<(), BlobError> {
        let path = grant.path(name)?;
        let store = grant.store.clone();
        self.blob.run(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(BlobError::store(&format!("deleting {path}"), e)),
            }
        })
    }

    fn copy(&self, src: &types::ObjectId, dst: &types::ObjectId) -> Result<(), BlobError> {
        let (sg, dg) = (self.blob.grant(&src.container)?, self.blob.grant(&dst.container)?);
        let (from, to) = (sg.path(&src.object)?, dg.path(&dst.object)?);
        let what = format!("copying {from} to {to}");
        if Arc::ptr_eq(&sg.store, &dg.store) {
            let store = sg.store.clone();
            return self.blob.run(async move {
                // Server-side, and never onto an existing object.
                store
                    .copy_if_not_exists(&from, &to)
                    .await
                    .map_err(|e| BlobError::store(&what, e))
            });
        }
        copy_across(
            &self.blob.runtime,
            &self.blob.deadline,
            (&sg.store, from),
            (&dg.store, to),
            &what,
        )
    }
}

/// A copy between two stores, one part at a time through an upload.
fn copy_across(
    runtime: &Arc<BlobRuntime>,
    deadline: &Deadline,
    (source, from): (&Arc<dyn ObjectStore>, Path),
    (target, to): (&Arc<dyn ObjectStore>, Path),
    what: &str,
) -> Result<(), BlobError> {
    // Across stores: one part at a time through an upload (about a
    // part in host memory, whatever the object's size), every part read
    // from the same version of the source, never onto an existing object
    // (checked first: a multipart completion would replace it).
    let meta = {
        let (source, from, what) = (source.clone(), from.clone(), what.to_string());
        runtime.run(deadline, async move {
            source.head(&from).await.map_err(|e| BlobError::store(&what, e))
        })?
    };
    let exists = {
        let (target, to, what) = (target.clone(), to.clone(), what.to_string());
        runtime.run(deadline, async move {
            match target.head(&to).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(BlobError::store(&what, e)),
            }
        })?
    };
    if exists {
        return Err(BlobError::new(
            FsErrorKind::AlreadyExists,
            format!("{what}: the target already exists; a copy never replaces an object"),
        ));
    }
    let size = meta.size;
    let upload = Upload::new(runtime.clone(), deadline.clone());
    let mut upload = upload::lock(&upload);
    upload.bind(Target {
        store: target.clone(),
        path: to,
    })?;
    let mut at = 0;
    while at < size {
        let end = size.min(at + PART_SIZE as u64);
        let (source, from, context) = (source.clone(), from.clone(), what.to_string());
        let opts = GetOptions {
            range: Some(GetRange::Bounded(at..end)),
            if_match: meta.e_tag.clone(),
            ..Default::default()
        };
        let part = runtime.run(deadline, async move {
            let r = source
                .get_opts(&from, opts)
                .await
                .map_err(|e| BlobError::store(&context, e))?;
            r.bytes().await.map_err(|e| BlobError::store(&context, e))
        })?;
        if part.len() as u64 != end - at {
            return Err(BlobError::io(format!(
                "{what}: asked for bytes {at}..{end}, got {}; the source changed during the copy",
                part.len()
            )));
        }
        upload.write(&part)?;
        at = end;
    }
    upload.finish()
}

impl types::Host for BlobView<'_> {}

impl types::HostOutgoingValue for BlobView<'_> {
    fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        let upload = Upload::new(self.blob.runtime.clone(), self.blob.deadline.clone());
        Ok(self.table.push(OutgoingValue {
            upload,
            body_taken: false,
        })?)
    }

    fn outgoing_value_write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let v = self.table.get_mut(&value)?;
        if v.body_taken {
            return Ok(Err(()));
        }
        v.body_taken = true;
        let stream: DynOutputStream = Box::new(UploadStream(v.upload.clone()));
        Ok(Ok(self.table.push_child(stream, &value)?))
    }

    fn finish(&mut self, value: Resource<OutgoingValue>) -> Wire<()> {
        let v = self.table.delete(value)?;
        let mut upload = v.upload.lock().unwrap_or_else(|e| e.into_inner());
        wire(upload.finish())
    }

    fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        // The upload aborts when its last reference (this, or the stream's) goes.
        self.table.delete(value)?;
        Ok(())
    }
}

impl types::HostIncomingValue for BlobView<'_> {
    fn incoming_value_consume_sync(&mut self, value: Resource<IncomingValue>) -> Wire<Vec<u8>> {
        Ok(Ok(self.table.delete(value)?.0.to_vec()))
    }

    fn incoming_value_consume_async(&mut self, value: Resource<IncomingValue>) -> Wire<Resource<DynInputStream>> {
        let bytes = self.table.delete(value)?.0;
        let stream: DynInputStream = Box::new(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(bytes));
        Ok(Ok(self.table.push(stream)?))
    }

    fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&value)?.0.len() as u64)
    }

    fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl container::Host for BlobView<'_> {}

impl container::HostContainer for BlobView<'_> {
    fn name(&mut self, c: Resource<Container>) -> Wire<String> {
        Ok(Ok(self.grant_of(&c)?.container.clone()))
    }

    fn info(&mut self, c: Resource<Container>) -> Wire<types::ContainerMetadata> {
        Ok(Ok(types::ContainerMetadata {
            name: self.grant_of(&c)?.container.clone(),
            created_at: 0,
        }))
    }

    fn get_data(
        &mut self,
        c: Resource<Container>,
        name: String,
        start: u64,
        end: u64,
    ) -> Wire<Resource<IncomingValue>> {
        let g = self.grant_of(&c)?;
        let r = (|| {
            let range = get_range(start, end)?;
            let path = g.path(&name)?;
            let store = g.store.clone();
            self.blob.run(async move {
                let what = format!("reading {path}");
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(range)),
                    ..Default::default()
                };
                let result = store
                    .get_opts(&path, opts)
                    .await
                    .map_err(|e| BlobError::store(&what, e))?;
                result.bytes().await.map_err(|e| BlobError::store(&what, e))
            })
        })();
        match r {
            Ok(bytes) => Ok(Ok(self.table.push(IncomingValue(bytes))?)),
            Err(e) => Ok(Err(e.wire())),
        }
    }

    fn write_data(&mut self, c: Resource<Container>, name: String, value: Resource<OutgoingValue>) -> Wire<()> {
        let g = self.grant_of(&c)?;
        let path = match g.path(&name) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.wire())),
        };
        let v = self.table.get(&value)?;
        let mut upload = v.upload.lock().unwrap_or_else(|e| e.into_inner());
        wire(upload.bind(Target {
            store: g.store.clone(),
            path,
        }))
    }

    fn list_objects(&mut self, c: Resource<Container>) -> Wire<Resource<ObjectNames>> {
        let g = self.grant_of(&c)?;
        match self.list(&g) {
            Ok(names) => Ok(Ok(self.table.push(ObjectNames(names.into()))?)),
            Err(e) => Ok(Err(e.wire())),
        }
    }

    fn delete_object(&mut self, c: Resource<Container>, name: String) -> Wire<()> {
        let g = self.grant_of(&c)?;
        wire(self.delete(&g, &name))
    }

    fn delete_objects(&mut self, c: Resource<Container>, names: Vec<String>) -> Wire<()> {
        let g = self.grant_of(&c)?;
        wire(names.iter().try_for_each(|n| self.delete(&g, n)))
    }

    fn has_object(&mut self, c: Resource<Container>, name: String) -> Wire<bool> {
        let g = self.grant_of(&c)?;
        wire(self.head(&g, &name).map(|m| m.is_some()))
    }

    fn object_info(&mut self, c: Resource<Container>, name: String) -> Wire<types::ObjectMetadata> {
        let g = self.grant_of(&c)?;
        wire(self.head(&g, &name).and_then(|m| match m {
            Some(meta) => Ok(types::ObjectMetadata {
                name,
                container: g.container.clone(),
                created_at: u64::try_from(meta.last_modified.timestamp()).unwrap_or(0),
                size: meta.size,
            }),
            None => Err(BlobError::new(
                FsErrorKind::NotFound,
                format!("object '{name}' does not exist"),
            )),
        }))
    }

    fn clear(&mut self, c: Resource<Container>) -> Wire<()> {
        let g = self.grant_of(&c)?;
        wire(
            self.list(&g)
                .and_then(|names| names.iter().try_for_each(|n| self.delete(&g, n))),
        )
    }

    fn drop(&mut self, c: Resource<Container>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for BlobView<'_> {
    fn read_stream_object_names(&mut self, s: Resource<ObjectNames>, len: u64) -> Wire<(Vec<String>, bool)> {
        let names = &mut self.table.get_mut(&s)?.0;
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(names.len());
        let batch: Vec<String> = names.drain(..n).collect();
        Ok(Ok((batch, names.is_empty())))
    }

    fn skip_stream_object_names(&mut self, s: Resource<ObjectNames>, num: u64) -> Wire<(u64, bool)> {
        let names = &mut self.table.get_mut(&s)?.0;
        let n = usize::try_from(num).unwrap_or(usize::MAX).min(names.len());
        names.drain(..n);
        Ok(Ok((n as u64, names.is_empty())))
    }

    fn drop(&mut self, s: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl blobstore::Host for BlobView<'_> {
    fn create_container(&mut self, name: String) -> Wire<Resource<Container>> {
        Ok(Err(BlobError::new(
            FsErrorKind::PermissionDenied,
            format!("containers are granted by the host; '{name}' cannot be created by a tenant"),
        )
        .wire()))
    }

    fn get_container(&mut self, name: String) -> Wire<Resource<Container>> {
        match self.blob.grant(&name) {
            Ok(g) => Ok(Ok(self.table.push(Container(g))?)),
            Err(e) => Ok(Err(e.wire())),
        }
    }

    fn delete_container(&mut self, name: String) -> Wire<()> {
        Ok(Err(BlobError::new(
            FsErrorKind::PermissionDenied,
            format!("containers are granted by the host; '{name}' cannot be deleted by a tenant"),
        )
        .wire()))
    }

    fn container_exists(&mut self, name: String) -> Wire<bool> {
        Ok(Ok(self.blob.grants.contains_key(&name)))
    }

    fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Wire<()> {
        wire(self.copy(&src, &dest))
    }

    fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Wire<()> {
        let r = self.copy(&src, &dest).and_then(|()| {
            let g = self.blob.grant(&src.container)?;
            self.delete(&g, &src.object)
        });
        wire(r)
    }
}

#[cfg(test)]
mod tests {
    use super::{BlobRuntime, Deadline, MAX_GET_BYTES, PART_SIZE, copy_across, get_range};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_copy_across_stores_arrives_whole_and_never_replaces_an_object() {
        let runtime = BlobRuntime::new().unwrap();
        let deadline = Deadline::new(Duration::from_secs(60));
        deadline.begin_call();
        let a: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let b: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let put = |store: &Arc<dyn ObjectStore>, key: &str, data: Vec<u8>| {
            futures::executor::block_on(store.put(&Path::from(key), data.into())).unwrap();
        };
        let get = |store: &Arc<dyn ObjectStore>, key: &str| {
            futures::executor::block_on(async { store.get(&Path::from(key)).await?.bytes().await }).map(|b| b.to_vec())
        };
        let copy =
            |from: &str, to: &str| copy_across(&runtime, &deadline, (&a, from.into()), (&b, to.into()), "copying");
        for size in [0, 1, PART_SIZE, 2 * PART_SIZE + 7] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let (from, to) = (format!("src/{size}"), format!("dst/{size}"));
            put(&a, &from, data.clone());
            copy(&from, &to).unwrap();
            assert_eq!(get(&b, &to).unwrap(), data, "{size} bytes");
            // Never onto an existing object, whatever its size.
            let e = copy(&from, &to).unwrap_err();
            assert!(e.wire().starts_with("already-exists"), "{}", e.wire());
            assert_eq!(get(&b, &to).unwrap(), data, "unchanged");
        }
        let e = copy("src/missing", "dst/missing").unwrap_err();
        assert!(e.wire().starts_with("not-found"), "{}", e.wire());
        assert!(get(&b, "dst/missing").is_err(), "no object");
    }

    #[test]
    fn get_ranges_are_checked_without_overflow() {
        assert_eq!(get_range(0, 0).unwrap(), 0..1);
        assert_eq!(get_range(5, 5 + MAX_GET_BYTES - 1).unwrap(), 5..5 + MAX_GET_BYTES);
        assert_eq!(get_range(u64::MAX - 1, u64::MAX - 1).unwrap(), u64::MAX - 1..u64::MAX);
        for (start, end) in [
            (1, 0),
            (0, MAX_GET_BYTES),
            (u64::MAX - 1, u64::MAX),
            (u64::MAX, u64::MAX),
        ] {
            let e = get_range(start, end).unwrap_err();
            assert!(e.wire().starts_with("unsupported"), "{start}..={end}: {}", e.wire());
            assert!(e.wire().contains(&format!("range {start}..={end}")), "{}", e.wire());
        }
    }
}
