//! The online verify of fenced repository sections (`repo-delete`, the source of a
//! `repo-move`): whole `_manifests`, `_layers` and `_uploads` directories were fenced, and a
//! push into the repository can have landed in two places the GC-style verify
//! ([`super::online::decide`]) does not look at:
//!
//! - **between the re-check and the fence**: the new links were fenced with the rest. The
//!   fenced copy is scanned ([`StorageWrite::quarantine_view`]) and each section's
//!   fingerprint compared with the plan's ([`crate::surgery::section_fingerprints`]); a
//!   rename keeps every file's date, so any write since the plan's listing shows.
//! - **after the fence** (a request that passed its checks before it, or one the cache step
//!   had not yet caught): the registry wrote the section again. The verify scan finds the
//!   repository holding something.
//!
//! Either way the repository was written during the apply, and nothing shows that the
//! write does not need what was fenced (a manifest accepted on the strength of a fenced
//! `_layers` link, say). So the repository is kept whole: every fenced section goes back,
//! merged file by file under what the registry wrote again (its files win; ours that
//! collide stay in the batch, reported), and the apply says so (a skip: exit status 1).
//! Only a repository whose every fenced section is exactly as planned and which holds
//! nothing again is deleted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use stowage_layout::{self as layout, PathInfo};
use stowage_model::inventory::Inventory;
use stowage_storage::{Storage, StorageWrite};

use super::ApplyError;
use super::online::Decision;
use super::runner::Runner;
use crate::plan::Plan;
use crate::surgery::{Surgery, section_fingerprints};

/// `(repository, section name)` of a fenced section path, or `None` for anything else.
pub(crate) fn section_of(path: &str) -> Option<(String, &'static str)> {
    match layout::classify(path) {
        PathInfo::ManifestsDir { repo } => Some((repo, "_manifests")),
        PathInfo::LayersDir { repo } => Some((repo, "_layers")),
        PathInfo::UploadsDir { repo } => Some((repo, "_uploads")),
        _ => None,
    }
}

/// The fingerprint of every fenced section, from one scan of the batch. An error (no view
/// of the batch, a failed scan) means nothing can be shown as planned: all go back.
pub(crate) fn fenced_fingerprints<S: StorageWrite>(
    r: &Runner<'_, S>,
    sections: &BTreeSet<String>,
    concurrency: usize,
) -> Result<BTreeMap<String, String>, String> {
    if sections.is_empty() {
        return Ok(BTreeMap::new());
    }
    let view = view(r)?;
    let fenced = stowage_scan::scan(
        &*view,
        &stowage_scan::ScanOptions {
            concurrency,
            verify_links: false,
            ..Default::default()
        },
        &stowage_scan::Progress::default(),
    )
    .map_err(|e| format!("scanning the fenced copy: {e}"))?;
    let mut out = BTreeMap::new();
    for path in sections {
        let Some((repo, section)) = section_of(path) else {
            continue;
        };
        if let Some(fp) = fenced
            .repository(&repo)
            .filter(|r| r.complete)
            .and_then(|r| section_fingerprints(&fenced, r).remove(section))
        {
            out.insert(path.clone(), fp);
        }
    }
    Ok(out)
}

fn view<S: StorageWrite>(r: &Runner<'_, S>) -> Result<Box<dyn Storage>, String> {
    let Some(batch) = &r.batch else {
        return Err("no fence batch".into());
    };
    match r.storage.quarantine_view(batch) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(format!("opening the fenced copy: {e}")),
        None => Err("this storage cannot show a fenced copy".into()),
    }
}

