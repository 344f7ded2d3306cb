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

/// A store and a prefix, with the one runtime a tool's requests run on
/// (tools run outside any runtime; one runtime for all of a tool's
/// requests, so the client's pooled connections stay driven).
pub struct PrefixTool<'a> {
    store: &'a Arc<dyn ObjectStore>,
    prefix: &'a str,
    runtime: tokio::runtime::Runtime,
}

impl<'a> PrefixTool<'a> {
    /// A tool for the objects of `store` below `prefix` (empty: the whole store).
    pub fn new(store: &'a Arc<dyn ObjectStore>, prefix: &'a str) -> Result<Self, object_store::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "tool",
                source: Box::new(e),
            })?;
        Ok(PrefixTool {
            store,
            prefix: prefix.trim_matches('/'),
            runtime,
        })
    }

    /// The objects below the prefix, sorted by key.
    pub fn list(&self) -> Result<Vec<Listed>, object_store::Error> {
        use futures::TryStreamExt;
        let path = super::keys::prefix_path(self.prefix);
        let metas: Vec<_> = self.runtime.block_on(self.store.list(path.as_ref()).try_collect())?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                super::keys::name_below(self.prefix, &m.location).map(|key| Listed {
                    key,
                    size: m.size,
                    modified: m.last_modified.into(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The bytes of the object `key` below the prefix.
    pub fn read(&self, key: &str) -> Result<Vec<u8>, object_store::Error> {
        let path = self.path(key);
        self.runtime
            .block_on(async { Ok(self.store.get(&path).await?.bytes().await?.to_vec()) })
    }

    /// Deletes the object `key` below the prefix (gone already: fine).
    pub fn delete(&self, key: &str) -> Result<(), object_store::Error> {
        match self.runtime.block_on(self.store.delete(&self.path(key))) {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    fn path(&self, key: &str) -> object_store::path::Path {
        match self.prefix {
            "" => key.into(),
            p => format!("{p}/{key}").into(),
        }
    }
}

/// The objects below `prefix`: each key relative to the prefix and its
/// size, sorted by key.
pub fn list_prefix(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<(String, u64)>, object_store::Error> {
    Ok(PrefixTool::new(store, prefix)?
        .list()?
        .into_iter()
        .map(|l| (l.key, l.size))
        .collect())
}
