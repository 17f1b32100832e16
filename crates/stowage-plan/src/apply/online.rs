//! Online apply: fence, settle, empty the registry's cache, verify, restore, then delete.
//!
//! Why re-checks alone are not enough while the registry serves: a re-check reads the
//! storage at one moment, the removal happens at a later one, and a push in between (an
//! upload commit that finds the blob's `data` already there and only writes a `_layers`
//! link, a cross-repository mount, a manifest PUT whose references were verified a moment
//! earlier) needs the target without leaving anything the re-check could have seen. The
//! registry never rewrites data it already has, so nothing else shows it either.
//!
//! So nothing is deleted at the moment of deciding. Every target is first **fenced**: moved
//! out of `docker/registry/v2` into the batch (one `rename` on a filesystem: atomic; on an
//! object store a copy then a delete, and each object disappears at its delete). From that
//! moment the registry sees the target missing and behaves accordingly (a blob HEAD answers
//! 404, so a client uploads the data again; a mount falls back to an upload; a manifest PUT
//! that needs it fails with `MANIFEST_BLOB_UNKNOWN`), *unless its blob descriptor cache
//! says otherwise*. Then apply **settles** (waits longer than any request that passed its
//! checks before the fence can take to write its links), **empties the cache** where there
//! is one (a restart for `inmemory`, which is the only way to empty it; `DEL blobs::<digest>`
//! for `redis`, as the registry's own blob delete does), and **verifies** with a fresh scan:
//! any fenced blob, manifest or link that something written since the plan needs is put
//! back, byte-identical (renamed back), before anything is deleted for good. Only then are
//! the remaining fenced targets deleted (or kept in the quarantine batch).
//!
//! After the verify scan, the registry's view and the storage agree that every remaining
//! fenced target is absent, so no later request can be accepted on its strength: there is
//! no window left to close. What a client can see meanwhile is documented in the README:
//! a push that needed a fenced blob may fail with the registry's own error (and succeeds on
//! retry), and a pull of an image that a push re-used during the window may fail until the
//! verify step restores it (at most the settle period plus the restart).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use stowage_graph::Graph;
use stowage_layout::{self as layout, Part, PathInfo};
use stowage_model::digest::Digest;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_storage::StorageWrite;
use stowage_storage::registry_config::BlobCache;

use super::runner::{Kind, Runner};
use super::{ApplyError, Restored};
use crate::journal::entry;

/// How apply removes targets.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The registry keeps serving: fence, settle, empty its cache, verify, restore, delete.
    #[default]
    Online,
    /// The registry is stopped or read-only: re-check and delete (or quarantine) directly.
    Offline,
}

/// What the registry's blob descriptor cache needs once blobs were fenced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStep {
    /// No cache: the registry reads the storage for every check.
    Nothing,
    /// Run `command` (`sh -c`) and wait for it to succeed (it restarts the registry, which
    /// empties an `inmemory` cache), then, with `url`, wait until the registry answers.
    Restart {
        command: String,
        url: Option<String>,
    },
    /// Delete `blobs::<digest>` of every fenced digest in the registry's redis, as its own
    /// blob delete does (`HDEL` of the same hash); keys survive restarts.
    Redis {
        addr: String,
        password: Option<String>,
        db: i64,
    },
}

/// Decide what the cache needs, or refuse an online apply that cannot be made safe.
///
/// `cache` is the registry's setting (`storage.cache.blobdescriptor` from its config, or
/// `--registry-cache`); `None` when unknown, which is treated as Debian's default,
/// `inmemory`: a guess that errs towards requiring the restart.
pub fn cache_step(
    cache: Option<&BlobCache>,
    restart: Option<&str>,
    url: Option<&str>,
) -> Result<CacheStep, String> {
    let restart_step = || {
        restart.map(|c| CacheStep::Restart {
            command: c.to_string(),
            url: url.map(str::to_string),
        })
    };
    match cache {
        Some(BlobCache::None) => Ok(restart_step().unwrap_or(CacheStep::Nothing)),
        Some(BlobCache::Redis { addr, password, db }) if !addr.is_empty() => Ok(CacheStep::Redis {
            addr: addr.clone(),
            password: password.clone(),
            db: *db,
        }),
        Some(BlobCache::Redis { .. }) => Err(
            "the registry's blob descriptor cache is redis, but its config names no redis.addr: stowage cannot invalidate the deleted blobs' keys. Fix: give the registry config with its redis section (--registry-config), or stop the registry and apply with --offline".into(),
        ),
        known => restart_step().ok_or_else(|| {
            let what = match known {
                Some(BlobCache::InMemory) => {
                    "the registry's blob descriptor cache is inmemory (storage.cache.blobdescriptor)".to_string()
                }
                Some(BlobCache::Other(v)) => format!(
                    "the registry's blob descriptor cache is {v:?}, which stowage does not know"
                ),
                _ => "the registry's blob descriptor cache is unknown (no --registry-config or --registry-cache); assuming inmemory, Debian's default".to_string(),
            };
            format!(
                "{what}: after a blob is removed under a running registry, that cache still answers that it exists, and pushes that need it are accepted with the data gone, until the registry restarts. Fix: pass --registry-restart 'systemctl restart docker-registry' (apply runs it after fencing and waits for it), or run the registry without a cache (--registry-cache none if it has none), or stop the registry and apply with --offline"
            )
        }),
    }
}

