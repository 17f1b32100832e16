//! Command glue: resolve settings, scan, analyse, print.

mod apply;
mod check;
mod du;
mod explain;
mod gc;
pub mod history;
mod inventory;
pub mod metrics;
pub mod report;
mod retention;
pub mod serve;
pub mod snapshot;
mod tags;
pub mod usage;

use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_analysis::Analysis;
pub use stowage_analysis::GraphFindings;
use stowage_model::finding::FindingCounts;
use stowage_model::inventory::Inventory;
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
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::Replay(a)),
            ..
        }) => {
            let now = crate::settings::resolve_now(&cli.global)?;
            return retention::replay(cli.global.format, now, a);
        }
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
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Gc(a) => gc::run(&settings, &a),
        Command::Apply(a) => apply::run(&settings, &a),
        Command::Restore(a) => apply::restore(&settings, &a),
        Command::Quarantine(_) | Command::Policy(_) => unreachable!("handled above"),
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::Simulate(a)),
            ..
        }) => retention::simulate(&settings, &a),
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
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let analysis = {
        let _display =
            crate::progress::Display::start(s.progress, progress.clone(), s.storage.clone());
        Analysis::scan(
            &*s.storage,
            &ScanOptions {
                concurrency: s.concurrency,
                verify_links,
                release_memory: Some(crate::memory::release),
            },
            &progress,
            &stowage_analysis::Options {
                graph_findings,
                metadata_config: s.metadata_database.clone(),
                now: s.now,
            },
        )
        .with_context(|| format!("scanning {}", s.storage.describe()))?
    };
    if s.verbose {
        print_scan_stats(s, analysis.inv(), started);
    }
    if let Some(e) = analysis.metadata_database() {
        eprintln!("note: {}", e.label());
    }
    Ok(analysis)
}

fn print_scan_stats(s: &Settings, inv: &Inventory, started: std::time::Instant) {
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
