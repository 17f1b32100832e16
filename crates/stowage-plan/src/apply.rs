//! Applying a plan: the only code in stowage that deletes.
//!
//! 1. The storage must be the one the plan was made for.
//! 2. A fresh scan; warn (or, with `require_quiet`, refuse) when the registry looks live.
//! 3. **Manifests**: each planned untagged manifest is re-checked against the fresh scan (its
//!    revision link still there and unchanged, still untagged, not now reachable from anything
//!    that remains, e.g. an index pushed since the plan) and its tag-history entries and
//!    revision directory are removed.
//! 4. **Blobs**: a second fresh scan; each planned blob must still exist with the size and
//!    mtime the plan saw, and be reachable from no revision that remains (a manifest pushed
//!    since the plan that references it saves it). Then removed.
//! 5. **Links, uploads, empty directories**: dangling `_layers` links and history entries
//!    whose blob is now gone, abandoned uploads still unchanged, and directories that are
//!    empty when reached (`rmdir` cannot remove anything else).
//!
//! Retention plans (`kind: retention`) add a first phase: each planned tag is removed only if
//! it still points at the digest the plan saw, with the same `current` link, and no in-use
//! source (re-read now, never trusted from the plan) protects it; an in-use source that now
//! protects any planned target aborts the whole apply before anything is removed. Their
//! blobs are collected only with `gc` (the plan's `blobs` are exactly the bytes it previewed).
//!
//! A target that changed is skipped and reported, never forced. Every action is written to
//! an append-only journal before and after it runs, and is idempotent, so an interrupted apply
//! is resumed by running it again. With a quarantine directory, targets are moved (renamed,
//! keeping the layout) instead of deleted, and `quarantine::restore` puts them back.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, Inventory};
use stowage_model::time::Timestamp;
use stowage_scan::{Progress, ScanOptions};
use stowage_storage::StorageWrite;

use crate::journal::{self, Journal, entry};
use crate::plan::Plan;

/// How to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Move targets into `<dir>/<plan id>/` instead of deleting them.
    pub quarantine: Option<PathBuf>,
    /// Where the journal goes (default with a quarantine: inside the batch directory).
    pub journal: Option<PathBuf>,
    pub concurrency: usize,
    pub now: Timestamp,
    /// Writes more recent than this many seconds make the registry look live.
    pub quiet_window_seconds: i64,
    /// Refuse to apply when the registry looks live.
    pub require_quiet: bool,
    /// The registry's config says it is in read-only mode.
    pub registry_readonly: Option<bool>,
    /// Retention plans: also remove the blobs the plan frees (and their layer links).
    pub gc: bool,
}

/// What protects targets now (retention apply): `(repository, digest)` and
/// `(repository, tag)` with the reasons (`protection/in_use(prod)`, ...).
#[derive(Clone, Debug, Default)]
pub struct LiveProtection {
    pub digests: std::collections::BTreeMap<(String, Digest), Vec<String>>,
    pub tags: std::collections::BTreeMap<(String, String), Vec<String>>,
}

/// Recomputes protections over a fresh scan; `Err` when an in-use source is unusable.
pub type ProtectFn<'a> = &'a (dyn Fn(&Graph<'_>) -> Result<LiveProtection, String> + Sync);

/// One skipped target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skip {
    pub path: String,
    pub reason: String,
}

/// What an apply did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub plan: String,
    pub manifests: u64,
    /// Tags removed (retention).
    pub tags: u64,
    pub tag_index_entries: u64,
    pub layer_links: u64,
    pub blobs: u64,
    pub uploads: u64,
    pub empty_dirs: u64,
    /// Actions that found their target already gone (done by an interrupted earlier run).
    pub already_done: u64,
    pub bytes_freed: u64,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<String>,
    pub seconds: f64,
    pub quarantine: Option<PathBuf>,
    pub journal: PathBuf,
}

