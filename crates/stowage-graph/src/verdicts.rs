//! Per-blob verdicts (kind, referenced), registry-wide figures, and integrity findings that
//! need the whole graph (missing references, dangling tags and links).

use stowage_layout as layout;
use stowage_model::finding::{Finding, FindingCounts, FindingKind};
use stowage_model::inventory::{BlobId, LinkKind, RefRole};
use stowage_model::time::Timestamp;

use crate::index::{Graph, ROLE_CONFIG, ROLE_LAYER};

/// What a blob is, as far as its referrers say.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// An image manifest (any kind that is not an index), or a manifest we could not parse.
    Manifest,
    /// An OCI image index or Docker manifest list.
    Index,
    Config,
    Layer,
    /// Nothing that was read references it as a manifest, config or layer.
    Unknown,
}

impl BlobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Manifest => "manifest",
            BlobKind::Index => "index",
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
            BlobKind::Unknown => "unknown",
        }
    }
}

impl Graph<'_> {
    pub fn blob_kind(&self, id: BlobId) -> BlobKind {
        if let Some(m) = self.manifest(id) {
            return if m.kind.is_some_and(|k| k.is_index()) {
                BlobKind::Index
            } else {
                BlobKind::Manifest
            };
        }
        match self.ix.role[id as usize] {
            ROLE_CONFIG => BlobKind::Config,
            ROLE_LAYER => BlobKind::Layer,
            _ => BlobKind::Unknown,
        }
    }
}

/// Registry-wide figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub repositories: u64,
    pub tags: u64,
    /// Revision links over all repositories.
    pub manifests: u64,
    /// Revision links that no tag of their repository points to.
    pub untagged_manifests: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Reachable from some repository's manifests: what the registry's GC keeps.
    pub referenced_blobs: u64,
    pub referenced_bytes: u64,
    /// What the registry's GC would delete now (before any grace period).
    pub unreferenced_blobs: u64,
    pub unreferenced_bytes: u64,
    /// Extra bytes `gc --delete-untagged` frees: referenced only by untagged manifests (index
    /// children and referrers of kept images do not count as untagged).
    pub untagged_exclusive_bytes: u64,
    /// Digests referenced but absent from the blob store.
    pub missing_blobs: u64,
    pub uploads: u64,
    pub upload_bytes: u64,
    /// Uploads older than the stale threshold.
    pub stale_uploads: u64,
    pub stale_upload_bytes: u64,
    pub findings_error: u64,
    pub findings_warning: u64,
    pub findings_info: u64,
}

/// Roots of `gc --delete-untagged` done right: every tagged manifest (both digests of a
/// mismatched current link are not known; an invalid current link keeps nothing by itself,
/// which is safe because the tag's manifest still has its revision link, and any
/// repository with an unreadable or dangling tag keeps all its revisions).
pub fn tagged_roots(g: &Graph<'_>) -> Vec<BlobId> {
    tagged_roots_except(g, |_, _| false)
}

/// [`tagged_roots`] as if the tags `removed(repository, tag)` (indices) were gone: what a
/// plan that removes those tags keeps. A repository whose tags are not all sure keeps
/// every revision whatever is removed.
pub fn tagged_roots_except(g: &Graph<'_>, removed: impl Fn(usize, usize) -> bool) -> Vec<BlobId> {
    let mut roots = Vec::new();
    for (ri, r) in g.inv.repositories.iter().enumerate() {
        // A tag whose current manifest does not exist is corruption (the registry removes
        // a manifest's tags when it deletes it): what the tag should name is unknown, so its
        // history is not taken for untagged (issue 25: a current link rewritten to another
        // digest made the tag's real manifest look untagged).
        let unsure = !r.complete
            || r.tags.iter().any(|t| {
                t.current
                    .is_some_and(|c| c.target.is_none_or(|id| !g.inv.is_present(id)))
            })
            || r.odd_links.iter().any(|o| o.kind == LinkKind::TagCurrent);
        if unsure {
            roots.extend(r.revisions.iter().map(|l| l.target()));
            continue;
        }
        roots.extend(
            r.tags
                .iter()
                .enumerate()
                .filter(|&(ti, _)| !removed(ri, ti))
                .filter_map(|(_, t)| t.current.and_then(|c| c.target)),
        );
    }
    roots
}

/// Compute the summary. `referenced` is `g.mark(g.all_revision_roots(), false)`.
pub fn summary(
    g: &Graph<'_>,
    referenced: &[bool],
    findings: FindingCounts,
    now: Timestamp,
    stale_after_secs: i64,
) -> Summary {
    let inv = g.inv;
    let mut s = Summary {
        repositories: inv.repositories.len() as u64,
        ..Summary::default()
    };
    for r in &inv.repositories {
        s.tags += r.tags.len() as u64;
        s.manifests += r.revisions.len() as u64;
        s.untagged_manifests += r.untagged_revisions().count() as u64;
        for u in &r.uploads {
            s.uploads += 1;
            s.upload_bytes += u.total_size;
            let started = u.started_at.unwrap_or(u.modified);
            if started.seconds_until(now) > stale_after_secs {
                s.stale_uploads += 1;
                s.stale_upload_bytes += u.total_size;
            }
        }
    }
    let kept = g.mark(tagged_roots(g), true);
    for (i, b) in inv.blobs.iter().enumerate() {
        s.blobs += 1;
        s.blob_bytes += b.size;
        if referenced[i] {
            s.referenced_blobs += 1;
            s.referenced_bytes += b.size;
            if !kept[i] {
                s.untagged_exclusive_bytes += b.size;
            }
        } else {
            s.unreferenced_blobs += 1;
            s.unreferenced_bytes += b.size;
        }
    }
    s.missing_blobs = referenced[inv.blobs.len()..].iter().filter(|&&m| m).count() as u64;
    s.findings_error = findings.error;
    s.findings_warning = findings.warning;
    s.findings_info = findings.info;
    s
}

