//! `stowage-gen`: a deterministic generator of realistic CNCF distribution (registry 2.8)
//! storage trees, for tests and benchmarks.
//!
//! [`generate`] writes `<out>/docker/registry/v2/...` exactly as the registry lays it out
//! (`spec/registry-storage.md` §1-2) and `<out>/gen-manifest.json` (the [`Summary`] plus every
//! `repo:tag`, outside the registry tree). `<out>` is the registry's `rootdirectory`.
//!
//! How the tree comes about: a plan ([`plan`]) of base images (mirrored under `library/`,
//! their layers shared by every image built on them), application repositories nested one to
//! three deep, their CI builds over `history_days` (branch, build, commit, PR and release
//! tags, moved tags, by-digest pushes, multi-arch indexes, Docker and OCI formats), retention
//! jobs deleting old manifests through the API, failed pushes, abandoned uploads, repositories
//! removed by hand and registry garbage collections; then a replay ([`sim`]) of those events
//! as registry 2.8 applies them to storage, which leaves untagged manifests, empty revision
//! directories, stale tag-history entries, orphan blobs and dangling `_layers` links exactly
//! where the real registry would. Finally every blob's bytes are derived ([`content`]) and
//! written in parallel with their mtimes ([`write`]).
//!
//! The same options always give a byte-identical tree with identical mtimes, whatever the
//! number of threads: every decision comes from streams derived from the seed, and every byte
//! from its blob's spec.
//!
//! Two shapes ([`Profile`]): the realistic history above (the default), and `ci`
//! ([`plan::ci`]), a fixed, countable CI registry for benchmarks that must be compared with
//! a stated shape (issue 22's local-disk floor): ten tags per repository, two of them moved,
//! an OCI index every tenth tag, 60% of every image's layers from a shared base pool, a few
//! pushes by digest, failed pushes and a repository removed by hand. Both go through the
//! same replay and writer, in tree and in inventory mode.

pub mod content;
pub mod inventory;
pub mod plan;
pub mod rng;
pub mod sim;
pub mod time;
pub mod write;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::plan::Profile;
use crate::plan::{BlobSpec, DAY, Params};

/// Default `--now`: the fixed "present" the history leads up to.
pub const DEFAULT_NOW: &str = "2026-11-01T00:00:00Z";
/// Default `--size-scale`: real layer sizes times 1/10,000 (a 30 MB base layer is 3 KB on disk).
pub const DEFAULT_SIZE_SCALE: f64 = 1e-4;
/// The summary file's name inside `--out`.
pub const GEN_MANIFEST: &str = "gen-manifest.json";

/// What to generate.
#[derive(Clone, Debug)]
pub struct Options {
    /// The registry `rootdirectory` to create (`docker/registry/v2` goes inside).
    pub out: PathBuf,
    /// Target number of blobs in the final tree (met within a few percent).
    pub blobs: u64,
    pub seed: u64,
    /// Repositories in total, base-image repositories included (default: derived from `blobs`).
    pub repos: Option<u32>,
    /// Base image families (1-10; default: derived from `blobs`).
    pub base_images: Option<u32>,
    /// On-disk size of a layer relative to its realistic size.
    pub size_scale: f64,
    /// Unix seconds of "now"; all history lies before it.
    pub now: i64,
    pub history_days: u32,
    /// Share of application repositories that build multi-arch images.
    pub multiarch: f64,
    /// Share of application repositories pushing OCI manifests (the rest push Docker schema2).
    pub oci: f64,
    /// Registry garbage collections run during the history (2.8, without `-m`).
    pub gc_runs: u32,
    /// Abandoned uploads besides those of failed pushes (default: derived from `blobs`).
    pub uploads: Option<u32>,
    /// Allow repositories only ever pushed to by digest (no `_manifests/tags/`), as happen
    /// with GitOps pipelines; registry 2.8's `garbage-collect --delete-untagged` aborts on
    /// them. When false, such a repository's last push also tags `latest`.
    pub digest_only_repos: bool,
    /// Write into a non-empty `out` (an existing `docker/` and gen-manifest.json are removed).
    pub force: bool,
    /// Worker threads (default: rayon's, one per core).
    pub threads: Option<usize>,
    /// The data files' format in inventory mode ([`generate_inventory`]).
    pub inventory_format: inventory::Format,
    /// Inventory mode: generate the registry as this many independent groups
    /// (`group-NNNN/...`, each with its own base images), one at a time, so that the
    /// generator's memory is one group's, whatever the total. 1: one registry, no prefix.
    pub shards: u32,
    /// The registry's shape: the drawn realistic history (default) or the fixed CI shape
    /// ([`plan::ci`]), which derives its repositories from `blobs` and has no uploads, GC
    /// runs or digest-only repositories (`repos`, `base_images`, `multiarch`, `gc_runs`,
    /// `uploads` do not apply).
    pub profile: Profile,
}

