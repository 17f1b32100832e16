//! Retention: `stowage plan --policy`, `stowage plan show`, `stowage explain PLAN REF`,
//! `stowage policy check|schema`, and the protection re-check `apply` runs for retention plans.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use stowage_graph::Graph;
use stowage_model::escape::escape;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_plan::Plan;
use stowage_plan::apply::LiveProtection;
use stowage_plan::retention::{Retention, RetentionInputs};
use stowage_policy::eval::Inputs;
use stowage_policy::file::TimeSource;
use stowage_report::table::{Align, Table};

use super::{GraphFindings, load};
use crate::args::{Format, PlanArgs, PolicyCheckArgs};
use crate::exit;
use crate::output;
use crate::settings::{Settings, parse_age};

/// Read, parse and compile a policy file; errors list every problem.
/// A policy file's text, at most one byte past the limit (a huge file is refused by
/// `stowage_policy::parse` without being read whole; bytes are cut, so a cut inside a UTF-8
/// character is replaced, not an error).
fn read_policy_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .take(stowage_policy::limits::MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > stowage_policy::limits::MAX_POLICY_BYTES {
        anyhow::bail!(
            "{}: larger than {} bytes (1 MiB), the limit of a policy file",
            path.display(),
            stowage_policy::limits::MAX_POLICY_BYTES
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))
}

pub fn read_policy(
    path: &Path,
) -> Result<(String, stowage_policy::PolicyFile, stowage_policy::Compiled)> {
    let text = read_policy_text(path)?;
    let file = stowage_policy::parse(&text)
        .with_context(|| format!("{}: not a valid policy file", path.display()))?;
    let compiled = stowage_policy::compile(&file)
        .with_context(|| format!("{}: the policy is refused", path.display()))?;
    Ok((text, file, compiled))
}

fn uses_created(f: &stowage_policy::PolicyFile) -> bool {
    f.settings.time_source == TimeSource::Created
        || f.policies.iter().any(|p| {
            p.keep
                .iter()
                .chain(p.delete.iter())
                .any(|r| r.time_source == Some(TimeSource::Created))
        })
}

/// The policy's pull source (`settings.pull_sources`), read from the history database.
fn load_pulls(
    compiled: &stowage_policy::Compiled,
    dir: &Path,
) -> Result<Option<stowage_policy::PullData>> {
    let Some(src) = compiled.pull_sources.first() else {
        return Ok(None);
    };
    let path = dir.join(&src.path);
    let db = stowage_history::Db::open_existing(&path)
        .with_context(|| format!("settings.pull_sources: {}", path.display()))?;
    let s = db
        .pull_summary()
        .with_context(|| format!("reading pull data from {}", path.display()))?;
    Ok(Some(stowage_policy::PullData {
        source: path.display().to_string(),
        begins: s.data_begins,
        ends: s.data_ends,
        last: s
            .pulls
            .into_iter()
            .map(|p| ((p.repository, p.digest), p.last_pulled))
            .collect(),
    }))
}

