//! Applying a surgery plan (`kind: surgery`, [`crate::surgery`]): links created under a
//! move's destination, then repository sections removed.
//!
//! **Links** (repo-move, repo-copy), the only writes apply makes. Before the first one:
//! the source must be as planned (same [`crate::surgery::fingerprint`]) and every blob a
//! link names must exist, else nothing is written. Each link is then created whole and
//! without replacing anything ([`StorageWrite::create_file`]), journalled (`intent` /
//! `done` with op `create`) and **read back**: its content must be exactly the planned
//! digest. A link already there with that content (a resumed apply, or a merge) counts as
//! done; one with another content stops the apply before the source is touched. The order
//! is the plan's (layers, manifests, indexes, tag history, tag `current` last), so the
//! registry never serves a destination link to something the destination lacks.
//!
//! **Sections** (repo-delete, the source of a move): only after every link is verified.
//! After a link phase the storage is scanned again, so the source is compared with the plan
//! as it is just before its fence, not as it was before the (possibly long) link phase: a
//! move whose source changed meanwhile stops with nothing removed, and says which
//! destination links it wrote. A repository whose fingerprint changed since the plan
//! (pushed to, a tag moved, an upload began) is skipped whole; otherwise its `_manifests`,
//! `_layers` and `_uploads` are removed like any target: fenced (online), quarantined or
//! deleted, journalled, idempotent. An apply resumed after an interruption that removed
//! some sections removes the rest only if each section still there is exactly as planned
//! ([`crate::surgery::section_fingerprints`]).
//!
//! Every error that stops a move names the destination links written for the plan so far
//! (also in the journal, op `create`); `quarantine::restore` lists them too.

use std::collections::BTreeSet;

use stowage_layout as layout;
use stowage_model::inventory::Inventory;
use stowage_storage::StorageWrite;

use super::ApplyError;
use super::runner::{Kind, Runner};
use crate::journal::entry;
use crate::plan::Plan;
use crate::surgery::{Operation, RepositoryState, Surgery, fingerprint, section_fingerprints};

/// Both phases, in order. `inv` is apply's first fresh scan.
pub(crate) fn run<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv: &Inventory,
    concurrency: usize,
    progress: &dyn Fn(&str),
) -> Result<(), ApplyError> {
    let Some(s) = &plan.surgery else {
        return Ok(());
    };
    let relisted;
    let mut inv = inv;
    let mut created = BTreeSet::new();
    if !s.links.is_empty() {
        if let Some(src) = &s.source {
            source_unchanged(r, inv, src, s, &created)?;
        }
        progress(&format!(
            "creating {} link(s) under {}",
            s.links.len(),
            s.destination.as_deref().unwrap_or("the destination")
        ));
        create_links(r, s, inv, &mut created)?;
        if !s.repositories.is_empty() {
            // The link phase can be long (a large repository, a slow store): a push into the
            // source meanwhile must not be removed with it, so the source is listed again
            // now, just before its fence, and compared with the plan (review finding: this
            // compared with the scan made before the link phase).
            progress("re-scanning: the source must still be as planned before it is removed");
            relisted = super::rescan(r.storage, concurrency)?;
            inv = &relisted;
        }
    }
    if !s.repositories.is_empty() {
        progress(&format!(
            "removing {} repositor{}",
            s.repositories.len(),
            if s.repositories.len() == 1 {
                "y"
            } else {
                "ies"
            }
        ));
    }
    for repo in &s.repositories {
        remove_repository(r, inv, repo, s, &created)?;
    }
    Ok(())
}

