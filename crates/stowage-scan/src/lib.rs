//! The parallel scanner: a [`Storage`] plus the layout grammar in, an [`Inventory`] out.
//!
//! # Scheduling
//! Work runs on an I/O pool whose size is *not* the core count: on a network filesystem or an
//! object store every operation is a round trip, and throughput comes from keeping many in
//! flight ([`ScanOptions::concurrency`]). The scan has three phases, each a fan-out of small
//! tasks on a rayon scope:
//!
//! 1. **Blobs.** One task per `blobs/sha256/<hh>` shard: list it (entry types come with the
//!    listing) and stat each `<hex>/data` (size, mtime, birth time). The sorted blob table
//!    is what digests are interned against ([`BlobId`]).
//! 2. **Repositories.** A recursive walk of `repositories/`; a directory with `_manifests`,
//!    `_layers` or `_uploads` is a repository. Each repository section, and each tag, is its
//!    own task. Link files whose path names their digest are only stat-ed (existence and
//!    date; the content is read when its size is not the 71 bytes the registry writes, or
//!    always with [`ScanOptions::verify_links`]); tag `current` links are read.
//! 3. **Manifests.** Every manifest a revision or a tag names is read once and parsed; index
//!    children not seen yet are read in a further round.
//!
//! On an object store ([`Storage::prefers_tree_listing`]) each blob shard and each repository
//! section (`_layers`, `_manifests`, `_uploads`) is first listed whole, flat, with sizes and
//! dates (1,000 keys per request), and the same code then runs over that snapshot: one
//! request per thousand links instead of one per directory and per file. Only tag `current`
//! links, manifests and odd-sized links are read.
//!
//! Nothing is read twice, nothing is stat-ed that a listing already told us. Problems become
//! [`Finding`]s with their paths and the scan goes on; a repository that could not be read
//! completely is marked `complete = false`, so no plan ever deletes on its strength.
//!
//! Results are sorted at the end, so the output does not depend on concurrency or timing.
//!
//! # Memory
//! A scan of a million objects keeps about 35 MB; what it keeps is laid out without an
//! allocation per item (references, tag histories and details in shared tables), made by the
//! scanning thread rather than the I/O workers, and the workers' originals are freed on a
//! thread of their own (`free_apart` says why). Each phase's pool is joined at its end
//! and [`ScanOptions::release_memory`] then runs, so that the workers' freed buffers do not
//! stay resident (`ARCHITECTURE.md`, "Scale notes"; `bench/scale.md`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod access;
mod blobs;
mod builds;
pub mod cache;
mod failsafe;
mod links;
mod manifests;
mod repositories;
mod resolve;
pub mod scheduler;
mod snapshot;
mod tag_dir;
mod verify;

use snapshot::Snapshot;
use std::sync::Arc;

pub use builds::read_build_dates;
pub use cache::{CacheError, CacheStats, ScanCache};
pub use resolve::{Resolved, Unexpected, resolve};
pub use verify::{VerifyOptions, verify_blobs};

use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use stowage_layout::{self as layout, LinkError, MAX_LINK_LEN, SHA256_LINK_LEN, parse_link};
use stowage_model::digest::{Digest, Sha256};
use stowage_model::finding::{Finding, FindingKind};
use stowage_model::inventory::{
    BlobFile, BlobId, CurrentLink, Inventory, Link, LinkKind, LinkState, MAX_IDS, ManifestExtra,
    ManifestRecord, OddLink, Ref, Repository, ScanStats, Span, Tag, Upload,
};
use stowage_model::manifest::Platform;
use stowage_model::name::{RepositoryName, is_valid_tag};
use stowage_model::time::{Secs, Timestamp};
use stowage_storage::{EntryKind, ErrorKind, Meta, Storage, StorageError};

