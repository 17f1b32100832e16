//! The migration's steps (see the crate doc): list, select, copy blobs, copy links in
//! waves, verify. Copies run on a pool of `concurrency` threads; the storages' calls block
//! their thread (object stores: one request in flight per thread), so the pool size is the
//! number of requests in flight.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use stowage_model::digest::{Digest, Sha256};
use stowage_storage::{Storage, StoragePut};

use crate::journal::{self, Record};
use crate::walk::{self, File};
use crate::{Counts, Error, Options, Progress, Report, Skip, Verified, copy};

/// Files below `repositories/` larger than this are streamed, not read whole (a link is
/// 71 bytes; nothing the registry writes there is big).
const READ_WHOLE: u64 = 1 << 20;

/// How many of the target-only files the report names.
const SAMPLE: usize = 20;

/// The wave of a file below `repositories/`: layer links and anything else (0), revision
/// links (1), tag history (2), tag `current` links (3); `None` for an upload in progress.
/// A wave is written only for the repositories in which every earlier wave was (see
/// [`Copying::links`]).
fn wave(key: &str) -> Option<usize> {
    if key.contains("/_uploads/") {
        return None;
    }
    if key.contains("/_manifests/revisions/") {
        return Some(1);
    }
    match key.find("/_manifests/tags/") {
        Some(_) if key.ends_with("/current/link") => Some(3),
        Some(_) => Some(2),
        None => Some(0),
    }
}

