//! Test fixtures for stowage.
//!
//! - [`sample`]: the small real-registry tree committed under `fixtures/` (built by
//!   `testkit/real-registry/build.sh` with the real `docker-registry` 2.8 and skopeo),
//!   extracted into a temporary directory with its empty directories and mtimes intact.
//! - [`TreeBuilder`]: writes a registry tree the way the registry does (blobs, links, tags,
//!   uploads), so tests can build exactly the shape they need, then break it on purpose.
//! - [`broken`]: one fixture per kind of bad input, named by its defect.

#![allow(clippy::unwrap_used)] // test support: a failed fixture write should stop the test

pub mod broken;
pub mod browser;
pub mod conformance;
pub mod emulators;
pub mod random;
pub mod real;
pub mod s3;
pub mod stress;

use std::fs;
use std::path::{Path, PathBuf};

use stowage_layout as layout;
use stowage_model::digest::{Digest, Sha256};

/// The repository root (for locating `fixtures/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// An extracted copy of the committed sample registry.
pub struct Sample {
    pub dir: tempfile::TempDir,
}

impl Sample {
    /// The registry's `rootdirectory`.
    pub fn rootdirectory(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The layout root (`.../docker/registry/v2`).
    pub fn layout_root(&self) -> PathBuf {
        self.rootdirectory().join(layout::LAYOUT_ROOT)
    }
}

/// Extract `fixtures/sample-registry.tar.gz` into a fresh temporary directory.
pub fn sample() -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let f = fs::File::open(workspace_root().join("fixtures/sample-registry.tar.gz")).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.set_preserve_mtime(true);
    ar.set_preserve_permissions(true);
    ar.unpack(dir.path()).unwrap();
    Sample { dir }
}

/// One line of `fixtures/sample-registry.tsv`.
#[derive(Debug, Clone)]
pub struct SampleCase {
    pub case: String,
    pub repo: String,
    pub reference: String,
    pub digest: String,
    pub media_type: String,
}

/// The cases the sample was built from, as the registry reported them.
pub fn sample_cases() -> Vec<SampleCase> {
    let text = fs::read_to_string(workspace_root().join("fixtures/sample-registry.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            SampleCase {
                case: c[0].into(),
                repo: c[1].into(),
                reference: c[2].into(),
                digest: c[3].into(),
                media_type: c[4].into(),
            }
        })
        .collect()
}

