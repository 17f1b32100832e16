//! stowage-gen: determinism, content addressing, link and manifest validity, counts, uploads,
//! mtimes, and the realism features the tree is meant to exercise.

#![allow(clippy::unwrap_used)] // tests: a failed read should stop the test

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use stowage_gen::{Options, Summary, content, generate, read_gen_manifest};
use stowage_layout::{PathInfo, classify, parse_link};
use stowage_model::digest::{Digest, Sha256};
use stowage_model::manifest::{self, ManifestKind};

const NOW: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z

fn opts(out: &Path, seed: u64, blobs: u64) -> Options {
    let mut o = Options::new(out, blobs);
    o.seed = seed;
    o
}

fn gen_into(out: &Path, seed: u64, blobs: u64) -> Summary {
    generate(&opts(out, seed, blobs)).unwrap()
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    dir: bool,
    bytes: Vec<u8>,
    mtime: i128,
}

/// Every entry below `root` (relative path -> kind, content, mtime in ns).
fn walk(root: &Path) -> BTreeMap<String, Entry> {
    fn rec(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mtime = md
                .modified()
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i128;
            if md.is_dir() {
                out.insert(
                    rel,
                    Entry {
                        dir: true,
                        bytes: Vec::new(),
                        mtime,
                    },
                );
                rec(root, &p, out);
            } else {
                out.insert(
                    rel,
                    Entry {
                        dir: false,
                        bytes: fs::read(&p).unwrap(),
                        mtime,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    rec(root, root, &mut out);
    out
}

struct Tree {
    _dir: tempfile::TempDir,
    out: PathBuf,
    summary: Summary,
    /// Paths relative to the layout root.
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    fn new(seed: u64, blobs: u64) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reg");
        let summary = gen_into(&out, seed, blobs);
        let entries = walk(&out.join("docker/registry/v2"));
        Tree {
            _dir: dir,
            out,
            summary,
            entries,
        }
    }

    fn blob(&self, d: &Digest) -> Option<&[u8]> {
        let h = d.sha256().unwrap();
        self.entries
            .get(&stowage_layout::blob_data(&h))
            .map(|e| e.bytes.as_slice())
    }

    fn exists(&self, rel: &str) -> bool {
        self.entries.contains_key(rel)
    }

    fn files(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter().filter(|(_, e)| !e.dir)
    }
}

fn small() -> &'static Tree {
    static T: std::sync::OnceLock<Tree> = std::sync::OnceLock::new();
    T.get_or_init(|| Tree::new(11, 300))
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn same_seed_same_tree_any_thread_count_and_different_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let mut oa = opts(&a, 5, 300);
    oa.threads = Some(1);
    let mut ob = opts(&b, 5, 300);
    ob.threads = Some(3);
    let sa = generate(&oa).unwrap();
    let sb = generate(&ob).unwrap();
    assert_eq!(sa, sb);
    let (wa, wb) = (walk(&a), walk(&b));
    assert!(wa.len() > 500, "{}", wa.len());
    assert_eq!(wa.keys().collect::<Vec<_>>(), wb.keys().collect::<Vec<_>>());
    for (k, ea) in &wa {
        assert_eq!(Some(ea), wb.get(k), "{k} differs (bytes or mtime)");
    }
    generate(&opts(&c, 6, 300)).unwrap();
    let wc = walk(&c);
    assert_ne!(
        wa.keys().collect::<Vec<_>>(),
        wc.keys().collect::<Vec<_>>(),
        "a different seed must give a different tree"
    );
}

#[test]
fn every_blob_hashes_to_its_digest() {
    let t = small();
    let mut n = 0;
    for (p, e) in t.files() {
        if let PathInfo::Blob { digest, .. } = classify(p) {
            assert!(p.ends_with("/data"), "{p}");
            assert_eq!(Sha256::of(&e.bytes).digest(), digest, "{p}");
            n += 1;
        }
    }
    assert_eq!(n, t.summary.blobs);
}

#[test]
fn every_path_is_in_the_registry_grammar() {
    let t = small();
    for p in t.entries.keys() {
        let info = classify(p);
        if p.ends_with("/_layers/sha256") {
            continue; // a directory classify() has no name for
        }
        assert!(!matches!(info, PathInfo::Unknown { .. }), "{p}: {info:?}");
        match info {
            PathInfo::RepositoryDir { name } => {
                let n = stowage_model::RepositoryName::parse_lenient(&name).unwrap();
                assert!(n.is_strict(), "{name}");
            }
            PathInfo::Tag { tag, .. } | PathInfo::TagCurrent { tag, .. } => {
                assert!(stowage_model::name::is_valid_tag(&tag), "{tag}")
            }
            PathInfo::Upload { id, .. } => assert!(stowage_layout::is_upload_id(&id), "{id}"),
            _ => {}
        }
    }
}

#[test]
fn links_are_71_bytes_and_name_existing_blobs_except_the_intended_dangling_ones() {
    let t = small();
    let (mut layer_links, mut dangling_layers, mut revs, mut idx, mut dangling_idx) =
        (0, 0, 0, 0, 0);
    for (p, e) in t.files() {
        if !p.ends_with("/link") {
            continue;
        }
        assert_eq!(e.bytes.len(), 71, "{p}");
        let d = parse_link(&e.bytes).unwrap();
        let present = t.blob(&d).is_some();
        match classify(p) {
            PathInfo::LayerLink { digest, .. } => {
                assert_eq!(digest, d, "{p}");
                layer_links += 1;
                if !present {
                    dangling_layers += 1;
                }
            }
            PathInfo::RevisionLink { digest, .. } => {
                assert_eq!(digest, d, "{p}");
                assert!(present, "revision link to a missing blob: {p}");
                revs += 1;
            }
            PathInfo::TagCurrent { repo, .. } => {
                assert!(present, "tag to a missing blob: {p}");
                let rev = stowage_layout::revision_link(&repo, &d);
                assert!(
                    t.exists(&rev),
                    "tag {p} points at a manifest without revision link"
                );
            }
            PathInfo::TagIndexEntry { repo, digest, .. } => {
                assert_eq!(digest, d, "{p}");
                idx += 1;
                if !present {
                    // Only an API-deleted (then swept) manifest leaves a stale history entry.
                    dangling_idx += 1;
                    let dir = stowage_layout::revision_dir(&repo, &d);
                    assert!(t.entries.get(&dir).is_some_and(|e| e.dir), "{p}");
                    assert!(!t.exists(&format!("{dir}/link")), "{p}");
                }
            }
            other => panic!("unexpected link {p}: {other:?}"),
        }
    }
    let s = &t.summary;
    assert_eq!(layer_links, s.layer_links);
    assert_eq!(dangling_layers, s.dangling_layer_links);
    assert!(
        dangling_layers > 0,
        "the tree should have dangling _layers links"
    );
    assert_eq!(revs, s.revision_links);
    assert_eq!(idx, s.tag_index_links);
    assert_eq!(dangling_idx, s.dangling_tag_index_links);
}

#[test]
fn manifests_parse_and_reference_what_the_repository_links() {
    let t = small();
    let mut kinds = BTreeSet::new();
    let mut layers_checked = 0;
    for p in t.entries.keys() {
        let PathInfo::RevisionLink { repo, digest, .. } = classify(p) else {
            continue;
        };
        if !p.ends_with("/link") {
            continue;
        }
        let body = t.blob(&digest).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(raw["schemaVersion"], 2, "{p}");
        let m = manifest::parse(body).unwrap();
        assert_eq!(raw["mediaType"], m.kind.media_type(), "{p}");
        kinds.insert(m.kind);
        match m.kind {
            ManifestKind::DockerSchema2 | ManifestKind::OciManifest => {
                let docker = m.kind == ManifestKind::DockerSchema2;
                let cfg = m.config.as_ref().unwrap();
                let want_cfg = if docker {
                    content::DOCKER_CONFIG
                } else {
                    content::OCI_CONFIG
                };
                assert_eq!(cfg.media_type.as_deref(), Some(want_cfg));
                for d in std::iter::once(cfg).chain(&m.layers) {
                    assert!(
                        t.exists(&stowage_layout::layer_link(&repo, &d.digest)),
                        "{p}: {} not linked in {repo}",
                        d.digest
                    );
                    let b = t
                        .blob(&d.digest)
                        .unwrap_or_else(|| panic!("{p}: {} missing", d.digest));
                    assert_eq!(d.size, Some(b.len() as i64));
                }
                let config: serde_json::Value =
                    serde_json::from_slice(t.blob(&cfg.digest).unwrap()).unwrap();
                assert!(config["architecture"].is_string() && config["os"] == "linux");
                assert!(config["created"].as_str().unwrap().ends_with('Z'));
                let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
                assert_eq!(diff_ids.len(), m.layers.len(), "{p}");
                let non_empty = config["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["empty_layer"] != true)
                    .count();
                assert_eq!(non_empty, m.layers.len(), "{p}");
                for (l, diff) in m.layers.iter().zip(diff_ids) {
                    let want_mt = if docker {
                        content::DOCKER_LAYER
                    } else {
                        content::OCI_LAYER
                    };
                    assert_eq!(l.media_type.as_deref(), Some(want_mt));
                    let tar = gunzip(t.blob(&l.digest).unwrap());
                    assert_eq!(
                        Sha256::of(&tar).digest().to_string(),
                        diff.as_str().unwrap(),
                        "{p}: diff_id"
                    );
                    let mut ar = tar::Archive::new(tar.as_slice());
                    assert!(ar.entries().unwrap().count() >= 2);
                    layers_checked += 1;
                }
            }
            ManifestKind::DockerManifestList | ManifestKind::OciIndex => {
                assert!((2..=3).contains(&m.children.len()), "{p}");
                for c in &m.children {
                    let pl = c.platform.as_ref().unwrap();
                    assert_eq!(pl.os, "linux");
                    let rev = stowage_layout::revision_link(&repo, &c.descriptor.digest);
                    assert!(t.exists(&rev), "{p}: child not pushed into {repo}");
                    let child = t.blob(&c.descriptor.digest).unwrap();
                    assert_eq!(c.descriptor.size, Some(child.len() as i64));
                    let cm = manifest::parse(child).unwrap();
                    let cfg: serde_json::Value =
                        serde_json::from_slice(t.blob(&cm.config.unwrap().digest).unwrap())
                            .unwrap();
                    assert_eq!(cfg["architecture"].as_str(), Some(pl.architecture.as_str()));
                }
            }
            other => panic!("{p}: unexpected kind {other:?}"),
        }
    }
    assert!(layers_checked > 50);
    for k in [
        ManifestKind::DockerSchema2,
        ManifestKind::OciManifest,
        ManifestKind::DockerManifestList,
        ManifestKind::OciIndex,
    ] {
        assert!(kinds.contains(&k), "no {k:?} in the tree");
    }
}

#[test]
fn counts_match_the_tree_and_the_target() {
    let t = small();
    let s = &t.summary;
    let target = 300;
    assert!(s.blobs.abs_diff(target) <= target / 20, "{s:?}");
    assert_eq!(s.blobs, s.manifests + s.indexes + s.configs + s.layers);
    let manifests = s.manifests + s.indexes;
    assert!(
        manifests * 100 >= s.blobs * 20 && manifests * 100 <= s.blobs * 45,
        "manifests should be roughly 30% of blobs: {s:?}"
    );
    assert_eq!(s.files, t.files().count() as u64);
    // docker/, docker/registry/ and docker/registry/v2/ themselves, and all below.
    let dirs = t.entries.values().filter(|e| e.dir).count() as u64 + 3;
    assert_eq!(s.dirs, dirs);
    assert_eq!(
        s.bytes,
        t.files().map(|(_, e)| e.bytes.len() as u64).sum::<u64>()
    );
    let gm = read_gen_manifest(&t.out).unwrap();
    assert_eq!(&gm.summary, s);
    assert_eq!(gm.tags.len() as u64, s.tags);
    assert!(
        s.orphans > 0 && s.uploads >= 3 && s.deleted_revisions > 0,
        "{s:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let big = gen_into(&dir.path().join("big"), 3, 2000);
    assert!(big.blobs.abs_diff(2000) <= 2000 * 3 / 100, "{big:?}");
}

#[test]
fn gen_manifest_lists_exactly_the_live_tags() {
    let t = small();
    let gm = read_gen_manifest(&t.out).unwrap();
    let mut on_disk = BTreeSet::new();
    let mut repos = BTreeSet::new();
    for p in t.entries.keys() {
        match classify(p) {
            PathInfo::TagCurrent { repo, tag } if p.ends_with("/link") => {
                on_disk.insert(format!("{repo}:{tag}"));
            }
            PathInfo::LayersDir { repo }
            | PathInfo::ManifestsDir { repo }
            | PathInfo::UploadsDir { repo } => {
                repos.insert(repo);
            }
            _ => {}
        }
    }
    assert_eq!(gm.tags.iter().cloned().collect::<BTreeSet<_>>(), on_disk);
    assert_eq!(
        gm.repositories.iter().cloned().collect::<BTreeSet<_>>(),
        repos
    );
    // No stray files outside docker/ but the manifest.
    let top: Vec<String> = fs::read_dir(&t.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(top, ["docker", "gen-manifest.json"]);
}

#[test]
fn uploads_look_like_the_registry_writes_them() {
    let t = small();
    let mut ids = BTreeSet::new();
    let (mut old, mut recent) = (0, 0);
    for (p, e) in t.files() {
        let PathInfo::Upload { repo, id, rest } = classify(p) else {
            continue;
        };
        let dir = stowage_layout::upload_dir(&repo, &id);
        ids.insert(dir.clone());
        match rest.as_deref() {
            Some("startedat") => {
                assert_eq!(e.bytes.len(), 20, "{p}");
                let s = std::str::from_utf8(&e.bytes).unwrap();
                let ts = stowage_gen::time::parse_rfc3339(s).unwrap();
                assert_eq!(stowage_gen::time::rfc3339(ts), s);
                assert_eq!(e.mtime, ts as i128 * 1_000_000_000, "{p}");
                if NOW - ts > 7 * 86_400 {
                    old += 1;
                } else {
                    recent += 1;
                }
            }
            Some("data") => {}
            Some(h) if h.starts_with("hashstates/sha256/") => {
                let off: usize = h.rsplit('/').next().unwrap().parse().unwrap();
                assert_eq!(e.bytes.len(), 108);
                let data = &t.entries[&format!("{dir}/data")].bytes;
                assert!(off <= data.len());
                assert_eq!(e.bytes, content::go_sha256_state(&data[..off]), "{p}");
            }
            other => panic!("unexpected upload file {p}: {other:?}"),
        }
    }
    for dir in &ids {
        assert!(t.exists(&format!("{dir}/startedat")));
        assert!(t.exists(&format!("{dir}/data")));
        assert!(t.exists(&format!("{dir}/hashstates/sha256/0")));
        let len = t.entries[&format!("{dir}/data")].bytes.len();
        assert!(t.exists(&format!("{dir}/hashstates/sha256/{len}")), "{dir}");
    }
    assert_eq!(ids.len() as u64, t.summary.uploads);
    assert!(old > 0 && recent > 0, "old {old}, recent {recent}");
}

#[test]
fn hash_states_match_the_real_registry() {
    let s = stowage_testkit::sample();
    let root = s.layout_root();
    let uploads = root.join("repositories/team/app/api/_uploads");
    let up = fs::read_dir(&uploads)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let data = fs::read(up.join("data")).unwrap();
    let mut n = 0;
    for e in fs::read_dir(up.join("hashstates/sha256")).unwrap() {
        let e = e.unwrap();
        let off: usize = e.file_name().to_string_lossy().parse().unwrap();
        assert_eq!(
            fs::read(e.path()).unwrap(),
            content::go_sha256_state(&data[..off]).to_vec()
        );
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn mtimes_tell_the_push_history() {
    let t = small();
    let start = NOW - 365 * 86_400;
    for (p, e) in &t.entries {
        let s = (e.mtime / 1_000_000_000) as i64;
        assert!(s > start - 86_400 && s <= NOW, "{p}: {s}");
        assert_eq!(e.mtime % 1_000_000_000, 0, "{p}");
    }
    // A tag's current link was last written together with the history entry of its digest,
    // which is the newest entry; moved tags have older entries.
    let mut moved = 0;
    for (p, e) in t.files() {
        let PathInfo::TagCurrent { repo, tag } = classify(p) else {
            continue;
        };
        let d = parse_link(&e.bytes).unwrap();
        let own = &t.entries[&stowage_layout::tag_index_link(&repo, &tag, &d)];
        assert_eq!(own.mtime, e.mtime, "{p}");
        let prefix = format!("{}/index/sha256/", stowage_layout::tag_dir(&repo, &tag));
        let entries: Vec<&Entry> = t
            .files()
            .filter(|(q, _)| q.starts_with(&prefix))
            .map(|(_, e)| e)
            .collect();
        assert!(entries.iter().all(|x| x.mtime <= e.mtime), "{p}");
        if entries.len() > 1 {
            moved += 1;
        }
    }
    assert!(moved >= 3, "moved tags: {moved}");
    // Directory mtimes: never older than an entry created in them.
    for (p, e) in t.entries.iter().filter(|(_, e)| e.dir) {
        if p.ends_with("/sha256") && p.contains("/_layers/") {
            let newest_child = t
                .entries
                .iter()
                .filter(|(q, x)| {
                    x.dir
                        && q.starts_with(&format!("{p}/"))
                        && q.matches('/').count() == p.matches('/').count() + 1
                })
                .map(|(_, x)| x.mtime)
                .max()
                .unwrap();
            assert_eq!(e.mtime, newest_child, "{p}");
        }
    }
}

#[test]
fn the_tree_has_the_features_a_real_registry_accumulates() {
    let t = small();
    let gm = read_gen_manifest(&t.out).unwrap();
    let names: Vec<&str> = gm.repositories.iter().map(|s| s.as_str()).collect();
    assert!(
        names.iter().any(|n| n.matches('/').count() == 2),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("library/")), "{names:?}");
    let tag_names: Vec<&str> = gm
        .tags
        .iter()
        .map(|t| t.rsplit_once(':').unwrap().1)
        .collect();
    assert!(tag_names.contains(&"latest"));
    assert!(
        tag_names.iter().any(|t| t.starts_with("build-")),
        "{tag_names:?}"
    );
    assert!(
        tag_names
            .iter()
            .any(|t| t.trim_start_matches('v').split('.').count() == 3
                && t.trim_start_matches('v')
                    .split('.')
                    .all(|x| x.parse::<u32>().is_ok())),
        "{tag_names:?}"
    );
    let s = &t.summary;
    assert!(s.untagged_manifests > 0, "{s:?}");
    assert!(
        s.orphans > 0 && s.dangling_layer_links > 0 && s.dangling_tag_index_links > 0,
        "{s:?}"
    );
    assert!(
        s.repos > s.repos_with_manifests,
        "an uploads-only or failed-push repository: {s:?}"
    );
    // Shared base layers: some layer is linked into several repositories.
    let mut links: BTreeMap<Digest, usize> = BTreeMap::new();
    for p in t.entries.keys() {
        if let PathInfo::LayerLink { digest, .. } = classify(p)
            && p.ends_with("/link")
        {
            *links.entry(digest).or_default() += 1;
        }
    }
    assert!(
        links.values().any(|&n| n >= 4),
        "no layer shared by 4+ repositories"
    );
}

#[test]
fn refuses_a_non_empty_directory_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep.txt"), b"x").unwrap();
    let mut o = opts(&out, 1, 100);
    let e = generate(&o).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    o.force = true;
    generate(&o).unwrap();
    // Forced again over its own output: the old tree is replaced, not merged.
    let first = walk(&out);
    generate(&o).unwrap();
    assert_eq!(first, walk(&out));
    assert!(out.join("keep.txt").exists());
}

#[test]
fn digest_only_repositories_can_be_ruled_out() {
    let dir = tempfile::tempdir().unwrap();
    let untagged_repos = |o: &Options| {
        generate(o).unwrap();
        let entries = walk(&o.out.join("docker/registry/v2"));
        entries
            .keys()
            .filter(|p| p.ends_with("/_manifests"))
            .filter(|p| !entries.contains_key(&format!("{p}/tags")))
            .count()
    };
    let mut o = opts(&dir.path().join("a"), 2, 1500);
    o.repos = Some(80);
    assert!(
        untagged_repos(&o) > 0,
        "expected some by-digest-only repositories"
    );
    o.out = dir.path().join("b");
    o.digest_only_repos = false;
    assert_eq!(untagged_repos(&o), 0);
}
