//! The repositories besides the base images: their names (`team/app/svc` shapes, some nested
//! in another's namespace), lifetimes and weights, and the profile of each application
//! repository (architectures, manifest format, layer slots, tagging habits, cleanup job,
//! promotion); then the repositories that never got a manifest.

use std::collections::HashSet;

use super::catalog::{APP, APPS, ASSETS, DEPS, FAMILIES, SMALL, SVCS, TEAMS, TINY};
use super::{Builder, DAY, Fmt, LayerKind, Params, RepoKind, RepoSpec, Style};
use crate::rng::Rng;

/// One layer of an application image, above its base image's layers.
#[derive(Clone, Debug)]
pub(super) struct SlotDef {
    pub(super) kind: LayerKind,
    pub(super) size: u64,
    /// Chance a build changes it.
    pub(super) change: f64,
    /// The same blob on every architecture.
    pub(super) shared: bool,
    /// Rebuilt whenever the base image moves to a new release.
    pub(super) on_base: bool,
}

/// How an application repository is built and tagged.
#[derive(Clone, Debug)]
pub(super) struct Profile {
    pub(super) family: usize,
    pub(super) archs: Vec<u8>,
    pub(super) base_lag: i64,
    pub(super) fmt0: (Fmt, Style),
    pub(super) fmt1: (Fmt, Style),
    pub(super) switch_at: i64,
    pub(super) slots: Vec<SlotDef>,
    pub(super) latest: bool,
    pub(super) branch_tags: bool,
    pub(super) main_name: &'static str,
    pub(super) develop: bool,
    pub(super) features: bool,
    pub(super) pr_tags: bool,
    pub(super) build_tags: bool,
    pub(super) sha_tags: bool,
    pub(super) releases: bool,
    pub(super) release_every: u64,
    pub(super) v_prefix: bool,
    pub(super) aliases: bool,
    pub(super) stable: bool,
    pub(super) digest_only: f64,
    pub(super) cleanup: Option<(i64, i64)>,
    pub(super) promote: Option<u32>,
    pub(super) min_builds: u64,
}

fn component(rng: &mut Rng, words: &[&str], numbered: f64) -> String {
    let w = *rng.pick(words);
    let r = rng.unit();
    if w.starts_with("team") || w == "squad" || r < numbered {
        format!("{w}{}", rng.range(1, 40))
    } else if r < numbered + 0.15 {
        format!("{w}-{}", rng.pick(APPS))
    } else if r < numbered + 0.18 {
        format!("{w}_{}", rng.pick(SVCS))
    } else if r < numbered + 0.20 {
        format!("{w}.v{}", rng.range(2, 4))
    } else {
        w.to_string()
    }
}

fn repo_name(rng: &mut Rng) -> String {
    let depth = match rng.below(100) {
        0..15 => 1,
        15..60 => 2,
        _ => 3,
    };
    match depth {
        1 => component(rng, APPS, 0.3),
        2 => format!(
            "{}/{}",
            component(rng, TEAMS, 0.3),
            component(rng, APPS, 0.4)
        ),
        _ => format!(
            "{}/{}/{}",
            component(rng, TEAMS, 0.3),
            component(rng, APPS, 0.4),
            component(rng, SVCS, 0.5)
        ),
    }
}

/// A repository name not taken yet (drawing again until one is), now taken.
pub(super) fn fresh_name(rng: &mut Rng, names: &mut HashSet<String>) -> String {
    loop {
        let n = repo_name(rng);
        if names.insert(n.clone()) {
            return n;
        }
    }
}

pub(super) fn pick_style(rng: &mut Rng, oci: bool) -> (Fmt, Style) {
    if oci {
        (
            Fmt::Oci,
            if rng.chance(0.7) {
                Style::Buildkit
            } else {
                Style::Crane
            },
        )
    } else {
        (
            Fmt::Docker,
            if rng.chance(0.6) {
                Style::DockerCli
            } else {
                Style::Buildkit
            },
        )
    }
}