/// The registry refuses manifest bodies over 4 MiB (`maxManifestBodySize` in 2.8); anything
/// larger stored as a manifest was not written by it.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// What to scan and how hard.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Operations kept in flight.
    pub concurrency: usize,
    /// Read every link file and compare it with its path (for `check`).
    pub verify_links: bool,
    /// Called between phases, once a phase's temporary data has been dropped: the binary
    /// passes a function that hands the freed memory back to the system (the allocator is
    /// the process's business, not a library's). At a million blobs the I/O workers' freed
    /// buffers are tens of megabytes.
    pub release_memory: Option<fn()>,
    /// Stat only what a plan may name (`gc`): blob `data` files and `_layers` and tag
    /// history links are listed, not stat-ed ([`BlobFile::unstated`], [`Link::unstated`]:
    /// present, content as the registry writes it, size 0, time the latest there is);
    /// revision links (whose existence decides what a repository holds) and everything read
    /// are stat-ed as always. [`resolve`] then stats what the plan names. Where the storage
    /// lists metadata for free (object stores, a provider report) everything is stated
    /// anyway. A local disk's `gc` makes about a third of the system calls (issue 22).
    /// A tag's history is listed at `index/sha256/` directly (not `index/` first).
    pub stat_candidates_only: bool,
    /// Do not list the tags' history (`_manifests/tags/<tag>/index/`): a plain `gc` (without
    /// `-m`) plans nothing from it and decides nothing by it (the registry's GC does not
    /// read it either), and on a CI registry it is two directory listings per tag, about a
    /// third of the scan's system calls. Every tag's `current` link is still read.
    pub skip_tag_history: bool,
}

impl ScanOptions {
    fn release(&self) {
        if let Some(f) = self.release_memory {
            f();
        }
    }
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            concurrency: 8,
            verify_links: false,
            release_memory: None,
            stat_candidates_only: false,
            skip_tag_history: false,
        }
    }
}

/// Live counters for a progress display (polled from another thread).
#[derive(Debug, Default)]
pub struct Progress {
    /// 0 = starting, 1 = blobs, 2 = repositories, 3 = manifests, 4 = done.
    pub phase: AtomicU8,
    pub paths: AtomicU64,
    pub blobs: AtomicU64,
    pub repositories: AtomicU64,
    pub manifests: AtomicU64,
}

impl Progress {
    pub fn phase_name(&self) -> &'static str {
        match self.phase.load(Ordering::Relaxed) {
            0 => "starting",
            1 => "listing blobs",
            2 => "walking repositories",
            3 => "reading manifests",
            _ => "done",
        }
    }
}

/// A scan failure that leaves nothing to report (the root itself is unreadable).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("cannot read the storage root: {0}")]
    Root(#[source] StorageError),
    #[error("cannot start the I/O pool: {0}")]
    Pool(String),
    #[error("more than {max} distinct digests: beyond what one scan can number")]
    TooManyDigests { max: usize },
}

/// Scan a whole storage.
pub fn scan(
    storage: &dyn Storage,
    opts: &ScanOptions,
    progress: &Progress,
) -> Result<Inventory, ScanError> {
    scan_cached(storage, opts, None, progress)
}

