//! Reading the registry's own `config.yml`, so stowage can be pointed at the config the
//! registry already uses.
//!
//! Only the parts stowage needs are read: the storage driver and its location, the
//! maintenance switches (read-only mode, upload purging) that matter before deleting, and
//! GitLab's `database.enabled`: with its metadata database on, GitLab's registry neither
//! writes nor reads the filesystem's link files (gitlab-org/container-registry MR 1298), so
//! every blob pushed since looks unreferenced to anything that reads the storage, and no
//! deleting plan may be built from the filesystem alone.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// Where the registry keeps its storage, per its config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Driver {
    Filesystem {
        rootdirectory: PathBuf,
    },
    S3 {
        bucket: String,
        region: Option<String>,
        regionendpoint: Option<String>,
        rootdirectory: String,
        forcepathstyle: bool,
        secure: bool,
        /// Static keys, when the config holds them (otherwise the usual AWS chain applies).
        accesskey: Option<String>,
        secretkey: Option<String>,
    },
    /// A driver stowage does not read yet (named as in the config: gcs, azure, inmemory...).
    Unsupported {
        name: String,
    },
}

/// What stowage takes from a registry `config.yml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    pub driver: Driver,
    /// `storage.maintenance.readonly.enabled`.
    pub readonly: bool,
    /// `storage.delete.enabled`.
    pub delete_enabled: bool,
    /// `storage.cache.blobdescriptor` (and the `redis` section it uses).
    pub blob_cache: BlobCache,
    /// `database.enabled` (GitLab's registry metadata database): the filesystem's links are
    /// not the truth, so nothing may be deleted on their strength.
    pub metadata_database: bool,
    /// `proxy.remoteurl`: the registry is a pull-through cache of that upstream (its TTL
    /// state is `<rootdirectory>/scheduler-state.json`).
    pub proxy_remoteurl: Option<String>,
}

/// The registry's blob descriptor cache (`storage.cache.blobdescriptor`). It answers "does
/// this blob exist" without looking at the storage, so it decides what an online apply must
/// do after removing blobs under a running registry (see `stowage-plan::apply::online`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobCache {
    /// No cache: every check reads the storage.
    None,
    /// `inmemory`: a map in the registry process, emptied only by a restart.
    InMemory,
    /// `redis`, with the top-level `redis` section's address, password and database.
    Redis {
        addr: String,
        password: Option<String>,
        db: i64,
    },
    /// A value the registry 2.8 does not know (it refuses to start with it).
    Other(String),
}

/// Where GitLab omnibus keeps its registry's config, given the layout root stowage opened:
/// the storage of omnibus is `/var/opt/gitlab/gitlab-rails/shared/registry` (its
/// `docker/registry/v2` below), the config `/var/opt/gitlab/registry/config.yml`. `None`
/// when the layout root is not in an omnibus tree or the config is not a file there.
pub fn gitlab_omnibus_config(layout_root: &Path) -> Option<PathBuf> {
    let rootdirectory = layout_root.parent()?.parent()?.parent()?;
    if !rootdirectory.ends_with("gitlab-rails/shared/registry") {
        return None;
    }
    let omnibus = rootdirectory.parent()?.parent()?.parent()?;
    let config = omnibus.join("registry/config.yml");
    std::fs::symlink_metadata(&config)
        .is_ok_and(|m| m.is_file())
        .then_some(config)
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("no storage section")]
    NoStorage,
    #[error("storage section names no driver (filesystem, s3, gcs, azure, ...)")]
    NoDriver,
    #[error("storage.{driver}.{key} is missing")]
    Missing {
        driver: &'static str,
        key: &'static str,
    },
}

/// Parameters that are not drivers.
const NOT_DRIVERS: &[&str] = &["delete", "maintenance", "cache", "redirect", "tag"];

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(key)
}

