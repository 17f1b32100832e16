//! What a retention evaluation reads besides the scan: the policy file itself, its in-use
//! sources, and, when the policy needs them, image config and manifest contents (config
//! `created`, platform, labels; manifest annotations). Reading happens here, once per
//! evaluation, so the plan and apply's re-check read the same things the same way.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use stowage_graph::Graph;
use stowage_model::inventory::{BlobId, ManifestRecord, RefRole};
use stowage_model::time::Timestamp;
use stowage_policy::eval::{LoadedSource, ManifestFacts};
use stowage_policy::file::{InUse, TimeSource};
use stowage_policy::{Compiled, PolicyFile};
use stowage_storage::Storage;

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {limit} bytes (1 MiB), the limit of a policy file")]
    TooLarge { path: PathBuf, limit: usize },
    #[error("{path}: not UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("{path}: not a valid policy file: {source}")]
    Invalid {
        path: PathBuf,
        source: stowage_policy::PolicyErrors,
    },
    #[error("{path}: the policy is refused: {source}")]
    Refused {
        path: PathBuf,
        source: stowage_policy::PolicyErrors,
    },
}

/// A policy file read, parsed and compiled: what a plan, apply's re-check, replay and
/// simulate all start from.
#[derive(Clone, Debug)]
pub struct LoadedPolicy {
    /// As given (recorded in the plan; apply reads it again from there).
    pub path: PathBuf,
    pub text: String,
    pub file: PolicyFile,
    pub compiled: Compiled,
}

impl LoadedPolicy {
    /// Read `path` (at most one byte past the size limit: a huge file is refused without
    /// being read whole), parse and compile it.
    pub fn read(path: &Path) -> Result<LoadedPolicy, PolicyError> {
        let text = read_policy_text(path)?;
        Self::from_text(path, text)
    }

    /// Parse only (for `policy check`, which reports compile errors itself).
    pub fn read_text(path: &Path) -> Result<String, PolicyError> {
        read_policy_text(path)
    }

