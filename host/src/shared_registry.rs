//! The shared-state registry (Flink's `SharedStateRegistry`): which retained
//! checkpoints and savepoints reference each shared file, so that a shared
//! file is deleted exactly when the last one referencing it goes. Pure
//! bookkeeping: it decides, the checkpoint store deletes.
//!
//! Flink keys an entry by the handle's stream id (a file's path) and keeps
//! the id of the last checkpoint that used it; this registry keeps the set
//! of users, which is exact even when a file is used by checkpoints 1 and 3
//! but not 2.

use std::collections::{BTreeMap, BTreeSet};

/// Who references a shared file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// A retained checkpoint, by id.
    Checkpoint(u64),
    /// A savepoint, by its directory (savepoints are never subsumed, so
    /// their references pin the files for the store's life).
    Savepoint(String),
}

/// A shared file the registry knows: its guest path and size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SharedFile {
    /// The file's guest path (its key in the registry).
    pub path: String,
    /// Its size in bytes, as the state handles name it.
    pub size: u64,
}

/// Registering a file that is already registered with another size (Flink:
/// "StateObjects underlying same key should be equal").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "shared file {path} is registered with {registered} bytes but {owner:?} names it with {size} bytes; two handles of one shared file must be equal, so the metadata of {owner:?} does not match the files on storage"
)]
pub struct RegistryConflict {
    /// Guest path of the shared file.
    pub path: String,
    /// Size in bytes the registry already holds for it.
    pub registered: u64,
    /// Size in bytes `owner` names for it.
    pub size: u64,
    /// The checkpoint or savepoint whose registration was refused.
    pub owner: Owner,
}

#[derive(Debug)]
struct Entry {
    size: u64,
    users: BTreeSet<Owner>,
}

/// Reference sets of shared files.
#[derive(Debug, Default)]
pub struct SharedStateRegistry {
    entries: BTreeMap<String, Entry>,
}

impl SharedStateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every file `owner` references. All or nothing: on a
    /// conflict nothing is registered.
    pub fn register(&mut self, owner: &Owner, files: &[SharedFile]) -> Result<(), RegistryConflict> {
        let mut sizes: BTreeMap<&str, u64> = BTreeMap::new();
        for f in files {
            let known = self
                .entries
                .get(&f.path)
                .map(|e| e.size)
                .or_else(|| sizes.get(f.path.as_str()).copied());
            if let Some(registered) = known.filter(|s| *s != f.size) {
                return Err(RegistryConflict {
                    path: f.path.clone(),
                    registered,
                    size: f.size,
                    owner: owner.clone(),
                });
            }
            sizes.insert(&f.path, f.size);
        }
        for f in files {
            self.entries
                .entry(f.path.clone())
                .or_insert_with(|| Entry {
                    size: f.size,
                    users: BTreeSet::new(),
                })
                .users
                .insert(owner.clone());
        }
        Ok(())
    }

    /// Drops `owner`'s references and returns the files nobody references
    /// any more (sorted by path): the caller deletes them.
    pub fn release(&mut self, owner: &Owner) -> Vec<SharedFile> {
        let mut unused = vec![];
        self.entries.retain(|path, e| {
            e.users.remove(owner);
            if e.users.is_empty() {
                unused.push(SharedFile {
                    path: path.clone(),
                    size: e.size,
                });
                false
            } else {
                true
            }
        });
        unused
    }

    /// How many owners reference `path` (0: unknown).
    pub fn users(&self, path: &str) -> usize {
        self.entries.get(path).map_or(0, |e| e.users.len())
    }

    /// Number of shared files registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no shared file is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every registered file, sorted by path.
    pub fn files(&self) -> Vec<SharedFile> {
        self.entries
            .iter()
            .map(|(path, e)| SharedFile {
                path: path.clone(),
                size: e.size,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64) -> SharedFile {
        SharedFile {
            path: path.into(),
            size,
        }
    }

    // Flink's SharedStateRegistryTest#testRegistryNormal: counting
    // registrations and releases of two states.
    #[test]
    fn registers_and_releases_counting_users() {
        let mut r = SharedStateRegistry::new();
        let (c1, c2) = (Owner::Checkpoint(1), Owner::Checkpoint(2));
        r.register(&c1, &[f("first", 1)]).unwrap();
        assert_eq!(r.users("first"), 1);
        r.register(&c1, &[f("second", 2)]).unwrap();
        assert_eq!(r.users("second"), 1);
        r.register(&c2, &[f("first", 1)]).unwrap();
        assert_eq!(r.users("first"), 2);
        // Registering the same file again for the same owner changes nothing.
        r.register(&c2, &[f("first", 1)]).unwrap();
        assert_eq!(r.users("first"), 2);
        assert_eq!(r.release(&c1), vec![f("second", 2)]);
        assert_eq!(r.users("first"), 1);
        assert_eq!(r.release(&c2), vec![f("first", 1)]);
        assert!(r.is_empty());
    }

    // Flink: releasing an owner the registry never saw deletes nothing.
    #[test]
    fn releasing_an_unknown_owner_releases_nothing() {
        let mut r = SharedStateRegistry::new();
        r.register(&Owner::Checkpoint(1), &[f("a", 1)]).unwrap();
        assert!(r.release(&Owner::Checkpoint(9)).is_empty());
        assert_eq!(r.users("a"), 1);
    }

    // Flink's testRegisterWithNonEqualHandle: a different handle under the
    // same key is refused, and (here) nothing of that owner is registered.
    #[test]
    fn a_different_size_for_a_registered_file_is_a_conflict() {
        let mut r = SharedStateRegistry::new();
        r.register(&Owner::Checkpoint(1), &[f("a", 1)]).unwrap();
        let e = r.register(&Owner::Checkpoint(2), &[f("b", 5), f("a", 2)]).unwrap_err();
        assert_eq!((e.path.as_str(), e.registered, e.size), ("a", 1, 2));
        assert!(e.to_string().contains("must be equal"), "{e}");
        assert_eq!(r.users("b"), 0, "all or nothing");
        assert_eq!(r.users("a"), 1);
        let e = r.register(&Owner::Checkpoint(3), &[f("c", 5), f("c", 6)]).unwrap_err();
        assert_eq!((e.registered, e.size), (5, 6), "within one owner too");
        assert_eq!(r.users("c"), 0);
    }

    // Flink's unregisterUnusedState: a file used by checkpoints 1 and 3 but
    // not 2 stays until 3 goes, never earlier.
    #[test]
    fn a_file_goes_exactly_with_its_last_user() {
        let mut r = SharedStateRegistry::new();
        r.register(&Owner::Checkpoint(1), &[f("x", 1), f("y", 1)]).unwrap();
        r.register(&Owner::Checkpoint(2), &[f("y", 1)]).unwrap();
        r.register(&Owner::Checkpoint(3), &[f("x", 1)]).unwrap();
        assert!(r.release(&Owner::Checkpoint(1)).is_empty());
        assert_eq!(r.release(&Owner::Checkpoint(2)), vec![f("y", 1)]);
        assert_eq!(r.release(&Owner::Checkpoint(3)), vec![f("x", 1)]);
    }

    #[test]
    fn savepoint_references_pin_files() {
        let mut r = SharedStateRegistry::new();
        let sp = Owner::Savepoint("/checkpoints/sp/savepoint-1".into());
        r.register(&Owner::Checkpoint(1), &[f("x", 1)]).unwrap();
        r.register(&sp, &[f("x", 1)]).unwrap();
        assert!(r.release(&Owner::Checkpoint(1)).is_empty());
        assert_eq!(r.files(), vec![f("x", 1)]);
    }
}
