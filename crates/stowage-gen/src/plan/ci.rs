//! The `ci` profile: a fixed, countable CI registry shape (issue 22's local-disk floor), not
//! a drawn history. Every application repository gets exactly ten tags:
//!
//! - `main` and `latest`, each pushed once on an older build and then moved to a newer one
//!   (the tag's history keeps the older manifest, whose revision stays linked: untagged);
//! - eight immutable tags (`vX.Y.Z`, `build-N` or `sha-xxxxxxx`, by repository), the last one
//!   (the repository's tenth tag) an OCI image index over an amd64 and an arm64 image.
//!
//! 60% of every image's layers are a base image from a pool shared by all repositories (a
//! base of three or six layers, per architecture), the other 40% its own (two or four).
//! Manifests are Docker schema2 or OCI by repository (`Params::oci`). Besides: a few pushes
//! by digest (untagged manifests beyond the moved tags' old ones), a few pushes that died
//! before their manifest (blobs linked but no manifest: orphans), and one repository in 200
//! (at least one) removed by hand (its own blobs no link reaches any more). No garbage
//! collection ran, so no link dangles.
//!
//! `Params::builds` is the number of application repositories (what calibration varies).
//! The plan uses the same types as the realistic history, so the replay and the writer are
//! the same; its random streams are its own (`[100, ..]`).

use std::collections::HashSet;

use super::catalog::{APP, ASSETS, DEPS, FAMILIES, SMALL, TINY};
use super::repos::{fresh_name, pick_style};
use super::{
    BlobId, Builder, DAY, Ev, Fmt, HOUR, LayerKind, MINUTE, RepoKind, RepoSpec, Style, Tag, Target,
};
use crate::rng::Rng;

/// Tags per application repository.
pub const TAGS: usize = 10;
/// Of which moved once (their old manifest stays untagged).
pub const MOVED: usize = 2;
/// One repository in this many is removed by hand (at least one when there are three).
pub const DELETE_EVERY: u32 = 200;

/// The pool of base images shared by every repository: `(family, layers per arch)`.
struct Base {
    family: usize,
    /// Layers of the amd64 (`[0]`) and arm64 (`[1]`) image.
    layers: [Vec<BlobId>; 2],
}

/// Base images in the shared pool for `repos` application repositories.
pub fn pool_bases(repos: u64) -> u32 {
    (repos / 8).clamp(2, 400) as u32
}

/// Build the `ci` plan into `b` (empty).
pub(super) fn build(b: &mut Builder<'_>) {
    let p = b.p;
    let n = p.builds as u32;
    let pool = base_pool(b, pool_bases(u64::from(n)));
    let mut rrng = Rng::derive(p.seed, &[100, 1]);
    let mut names: HashSet<String> = HashSet::new();
    for r in 0..n {
        let name = fresh_name(&mut rrng, &mut names);
        let created = p.start + rrng.range(0, (p.now - p.start) * 9 / 10);
        let deleted =
            n >= 3 && (r % DELETE_EVERY == DELETE_EVERY - 1 || (n < DELETE_EVERY && r == n - 1));
        // Removed late, after its pushes (which end an hour before).
        let deleted_at =
            deleted.then(|| p.now - rrng.range(HOUR, ((p.now - created) / 10).max(HOUR + 1)));
        let end = deleted_at.map_or(p.now, |d| d - HOUR);
        b.plan.repos.push(RepoSpec {
            name,
            kind: RepoKind::App,
            created,
            end,
            deleted_at,
            weight: 1,
        });
        repo(b, &pool, r);
        if let Some(at) = deleted_at {
            b.event(at, Ev::DeleteRepo { repo: r });
        }
    }
    b.plan.events.sort_by_key(|e| e.t);
}

/// The shared base images: three or six layers each, built before the history starts.
fn base_pool(b: &mut Builder<'_>, count: u32) -> Vec<Base> {
    let p = b.p;
    let mut rng = Rng::derive(p.seed, &[100, 0]);
    (0..count)
        .map(|k| {
            let family = k as usize % FAMILIES.len();
            let def = &FAMILIES[family];
            let nl = if rng.chance(0.5) { 3 } else { 6 };
            let built = p.start - rng.range(DAY, 60 * DAY);
            let sizes: Vec<u64> = (0..nl)
                .map(|s| match def.layers.get(s) {
                    Some(&(lo, hi)) => rng.range_u(lo, hi),
                    None => rng.size(SMALL),
                })
                .collect();
            let mut layers: [Vec<BlobId>; 2] = Default::default();
            for (a, l) in layers.iter_mut().enumerate() {
                for (s, &real) in sizes.iter().enumerate() {
                    let kind = LayerKind::Base {
                        family: family as u8,
                        slot: s as u8,
                    };
                    l.push(b.layer(&mut rng, kind, a as u8, real, built));
                }
            }
            Base { family, layers }
        })
        .collect()
}

/// How one repository builds: its format, its base image, its tag names.
struct Ci<'a> {
    r: u32,
    style: (Fmt, Style),
    base: &'a Base,
}

