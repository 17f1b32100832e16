//! Command glue: resolve settings, scan, analyse, print.

mod apply;
mod check;
mod du;
mod explain;
mod gc;
pub mod history;
mod inventory;
mod inventory_parquet;
pub mod metrics;
pub mod report;
mod retention;
pub mod serve;
pub mod snapshot;
mod tags;
pub mod usage;

use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_graph::Graph;
use stowage_model::finding::FindingCounts;
use stowage_model::inventory::Inventory;
use stowage_plan::metadata_db::{self, Evidence};
use stowage_scan::{Progress, ScanOptions};

use crate::args::{Cli, Command};
use crate::exit;
use crate::settings::Settings;

pub fn run(cli: Cli) -> Result<i32> {
    // Purging a quarantine directory needs no storage.
    if let Command::Quarantine(crate::args::QuarantineCommand::Purge(a)) = &cli.command {
        return apply::purge(&cli.global, a);
    }
    // Policy and plan-file commands need no storage either.
    match &cli.command {
        Command::Policy(crate::args::PolicyCommand::Check(a)) => {
            return retention::policy_check(cli.global.format, a);
        }
        Command::Policy(crate::args::PolicyCommand::Schema) => return retention::policy_schema(),
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::Show { plan }),
            ..
        }) => return retention::show(cli.global.format, plan),
        Command::Explain(crate::args::ExplainArgs {
            target,
            reference: Some(r),
        }) => return retention::explain_plan(cli.global.format, std::path::Path::new(target), r),
        _ => {}
    }
    // Reading a history database needs no storage either.
    if let Command::History(a) = &cli.command {
        return history::run(&cli.global, a);
    }
    // Ingesting logs needs the storage only to resolve tags (optional).
    if let Command::Usage(usage::UsageArgs {
        command: Some(usage::UsageCommand::Ingest(a)),
        ..
    }) = &cli.command
    {
        return usage::ingest(&cli.global, a);
    }
    // Apply and restore re-check against the live storage only, never a report's listing.
    if cli.global.from_inventory.is_some()
        && matches!(&cli.command, Command::Apply(_) | Command::Restore(_))
    {
        anyhow::bail!(
            "--from-inventory is for reading and planning; apply and restore re-check the live storage (drop the flag)"
        );
    }
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Gc(a) => gc::run(&settings, &a),
        Command::Apply(a) => apply::run(&settings, &a),
        Command::Restore(a) => apply::restore(&settings, &a),
        Command::Quarantine(_) | Command::Policy(_) => unreachable!("handled above"),
        Command::Plan(a) => retention::plan(&settings, &a),
        Command::Inventory(a) => inventory::run(&settings, &a),
        Command::Du(a) => du::run(&settings, &a),
        Command::Tags(a) => tags::run(&settings, &a),
        Command::Explain(a) => explain::run(&settings, &a),
        Command::Check(a) => check::run(&settings, &a),
        Command::Report(a) => report::run(&settings, &a),
        Command::Metrics(a) => metrics::run(&settings, &a),
        Command::Serve(a) => serve::run(settings, &a, cli.global.now.is_some()),
        Command::Snapshot(a) => snapshot::run(&settings, &a),
        Command::History(_) => unreachable!("handled above"),
        Command::Usage(a) => usage::run(&settings, &a),
    }
}

/// A scanned and analysed storage.
pub struct Loaded {
    /// The scan, with the graph's integrity findings added to `inv.findings` (sorted): one
    /// list, not a copy of the scan's plus the graph's, since a collected registry yields a
    /// dangling-link finding per deleted image.
    pub inv: Inventory,
    /// Graph findings counted but not listed (loaded with [`GraphFindings::Count`]).
    pub unlisted: FindingCounts,
    /// Why the storage's links are not this registry's metadata (GitLab's metadata database),
    /// from its config or the storage's signature: figures are "filesystem metadata only" and
    /// nothing may be deleted.
    pub metadata_database: Option<Evidence>,
}

impl Loaded {
    /// Refuse a deleting plan on a registry whose links are not its metadata. A signature
    /// alone may be overridden (`--unsafe-ignore-metadata-signature`); a config never.
    pub fn refuse_deleting(&self, s: &Settings) -> Result<()> {
        match &self.metadata_database {
            None => Ok(()),
            Some(Evidence::Signature { .. }) if s.ignore_metadata_signature => Ok(()),
            Some(e) => Err(anyhow::anyhow!(e.refusal())),
        }
    }
}

impl Loaded {
    /// Every finding, listed or only counted, by severity.
    pub fn finding_counts(&self) -> FindingCounts {
        let mut c = FindingCounts::of(&self.inv.findings);
        c += self.unlisted;
        c
    }
}

/// What `load` does with the findings that need the graph.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GraphFindings {
    /// Add them to `inv.findings` (commands that show findings).
    List,
    /// Only count them (commands that print totals): no path or message is built, which at
    /// a million blobs is tens of megabytes of strings nobody reads.
    Count,
}

/// Scan the storage (with progress) and add (or count) the graph's integrity findings.
pub fn load(s: &Settings, verify_links: bool, graph_findings: GraphFindings) -> Result<Loaded> {
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    // `check` (verify_links) reads the storage itself: a cache would hide what it checks.
    let cache = match (&s.cache_dir, verify_links) {
        (Some(d), false) => match stowage_scan::ScanCache::open(d, &s.storage.describe()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("warning: {e}; scanning without the cache");
                None
            }
        },
        _ => None,
    };
    let mut inv = {
        let _display =
            crate::progress::Display::start(s.progress, progress.clone(), s.storage.clone());
        stowage_scan::scan_cached(
            &*s.storage,
            &ScanOptions {
                concurrency: s.concurrency,
                verify_links,
                release_memory: Some(crate::memory::release),
            },
            cache.as_ref(),
            &progress,
        )
        .with_context(|| format!("scanning {}", s.storage.describe()))?
    };
    if let (true, Some(c)) = (s.verbose, &cache) {
        let st = c.stats();
        eprintln!(
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
    let mut unlisted = FindingCounts::default();
    match graph_findings {
        GraphFindings::List => {
            let derived = stowage_graph::analyze_findings(&Graph::new(&inv));
            inv.findings.reserve_exact(derived.len());
            inv.findings.extend(derived);
            inv.findings.sort();
            inv.findings.dedup();
        }
        GraphFindings::Count => unlisted = stowage_graph::count_findings(&Graph::new(&inv)),
    }
    if let (true, Some((report, date))) = (s.verbose, &s.listing) {
        eprintln!(
            "listing: {report}, as of {} (the scan's date; objects written since are not seen)",
            date.rfc3339()
        );
    }
    if s.verbose {
        let st = &inv.stats;
        eprintln!("peak memory after the scan: {}", peak_memory());
        eprintln!(
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
            eprintln!(
                "{scheme} requests: {} LIST pages, {} HEAD, {} GET: {n} in all, {:.0} per second",
                st.directories_listed,
                st.stats,
                st.reads,
                n as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    let metadata_database = s
        .metadata_database
        .clone()
        .or_else(|| metadata_db::signature(&inv));
    if let Some(e) = &metadata_database {
        eprintln!("note: {}", e.label());
    }
    Ok(Loaded {
        inv,
        unlisted,
        metadata_database,
    })
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
        eprintln!(
            "note: {errors} integrity errors and {warnings} warnings found; `stowage check` lists them"
        );
    }
    if errors > 0 { exit::FINDINGS } else { exit::OK }
}
