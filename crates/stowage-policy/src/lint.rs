//! Lints: policies that parse but walk into a trap someone has fallen into before
//! (`shared/spec/retention.md` §5.6, each mapped to a real incident).

use serde::Serialize;

use crate::file::*;
use crate::values::{Pattern, parse_duration};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lint {
    /// Stable code (`delete-without-floor`...).
    pub code: &'static str,
    /// Where (`policies[ci-builds].keep[last-5]`).
    pub at: String,
    pub message: String,
}

fn crit_uses(c: &Criterion, f: &mut dyn FnMut(&Criterion)) {
    f(c);
    for x in c.all.iter().flatten().chain(c.any.iter().flatten()) {
        crit_uses(x, f);
    }
    if let Some(x) = &c.not {
        crit_uses(x, f);
    }
}

fn count_fields(c: &Criterion) -> Vec<&'static str> {
    let mut v = Vec::new();
    macro_rules! f {
        ($($name:ident),*) => { $( if c.$name.is_some() { v.push(stringify!($name)); } )* };
    }
    f!(
        last,
        within,
        older_than,
        newer_than,
        pulled_within,
        not_pulled_within,
        calendar,
        calendar_within,
        all,
        any,
        not
    );
    v
}

/// Lint a policy file (it need not compile).
pub fn lint(f: &PolicyFile) -> Vec<Lint> {
    let mut out = crate::cache::lint(f);
    let mut push = |code, at: String, message: String| out.push(Lint { code, at, message });
    if f.settings.time_source == TimeSource::Created {
        push(
            "config-created-time",
            "settings.time_source".into(),
            "the image config's created is a hint only: reproducible builds say 1970 (or 1980), and a rebuilt old commit looks ancient; prefer tag_updated or pushed".into(),
        );
    }
    let cosign_like = "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig";
    for pol in &f.policies {
        let at = format!("policies[{}]", pol.id);
        let floor = pol
            .overrides
            .as_ref()
            .and_then(|o| o.keep_newest_per_repository)
            .unwrap_or(f.protections.keep_newest_per_repository);
        if pol.otherwise == Otherwise::Delete && (pol.keep.is_empty() || floor == 0) {
            push(
                "delete-without-floor",
                at.clone(),
                format!(
                    "otherwise: delete with {} and keep_newest_per_repository {floor}: this policy can empty a repository (gitlab#325429)",
                    if pol.keep.is_empty() {
                        "no keep rule"
                    } else {
                        "keep rules"
                    }
                ),
            );
        }
        let counts_referrers = pol.select.referrers != ReferrerSelect::None;
        let can_delete = pol.otherwise == Otherwise::Delete || !pol.delete.is_empty();
        let tag_patterns: Vec<Pattern> = pol
            .select
            .tags
            .iter()
            .filter_map(|t| Pattern::parse(t).ok())
            .collect();
        let set = crate::values::PatternSet::parse(&pol.select.tags).unwrap_or_default();
        if can_delete
            && pol.select.referrers == ReferrerSelect::None
            && (pol.select.tags.is_empty() || set.matches(cosign_like))
            && pol.select.tag_state != Some(TagState::Untagged)
        {
            push(
                "signature-tags-unhandled",
                format!("{at}.select"),
                "this policy can delete and its tag selection matches cosign-style tags (sha256-<hex>.sig/.att/.sbom): signatures whose subject exists follow their subject, but orphaned ones are selected like any tag; exclude them (\"!regex:sha256-[0-9a-f]{64}\\\\..*\") or handle them with select.referrers".into(),
            );
        }
        for p in &tag_patterns {
            if let Some(src) = p.regex_source() {
                let starts = src.starts_with(".*") && src.len() > 2;
                let ends = src.ends_with(".*") && src.len() > 2;
                if starts || ends {
                    push(
                        "unanchored-intent",
                        format!("{at}.select.tags"),
                        format!(
                            "{:?}: patterns are anchored (^…$); a leading or trailing .* next to literals usually means an unanchored search was intended, and matches more than it seems",
                            p.text
                        ),
                    );
                }
            }
        }
        for (which, rules) in [("keep", &pol.keep), ("delete", &pol.delete)] {
            for r in rules.iter() {
                let rat = format!("{at}.{which}[{}]", r.id);
                let c = r.criterion();
                let mut uses_last = false;
                let mut uses_pull = false;
                crit_uses(&c, &mut |x| {
                    uses_last |= x.last.is_some();
                    uses_pull |= x.pulled_within.is_some() || x.not_pulled_within.is_some();
                    let n = count_fields(x);
                    if n.len() > 1 {
                        // Reported as an error by compile; named here for `policy check`.
                    }
                });
                let n = count_fields(&c);
                if n.len() > 1 {
                    push(
                        "ambiguous-bare-list",
                        rat.clone(),
                        format!(
                            "{} side by side: say all: (every one) or any: (one is enough)",
                            n.join(", ")
                        ),
                    );
                }
                if uses_last && counts_referrers {
                    push(
                        "count-includes-artifacts",
                        rat.clone(),
                        "last: counts over referrers (signatures, attestations) here; they crowd out images (aws/containers-roadmap#2613)".into(),
                    );
                }
                if (uses_pull || r.time_source == Some(TimeSource::Pulled))
                    && f.settings.pull_sources.is_empty()
                {
                    push(
                        "pull-rule-without-source",
                        rat.clone(),
                        "a pull condition needs pull data and settings.pull_sources is empty: refused at plan time".into(),
                    );
                }
                if r.across_repositories && r.group_by.is_empty() {
                    push(
                        "across-repositories-ungrouped",
                        rat.clone(),
                        "across_repositories without group_by counts every image of the scope together: last: N keeps N images in total, so most repositories keep only what the floor keeps; group by a tag capture (branch, major)".into(),
                    );
                }
                if r.time_source == Some(TimeSource::Created) {
                    push(
                        "config-created-time",
                        format!("{rat}.time_source"),
                        "the image config's created is a hint only (1970 for reproducible builds)"
                            .into(),
                    );
                }
            }
        }
        shadowed_keep(pol, &at, &mut push);
    }
    out
}

