//! `stowage explain TARGET`: what a digest, a storage path or an image reference is, what
//! points to it and what it points to, in plain words.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use stowage_graph::{BlobKind, Graph};
use stowage_layout::{self as layout, Part, PathInfo};
use stowage_model::digest::Digest;
use stowage_model::finding::Finding;
use stowage_model::inventory::{BlobFile, BlobId, ManifestRecord, RefRole};
use stowage_model::time::human_bytes;
use stowage_report::{BlobRecordBuilder, schema};

use super::{GraphFindings, load};
use crate::args::{ExplainArgs, Format};
use crate::exit;
use crate::output;
use crate::settings::Settings;

#[derive(Serialize, Default)]
struct Explanation {
    schema: String,
    target: String,
    /// One sentence: what the target is.
    what: String,
    /// Label/value facts (size, dates, kind...).
    facts: Vec<(String, String)>,
    /// What it references.
    points_to: Vec<String>,
    /// What references it.
    pointed_by: Vec<String>,
    /// Repositories and tags whose images need it.
    needed_by: Vec<String>,
    findings: Vec<Finding>,
    /// Whether the target exists in the storage.
    exists: bool,
}

struct Ctx<'a> {
    g: &'a Graph<'a>,
    referenced: Vec<bool>,
    findings: &'a [Finding],
    tz: &'a jiff::tz::TimeZone,
    b: BlobRecordBuilder<'a, 'a>,
    builds: Option<&'a stowage_model::build::BuildDates>,
}