/// Why an apply did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("the plan was made for {plan}, not for {storage}")]
    WrongStorage { plan: String, storage: String },
    #[error("the registry looks live and --require-quiet was given: {0}")]
    Live(String),
    #[error("journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {0} belongs to another plan; use another journal or finish that apply first")]
    ForeignJournal(PathBuf),
    #[error("quarantine: {0}")]
    Quarantine(String),
    #[error("re-scan failed: {0}")]
    Scan(String),
    #[error("the plan is blocked and cannot be applied: {0}")]
    Blocked(String),
    #[error("the plan expired at {0}; make a new plan (`stowage plan`)")]
    Expired(String),
    #[error("in-use protection changed since the plan, nothing was removed: {0}")]
    InUse(String),
}

/// Signs that the registry is being written to right now.
pub fn live_signs(inv: &Inventory, now: Timestamp, window: i64) -> Vec<String> {
    let mut out = Vec::new();
    let recent = |t: Timestamp| t.seconds_until(now) < window;
    let uploads: Vec<String> = inv
        .repositories
        .iter()
        .flat_map(|r| {
            r.uploads
                .iter()
                .filter(|u| recent(u.modified))
                .map(move |u| format!("{}/{}", r.name, u.id))
        })
        .collect();
    if !uploads.is_empty() {
        out.push(format!(
            "{} upload(s) written in the last {}s (pushes in progress): {}",
            uploads.len(),
            window,
            uploads.join(", ")
        ));
    }
    let pushes = inv
        .repositories
        .iter()
        .flat_map(|r| {
            r.revisions
                .iter()
                .chain(r.layers.iter())
                .chain(r.tag_links.iter())
        })
        .filter(|l| recent(l.modified()))
        .count()
        + inv
            .repositories
            .iter()
            .flat_map(|r| r.tags.iter())
            .filter(|t| t.current.is_some_and(|c| recent(c.modified)))
            .count();
    if pushes > 0 {
        out.push(format!(
            "{pushes} manifest, layer or tag link(s) written in the last {window}s (recent pushes)"
        ));
    }
    out
}

fn rescan<S: StorageWrite>(s: &S, conc: usize) -> Result<Inventory, ApplyError> {
    stowage_scan::scan(
        s,
        &ScanOptions {
            concurrency: conc,
            verify_links: false,
            ..Default::default()
        },
        &Progress::default(),
    )
    .map_err(|e| ApplyError::Scan(e.to_string()))
}

/// Everything that stays a root: every revision of every repository except the approved
/// deletions. Marking from these is the "still unreferenced by what remains" test.
fn remaining_marks(g: &Graph<'_>, removed: &HashSet<(String, BlobId)>) -> Vec<bool> {
    let mut roots = Vec::new();
    for r in &g.inv.repositories {
        for l in &r.revisions {
            if !removed.contains(&(r.name.to_string(), l.target())) {
                roots.push(l.target());
            }
        }
    }
    // Revision links whose content names another digest keep that one too.
    for r in &g.inv.repositories {
        for o in &r.odd_links {
            if o.kind == stowage_model::inventory::LinkKind::Revision {
                roots.extend(o.content.as_ref().and_then(|d| g.inv.id_of(d)));
            }
        }
    }
    g.mark(roots, true)
}

struct Runner<'a, S: StorageWrite> {
    storage: &'a S,
    journal: Mutex<Journal>,
    quarantine: Option<PathBuf>,
    report: Mutex<ApplyReport>,
    done_before: HashSet<String>,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    Tag,
    Manifest,
    TagIndex,
    LayerLink,
    Blob,
    Upload,
    EmptyDir,
}

