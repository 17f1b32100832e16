//! Raw command-line arguments (clap types), kept apart from resolved settings.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "stowage",
    version,
    about = "See exactly what a container registry's storage holds, and reclaim space without breaking images.",
    long_about = "stowage reads the storage of a CNCF distribution registry (registry:2, GitLab's registry) \
directly: every blob with its size, date, kind and who needs it, per-repository and per-tag sizes, \
orphans, stale uploads and integrity problems. Every command here is read-only."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The registry's storage: its `rootdirectory`, the `docker/registry/v2` directory, or
    /// GitLab's omnibus registry path; or an object store: `s3://bucket/rootdirectory`,
    /// `gs://bucket/rootdirectory`, `az://container/rootdirectory`.
    #[arg(long, global = true, env = "STOWAGE_STORAGE", value_name = "PATH|URL")]
    pub storage: Option<PathBuf>,

    /// S3: a custom endpoint (MinIO, Ceph, ...; default: AWS_ENDPOINT_URL, else AWS).
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// S3: the region (default: AWS_REGION, AWS_DEFAULT_REGION, the AWS profile, us-east-1).
    #[arg(long, global = true, value_name = "REGION")]
    pub s3_region: Option<String>,

    /// S3: path-style requests (endpoint/bucket/key); the default with a custom endpoint.
    #[arg(long, global = true)]
    pub s3_path_style: bool,

    /// Object stores: allow plain HTTP to a non-loopback endpoint (loopback always may).
    #[arg(long, global = true)]
    pub allow_http: bool,

    /// Read the storage location from the registry's own config.yml.
    #[arg(long, global = true, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,

    /// Output format. Tables are for people; json, ndjson, csv and parquet have a versioned
    /// schema (docs/json-schema.md, docs/analytics.md).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Storage operations kept in flight (default: chosen from the storage type; see --verbose).
    #[arg(long, global = true, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Pretend the current time is this (RFC 3339), for reproducible output.
    #[arg(long, global = true, value_name = "TIME")]
    pub now: Option<String>,

    /// Never show a progress display.
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Say what stowage decided and why (storage type, concurrency, scan counters) on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Plan deletions although the storage looks like GitLab's metadata database is in use
    /// (blobs far newer than any link). A registry config with `database.enabled: true` is
    /// never overridden.
    #[arg(long, global = true)]
    pub unsafe_ignore_metadata_signature: bool,

    /// Where the scan cache lives (manifests by digest, tag links by ETag): a re-scan reads
    /// only what changed. Default `$XDG_CACHE_HOME/stowage` (`~/.cache/stowage`), used on
    /// object stores and network filesystems; given explicitly, used on every storage.
    #[arg(long, global = true, value_name = "DIR", env = "STOWAGE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// List the storage from the provider's own inventory report instead of LIST requests:
    /// an S3 Inventory `manifest.json`, a GCS inventory report manifest or an Azure Blob
    /// Inventory manifest (CSV data files, gzip or not), a local path or an object URL
    /// (reached with the storage's endpoint and credentials). Only tag links and manifests
    /// not in the cache are read. The report's date is the scan's date (unless --now).
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub from_inventory: Option<String>,

    /// Read everything from the storage; neither use nor update the scan cache.
    #[arg(long, global = true, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Ndjson,
    Csv,
    /// The JSON records as a Parquet table (inventory, du, tags, history; needs -o FILE;
    /// docs/analytics.md).
    Parquet,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every blob: size, date, kind, and which repositories, tags and manifests need it.
    Inventory(InventoryArgs),
    /// Repositories as a tree with total, exclusive and shared bytes.
    Du(DuArgs),
    /// A repository's tags: digest, type, platforms, sizes, when each last moved, history.
    Tags(TagsArgs),
    /// Explain a digest, a storage path or an image reference in plain words.
    Explain(ExplainArgs),
    /// Integrity problems (exit status 1 when any are found).
    Check(CheckArgs),
    /// Plan a garbage collection (read-only): what would be deleted, with exact bytes.
    Gc(GcArgs),
    /// Plan a retention policy (read-only): every image's decision with reasons, exact bytes.
    Plan(PlanArgs),
    /// Check a retention policy file (errors and lints) or print its JSON Schema.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Execute a plan: re-check every target, delete (or quarantine) in a safe order, journal.
    Apply(ApplyArgs),
    /// Put back everything an apply moved into a quarantine directory.
    Restore(RestoreArgs),
    /// Manage quarantine directories.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// A self-contained HTML report (treemap, top repositories and tags, reclaimable space,
    /// findings, largest blobs), with every blob in a CSV file beside it.
    Report(crate::commands::report::ReportArgs),
    /// Prometheus metrics (text format) for the node-exporter textfile collector.
    Metrics(crate::commands::metrics::MetricsArgs),
    /// A read-only dashboard, JSON API and /metrics over a scan refreshed on an interval.
    Serve(crate::commands::serve::ServeArgs),
    /// Record this scan's per-repository and per-tag figures in a history database (SQLite).
    Snapshot(crate::commands::snapshot::SnapshotArgs),
    /// Growth per repository between snapshots of a history database.
    History(crate::commands::history::HistoryArgs),
    /// Last pulls: images never pulled, bytes by last-pull age; `usage ingest` reads the
    /// registry's access logs into the history database.
    Usage(crate::commands::usage::UsageArgs),
    /// Copy the registry to another backend (filesystem, S3, GCS, Azure): blobs first and
    /// links last, every blob's sha256 checked, resumable, --incremental. A dry run unless --yes.
    Migrate(crate::commands::migrate::MigrateArgs),
    /// A pull-through cache: each cached repository, manifest and blob with when it was
    /// cached and when it expires, and the expired bytes still stored.
    Cache(crate::commands::cache::CacheArgs),
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Also delete manifests no tag points at (index children and referrers of kept images
    /// are kept, unlike the registry's own GC), with their tag-history entries.
    #[arg(long, short = 'm')]
    pub delete_untagged: bool,
    /// Nothing modified more recently than this is planned ("0s" turns it off).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
    /// Also delete upload directories started longer ago than this (e.g. 7d).
    #[arg(long, value_name = "AGE")]
    pub uploads_older_than: Option<String>,
    /// Also delete _layers links and tag-history entries whose blob is gone (or goes now).
    #[arg(long)]
    pub dangling_links: bool,
    /// Also remove directories left empty.
    #[arg(long)]
    pub empty_dirs: bool,
    /// All of the extra cleanups: --dangling-links --empty-dirs --uploads-older-than 7d.
    #[arg(long)]
    pub tidy: bool,
    /// Also remove signature tags whose subject no repository holds any more (cosign's
    /// sha256-<hex>.sig/.att/.sbom, referrers-tag-schema indexes), in any repository; with
    /// -m their manifests and blobs go too. Apply re-checks that each subject is still gone.
    #[arg(long)]
    pub orphan_signatures: bool,
    /// Pull-through caches: also evict the least recently cached images until the cache's
    /// stored bytes fit in this size (e.g. 200GiB); see docs/cache.md.
    #[arg(long, value_name = "SIZE")]
    pub cache_max_bytes: Option<String>,
    /// Save the plan here (JSON) for `stowage apply`.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Check the plan against the pull data in this history database: the recent pulls it
    /// would break (a digest pull of an untagged manifest, with -m), as retention plans are.
    #[arg(long, value_name = "DB")]
    pub pulls: Option<std::path::PathBuf>,
    /// With --pulls: what a plan that would break recent pulls does. `block`: apply refuses
    /// it (and a plan that could not be checked); `warn`: it says so; `accept`: nothing.
    #[arg(long, value_name = "ACTION", default_value = "warn", requires = "pulls",
          value_parser = ["warn", "block", "accept"])]
    pub would_break: String,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The plan file written by `stowage gc --out` or `stowage plan --policy P -o`.
    pub plan: std::path::PathBuf,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Move targets into this directory instead of deleting them (same filesystem);
    /// `stowage restore DIR` puts them back.
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<std::path::PathBuf>,
    /// Journal file (default: PLAN.journal, or inside the quarantine batch).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<std::path::PathBuf>,
    /// Refuse to run when the registry looks live (recent uploads or pushes).
    #[arg(long)]
    pub require_quiet: bool,
    /// Retention plans: also delete the blobs the plan frees (exactly its preview).
    #[arg(long)]
    pub gc: bool,
    /// The registry is stopped or read-only: delete directly, without the fence, settle
    /// and verify steps of an online apply (the default).
    #[arg(long)]
    pub offline: bool,
    /// Online: how long to wait after fencing the targets before verifying, longer than any
    /// push request can take (default 60s).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub settle: String,
    /// The registry's blob descriptor cache (`storage.cache.blobdescriptor`), when
    /// --registry-config is not given: none, inmemory or redis.
    #[arg(long, value_name = "CACHE")]
    pub registry_cache: Option<RegistryCacheArg>,
    /// Online: the command that restarts the registry (run with `sh -c` after the fence,
    /// waited for; needed with the inmemory cache), e.g. 'systemctl restart docker-registry'.
    #[arg(long, value_name = "CMD")]
    pub registry_restart: Option<String>,
    /// Online: the registry's URL, to wait until it answers after --registry-restart.
    #[arg(long, value_name = "URL")]
    pub registry_url: Option<String>,
    /// Online: keep the fenced targets in the quarantine batch instead of deleting them
    /// (`stowage quarantine purge DIR --older-than AGE` deletes them later).
    #[arg(long, value_name = "AGE")]
    pub keep_quarantine: Option<String>,
    /// Redis address for --registry-cache redis (host:port), when no registry config says.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
    pub redis_addr: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryCacheArg {
    None,
    Inmemory,
    Redis,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The quarantine directory (or one batch inside it).
    pub dir: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum QuarantineCommand {
    /// Delete quarantine batches older than an age.
    Purge(PurgeArgs),
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    pub dir: std::path::PathBuf,
    /// Only batches created longer ago than this.
    #[arg(long, value_name = "AGE")]
    pub older_than: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobSort {
    Digest,
    Size,
    Date,
    Kind,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindArg {
    Manifest,
    Index,
    Config,
    Layer,
    Unknown,
}

#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// Only blobs needed by (or linked into) repositories matching this glob (`team/**`).
    #[arg(long, value_name = "GLOB")]
    pub repo: Vec<String>,
    /// Only blobs of these kinds.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kind: Vec<KindArg>,
    /// Only blobs nothing references (what the registry's GC would delete).
    #[arg(long, conflicts_with = "referenced")]
    pub unreferenced: bool,
    /// Only referenced blobs.
    #[arg(long)]
    pub referenced: bool,
    /// Only blobs last modified longer ago than this (`30d`, `12h`).
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
    /// Only blobs modified more recently than this.
    #[arg(long, value_name = "AGE")]
    pub newer_than: Option<String>,
    /// Only blobs at least this big (`10MiB`, `1GB`, `500`).
    #[arg(long, value_name = "SIZE")]
    pub min_size: Option<String>,
    /// Sort order.
    #[arg(long, value_enum, default_value_t = BlobSort::Digest)]
    pub sort: BlobSort,
    /// Reverse the sort (largest or newest first for size/date).
    #[arg(long)]
    pub reverse: bool,
    /// At most this many blob records.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Also list every link file (layer, revision, tag current and history links).
    #[arg(long)]
    pub links: bool,
    /// Also list upload directories.
    #[arg(long)]
    pub uploads: bool,
    /// Add each blob's last pull (the latest pull of any image needing it) from this history
    /// database's pull data (`last_pulled`; see docs/usage.md).
    #[arg(long, value_name = "FILE")]
    pub db: Option<std::path::PathBuf>,

    /// Write the output to FILE instead of standard output. `--format parquet`, or a name
    /// ending in `.parquet`, writes Parquet (the JSON records' fields as columns, for DuckDB,
    /// Spark, Trino, Athena; docs/analytics.md).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuSort {
    Total,
    Exclusive,
    Shared,
    Name,
}

#[derive(Args, Debug)]
pub struct DuArgs {
    /// Show the tree down to this depth (1 = top-level namespaces).
    #[arg(long, value_name = "N")]
    pub depth: Option<u32>,
    /// Order of siblings (largest first, except by name).
    #[arg(long, value_enum, default_value_t = DuSort::Total)]
    pub sort: DuSort,
    /// Write the output to FILE (`--format parquet`, or a name ending in `.parquet`: Parquet).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct TagsArgs {
    /// Repository name (`team/app/api`).
    pub repository: String,
    /// Print each tag's full history.
    #[arg(long)]
    pub history: bool,
    /// Show when each tag's image was last pulled, from this history database's pull data
    /// (`stowage usage ingest`, or notifications to `stowage serve --history`).
    #[arg(long, value_name = "FILE")]
    pub db: Option<std::path::PathBuf>,
    /// Write the output to FILE (`--format parquet`, or a name ending in `.parquet`:
    /// Parquet, the tags in FILE and their history beside it in `FILE.history.parquet`).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A digest (`sha256:...`), a path under the storage (absolute or relative to
    /// docker/registry/v2), or an image reference (`repo:tag`, `repo@sha256:...`).
    /// With a second argument: a retention plan file.
    pub target: String,
    /// With a plan file as the first argument: the image whose decision to trace
    /// (`repo:tag`, `repo@sha256:...`, or `repo` for all its images).
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: Option<PlanCommand>,
    /// The retention policy (YAML; `stowage policy schema` prints its JSON Schema).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write the plan (JSON) here, for review and `stowage apply`.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Let a repository lose every image (also needs allow_empty_repository in the policy).
    #[arg(long)]
    pub unsafe_allow_empty: bool,
    /// How long the plan stays valid; apply refuses an older plan.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub expires: String,
    /// Check the plan against the pull data in this history database (recent pulls it would
    /// break), when the policy names no `settings.pull_sources`.
    #[arg(long, value_name = "DB")]
    pub pulls: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Summarise a plan file: per repository, per rule, bytes, blocked rails.
    Show { plan: PathBuf },
    /// Which recent pulls a plan (retention or `gc -m`) would have made fail.
    Replay(PlanReplayArgs),
    /// Evaluate a policy at each day of the pull history: bytes it would have freed and pulls
    /// it would have broken per day.
    Simulate(PlanSimulateArgs),
    /// Delete whole repositories (names or globs): links, tag history, uploads, with the
    /// exact bytes GC frees after it and the blobs that stay shared.
    RepoDelete(crate::commands::surgery::RepoDeleteArgs),
    /// Move (or --copy) a repository to a new name: links are created and read back under
    /// the destination, then the source is removed.
    RepoMove(crate::commands::surgery::RepoMoveArgs),
    /// Delete tags alone (REPO:TAG): the manifest stays while anything references it.
    TagDelete(crate::commands::surgery::TagDeleteArgs),
}

#[derive(Args, Debug)]
pub struct PlanReplayArgs {
    /// The plan file (`stowage plan -o`, `stowage gc --out`).
    pub plan: PathBuf,
    /// The history database with the pull data (`stowage usage ingest --db`).
    #[arg(long, value_name = "DB")]
    pub db: PathBuf,
    /// How far back from now (`--now`) to replay pulls (`90d`); default: all the data.
    #[arg(long, value_name = "DURATION")]
    pub from: Option<String>,
}

#[derive(Args, Debug)]
pub struct PlanSimulateArgs {
    /// The retention policy to try.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The history database with the pull data (default: the policy's pull source).
    #[arg(long, value_name = "DB")]
    pub db: Option<PathBuf>,
    /// How far back from now to start (`90d`).
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub from: String,
    /// The step between simulated days (`1d`).
    #[arg(long, default_value = "1d", value_name = "DURATION")]
    pub every: String,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file and warn about known traps (exit 1 on warnings, 2 on errors).
    Check(PolicyCheckArgs),
    /// Print the policy file's JSON Schema.
    Schema,
}

#[derive(Args, Debug)]
pub struct PolicyCheckArgs {
    pub file: PathBuf,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Re-hash every blob and compare with its digest (reads all data).
    #[arg(long)]
    pub verify_digests: bool,
    /// Trust 71-byte link files instead of reading each one (as inventory does); by default
    /// `check` reads every link and compares it with the digest its path names.
    #[arg(long)]
    pub fast: bool,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_enum, default_value_t = Level::Warning)]
    pub fail_on: Level,
}

