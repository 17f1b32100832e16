//! Retention: `stowage plan --policy`, `stowage plan show`, `stowage explain PLAN REF`,
//! `stowage policy check|schema`, and the protection re-check `apply` runs for retention plans.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use stowage_model::escape::escape;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_plan::Plan;
use stowage_plan::retention::{LoadedPolicy, RetentionRun};
use stowage_report::table::{Align, Table};

use super::{GraphFindings, load};
use crate::args::{Format, PlanArgs, PlanReplayArgs, PlanSimulateArgs, PolicyCheckArgs};
use crate::exit;
use crate::output;
use crate::settings::{Settings, parse_age};

/// Read, parse and compile a policy file; errors list every problem.
pub fn read_policy(path: &Path) -> Result<LoadedPolicy> {
    Ok(LoadedPolicy::read(path)?)
}

/// The pull data a plan uses: the policy's pull source, or `--pulls DB` when it has none.
/// `cut`: for `plan simulate` ([`crate::pipeline::load_pulls_cut`]).
fn plan_pulls(
    policy: &LoadedPolicy,
    flag: Option<&Path>,
    cut: Option<Timestamp>,
) -> Result<Option<stowage_policy::PullData>> {
    let path = match (policy.pull_source(), flag) {
        (Some(p), Some(f)) if p != f => bail!(
            "--pulls {}: the policy names its own pull data ({}); use one",
            f.display(),
            p.display()
        ),
        (Some(p), _) => p,
        (None, Some(f)) => f.to_path_buf(),
        (None, None) => return Ok(None),
    };
    crate::pipeline::load_pulls_cut(&path, cut).map(Some)
}

pub fn plan(s: &Settings, a: &PlanArgs) -> Result<i32> {
    let Some(policy_path) = &a.policy else {
        bail!("stowage plan needs --policy FILE (or `stowage plan show PLAN`)");
    };
    let policy = read_policy(policy_path)?;
    for l in stowage_policy::lint::lint(&policy.file) {
        note!(
            "lint {} at {}: {}",
            l.code,
            escape(&l.at),
            escape(&l.message)
        );
    }
    let expires = parse_age(&a.expires).context("--expires")?;
    let pulls = plan_pulls(&policy, a.pulls.as_deref(), None)?;
    if let Some(p) = &pulls {
        note!(
            "pull data: {} ({} images seen pulled, from {} to {})",
            p.source,
            p.last.len(),
            p.begins.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into()),
            p.ends.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into())
        );
    }
    let loaded = load(s, false, GraphFindings::Count)?;
    super::refuse_deleting(&loaded, s)?;
    let g = loaded.graph();
    let is_cache = !loaded.proxy_cache().is_empty();
    for l in stowage_policy::cache::storage_lint(&policy.file, is_cache) {
        note!("lint {} at {}: {}", l.code, l.at, escape(&l.message));
    }
    if is_cache
        && let Some(plan) = stowage_plan::cache::policy_plan(&policy, &g, s.now, pulls.as_ref())
    {
        return cache_plan(s, a, &plan);
    }
    let run = RetentionRun {
        policy: &policy,
        now: s.now,
        unsafe_allow_empty: a.unsafe_allow_empty,
        pulls: pulls.as_ref(),
    };
    let (plan, _) = stowage_plan::retention::plan(&run, &g, &*s.storage, expires)
        .with_context(|| format!("{}: planning refused", policy_path.display()))?;
    if let Some(out) = &a.out {
        crate::output::write_file(out, |w| plan.write_json(w))?;
        note!(
            "plan written to {}; review it (stowage plan show {0}), then: stowage apply {0} [--gc]",
            out.display()
        );
    }
    let mut o = output::stdout();
    match s.format {
        Format::Table => print_summary(&mut o, &plan)?,
        _ => plan.write_json(&mut o)?,
    }
    o.flush()?;
    let blocked = plan
        .retention
        .as_ref()
        .is_some_and(|r| !r.rails_blocked.is_empty());
    Ok(if blocked { exit::FINDINGS } else { exit::OK })
}

