//! Random registries for property tests: a list of pushes (repository, layers, optional tag,
//! single image or two-platform index, optional referrer) written with [`TreeBuilder`].

use proptest::prelude::*;

use crate::{TreeBuilder, Written};

/// One push.
#[derive(Debug, Clone)]
pub struct Push {
    pub repo: usize,
    pub layers: Vec<usize>,
    pub tag: Option<usize>,
    /// Push as a two-platform index (children pushed by digest, untagged).
    pub multi: bool,
    /// Also push an untagged referrer (OCI `subject`) of this image.
    pub referrer: bool,
}

/// Repository names, nested and with a sibling that sorts between parent and child (`a-c`).
pub const REPOS: &[&str] = &["a", "a/b", "a/b/c", "a-c", "b", "c/d/e"];
pub const TAGS: &[&str] = &["latest", "v1", "v2"];

pub fn push_strategy() -> impl Strategy<Value = Push> {
    (
        0..REPOS.len(),
        proptest::collection::vec(0usize..8, 0..4),
        proptest::option::of(0..TAGS.len()),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(repo, layers, tag, multi, referrer)| Push {
            repo,
            layers,
            tag,
            multi,
            referrer,
        })
}

/// Write the pushes into a fresh tree; returns the tempdir and the layout root.
pub fn build(pushes: &[Push], sizes: &[usize]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let layers: Vec<Written> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| t.layer(&format!("l{i}"), s))
        .collect();
    for (n, p) in pushes.iter().enumerate() {
        let repo = REPOS[p.repo];
        let config = t.blob(format!("{{\"n\":{n}}}").as_bytes());
        let ls: Vec<&Written> = p
            .layers
            .iter()
            .map(|&i| &layers[i % layers.len()])
            .collect();
        let tag = p.tag.map(|i| TAGS[i]);
        let top = if p.multi {
            let a = t.image(repo, None, &config, &ls);
            let other = &layers[(p.layers.first().copied().unwrap_or(0) + 1) % layers.len()];
            let config2 = t.blob(format!("{{\"n\":{n},\"arch\":\"arm64\"}}").as_bytes());
            let b = t.image(repo, None, &config2, &[other]);
            t.index(repo, tag, &[(&a, "amd64"), (&b, "arm64")])
        } else {
            t.image(repo, tag, &config, &ls)
        };
        if p.referrer {
            let sig = t.blob(format!("signature of push {n}").as_bytes());
            let empty = t.blob(b"{}");
            t.link_layer(repo, &sig.digest());
            t.link_layer(repo, &empty.digest());
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{}","size":{}}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}}}"#,
                empty.digest, sig.digest, sig.size, top.digest, top.size
            );
            t.manifest(repo, None, body.as_bytes());
        }
    }
    let root = t.root.clone();
    (dir, root)
}
