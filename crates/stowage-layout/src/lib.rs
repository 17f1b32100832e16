//! The distribution registry's storage path grammar (`spec/registry-storage.md` §1.2), pure.
//!
//! All paths here are relative to the layout root `<rootdirectory>/docker/registry/v2` and use
//! `/` separators, which is also how object-store keys look. Two directions:
//!
//! - builders ([`blob_data`], [`revision_link`], ...) produce the path of a known object;
//! - [`classify`] tells what an arbitrary path is (for `stowage explain`).
//!
//! Link files ([`parse_link`]) hold exactly a digest string with no newline (71 bytes for
//! sha256). Anything else is an error the caller reports; we never guess.
//!
//! ```
//! use stowage_layout::{classify, PathInfo};
//! let p = "repositories/team/app/api/_manifests/tags/latest/current/link";
//! assert!(matches!(classify(p), PathInfo::TagCurrent { ref repo, ref tag } if repo == "team/app/api" && tag == "latest"));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

use stowage_model::digest::{Digest, DigestError, Sha256};

/// The layout root below a registry's `rootdirectory`.
pub const LAYOUT_ROOT: &str = "docker/registry/v2";
/// Expected size of a sha256 link file.
pub const SHA256_LINK_LEN: u64 = 71;
/// Largest link file we read: the longest digest (sha512) plus slack. Anything bigger is not
/// a link the registry wrote.
pub const MAX_LINK_LEN: u64 = 256;

/// `blobs/<alg>/<hh>/<hex>` for a sha256 blob.
pub fn blob_dir(h: &Sha256) -> String {
    let hex = h.hex();
    format!("blobs/sha256/{}/{}", &hex[..2], hex)
}

/// `blobs/<alg>/<hh>/<hex>/data`.
pub fn blob_data(h: &Sha256) -> String {
    let mut p = blob_dir(h);
    p.push_str("/data");
    p
}

fn digest_components(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().as_str(), d.hex())
}

pub fn repository_dir(repo: &str) -> String {
    format!("repositories/{repo}")
}

pub fn layer_link(repo: &str, d: &Digest) -> String {
    format!("repositories/{repo}/_layers/{}/link", digest_components(d))
}

pub fn revision_dir(repo: &str, d: &Digest) -> String {
    format!(
        "repositories/{repo}/_manifests/revisions/{}",
        digest_components(d)
    )
}

pub fn revision_link(repo: &str, d: &Digest) -> String {
    format!("{}/link", revision_dir(repo, d))
}

pub fn tag_dir(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}")
}

pub fn tag_current_link(repo: &str, tag: &str) -> String {
    format!("{}/current/link", tag_dir(repo, tag))
}

pub fn tag_index_dir(repo: &str, tag: &str, d: &Digest) -> String {
    format!("{}/index/{}", tag_dir(repo, tag), digest_components(d))
}

pub fn tag_index_link(repo: &str, tag: &str, d: &Digest) -> String {
    format!("{}/link", tag_index_dir(repo, tag, d))
}

pub fn upload_dir(repo: &str, id: &str) -> String {
    format!("repositories/{repo}/_uploads/{id}")
}

/// Why a link file's bytes are not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("link file is empty (an interrupted write; the registry's GC aborts on it)")]
    Empty,
    #[error("link file is {0} bytes, far more than a digest")]
    TooLarge(u64),
    #[error("link content {shown} is not a digest: {error}")]
    Invalid { shown: String, error: DigestError },
}

/// Parse a link file's content strictly, as the registry's `digest.Parse` does.
pub fn parse_link(bytes: &[u8]) -> Result<Digest, LinkError> {
    if bytes.is_empty() {
        return Err(LinkError::Empty);
    }
    if bytes.len() as u64 > MAX_LINK_LEN {
        return Err(LinkError::TooLarge(bytes.len() as u64));
    }
    Digest::parse_bytes(bytes).map_err(|error| LinkError::Invalid {
        shown: show_bytes(bytes, 80),
        error,
    })
}

/// Render bytes for a message: printable ASCII as is, the rest escaped, cut at `max`.
pub fn show_bytes(bytes: &[u8], max: usize) -> String {
    let mut s = String::from("\"");
    for &b in bytes.iter().take(max) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    if bytes.len() > max {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

/// Where a path sits inside a digest-named directory (`.../<alg>/<hex>/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The `<hex>` directory itself.
    Dir,
    /// The expected file (`data` for blobs, `link` for links).
    File,
    /// Something else below it.
    Other(String),
}

/// What a path under the layout root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathInfo {
    Root,
    BlobsRoot,
    /// `blobs/<alg>` or `blobs/<alg>/<hh>`.
    BlobShard {
        path: String,
    },
    Blob {
        digest: Digest,
        part: Part,
    },
    RepositoriesRoot,
    /// A directory under `repositories/` that is a repository or a namespace.
    RepositoryDir {
        name: String,
    },
    LayersDir {
        repo: String,
    },
    LayerLink {
        repo: String,
        digest: Digest,
        part: Part,
    },
    ManifestsDir {
        repo: String,
    },
    RevisionLink {
        repo: String,
        digest: Digest,
        part: Part,
    },
    TagsDir {
        repo: String,
    },
    Tag {
        repo: String,
        tag: String,
    },
    TagCurrent {
        repo: String,
        tag: String,
    },
    TagIndexEntry {
        repo: String,
        tag: String,
        digest: Digest,
        part: Part,
    },
    UploadsDir {
        repo: String,
    },
    Upload {
        repo: String,
        id: String,
        rest: Option<String>,
    },
    /// Outside the grammar: the reason says where it breaks.
    Unknown {
        why: String,
    },
}

