//! The cache rule of a policy file: a size cap for a pull-through cache.
//!
//! ```yaml
//! cache: {max_bytes: 200GiB, evict: least_recently_pulled}
//! policies: []
//! ```
//!
//! A pull-through cache (registry 2.8 with `proxy.remoteurl`) is not pruned by tag rules: its
//! images pulled by digest are untagged and every image is a copy of the upstream's, so what
//! matters is how much it holds. The rule evicts **whole cached images**, least recently
//! pulled first (the pull data of `settings.pull_sources` or `stowage plan --pulls`; the
//! proxy's fetch counts as a pull), then the least recently cached, until the stored bytes
//! the kept images reach fit in `max_bytes` (`stowage_plan::cache`, the same code as
//! `stowage gc --cache-max-bytes`). It is its own top-level section, apart from the retention
//! rules and criteria, so neither grammar constrains the other.
//!
//! Checks here are on the file alone ([`check`], run by [`crate::compile`]) and its lints
//! ([`lint`]); whether the storage is a cache at all is known only at plan time
//! ([`storage_lint`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::file::PolicyFile;
use crate::lint::Lint;
use crate::values::parse_bytes;

/// `cache:` in a policy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// The cap: `200GiB`, `500GB`, or a number of bytes. Whole cached images are evicted
    /// until the stored bytes of the kept ones fit.
    pub max_bytes: String,
    /// Which images go first.
    #[serde(default)]
    pub evict: EvictOrder,
}

/// The eviction order of a cache rule.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvictOrder {
    /// Last pull first (pull data, or the proxy's fetch of the image when no later pull is
    /// known), then cache time, then `repository@digest`.
    #[default]
    LeastRecentlyPulled,
    /// Cache time (the fetch from the upstream) only, then `repository@digest`.
    LeastRecentlyCached,
}

impl EvictOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            EvictOrder::LeastRecentlyPulled => "least_recently_pulled",
            EvictOrder::LeastRecentlyCached => "least_recently_cached",
        }
    }
}

/// A checked cache rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CacheCap {
    pub max_bytes: u64,
    pub evict: EvictOrder,
}

/// The file's cache rule, checked (`None`: the file has none).
pub fn compile(f: &PolicyFile) -> Result<Option<CacheCap>, Vec<String>> {
    let Some(c) = &f.cache else {
        return Ok(None);
    };
    let max_bytes = parse_bytes(&c.max_bytes).map_err(|e| vec![format!("cache.max_bytes: {e}")])?;
    Ok(Some(CacheCap {
        max_bytes,
        evict: c.evict,
    }))
}

/// Every problem of the file's cache rule, and of the file with it (for [`crate::compile`]).
pub fn check(f: &PolicyFile) -> Vec<String> {
    let mut errs = compile(f).err().unwrap_or_default();
    if f.cache.is_some() && !f.policies.is_empty() {
        errs.push(
            "cache: a cache rule and retention policies do not mix in one file: a pull-through cache is pruned by expiry and size, never by tag rules (its images pulled by digest are untagged: goharbor/harbor#23570); use `policies: []`".into(),
        );
    }
    errs
}

/// Lints of the cache rule on the file alone.
pub fn lint(f: &PolicyFile) -> Vec<Lint> {
    match compile(f) {
        Ok(Some(c)) if c.max_bytes == 0 => vec![Lint {
            code: "cache-max-bytes-zero",
            at: "cache.max_bytes".into(),
            message: "0 bytes evicts every cached image that has a scheduler entry: the cache refetches everything from the upstream on the next pulls".into(),
        }],
        _ => Vec::new(),
    }
}

/// Lints that need the storage: a cache rule on a registry that is not a pull-through
/// cache does nothing.
pub fn storage_lint(f: &PolicyFile, storage_is_cache: bool) -> Vec<Lint> {
    if f.cache.is_some() && !storage_is_cache {
        vec![Lint {
            code: "cache-rule-not-a-cache",
            at: "cache".into(),
            message: "this storage is not a pull-through cache (no scheduler-state.json, no proxy.remoteurl): the cache rule evicts nothing here".into(),
        }]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PolicyFile {
        crate::parse(text).unwrap()
    }

    const HEAD: &str = "apiVersion: retention.v1\nkind: RetentionPolicy\n";

    #[test]
    fn a_cache_rule_compiles_with_its_default_order() {
        let f = file(&format!("{HEAD}cache: {{max_bytes: 2GiB}}\npolicies: []\n"));
        assert!(crate::compile(&f).is_ok());
        assert_eq!(
            compile(&f).unwrap(),
            Some(CacheCap {
                max_bytes: 2 << 30,
                evict: EvictOrder::LeastRecentlyPulled
            })
        );
        assert!(lint(&f).is_empty());
        assert_eq!(storage_lint(&f, false)[0].code, "cache-rule-not-a-cache");
        assert!(storage_lint(&f, true).is_empty());
    }

    #[test]
    fn bad_cache_rules_are_named() {
        let e = crate::compile(&file(&format!(
            "{HEAD}cache: {{max_bytes: lots}}\npolicies: []\n"
        )))
        .unwrap_err();
        assert!(e.0.iter().any(|m| m.starts_with("cache.max_bytes:")), "{e}");
        let mixed = format!(
            "{HEAD}cache: {{max_bytes: 1GB}}\npolicies:\n  - {{id: a, scope: {{repositories: [\"glob:**\"]}}, otherwise: keep}}\n"
        );
        let e = crate::compile(&file(&mixed)).unwrap_err();
        assert!(e.0.iter().any(|m| m.contains("do not mix")), "{e}");
        // An unknown order or field is a parse error, never a rule that does nothing.
        assert!(
            crate::parse(&format!(
                "{HEAD}cache: {{max_bytes: 1GB, evict: biggest}}\npolicies: []\n"
            ))
            .is_err()
        );
        assert!(crate::parse(&format!("{HEAD}cache: {{maxbytes: 1GB}}\npolicies: []\n")).is_err());
        // Without a cache rule, an empty policy list is still an error.
        assert!(crate::compile(&file(&format!("{HEAD}policies: []\n"))).is_err());
    }

    #[test]
    fn zero_bytes_is_linted() {
        let f = file(&format!(
            "{HEAD}cache: {{max_bytes: \"0\", evict: least_recently_cached}}\npolicies: []\n"
        ));
        assert_eq!(lint(&f)[0].code, "cache-max-bytes-zero");
        assert_eq!(
            compile(&f).unwrap().unwrap().evict,
            EvictOrder::LeastRecentlyCached
        );
    }
}