/// The destination links that exist because of this plan: created by this run or (journal)
/// by an interrupted earlier one. What a stopped move leaves behind, named in its error.
fn links_left<S: StorageWrite>(
    r: &Runner<'_, S>,
    s: &Surgery,
    created: &BTreeSet<String>,
) -> String {
    let paths: Vec<String> = s
        .links
        .iter()
        .map(|l| l.path())
        .filter(|p| created.contains(p) || r.done_before.contains(p))
        .collect();
    if paths.is_empty() {
        return "no destination link was written".into();
    }
    const SHOWN: usize = 20;
    let more = paths.len().saturating_sub(SHOWN);
    format!(
        "the {} destination link(s) written for this plan stay (journal {}, op `create`): {}{}",
        paths.len(),
        r.report().journal.display(),
        paths[..paths.len().min(SHOWN)].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// A move or copy writes nothing unless its source is exactly as reviewed. On a resumed
/// move the source may already be fenced or gone (by this plan): then the journal says the
/// links were all created before.
fn source_unchanged<S: StorageWrite>(
    r: &Runner<'_, S>,
    inv: &Inventory,
    src: &RepositoryState,
    s: &Surgery,
    created: &BTreeSet<String>,
) -> Result<(), ApplyError> {
    let removed_before = src.section_keys().iter().any(|k| r.done_before.contains(k));
    match inv.repository(&src.repository) {
        Some(repo) if fingerprint(inv, repo) == src.fingerprint => Ok(()),
        _ if removed_before => Ok(()),
        Some(_) => Err(ApplyError::Blocked(format!(
            "the source {} changed since the plan (a push, a tag moved, an upload): make the plan again; nothing was removed, {}",
            src.repository,
            links_left(r, s, created)
        ))),
        None => Err(ApplyError::Blocked(format!(
            "the source {} is gone; nothing was removed, {}",
            src.repository,
            links_left(r, s, created)
        ))),
    }
}

fn create_links<S: StorageWrite>(
    r: &Runner<'_, S>,
    s: &Surgery,
    inv: &Inventory,
    created: &mut BTreeSet<String>,
) -> Result<(), ApplyError> {
    // Every blob a link names must be there before the first link is written.
    let missing: Vec<String> = s
        .links
        .iter()
        .filter(|l| inv.id_of(&l.digest).and_then(|id| inv.blob(id)).is_none())
        .map(|l| l.digest.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        return Err(ApplyError::Blocked(format!(
            "{} blob(s) the destination's links would name are missing now ({}); nothing was written",
            missing.len(),
            missing.join(", ")
        )));
    }
    for l in &s.links {
        let path = l.path();
        let content = l.digest.to_string();
        // A link already there is never journalled as an intent: an intent with no outcome
        // then means the link was absent before (restore lists it as this move's; listing a
        // destination's own link there would have the user break its image).
        let exists = match r.storage.read(&path, layout::MAX_LINK_LEN) {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => {
                return Err(ApplyError::Surgery(format!(
                    "reading {path}: {e}; the source was not touched; {}",
                    links_left(r, s, created)
                )));
            }
        };
        let was_created = !exists
            && {
                r.journal(entry("intent", "create", &path))?;
                r.storage
                .create_file(&path, content.as_bytes())
                .map_err(|e| {
                    ApplyError::Surgery(format!(
                        "creating {path}: {e}; the source was not touched (run apply again to resume); {}",
                        links_left(r, s, created)
                    ))
                })?
            };
        if was_created {
            created.insert(path.clone());
        }
        let back = r.storage.read(&path, layout::MAX_LINK_LEN).map_err(|e| {
            ApplyError::Surgery(format!(
                "reading back {path}: {e}; the source was not touched; {}",
                links_left(r, s, created)
            ))
        })?;
        match layout::parse_link(&back) {
            Ok(d) if d == l.digest => {}
            other => {
                let mut e = entry("skipped", "create", &path);
                e.reason = "holds another digest".into();
                r.journal(e)?;
                let what = match other {
                    Ok(d) => d.to_string(),
                    Err(e) => e.to_string(),
                };
                return Err(ApplyError::Surgery(format!(
                    "{path} holds {what}, not {}: the destination was written meanwhile; the source was not touched; {}",
                    l.digest,
                    links_left(r, s, created)
                )));
            }
        }
        let mut e = entry("done", "create", &path);
        if !was_created {
            e.reason = "already there, same digest".into();
        }
        r.journal(e)?;
        let mut rep = r.report();
        if was_created {
            rep.links_created += 1;
        } else {
            rep.already_done += 1;
        }
        drop(rep);
        super::runner::test_kill_hook();
    }
    Ok(())
}

fn remove_repository<S: StorageWrite>(
    r: &Runner<'_, S>,
    inv: &Inventory,
    planned: &RepositoryState,
    s: &Surgery,
    created: &BTreeSet<String>,
) -> Result<(), ApplyError> {
    let keys = planned.section_keys();
    let by_us = keys.iter().any(|k| r.done_before.contains(k));
    let why_not = match inv.repository(&planned.repository) {
        None if by_us => None,
        None => Some("gone already (not by this apply)".to_string()),
        Some(repo) if !repo.complete => Some("repository could not be read completely".into()),
        // An interrupted earlier run removed some sections: the whole fingerprint cannot
        // tell whether the rest is as planned, each section's can (review finding: the rest
        // went unchecked, with whatever was pushed during the interruption).
        Some(repo) if by_us => match rest_unchanged(inv, repo, planned) {
            // A move that cannot finish says so (exit status too), as an uninterrupted one
            // does below: both source and destination hold the image now.
            Err(why) if s.operation == Operation::RepoMove => {
                let why = format!(
                    "the rest of the source {} changed since the plan: {why}; it is kept; {}",
                    planned.repository,
                    links_left(r, s, created)
                );
                r.skip(&layout::repository_dir(&planned.repository), why.clone())?;
                return Err(ApplyError::Blocked(why));
            }
            other => other.err(),
        },
        Some(repo) if fingerprint(inv, repo) != planned.fingerprint => {
            if s.operation == Operation::RepoMove {
                let why = format!(
                    "the source {} changed since the plan (a push, a tag moved, an upload while its links were created): it is kept whole and nothing was removed; {}; make a new plan (repo-move --merge) for the rest",
                    planned.repository,
                    links_left(r, s, created)
                );
                r.skip(&layout::repository_dir(&planned.repository), why.clone())?;
                return Err(ApplyError::Blocked(why));
            }
            Some("changed since the plan (a push, a tag moved, an upload): kept".into())
        }
        Some(_) => None,
    };
    if let Some(why) = why_not {
        return r.skip(&layout::repository_dir(&planned.repository), why);
    }
    for k in &keys {
        r.remove(Kind::Section, k, 0)?;
    }
    Ok(())
}

/// A resumed removal: every section still there must be exactly as planned, one written
/// again since (a push while the apply was interrupted) included.
fn rest_unchanged(
    inv: &Inventory,
    repo: &stowage_model::inventory::Repository,
    planned: &RepositoryState,
) -> Result<(), String> {
    if planned.section_fingerprints.is_empty() {
        return Err("an interrupted apply removed part of it and this plan has no per-section fingerprints to re-check the rest (made by an older stowage): the rest is kept; make a new plan".into());
    }
    let changed: Vec<String> = section_fingerprints(inv, repo)
        .into_iter()
        .filter(|(k, v)| planned.section_fingerprints.get(k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "an interrupted apply removed part of it and {} changed since the plan (written during the interruption): the rest is kept",
        changed.join(", ")
    ))
}
