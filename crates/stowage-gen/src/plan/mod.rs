//! The world and its history: base images, repositories, builds, tags, cleanups, garbage
//! collections, failed pushes and abandoned uploads, as a time-ordered list of events.
//!
//! Nothing here has bytes yet: blobs are numbered ([`BlobId`]) and described by a spec from
//! which [`crate::content`] later derives their exact bytes. [`crate::sim`] replays the events
//! the way registry 2.8 would apply them to its storage.
//!
//! The public types live here; building the plan is split by phase: `catalog` (the fixed
//! tables), `families` (base images), `repos` (repositories and their profiles), `builds`
//! (each repository's pushes and cleanups) and `extras` (hand deletions, never-pushed
//! repositories, abandoned uploads, garbage collections). Blobs, images and events are
//! numbered in the order they are created, and each phase draws from derived random streams
//! in a fixed order, so `build` must call the phases in its order, and a phase must keep the
//! order of its draws, for the same `Params` to keep giving the same plan (the same bytes).

use std::collections::HashSet;

use crate::rng::Rng;

mod builds;
mod catalog;
pub mod ci;
mod extras;
mod families;
mod repos;

pub use catalog::{FAMILIES, FamilyDef};

pub type BlobId = u32;

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;
const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

/// Manifest family: Docker schema2 (and manifest lists) or OCI (and indexes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fmt {
    Docker,
    Oci,
}

/// The client that pushed, which decides the manifest's JSON formatting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Style {
    /// `docker push` / `docker manifest push`: 3-space indentation.
    DockerCli,
    /// buildkit (`docker buildx`): 2-space indentation.
    Buildkit,
    /// crane / skopeo / ko: compact JSON.
    Crane,
}

pub struct ArchInfo {
    pub arch: &'static str,
    pub variant: Option<&'static str>,
}

pub const ARCHS: [ArchInfo; 3] = [
    ArchInfo {
        arch: "amd64",
        variant: None,
    },
    ArchInfo {
        arch: "arm64",
        variant: Some("v8"),
    },
    ArchInfo {
        arch: "arm",
        variant: Some("v7"),
    },
];

/// What a layer holds (drives its tar paths and its `created_by` history line).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LayerKind {
    Base { family: u8, slot: u8 },
    Deps,
    Deps2,
    Config,
    Assets,
    App,
}

#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub seed: u64,
    /// Target size of the gzip blob on disk (already scaled).
    pub size: u64,
    pub created: i64,
    pub kind: LayerKind,
    pub arch: u8,
}

#[derive(Clone, Debug)]
pub enum BlobSpec {
    Layer(LayerSpec),
    /// The config of image `n`.
    Config(u32),
    /// The manifest of image `n`.
    Manifest(u32),
    /// Index / manifest list `n`.
    Index(u32),
}

#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub fmt: Fmt,
    pub style: Style,
    pub arch: u8,
    pub created: i64,
    pub layers: Vec<BlobId>,
    pub config: BlobId,
    /// `None` for a push that failed before its manifest was PUT.
    pub manifest: Option<BlobId>,
    pub repo: u32,
    pub family: u8,
    /// Version or branch, for the config's labels.
    pub label: String,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct IndexSpec {
    pub fmt: Fmt,
    pub style: Style,
    pub children: Vec<u32>,
    pub blob: BlobId,
}

#[derive(Clone, Copy, Debug)]
pub enum Target {
    Image(u32),
    Index(u32),
}

