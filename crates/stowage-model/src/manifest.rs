//! Parsing stored manifests into the references the registry (and its GC) follows.
//!
//! The registry stores manifest bytes exactly as pushed and decides their kind from the JSON
//! itself (`spec/registry-storage.md` §3.1): `schemaVersion` 1 is Docker schema 1; for
//! `schemaVersion` 2 the `mediaType` field picks Docker schema 2, Docker manifest list, OCI
//! image manifest or OCI image index, and a missing `mediaType` means an OCI index when a
//! `manifests` array is present, an OCI image manifest otherwise.
//!
//! We parse with our own small serde structs rather than `oci-spec`: we must read Docker
//! schema 1 and Docker schema 2 / manifest lists as well as OCI, tolerate optional fields the
//! way the registry does, borrow strings instead of allocating, and report *which* field is
//! wrong. A manifest we cannot parse is an error value here; callers keep it (and everything
//! it might reference) and report it.
//!
//! ```
//! use stowage_model::manifest::{parse, ManifestKind};
//! let m = parse(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
//!   "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7,
//!   "digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
//!   "platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#).unwrap();
//! assert_eq!(m.kind, ManifestKind::OciIndex);
//! assert_eq!(m.children[0].platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::digest::{Digest, DigestError};

mod gotypes;
use gotypes::{GoHistory, GoString, GoStringMap, GoStrings};

pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI 1.1 release candidates' artifact manifest (withdrawn before 1.1.0, but stored by
/// some clients and registries of that era).
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// What kind of manifest a stored blob is.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    DockerSchema1,
    DockerSchema1Signed,
    DockerSchema2,
    DockerManifestList,
    OciManifest,
    OciIndex,
    OciArtifact,
    /// `schemaVersion: 2` with a media type the registry does not know. Kept with everything
    /// it might reference.
    Unknown,
}

impl ManifestKind {
    /// Index-like manifests reference other manifests (platform children).
    pub fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::DockerManifestList | ManifestKind::OciIndex
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ManifestKind::DockerSchema1 => "docker-schema1",
            ManifestKind::DockerSchema1Signed => "docker-schema1-signed",
            ManifestKind::DockerSchema2 => "docker-schema2",
            ManifestKind::DockerManifestList => "docker-manifest-list",
            ManifestKind::OciManifest => "oci-manifest",
            ManifestKind::OciIndex => "oci-index",
            ManifestKind::OciArtifact => "oci-artifact",
            ManifestKind::Unknown => "unknown",
        }
    }

    /// The media type this kind is served with.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::DockerSchema1 => DOCKER_SCHEMA1,
            ManifestKind::DockerSchema1Signed => DOCKER_SCHEMA1_SIGNED,
            ManifestKind::DockerSchema2 => DOCKER_SCHEMA2,
            ManifestKind::DockerManifestList => DOCKER_LIST,
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::OciArtifact => OCI_ARTIFACT,
            ManifestKind::Unknown => "unknown",
        }
    }
}

/// A reference to a blob or a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub size: Option<i64>,
    pub media_type: Option<String>,
    /// Foreign (Docker) or non-distributable (OCI) layers, or any descriptor with `urls`: the
    /// registry does not require the blob to exist.
    pub external: bool,
}

/// `os/architecture[/variant]` of an index child.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A child of an index or manifest list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
}

/// A parsed manifest: its kind and every reference it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub kind: ManifestKind,
    /// The `mediaType` field as stored, if any.
    pub media_type: Option<String>,
    /// OCI `artifactType`, or the config media type of an OCI artifact packaged as an image.
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    /// Layers, in manifest order. Schema 1 `fsLayers` are listed top-down as stored,
    /// duplicates removed.
    pub layers: Vec<Descriptor>,
    /// Index / manifest-list children.
    pub children: Vec<Child>,
    /// OCI 1.1 `subject`: this manifest is a referrer of that one.
    pub subject: Option<Descriptor>,
    /// Blobs of the withdrawn OCI artifact manifest.
    pub blobs: Vec<Descriptor>,
}

/// Why stored bytes are not a manifest we can follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("missing schemaVersion")]
    MissingSchemaVersion,
    #[error("unsupported schemaVersion {0}")]
    UnsupportedSchemaVersion(i64),
    #[error("{field}: invalid digest {value:?}: {error}")]
    BadDigest {
        field: String,
        value: String,
        error: DigestError,
    },
    #[error("{0} is missing")]
    MissingField(String),
    #[error(
        "key {0:?} differs only in case from a field the registry reads (Go matches keys case-insensitively)"
    )]
    CaseFoldedKey(String),
}

