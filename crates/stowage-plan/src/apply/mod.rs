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
//! **Online** (the default, [`Mode::Online`]): the registry keeps serving, so nothing is
//! deleted at the moment it is checked. Every removal above is a *fence* (a move into the
//! batch, outside the layout); then apply settles, empties the registry's blob descriptor
//! cache, re-scans, restores whatever something written since the plan needs, and only then
//! deletes the rest (see [`online`]). **Offline** ([`Mode::Offline`], the registry stopped
//! or read-only) deletes, or quarantines, directly.
//!
//! A target that changed is skipped and reported, never forced. Every action is written to
//! an append-only journal before and after it runs, and is idempotent, so an interrupted apply
//! is resumed by running it again. With a quarantine directory, targets are moved (renamed,
//! keeping the layout) instead of deleted, and `quarantine::restore` puts them back.

mod cache_state;
mod checks;
mod online;
mod recheck;
mod redis;
mod registry_http;
mod report;
mod resume;
mod runner;
mod sections;
mod surgery;
mod tidy;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, Inventory};
use stowage_model::time::Timestamp;
use stowage_scan::{Progress, ScanOptions};
use stowage_storage::StorageWrite;

use checks::check_plan;
pub use online::{CacheStep, Mode, cache_step, mode_hint};
pub use report::{ApplyError, ApplyReport, Restored, Skip};
use runner::{Kind, Runner};

use crate::journal::entry;
use crate::plan::Plan;

/// How to apply.
#[derive(Clone)]
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
    /// Online (fence, settle, verify) or offline (delete directly).
    pub mode: Mode,
    /// Online: how long to wait after fencing before verifying.
    pub settle: Duration,
    /// Online: what the registry's blob descriptor cache needs (see [`cache_step`]).
    pub cache: CacheStep,
    /// Online: keep the fenced targets nobody needed in the batch (`--keep-quarantine`,
    /// and always with `--quarantine`) instead of deleting them.
    pub keep_fenced: bool,
    /// Apply even though the storage looks like a GitLab registry whose links are not its
    /// truth (blobs far newer than any link: `metadata_db::signature`). Never set by a
    /// registry config that enables the database: that is refused before apply runs.
    pub ignore_metadata_signature: bool,
    /// Called at each step of an online apply, after it is done (tests act as the
    /// registry here: push during the settle, check what is fenced).
    pub on_step: Option<StepHook>,
}

/// A step of an online apply, for [`ApplyOptions::on_step`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Fenced,
    Settled,
    CacheEmptied,
    Verified,
}

/// See [`ApplyOptions::on_step`].
pub type StepHook = std::sync::Arc<dyn Fn(Step) + Send + Sync>;

