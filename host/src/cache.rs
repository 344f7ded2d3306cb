//! On-disk cache of the compiled component, so that a process does not
//! recompile it at every start.
//!
//! Loading a compiled artefact is `unsafe` (it is machine code), so a cache
//! file is loaded only if this code could have written it:
//! - the directory and the file belong to the current user and are writable
//!   by nobody else (the file is opened without following symlinks and
//!   without blocking, and must be a regular file);
//! - the file starts with our magic and the full cache key: SHA-256 of the
//!   component bytes, the engine's `precompile_compatibility_hash` (wasmtime
//!   version, compiler settings, tunables such as the allocator's memory
//!   reservation) and this crate's version;
//! - the artefact's length and SHA-256 match the header.
//!
//! Anything else (corrupt, truncated, foreign, other key) is ignored and the
//! component is compiled and stored again. Files are written under a
//! temporary name, synced and renamed, so readers never see a partial file.
//!
//! The directory does not grow without bound across upgrades: a hit marks its
//! file as used (modification time), and whenever a new artefact is stored,
//! cache files of ours unused for [`CACHE_STALE_AFTER`] are deleted. Entries of
//! other live configurations (e.g. pooling and on-demand engines sharing the
//! directory) are in use, so they stay.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"CSWCACH1";
const HEADER_LEN: usize = MAGIC.len() + 32 + 8 + 32;
/// Far above any artefact of ours; bounds what a bad file makes us read.
const MAX_FILE_LEN: u64 = 1 << 30;
/// A cache file not loaded for this long is deleted when another is stored.
pub const CACHE_STALE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the cache did when the plugin was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache directory configured: the component was compiled.
    Disabled,
    /// Loaded from a valid cache file; nothing was compiled.
    Hit,
    /// The component was compiled. `rejected`: why an existing cache file
    /// (or the directory) was not used; `stored`: whether the compiled
    /// artefact was written to the cache.
    Miss {
        /// Why an existing cache file was not used, if there was one.
        rejected: Option<String>,
        /// Whether the freshly compiled artefact was stored for next time.
        stored: bool,
    },
}

impl CacheStatus {
    /// The status of a plugin made of two compiled components: a hit only
    /// if both were; otherwise the first miss, stored only if both were.
    pub(crate) fn and(self, other: CacheStatus) -> CacheStatus {
        use CacheStatus::*;
        match (self, other) {
            (Hit, Hit) => Hit,
            (Disabled, _) | (_, Disabled) => Disabled,
            (Miss { rejected, stored }, Hit) | (Hit, Miss { rejected, stored }) => Miss { rejected, stored },
            (
                Miss { rejected, stored },
                Miss {
                    rejected: other_rejected,
                    stored: other_stored,
                },
            ) => Miss {
                rejected: rejected.or(other_rejected),
                stored: stored && other_stored,
            },
        }
    }
}

/// A cache key: what the artefact was compiled from and for.
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    pub(crate) fn new(engine: &Engine, component_bytes: &[u8]) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        hasher.0.update(b"checkpoint-storage-host compiled component\0");
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.0.update([0]);
        hasher.0.update((component_bytes.len() as u64).to_le_bytes());
        hasher.0.update(component_bytes);
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        CacheKey(hasher.0.finalize().into())
    }

    fn file_name(&self) -> String {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.cwasm")
    }
}

/// Feeds `Hash` output into SHA-256 (the compatibility hash is only `Hash`).
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Never used: the digest is taken from the inner SHA-256.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Loads the component from `dir` if a valid artefact is there, else
/// compiles it and stores the artefact. Only compilation errors fail.
pub(crate) fn load_or_compile(
    engine: &Engine,
    component_bytes: &[u8],
    dir: &Path,
) -> wasmtime::Result<(Component, CacheStatus)> {
    let key = CacheKey::new(engine, component_bytes);
    let path = dir.join(key.file_name());
    let rejected = match prepare_dir(dir) {
        Err(reason) => {
            let component = Component::new(engine, component_bytes)?;
            return Ok((
                component,
                CacheStatus::Miss {
                    rejected: Some(reason),
                    stored: false,
                },
            ));
        }
        Ok(()) => match read_artefact(&path, &key) {
            Ok(None) => None,
            Ok(Some(artefact)) => {
                // SAFETY: the artefact is one this code wrote for this key
                // (same component bytes, same engine configuration): the
                // file is ours, unwritable by others, and its checksum
                // matches. wasmtime checks the engine compatibility again.
                match unsafe { Component::deserialize(engine, &artefact[HEADER_LEN..]) } {
                    Ok(component) => return Ok((component, CacheStatus::Hit)),
                    Err(e) => Some(format!("wasmtime refused the cached artefact: {e}")),
                }
            }
            Err(reason) => Some(reason),
        },
    };
    if let Some(reason) = &rejected {
        tracing::warn!(path = %path.display(), "ignoring compiled-component cache file: {reason}");
    }
    let component = Component::new(engine, component_bytes)?;
    let stored = match component.serialize() {
        Ok(artefact) => match write_artefact(dir, &path, &key, &artefact) {
            Ok(()) => {
                prune_stale(dir, &path, SystemTime::now());
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot store the compiled component: {e}");
                false
            }
        },
        Err(e) => {
            tracing::warn!("cannot serialise the compiled component: {e}");
            false
        }
    };
    Ok((component, CacheStatus::Miss { rejected, stored }))
}

