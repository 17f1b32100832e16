//! `--profile ci`: the fixed CI registry shape of issue 22 (the local-disk floor's tree).
//! Counted from the files, per repository: ten tags, two of them moved (their old manifest
//! untagged but linked), one OCI index among the ten, 60% of every image's layers shared
//! with other repositories; untagged manifests beyond the moved tags' and orphan blobs, some
//! of them reached by no link. Deterministic; stowage scans it without findings; the real
//! registry serves every tag and its GC agrees with stowage's.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use stowage_gen::{Options, Profile, Summary, generate, read_gen_manifest};
use stowage_layout::parse_link;
use stowage_model::digest::Digest;
use stowage_model::manifest::{self, ManifestKind};
use stowage_testkit::real::{self, Server};

fn ci(out: &Path, seed: u64, blobs: u64) -> Options {
    let mut o = Options::new(out, blobs);
    o.seed = seed;
    o.profile = Profile::Ci;
    o
}

fn v2(out: &Path) -> PathBuf {
    out.join("docker/registry/v2")
}

fn link(p: &Path) -> Digest {
    parse_link(&fs::read(p).unwrap()).unwrap()
}

fn blob(out: &Path, d: &Digest) -> Vec<u8> {
    let h = d.sha256().unwrap();
    fs::read(v2(out).join(stowage_layout::blob_data(&h))).unwrap()
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// One repository as its files tell it.
#[derive(Debug, Default)]
struct Repo {
    /// Tag name -> (current manifest, history entries).
    tags: BTreeMap<String, (Digest, usize)>,
    /// Manifests with a revision link.
    revisions: BTreeSet<Digest>,
    /// Index children among them.
    children: BTreeSet<Digest>,
    indexes: BTreeSet<Digest>,
    /// Each image manifest's layers.
    images: BTreeMap<Digest, Vec<Digest>>,
    kinds: BTreeSet<String>,
}

fn read_repo(out: &Path, name: &str) -> Repo {
    let root = v2(out).join(stowage_layout::repository_dir(name));
    let mut r = Repo::default();
    let tags = root.join("_manifests/tags");
    for t in dir_names(&tags) {
        let cur = link(&tags.join(&t).join("current/link"));
        let hist = dir_names(&tags.join(&t).join("index/sha256")).len();
        r.tags.insert(t, (cur, hist));
    }
    let revs = root.join("_manifests/revisions/sha256");
    for h in dir_names(&revs) {
        let d = link(&revs.join(h).join("link"));
        let m = manifest::parse(&blob(out, &d)).unwrap();
        r.kinds.insert(format!("{:?}", m.kind));
        match m.kind {
            ManifestKind::OciIndex | ManifestKind::DockerManifestList => {
                r.children
                    .extend(m.children.iter().map(|c| c.descriptor.digest.clone()));
                r.indexes.insert(d.clone());
            }
            _ => {
                let layers = m.layers.iter().map(|l| l.digest.clone()).collect();
                r.images.insert(d.clone(), layers);
            }
        }
        r.revisions.insert(d);
    }
    r
}

fn untagged(r: &Repo) -> usize {
    let tagged: BTreeSet<Digest> = r.tags.values().map(|(d, _)| d.clone()).collect();
    r.revisions
        .iter()
        .filter(|d| !tagged.contains(d) && !r.children.contains(d))
        .count()
}

struct Tree {
    _dir: tempfile::TempDir,
    out: PathBuf,
    summary: Summary,
}

fn medium() -> &'static Tree {
    static T: std::sync::OnceLock<Tree> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reg");
        let summary = generate(&ci(&out, 5, 3000)).unwrap();
        Tree {
            _dir: dir,
            out,
            summary,
        }
    })
}

