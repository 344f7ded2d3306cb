//! Flink's encoding of checkpoint storage location references
//! (`CheckpointStorageLocationReference`, `AbstractFsCheckpointStorageAccess`
//! `encodePathAsReference` / `decodePathFromReference`).
//!
//! An encoded reference is the magic number `05 5F 3F 18` followed by the
//! UTF-8 bytes of a path string. Decoding checks, in Flink's order: default
//! reference, length (must exceed the magic), magic. Unlike Flink we reject
//! invalid UTF-8 and NUL bytes instead of guessing a path.

use crate::error::{Result, StorageError};
use std::fmt;

/// Flink's `REFERENCE_MAGIC_NUMBER`.
pub const REFERENCE_MAGIC_NUMBER: [u8; 4] = [0x05, 0x5F, 0x3F, 0x18];

/// A location reference: the default location, or encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocationReference {
    Default,
    Encoded(Vec<u8>),
}

impl LocationReference {
    /// Encodes a path string as Flink does: magic ++ UTF-8 of the string
    /// Flink's `Path` makes of it ([`flink_path_string`]), so that the bytes
    /// equal Flink's for the same path however it was spelled.
    pub fn encode_path(path: &str) -> Self {
        let path = flink_path_string(path);
        let mut bytes = Vec::with_capacity(REFERENCE_MAGIC_NUMBER.len() + path.len());
        bytes.extend_from_slice(&REFERENCE_MAGIC_NUMBER);
        bytes.extend_from_slice(path.as_bytes());
        LocationReference::Encoded(bytes)
    }

    /// Wraps encoded bytes; like Flink's public constructor it refuses an
    /// empty array (the default reference is `Default`, not empty bytes).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if bytes.is_empty() {
            return Err(StorageError::invalid_reference(
                "An encoded location reference must not be empty; use the default reference instead.",
            ));
        }
        Ok(LocationReference::Encoded(bytes))
    }

    pub fn is_default(&self) -> bool {
        matches!(self, LocationReference::Default)
    }

    /// The reference bytes; empty for the default reference (as Flink's
    /// `getReferenceBytes`).
    pub fn bytes(&self) -> &[u8] {
        match self {
            LocationReference::Default => &[],
            LocationReference::Encoded(b) => b,
        }
    }

    /// Decodes the path string of an encoded reference, with Flink's checks
    /// and messages. The string is not yet a validated path.
    pub fn decode_path(&self) -> Result<&str> {
        let bytes = match self {
            LocationReference::Default => {
                return Err(StorageError::invalid_reference("Cannot decode default reference"));
            }
            LocationReference::Encoded(bytes) => bytes,
        };
        if bytes.len() <= REFERENCE_MAGIC_NUMBER.len() {
            return Err(StorageError::invalid_reference(format!(
                "Reference too short. An encoded reference is the magic number 055f3f18 followed by a path; got {} byte(s): {}",
                bytes.len(),
                self
            )));
        }
        if bytes[..4] != REFERENCE_MAGIC_NUMBER {
            return Err(StorageError::invalid_reference(format!(
                "Reference starts with the wrong magic number: expected 055f3f18, got {}",
                hex(&bytes[..4])
            )));
        }
        let path = std::str::from_utf8(&bytes[4..]).map_err(|e| {
            StorageError::invalid_reference(format!(
                "Reference cannot be decoded to a path: the path bytes are not valid UTF-8 ({e}); reference {self}"
            ))
        })?;
        if path.contains('\0') {
            return Err(StorageError::invalid_reference(format!(
                "Reference cannot be decoded to a path: the path contains a NUL byte; reference {self}"
            )));
        }
        Ok(path)
    }
}

/// Flink's `toString`: `(default)` or the lowercase hex of the bytes.
impl fmt::Display for LocationReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationReference::Default => f.write_str("(default)"),
            LocationReference::Encoded(bytes) => f.write_str(&hex(bytes)),
        }
    }
}

/// The string Flink's `org.apache.flink.core.fs.Path` makes of `raw` (what
/// `encodePathAsReference` encodes): surrounding whitespace trimmed; a
/// scheme (a colon before the first `/`) and an authority (`//host`) kept
/// as written, an empty authority dropped (`file:///x` is `file:/x`); in the
/// path, runs of `/` collapse, a trailing `/` goes (not the root's), and `.`
/// and `..` segments resolve as `URI.normalize` resolves them (a `..` above
/// the root stays). Spaces and non-ASCII stay raw: `Path.toString` prints
/// the decoded path. Unlike Flink's `Path`, a backslash stays an ordinary
/// character: guest paths keep it, and the reference must name the same
/// directory the coordinator created.
pub fn flink_path_string(raw: &str) -> String {
    let raw = raw.trim_matches(|c: char| c <= ' ');
    let (scheme, rest) = match (raw.find(':'), raw.find('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon < s) => (Some(&raw[..colon]), &raw[colon + 1..]),
        _ => (None, raw),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) if !after.is_empty() => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        _ => (None, rest),
    };
    let mut out = String::with_capacity(raw.len());
    if let Some(s) = scheme {
        out.push_str(s);
        out.push(':');
    }
    if let Some(a) = authority.filter(|a| !a.is_empty()) {
        out.push_str("//");
        out.push_str(a);
    }
    out.push_str(&normalized_path(path));
    out
}

