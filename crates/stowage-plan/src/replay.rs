//! Would-break replay: which recent pulls a plan would have made fail.
//!
//! Retention tools fail worst when a policy deletes what is still in use (GitLab's cleanup
//! policy that wiped images in use, retention by last pull that missed digest pulls). Pull data
//! (access logs and notifications ingested into the history database; scanners excluded at
//! ingest) says what was pulled, by tag or by digest. Replayed against a plan:
//!
//! - a pull **by tag** breaks when the plan removes that tag (`effect: deleted` when the image
//!   goes, `untagged` when only the tag does); a tag that moved on still serves;
//! - a pull **by digest** breaks when the plan deletes that manifest from that repository;
//!   a pull of an index's platform child breaks with the index (the child is in the plan as a
//!   cascade) and is named by its image.
//!
//! [`check`] puts the result in every plan ([`WouldBreak`]), with the policy's decision
//! (`settings.would_break`: warn, block, accept); `stowage plan replay` runs [`replay`] on any
//! plan, retention or `gc -m`, against any window of the data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use stowage_model::time::Timestamp;
use stowage_policy::file::WouldBreakAction;
use stowage_policy::{PullByReference, PullData};

use crate::plan::Plan;

/// The plan's would-break check: always present, so a plan made without pull data says so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WouldBreak {
    /// Whether pull data was there to check against.
    pub checked: bool,
    /// In words: what was checked, or why nothing was.
    pub note: String,
    /// The pull data (history database) checked against.
    pub source: Option<String>,
    /// The window of pulls checked: from (inclusive) to the data's newest point.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// `settings.would_break`: `warn`, `block` or `accept` (empty: not a retention plan).
    pub action: String,
    /// Every recent pull the plan would break, by repository, reference.
    pub pulls: Vec<BrokenPull>,
}

impl WouldBreak {
    /// A plan made without looking at pull data (a `gc` plan): it says so.
    pub fn not_checked() -> WouldBreak {
        WouldBreak {
            note:
                "not checked against pull data; `stowage plan replay PLAN --db DB` checks any plan"
                    .into(),
            ..Default::default()
        }
    }
}

/// A recent pull that would fail once the plan is applied.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokenPull {
    pub repository: String,
    /// As pulled: a tag or a digest.
    pub reference: String,
    /// The image it belongs to, `repository:tag` (its first tag in the plan) or
    /// `repository@digest` when untagged.
    pub image: String,
    /// The image's (top-level) digest.
    pub digest: String,
    /// `deleted` (the image goes) or `untagged` (the tag goes, the image stays).
    pub effect: String,
    pub last_pulled: Timestamp,
    pub pulls: u64,
    pub client: String,
}

/// What a plan removes, for matching pulls.
struct Removed {
    /// (repository, manifest digest) -> (image digest, image name).
    manifests: HashMap<(String, String), (String, String)>,
    /// (repository, tag) -> image digest of the tag's target.
    tags: HashMap<(String, String), String>,
}

fn removed(plan: &Plan) -> Removed {
    let mut names: HashMap<(String, String), (String, String)> = HashMap::new();
    let mut first_tag: BTreeMap<(String, String), String> = BTreeMap::new();
    for t in &plan.tags {
        first_tag
            .entry((t.repository.clone(), t.digest.to_string()))
            .or_insert_with(|| t.tag.clone());
    }
    let name = |repo: &str, image: &str| match first_tag.get(&(repo.to_string(), image.to_string()))
    {
        Some(t) => format!("{repo}:{t}"),
        None => format!("{repo}@{image}"),
    };
    // Cascades (platform children, referrers) name their image.
    if let Some(r) = &plan.retention {
        for im in &r.images {
            let image = im.digest.to_string();
            let n = match im.tags.first() {
                Some(t) => format!("{}:{}", im.repository, t.tag),
                None => format!("{}@{image}", im.repository),
            };
            for c in im.cascade.iter().filter(|c| c.decision == "delete") {
                names.insert(
                    (im.repository.clone(), c.digest.to_string()),
                    (image.clone(), n.clone()),
                );
            }
        }
    }
    let mut manifests = HashMap::new();
    for m in &plan.manifests {
        let key = (m.repository.clone(), m.digest.to_string());
        let v = names.get(&key).cloned().unwrap_or_else(|| {
            let d = m.digest.to_string();
            (d.clone(), name(&m.repository, &d))
        });
        manifests.insert(key, v);
    }
    let tags = plan
        .tags
        .iter()
        .map(|t| ((t.repository.clone(), t.tag.clone()), t.digest.to_string()))
        .collect();
    Removed { manifests, tags }
}