impl Options {
    pub fn new(out: impl Into<PathBuf>, blobs: u64) -> Options {
        Options {
            out: out.into(),
            blobs,
            seed: 1,
            repos: None,
            base_images: None,
            size_scale: DEFAULT_SIZE_SCALE,
            now: time::parse_rfc3339(DEFAULT_NOW).unwrap_or(1_793_491_200),
            history_days: 365,
            multiarch: 0.2,
            oci: 0.5,
            gc_runs: 2,
            uploads: None,
            digest_only_repos: true,
            force: false,
            threads: None,
            inventory_format: inventory::Format::Csv,
            shards: 1,
            profile: Profile::Realistic,
        }
    }
}

/// Counts of what was written. `manifests` counts image manifests (index children included),
/// `indexes` OCI indexes and Docker manifest lists; both count blobs present in `blobs/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub blobs: u64,
    pub manifests: u64,
    pub indexes: u64,
    pub configs: u64,
    pub layers: u64,
    /// Live tags (`repo:tag` pairs with a `current/link`).
    pub tags: u64,
    /// Repository directories (any of `_layers`, `_manifests`, `_uploads`).
    pub repos: u64,
    /// Repositories with at least one revision link.
    pub repos_with_manifests: u64,
    pub layer_links: u64,
    /// `_layers` links whose blob is gone (swept by GC).
    pub dangling_layer_links: u64,
    pub revision_links: u64,
    /// Empty `revisions/sha256/<hex>/` directories left by API deletes.
    pub deleted_revisions: u64,
    /// Revision links neither tagged nor an index child (per repository).
    pub untagged_manifests: u64,
    pub tag_index_links: u64,
    /// Tag-history entries whose manifest blob is gone.
    pub dangling_tag_index_links: u64,
    /// Blobs no live manifest references (and that are no live manifest themselves).
    pub orphans: u64,
    pub uploads: u64,
    /// Regular files under `docker/`.
    pub files: u64,
    /// Directories under `docker/` (itself included).
    pub dirs: u64,
    /// Bytes of all files under `docker/`.
    pub bytes: u64,
    /// Bytes of blob `data` files.
    pub blob_bytes: u64,
}

/// The options as recorded in gen-manifest.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedOptions {
    pub seed: u64,
    pub blobs: u64,
    pub repos: u32,
    pub base_images: u32,
    pub size_scale: f64,
    pub now: String,
    pub history_days: u32,
    pub multiarch: f64,
    pub oci: f64,
    pub gc_runs: u32,
    pub uploads: u32,
    pub digest_only_repos: bool,
    /// When the registry GC ran (RFC 3339).
    pub gc_times: Vec<String>,
    /// `ci` for the CI profile; absent for the realistic one (so its file is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// `<out>/gen-manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenManifest {
    pub generator: String,
    pub options: RecordedOptions,
    pub summary: Summary,
    /// Every live repository directory, sorted.
    pub repositories: Vec<String>,
    /// Every live `repo:tag`, sorted; each one pulls.
    pub tags: Vec<String>,
}