/// [`scan`], reading manifests and unchanged tag links from `cache` where it can (see
/// [`cache`]); what it reads from the storage is added to the cache.
pub fn scan_cached(
    storage: &dyn Storage,
    opts: &ScanOptions,
    cache: Option<&ScanCache>,
    progress: &Progress,
) -> Result<Inventory, ScanError> {
    // The root must be listable; everything below it only produces findings.
    let mut top: Vec<(String, EntryKind)> = Vec::new();
    storage
        .list_dir("", &mut |e| {
            top.push((String::from_utf8_lossy(e.name).into_owned(), e.kind))
        })
        .map_err(ScanError::Root)?;
    let mut ctx = Ctx::new(storage, opts, progress);
    ctx.cache = cache;
    ctx.check_top(&top);

    // Phase 1: blobs.
    progress.phase.store(1, Ordering::Relaxed);
    if top
        .iter()
        .any(|(n, k)| n == "blobs" && *k == EntryKind::Dir)
    {
        let pool = IoPool::new(opts.concurrency)?;
        pool.scope(|s| ctx.scan_blobs(s));
        pool.finish();
    }
    ctx.build_table()?;
    // The shard vectors, freed, sit in the workers' heaps as large as the table itself.
    opts.release();

    // Phase 2: repositories.
    progress.phase.store(2, Ordering::Relaxed);
    if top
        .iter()
        .any(|(n, k)| n == "repositories" && *k == EntryKind::Dir)
    {
        let pool = IoPool::new(opts.concurrency)?;
        pool.scope(|s| ctx.walk_namespace(s, String::new()));
        pool.finish();
    } else if !ctx.table.is_empty() && !top.iter().any(|(n, _)| n == "repositories") {
        // Blobs but no repositories directory at all: the registry's own GC refuses to run
        // ("Path not found"); a plan that deleted every blob would be a guess, so block it.
        ctx.unseen("repositories");
        ctx.finding(
            FindingKind::UnexpectedDirectory,
            "repositories",
            "missing while blobs exist; deletion is blocked (is this the right root?)",
        );
    }
    let (heads, fragments, odd) = (
        std::mem::take(&mut *lock(&ctx.heads)),
        std::mem::take(&mut *lock(&ctx.fragments)),
        std::mem::take(&mut *lock(&ctx.odd)),
    );
    let mut repositories = repositories::assemble(&heads, fragments, &odd, &|| opts.release());
    free_apart((heads, odd));
    failsafe::mark_unseen_parts(&mut repositories, &lock(&ctx.unlisted));
    opts.release();
    // Phase 3: manifests named by revisions and tags, then index children not yet read.
    progress.phase.store(3, Ordering::Relaxed);
    let present = ctx.table.len();
    let (mut read, mut read_refs, read_extras) = ctx.read_manifests(&repositories)?;

    // Finalise: give missing digests their final ids (sorted), sort everything.
    let blobs = std::mem::take(&mut ctx.table);
    let created = std::mem::take(&mut ctx.created);
    let Missing { digests, .. } = std::mem::take(&mut *lock(&ctx.missing));
    if blobs.len() + digests.len() > MAX_IDS {
        return Err(ScanError::TooManyDigests { max: MAX_IDS });
    }
    let missing = renumber_missing(
        digests,
        present,
        &mut repositories,
        &mut read,
        &mut read_refs,
    );
    let mut manifests = read;
    manifests.sort_unstable_by_key(|m| m.id);
    let (refs, mut extras) = (read_refs, read_extras);
    extras.shrink_to_fit();
    let mut findings = std::mem::take(&mut *lock(&ctx.findings));
    let (scheduler, bad_state) = scheduler::read_state(storage);
    findings.extend(bad_state);
    findings.sort_unstable();
    findings.dedup();
    compact_findings(&mut findings);
    let mut unlisted = std::mem::take(&mut *lock(&ctx.unlisted));
    unlisted.sort();
    let c = storage.counters().snapshot();
    let inv = Inventory {
        root: storage.describe(),
        blobs,
        created,
        missing,
        manifests,
        refs,
        extras,
        repositories,
        findings,
        other_bytes: ctx.other_bytes.load(Ordering::Relaxed),
        unlisted,
        stats: ScanStats {
            directories_listed: c.lists,
            entries_seen: progress.paths.load(Ordering::Relaxed),
            stats: c.stats,
            reads: c.reads,
            bytes_read: c.bytes_read,
        },
        scheduler,
    };
    drop(ctx);
    if let Some(c) = cache {
        c.finish();
    }
    opts.release();
    progress.phase.store(4, Ordering::Relaxed);
    Ok(inv)
}