#[derive(serde::Deserialize)]
struct RawDescriptor<'a> {
    #[serde(borrow, rename = "mediaType", default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    digest: Option<Cow<'a, str>>,
    #[serde(default)]
    size: Option<i64>,
    /// Go `[]string`: only whether it is non-empty matters here.
    #[serde(default)]
    urls: Option<Vec<GoString>>,
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    annotations: Option<GoStringMap>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(serde::Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(rename = "os.version", default)]
    #[allow(dead_code)] // type-checked, not kept
    os_version: Option<GoString>,
    #[serde(rename = "os.features", default)]
    #[allow(dead_code)] // type-checked, not kept
    os_features: Option<GoStrings>,
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    features: Option<GoStrings>,
}

#[derive(serde::Deserialize)]
struct RawFsLayer<'a> {
    #[serde(borrow, rename = "blobSum", default)]
    blob_sum: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Raw<'a> {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<i64>,
    #[serde(borrow, rename = "mediaType", default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "artifactType", default)]
    artifact_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    config: Option<RawDescriptor<'a>>,
    #[serde(borrow, default)]
    layers: Option<Vec<RawDescriptor<'a>>>,
    #[serde(borrow, default)]
    manifests: Option<Vec<RawDescriptor<'a>>>,
    #[serde(borrow, default)]
    subject: Option<RawDescriptor<'a>>,
    #[serde(borrow, default)]
    blobs: Option<Vec<RawDescriptor<'a>>>,
    #[serde(borrow, rename = "fsLayers", default)]
    fs_layers: Option<Vec<RawFsLayer<'a>>>,
    #[serde(default)]
    signatures: Option<serde::de::IgnoredAny>,
    // Decoded by the registry's structs, so type-checked (see `gotypes`), not kept.
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    annotations: Option<GoStringMap>,
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    name: Option<GoString>,
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    tag: Option<GoString>,
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    architecture: Option<GoString>,
    #[serde(default)]
    #[allow(dead_code)] // type-checked, not kept
    history: Option<Vec<GoHistory>>,
}

fn is_external_media_type(mt: &str) -> bool {
    mt.contains(".foreign.") || mt.contains(".nondistributable.")
}

/// A digest field every reference must have: missing and malformed are
/// both errors that name the field (`field` is built only on error).
fn required_digest(
    value: Option<&str>,
    field: impl Fn() -> String,
) -> Result<Digest, ManifestError> {
    let value = value.ok_or_else(|| ManifestError::MissingField(field()))?;
    value
        .parse::<Digest>()
        .map_err(|error| ManifestError::BadDigest {
            field: field(),
            value: value.to_owned(),
            error,
        })
}

fn descriptor(
    raw: RawDescriptor<'_>,
    field: &str,
) -> Result<(Descriptor, Option<Platform>), ManifestError> {
    let digest = required_digest(raw.digest.as_deref(), || format!("{field}.digest"))?;
    let external = raw.urls.as_ref().is_some_and(|u| !u.is_empty())
        || raw
            .media_type
            .as_deref()
            .is_some_and(is_external_media_type);
    let platform = raw.platform.map(|p| Platform {
        os: p.os.unwrap_or_default(),
        architecture: p.architecture.unwrap_or_default(),
        variant: p.variant,
    });
    Ok((
        Descriptor {
            digest,
            size: raw.size,
            media_type: raw.media_type.map(Cow::into_owned),
            external,
        },
        platform,
    ))
}

fn descriptors(
    raw: Option<Vec<RawDescriptor<'_>>>,
    field: &str,
) -> Result<Vec<Descriptor>, ManifestError> {
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, &format!("{field}[{i}]")).map(|(d, _)| d))
        .collect()
}

/// Field names stowage reads. Go's `encoding/json` (the registry, clients) matches object
/// keys case-insensitively, with Unicode simple folding (`ſ` = `s`, `K` = `k`); serde does
/// not. A key that folds to one of these without being it would be read by Go and ignored
/// by us, so such a manifest is refused (and kept, as opaque) rather than half-read.
const FIELDS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "blobs",
    "fsLayers",
    "blobSum",
    "digest",
    "size",
    "urls",
    "platform",
    "signatures",
    "annotations",
    "name",
    "tag",
    "architecture",
    "history",
    "v1Compatibility",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];