/// A policy's cache rule on a pull-through cache: a cache GC plan with its size cap.
fn cache_plan(s: &Settings, a: &PlanArgs, plan: &Plan) -> Result<i32> {
    if let Some(out) = &a.out {
        crate::output::write_file(out, |w| plan.write_json(w))?;
        note!(
            "plan written to {} ({} to free); review it, then stop the registry and: stowage apply --offline {0}",
            out.display(),
            human_bytes(plan.bytes)
        );
    }
    let mut o = output::stdout();
    match s.format {
        Format::Table => print_cache_summary(&mut o, plan, s)?,
        _ => plan.write_json(&mut o)?,
    }
    o.flush()?;
    Ok(exit::OK)
}

fn print_cache_summary(o: &mut impl Write, plan: &Plan, s: &Settings) -> Result<()> {
    let Some(c) = &plan.cache else {
        return Ok(());
    };
    if let Some(cap) = &c.size_cap {
        let mut t = Table::new(&[
            ("EVICTED (SIZE CAP)", Align::Left),
            ("LAST PULLED", Align::Left),
            ("FROM", Align::Left),
            ("CACHED", Align::Left),
            ("FREES", Align::Right),
        ]);
        for i in &cap.images {
            t.row(vec![
                format!("{}@{}", i.repository, i.digest),
                i.last_pulled.human(&s.tz),
                i.last_pulled_from.clone(),
                i.cached_at.human(&s.tz),
                human_bytes(i.bytes_freed),
            ]);
        }
        o.write_all(t.render().as_bytes())?;
        writeln!(o)?;
        writeln!(
            o,
            "size cap {} ({}, {}): cached images reach {} after expiry, {} after the cap{}",
            human_bytes(cap.max_bytes),
            escape(&cap.source),
            cap.evict,
            human_bytes(cap.stored_before),
            human_bytes(cap.stored_after),
            if cap.unmet {
                "; NOT MET: nothing else may be evicted (no scheduler entry, or needed by a kept image)"
            } else {
                ""
            }
        )?;
    }
    for x in &plan.blocked {
        writeln!(o, "note: {}", escape(x))?;
    }
    writeln!(
        o,
        "cache: {} images evicted ({} expired), {} tags; {}: {} entries removed, {} extended",
        c.evicted_manifests,
        plan.manifests
            .iter()
            .filter(|m| m.reason == stowage_plan::cache::EXPIRED)
            .count(),
        plan.tags.len(),
        c.file,
        c.remove.len(),
        c.extend.len()
    )?;
    writeln!(
        o,
        "plan: {} blobs ({}), {} manifests; frees {} in all",
        plan.blobs.len(),
        human_bytes(plan.blob_bytes),
        plan.manifests.len(),
        human_bytes(plan.bytes)
    )?;
    print_broken(o, &plan.would_break.pulls)?;
    writeln!(o, "apply: {}", c.note)?;
    Ok(())
}

pub fn show(format: Format, path: &Path) -> Result<i32> {
    let plan = Plan::read(path)?;
    let mut o = output::stdout();
    match (format, plan.retention.is_some()) {
        (Format::Table, true) => print_summary(&mut o, &plan)?,
        (Format::Table, false) => writeln!(
            o,
            "{}: a {} plan: {} blobs ({}), {} manifests, {} uploads; `stowage gc` prints its details",
            path.display(),
            plan.kind,
            plan.blobs.len(),
            human_bytes(plan.blob_bytes),
            plan.manifests.len(),
            plan.uploads.len()
        )?,
        _ => plan.write_json(&mut o)?,
    }
    o.flush()?;
    Ok(exit::OK)
}