/// What `apply` will do with a plan on a registry with this cache setting (printed under a
/// saved plan, so the reviewer knows the fence, the settle wait and what the cache needs).
pub fn mode_hint(cache: Option<&BlobCache>) -> String {
    let step = match cache {
        Some(BlobCache::None) => "no blob descriptor cache to empty",
        Some(BlobCache::Redis { .. }) => "deletes the fenced blobs' keys from the registry's redis",
        Some(BlobCache::InMemory) => {
            "restarts the registry to empty its inmemory cache (pass --registry-restart CMD)"
        }
        _ => {
            "needs to know the registry's cache: --registry-config, or --registry-restart CMD (inmemory), or --registry-cache none"
        }
    };
    format!(
        "apply is online by default: it fences every target, waits 60s (--settle), {step}, and verifies before deleting; --offline when the registry is stopped or read-only"
    )
}

/// Wait `settle`, telling progress every 10 s.
pub(crate) fn settle(settle: Duration, progress: &dyn Fn(&str)) {
    let started = std::time::Instant::now();
    progress(&format!(
        "settling: waiting {}s for requests that passed their checks before the fence",
        settle.as_secs()
    ));
    while started.elapsed() < settle {
        let left = settle.saturating_sub(started.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(10)));
        let left = settle.saturating_sub(started.elapsed());
        if !left.is_zero() {
            progress(&format!("settling: {}s left", left.as_secs()));
        }
    }
}

/// Run the cache step. `digests` are the fenced blob and manifest digests (redis keys).
pub(crate) fn run_cache_step(
    step: &CacheStep,
    digests: &[Digest],
    repositories: &[String],
    progress: &dyn Fn(&str),
) -> Result<String, String> {
    match step {
        CacheStep::Nothing => Ok("the registry has no blob descriptor cache".into()),
        CacheStep::Restart { command, url } => {
            progress(&format!(
                "restarting the registry to empty its blob descriptor cache: {command}"
            ));
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::inherit())
                .status()
                .map_err(|e| format!("--registry-restart {command:?}: {e}"))?;
            if !status.success() {
                return Err(format!("--registry-restart {command:?} failed: {status}"));
            }
            if let Some(u) = url {
                super::registry_http::wait_until_up(u, Duration::from_secs(120))?;
            }
            Ok(format!("restarted the registry ({command})"))
        }
        CacheStep::Redis { addr, password, db } => {
            let n =
                super::redis::invalidate(addr, password.as_deref(), *db, digests, repositories)?;
            Ok(format!(
                "deleted {n} blob descriptor key(s) of {} fenced digest(s) from redis at {addr}",
                digests.len()
            ))
        }
    }
}

/// What verification decided for one fenced path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Put it back: something written since the plan needs it.
    Restore(String),
    /// The registry wrote the same path again meanwhile: the fenced copy is redundant.
    PresentAgain,
    /// Nobody needs it: delete the fenced copy (or keep it in the quarantine).
    Delete,
}

/// Decide, for every fenced path, from a scan made after the settle and the cache step.
/// `incomplete`: the scan could not read everything, so nothing can be shown unneeded and
/// every fenced path goes back (except the tags and uploads the plan removes on purpose).
/// What `decide` needs to know beyond the scan: the plan's time and sizes, and whether a
/// fenced link was written since the plan (the registry rewrote it between the re-check and
/// the fence: a tag or a revision pushed again, a layer linked again).
pub(crate) struct Context<'a> {
    pub plan_created: Timestamp,
    pub planned_size: &'a dyn Fn(&str) -> u64,
    pub fresh: &'a dyn Fn(&str) -> bool,
    /// Tag directories planned because their signature's subject was gone, with the subject:
    /// such a tag goes back if its subject is there again (or the scan is incomplete).
    pub orphans: &'a BTreeMap<String, Digest>,
}

