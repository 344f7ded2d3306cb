//! Object names from a tenant, checked and placed below the tenant's prefix.
//!
//! A tenant names objects with any string it likes; only names made of
//! plain segments reach the store, and always below the grant's prefix, so
//! that no name reaches another tenant's keys: no empty, `.` or `..`
//! segments, no leading `/`, only characters that mean the same to every
//! S3 implementation (no `%`, so no percent-encoded `/` or `..`), and a
//! bounded length.

use object_store::path::Path;

/// S3's limit on the length of a whole key, prefix included.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No name at all.
    #[error("the object name is empty")]
    Empty,
    /// An empty, `.` or `..` segment.
    #[error("the object name '{0}' has an empty, '.' or '..' segment; names are plain '/'-separated segments")]
    BadSegment(String),
    /// A character outside S3's safe set (the name, the character).
    #[error(
        "the object name '{0}' contains '{1}'; names may hold only ASCII letters, digits and -_.=+!*'(),@~ between '/'"
    )]
    BadCharacter(String, char),
    /// Longer than S3 allows, with the prefix (its length).
    #[error("the object name is {0} bytes long with its prefix; S3 allows at most {MAX_KEY_BYTES}")]
    TooLong(usize),
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.=+!*'(),@~".contains(c)
}

/// Checks a prefix or name: plain segments of allowed characters.
fn check_segments(name: &str) -> Result<(), KeyError> {
    if name.is_empty() {
        return Err(KeyError::Empty);
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(KeyError::BadSegment(name.to_string()));
        }
        if let Some(c) = segment.chars().find(|&c| !allowed(c)) {
            return Err(KeyError::BadCharacter(name.to_string(), c));
        }
    }
    Ok(())
}

/// Checks a grant's prefix (empty: the whole store).
pub fn check_prefix(prefix: &str) -> Result<(), KeyError> {
    if prefix.is_empty() {
        Ok(())
    } else {
        check_segments(prefix)
    }
}

/// The store path of a tenant's object `name` below `prefix`.
pub fn object_path(prefix: &str, name: &str) -> Result<Path, KeyError> {
    check_segments(name)?;
    let full = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    if full.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong(full.len()));
    }
    // Every segment was checked above, so parsing cannot fail or alter it.
    Path::parse(&full).map_err(|_| KeyError::BadSegment(name.to_string()))
}

/// The store path of the whole prefix (for listing).
pub fn prefix_path(prefix: &str) -> Option<Path> {
    (!prefix.is_empty()).then(|| Path::from_iter(prefix.split('/')))
}

/// A store path's name relative to the prefix, if it lies below it.
pub fn name_below(prefix: &str, path: &Path) -> Option<String> {
    let full = path.as_ref();
    if prefix.is_empty() {
        return Some(full.to_string());
    }
    full.strip_prefix(prefix)?.strip_prefix('/').map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_below_the_prefix() {
        let p = object_path("tenants/a", "job/chk-1/x").unwrap();
        assert_eq!(p.as_ref(), "tenants/a/job/chk-1/x");
        assert_eq!(name_below("tenants/a", &p).as_deref(), Some("job/chk-1/x"));
        assert_eq!(name_below("tenants/b", &p), None);
        assert_eq!(name_below("tenants/a/jo", &p), None);
        assert_eq!(object_path("", "x").unwrap().as_ref(), "x");
    }

    #[test]
    fn crafted_names_are_refused() {
        for name in [
            "", "/x", "x/", "a//b", "..", "a/../b", "./a", "a/.", "%2F..", "a%2Fb", "a\\b", "a b", "é", "a\0b",
        ] {
            assert!(object_path("t", name).is_err(), "{name:?} accepted");
        }
        let long = "x".repeat(MAX_KEY_BYTES);
        assert!(matches!(object_path("t", &long), Err(KeyError::TooLong(_))));
    }

    #[test]
    fn prefixes_are_checked_too() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("a/b").is_ok());
        assert!(check_prefix("a/../b").is_err());
        assert!(check_prefix("/a").is_err());
    }
}