impl ApplyOptions {
    /// Options with the safe defaults: online, 60 s settle, the cache unknown (so a restart
    /// command or an explicit cache setting is needed), nothing kept.
    pub fn new(now: Timestamp, cache: CacheStep) -> ApplyOptions {
        ApplyOptions {
            quarantine: None,
            journal: None,
            concurrency: 8,
            now,
            quiet_window_seconds: 600,
            require_quiet: false,
            registry_readonly: None,
            gc: false,
            mode: Mode::Online,
            settle: Duration::from_secs(60),
            cache,
            keep_fenced: false,
            ignore_metadata_signature: false,
            on_step: None,
        }
    }
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

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("mode", &self.mode)
            .field("quarantine", &self.quarantine)
            .field("settle", &self.settle)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
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

/// Apply `plan` to `storage`.
pub fn apply<S: StorageWrite>(
    storage: &S,
    plan: &Plan,
    opts: &ApplyOptions,
    progress: &dyn Fn(&str),
) -> Result<ApplyReport, ApplyError> {
    apply_checked(storage, plan, opts, None, progress)
}

/// The batch directory (`<quarantine>/batch-<plan id>/`) with its record, if targets are
/// moved rather than deleted: always online (the fence), with `--quarantine` offline.
fn open_batch<S: StorageWrite>(
    storage: &S,
    plan: &Plan,
    opts: &ApplyOptions,
    id: &str,
) -> Result<Option<PathBuf>, ApplyError> {
    let dir = match (&opts.quarantine, opts.mode) {
        (Some(q), _) => q.clone(),
        (None, Mode::Offline) => return Ok(None),
        (None, Mode::Online) => storage.default_quarantine().ok_or_else(|| {
            ApplyError::Quarantine(
                "an online apply fences its targets in a quarantine directory first; give one with --quarantine".into(),
            )
        })?,
    };
    let batch = dir.join(format!("batch-{id}"));
    storage
        .check_quarantine(&batch)
        .map_err(|e| ApplyError::Quarantine(e.to_string()))?;
    let meta = batch.join("batch.json");
    if !meta.exists() {
        let v = serde_json::json!({"plan": id, "created_at": opts.now, "storage": plan.storage, "data": storage.quarantine_location(&batch)});
        std::fs::write(&meta, format!("{v}\n"))
            .map_err(|e| ApplyError::Quarantine(format!("{}: {e}", meta.display())))?;
    }
    Ok(Some(batch))
}

/// Recompute in-use protection over `g1` and refuse a retention plan whose targets an
/// in-use source now protects.
fn live_protection(
    plan: &Plan,
    g1: &Graph<'_>,
    protect: Option<ProtectFn<'_>>,
) -> Result<LiveProtection, ApplyError> {
    let retention = plan.kind == crate::PlanKind::Retention;
    let live = match protect {
        Some(f) => f(g1).map_err(ApplyError::InUse)?,
        None if retention => {
            return Err(ApplyError::InUse(
                "a retention plan needs its protections recomputed; none were given".into(),
            ));
        }
        None => return Ok(LiveProtection::default()),
    };
    if retention {
        let mut now_protected = Vec::new();
        // In use now, or pulled since the plan under `settings.would_break: block`: refused.
        let in_use = |rs: &Vec<String>| {
            rs.iter().any(|r| {
                r.starts_with("protection/in_use") || r.starts_with("protection/would_break")
            })
        };
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
    Ok(live)
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
    check_plan(storage, plan, opts.now, opts.mode)?;
    if plan.cache.is_some() && opts.mode == Mode::Online {
        return Err(ApplyError::Blocked(crate::cache::OFFLINE_NOTE.into()));
    }
    let retention = plan.kind == crate::PlanKind::Retention;
    let surgery = plan.kind == crate::PlanKind::Surgery;
    let id = plan.id();
    let batch = open_batch(storage, plan, opts, &id)?;
    let journal_path = match (&opts.journal, &batch) {
        (Some(j), _) => j.clone(),
        (None, Some(b)) => b.join("journal.ndjson"),
        (None, None) => {
            return Err(ApplyError::Journal {
                path: PathBuf::new(),
                source: std::io::Error::other("no journal path given"),
            });
        }
    };
    let before = resume::open_journal(&journal_path, &id, batch.as_deref(), opts.mode)?;
    // Targets an interrupted online run fenced wait for its verify: an offline run would
    // never verify them (a push caught by the fence would stay in the batch unseen).
    if opts.mode == Mode::Offline && !before.fenced_online.is_empty() {
        return Err(ApplyError::Blocked(format!(
            "an interrupted online apply of this plan left {} target(s) fenced and not yet verified ({}): resume it online (the same command without --offline), or put them back with `stowage quarantine restore`",
            before.fenced_online.len(),
            before
                .fenced_online
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let resume::Before {
        journal,
        done_before,
        fenced,
        purged,
        ..
    } = before;

    progress("re-scanning the storage to re-check every target");
    let inv1 = rescan(storage, opts.concurrency)?;
    // GitLab's metadata database: the links are not the registry's truth, so nothing may
    // be deleted on their strength (the plan was refused too; an edited or older plan is
    // refused here, on the storage as it is now).
    if !opts.ignore_metadata_signature
        && let Some(e) = crate::metadata_db::signature(&inv1)
    {
        return Err(ApplyError::Blocked(e.refusal()));
    }
    let mut warnings = live_signs(&inv1, opts.now, opts.quiet_window_seconds);
    if opts.require_quiet && !warnings.is_empty() {
        return Err(ApplyError::Live(warnings.join("; ")));
    }
    if opts.mode == Mode::Offline
        && let Some(false) = opts.registry_readonly
    {
        warnings.push("the registry's config does not set storage.maintenance.readonly: pushes during an --offline apply can race with it".into())
    }
    let r = Runner {
        storage,
        journal: Mutex::new(journal),
        batch,
        report: Mutex::new(ApplyReport {
            plan: id,
            warnings,
            journal: journal_path.clone(),
            quarantine: opts.quarantine.clone(),
            mode: match opts.mode {
                Mode::Online => "online".into(),
                Mode::Offline => "offline".into(),
            },
            ..Default::default()
        }),
        done_before,
        purged_before: purged,
        fenced: Mutex::new(fenced),
    };
    let g1 = Graph::new(&inv1);
    let live = live_protection(plan, &g1, protect)?;
    if opts.mode == Mode::Online {
        progress(
            "online: every target is fenced (moved out of the registry's view) first, deleted only after the settle wait and a verify scan",
        );
    }
    // Surgery: the destination's links first (verified), then repository sections.
    surgery::run(&r, plan, &inv1, opts.concurrency, progress)?;
    let removed_tags = recheck::tags(&r, plan, &g1, &live, progress)?;
    // Surgery plans list what GC frees after them; it is collected only with `--gc`.
    let collect = !(retention || surgery) || opts.gc;
    if !surgery || opts.gc {
        recheck::manifests(
            &r,
            plan,
            &inv1,
            &g1,
            &live,
            &removed_tags,
            retention,
            progress,
        )?;
    }
    drop(g1);
    drop(inv1);
    if collect {
        progress("re-scanning before removing blobs");
        let inv2 = rescan(storage, opts.concurrency)?;
        let g2 = Graph::new(&inv2);
        recheck::blobs(&r, plan, &inv2, &g2, opts.concurrency, progress)?;
        drop(g2);
        tidy::links(&r, plan, &inv2)?;
        tidy::uploads(&r, plan, &inv2, opts.now)?;
    } else {
        progress(
            "blobs are not collected (apply --gc collects exactly the plan's blobs; `stowage gc` collects all)",
        );
    }
    if opts.mode == Mode::Online {
        settle_and_verify(&r, plan, opts, progress)?;
    } else if matches!(opts.cache, CacheStep::Redis { .. }) {
        // Offline the registry is stopped, but its redis cache outlives it: the keys of what
        // the plan removes go too, as the registry's own deletes do (a deleted repository's
        // blob set would otherwise still vouch for its blobs after the restart).
        let digests: Vec<Digest> = plan
            .blobs
            .iter()
            .map(|b| b.digest.clone())
            .chain(plan.manifests.iter().map(|m| m.digest.clone()))
            .collect();
        let repositories: Vec<String> = plan
            .surgery
            .iter()
            .flat_map(|s| s.repositories.iter().map(|x| x.repository.clone()))
            .collect();
        let what = online::run_cache_step(&opts.cache, &digests, &repositories, progress)
            .map_err(ApplyError::Blocked)?;
        r.step("cache", what.clone())?;
        r.report().cache = what;
    }
    // Directories that are empty now (after the fenced targets went for good).
    for dir in &plan.empty_dirs {
        r.remove(Kind::EmptyDir, dir, 0)?;
    }
    if let Some(edit) = &plan.cache {
        // The edit follows what apply actually removed, not the plan (a target re-checked
        // and kept keeps its entry, so the registry still expires it).
        let now_stored = rescan(storage, opts.concurrency);
        if let Err(e) = &now_stored {
            r.report().warnings.push(format!(
                "the scan after apply failed ({e}): every manifest entry of {} stays (the registry expires it)",
                stowage_model::scheduler::STATE_FILE
            ));
        }
        let done = cache_state::update(storage, edit, now_stored.as_ref().ok())?;
        r.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scheduler_state = Some(done);
    }
    finish(r, &journal_path, started)
}

/// The online steps after the fence: settle, empty the cache, verify, restore, delete.
fn settle_and_verify<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    opts: &ApplyOptions,
    progress: &dyn Fn(&str),
) -> Result<(), ApplyError> {
    let hook = |s: Step| {
        if let Some(h) = &opts.on_step {
            h(s)
        }
    };
    let fenced = r.fenced.lock().unwrap_or_else(|e| e.into_inner()).clone();
    {
        let mut rep = r.report();
        rep.fenced = fenced.len() as u64;
        rep.settle_seconds = opts.settle.as_secs();
    }
    r.step("fenced", format!("{} target(s) fenced", fenced.len()))?;
    progress(&format!(
        "fenced {} target(s) in {}",
        fenced.len(),
        r.batch
            .as_ref()
            .map(|b| b.display().to_string())
            .unwrap_or_default()
    ));
    hook(Step::Fenced);
    let digests = online::fenced_digests(&fenced);
    let repositories = online::fenced_repositories(&fenced);
    // redis: the keys go right after the fence too, so the window in which the cache can
    // vouch for a fenced blob is as short as it can be; again after the settle below.
    if let CacheStep::Redis { .. } = &opts.cache
        && let Err(e) = online::run_cache_step(&opts.cache, &digests, &repositories, progress)
    {
        return roll_back(r, plan, &fenced, e);
    }
    online::settle(opts.settle, progress);
    r.step("settled", format!("{}s", opts.settle.as_secs()))?;
    hook(Step::Settled);
    match online::run_cache_step(&opts.cache, &digests, &repositories, progress) {
        Ok(what) => {
            r.step("cache", what.clone())?;
            r.report().cache = what;
        }
        Err(e) => return roll_back(r, plan, &fenced, e),
    }
    hook(Step::CacheEmptied);
    progress(
        "verifying: re-scanning for anything written since the plan that needs a fenced target",
    );
    let sizes = blob_sizes(plan);
    let decisions = verify_to_fixpoint(r, plan, opts, fenced, &|p| sizes(p), progress)?;
    online::carry_out(r, &decisions, opts.keep_fenced, &|p| sizes(p))?;
    hook(Step::Verified);
    if !opts.keep_fenced
        && let Some(b) = &r.batch
    {
        drop_empty_batch(b, &r.report().journal);
    }
    Ok(())
}

/// A fence batch that holds nothing any more (every target restored or deleted), and not
/// the journal either, goes, with `stowage-quarantine/` itself when that was all it held:
/// a completed online apply leaves the storage's directory as it found it.
fn drop_empty_batch(batch: &Path, journal: &Path) {
    if journal.starts_with(batch) || !matches!(crate::quarantine::holds_data(batch), Ok(false)) {
        return;
    }
    if std::fs::remove_dir_all(batch).is_ok()
        && let Some(parent) = batch.parent()
    {
        let _ = std::fs::remove_dir(parent);
    }
}

/// Verify scans until nothing more needs restoring. A restored manifest is readable again
/// only once it is back, and what it references (its config and layers, an index's
/// children) may be fenced too: the next scan sees those references and restores them, and
/// so on. Every round restores at least one path, so the rounds are at most the fenced
/// paths. Returns the final decisions (no restores left) for the rest.
fn verify_to_fixpoint<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    opts: &ApplyOptions,
    fenced: BTreeSet<String>,
    sizes: &dyn Fn(&str) -> u64,
    progress: &dyn Fn(&str),
) -> Result<Vec<(String, online::Decision)>, ApplyError> {
    let mut left = fenced;
    // The fenced copies of repository sections do not change while they wait: scanned once.
    let section_paths: BTreeSet<String> = left
        .iter()
        .filter(|p| sections::section_of(p).is_some())
        .cloned()
        .collect();
    let fenced_sections = sections::fenced_fingerprints(r, &section_paths, opts.concurrency);
    let orphans: BTreeMap<String, Digest> = plan
        .tags
        .iter()
        .filter_map(|t| {
            let s = t.orphan_of.clone()?;
            Some((stowage_layout::tag_dir(&t.repository, &t.tag), s))
        })
        .collect();
    loop {
        let decisions = match rescan(r.storage, opts.concurrency) {
            Ok(inv) => {
                let g = Graph::new(&inv);
                let fresh = |p: &str| fenced_link_is_fresh(r, plan, p);
                let cx = online::Context {
                    plan_created: plan.created_at,
                    planned_size: sizes,
                    fresh: &fresh,
                    orphans: &orphans,
                };
                let mut d = online::decide(&inv, &g, &left, &cx);
                d.extend(sections::decide(
                    &inv,
                    online::incomplete(&inv),
                    plan.surgery.as_deref(),
                    &left,
                    &fenced_sections,
                    &r.purged_before,
                ));
                d
            }
            // Nothing can be shown unneeded without a scan: everything goes back.
            Err(e) => left
                .iter()
                .map(|p| {
                    let why = format!("the verify scan failed: {e}");
                    (p.clone(), online::Decision::Restore(why))
                })
                .collect(),
        };
        let (restores, rest): (Vec<_>, Vec<_>) = decisions
            .into_iter()
            .partition(|(_, d)| matches!(d, online::Decision::Restore(_)));
        r.step("verified", format!("{} to restore", restores.len()))?;
        if restores.is_empty() {
            return Ok(rest);
        }
        progress(&format!(
            "restoring {} fenced target(s) that something written since the plan needs",
            restores.len()
        ));
        online::carry_out(r, &restores, true, sizes)?;
        sections::kept_whole(r, plan, &restores)?;
        for (p, _) in &restores {
            left.remove(p);
        }
        progress("verifying again: what the restored manifests reference");
    }
}

/// Whether the link file of fenced path `p` (a tag's `current/link`, a revision's `link`, a
/// `_layers` link) was written in or after the plan's second: the registry rewrote it
/// between apply's re-check and the fence. Unreadable counts as fresh (restore, not lose).
fn fenced_link_is_fresh<S: StorageWrite>(r: &Runner<'_, S>, plan: &Plan, p: &str) -> bool {
    use stowage_layout::{Part, PathInfo};
    let file = match stowage_layout::classify(p) {
        PathInfo::Tag { .. } => format!("{p}/current/link"),
        PathInfo::RevisionLink {
            part: Part::Dir, ..
        } => format!("{p}/link"),
        PathInfo::LayerLink { .. } => p.to_string(),
        _ => return false,
    };
    let Some(batch) = &r.batch else { return false };
    match r.storage.quarantined_modified(batch, &file) {
        Ok(Some(t)) => stowage_model::time::Secs::new(t).maybe_after(plan.created_at),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Put every fenced target back and fail: used when the cache could not be emptied (a
/// fenced blob would otherwise stay vouched for by the cache with its data gone).
fn roll_back<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    fenced: &BTreeSet<String>,
    why: String,
) -> Result<(), ApplyError> {
    let decisions: Vec<_> = fenced
        .iter()
        .map(|p| {
            (
                p.clone(),
                online::Decision::Restore(format!("rolled back: {why}")),
            )
        })
        .collect();
    let sizes = blob_sizes(plan);
    online::carry_out(r, &decisions, true, &|p| sizes(p))?;
    Err(ApplyError::CacheStep(why))
}

/// The plan's size of a fenced blob path (0 for anything else).
fn blob_sizes(plan: &Plan) -> impl Fn(&str) -> u64 + '_ {
    move |p: &str| match stowage_layout::classify(p) {
        stowage_layout::PathInfo::Blob { digest, .. } => plan
            .blobs
            .iter()
            .find(|b| b.digest == digest)
            .map_or(0, |b| b.size),
        _ => 0,
    }
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