/// Which pulls are not use (shared by `usage ingest` and `serve`).
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Ignore pulls by user agents matching this glob (case-insensitive; repeatable), in
    /// addition to the default list of scanners and probes (see docs/usage.md).
    #[arg(long, value_name = "GLOB")]
    pub ignore_user_agent: Vec<String>,
    /// Ignore pulls from this address or CIDR (repeatable): `10.8.0.0/16`.
    #[arg(long, value_name = "CIDR")]
    pub ignore_addr: Vec<String>,
    /// Do not ignore the default scanners and probes.
    #[arg(long)]
    pub no_default_ignores: bool,
    /// A YAML file with `ignore-user-agents`, `ignore-addresses`, `no-default-ignores`
    /// (added to the flags).
    #[arg(long, value_name = "FILE")]
    pub usage_filters: Option<PathBuf>,
}

impl FilterArgs {
    pub fn filter(&self) -> anyhow::Result<stowage_usage::Filter> {
        let mut c = match &self.usage_filters {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                serde_yaml_ng::from_str::<stowage_usage::FilterConfig>(&t)
                    .with_context(|| format!("{}", p.display()))?
            }
            None => stowage_usage::FilterConfig::default(),
        };
        c.ignore_user_agents
            .extend(self.ignore_user_agent.iter().cloned());
        c.ignore_addresses.extend(self.ignore_addr.iter().cloned());
        c.no_default_ignores |= self.no_default_ignores;
        Ok(stowage_usage::Filter::new(&c)?)
    }
}