/// Whether a verify scan could not read everything: then nothing can be shown unneeded.
pub(crate) fn incomplete(inv: &Inventory) -> bool {
    !inv.unlisted.is_empty() || inv.repositories.iter().any(|r| !r.complete)
}

pub(crate) fn decide(
    inv: &Inventory,
    g: &Graph<'_>,
    fenced: &BTreeSet<String>,
    cx: &Context<'_>,
) -> Vec<(String, Decision)> {
    let plan_created = cx.plan_created;
    let fresh_links: BTreeSet<Digest> = fenced
        .iter()
        .filter_map(|p| match layout::classify(p) {
            PathInfo::LayerLink { digest, .. } if (cx.fresh)(p) => Some(digest),
            _ => None,
        })
        .collect();
    let incomplete = incomplete(inv);
    let marks = needed_marks(g);
    let subjects = if cx.orphans.is_empty() {
        None
    } else {
        stowage_graph::Subjects::new(g)
    };
    let mut out = Vec::with_capacity(fenced.len());
    let mut restored_blobs: BTreeSet<Digest> = BTreeSet::new();
    let mut restored_revisions: BTreeSet<(String, Digest)> = BTreeSet::new();
    let blob_present = |d: &Digest| inv.id_of(d).and_then(|id| inv.blob(id)).is_some();
    // Blobs and revisions first: links and history entries follow what they point at.
    for path in fenced {
        let d = match layout::classify(path) {
            PathInfo::Blob {
                digest,
                part: Part::Dir,
            } => {
                let present = inv.id_of(&digest).and_then(|id| inv.blob(id));
                let dec = if let Some(b) = present {
                    if b.size == (cx.planned_size)(path) {
                        Decision::PresentAgain
                    } else {
                        // A write cut short (by the restart, say): never trade the whole
                        // fenced copy for it. The restore is refused (the path exists), so
                        // the fenced copy stays in the batch and the skip is reported.
                        Decision::Restore(format!(
                            "the registry wrote it again with {} bytes, not the {} planned",
                            { b.size },
                            (cx.planned_size)(path)
                        ))
                    }
                } else if incomplete {
                    Decision::Restore("the verify scan could not read every repository".into())
                } else if let Some(why) = blob_needed(inv, &marks, &digest, plan_created) {
                    Decision::Restore(why)
                } else if fresh_links.contains(&digest) {
                    Decision::Restore(
                        "a fenced _layers link of it was written again since the plan".into(),
                    )
                } else {
                    Decision::Delete
                };
                (dec, Some((None, digest)))
            }
            PathInfo::RevisionLink {
                repo,
                digest,
                part: Part::Dir,
            } => {
                let again = inv
                    .repository(&repo)
                    .zip(inv.id_of(&digest))
                    .is_some_and(|(r, id)| r.revision(id).is_some());
                let dec = if again {
                    Decision::PresentAgain
                } else if incomplete {
                    Decision::Restore("the verify scan could not read every repository".into())
                } else if (cx.fresh)(path) {
                    Decision::Restore(
                        "pushed again since the plan, before its fence (its link is newer)".into(),
                    )
                } else if inv.id_of(&digest).is_some_and(|id| marks[id as usize]) {
                    Decision::Restore(
                        "a tag or manifest written since the plan references it".into(),
                    )
                } else {
                    Decision::Delete
                };
                (dec, Some((Some(repo), digest)))
            }
            _ => continue,
        };
        if let (Decision::Restore(_), Some((repo, digest))) = (&d.0, d.1) {
            match repo {
                None => restored_blobs.insert(digest),
                Some(r) => restored_revisions.insert((r, digest)),
            };
        }
        out.push((path.clone(), d.0));
    }
    for path in fenced {
        let dec = match layout::classify(path) {
            // Whole repository sections (surgery): decided repository by repository in
            // [`super::sections`].
            PathInfo::Blob { .. }
            | PathInfo::RevisionLink { .. }
            | PathInfo::ManifestsDir { .. }
            | PathInfo::LayersDir { .. }
            | PathInfo::UploadsDir { .. } => continue,
            PathInfo::LayerLink { repo, digest, .. } => {
                let again = inv
                    .repository(&repo)
                    .zip(inv.id_of(&digest))
                    .is_some_and(|(r, id)| r.layer(id).is_some());
                if again {
                    Decision::PresentAgain
                } else if (cx.fresh)(path) {
                    Decision::Restore("linked again since the plan, before its fence".into())
                } else if blob_present(&digest) || restored_blobs.contains(&digest) {
                    Decision::Restore("its blob exists (again)".into())
                } else {
                    Decision::Delete
                }
            }
            PathInfo::TagIndexEntry { repo, digest, .. } => {
                let has_revision = inv
                    .repository(&repo)
                    .zip(inv.id_of(&digest))
                    .is_some_and(|(r, id)| r.revision(id).is_some());
                if has_revision || restored_revisions.contains(&(repo, digest)) {
                    Decision::Restore("its manifest is kept".into())
                } else {
                    Decision::Delete
                }
            }
            // Tags and uploads are removed on purpose: a push of the same tag writes a new
            // directory, an upload is resumed by nobody after a week.
            _ => {
                let exists_again = match layout::classify(path) {
                    PathInfo::Tag { repo, tag } => {
                        inv.repository(&repo).is_some_and(|r| r.tag(&tag).is_some())
                    }
                    _ => false,
                };
                let is_tag = matches!(layout::classify(path), PathInfo::Tag { .. });
                let subject = cx.orphans.get(path.trim_end_matches('/'));
                if exists_again {
                    Decision::PresentAgain
                } else if is_tag && (cx.fresh)(path) {
                    Decision::Restore("pushed again since the plan, before its fence".into())
                } else if let Some(subject) = subject {
                    match subjects.as_ref().map(|s| s.status(subject)) {
                        None => Decision::Restore(
                            "the verify scan could not read every repository (the signature's subject may be there)".into(),
                        ),
                        Some(stowage_graph::SubjectStatus::Gone) => Decision::Delete,
                        Some(_) => Decision::Restore(
                            "the signature's subject is linked again since the plan".into(),
                        ),
                    }
                } else {
                    Decision::Delete
                }
            }
        };
        out.push((path.clone(), dec));
    }
    out
}

