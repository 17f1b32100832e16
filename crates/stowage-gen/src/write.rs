//! Turning the final state into files: blob bytes, link files, tag histories, uploads, and the
//! modification times of every file and directory.
//!
//! Directory mtimes follow what a filesystem records: a directory's mtime is the last time an
//! entry was created in it or removed from it (rewriting a file in place does not change it).
//! Leaf directories (one `link` or `data` file) get theirs right after their file is written;
//! every other directory is collected in a [`Book`] and set at the very end, when nothing will
//! be added to it any more.

use std::collections::{HashMap, HashSet};
use std::fs::{self, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use stowage_layout as layout;
use stowage_model::digest::{Digest, Sha256};

use crate::content::{self, digest_str, hex, sha256};
use crate::plan::{BlobSpec, Plan, RepoKind};
use crate::sim::Final;

pub const LAYOUT: &str = layout::LAYOUT_ROOT;

fn systime(t: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)
}

fn times(t: i64) -> FileTimes {
    FileTimes::new()
        .set_accessed(systime(t))
        .set_modified(systime(t))
}

/// Create `path` (it must not exist), write `bytes`, set its atime and mtime to `t`.
pub fn write_file(path: &Path, bytes: &[u8], t: i64) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.set_times(times(t))
}

/// Set a directory's atime and mtime (by path: one syscall, no open).
pub fn set_dir_time(path: &Path, t: i64) -> io::Result<()> {
    let ts = rustix::fs::Timespec {
        tv_sec: t.max(0),
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty())
        .map_err(io::Error::from)
}

fn parent(p: &str) -> Option<&str> {
    p.rsplit_once('/').map(|x| x.0)
}

/// Creation and last-change times of non-leaf directories (paths relative to the output dir).
#[derive(Default)]
pub struct Book {
    dirs: HashMap<String, (i64, i64)>,
}

impl Book {
    /// `dir` existed from `created` and changed at `modified`.
    pub fn touch(&mut self, dir: &str, created: i64, modified: i64) {
        let e = self
            .dirs
            .entry(dir.to_string())
            .or_insert((i64::MAX, i64::MIN));
        e.0 = e.0.min(created);
        e.1 = e.1.max(modified);
        // Every ancestor existed at least since then. Stop where an ancestor is already older:
        // its own ancestors are older still.
        let mut cur = dir;
        while let Some(p) = parent(cur) {
            let e = self
                .dirs
                .entry(p.to_string())
                .or_insert((i64::MAX, i64::MIN));
            if e.0 <= created {
                break;
            }
            e.0 = created;
            cur = p;
        }
    }

    /// An entry created at `t` appeared in `dir`.
    pub fn child(&mut self, dir: &str, t: i64) {
        self.touch(dir, t, t)
    }

    pub fn merge(&mut self, other: Book) {
        for (k, (c, m)) in other.dirs {
            let e = self.dirs.entry(k).or_insert((i64::MAX, i64::MIN));
            e.0 = e.0.min(c);
            e.1 = e.1.max(m);
        }
    }

    /// Directories recorded so far.
    pub fn dir_count(&self) -> usize {
        self.dirs.len()
    }