fn as_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl RegistryConfig {
    pub fn parse(text: &str) -> Result<RegistryConfig, ConfigError> {
        let doc: Value = serde_yaml_ng::from_str(text)?;
        let storage = get(&doc, "storage").ok_or(ConfigError::NoStorage)?;
        let map = storage.as_mapping().ok_or(ConfigError::NoStorage)?;
        let mut driver = None;
        for (k, params) in map {
            let Some(name) = k.as_str() else { continue };
            if NOT_DRIVERS.contains(&name) {
                continue;
            }
            driver = Some(match name {
                "filesystem" => Driver::Filesystem {
                    rootdirectory: PathBuf::from(
                        as_string(get(params, "rootdirectory"))
                            .unwrap_or_else(|| "/var/lib/registry".to_string()),
                    ),
                },
                "s3" => Driver::S3 {
                    bucket: as_string(get(params, "bucket")).ok_or(ConfigError::Missing {
                        driver: "s3",
                        key: "bucket",
                    })?,
                    region: as_string(get(params, "region")),
                    regionendpoint: as_string(get(params, "regionendpoint")),
                    rootdirectory: as_string(get(params, "rootdirectory")).unwrap_or_default(),
                    forcepathstyle: as_bool(get(params, "forcepathstyle")).unwrap_or(false),
                    secure: as_bool(get(params, "secure")).unwrap_or(true),
                    accesskey: as_string(get(params, "accesskey")).filter(|s| !s.is_empty()),
                    secretkey: as_string(get(params, "secretkey")).filter(|s| !s.is_empty()),
                },
                other => Driver::Unsupported {
                    name: other.to_string(),
                },
            });
            break;
        }
        let driver = driver.ok_or(ConfigError::NoDriver)?;
        let maintenance = get(storage, "maintenance");
        let readonly = maintenance
            .and_then(|m| get(m, "readonly"))
            .and_then(|r| as_bool(get(r, "enabled")))
            .unwrap_or(false);
        let delete_enabled = get(storage, "delete")
            .and_then(|d| as_bool(get(d, "enabled")))
            .unwrap_or(false);
        let blob_cache = match as_string(
            get(storage, "cache")
                .and_then(|c| get(c, "blobdescriptor").or_else(|| get(c, "layerinfo"))),
        ) {
            None => BlobCache::None,
            Some(v) if v.is_empty() => BlobCache::None,
            Some(v) if v == "inmemory" => BlobCache::InMemory,
            Some(v) if v == "redis" => {
                let redis = get(&doc, "redis");
                BlobCache::Redis {
                    addr: as_string(redis.and_then(|r| get(r, "addr"))).unwrap_or_default(),
                    password: as_string(redis.and_then(|r| get(r, "password")))
                        .filter(|p| !p.is_empty()),
                    db: as_string(redis.and_then(|r| get(r, "db")))
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0),
                }
            }
            Some(other) => BlobCache::Other(other),
        };
        let metadata_database = get(&doc, "database")
            .and_then(|d| as_bool(get(d, "enabled")))
            .unwrap_or(false);
        let proxy_remoteurl = as_string(get(&doc, "proxy").and_then(|p| get(p, "remoteurl")))
            .filter(|u| !u.is_empty());
        Ok(RegistryConfig {
            driver,
            readonly,
            delete_enabled,
            blob_cache,
            metadata_database,
            proxy_remoteurl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_config_as_debian_ships_it() {
        let c = RegistryConfig::parse(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: :5000\n",
        )
        .unwrap();
        assert_eq!(
            c.driver,
            Driver::Filesystem {
                rootdirectory: "/var/lib/docker-registry".into()
            }
        );
        assert!(c.delete_enabled);
        assert!(!c.readonly);
        assert_eq!(c.blob_cache, BlobCache::InMemory);
        assert!(!c.metadata_database);
    }

    #[test]
    fn blob_cache_settings() {
        let none = RegistryConfig::parse("storage:\n  filesystem: {}\n").unwrap();
        assert_eq!(none.blob_cache, BlobCache::None);
        // The key registry 2.8 still reads when blobdescriptor is absent.
        let legacy = RegistryConfig::parse(
            "storage:\n  filesystem: {}\n  cache:\n    layerinfo: inmemory\n",
        )
        .unwrap();
        assert_eq!(legacy.blob_cache, BlobCache::InMemory);
        let r = RegistryConfig::parse(
            "storage:\n  filesystem: {}\n  cache:\n    blobdescriptor: redis\nredis:\n  addr: 127.0.0.1:6379\n  password: pw\n  db: 2\n",
        )
        .unwrap();
        assert_eq!(
            r.blob_cache,
            BlobCache::Redis {
                addr: "127.0.0.1:6379".into(),
                password: Some("pw".into()),
                db: 2
            }
        );
    }

    #[test]
    fn gitlab_metadata_database_is_read_from_the_config() {
        let c = RegistryConfig::parse(
            "storage:\n  filesystem:\n    rootdirectory: /var/opt/gitlab/gitlab-rails/shared/registry\ndatabase:\n  enabled: true\n  host: localhost\n",
        )
        .unwrap();
        assert!(c.metadata_database);
        let c =
            RegistryConfig::parse("storage:\n  filesystem: {}\ndatabase:\n  enabled: \"false\"\n")
                .unwrap();
        assert!(!c.metadata_database);
    }

    #[test]
    fn gitlab_metadata_database_omnibus_config_is_found_from_the_layout_root() {
        let t = tempfile::tempdir().unwrap();
        let v2 = t
            .path()
            .join("gitlab-rails/shared/registry/docker/registry/v2");
        std::fs::create_dir_all(&v2).unwrap();
        assert_eq!(gitlab_omnibus_config(&v2), None);
        std::fs::create_dir_all(t.path().join("registry")).unwrap();
        std::fs::write(t.path().join("registry/config.yml"), "x").unwrap();
        assert_eq!(
            gitlab_omnibus_config(&v2),
            Some(t.path().join("registry/config.yml"))
        );
        assert_eq!(
            gitlab_omnibus_config(&t.path().join("docker/registry/v2")),
            None
        );
    }

    #[test]
    fn readonly_s3_and_unsupported() {
        let c = RegistryConfig::parse(
            "storage:\n  s3:\n    bucket: reg\n    region: us-east-1\n    regionendpoint: http://127.0.0.1:9000\n    rootdirectory: /registry\n    forcepathstyle: true\n    secure: false\n  maintenance:\n    readonly:\n      enabled: true\n",
        )
        .unwrap();
        assert!(c.readonly);
        assert!(
            matches!(c.driver, Driver::S3 { ref bucket, forcepathstyle: true, secure: false, ref accesskey, .. } if bucket == "reg" && accesskey.is_none())
        );
        let g = RegistryConfig::parse("storage:\n  gcs:\n    bucket: x\n").unwrap();
        assert_eq!(g.driver, Driver::Unsupported { name: "gcs".into() });
        assert!(matches!(
            RegistryConfig::parse("http: {}\n"),
            Err(ConfigError::NoStorage)
        ));
        assert!(matches!(
            RegistryConfig::parse("storage: [\n"),
            Err(ConfigError::Yaml(_))
        ));
    }
}