/// Decide for the fenced sections still in `left`, repository by repository (a repository
/// is deleted whole or kept whole). `inv` is the verify scan; `incomplete` whether it could
/// not read everything.
///
/// A repository one of whose sections an earlier run began to purge (`purged`) is partly
/// gone: putting the rest back would serve tags without their `_layers` links, so the rest
/// goes too (review finding). What the registry wrote since lives in the live tree, untouched.
pub(crate) fn decide(
    inv: &Inventory,
    incomplete: bool,
    surgery: Option<&Surgery>,
    left: &BTreeSet<String>,
    fenced: &Result<BTreeMap<String, String>, String>,
    purged: &HashSet<String>,
) -> Vec<(String, Decision)> {
    let mut by_repo: BTreeMap<String, Vec<(&String, &'static str)>> = BTreeMap::new();
    for p in left {
        if let Some((repo, section)) = section_of(p) {
            by_repo.entry(repo).or_default().push((p, section));
        }
    }
    let mut out = Vec::new();
    for (repo, paths) in by_repo {
        let planned = surgery.and_then(|s| s.repositories.iter().find(|x| x.repository == repo));
        let live = inv
            .repository(&repo)
            .is_some_and(|r| r.has_manifests || r.has_layers || r.has_uploads);
        let partly_purged =
            planned.is_some_and(|p| p.section_keys().iter().any(|k| purged.contains(k)));
        let why = if partly_purged {
            None
        } else if incomplete {
            Some("the verify scan could not read every repository".to_string())
        } else if live {
            Some("the registry wrote into it again after its fence (a push or an upload)".into())
        } else if let Err(e) = fenced {
            Some(format!(
                "the fenced copy could not be compared with the plan: {e}"
            ))
        } else if let Some(planned) = planned {
            let changed: Vec<&str> = paths
                .iter()
                .filter(|(p, s)| {
                    let got = fenced.as_ref().ok().and_then(|f| f.get(*p));
                    got.is_none() || got != planned.section_fingerprints.get(*s)
                })
                .map(|(_, s)| *s)
                .collect();
            (!changed.is_empty()).then(|| {
                format!(
                    "its {} held something the plan did not list when fenced (written between the re-check and the fence)",
                    changed.join(" and ")
                )
            })
        } else {
            Some("not a repository this plan removes".into())
        };
        for (p, _) in paths {
            out.push((
                p.clone(),
                match &why {
                    Some(w) => Decision::Restore(format!("{repo} is kept whole: {w}")),
                    None => Decision::Delete,
                },
            ));
        }
    }
    out
}

/// Put a fenced section back. Where the registry wrote the same directory again, merge: a
/// directory goes back whole where nothing is there, else entry by entry; a file the
/// registry wrote again wins and ours stays in the batch (named in the returned list).
pub(crate) fn restore<S: StorageWrite>(
    r: &Runner<'_, S>,
    batch: &Path,
    path: &str,
) -> Result<Vec<String>, ApplyError> {
    let view = view(r).map_err(|e| ApplyError::Surgery(format!("restoring {path}: {e}")))?;
    let mut kept = Vec::new();
    merge_back(r.storage, &*view, batch, path, &mut kept)?;
    Ok(kept)
}

fn merge_back<S: StorageWrite>(
    storage: &S,
    view: &dyn Storage,
    batch: &Path,
    path: &str,
    kept: &mut Vec<String>,
) -> Result<(), ApplyError> {
    let failed = match storage.move_back(batch, path) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    // Only "the registry has this path again" lets the registry's copy win; any other
    // failure (permissions, space) stops the restore, named (review finding: every failure
    // counted as the registry's copy, and the link stayed in the batch unreported).
    match storage.stat(path) {
        Err(e) if e.is_not_found() => {
            return Err(ApplyError::Surgery(format!("restoring {path}: {failed}")));
        }
        _ => {}
    }
    let mut children = Vec::new();
    let mut odd = None;
    let listed = view.list_dir(path, &mut |e| match std::str::from_utf8(e.name) {
        Ok(n) => children.push(n.to_string()),
        Err(_) => odd = Some(String::from_utf8_lossy(e.name).into_owned()),
    });
    if let Some(n) = odd {
        return Err(ApplyError::Surgery(format!(
            "restoring {path}: the fenced copy holds {n:?}, not a UTF-8 name: put it back by hand"
        )));
    }
    match listed {
        // A directory the registry made again: its entries one by one.
        Ok(()) => {
            for name in children {
                merge_back(storage, view, batch, &format!("{path}/{name}"), kept)?;
            }
            Ok(())
        }
        // A file the registry wrote again: its copy (content-addressed, or a newer tag) wins.
        Err(e) if e.kind == stowage_storage::ErrorKind::NotADirectory => {
            kept.push(format!("{path}: {failed}"));
            Ok(())
        }
        Err(e) => Err(ApplyError::Surgery(format!(
            "restoring {path}: {failed}; listing the fenced copy: {e}"
        ))),
    }
}

/// A repository a surgery removes whose sections go back (written during the apply) is
/// reported once, as a skip (exit status 1): the operation did not happen for it.
pub(crate) fn kept_whole<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    restores: &[(String, Decision)],
) -> Result<(), ApplyError> {
    let mut seen = BTreeSet::new();
    for (p, d) in restores {
        let (Some((repo, _)), Decision::Restore(why)) = (section_of(p), d) else {
            continue;
        };
        if !seen.insert(repo.clone()) {
            continue;
        }
        let then = match plan.surgery.as_ref().map(|s| s.operation) {
            Some(crate::surgery::Operation::RepoMove) => {
                "the move's destination keeps the links it was given, so both hold the images; make the plan again (repo-move --merge) for the rest"
            }
            _ => "nothing of it was removed; make the plan again to remove it",
        };
        r.skip(
            &stowage_layout::repository_dir(&repo),
            format!("{why}; {then}"),
        )?;
    }
    Ok(())
}
