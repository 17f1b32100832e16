//! What happens to the registry besides builds: repositories removed by hand, the contents
//! of the repositories that never got a manifest, abandoned uploads, and the registry's
//! garbage collections.

use super::catalog::APP;
use super::families::{FamVer, version_at};
use super::repos::{Profile, pick_style};
use super::{Builder, DAY, Ev, HOUR, LayerKind, MINUTE, RepoKind};
use crate::rng::Rng;

/// Repositories removed by hand (rm -rf), late in the history: their blobs lose every link.
/// Never one of the first four application repositories (they carry the features every tree
/// must have) nor one that promotes to another.
pub(super) fn hand_deletions(b: &mut Builder<'_>, rrng: &mut Rng, profiles: &[(u32, Profile)]) {
    let p = b.p;
    let span = p.now - p.start;
    let n_app = profiles.len();
    let n_deleted = if n_app >= 5 { 1.max(n_app / 50) } else { 0 };
    let mut deleted_count = 0;
    let mut tries = 0;
    while deleted_count < n_deleted && tries < 20 * n_deleted {
        tries += 1;
        let k = 4 + rrng.below((n_app - 4) as u64) as usize;
        let (r, prof) = &profiles[k];
        let spec = &mut b.plan.repos[*r as usize];
        if spec.deleted_at.is_some() || prof.promote.is_some() {
            continue;
        }
        let lo = (spec.created + 14 * DAY).max(p.now - span * 35 / 100);
        if lo >= p.now - DAY {
            continue;
        }
        let at = rrng.range(lo, p.now - DAY);
        spec.deleted_at = Some(at);
        spec.end = spec.end.min(at - DAY);
        deleted_count += 1;
    }
}

/// For each repository in order: the abandoned upload or failed push of a repository that
/// never got a manifest, then its removal by hand if it is removed.
pub(super) fn special_repo_events(
    b: &mut Builder<'_>,
    urng: &mut Rng,
    fams: &[Vec<FamVer>],
    fam_weights: &[u64],
) {
    for r in 0..b.plan.repos.len() as u32 {
        let spec = b.plan.repos[r as usize].clone();
        match spec.kind {
            RepoKind::UploadsOnly => b.upload(urng, r, spec.created),
            RepoKind::FailedOnly => {
                let family = urng.weighted(fam_weights);
                let v = version_at(&fams[family], spec.created);
                let mut layers = fams[family][v].layers[0].clone();
                let real = urng.size(APP);
                layers.push(b.layer(urng, LayerKind::App, 0, real, spec.created - HOUR));
                let oci = urng.chance(0.5);
                let style = pick_style(urng, oci);
                let img = b.image(
                    urng,
                    style,
                    0,
                    spec.created - HOUR,
                    layers,
                    r,
                    family,
                    "main".into(),
                    false,
                );
                b.event(
                    spec.created,
                    Ev::FailedPush {
                        repo: r,
                        image: img,
                    },
                );
                b.upload(urng, r, spec.created + 30);
            }
            _ => {}
        }
        if let Some(at) = spec.deleted_at {
            b.event(at, Ev::DeleteRepo { repo: r });
        }
    }
}

/// `p.uploads` abandoned uploads in application repositories, by weight: most during the
/// history, the others in the last week, some of them in the last day.
pub(super) fn uploads(b: &mut Builder<'_>, urng: &mut Rng, profiles: &[(u32, Profile)]) {
    let p = b.p;
    let app_repos: Vec<u32> = profiles.iter().map(|(r, _)| *r).collect();
    let app_weights: Vec<u64> = app_repos
        .iter()
        .map(|r| b.plan.repos[*r as usize].weight)
        .collect();
    for _ in 0..p.uploads {
        let r = app_repos[urng.weighted(&app_weights)];
        let spec = b.plan.repos[r as usize].clone();
        let last = spec.deleted_at.unwrap_or(p.now) - HOUR;
        let t = if urng.chance(0.55) || spec.deleted_at.is_some() {
            urng.range(
                spec.created,
                last.min(p.now - 8 * DAY).max(spec.created + 1),
            )
        } else if urng.chance(0.3) {
            p.now - urng.range(MINUTE, DAY)
        } else {
            p.now - urng.range(DAY, 7 * DAY)
        };
        b.upload(urng, r, t.min(last).max(spec.created));
    }
}

/// `p.gc_runs` garbage collections spread over the history, the last one 12% of the history
/// before now, so what was deleted after it is still on disk.
pub(super) fn gc_runs(b: &mut Builder<'_>) {
    let p = b.p;
    let span = p.now - p.start;
    let k = p.gc_runs as i64;
    for i in 0..k {
        let t = p.now - span * 12 / 100 - (k - 1 - i) * (span * 76 / 100 / k.max(1));
        if t > p.start {
            b.plan.gc_times.push(t);
            b.event(t, Ev::Gc);
        }
    }
}
