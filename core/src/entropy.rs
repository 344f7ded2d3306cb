//! Entropy injection for object storage, as Flink's S3 file systems do it
//! (`s3.entropy.key`, `s3.entropy.length`).
//!
//! S3 partitions a bucket by key prefix; checkpoints of many tasks written
//! below one prefix all hit one partition. With a marker in the checkpoints
//! directory (`s3://bucket/_entropy_/checkpoints`), every *data* object gets
//! random characters in place of the marker, which spreads the writes. The
//! marker is *removed* from the paths that must be found again without a
//! handle: `_metadata` and the completed checkpoint's directory pointer.
//! Only the first occurrence of the marker counts, as in Flink, and only
//! after the container: paths here are guest paths `/<container>/<key>`,
//! and Flink looks for the marker in the URI's path, never in the bucket.

use crate::error::{Result, StorageError};

/// `s3.entropy.length` when not set (Flink's default).
pub const DEFAULT_ENTROPY_LENGTH: u32 = 4;

/// Largest `s3.entropy.length` accepted: the characters replace a path
/// segment, and S3 keys are at most 1024 bytes (Flink sets no bound; this
/// one keeps a typo from asking the sandbox for gigabytes).
pub const MAX_ENTROPY_LENGTH: u32 = 64;

/// Characters Flink refuses in the marker (they are special in URIs).
const INVALID_KEY_CHARS: &[char] = &[
    '~', '#', '@', '*', '+', '%', '{', '}', '<', '>', '[', ']', '|', '"', '\\',
];

/// The characters injected: ASCII letters and digits, as Flink's S3 file
/// systems generate them.
const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Validated entropy options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entropy {
    key: String,
    length: usize,
}

impl Entropy {
    /// Checks the options as Flink's S3 file system factory does; `None`
    /// without a key (no entropy injection).
    pub fn from_options(key: Option<&str>, length: Option<u32>) -> Result<Option<Entropy>> {
        let Some(key) = key else {
            return match length {
                Some(_) => Err(StorageError::invalid_argument(
                    "s3.entropy.length is set but s3.entropy.key is not; set the marker too, or neither.",
                )),
                None => Ok(None),
            };
        };
        if key.is_empty() || key.contains('/') || key.contains(INVALID_KEY_CHARS) {
            return Err(StorageError::invalid_argument(format!(
                "Invalid character in value for s3.entropy.key : '{key}'. The marker must be non-empty and \
                 free of '/' and of ~#@*+%{{}}<>[]|\"\\."
            )));
        }
        let length = length.unwrap_or(DEFAULT_ENTROPY_LENGTH);
        if length == 0 || length > MAX_ENTROPY_LENGTH {
            return Err(StorageError::invalid_argument(format!(
                "s3.entropy.length must configure a value > 0 and at most {MAX_ENTROPY_LENGTH}; got {length}."
            )));
        }
        Ok(Some(Entropy {
            key: key.to_string(),
            length: length as usize,
        }))
    }

