//! The history of each application repository: its builds (layers changed, images, an index
//! for multi-arch), the tags each build gets (branches, features, PRs, build numbers, SHAs,
//! releases), promotions, rollbacks and failed pushes, and its cleanup job's runs.

use super::catalog::WORDS;
use super::families::{FamVer, version_at};
use super::repos::Profile;
use super::{BlobId, Builder, DAY, Ev, Fmt, HOUR, LayerKind, MINUTE, RepoSpec, Style, Tag, Target};
use crate::rng::Rng;

/// Plan every application repository's builds, its share of `p.builds` by weight (at least
/// its profile's minimum), and the runs of its cleanup job.
pub(super) fn all_builds(b: &mut Builder<'_>, fams: &[Vec<FamVer>], profiles: &[(u32, Profile)]) {
    let p = b.p;
    let wsum: u64 = profiles
        .iter()
        .map(|(r, _)| b.plan.repos[*r as usize].weight)
        .sum::<u64>()
        .max(1);
    for (r, prof) in profiles {
        let spec = b.plan.repos[*r as usize].clone();
        let share = (p.builds as u128 * spec.weight as u128 / wsum as u128) as u64;
        let n = share.max(prof.min_builds).max(1);
        build_repo(b, fams, *r, &spec, prof, n);
        if let Some((keep, every)) = prof.cleanup {
            let mut t = spec.created + keep.max(30 * DAY);
            let stop = spec.deleted_at.unwrap_or(p.now);
            let mut crng = Rng::derive(p.seed, &[4, *r as u64]);
            while t < stop {
                b.event(t, Ev::Cleanup { repo: *r, keep });
                t += every + crng.range(0, DAY);
            }
        }
    }
}

/// The repository being built: its number, profile and base image family's releases.
struct Repo<'a> {
    r: u32,
    prof: &'a Profile,
    fam: &'a [FamVer],
}

/// What a repository's builds carry from one to the next.
struct State {
    /// The current blob of each layer slot, per architecture index.
    cur: Vec<Vec<Option<BlobId>>>,
    prev_v: Option<usize>,
    build_no: u64,
    semver: (u64, u64, u64),
    /// The feature branch being built and how many more builds it gets.
    feature: Option<(String, u64)>,
    pr: u64,
    releases: Vec<Target>,
    any_tag: bool,
}

/// One build: when, on which release of the base image, in which format, for which branch.
struct Build {
    t: i64,
    v: usize,
    style: (Fmt, Style),
    label: String,
}

/// Plan the builds of one application repository.
fn build_repo(
    b: &mut Builder<'_>,
    fams: &[Vec<FamVer>],
    r: u32,
    spec: &RepoSpec,
    prof: &Profile,
    n: u64,
) {
    let p = b.p;
    let mut rng = Rng::derive(p.seed, &[3, r as u64]);
    let lo = spec.created + HOUR;
    let hi = spec.end.max(lo + 1);
    let mut times: Vec<i64> = (0..n).map(|_| rng.range(lo, hi)).collect();
    times.sort_unstable();
    for i in 1..times.len() {
        if times[i] <= times[i - 1] + MINUTE {
            times[i] = times[i - 1] + MINUTE + rng.range(0, MINUTE);
        }
    }
    let nslots = prof.slots.len();
    let mut st = State {
        cur: vec![vec![None; nslots]; 3],
        prev_v: None,
        build_no: rng.range_u(1, 400),
        semver: (rng.range_u(0, 3), rng.range_u(0, 10), 0u64),
        feature: None,
        pr: rng.range_u(10, 900),
        releases: Vec::new(),
        any_tag: false,
    };
    let repo = Repo {
        r,
        prof,
        fam: &fams[prof.family],
    };
    for &t in &times {
        let last = Some(&t) == times.last();
        one_build(b, &mut rng, &repo, &mut st, t, last);
    }
}

