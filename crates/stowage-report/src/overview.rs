//! The overview: every figure the HTML report, the dashboard and the metrics show, built once
//! from the graph (`stowage.report/v1`).
//!
//! It carries aggregates (the namespace tree, per-tag figures, bytes per month, findings by
//! kind) and only the largest `top_blobs` blobs, so its size does not grow with the number of
//! blobs: the full per-blob list goes to CSV beside the report ([`write_blob_csv`]) and is
//! paged by the dashboard.
//!
//! ```no_run
//! # fn f(inv: &stowage_model::inventory::Inventory, now: stowage_model::time::Timestamp) {
//! let g = stowage_graph::Graph::new(inv);
//! let o = stowage_report::overview::build(&g, &inv.findings, now, &stowage_report::overview::Limits::default());
//! assert_eq!(o.schema, "stowage.report/v1");
//! # }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stowage_graph::{Graph, Summary, Usage};
use stowage_model::finding::{Finding, FindingKind};
use stowage_model::inventory::{BlobId, Inventory};
/// Growth over time (the history database's series), charted in the report.
pub use stowage_model::series::{HistoryLine, HistorySeries};
use stowage_model::time::Timestamp;

use crate::plan_view::PlanImpact;
use crate::schema;

/// How much detail the overview keeps.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest blobs listed in full.
    pub top_blobs: usize,
    /// Tags kept per repository (largest by total first); the rest are counted.
    pub tags_per_repository: usize,
    /// Tags kept over all repositories: with many repositories, each keeps
    /// `max(1, tags_total / repositories)` (the page must stay small; the dashboard fetches
    /// a repository's full list when it zooms in).
    pub tags_total: usize,
    /// Rows of the top repositories and top tags tables.
    pub top_rows: usize,
    /// Paths listed per finding kind; the rest are counted.
    pub findings_per_kind: usize,
    /// Repositories and tags listed per blob row.
    pub owners_per_blob: usize,
    /// Uploads older than this count as stale (the registry's purger default is 7 days).
    pub stale_upload_secs: i64,
    /// The grace period of the "reclaimable now" plans (`gc --grace`, 1 hour by default).
    pub grace_seconds: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            top_blobs: 1000,
            tags_per_repository: 100,
            tags_total: 10_000,
            top_rows: 25,
            findings_per_kind: 200,
            owners_per_blob: 10,
            stale_upload_secs: 7 * 86400,
            grace_seconds: 3600,
        }
    }
}