/// `FIELDS` folded, once.
static FIELDS_FOLDED: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| FIELDS.iter().map(|f| fold(f)).collect());

fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c,
        })
        .collect()
}

/// Find an object key that Go would take for a field we read, spelled differently.
fn case_folded_key(bytes: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        // A string: find its end (skipping escapes).
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(bytes.len());
        // A key is a string followed by optional whitespace and a colon.
        let mut k = end + 1;
        while k < bytes.len() && bytes[k].is_ascii_whitespace() {
            k += 1;
        }
        if k < bytes.len()
            && bytes[k] == b':'
            && let Ok(key) = std::str::from_utf8(&bytes[start..end])
        {
            let folded = fold(key);
            if FIELDS_FOLDED.contains(&folded) && !FIELDS.contains(&key) {
                return Some(key.to_owned());
            }
        }
        i = end + 1;
    }
    None
}

/// Parse stored manifest bytes.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    if let Some(key) = case_folded_key(bytes) {
        return Err(ManifestError::CaseFoldedKey(key));
    }
    let raw: Raw<'_> =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let schema = raw
        .schema_version
        .ok_or(ManifestError::MissingSchemaVersion)?;
    match schema {
        1 => {
            let mut layers: Vec<Descriptor> = Vec::new();
            let fs = raw
                .fs_layers
                .ok_or_else(|| ManifestError::MissingField("fsLayers".into()))?;
            for (i, l) in fs.into_iter().enumerate() {
                let digest =
                    required_digest(l.blob_sum.as_deref(), || format!("fsLayers[{i}].blobSum"))?;
                if !layers.iter().any(|d| d.digest == digest) {
                    layers.push(Descriptor {
                        digest,
                        size: None,
                        media_type: None,
                        external: false,
                    });
                }
            }
            let signed = raw.signatures.is_some()
                || raw.media_type.as_deref() == Some(DOCKER_SCHEMA1_SIGNED);
            Ok(Manifest {
                kind: if signed {
                    ManifestKind::DockerSchema1Signed
                } else {
                    ManifestKind::DockerSchema1
                },
                media_type: raw.media_type.map(Cow::into_owned),
                artifact_type: None,
                config: None,
                layers,
                children: Vec::new(),
                subject: None,
                blobs: Vec::new(),
            })
        }
        2 => {
            let mt = raw.media_type.as_deref();
            let kind = match mt {
                Some(DOCKER_SCHEMA2) => ManifestKind::DockerSchema2,
                Some(DOCKER_LIST) => ManifestKind::DockerManifestList,
                Some(OCI_MANIFEST) => ManifestKind::OciManifest,
                Some(OCI_INDEX) => ManifestKind::OciIndex,
                Some(OCI_ARTIFACT) => ManifestKind::OciArtifact,
                None if raw.manifests.is_some() => ManifestKind::OciIndex,
                None => ManifestKind::OciManifest,
                Some(_) => ManifestKind::Unknown,
            };
            if matches!(
                kind,
                ManifestKind::DockerSchema2 | ManifestKind::OciManifest
            ) && raw.config.is_none()
            {
                return Err(ManifestError::MissingField("config".into()));
            }
            if kind.is_index() && raw.manifests.is_none() {
                return Err(ManifestError::MissingField("manifests".into()));
            }
            let config = raw
                .config
                .map(|c| descriptor(c, "config").map(|(d, _)| d))
                .transpose()?;
            let layers = descriptors(raw.layers, "layers")?;
            let mut children = Vec::new();
            for (i, c) in raw.manifests.unwrap_or_default().into_iter().enumerate() {
                let (descriptor, platform) = descriptor(c, &format!("manifests[{i}]"))?;
                children.push(Child {
                    descriptor,
                    platform,
                });
            }
            let subject = raw
                .subject
                .map(|s| descriptor(s, "subject").map(|(d, _)| d))
                .transpose()?;
            let blobs = descriptors(raw.blobs, "blobs")?;
            // An OCI artifact packaged as an image manifest announces itself by artifactType or,
            // before that field existed, by a non-image config media type.
            let artifact_type = raw.artifact_type.map(Cow::into_owned).or_else(|| {
                let cmt = config.as_ref()?.media_type.as_deref()?;
                let image_config = matches!(
                    cmt,
                    "application/vnd.oci.image.config.v1+json"
                        | "application/vnd.docker.container.image.v1+json"
                        | "application/vnd.docker.plugin.v1+json"
                );
                (!image_config).then(|| cmt.to_owned())
            });
            Ok(Manifest {
                kind,
                media_type: raw.media_type.map(Cow::into_owned),
                artifact_type,
                config,
                layers,
                children,
                subject,
                blobs,
            })
        }
        other => Err(ManifestError::UnsupportedSchemaVersion(other)),
    }
}