/// Plan the build at `t` (`last`: the repository's last one) with its pushes.
fn one_build(
    b: &mut Builder<'_>,
    rng: &mut Rng,
    repo: &Repo<'_>,
    st: &mut State,
    t: i64,
    last: bool,
) {
    let p = b.p;
    let (r, prof) = (repo.r, repo.prof);
    let branch = if prof.features && rng.chance(0.25) {
        2
    } else if prof.develop && rng.chance(0.15) {
        1
    } else {
        0
    };
    let v = version_at(repo.fam, t - prof.base_lag);
    let base_changed = st.prev_v != Some(v);
    st.prev_v = Some(v);
    let style = if t < prof.switch_at {
        prof.fmt0
    } else {
        prof.fmt1
    };
    change_layers(b, rng, prof, &mut st.cur, base_changed, t);
    let label = match branch {
        0 => prof.main_name.to_string(),
        1 => "develop".to_string(),
        _ => "feature".to_string(),
    };
    let build = Build { t, v, style, label };
    let target = images(b, rng, repo, &st.cur, &build);

    let (mut tags, release) = build_tags(rng, prof, branch, st);
    if rng.chance(prof.digest_only) && release.is_none() {
        tags.clear();
    }
    st.any_tag |= !tags.is_empty();
    if !st.any_tag && !p.digest_only_repos && last {
        tags.push(Tag {
            name: "latest".into(),
            protected: true,
        });
    }
    b.event(
        t,
        Ev::Push {
            repo: r,
            target,
            tags,
        },
    );

    if let Some(full) = release {
        st.releases.push(target);
        if let Some(promo) = prof.promote {
            let at = t + rng.range(HOUR, 3 * DAY);
            if at < p.now {
                let tags = vec![
                    Tag {
                        name: full,
                        protected: true,
                    },
                    Tag {
                        name: "latest".into(),
                        protected: true,
                    },
                ];
                b.event(
                    at,
                    Ev::Push {
                        repo: promo,
                        target,
                        tags,
                    },
                );
            }
        }
    }
    // A rollback: `stable` (or `latest`) moved back to the previous release.
    if branch == 0 && st.releases.len() >= 2 && rng.chance(0.02) {
        let prev = st.releases[st.releases.len() - 2];
        let name = if prof.stable { "stable" } else { "latest" };
        let tags = vec![Tag {
            name: name.into(),
            protected: true,
        }];
        b.event(
            t + 10 * MINUTE,
            Ev::Push {
                repo: r,
                target: prev,
                tags,
            },
        );
    }
    // A push that died after uploading its blobs (CI runner killed, network, quota).
    if rng.chance(0.01) {
        failed_push(b, rng, repo, &st.cur, build);
    }
}

/// Replace the layers this build changes: every slot on the first build, the slots that sit
/// on the base image when it moved to a new release, and each other slot by its chance.
fn change_layers(
    b: &mut Builder<'_>,
    rng: &mut Rng,
    prof: &Profile,
    cur: &mut [Vec<Option<BlobId>>],
    base_changed: bool,
    t: i64,
) {
    for (s, slot) in prof.slots.iter().enumerate() {
        let change = cur[prof.archs[0] as usize][s].is_none()
            || (slot.on_base && base_changed)
            || rng.chance(slot.change);
        if !change {
            continue;
        }
        let real = {
            let f = 0.85 + 0.3 * rng.unit();
            (slot.size as f64 * f) as u64
        };
        if slot.shared {
            let blob = b.layer(rng, slot.kind, prof.archs[0], real, t - 5 * MINUTE);
            for &a in &prof.archs {
                cur[a as usize][s] = Some(blob);
            }
        } else {
            for &a in &prof.archs {
                cur[a as usize][s] = Some(b.layer(rng, slot.kind, a, real, t - 5 * MINUTE));
            }
        }
    }
}

/// The build's image per architecture (on the base image's layers of release `v`), and the
/// index over them when there are several: what the push points at.
fn images(
    b: &mut Builder<'_>,
    rng: &mut Rng,
    repo: &Repo<'_>,
    cur: &[Vec<Option<BlobId>>],
    build: &Build,
) -> Target {
    let prof = repo.prof;
    let mut children = Vec::new();
    for &a in &prof.archs {
        let mut layers = repo.fam[build.v].layers[a as usize].clone();
        layers.extend(cur[a as usize].iter().flatten());
        let created = build.t - 2 * MINUTE;
        children.push(b.image(
            rng,
            build.style,
            a,
            created,
            layers,
            repo.r,
            prof.family,
            build.label.clone(),
            true,
        ));
    }
    if children.len() > 1 {
        Target::Index(b.index(build.style, children.clone()))
    } else {
        Target::Image(children[0])
    }
}

