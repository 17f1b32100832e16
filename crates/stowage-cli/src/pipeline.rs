//! The pipeline the commands share, as calls into the library: scan and analyse once
//! (`load`: `stowage_analysis::Analysis`), the report figures (`analyse`), recording a
//! scan in the history database, the pull views. Command modules import this, never each
//! other, so a change to one command cannot reach another through it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_analysis::Analysis;
pub use stowage_analysis::GraphFindings;
use stowage_graph::Graph;
use stowage_history::{Db, SnapshotPolicy, UsageStatus, snapshot_data};
use stowage_model::finding::FindingCounts;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_report::metrics::RepoFigures;
use stowage_report::overview::{HistorySeries, Limits, Overview, PullsView};
use stowage_scan::{Progress, ScanOptions};
use stowage_usage::view::UsageView;

use crate::exit;
use crate::settings::Settings;

/// A scanned and analysed storage: the library's analysed registry.
pub type Loaded = Analysis;

/// Refuse a deleting plan on a registry whose links are not its metadata (GitLab's metadata
/// database); a storage signature alone may be overridden with
/// `--unsafe-ignore-metadata-signature`.
pub fn refuse_deleting(a: &Analysis, s: &Settings) -> Result<()> {
    Ok(a.refuse_deleting(s.ignore_metadata_signature)?)
}

/// Scan the storage (with progress) and analyse it: one call into the library.
pub fn load(s: &Settings, verify_links: bool, graph_findings: GraphFindings) -> Result<Analysis> {
    load_stating(s, verify_links, graph_findings, false, false)
}

/// [`load`], stating only what a plan may name when `candidates_only`
/// (`ScanOptions::stat_candidates_only`; `gc` then settles its plan with
/// `stowage_analysis::settle`), and without the tags' history when `skip_tag_history`
/// (`ScanOptions::skip_tag_history`: a plain `gc`).
pub fn load_stating(
    s: &Settings,
    verify_links: bool,
    graph_findings: GraphFindings,
    candidates_only: bool,
    skip_tag_history: bool,
) -> Result<Analysis> {
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    // `check` (verify_links) reads the storage itself: a cache would hide what it checks.
    let cache = match (&s.cache_dir, verify_links) {
        (Some(d), false) => match stowage_scan::ScanCache::open(d, &s.storage.describe()) {
            Ok(c) => Some(c),
            Err(e) => {
                note!("warning: {e}; scanning without the cache");
                None
            }
        },
        _ => None,
    };
    let inv = {
        let _display =
            crate::progress::Display::start(s.progress, progress.clone(), s.storage.clone());
        stowage_scan::scan_cached(
            &*s.storage,
            &ScanOptions {
                concurrency: s.concurrency,
                verify_links,
                release_memory: Some(crate::memory::release),
                stat_candidates_only: candidates_only && !verify_links,
                skip_tag_history: skip_tag_history && !verify_links,
            },
            cache.as_ref(),
            &progress,
        )
        .with_context(|| format!("scanning {}", s.storage.describe()))?
    };
    if let (true, Some(c)) = (s.verbose, &cache) {
        let st = c.stats();
        note!(
            "scan cache {}: {} manifests from the cache, {} read ({} corrupt entries replaced); {} tag links unchanged, {} read{}{}",
            c.dir().display(),
            st.manifest_hits,
            st.manifest_misses,
            st.corrupt,
            st.link_hits,
            st.link_misses,
            if st.links_rebuilt {
                "; the link file was malformed and is rebuilt"
            } else {
                ""
            },
            if st.errors > 0 {
                format!("; {} cache files could not be read or written", st.errors)
            } else {
                String::new()
            },
        );
    }
    if let (true, Some((report, date))) = (s.verbose, &s.listing) {
        note!(
            "listing: {report}, as of {} (the scan's date; objects written since are not seen)",
            date.rfc3339()
        );
    }
    let analysis = Analysis::new(
        inv,
        &stowage_analysis::Options {
            graph_findings,
            metadata_config: s.metadata_database.clone(),
            now: s.now,
            proxy_remote_url: s
                .registry_config
                .as_ref()
                .and_then(|c| c.proxy_remoteurl.clone()),
        },
    );
    if s.verbose {
        print_scan_stats(s, analysis.inv(), started);
    }
    if let Some(e) = analysis.metadata_database() {
        note!("note: {}", e.label());
    }
    if let Some(f) = analysis.cache_figures() {
        note!(
            "note: {}; cached objects expire by its scheduler state, and `stowage gc` evicts expired images, never untagged ones",
            stowage_model::escape::escape(&f.headline())
        );
    }
    Ok(analysis)
}