/// Add application repositories (and the promotion targets of some) until there are `limit`
/// repositories; returns each application repository with its profile. The first four are
/// forced to carry the features every tree must have (multi-arch and single-arch, Docker and
/// OCI, releases, feature branches, a cleanup job, a promotion target).
pub(super) fn app_repos(
    b: &mut Builder<'_>,
    rrng: &mut Rng,
    names: &mut HashSet<String>,
    limit: usize,
    fam_weights: &[u64],
) -> Vec<(u32, Profile)> {
    let p = b.p;
    let span = p.now - p.start;
    let mut profiles: Vec<(u32, Profile)> = Vec::new();
    let mut app_i = 0usize;
    while b.plan.repos.len() < limit {
        let forced = app_i < 4;
        // Nested repositories: sometimes a repository is also the namespace of another one.
        let nested_parent = (!forced && rrng.chance(0.08))
            .then(|| {
                b.plan
                    .repos
                    .iter()
                    .filter(|r| r.kind == RepoKind::App && r.name.matches('/').count() == 2)
                    .map(|r| r.name.rsplit_once('/').map(|x| x.0.to_string()))
                    .find(|n| n.as_ref().is_some_and(|n| !names.contains(n)))
                    .flatten()
            })
            .flatten();
        let name = match nested_parent {
            Some(n) => {
                names.insert(n.clone());
                n
            }
            None => fresh_name(rrng, names),
        };
        let created = if rrng.chance(0.35) {
            p.start + rrng.range(DAY, span / 20 + DAY + 1)
        } else {
            p.start + rrng.range(DAY, span - 7 * DAY)
        };
        let mut end = if !forced && rrng.chance(0.2) {
            created + rrng.range((p.now - created) / 5, p.now - created)
        } else {
            p.now - rrng.range(0, 2 * DAY)
        };
        end = end.max(created + DAY).min(p.now);
        let weight_bucket = [1u64, 3, 10, 30, 100][rrng.weighted(&[45, 25, 18, 9, 3])];
        let weight = weight_bucket * 100 + rrng.range_u(0, weight_bucket * 100);
        let family = rrng.weighted(fam_weights);
        let mut prof = profile(p, rrng, app_i, family, created, end);
        let want_promo = match app_i {
            2 => true,
            _ => prof.releases && !forced && rrng.chance(0.12),
        };
        force_features(app_i, &mut prof);
        let repo = b.plan.repos.len() as u32;
        b.plan.repos.push(RepoSpec {
            name: name.clone(),
            kind: RepoKind::App,
            created,
            end,
            deleted_at: None,
            weight,
        });
        if want_promo && b.plan.repos.len() < limit {
            let promo_name = match name.split_once('/') {
                Some((_, tail)) => format!("prod/{tail}"),
                None => format!("prod/{name}"),
            };
            if names.insert(promo_name.clone()) {
                prof.promote = Some(b.plan.repos.len() as u32);
                b.plan.repos.push(RepoSpec {
                    name: promo_name,
                    kind: RepoKind::Promo,
                    created,
                    end: p.now,
                    deleted_at: None,
                    weight: 0,
                });
            }
        }
        profiles.push((repo, prof));
        app_i += 1;
    }
    profiles
}

/// Draw the profile of the `app_i`-th application repository, on base image `family`,
/// pushed to from `created` to `end`.
fn profile(
    p: &Params,
    rrng: &mut Rng,
    app_i: usize,
    family: usize,
    created: i64,
    end: i64,
) -> Profile {
    let forced = app_i < 4;
    let def = &FAMILIES[family];
    let multi = match app_i {
        0 | 1 => true,
        2 | 3 => false,
        _ => rrng.chance(p.multiarch),
    };
    let archs = if multi {
        if def.archs.len() >= 3 && rrng.chance(0.3) {
            def.archs.to_vec()
        } else {
            def.archs[..2].to_vec()
        }
    } else {
        vec![0]
    };
    let oci = match app_i {
        0 | 2 => false,
        1 | 3 => true,
        _ => rrng.chance(p.oci),
    };
    let mut fmt0 = pick_style(rrng, oci);
    match app_i {
        0 => fmt0 = (Fmt::Docker, Style::DockerCli),
        3 => fmt0 = (Fmt::Oci, Style::Crane),
        _ => {}
    }
    let (fmt1, switch_at) = if !oci && !forced && rrng.chance(0.3) {
        ((Fmt::Oci, Style::Buildkit), rrng.range(created, end))
    } else {
        (fmt0, i64::MAX)
    };
    let slots = slots(rrng, def.interpreted);
    let branch_tags = rrng.chance(0.55);
    let features = rrng.chance(0.45);
    let build_tags = rrng.chance(0.45);
    let releases = rrng.chance(0.45);
    let gitops = rrng.chance(0.08);
    Profile {
        family,
        archs,
        base_lag: if rrng.chance(0.5) {
            rrng.range(0, 3 * DAY)
        } else {
            rrng.range(10 * DAY, 120 * DAY)
        },
        fmt0,
        fmt1,
        switch_at,
        slots,
        latest: rrng.chance(0.85),
        branch_tags,
        main_name: if rrng.chance(0.3) { "master" } else { "main" },
        develop: branch_tags && rrng.chance(0.3),
        features,
        pr_tags: features && rrng.chance(0.4),
        build_tags,
        sha_tags: rrng.chance(0.3),
        releases,
        release_every: rrng.range_u(4, 20),
        v_prefix: rrng.chance(0.7),
        aliases: rrng.chance(0.35),
        stable: rrng.chance(0.25),
        digest_only: if gitops { 0.5 } else { 0.02 },
        cleanup: rrng.chance(0.3).then(|| {
            (
                rrng.range(14 * DAY, 90 * DAY),
                rrng.range(14 * DAY, 45 * DAY),
            )
        }),
        promote: None,
        min_builds: 1,
    }
}