/// Read `<out>/gen-manifest.json`.
pub fn read_gen_manifest(out: &Path) -> Result<GenManifest> {
    let p = out.join(GEN_MANIFEST);
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

fn derived_params(o: &Options) -> Params {
    let n = o.blobs;
    let families = o
        .base_images
        .unwrap_or((2 + n / 5000).min(10) as u32)
        .clamp(1, plan::FAMILIES.len() as u32);
    let max_versions = (o.history_days / 21).max(2) as u64;
    let versions = (2 + n / 5000).clamp(2, max_versions) as u32;
    let repos = o
        .repos
        .unwrap_or((n / 120).max(families as u64 + 8).min(u32::MAX as u64) as u32)
        .max(families + 1);
    let uploads = o.uploads.unwrap_or((n / 200).max(3) as u32);
    Params {
        seed: o.seed,
        builds: 0,
        repos,
        families,
        versions,
        start: o.now - o.history_days as i64 * DAY,
        now: o.now,
        size_scale: o.size_scale,
        multiarch: o.multiarch,
        oci: o.oci,
        gc_runs: o.gc_runs,
        uploads,
        digest_only_repos: o.digest_only_repos,
        profile: o.profile,
    }
}

/// Find the number of builds whose final tree has about `target` blobs. The count is close
/// to linear in builds, so a few secant steps get within 1%.
fn calibrate(base: &Params, target: u64) -> (plan::Plan, sim::Final) {
    let run = |builds: u64| {
        let mut p = base.clone();
        p.builds = builds;
        let plan = plan::build(&p);
        let fin = sim::simulate(&plan, p.seed);
        (fin.present_blobs(), plan, fin)
    };
    let (fixed, plan0, fin0) = run(0);
    let mut best = (fixed.abs_diff(target), plan0, fin0);
    if fixed >= target {
        return (best.1, best.2);
    }
    let tol = (target / 100).max(2);
    // Blobs one build adds, for the first guess: a build of the realistic history adds about
    // four, a repository of the CI profile about sixty.
    let per_build = match base.profile {
        plan::Profile::Realistic => 4,
        plan::Profile::Ci => 60,
    };
    let mut builds = (target - fixed) / per_build;
    let (mut lo_b, mut lo_n) = (0u64, fixed);
    for _ in 0..8 {
        let (got, plan, fin) = run(builds.max(1));
        let err = got.abs_diff(target);
        if err < best.0 {
            best = (err, plan, fin);
        }
        if err <= tol {
            break;
        }
        // Secant through the last point and the best earlier one.
        let slope = (got as f64 - lo_n as f64) / (builds as f64 - lo_b as f64);
        let next = if slope > 0.0 {
            builds as f64 + (target as f64 - got as f64) / slope
        } else {
            builds as f64 * 1.5
        };
        (lo_b, lo_n) = (builds, got);
        let next = next.max(1.0) as u64;
        if next == builds {
            break;
        }
        builds = next;
    }
    (best.1, best.2)
}

fn prepare_out(o: &Options) -> Result<()> {
    let out = &o.out;
    if out.exists() {
        if !out.is_dir() {
            bail!("{} exists and is not a directory", out.display());
        }
        let non_empty = fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some();
        if non_empty {
            if !o.force {
                bail!(
                    "{} is not empty; pass --force to replace the tree generated there",
                    out.display()
                );
            }
            let docker = out.join("docker");
            if docker.exists() {
                fs::remove_dir_all(&docker)
                    .with_context(|| format!("removing {}", docker.display()))?;
            }
            let gm = out.join(GEN_MANIFEST);
            if gm.exists() {
                fs::remove_file(&gm).with_context(|| format!("removing {}", gm.display()))?;
            }
        }
    }
    fs::create_dir_all(out.join(write::LAYOUT).join("blobs/sha256"))
        .with_context(|| format!("creating {}", out.display()))?;
    fs::create_dir_all(out.join(write::LAYOUT).join("repositories"))
        .with_context(|| format!("creating {}", out.display()))?;
    Ok(())
}

/// What [`generate_inventory`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySummary {
    /// Rows of the report (objects of the bucket).
    pub objects: u64,
    /// Bytes those objects hold.
    pub bytes: u64,
    /// Blobs among them.
    pub blobs: u64,
}