#[derive(Clone, Debug)]
pub struct Tag {
    pub name: String,
    /// Protected tags (`latest`, branches, releases) are never removed by cleanup jobs.
    pub protected: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RepoKind {
    /// A mirrored base image (`library/<family>`).
    Base,
    App,
    /// Receives copies of another repository's releases.
    Promo,
    /// Only an abandoned upload: the first push never finished its first blob.
    UploadsOnly,
    /// Blobs uploaded and linked, but the manifest PUT never happened.
    FailedOnly,
}

#[derive(Clone, Debug)]
pub struct RepoSpec {
    pub name: String,
    pub kind: RepoKind,
    pub created: i64,
    pub end: i64,
    /// Removed by hand (`rm -rf` of its directory) at this time.
    pub deleted_at: Option<i64>,
    pub weight: u64,
}

#[derive(Clone, Debug)]
pub struct UploadSpec {
    pub uuid: String,
    pub started: i64,
    /// `(bytes, time)` of each PATCH; empty for a POST-only upload.
    pub chunks: Vec<(u64, i64)>,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub enum Ev {
    Push {
        repo: u32,
        target: Target,
        tags: Vec<Tag>,
    },
    FailedPush {
        repo: u32,
        image: u32,
    },
    /// A retention job deleting old, unprotected manifests through the API.
    Cleanup {
        repo: u32,
        keep: i64,
    },
    /// `registry garbage-collect` (2.8, without `--delete-untagged`).
    Gc,
    DeleteRepo {
        repo: u32,
    },
    Upload {
        repo: u32,
        upload: u32,
    },
}

#[derive(Clone, Debug)]
pub struct Event {
    pub t: i64,
    pub ev: Ev,
}

/// Which shape of registry a plan describes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Profile {
    /// A drawn year of CI history (the default): every case a real registry accumulates.
    #[default]
    Realistic,
    /// The fixed, countable CI shape of [`ci`]: ten tags per repository, two of them moved,
    /// an OCI index every tenth tag, 60% of layers from a shared pool.
    Ci,
}

/// Knobs of one plan. `builds` is what calibration varies to hit the blob target (in the
/// `ci` profile: the number of application repositories).
#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub builds: u64,
    /// Repositories in total, base-image repositories included.
    pub repos: u32,
    pub families: u32,
    pub versions: u32,
    pub start: i64,
    pub now: i64,
    pub size_scale: f64,
    pub multiarch: f64,
    pub oci: f64,
    pub gc_runs: u32,
    pub uploads: u32,
    /// Allow repositories whose every push was by digest (no `_manifests/tags/` directory:
    /// registry 2.8's `garbage-collect --delete-untagged` aborts on them).
    pub digest_only_repos: bool,
    pub profile: Profile,
}

pub struct Plan {
    pub blobs: Vec<BlobSpec>,
    pub images: Vec<ImageSpec>,
    pub indexes: Vec<IndexSpec>,
    pub repos: Vec<RepoSpec>,
    pub uploads: Vec<UploadSpec>,
    /// Sorted by time (stable: simultaneous events keep their planned order).
    pub events: Vec<Event>,
    pub gc_times: Vec<i64>,
}

/// The plan being built and the knobs it is built for; the phases add to it through these
/// helpers, which number blobs, images and indexes in the order they are created.
struct Builder<'p> {
    p: &'p Params,
    plan: Plan,
}