/// Shadowed keep rules of one policy.
fn shadowed_keep(pol: &Policy, at: &str, push: &mut dyn FnMut(&'static str, String, String)) {
    // Shadowed keep rules: a plain `last: N` (or `within: D`) whose grouping and order
    // equal another keep rule's with a larger N (longer D) can never keep anything more.
    for (i, a) in pol.keep.iter().enumerate() {
        for (j, b) in pol.keep.iter().enumerate() {
            if i == j || a.when.is_some() || b.when.is_some() {
                continue;
            }
            // Counting across repositories ranks (and, with relative_to: group_latest, dates)
            // within other groups: a per-repository `last: 3` is not inside a global `last: 5`.
            let same = a.group_by == b.group_by
                && a.across_repositories == b.across_repositories
                && a.order_by == b.order_by
                && a.time_source == b.time_source
                && a.prerelease == b.prerelease;
            let ca = a.criterion();
            let cb = b.criterion();
            let shadowed = same
                && ((count_fields(&ca) == ["last"]
                    && count_fields(&cb) == ["last"]
                    && (ca.last < cb.last || (ca.last == cb.last && i > j)))
                    || (count_fields(&ca) == ["within"]
                        && count_fields(&cb) == ["within"]
                        && match (
                            ca.within.as_deref().map(parse_duration),
                            cb.within.as_deref().map(parse_duration),
                        ) {
                            (Some(Ok(x)), Some(Ok(y))) => x < y || (x == y && i > j),
                            _ => false,
                        }));
            if shadowed {
                push(
                    "shadowed-keep",
                    format!("{at}.keep[{}]", a.id),
                    format!(
                        "keeps nothing that keep rule {} does not already keep",
                        b.id
                    ),
                );
                break;
            }
        }
    }
}