/// Write the registry `o` describes as a provider inventory report plus the pack of the
/// files a scan reads ([`inventory`]), not as a tree.
pub fn generate_inventory(o: &Options) -> Result<InventorySummary> {
    if o.blobs < 20 {
        bail!("--blobs must be at least 20");
    }
    let run = || -> Result<InventorySummary> {
        let inv = o.out.join("inventory");
        if inv.exists() {
            if !o.force {
                bail!("{} exists; pass --force to replace it", inv.display());
            }
            fs::remove_dir_all(&inv).with_context(|| format!("removing {}", inv.display()))?;
        }
        fs::create_dir_all(inv.join("data"))
            .with_context(|| format!("creating {}", inv.display()))?;
        // Shard by shard: one shard's plan is in memory at a time, its rows and pack
        // entries streamed out, so memory is bounded by the shard's size, not the total's.
        let shards = o.shards.max(1);
        let mut report = inventory::Report::create(&o.out, o.inventory_format)?;
        let mut blobs = 0u64;
        for k in 0..shards {
            let mut so = o.clone();
            so.blobs = (o.blobs / u64::from(shards)).max(20);
            so.seed = o
                .seed
                .wrapping_add(u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let params = derived_params(&so);
            let (mut plan, fin) = calibrate(&params, so.blobs);
            if shards > 1 {
                // Each shard is a group of the registry (as GitLab's groups are).
                for r in &mut plan.repos {
                    r.name = format!("group-{k:04}/{}", r.name);
                }
            }
            let mat = write::materialize(&plan, &fin)?;
            report.add(&plan, &fin, &mat)?;
            blobs += fin.blobs.iter().filter(|b| b.present).count() as u64;
        }
        let (objects, bytes) = report.finish(o.now)?;
        Ok(InventorySummary {
            objects,
            bytes,
            blobs,
        })
    };
    match o.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .context("starting worker threads")?
            .install(run),
        None => run(),
    }
}

/// Generate the tree described by `o`; returns what was written.
pub fn generate(o: &Options) -> Result<Summary> {
    if o.blobs < 20 {
        bail!("--blobs must be at least 20");
    }
    if !(o.size_scale >= 0.0 && o.size_scale <= 1.0) {
        bail!("--size-scale must be between 0 and 1");
    }
    if !(0.0..=1.0).contains(&o.multiarch) || !(0.0..=1.0).contains(&o.oci) {
        bail!("--multiarch and --oci are shares between 0 and 1");
    }
    if o.history_days < 14 {
        bail!("--history-days must be at least 14");
    }
    if o.profile == Profile::Ci && (o.repos.is_some() || o.base_images.is_some()) {
        bail!(
            "--repos and --base-images do not apply to --profile ci (it derives them from --blobs)"
        );
    }
    match o.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .context("starting worker threads")?
            .install(|| generate_in_pool(o)),
        None => generate_in_pool(o),
    }
}