/// `1 image`, `2 images`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_summary(o: &mut impl Write, plan: &Plan) -> Result<()> {
    let Some(r) = &plan.retention else {
        return Ok(());
    };
    let b = &r.bytes;
    let mut t = Table::new(&[
        ("REPOSITORY", Align::Left),
        ("IMAGES", Align::Right),
        ("DELETED", Align::Right),
        ("TAGS REMOVED", Align::Right),
        ("FREED AFTER GC", Align::Right),
        ("UNLINKED", Align::Right),
    ]);
    for x in &r.repositories {
        t.row(vec![
            x.repository.clone(),
            x.images.to_string(),
            x.images_deleted.to_string(),
            x.tags_removed.to_string(),
            human_bytes(x.bytes_freed),
            human_bytes(x.bytes_unlinked),
        ]);
    }
    o.write_all(t.render().as_bytes())?;
    writeln!(o)?;
    if !r.rules.is_empty() {
        let mut t = Table::new(&[
            ("RULE", Align::Left),
            ("IMAGES DELETED", Align::Right),
            ("FREED AFTER GC", Align::Right),
        ]);
        for x in &r.rules {
            t.row(vec![
                x.rule.clone(),
                x.images.to_string(),
                human_bytes(x.bytes_freed),
            ]);
        }
        o.write_all(t.render().as_bytes())?;
        writeln!(o)?;
    }
    for s in &r.in_use_sources {
        writeln!(
            o,
            "in-use source {}: {} references, {} resolved here{}",
            s.name,
            s.refs,
            s.resolved,
            s.problem
                .as_ref()
                .map(|p| format!(" (problem: {p})"))
                .unwrap_or_default()
        )?;
    }
    for w in &r.warnings {
        writeln!(o, "warning: {}", escape(w))?;
    }
    for x in &plan.blocked {
        writeln!(o, "note: {}", escape(x))?;
    }
    for x in &r.rails_blocked {
        writeln!(o, "BLOCKED: {}", escape(x))?;
    }
    print_broken(o, &plan.would_break.pulls)?;
    writeln!(o, "recent pulls: {}", escape(&plan.would_break.note))?;
    writeln!(
        o,
        "policy {} ({}), time source {}: {} deleted, {} kept with some tags removed, {} kept; {} and {} removed",
        if r.policy_name.is_empty() {
            "(unnamed)"
        } else {
            &r.policy_name
        },
        r.policy,
        r.time_source,
        count(b.images_deleted, "image", "images"),
        count(b.images_untagged, "image", "images"),
        count(b.images_kept, "image", "images"),
        count(b.tags_removed, "tag", "tags"),
        count(b.manifests_deleted, "manifest", "manifests")
    )?;
    writeln!(
        o,
        "bytes: {} freed after GC (apply --gc), {} already orphaned (stowage gc), {} shared with kept images stay, {} unlinked from repositories",
        human_bytes(b.reclaimable_after_gc),
        human_bytes(b.already_orphaned),
        human_bytes(b.shared_kept),
        human_bytes(b.unlinked)
    )?;
    writeln!(o, "plan valid until {}", r.expires_at.rfc3339())?;
    Ok(())
}

/// `stowage plan replay PLAN --db DB [--from 90d]`: the recent pulls a plan would break.
pub fn replay(format: Format, now: Timestamp, a: &PlanReplayArgs) -> Result<i32> {
    let plan = Plan::read(&a.plan)?;
    let pulls = crate::pipeline::load_pulls(&a.db)?;
    let since = match &a.from {
        Some(d) => Some(now.saturating_sub_secs(parse_age(d).context("--from")?)),
        None => pulls.begins,
    };
    let broken = stowage_plan::replay::replay(&plan, &pulls.recent, since);
    let mut o = output::stdout();
    if format != Format::Table {
        output::json(
            &mut o,
            &serde_json::json!({
                "plan": a.plan.display().to_string(),
                "pulls": pulls.source,
                "from": since,
                "to": pulls.ends,
                "broken": broken,
            }),
        )?;
    } else {
        print_broken(&mut o, &broken)?;
        let window = format!(
            "{} to {}",
            since.map(Timestamp::rfc3339).unwrap_or_else(|| "-".into()),
            pulls
                .ends
                .map(Timestamp::rfc3339)
                .unwrap_or_else(|| "-".into())
        );
        match pulls.ends {
            None => writeln!(o, "{}: no pull data; nothing to replay", pulls.source)?,
            Some(_) if broken.is_empty() => {
                writeln!(o, "no pull from {window} would have failed under this plan")?
            }
            Some(_) => writeln!(
                o,
                "{} of the pulled references from {window} would have failed under this plan",
                broken.len()
            )?,
        }
    }
    o.flush()?;
    Ok(if broken.is_empty() {
        exit::OK
    } else {
        exit::FINDINGS
    })
}

