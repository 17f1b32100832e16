//! Settings resolution: from raw arguments (and the environment, and the registry's config)
//! to what the commands use.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use stowage_model::time::Timestamp;
use stowage_storage::registry_config::{Driver, RegistryConfig};
use stowage_storage::{FsStorage, RootLayout, Storage, resolve_root};

use crate::args::GlobalArgs;

/// Resolved settings shared by every command.
pub struct Settings {
    pub storage: Arc<dyn Storage>,
    /// The same storage, with write access: only `apply` and `restore` use it.
    pub writable: Arc<FsStorage>,
    pub concurrency: usize,
    pub now: Timestamp,
    pub tz: jiff::tz::TimeZone,
    pub progress: bool,
    pub verbose: bool,
    pub format: crate::args::Format,
    /// The registry's config, when given (the plan/apply commands read its maintenance mode).
    pub registry_config: Option<RegistryConfig>,
}

impl Settings {
    pub fn resolve(g: &GlobalArgs) -> Result<Settings> {
        let (path, registry_config) = match (&g.storage, &g.registry_config) {
            (Some(p), _) => (p.clone(), None),
            (None, Some(cfg)) => {
                let text = std::fs::read_to_string(cfg)
                    .with_context(|| format!("reading {}", cfg.display()))?;
                let rc =
                    RegistryConfig::parse(&text).with_context(|| format!("{}", cfg.display()))?;
                match &rc.driver {
                    Driver::Filesystem { rootdirectory } => (rootdirectory.clone(), Some(rc)),
                    Driver::S3 { bucket, .. } => bail!(
                        "{}: the s3 driver (bucket {bucket}) is not supported yet; only the filesystem driver is. \
                         Point --storage at a local copy or mount of the storage",
                        cfg.display()
                    ),
                    Driver::Unsupported { name } => bail!(
                        "{}: the {name} storage driver is not supported yet; only the filesystem driver is",
                        cfg.display()
                    ),
                }
            }
            (None, None) => bail!(
                "no storage given: pass --storage PATH (the registry's rootdirectory, e.g. /var/lib/registry), \
                 set STOWAGE_STORAGE, or pass --registry-config /etc/docker/registry/config.yml"
            ),
        };
        let resolved =
            resolve_root(&path).with_context(|| format!("opening storage {}", path.display()))?;
        let fs = FsStorage::open(&resolved.layout_root)
            .with_context(|| format!("opening storage {}", path.display()))?;
        let backend = fs.backend();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let concurrency = g
            .concurrency
            .unwrap_or_else(|| backend.default_concurrency(cores))
            .max(1);
        if g.verbose {
            let how = match resolved.how {
                RootLayout::RootDirectory => "a registry rootdirectory",
                RootLayout::LayoutRoot => "the docker/registry/v2 directory",
                RootLayout::GitLabOmnibus => "a GitLab omnibus registry path",
            };
            eprintln!("storage: {} ({how})", fs.describe());
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
                    format!("{scheme} object store")
                }
            };
            match g.concurrency {
                Some(n) => {
                    eprintln!("concurrency: {n} (from --concurrency; default would follow: {why})")
                }
                None => eprintln!("concurrency: {concurrency} ({why}; --concurrency to change)"),
            }
        }
        let now = match &g.now {
            Some(s) => Timestamp::parse_rfc3339(s)
                .with_context(|| format!("--now {s:?} is not an RFC 3339 time"))?,
            None => Timestamp::from_system_time(std::time::SystemTime::now()),
        };
        let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        let progress = !g.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let fs = Arc::new(fs);
        Ok(Settings {
            storage: fs.clone(),
            writable: fs,
            concurrency,
            now,
            tz,
            progress,
            verbose: g.verbose,
            format: g.format,
            registry_config,
        })
    }
}

/// Parse an age like `30d`, `12h`, `90m`, `1w` into seconds.
pub fn parse_age(s: &str) -> Result<i64> {
    let d = humantime::parse_duration(s.trim())
        .with_context(|| format!("{s:?} is not a duration (try 30d, 12h, 1w)"))?;
    Ok(d.as_secs() as i64)
}

/// Parse a size like `500`, `10MiB`, `1.5GB`, `20k` into bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        other => {
            bail!("{s:?}: unknown size unit {other:?} (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")
        }
    };
    Ok((n * mult).round() as u64)
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
