//! A storage key: a path below the layout root (`blobs/sha256/ab/<hex>/data`), validated once.
//!
//! Keys come from listings and from plan files a person can edit (that is the point of
//! reviewing a plan). A key is joined to a directory (the filesystem backend) or to a prefix
//! (object stores), so one with an absolute start, an empty component, `.` or `..` could name
//! something outside the registry. Every backend and the plan reader parse keys through
//! [`StorageKey::parse`], so the rule exists once and a `StorageKey` in hand is known to stay
//! inside the root (object_store's `Path::parse` is the model: parse once, then trust the type).
//!
//! Control characters are not refused: a repository created by hand with one is still the
//! registry's storage, and its garbage must stay collectable. They are escaped wherever a key
//! is shown to a person ([`crate::escape`]).

use std::fmt;

/// A validated key below the layout root; `""` is the root itself.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageKey<'a>(&'a str);

/// Why a string is not a key inside the storage.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a path inside the storage: an absolute path")]
    Absolute,
    #[error("not a path inside the storage: an empty path component")]
    EmptyComponent,
    #[error("not a path inside the storage: a . or .. component")]
    DotComponent,
}

impl<'a> StorageKey<'a> {
    /// The layout root.
    pub const ROOT: StorageKey<'static> = StorageKey("");

    /// Accept `key` if it cannot leave the directory or prefix it is joined to.
    pub fn parse(key: &'a str) -> Result<StorageKey<'a>, KeyError> {
        if key.is_empty() {
            return Ok(StorageKey(key));
        }
        if key.starts_with('/') {
            return Err(KeyError::Absolute);
        }
        let mut dots = false;
        for c in key.split('/') {
            if c.is_empty() {
                return Err(KeyError::EmptyComponent);
            }
            dots |= c == "." || c == "..";
        }
        if dots {
            return Err(KeyError::DotComponent);
        }
        Ok(StorageKey(key))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for StorageKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl AsRef<str> for StorageKey<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inside_the_root_parse_and_others_say_why() {
        for ok in [
            "",
            "blobs/sha256/ab/x/data",
            "repositories/a/_layers",
            "a..b/c.d",
            ".hidden",
        ] {
            assert_eq!(StorageKey::parse(ok).map(|k| k.as_str()), Ok(ok), "{ok}");
        }
        assert!(StorageKey::parse("").unwrap().is_root());
        let cases = [
            ("/etc/passwd", KeyError::Absolute),
            ("/", KeyError::Absolute),
            ("a//b", KeyError::EmptyComponent),
            ("a/", KeyError::EmptyComponent),
            ("..", KeyError::DotComponent),
            ("a/../../etc", KeyError::DotComponent),
            ("repositories/./x", KeyError::DotComponent),
        ];
        for (bad, why) in cases {
            assert_eq!(StorageKey::parse(bad), Err(why), "{bad}");
        }
    }
}
