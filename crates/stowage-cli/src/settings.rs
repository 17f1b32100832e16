//! Settings resolution: from raw arguments (and the environment, and the registry's config)
//! to what the commands use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use stowage_model::time::Timestamp;
use stowage_plan::metadata_db::Evidence;
use stowage_storage::registry_config::{Driver, RegistryConfig, gitlab_omnibus_config};
use stowage_storage::{FsStorage, RootLayout, Storage, StorageWrite, resolve_root};

use crate::args::GlobalArgs;

/// Resolved settings shared by every command.
pub struct Settings {
    pub storage: Arc<dyn Storage>,
    /// The same storage, with write access: only `apply` and `restore` use it.
    pub writable: Arc<dyn StorageWrite>,
    pub concurrency: usize,
    pub now: Timestamp,
    pub tz: jiff::tz::TimeZone,
    pub progress: bool,
    pub verbose: bool,
    pub format: crate::args::Format,
    /// The registry's config, when given (the plan/apply commands read its maintenance mode).
    pub registry_config: Option<RegistryConfig>,
    /// A registry config (given, or GitLab omnibus's found from the storage path) enables
    /// GitLab's metadata database: the links are not the truth, nothing may be deleted.
    pub metadata_database: Option<Evidence>,
    /// `--unsafe-ignore-metadata-signature`.
    pub ignore_metadata_signature: bool,
    /// The scan cache's directory (`None`: no cache), see [`cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// `--from-inventory`: the report the listing came from, and its date.
    pub listing: Option<(String, Timestamp)>,
}

/// The scan cache's directory: `--cache-dir` on any storage; by default
/// `$XDG_CACHE_HOME/stowage` (else `~/.cache/stowage`) where a read is a round trip (object
/// stores, network filesystems); none with `--no-cache`, or on a local disk by default (the
/// cache would be another local disk read).
pub fn cache_dir(g: &GlobalArgs, backend: &stowage_storage::BackendKind) -> Option<PathBuf> {
    if g.no_cache {
        return None;
    }
    if let Some(d) = &g.cache_dir {
        return Some(d.clone());
    }
    if !backend.is_latency_bound() {
        return None;
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("stowage"))
}

/// Read a registry config, naming its path in every error.
fn read_config(cfg: &Path) -> Result<RegistryConfig> {
    let text =
        std::fs::read_to_string(cfg).with_context(|| format!("reading {}", cfg.display()))?;
    RegistryConfig::parse(&text).with_context(|| format!("{}", cfg.display()))
}

/// The metadata-database evidence of a config, if it enables the database.
fn config_evidence(cfg: &Path, rc: &RegistryConfig) -> Option<Evidence> {
    rc.metadata_database.then(|| Evidence::Config {
        path: cfg.display().to_string(),
    })
}

/// Where the storage is, before it is opened.
#[derive(Clone)]
enum Location {
    Path(PathBuf),
    /// An object-store URL and how to reach it (from flags, or the registry's `s3` section).
    Object {
        url: String,
        endpoint: Option<String>,
        region: Option<String>,
        path_style: Option<bool>,
        allow_http: Option<bool>,
        keys: Option<(String, String)>,
    },
}

fn object_location(url: String, g: &GlobalArgs) -> Location {
    Location::Object {
        url,
        endpoint: g.s3_endpoint.clone(),
        region: g.s3_region.clone(),
        path_style: g.s3_path_style.then_some(true),
        allow_http: g.allow_http.then_some(true),
        keys: None,
    }
}