/// The layer slots of an application image: dependencies, sometimes a second dependency
/// layer, a config layer and assets, then the application itself (one blob for every
/// architecture when the runtime is `interpreted`).
fn slots(rrng: &mut Rng, interpreted: bool) -> Vec<SlotDef> {
    let mut slots = vec![SlotDef {
        kind: LayerKind::Deps,
        size: rrng.size(DEPS),
        change: 0.08,
        shared: false,
        on_base: true,
    }];
    if rrng.chance(0.4) {
        slots.push(SlotDef {
            kind: LayerKind::Deps2,
            size: rrng.size(SMALL),
            change: 0.15,
            shared: false,
            on_base: false,
        });
    }
    if rrng.chance(0.3) {
        slots.push(SlotDef {
            kind: LayerKind::Config,
            size: rrng.size(TINY),
            change: 0.05,
            shared: true,
            on_base: false,
        });
    }
    if rrng.chance(0.35) {
        slots.push(SlotDef {
            kind: LayerKind::Assets,
            size: rrng.size(ASSETS),
            change: 0.5,
            shared: true,
            on_base: false,
        });
    }
    slots.push(SlotDef {
        kind: LayerKind::App,
        size: rrng.size(APP),
        change: 1.0,
        shared: interpreted,
        on_base: false,
    });
    slots
}

/// The first four application repositories always carry these features, whatever was drawn,
/// so that even the smallest tree has every case.
fn force_features(app_i: usize, prof: &mut Profile) {
    match app_i {
        0 => {
            prof.releases = true;
            prof.release_every = 4;
            prof.latest = true;
            prof.build_tags = true;
            prof.cleanup = Some((30 * DAY, 20 * DAY));
            prof.min_builds = 8;
        }
        1 => {
            prof.features = true;
            prof.branch_tags = true;
            prof.build_tags = false;
            prof.sha_tags = false;
            prof.latest = true;
            prof.min_builds = 6;
        }
        2 => {
            prof.build_tags = false;
            prof.sha_tags = false;
            prof.releases = true;
            prof.release_every = 3;
            prof.aliases = true;
            prof.stable = true;
            prof.digest_only = 0.15;
            prof.min_builds = 8;
        }
        3 => {
            prof.cleanup = Some((21 * DAY, 14 * DAY));
            prof.build_tags = true;
            prof.features = true;
            prof.pr_tags = true;
            prof.min_builds = 8;
        }
        _ => {}
    }
}

/// The `specials` repositories that never got a manifest: one with only an abandoned
/// upload, one whose only push failed before its manifest PUT.
pub(super) fn special_repos(
    b: &mut Builder<'_>,
    rrng: &mut Rng,
    names: &mut HashSet<String>,
    specials: usize,
) {
    let p = b.p;
    let span = p.now - p.start;
    for kind in [RepoKind::UploadsOnly, RepoKind::FailedOnly]
        .into_iter()
        .take(specials)
    {
        let name = fresh_name(rrng, names);
        let created = p.start + rrng.range(span / 10, span - DAY);
        b.plan.repos.push(RepoSpec {
            name,
            kind,
            created,
            end: created,
            deleted_at: None,
            weight: 0,
        });
    }
}