fn print_scan_stats(s: &Settings, inv: &Inventory, started: std::time::Instant) {
    let st = &inv.stats;
    note!("peak memory after the scan: {}", peak_memory());
    note!(
        "scanned in {:.2}s: {} blobs, {} repositories, {} manifests; {} directories listed, {} stats, {} reads ({} bytes)",
        started.elapsed().as_secs_f64(),
        inv.blobs.len(),
        inv.repositories.len(),
        inv.manifests.len(),
        st.directories_listed,
        st.stats,
        st.reads,
        st.bytes_read
    );
    if let stowage_storage::BackendKind::ObjectStore { scheme } = s.storage.backend() {
        let n = st.directories_listed + st.stats + st.reads;
        note!(
            "{scheme} requests: {} LIST pages, {} HEAD, {} GET: {n} in all, {:.0} per second",
            st.directories_listed,
            st.stats,
            st.reads,
            n as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), for --verbose.
pub fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// For read commands other than `check`: exit 1 when error-level findings exist, and say so
/// on stderr so a table of data is not mistaken for a clean bill of health.
pub fn findings_exit(c: FindingCounts) -> i32 {
    let (errors, warnings) = (c.error, c.warning);
    if errors + warnings > 0 {
        note!(
            "note: {errors} integrity errors and {warnings} warnings found; `stowage check` lists them"
        );
    }
    if errors > 0 { exit::FINDINGS } else { exit::OK }
}

/// The figures every report-like command renders (`report`, `metrics`, `snapshot`).
pub struct Figures {
    pub overview: Overview,
    pub repos: RepoFigures,
    /// Seconds the scan and the analysis took.
    pub seconds: f64,
}

/// Repositories with their own series in the metrics.
pub const METRICS_TOP_REPOSITORIES: usize = 50;

/// Scan and analyse: the analysed registry and its report figures.
pub fn analyse(s: &Settings, limits: &Limits) -> Result<(Loaded, Figures)> {
    // The duration is a measurement reported as such (a metric), never part of a decision.
    let started = std::time::Instant::now();
    let mut loaded = load(s, false, GraphFindings::List)?;
    // The tables' build dates and "bytes by image age": one read per image config.
    loaded.read_build_dates(&*s.storage, s.concurrency);
    let figures = Figures {
        overview: loaded.overview(limits),
        repos: loaded.repository_figures(METRICS_TOP_REPOSITORIES),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((loaded, figures))
}

/// Repositories charted by name in the report's growth chart (the rest as one line).
pub const CHART_REPOSITORIES: usize = 8;

/// Record the analysed scan in `db` (its repository and tag figures, with `summary`, at
/// `now`); return the chart of everything recorded so far.
pub fn record_and_chart(
    db: &Path,
    loaded: &Loaded,
    summary: &stowage_graph::Summary,
    now: Timestamp,
) -> Result<HistorySeries> {
    record_and_chart_with(db, loaded, summary, now, SnapshotPolicy::Every)
}

/// [`record_and_chart`], storing a snapshot only when `policy` says so (the dashboard:
/// only when something changed, by default).
pub fn record_and_chart_with(
    db: &Path,
    loaded: &Loaded,
    summary: &stowage_graph::Summary,
    now: Timestamp,
    policy: SnapshotPolicy,
) -> Result<HistorySeries> {
    let mut h = Db::open(db)?;
    if policy != SnapshotPolicy::Never {
        let data = snapshot_data(&loaded.graph(), loaded.usage(), summary, now);
        h.record_with(&data, policy)
            .with_context(|| format!("recording the scan in {}", db.display()))?;
    }
    Ok(h.series(CHART_REPOSITORIES)?)
}

/// Images by last pull, and the pull data's status, from the history database.
pub fn pull_view(db: &Path, g: &Graph<'_>, now: Timestamp) -> Result<(UsageView, UsageStatus)> {
    let h = Db::open_existing(db)?;
    let pulls = h.pull_summary()?;
    Ok((
        stowage_usage::view::build(g, &pulls, now),
        h.usage_status()?,
    ))
}

/// The report's "Last pulled" section, when the database has pull data.
pub fn report_section(db: &Path, g: &Graph<'_>, now: Timestamp) -> Result<Option<PullsView>> {
    let h = Db::open_existing(db)?;
    if !h.has_usage()? {
        return Ok(None);
    }
    let v = stowage_usage::view::build(g, &h.pull_summary()?, now);
    Ok(Some(stowage_usage::view::report_section(&v)))
}

/// Set the tables' last pulls (repository and tag rows) from `db`'s pull data, if it has any.
pub fn set_last_pulled(
    db: &Path,
    ov: &mut Overview,
    tags: Option<&mut [stowage_report::overview::TagRow]>,
    g: &Graph<'_>,
) -> Result<()> {
    let h = Db::open_existing(db)?;
    if !h.has_usage()? {
        return Ok(());
    }
    let last: std::collections::HashMap<(String, String), Timestamp> = h
        .pull_summary()?
        .pulls
        .into_iter()
        .map(|p| ((p.repository, p.digest), p.last_pulled))
        .collect();
    stowage_report::ages::set_last_pulled(ov, g, &last);
    if let Some(rows) = tags {
        stowage_report::ages::set_tag_rows_last_pulled(rows, g, &last);
    }
    Ok(())
}

/// The pull data in a history database, for the policy and the would-break check:
/// coverage, last pull per image, and pulls by reference over the data's window.
pub fn load_pulls(path: &Path) -> Result<stowage_policy::PullData> {
    load_pulls_cut(path, None)
}

/// [`load_pulls`] for `plan simulate`, which cuts the data at instants `cut - k days`: every
/// pull by reference (not only the coverage window, so each simulated day's last pulls are
/// those the plan that day had), in days that end at `cut`'s time of day.
pub fn load_pulls_cut(path: &Path, cut: Option<Timestamp>) -> Result<stowage_policy::PullData> {
    let db = stowage_history::Db::open_existing(path)
        .with_context(|| format!("pull data: {}", path.display()))?;
    let s = db
        .pull_summary()
        .with_context(|| format!("reading pull data from {}", path.display()))?;
    let recent = db
        .pulls_by_reference(
            match cut {
                Some(_) => Timestamp(i64::MIN),
                None => s.data_begins.unwrap_or(Timestamp(i64::MIN)),
            },
            cut,
        )
        .with_context(|| format!("reading pulls from {}", path.display()))?;
    // Absolute: the plan records it (`would_break.source`) and apply's re-check reads the
    // same database again, from whatever directory it runs in.
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(stowage_policy::PullData {
        source: source.display().to_string(),
        begins: s.data_begins,
        ends: s.data_ends,
        last: s
            .pulls
            .into_iter()
            .map(|p| ((p.repository, p.digest), p.last_pulled))
            .collect(),
        recent,
    })
}

/// The storage's filesystem and "days until full" from `history`'s growth.
pub fn capacity(
    s: &Settings,
    history: Option<&HistorySeries>,
) -> Option<stowage_report::capacity::Capacity> {
    let (size, free) = s.storage.capacity()?;
    Some(stowage_report::capacity::Capacity::new(size, free, history))
}
