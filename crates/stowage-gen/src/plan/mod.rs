//! The world and its history: base images, repositories, builds, tags, cleanups, garbage
//! collections, failed pushes and abandoned uploads, as a time-ordered list of events.
//!
//! Nothing here has bytes yet: blobs are numbered ([`BlobId`]) and described by a spec from
//! which [`crate::content`] later derives their exact bytes. [`crate::sim`] replays the events
//! the way registry 2.8 would apply them to its storage.

use crate::rng::Rng;

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

/// Knobs of one plan. `builds` is what calibration varies to hit the blob target.
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

/// A base image family. Sizes are real-world compressed sizes; `size_scale` shrinks them.
pub struct FamilyDef {
    pub name: &'static str,
    pub parent: Option<usize>,
    pub archs: &'static [u8],
    pub layers: &'static [(u64, u64)],
    pub version: (u32, u32, u32),
    pub codename: Option<&'static str>,
    pub env: &'static str,
    pub cmd: &'static str,
    pub weight: u64,
    /// Interpreted runtimes ship the same application layer on every architecture.
    pub interpreted: bool,
    pub fmt: Fmt,
}

/// Families in dependency order (a parent precedes its children); a plan uses a prefix.
pub const FAMILIES: &[FamilyDef] = &[
    FamilyDef {
        name: "debian",
        parent: None,
        archs: &[0, 1, 2],
        layers: &[(28 * MB, 31 * MB)],
        version: (12, 1, 0),
        codename: Some("bookworm"),
        env: "",
        cmd: "bash",
        weight: 10,
        interpreted: false,
        fmt: Fmt::Oci,
    },
    FamilyDef {
        name: "alpine",
        parent: None,
        archs: &[0, 1, 2],
        layers: &[(3 * MB + 300 * KB, 3 * MB + 700 * KB)],
        version: (3, 18, 0),
        codename: None,
        env: "",
        cmd: "/bin/sh",
        weight: 16,
        interpreted: false,
        fmt: Fmt::Docker,
    },
    FamilyDef {
        name: "node",
        parent: Some(0),
        archs: &[0, 1],
        layers: &[
            (3 * KB, 4 * KB),
            (44 * MB, 48 * MB),
            (2 * MB, 2 * MB + 500 * KB),
            (400, 500),
        ],
        version: (20, 9, 0),
        codename: None,
        env: "NODE_VERSION",
        cmd: "node",
        weight: 18,
        interpreted: true,
        fmt: Fmt::Oci,
    },
    FamilyDef {
        name: "python",
        parent: Some(0),
        archs: &[0, 1],
        layers: &[
            (3 * MB, 4 * MB),
            (11 * MB, 13 * MB),
            (200, 300),
            (2 * MB + 800 * KB, 3 * MB + 200 * KB),
        ],
        version: (3, 11, 4),
        codename: None,
        env: "PYTHON_VERSION",
        cmd: "python3",
        weight: 14,
        interpreted: true,
        fmt: Fmt::Docker,
    },
    FamilyDef {
        name: "golang",
        parent: Some(0),
        archs: &[0, 1],
        layers: &[(60 * MB, 70 * MB), (66 * MB, 80 * MB), (120, 180)],
        version: (1, 21, 0),
        codename: None,
        env: "GOLANG_VERSION",
        cmd: "bash",
        weight: 9,
        interpreted: false,
        fmt: Fmt::Oci,
    },
    FamilyDef {
        name: "ubuntu",
        parent: None,
        archs: &[0, 1],
        layers: &[(27 * MB, 30 * MB)],
        version: (22, 4, 0),
        codename: Some("jammy"),
        env: "",
        cmd: "bash",
        weight: 6,
        interpreted: false,
        fmt: Fmt::Oci,
    },
    FamilyDef {
        name: "temurin",
        parent: Some(5),
        archs: &[0, 1],
        layers: &[
            (15 * MB, 17 * MB),
            (45 * MB, 50 * MB),
            (100, 160),
            (2 * KB, 3 * KB),
        ],
        version: (17, 0, 8),
        codename: None,
        env: "JAVA_VERSION",
        cmd: "jshell",
        weight: 9,
        interpreted: false,
        fmt: Fmt::Docker,
    },
    FamilyDef {
        name: "nginx",
        parent: Some(0),
        archs: &[0, 1, 2],
        layers: &[
            (25 * MB, 30 * MB),
            (600, 700),
            (900, 1000),
            (1100, 1300),
            (1400, 1500),
        ],
        version: (1, 25, 2),
        codename: None,
        env: "NGINX_VERSION",
        cmd: "nginx -g daemon off;",
        weight: 5,
        interpreted: false,
        fmt: Fmt::Oci,
    },
    FamilyDef {
        name: "distroless",
        parent: None,
        archs: &[0, 1],
        layers: &[(100 * KB, 120 * KB), (MB + 500 * KB, 2 * MB), (500, 700)],
        version: (12, 0, 0),
        codename: None,
        env: "",
        cmd: "",
        weight: 6,
        interpreted: false,
        fmt: Fmt::Oci,
    },
    FamilyDef {
        name: "redis",
        parent: Some(0),
        archs: &[0, 1, 2],
        layers: &[
            (KB, KB + 200),
            (MB + 200 * KB, MB + 400 * KB),
            (8 * MB, 9 * MB),
            (100, 120),
            (500, 600),
        ],
        version: (7, 2, 3),
        codename: None,
        env: "REDIS_VERSION",
        cmd: "redis-server",
        weight: 2,
        interpreted: false,
        fmt: Fmt::Docker,
    },
];