/// Integrity findings that need the graph. Deterministic order (sorted by the caller).
pub fn analyze_findings(g: &Graph<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    analyze(g, &mut out);
    out
}

/// How many findings [`analyze_findings`] would return, by severity, without building a
/// single path or message (for commands that only print totals; a collected registry has a
/// dangling-link finding per deleted image).
pub fn count_findings(g: &Graph<'_>) -> FindingCounts {
    let mut c = FindingCounts::default();
    analyze(g, &mut c);
    c
}

/// Where [`analyze`] puts what it finds: a list, or counts.
trait Sink {
    fn emit(&mut self, kind: FindingKind, make: impl FnOnce() -> Finding);
}

impl Sink for Vec<Finding> {
    fn emit(&mut self, _: FindingKind, make: impl FnOnce() -> Finding) {
        self.push(make());
    }
}

impl Sink for FindingCounts {
    fn emit(&mut self, kind: FindingKind, _: impl FnOnce() -> Finding) {
        self.add(kind);
    }
}

fn analyze(g: &Graph<'_>, out: &mut impl Sink) {
    let inv = g.inv;
    let present = |id: BlobId| inv.is_present(id);
    let mut reported_missing = std::collections::HashSet::new();
    for r in &inv.repositories {
        let repo = r.name.as_str();
        if !r.revisions.is_empty() && r.has_manifests && !r.has_tags_dir {
            out.emit(FindingKind::MissingTagsDirectory, || Finding::new(
                FindingKind::MissingTagsDirectory,
                format!("repositories/{repo}/_manifests"),
                "manifests but no tags directory (pushed by digest only); registry 2.x GC --delete-untagged aborts on this repository",
            ));
        }
        for l in &r.revisions {
            if !present(l.target()) {
                let d = inv.digest(l.target());
                out.emit(FindingKind::RevisionMissingBlob, || Finding::new(
                    FindingKind::RevisionMissingBlob,
                    layout::revision_link(repo, &d),
                    format!(
                        "revision of {d} whose manifest blob does not exist (the registry skips it)"
                    ),
                ));
            }
        }
        for l in &r.layers {
            if !present(l.target()) {
                // The path names the repository and the digest: the message stays static,
                // since a collected registry holds one of these per deleted layer.
                out.emit(FindingKind::LinkDangling, || Finding::new(
                    FindingKind::LinkDangling,
                    layout::layer_link(repo, &inv.digest(l.target())),
                    "_layers link to a blob that does not exist (normal after the registry's GC, which never removes these links)",
                ));
            }
        }
        for t in &r.tags {
            if let Some(id) = t.current.and_then(|c| c.target) {
                let d = inv.digest(id);
                if !present(id) {
                    out.emit(FindingKind::TagDangling, || Finding::new(
                        FindingKind::TagDangling,
                        layout::tag_dir(repo, &t.name),
                        format!("{repo}:{} points at {d}, whose manifest blob does not exist: pulls fail", t.name),
                    ));
                } else if r.revision(id).is_none() && r.revisions_listed {
                    // With revisions/ unlisted, the link may well exist: the unlisted
                    // directory is the finding (issue 25: a false tag_unlinked).
                    out.emit(FindingKind::TagUnlinked, || Finding::new(
                        FindingKind::TagUnlinked,
                        layout::tag_dir(repo, &t.name),
                        format!("{repo}:{} points at {d}, which has no revision link here: the registry answers MANIFEST_UNKNOWN", t.name),
                    ));
                }
            }
            for l in r.history(t) {
                if !present(l.target()) {
                    out.emit(FindingKind::LinkDangling, || {
                        Finding::new(
                            FindingKind::LinkDangling,
                            layout::tag_index_link(repo, &t.name, &inv.digest(l.target())),
                            "tag history entry for a manifest blob that no longer exists",
                        )
                    });
                }
            }
        }
        for l in &r.revisions {
            let Some(m) = g.manifest(l.target()) else {
                continue;
            };
            let md = inv.digest(m.id);
            for rf in g.inv.refs_of(m) {
                let d = inv.digest(rf.id());
                match rf.role() {
                    RefRole::External => {}
                    _ if !present(rf.id())
                        && reported_missing.insert((m.id, rf.id())) => {
                            let what = if rf.role() == RefRole::Child { "child manifest" } else { "blob" };
                            out.emit(FindingKind::ReferenceMissing, || Finding::new(
                                FindingKind::ReferenceMissing,
                                match d.sha256() {
                                    Some(h) => layout::blob_data(&h),
                                    None => format!("blobs/{}", d),
                                },
                                format!("{what} {d}, referenced by manifest {md} (in {repo}), does not exist: pulls of it fail"),
                            ));
                        }
                    RefRole::Child if r.revision(rf.id()).is_none() && r.revisions_listed => out.emit(FindingKind::IndexChildUnlinked, || Finding::new(
                        FindingKind::IndexChildUnlinked,
                        layout::revision_link(repo, &d),
                        format!("child {d} of index {md} has no revision link in {repo}: pulling that platform fails"),
                    )),
                    RefRole::Config | RefRole::Layer if (r.has_layers || !r.layers.is_empty())
                        && r.layers_listed
                        && r.layer(rf.id()).is_none() => {
                            out.emit(FindingKind::LayerUnlinked, || Finding::new(
                                FindingKind::LayerUnlinked,
                                layout::layer_link(repo, &d),
                                format!("{d}, needed by {md}, has no _layers link in {repo}: BLOB_UNKNOWN through this repository"),
                            ));
                        }
                    _ => {}
                }
            }
        }
    }
}
