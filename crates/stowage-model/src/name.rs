//! Repository and tag names.
//!
//! When *reading* storage we accept what the storage driver can hold (path components of
//! `[A-Za-z0-9._-]`, none starting with `_`, which marks registry metadata) and separately say
//! whether a name also satisfies the registry's strict grammar (lowercase components
//! `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, at most 255 characters). A name outside the strict
//! grammar is reported as a finding, never rejected: it is on disk, so the operator must see it.

use std::fmt;

/// A repository name such as `team/app/api` (components joined by `/`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RepositoryName(String);

/// Why a name cannot be a repository name even when reading leniently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("empty name or empty path component")]
    EmptyComponent,
    #[error("component {0:?} starts with '_', which is reserved for registry metadata")]
    Reserved(String),
    #[error("component {0:?} has characters outside [A-Za-z0-9._-]")]
    BadCharacters(String),
    #[error("tag {0:?} does not match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    BadTag(String),
}

/// A single path component the storage driver accepts (`[A-Za-z0-9._-]+`).
pub fn is_driver_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The registry's strict grammar for one repository-name component.
fn is_strict_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let run = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && alnum(b[*i]) {
            *i += 1;
        }
        *i > s
    };
    if !run(&mut i) {
        return false;
    }
    while i < b.len() {
        let sep_start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == sep_start || !run(&mut i) {
            return false;
        }
    }
    true
}

impl RepositoryName {
    /// Accept a name as the storage holds it.
    pub fn parse_lenient(name: &str) -> Result<RepositoryName, NameError> {
        if name.is_empty() {
            return Err(NameError::EmptyComponent);
        }
        for c in name.split('/') {
            if c.is_empty() {
                return Err(NameError::EmptyComponent);
            }
            if c.starts_with('_') {
                return Err(NameError::Reserved(c.to_owned()));
            }
            if !is_driver_component(c) {
                return Err(NameError::BadCharacters(c.to_owned()));
            }
        }
        Ok(RepositoryName(name.to_owned()))
    }

    /// Keep a name found on storage even though it breaks the lenient grammar (say, a space
    /// in a directory name): it is on disk, so it must stay visible, and everything it
    /// references stays protected. A finding reports it.
    pub fn from_storage_unchecked(name: &str) -> RepositoryName {
        RepositoryName(name.to_owned())
    }

    /// Whether the name also satisfies the registry's strict grammar (what a push accepts).
    pub fn is_strict(&self) -> bool {
        self.0.len() <= 255 && self.0.split('/').all(is_strict_component)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Path components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Whether `tag` matches the registry's tag grammar `[\w][\w.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_and_strict() {
        let n = RepositoryName::parse_lenient("team/app/api").unwrap();
        assert!(n.is_strict());
        assert_eq!(n.components().collect::<Vec<_>>(), ["team", "app", "api"]);
        let upper = RepositoryName::parse_lenient("Team/App").unwrap();
        assert!(!upper.is_strict());
        assert!(
            RepositoryName::parse_lenient("a__b/c-d/e.f")
                .unwrap()
                .is_strict()
        );
        assert!(!RepositoryName::parse_lenient("a___b").unwrap().is_strict());
        assert!(!RepositoryName::parse_lenient("a-").unwrap().is_strict());
        assert_eq!(
            RepositoryName::parse_lenient("a/_layers"),
            Err(NameError::Reserved("_layers".into()))
        );
        assert_eq!(
            RepositoryName::parse_lenient("a//b"),
            Err(NameError::EmptyComponent)
        );
        assert_eq!(
            RepositoryName::parse_lenient("a b"),
            Err(NameError::BadCharacters("a b".into()))
        );
    }

    #[test]
    fn tags() {
        for ok in [
            "latest",
            "1.0",
            "_x",
            "v1.2.3-rc.1",
            "sha256-abc.sig",
            &"a".repeat(128),
        ] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }
}
