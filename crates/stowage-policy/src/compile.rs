//! From the policy file to something evaluable, with every problem named by where it is.
//!
//! Errors (the plan refuses the policy): unknown version, no policies, duplicate ids, empty
//! scopes, rules without a criterion, several criteria side by side without `all:`/`any:`
//! (ambiguous: the spec's lint is an error here, since the issue asks for ambiguous policies
//! to be refused), `group_by` names no tag pattern captures, invalid patterns, durations, sizes,
//! pins, pull conditions (no pull data source exists yet), an unknown timezone.

use std::collections::BTreeSet;

use stowage_model::time::Timestamp;

pub use crate::facts::FactsC;
use crate::facts::compile_facts;
use crate::file::*;
use crate::refs::{ImageRef, parse_ref};
use crate::values::{Pattern, PatternSet, parse_bytes, parse_duration};

/// A compiled criterion tree. Counting leaves (`last`, `calendar`) carry an index into the
/// rule's precomputed per-group results.
#[derive(Clone, Debug)]
pub enum Crit {
    Last(u64, usize),
    Calendar(Vec<(Bucket, i64)>, usize),
    /// Buckets with a window in seconds each (`calendar_within`).
    CalendarWithin(Vec<(Bucket, i64)>, usize),
    Within(i64),
    OlderThan(i64),
    PulledWithin(i64),
    NotPulledWithin(i64),
    When(WhenC),
    All(Vec<Crit>),
    Any(Vec<Crit>),
    Not(Box<Crit>),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bucket {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Quarterly => "quarterly",
            Bucket::Yearly => "yearly",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct WhenC {
    pub capture: Vec<(String, Pattern)>,
    pub tag: Option<Pattern>,
}

#[derive(Clone, Debug)]
pub struct RuleC {
    pub id: String,
    pub group_by: Vec<String>,
    pub order_by: OrderBy,
    pub time_source: TimeSource,
    pub prerelease: Prerelease,
    pub when: Option<WhenC>,
    /// Groups span the policy's repositories (`across_repositories: true`).
    pub across_repositories: bool,
    pub crit: Crit,
    /// Number of counting leaves in `crit`.
    pub counters: usize,
}

impl RuleC {
    /// Whether the rule's decision depends on pull data (a pull criterion, or pull times).
    pub fn uses_pulls(&self) -> bool {
        fn crit(c: &Crit) -> bool {
            match c {
                Crit::PulledWithin(_) | Crit::NotPulledWithin(_) => true,
                Crit::All(cs) | Crit::Any(cs) => cs.iter().any(crit),
                Crit::Not(c) => crit(c),
                _ => false,
            }
        }
        self.time_source == TimeSource::Pulled || crit(&self.crit)
    }
}

#[derive(Clone, Debug)]
pub struct PolicyC {
    pub id: String,
    pub scope: PatternSet,
    pub tags: PatternSet,
    pub tag_state: TagState,
    pub referrers: ReferrerSelect,
    pub artifact_type: Vec<Pattern>,
    /// Platform, size, annotation and label selectors.
    pub facts: FactsC,
    pub keep: Vec<RuleC>,
    pub delete: Vec<RuleC>,
    pub otherwise: Otherwise,
    pub keep_newest: Option<u32>,
    pub allow_empty: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct PinC {
    pub reference: ImageRef,
    pub until: Option<Timestamp>,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct PullSourceC {
    pub path: String,
    pub max_age: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Compiled {
    pub name: String,
    pub time_source: TimeSource,
    pub relative_to: RelativeTo,
    pub tz: jiff::tz::TimeZone,
    pub missing_time: MissingTime,
    pub untag: bool,
    pub keep_newest: u32,
    pub allow_empty: bool,
    pub in_use: Option<InUse>,
    pub in_use_max_age: Option<i64>,
    pub pins: Vec<PinC>,
    pub immutable: PatternSet,
    pub grace: i64,
    pub max_images: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_fraction: Option<f64>,
    pub policies: Vec<PolicyC>,
    pub pull_sources: Vec<PullSourceC>,
    /// Every pull condition and the window it looks back (checked against data coverage).
    pub pull_windows: Vec<(String, i64)>,
    /// Whether anything in the policy uses pull data.
    pub uses_pulls: bool,
    /// What a plan does about recent pulls of images it deletes (`settings.would_break`).
    pub would_break: WouldBreakAction,
    /// How far back that check looks (`settings.would_break_window`; `None`: all the data).
    pub would_break_window: Option<i64>,
    /// `settings.cosign_repositories`.
    pub cosign_repos: PatternSet,
}

impl Compiled {
    /// Whether evaluating needs [`crate::eval::ManifestFacts`] read from the storage.
    pub fn needs_facts(&self) -> bool {
        self.policies.iter().any(|p| p.facts.needs_reads())
    }
}

/// Every problem of a policy file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct PolicyErrors(pub Vec<String>);

/// Parse YAML text into a policy file (shape only).
pub fn parse(text: &str) -> Result<PolicyFile, PolicyErrors> {
    // Size and nesting first, in linear time: the YAML parser is not linear on hostile input.
    crate::limits::check(text).map_err(|e| PolicyErrors(vec![e]))?;
    serde_yaml_ng::from_str(text).map_err(|e| PolicyErrors(vec![e.to_string()]))
}

/// Check and compile a policy file.
pub fn compile(f: &PolicyFile) -> Result<Compiled, PolicyErrors> {
    let mut errs = Vec::new();
    if f.api_version != "retention.v1" {
        errs.push(format!(
            "apiVersion: {:?} is not \"retention.v1\"",
            f.api_version
        ));
    }
    if f.kind != "RetentionPolicy" {
        errs.push(format!("kind: {:?} is not \"RetentionPolicy\"", f.kind));
    }
    if f.policies.is_empty() && f.cache.is_none() {
        errs.push("policies: empty; a policy file must say what to keep or delete".into());
    }
    errs.extend(crate::cache::check(f));
    let tz = jiff::tz::TimeZone::get(&f.settings.timezone).unwrap_or_else(|e| {
        errs.push(format!("settings.timezone: {:?}: {e}", f.settings.timezone));
        jiff::tz::TimeZone::UTC
    });
    // Pull conditions need a pull source; each window they look back is checked against
    // the data's coverage at evaluation.
    let pull_uses = pull_uses(f);
    if f.settings.pull_sources.is_empty() {
        for (at, _) in &pull_uses {
            errs.push(no_pull_data(at));
        }
    }
    if f.settings.pull_sources.len() > 1 {
        errs.push(
            "settings.pull_sources: one source is supported (the stowage history database)".into(),
        );
    }
    let pull_windows: Vec<(String, i64)> = pull_uses
        .iter()
        .filter_map(|(at, d)| {
            d.as_ref()
                .and_then(|d| parse_duration(d).ok())
                .map(|d| (at.clone(), d))
        })
        .collect();
    let pull_sources: Vec<PullSourceC> = f
        .settings
        .pull_sources
        .iter()
        .enumerate()
        .map(|(i, s)| PullSourceC {
            path: s.path.clone(),
            max_age: s.max_age.as_ref().and_then(|t| {
                parse_duration(t)
                    .map_err(|e| errs.push(format!("settings.pull_sources[{i}].max_age: {e}")))
                    .ok()
            }),
        })
        .collect();
    let would_break_window = f.settings.would_break_window.as_ref().and_then(|t| {
        parse_duration(t)
            .map_err(|e| errs.push(format!("settings.would_break_window: {e}")))
            .ok()
    });
    let cosign_repos = PatternSet::parse(&f.settings.cosign_repositories)
        .map_err(|e| errs.push(format!("settings.cosign_repositories: {e}")))
        .unwrap_or_default();
    let p = &f.protections;
    let ProtectionsC {
        grace,
        in_use_max_age,
        pins,
        immutable,
        max_bytes,
    } = compile_protections(p, &mut errs);

    let mut ids = BTreeSet::new();
    let mut policies = Vec::new();
    for (i, pol) in f.policies.iter().enumerate() {
        policies.push(compile_policy(f, i, pol, &mut ids, &mut errs));
    }
    if !errs.is_empty() {
        return Err(PolicyErrors(errs));
    }
    Ok(Compiled {
        name: f.metadata.name.clone(),
        time_source: f.settings.time_source,
        relative_to: f.settings.relative_to,
        tz,
        missing_time: f.settings.missing_time,
        untag: f.settings.untag,
        keep_newest: p.keep_newest_per_repository,
        allow_empty: p.allow_empty_repository,
        in_use: p.in_use.clone(),
        in_use_max_age,
        pins,
        immutable,
        grace,
        max_images: p.limits.max_images_deleted,
        max_bytes,
        max_fraction: p.limits.max_fraction_per_repository,
        policies,
        pull_sources,
        pull_windows,
        uses_pulls: !pull_uses.is_empty(),
        would_break: f.settings.would_break,
        would_break_window,
        cosign_repos,
    })
}

/// The protections' values that need checking.
struct ProtectionsC {
    grace: i64,
    in_use_max_age: Option<i64>,
    pins: Vec<PinC>,
    immutable: PatternSet,
    max_bytes: Option<u64>,
}

fn compile_protections(p: &Protections, errs: &mut Vec<String>) -> ProtectionsC {
    let dur = |what: &str, v: &Option<String>, errs: &mut Vec<String>| -> Option<i64> {
        v.as_ref().and_then(|t| {
            parse_duration(t)
                .map_err(|e| errs.push(format!("{what}: {e}")))
                .ok()
        })
    };
    let grace = dur("protections.grace_period", &p.grace_period, errs).unwrap_or(0);
    let in_use_max_age = p
        .in_use
        .as_ref()
        .and_then(|u| dur("protections.in_use.max_age", &u.max_age, errs));
    if let Some(u) = &p.in_use {
        if u.sources.is_empty() {
            errs.push("protections.in_use.sources: empty".into());
        }
        let mut names = BTreeSet::new();
        for s in &u.sources {
            if !names.insert(&s.name) {
                errs.push(format!(
                    "protections.in_use.sources: duplicate name {:?}",
                    s.name
                ));
            }
        }
    }
    let mut pins = Vec::new();
    for (i, pin) in p.pins.iter().enumerate() {
        let reference = match parse_ref(&pin.reference) {
            Ok(r) if !r.repository.is_empty() && (r.tag.is_some() || r.digest.is_some()) => r,
            Ok(_) => {
                errs.push(format!(
                    "protections.pins[{i}].ref: {:?} must name a repository and a tag or digest",
                    pin.reference
                ));
                continue;
            }
            Err(e) => {
                errs.push(format!("protections.pins[{i}].ref: {e}"));
                continue;
            }
        };
        let until = match &pin.until {
            None => None,
            Some(t) => match Timestamp::parse_rfc3339(t) {
                Some(t) => Some(t),
                None => {
                    errs.push(format!(
                        "protections.pins[{i}].until: {t:?} is not RFC 3339"
                    ));
                    continue;
                }
            },
        };
        pins.push(PinC {
            reference,
            until,
            reason: pin.reason.clone(),
        });
    }
    let immutable = PatternSet::parse(&p.immutable_tags)
        .map_err(|e| errs.push(format!("protections.immutable_tags: {e}")))
        .unwrap_or_default();
    let max_bytes = p.limits.max_bytes_freed.as_ref().and_then(|t| {
        parse_bytes(t)
            .map_err(|e| errs.push(format!("protections.limits.max_bytes_freed: {e}")))
            .ok()
    });
    if let Some(x) = p.limits.max_fraction_per_repository
        && !(0.0..=1.0).contains(&x)
    {
        errs.push(format!(
            "protections.limits.max_fraction_per_repository: {x} is not between 0 and 1"
        ));
    }

    ProtectionsC {
        grace,
        in_use_max_age,
        pins,
        immutable,
        max_bytes,
    }
}

/// One policy of the file, compiled; problems go to `errs`, named by where they are.
fn compile_policy(
    f: &PolicyFile,
    i: usize,
    pol: &Policy,
    ids: &mut BTreeSet<String>,
    errs: &mut Vec<String>,
) -> PolicyC {
    let at = if pol.id.is_empty() {
        format!("policies[{i}]")
    } else {
        format!("policies[{}]", pol.id)
    };
    if pol.id.is_empty() {
        errs.push(format!("{at}.id: empty"));
    } else if !ids.insert(pol.id.clone()) {
        errs.push(format!("{at}.id: duplicate policy id"));
    }
    let scope = match PatternSet::parse(&pol.scope.repositories) {
        Ok(s) if s.is_empty() => {
            errs.push(format!(
                "{at}.scope.repositories: no include pattern (write glob:** for every repository)"
            ));
            s
        }
        Ok(s) => s,
        Err(e) => {
            errs.push(format!("{at}.scope.repositories: {e}"));
            PatternSet::default()
        }
    };
    let tags = PatternSet::parse(&pol.select.tags)
        .map_err(|e| errs.push(format!("{at}.select.tags: {e}")))
        .unwrap_or_default();
    let tag_state = pol
        .select
        .tag_state
        .unwrap_or(if pol.select.tags.is_empty() {
            TagState::Any
        } else {
            TagState::Tagged
        });
    if !pol.select.tags.is_empty() && tag_state == TagState::Untagged {
        errs.push(format!(
            "{at}.select: tags and tag_state: untagged together select nothing"
        ));
    }
    let artifact_type = pol
        .select
        .artifact_type
        .iter()
        .filter_map(|t| {
            Pattern::parse(t)
                .map_err(|e| errs.push(format!("{at}.select.artifact_type: {e}")))
                .ok()
        })
        .collect();
    let facts = compile_facts(&pol.select, &at, errs);
    let captures: BTreeSet<String> = tags
        .include
        .iter()
        .flat_map(|p| p.capture_names())
        .collect();
    let mut rule_ids = BTreeSet::new();
    let ctx = RulesCtx {
        at: &at,
        captures: &captures,
        time_source: f.settings.time_source,
    };
    let keep = compile_rules(&ctx, &pol.keep, "keep", &mut rule_ids, errs);
    let delete = compile_rules(&ctx, &pol.delete, "delete", &mut rule_ids, errs);
    if pol.keep.is_empty() && pol.delete.is_empty() && pol.otherwise == Otherwise::Keep {
        errs.push(format!(
            "{at}: no keep rule, no delete rule and otherwise: keep: this policy does nothing"
        ));
    }
    let ov = pol.overrides.clone().unwrap_or_default();
    PolicyC {
        id: pol.id.clone(),
        scope,
        tags,
        tag_state,
        referrers: pol.select.referrers,
        artifact_type,
        facts,
        keep,
        delete,
        otherwise: pol.otherwise,
        keep_newest: ov.keep_newest_per_repository,
        allow_empty: ov.allow_empty_repository,
    }
}

/// Where a policy's rules are compiled: its location and the captures of its tags.
struct RulesCtx<'a> {
    at: &'a str,
    captures: &'a BTreeSet<String>,
    time_source: TimeSource,
}

/// The keep or delete rules of a policy.
fn compile_rules(
    ctx: &RulesCtx<'_>,
    list: &[Rule],
    which: &str,
    rule_ids: &mut BTreeSet<String>,
    errs: &mut Vec<String>,
) -> Vec<RuleC> {
    let at = ctx.at;
    let mut out = Vec::new();
    for (j, r) in list.iter().enumerate() {
        let rat = if r.id.is_empty() {
            format!("{at}.{which}[{j}]")
        } else {
            format!("{at}.{which}[{}]", r.id)
        };
        if r.id.is_empty() {
            errs.push(format!("{rat}.id: empty"));
        } else if !rule_ids.insert(r.id.clone()) {
            errs.push(format!("{rat}.id: duplicate rule id in this policy"));
        }
        if r.across_repositories && r.group_by.iter().any(|g| g == "repository") {
            errs.push(format!(
                "{rat}: group_by: [repository] and across_repositories: true contradict each other (counting is per repository unless across_repositories)"
            ));
        }
        for g in &r.group_by {
            if g != "repository" && !ctx.captures.contains(g) {
                errs.push(format!(
                    "{rat}.group_by: {g:?} is not a named capture of select.tags (captures: {})",
                    if ctx.captures.is_empty() {
                        "none".to_string()
                    } else {
                        ctx.captures.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
        }
        let order_by = r.order_by.unwrap_or(OrderBy::Time);
        let time_source = r.time_source.unwrap_or(ctx.time_source);
        let when = r
            .when
            .as_ref()
            .and_then(|w| compile_when(w, &rat, ctx.captures, errs));
        let mut counters = 0;
        let c = r.criterion();
        // A rule with only `when:` keeps (or deletes) whatever it matches.
        let (crit, when) = if c == Criterion::default() && when.is_some() {
            (when.map(Crit::When), None)
        } else {
            (
                compile_crit(&c, &rat, ctx.captures, &mut counters, errs),
                when,
            )
        };
        if let Some(crit) = crit {
            out.push(RuleC {
                id: r.id.clone(),
                group_by: r
                    .group_by
                    .iter()
                    .filter(|g| *g != "repository")
                    .cloned()
                    .collect(),
                order_by,
                time_source,
                prerelease: r.prerelease,
                when,
                across_repositories: r.across_repositories,
                crit,
                counters,
            });
        }
    }
    out
}

fn no_pull_data(what: &str) -> String {
    format!(
        "{what}: needs pull data, and settings.pull_sources is empty; without data a pull condition would silently never (or always) match. Ingest the registry's logs (`stowage usage ingest --db FILE`) and name that database in settings.pull_sources"
    )
}

/// Every use of pull data in a policy file: (where, window looked back if any).
pub fn pull_uses(f: &PolicyFile) -> Vec<(String, Option<String>)> {
    fn walk(c: &Criterion, at: &str, out: &mut Vec<(String, Option<String>)>) {
        if let Some(d) = &c.pulled_within {
            out.push((format!("{at}.pulled_within"), Some(d.clone())));
        }
        if let Some(d) = &c.not_pulled_within {
            out.push((format!("{at}.not_pulled_within"), Some(d.clone())));
        }
        for (name, list) in [("all", &c.all), ("any", &c.any)] {
            for (i, x) in list.iter().flatten().enumerate() {
                walk(x, &format!("{at}.{name}[{i}]"), out);
            }
        }
        if let Some(x) = &c.not {
            walk(x, &format!("{at}.not"), out);
        }
    }
    let mut out = Vec::new();
    if f.settings.time_source == TimeSource::Pulled {
        out.push(("settings.time_source: pulled".to_string(), None));
    }
    for p in &f.policies {
        for (which, rules) in [("keep", &p.keep), ("delete", &p.delete)] {
            for r in rules.iter() {
                let at = format!("policies[{}].{which}[{}]", p.id, r.id);
                if r.time_source == Some(TimeSource::Pulled) {
                    out.push((format!("{at}.time_source: pulled"), None));
                }
                walk(&r.criterion(), &at, &mut out);
            }
        }
    }
    out
}

fn compile_when(
    w: &When,
    at: &str,
    captures: &BTreeSet<String>,
    errs: &mut Vec<String>,
) -> Option<WhenC> {
    let mut out = WhenC::default();
    for (name, pat) in &w.capture {
        if !captures.contains(name) {
            errs.push(format!(
                "{at}.when.capture: {name:?} is not a named capture of select.tags"
            ));
            continue;
        }
        match Pattern::parse(pat) {
            Ok(p) => out.capture.push((name.clone(), p)),
            Err(e) => errs.push(format!("{at}.when.capture.{name}: {e}")),
        }
    }
    if let Some(t) = &w.tag {
        match Pattern::parse(t) {
            Ok(p) => out.tag = Some(p),
            Err(e) => errs.push(format!("{at}.when.tag: {e}")),
        }
    }
    if out.capture.is_empty() && out.tag.is_none() && w.capture.is_empty() {
        errs.push(format!("{at}.when: empty"));
    }
    Some(out)
}

/// `calendar:` buckets with their counts (a positive count, or -1 for unlimited).
fn calendar(cal: &Calendar, at: &str, errs: &mut Vec<String>) -> Vec<(Bucket, i64)> {
    let mut b = Vec::new();
    for (k, v) in [
        (Bucket::Hourly, cal.hourly),
        (Bucket::Daily, cal.daily),
        (Bucket::Weekly, cal.weekly),
        (Bucket::Monthly, cal.monthly),
        (Bucket::Quarterly, cal.quarterly),
        (Bucket::Yearly, cal.yearly),
    ] {
        match v {
            None => {}
            Some(n) if n == -1 || n > 0 => b.push((k, n)),
            Some(n) => errs.push(format!(
                "{at}.calendar.{}: {n} (a positive count, or -1 for unlimited)",
                k.as_str()
            )),
        }
    }
    if b.is_empty() {
        errs.push(format!("{at}.calendar: no bucket"));
    }
    b
}

/// `calendar_within:` buckets with their windows in seconds; a window shorter than one
/// period of its bucket is refused.
fn calendar_within(cal: &CalendarWithin, at: &str, errs: &mut Vec<String>) -> Vec<(Bucket, i64)> {
    let mut b = Vec::new();
    for (k, v) in [
        (Bucket::Hourly, &cal.hourly),
        (Bucket::Daily, &cal.daily),
        (Bucket::Weekly, &cal.weekly),
        (Bucket::Monthly, &cal.monthly),
        (Bucket::Quarterly, &cal.quarterly),
        (Bucket::Yearly, &cal.yearly),
    ] {
        if let Some(t) = v {
            // The shortest period of each bucket: a window shorter than one period
            // (`monthly: 6m` is 6 minutes; months are `M`) is a mistake, never a policy.
            let period = match k {
                Bucket::Hourly => 3600,
                Bucket::Daily => 86_400,
                Bucket::Weekly => 7 * 86_400,
                Bucket::Monthly => 28 * 86_400,
                Bucket::Quarterly => 90 * 86_400,
                Bucket::Yearly => 365 * 86_400,
            };
            match parse_duration(t) {
                Ok(d) if d >= period => b.push((k, d)),
                Ok(0) => errs.push(format!(
                    "{at}.calendar_within.{}: {t:?} keeps nothing (a window longer than 0)",
                    k.as_str()
                )),
                Ok(_) => errs.push(format!(
                    "{at}.calendar_within.{}: {t:?} is shorter than one {} period (units: m = minutes, h, d, w, M = months, y = years)",
                    k.as_str(),
                    k.as_str().trim_end_matches("ly").replace("dai", "day")
                )),
                Err(e) => errs.push(format!("{at}.calendar_within.{}: {e}", k.as_str())),
            }
        }
    }
    if b.is_empty()
        && errs
            .iter()
            .all(|e| !e.starts_with(&format!("{at}.calendar_within")))
    {
        errs.push(format!("{at}.calendar_within: no bucket"));
    }
    b
}

fn compile_crit(
    c: &Criterion,
    at: &str,
    captures: &BTreeSet<String>,
    counters: &mut usize,
    errs: &mut Vec<String>,
) -> Option<Crit> {
    let mut found: Vec<(&str, Option<Crit>)> = Vec::new();
    let dur = |name: &'static str, v: &Option<String>, errs: &mut Vec<String>| {
        v.as_ref().map(|t| {
            (
                name,
                parse_duration(t)
                    .map_err(|e| errs.push(format!("{at}.{name}: {e}")))
                    .ok(),
            )
        })
    };
    if let Some(n) = c.last {
        if n == 0 {
            errs.push(format!("{at}.last: 0 selects nothing"));
        }
        found.push(("last", Some(Crit::Last(n, *counters))));
        *counters += 1;
    }
    if let Some((n, d)) = dur("within", &c.within, errs) {
        found.push((n, d.map(Crit::Within)));
    }
    if let Some((n, d)) = dur("newer_than", &c.newer_than, errs) {
        found.push((n, d.map(Crit::Within)));
    }
    if let Some((n, d)) = dur("older_than", &c.older_than, errs) {
        found.push((n, d.map(Crit::OlderThan)));
    }
    if let Some((n, d)) = dur("pulled_within", &c.pulled_within, errs) {
        found.push((n, d.map(Crit::PulledWithin)));
    }
    if let Some((n, d)) = dur("not_pulled_within", &c.not_pulled_within, errs) {
        found.push((n, d.map(Crit::NotPulledWithin)));
    }
    if let Some(cal) = &c.calendar {
        found.push((
            "calendar",
            Some(Crit::Calendar(calendar(cal, at, errs), *counters)),
        ));
        *counters += 1;
    }
    if let Some(cal) = &c.calendar_within {
        let b = calendar_within(cal, at, errs);
        found.push(("calendar_within", Some(Crit::CalendarWithin(b, *counters))));
        *counters += 1;
    }
    if let Some(w) = &c.when {
        found.push(("when", compile_when(w, at, captures, errs).map(Crit::When)));
    }
    let mut list = |name: &'static str, v: &Option<Vec<Criterion>>, errs: &mut Vec<String>| {
        v.as_ref().map(|items| {
            if items.is_empty() {
                errs.push(format!("{at}.{name}: empty list"));
            }
            let cs: Vec<Crit> = items
                .iter()
                .enumerate()
                .filter_map(|(i, x)| {
                    compile_crit(x, &format!("{at}.{name}[{i}]"), captures, counters, errs)
                })
                .collect();
            (name, cs)
        })
    };
    if let Some((n, cs)) = list("all", &c.all, errs) {
        found.push((n, Some(Crit::All(cs))));
    }
    if let Some((n, cs)) = list("any", &c.any, errs) {
        found.push((n, Some(Crit::Any(cs))));
    }
    if let Some(x) = &c.not {
        let inner = compile_crit(x, &format!("{at}.not"), captures, counters, errs);
        found.push(("not", inner.map(|i| Crit::Not(Box::new(i)))));
    }
    match found.len() {
        0 => {
            errs.push(format!(
                "{at}: no criterion (last, within, older_than, newer_than, pulled_within, not_pulled_within, calendar, calendar_within, when, all, any, not)"
            ));
            None
        }
        1 => found.pop().and_then(|(_, c)| c),
        _ => {
            let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
            errs.push(format!(
                "{at}: {} side by side is ambiguous; write all: [...] (every one must hold) or any: [...] (one is enough)",
                names.join(", ")
            ));
            None
        }
    }
}