impl<S: StorageWrite> Runner<'_, S> {
    fn journal(&self, e: journal::Entry) -> Result<(), ApplyError> {
        let mut j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let path = j.path().to_path_buf();
        j.write(e)
            .map(|_| ())
            .map_err(|source| ApplyError::Journal { path, source })
    }

    fn skip(&self, path: &str, reason: impl Into<String>) -> Result<(), ApplyError> {
        let reason = reason.into();
        let mut e = entry("skipped", "", path);
        e.reason = reason.clone();
        self.journal(e)?;
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .skipped
            .push(Skip {
                path: path.into(),
                reason,
            });
        Ok(())
    }

    /// Remove (or quarantine) one path. Returns whether something was removed now.
    fn remove(&self, kind: Kind, path: &str, bytes: u64) -> Result<bool, ApplyError> {
        let op = if kind == Kind::EmptyDir {
            "rmdir"
        } else if self.quarantine.is_some() {
            "move"
        } else {
            "delete"
        };
        self.journal(entry("intent", op, path))?;
        let r = match (kind, &self.quarantine) {
            (Kind::EmptyDir, _) => self.storage.remove_empty_dir(path),
            (_, Some(q)) => self.storage.move_to(path, q),
            (_, None) => self.storage.delete(path),
        };
        match r {
            Ok(true) => {
                self.journal(entry("done", op, path))?;
                let mut rep = self.report.lock().unwrap_or_else(|e| e.into_inner());
                match kind {
                    Kind::Tag => rep.tags += 1,
                    Kind::Manifest => rep.manifests += 1,
                    Kind::TagIndex => rep.tag_index_entries += 1,
                    Kind::LayerLink => rep.layer_links += 1,
                    Kind::Blob => rep.blobs += 1,
                    Kind::Upload => rep.uploads += 1,
                    Kind::EmptyDir => rep.empty_dirs += 1,
                }
                rep.bytes_freed += bytes;
                drop(rep);
                test_kill_hook();
                Ok(true)
            }
            Ok(false) => {
                let mut e = entry("skipped", op, path);
                if kind == Kind::EmptyDir {
                    e.reason = "not empty (or gone)".into();
                    self.journal(e)?;
                } else {
                    e.reason = "already gone".into();
                    self.journal(e)?;
                    let mut rep = self.report.lock().unwrap_or_else(|e| e.into_inner());
                    rep.already_done += 1;
                    if self.done_before.contains(path) {
                        // Done by an interrupted earlier run of this plan: it counts as freed.
                        rep.bytes_freed += bytes;
                    }
                }
                Ok(false)
            }
            Err(e) => {
                self.skip(path, format!("failed: {e}"))?;
                Ok(false)
            }
        }
    }
}

/// A test hook: `STOWAGE_TEST_KILL_AFTER=N` kills the process (SIGABRT, no cleanup) after the
/// N-th completed action, so tests can interrupt an apply at exact points and resume it.
fn test_kill_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DONE: AtomicU64 = AtomicU64::new(0);
    if let Some(n) = std::env::var("STOWAGE_TEST_KILL_AFTER")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        && DONE.fetch_add(1, Ordering::SeqCst) + 1 >= n
    {
        std::process::abort();
    }
}

/// Apply `plan` to `storage`.
pub fn apply<S: StorageWrite>(
    storage: &S,
    plan: &Plan,
    opts: &ApplyOptions,
    progress: &dyn Fn(&str),
) -> Result<ApplyReport, ApplyError> {
    apply_checked(storage, plan, opts, None, progress)
}