pub fn run(s: &Settings, a: &ExplainArgs) -> Result<i32> {
    let mut loaded = load(s, false, GraphFindings::List)?;
    loaded.read_build_dates(&*s.storage, s.concurrency);
    let g = loaded.graph();
    let referenced = loaded.referenced().to_vec();
    let mut c = Ctx {
        g: &g,
        referenced,
        findings: &loaded.inv().findings,
        tz: &s.tz,
        b: BlobRecordBuilder::new(&g),
        builds: loaded.build_dates(),
    };
    let root = s.storage.describe();
    let mut e = explain(&mut c, a.target.trim(), &root);
    if let Some(f) = loaded.cache_figures() {
        e.facts.extend(cache_facts(&f, &g, a.target.trim()));
    }
    e.schema = schema("explain");
    e.target = a.target.clone();
    let mut out = output::stdout();
    match s.format {
        Format::Json | Format::Parquet | Format::Ndjson | Format::Csv => {
            output::json(&mut out, &e)?
        }
        Format::Table => {
            // Names come from the storage: the text is escaped as a whole (JSON stays exact).
            let mut buf: Vec<u8> = Vec::new();
            writeln!(buf, "{}: {}", e.target, e.what)?;
            if !e.facts.is_empty() {
                writeln!(buf)?;
                let w = e.facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in &e.facts {
                    writeln!(buf, "  {k:<w$}  {v}")?;
                }
            }
            for (title, items) in [
                ("It points to:", &e.points_to),
                ("Pointed to by:", &e.pointed_by),
                ("Needed by:", &e.needed_by),
            ] {
                if !items.is_empty() {
                    writeln!(buf, "\n{title}")?;
                    for i in items {
                        writeln!(buf, "  - {i}")?;
                    }
                }
            }
            if !e.findings.is_empty() {
                writeln!(buf, "\nProblems:")?;
                for f in &e.findings {
                    writeln!(
                        buf,
                        "  - {} [{}] {}: {}",
                        f.severity(),
                        f.kind,
                        f.path,
                        f.message
                    )?;
                }
            }
            let text = String::from_utf8_lossy(&buf);
            out.write_all(stowage_model::escape::escape_lines(&text).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(if e.exists { exit::OK } else { exit::FINDINGS })
}

fn explain(c: &mut Ctx<'_>, target: &str, root: &str) -> Explanation {
    if let Ok(d) = target.parse::<Digest>() {
        return explain_digest(c, &d, None);
    }
    // A path: absolute under the root, or relative to docker/registry/v2 (or to the
    // rootdirectory), with or without the layout prefix.
    let looks_like_path = target.starts_with('/')
        || target.starts_with("blobs")
        || target.starts_with("repositories")
        || target.contains("docker/registry/v2")
        || target.contains("/_");
    if looks_like_path {
        let rel = if let Some(r) = target.strip_prefix(root) {
            r.to_string()
        } else if let Some(i) = target.find("docker/registry/v2") {
            target[i + "docker/registry/v2".len()..].to_string()
        } else {
            target.to_string()
        };
        return explain_path(c, rel.trim_matches('/'));
    }
    if let Some((repo, d)) = target.split_once('@')
        && let Ok(d) = d.parse::<Digest>()
    {
        return explain_digest(c, &d, Some(repo));
    }
    if let Some((repo, tag)) = target.rsplit_once(':')
        && !tag.contains('/')
    {
        return explain_tag(c, repo, tag);
    }
    explain_repository(c, target)
}

fn findings_about(c: &Ctx<'_>, needle: &str) -> Vec<Finding> {
    c.findings
        .iter()
        .filter(|f| f.path.contains(needle) || f.message.contains(needle))
        .cloned()
        .collect()
}

fn describe_kind(c: &Ctx<'_>, id: BlobId) -> String {
    match c.g.manifest(id) {
        Some(m) if m.is_opaque() && m.kind.is_none() => {
            "a manifest that could not be read or parsed".into()
        }
        Some(m) => {
            let k = m.kind.map(|k| k.as_str()).unwrap_or("unknown");
            match c.g.inv.extra_of(m).and_then(|e| e.artifact_type.as_deref()) {
                Some(at) => format!("an artifact manifest ({k}, artifactType {at})"),
                None => match c.g.blob_kind(id) {
                    BlobKind::Index => format!("a multi-platform index ({k})"),
                    _ => format!("an image manifest ({k})"),
                },
            }
        }
        None => match c.g.blob_kind(id) {
            BlobKind::Config => "an image configuration blob".into(),
            BlobKind::Layer => "a layer blob".into(),
            _ => "an unreferenced blob (nothing that was read refers to it)".into(),
        },
    }
}

fn explain_digest(c: &mut Ctx<'_>, d: &Digest, repo_ctx: Option<&str>) -> Explanation {
    let g = c.g;
    let inv = g.inv;
    let mut e = Explanation::default();
    let Some(id) = inv.id_of(d) else {
        e.what = format!("no blob, link or manifest in this storage names {d}");
        return e;
    };
    let hex = d.hex();
    e.findings = findings_about(c, &hex);
    if let Some(b) = inv.blob(id) {
        describe_blob(c, id, b, &mut e);
    } else {
        e.what = format!("{d} is not in the blob store, but something refers to it");
    }
    if let Some(m) = g.manifest(id) {
        describe_manifest(c, m, &mut e);
    }
    e.pointed_by = pointed_by(c, id);
    if inv.is_present(id) {
        let (repos, tags) = c.b.owners(id);
        e.needed_by
            .extend(repos.into_iter().map(|r| format!("repository {r}")));
        e.needed_by
            .extend(tags.into_iter().map(|t| format!("tag {t}")));
    }
    if let Some(repo) = repo_ctx {
        e.facts
            .push(("in repository".into(), in_repository(c, id, repo)));
    }
    e
}

/// What a stored blob is: the sentence, and its size, dates, kind and whether GC keeps it.
fn describe_blob(c: &Ctx<'_>, id: BlobId, b: &BlobFile, e: &mut Explanation) {
    e.exists = true;
    e.what = format!(
        "{} of {} stored at {}",
        describe_kind(c, id),
        human_bytes(b.size),
        layout::blob_data(&b.digest)
    );
    e.facts
        .push(("size".into(), format!("{} bytes", { b.size })));
    e.facts.push((
        "modified".into(),
        format!("{} ({})", b.modified().human(c.tz), b.modified().rfc3339()),
    ));
    e.facts.push((
        "created".into(),
        c.g.inv
            .created(id)
            .map(|t| format!("{} (birth time)", t.human(c.tz)))
            .unwrap_or_else(|| {
                if c.g.inv.birth_after_write(id) {
                    "unknown: the file's birth time is after its last write (a copy or restore)"
                        .into()
                } else {
                    "not recorded by this filesystem".into()
                }
            }),
    ));
    e.facts
        .push(("kind".into(), c.g.blob_kind(id).as_str().into()));
    let refd = c.referenced[id as usize];
    e.facts.push((
        "referenced".into(),
        if refd {
            "yes: a manifest of some repository needs it, so garbage collection keeps it".into()
        } else {
            "no: nothing references it; the registry's garbage collection would delete it".into()
        },
    ));
}

/// A manifest's media type, platforms and subject (as facts) and what it references.
fn describe_manifest(c: &Ctx<'_>, m: &ManifestRecord, e: &mut Explanation) {
    let inv = c.g.inv;
    if let Some(k) = m.kind {
        e.facts.push(("media type".into(), k.media_type().into()));
    }
    if let Some(ex) = inv.extra_of(m)
        && !ex.platforms.is_empty()
    {
        let p: Vec<String> = ex
            .platforms
            .iter()
            .map(|p| {
                p.as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "?".into())
            })
            .collect();
        e.facts.push(("platforms".into(), p.join(", ")));
    }
    if let Some(b) = c.builds.and_then(|b| b.get(m.id)) {
        e.facts.push(("built".into(), built_fact(c, b)));
    }
    if let Some(s) = m.subject() {
        e.facts.push((
            "subject".into(),
            format!("{} (this is a referrer of it)", inv.digest(s)),
        ));
    }
    // An index's platforms are listed in the order of its children.
    let mut children_platforms = inv
        .extra_of(m)
        .map(|x| x.platforms.iter())
        .into_iter()
        .flatten();
    for r in inv.refs_of(m) {
        let rd = inv.digest(r.id());
        let size = inv
            .blob(r.id())
            .map(|b| human_bytes(b.size))
            .unwrap_or_else(|| "MISSING".into());
        let role = match r.role() {
            RefRole::Config => "config".to_string(),
            RefRole::Layer => "layer".to_string(),
            RefRole::External => "external layer (not stored here)".to_string(),
            RefRole::ArtifactBlob => "artifact blob".to_string(),
            RefRole::Child => format!(
                "child manifest {}",
                children_platforms
                    .next()
                    .and_then(|p| p.as_ref())
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            ),
        };
        e.points_to.push(format!("{role} {rd} ({size})"));
    }
}

/// The build date and where it comes from, or why it is unknown (never guessed).
fn built_fact(c: &Ctx<'_>, b: &stowage_model::build::Build) -> String {
    use stowage_model::build::{BuildDate, Source};
    let h = |t: stowage_model::Timestamp| t.human(c.tz);
    let steps = match (b.config.steps, b.config.first_step, b.config.last_step) {
        (0, _, _) => String::new(),
        (n, Some(f), Some(l)) => format!("; {n} build steps, dated {} to {}", h(f), h(l)),
        (n, _, _) => format!("; {n} build steps, undated"),
    };
    match b.date {
        BuildDate::Known { at, source } => format!(
            "{} (from the image config's {}{steps})",
            h(at),
            match source {
                Source::Created => "created",
                Source::History => "newest build step: it has no usable created",
            }
        ),
        BuildDate::Unknown(u) => format!(
            "unknown: {}{}{steps}",
            u.describe(),
            b.config
                .created
                .map(|t| format!(" (config created says {})", h(t)))
                .unwrap_or_default()
        ),
    }
}

/// Everything that points at `id`: revision links, current tags, tag histories, `_layers`
/// links, parent manifests and referrers, in that order.
fn pointed_by(c: &Ctx<'_>, id: BlobId) -> Vec<String> {
    let g = c.g;
    let inv = g.inv;
    let mut out = Vec::new();
    for &ri in g.revision_repos(id) {
        let r = &inv.repositories[ri as usize];
        let l = r.revision(id);
        out.push(format!(
            "revision link in {} (pushed {})",
            r.name,
            l.map(|l| l.modified().human(c.tz)).unwrap_or_default()
        ));
    }
    for (ri, ti) in g.tags_of(id) {
        let r = &inv.repositories[ri as usize];
        let t = &r.tags[ti as usize];
        out.push(format!(
            "tag {}:{} points here now (since {})",
            r.name,
            t.name,
            t.current
                .map(|cur| cur.modified.human(c.tz))
                .unwrap_or_default()
        ));
    }
    for r in &inv.repositories {
        for t in &r.tags {
            let history = r.history(t);
            if let Ok(i) = history.binary_search_by_key(&id, |l| l.target())
                && t.current.and_then(|c| c.target) != Some(id)
            {
                out.push(format!(
                    "history of tag {}:{} (pointed here at {})",
                    r.name,
                    t.name,
                    history[i].modified().human(c.tz)
                ));
            }
        }
    }
    for &ri in g.layer_repos(id) {
        out.push(format!(
            "_layers link in {} (lets it serve this blob)",
            inv.repositories[ri as usize].name
        ));
    }
    for &p in g.parents(id) {
        out.push(format!(
            "manifest {} ({})",
            inv.digest(p),
            describe_kind(c, p)
        ));
    }
    for &r in g.referrers(id) {
        out.push(format!(
            "referrer {} ({})",
            inv.digest(r),
            describe_kind(c, r)
        ));
    }
    out
}

/// Whether `repo` links manifest `id`: without a revision link the registry does not serve
/// it from that repository, whatever the blob store holds.
fn in_repository(c: &Ctx<'_>, id: BlobId, repo: &str) -> String {
    match c.g.inv.repository(repo) {
        Some(r) if r.revision(id).is_some() => format!("{repo}: yes (revision link present)"),
        Some(_) => format!("{repo}: no revision link; the registry answers MANIFEST_UNKNOWN"),
        None => format!("no repository {repo}"),
    }
}

fn explain_tag(c: &mut Ctx<'_>, repo: &str, tag: &str) -> Explanation {
    let inv = c.g.inv;
    let Some(r) = inv.repository(repo) else {
        return Explanation {
            what: format!("no repository {repo:?} in this storage"),
            ..Default::default()
        };
    };
    let Some(t) = r.tag(tag) else {
        return Explanation {
            what: format!("repository {repo} has no tag {tag:?}"),
            ..Default::default()
        };
    };
    let Some(id) = t.current.and_then(|c| c.target) else {
        let mut e = Explanation {
            what: format!(
                "tag {repo}:{tag} exists but resolves to nothing (no valid current link)"
            ),
            ..Default::default()
        };
        e.findings = findings_about(c, &layout::tag_dir(repo, tag));
        return e;
    };
    let d = inv.digest(id);
    let mut e = explain_digest(c, &d, Some(repo));
    e.what = format!("tag {repo}:{tag} points at {d}: {}", e.what);
    let mut hist: Vec<_> = r.history(t).iter().collect();
    hist.sort_by_key(|h| std::cmp::Reverse(h.modified()));
    for h in hist {
        e.facts.push((
            "history".into(),
            format!("{}  {}", h.modified().human(c.tz), inv.digest(h.target())),
        ));
    }
    e
}

fn explain_repository(c: &mut Ctx<'_>, name: &str) -> Explanation {
    let inv = c.g.inv;
    let name = name.trim_matches('/');
    match inv.repository(name) {
        Some(r) => {
            let mut e = Explanation {
                exists: true,
                ..Default::default()
            };
            e.what = format!(
                "repository {name}: {} tags, {} manifests, {} layer links, {} uploads",
                r.tags.len(),
                r.revisions.len(),
                r.layers.len(),
                r.uploads.len()
            );
            for t in &r.tags {
                if let Some(id) = t.current.and_then(|x| x.target) {
                    e.points_to
                        .push(format!("tag {} -> {}", t.name, inv.digest(id)));
                }
            }
            e.findings = findings_about(c, &format!("repositories/{name}/"));
            e
        }
        None => {
            let below = inv
                .repositories
                .iter()
                .filter(|r| r.name.as_str().starts_with(&format!("{name}/")))
                .count();
            if below > 0 {
                Explanation {
                    exists: true,
                    what: format!("namespace {name}/ holding {below} repositories"),
                    ..Default::default()
                }
            } else {
                Explanation {
                    what: format!(
                        "{name:?} is not a digest, a storage path, an image reference or a repository here"
                    ),
                    ..Default::default()
                }
            }
        }
    }
}

fn explain_path(c: &mut Ctx<'_>, rel: &str) -> Explanation {
    let inv = c.g.inv;
    let mut e = match layout::classify(rel) {
        PathInfo::Root => Explanation { exists: true, what: "the layout root (docker/registry/v2): blobs/ holds content, repositories/ holds names".into(), ..Default::default() },
        PathInfo::BlobsRoot | PathInfo::BlobShard { .. } => Explanation {
            exists: true,
            what: "part of the blob store: blobs/sha256/<first two hex digits>/<digest>/data holds every layer, config and manifest once".into(),
            ..Default::default()
        },
        PathInfo::Blob { digest, part } => {
            let mut e = explain_digest(c, &digest, None);
            if let Part::Other(o) = part {
                e.what = format!("{o} inside the blob directory of {digest}: not part of the registry's layout");
            }
            e
        }
        PathInfo::LayerLink { repo, digest, .. } => {
            let mut e = explain_digest(c, &digest, None);
            let linked = inv.repository(&repo).and_then(|r| inv.id_of(&digest).and_then(|id| r.layer(id))).is_some();
            e.what = format!(
                "the _layers link that lets {repo} serve blob {digest} ({}); the blob: {}",
                if linked { "present" } else { "no such link" },
                e.what
            );
            e.exists = linked;
            e
        }
        PathInfo::RevisionLink { repo, digest, .. } => {
            let mut e = explain_digest(c, &digest, Some(&repo));
            e.what = format!("the revision link that makes manifest {digest} part of {repo}; the manifest: {}", e.what);
            e.exists = inv.repository(&repo).and_then(|r| inv.id_of(&digest).and_then(|id| r.revision(id))).is_some();
            e
        }
        PathInfo::TagCurrent { repo, tag } => {
            let mut e = explain_tag(c, &repo, &tag);
            e.what = format!("the current pointer of tag {repo}:{tag}: {}", e.what);
            e
        }
        PathInfo::Tag { repo, tag } => explain_tag(c, &repo, &tag),
        PathInfo::TagIndexEntry { repo, tag, digest, .. } => {
            let mut e = explain_digest(c, &digest, Some(&repo));
            e.what = format!("a history entry of tag {repo}:{tag}: the tag pointed at {digest} at some time; {}", e.what);
            e
        }
        PathInfo::Upload { repo, id, .. } => match inv.repository(&repo).and_then(|r| r.uploads.iter().find(|u| u.id == id)) {
            Some(u) => Explanation {
                exists: true,
                what: format!(
                    "an unfinished blob upload to {repo} ({} received, started {}): a push that never completed, or one in progress",
                    human_bytes(u.data_size.unwrap_or(0)),
                    u.started_at.map(|t| t.human(c.tz)).unwrap_or_else(|| "at an unknown time".into())
                ),
                facts: vec![("total size".into(), format!("{} bytes", u.total_size))],
                ..Default::default()
            },
            None => Explanation { what: format!("upload {id} of {repo}: not found"), ..Default::default() },
        },
        PathInfo::UploadsDir { repo } => Explanation { exists: true, what: format!("the unfinished-uploads directory of {repo}"), ..Default::default() },
        PathInfo::LayersDir { repo } => Explanation { exists: true, what: format!("the _layers directory of {repo}: one link per blob the repository may serve"), ..Default::default() },
        PathInfo::ManifestsDir { repo } => Explanation { exists: true, what: format!("manifest metadata of {repo}"), ..Default::default() },
        PathInfo::TagsDir { repo } => Explanation { exists: true, what: format!("the tags of {repo}"), ..Default::default() },
        PathInfo::RepositoriesRoot => Explanation { exists: true, what: "the root of all repository names".into(), ..Default::default() },
        PathInfo::RepositoryDir { name } => explain_repository(c, &name),
        PathInfo::Unknown { why } => Explanation { what: format!("not part of the registry's layout: {why}"), ..Default::default() },
    };
    let mut more = findings_about(c, rel);
    e.findings.append(&mut more);
    e.findings.sort();
    e.findings.dedup();
    e
}

/// A pull-through cache's scheduler entries for the target: a digest, `repo@digest`,
/// `repo:tag` (its manifest) or a repository.
fn cache_facts(
    f: &stowage_analysis::cache::CacheFigures,
    g: &Graph<'_>,
    target: &str,
) -> Vec<(String, String)> {
    if target.parse::<Digest>().is_ok() {
        return f.explain_facts(None, Some(target));
    }
    if let Some((repo, d)) = target.split_once('@') {
        return f.explain_facts(Some(repo), Some(d));
    }
    if let Some((repo, tag)) = target.rsplit_once(':')
        && !tag.contains('/')
    {
        let inv = g.inv;
        let digest = inv
            .repositories
            .iter()
            .find(|r| r.name.as_str() == repo)
            .and_then(|r| r.tags.iter().find(|t| t.name.as_str() == tag))
            .and_then(|t| t.current.and_then(|c| c.target))
            .map(|id| inv.digest(id).to_string());
        return match digest {
            Some(d) => f.explain_facts(Some(repo), Some(&d)),
            None => Vec::new(),
        };
    }
    f.explain_facts(Some(target.trim_matches('/')), None)
}