fn print_broken(o: &mut impl Write, broken: &[stowage_plan::replay::BrokenPull]) -> Result<()> {
    if broken.is_empty() {
        return Ok(());
    }
    let mut t = Table::new(&[
        ("IMAGE", Align::Left),
        ("PULLED AS", Align::Left),
        ("EFFECT", Align::Left),
        ("LAST PULLED", Align::Left),
        ("PULLS", Align::Right),
        ("CLIENT", Align::Left),
    ]);
    for b in broken {
        t.row(vec![
            b.image.clone(),
            b.reference.clone(),
            b.effect.clone(),
            b.last_pulled.rfc3339(),
            b.pulls.to_string(),
            b.client.clone(),
        ]);
    }
    o.write_all(t.render().as_bytes())?;
    Ok(())
}

/// `stowage plan simulate --policy P [--db DB] --from 90d --every 1d`.
pub fn simulate(s: &Settings, a: &PlanSimulateArgs) -> Result<i32> {
    let policy = read_policy(&a.policy)?;
    let pulls = plan_pulls(&policy, a.db.as_deref(), Some(s.now))?;
    let from = s
        .now
        .saturating_sub_secs(parse_age(&a.from).context("--from")?);
    let every = parse_age(&a.every).context("--every")?;
    if every <= 0 {
        bail!("--every {}: must be longer than 0", a.every);
    }
    let loaded = load(s, false, GraphFindings::Count)?;
    let g = loaded.graph();
    let days = stowage_plan::simulate::days(from, s.now, every);
    let sim = stowage_plan::simulate::simulate(&policy, &g, &*s.storage, pulls.as_ref(), &days);
    let mut o = output::stdout();
    if s.format != Format::Table {
        output::json(&mut o, &sim)?;
        o.flush()?;
        return Ok(exit::OK);
    }
    let mut t = Table::new(&[
        ("DAY", Align::Left),
        ("IMAGES DELETED", Align::Right),
        ("UNTAGGED", Align::Right),
        ("FREED AFTER GC", Align::Right),
        ("PULLS BROKEN", Align::Right),
        ("REFERENCES", Align::Right),
        ("NOTE", Align::Left),
    ]);
    for d in &sim.days {
        let note = match (&d.error, d.blocked.is_empty()) {
            (Some(e), _) => format!("refused: {e}"),
            (None, false) => format!("blocked: {}", d.blocked.join("; ")),
            (None, true) => String::new(),
        };
        t.row(vec![
            d.at.rfc3339(),
            d.images_deleted.to_string(),
            d.images_untagged.to_string(),
            human_bytes(d.bytes_freed),
            d.pulls_broken.to_string(),
            d.references_broken.to_string(),
            note,
        ]);
    }
    o.write_all(t.render().as_bytes())?;
    match &sim.pulls {
        Some(p) => writeln!(o, "pull data: {p}")?,
        None => writeln!(
            o,
            "no pull data: broken pulls are not known (name a history database with --db)"
        )?,
    }
    writeln!(o, "{}", sim.note)?;
    o.flush()?;
    Ok(exit::OK)
}