impl Builder<'_> {
    fn blob(&mut self, spec: BlobSpec) -> BlobId {
        self.plan.blobs.push(spec);
        (self.plan.blobs.len() - 1) as BlobId
    }

    fn scaled(&self, real: u64) -> u64 {
        (real as f64 * self.p.size_scale) as u64
    }

    fn layer(
        &mut self,
        rng: &mut Rng,
        kind: LayerKind,
        arch: u8,
        real: u64,
        created: i64,
    ) -> BlobId {
        let size = self.scaled(real);
        self.blob(BlobSpec::Layer(LayerSpec {
            seed: rng.next_u64(),
            size,
            created,
            kind,
            arch,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn image(
        &mut self,
        rng: &mut Rng,
        (fmt, style): (Fmt, Style),
        arch: u8,
        created: i64,
        layers: Vec<BlobId>,
        repo: u32,
        family: usize,
        label: String,
        with_manifest: bool,
    ) -> u32 {
        let n = self.plan.images.len() as u32;
        let config = self.blob(BlobSpec::Config(n));
        let manifest = with_manifest.then(|| self.blob(BlobSpec::Manifest(n)));
        self.plan.images.push(ImageSpec {
            fmt,
            style,
            arch,
            created,
            layers,
            config,
            manifest,
            repo,
            family: family as u8,
            label,
            seed: rng.next_u64(),
        });
        n
    }

    fn index(&mut self, (fmt, style): (Fmt, Style), children: Vec<u32>) -> u32 {
        let n = self.plan.indexes.len() as u32;
        let blob = self.blob(BlobSpec::Index(n));
        self.plan.indexes.push(IndexSpec {
            fmt,
            style,
            children,
            blob,
        });
        n
    }

    fn event(&mut self, t: i64, ev: Ev) {
        self.plan.events.push(Event { t, ev });
    }

    fn upload(&mut self, rng: &mut Rng, repo: u32, started: i64) {
        let mut chunks = Vec::new();
        let r = rng.unit();
        if r >= 0.3 {
            let total = self
                .scaled(rng.size(catalog::UPLOAD))
                .max(rng.range_u(1, 64));
            let n = if r < 0.85 { 1 } else { rng.range_u(2, 6) }.min(total);
            let mut left = total;
            let mut t = started;
            for i in 0..n {
                let len = if i + 1 == n {
                    left
                } else {
                    (total / n).min(left)
                };
                left -= len;
                t += rng.range(1, 3 * MINUTE);
                chunks.push((len, t));
            }
        }
        let u = UploadSpec {
            uuid: rng.uuid(),
            started,
            chunks,
            seed: rng.next_u64(),
        };
        self.plan.uploads.push(u);
        let upload = (self.plan.uploads.len() - 1) as u32;
        self.event(started, Ev::Upload { repo, upload });
    }
}

/// Build the plan for `p`. Pure: the same `p` always gives the same plan.
pub fn build(p: &Params) -> Plan {
    let mut b = Builder {
        p,
        plan: Plan {
            blobs: Vec::new(),
            images: Vec::new(),
            indexes: Vec::new(),
            repos: Vec::new(),
            uploads: Vec::new(),
            events: Vec::new(),
            gc_times: Vec::new(),
        },
    };
    if p.profile == Profile::Ci {
        ci::build(&mut b);
        return b.plan;
    }
    let nfam = (p.families as usize).clamp(1, FAMILIES.len());

    // ---- base image families, mirrored into library/<name> --------------------------------
    let fams = families::base_images(&mut b, nfam);

    // ---- repositories ----------------------------------------------------------------------
    // One stream for the application repositories, the never-pushed ones and the hand
    // deletions, drawn in that order.
    let mut rrng = Rng::derive(p.seed, &[2]);
    let mut names: HashSet<String> = b.plan.repos.iter().map(|r| r.name.clone()).collect();
    let total = (p.repos as usize).max(nfam + 1);
    let rest = total - nfam;
    let specials = if rest >= 8 { 2 } else { 0 };
    let fam_weights: Vec<u64> = FAMILIES[..nfam].iter().map(|f| f.weight).collect();
    let profiles = repos::app_repos(
        &mut b,
        &mut rrng,
        &mut names,
        total - specials,
        &fam_weights,
    );
    repos::special_repos(&mut b, &mut rrng, &mut names, specials);
    extras::hand_deletions(&mut b, &mut rrng, &profiles);

    // ---- builds ----------------------------------------------------------------------------
    builds::all_builds(&mut b, &fams, &profiles);

    // ---- special repositories, uploads, GC, hand deletions -------------------------------
    let mut urng = Rng::derive(p.seed, &[5]);
    extras::special_repo_events(&mut b, &mut urng, &fams, &fam_weights);
    extras::uploads(&mut b, &mut urng, &profiles);
    extras::gc_runs(&mut b);

    b.plan.events.sort_by_key(|e| e.t);
    b.plan
}