    /// Final mtime of each directory: its own last change, or the creation of its newest
    /// subdirectory, whichever is later. Sorted by path.
    pub fn finish(mut self) -> Vec<(String, i64)> {
        let created: Vec<(String, i64)> = self.dirs.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        for (k, c) in created {
            if let Some(p) = parent(&k)
                && let Some(e) = self.dirs.get_mut(p)
            {
                e.1 = e.1.max(c);
            }
        }
        let mut v: Vec<(String, i64)> = self
            .dirs
            .into_iter()
            .map(|(k, (c, m))| (k, m.max(c)))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Digest, size and (for layers) diff_id of every planned blob.
pub struct Materialized {
    pub digest: Vec<[u8; 32]>,
    pub size: Vec<u64>,
    pub diff: Vec<[u8; 32]>,
}

fn blob_dir(d: &[u8; 32]) -> String {
    format!("{LAYOUT}/{}", layout::blob_dir(&Sha256(*d)))
}

fn write_blob(out: &Path, d: &[u8; 32], bytes: &[u8], t: i64) -> Result<()> {
    let dir = out.join(blob_dir(d));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = dir.join("data");
    write_file(&data, bytes, t).with_context(|| {
        format!(
            "writing {} (two planned blobs with the same bytes?)",
            data.display()
        )
    })?;
    set_dir_time(&dir, t).with_context(|| format!("setting the mtime of {}", dir.display()))
}

/// The bytes of blob `b`. Configs, manifests and indexes need the digests of what they
/// reference, so `m` must already hold those (see [`materialize`]).
pub fn blob_bytes(plan: &Plan, m: &Materialized, b: u32) -> Vec<u8> {
    match &plan.blobs[b as usize] {
        BlobSpec::Layer(spec) => content::layer(spec).0,
        BlobSpec::Config(i) => {
            let img = &plan.images[*i as usize];
            let diffs: Vec<[u8; 32]> = img.layers.iter().map(|&l| m.diff[l as usize]).collect();
            content::config(plan, img, &diffs)
        }
        BlobSpec::Manifest(i) => {
            let img = &plan.images[*i as usize];
            let c = img.config as usize;
            let layers: Vec<([u8; 32], u64)> = img
                .layers
                .iter()
                .map(|&l| (m.digest[l as usize], m.size[l as usize]))
                .collect();
            content::manifest(img, (m.digest[c], m.size[c]), &layers)
        }
        BlobSpec::Index(i) => {
            let ix = &plan.indexes[*i as usize];
            let children: Vec<([u8; 32], u64, u8)> = ix
                .children
                .iter()
                .filter_map(|&c| {
                    let img = &plan.images[c as usize];
                    img.manifest
                        .map(|mb| (m.digest[mb as usize], m.size[mb as usize], img.arch))
                })
                .collect();
            content::index(ix, &children)
        }
    }
}

/// Digest, size and diff_id of every planned blob, kind by kind (layers, configs, manifests,
/// indexes: each needs the digests of the kind before). Parallel, no I/O.
pub fn materialize(plan: &Plan, fin: &Final) -> Result<Materialized> {
    let n = plan.blobs.len();
    let mut m = Materialized {
        digest: vec![[0; 32]; n],
        size: vec![0; n],
        diff: vec![[0; 32]; n],
    };
    let ids = |f: fn(&BlobSpec) -> bool| -> Vec<u32> {
        (0..n as u32)
            .filter(|&b| f(&plan.blobs[b as usize]))
            .collect()
    };
    let res: Vec<(u32, [u8; 32], u64, [u8; 32])> = ids(|s| matches!(s, BlobSpec::Layer(_)))
        .into_par_iter()
        .map(|b| match &plan.blobs[b as usize] {
            BlobSpec::Layer(spec) => {
                let (bytes, diff) = content::layer(spec);
                (b, sha256(&bytes), bytes.len() as u64, diff)
            }
            _ => (b, [0; 32], 0, [0; 32]),
        })
        .collect();
    for (b, d, size, diff) in res {
        m.digest[b as usize] = d;
        m.size[b as usize] = size;
        m.diff[b as usize] = diff;
    }
    let kinds: [fn(&BlobSpec) -> bool; 3] = [
        |s| matches!(s, BlobSpec::Config(_)),
        |s| matches!(s, BlobSpec::Manifest(_)),
        |s| matches!(s, BlobSpec::Index(_)),
    ];
    for kind in kinds {
        let res: Vec<(u32, [u8; 32], u64)> = ids(kind)
            .into_par_iter()
            .map(|b| {
                let bytes = blob_bytes(plan, &m, b);
                (b, sha256(&bytes), bytes.len() as u64)
            })
            .collect();
        for (b, d, size) in res {
            m.digest[b as usize] = d;
            m.size[b as usize] = size;
        }
    }
    let mut seen = HashSet::with_capacity(n);
    for (b, d) in m.digest.iter().enumerate() {
        if fin.blobs[b].ever && !seen.insert(*d) {
            bail!(
                "internal error: two planned blobs hash to {}",
                digest_str(d)
            );
        }
    }
    Ok(m)
}

/// Write every blob present in the final tree. Each fan-out directory is filled by one
/// worker in digest order, so even directory sizes come out the same on every run.
pub fn write_blobs(out: &Path, plan: &Plan, fin: &Final, m: &Materialized) -> Result<()> {
    let mut shards: Vec<Vec<([u8; 32], u32)>> = vec![Vec::new(); 256];
    for (b, st) in fin.blobs.iter().enumerate() {
        if st.present {
            shards[m.digest[b][0] as usize].push((m.digest[b], b as u32));
        }
    }
    shards.par_iter_mut().try_for_each(|shard| {
        shard.sort_unstable();
        for &(d, b) in shard.iter() {
            let bytes = blob_bytes(plan, m, b);
            debug_assert_eq!(sha256(&bytes), d);
            write_blob(out, &d, &bytes, fin.blobs[b as usize].written)?;
        }
        Ok(())
    })
}

/// Fan-out directories (`blobs/sha256/<hh>`): created with their first blob, changed by every
/// later blob write and GC sweep. Creates them all (in order, before any blob is written),
/// including those GC left empty.
pub fn blob_book(out: &Path, fin: &Final, m: &Materialized) -> Result<(Book, u64)> {
    let mut book = Book::default();
    let mut leaf_dirs = 0;
    let mut shards = std::collections::BTreeSet::new();
    for (b, st) in fin.blobs.iter().enumerate() {
        if !st.ever {
            continue;
        }
        let h = hex(&m.digest[b]);
        let shard = format!("{LAYOUT}/blobs/sha256/{}", &h[..2]);
        book.touch(&shard, st.first, st.first);
        if st.swept > 0 {
            book.touch(&shard, st.first, st.swept);
        }
        if st.present {
            book.child(&shard, st.written);
            leaf_dirs += 1;
        }
        shards.insert(shard);
    }
    for s in shards {
        fs::create_dir_all(out.join(&s)).with_context(|| format!("creating {s}"))?;
    }
    Ok((book, leaf_dirs))
}

/// What one repository contributed.
#[derive(Default)]
pub struct RepoOut {
    pub book: Book,
    pub files: u64,
    pub bytes: u64,
    pub leaf_dirs: u64,
    pub layer_links: u64,
    pub dangling_layer_links: u64,
    pub revision_links: u64,
    pub deleted_revisions: u64,
    pub untagged_manifests: u64,
    pub tags: Vec<String>,
    pub tag_index_links: u64,
    pub dangling_tag_index_links: u64,
    pub uploads: u64,
    pub exists: bool,
    pub has_manifests: bool,
}

struct RepoWriter<'a> {
    out: &'a Path,
    o: RepoOut,
}

impl RepoWriter<'_> {
    fn dir(&self, rel: &str) -> Result<()> {
        fs::create_dir_all(self.out.join(rel)).with_context(|| format!("creating {rel}"))
    }

