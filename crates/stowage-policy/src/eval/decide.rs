//! Decisions: per tag and per image, keep wins (protections, then keep votes), then delete
//! votes, then `otherwise`; an image whose tags all go is deleted, one with some kept tags
//! is untagged (with `settings.untag`). Then the rails: emptied repositories and limits.

use super::policies::{Key, Votes};
use super::protect::Protections;
use super::*;

/// One item's fate from the votes: (delete?, reasons), `extra` being protections (kept).
fn decide_item(v: &Votes, key: Key, extra: &[String]) -> (bool, Vec<String>) {
    let mut keep_r: Vec<String> = extra.to_vec();
    keep_r.extend(
        v.keeps
            .get(&key)
            .into_iter()
            .flatten()
            .map(|r| format!("keep: {r}")),
    );
    if !keep_r.is_empty() {
        return (false, keep_r);
    }
    if let Some(d) = v.deletes.get(&key) {
        return (true, d.iter().map(|r| format!("delete: {r}")).collect());
    }
    match v.selected.get(&key) {
        Some(pols) => (
            false,
            pols.iter()
                .map(|p| format!("keep: {p}/otherwise"))
                .collect(),
        ),
        None => (false, vec!["keep: selected by no policy".into()]),
    }
}

/// One decision per top-level image (before closure repair).
pub(super) fn decide(ctx: &Ctx<'_, '_>, prot: &Protections, v: &Votes) -> Vec<ImageOutcome> {
    let p = ctx.p;
    let mut images: Vec<ImageOutcome> = Vec::new();
    for (ri, repo) in ctx.repos.iter().enumerate() {
        let ri32 = ri as u32;
        for (ui, u) in repo.units.iter().enumerate() {
            // Protections of the digest that also keep its tags, and those that do not.
            let tprot = prot
                .digest
                .get(&(ri32, u.digest))
                .cloned()
                .unwrap_or_default();
            let mut dprot = tprot.clone();
            dprot.extend(
                prot.digest_only
                    .get(&(ri32, u.digest))
                    .cloned()
                    .unwrap_or_default(),
            );
            let mut tags = Vec::new();
            let mut any_tag_kept = false;
            for &ti in &u.tags {
                let t = &repo.tags[ti as usize];
                let extra: Vec<String> = prot
                    .tag
                    .get(&(ri32, ti))
                    .into_iter()
                    .flatten()
                    .chain(tprot.iter())
                    .map(|r| format!("keep: {r}"))
                    .collect();
                let (del, why) = decide_item(v, (ri32, ui, Some(ti)), &extra);
                any_tag_kept |= !del;
                tags.push(TagOutcome {
                    tag: t.name.to_string(),
                    remove: del,
                    reasons: dedup(why),
                    current_modified: t.current.map(|c| c.modified).unwrap_or_default(),
                });
            }
            let (decision, reasons) = if u.tags.is_empty() {
                let extra: Vec<String> = dprot.iter().map(|r| format!("keep: {r}")).collect();
                let (del, why) = decide_item(v, (ri32, ui, None), &extra);
                let d = if del {
                    Decision::Delete
                } else {
                    Decision::Keep
                };
                (d, why)
            } else if !dprot.is_empty() || any_tag_kept {
                if !p.untag {
                    for t in tags.iter_mut().filter(|t| t.remove) {
                        t.remove = false;
                        t.reasons
                            .push("keep: settings.untag is false (its digest stays)".into());
                    }
                }
                let mut reasons: Vec<String> = dprot.iter().map(|r| format!("keep: {r}")).collect();
                for t in tags.iter().filter(|t| !t.remove) {
                    reasons.push(format!("keep: tag {} kept", t.tag));
                }
                let d = if tags.iter().any(|t| t.remove) {
                    Decision::Untag
                } else {
                    Decision::Keep
                };
                (d, reasons)
            } else {
                let reasons = tags
                    .iter()
                    .flat_map(|t| {
                        t.reasons
                            .iter()
                            .map(move |r| format!("{r} (tag {})", t.tag))
                    })
                    .collect();
                (Decision::Delete, reasons)
            };
            images.push(ImageOutcome {
                repo: ri32,
                digest: u.digest,
                kind: u.kind,
                time: ctx.unit_time(p.time_source, ri, u),
                pushed: u.pushed,
                decision,
                reasons: dedup(reasons),
                tags,
                cascade: Vec::new(),
            });
        }
    }
    images
}

/// Emptied repositories and the limits: crossing one blocks the plan.
pub(super) fn rails(
    p: &Compiled,
    inv: &stowage_model::inventory::Inventory,
    images: &[ImageOutcome],
    allow_empty: &[bool],
    unsafe_allow_empty: bool,
    out: &mut Outcome,
) {
    let mut per_repo: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for im in images.iter().filter(|i| i.kind != "referrer") {
        let e = per_repo.entry(im.repo).or_default();
        e.0 += 1;
        if im.decision == Decision::Delete {
            e.1 += 1;
        }
    }
    let mut deleted_total = 0u64;
    for (&ri, &(total, deleted)) in &per_repo {
        deleted_total += deleted;
        let name = inv.repositories[ri as usize].name.as_str();
        if deleted > 0 && deleted == total {
            if !(allow_empty[ri as usize] && unsafe_allow_empty) {
                out.blocked.push(format!(
                    "{name}: every image would be deleted; that needs allow_empty_repository: true in the policy and --unsafe-allow-empty"
                ));
            } else {
                out.warnings.push(format!("{name}: every image is deleted (allowed by allow_empty_repository and --unsafe-allow-empty)"));
            }
        }
        if let Some(f) = p.max_fraction
            && total > 0
            && (deleted as f64 / total as f64) > f
        {
            out.blocked.push(format!(
                "{name}: {deleted} of {total} images would be deleted, more than limits.max_fraction_per_repository {f}"
            ));
        }
    }
    if let Some(m) = p.max_images
        && deleted_total > m
    {
        out.blocked.push(format!(
            "{deleted_total} images would be deleted, more than limits.max_images_deleted {m}"
        ));
    }
}
