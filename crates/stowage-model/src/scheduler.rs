//! The pull-through cache's TTL state: `<rootdirectory>/scheduler-state.json`, parsed and
//! written exactly as distribution 2.8's proxy scheduler does (`registry/proxy/scheduler`).
//!
//! What the registry keeps there (read from the v2.8.2 source, confirmed on Debian's 2.8.2
//! binary): a JSON object `{key: {"Key": key, "ExpiryData": time, "EntryType": 0|1}}`, one
//! entry per cached blob (`EntryType` 0) and manifest (1) **per repository**, keyed
//! `<repository>@sha256:<hex>`. `ExpiryData` is Go's `time.Time` (RFC 3339 with nanoseconds,
//! in the registry's local zone); the expiry is the moment the object was fetched from the
//! upstream plus 168 h (`repositoryTTL`, a constant in 2.8: no `proxy.ttl` before 3.0), and
//! it is never refreshed by later pulls. The registry writes the whole map with
//! `json.Marshal` (keys sorted, compact) every 5 s when it changed, with a non-atomic
//! `PutContent`; at start it reads the file, and a file that does not unmarshal stops the
//! registry from starting at all (`NewRegistryPullThroughCache` returns the error, `NewApp`
//! panics). Expired entries fire at start.
//!
//! Parsing here is strict on purpose: anything that is not exactly this shape (truncated, not
//! JSON, another tool's file, an entry whose key is not a canonical reference) makes the whole
//! state [`SchedulerError`], because the state decides what a cache GC evicts and a guess
//! would evict on a foreign file's strength (fail-safe: nothing is evicted then).
//!
//! ```
//! use stowage_model::scheduler::{self, EntryKind};
//! let text = br#"{"a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000":{"Key":"a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000","ExpiryData":"2026-12-13T08:42:20.789438795Z","EntryType":1}}"#;
//! let st = scheduler::parse(text).unwrap();
//! assert_eq!(st.entries[0].repository, "a/b");
//! assert_eq!(st.entries[0].kind, EntryKind::Manifest);
//! assert_eq!(scheduler::render(&st.entries), text.to_vec());
//! ```

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::name::RepositoryName;
use crate::time::Timestamp;

/// The file's name, at the storage driver's root (beside `docker/`, not inside the layout).
pub const STATE_FILE: &str = "scheduler-state.json";

/// The TTL registry 2.8 gives every cached object (`repositoryTTL` in
/// `registry/proxy/proxymanifeststore.go`): the cache time is the expiry minus this.
pub const TTL_SECS: i64 = 168 * 3600;

/// The largest state file read: an entry is about 230 bytes, so this is over a million
/// cached objects; a bigger file is reported, not read.
pub const MAX_STATE_BYTES: u64 = 512 << 20;

/// What a scheduler entry schedules.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// `EntryType` 0: at expiry the registry removes the repository's `_layers` link and
    /// then the blob's data **for every repository** (`vacuum.RemoveBlob`).
    Blob,
    /// `EntryType` 1: at expiry the registry removes the repository's revision link only
    /// (the manifest's data and its tags stay).
    Manifest,
}

/// One scheduled expiry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    /// `<repository>@<digest>`, the map key and the entry's `Key`.
    pub key: String,
    pub repository: String,
    pub digest: Digest,
    pub kind: EntryKind,
    pub expiry: Timestamp,
    /// `ExpiryData` exactly as the file had it, so an entry written back unchanged is
    /// byte-identical (the registry's zone and digits).
    pub expiry_text: String,
}

impl Entry {
    /// When the object was fetched from the upstream (expiry minus the 2.8 TTL).
    pub fn cached_at(&self) -> Timestamp {
        self.expiry.saturating_sub_secs(TTL_SECS)
    }

    /// The entry with another expiry (written in UTC, which Go parses back identically).
    pub fn with_expiry(&self, expiry: Timestamp) -> Entry {
        Entry {
            expiry,
            expiry_text: expiry.rfc3339(),
            ..self.clone()
        }
    }
}