/// What the registry's `s3` driver section means, in stowage's terms. Flags given on the
/// command line win over the config.
fn s3_location(d: &Driver, g: &GlobalArgs) -> Option<Location> {
    let Driver::S3 {
        bucket,
        region,
        regionendpoint,
        rootdirectory,
        forcepathstyle,
        secure,
        accesskey,
        secretkey,
    } = d
    else {
        return None;
    };
    // The driver takes `regionendpoint` with or without a scheme; `secure` picks it when absent.
    let endpoint = regionendpoint.as_ref().filter(|e| !e.is_empty()).map(|e| {
        if e.contains("://") {
            e.clone()
        } else if *secure {
            format!("https://{e}")
        } else {
            format!("http://{e}")
        }
    });
    Some(Location::Object {
        url: format!("s3://{bucket}/{}", rootdirectory.trim_matches('/')),
        // The 2.8 driver uses path-style requests whenever it has a regionendpoint.
        path_style: Some(g.s3_path_style || *forcepathstyle || endpoint.is_some()),
        endpoint: g.s3_endpoint.clone().or(endpoint),
        region: g.s3_region.clone().or_else(|| region.clone()),
        allow_http: (g.allow_http || !*secure).then_some(true),
        keys: accesskey.clone().zip(secretkey.clone()),
    })
}

impl Settings {
    pub fn resolve(g: &GlobalArgs) -> Result<Settings> {
        let (location, registry_config) = match (&g.storage, &g.registry_config) {
            (Some(p), _) => match p.to_str() {
                Some(u) if u.contains("://") => (object_location(u.to_owned(), g), None),
                _ => (Location::Path(p.clone()), None),
            },
            (None, Some(cfg)) => {
                let rc = read_config(cfg)?;
                let loc = match &rc.driver {
                    Driver::Filesystem { rootdirectory } => Location::Path(rootdirectory.clone()),
                    d @ Driver::S3 { .. } => s3_location(d, g).context("s3 driver")?,
                    Driver::Unsupported { name } => bail!(
                        "{}: stowage reads the filesystem and s3 drivers from a registry config, not {name}; \
                         pass --storage gs://bucket/rootdirectory or az://container/rootdirectory instead",
                        cfg.display()
                    ),
                };
                (loc, Some(rc))
            }
            (None, None) => bail!(
                "no storage given: pass --storage PATH (the registry's rootdirectory, e.g. /var/lib/registry) \
                 or --storage s3://bucket/rootdirectory, set STOWAGE_STORAGE, or pass --registry-config \
                 /etc/docker/registry/config.yml"
            ),
        };
        // With --storage too, the config is still read for its metadata-database switch.
        let mut metadata_database = match (&g.storage, &g.registry_config, &registry_config) {
            (_, Some(cfg), Some(rc)) => config_evidence(cfg, rc),
            (Some(_), Some(cfg), None) => config_evidence(cfg, &read_config(cfg)?),
            _ => None,
        };
        // Kept for reading a provider inventory report from a bucket with the same client.
        let object_location = matches!(location, Location::Object { .. }).then(|| location.clone());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let (storage, writable, how, backend): (Arc<dyn Storage>, Arc<dyn StorageWrite>, _, _) =
            match location {
                // A pack (`stowage-gen --inventory`'s reads.pack): a scale-run fixture that
                // only answers reads, under --from-inventory.
                Location::Path(path) if path.is_file() => {
                    let pack = Arc::new(
                        stowage_storage::pack::PackStorage::open(&path)
                            .with_context(|| format!("opening storage {}", path.display()))?,
                    );
                    let backend = pack.backend();
                    (pack.clone(), pack, RootLayout::LayoutRoot, backend)
                }
                Location::Path(path) => {
                    let resolved = resolve_root(&path)
                        .with_context(|| format!("opening storage {}", path.display()))?;
                    let fs = Arc::new(
                        FsStorage::open(&resolved.layout_root)
                            .with_context(|| format!("opening storage {}", path.display()))?,
                    );
                    let backend = fs.backend();
                    // GitLab omnibus keeps the registry's config beside its storage: read it
                    // without being asked, since its metadata database forbids deleting.
                    if metadata_database.is_none()
                        && let Some(cfg) = gitlab_omnibus_config(&resolved.layout_root)
                    {
                        metadata_database = config_evidence(&cfg, &read_config(&cfg)?);
                    }
                    (fs.clone(), fs, resolved.how, backend)
                }
                Location::Object {
                    url,
                    endpoint,
                    region,
                    path_style,
                    allow_http,
                    keys,
                } => {
                    let backend = stowage_storage::BackendKind::ObjectStore {
                        scheme: url.split("://").next().unwrap_or("").to_owned(),
                    };
                    let conc = g
                        .concurrency
                        .unwrap_or_else(|| backend.default_concurrency(cores))
                        .max(1);
                    let (store, how) = open_object_store(
                        &url, endpoint, region, path_style, allow_http, keys, conc, g.verbose,
                    )?;
                    (store.clone(), store, how, backend)
                }
            };
        let concurrency = g
            .concurrency
            .unwrap_or_else(|| backend.default_concurrency(cores))
            .max(1);
        let (storage, listing) = match &g.from_inventory {
            Some(report) => {
                let fetch = report_fetch(object_location);
                let listed =
                    stowage_storage::listing::ListedStorage::from_report(storage, report, &*fetch)
                        .with_context(|| format!("reading the inventory report {report}"))?;
                let (source, date) = (listed.listing().source.clone(), listed.listing().date);
                if g.verbose {
                    note_listing(listed.listing());
                }
                let listed: Arc<dyn Storage> = Arc::new(listed);
                (listed, Some((source, date)))
            }
            None => (storage, None),
        };
        if g.verbose {
            let how = match how {
                RootLayout::RootDirectory => "a registry rootdirectory",
                RootLayout::LayoutRoot => "the docker/registry/v2 directory",
                RootLayout::GitLabOmnibus => "a GitLab omnibus registry path",
            };
            note!("storage: {} ({how})", storage.describe());
            let why = match &backend {
                stowage_storage::BackendKind::NetworkFs { fs_type } => {
                    format!(
                        "{fs_type} is a network/FUSE filesystem: every operation is a round trip, so many run at once"
                    )
                }
                stowage_storage::BackendKind::LocalFs { fs_type } => {
                    format!("{fs_type} is a local filesystem: about two operations per core")
                }
                stowage_storage::BackendKind::ObjectStore { scheme } => {
                    format!(
                        "{scheme} is an object store: every request is a round trip (tens of ms), so many run at once; \
                         blob shards and repository sections are listed whole, 1,000 keys per request"
                    )
                }
            };
            match g.concurrency {
                Some(n) => {
                    note!("concurrency: {n} (from --concurrency; default would follow: {why})")
                }
                None => note!("concurrency: {concurrency} ({why}; --concurrency to change)"),
            }
        }
        // The report's date is the scan's: ages and the grace period count from it.
        let now = match (&g.now, &listing) {
            (None, Some((_, date))) => *date,
            _ => resolve_now(g)?,
        };
        let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        let progress = !g.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(Settings {
            storage,
            writable,
            concurrency,
            now,
            tz,
            progress,
            verbose: g.verbose,
            format: g.format,
            registry_config,
            metadata_database,
            ignore_metadata_signature: g.unsafe_ignore_metadata_signature,
            cache_dir: cache_dir(g, &backend),
            listing,
        })
    }
}

