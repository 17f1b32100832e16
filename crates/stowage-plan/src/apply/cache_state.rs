//! The last step of a cache GC apply: `scheduler-state.json` follows what was removed.
//!
//! Read again now (the registry is stopped: the apply is offline), edited entry by entry
//! against what the plan saw (an entry whose expiry changed since, re-fetched meanwhile, is
//! left as it is), and replaced atomically beside the layout. Nothing is written when the
//! file is no longer the registry's format: the plan's evictions are done, and the registry
//! would refuse to start on that file anyway, which the finding `cache_state_unusable` says.
//!
//! Removals follow what apply actually removed, read from a scan after it: an entry of a
//! manifest whose revision link is still there (the re-check kept it) stays, so the registry
//! still expires it; otherwise it would never expire. A blob is different: apply keeps one
//! only because something written since the plan needs it, and its old, expired entry would
//! make the registry delete the blob's data for every repository at its next start (the
//! empty-200 pulls of distribution#4191), so that entry goes whatever apply did: the blob
//! then never expires by itself (a leak the next cache GC sees), and no image breaks.

use stowage_model::inventory::Inventory;
use stowage_model::scheduler::{self, MAX_STATE_BYTES, STATE_FILE};
use stowage_storage::StorageWrite;

use super::ApplyError;
use crate::cache::{CacheEdit, EntryRemoval};

/// Whether the object of a planned removal is still there after apply (`now`: a scan after
/// it). Only removals for what the plan deletes are checked; an entry removed because a
/// manifest that never expires needs it goes whatever apply did.
pub(crate) fn kept_by_apply(now: &Inventory, r: &EntryRemoval) -> bool {
    let Some((repo, digest)) = r.key.rsplit_once('@') else {
        return false;
    };
    let Some(id) = digest.parse().ok().and_then(|d| now.id_of(&d)) else {
        return false;
    };
    match &*r.reason {
        crate::cache::EXPIRED | crate::cache::SIZE_CAP => now
            .repositories
            .iter()
            .any(|x| x.name.as_str() == repo && x.revision(id).is_some()),
        // Never kept for a blob (module docs): its entry would delete what now needs it.
        _ => false,
    }
}

/// Apply `edit`; returns what was done, for the report.
pub(super) fn update<S: StorageWrite>(
    storage: &S,
    edit: &CacheEdit,
    now: &Inventory,
) -> Result<String, ApplyError> {
    if !edit.state_usable {
        return Ok(format!(
            "{STATE_FILE} left as it was: the plan could not use it"
        ));
    }
    if edit.remove.is_empty() && edit.extend.is_empty() {
        return Ok(format!("{STATE_FILE} unchanged: nothing to edit"));
    }
    let fail = |why: String| ApplyError::Blocked(format!("{STATE_FILE}: {why}"));
    let bytes = match storage.read_at_driver_root(STATE_FILE, MAX_STATE_BYTES) {
        None => return Err(fail("this storage cannot reach the driver's root".into())),
        Some(Err(e)) => return Err(fail(e.to_string())),
        Some(Ok(None)) => return Ok(format!("{STATE_FILE} is gone: nothing to edit")),
        Some(Ok(Some(b))) => b,
    };
    let mut state = scheduler::parse(&bytes).map_err(|e| {
        fail(format!(
            "{e}; not rewritten (the evictions are done; the registry will not start until the file is fixed or removed)"
        ))
    })?;
    let (mut removed, mut extended, mut changed_since) = (0usize, 0usize, 0usize);
    let mut kept = 0usize;
    for r in &edit.remove {
        if kept_by_apply(now, r) {
            kept += 1;
            continue;
        }
        match state.entries.iter().position(|e| e.key == r.key) {
            Some(i) if state.entries[i].expiry == r.expiry => {
                state.entries.remove(i);
                removed += 1;
            }
            Some(_) => changed_since += 1,
            None => {}
        }
    }
    for x in &edit.extend {
        match state.entries.iter_mut().find(|e| e.key == x.key) {
            Some(e) if e.expiry == x.from => {
                *e = e.with_expiry(x.to);
                extended += 1;
            }
            Some(_) => changed_since += 1,
            None => {}
        }
    }
    let out = scheduler::render(&state.entries);
    match storage.replace_at_driver_root(STATE_FILE, &out) {
        None => {
            return Err(fail(
                "this storage cannot write at the driver's root".into(),
            ));
        }
        Some(Err(e)) => return Err(fail(e.to_string())),
        Some(Ok(())) => {}
    }
    Ok(format!(
        "{STATE_FILE}: {removed} entries removed, {extended} extended, {changed_since} changed since the plan and left alone, {kept} kept because apply kept their object; {} entries remain",
        state.entries.len()
    ))
}
