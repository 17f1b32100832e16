//! Checked values of the policy file: patterns, durations, byte sizes.

use stowage_model::pattern::{self, GlobOptions};

/// An anchored pattern: `glob:…` (the default when no prefix is given), `regex:…` (Rust
/// `regex`, linear time, always anchored `^(?:…)$`), or either prefixed with `!` (exclude).
#[derive(Clone, Debug)]
pub struct Pattern {
    pub text: String,
    pub negated: bool,
    matcher: Matcher,
}

#[derive(Clone, Debug)]
enum Matcher {
    Glob(globset::GlobMatcher),
    Regex(regex::Regex),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let (negated, rest) = match text.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let matcher = if let Some(re) = rest.strip_prefix("regex:") {
            if re.is_empty() {
                return Err(format!("{text:?}: empty regex"));
            }
            // Limits and a clean error: `stowage_model::pattern` (shared by every pattern).
            let r = pattern::regex(re, true).map_err(|e| format!("{text:?}: {e}"))?;
            Matcher::Regex(r)
        } else {
            let g = rest.strip_prefix("glob:").unwrap_or(rest);
            if g.is_empty() {
                return Err(format!("{text:?}: empty pattern"));
            }
            let glob = pattern::glob(
                g,
                GlobOptions {
                    literal_separator: true,
                    backslash_escape: true,
                    case_insensitive: false,
                },
            )
            .map_err(|e| format!("{text:?}: {e}"))?;
            Matcher::Glob(glob.compile_matcher())
        };
        Ok(Pattern {
            text: text.to_string(),
            negated,
            matcher,
        })
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.matcher, Matcher::Regex(_))
    }

    /// The regex source without the anchoring wrapper (for lints).
    pub fn regex_source(&self) -> Option<&str> {
        let t = self.text.strip_prefix('!').unwrap_or(&self.text);
        t.strip_prefix("regex:")
    }

    /// Whether `s` matches (ignoring negation).
    pub fn matches(&self, s: &str) -> bool {
        match &self.matcher {
            Matcher::Glob(g) => g.is_match(s),
            Matcher::Regex(r) => r.is_match(s),
        }
    }

    /// Named captures when `s` matches (ignoring negation); empty for globs.
    pub fn captures(&self, s: &str) -> Option<Vec<(String, String)>> {
        match &self.matcher {
            Matcher::Glob(g) => g.is_match(s).then(Vec::new),
            Matcher::Regex(r) => {
                let c = r.captures(s)?;
                Some(
                    r.capture_names()
                        .flatten()
                        .filter_map(|n| c.name(n).map(|m| (n.to_string(), m.as_str().to_string())))
                        .collect(),
                )
            }
        }
    }

    /// Named capture groups this pattern defines.
    pub fn capture_names(&self) -> Vec<String> {
        match &self.matcher {
            Matcher::Glob(_) => Vec::new(),
            Matcher::Regex(r) => r.capture_names().flatten().map(String::from).collect(),
        }
    }
}

/// Include patterns minus `!` excludes.
#[derive(Clone, Debug, Default)]
pub struct PatternSet {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl PatternSet {
    pub fn parse(list: &[String]) -> Result<PatternSet, String> {
        let mut s = PatternSet::default();
        for t in list {
            let p = Pattern::parse(t)?;
            if p.negated {
                s.exclude.push(p);
            } else {
                s.include.push(p);
            }
        }
        Ok(s)
    }

    /// No include pattern (an exclude-only set still matches: everything but the excludes).
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
    }

