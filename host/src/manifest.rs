//! A documented, versioned serialisation of the state handles a checkpoint
//! produced, so a checkpoint's handles can be stored (e.g. in its
//! `_metadata`) and loaded again by a fresh process.
//!
//! Format `flink-checkpoint-storage/manifest`, version 1, JSON:
//!
//! ```json
//! {
//!   "format": "flink-checkpoint-storage/manifest",
//!   "version": 1,
//!   "job_id": "<32 hex>",
//!   "checkpoint_id": 7,
//!   "states": [
//!     { "name": "op/keyed", "handle": { "kind": "byte-stream", "name": "/checkpoints/..", "data_base64": "AAEC" } },
//!     { "name": "op/shared", "handle": { "kind": "file", "path": "/checkpoints/..", "size": 30000 } },
//!     { "name": "op/exclusive", "handle": { "kind": "relative-file", "path": "/checkpoints/..", "relative_path": "<uuid>", "size": 30000 } },
//!     { "name": "op/merged", "handle": { "kind": "segment", "path": "/checkpoints/..", "offset": 4096, "size": 100, "scope": "shared" } }
//!   ]
//! }
//! ```
//!
//! Paths are guest paths. Readers refuse other formats and versions.
//!
//! As in Flink (relocatable savepoints), a reader that knows where it found
//! the manifest ([`CheckpointManifest::from_json_in`]) resolves `relative-file`
//! handles against that directory, so a checkpoint or savepoint directory can
//! be moved or copied as a whole and still be restored; `file` handles
//! (shared state) keep their absolute paths.

use crate::types::{ByteStreamHandle, FileHandle, RelativeFileHandle, SegmentHandle, StateHandle, StateScope};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The `format` field every manifest carries; readers refuse others.
pub const MANIFEST_FORMAT: &str = "flink-checkpoint-storage/manifest";
/// The `version` field this build writes and the only one it reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not JSON of the manifest's shape.
    #[error("not a checkpoint manifest: {0}")]
    Syntax(#[from] serde_json::Error),
    /// The `format` field is not [`MANIFEST_FORMAT`].
    #[error("unknown manifest format {found:?} (expected {MANIFEST_FORMAT:?})")]
    Format {
        /// The format the manifest names.
        found: String,
    },
    /// The `version` field is not [`MANIFEST_VERSION`].
    #[error("manifest version {found} is not supported (this build reads version {MANIFEST_VERSION})")]
    Version {
        /// The version the manifest names.
        found: u32,
    },
    /// A byte-stream handle's `data_base64` is not valid base64.
    #[error("state {name:?} has invalid base64 data: {source}")]
    Data {
        /// Name of the state holding the handle.
        name: String,
        /// The decoding error.
        source: base64::DecodeError,
    },
    /// A relative-file handle's relative path does not name a file
    /// directly in its checkpoint directory (it is empty, `.`, `..`, or
    /// contains `/` or NUL).
    #[error(
        "state {name:?} has relative path {relative_path:?}: a relative-file handle must name a file directly in its checkpoint directory (no '/', not '.' or '..', not empty)"
    )]
    RelativePath {
        /// Name of the state holding the handle.
        name: String,
        /// The relative path as written.
        relative_path: String,
    },
}

/// One named state of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedState {
    /// The name the writer gave the state (e.g. operator and kind of
    /// state); the manifest does not interpret it.
    pub name: String,
    /// Where the state's bytes are.
    pub handle: StateHandle,
}

/// The handles of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointManifest {
    /// The job the checkpoint belongs to (32 hex characters, as Flink's
    /// `JobID`).
    pub job_id: String,
    /// The checkpoint's id.
    pub checkpoint_id: u64,
    /// The checkpoint's states, in the order they were written.
    pub states: Vec<NamedState>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    format: String,
    version: u32,
    job_id: String,
    checkpoint_id: u64,
    states: Vec<WireState>,
}