/// The pulls among `pulls` at or after `since` that `plan` would break, one per
/// (repository, reference, digest) with the last pull and its client, sorted.
pub fn replay(plan: &Plan, pulls: &[PullByReference], since: Option<Timestamp>) -> Vec<BrokenPull> {
    let r = removed(plan);
    let mut out: BTreeMap<(String, String, String), BrokenPull> = BTreeMap::new();
    for p in pulls
        .iter()
        .filter(|p| since.is_none_or(|s| p.last_pulled >= s))
    {
        let by_digest = p.reference.starts_with("sha256:") || p.reference.contains(':');
        let hit = if by_digest {
            r.manifests
                .get(&(p.repository.clone(), p.digest.clone()))
                .map(|(d, n)| (d.clone(), n.clone(), "deleted"))
        } else {
            r.tags
                .get(&(p.repository.clone(), p.reference.clone()))
                .map(|target| {
                    let gone = r.manifests.get(&(p.repository.clone(), target.clone()));
                    let effect = if gone.is_some() {
                        "deleted"
                    } else {
                        "untagged"
                    };
                    let digest = gone.map(|g| g.0.clone()).unwrap_or_else(|| target.clone());
                    (digest, format!("{}:{}", p.repository, p.reference), effect)
                })
        };
        let Some((digest, image, effect)) = hit else {
            continue;
        };
        let key = (p.repository.clone(), p.reference.clone(), p.digest.clone());
        let b = out.entry(key).or_insert_with(|| BrokenPull {
            repository: p.repository.clone(),
            reference: p.reference.clone(),
            image,
            digest,
            effect: effect.into(),
            last_pulled: p.last_pulled,
            pulls: 0,
            client: p.client.clone(),
        });
        b.pulls += p.pulls;
        if p.last_pulled >= b.last_pulled {
            b.last_pulled = p.last_pulled;
            b.client = p.client.clone();
        }
    }
    let mut v: Vec<BrokenPull> = out.into_values().collect();
    v.sort();
    v
}

/// Fill `plan.would_break` from `pulls` (the data's whole window, or the last `window`
/// seconds before `now`), and act on it as `action` says: `block` adds a rail (apply refuses
/// the plan), `warn` a warning, `accept` nothing.
pub fn check(
    plan: &mut Plan,
    pulls: Option<&PullData>,
    action: WouldBreakAction,
    window: Option<i64>,
    now: Timestamp,
) {
    let Some(data) = pulls else {
        plan.would_break = WouldBreak {
            note: "no pull data: this plan was not checked against recent pulls (name a history database in settings.pull_sources or pass --pulls DB)".into(),
            action: action.as_str().into(),
            ..Default::default()
        };
        block_unchecked(plan, action, "there is no pull data to check against");
        return;
    };
    // `block` promises the plan breaks no recent pull: a window the data does not cover
    // (or no data at all) cannot keep that promise, so the plan is refused rather than
    // checked against less than was asked (review of issue 23, finding 5).
    match (window, data.begins, data.ends) {
        (_, None, _) | (_, _, None) => block_unchecked(
            plan,
            action,
            &format!("the pull data in {} holds no pulls yet", data.source),
        ),
        (Some(w), _, _) if w <= 0 => block_unchecked(
            plan,
            action,
            "settings.would_break_window is 0: no pull would be checked",
        ),
        (Some(w), Some(b), Some(e))
            if now.saturating_sub_secs(w) < b || e < now.saturating_sub_secs(w) =>
        {
            block_unchecked(
                plan,
                action,
                &format!(
                    "settings.would_break_window reaches back to {}, but the pull data in {} covers only {} to {}",
                    now.saturating_sub_secs(w).rfc3339(),
                    data.source,
                    b.rfc3339(),
                    e.rfc3339()
                ),
            )
        }
        _ => {}
    }
    let from = match (window, data.begins) {
        (Some(w), Some(b)) => Some(b.max(now.saturating_sub_secs(w))),
        (Some(w), None) => Some(now.saturating_sub_secs(w)),
        (None, b) => b,
    };
    let broken = replay(plan, &data.recent, from);
    let window_text = format!(
        "{} to {}",
        from.map(Timestamp::rfc3339).unwrap_or_else(|| "-".into()),
        data.ends
            .map(Timestamp::rfc3339)
            .unwrap_or_else(|| "-".into())
    );
    let images: BTreeSet<&str> = broken.iter().map(|b| b.image.as_str()).collect();
    let note = if data.ends.is_none() {
        format!(
            "the pull data in {} holds no pulls yet: nothing to check against",
            data.source
        )
    } else if broken.is_empty() {
        format!("no pull from {window_text} would fail")
    } else {
        format!(
            "{} pulled reference(s) of {} image(s) from {window_text} would fail",
            broken.len(),
            images.len()
        )
    };
    if !broken.is_empty()
        && let Some(r) = plan.retention.as_mut()
    {
        let list: Vec<&str> = images.iter().take(10).copied().collect();
        let more = if images.len() > 10 { ", ..." } else { "" };
        let msg = format!(
            "would break recent pulls: {note} ({}{more}); settings.would_break is {}",
            list.join(", "),
            action.as_str()
        );
        match action {
            WouldBreakAction::Block => r.rails_blocked.push(msg),
            WouldBreakAction::Warn => r.warnings.push(msg),
            WouldBreakAction::Accept => {}
        }
        r.rails_blocked.sort();
    }
    plan.would_break = WouldBreak {
        checked: data.ends.is_some(),
        note,
        source: Some(data.source.clone()),
        from,
        to: data.ends,
        action: action.as_str().into(),
        pulls: broken,
    };
}

