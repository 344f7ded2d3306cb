//! Listing a prefix of a store from the host side, for tools (the CLI's
//! `inspect --s3`): no component involved.

use object_store::ObjectStore;
use std::sync::Arc;

/// The objects below `prefix` (empty: the whole store): each key relative to
/// the prefix and its size, sorted by key.
pub fn list_prefix(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<(String, u64)>, object_store::Error> {
    use futures::TryStreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| object_store::Error::Generic {
            store: "listing",
            source: Box::new(e),
        })?;
    let prefix = prefix.trim_matches('/');
    let path = super::keys::prefix_path(prefix);
    let metas: Vec<_> = runtime.block_on(store.list(path.as_ref()).try_collect())?;
    let mut out: Vec<(String, u64)> = metas
        .into_iter()
        .filter_map(|m| super::keys::name_below(prefix, &m.location).map(|k| (k, m.size)))
        .collect();
    out.sort();
    Ok(out)
}
