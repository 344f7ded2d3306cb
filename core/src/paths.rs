//! Guest paths: parsing and lexical normalisation.
//!
//! Every path the component handles is an absolute, normalised guest path
//! (`/checkpoints/<job>/chk-1`): no `.`, no `..`, no empty segments, no
//! trailing `/`. Parsing is where bad paths are refused; the WASI preopen is
//! the second wall, not the only one.

use std::fmt;

/// Why a path string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path '{0}' is relative; an absolute path (starting with '/') is required")]
    Relative(String),
    #[error("the path '{0}' uses '..' to climb above the root directory")]
    ClimbsAboveRoot(String),
    #[error(
        "the path '{0}' uses the scheme '{1}', which this build does not support; only local paths (no scheme, or 'file:') are supported"
    )]
    UnsupportedScheme(String, String),
    #[error("the path '{0}' names the host '{1}'; 'file:' paths must not name a host")]
    RemoteFile(String, String),
}

/// An absolute, lexically normalised guest path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestPath(String);

impl GuestPath {
    /// The root `/`.
    pub fn root() -> Self {
        GuestPath("/".to_string())
    }

    /// Parses a path as Flink's `Path` would accept it for the local file
    /// system: a plain absolute path or a `file:` URI (`file:/x`, `file:///x`).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        let path = match split_scheme(raw) {
            None => raw,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => match rest.strip_prefix("//") {
                Some(after) => {
                    let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                    if !authority.is_empty() {
                        return Err(PathError::RemoteFile(raw.to_string(), authority.to_string()));
                    }
                    path
                }
                None => rest,
            },
            Some((scheme, _)) => {
                return Err(PathError::UnsupportedScheme(raw.to_string(), scheme.to_string()));
            }
        };
        if !path.starts_with('/') {
            return Err(PathError::Relative(raw.to_string()));
        }
        // Every view parses paths, on the path of a tenant's start, and
        // they are mostly normal already: then they are taken as they are.
        if is_normal(path) {
            return Ok(GuestPath(path.to_owned()));
        }
        // Otherwise built in place.
        let mut normal = String::with_capacity(path.len());
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => match normal.rfind('/') {
                    Some(last) => normal.truncate(last),
                    None => return Err(PathError::ClimbsAboveRoot(raw.to_string())),
                },
                s => {
                    normal.push('/');
                    normal.push_str(s);
                }
            }
        }
        if normal.is_empty() {
            normal.push('/');
        }
        Ok(GuestPath(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as a `String`, without a copy. Unlike `to_string`, which
    /// goes through the formatting machinery and with it indirect calls
    /// (see `any_stream` for why the component avoids them where it can).
    pub fn into_string(self) -> String {
        self.0
    }

    /// This path with one more segment. `name` must be a single plain
    /// segment (callers pass names they made: UUIDs, `chk-N`, job ids).
    pub fn join(&self, name: &str) -> GuestPath {
        debug_assert!(!name.is_empty() && !name.contains('/') && name != "." && name != "..");
        let base = if self.0 == "/" { "" } else { self.0.as_str() };
        let mut joined = String::with_capacity(base.len() + 1 + name.len());
        joined.push_str(base);
        joined.push('/');
        joined.push_str(name);
        GuestPath(joined)
    }

    /// The last segment; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.0 == "/" { None } else { self.0.rsplit('/').next() }
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<GuestPath> {
        if self.0 == "/" {
            return None;
        }
        let idx = self.0.rfind('/').unwrap_or(0);
        Some(if idx == 0 {
            GuestPath::root()
        } else {
            GuestPath(self.0[..idx].to_string())
        })
    }

    /// Whether `self` is `dir` or lies below it (component-wise, so
    /// `/checkpoints2` is not inside `/checkpoints`).
    pub fn is_inside(&self, dir: &GuestPath) -> bool {
        self.relative_to(dir).is_some()
    }

    /// The path below `dir` without a leading `/` (`""` for `dir` itself),
    /// or `None` when `self` is not inside `dir`.
    pub fn relative_to(&self, dir: &GuestPath) -> Option<&str> {
        if dir.0 == "/" {
            return Some(&self.0[1..]);
        }
        let rest = self.0.strip_prefix(dir.0.as_str())?;
        if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix('/')
        }
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `path`, which starts with `/`, is already in the normal form:
/// the root, or segments that are neither empty (`//`, a trailing `/`) nor
/// `.` or `..`. A byte scan, cheaper than splitting at a `char` pattern.
fn is_normal(path: &str) -> bool {
    path == "/"
        || path
            .as_bytes()
            .split(|&b| b == b'/')
            .skip(1)
            .all(|segment| !matches!(segment, b"" | b"." | b".."))
}

/// Splits `scheme:rest` when the string starts with a URI scheme (letters,
/// digits, `+-.`, starting with a letter) followed by `:` before any `/`.
fn split_scheme(raw: &str) -> Option<(&str, &str)> {
    let colon = raw.find(':')?;
    let scheme = &raw[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    Some((scheme, &raw[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> String {
        GuestPath::parse(s).unwrap().0
    }

    #[test]
    fn normalises_lexically() {
        assert_eq!(p("/a/b"), "/a/b");
        assert_eq!(p("/a//b/"), "/a/b");
        assert_eq!(p("/a/./b/."), "/a/b");
        assert_eq!(p("/a/x/../b"), "/a/b");
        assert_eq!(p("/"), "/");
        assert_eq!(p("//"), "/");
        assert_eq!(p("/a/.."), "/");
    }

    #[test]
    fn accepts_file_scheme_as_local_path() {
        assert_eq!(p("file:/x/y"), "/x/y");
        assert_eq!(p("file:///x/y"), "/x/y");
        assert_eq!(p("FILE:///x/y/"), "/x/y");
    }

    #[test]
    fn refuses_other_schemes_and_remote_files() {
        assert!(matches!(GuestPath::parse("hdfs://nn:8020/x"), Err(PathError::UnsupportedScheme(_, s)) if s == "hdfs"));
        assert!(matches!(GuestPath::parse("s3://bucket/x"), Err(PathError::UnsupportedScheme(_, s)) if s == "s3"));
        assert!(matches!(GuestPath::parse("file://host/x"), Err(PathError::RemoteFile(_, h)) if h == "host"));
    }

    #[test]
    fn refuses_relative_empty_nul_and_climbing() {
        assert_eq!(GuestPath::parse(""), Err(PathError::Empty));
        assert_eq!(GuestPath::parse("/a\0"), Err(PathError::Nul));
        assert!(matches!(GuestPath::parse("a/b"), Err(PathError::Relative(_))));
        assert!(matches!(GuestPath::parse("file:a/b"), Err(PathError::Relative(_))));
        assert!(matches!(GuestPath::parse("./a"), Err(PathError::Relative(_))));
        assert!(matches!(GuestPath::parse("/.."), Err(PathError::ClimbsAboveRoot(_))));
        assert!(matches!(
            GuestPath::parse("/a/../../etc"),
            Err(PathError::ClimbsAboveRoot(_))
        ));
        // A colon after a slash is part of the path, not a scheme.
        assert_eq!(p("/a:b/c"), "/a:b/c");
    }

    #[test]
    fn containment_is_component_wise() {
        let dir = GuestPath::parse("/checkpoints").unwrap();
        assert!(GuestPath::parse("/checkpoints").unwrap().is_inside(&dir));
        assert_eq!(
            GuestPath::parse("/checkpoints/a/b").unwrap().relative_to(&dir),
            Some("a/b")
        );
        assert!(!GuestPath::parse("/checkpoints2/a").unwrap().is_inside(&dir));
        assert!(!GuestPath::parse("/").unwrap().is_inside(&dir));
        assert_eq!(
            GuestPath::parse("/x").unwrap().relative_to(&GuestPath::root()),
            Some("x")
        );
    }

    #[test]
    fn normal_paths_are_taken_as_they_are_others_normalised() {
        for normal in ["/", "/a", "/checkpoints/job/chk-1", "/..a", "/a./b", "/.x"] {
            assert!(is_normal(normal), "{normal}");
            assert_eq!(GuestPath::parse(normal).unwrap().as_str(), normal);
        }
        for (raw, normal) in [
            ("/a/", "/a"),
            ("//a", "/a"),
            ("/./a", "/a"),
            ("/a/..", "/"),
            ("/a/.", "/a"),
            ("//", "/"),
        ] {
            assert!(!is_normal(raw), "{raw}");
            assert_eq!(GuestPath::parse(raw).unwrap().as_str(), normal, "{raw}");
        }
    }

    #[test]
    fn join_parent_and_file_name() {
        let a = GuestPath::parse("/a").unwrap();
        let ab = a.join("b");
        assert_eq!(ab.as_str(), "/a/b");
        assert_eq!(ab.file_name(), Some("b"));
        assert_eq!(ab.parent(), Some(a.clone()));
        assert_eq!(a.parent(), Some(GuestPath::root()));
        assert_eq!(GuestPath::root().join("x").as_str(), "/x");
        assert_eq!(GuestPath::root().file_name(), None);
    }

    proptest! {
        #[test]
        fn parsed_paths_are_normal_and_idempotent(raw in "(/|\\.\\./|\\./|a/|bc/|//|file:){0,8}[a-z.]{0,3}") {
            if let Ok(path) = GuestPath::parse(&raw) {
                let s = path.as_str();
                prop_assert!(s.starts_with('/'));
                prop_assert!(s == "/" || !s.ends_with('/'));
                prop_assert!(s == "/" || !s.split('/').skip(1).any(|seg| seg.is_empty() || seg == "." || seg == ".."), "{}", s);
                prop_assert_eq!(GuestPath::parse(s).unwrap(), path.clone());
            }
        }

        /// Normalisation is the textbook one: a stack of segments, `..`
        /// pops (refused on an empty stack), the result joined under `/`.
        #[test]
        fn parsing_normalises_as_a_segment_stack(raw in "/(\\.\\./|\\./|a/|bc/|//|\\.\\.|\\.){0,10}[a-z.]{0,3}") {
            let mut stack: Vec<&str> = Vec::new();
            let mut climbs = false;
            for segment in raw.split('/') {
                match segment {
                    "" | "." => {}
                    ".." => climbs |= stack.pop().is_none(),
                    s => stack.push(s),
                }
            }
            match GuestPath::parse(&raw) {
                Ok(path) => {
                    prop_assert!(!climbs, "{} was accepted", raw);
                    prop_assert_eq!(path.as_str(), format!("/{}", stack.join("/")));
                }
                Err(e) => {
                    prop_assert!(climbs, "{}: {}", raw, e);
                    prop_assert_eq!(e, PathError::ClimbsAboveRoot(raw.clone()));
                }
            }
        }

        #[test]
        fn join_adds_one_segment(raw in "/([a-c]{1,3}/){0,3}[a-c]{0,3}", name in "[a-z0-9-]{1,8}") {
            let base = GuestPath::parse(&raw).unwrap();
            let joined = base.join(&name);
            prop_assert_eq!(joined.parent(), Some(base.clone()));
            prop_assert_eq!(joined.file_name(), Some(name.as_str()));
            prop_assert_eq!(GuestPath::parse(joined.as_str()).unwrap(), joined.clone());
        }
    }
}
