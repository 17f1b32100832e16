//! The tidy phases: dangling links and history entries whose blob is gone, abandoned
//! uploads, re-checked against the scan made before the blobs went.

use stowage_layout as layout;
use stowage_model::digest::Digest;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_storage::StorageWrite;

use super::ApplyError;
use super::runner::{Kind, Runner};
use crate::plan::Plan;

/// Phase 3: dangling `_layers` links and history entries whose blob is now gone.
pub(crate) fn links<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv2: &Inventory,
) -> Result<(), ApplyError> {
    let storage = r.storage;
    // Gone means "not found", nothing else: an I/O error says nothing about the blob.
    let gone = |d: &Digest| -> bool {
        match d.sha256() {
            Some(h) => storage
                .stat(&layout::blob_data(&h))
                .is_err_and(|e| e.is_not_found()),
            None => false,
        }
    };
    for l in &plan.layer_links {
        let d = &l.digest;
        let link = layout::layer_link(&l.repository, d);
        // Only a link the re-scan saw (a plan file is editable; this keeps removals to
        // targets that exist in the layout as the scanner read it).
        let seen = inv2
            .repository(&l.repository)
            .zip(inv2.id_of(d))
            .is_some_and(|(repo, id)| repo.layer(id).is_some());
        if !seen && !r.done_before.contains(&link) {
            r.skip(&link, "not in the storage as re-scanned")?;
            continue;
        }
        if !gone(d) {
            r.skip(&link, "its blob still exists")?;
            continue;
        }
        r.remove(Kind::LayerLink, &link, 0)?;
        let _ = r.remove(Kind::EmptyDir, link.trim_end_matches("/link"), 0)?;
    }
    for t in plan
        .tag_index_entries
        .iter()
        .filter(|t| t.reason == "dangling")
    {
        let d = &t.digest;
        let path = layout::tag_index_dir(&t.repository, &t.tag, d);
        let seen = inv2
            .repository(&t.repository)
            .and_then(|repo| Some((repo, repo.tag(&t.tag)?)))
            .zip(inv2.id_of(d))
            .is_some_and(|((repo, tag), id)| repo.history(tag).iter().any(|l| l.target() == id));
        if !seen && !r.done_before.contains(&path) {
            r.skip(&path, "not in the storage as re-scanned")?;
            continue;
        }
        let has_revision = inv2
            .repository(&t.repository)
            .zip(inv2.id_of(d))
            .is_some_and(|(repo, id)| repo.revision(id).is_some());
        if !gone(d) || has_revision {
            r.skip(&path, "its manifest still exists")?;
            continue;
        }
        r.remove(Kind::TagIndex, &path, 0)?;
    }

    Ok(())
}

/// Phase 4: uploads still as planned and quiet.
pub(crate) fn uploads<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv2: &Inventory,
    now: Timestamp,
) -> Result<(), ApplyError> {
    for u in &plan.uploads {
        let path = layout::upload_dir(&u.repository, &u.id);
        let live = inv2
            .repository(&u.repository)
            .and_then(|repo| repo.uploads.iter().find(|x| x.id == u.id));
        match live {
            None if r.done_before.contains(&path) => {
                // Removed by an interrupted earlier run of this plan.
                let mut rep = r.report.lock().unwrap_or_else(|e| e.into_inner());
                rep.already_done += 1;
                rep.bytes_freed += u.size;
            }
            None => r.skip(&path, "gone already (not by this apply)")?,
            Some(x) if x.started_at != u.started_at || x.total_size != u.size => {
                r.skip(&path, "changed since the plan (the upload continued)")?
            }
            Some(x) if x.modified.seconds_until(now) < plan.options.grace_seconds => {
                r.skip(&path, "written within the grace period")?
            }
            Some(_) => {
                r.remove(Kind::Upload, &path, u.size)?;
            }
        }
    }

    Ok(())
}
