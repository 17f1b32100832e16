//! The retention pipeline, once: policy + scan + pull data + `now` -> evaluation -> plan.
//!
//! `stowage plan --policy`, apply's protection re-check, and `stowage plan simulate` all go
//! through [`evaluate`] with a [`RetentionRun`]: the same reads (in-use sources, config and
//! manifest facts when the policy needs them) in the same way, so the protections apply
//! recomputes over its fresh scan are those the plan was made with, and a simulated day is
//! the plan that day would have had. (Before, the CLI assembled this twice and kept the two
//! in step by a comment.)

use stowage_graph::Graph;
use stowage_model::time::Timestamp;
use stowage_policy::PullData;
use stowage_policy::eval::{EvalError, Inputs, Outcome};
use stowage_storage::Storage;

use super::inputs::{LoadedPolicy, load_built, load_image_data, load_sources};
use super::{RetentionInputs, build, live_protection};
use crate::apply::LiveProtection;
use crate::plan::Plan;

/// The inputs of one evaluation besides the scan.
#[derive(Clone, Copy, Debug)]
pub struct RetentionRun<'a> {
    pub policy: &'a LoadedPolicy,
    pub now: Timestamp,
    /// `--unsafe-allow-empty`: only changes whether emptying a repository blocks the plan,
    /// never a protection.
    pub unsafe_allow_empty: bool,
    /// Pull data: the policy's pull source, or the one given for the would-break check.
    pub pulls: Option<&'a PullData>,
}

/// Evaluate the policy over the scan: read what it needs (in-use sources relative to the
/// policy, image configs and manifests from `storage` when the policy uses them), then
/// decide every image.
pub fn evaluate(
    run: &RetentionRun<'_>,
    g: &Graph<'_>,
    storage: &dyn Storage,
) -> Result<Outcome, EvalError> {
    let c = &run.policy.compiled;
    let (created, facts) = load_image_data(storage, g, run.policy.uses_created(), c.needs_facts());
    let built = load_built(storage, g, run.policy.uses_built(), run.now);
    let sources = load_sources(c.in_use.as_ref(), run.policy.dir());
    stowage_policy::evaluate(
        c,
        &Inputs {
            graph: g,
            now: run.now,
            created: &created,
            built: &built,
            facts: &facts,
            in_use: &sources,
            unsafe_allow_empty: run.unsafe_allow_empty,
            pulls: run.pulls,
        },
    )
}

/// The plan: [`evaluate`], the plan document with its byte accounting, and the would-break
/// check against the run's pull data (`settings.would_break` decides what it does).
pub fn plan(
    run: &RetentionRun<'_>,
    g: &Graph<'_>,
    storage: &dyn Storage,
    expires_seconds: i64,
) -> Result<(Plan, Outcome), EvalError> {
    let outcome = evaluate(run, g, storage)?;
    let c = &run.policy.compiled;
    let mut plan = build(
        g,
        &outcome,
        &RetentionInputs {
            policy_path: &run.policy.path.display().to_string(),
            policy_text: &run.policy.text,
            policy_name: &c.name,
            time_source: c.time_source.as_str(),
            now: run.now,
            expires_seconds,
            untag: c.untag,
            max_bytes_freed: c.max_bytes,
        },
    );
    crate::replay::check(
        &mut plan,
        run.pulls,
        c.would_break,
        c.would_break_window,
        run.now,
    );
    Ok((plan, outcome))
}

/// Apply's re-check: the protections that hold over a fresh scan, by the same [`evaluate`]
/// as the plan, and the pulls since the plan replayed against it ([`crate::replay::since_plan`];
/// `run.pulls` is the pull data the plan was checked against, read again now:
/// [`recheck_pull_source`]).
pub fn protection(
    run: &RetentionRun<'_>,
    g: &Graph<'_>,
    storage: &dyn Storage,
    plan: &Plan,
) -> Result<LiveProtection, EvalError> {
    let mut live = live_protection(g, &evaluate(run, g, storage)?);
    if let Some(data) = run.pulls {
        crate::replay::protect_since_plan(plan, data, run.policy.compiled.would_break, &mut live);
    }
    Ok(live)
}

/// The pull data apply's re-check reads: the policy's pull source, or else the database the
/// plan was checked against (`--pulls DB` at plan time, recorded in `would_break.source`), so
/// the plan and its re-check run on the same inputs.
pub fn recheck_pull_source(policy: &LoadedPolicy, plan: &Plan) -> Option<std::path::PathBuf> {
    policy
        .pull_source()
        .or_else(|| plan.would_break.source.as_ref().map(Into::into))
}

/// Why apply cannot re-check a retention plan's protections.
#[derive(Debug, thiserror::Error)]
pub enum RecheckError {
    #[error("the plan's policy: {0}")]
    Policy(#[from] super::PolicyError),
    #[error("the policy {} changed since the plan was made; make a new plan", .0.display())]
    Changed(std::path::PathBuf),
}

/// Apply's protection re-check for a retention plan, ready to run over each fresh scan: the
/// plan's policy must be unchanged (same sha256), then [`protection`] runs with the plan's
/// `now`-independent inputs and the pull data read again at each call (pulls since the plan
/// count under `settings.would_break`). `load_pulls` reads a pull database (the history store:
/// I/O the caller owns, so this crate links no SQLite).
pub fn recheck<L>(
    plan: &Plan,
    ret: &super::Retention,
    now: Timestamp,
    storage: std::sync::Arc<dyn Storage>,
    load_pulls: L,
) -> Result<impl Fn(&Graph<'_>) -> Result<LiveProtection, String> + Sync, RecheckError>
where
    L: Fn(&std::path::Path) -> Result<PullData, String> + Sync,
{
    let path = std::path::Path::new(&ret.policy);
    let policy = LoadedPolicy::read(path)?;
    if policy.sha256() != ret.policy_sha256 {
        return Err(RecheckError::Changed(path.to_path_buf()));
    }
    let pull_source = recheck_pull_source(&policy, plan);
    let plan = plan.clone();
    Ok(move |g: &Graph<'_>| {
        let pulls = match &pull_source {
            Some(p) => Some(load_pulls(p)?),
            None => None,
        };
        let run = RetentionRun {
            policy: &policy,
            now,
            unsafe_allow_empty: true,
            pulls: pulls.as_ref(),
        };
        protection(&run, g, &*storage, &plan).map_err(|e| e.to_string())
    })
}