/// Tags for this build, and the release version when it is one.
fn build_tags(
    rng: &mut Rng,
    prof: &Profile,
    branch: u8,
    st: &mut State,
) -> (Vec<Tag>, Option<String>) {
    let mut tags: Vec<Tag> = Vec::new();
    let mut tag = |name: String, protected: bool| tags.push(Tag { name, protected });
    match branch {
        0 => {
            if prof.latest {
                tag("latest".into(), true);
            }
            if prof.branch_tags {
                tag(prof.main_name.into(), true);
            }
        }
        1 => {
            if prof.branch_tags {
                tag("develop".into(), true);
            }
        }
        _ => {
            let need_new = match &st.feature {
                Some((_, left)) => *left == 0,
                None => true,
            };
            if need_new {
                let name = match rng.below(3) {
                    0 => format!("feature-{}-{}", rng.pick(WORDS), rng.range(1, 999)),
                    1 => format!("fix-{}", rng.range(100, 9999)),
                    _ => format!("renovate-{}", rng.pick(WORDS)),
                };
                st.feature = Some((name, rng.range_u(1, 8)));
                st.pr += rng.range_u(1, 20);
            }
            if let Some((name, left)) = &mut st.feature {
                *left -= 1;
                if prof.branch_tags {
                    tag(name.clone(), false);
                }
                if prof.pr_tags {
                    tag(format!("pr-{}", st.pr), false);
                }
            }
        }
    }
    if prof.build_tags {
        tag(format!("build-{}", st.build_no), false);
    }
    st.build_no += 1;
    if prof.sha_tags {
        let sha = rng.hex(7);
        tag(format!("sha-{sha}"), false);
    }
    let mut release = None;
    if branch == 0 && prof.releases && rng.below(prof.release_every) == 0 {
        let semver = &mut st.semver;
        match rng.below(100) {
            0..70 => semver.2 += 1,
            70..95 => {
                semver.1 += 1;
                semver.2 = 0
            }
            _ => {
                semver.0 += 1;
                semver.1 = 0;
                semver.2 = 0
            }
        }
        let v = if prof.v_prefix { "v" } else { "" };
        let full = format!("{v}{}.{}.{}", semver.0, semver.1, semver.2);
        tag(full.clone(), true);
        if prof.aliases {
            tag(format!("{v}{}.{}", semver.0, semver.1), true);
            tag(format!("{v}{}", semver.0), true);
        }
        if prof.stable {
            tag("stable".into(), true);
        }
        release = Some(full);
    }
    (tags, release)
}

/// A push of the build's first architecture that died after uploading its blobs, before its
/// manifest: a new application layer on the current other layers, some hours earlier.
fn failed_push(
    b: &mut Builder<'_>,
    rng: &mut Rng,
    repo: &Repo<'_>,
    cur: &[Vec<Option<BlobId>>],
    build: Build,
) {
    let (r, prof) = (repo.r, repo.prof);
    let a = prof.archs[0];
    let mut layers = repo.fam[build.v].layers[a as usize].clone();
    let nl = cur[a as usize].len();
    layers.extend(cur[a as usize][..nl - 1].iter().flatten());
    let real = prof.slots[nl - 1].size;
    let at = build.t - rng.range(10 * MINUTE, 6 * HOUR);
    layers.push(b.layer(rng, LayerKind::App, a, real, at - MINUTE));
    let img = b.image(
        rng,
        build.style,
        a,
        at - MINUTE,
        layers,
        r,
        prof.family,
        build.label,
        false,
    );
    b.event(
        at,
        Ev::FailedPush {
            repo: r,
            image: img,
        },
    );
    if rng.chance(0.5) {
        b.upload(rng, r, at + 20);
    }
}