    /// No pattern at all: matches nothing.
    pub fn is_unset(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Captures of the first include pattern that matches, when no exclude matches. A set of
    /// excludes only matches everything they do not exclude; an empty set matches nothing.
    pub fn captures(&self, s: &str) -> Option<Vec<(String, String)>> {
        if self.is_unset() || self.exclude.iter().any(|p| p.matches(s)) {
            return None;
        }
        if self.include.is_empty() {
            return Some(Vec::new());
        }
        self.include.iter().find_map(|p| p.captures(s))
    }

    pub fn matches(&self, s: &str) -> bool {
        self.captures(s).is_some()
    }
}

/// A duration such as `30d`, `24h`, `2w`, `90min`, in seconds: the one grammar of flags
/// and policies (`stowage_model::units`).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    stowage_model::units::parse_duration(text).map_err(|e| e.to_string())
}

/// A byte size such as `2TiB`, `500GB`, `1.5 GiB` or a plain number of bytes
/// (`stowage_model::units`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    stowage_model::units::parse_bytes(text).map_err(|e| e.to_string())
}

/// Natural order: digit runs compare as numbers (`build-9` < `build-10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let i = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let j = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (nx, ny) = (&x[..i], &y[..j]);
                let tx: &[u8] = {
                    let z = nx.iter().take_while(|&&c| c == b'0').count();
                    &nx[z.min(nx.len().saturating_sub(1))..]
                };
                let ty: &[u8] = {
                    let z = ny.iter().take_while(|&&c| c == b'0').count();
                    &ny[z.min(ny.len().saturating_sub(1))..]
                };
                let o = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[i..];
                y = &y[j..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// A tag as a semantic version (`v1.2.3`, `1.2`, `1.2.3-rc.1`); `1.2` reads as `1.2.0`.
pub fn parse_semver(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(t) {
        return Some(v);
    }
    // Tolerate `1.2` and `1` (common in tags), with an optional pre-release.
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (t, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    if let Some(p) = pre {
        full.push('-');
        full.push_str(p);
    }
    semver::Version::parse(&full).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored() {
        let p = Pattern::parse("regex:v\\d+").unwrap();
        assert!(p.matches("v12"));
        assert!(!p.matches("xv12"));
        assert!(!p.matches("v12-rc"));
        let g = Pattern::parse("apps/*").unwrap();
        assert!(g.matches("apps/api"));
        assert!(!g.matches("apps/a/b"), "* does not cross /");
        assert!(Pattern::parse("glob:apps/**").unwrap().matches("apps/a/b"));
        let c = Pattern::parse("regex:(?P<branch>[a-z]+)-[0-9a-f]{7}")
            .unwrap()
            .captures("main-abcdef1")
            .unwrap();
        assert_eq!(c, vec![("branch".to_string(), "main".to_string())]);
        assert!(Pattern::parse("regex:(").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn pattern_sets_exclude() {
        let s =
            PatternSet::parse(&["glob:apps/**".into(), "!glob:apps/sandbox/**".into()]).unwrap();
        assert!(s.matches("apps/api"));
        assert!(!s.matches("apps/sandbox/x"));
        assert!(!s.matches("base/x"));
        let only_excludes = PatternSet::parse(&["!glob:prod-*".into()]).unwrap();
        assert!(only_excludes.matches("dev-1"));
        assert!(!only_excludes.matches("prod-1"));
        assert!(!PatternSet::default().matches("anything"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration("24h").unwrap(), 86400);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86400);
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_bytes("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_bytes("500GB").unwrap(), 500_000_000_000);
        assert_eq!(parse_bytes("1234").unwrap(), 1234);
        assert!(parse_bytes("12 parsecs").is_err());
    }

    #[test]
    fn natural_and_semver() {
        use std::cmp::Ordering::*;
        assert_eq!(natural_cmp("build-9", "build-10"), Less);
        assert_eq!(natural_cmp("b-010", "b-9"), Greater);
        assert_eq!(natural_cmp("a", "a"), Equal);
        assert!(parse_semver("v1.2.3").unwrap() > parse_semver("1.2.3-rc.1").unwrap());
        assert_eq!(parse_semver("1.2").unwrap(), semver::Version::new(1, 2, 0));
        assert!(parse_semver("latest").is_none());
        assert!(parse_semver("1.2.3.4").is_none());
    }
}