#[derive(Serialize, Deserialize)]
struct WireState {
    name: String,
    handle: WireHandle,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum WireHandle {
    ByteStream {
        name: String,
        data_base64: String,
    },
    File {
        path: String,
        size: u64,
    },
    RelativeFile {
        path: String,
        relative_path: String,
        size: u64,
    },
    Segment {
        path: String,
        offset: u64,
        size: u64,
        scope: WireScope,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum WireScope {
    Exclusive,
    Shared,
}

impl CheckpointManifest {
    /// The manifest as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            format: MANIFEST_FORMAT.to_string(),
            version: MANIFEST_VERSION,
            job_id: self.job_id.clone(),
            checkpoint_id: self.checkpoint_id,
            states: self
                .states
                .iter()
                .map(|s| WireState {
                    name: s.name.clone(),
                    handle: match &s.handle {
                        StateHandle::ByteStream(b) => WireHandle::ByteStream {
                            name: b.name.clone(),
                            data_base64: BASE64.encode(&b.data),
                        },
                        StateHandle::File(f) => WireHandle::File {
                            path: f.path.clone(),
                            size: f.size,
                        },
                        StateHandle::RelativeFile(r) => WireHandle::RelativeFile {
                            path: r.path.clone(),
                            relative_path: r.relative_path.clone(),
                            size: r.size,
                        },
                        StateHandle::Segment(g) => WireHandle::Segment {
                            path: g.path.clone(),
                            offset: g.offset,
                            size: g.size,
                            scope: match g.scope {
                                StateScope::Exclusive => WireScope::Exclusive,
                                StateScope::Shared => WireScope::Shared,
                            },
                        },
                    },
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&wire).expect("a manifest always serialises")
    }

    /// Reads a manifest found in `checkpoint_dir` (a guest path: the
    /// `external-pointer` of the resolved checkpoint) and resolves its
    /// relative-file handles there, wherever they were written (Flink
    /// resolves them against the directory of the `_metadata` it loads).
    pub fn from_json_in(bytes: &[u8], checkpoint_dir: &str) -> Result<Self, ManifestError> {
        Self::from_json(bytes)?.relocated_to(checkpoint_dir)
    }

    /// The manifest with every relative-file handle's path set to
    /// `<checkpoint_dir>/<relative path>`. Other handles are unchanged.
    pub fn relocated_to(mut self, checkpoint_dir: &str) -> Result<Self, ManifestError> {
        let dir = checkpoint_dir.trim_end_matches('/');
        for state in &mut self.states {
            if let StateHandle::RelativeFile(r) = &mut state.handle {
                let name = r.relative_path.as_str();
                if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
                    return Err(ManifestError::RelativePath {
                        name: state.name.clone(),
                        relative_path: r.relative_path.clone(),
                    });
                }
                r.path = format!("{dir}/{name}");
            }
        }
        Ok(self)
    }

    /// Reads a manifest, refusing other formats and versions. Handles keep
    /// the paths they were written with (see [`Self::from_json_in`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let wire: Wire = serde_json::from_slice(bytes)?;
        if wire.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format { found: wire.format });
        }
        if wire.version != MANIFEST_VERSION {
            return Err(ManifestError::Version { found: wire.version });
        }
        let states = wire
            .states
            .into_iter()
            .map(|s| {
                let handle = match s.handle {
                    WireHandle::ByteStream { name, data_base64 } => {
                        let data = BASE64.decode(data_base64).map_err(|source| ManifestError::Data {
                            name: s.name.clone(),
                            source,
                        })?;
                        StateHandle::ByteStream(ByteStreamHandle { name, data })
                    }
                    WireHandle::File { path, size } => StateHandle::File(FileHandle { path, size }),
                    WireHandle::RelativeFile {
                        path,
                        relative_path,
                        size,
                    } => StateHandle::RelativeFile(RelativeFileHandle {
                        path,
                        relative_path,
                        size,
                    }),
                    WireHandle::Segment {
                        path,
                        offset,
                        size,
                        scope,
                    } => StateHandle::Segment(SegmentHandle {
                        path,
                        offset,
                        size,
                        scope: match scope {
                            WireScope::Exclusive => StateScope::Exclusive,
                            WireScope::Shared => StateScope::Shared,
                        },
                    }),
                };
                Ok(NamedState { name: s.name, handle })
            })
            .collect::<Result<_, ManifestError>>()?;
        Ok(CheckpointManifest {
            job_id: wire.job_id,
            checkpoint_id: wire.checkpoint_id,
            states,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointManifest {
        CheckpointManifest {
            job_id: "0123456789abcdef0123456789abcdef".into(),
            checkpoint_id: 7,
            states: vec![
                NamedState {
                    name: "a".into(),
                    handle: StateHandle::ByteStream(ByteStreamHandle {
                        name: "/checkpoints/x".into(),
                        data: vec![0, 1, 255],
                    }),
                },
                NamedState {
                    name: "b".into(),
                    handle: StateHandle::File(FileHandle {
                        path: "/checkpoints/f".into(),
                        size: 9,
                    }),
                },
                NamedState {
                    name: "c".into(),
                    handle: StateHandle::RelativeFile(RelativeFileHandle {
                        path: "/checkpoints/c/r".into(),
                        relative_path: "r".into(),
                        size: 3,
                    }),
                },
                NamedState {
                    name: "d".into(),
                    handle: StateHandle::Segment(SegmentHandle {
                        path: "/checkpoints/j/shared/s/p".into(),
                        offset: 4096,
                        size: 100,
                        scope: StateScope::Shared,
                    }),
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(CheckpointManifest::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn wire_format_is_as_documented() {
        let v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        assert_eq!(v["format"], MANIFEST_FORMAT);
        assert_eq!(v["version"], 1);
        assert_eq!(v["states"][0]["handle"]["kind"], "byte-stream");
        assert_eq!(v["states"][0]["handle"]["data_base64"], "AAH/");
        assert_eq!(v["states"][2]["handle"]["relative_path"], "r");
        assert_eq!(v["states"][3]["handle"]["kind"], "segment");
        assert_eq!(v["states"][3]["handle"]["offset"], 4096);
        assert_eq!(v["states"][3]["handle"]["scope"], "shared");
    }

    #[test]
    fn refuses_other_formats_versions_and_garbage() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["version"] = 2.into();
        let e = CheckpointManifest::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, ManifestError::Version { found: 2 }));
        v["version"] = 1.into();
        v["format"] = "other".into();
        assert!(matches!(
            CheckpointManifest::from_json(v.to_string().as_bytes()),
            Err(ManifestError::Format { .. })
        ));
        assert!(matches!(
            CheckpointManifest::from_json(b"{"),
            Err(ManifestError::Syntax(_))
        ));
        v["format"] = MANIFEST_FORMAT.into();
        v["states"][0]["handle"]["data_base64"] = "!!".into();
        assert!(matches!(
            CheckpointManifest::from_json(v.to_string().as_bytes()),
            Err(ManifestError::Data { .. })
        ));
    }
}
