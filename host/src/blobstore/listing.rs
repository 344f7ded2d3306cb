//! Listing, reading and deleting below a prefix of a store from the host
//! side, for tools (the CLI's `inspect --s3` and `gc --s3`): no component
//! involved.

use object_store::ObjectStore;
use std::sync::Arc;
use std::time::SystemTime;

/// One object below a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key relative to the prefix.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A runtime for one tool call (tools run outside any runtime).
fn runtime() -> Result<tokio::runtime::Runtime, object_store::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| object_store::Error::Generic {
            store: "tool",
            source: Box::new(e),
        })
}

/// The objects below `prefix` (empty: the whole store), sorted by key.
pub fn list_objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<Listed>, object_store::Error> {
    use futures::TryStreamExt;
    let prefix = prefix.trim_matches('/');
    let path = super::keys::prefix_path(prefix);
    let metas: Vec<_> = runtime()?.block_on(store.list(path.as_ref()).try_collect())?;
    let mut out: Vec<Listed> = metas
        .into_iter()
        .filter_map(|m| {
            super::keys::name_below(prefix, &m.location).map(|key| Listed {
                key,
                size: m.size,
                modified: m.last_modified.into(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The objects below `prefix`: each key relative to the prefix and its
/// size, sorted by key.
pub fn list_prefix(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<(String, u64)>, object_store::Error> {
    Ok(list_objects(store, prefix)?
        .into_iter()
        .map(|l| (l.key, l.size))
        .collect())
}

/// The bytes of the object `key` below `prefix`.
pub fn read_object(store: &Arc<dyn ObjectStore>, prefix: &str, key: &str) -> Result<Vec<u8>, object_store::Error> {
    let path = object_store::path::Path::from(join(prefix, key));
    runtime()?.block_on(async { Ok(store.get(&path).await?.bytes().await?.to_vec()) })
}

/// Deletes the object `key` below `prefix` (gone already: fine).
pub fn delete_object(store: &Arc<dyn ObjectStore>, prefix: &str, key: &str) -> Result<(), object_store::Error> {
    let path = object_store::path::Path::from(join(prefix, key));
    match runtime()?.block_on(store.delete(&path)) {
        Err(object_store::Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

fn join(prefix: &str, key: &str) -> String {
    match prefix.trim_matches('/') {
        "" => key.to_string(),
        p => format!("{p}/{key}"),
    }
}