// Real compressed sizes of application layers: (weight, lo, hi).
const DEPS: &[(u64, u64, u64)] = &[
    (30, MB, 5 * MB),
    (45, 5 * MB, 30 * MB),
    (20, 30 * MB, 120 * MB),
    (5, 120 * MB, 400 * MB),
];
const SMALL: &[(u64, u64, u64)] = &[(40, 2 * KB, 50 * KB), (40, 50 * KB, MB), (20, MB, 10 * MB)];
const TINY: &[(u64, u64, u64)] = &[(100, 200, 5 * KB)];
const ASSETS: &[(u64, u64, u64)] = &[(40, 50 * KB, MB), (45, MB, 10 * MB), (15, 10 * MB, 60 * MB)];
const APP: &[(u64, u64, u64)] = &[
    (25, 5 * KB, 200 * KB),
    (40, 200 * KB, 5 * MB),
    (30, 5 * MB, 30 * MB),
    (5, 30 * MB, 120 * MB),
];
const UPLOAD: &[(u64, u64, u64)] = &[
    (50, 100 * KB, 5 * MB),
    (40, 5 * MB, 50 * MB),
    (10, 50 * MB, 200 * MB),
];

const TEAMS: &[&str] = &[
    "platform",
    "payments",
    "search",
    "data",
    "ml",
    "web",
    "mobile",
    "infra",
    "security",
    "growth",
    "checkout",
    "identity",
    "analytics",
    "core",
    "edge",
    "billing",
    "ads",
    "media",
    "team",
    "team",
    "team",
    "squad",
];
const APPS: &[&str] = &[
    "api",
    "web",
    "worker",
    "gateway",
    "frontend",
    "backend",
    "scheduler",
    "ingest",
    "exporter",
    "auth",
    "notifier",
    "indexer",
    "cron",
    "proxy",
    "admin",
    "reports",
    "app",
    "app",
    "service",
    "sync",
    "etl",
    "portal",
    "catalog",
    "orders",
];
const SVCS: &[&str] = &[
    "svc",
    "svc",
    "api",
    "worker",
    "migrations",
    "grpc",
    "http",
    "consumer",
    "producer",
    "cache",
    "jobs",
    "ui",
    "cli",
    "server",
];
const WORDS: &[&str] = &[
    "login",
    "search",
    "refactor",
    "deps",
    "ci",
    "cache",
    "metrics",
    "retry",
    "logging",
    "auth",
    "ui",
    "perf",
    "billing",
    "export",
    "oauth",
    "dark-mode",
    "upgrade",
    "cleanup",
];