/// Apply `plan`, re-checking retention targets against `protect` (see the module docs).
pub fn apply_checked<S: StorageWrite>(
    storage: &S,
    plan: &Plan,
    opts: &ApplyOptions,
    protect: Option<ProtectFn<'_>>,
    progress: &dyn Fn(&str),
) -> Result<ApplyReport, ApplyError> {
    let started = std::time::Instant::now();
    if plan.storage != storage.describe() {
        return Err(ApplyError::WrongStorage {
            plan: plan.storage.clone(),
            storage: storage.describe(),
        });
    }
    let retention = plan.kind == "retention";
    if let Some(ret) = &plan.retention {
        if !ret.rails_blocked.is_empty() {
            return Err(ApplyError::Blocked(ret.rails_blocked.join("; ")));
        }
        if opts.now > ret.expires_at {
            return Err(ApplyError::Expired(ret.expires_at.rfc3339()));
        }
    } else if retention {
        return Err(ApplyError::Blocked(
            "a retention plan without its retention section".into(),
        ));
    }
    let id = plan.id();
    let quarantine = match &opts.quarantine {
        Some(q) => {
            let batch = q.join(format!("batch-{id}"));
            storage
                .check_quarantine(&batch)
                .map_err(|e| ApplyError::Quarantine(e.to_string()))?;
            let meta = batch.join("batch.json");
            if !meta.exists() {
                let v = serde_json::json!({"plan": id, "created_at": opts.now, "storage": plan.storage, "data": storage.quarantine_location(&batch)});
                std::fs::write(&meta, format!("{v}\n"))
                    .map_err(|e| ApplyError::Quarantine(format!("{}: {e}", meta.display())))?;
            }
            Some(batch)
        }
        None => None,
    };
    let journal_path = match (&opts.journal, &quarantine) {
        (Some(j), _) => j.clone(),
        (None, Some(b)) => b.join("journal.ndjson"),
        (None, None) => {
            return Err(ApplyError::Journal {
                path: PathBuf::new(),
                source: std::io::Error::other("no journal path given"),
            });
        }
    };
    // Resume: a journal of this plan says what was already done.
    let previous = if journal_path.exists() {
        journal::read(&journal_path).map_err(|source| ApplyError::Journal {
            path: journal_path.clone(),
            source,
        })?
    } else {
        Vec::new()
    };
    if let Some(b) = previous.iter().find(|e| e.status == "begin")
        && b.plan != id
    {
        return Err(ApplyError::ForeignJournal(journal_path));
    }
    // An `intent` without its `done` means the process died between the two: the action may
    // have happened, so its target being gone now is this plan's doing too.
    let done_before: HashSet<String> = previous
        .iter()
        .filter(|e| e.status == "done" || e.status == "intent")
        .map(|e| e.path.clone())
        .collect();
    let mut journal = Journal::open(&journal_path).map_err(|source| ApplyError::Journal {
        path: journal_path.clone(),
        source,
    })?;
    let mut begin = entry("begin", "", "");
    begin.plan = id.clone();
    begin.quarantine = quarantine
        .as_ref()
        .map(|q| q.display().to_string())
        .unwrap_or_default();
    journal.write(begin).map_err(|source| ApplyError::Journal {
        path: journal_path.clone(),
        source,
    })?;

    progress("re-scanning the storage to re-check every target");
    let inv1 = rescan(storage, opts.concurrency)?;
    let mut warnings = live_signs(&inv1, opts.now, opts.quiet_window_seconds);
    if opts.require_quiet && !warnings.is_empty() {
        return Err(ApplyError::Live(warnings.join("; ")));
    }
    if let Some(false) = opts.registry_readonly {
        warnings.push("the registry's config does not set storage.maintenance.readonly: pushes during the apply can race with it".into())
    }
    let r = Runner {
        storage,
        journal: Mutex::new(journal),
        quarantine,
        report: Mutex::new(ApplyReport {
            plan: id,
            warnings,
            journal: journal_path.clone(),
            quarantine: opts.quarantine.clone(),
            ..Default::default()
        }),
        done_before,
    };

    let g1 = Graph::new(&inv1);
    // Phase 0 (retention): tags, each re-checked; in-use protection recomputed first.
    let live = match protect {
        Some(f) => Some(f(&g1).map_err(ApplyError::InUse)?),
        None if retention => {
            return Err(ApplyError::InUse(
                "a retention plan needs its protections recomputed; none were given".into(),
            ));
        }
        None => None,
    };
    let live = live.unwrap_or_default();
    if retention {
        let mut now_protected = Vec::new();
        let in_use = |rs: &Vec<String>| rs.iter().any(|r| r.starts_with("protection/in_use"));
        for t in &plan.tags {
            if let Some(rs) = live.tags.get(&(t.repository.clone(), t.tag.clone()))
                && in_use(rs)
            {
                now_protected.push(format!("{}:{} ({})", t.repository, t.tag, rs.join(", ")));
            }
        }
        for m in &plan.manifests {
            if let Some(rs) = live.digests.get(&(m.repository.clone(), m.digest.clone()))
                && in_use(rs)
            {
                now_protected.push(format!("{}@{} ({})", m.repository, m.digest, rs.join(", ")));
            }
        }
        if !now_protected.is_empty() {
            return Err(ApplyError::InUse(now_protected.join("; ")));
        }
    }
    let mut removed_tags: HashSet<(String, String)> = HashSet::new();
    if !plan.tags.is_empty() {
        progress(&format!("removing {} tags", plan.tags.len()));
    }
    for t in &plan.tags {
        let path = layout::tag_dir(&t.repository, &t.tag);
        let d = &t.digest;
        let why_not = (|| {
            let repo = inv1.repository(&t.repository).ok_or("gone")?;
            if !repo.complete {
                return Err("repository could not be read completely");
            }
            let tag = repo.tag(&t.tag).ok_or("gone")?;
            let cur = tag.current.ok_or("the tag has no readable current link")?;
            if cur.target.is_none() || cur.target != inv1.id_of(d) {
                return Err("the tag moved since the plan (it points elsewhere now)");
            }
            if cur.modified != t.current_modified {
                return Err("the tag was pushed again since the plan");
            }
            if live
                .tags
                .contains_key(&(t.repository.clone(), t.tag.clone()))
            {
                return Err("protected now");
            }
            Ok(())
        })();
        match why_not {
            Ok(()) => {
                if r.remove(Kind::Tag, &path, 0)? || r.done_before.contains(&path) {
                    removed_tags.insert((t.repository.clone(), t.tag.clone()));
                }
            }
            Err("gone") if r.done_before.contains(&path) => {
                r.report
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .already_done += 1;
                removed_tags.insert((t.repository.clone(), t.tag.clone()));
            }
            Err("gone") => r.skip(&path, "gone already (not by this apply)")?,
            Err("protected now") => {
                let rs = live
                    .tags
                    .get(&(t.repository.clone(), t.tag.clone()))
                    .cloned()
                    .unwrap_or_default();
                r.skip(&path, format!("protected now: {}", rs.join(", ")))?
            }
            Err(reason) => r.skip(&path, reason)?,
        }
    }

    // Phase 1: untagged manifests and their history entries.
    let mut approved: HashSet<(String, BlobId)> = HashSet::new();
    let mut approved_list: Vec<(String, Digest)> = Vec::new();
    for m in &plan.manifests {
        let path = layout::revision_dir(&m.repository, &m.digest);
        let d = &m.digest;
        let why_not = (|| {
            let repo = inv1.repository(&m.repository).ok_or("repository gone")?;
            if !repo.complete {
                return Err("repository could not be read completely");
            }
            let id = inv1.id_of(d).ok_or("revision gone")?;
            let l = repo.revision(id).ok_or("revision gone")?;
            if l.modified() != m.modified {
                return Err("revision link rewritten since the plan (pushed again)");
            }
            if repo.tags.iter().any(|t| {
                t.current.and_then(|c| c.target) == Some(id)
                    && !removed_tags.contains(&(m.repository.clone(), t.name.to_string()))
            }) {
                return Err(if retention {
                    "still tagged (a tag of it was kept or skipped)"
                } else {
                    "tagged since the plan"
                });
            }
            if live
                .digests
                .contains_key(&(m.repository.clone(), m.digest.clone()))
            {
                return Err("protected now");
            }
            Ok(id)
        })();
        match why_not {
            Ok(id) => {
                approved.insert((m.repository.clone(), id));
                approved_list.push((m.repository.clone(), d.clone()));
            }
            Err(reason) if reason == "revision gone" && r.done_before.contains(&path) => {
                approved_list.push((m.repository.clone(), d.clone()));
            }
            Err(reason) => r.skip(&path, reason)?,
        }
    }
    // Anything still reachable from what remains (an index pushed since the plan) stays.
    let marks1 = remaining_marks(&g1, &approved);
    approved_list.retain(|(repo, d)| {
        let keep = inv1.id_of(d).is_some_and(|id| marks1[id as usize]);
        if keep {
            let _ = r.skip(
                &layout::revision_dir(repo, d),
                "referenced by a manifest that remains (pushed since the plan)",
            );
        }
        !keep
    });
    let approved_set: BTreeSet<(&str, &Digest)> =
        approved_list.iter().map(|(r, d)| (r.as_str(), d)).collect();
    progress(&format!(
        "removing {} untagged manifests",
        approved_list.len()
    ));
    for t in plan
        .tag_index_entries
        .iter()
        .filter(|t| t.reason == "untagged-manifest")
    {
        let d = &t.digest;
        let path = layout::tag_index_dir(&t.repository, &t.tag, d);
        if !approved_set.contains(&(t.repository.as_str(), &t.digest)) {
            r.skip(&path, "its manifest is kept")?;
            continue;
        }
        let current = inv1
            .repository(&t.repository)
            .and_then(|repo| repo.tag(&t.tag))
            .and_then(|tag| tag.current)
            .and_then(|c| c.target);
        if current.is_some() && current == inv1.id_of(d) {
            r.skip(&path, "the tag points at this manifest again")?;
            continue;
        }
        r.remove(Kind::TagIndex, &path, 0)?;
    }
    for (repo, d) in &approved_list {
        r.remove(Kind::Manifest, &layout::revision_dir(repo, d), 0)?;
    }

    if retention && !opts.gc {
        progress(
            "blobs are not collected (apply --gc collects exactly the plan's blobs; `stowage gc` collects all)",
        );
        return finish(r, &journal_path, started);
    }

    // Phase 2: blobs, re-checked against a second fresh scan.
    progress("re-scanning before removing blobs");
    let inv2 = rescan(storage, opts.concurrency)?;
    let g2 = Graph::new(&inv2);
    let incomplete = !inv2.unlisted.is_empty() || inv2.repositories.iter().any(|x| !x.complete);
    let marks2 = remaining_marks(&g2, &HashSet::new());
    let mut blob_targets = Vec::new();
    for b in &plan.blobs {
        let d = &b.digest;
        let Some(h) = d.sha256() else {
            // Only an edited plan holds one: the scanner reads `blobs/sha256` alone.
            let path = format!("blobs/{}/{}", d.algorithm().as_str(), d.hex());
            r.skip(&path, "not a sha256 blob: stowage scans blobs/sha256 only")?;
            continue;
        };
        let path = layout::blob_dir(&h);
        if incomplete {
            r.skip(
                &path,
                "the re-scan could not read every repository; no blob is removed",
            )?;
            continue;
        }
        match inv2.id_of(d).and_then(|id| inv2.blob(id).map(|f| (id, f))) {
            None if r.done_before.contains(&path) => blob_targets.push((path, b.size)),
            None => r.skip(&path, "gone already (not by this apply)")?,
            Some((id, f)) => {
                let relinked = inv2
                    .repositories
                    .iter()
                    .filter_map(|repo| repo.layer(id))
                    .any(|l| l.maybe_after(plan.created_at));
                if f.size != b.size || f.modified() != b.modified {
                    r.skip(&path, "changed since the plan (size or mtime)")?;
                } else if relinked {
                    r.skip(
                        &path,
                        "linked into a repository since the plan (a push in progress)",
                    )?;
                } else if marks2[id as usize] {
                    r.skip(
                        &path,
                        "referenced again (a manifest pushed since the plan needs it)",
                    )?;
                } else {
                    blob_targets.push((path, b.size));
                }
            }
        }
    }
    progress(&format!("removing {} blobs", blob_targets.len()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.concurrency.max(1))
        .build()
        .map_err(|e| ApplyError::Scan(e.to_string()))?;
    let results: Vec<Result<bool, ApplyError>> = pool.install(|| {
        use rayon::prelude::*;
        blob_targets
            .par_iter()
            .map(|(p, size)| r.remove(Kind::Blob, p, *size))
            .collect()
    });
    for res in results {
        res?;
    }

    // Phase 3: dangling links and history entries whose blob is now gone.
    // Gone means "not found", nothing else: an I/O error says nothing about the blob.
    let gone = |d: &Digest| -> bool {
        match d.sha256() {
            Some(h) => storage
                .stat(&layout::blob_data(&h))
                .is_err_and(|e| e.is_not_found()),
            None => false,
        }
    };
    for l in &plan.layer_links {
        let d = &l.digest;
        let link = layout::layer_link(&l.repository, d);
        // Only a link the re-scan saw (a plan file is editable; this keeps removals to
        // targets that exist in the layout as the scanner read it).
        let seen = inv2
            .repository(&l.repository)
            .zip(inv2.id_of(d))
            .is_some_and(|(repo, id)| repo.layer(id).is_some());
        if !seen && !r.done_before.contains(&link) {
            r.skip(&link, "not in the storage as re-scanned")?;
            continue;
        }
        if !gone(d) {
            r.skip(&link, "its blob still exists")?;
            continue;
        }
        r.remove(Kind::LayerLink, &link, 0)?;
        let _ = r.remove(Kind::EmptyDir, link.trim_end_matches("/link"), 0)?;
    }
    for t in plan
        .tag_index_entries
        .iter()
        .filter(|t| t.reason == "dangling")
    {
        let d = &t.digest;
        let path = layout::tag_index_dir(&t.repository, &t.tag, d);
        let seen = inv2
            .repository(&t.repository)
            .and_then(|repo| Some((repo, repo.tag(&t.tag)?)))
            .zip(inv2.id_of(d))
            .is_some_and(|((repo, tag), id)| repo.history(tag).iter().any(|l| l.target() == id));
        if !seen && !r.done_before.contains(&path) {
            r.skip(&path, "not in the storage as re-scanned")?;
            continue;
        }
        let has_revision = inv2
            .repository(&t.repository)
            .zip(inv2.id_of(d))
            .is_some_and(|(repo, id)| repo.revision(id).is_some());
        if !gone(d) || has_revision {
            r.skip(&path, "its manifest still exists")?;
            continue;
        }
        r.remove(Kind::TagIndex, &path, 0)?;
    }

    // Phase 4: uploads still as planned and quiet.
    for u in &plan.uploads {
        let path = layout::upload_dir(&u.repository, &u.id);
        let live = inv2
            .repository(&u.repository)
            .and_then(|repo| repo.uploads.iter().find(|x| x.id == u.id));
        match live {
            None if r.done_before.contains(&path) => {
                // Removed by an interrupted earlier run of this plan.
                let mut rep = r.report.lock().unwrap_or_else(|e| e.into_inner());
                rep.already_done += 1;
                rep.bytes_freed += u.size;
            }
            None => r.skip(&path, "gone already (not by this apply)")?,
            Some(x) if x.started_at != u.started_at || x.total_size != u.size => {
                r.skip(&path, "changed since the plan (the upload continued)")?
            }
            Some(x) if x.modified.seconds_until(opts.now) < plan.options.grace_seconds => {
                r.skip(&path, "written within the grace period")?
            }
            Some(_) => {
                r.remove(Kind::Upload, &path, u.size)?;
            }
        }
    }

    // Phase 5: directories that are empty now.
    for dir in &plan.empty_dirs {
        r.remove(Kind::EmptyDir, dir, 0)?;
    }
    finish(r, &journal_path, started)
}

fn finish<S: StorageWrite>(
    r: Runner<'_, S>,
    journal_path: &Path,
    started: std::time::Instant,
) -> Result<ApplyReport, ApplyError> {
    let mut j = r.journal.lock().unwrap_or_else(|e| e.into_inner());
    j.write(entry("end", "", ""))
        .and_then(|_| j.sync())
        .map_err(|source| ApplyError::Journal {
            path: journal_path.to_path_buf(),
            source,
        })?;
    drop(j);
    let mut rep = r.report.into_inner().unwrap_or_else(|e| e.into_inner());
    rep.skipped.sort();
    rep.seconds = started.elapsed().as_secs_f64();
    Ok(rep)
}

/// Default journal location for a plan file: `<plan>.journal`.
pub fn default_journal(plan_file: &Path) -> PathBuf {
    let mut p = plan_file.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}