/// Marks of everything something in the storage still needs: every revision (manifests
/// are roots as the registry's GC takes them), every tag's current target, and revision
/// links whose content names another digest.
fn needed_marks(g: &Graph<'_>) -> Vec<bool> {
    let inv = g.inv;
    let mut roots = Vec::new();
    for r in &inv.repositories {
        roots.extend(r.revisions.iter().map(|l| l.target()));
        roots.extend(
            r.tags
                .iter()
                .filter_map(|t| t.current.and_then(|c| c.target)),
        );
        for o in &r.odd_links {
            if o.kind == stowage_model::inventory::LinkKind::Revision {
                roots.extend(o.content.as_ref().and_then(|d| inv.id_of(d)));
            }
        }
    }
    g.mark(roots, true)
}

/// Why a fenced blob is needed, if it is.
fn blob_needed(
    inv: &Inventory,
    marks: &[bool],
    d: &Digest,
    plan_created: Timestamp,
) -> Option<String> {
    let id = inv.id_of(d)?;
    if marks[id as usize] {
        return Some("a manifest or tag written since the plan references it".into());
    }
    inv.repositories
        .iter()
        .find(|r| r.layer(id).is_some_and(|l| l.maybe_after(plan_created)))
        .map(|r| {
            format!(
                "linked into {} since the plan (an upload or mount in progress)",
                r.name
            )
        })
}