/// The twelve pushes of repository `r` (ten tags, two of them moved), then its extras.
fn repo(b: &mut Builder<'_>, pool: &[Base], r: u32) {
    let p = b.p;
    let spec = b.plan.repos[r as usize].clone();
    let mut rng = Rng::derive(p.seed, &[100, 2, u64::from(r)]);
    let oci = rng.chance(p.oci);
    let style = pick_style(&mut rng, oci);
    let base = &pool[rng.below(pool.len() as u64) as usize];
    let ci = Ci { r, style, base };

    let lo = spec.created + HOUR;
    let hi = (spec.end - 15 * MINUTE).max(lo + 12 * MINUTE);
    let mut times: Vec<i64> = (0..12).map(|_| rng.range(lo, hi)).collect();
    times.sort_unstable();
    for i in 1..times.len() {
        times[i] = times[i].max(times[i - 1] + MINUTE);
    }
    let names = immutable_names(&mut rng);
    let (moving_a, moving_b) = ("main", "latest");
    // Push order (tag creation order): the tenth tag created is the index.
    let mut imm = names.into_iter();
    let order: [Option<&str>; 12] = [
        None,
        Some(moving_a),
        None,
        None,
        Some(moving_b),
        None,
        None,
        None,
        Some(moving_a),
        None,
        None,
        Some(moving_b),
    ];
    let mut pushed_imm = 0;
    for (i, slot) in order.iter().enumerate() {
        let t = times[i];
        let (tag, target) = match slot {
            Some(name) => (
                name.to_string(),
                Target::Image(image(b, &mut rng, &ci, 0, t)),
            ),
            None => {
                pushed_imm += 1;
                let name = imm.next().unwrap_or_default();
                let target = if pushed_imm == TAGS - MOVED {
                    index(b, &mut rng, &ci, t)
                } else {
                    Target::Image(image(b, &mut rng, &ci, 0, t))
                };
                (name, target)
            }
        };
        let tags = vec![Tag {
            name: tag,
            protected: true,
        }];
        b.event(
            t,
            Ev::Push {
                repo: r,
                target,
                tags,
            },
        );
    }
    // A push by digest (GitOps): an untagged manifest beyond the moved tags' old ones.
    if r == 0 || rng.chance(0.05) {
        let t = rng.range(lo, hi);
        let target = Target::Image(image(b, &mut rng, &ci, 0, t));
        b.event(
            t,
            Ev::Push {
                repo: r,
                target,
                tags: Vec::new(),
            },
        );
    }
    // A push that died before its manifest PUT: its own blobs are orphans.
    if r == 1 || rng.chance(0.03) {
        let t = rng.range(lo, hi);
        let img = new_image(b, &mut rng, &ci, 0, t, false);
        b.event(
            t,
            Ev::FailedPush {
                repo: r,
                image: img,
            },
        );
    }
}

/// Eight distinct immutable tag names in one of three CI naming schemes.
fn immutable_names(rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::with_capacity(TAGS - MOVED);
    match rng.below(3) {
        0 => {
            let (maj, mut min) = (rng.range_u(0, 4), rng.range_u(0, 20));
            let mut patch = 0;
            for _ in 0..TAGS - MOVED {
                if rng.chance(0.2) {
                    min += 1;
                    patch = 0;
                }
                out.push(format!("v{maj}.{min}.{patch}"));
                patch += 1;
            }
        }
        1 => {
            let mut n = rng.range_u(1, 3000);
            for _ in 0..TAGS - MOVED {
                n += rng.range_u(1, 20);
                out.push(format!("build-{n}"));
            }
        }
        _ => {
            let mut seen = HashSet::new();
            while out.len() < TAGS - MOVED {
                let name = format!("sha-{}", rng.hex(7));
                if seen.insert(name.clone()) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// An image of repository `ci` on architecture `a` built at `t`, pushed with its manifest.
fn image(b: &mut Builder<'_>, rng: &mut Rng, ci: &Ci<'_>, a: u8, t: i64) -> u32 {
    new_image(b, rng, ci, a, t, true)
}

/// An image's own layer: its kind and the table its real size is drawn from.
type OwnLayer = (LayerKind, &'static [(u64, u64, u64)]);

/// The base's layers for `a` (60%), then two or four layers of its own (40%).
fn new_image(
    b: &mut Builder<'_>,
    rng: &mut Rng,
    ci: &Ci<'_>,
    a: u8,
    t: i64,
    with_manifest: bool,
) -> u32 {
    let mut layers = ci.base.layers[a as usize].clone();
    // Two own layers on a base of three, four on a base of six: 40% either way.
    let own: &[OwnLayer] = if layers.len() == 3 {
        &[(LayerKind::Deps, DEPS), (LayerKind::App, APP)]
    } else if rng.chance(0.5) {
        &[
            (LayerKind::Deps, DEPS),
            (LayerKind::Deps2, SMALL),
            (LayerKind::Config, TINY),
            (LayerKind::App, APP),
        ]
    } else {
        &[
            (LayerKind::Deps, DEPS),
            (LayerKind::Assets, ASSETS),
            (LayerKind::Config, TINY),
            (LayerKind::App, APP),
        ]
    };
    for &(kind, table) in own {
        let real = rng.size(table);
        layers.push(b.layer(rng, kind, a, real, t - 5 * MINUTE));
    }
    let label = format!("build-{}", rng.range_u(1, 100_000));
    b.image(
        rng,
        ci.style,
        a,
        t - 2 * MINUTE,
        layers,
        ci.r,
        ci.base.family,
        label,
        with_manifest,
    )
}

/// An OCI index over an amd64 and an arm64 image (OCI manifests, whatever the repository's
/// single-architecture format).
fn index(b: &mut Builder<'_>, rng: &mut Rng, ci: &Ci<'_>, t: i64) -> Target {
    let style = match ci.style.1 {
        Style::DockerCli => Style::Buildkit,
        s => s,
    };
    let oci = Ci {
        r: ci.r,
        style: (Fmt::Oci, style),
        base: ci.base,
    };
    let children = vec![image(b, rng, &oci, 0, t), image(b, rng, &oci, 1, t)];
    Target::Index(b.index((Fmt::Oci, style), children))
}