/// A parsed state file: every entry, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerState {
    pub entries: Vec<Entry>,
}

impl SchedulerState {
    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// What the scan found at the driver root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SchedulerFile {
    /// The backend cannot read beside the layout (an object store, or a storage opened at
    /// the layout root itself): whether this is a cache is not known from the storage.
    #[default]
    Unknown,
    /// No `scheduler-state.json`: not a pull-through cache, or one that never cached anything.
    Absent,
    /// Read and parsed.
    Read(SchedulerState),
    /// There, but unusable: the reason names the path. Nothing is evicted on its strength.
    Bad(String),
}

impl SchedulerFile {
    /// The parsed state, when there is one.
    pub fn state(&self) -> Option<&SchedulerState> {
        match self {
            SchedulerFile::Read(s) => Some(s),
            _ => None,
        }
    }

    /// The file exists (well-formed or not): the storage belongs to a pull-through cache.
    pub fn present(&self) -> bool {
        matches!(self, SchedulerFile::Read(_) | SchedulerFile::Bad(_))
    }
}

/// Why a state file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    #[error("not JSON (truncated?): {0}")]
    NotJson(String),
    #[error("not the registry's scheduler state: {0}")]
    Foreign(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "ExpiryData")]
    expiry: String,
    #[serde(rename = "EntryType")]
    entry_type: i64,
}

/// Parse the state file strictly (see the module documentation).
pub fn parse(bytes: &[u8]) -> Result<SchedulerState, SchedulerError> {
    let raw: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SchedulerError::NotJson(e.to_string()))?;
    let serde_json::Value::Object(map) = raw else {
        return Err(SchedulerError::Foreign(
            "the top level is not an object".into(),
        ));
    };
    let mut entries = Vec::with_capacity(map.len());
    for (k, v) in map {
        let e: RawEntry = serde_json::from_value(v)
            .map_err(|e| SchedulerError::Foreign(format!("entry {k:?}: {e}")))?;
        if e.key != k {
            return Err(SchedulerError::Foreign(format!(
                "entry {k:?} has Key {:?}",
                e.key
            )));
        }
        let kind = match e.entry_type {
            0 => EntryKind::Blob,
            1 => EntryKind::Manifest,
            n => {
                return Err(SchedulerError::Foreign(format!(
                    "entry {k:?}: EntryType {n} is neither 0 (blob) nor 1 (manifest)"
                )));
            }
        };
        let (repository, digest) = split_key(&k).ok_or_else(|| {
            SchedulerError::Foreign(format!("key {k:?} is not <repository>@<digest>"))
        })?;
        let expiry = Timestamp::parse_rfc3339(&e.expiry).ok_or_else(|| {
            SchedulerError::Foreign(format!(
                "entry {k:?}: ExpiryData {:?} is not a time",
                e.expiry
            ))
        })?;
        entries.push(Entry {
            key: k,
            repository,
            digest,
            kind,
            expiry,
            expiry_text: e.expiry,
        });
    }
    entries.sort();
    Ok(SchedulerState { entries })
}

/// `<repository>@<digest>` with both halves valid (the registry's `reference.Parse` of a
/// canonical reference without a domain).
fn split_key(k: &str) -> Option<(String, Digest)> {
    let (repo, d) = k.split_once('@')?;
    let digest: Digest = d.parse().ok()?;
    if !RepositoryName::parse_lenient(repo).ok()?.is_strict() {
        return None;
    }
    Some((repo.to_string(), digest))
}