#[test]
fn every_repository_has_ten_tags_two_moved_one_oci_index() {
    let t = medium();
    let gm = read_gen_manifest(&t.out).unwrap();
    assert_eq!(gm.options.profile.as_deref(), Some("ci"));
    let s = &t.summary;
    assert!(s.blobs.abs_diff(3000) <= 60, "{s:?}");
    assert!(gm.repositories.len() >= 30, "{}", gm.repositories.len());
    let mut kinds = BTreeSet::new();
    let mut extra_untagged = 0;
    for name in &gm.repositories {
        let r = read_repo(&t.out, name);
        assert_eq!(r.tags.len(), 10, "{name}: {:?}", r.tags.keys());
        let moved: Vec<&String> = r
            .tags
            .iter()
            .filter(|(_, (_, hist))| *hist == 2)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(moved, ["latest", "main"], "{name}");
        assert!(r.tags.values().all(|(_, h)| (1..=2).contains(h)), "{name}");
        let index_tags = r
            .tags
            .values()
            .filter(|(d, _)| r.indexes.contains(d))
            .count();
        assert_eq!(index_tags, 1, "{name}");
        assert_eq!(r.indexes.len(), 1, "{name}");
        assert_eq!(r.children.len(), 2, "{name}: amd64 and arm64");
        assert!(r.kinds.contains("OciIndex"), "{name}: {:?}", r.kinds);
        // The moved tags' old manifests stay linked, untagged.
        let u = untagged(&r);
        assert!(u >= 2, "{name}: {u}");
        extra_untagged += u - 2;
        kinds.extend(r.kinds);
    }
    assert!(extra_untagged > 0, "no push by digest");
    assert_eq!(
        s.untagged_manifests as usize,
        2 * gm.repositories.len() + extra_untagged
    );
    assert_eq!(s.tags as usize, 10 * gm.repositories.len());
    assert_eq!(gm.tags.len(), s.tags as usize);
    assert!(
        kinds.contains("DockerSchema2") && kinds.contains("OciManifest"),
        "{kinds:?}"
    );
    assert!(!kinds.contains("DockerManifestList"), "{kinds:?}");
}

#[test]
fn sixty_percent_of_layers_come_from_the_shared_pool() {
    let t = medium();
    let gm = read_gen_manifest(&t.out).unwrap();
    let repos: Vec<Repo> = gm
        .repositories
        .iter()
        .map(|n| read_repo(&t.out, n))
        .collect();
    // In how many repositories each layer is used.
    let mut used_in: BTreeMap<Digest, usize> = BTreeMap::new();
    for r in &repos {
        let layers: BTreeSet<Digest> = r.images.values().flatten().cloned().collect();
        for l in layers {
            *used_in.entry(l).or_default() += 1;
        }
    }
    let (mut shared, mut total) = (0usize, 0usize);
    for r in &repos {
        for layers in r.images.values() {
            // Every image: 3 of 5 or 6 of 10 layers from the base.
            assert!(layers.len() == 5 || layers.len() == 10, "{}", layers.len());
            total += layers.len();
            shared += layers.iter().filter(|l| used_in[l] >= 2).count();
        }
    }
    let share = shared as f64 / total as f64;
    assert!((0.55..=0.61).contains(&share), "{shared}/{total}");
}

#[test]
fn orphans_include_blobs_no_link_reaches() {
    let t = medium();
    let s = &t.summary;
    assert!(s.orphans > 0, "{s:?}");
    assert_eq!(
        s.dangling_layer_links + s.dangling_tag_index_links,
        0,
        "{s:?}"
    );
    assert_eq!(s.uploads, 0);
    // Every digest a link names, anywhere.
    let mut linked = BTreeSet::new();
    let mut stack = vec![v2(&t.out).join("repositories")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "link" {
                linked.insert(link(&e.path()));
            }
        }
    }
    let blobs = v2(&t.out).join("blobs/sha256");
    let mut unlinked = 0;
    for fan in dir_names(&blobs) {
        for h in dir_names(&blobs.join(fan)) {
            let d: Digest = format!("sha256:{h}").parse().unwrap();
            if !linked.contains(&d) {
                unlinked += 1;
            }
        }
    }
    // The repository removed by hand left blobs no link reaches; failed pushes left linked
    // orphans besides.
    assert!(
        unlinked > 0 && unlinked < s.orphans,
        "{unlinked} of {}",
        s.orphans
    );
}

