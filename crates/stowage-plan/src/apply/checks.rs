//! What apply refuses before it touches anything: a plan for another storage, a blocked or
//! expired retention plan, a plan dated after now, a plan made from a provider inventory
//! older than its grace window.

use stowage_model::time::Timestamp;
use stowage_storage::StorageWrite;

use super::ApplyError;
use crate::plan::Plan;

/// Clock skew allowed between the machine that planned and the one that applies.
const FUTURE_SKEW_SECS: i64 = 15 * 60;

pub(super) fn check_plan<S: StorageWrite>(
    storage: &S,
    plan: &Plan,
    now: Timestamp,
    mode: super::Mode,
) -> Result<(), ApplyError> {
    if plan.storage != storage.describe() {
        return Err(ApplyError::WrongStorage {
            plan: plan.storage.clone(),
            storage: storage.describe(),
        });
    }
    if let Some(ret) = &plan.retention {
        if !ret.rails_blocked.is_empty() {
            return Err(ApplyError::Blocked(ret.rails_blocked.join("; ")));
        }
        if now > ret.expires_at {
            return Err(ApplyError::Expired(ret.expires_at.rfc3339()));
        }
    } else if plan.kind == crate::PlanKind::Retention {
        return Err(ApplyError::Blocked(
            "a retention plan without its retention section".into(),
        ));
    }
    // `would_break: block` (a policy setting, or `gc --would-break block`): a plan that
    // breaks a recent pull, or that could not be checked, is not applied, whatever its kind.
    let wb = &plan.would_break;
    if wb.action == "block" && (!wb.checked || !wb.pulls.is_empty()) {
        return Err(ApplyError::Blocked(format!(
            "would break recent pulls and would_break is block: {}",
            wb.note
        )));
    }
    if (plan.kind == crate::PlanKind::Surgery) != plan.surgery.is_some() {
        return Err(ApplyError::Blocked(
            "a surgery section belongs to a surgery plan, and a surgery plan needs one".into(),
        ));
    }
    // Removing whole repository sections online is verified by comparing each fenced
    // section with the plan ([`super::sections`]): a push between the re-check and the
    // fence is in the fenced copy. Where the fenced copy loses its dates (an object store's
    // copy), that comparison cannot be made, and the registry must be stopped or read-only.
    if let Some(s) = &plan.surgery
        && mode == super::Mode::Online
        && !s.repositories.is_empty()
        && !storage.can_view_quarantine()
    {
        return Err(ApplyError::Blocked(format!(
            "{} removes whole repositories ({}); on this storage a fenced copy cannot be compared with the plan (an object store's copy takes a new date), so a push into one during an online apply could be removed with it: stop the registry or make it read-only (storage.maintenance.readonly), then apply with --offline",
            s.operation.as_str(),
            s.repositories
                .iter()
                .map(|r| r.repository.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // A plan dated after now (made with a later `--now`) decided ages and grace periods
    // for a time that has not come: every "older than" was measured from the future.
    // Fifteen minutes of clock skew between the planning and applying machines are allowed.
    if plan.created_at > now.saturating_sub_secs(-FUTURE_SKEW_SECS) {
        return Err(ApplyError::Blocked(format!(
            "the plan was made for {}, after now ({}): its ages and grace period were measured from a time that has not come; make it again without --now, or apply with the same --now",
            plan.created_at.rfc3339(),
            now.rfc3339()
        )));
    }
    // A plan made from a provider inventory saw the storage as of the report's date. Once
    // that is further back than the plan's grace window, pushes the grace period was meant
    // to cover happened after the listing, unseen by the plan: refused, however live the
    // re-check below is. Make the plan again from a newer report or a live listing.
    if let Some(l) = &plan.listing
        && l.date.seconds_until(now) > plan.options.grace_seconds
    {
        return Err(ApplyError::Blocked(format!(
            "the plan was made from {} of {}, older than its grace window ({} s): make it again from a newer inventory or a live listing (without --from-inventory)",
            l.report,
            l.date.rfc3339(),
            plan.options.grace_seconds
        )));
    }
    Ok(())
}