fn digest_at(parts: &[&str]) -> Result<(Digest, Part), String> {
    match parts {
        [alg, hex, rest @ ..] => {
            let d = Digest::from_parts(alg, hex)
                .map_err(|e| format!("{alg}/{hex} is not a digest: {e}"))?;
            let part = match rest {
                [] => Part::Dir,
                [one] if *one == "link" || *one == "data" => Part::File,
                more => Part::Other(more.join("/")),
            };
            Ok((d, part))
        }
        _ => Err("incomplete digest path".into()),
    }
}

/// Classify a path relative to the layout root. Leading `./` and `/` are ignored.
pub fn classify(path: &str) -> PathInfo {
    let p = path.trim_start_matches("./").trim_matches('/');
    let parts: Vec<&str> = if p.is_empty() {
        Vec::new()
    } else {
        p.split('/').collect()
    };
    let unknown = |why: String| PathInfo::Unknown { why };
    match parts.as_slice() {
        [] => PathInfo::Root,
        ["blobs"] => PathInfo::BlobsRoot,
        ["blobs", _] | ["blobs", _, _] => PathInfo::BlobShard { path: p.to_owned() },
        ["blobs", alg, hh, hex, rest @ ..] => {
            let mut v = vec![*alg, *hex];
            v.extend_from_slice(rest);
            match digest_at(&v) {
                Ok((digest, part)) => {
                    // Exactly the first two digits: `a38/` or `a/` is a prefix too, and the
                    // registry never looks there (issue 25, item 5).
                    if hex.get(..2) != Some(*hh) {
                        return unknown(format!(
                            "blob {hex} is under fan-out directory {hh}, not {}",
                            &hex[..2.min(hex.len())]
                        ));
                    }
                    let part = match part {
                        Part::File if rest == ["data"] => Part::File,
                        Part::File => Part::Other(rest.join("/")),
                        other => other,
                    };
                    PathInfo::Blob { digest, part }
                }
                Err(e) => unknown(e),
            }
        }
        ["repositories"] => PathInfo::RepositoriesRoot,
        ["repositories", rest @ ..] => {
            let split = rest.iter().position(|c| c.starts_with('_'));
            let (name_parts, meta) = match split {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, &[][..]),
            };
            if name_parts.is_empty() {
                return unknown(format!(
                    "{} directly under repositories/ has no repository name",
                    meta[0]
                ));
            }
            let repo = name_parts.join("/");
            match meta {
                [] => PathInfo::RepositoryDir { name: repo },
                ["_layers"] => PathInfo::LayersDir { repo },
                ["_layers", d @ ..] => match digest_at(d) {
                    Ok((digest, part)) => PathInfo::LayerLink { repo, digest, part },
                    Err(e) => unknown(e),
                },
                ["_manifests"] | ["_manifests", "revisions"] | ["_manifests", "revisions", _] => {
                    PathInfo::ManifestsDir { repo }
                }
                ["_manifests", "revisions", d @ ..] => match digest_at(d) {
                    Ok((digest, part)) => PathInfo::RevisionLink { repo, digest, part },
                    Err(e) => unknown(e),
                },
                ["_manifests", "tags"] => PathInfo::TagsDir { repo },
                ["_manifests", "tags", tag] => PathInfo::Tag {
                    repo,
                    tag: (*tag).to_owned(),
                },
                ["_manifests", "tags", tag, "current"]
                | ["_manifests", "tags", tag, "current", "link"] => PathInfo::TagCurrent {
                    repo,
                    tag: (*tag).to_owned(),
                },
                ["_manifests", "tags", tag, "index"] | ["_manifests", "tags", tag, "index", _] => {
                    PathInfo::Tag {
                        repo,
                        tag: (*tag).to_owned(),
                    }
                }
                ["_manifests", "tags", tag, "index", d @ ..] => match digest_at(d) {
                    Ok((digest, part)) => PathInfo::TagIndexEntry {
                        repo,
                        tag: (*tag).to_owned(),
                        digest,
                        part,
                    },
                    Err(e) => unknown(e),
                },
                ["_uploads"] => PathInfo::UploadsDir { repo },
                ["_uploads", id, rest @ ..] => PathInfo::Upload {
                    repo,
                    id: (*id).to_owned(),
                    rest: if rest.is_empty() {
                        None
                    } else {
                        Some(rest.join("/"))
                    },
                },
                other => unknown(format!(
                    "{} is not part of the registry's repository layout",
                    other.join("/")
                )),
            }
        }
        [first, ..] => unknown(format!("{first} is not blobs/ or repositories/")),
    }
}

