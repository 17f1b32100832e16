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
pub mod surgery;
mod tags;
pub mod usage;

use anyhow::Result;

use crate::args::{Cli, Command};
pub use crate::pipeline::{GraphFindings, findings_exit, load, refuse_deleting};
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
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::Simulate(a)),
            ..
        }) => retention::simulate(&settings, &a),
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::RepoDelete(a)),
            ..
        }) => surgery::repo_delete(&settings, &a),
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::RepoMove(a)),
            ..
        }) => surgery::repo_move(&settings, &a),
        Command::Plan(crate::args::PlanArgs {
            command: Some(crate::args::PlanCommand::TagDelete(a)),
            ..
        }) => surgery::tag_delete(&settings, &a),
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