/// Last pulls for the report (filled by the caller from the pull data).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PullsView {
    pub data_begins: Option<Timestamp>,
    pub data_ends: Option<Timestamp>,
    /// Freshest first: label, images, bytes (a shared blob counts with its freshest image).
    pub buckets: Vec<PullBucket>,
    /// Images never pulled since the data began, largest first (at most 200).
    pub never_pulled: Vec<PullImage>,
    pub never_pulled_total: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PullBucket {
    pub label: String,
    pub images: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PullImage {
    pub repository: String,
    pub tags: Vec<String>,
    pub digest: String,
    pub pushed: Timestamp,
    pub size: u64,
}

/// Everything the report shows.
#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    pub schema: String,
    pub generated_at: Timestamp,
    /// The layout root scanned.
    pub root: String,
    pub summary: SummaryView,
    /// The one sentence a manager acts on, and the next commands.
    pub headline: crate::reclaim::Headline,
    /// What can be freed now, and the command that does it.
    pub reclaimable: Vec<Reclaimable>,
    /// Namespace tree in pre-order; `parent` indexes this list (`null` for the root).
    pub tree: Vec<TreeNode>,
    /// Per-tag figures (at most `tags_per_repository` per repository).
    pub tags: Vec<TagRow>,
    /// Repositories by exclusive bytes, largest first (the first `top_rows` of
    /// `repositories`).
    pub top_repositories: Vec<RepoRow>,
    /// Every repository's row, in the same order: the dashboard's repository table, which
    /// the server searches, sorts and pages (`/api/v1/repository-rows`). Not in the page's
    /// data, which carries the top rows only.
    #[serde(skip)]
    pub repositories: Vec<RepoRow>,
    /// Tags by exclusive bytes, largest first.
    pub top_tags: Vec<TagRow>,
    /// Bytes by month of creation (birth time, else modification time), oldest first.
    pub months: Vec<MonthRow>,
    /// Integrity findings by kind.
    pub findings: Vec<FindingGroup>,
    /// The largest blobs.
    pub blobs: BlobTable,
    /// What a plan deletes (`--plan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanImpact>,
    /// Growth over recorded snapshots (`--history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySeries>,
    /// Last pulls, when the history database has pull data (docs/usage.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulls: Option<PullsView>,
    /// The storage's filesystem and "days until full" (filled by the caller, which can
    /// stat it; with the history's growth when there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::capacity::Capacity>,
    /// Bytes by image age, when the build dates were read (`crate::ages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ages: Option<crate::ages::ImageAges>,
    /// A pull-through cache (issue 20): how it was detected, its headline figures ("expired
    /// but still stored") and its cached repositories; absent for a registry that is not one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<stowage_model::cached::CacheOverview>,
    /// Set by the dashboard: it pages blobs through its API.
    pub live: bool,
    /// Set when the storage's links are not the registry's metadata (GitLab's metadata
    /// database): "figures are from filesystem metadata only: <evidence>". Shown as a banner
    /// above every figure, since every figure is then a lower bound of what is in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_database: Option<String>,
}

/// The headline figures.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryView {
    #[serde(flatten)]
    pub summary: Summary,
    /// Blobs + uploads + files outside the known layout.
    pub storage_bytes: u64,
    pub other_bytes: u64,
    /// Repositories some part of which could not be read.
    pub incomplete_repositories: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reclaimable {
    /// `unreferenced`, `untagged` or `stale_uploads`.
    pub reason: String,
    pub title: String,
    pub bytes: u64,
    pub count: u64,
    /// The command that plans it (then `apply`).
    pub command: String,
    pub apply: String,
    pub note: String,
    /// Everything the command's plan frees (the untagged and uploads plans include the
    /// unreferenced blobs).
    #[serde(default)]
    pub plan_bytes: u64,
    /// What the grace period holds back in that plan.
    #[serde(default)]
    pub held_back_bytes: u64,
    /// The grace period the plan was made with (the command says it too).
    #[serde(default)]
    pub grace_seconds: i64,
}

/// A node of the report's namespace tree: the `du` record ([`crate::DuRecord`], the one node
/// shape) with its place in the tree.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeNode {
    #[serde(flatten)]
    pub node: crate::DuRecord,
    /// Index of the parent in `Overview::tree` (`null` for the root).
    pub parent: Option<u32>,
    /// Tags of this repository left out of `tags` (beyond the per-repository limit).
    pub tags_omitted: u64,
}