/// Creates the cache directory (owner only) or checks that an existing one
/// is ours and not writable by others.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        return Err(format!("cannot create cache directory {}: {e}", dir.display()));
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("cache directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("cache directory {} is not a directory", dir.display()));
    }
    check_owner(&meta, &format!("cache directory {}", dir.display()))
}

fn check_owner(meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Err(format!("{what} belongs to uid {}, not to us ({euid})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The artefact in `path` if it is valid for `key`; `Ok(None)` if there is
/// no such file; `Err(reason)` if there is one and it must not be used.
/// The whole cache file (header and artefact) if it is valid for `key`; the
/// artefact starts at `HEADER_LEN`. A valid file is marked as used.
fn read_artefact(path: &Path, key: &CacheKey) -> Result<Option<Vec<u8>>, String> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: opening a FIFO planted here must not wait for a writer
        // (the type is checked right after, on the opened file).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it (a symbolic link?): {e}")),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    check_owner(&meta, "the file")?;
    if meta.len() > MAX_FILE_LEN {
        return Err(format!("too large ({} bytes)", meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    parse(&bytes, key)?;
    // In use: keep it from being pruned as stale. Best effort.
    if let Err(e) = file.set_modified(SystemTime::now()) {
        tracing::debug!(path = %path.display(), "cannot mark the cache file as used: {e}");
    }
    Ok(Some(bytes))
}

/// Checks the header of a cache file against `key` and its artefact (the
/// bytes after `HEADER_LEN`) against the header.
fn parse(bytes: &[u8], key: &CacheKey) -> Result<(), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, the header alone is {HEADER_LEN}",
            bytes.len()
        ));
    }
    let (magic, rest) = bytes.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err("not a cache file of ours (bad magic)".into());
    }
    let (file_key, rest) = rest.split_at(32);
    if file_key != key.0 {
        return Err("written for another component or engine configuration (key mismatch)".into());
    }
    let (len, rest) = rest.split_at(8);
    let (checksum, artefact) = rest.split_at(32);
    let len = u64::from_le_bytes(len.try_into().map_err(|_| "bad length field")?);
    if artefact.len() as u64 != len {
        return Err(format!(
            "truncated: header says {len} bytes, file has {}",
            artefact.len()
        ));
    }
    if Sha256::digest(artefact).as_slice() != checksum {
        return Err("corrupt (checksum mismatch)".into());
    }
    Ok(())
}

fn write_artefact(dir: &Path, path: &Path, key: &CacheKey, artefact: &[u8]) -> std::io::Result<()> {
    // NamedTempFile is created with mode 0600 and removed if we fail.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let file: &mut File = tmp.as_file_mut();
    file.write_all(MAGIC)?;
    file.write_all(&key.0)?;
    file.write_all(&(artefact.len() as u64).to_le_bytes())?;
    file.write_all(&Sha256::digest(artefact))?;
    file.write_all(artefact)?;
    file.sync_all()?;
    // Atomic: concurrent loaders see the old file, no file, or this one.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether `name` is a cache file name of ours (`<64 hex digits>.cwasm`).
fn is_cache_file_name(name: &str) -> bool {
    name.strip_suffix(".cwasm")
        .is_some_and(|key| key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Deletes our cache files in `dir`, other than `keep`, last used before
/// `now - CACHE_STALE_AFTER`. Only regular files of the current user with our
/// name pattern are touched; failures are logged, never fatal.
fn prune_stale(dir: &Path, keep: &Path, now: SystemTime) {
    let Some(cutoff) = now.checked_sub(CACHE_STALE_AFTER) else {
        return;
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "cannot list the cache directory: {e}");
            return;
        }
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_str().is_some_and(is_cache_file_name);
        if !ours || path == keep {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let stale = meta.modified().is_ok_and(|m| m < cutoff);
        if meta.file_type().is_file() && meta.uid() == uid && stale {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "deleted a stale compiled-component cache file"),
                Err(e) => tracing::debug!(path = %path.display(), "cannot delete a stale cache file: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CacheStatus::{self, *};

    fn miss(rejected: Option<&str>, stored: bool) -> CacheStatus {
        Miss {
            rejected: rejected.map(str::to_string),
            stored,
        }
    }

    #[test]
    fn two_components_hit_only_when_both_do() {
        assert_eq!(Hit.and(Hit), Hit);
        assert_eq!(Disabled.and(Disabled), Disabled);
        assert_eq!(Hit.and(miss(None, true)), miss(None, true));
        assert_eq!(miss(Some("foreign"), true).and(Hit), miss(Some("foreign"), true));
        assert_eq!(
            miss(None, true).and(miss(Some("short"), false)),
            miss(Some("short"), false)
        );
        assert_eq!(
            miss(Some("first"), true).and(miss(Some("second"), true)),
            miss(Some("first"), true)
        );
    }
}
