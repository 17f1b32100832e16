//! The bytes of every blob and upload file: gzip'd tar layers, image configs, manifests,
//! indexes, partial upload data and Go-marshalled sha256 hash states.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use sha2::Digest as _;

use crate::plan::{ARCHS, FAMILIES, Fmt, ImageSpec, IndexSpec, LayerKind, LayerSpec, Plan, Style};
use crate::rng::Rng;
use crate::time::rfc3339;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Bytes a layer's tar headers and gzip framing add around its payload (measured; only used
/// to aim at the planned size).
const LAYER_OVERHEAD: u64 = 110;

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

pub fn hex(d: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub fn digest_str(d: &[u8; 32]) -> String {
    format!("sha256:{}", hex(d))
}

// ---- tar and gzip -------------------------------------------------------------------------

fn octal(buf: &mut [u8], n: u64) {
    let w = buf.len() - 1;
    let s = format!("{n:0w$o}");
    buf[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    buf[w] = 0;
}

/// A POSIX ustar header for a regular file owned by root.
fn ustar_header(name: &str, size: u64, mtime: i64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let nb = name.as_bytes();
    h[..nb.len().min(100)].copy_from_slice(&nb[..nb.len().min(100)]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.max(0) as u64);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A tar stream of regular files (paths shorter than 100 bytes), ended by two zero blocks.
pub fn tar(files: &[(&str, &[u8])], mtime: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        out.extend_from_slice(&ustar_header(name, data.len() as u64, mtime));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// gzip with a fixed header (no name, MTIME 0, OS unix), so the bytes depend only on `raw`.
pub fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().mtime(0).operating_system(3).write(
        Vec::with_capacity(raw.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

// ---- layers ------------------------------------------------------------------------------

fn kind_name(kind: LayerKind) -> String {
    match kind {
        LayerKind::Base { family, slot } => format!("{}-{slot}", FAMILIES[family as usize].name),
        LayerKind::Deps => "deps".into(),
        LayerKind::Deps2 => "vendor".into(),
        LayerKind::Config => "config".into(),
        LayerKind::Assets => "assets".into(),
        LayerKind::App => "app".into(),
    }
}

/// A layer: gzip'd tar of a small text file and a pseudo-random payload sized so the blob
/// comes out near `spec.size`. Returns the blob and its diff_id (sha256 of the tar).
pub fn layer(spec: &LayerSpec) -> (Vec<u8>, [u8; 32]) {
    let tag = format!("{:016x}", spec.seed);
    let (text_path, payload_path) = match spec.kind {
        LayerKind::Base { family, slot } => {
            let f = FAMILIES[family as usize].name;
            (
                format!("etc/{f}-release.d/layer{slot}"),
                format!("usr/lib/{f}/layer{slot}-{}.bin", &tag[..8]),
            )
        }
        LayerKind::Deps => (
            "opt/app/.deps".into(),
            format!("opt/app/deps/{}.pack", &tag[..12]),
        ),
        LayerKind::Deps2 => (
            "opt/app/.vendor".into(),
            format!("opt/app/vendor/{}.pack", &tag[..12]),
        ),
        LayerKind::Config => (
            "etc/app/.config".into(),
            format!("etc/app/config-{}.yaml", &tag[..8]),
        ),
        LayerKind::Assets => (
            "srv/static/.assets".into(),
            format!("srv/static/{}.bundle", &tag[..12]),
        ),
        LayerKind::App => (
            "opt/app/.build".into(),
            format!("opt/app/bin/app-{}", &tag[..12]),
        ),
    };
    let arch = &ARCHS[spec.arch as usize];
    let text = format!(
        "layer={}\nseed={tag}\narch={}{}\ncreated={}\n",
        kind_name(spec.kind),
        arch.arch,
        arch.variant.map(|v| format!("/{v}")).unwrap_or_default(),
        rfc3339(spec.created)
    );
    let payload_len = spec.size.saturating_sub(LAYER_OVERHEAD + text.len() as u64);
    let mut payload = vec![0u8; payload_len as usize];
    Rng::derive(spec.seed, &[0x7061_796c]).fill(&mut payload);
    let raw = tar(
        &[(&text_path, text.as_bytes()), (&payload_path, &payload)],
        spec.created,
    );
    let diff = sha256(&raw);
    (gzip(&raw), diff)
}

// ---- configs -----------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    env: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cmd: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    working_dir: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct History {
    created: String,
    created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    empty_layer: bool,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    config: RunConfig,
    created: String,
    history: Vec<History>,
    os: &'static str,
    rootfs: RootFs,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'static str>,
}

fn created_by(kind: LayerKind, fam: &str, hexid: &str) -> String {
    match kind {
        LayerKind::Base { slot: 0, .. } => {
            format!("/bin/sh -c #(nop) ADD file:{hexid} in / ")
        }
        LayerKind::Base { slot, .. } => format!("/bin/sh -c set -eux; install-{fam}.sh step{slot}"),
        LayerKind::Deps => "RUN /bin/sh -c install-dependencies --frozen-lockfile".into(),
        LayerKind::Deps2 => "COPY vendor/ /opt/app/vendor/".into(),
        LayerKind::Config => "COPY config/ /etc/app/".into(),
        LayerKind::Assets => "COPY --from=assets /build/dist /srv/static".into(),
        LayerKind::App => "COPY --from=build /out/app /opt/app/bin/app".into(),
    }
}

/// The image config of `img`, given its layers' diff_ids.
pub fn config(plan: &Plan, img: &ImageSpec, diff_ids: &[[u8; 32]]) -> Vec<u8> {
    let arch = &ARCHS[img.arch as usize];
    let fam = &FAMILIES[img.family as usize];
    let repo = &plan.repos[img.repo as usize].name;
    let created = rfc3339(img.created);
    let comment = (img.style == Style::Buildkit).then_some("buildkit.dockerfile.v0");
    let mut rng = Rng::derive(img.seed, &[0x636f_6e66]);
    let mut history = Vec::new();
    for &l in &img.layers {
        if let crate::plan::BlobSpec::Layer(spec) = &plan.blobs[l as usize] {
            history.push(History {
                created: rfc3339(spec.created),
                created_by: created_by(spec.kind, fam.name, &rng.hex(64)),
                comment: match spec.kind {
                    LayerKind::Base { .. } => None,
                    _ => comment,
                },
                empty_layer: false,
            });
        }
    }
    let app = !repo.starts_with("library/");
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    if !fam.env.is_empty() {
        env.push(format!(
            "{}={}.{}.{}",
            fam.env, fam.version.0, fam.version.1, fam.version.2
        ));
    }
    let mut labels = BTreeMap::new();
    let mut cmd: Vec<String> = if fam.cmd.is_empty() {
        Vec::new()
    } else {
        vec![fam.cmd.to_string()]
    };
    if app {
        env.push("APP_ENV=production".into());
        cmd = vec!["/opt/app/bin/app".into(), "serve".into()];
        labels.insert("org.opencontainers.image.created", created.clone());
        labels.insert("org.opencontainers.image.revision", rng.hex(40));
        labels.insert(
            "org.opencontainers.image.source",
            format!("https://git.example.com/{repo}"),
        );
        labels.insert("org.opencontainers.image.version", img.label.clone());
        history.push(History {
            created: created.clone(),
            created_by: "ENV APP_ENV=production".into(),
            comment,
            empty_layer: true,
        });
        history.push(History {
            created: created.clone(),
            created_by: "CMD [\"/opt/app/bin/app\" \"serve\"]".into(),
            comment,
            empty_layer: true,
        });
    } else {
        labels.insert("org.opencontainers.image.version", img.label.clone());
        if !cmd.is_empty() {
            history.push(History {
                created: created.clone(),
                created_by: format!("/bin/sh -c #(nop)  CMD [\"{}\"]", fam.cmd),
                comment: None,
                empty_layer: true,
            });
        }
    }
    let cfg = ImageConfig {
        architecture: arch.arch,
        config: RunConfig {
            env,
            cmd,
            working_dir: if app {
                "/opt/app".into()
            } else {
                String::new()
            },
            labels,
        },
        created,
        history,
        os: "linux",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: diff_ids.iter().map(digest_str).collect(),
        },
        variant: arch.variant,
    };
    serde_json::to_vec(&cfg).unwrap_or_default()
}

// ---- manifests and indexes ---------------------------------------------------------------

#[derive(Serialize)]
struct DockerDesc {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    size: u64,
    digest: String,
}

#[derive(Serialize)]
struct OciDesc {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: String,
    size: u64,
}

#[derive(Serialize)]
struct ImageManifest<D> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: D,
    layers: Vec<D>,
}

#[derive(Serialize)]
struct PlatformJson {
    architecture: &'static str,
    os: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'static str>,
}

#[derive(Serialize)]
struct DockerChild {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    size: u64,
    digest: String,
    platform: PlatformJson,
}

#[derive(Serialize)]
struct OciChild {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: String,
    size: u64,
    platform: PlatformJson,
}

#[derive(Serialize)]
struct IndexJson<C> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<C>,
}

fn to_json<T: Serialize>(v: &T, style: Style) -> Vec<u8> {
    let indent: &[u8] = match style {
        Style::DockerCli => b"   ",
        Style::Buildkit => b"  ",
        Style::Crane => return serde_json::to_vec(v).unwrap_or_default(),
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    match v.serialize(&mut ser) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// The media type a manifest of this format declares.
pub fn manifest_media_type(fmt: Fmt) -> &'static str {
    match fmt {
        Fmt::Docker => DOCKER_MANIFEST,
        Fmt::Oci => OCI_MANIFEST,
    }
}

pub fn index_media_type(fmt: Fmt) -> &'static str {
    match fmt {
        Fmt::Docker => DOCKER_LIST,
        Fmt::Oci => OCI_INDEX,
    }
}

/// An image manifest: `config` and `layers` are `(digest, size)`.
pub fn manifest(img: &ImageSpec, config: ([u8; 32], u64), layers: &[([u8; 32], u64)]) -> Vec<u8> {
    match img.fmt {
        Fmt::Docker => {
            let d = |mt, (dg, size): ([u8; 32], u64)| DockerDesc {
                media_type: mt,
                size,
                digest: digest_str(&dg),
            };
            to_json(
                &ImageManifest {
                    schema_version: 2,
                    media_type: DOCKER_MANIFEST,
                    config: d(DOCKER_CONFIG, config),
                    layers: layers.iter().map(|&l| d(DOCKER_LAYER, l)).collect(),
                },
                img.style,
            )
        }
        Fmt::Oci => {
            let d = |mt, (dg, size): ([u8; 32], u64)| OciDesc {
                media_type: mt,
                digest: digest_str(&dg),
                size,
            };
            to_json(
                &ImageManifest {
                    schema_version: 2,
                    media_type: OCI_MANIFEST,
                    config: d(OCI_CONFIG, config),
                    layers: layers.iter().map(|&l| d(OCI_LAYER, l)).collect(),
                },
                img.style,
            )
        }
    }
}

/// An index / manifest list: `children` are `(digest, size, arch index)`.
pub fn index(ix: &IndexSpec, children: &[([u8; 32], u64, u8)]) -> Vec<u8> {
    let platform = |a: u8| PlatformJson {
        architecture: ARCHS[a as usize].arch,
        os: "linux",
        variant: ARCHS[a as usize].variant,
    };
    match ix.fmt {
        Fmt::Docker => to_json(
            &IndexJson {
                schema_version: 2,
                media_type: DOCKER_LIST,
                manifests: children
                    .iter()
                    .map(|&(d, size, a)| DockerChild {
                        media_type: DOCKER_MANIFEST,
                        size,
                        digest: digest_str(&d),
                        platform: platform(a),
                    })
                    .collect(),
            },
            ix.style,
        ),
        Fmt::Oci => to_json(
            &IndexJson {
                schema_version: 2,
                media_type: OCI_INDEX,
                manifests: children
                    .iter()
                    .map(|&(d, size, a)| OciChild {
                        media_type: OCI_MANIFEST,
                        digest: digest_str(&d),
                        size,
                        platform: platform(a),
                    })
                    .collect(),
            },
            ix.style,
        ),
    }
}

// ---- uploads -----------------------------------------------------------------------------

/// The first `len` bytes of an interrupted layer upload (a gzip stream's start).
pub fn upload_data(seed: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    Rng::derive(seed, &[0x7570]).fill(&mut v);
    let head = [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];
    let n = head.len().min(v.len());
    v[..n].copy_from_slice(&head[..n]);
    v
}

const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Go's `encoding.BinaryMarshaler` output for a sha256 that has hashed `data`: what the
/// registry stores in `_uploads/<uuid>/hashstates/sha256/<offset>` (108 bytes: magic
/// `sha\x03`, the 8 state words, the pending partial block zero-padded to 64, the length).
pub fn go_sha256_state(data: &[u8]) -> [u8; 108] {
    use sha2::digest::generic_array::GenericArray;
    let mut state = SHA256_IV;
    let full = data.len() / 64 * 64;
    let blocks: Vec<GenericArray<u8, _>> = data[..full]
        .chunks_exact(64)
        .map(|c| *GenericArray::from_slice(c))
        .collect();
    sha2::compress256(&mut state, &blocks);
    let mut out = [0u8; 108];
    out[..4].copy_from_slice(b"sha\x03");
    for (i, w) in state.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_be_bytes());
    }
    let rest = &data[full..];
    out[36..36 + rest.len()].copy_from_slice(rest);
    out[100..108].copy_from_slice(&(data.len() as u64).to_be_bytes());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hash_state_at_zero_is_the_iv() {
        let s = go_sha256_state(b"");
        assert_eq!(&s[..8], &[0x73, 0x68, 0x61, 0x03, 0x6a, 0x09, 0xe6, 0x67]);
        assert!(s[36..].iter().all(|&b| b == 0));
    }

    #[test]
    fn tar_headers_have_valid_checksums() {
        let t = tar(&[("a/b.txt", b"hello")], 1_700_000_000);
        assert_eq!(t.len(), 512 + 512 + 1024);
        let mut h = t[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|&b| b as u32).sum::<u32>());
        assert_eq!(&t[512..517], b"hello");
    }
}
