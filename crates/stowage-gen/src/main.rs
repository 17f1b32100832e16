//! `stowage-gen`: write a deterministic, realistic registry storage tree. See the library docs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use stowage_gen::{DEFAULT_NOW, DEFAULT_SIZE_SCALE, Options, generate, time};

/// Generate a deterministic, realistic CNCF distribution (registry 2.8) storage tree.
///
/// Writes OUT/docker/registry/v2/... (OUT is the registry's `rootdirectory`) and
/// OUT/gen-manifest.json (summary and every repo:tag), then prints the summary as one line
/// of JSON. The same flags always give a byte-identical tree with identical mtimes.
#[derive(Parser, Debug)]
#[command(name = "stowage-gen", version)]
struct Cli {
    /// Output directory (the registry rootdirectory); must be empty unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Target total number of blobs (met within a few percent; the fixed set of base images
    /// and feature-carrying repositories needs about 200, smaller targets give that).
    #[arg(long)]
    blobs: u64,
    /// Seed of every random decision.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Repositories in total, base-image repositories included [default: blobs/120].
    #[arg(long)]
    repos: Option<u32>,
    /// Base image families mirrored under library/ (1-10) [default: 2 + blobs/5000].
    #[arg(long)]
    base_images: Option<u32>,
    /// On-disk layer size relative to its realistic size (1.0 = real sizes).
    #[arg(long, default_value_t = DEFAULT_SIZE_SCALE)]
    size_scale: f64,
    /// The present moment the history leads up to (RFC 3339).
    #[arg(long, default_value = DEFAULT_NOW)]
    now: String,
    /// Length of the push history before --now, in days.
    #[arg(long, default_value_t = 365)]
    history_days: u32,
    /// Share of application repositories building multi-arch images (OCI index / manifest list).
    #[arg(long, default_value_t = 0.2)]
    multiarch: f64,
    /// Share of application repositories pushing OCI manifests (the rest: Docker schema2).
    #[arg(long, default_value_t = 0.5)]
    oci: f64,
    /// Registry garbage collections (2.8, without --delete-untagged) during the history.
    #[arg(long, default_value_t = 2)]
    gc_runs: u32,
    /// Abandoned uploads besides those of failed pushes [default: blobs/200, at least 3].
    #[arg(long)]
    uploads: Option<u32>,
    /// Tag every repository at least once. By default a few repositories are only ever
    /// pushed to by digest (no _manifests/tags/), as GitOps pipelines do; registry 2.8's
    /// `garbage-collect --delete-untagged` aborts on those.
    #[arg(long)]
    no_digest_only_repos: bool,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Write into a non-empty OUT (removes OUT/docker and OUT/gen-manifest.json first).
    #[arg(long)]
    force: bool,
    /// Write the registry as its bucket's S3 Inventory report (OUT/inventory/manifest.json)
    /// plus only the files a scan reads (manifests, tag links), not as a tree: scale runs
    /// with `stowage --storage OUT --from-inventory OUT/inventory/manifest.json`.
    #[arg(long)]
    inventory: bool,
    /// The inventory's data files: gzip'd CSV or Parquet (S3 Inventory's two common formats).
    #[arg(long, value_enum, default_value_t = InventoryFormat::Csv)]
    inventory_format: InventoryFormat,
    /// Inventory mode: generate the registry as N groups (`group-NNNN/...`) one after the
    /// other, so that memory is one group's: 100 million objects in 100 shards need the
    /// memory of one million.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// The registry's shape. realistic: a drawn year of CI history with every case a real
    /// registry accumulates. ci: a fixed, countable CI registry (10 tags per repository, 2 of
    /// them moved, an OCI index every 10th tag, 60% of layers from a shared base pool, a few
    /// pushes by digest and failed pushes, one repository in 200 removed by hand); it derives
    /// its repositories from --blobs (--repos, --base-images, --multiarch, --gc-runs,
    /// --uploads do not apply).
    #[arg(long, value_enum, default_value_t = ProfileArg::Realistic)]
    profile: ProfileArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ProfileArg {
    Realistic,
    Ci,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum InventoryFormat {
    Csv,
    Parquet,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(now) = time::parse_rfc3339(&cli.now) else {
        eprintln!("stowage-gen: --now {:?} is not an RFC 3339 time", cli.now);
        return ExitCode::from(2);
    };
    let mut o = Options::new(cli.out, cli.blobs);
    o.seed = cli.seed;
    o.repos = cli.repos;
    o.base_images = cli.base_images;
    o.size_scale = cli.size_scale;
    o.now = now;
    o.history_days = cli.history_days;
    o.multiarch = cli.multiarch;
    o.oci = cli.oci;
    o.gc_runs = cli.gc_runs;
    o.uploads = cli.uploads;
    o.digest_only_repos = !cli.no_digest_only_repos;
    o.threads = cli.threads;
    o.force = cli.force;
    o.shards = cli.shards;
    o.profile = match cli.profile {
        ProfileArg::Realistic => stowage_gen::Profile::Realistic,
        ProfileArg::Ci => stowage_gen::Profile::Ci,
    };
    o.inventory_format = match cli.inventory_format {
        InventoryFormat::Csv => stowage_gen::inventory::Format::Csv,
        InventoryFormat::Parquet => stowage_gen::inventory::Format::Parquet,
    };
    let started = Instant::now();
    if cli.inventory {
        return match stowage_gen::generate_inventory(&o) {
            Ok(s) => {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
                eprintln!(
                    "stowage-gen: wrote an inventory of {} objects ({} blobs) into {} in {:.1}s",
                    s.objects,
                    s.blobs,
                    o.out.join("inventory").display(),
                    started.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stowage-gen: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match generate(&o) {
        Ok(s) => {
            match serde_json::to_string(&s) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("stowage-gen: {e}");
                    return ExitCode::FAILURE;
                }
            }
            eprintln!(
                "stowage-gen: wrote {} files ({} blobs) into {} in {:.1}s",
                s.files,
                s.blobs,
                o.out.display(),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stowage-gen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
