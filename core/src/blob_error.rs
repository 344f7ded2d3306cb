//! How a `wasi:blobstore` host tells the component what kind of failure it
//! met. The 0.2.0-draft interface reports errors as plain strings; the host
//! of this project starts each with a kind and a colon (`not-found: ...`),
//! and the component reads the kind back. A string from another host that
//! has no known kind is an I/O failure, its text kept for people.

use crate::sandbox::FsErrorKind;

const KINDS: [(&str, FsErrorKind); 5] = [
    ("not-found", FsErrorKind::NotFound),
    ("already-exists", FsErrorKind::AlreadyExists),
    ("permission-denied", FsErrorKind::PermissionDenied),
    ("unsupported", FsErrorKind::Unsupported),
    ("io", FsErrorKind::Other),
];

/// The error string a host sends for a failure of `kind`.
pub fn encode(kind: FsErrorKind, detail: &str) -> String {
    let name = KINDS.iter().find(|(_, k)| *k == kind).map_or("io", |(name, _)| *name);
    format!("{name}: {detail}")
}

/// The kind of failure an error string names (`Other` when it names none).
pub fn decode(error: &str) -> FsErrorKind {
    error
        .split_once(':')
        .and_then(|(name, _)| KINDS.iter().find(|(n, _)| *n == name.trim()))
        .map_or(FsErrorKind::Other, |(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for (_, kind) in KINDS {
            assert_eq!(decode(&encode(kind, "detail: with colons")), kind);
        }
    }

    #[test]
    fn unknown_strings_are_io_failures() {
        assert_eq!(decode("connection reset"), FsErrorKind::Other);
        assert_eq!(decode("weird: thing"), FsErrorKind::Other);
        assert_eq!(decode(""), FsErrorKind::Other);
    }
}
