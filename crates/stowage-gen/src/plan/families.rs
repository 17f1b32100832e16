//! The base images: each family of [`FAMILIES`] mirrored into `library/<name>` as a series of
//! releases (one index or image per release, tagged like Docker Hub tags them), a child family
//! built on the release of its parent current at the time.

use super::{
    BlobId, Builder, Ev, FAMILIES, FamilyDef, HOUR, KB, LayerKind, RepoKind, RepoSpec, Style, Tag,
    Target,
};
use crate::rng::Rng;

pub(super) struct FamVer {
    pub(super) time: i64,
    /// Full layer list (parent's layers first) per architecture index.
    pub(super) layers: [Vec<BlobId>; 3],
}

/// Last version released at or before `t` (the first one if none was).
pub(super) fn version_at(vers: &[FamVer], t: i64) -> usize {
    vers.iter().rposition(|v| v.time <= t).unwrap_or(0)
}

/// Plan the releases of the first `nfam` families, in dependency order (a family looks up
/// its parent's releases), each family from its own random stream.
pub(super) fn base_images(b: &mut Builder<'_>, nfam: usize) -> Vec<Vec<FamVer>> {
    let mut fams: Vec<Vec<FamVer>> = Vec::new();
    for (fi, def) in FAMILIES[..nfam].iter().enumerate() {
        let vers = family(b, &fams, fi, def);
        fams.push(vers);
    }
    fams
}

/// The repository `library/<name>` of family `fi` and its `p.versions` releases.
fn family(b: &mut Builder<'_>, fams: &[Vec<FamVer>], fi: usize, def: &FamilyDef) -> Vec<FamVer> {
    let p = b.p;
    let span = p.now - p.start;
    let mut rng = Rng::derive(p.seed, &[1, fi as u64]);
    let repo = b.plan.repos.len() as u32;
    b.plan.repos.push(RepoSpec {
        name: format!("library/{}", def.name),
        kind: RepoKind::Base,
        created: p.start,
        end: p.now,
        deleted_at: None,
        weight: 0,
    });
    let n = p.versions.max(1) as i64;
    let interval = (span * 9 / 10 / n).max(HOUR);
    let mut ver = def.version;
    let mut vers: Vec<FamVer> = Vec::new();
    let mut own_prev: [Vec<BlobId>; 3] = Default::default();
    let style = (def.fmt, Style::Crane);
    for k in 0..n {
        let t = if k == 0 {
            p.start + HOUR * (1 + fi as i64)
        } else {
            p.start + k * interval + rng.range(0, interval / 3 + 1)
        };
        if k > 0 {
            match rng.below(100) {
                0..70 => ver.2 += 1,
                70..95 => {
                    ver.1 += 1;
                    ver.2 = 0
                }
                _ => {
                    ver.0 += 1;
                    ver.1 = 0;
                    ver.2 = 0
                }
            }
        }
        let full_v = format!("{}.{}.{}", ver.0, ver.1, ver.2);
        let built = t - rng.range(HOUR, 6 * HOUR);
        let parent_v = def.parent.map(|pi| version_at(&fams[pi], t));
        let mut layers: [Vec<BlobId>; 3] = Default::default();
        let mut children = Vec::new();
        for &a in def.archs {
            let own = own_layers(b, &mut rng, fi, def, a, &own_prev[a as usize], built);
            let mut full = match (def.parent, parent_v) {
                (Some(pi), Some(pv)) => fams[pi][pv].layers[a as usize].clone(),
                _ => Vec::new(),
            };
            full.extend_from_slice(&own);
            own_prev[a as usize] = own;
            layers[a as usize] = full.clone();
            let img = b.image(
                &mut rng,
                style,
                a,
                built,
                full,
                repo,
                fi,
                full_v.clone(),
                true,
            );
            children.push(img);
        }
        let target = if children.len() > 1 {
            Target::Index(b.index(style, children))
        } else {
            Target::Image(children[0])
        };
        let tags = release_tags(def, ver, &full_v, built);
        b.event(t, Ev::Push { repo, target, tags });
        vers.push(FamVer { time: t, layers });
    }
    vers
}

/// The family's own layers of one release on architecture `a` (its parent's come first in
/// the image). A small layer (under 10 KB: a script, a config file) is usually carried over
/// unchanged from the previous release (`prev`).
fn own_layers(
    b: &mut Builder<'_>,
    rng: &mut Rng,
    fi: usize,
    def: &FamilyDef,
    a: u8,
    prev: &[BlobId],
    built: i64,
) -> Vec<BlobId> {
    let mut own = Vec::new();
    for (s, &(lo, hi)) in def.layers.iter().enumerate() {
        let prev = prev.get(s).copied();
        let blob = match prev {
            Some(pb) if hi < 10 * KB && rng.chance(0.7) => pb,
            _ => {
                let real = rng.range_u(lo, hi);
                let kind = LayerKind::Base {
                    family: fi as u8,
                    slot: s as u8,
                };
                b.layer(rng, kind, a, real, built)
            }
        };
        own.push(blob);
    }
    own
}

/// The tags of a release: full version, `major.minor`, `major`, `latest`, and for a
/// distribution its codename and dated codename. All protected.
fn release_tags(def: &FamilyDef, ver: (u32, u32, u32), full_v: &str, built: i64) -> Vec<Tag> {
    let mut tags = vec![
        full_v.to_string(),
        format!("{}.{}", ver.0, ver.1),
        format!("{}", ver.0),
        "latest".to_string(),
    ];
    if let Some(code) = def.codename {
        tags.push(code.to_string());
        tags.push(format!("{code}-{}", crate::time::yyyymmdd(built)));
    }
    tags.into_iter()
        .map(|name| Tag {
            name,
            protected: true,
        })
        .collect()
}
