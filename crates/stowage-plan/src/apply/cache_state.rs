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
use stowage_model::scheduler::{self, EntryKind, MAX_STATE_BYTES, STATE_FILE};
use stowage_storage::StorageWrite;

use super::ApplyError;
use crate::cache::{CacheEdit, EntryRemoval};

/// Whether the object of a planned removal is still there after apply (`now`: a scan after
/// it). Only removals for what the plan deletes are checked; an entry removed because a
/// manifest that never expires needs it goes whatever apply did.
///
/// `now` is `None` when that scan failed: then every manifest counts as kept (its entry
/// stays and the registry expires it, a no-op for one apply did remove), while the blob
/// removals and the extensions, which protect what still needs a blob, are written anyway
/// (review finding: a failed scan left the whole edit unwritten, extensions included, so
/// the registry would expire blobs an unexpiring manifest needs).
pub(crate) fn kept_by_apply(now: Option<&Inventory>, r: &EntryRemoval, kind: EntryKind) -> bool {
    // Never kept for a blob (module docs): its entry would delete what now needs it.
    let keeps_manifests = kind == EntryKind::Manifest
        && matches!(&*r.reason, crate::cache::EXPIRED | crate::cache::SIZE_CAP);
    let Some(now) = now else {
        return keeps_manifests;
    };
    let Some((repo, digest)) = r.key.rsplit_once('@') else {
        return false;
    };
    let Some(id) = digest.parse().ok().and_then(|d| now.id_of(&d)) else {
        return false;
    };
    keeps_manifests
        && now
            .repositories
            .iter()
            .any(|x| x.name.as_str() == repo && x.revision(id).is_some())
}

/// Apply `edit`; returns what was done, for the report.
pub(super) fn update<S: StorageWrite>(
    storage: &S,
    edit: &CacheEdit,
    now: Option<&Inventory>,
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
        let Some(i) = state.entries.iter().position(|e| e.key == r.key) else {
            continue;
        };
        if kept_by_apply(now, r, state.entries[i].kind) {
            kept += 1;
        } else if state.entries[i].expiry == r.expiry {
            state.entries.remove(i);
            removed += 1;
        } else {
            changed_since += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::EntryExtension;
    use stowage_model::time::Timestamp;

    const M: &str = "c/app@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const B: &str = "c/app@sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const X: &str = "c/app@sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn entry(key: &str, kind: u8) -> String {
        format!(
            r#""{key}":{{"Key":"{key}","ExpiryData":"2026-01-01T00:00:00Z","EntryType":{kind}}}"#
        )
    }

    /// Review finding: when the scan after apply failed, the edit was not written at all,
    /// extensions included, so the registry would expire the blobs an unexpiring manifest
    /// needs. Now the blob removal and the extension are written; the manifest's entry stays
    /// (it cannot be shown that apply removed the manifest).
    #[test]
    fn a_failed_scan_after_apply_still_writes_the_extensions_and_blob_removals() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("docker/registry/v2");
        std::fs::create_dir_all(&layout).unwrap();
        let state = dir.path().join(STATE_FILE);
        let text = format!("{{{},{},{}}}", entry(M, 1), entry(B, 0), entry(X, 0));
        std::fs::write(&state, text).unwrap();
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let old = t("2026-01-01T00:00:00Z");
        let edit = CacheEdit {
            file: STATE_FILE.into(),
            state_usable: true,
            remove: [M, B]
                .iter()
                .map(|k| EntryRemoval {
                    key: (*k).into(),
                    expiry: old,
                    reason: crate::cache::EXPIRED.into(),
                })
                .collect(),
            extend: vec![EntryExtension {
                key: X.into(),
                from: old,
                to: t("2027-01-01T00:00:00Z"),
                needed_by: M.into(),
            }],
            ..Default::default()
        };
        let storage = stowage_storage::FsStorage::open(&layout).unwrap();
        let said = update(&storage, &edit, None).unwrap();
        assert!(said.contains("1 entries removed, 1 extended"), "{said}");
        let after = scheduler::parse(&std::fs::read(&state).unwrap()).unwrap();
        let keys: Vec<&str> = after.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, [M, X]);
        assert_eq!(after.entries[1].expiry, t("2027-01-01T00:00:00Z"));
    }
}