/// Missing digests were numbered in order of discovery after the blob table (`present` ids);
/// give them their final ids in digest order, rewriting every id that points at one, and
/// return them sorted.
fn renumber_missing(
    digests: Vec<Digest>,
    present: usize,
    repositories: &mut [Repository],
    read: &mut [ManifestRecord],
    read_refs: &mut [Ref],
) -> Vec<Digest> {
    let mut order: Vec<u32> = (0..digests.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| digests[a as usize].cmp(&digests[b as usize]));
    let mut remap = vec![0u32; digests.len()];
    for (rank, &temp) in order.iter().enumerate() {
        remap[temp as usize] = (present + rank) as u32;
    }
    let mut slots: Vec<Option<Digest>> = digests.into_iter().map(Some).collect();
    // Exactly sized: a `collect` through `filter_map` grows by doubling and kept up to
    // twice the digests' bytes for the rest of the run (1.3 MB at 1M objects).
    let mut missing: Vec<Digest> = Vec::with_capacity(order.len());
    missing.extend(order.iter().filter_map(|&i| slots[i as usize].take()));
    drop((order, slots));
    let fixed = |id: BlobId| -> BlobId {
        match (id as usize).checked_sub(present) {
            Some(k) => remap.get(k).copied().unwrap_or(id),
            None => id,
        }
    };
    let fix = |id: &mut BlobId| *id = fixed(*id);
    for r in repositories.iter_mut() {
        r.layers
            .iter_mut()
            .chain(r.revisions.iter_mut())
            .for_each(|l| l.set_target(fixed(l.target())));
        for t in &mut r.tags {
            if let Some(CurrentLink {
                target: Some(id), ..
            }) = &mut t.current
            {
                fix(id);
            }
            if let Some(run) = r.tag_links.get_mut(t.index.range()) {
                run.iter_mut().for_each(|l| l.set_target(fixed(l.target())));
                run.sort_unstable_by_key(|l| l.target());
            }
        }
        r.layers.sort_unstable_by_key(|l| l.target());
        r.revisions.sort_unstable_by_key(|l| l.target());
    }
    read_refs.iter_mut().for_each(|r| r.set_id(fixed(r.id())));
    for m in read.iter_mut() {
        fix(&mut m.id);
        m.set_subject(m.subject().map(fixed));
    }
    missing
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The I/O pool of one phase, whose threads have exited when [`IoPool::finish`] returns.
///
/// A thread's allocator cache (glibc's tcache: up to a few hundred freed chunks per thread)
/// stays allocated as long as the thread lives, scattered over the worker's heap. Joined at
/// the end of each phase, the workers hand their caches back before `release_memory` runs,
/// so that nothing of theirs is left to keep pages of the freed heaps resident.
struct IoPool {
    pool: rayon::ThreadPool,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl IoPool {
    fn new(concurrency: usize) -> Result<IoPool, ScanError> {
        let threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>> = Arc::default();
        let spawned = threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrency.max(1))
            .thread_name(|i| format!("stowage-io-{i}"))
            .spawn_handler(move |t| {
                let mut b = std::thread::Builder::new();
                if let Some(name) = t.name() {
                    b = b.name(name.to_owned());
                }
                if let Some(size) = t.stack_size() {
                    b = b.stack_size(size);
                }
                lock(&spawned).push(b.spawn(|| t.run())?);
                Ok(())
            })
            .build()
            .map_err(|e| ScanError::Pool(e.to_string()))?;
        Ok(IoPool { pool, threads })
    }

    fn scope<'s>(&self, f: impl FnOnce(&rayon::Scope<'s>) + Send) {
        self.pool.scope(f)
    }

    /// Stop the threads and wait until they have exited.
    fn finish(self) {
        drop(self.pool);
        for t in std::mem::take(&mut *lock(&self.threads)) {
            // A worker that panicked has already reported it; the scan's results stand.
            let _ = t.join();
        }
    }
}

