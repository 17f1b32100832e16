//! Command glue: resolve settings, scan, analyse, print.

mod apply;
pub mod cache;
mod check;
mod du;
mod explain;
mod gc;
pub mod history;
mod inventory;
pub mod metrics;
pub mod migrate;
pub mod report;
mod retention;
pub mod serve;
pub mod snapshot;
pub mod surgery;
mod tags;
pub mod usage;

use anyhow::Result;

use crate::args::{
    Cli, Command, ExplainArgs, PlanArgs, PlanCommand, PolicyCommand, QuarantineCommand,
};
pub use crate::pipeline::{GraphFindings, findings_exit, load, refuse_deleting};
use crate::settings::Settings;

/// One match over the commands: each arm resolves what it needs and no more. Commands that
/// read a policy, a plan file, a history database or a quarantine directory get the global
/// arguments; those that read the registry get [`Settings`] (storage opened, `--now`
/// resolved), built in the arm; apply and restore get the live storage only.
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    let storage = || Settings::resolve(g);
    refuse_parquet(g.format, &cli.command)?;
    match cli.command {
        Command::Quarantine(QuarantineCommand::Purge(a)) => apply::purge(g, &a),
        Command::Policy(PolicyCommand::Check(a)) => retention::policy_check(g.format, &a),
        Command::Policy(PolicyCommand::Schema) => retention::policy_schema(),
        Command::Plan(PlanArgs {
            command: Some(PlanCommand::Show { plan }),
            ..
        }) => retention::show(g.format, &plan),
        Command::Plan(PlanArgs {
            command: Some(PlanCommand::Replay(a)),
            ..
        }) => retention::replay(g.format, crate::settings::resolve_now(g)?, &a),
        Command::Plan(PlanArgs {
            command: Some(PlanCommand::Simulate(a)),
            ..
        }) => retention::simulate(&storage()?, &a),
        Command::Plan(PlanArgs {
            command: Some(PlanCommand::RepoDelete(a)),
            ..
        }) => surgery::repo_delete(&storage()?, &a),
        Command::Plan(PlanArgs {
            command: Some(PlanCommand::RepoMove(a)),
            ..
        }) => surgery::repo_move(&storage()?, &a),
        Command::Plan(PlanArgs {
            command: Some(PlanCommand::TagDelete(a)),
            ..
        }) => surgery::tag_delete(&storage()?, &a),
        Command::Plan(a) => retention::plan(&storage()?, &a),
        Command::Explain(ExplainArgs {
            target,
            reference: Some(r),
        }) => retention::explain_plan(g.format, std::path::Path::new(&target), &r),
        Command::Explain(a) => explain::run(&storage()?, &a),
        // A migration opens its own two storages.
        Command::Migrate(a) => migrate::run(g, &a),
        Command::History(a) => history::run(g, &a),
        // Ingesting logs needs the storage only to resolve tags (optional).
        Command::Usage(usage::UsageArgs {
            command: Some(usage::UsageCommand::Ingest(a)),
            ..
        }) => usage::ingest(g, &a),
        Command::Usage(a) => usage::run(&storage()?, &a),
        Command::Apply(a) => apply::run(&live(g)?, &a),
        Command::Restore(a) => apply::restore(&live(g)?, &a),
        Command::Gc(a) => gc::run(&storage()?, &a),
        Command::Inventory(a) => inventory::run(&storage()?, &a),
        Command::Du(a) => du::run(&storage()?, &a),
        Command::Cache(a) => cache::run(&storage()?, &a),
        Command::Tags(a) => tags::run(&storage()?, &a),
        Command::Check(a) => check::run(&storage()?, &a),
        Command::Report(a) => report::run(&storage()?, &a),
        Command::Metrics(a) => metrics::run(&storage()?, &a),
        Command::Serve(a) => serve::run(storage()?, &a, g.now.is_some()),
        Command::Snapshot(a) => snapshot::run(&storage()?, &a),
    }
}

/// `--format parquet` is for the record tables (docs/analytics.md); every other command
/// refuses it here, once, so their own output code never sees it.
fn refuse_parquet(format: crate::args::Format, c: &Command) -> Result<()> {
    let tables = matches!(c, Command::Inventory(_) | Command::Du(_) | Command::Tags(_))
        || matches!(c, Command::History(h) if h.command.is_none());
    if format == crate::args::Format::Parquet && !tables {
        anyhow::bail!(
            "--format parquet is for inventory, du, tags and history (with -o FILE); use json, ndjson or csv here"
        );
    }
    Ok(())
}

/// Settings for apply and restore: they re-check against the live storage only, never a
/// provider report's listing.
fn live(g: &crate::args::GlobalArgs) -> Result<Settings> {
    if g.from_inventory.is_some() {
        anyhow::bail!(
            "--from-inventory is for reading and planning; apply and restore re-check the live storage (drop the flag)"
        );
    }
    Settings::resolve(g)
}