    /// `dir_rel/link` holding `d`; the directory holds nothing else.
    fn link(&mut self, dir_rel: &str, d: &[u8; 32], created: i64, modified: i64) -> Result<()> {
        self.dir(dir_rel)?;
        let dir = self.out.join(dir_rel);
        let text = digest_str(d);
        write_file(&dir.join("link"), text.as_bytes(), modified)
            .with_context(|| format!("writing {dir_rel}/link"))?;
        set_dir_time(&dir, created).with_context(|| format!("setting the mtime of {dir_rel}"))?;
        if let Some(p) = parent(dir_rel) {
            self.o.book.child(p, created);
        }
        self.o.files += 1;
        self.o.bytes += text.len() as u64;
        self.o.leaf_dirs += 1;
        Ok(())
    }

    /// A file in a non-leaf directory.
    fn file(
        &mut self,
        dir_rel: &str,
        name: &str,
        bytes: &[u8],
        created: i64,
        modified: i64,
    ) -> Result<()> {
        self.dir(dir_rel)?;
        write_file(&self.out.join(dir_rel).join(name), bytes, modified)
            .with_context(|| format!("writing {dir_rel}/{name}"))?;
        self.o.book.child(dir_rel, created);
        self.o.files += 1;
        self.o.bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Write every file of repository `r` (nothing if it was deleted by hand).
pub fn write_repo(
    out: &Path,
    plan: &Plan,
    fin: &Final,
    m: &Materialized,
    r: usize,
) -> Result<RepoOut> {
    let spec = &plan.repos[r];
    let st = &fin.repos[r];
    let mut w = RepoWriter {
        out,
        o: RepoOut::default(),
    };
    let Some(created) = st.created else {
        return Ok(w.o);
    };
    let name = &spec.name;
    if let Some(deleted) = st.deleted {
        // `rm -rf repositories/<name>`: the parent namespace directory stays, changed.
        if let Some((ns, _)) = name.rsplit_once('/') {
            let ns = format!("{LAYOUT}/repositories/{ns}");
            w.dir(&ns)?;
            w.o.book.touch(&ns, created, deleted);
        }
        return Ok(w.o);
    }
    w.o.exists = true;
    let dg = |b: u32| Digest::Sha256(Sha256(m.digest[b as usize]));
    let base = format!("{LAYOUT}/");

    for (&b, stamp) in &st.layer_links {
        let rel = base.clone() + &layout::layer_link(name, &dg(b));
        let dir = rel.trim_end_matches("/link");
        w.link(dir, &m.digest[b as usize], stamp.created, stamp.modified)?;
        w.o.layer_links += 1;
        if !fin.blobs[b as usize].present {
            w.o.dangling_layer_links += 1;
        }
    }
    for (&b, rev) in &st.revisions {
        let dir = base.clone() + &layout::revision_dir(name, &dg(b));
        match rev.deleted {
            None => {
                w.link(
                    &dir,
                    &m.digest[b as usize],
                    rev.stamp.created,
                    rev.stamp.modified,
                )?;
                w.o.revision_links += 1;
                w.o.has_manifests = true;
                if !st.is_tagged(b) && !st.children.contains(&b) {
                    w.o.untagged_manifests += 1;
                }
            }
            Some(deleted) => {
                // API delete: the link file is gone, its directory stays, empty.
                w.dir(&dir)?;
                set_dir_time(&out.join(&dir), deleted)
                    .with_context(|| format!("setting the mtime of {dir}"))?;
                if let Some(p) = parent(&dir) {
                    w.o.book.child(p, rev.stamp.created);
                }
                w.o.leaf_dirs += 1;
                w.o.deleted_revisions += 1;
            }
        }
    }
    if let Some(s) = st.tags_dir {
        let dir = format!("{base}{}/_manifests/tags", layout::repository_dir(name));
        w.dir(&dir)?;
        w.o.book.touch(&dir, s.created, s.modified);
    }
    for tag in st.tags.iter().filter(|t| t.alive) {
        let cur = format!("{base}{}/current", layout::tag_dir(name, &tag.name));
        w.link(
            &cur,
            &m.digest[tag.current as usize],
            tag.created,
            tag.current_modified,
        )?;
        for (&b, s) in &tag.index {
            let dir = base.clone() + &layout::tag_index_dir(name, &tag.name, &dg(b));
            w.link(&dir, &m.digest[b as usize], s.created, s.modified)?;
            w.o.tag_index_links += 1;
            if !fin.blobs[b as usize].present {
                w.o.dangling_tag_index_links += 1;
            }
        }
        w.o.tags.push(format!("{name}:{}", tag.name));
    }
    if let Some(s) = st.uploads_dir {
        let dir = format!("{base}{}/_uploads", layout::repository_dir(name));
        w.dir(&dir)?;
        w.o.book.touch(&dir, s.created, s.modified);
    }
    for &u in &st.uploads {
        let up = &plan.uploads[u as usize];
        let dir = base.clone() + &layout::upload_dir(name, &up.uuid);
        let started = up.started;
        w.file(
            &dir,
            "startedat",
            crate::time::rfc3339(started).as_bytes(),
            started,
            started,
        )?;
        let total: u64 = up.chunks.iter().map(|c| c.0).sum();
        let data = content::upload_data(up.seed, total);
        let last = up.chunks.last().map_or(started, |c| c.1);
        w.file(&dir, "data", &data, started, last)?;
        let hs = format!("{dir}/hashstates/sha256");
        w.file(&hs, "0", &content::go_sha256_state(&[]), started, started)?;
        let mut off = 0u64;
        for &(len, t) in &up.chunks {
            off += len;
            let state = content::go_sha256_state(&data[..off as usize]);
            w.file(&hs, &off.to_string(), &state, t, t)?;
        }
        w.o.uploads += 1;
    }
    debug_assert!(spec.kind != RepoKind::UploadsOnly || st.revisions.is_empty());
    Ok(w.o)
}

/// Create every repository directory (and namespace left by a hand deletion) in sorted
/// order, before the parallel writers fill them, so shared namespace directories get their
/// entries in the same order on every run.
pub fn create_repo_dirs(out: &Path, plan: &Plan, fin: &Final) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for (spec, st) in plan.repos.iter().zip(&fin.repos) {
        if st.created.is_none() {
            continue;
        }
        match st.deleted {
            None => {
                dirs.insert(spec.name.clone());
            }
            Some(_) => {
                if let Some((ns, _)) = spec.name.rsplit_once('/') {
                    dirs.insert(ns.to_string());
                }
            }
        }
    }
    for d in dirs {
        let rel = format!("{LAYOUT}/repositories/{d}");
        fs::create_dir_all(out.join(&rel)).with_context(|| format!("creating {rel}"))?;
    }
    Ok(())
}