/// Findings' paths and messages were allocated by the I/O workers among their short-lived
/// buffers; copied here they stop pinning those pages (a collected registry has a finding
/// per API-deleted manifest: 44k at a million blobs). A few thousand at a time, so that the
/// copies do not double the list's memory at once; each batch's originals are freed apart
/// ([`free_apart`]).
fn compact_findings(findings: &mut [Finding]) {
    use std::borrow::Cow;
    for batch in findings.chunks_mut(4096) {
        let copies: Vec<(String, Cow<'static, str>)> = batch
            .iter()
            .map(|f| {
                let message = match &f.message {
                    Cow::Owned(m) => Cow::Owned(m.as_str().to_owned()),
                    Cow::Borrowed(m) => Cow::Borrowed(*m),
                };
                (f.path.as_str().to_owned(), message)
            })
            .collect();
        let mut originals = Vec::with_capacity(batch.len());
        for (f, (path, message)) in batch.iter_mut().zip(copies) {
            originals.push((
                std::mem::replace(&mut f.path, path),
                std::mem::replace(&mut f.message, message),
            ));
        }
        free_apart(originals);
    }
}

/// Drop `x` on a thread of its own, which exits once it has.
///
/// What the I/O workers allocated and this thread frees would go to this thread's allocator
/// cache (glibc's tcache: up to 7 small chunks of each size), and this thread's next
/// allocations of those sizes, long-lived copies among them, would then be placed in the
/// workers' heaps, each pinning a page there: at 1M objects about 8 MB of those heaps stayed
/// resident for 0.2 MB of data. A thread that frees and exits hands its cache back to the
/// heaps the chunks came from, where they merge with their free neighbours and are released
/// (`ScanOptions::release_memory`).
pub(crate) fn free_apart<T: Send>(x: T) {
    std::thread::scope(|s| {
        // If no thread can be made the closure, and `x` with it, is dropped here.
        let _ = std::thread::Builder::new()
            .name("stowage-free".into())
            .spawn_scoped(s, move || drop(x));
    });
}

/// What one worker read in phase 3: records whose reference spans and detail indices are
/// relative to this chunk's own lists.
#[derive(Default)]
struct ManifestChunk {
    records: Vec<ManifestRecord>,
    refs: Vec<Ref>,
    extras: Vec<ManifestExtra>,
}

/// Digests something references but `blobs/` lacks, numbered in order of discovery: the
/// table holds indices into `digests` (5 bytes a slot, where a map of digest to id cost 49).
#[derive(Default)]
struct Missing {
    digests: Vec<Digest>,
    table: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

/// One fan-out directory's blobs, sorted, and their birth times (empty where the storage
/// recorded none).
struct Shard {
    blobs: Vec<BlobFile>,
    created: Vec<Secs>,
}

impl From<Vec<(BlobFile, Secs)>> for Shard {
    fn from(rows: Vec<(BlobFile, Secs)>) -> Shard {
        let births = rows.iter().any(|(_, c)| *c != Secs::NONE);
        Shard {
            blobs: rows.iter().map(|(b, _)| *b).collect(),
            created: match births {
                true => rows.iter().map(|(_, c)| *c).collect(),
                false => Vec::new(),
            },
        }
    }
}

/// A repository the walk found; its sections and tags name it by index.
struct RepoHead {
    name: RepositoryName,
    has_manifests: bool,
    has_layers: bool,
    has_uploads: bool,
    has_tags_dir: bool,
}

/// A piece of a repository, produced by one task and assembled after the walk.
struct Fragment {
    repo: u32,
    part: Part,
}

enum Part {
    Layers {
        links: Vec<Link>,
        aliases: Vec<(Digest, Option<Digest>)>,
    },
    Revisions(Vec<Link>),
    Tag(TagOut),
    Uploads(Vec<Upload>),
    Incomplete,
    /// Some of `_manifests/revisions` could not be listed (implies incomplete).
    RevisionsUnlisted,
    /// Some of `_layers` could not be listed (implies incomplete).
    LayersUnlisted,
}

/// A tag as its task found it.
struct TagOut {
    name: compact_str::CompactString,
    current: Option<CurrentLink>,
    index: Vec<Link>,
}

struct Ctx<'a> {
    storage: &'a dyn Storage,
    opts: &'a ScanOptions,
    progress: &'a Progress,
    cache: Option<&'a ScanCache>,
    findings: Mutex<Vec<Finding>>,
    heads: Mutex<Vec<RepoHead>>,
    fragments: Mutex<Vec<Fragment>>,
    /// Links whose content differs from their path, by repository (rare).
    odd: Mutex<Vec<(u32, OddLink)>>,
    /// One sorted vector per blob shard.
    blobs: Mutex<Vec<Shard>>,
    missing: Mutex<Missing>,
    /// The sorted blob table (phase 2 on).
    table: Vec<BlobFile>,
    /// The table's birth times ([`Inventory::created`]).
    created: Vec<Secs>,
    /// Index children's platforms, interned: a few distinct values, hundreds of thousands
    /// of uses.
    platforms: Mutex<std::collections::HashSet<Arc<Platform>>>,
    /// Media and artifact types, interned likewise.
    media_types: Mutex<std::collections::HashSet<Arc<str>>>,
    other_bytes: AtomicU64,
    unlisted: Mutex<Vec<String>>,
    /// Blobs whose `data` is there but is not a regular file or could not be stat-ed: in the
    /// table with size 0 (see `blobs.rs`), sorted after phase 1. Their size says nothing, so
    /// phase 3 compares no descriptor with it.
    odd_blobs: Mutex<Vec<Sha256>>,
    /// Of those, the ones whose directory is a symbolic link: never read through it.
    linked_blobs: Mutex<Vec<Sha256>>,
}

/// A listed directory entry, owned (names are needed after the listing closes).
struct Ent {
    name: String,
    kind: EntryKind,
}

impl<'a> Ctx<'a> {
    fn new(storage: &'a dyn Storage, opts: &'a ScanOptions, progress: &'a Progress) -> Ctx<'a> {
        Ctx {
            storage,
            opts,
            progress,
            cache: None,
            findings: Mutex::new(Vec::new()),
            heads: Mutex::new(Vec::new()),
            fragments: Mutex::new(Vec::new()),
            odd: Mutex::new(Vec::new()),
            blobs: Mutex::new(Vec::new()),
            missing: Mutex::new(Missing::default()),
            table: Vec::new(),
            created: Vec::new(),
            platforms: Mutex::new(Default::default()),
            media_types: Mutex::new(Default::default()),
            other_bytes: AtomicU64::new(0),
            unlisted: Mutex::new(Vec::new()),
            odd_blobs: Mutex::new(Vec::new()),
            linked_blobs: Mutex::new(Vec::new()),
        }
    }

    /// Report what the layout root holds besides `blobs/` and `repositories/`.
    fn check_top(&self, top: &[(String, EntryKind)]) {
        for (name, kind) in top {
            match (name.as_str(), kind) {
                ("blobs" | "repositories", EntryKind::Dir) => {}
                ("blobs" | "repositories", _) => {
                    // The registry would follow a symbolic link here; we never do, so what it
                    // holds is unknown and no plan may delete anything.
                    self.unseen(name);
                    self.finding(
                        FindingKind::Symlink,
                        name,
                        "not a plain directory (a symbolic link?); not followed, and deletion is blocked",
                    );
                }
                (_, EntryKind::Symlink) => self.finding(
                    FindingKind::Symlink,
                    name,
                    "symbolic link at the layout root; not followed",
                ),
                (_, EntryKind::Dir) => self.finding(
                    FindingKind::UnexpectedDirectory,
                    name,
                    "not part of the registry's layout",
                ),
                _ => self.finding(
                    FindingKind::UnexpectedFile,
                    name,
                    "not part of the registry's layout",
                ),
            }
        }
    }

    /// The sorted blob table, and its birth-time column, from the shards phase 1 produced.
    fn build_table(&mut self) -> Result<(), ScanError> {
        // Each shard arrives sorted; shards sort by their two-hex prefix, so concatenating them
        // in that order gives the sorted table in one allocation of exactly the right size.
        let mut shards = std::mem::take(&mut *lock(&self.blobs));
        shards.sort_unstable_by_key(|v| v.blobs.first().map(|b| b.digest));
        let n = shards.iter().map(|s| s.blobs.len()).sum();
        let mut table = Vec::with_capacity(n);
        let births = shards.iter().any(|s| !s.created.is_empty());
        let mut created = Vec::with_capacity(if births { n } else { 0 });
        for shard in shards {
            if births {
                match shard.created.is_empty() {
                    true => created.extend(std::iter::repeat_n(Secs::NONE, shard.blobs.len())),
                    false => created.extend(shard.created),
                }
            }
            table.extend(shard.blobs);
        }
        self.created = created;
        if table.len() >= MAX_IDS {
            // Links and references keep flags in an id's top bits: stop before numbering any.
            return Err(ScanError::TooManyDigests { max: MAX_IDS });
        }
        self.table = table;
        lock(&self.odd_blobs).sort_unstable();
        lock(&self.linked_blobs).sort_unstable();
        Ok(())
    }
    fn finding(
        &self,
        kind: FindingKind,
        path: &str,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) {
        self.findings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Finding::new(kind, path, message));
    }

    fn fragment(&self, repo: u32, part: Part) {
        lock(&self.fragments).push(Fragment { repo, part });
    }

    fn incomplete(&self, repo: u32) {
        self.fragment(repo, Part::Incomplete);
    }

    /// A link of `kind` is there but could not be read: the repository is incomplete, and a
    /// missing revision or layer link is no longer evidence of anything.
    fn link_unknown(&self, repo: u32, kind: LinkKind) {
        let part = match kind {
            LinkKind::Revision => Part::RevisionsUnlisted,
            LinkKind::Layer => Part::LayersUnlisted,
            _ => Part::Incomplete,
        };
        self.fragment(repo, part);
    }

    fn odd_link(&self, repo: u32, o: OddLink) {
        lock(&self.odd).push((repo, o));
    }

    /// Report a storage error as a finding of the right kind.
    fn storage_finding(&self, e: &StorageError, what: &str) {
        let kind = match e.kind {
            ErrorKind::PermissionDenied => FindingKind::PermissionDenied,
            ErrorKind::NotFound => FindingKind::Vanished,
            ErrorKind::Symlink => FindingKind::Symlink,
            ErrorKind::NotAFile(_) => FindingKind::NotARegularFile,
            _ => FindingKind::IoError,
        };
        let msg = match e.kind {
            ErrorKind::NotFound => format!("{what}: disappeared during the scan"),
            ErrorKind::Symlink => format!("{what}: symbolic link, not followed"),
            _ => format!("{what}: {e}"),
        };
        self.finding(kind, &e.path, msg);
    }

    /// Record a path whose contents the scan could not see (blocks deletion plans).
    fn unseen(&self, path: &str) {
        self.unlisted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_owned());
    }

    /// Intern a digest: the index of a present blob, or a temporary id for a missing one.
    fn intern(&self, d: &Digest) -> BlobId {
        if let Digest::Sha256(h) = d
            && let Ok(i) = stowage_model::digest::find_sorted(&self.table, h, |b| &b.digest)
        {
            return i as BlobId;
        }
        let mut guard = lock(&self.missing);
        let Missing {
            digests,
            table,
            hasher,
        } = &mut *guard;
        let hash = hasher.hash_one(d);
        let i = match table.find(hash, |&i| digests[i as usize] == *d) {
            Some(&i) => i,
            None => {
                let i = digests.len() as u32;
                digests.push(d.clone());
                table.insert_unique(hash, i, |&j| hasher.hash_one(&digests[j as usize]));
                i
            }
        };
        // Numbered after the blob table (complete before anything is interned), renumbered
        // in digest order at the end. Past `MAX_IDS` the scan fails at the end; until then the
        // id is clamped so that packed links and references stay well-formed.
        (self.table.len() + i as usize).min(MAX_IDS - 1) as u32
    }

    fn intern_sha(&self, h: Sha256) -> BlobId {
        match stowage_model::digest::find_sorted(&self.table, &h, |b| &b.digest) {
            Ok(i) => i as BlobId,
            Err(_) => self.intern(&Digest::Sha256(h)),
        }
    }

    // ---- phase 1: blobs -------------------------------------------------------------------

    fn unexpected_file(&self, path: &str, why: &str) {
        let size = self.storage.stat(path).map(|m| m.size).unwrap_or(0);
        self.other_bytes.fetch_add(size, Ordering::Relaxed);
        self.finding(
            FindingKind::UnexpectedFile,
            path,
            format!("{why} ({size} bytes)"),
        );
    }

    // ---- phase 2: repositories ----------------------------------------------------------
}