#[cfg(feature = "object-store")]
#[allow(clippy::too_many_arguments)]
fn open_object_store(
    url: &str,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    allow_http: Option<bool>,
    keys: Option<(String, String)>,
    concurrency: usize,
    verbose: bool,
) -> Result<(Arc<stowage_objstore::ObjectStorage>, RootLayout)> {
    let (access_key, secret_key) = keys.unzip();
    let opts = stowage_objstore::Options {
        endpoint,
        region,
        path_style,
        allow_http,
        access_key,
        secret_key,
        pool_size: Some(concurrency),
    };
    if verbose {
        note!(
            "object store: {url}; endpoint {}, region {}, {}{}",
            opts.endpoint
                .as_deref()
                .unwrap_or("from AWS_ENDPOINT_URL or the service default"),
            opts.region
                .as_deref()
                .unwrap_or("from the environment or profile"),
            match opts.path_style {
                Some(true) => "path-style requests",
                Some(false) => "virtual-hosted requests",
                None => "default addressing",
            },
            if opts.access_key.is_some() {
                "; keys from the registry config"
            } else {
                "; credentials from the environment/profile chain"
            }
        );
    }
    let (s, how) = stowage_objstore::ObjectStorage::open(url, &opts)
        .with_context(|| format!("opening storage {url}"))?;
    Ok((Arc::new(s), how))
}