/// Whether a directory name looks like a registry upload id (a canonical lowercase UUID).
pub fn is_upload_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec";

    fn d() -> Digest {
        format!("sha256:{HEX}").parse().unwrap()
    }

    #[test]
    fn builders_match_the_registry() {
        let h = d().sha256().unwrap();
        assert_eq!(blob_data(&h), format!("blobs/sha256/37/{HEX}/data"));
        assert_eq!(
            layer_link("team/app/api", &d()),
            format!("repositories/team/app/api/_layers/sha256/{HEX}/link")
        );
        assert_eq!(
            revision_link("a", &d()),
            format!("repositories/a/_manifests/revisions/sha256/{HEX}/link")
        );
        assert_eq!(
            tag_current_link("a/b", "1.0"),
            "repositories/a/b/_manifests/tags/1.0/current/link"
        );
        assert_eq!(
            tag_index_link("a", "latest", &d()),
            format!("repositories/a/_manifests/tags/latest/index/sha256/{HEX}/link")
        );
    }

    #[test]
    fn classify_every_kind_of_path() {
        assert_eq!(classify(""), PathInfo::Root);
        assert_eq!(
            classify(&format!("blobs/sha256/37/{HEX}/data")),
            PathInfo::Blob {
                digest: d(),
                part: Part::File
            }
        );
        assert_eq!(
            classify(&format!("/blobs/sha256/37/{HEX}")),
            PathInfo::Blob {
                digest: d(),
                part: Part::Dir
            }
        );
        assert!(matches!(
            classify(&format!("blobs/sha256/38/{HEX}/data")),
            PathInfo::Unknown { .. }
        ));
        assert_eq!(
            classify(&format!(
                "repositories/team/app/api/_layers/sha256/{HEX}/link"
            )),
            PathInfo::LayerLink {
                repo: "team/app/api".into(),
                digest: d(),
                part: Part::File
            }
        );
        assert_eq!(
            classify(&format!(
                "repositories/x/_manifests/revisions/sha256/{HEX}/link"
            )),
            PathInfo::RevisionLink {
                repo: "x".into(),
                digest: d(),
                part: Part::File
            }
        );
        assert_eq!(
            classify(&format!(
                "repositories/x/_manifests/tags/v1/index/sha256/{HEX}/link"
            )),
            PathInfo::TagIndexEntry {
                repo: "x".into(),
                tag: "v1".into(),
                digest: d(),
                part: Part::File
            }
        );
        assert_eq!(
            classify("repositories/team/app"),
            PathInfo::RepositoryDir {
                name: "team/app".into()
            }
        );
        assert_eq!(
            classify("repositories/u/_uploads/b78ab920-84fc-4b6e-8507-07cd0a454672/startedat"),
            PathInfo::Upload {
                repo: "u".into(),
                id: "b78ab920-84fc-4b6e-8507-07cd0a454672".into(),
                rest: Some("startedat".into())
            }
        );
        assert!(matches!(
            classify("repositories/_layers"),
            PathInfo::Unknown { .. }
        ));
        assert!(matches!(
            classify("scheduler-state.json"),
            PathInfo::Unknown { .. }
        ));
        assert!(matches!(
            classify("repositories/a/_manifests/revisions/sha256/zz/link"),
            PathInfo::Unknown { .. }
        ));
    }

    #[test]
    fn links() {
        assert_eq!(parse_link(format!("sha256:{HEX}").as_bytes()), Ok(d()));
        assert_eq!(parse_link(b""), Err(LinkError::Empty));
        assert_eq!(parse_link(&[b'a'; 300]), Err(LinkError::TooLarge(300)));
        let nl = parse_link(format!("sha256:{HEX}\n").as_bytes()).unwrap_err();
        assert!(nl.to_string().contains("\\n"), "{nl}");
        assert!(matches!(
            parse_link(b"\xff\xfe"),
            Err(LinkError::Invalid { .. })
        ));
    }

    #[test]
    fn upload_ids() {
        assert!(is_upload_id("b6d9efd1-0ad5-484d-8d9c-0e64ed77c96b"));
        assert!(!is_upload_id("B6D9EFD1-0AD5-484D-8D9C-0E64ED77C96B"));
        assert!(!is_upload_id("not-an-id"));
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(s in "[a-z0-9_./-]{0,200}") {
            let _ = classify(&s);
        }
    }
}