fn policy_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub fn plan(s: &Settings, a: &PlanArgs) -> Result<i32> {
    let Some(policy_path) = &a.policy else {
        bail!("stowage plan needs --policy FILE (or `stowage plan show PLAN`)");
    };
    let (text, file, compiled) = read_policy(policy_path)?;
    for l in stowage_policy::lint::lint(&file) {
        eprintln!(
            "lint {} at {}: {}",
            l.code,
            escape(&l.at),
            escape(&l.message)
        );
    }
    let expires = parse_age(&a.expires).context("--expires")?;
    let loaded = load(s, false, GraphFindings::Count)?;
    super::refuse_deleting(&loaded, s)?;
    let g = loaded.graph();
    let created = if uses_created(&file) {
        stowage_plan::retention::load_created(&*s.storage, &g)
    } else {
        Default::default()
    };
    let sources =
        stowage_plan::retention::load_sources(compiled.in_use.as_ref(), policy_dir(policy_path));
    let pulls = load_pulls(&compiled, policy_dir(policy_path))?;
    if let Some(p) = &pulls {
        eprintln!(
            "pull data: {} ({} images seen pulled, from {} to {})",
            p.source,
            p.last.len(),
            p.begins.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into()),
            p.ends.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into())
        );
    }
    let outcome = stowage_policy::evaluate(
        &compiled,
        &Inputs {
            graph: &g,
            now: s.now,
            created: &created,
            in_use: &sources,
            unsafe_allow_empty: a.unsafe_allow_empty,
            pulls: pulls.as_ref(),
        },
    )
    .with_context(|| format!("{}: planning refused", policy_path.display()))?;
    let plan = stowage_plan::retention::build(
        &g,
        &outcome,
        &RetentionInputs {
            policy_path: &policy_path.display().to_string(),
            policy_text: &text,
            policy_name: &compiled.name,
            time_source: compiled.time_source.as_str(),
            now: s.now,
            expires_seconds: expires,
            untag: compiled.untag,
            max_bytes_freed: compiled.max_bytes,
        },
    );
    if let Some(out) = &a.out {
        crate::output::write_file(out, |w| plan.write_json(w))?;
        eprintln!(
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

fn read_plan(path: &Path) -> Result<Plan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Plan::from_json(&text).with_context(|| format!("{}", path.display()))
}

pub fn show(format: Format, path: &Path) -> Result<i32> {
    let plan = read_plan(path)?;
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
    writeln!(
        o,
        "policy {} ({}), time source {}: {} images deleted, {} untagged (digest kept), {} kept; {} tags and {} manifests removed",
        if r.policy_name.is_empty() {
            "(unnamed)"
        } else {
            &r.policy_name
        },
        r.policy,
        r.time_source,
        b.images_deleted,
        b.images_untagged,
        b.images_kept,
        b.tags_removed,
        b.manifests_deleted
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

/// `stowage explain PLAN REF`: one decision traced.
pub fn explain_plan(format: Format, path: &Path, reference: &str) -> Result<i32> {
    let plan = read_plan(path)?;
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
    let text = read_policy_text(&a.file)?;
    let file = stowage_policy::parse(&text)
        .with_context(|| format!("{}: not a valid policy file", a.file.display()))?;
    let lints = stowage_policy::lint::lint(&file);
    let compiled = stowage_policy::compile(&file);
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

/// The protection re-check for applying a retention plan: the policy must be unchanged, its
/// in-use sources are read again now, and protections are computed over the fresh scan.
pub fn protector(
    ret: &Retention,
    now: Timestamp,
    storage: std::sync::Arc<dyn stowage_storage::Storage>,
) -> Result<impl Fn(&Graph<'_>) -> Result<LiveProtection, String> + Sync> {
    let path = Path::new(&ret.policy);
    let (text, file, compiled) =
        read_policy(path).with_context(|| format!("the plan's policy {}", path.display()))?;
    let sha = {
        use sha2::Digest as _;
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if sha != ret.policy_sha256 {
        bail!(
            "the policy {} changed since the plan was made; make a new plan",
            path.display()
        );
    }
    let dir = policy_dir(path).to_path_buf();
    let needs_created = uses_created(&file);
    Ok(move |g: &Graph<'_>| {
        let sources = stowage_plan::retention::load_sources(compiled.in_use.as_ref(), &dir);
        // The same time inputs as the plan, so time-based protections agree with it.
        let created = if needs_created {
            stowage_plan::retention::load_created(&*storage, g)
        } else {
            Default::default()
        };
        let pulls = load_pulls(&compiled, &dir).map_err(|e| format!("{e:#}"))?;
        let outcome = stowage_policy::evaluate(
            &compiled,
            &Inputs {
                graph: g,
                now,
                created: &created,
                in_use: &sources,
                unsafe_allow_empty: true,
                pulls: pulls.as_ref(),
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(stowage_plan::retention::live_protection(g, &outcome))
    })
}