/// Carry out the decisions: restore (blobs, then revisions, then links), then delete what
/// nobody needs unless the batch is kept.
pub(crate) fn carry_out<S: StorageWrite>(
    r: &Runner<'_, S>,
    decisions: &[(String, Decision)],
    keep: bool,
    sizes: &dyn Fn(&str) -> u64,
) -> Result<(), ApplyError> {
    let Some(batch) = r.batch.clone() else {
        return Ok(());
    };
    for (path, d) in decisions {
        match d {
            Decision::Restore(why) => {
                super::runner::test_delay_hook();
                r.journal(entry("intent", "restore", path))?;
                let back = if super::sections::section_of(path).is_some() {
                    // A section the registry may have made again: merged back.
                    match super::sections::restore(r, &batch, path) {
                        Ok(kept) => {
                            for k in kept {
                                r.skip(
                                    &k,
                                    "not restored, kept in the batch: the registry wrote it again",
                                )?;
                            }
                            Ok(true)
                        }
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    r.storage.move_back(&batch, path).map_err(|e| e.to_string())
                };
                match back {
                    Ok(_) => {
                        let mut e = entry("done", "restore", path);
                        e.reason = why.clone();
                        r.journal(e)?;
                        let mut rep = r.report();
                        rep.bytes_freed = rep.bytes_freed.saturating_sub(sizes(path));
                        if let Some(k) = kind_of(path) {
                            let c = super::runner::count(&mut rep, k);
                            *c = c.saturating_sub(1);
                        }
                        rep.restored.push(Restored {
                            path: path.clone(),
                            reason: why.clone(),
                        });
                        drop(rep);
                        super::runner::test_kill_hook();
                    }
                    // Written again by the registry between the scan and now: its copy
                    // is the same content (content-addressed) and wins; ours stays in the
                    // batch, never deleted on a guess.
                    Err(e) => r.skip(path, format!("not restored, kept in the batch: {e}"))?,
                }
            }
            Decision::PresentAgain | Decision::Delete => {
                if keep {
                    // Verified and kept in the batch on purpose: no longer waiting for a
                    // verify (a re-run of the plan must not put it back).
                    let mut e = entry("done", "keep", path);
                    e.reason = "verified; kept in the batch".into();
                    r.journal(e)?;
                    continue;
                }
                super::runner::test_delay_hook();
                r.journal(entry("intent", "purge", path))?;
                match r.storage.delete_quarantined(&batch, path) {
                    Ok(_) => {
                        r.journal(entry("done", "purge", path))?;
                        super::runner::test_kill_hook();
                    }
                    Err(e) => r.skip(path, format!("fenced copy not deleted: {e}"))?,
                }
            }
        }
    }
    Ok(())
}

fn kind_of(path: &str) -> Option<Kind> {
    Some(match layout::classify(path) {
        PathInfo::Blob { .. } => Kind::Blob,
        PathInfo::RevisionLink { .. } => Kind::Manifest,
        PathInfo::LayerLink { .. } => Kind::LayerLink,
        PathInfo::TagIndexEntry { .. } => Kind::TagIndex,
        PathInfo::Tag { .. } => Kind::Tag,
        PathInfo::Upload { .. } => Kind::Upload,
        PathInfo::ManifestsDir { .. }
        | PathInfo::LayersDir { .. }
        | PathInfo::UploadsDir { .. } => Kind::Section,
        _ => return None,
    })
}

/// Repositories whose `_manifests` or `_layers` are fenced (surgery): their repository-scoped
/// cache entries must go.
pub(crate) fn fenced_repositories(fenced: &BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = fenced
        .iter()
        .filter_map(|p| match layout::classify(p) {
            PathInfo::ManifestsDir { repo } | PathInfo::LayersDir { repo } => Some(repo),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The digests whose cache entries must go: fenced blobs and fenced manifests.
pub(crate) fn fenced_digests(fenced: &BTreeSet<String>) -> Vec<Digest> {
    let mut v: Vec<Digest> = fenced
        .iter()
        .filter_map(|p| match layout::classify(p) {
            PathInfo::Blob { digest, .. } | PathInfo::RevisionLink { digest, .. } => Some(digest),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inmemory_or_unknown_cache_needs_a_restart() {
        for c in [Some(&BlobCache::InMemory), None] {
            let e = cache_step(c, None, None).unwrap_err();
            assert!(e.contains("--registry-restart"), "{e}");
            assert!(e.contains("--offline"), "{e}");
        }
        assert_eq!(
            cache_step(
                Some(&BlobCache::InMemory),
                Some("systemctl restart r"),
                None
            )
            .unwrap(),
            CacheStep::Restart {
                command: "systemctl restart r".into(),
                url: None
            }
        );
        assert_eq!(
            cache_step(Some(&BlobCache::None), None, None).unwrap(),
            CacheStep::Nothing
        );
        let redis = BlobCache::Redis {
            addr: "127.0.0.1:6379".into(),
            password: None,
            db: 0,
        };
        assert!(matches!(
            cache_step(Some(&redis), None, None).unwrap(),
            CacheStep::Redis { .. }
        ));
    }
}