impl Manifest {
    /// Every blob or manifest digest this manifest needs, in a stable order: config, layers,
    /// children, artifact blobs. The `subject` is not included: a referrer does not keep its
    /// subject alive (the edge runs the other way, see the graph crate).
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter())
            .chain(self.children.iter().map(|c| &c.descriptor))
            .chain(self.blobs.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real bytes from a distribution 2.8.2 registry filled by skopeo
    // (shared/reference/real-registry-observations.md §6).
    const SCHEMA2: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":411,"digest":"sha256:cc5e2aaeb89720445fcb3df6d16559b3bac8cf509ed4765ae69cb6a26695086e"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":262607,"digest":"sha256:376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec"}]}"#;
    const OCI: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:cc5e2aaeb89720445fcb3df6d16559b3bac8cf509ed4765ae69cb6a26695086e","size":411},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec","size":262607}]}"#;
    const INDEX: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4d8882cd9c84c67e0d68108b8b362e3073315d4b10305783cb84b642f414f7e0","size":558,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2bf214ef236ede0897df83011d160b342276132bb56902dfa6b98ca0c6690f4f","size":557,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
    const LIST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":586,"digest":"sha256:d6864101001859b2d2945c4445f9e4538e92a3616ec2619bbd4ae4789d03e05b","platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":585,"digest":"sha256:b2762dd5ac1690447817f3453339d0aebfb98ccd400ecd1efc60ca5fddd933b1","platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
    // Docker schema 1 as distribution >= 2.3 stores it (payload only), and signed (as pushed by
    // old clients; `signatures` present).
    const SCHEMA1: &[u8] = br#"{
   "schemaVersion": 1,
   "name": "library/hello",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [
      {"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"},
      {"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"},
      {"blobSum": "sha256:78445dd45222097f5f22a4b0ab87d9e8eba7b27e7cfb72ae0d2ea6c7ab8d0a04"}
   ],
   "history": [{"v1Compatibility": "{\"id\":\"x\"}"}]
}"#;

    fn d(s: &str) -> Digest {
        s.parse().unwrap()
    }

    #[test]
    fn docker_schema2() {
        let m = parse(SCHEMA2).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerSchema2);
        assert_eq!(
            m.config.as_ref().unwrap().digest,
            d("sha256:cc5e2aaeb89720445fcb3df6d16559b3bac8cf509ed4765ae69cb6a26695086e")
        );
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].size, Some(262_607));
        assert_eq!(m.references().count(), 2);
        assert_eq!(m.artifact_type, None);
    }

    #[test]
    fn oci_manifest_shares_refs_with_schema2() {
        let a: Vec<_> = parse(SCHEMA2)
            .unwrap()
            .references()
            .map(|d| d.digest.clone())
            .collect();
        let m = parse(OCI).unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        let b: Vec<_> = m.references().map(|d| d.digest.clone()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn oci_index_and_docker_list() {
        let m = parse(INDEX).unwrap();
        assert_eq!(m.kind, ManifestKind::OciIndex);
        assert!(m.kind.is_index());
        let platforms: Vec<_> = m
            .children
            .iter()
            .map(|c| c.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
        let l = parse(LIST).unwrap();
        assert_eq!(l.kind, ManifestKind::DockerManifestList);
        assert_eq!(l.children.len(), 2);
        assert!(l.config.is_none() && l.layers.is_empty());
    }

    #[test]
    fn schema1_unsigned_and_signed() {
        let m = parse(SCHEMA1).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerSchema1);
        // Duplicate blobSums (the empty tar) collapse to one reference.
        assert_eq!(m.layers.len(), 2);
        let signed = String::from_utf8(SCHEMA1.to_vec()).unwrap().replacen(
            "\"history\"",
            "\"signatures\": [{\"header\": {\"alg\": \"ES256\"}, \"signature\": \"x\", \"protected\": \"y\"}], \"history\"",
            1,
        );
        assert_eq!(
            parse(signed.as_bytes()).unwrap().kind,
            ManifestKind::DockerSchema1Signed
        );
    }

    #[test]
    fn missing_media_type_follows_the_registry() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse(idx).unwrap().kind, ManifestKind::OciIndex);
        let man = br#"{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        assert_eq!(parse(man).unwrap().kind, ManifestKind::OciManifest);
    }

    #[test]
    fn artifacts_subject_and_external_layers() {
        let art = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom.v1",
          "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
          "layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:78445dd45222097f5f22a4b0ab87d9e8eba7b27e7cfb72ae0d2ea6c7ab8d0a04","size":5,"urls":["https://example.com/x"]}],
          "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:974eb04a16c1df9017e3ba6709049651d64aeaef4e4a6369b0f06dd27d26f611","size":558}}"#;
        let m = parse(art).unwrap();
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.example.sbom.v1")
        );
        assert!(m.layers[0].external);
        assert_eq!(
            m.subject.as_ref().unwrap().digest,
            d("sha256:974eb04a16c1df9017e3ba6709049651d64aeaef4e4a6369b0f06dd27d26f611")
        );
        // The subject is not a reference that keeps anything alive.
        assert_eq!(m.references().count(), 2);

        let withdrawn = br#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","schemaVersion":2,"artifactType":"application/x","blobs":[{"digest":"sha256:78445dd45222097f5f22a4b0ab87d9e8eba7b27e7cfb72ae0d2ea6c7ab8d0a04","size":5}]}"#;
        let m = parse(withdrawn).unwrap();
        assert_eq!(m.kind, ManifestKind::OciArtifact);
        assert_eq!(m.references().count(), 1);
    }

    #[test]
    fn unknown_media_type_is_kept_not_rejected() {
        let m = parse(br#"{"schemaVersion":2,"mediaType":"application/x-custom","layers":[]}"#)
            .unwrap();
        assert_eq!(m.kind, ManifestKind::Unknown);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_field() {
        assert!(matches!(parse(b""), Err(ManifestError::Json(_))));
        assert!(matches!(
            parse(&SCHEMA2[..100]),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(parse(b"[1,2]"), Err(ManifestError::Json(_))));
        assert_eq!(parse(b"{}"), Err(ManifestError::MissingSchemaVersion));
        assert_eq!(
            parse(br#"{"schemaVersion":3}"#),
            Err(ManifestError::UnsupportedSchemaVersion(3))
        );
        let bad = String::from_utf8(SCHEMA2.to_vec())
            .unwrap()
            .replace("sha256:376a", "sha256:376A");
        match parse(bad.as_bytes()) {
            Err(ManifestError::BadDigest { field, .. }) => assert_eq!(field, "layers[0].digest"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
            ),
            Err(ManifestError::MissingField("config".into()))
        );
    }

    #[test]
    fn keys_go_would_fold_are_refused_not_ignored() {
        let capital = String::from_utf8(SCHEMA2.to_vec())
            .unwrap()
            .replace("\"layers\"", "\"Layers\"");
        assert_eq!(
            parse(capital.as_bytes()),
            Err(ManifestError::CaseFoldedKey("Layers".into()))
        );
        let long_s = String::from_utf8(SCHEMA2.to_vec())
            .unwrap()
            .replace("\"layers\"", "\"layer\u{17f}\"");
        assert!(matches!(
            parse(long_s.as_bytes()),
            Err(ManifestError::CaseFoldedKey(_))
        ));
        // Values that look like keys are fine.
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"Layers","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"Layers":"x"}}"#;
        // "Layers" as an annotation key folds to a field name but sits in annotations: refused
        // too, conservatively (such a manifest is kept, not half-read).
        assert!(parse(m).is_err());
        assert!(parse(SCHEMA2).is_ok() && parse(INDEX).is_ok() && parse(SCHEMA1).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_manifests(pos in 0usize..SCHEMA2.len(), byte in proptest::num::u8::ANY) {
            let mut m = SCHEMA2.to_vec();
            m[pos] = byte;
            let _ = parse(&m);
            let mut t = INDEX.to_vec();
            t.truncate(pos.min(t.len()));
            let _ = parse(&t);
        }
    }
}