/// Reads a file of a provider inventory report: a local path, or an object URL reached
/// with the storage's own endpoint and credentials (`Ok(None)`: no such file).
fn report_fetch(object: Option<Location>) -> Box<stowage_storage::provider::Fetch<'static>> {
    Box::new(move |loc: &str| {
        if !loc.contains("://") {
            return match std::fs::File::open(loc) {
                Ok(f) => Ok(Some(Box::new(f) as Box<dyn std::io::Read + Send>)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.to_string()),
            };
        }
        read_report_object(loc, object.as_ref())
    })
}

#[cfg(feature = "object-store")]
fn read_report_object(
    url: &str,
    object: Option<&Location>,
) -> std::result::Result<Option<Box<dyn std::io::Read + Send>>, String> {
    let mut opts = stowage_objstore::Options::default();
    if let Some(Location::Object {
        endpoint,
        region,
        path_style,
        allow_http,
        keys,
        ..
    }) = object
    {
        opts.endpoint = endpoint.clone();
        opts.region = region.clone();
        opts.path_style = *path_style;
        opts.allow_http = *allow_http;
        opts.access_key = keys.as_ref().map(|k| k.0.clone());
        opts.secret_key = keys.as_ref().map(|k| k.1.clone());
    }
    // Data files of a big report are gigabytes; they are read whole, one at a time.
    stowage_objstore::ObjectStorage::read_url(url, &opts, 64 << 30)
        .map(|o| o.map(|b| Box::new(std::io::Cursor::new(b)) as Box<dyn std::io::Read + Send>))
        .map_err(|e| format!("{e:#}"))
}

#[cfg(not(feature = "object-store"))]
fn read_report_object(
    url: &str,
    _: Option<&Location>,
) -> std::result::Result<Option<Box<dyn std::io::Read + Send>>, String> {
    Err(format!(
        "{url}: this build of stowage has no object-store support"
    ))
}

#[cfg(not(feature = "object-store"))]
#[allow(clippy::too_many_arguments)]
fn open_object_store(
    url: &str,
    _: Option<String>,
    _: Option<String>,
    _: Option<bool>,
    _: Option<bool>,
    _: Option<(String, String)>,
    _: usize,
    _: bool,
) -> Result<(Arc<FsStorage>, RootLayout)> {
    bail!(
        "{url}: this build of stowage has no object-store support; build it with the default features \
         (or --features object-store)"
    )
}

/// Parse an age like `30d`, `12h`, `90m`, `1w` into seconds.
/// `--now` (RFC 3339), or the clock: the one place the present moment is read (every
/// command, with or without a storage, takes it from here).
pub fn resolve_now(g: &crate::args::GlobalArgs) -> Result<Timestamp> {
    Ok(match &g.now {
        Some(s) => Timestamp::parse_rfc3339(s)
            .with_context(|| format!("--now {s:?} is not an RFC 3339 time"))?,
        None => Timestamp::from_system_time(std::time::SystemTime::now()),
    })
}

pub fn parse_age(s: &str) -> Result<i64> {
    Ok(stowage_model::units::parse_duration(s)?)
}

/// Parse a size like `500`, `10MiB`, `1.5GB`, `20k`, `2PiB` into bytes (the one grammar of
/// flags and policies: `stowage_model::units`).
pub fn parse_size(s: &str) -> Result<u64> {
    Ok(stowage_model::units::parse_bytes(s)?)
}

/// What a provider report's listing costs: its sorted file in `$TMPDIR` (and the most the
/// sort held there) and its index in memory.
fn note_listing(l: &stowage_storage::listing::Listing) {
    let (file, peak) = l.disk_bytes();
    note!(
        "inventory report: {} objects, sorted on disk in a temporary directory ({} MB; {} MB at the sort's peak), {} KB of index in memory",
        l.len(),
        file / 1_000_000,
        peak / 1_000_000,
        l.index_bytes() / 1000
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(parse_size("500").unwrap(), 500);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(parse_age("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_age("1h 30m").unwrap(), 5400);
        assert!(parse_age("soon").is_err());
    }
}
