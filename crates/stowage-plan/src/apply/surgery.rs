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
//! A repository whose fingerprint changed since the plan (pushed to, a tag moved, an upload
//! began) is skipped whole; otherwise its `_manifests`, `_layers` and `_uploads` are removed
//! like any target: fenced (online), quarantined or deleted, journalled, idempotent.

use stowage_layout as layout;
use stowage_model::inventory::Inventory;
use stowage_storage::StorageWrite;

use super::ApplyError;
use super::runner::{Kind, Runner};
use crate::journal::entry;
use crate::plan::Plan;
use crate::surgery::{Operation, RepositoryState, fingerprint};

/// Both phases, in order. `inv` is apply's first fresh scan.
pub(crate) fn run<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv: &Inventory,
    progress: &dyn Fn(&str),
) -> Result<(), ApplyError> {
    let Some(s) = &plan.surgery else {
        return Ok(());
    };
    if !s.links.is_empty() {
        if let Some(src) = &s.source {
            source_unchanged(r, inv, src)?;
        }
        progress(&format!(
            "creating {} link(s) under {}",
            s.links.len(),
            s.destination.as_deref().unwrap_or("the destination")
        ));
        create_links(r, plan, inv)?;
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
        remove_repository(r, inv, repo, s.operation)?;
    }
    Ok(())
}

/// A move or copy writes nothing unless its source is exactly as reviewed. On a resumed
/// move the source may already be fenced or gone (by this plan): then the journal says the
/// links were all created before.
fn source_unchanged<S: StorageWrite>(
    r: &Runner<'_, S>,
    inv: &Inventory,
    src: &RepositoryState,
) -> Result<(), ApplyError> {
    let removed_before = src.section_keys().iter().any(|k| r.done_before.contains(k));
    match inv.repository(&src.repository) {
        Some(repo) if fingerprint(inv, repo) == src.fingerprint => Ok(()),
        _ if removed_before => Ok(()),
        Some(_) => Err(ApplyError::Blocked(format!(
            "the source {} changed since the plan (a push, a tag moved, an upload): make the plan again; nothing was written",
            src.repository
        ))),
        None => Err(ApplyError::Blocked(format!(
            "the source {} is gone; nothing was written",
            src.repository
        ))),
    }
}

fn create_links<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv: &Inventory,
) -> Result<(), ApplyError> {
    let Some(s) = &plan.surgery else {
        return Ok(());
    };
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
        r.journal(entry("intent", "create", &path))?;
        let created = r
            .storage
            .create_file(&path, content.as_bytes())
            .map_err(|e| {
                ApplyError::Surgery(format!(
                    "creating {path}: {e}; the source was not touched (run apply again to resume)"
                ))
            })?;
        let back = r
            .storage
            .read(&path, layout::MAX_LINK_LEN)
            .map_err(|e| ApplyError::Surgery(format!("reading back {path}: {e}")))?;
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
                    "{path} holds {what}, not {}: the destination was written meanwhile; the source was not touched",
                    l.digest
                )));
            }
        }
        let mut e = entry("done", "create", &path);
        if !created {
            e.reason = "already there, same digest".into();
        }
        r.journal(e)?;
        let mut rep = r.report();
        if created {
            rep.links_created += 1;
        } else {
            rep.already_done += 1;
        }
    }
    Ok(())
}

fn remove_repository<S: StorageWrite>(
    r: &Runner<'_, S>,
    inv: &Inventory,
    planned: &RepositoryState,
    op: Operation,
) -> Result<(), ApplyError> {
    let keys = planned.section_keys();
    let by_us = keys.iter().any(|k| r.done_before.contains(k));
    let why_not = match inv.repository(&planned.repository) {
        None if by_us => None,
        None => Some("gone already (not by this apply)"),
        Some(repo) if !repo.complete => Some("repository could not be read completely"),
        // An interrupted earlier run removed some sections: the rest is as planned or not,
        // and the fingerprint cannot tell; what remains of it goes.
        Some(_) if by_us => None,
        Some(repo) if fingerprint(inv, repo) != planned.fingerprint => Some(match op {
            Operation::RepoMove => {
                "the source changed since its links were planned: kept (the destination has the planned copy)"
            }
            _ => "changed since the plan (a push, a tag moved, an upload): kept",
        }),
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