#[derive(Clone, Debug)]
struct SlotDef {
    kind: LayerKind,
    size: u64,
    change: f64,
    shared: bool,
    on_base: bool,
}

#[derive(Clone, Debug)]
struct Profile {
    family: usize,
    archs: Vec<u8>,
    base_lag: i64,
    fmt0: (Fmt, Style),
    fmt1: (Fmt, Style),
    switch_at: i64,
    slots: Vec<SlotDef>,
    latest: bool,
    branch_tags: bool,
    main_name: &'static str,
    develop: bool,
    features: bool,
    pr_tags: bool,
    build_tags: bool,
    sha_tags: bool,
    releases: bool,
    release_every: u64,
    v_prefix: bool,
    aliases: bool,
    stable: bool,
    digest_only: f64,
    cleanup: Option<(i64, i64)>,
    promote: Option<u32>,
    min_builds: u64,
}

struct FamVer {
    time: i64,
    /// Full layer list (parent's layers first) per architecture index.
    layers: [Vec<BlobId>; 3],
}

struct Builder<'p> {
    p: &'p Params,
    plan: Plan,
}

/// Last version released at or before `t` (the first one if none was).
fn version_at(vers: &[FamVer], t: i64) -> usize {
    vers.iter().rposition(|v| v.time <= t).unwrap_or(0)
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
            let total = self.scaled(rng.size(UPLOAD)).max(rng.range_u(1, 64));
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

fn pick_style(rng: &mut Rng, oci: bool) -> (Fmt, Style) {
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
    let span = p.now - p.start;
    let nfam = (p.families as usize).clamp(1, FAMILIES.len());

    // ---- base image families, mirrored into library/<name> --------------------------------
    let mut fams: Vec<Vec<FamVer>> = Vec::new();
    for (fi, def) in FAMILIES[..nfam].iter().enumerate() {
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
                let mut own = Vec::new();
                for (s, &(lo, hi)) in def.layers.iter().enumerate() {
                    let prev = own_prev[a as usize].get(s).copied();
                    let blob = match prev {
                        Some(pb) if hi < 10 * KB && rng.chance(0.7) => pb,
                        _ => {
                            let real = rng.range_u(lo, hi);
                            let kind = LayerKind::Base {
                                family: fi as u8,
                                slot: s as u8,
                            };
                            b.layer(&mut rng, kind, a, real, built)
                        }
                    };
                    own.push(blob);
                }
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
            let mut tags = vec![
                full_v.clone(),
                format!("{}.{}", ver.0, ver.1),
                format!("{}", ver.0),
                "latest".to_string(),
            ];
            if let Some(code) = def.codename {
                tags.push(code.to_string());
                tags.push(format!("{code}-{}", crate::time::yyyymmdd(built)));
            }
            let tags = tags
                .into_iter()
                .map(|name| Tag {
                    name,
                    protected: true,
                })
                .collect();
            b.event(t, Ev::Push { repo, target, tags });
            vers.push(FamVer { time: t, layers });
        }
        fams.push(vers);
    }

    // ---- repositories ----------------------------------------------------------------------
    let mut rrng = Rng::derive(p.seed, &[2]);
    let mut names: std::collections::HashSet<String> =
        b.plan.repos.iter().map(|r| r.name.clone()).collect();
    let total = (p.repos as usize).max(nfam + 1);
    let rest = total - nfam;
    let specials = if rest >= 8 { 2 } else { 0 };
    let mut profiles: Vec<(u32, Profile)> = Vec::new();
    let fam_weights: Vec<u64> = FAMILIES[..nfam].iter().map(|f| f.weight).collect();
    let mut app_i = 0usize;
    let fresh_name = |rng: &mut Rng, names: &mut std::collections::HashSet<String>| loop {
        let n = repo_name(rng);
        if names.insert(n.clone()) {
            return n;
        }
    };
    while b.plan.repos.len() < total - specials {
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
            None => fresh_name(&mut rrng, &mut names),
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
        let family = rrng.weighted(&fam_weights);
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
        let mut fmt0 = pick_style(&mut rrng, oci);
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
            shared: def.interpreted,
            on_base: false,
        });
        let branch_tags = rrng.chance(0.55);
        let features = rrng.chance(0.45);
        let build_tags = rrng.chance(0.45);
        let releases = rrng.chance(0.45);
        let gitops = rrng.chance(0.08);
        let mut prof = Profile {
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
        };
        let want_promo = match app_i {
            2 => true,
            _ => releases && !forced && rrng.chance(0.12),
        };
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
        let repo = b.plan.repos.len() as u32;
        b.plan.repos.push(RepoSpec {
            name: name.clone(),
            kind: RepoKind::App,
            created,
            end,
            deleted_at: None,
            weight,
        });
        if want_promo && b.plan.repos.len() < total - specials {
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
    for kind in [RepoKind::UploadsOnly, RepoKind::FailedOnly]
        .into_iter()
        .take(specials)
    {
        let name = fresh_name(&mut rrng, &mut names);
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

    // Repositories removed by hand (rm -rf), late in the history: their blobs lose every link.
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

    // ---- builds ----------------------------------------------------------------------------
    let wsum: u64 = profiles
        .iter()
        .map(|(r, _)| b.plan.repos[*r as usize].weight)
        .sum::<u64>()
        .max(1);
    for (r, prof) in &profiles {
        let spec = b.plan.repos[*r as usize].clone();
        let share = (p.builds as u128 * spec.weight as u128 / wsum as u128) as u64;
        let n = share.max(prof.min_builds).max(1);
        build_repo(&mut b, &fams, *r, &spec, prof, n);
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

    // ---- special repositories, uploads, GC, hand deletions -------------------------------
    let mut urng = Rng::derive(p.seed, &[5]);
    for r in 0..b.plan.repos.len() as u32 {
        let spec = b.plan.repos[r as usize].clone();
        match spec.kind {
            RepoKind::UploadsOnly => b.upload(&mut urng, r, spec.created),
            RepoKind::FailedOnly => {
                let family = urng.weighted(&fam_weights);
                let v = version_at(&fams[family], spec.created);
                let mut layers = fams[family][v].layers[0].clone();
                let real = urng.size(APP);
                layers.push(b.layer(&mut urng, LayerKind::App, 0, real, spec.created - HOUR));
                let oci = urng.chance(0.5);
                let style = pick_style(&mut urng, oci);
                let img = b.image(
                    &mut urng,
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
                b.upload(&mut urng, r, spec.created + 30);
            }
            _ => {}
        }
        if let Some(at) = spec.deleted_at {
            b.event(at, Ev::DeleteRepo { repo: r });
        }
    }
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
        b.upload(&mut urng, r, t.min(last).max(spec.created));
    }
    let k = p.gc_runs as i64;
    for i in 0..k {
        let t = p.now - span * 12 / 100 - (k - 1 - i) * (span * 76 / 100 / k.max(1));
        if t > p.start {
            b.plan.gc_times.push(t);
            b.event(t, Ev::Gc);
        }
    }

    b.plan.events.sort_by_key(|e| e.t);
    b.plan
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
    let mut cur: Vec<Vec<Option<BlobId>>> = vec![vec![None; nslots]; 3];
    let mut prev_v: Option<usize> = None;
    let mut build_no = rng.range_u(1, 400);
    let mut semver = (rng.range_u(0, 3), rng.range_u(0, 10), 0u64);
    let mut feature: Option<(String, u64)> = None;
    let mut pr = rng.range_u(10, 900);
    let mut releases: Vec<Target> = Vec::new();
    let fam = &fams[prof.family];
    let mut any_tag = false;
    for &t in &times {
        let branch = if prof.features && rng.chance(0.25) {
            2
        } else if prof.develop && rng.chance(0.15) {
            1
        } else {
            0
        };
        let v = version_at(fam, t - prof.base_lag);
        let base_changed = prev_v != Some(v);
        prev_v = Some(v);
        let style = if t < prof.switch_at {
            prof.fmt0
        } else {
            prof.fmt1
        };
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
                let blob = b.layer(&mut rng, slot.kind, prof.archs[0], real, t - 5 * MINUTE);
                for &a in &prof.archs {
                    cur[a as usize][s] = Some(blob);
                }
            } else {
                for &a in &prof.archs {
                    cur[a as usize][s] =
                        Some(b.layer(&mut rng, slot.kind, a, real, t - 5 * MINUTE));
                }
            }
        }
        let label = match branch {
            0 => prof.main_name.to_string(),
            1 => "develop".to_string(),
            _ => "feature".to_string(),
        };
        let mut children = Vec::new();
        for &a in &prof.archs {
            let mut layers = fam[v].layers[a as usize].clone();
            layers.extend(cur[a as usize].iter().flatten());
            let created = t - 2 * MINUTE;
            children.push(b.image(
                &mut rng,
                style,
                a,
                created,
                layers,
                r,
                prof.family,
                label.clone(),
                true,
            ));
        }
        let target = if children.len() > 1 {
            Target::Index(b.index(style, children.clone()))
        } else {
            Target::Image(children[0])
        };

        // Tags for this build.
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
                let need_new = match &feature {
                    Some((_, left)) => *left == 0,
                    None => true,
                };
                if need_new {
                    let name = match rng.below(3) {
                        0 => format!("feature-{}-{}", rng.pick(WORDS), rng.range(1, 999)),
                        1 => format!("fix-{}", rng.range(100, 9999)),
                        _ => format!("renovate-{}", rng.pick(WORDS)),
                    };
                    feature = Some((name, rng.range_u(1, 8)));
                    pr += rng.range_u(1, 20);
                }
                if let Some((name, left)) = &mut feature {
                    *left -= 1;
                    if prof.branch_tags {
                        tag(name.clone(), false);
                    }
                    if prof.pr_tags {
                        tag(format!("pr-{pr}"), false);
                    }
                }
            }
        }
        if prof.build_tags {
            tag(format!("build-{build_no}"), false);
        }
        build_no += 1;
        if prof.sha_tags {
            let sha = rng.hex(7);
            tag(format!("sha-{sha}"), false);
        }
        let mut release = None;
        if branch == 0 && prof.releases && rng.below(prof.release_every) == 0 {
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
        if rng.chance(prof.digest_only) && release.is_none() {
            tags.clear();
        }
        any_tag |= !tags.is_empty();
        if !any_tag && !p.digest_only_repos && Some(&t) == times.last() {
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
            releases.push(target);
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
        if branch == 0 && releases.len() >= 2 && rng.chance(0.02) {
            let prev = releases[releases.len() - 2];
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
            let a = prof.archs[0];
            let mut layers = fam[v].layers[a as usize].clone();
            let nl = cur[a as usize].len();
            layers.extend(cur[a as usize][..nl - 1].iter().flatten());
            let real = prof.slots[nl - 1].size;
            let at = t - rng.range(10 * MINUTE, 6 * HOUR);
            layers.push(b.layer(&mut rng, LayerKind::App, a, real, at - MINUTE));
            let img = b.image(
                &mut rng,
                style,
                a,
                at - MINUTE,
                layers,
                r,
                prof.family,
                label,
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
                b.upload(&mut rng, r, at + 20);
            }
        }
    }
}