    /// The marker.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether `path` holds the marker (Flink's `isEntropyInjecting`).
    pub fn is_injecting(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    /// Where the first marker after the container segment starts.
    fn find(&self, path: &str) -> Option<usize> {
        let key_start = path
            .strip_prefix('/')
            .and_then(|rest| rest.find('/'))
            .map_or(path.len(), |i| i + 1);
        path[key_start..].find(&self.key).map(|i| key_start + i)
    }

    /// `path` with its first marker replaced by random characters drawn
    /// from `random` (16 random bytes per call).
    pub fn inject(&self, path: &str, random: &mut dyn FnMut() -> [u8; 16]) -> String {
        let Some(at) = self.find(path) else {
            return path.to_string();
        };
        let mut chars = String::with_capacity(self.length);
        while chars.len() < self.length {
            // Bytes of 248 and above are skipped: 248 = 4 * 62, so every
            // character is equally likely.
            for b in random().into_iter().filter(|b| *b < 248) {
                if chars.len() == self.length {
                    break;
                }
                chars.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
        format!("{}{chars}{}", &path[..at], &path[at + self.key.len()..])
    }

    /// Whether `path` is `template` with its first marker replaced by the
    /// characters [`Self::inject`] draws (as many as the length, from its
    /// alphabet): a path this entropy made from the template. A template
    /// without the marker matches only itself.
    pub fn is_injected_form_of(&self, template: &str, path: &str) -> bool {
        let Some(at) = self.find(template) else {
            return path == template;
        };
        let (head, tail) = (&template[..at], &template[at + self.key.len()..]);
        path.len() == head.len() + self.length + tail.len()
            && path.starts_with(head)
            && path.ends_with(tail)
            && path.as_bytes()[head.len()..head.len() + self.length]
                .iter()
                .all(|b| ALPHABET.contains(b))
    }

    /// `path` without its first marker; the empty segment a whole-segment
    /// marker leaves is dropped (`/b/_entropy_/c` becomes `/b/c`), as
    /// Flink's URI normalisation does.
    pub fn remove(&self, path: &str) -> String {
        let Some(at) = self.find(path) else {
            return path.to_string();
        };
        let joined = format!("{}{}", &path[..at], &path[at + self.key.len()..]);
        let mut out = String::with_capacity(joined.len());
        for c in joined.chars() {
            if !(c == '/' && out.ends_with('/')) {
                out.push(c);
            }
        }
        if out.len() > 1 && out.ends_with('/') {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn entropy(key: &str) -> Entropy {
        Entropy::from_options(Some(key), None).unwrap().unwrap()
    }

    fn counter() -> impl FnMut() -> [u8; 16] {
        let mut n = 0u8;
        move || {
            n = n.wrapping_add(1);
            [n; 16]
        }
    }

    #[test]
    fn no_key_means_no_entropy() {
        assert_eq!(Entropy::from_options(None, None).unwrap(), None);
    }

    #[test]
    fn length_without_key_is_refused() {
        let e = Entropy::from_options(None, Some(4)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("s3.entropy.key"), "{}", e.message);
    }

    #[test]
    fn default_length_is_flinks() {
        let e = entropy("_entropy_");
        let out = e.inject("/b/_entropy_/ck/x", &mut counter());
        let segment = out.split('/').nth(2).unwrap();
        assert_eq!(segment.len(), DEFAULT_ENTROPY_LENGTH as usize);
        assert!(segment.bytes().all(|b| b.is_ascii_alphanumeric()), "{out}");
    }

    #[test]
    fn invalid_markers_are_refused() {
        for key in ["", "a/b", "x#", "%2F", "a*", "[e]", "back\\slash", "q\""] {
            let e = Entropy::from_options(Some(key), None).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{key}");
            assert!(e.message.contains("s3.entropy.key"), "{}", e.message);
        }
    }

    #[test]
    fn lengths_out_of_range_are_refused() {
        for length in [0, MAX_ENTROPY_LENGTH + 1, u32::MAX] {
            let e = Entropy::from_options(Some("_e_"), Some(length)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains(&length.to_string()), "{}", e.message);
        }
        assert!(Entropy::from_options(Some("_e_"), Some(MAX_ENTROPY_LENGTH)).is_ok());
    }

    #[test]
    fn injection_replaces_the_first_marker_only() {
        let e = Entropy::from_options(Some("s0mek3y"), Some(7)).unwrap().unwrap();
        let out = e.inject("/path/s0mek3y/the/s0mek3y/file", &mut counter());
        assert!(out.starts_with("/path/"), "{out}");
        assert!(out.ends_with("/the/s0mek3y/file"), "{out}");
        assert_eq!(out.len(), "/path//the/s0mek3y/file".len() + 7);
        assert!(!out[6..13].contains("s0mek3y"));
    }

    #[test]
    fn injected_paths_are_recognised_by_their_template() {
        let e = Entropy::from_options(Some("_e_"), Some(4)).unwrap().unwrap();
        let template = "/b/_e_/ck/job/shared";
        let injected = e.inject(template, &mut counter());
        assert!(e.is_injected_form_of(template, &injected), "{injected}");
        for other in [
            "/b/abc/ck/job/shared",    // too short
            "/b/abcde/ck/job/shared",  // too long
            "/b/ab-d/ck/job/shared",   // not from the alphabet
            "/b/abcd/ck/job/shared/x", // below it
            "/b/abcd/ck/other/shared", // elsewhere
            "/c/abcd/ck/job/shared",   // another container
            "/b/_e_/ck/job/shared",    // the template itself has the marker
        ] {
            assert!(!e.is_injected_form_of(template, other), "{other}");
        }
        assert!(e.is_injected_form_of("/b/ck/job/shared", "/b/ck/job/shared"));
        assert!(!e.is_injected_form_of("/b/ck/job/shared", "/b/abcd/ck/job/shared"));
    }

    #[test]
    fn injection_draws_fresh_characters_each_time() {
        let e = Entropy::from_options(Some("_e_"), Some(16)).unwrap().unwrap();
        let mut random = counter();
        let a = e.inject("/b/_e_/x", &mut random);
        let b = e.inject("/b/_e_/x", &mut random);
        assert_ne!(a, b);
    }

    #[test]
    fn injection_skips_biased_bytes() {
        let e = Entropy::from_options(Some("_e_"), Some(3)).unwrap().unwrap();
        let mut calls = 0;
        let mut random = || {
            calls += 1;
            if calls == 1 { [255; 16] } else { [0; 16] }
        };
        assert_eq!(e.inject("/b/_e_", &mut random), "/b/aaa");
    }

    #[test]
    fn paths_without_the_marker_are_unchanged() {
        let e = entropy("_entropy_");
        assert!(!e.is_injecting("/b/ck/x"));
        assert_eq!(e.inject("/b/ck/x", &mut counter()), "/b/ck/x");
        assert_eq!(e.remove("/b/ck/x"), "/b/ck/x");
    }

    #[test]
    fn the_container_is_never_touched() {
        let e = entropy("_e_");
        assert!(!e.is_injecting("/_e_/ck/x"));
        assert_eq!(e.inject("/_e_/ck/x", &mut counter()), "/_e_/ck/x");
        assert_eq!(e.remove("/_e_/ck/x"), "/_e_/ck/x");
        assert_eq!(e.remove("/_e_/_e_/x"), "/_e_/x");
    }

    #[test]
    fn removal_drops_the_marker_and_its_empty_segment() {
        let e = entropy("s0mek3y");
        assert!(e.is_injecting("/path/s0mek3y/the/file"));
        assert_eq!(e.remove("/path/s0mek3y/the/file"), "/path/the/file");
        assert_eq!(e.remove("/path/the/s0mek3y"), "/path/the");
        assert_eq!(e.remove("/path/pre_s0mek3y_post/x"), "/path/pre__post/x");
    }
}