    pub fn from_text(path: &Path, text: String) -> Result<LoadedPolicy, PolicyError> {
        let file = stowage_policy::parse(&text).map_err(|source| PolicyError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
        let compiled = stowage_policy::compile(&file).map_err(|source| PolicyError::Refused {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(LoadedPolicy {
            path: path.to_path_buf(),
            text,
            file,
            compiled,
        })
    }

    /// The directory relative paths in the policy are relative to.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// SHA-256 of the file's text (a plan records it; apply refuses a changed policy).
    pub fn sha256(&self) -> String {
        use sha2::Digest as _;
        super::hex(&sha2::Sha256::digest(self.text.as_bytes()))
    }

    /// The policy's pull source (`settings.pull_sources`), relative to its directory.
    pub fn pull_source(&self) -> Option<PathBuf> {
        self.compiled
            .pull_sources
            .first()
            .map(|s| self.dir().join(&s.path))
    }

    /// Whether any time source of the policy is the config's `created`.
    pub fn uses_created(&self) -> bool {
        self.uses(TimeSource::Created)
    }

    /// Whether any time source of the policy is the judged build date (`built`).
    pub fn uses_built(&self) -> bool {
        self.uses(TimeSource::Built)
    }

    fn uses(&self, ts: TimeSource) -> bool {
        let f = &self.file;
        f.settings.time_source == ts
            || f.policies.iter().any(|p| {
                p.keep
                    .iter()
                    .chain(p.delete.iter())
                    .any(|r| r.time_source == Some(ts))
            })
    }
}

fn read_policy_text(path: &Path) -> Result<String, PolicyError> {
    use std::io::Read;
    let limit = stowage_policy::limits::MAX_POLICY_BYTES;
    let read = |source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() > limit {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// Read the in-use sources a policy names (paths relative to the policy file's directory).
pub fn load_sources(in_use: Option<&InUse>, policy_dir: &Path) -> Vec<LoadedSource> {
    let Some(u) = in_use else { return Vec::new() };
    u.sources
        .iter()
        .map(|s| {
            let path = policy_dir.join(&s.path);
            let shown = path.display().to_string();
            let (refs, modified, sha) = match std::fs::read(&path) {
                Err(e) => (
                    Err(format!("cannot read {shown}: {e}")),
                    None,
                    String::new(),
                ),
                Ok(bytes) => {
                    use sha2::Digest as _;
                    let sha = super::hex(&sha2::Sha256::digest(&bytes));
                    let modified = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .map(Timestamp::from_system_time);
                    let refs = match String::from_utf8(bytes) {
                        Ok(text) => stowage_policy::refs::parse_source(s.format, &text)
                            .map_err(|e| format!("{shown}: {e}")),
                        Err(_) => Err(format!("{shown}: not UTF-8 text")),
                    };
                    (refs, modified, sha)
                }
            };
            LoadedSource {
                name: s.name.clone(),
                path: shown,
                refs,
                modified,
                sha256: sha,
            }
        })
        .collect()
}

/// A JSON blob read with the registry's manifest limit (4 MiB); unreadable or not JSON:
/// `None` (unknown, never guessed).
fn read_json(storage: &dyn Storage, g: &Graph<'_>, id: BlobId) -> Option<serde_json::Value> {
    let h = g.inv.blob(id)?.digest;
    let bytes = storage.read(&stowage_layout::blob_data(&h), 4 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn config_of(g: &Graph<'_>, m: &ManifestRecord) -> Option<BlobId> {
    g.inv
        .refs_of(m)
        .iter()
        .find(|r| r.role() == RefRole::Config)
        .map(|r| r.id())
}

/// What one image config says.
#[derive(Clone, Debug, Default)]
struct ConfigFacts {
    created: Option<Timestamp>,
    platform: Option<String>,
    /// `None`: the config could not be read.
    labels: Option<BTreeMap<String, String>>,
}

fn config_facts(v: &serde_json::Value) -> ConfigFacts {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|x| !x.is_empty());
    let platform = match (s("os"), s("architecture")) {
        (Some(os), Some(arch)) => Some(match s("variant") {
            Some(var) => format!("{os}/{arch}/{var}"),
            None => format!("{os}/{arch}"),
        }),
        _ => None,
    };
    let labels = v
        .get("config")
        .and_then(|c| c.get("Labels"))
        .and_then(|l| l.as_object())
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let labels = Some(labels);
    ConfigFacts {
        created: s("created").and_then(Timestamp::parse_rfc3339),
        platform,
        labels,
    }
}

/// What the evaluation reads from inside images, for every manifest of the storage (each
/// config read once, however many manifests share it): config `created` (newest platform for
/// an index) when `created` is asked for, and platform, labels and annotations when `facts`
/// is. Unreadable or absent: unknown.
pub fn load_image_data(
    storage: &dyn Storage,
    g: &Graph<'_>,
    created: bool,
    facts: bool,
) -> (HashMap<BlobId, Timestamp>, HashMap<BlobId, ManifestFacts>) {
    let mut times = HashMap::new();
    let mut all = HashMap::new();
    if !created && !facts {
        return (times, all);
    }
    let inv = g.inv;
    let mut configs: HashMap<BlobId, ConfigFacts> = HashMap::new();
    let mut config = |id: BlobId| -> ConfigFacts {
        configs
            .entry(id)
            .or_insert_with(|| {
                read_json(storage, g, id)
                    .map(|v| config_facts(&v))
                    .unwrap_or_default()
            })
            .clone()
    };
    for m in &inv.manifests {
        let parts: Vec<ConfigFacts> = match config_of(g, m) {
            Some(c) => vec![config(c)],
            None => inv
                .children_of(m)
                // A platform whose config is not there: its facts unknown (labels `None`).
                .map(|c| {
                    g.manifest(c)
                        .and_then(|cm| config_of(g, cm))
                        .map(&mut config)
                        .unwrap_or_default()
                })
                .collect(),
        };
        if let Some(t) = parts.iter().filter_map(|p| p.created).max() {
            times.insert(m.id, t);
        }
        if !facts {
            continue;
        }
        let mut f = ManifestFacts::default();
        if config_of(g, m).is_some() {
            f.platform = parts.first().and_then(|p| p.platform.clone());
        }
        // One unreadable config (of any platform) makes the labels unknown, not empty.
        let mut labels = Some(BTreeMap::new());
        for p in &parts {
            match (&mut labels, &p.labels) {
                (Some(all), Some(l)) => {
                    for (k, v) in l {
                        all.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                _ => labels = None,
            }
        }
        f.labels = labels;
        f.annotations = read_json(storage, g, m.id).map(|v| {
            v.get("annotations")
                .and_then(|a| a.as_object())
                .map(|a| {
                    a.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        });
        all.insert(m.id, f);
    }
    if !created {
        times.clear();
    }
    (times, all)
}

/// The judged build date of every manifest (`stowage_scan::read_build_dates`: each config
/// read once, at the storage's default concurrency) when `built` is asked for; an unknown
/// date (placeholder, future, unreadable config) is absent, never guessed.
pub fn load_built(
    storage: &dyn Storage,
    g: &Graph<'_>,
    built: bool,
    now: Timestamp,
) -> HashMap<BlobId, Timestamp> {
    if !built {
        return HashMap::new();
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let concurrency = storage.backend().default_concurrency(cores);
    stowage_scan::read_build_dates(storage, g.inv, now, concurrency)
        .by_manifest
        .into_iter()
        .filter_map(|(id, b)| Some((id, b.date.at()?)))
        .collect()
}