/// The registry API's view of the sample (catalog, tags, manifests).
pub fn sample_api_state() -> serde_json::Value {
    let text = fs::read_to_string(workspace_root().join("fixtures/sample-api-state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Writes registry trees the way the registry does. Paths are under `<root>/docker/registry/v2`.
pub struct TreeBuilder {
    pub root: PathBuf,
}

/// A blob written by the builder.
#[derive(Clone, Debug)]
pub struct Written {
    pub digest: Sha256,
    pub size: u64,
}

impl Written {
    pub fn digest(&self) -> Digest {
        Digest::Sha256(self.digest)
    }
}

impl TreeBuilder {
    /// Start a tree in `rootdirectory` (creates `docker/registry/v2/{blobs,repositories}`).
    pub fn new(rootdirectory: &Path) -> TreeBuilder {
        let root = rootdirectory.join(layout::LAYOUT_ROOT);
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::create_dir_all(root.join("repositories")).unwrap();
        TreeBuilder { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Write a file (creating parents).
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    /// Store a blob under its sha256.
    pub fn blob(&self, bytes: &[u8]) -> Written {
        let h = Sha256::of(bytes);
        self.write(&layout::blob_data(&h), bytes);
        Written {
            digest: h,
            size: bytes.len() as u64,
        }
    }

    /// A layer-like blob with deterministic content.
    pub fn layer(&self, seed: &str, size: usize) -> Written {
        let mut v = Vec::with_capacity(size);
        let mut x: u64 = seed.bytes().fold(1469598103934665603u64, |h, b| {
            (h ^ b as u64).wrapping_mul(1099511628211)
        });
        while v.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(size);
        self.blob(&v)
    }

    fn link(&self, rel: &str, d: &Digest) {
        self.write(rel, d.to_string().as_bytes());
    }

    /// `_layers/<d>/link` in `repo`.
    pub fn link_layer(&self, repo: &str, d: &Digest) {
        self.link(&layout::layer_link(repo, d), d);
    }

    /// Push an image manifest (OCI) with `config` and `layers` into `repo`, linking its blobs
    /// like a push does; tag it when `tag` is given. Returns the manifest blob.
    pub fn image(
        &self,
        repo: &str,
        tag: Option<&str>,
        config: &Written,
        layers: &[&Written],
    ) -> Written {
        let desc = |w: &Written, mt: &str| {
            format!(
                r#"{{"mediaType":"{mt}","digest":"{}","size":{}}}"#,
                w.digest, w.size
            )
        };
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
            desc(config, "application/vnd.oci.image.config.v1+json"),
            layers
                .iter()
                .map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar+gzip"))
                .collect::<Vec<_>>()
                .join(",")
        );
        self.link_layer(repo, &config.digest());
        for l in layers {
            self.link_layer(repo, &l.digest());
        }
        self.manifest(repo, tag, body.as_bytes())
    }

    /// Push an OCI index of `children` (already pushed into `repo` by digest).
    pub fn index(&self, repo: &str, tag: Option<&str>, children: &[(&Written, &str)]) -> Written {
        let items: Vec<String> = children
            .iter()
            .map(|(w, arch)| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                    w.digest, w.size
                )
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            items.join(",")
        );
        self.manifest(repo, tag, body.as_bytes())
    }

    /// Store manifest bytes, write the revision link, and tag it (index entry, then current).
    pub fn manifest(&self, repo: &str, tag: Option<&str>, body: &[u8]) -> Written {
        let w = self.blob(body);
        let d = w.digest();
        self.link(&layout::revision_link(repo, &d), &d);
        if let Some(t) = tag {
            self.tag(repo, t, &d);
        }
        w
    }

    /// Point `tag` at `d` (adds a tag index entry, rewrites current).
    pub fn tag(&self, repo: &str, tag: &str, d: &Digest) {
        self.link(&layout::tag_index_link(repo, tag, d), d);
        self.link(&layout::tag_current_link(repo, tag), d);
    }

    /// An abandoned upload with `startedat` and `size` bytes of data.
    pub fn upload(&self, repo: &str, id: &str, started_at: &str, size: usize) {
        let dir = layout::upload_dir(repo, id);
        self.write(&format!("{dir}/startedat"), started_at.as_bytes());
        self.write(&format!("{dir}/data"), &vec![b'u'; size]);
        self.write(&format!("{dir}/hashstates/sha256/0"), &[0u8; 108]);
    }

    /// Remove a file or directory tree (for breaking fixtures).
    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(p).unwrap()
        } else {
            fs::remove_file(p).unwrap()
        }
    }
}

/// Assert that a scanned inventory agrees with what the registry's HTTP API reported
/// (`api-state.json`: catalog, tags per repository, digest and media type per tag).
pub fn assert_matches_api(inv: &stowage_model::Inventory, api: &serde_json::Value) {
    use std::collections::BTreeSet;
    let strings = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    // Catalog: 2.8 lists directories with `_layers`, 3.x with `_manifests`; every listed
    // repository is one we found with `_manifests`.
    let ours: BTreeSet<String> = inv
        .repositories
        .iter()
        .filter(|r| r.has_manifests)
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(ours, strings(&api["catalog"]), "catalog");
    for (repo, tags) in api["tags"].as_object().unwrap() {
        let got: BTreeSet<String> = inv
            .repository(repo)
            .unwrap()
            .tags
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(got, strings(tags), "tags of {repo}");
    }
    for (reference, m) in api["manifests"].as_object().unwrap() {
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        let id = inv
            .repository(repo)
            .unwrap()
            .tag(tag)
            .unwrap()
            .current
            .unwrap()
            .target
            .unwrap();
        assert_eq!(
            inv.digest(id).to_string(),
            m["digest"].as_str().unwrap(),
            "{reference}"
        );
        let rec = inv.manifest(id).unwrap();
        assert_eq!(
            rec.status,
            stowage_model::inventory::ManifestStatus::Parsed,
            "{reference}"
        );
        assert_eq!(
            rec.kind.unwrap().media_type(),
            m["mediaType"].as_str().unwrap(),
            "{reference}"
        );
    }
}

/// Digests of the blobs nothing references: what the registry's plain GC deletes.
pub fn unreferenced_digests(
    inv: &stowage_model::Inventory,
    referenced: &[bool],
) -> std::collections::BTreeSet<String> {
    inv.blobs
        .iter()
        .enumerate()
        .filter(|(i, _)| !referenced[*i])
        .map(|(_, b)| b.digest.to_string())
        .collect()
}