fn generate_in_pool(o: &Options) -> Result<Summary> {
    prepare_out(o)?;
    let params = derived_params(o);
    let (plan, fin) = calibrate(&params, o.blobs);
    let out = o.out.as_path();

    let mat = write::materialize(&plan, &fin)?;
    let (mut book, blob_leaf_dirs) = write::blob_book(out, &fin, &mat)?;
    write::write_blobs(out, &plan, &fin, &mat)?;
    write::create_repo_dirs(out, &plan, &fin)?;
    let repos: Vec<write::RepoOut> = (0..plan.repos.len())
        .into_par_iter()
        .map(|r| write::write_repo(out, &plan, &fin, &mat, r))
        .collect::<Result<_>>()?;

    let mut s = Summary::default();
    let marked = sim::mark(&plan, &fin.blobs, &fin.repos);
    for (b, st) in fin.blobs.iter().enumerate() {
        if !st.present {
            continue;
        }
        s.blobs += 1;
        s.blob_bytes += mat.size[b];
        match plan.blobs[b] {
            BlobSpec::Layer(_) => s.layers += 1,
            BlobSpec::Config(_) => s.configs += 1,
            BlobSpec::Manifest(_) => s.manifests += 1,
            BlobSpec::Index(_) => s.indexes += 1,
        }
        if !marked[b] {
            s.orphans += 1;
        }
    }
    s.files = s.blobs;
    s.bytes = s.blob_bytes;
    let mut leaf_dirs = blob_leaf_dirs;
    let mut names = Vec::new();
    let mut tags = Vec::new();
    for (r, ro) in repos.into_iter().enumerate() {
        s.files += ro.files;
        s.bytes += ro.bytes;
        leaf_dirs += ro.leaf_dirs;
        s.layer_links += ro.layer_links;
        s.dangling_layer_links += ro.dangling_layer_links;
        s.revision_links += ro.revision_links;
        s.deleted_revisions += ro.deleted_revisions;
        s.untagged_manifests += ro.untagged_manifests;
        s.tag_index_links += ro.tag_index_links;
        s.dangling_tag_index_links += ro.dangling_tag_index_links;
        s.uploads += ro.uploads;
        s.tags += ro.tags.len() as u64;
        if ro.exists {
            s.repos += 1;
            names.push(plan.repos[r].name.clone());
        }
        if ro.has_manifests {
            s.repos_with_manifests += 1;
        }
        tags.extend(ro.tags);
        book.merge(ro.book);
    }
    s.dirs = leaf_dirs + book.dir_count() as u64;
    let dirs = book.finish();
    dirs.par_iter()
        .map(|(d, t)| {
            write::set_dir_time(&out.join(d), *t)
                .with_context(|| format!("setting the mtime of {d}"))
        })
        .collect::<Result<()>>()?;

    names.sort();
    tags.sort();
    let gm = GenManifest {
        generator: format!("stowage-gen {}", env!("CARGO_PKG_VERSION")),
        options: recorded(o, &params, &plan),
        summary: s.clone(),
        repositories: names,
        tags,
    };
    let mut text = serde_json::to_vec_pretty(&gm).context("encoding gen-manifest.json")?;
    text.push(b'\n');
    write::write_file(&out.join(GEN_MANIFEST), &text, o.now)
        .with_context(|| format!("writing {}", out.join(GEN_MANIFEST).display()))?;
    write::set_dir_time(out, o.now)
        .with_context(|| format!("setting the mtime of {}", out.display()))?;
    Ok(s)
}

/// The options as gen-manifest.json records them: for the CI profile, the repositories and
/// base images it derived, and no GC runs or uploads.
fn recorded(o: &Options, params: &Params, plan: &plan::Plan) -> RecordedOptions {
    let ci = o.profile == Profile::Ci;
    let (repos, base_images, gc_runs, uploads) = if ci {
        let n = plan.repos.len() as u32;
        (n, plan::ci::pool_bases(u64::from(n)), 0, 0)
    } else {
        (params.repos, params.families, o.gc_runs, params.uploads)
    };
    RecordedOptions {
        seed: o.seed,
        blobs: o.blobs,
        repos,
        base_images,
        size_scale: o.size_scale,
        now: time::rfc3339(o.now),
        history_days: o.history_days,
        multiarch: o.multiarch,
        oci: o.oci,
        gc_runs,
        uploads,
        digest_only_repos: o.digest_only_repos,
        gc_times: plan.gc_times.iter().map(|&t| time::rfc3339(t)).collect(),
        profile: ci.then(|| "ci".to_string()),
    }
}