/// A repository's row: the report's top repositories and the dashboard's
/// `/api/v1/repository-rows` (OpenAPI schema derived with `openapi`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoRow {
    pub repository: String,
    pub total: u64,
    pub exclusive: u64,
    pub shared: u64,
    pub tags: u64,
    pub manifests: u64,
    pub untagged_manifests: u64,
    /// What `gc --delete-untagged` frees by deleting this repository's untagged manifests
    /// (the reclaim card's plan; a blob two repositories' untagged manifests share counts in
    /// both).
    #[serde(default)]
    pub untagged_bytes: u64,
    /// The newest revision link (the last push).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_pushed: Option<Timestamp>,
    /// The newest build date of its images (`crate::ages`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub newest_build: Option<Timestamp>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_pulled: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagRow {
    pub repository: String,
    pub tag: String,
    /// Left out of `tags` (the treemap's list), set in `top_tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub total: u64,
    pub exclusive: u64,
    pub shared: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub moved: Option<Timestamp>,
    /// When the tagged manifest was pushed to this repository (its revision link).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub pushed: Option<Timestamp>,
    /// Its build date (config `created`; `crate::ages`), or why it is unknown.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub built: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_unknown: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_pulled: Option<Timestamp>,
    /// On a pull-through cache: the scheduler entries of its manifest in this repository
    /// (when first cached, when the last expires, whether all have); absent when no entry
    /// names it, and on a registry that is not a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub cache: Option<stowage_model::cached::BlobCache>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonthRow {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub referenced_bytes: u64,
    pub unreferenced_bytes: u64,
    pub referenced_blobs: u64,
    pub unreferenced_blobs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FindingGroup {
    pub kind: String,
    pub severity: String,
    pub description: String,
    pub count: u64,
    pub items: Vec<FindingItem>,
    /// Findings of this kind not listed.
    pub omitted: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FindingItem {
    pub path: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobTable {
    /// Blobs in the registry.
    pub total: u64,
    /// The rows below: the largest blobs, largest first (then by digest).
    pub rows: Vec<BlobRow>,
    /// The file with every blob, written beside the report (when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
}

/// One blob, compact (the JSON inventory record has everything): the report's blob table
/// and the dashboard's `/api/v1/blobs` rows (OpenAPI schema derived with `openapi`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ApiBlob))]
pub struct BlobRow {
    pub digest: String,
    pub size: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub modified: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub created: Option<Timestamp>,
    pub kind: String,
    pub referenced: bool,
    pub repositories: Vec<String>,
    pub tags: Vec<String>,
    /// Repositories beyond the per-blob limit (issue 19: shown as "+N" on the repository
    /// list itself; one count for both lists added hidden repositories to hidden tags).
    pub repositories_omitted: u64,
    /// Tags beyond the per-blob limit.
    pub tags_omitted: u64,
    /// On a pull-through cache: when it was first cached, when its last entry expires,
    /// whether every entry has expired (`entries`, `first_cached`, `expires`, `expired`);
    /// absent for a blob no entry names, and on a registry that is not a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub cache: Option<stowage_model::cached::BlobCache>,
}

impl Overview {
    /// Show what a plan deletes; a retention plan of this storage adds what it frees to the
    /// headline ("; 140 GiB more under the retention policy X").
    pub fn set_plan(&mut self, p: PlanImpact) {
        if !p.other_storage
            && let Some(name) = &p.policy_name
        {
            self.headline
                .add_retention(&format!("the retention policy {name}"), p.bytes);
        }
        self.plan = Some(p);
    }
}

/// Quote a path for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Who needs a blob: repository names and `repo:tag`, each sorted.
pub fn owners(
    g: &Graph<'_>,
    scratch: &mut stowage_graph::Scratch,
    id: BlobId,
) -> (Vec<String>, Vec<String>) {
    let inv = g.inv;
    let (repos, tags) = crate::views::owner_ids(g, scratch, id);
    (
        repos
            .into_iter()
            .map(|r| inv.repositories[r as usize].name.to_string())
            .collect(),
        tags.into_iter()
            .map(|(r, t)| {
                let repo = &inv.repositories[r as usize];
                format!("{}:{}", repo.name, repo.tags[t as usize].name)
            })
            .collect(),
    )
}

/// `YYYY-MM` of a time, UTC.
fn month_of(t: Timestamp) -> String {
    let s = t.rfc3339();
    s.get(..7).unwrap_or("????-??").to_string()
}

/// Build a blob row.
pub fn blob_row(
    g: &Graph<'_>,
    scratch: &mut stowage_graph::Scratch,
    id: BlobId,
    referenced: bool,
    owners_limit: usize,
) -> BlobRow {
    let b = &g.inv.blobs[id as usize];
    let (mut repositories, mut tags) = owners(g, scratch, id);
    let repositories_omitted = repositories.len().saturating_sub(owners_limit) as u64;
    let tags_omitted = tags.len().saturating_sub(owners_limit) as u64;
    repositories.truncate(owners_limit);
    tags.truncate(owners_limit);
    BlobRow {
        digest: b.digest.to_string(),
        size: b.size,
        modified: b.modified(),
        created: g.inv.created(id),
        kind: g.blob_kind(id).as_str().into(),
        referenced,
        repositories_omitted,
        tags_omitted,
        repositories,
        tags,
        cache: None,
    }
}

/// Build the overview. `findings` are the scan's plus the graph's (as `stowage check` lists).
pub fn build(g: &Graph<'_>, findings: &[Finding], now: Timestamp, limits: &Limits) -> Overview {
    let referenced = g.mark(g.revision_roots(), false);
    let summary = stowage_graph::summary(
        g,
        &referenced,
        stowage_model::finding::FindingCounts::of(findings),
        now,
        limits.stale_upload_secs,
    );
    let u = stowage_graph::usage(g);
    build_with(g, &u, &referenced, summary, findings, now, limits)
}

/// [`build`] with the usage, marks and summary already computed.
pub fn build_with(
    g: &Graph<'_>,
    u: &Usage,
    referenced: &[bool],
    summary: Summary,
    findings: &[Finding],
    now: Timestamp,
    limits: &Limits,
) -> Overview {
    let inv = g.inv;
    let reclaim = crate::reclaim::reclaimable(g, limits, now);
    let (tags, top_tags, omitted) = tag_rows(inv, u, limits);
    let tree = namespace_tree(u, &omitted);
    let mut repositories = repository_rows(inv, u);
    for r in &mut repositories {
        r.untagged_bytes = reclaim
            .untagged_by_repository
            .get(&r.repository)
            .copied()
            .unwrap_or(0);
    }
    let top_repositories = repositories[..repositories.len().min(limits.top_rows)].to_vec();
    let months = months(inv, referenced);
    let findings = finding_groups(findings, limits);
    let rows = largest_blobs(g, referenced, limits);
    let storage_bytes = summary.blob_bytes + summary.upload_bytes + inv.other_bytes;
    let headline = crate::reclaim::headline(storage_bytes, summary.blobs, &reclaim, false);
    Overview {
        schema: schema("report"),
        generated_at: now,
        root: inv.root.clone(),
        summary: SummaryView {
            summary,
            storage_bytes,
            other_bytes: inv.other_bytes,
            incomplete_repositories: inv.repositories.iter().filter(|r| !r.complete).count() as u64,
        },
        headline,
        reclaimable: reclaim.cards,
        tree,
        tags,
        top_repositories,
        repositories,
        top_tags,
        months,
        findings,
        blobs: BlobTable {
            total: inv.blobs.len() as u64,
            rows,
            csv: None,
        },
        plan: None,
        history: None,
        pulls: None,
        capacity: None,
        image_ages: None,
        cache: None,
        live: false,
        metadata_database: None,
    }
}

/// Every tag's row with its digest, by exclusive bytes (the dashboard's tag table, which the
/// server sorts and searches).
pub fn all_tag_rows(inv: &Inventory, u: &Usage) -> Vec<TagRow> {
    let limits = Limits {
        tags_total: usize::MAX,
        tags_per_repository: usize::MAX,
        top_rows: usize::MAX,
        ..Limits::default()
    };
    tag_rows(inv, u, &limits).1
}

/// Per-tag rows: the treemap's (at most `per_repository` per repository, no digest), the top
/// tags by exclusive bytes, and per repository how many tags were left out.
fn tag_rows(inv: &Inventory, u: &Usage, limits: &Limits) -> (Vec<TagRow>, Vec<TagRow>, Vec<u64>) {
    // Tags per repository, by total then name; the per-repository limit keeps the page small.
    let per_repository = (limits.tags_total / inv.repositories.len().max(1))
        .max(1)
        .min(limits.tags_per_repository);
    let mut tags = Vec::new();
    let mut tag_rows_all = Vec::new();
    let mut omitted = vec![0u64; inv.repositories.len()];
    for (ri, r) in inv.repositories.iter().enumerate() {
        let mut rows: Vec<TagRow> = r
            .tags
            .iter()
            .enumerate()
            .map(|(ti, t)| {
                let tu = &u.tags[ri][ti];
                let target = t.current.and_then(|c| c.target);
                TagRow {
                    repository: r.name.to_string(),
                    tag: t.name.to_string(),
                    digest: target.map(|id| inv.digest(id).to_string()),
                    total: tu.total,
                    exclusive: tu.exclusive,
                    shared: tu.total - tu.exclusive.min(tu.total),
                    moved: t.current.map(|c| c.modified),
                    pushed: None,
                    built: None,
                    build_unknown: None,
                    last_pulled: None,
                    cache: None,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.tag.cmp(&b.tag)));
        tag_rows_all.extend(rows.iter().cloned());
        if rows.len() > per_repository {
            omitted[ri] = (rows.len() - per_repository) as u64;
            rows.truncate(per_repository);
        }
        // The treemap needs no digest; leaving it out halves the size of this list.
        tags.extend(rows.into_iter().map(|t| TagRow { digest: None, ..t }));
    }
    let mut top_tags = tag_rows_all;
    top_tags.sort_by(|a, b| {
        b.exclusive
            .cmp(&a.exclusive)
            .then_with(|| b.total.cmp(&a.total))
            .then_with(|| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)))
    });
    top_tags.truncate(limits.top_rows);

    (tags, top_tags, omitted)
}

/// The namespace tree, pre-order with children by name (usage sorts them).
fn namespace_tree(u: &Usage, omitted: &[u64]) -> Vec<TreeNode> {
    let mut tree = Vec::with_capacity(u.nodes.len());
    let mut index_of = vec![0u32; u.nodes.len()];
    let mut stack = vec![0u32];
    while let Some(i) = stack.pop() {
        let n = &u.nodes[i as usize];
        index_of[i as usize] = tree.len() as u32;
        tree.push(TreeNode {
            node: crate::DuRecord::of(n),
            parent: (n.parent != stowage_graph::NONE).then(|| index_of[n.parent as usize]),
            tags_omitted: n.repository.map_or(0, |ri| omitted[ri as usize]),
        });
        for &c in n.children.iter().rev() {
            stack.push(c);
        }
    }

    tree
}

/// Every repository's row by exclusive bytes, largest first.
fn repository_rows(inv: &Inventory, u: &Usage) -> Vec<RepoRow> {
    let mut rows: Vec<RepoRow> = inv
        .repositories
        .iter()
        .enumerate()
        .map(|(ri, r)| {
            let n = &u.nodes[u.repo_node[ri] as usize];
            RepoRow {
                repository: r.name.to_string(),
                total: n.own_total,
                exclusive: n.own_exclusive,
                shared: n.own_total - n.own_exclusive.min(n.own_total),
                tags: r.tags.len() as u64,
                manifests: r.revisions.len() as u64,
                untagged_manifests: r.untagged_revisions().count() as u64,
                untagged_bytes: 0,
                last_pushed: None,
                newest_build: None,
                last_pulled: None,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.exclusive
            .cmp(&a.exclusive)
            .then_with(|| b.total.cmp(&a.total))
            .then_with(|| a.repository.cmp(&b.repository))
    });

    rows
}

/// Bytes by month of creation (birth time, else modification time).
fn months(inv: &Inventory, referenced: &[bool]) -> Vec<MonthRow> {
    let mut months: BTreeMap<String, MonthRow> = BTreeMap::new();
    for (i, b) in inv.blobs.iter().enumerate() {
        let m = month_of(inv.created(i as BlobId).unwrap_or(b.modified()));
        let row = months.entry(m.clone()).or_insert_with(|| MonthRow {
            month: m,
            referenced_bytes: 0,
            unreferenced_bytes: 0,
            referenced_blobs: 0,
            unreferenced_blobs: 0,
        });
        if referenced[i] {
            row.referenced_bytes += b.size;
            row.referenced_blobs += 1;
        } else {
            row.unreferenced_bytes += b.size;
            row.unreferenced_blobs += 1;
        }
    }

    months.into_values().collect()
}

/// Findings by kind, most severe kinds first, then by name; `findings_per_kind` paths each.
fn finding_groups(findings: &[Finding], limits: &Limits) -> Vec<FindingGroup> {
    let mut groups: BTreeMap<FindingKind, FindingGroup> = BTreeMap::new();
    for f in findings {
        let gr = groups.entry(f.kind).or_insert_with(|| FindingGroup {
            kind: f.kind.as_str().into(),
            severity: f.severity().to_string(),
            description: f.kind.description().into(),
            count: 0,
            items: Vec::new(),
            omitted: 0,
        });
        gr.count += 1;
        if gr.items.len() < limits.findings_per_kind {
            gr.items.push(FindingItem {
                path: f.path.clone(),
                message: f.message.to_string(),
            });
        } else {
            gr.omitted += 1;
        }
    }
    let mut findings: Vec<(FindingKind, FindingGroup)> = groups.into_iter().collect();
    findings.sort_by(|a, b| {
        b.0.severity()
            .cmp(&a.0.severity())
            .then_with(|| a.1.kind.cmp(&b.1.kind))
    });

    findings.into_iter().map(|(_, g)| g).collect()
}

/// The largest blobs, largest first (ties by id), `top_blobs` of them.
fn largest_blobs(g: &Graph<'_>, referenced: &[bool], limits: &Limits) -> Vec<BlobRow> {
    let inv = g.inv;
    let mut ids: Vec<BlobId> = (0..inv.blobs.len() as u32).collect();
    let key = |id: &BlobId| (std::cmp::Reverse(inv.blobs[*id as usize].size), *id);
    if ids.len() > limits.top_blobs && limits.top_blobs > 0 {
        ids.select_nth_unstable_by_key(limits.top_blobs - 1, key);
    }
    ids.truncate(limits.top_blobs);
    ids.sort_unstable_by_key(key);
    let mut scratch = stowage_graph::Scratch::new(g.len());
    ids.iter()
        .map(|&id| {
            blob_row(
                g,
                &mut scratch,
                id,
                referenced[id as usize],
                limits.owners_per_blob,
            )
        })
        .collect()
}

/// Columns of the per-blob CSV (the same as `stowage inventory --format csv`).
pub const BLOB_CSV_HEADER: [&str; 9] = [
    "digest",
    "size",
    "modified",
    "created",
    "kind",
    "referenced",
    "repositories",
    "tags",
    "path",
];

/// Write every blob as CSV, in digest order, one record built at a time.
pub fn write_blob_csv(
    g: &Graph<'_>,
    referenced: &[bool],
    w: impl std::io::Write,
) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(w);
    w.write_record(BLOB_CSV_HEADER)?;
    let mut scratch = stowage_graph::Scratch::new(g.len());
    for (i, b) in g.inv.blobs.iter().enumerate() {
        let id = i as BlobId;
        let (repos, tags) = owners(g, &mut scratch, id);
        w.write_record([
            b.digest.to_string().as_str(),
            &{ b.size }.to_string(),
            &b.modified().rfc3339(),
            &g.inv.created(id).map(|c| c.rfc3339()).unwrap_or_default(),
            g.blob_kind(id).as_str(),
            if referenced[i] { "true" } else { "false" },
            &repos.join(";"),
            &tags.join(";"),
            &stowage_layout::blob_data(&b.digest),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/var/lib/registry"), "/var/lib/registry");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn months_are_utc_year_month() {
        let t = Timestamp::parse_rfc3339("2026-11-30T23:59:59Z").unwrap();
        assert_eq!(month_of(t), "2026-11");
    }
}