/// The repository a key below `repositories/` belongs to (what precedes its `_layers`,
/// `_manifests` or `_uploads`).
fn repository_of(key: &str) -> &str {
    let rest = key.strip_prefix("repositories/").unwrap_or(key);
    ["/_layers/", "/_manifests/", "/_uploads/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .map_or(rest, |i| &rest[..i])
}

/// The sha256 blobs some manifest of the source reaches (the mark `gc` uses).
fn reachable(source: &dyn Storage, concurrency: usize) -> Result<HashSet<Sha256>, Error> {
    let opts = stowage_scan::ScanOptions {
        concurrency,
        ..Default::default()
    };
    let inv = stowage_scan::scan(source, &opts, &Default::default()).map_err(Error::Scan)?;
    if let Some(d) = inv.unlisted.first() {
        return Err(Error::Incomplete(format!("{d} could not be listed")));
    }
    if let Some(r) = inv.repositories.iter().find(|r| !r.complete) {
        return Err(Error::Incomplete(format!(
            "repository {} could not be read completely",
            r.name
        )));
    }
    let g = stowage_graph::Graph::new(&inv);
    let marked = g.mark(g.revision_roots(), false);
    Ok(inv
        .blobs
        .iter()
        .zip(&marked)
        .filter(|(_, m)| **m)
        .map(|(b, _)| b.digest)
        .collect())
}

/// What to do, decided from the two listings and the journal.
#[derive(Default)]
struct Selection<'a> {
    blobs: Vec<(&'a File, Sha256)>,
    /// Blobs the target holds with the right size that no run of this journal wrote: their
    /// bytes are hashed in the target, and copied again unless they match.
    check: Vec<(&'a File, Sha256)>,
    /// Files below `blobs/` that are not blobs in the exact layout: copied as they are.
    odd: Vec<&'a File>,
    links: [Vec<&'a File>; 4],
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run a migration from `source` to `target` (see the crate doc).
pub fn migrate(
    source: &dyn Storage,
    target: &dyn StoragePut,
    opts: &Options,
    progress: &Progress,
) -> Result<Report, Error> {
    let started = Instant::now();
    let (src_name, dst_name) = (source.describe(), target.describe());
    if src_name == dst_name {
        return Err(Error::SameStorage(src_name));
    }
    let prev = journal::read(&opts.journal, &src_name, &dst_name)?;
    if let (Some(at), false) = (&prev.completed, opts.incremental) {
        return Err(Error::AlreadyDone {
            journal: opts.journal.clone(),
            at: at.clone(),
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.concurrency.max(1))
        .thread_name(|i| format!("stowage-migrate-{i}"))
        .build()
        .map_err(|e| Error::Pool(e.to_string()))?;
    progress.start(0, 0, 0);
    let (src, dst) = std::thread::scope(|s| {
        let a = s.spawn(|| walk::list(source, &pool));
        let b = walk::list(target, &pool);
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    });
    let src = src.map_err(|source| Error::List {
        what: format!("the source {src_name}"),
        source,
    })?;
    let dst = dst.map_err(|source| Error::List {
        what: format!("the target {dst_name}"),
        source,
    })?;
    let keep = match opts.reachable_only {
        true => {
            progress.start(1, 0, 0);
            Some(reachable(source, opts.concurrency)?)
        }
        false => None,
    };
    let mut report = Report {
        schema: crate::SCHEMA,
        source: src_name,
        target: dst_name,
        dry_run: !opts.execute,
        journal: opts.journal.display().to_string(),
        resumed: prev.existed && prev.completed.is_none() && !prev.copied.is_empty(),
        incremental: prev.completed.is_some(),
        skipped: src.skipped.clone(),
        ..Report::default()
    };
    let held: HashMap<&str, &File> = dst.files.iter().map(|f| (f.key.as_str(), f)).collect();
    let sel = select(
        &src.files,
        &held,
        &prev,
        keep.as_ref(),
        opts.trust_size,
        &mut report,
    );
    // What the target holds once blobs are copied: what it held (unless about to be
    // replaced or checked), plus each blob copied or checked.
    let recopied: HashSet<Sha256> = sel
        .blobs
        .iter()
        .chain(&sel.check)
        .map(|(_, d)| *d)
        .collect();
    let available: Mutex<HashSet<Sha256>> = Mutex::new(
        dst.files
            .iter()
            .filter_map(|f| copy::blob_digest(&f.key))
            .filter(|d| !recopied.contains(d))
            .collect(),
    );
    only_in_target(&src.files, &dst.files, &mut report);
    if !opts.execute {
        for (f, _) in &sel.blobs {
            report.blobs_copied.add(f.size);
        }
        for (f, _) in &sel.check {
            report.blobs_present.add(f.size);
        }
        for f in sel.odd.iter().chain(sel.links.iter().flatten()) {
            report.links_copied.add(f.size);
        }
        return Ok(finish(report, started, progress));
    }
    let journal =
        journal::Writer::open(&opts.journal, &report.source, &report.target, !prev.existed)?;
    let failed = Mutex::new(Vec::new());
    let fail = |f: &File, why: String| {
        lock(&failed).push(Skip {
            path: f.key.clone(),
            why,
        })
    };
    let ctx = Copying {
        source,
        target,
        journal: &journal,
        fail: &fail,
        progress,
        pool: &pool,
    };
    let (copied, present) = ctx.blobs(&sel, &available)?;
    report.blobs_copied = copied;
    report.blobs_present.objects += present.objects;
    report.blobs_present.bytes += present.bytes;
    let available = available.into_inner().unwrap_or_else(|p| p.into_inner());
    // Selected blobs the target still lacks: their copy failed.
    let missing: HashSet<Sha256> = recopied
        .into_iter()
        .filter(|d| !available.contains(d))
        .collect();
    let (links, dangling, held) = ctx.links(&sel, &available, &missing)?;
    report.links_copied = links;
    report.dangling_links = dangling;
    report.held_back = held;
    report.failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    report.failed.sort();
    if let Err(e) = target.put_finished() {
        report.failed.push(Skip {
            path: e.path.clone(),
            why: format!("{e:#}"),
        });
    }
    if opts.verify {
        report.verified = Some(verify(&pool, target, &src.files, keep.as_ref(), progress));
    }
    if report.ok() {
        journal.done(opts.now)?;
    }
    Ok(finish(report, started, progress))
}

/// Decide what to copy; count what is left out.
fn select<'a>(
    files: &'a [File],
    held: &HashMap<&str, &File>,
    prev: &journal::Previous,
    keep: Option<&HashSet<Sha256>>,
    trust_size: bool,
    report: &mut Report,
) -> Selection<'a> {
    let mut sel = Selection::default();
    let same_in_target = |f: &File| held.get(f.key.as_str()).is_some_and(|t| t.size == f.size);
    // Written by a run of this journal: checked against its digest on the way then.
    let ours = |f: &File| prev.copied.get(&f.key).is_some_and(|r| *r == Record::of(f));
    for f in files {
        if let Some(d) = copy::blob_digest(&f.key) {
            if keep.is_some_and(|k| !k.contains(&d)) {
                report.unreferenced_left_out.add(f.size);
            } else if same_in_target(f) && (trust_size || ours(f)) {
                report.blobs_present.add(f.size);
            } else if same_in_target(f) {
                sel.check.push((f, d));
            } else {
                sel.blobs.push((f, d));
            }
            continue;
        }
        if f.key.starts_with("blobs/") {
            // Not a blob in the exact layout (a misplaced copy): only without
            // --reachable-only, which copies what manifests reach and nothing else.
            if keep.is_none() && !same_in_target(f) {
                sel.odd.push(f);
            }
            continue;
        }
        let Some(w) = wave(&f.key) else {
            report.uploads_left_out.add(f.size);
            continue;
        };
        if ours(f) && same_in_target(f) {
            report.links_unchanged.add(f.size);
        } else {
            sel.links[w].push(f);
        }
    }
    sel
}

/// What every copy needs.
struct Copying<'a> {
    source: &'a dyn Storage,
    target: &'a dyn StoragePut,
    journal: &'a journal::Writer,
    fail: &'a (dyn Fn(&File, String) + Sync),
    progress: &'a Progress,
    pool: &'a rayon::ThreadPool,
}

impl Copying<'_> {
    /// Copy the blobs (checked) and the odd files below `blobs/`; each blob copied joins
    /// `available`.
    /// Returns what was copied, and what was found in the target with its digest.
    fn blobs(
        &self,
        sel: &Selection<'_>,
        available: &Mutex<HashSet<Sha256>>,
    ) -> Result<(Counts, Counts), Error> {
        let copied = Mutex::new(Counts::default());
        let present = Mutex::new(Counts::default());
        let total = sel
            .blobs
            .iter()
            .chain(&sel.check)
            .map(|(f, _)| f.size)
            .sum::<u64>()
            + sel.odd.iter().map(|f| f.size).sum::<u64>();
        let n = sel.blobs.len() + sel.check.len() + sel.odd.len();
        self.progress.start(2, n as u64, total);
        self.pool.install(|| {
            // Same size in the target is not the same bytes (a truncated or corrupt earlier
            // copy of the right length, another tool's): hashed there, copied unless equal.
            let checked: Vec<(&File, Sha256)> = sel
                .check
                .par_iter()
                .filter_map(
                    |(f, d)| match copy::verify(self.target, &f.key, *d, f.size) {
                        Ok(None) => {
                            if let Err(e) = self.journal.copied(&Record::of(f)) {
                                (self.fail)(f, e.to_string());
                            }
                            lock(available).insert(*d);
                            lock(&present).add(f.size);
                            self.progress.tick(f.size);
                            None
                        }
                        _ => Some((*f, *d)),
                    },
                )
                .collect();
            sel.blobs
                .par_iter()
                .chain(checked.par_iter())
                .for_each(|(f, d)| {
                    match copy::blob(self.source, self.target, f, *d).map_err(|e| format!("{e:#}"))
                    {
                        Ok(()) => match self.journal.copied(&Record::of(f)) {
                            Ok(()) => {
                                lock(available).insert(*d);
                                lock(&copied).add(f.size);
                            }
                            Err(e) => (self.fail)(f, e.to_string()),
                        },
                        Err(why) => (self.fail)(f, why),
                    }
                    self.progress.tick(f.size);
                });
            sel.odd.par_iter().for_each(|f| {
                let _ = copy_file(
                    self.source,
                    self.target,
                    f,
                    None,
                    self.journal,
                    self.fail,
                    self.progress,
                );
            });
        });
        self.journal.sync()?;
        Ok((
            copied.into_inner().unwrap_or_else(|p| p.into_inner()),
            present.into_inner().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    /// Copy the links, wave after wave; those naming a blob the target lacks are returned,
    /// then those held back. A repository in which a link failed (its copy, or the copy of
    /// the blob it names) gets none of its later waves: no revision link while one of its
    /// layer links is missing, no tag while one of its revisions is, so the registry never
    /// serves a manifest of it whose config, layer or child would answer 404 (review
    /// finding: revisions went in the layers' wave and only checked their own blob). A
    /// re-run writes the rest once the failures are copied.
    fn links(
        &self,
        sel: &Selection<'_>,
        available: &HashSet<Sha256>,
        missing: &HashSet<Sha256>,
    ) -> Result<(Counts, Vec<Skip>, Vec<Skip>), Error> {
        let links = Mutex::new(Counts::default());
        let dangling = Mutex::new(Vec::new());
        let held = Mutex::new(Vec::new());
        let broken: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
        let n: usize = sel.links.iter().map(Vec::len).sum();
        let bytes = sel.links.iter().flatten().map(|f| f.size).sum();
        self.progress.start(3, n as u64, bytes);
        let ctx = LinkCtx {
            available,
            dangling: &dangling,
        };
        for wave in &sel.links {
            // An index and its children share the revisions' wave: a revision naming a blob
            // whose copy failed (a child, say) holds back every revision of its repository
            // from the start of the wave, the index included (review: the index went in the
            // same wave and was served by digest with a child answering 404).
            for f in wave {
                if let stowage_layout::PathInfo::RevisionLink {
                    digest: Digest::Sha256(d),
                    ..
                } = stowage_layout::classify(&f.key)
                    && missing.contains(&d)
                {
                    lock(&broken)
                        .entry(repository_of(&f.key).to_string())
                        .or_insert(format!("{} names a blob whose copy failed", f.key));
                }
            }
            let before = lock(&broken).clone();
            self.pool.install(|| {
                wave.par_iter().for_each(|f| {
                    let repo = repository_of(&f.key);
                    if let Some(why) = before.get(repo) {
                        self.progress.tick(f.size);
                        lock(&held).push(Skip {
                            path: f.key.clone(),
                            why: format!("held back: {why}"),
                        });
                        return;
                    }
                    let out = copy_file(
                        self.source,
                        self.target,
                        f,
                        Some(&ctx),
                        self.journal,
                        self.fail,
                        self.progress,
                    );
                    let why = match out {
                        Outcome::Written => {
                            lock(&links).add(f.size);
                            return;
                        }
                        Outcome::Gone => return,
                        Outcome::Dangling(d) if !missing.contains(&d) => return,
                        Outcome::Dangling(_) => format!("{} names a blob whose copy failed", f.key),
                        Outcome::Failed => format!("{} could not be copied", f.key),
                    };
                    lock(&broken).entry(repo.to_string()).or_insert(why);
                })
            });
            // A wave is durable before the next one names what it wrote.
            self.journal.sync()?;
        }
        let mut dangling = dangling.into_inner().unwrap_or_else(|p| p.into_inner());
        dangling.sort();
        let mut held = held.into_inner().unwrap_or_else(|p| p.into_inner());
        held.sort();
        Ok((
            links.into_inner().unwrap_or_else(|p| p.into_inner()),
            dangling,
            held,
        ))
    }
}

/// What became of one file copy.
enum Outcome {
    Written,
    /// Gone from the source since the listing.
    Gone,
    /// A link naming a blob the target does not hold: not copied.
    Dangling(Sha256),
    /// Reported in `failed`.
    Failed,
}

struct LinkCtx<'a> {
    available: &'a HashSet<Sha256>,
    dangling: &'a Mutex<Vec<Skip>>,
}

/// Copy one file that is not a checked blob; a link is copied only when the target holds
/// the blob it names.
fn copy_file(
    source: &dyn Storage,
    target: &dyn StoragePut,
    f: &File,
    link: Option<&LinkCtx<'_>>,
    journal: &journal::Writer,
    fail: &(dyn Fn(&File, String) + Sync),
    progress: &Progress,
) -> Outcome {
    progress.tick(f.size);
    let written = if f.size > READ_WHOLE {
        source
            .open(&f.key)
            .and_then(|mut r| target.put(&f.key, &mut r, f.size, Some(f.modified)))
    } else {
        let bytes = match source.read(&f.key, READ_WHOLE) {
            Ok(b) => b,
            // Gone since the listing (a tag moved, an upload finished): nothing to copy.
            Err(e) if e.is_not_found() => return Outcome::Gone,
            Err(e) => {
                fail(f, format!("{e:#}"));
                return Outcome::Failed;
            }
        };
        if let Some(ctx) = link.filter(|_| f.key.ends_with("/link"))
            && let Ok(Digest::Sha256(d)) = stowage_layout::parse_link(&bytes)
            && !ctx.available.contains(&d)
        {
            lock(ctx.dangling).push(Skip {
                path: f.key.clone(),
                why: format!("names sha256:{}, which the target does not hold", d.hex()),
            });
            return Outcome::Dangling(d);
        }
        copy::bytes(target, f, &bytes)
    };
    match written {
        Ok(()) => match journal.copied(&Record::of(f)) {
            Ok(()) => Outcome::Written,
            Err(e) => {
                fail(f, e.to_string());
                Outcome::Failed
            }
        },
        Err(e) => {
            fail(f, format!("{e:#}"));
            Outcome::Failed
        }
    }
}

/// Files only the target holds (outside uploads).
fn only_in_target(src: &[File], dst: &[File], report: &mut Report) {
    let have: HashSet<&str> = src.iter().map(|f| f.key.as_str()).collect();
    for f in dst {
        if !have.contains(f.key.as_str()) && !f.key.contains("/_uploads/") {
            report.only_in_target.add(f.size);
            if report.only_in_target_sample.len() < SAMPLE {
                report.only_in_target_sample.push(f.key.clone());
            }
        }
    }
}

/// Read every selected blob back from the target and check its digest.
fn verify(
    pool: &rayon::ThreadPool,
    target: &dyn StoragePut,
    files: &[File],
    keep: Option<&HashSet<Sha256>>,
    progress: &Progress,
) -> Verified {
    let blobs: Vec<(&File, Sha256)> = files
        .iter()
        .filter_map(|f| copy::blob_digest(&f.key).map(|d| (f, d)))
        .filter(|(_, d)| keep.is_none_or(|k| k.contains(d)))
        .collect();
    progress.start(
        4,
        blobs.len() as u64,
        blobs.iter().map(|(f, _)| f.size).sum(),
    );
    let bad = Mutex::new(Vec::new());
    pool.install(|| {
        blobs.par_iter().for_each(|(f, d)| {
            let why = match copy::verify(target, &f.key, *d, f.size) {
                Ok(None) => None,
                Ok(Some(why)) => Some(why),
                Err(e) => Some(format!("{e:#}")),
            };
            if let Some(why) = why {
                lock(&bad).push(Skip {
                    path: f.key.clone(),
                    why,
                });
            }
            progress.tick(f.size);
        })
    });
    let mut bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
    bad.sort();
    let mut v = Verified {
        bad,
        ..Verified::default()
    };
    for (f, _) in &blobs {
        v.blobs.add(f.size);
    }
    v
}

fn finish(mut report: Report, started: Instant, progress: &Progress) -> Report {
    progress.start(5, 0, 0);
    report.seconds = started.elapsed().as_secs_f64();
    let c = report.copied();
    if report.seconds > 0.0 && !report.dry_run {
        report.objects_per_second = c.objects as f64 / report.seconds;
        report.bytes_per_second = c.bytes as f64 / report.seconds;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_last_and_uploads_never() {
        assert_eq!(wave("repositories/a/_layers/sha256/x/link"), Some(0));
        assert_eq!(
            wave("repositories/a/_manifests/revisions/sha256/x/link"),
            Some(1)
        );
        assert_eq!(
            wave("repositories/a/_manifests/tags/v1/index/sha256/x/link"),
            Some(2)
        );
        assert_eq!(
            wave("repositories/a/_manifests/tags/v1/current/link"),
            Some(3)
        );
        assert_eq!(wave("repositories/a/_uploads/u/data"), None);
        assert_eq!(
            repository_of("repositories/a/b/_layers/sha256/x/link"),
            "a/b"
        );
        assert_eq!(
            repository_of("repositories/a/_manifests/tags/_layers/current/link"),
            "a"
        );
    }
}