/// `stowage explain PLAN REF`: one decision traced.
pub fn explain_plan(format: Format, path: &Path, reference: &str) -> Result<i32> {
    let plan = Plan::read(path)?;
    let Some(r) = &plan.retention else {
        bail!(
            "{} is a {} plan; explain PLAN REF traces retention decisions",
            path.display(),
            plan.kind
        );
    };
    let (repo, tag, digest) = split_ref(reference);
    let hits: Vec<&stowage_plan::retention::ImageRecord> = r
        .images
        .iter()
        .filter(|i| i.repository == repo)
        .filter(|i| tag.is_none_or(|t| i.tags.iter().any(|x| x.tag == t)))
        .filter(|i| {
            digest.is_none_or(|d| {
                let image = i.digest.to_string();
                image.starts_with(d)
                    || i.cascade
                        .iter()
                        .any(|c| c.digest.to_string().starts_with(d))
            })
        })
        .collect();
    if hits.is_empty() {
        bail!(
            "{reference}: no such image in the plan (repository {repo:?}{}); the plan lists top-level images by repository:tag or repository@digest",
            tag.map(|t| format!(", tag {t:?}")).unwrap_or_default()
        );
    }
    let mut o = output::stdout();
    if format != Format::Table {
        output::json(&mut o, &hits)?;
        o.flush()?;
        return Ok(exit::OK);
    }
    for im in hits {
        writeln!(o, "{}@{}", escape(&im.repository), im.digest)?;
        writeln!(o, "  kind: {}", im.kind)?;
        writeln!(o, "  decision: {}", im.decision.to_uppercase())?;
        for why in &im.reasons {
            writeln!(o, "    because {}", escape(why))?;
        }
        writeln!(
            o,
            "  time ({}): {}; pushed {}",
            r.time_source,
            im.time
                .map(Timestamp::rfc3339)
                .unwrap_or_else(|| "unknown".into()),
            im.pushed.rfc3339()
        )?;
        for t in &im.tags {
            if tag.is_some_and(|x| x != t.tag) {
                continue;
            }
            writeln!(o, "  tag {}: {}", escape(&t.tag), t.decision)?;
            for why in &t.reasons {
                writeln!(o, "    because {}", escape(why))?;
            }
        }
        for c in &im.cascade {
            writeln!(
                o,
                "  {} {}: {} ({})",
                c.role, c.digest, c.decision, c.reason
            )?;
        }
        writeln!(
            o,
            "  bytes: {} referenced, {} freed after GC by this image alone",
            human_bytes(im.bytes),
            human_bytes(im.bytes_freed)
        )?;
    }
    o.flush()?;
    Ok(exit::OK)
}

/// `repo:tag`, `repo@digest`, or `repo`.
fn split_ref(s: &str) -> (&str, Option<&str>, Option<&str>) {
    if let Some((r, d)) = s.split_once('@') {
        return (r, None, Some(d));
    }
    match s.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t), None),
        _ => (s, None, None),
    }
}

pub fn policy_check(format: Format, a: &PolicyCheckArgs) -> Result<i32> {
    let text = LoadedPolicy::read_text(&a.file)?;
    let file = stowage_policy::parse(&text)
        .with_context(|| format!("{}: not a valid policy file", a.file.display()))?;
    let compiled = stowage_policy::compile(&file);
    let mut lints = stowage_policy::lint::lint(&file);
    // Criteria side by side are refused by compile, with the same words: one message, not a
    // warning and an error.
    if compiled.is_err() {
        lints.retain(|l| l.code != "ambiguous-bare-list");
    }
    let mut o = output::stdout();
    match format {
        Format::Table => {
            for l in &lints {
                writeln!(
                    o,
                    "warning[{}] {}: {}",
                    l.code,
                    escape(&l.at),
                    escape(&l.message)
                )?;
            }
            match &compiled {
                Ok(c) => writeln!(
                    o,
                    "{}: valid, {} policies, {} warnings",
                    a.file.display(),
                    c.policies.len(),
                    lints.len()
                )?,
                Err(e) => {
                    for x in &e.0 {
                        writeln!(o, "error: {}", escape(x))?;
                    }
                }
            }
        }
        _ => output::json(
            &mut o,
            &serde_json::json!({
                "file": a.file.display().to_string(),
                "valid": compiled.is_ok(),
                "errors": compiled.as_ref().err().map(|e| e.0.clone()).unwrap_or_default(),
                "lints": lints,
            }),
        )?,
    }
    o.flush()?;
    Ok(match (&compiled, lints.is_empty()) {
        (Err(_), _) => exit::ERROR,
        (Ok(_), false) => exit::FINDINGS,
        (Ok(_), true) => exit::OK,
    })
}

pub fn policy_schema() -> Result<i32> {
    print!("{}", stowage_policy::json_schema());
    Ok(exit::OK)
}