/// Flink's `Path.normalizePath` followed by `URI.normalize`, for the path
/// part.
fn normalized_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    // `URI.normalize` leaves a `/` after a last segment it resolved away.
    let mut trailing = false;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        trailing = false;
        match segment {
            "." => trailing = true,
            ".." if segments.last().is_some_and(|s| *s != "..") => {
                segments.pop();
                trailing = true;
            }
            ".." if absolute || !segments.is_empty() => segments.push(".."),
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    if absolute {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use proptest::prelude::*;

    #[test]
    fn encoding_is_magic_then_utf8_path() {
        let r = LocationReference::encode_path("/a/b");
        assert_eq!(r.to_string(), "055f3f182f612f62");
        assert_eq!(r.decode_path().unwrap(), "/a/b");
    }

    #[test]
    fn default_reference_cannot_be_decoded() {
        let e = LocationReference::Default.decode_path().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidReference);
        assert_eq!(e.message, "Cannot decode default reference");
        assert_eq!(LocationReference::Default.to_string(), "(default)");
        assert!(LocationReference::Default.bytes().is_empty());
    }

    #[test]
    fn too_short_is_checked_before_magic() {
        for bytes in [vec![0u8, 0], vec![1, 2, 3, 4], REFERENCE_MAGIC_NUMBER.to_vec()] {
            let e = LocationReference::Encoded(bytes).decode_path().unwrap_err();
            assert!(e.message.starts_with("Reference too short."), "{}", e.message);
        }
    }

    #[test]
    fn garbage_has_wrong_magic() {
        let e = LocationReference::Encoded((1..=12).collect())
            .decode_path()
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidReference);
        assert!(e.message.starts_with("Reference starts with the wrong magic number"));
    }

    #[test]
    fn invalid_utf8_and_nul_are_rejected() {
        let mut bad = REFERENCE_MAGIC_NUMBER.to_vec();
        bad.extend_from_slice(&[b'/', 0xff, 0xfe]);
        let e = LocationReference::Encoded(bad).decode_path().unwrap_err();
        assert!(e.message.contains("not valid UTF-8"));
        let e = LocationReference::encode_path("/a\0b").decode_path().unwrap_err();
        assert!(e.message.contains("NUL"));
    }

    #[test]
    fn empty_bytes_are_not_a_reference() {
        assert_eq!(
            LocationReference::from_bytes(vec![]).unwrap_err().code,
            ErrorCode::InvalidReference
        );
        assert!(LocationReference::from_bytes(vec![1]).is_ok());
    }

    /// The bytes Flink 2.3.0 encodes for these spellings (its `Path`
    /// normalises before encoding).
    #[test]
    fn paths_are_encoded_as_flinks_path_prints_them() {
        for (raw, flink) in [
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b"),
            ("file:///tmp/x", "file:/tmp/x"),
            ("file:/tmp/x/", "file:/tmp/x"),
            ("s3://bucket/a//b/", "s3://bucket/a/b"),
            ("  /a/b \n", "/a/b"),
            ("/a\\b", "/a\\b"),
            ("/a/./b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/../a", "/../a"),
            ("/", "/"),
            ("/with space/é", "/with space/é"),
        ] {
            let r = LocationReference::encode_path(raw);
            assert_eq!(r.decode_path().unwrap(), flink, "{raw:?}");
            assert_eq!(r.bytes()[..4], REFERENCE_MAGIC_NUMBER);
        }
    }

    proptest! {
        #[test]
        // Without `.` segments (after which Flink leaves a `/` that a second
        // pass drops) and surrounding whitespace, Flink's form is a fixed point.
        fn normal_paths_round_trip_and_encoding_is_idempotent(path in "[a-zé/\\\\:]{1,32}") {
            // Flink refuses a path that trims to nothing; so does decoding.
            prop_assume!(!flink_path_string(&path).is_empty());
            let r = LocationReference::encode_path(&path);
            let once = r.decode_path().unwrap().to_string();
            let twice = LocationReference::encode_path(&once);
            prop_assert_eq!(twice.decode_path().unwrap(), once.as_str());
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = LocationReference::Encoded(bytes).decode_path();
        }
    }
}