#[test]
fn stowage_scans_it_without_findings_and_finds_the_orphans() {
    let t = medium();
    let fs = stowage_storage::FsStorage::open(&v2(&t.out)).unwrap();
    let inv = stowage_scan::scan(
        &fs,
        &stowage_scan::ScanOptions::default(),
        &stowage_scan::Progress::default(),
    )
    .unwrap();
    let findings: Vec<_> = inv
        .findings
        .iter()
        .filter(|f| f.kind != stowage_model::finding::FindingKind::EmptyDirectory)
        .collect();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(inv.blobs.len() as u64, t.summary.blobs);
    let g = stowage_graph::Graph::new(&inv);
    let referenced = g.mark(g.all_revision_roots(), false);
    let ours = stowage_testkit::unreferenced_digests(&inv, &referenced);
    assert_eq!(ours.len() as u64, t.summary.orphans);
}

/// Every path with its bytes (files) and mtime.
fn walk(root: &Path) -> BTreeMap<String, (Vec<u8>, u128)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let mtime = md.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let bytes = if md.is_dir() {
                stack.push(p);
                Vec::new()
            } else {
                fs::read(&p).unwrap()
            };
            out.insert(rel, (bytes, mtime.as_nanos()));
        }
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_tree_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    let gen_walk = |name: &str, seed: u64, threads: usize| {
        let out = dir.path().join(name);
        let mut o = ci(&out, seed, 400);
        o.threads = Some(threads);
        generate(&o).unwrap();
        walk(&out)
    };
    let a = gen_walk("a", 9, 1);
    let b = gen_walk("b", 9, 2);
    assert!(a.len() > 1000, "{}", a.len());
    assert!(a == b, "same seed, different trees");
    let c = gen_walk("c", 10, 2);
    assert!(a != c);
}

#[test]
fn the_real_registry_serves_every_ci_tag_and_agrees_on_gc() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tree");
    let s = generate(&ci(&out, 11, 300)).unwrap();
    let gm = read_gen_manifest(&out).unwrap();
    assert_eq!(gm.tags.len() as u64, s.tags);
    assert!(s.tags >= 30, "{s:?}");

    let server = Server::start(&out);
    let failed = server.pull_all(&gm.tags);
    assert!(
        failed.is_empty(),
        "the registry could not serve: {failed:?}"
    );
    drop(server);

    let config = dir.path().join("config.yml");
    real::write_config(&out, &config);
    let gc = real::registry_gc_dry_run(&config, false);
    assert!(gc.exit_ok, "{}", gc.stderr);
    assert_eq!(gc.blobs.len() as u64, s.orphans);
    let fs = stowage_storage::FsStorage::open(&v2(&out)).unwrap();
    let inv = stowage_scan::scan(
        &fs,
        &stowage_scan::ScanOptions::default(),
        &stowage_scan::Progress::default(),
    )
    .unwrap();
    let g = stowage_graph::Graph::new(&inv);
    let referenced = g.mark(g.all_revision_roots(), false);
    assert_eq!(
        stowage_testkit::unreferenced_digests(&inv, &referenced),
        gc.blobs
    );
}

#[test]
fn inventory_mode_writes_the_same_ci_registry() {
    let tree = tempfile::tempdir().unwrap();
    let inv = tempfile::tempdir().unwrap();
    let mut o = ci(tree.path(), 4, 600);
    let s = generate(&o).unwrap();
    o.out = inv.path().to_path_buf();
    let i = stowage_gen::generate_inventory(&o).unwrap();
    assert_eq!(i.blobs, s.blobs);
    assert_eq!(i.objects, s.files, "{i:?} {s:?}");
}