/// The file as the registry's `json.Marshal` writes it: compact, keys in byte order, the
/// fields in declaration order, `<>&` escaped as Go does (keys are repository names and
/// digests, so they never contain them).
pub fn render(entries: &[Entry]) -> Vec<u8> {
    let map: BTreeMap<&str, &Entry> = entries.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut out = Vec::with_capacity(entries.len() * 240 + 2);
    out.push(b'{');
    for (i, (k, e)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let key = serde_json::to_string(k).unwrap_or_default();
        let time = serde_json::to_string(&e.expiry_text).unwrap_or_default();
        let ty = match e.kind {
            EntryKind::Blob => 0,
            EntryKind::Manifest => 1,
        };
        out.extend_from_slice(
            format!("{key}:{{\"Key\":{key},\"ExpiryData\":{time},\"EntryType\":{ty}}}").as_bytes(),
        );
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "sha256:376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec";

    fn one(repo: &str, ty: i64, time: &str) -> String {
        format!(r#""{repo}@{H}":{{"Key":"{repo}@{H}","ExpiryData":"{time}","EntryType":{ty}}}"#)
    }

    #[test]
    fn parses_and_renders_what_the_registry_wrote() {
        // Two entries as registry 2.8.2 wrote them (keys sorted, compact).
        let text = format!(
            "{{{},{}}}",
            one("library/base", 0, "2026-12-13T08:42:20.789438795Z"),
            one("multiarch/tool", 1, "2026-12-13T09:42:20+01:00")
        );
        let st = parse(text.as_bytes()).unwrap();
        assert_eq!(st.entries.len(), 2);
        assert_eq!(st.entries[0].kind, EntryKind::Blob);
        assert_eq!(st.entries[1].kind, EntryKind::Manifest);
        // Another zone is the same instant.
        assert_eq!(
            st.entries[1].expiry,
            Timestamp::parse_rfc3339("2026-12-13T08:42:20Z").unwrap()
        );
        assert_eq!(
            st.entries[0].cached_at(),
            Timestamp::parse_rfc3339("2026-12-06T08:42:20.789438795Z").unwrap()
        );
        assert_eq!(render(&st.entries), text.into_bytes());
        assert!(st.get(&format!("library/base@{H}")).is_some());
        assert_eq!(parse(b"{}").unwrap().entries.len(), 0);
    }

    #[test]
    fn truncated_or_foreign_files_are_errors() {
        let good = format!("{{{}}}", one("a/b", 0, "2026-12-13T08:42:20Z"));
        for cut in [1, 10, good.len() / 2, good.len() - 1] {
            assert!(matches!(
                parse(&good.as_bytes()[..cut]),
                Err(SchedulerError::NotJson(_))
            ));
        }
        for foreign in [
            "[]".to_string(),
            r#"{"x":1}"#.into(),
            format!("{{{}}}", one("a/b", 2, "2026-12-13T08:42:20Z")),
            format!("{{{}}}", one("a/b", 0, "yesterday")),
            format!("{{{}}}", one("Upper/Case", 0, "2026-12-13T08:42:20Z")),
            format!(r#"{{"a/b@{H}":{{"Key":"c/d@{H}","ExpiryData":"2026-12-13T08:42:20Z","EntryType":0}}}}"#),
            format!(r#"{{"a/b@{H}":{{"Key":"a/b@{H}","ExpiryData":"2026-12-13T08:42:20Z","EntryType":0,"More":1}}}}"#),
            r#"{"a/b@sha256:12":{"Key":"a/b@sha256:12","ExpiryData":"2026-12-13T08:42:20Z","EntryType":0}}"#.into(),
        ] {
            assert!(
                matches!(parse(foreign.as_bytes()), Err(SchedulerError::Foreign(_))),
                "{foreign}"
            );
        }
    }

    #[test]
    fn a_changed_expiry_is_written_in_utc() {
        let text = format!("{{{}}}", one("a/b", 1, "2026-12-13T08:42:20Z"));
        let st = parse(text.as_bytes()).unwrap();
        let later =
            st.entries[0].with_expiry(Timestamp::parse_rfc3339("2026-12-20T00:00:00.5Z").unwrap());
        let out = String::from_utf8(render(&[later])).unwrap();
        assert!(
            out.contains(r#""ExpiryData":"2026-12-20T00:00:00.5Z""#),
            "{out}"
        );
        assert_eq!(
            parse(out.as_bytes()).unwrap().entries[0].expiry.0 % 1_000_000_000,
            500_000_000
        );
    }
}