/// `settings.would_break: block` with nothing (or less than asked) to check against: the plan
/// is blocked, never silently unchecked.
fn block_unchecked(plan: &mut Plan, action: WouldBreakAction, why: &str) {
    if action != WouldBreakAction::Block {
        return;
    }
    if let Some(r) = plan.retention.as_mut() {
        r.rails_blocked.push(format!(
            "settings.would_break is block, but recent pulls cannot be checked: {why}"
        ));
        r.rails_blocked.sort();
    }
}

/// Apply's re-check of recent pulls (review of issue 23, finding 2): pulls newer than what
/// the plan was checked against (after `would_break.to`, or after the plan was made when it
/// saw no pulls) that the plan would break. [`check`] ran at plan time only, so an image
/// pulled between plan and apply would otherwise be deleted even with `would_break: block`.
pub fn since_plan(plan: &Plan, data: &PullData) -> Vec<BrokenPull> {
    let after = plan.would_break.to.unwrap_or(plan.created_at);
    let fresh: Vec<PullByReference> = data
        .recent
        .iter()
        .filter(|p| p.last_pulled > after)
        .cloned()
        .collect();
    replay(plan, &fresh, None)
}

/// The protections [`since_plan`]'s pulls put on the plan's targets at apply, as
/// `settings.would_break` says: `block` refuses the apply (`protection/would_break(...)`,
/// which apply treats like an in-use reference), `warn` skips the targets pulled
/// (`protection/recent_pull(...)`), `accept` nothing.
pub fn protect_since_plan(
    plan: &Plan,
    data: &PullData,
    action: WouldBreakAction,
    live: &mut crate::apply::LiveProtection,
) {
    let kind = match action {
        WouldBreakAction::Block => "would_break",
        WouldBreakAction::Warn => "recent_pull",
        WouldBreakAction::Accept => return,
    };
    for b in since_plan(plan, data) {
        let why = format!(
            "protection/{kind}(pulled since the plan: {}@{} by {} at {}; settings.would_break is {})",
            b.repository,
            b.reference,
            if b.client.is_empty() { "-" } else { &b.client },
            b.last_pulled.rfc3339(),
            action.as_str()
        );
        let mut add = |d: &str| {
            if let Ok(d) = d.parse() {
                let e = live.digests.entry((b.repository.clone(), d)).or_default();
                if !e.contains(&why) {
                    e.push(why.clone());
                }
            }
        };
        add(&b.digest);
        if b.reference.contains(':') {
            add(&b.reference);
        } else {
            live.tags
                .entry((b.repository.clone(), b.reference.clone()))
                .or_default()
                .push(why.clone());
        }
    }
}
