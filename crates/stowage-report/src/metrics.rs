//! Prometheus metrics in the text exposition format (0.0.4), for `stowage metrics` (the
//! node-exporter textfile collector) and the dashboard's `/metrics`.
//!
//! Naming follows the Prometheus conventions: a `stowage_` prefix, base units in the name
//! (`_bytes`, `_seconds`), `_total` only on counters. Label cardinality is bounded: per
//! repository only the `top` largest (by total bytes) get their own series, the rest are
//! summed into `repository="(other)"` (parentheses cannot occur in a repository name, so it
//! never collides with a real one), with distinct bytes computed over the union of those
//! repositories, not summed. Every finding kind is always present (0 when absent), so series
//! do not appear and vanish.

use std::fmt::Write as _;

use stowage_graph::{Graph, Usage};
use stowage_model::finding::FindingKind;
use stowage_model::inventory::BlobId;

use crate::overview::Overview;

/// The label value of the repositories beyond the top N.
pub const OTHER: &str = "(other)";

/// Per-repository figures with the top-N cut applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoFigures {
    /// (repository, total, exclusive), largest total first.
    pub top: Vec<(String, u64, u64)>,
    /// Repositories folded into `(other)`, and their distinct total and exclusive bytes.
    pub other: Option<(u64, u64, u64)>,
}

/// Total (distinct bytes reachable) and the walk it took, over a set of repositories.
fn union_bytes(g: &Graph<'_>, repos: &[usize], scratch: &mut stowage_graph::Scratch) -> u64 {
    let roots: Vec<BlobId> = repos
        .iter()
        .flat_map(|&ri| g.inv.repositories[ri].revisions.iter().map(|l| l.target()))
        .collect();
    let mut total = 0;
    g.for_each_descendant_of_all(&roots, scratch, |id| total += g.size(id));
    total
}

/// The largest `top` repositories by total bytes (ties by name), and the rest as one.
pub fn repository_figures(g: &Graph<'_>, u: &Usage, top: usize) -> RepoFigures {
    let inv = g.inv;
    let mut all: Vec<(usize, u64, u64)> = (0..inv.repositories.len())
        .map(|ri| {
            let n = &u.nodes[u.repo_node[ri] as usize];
            (ri, n.own_total, n.own_exclusive)
        })
        .collect();
    all.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| inv.repositories[a.0].name.cmp(&inv.repositories[b.0].name))
    });
    let rest: Vec<usize> = all.iter().skip(top).map(|r| r.0).collect();
    let other = (!rest.is_empty()).then(|| {
        let mut scratch = stowage_graph::Scratch::new(g.len());
        let kept: Vec<usize> = all.iter().take(top).map(|r| r.0).collect();
        let everyone: Vec<usize> = all.iter().map(|r| r.0).collect();
        let total = union_bytes(g, &rest, &mut scratch);
        // Exclusive to the rest: reachable from some repository, but from none of the top.
        let exclusive = union_bytes(g, &everyone, &mut scratch).saturating_sub(union_bytes(
            g,
            &kept,
            &mut scratch,
        ));
        (rest.len() as u64, total, exclusive)
    });
    RepoFigures {
        top: all
            .into_iter()
            .take(top)
            .map(|(ri, t, e)| (inv.repositories[ri].name.to_string(), t, e))
            .collect(),
        other,
    }
}

/// About the scan that produced the figures.
#[derive(Clone, Debug, Default)]
pub struct ScanInfo {
    pub duration_seconds: f64,
    /// Unix time of the last successful scan.
    pub last_success_unix: f64,
    /// Scans since start, by result (dashboard only).
    pub scans_success: Option<u64>,
    pub scans_failure: Option<u64>,
    pub scan_in_progress: Option<bool>,
}

/// Escape a label value.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
    fn gauge(&mut self, name: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, "gauge", help);
        self.sample(name, &[], v);
    }
}

/// Render the metrics.
pub fn render(o: &Overview, repos: &RepoFigures, scan: &ScanInfo) -> String {
    let mut m = Out(String::new());
    blob_store(&mut m, o);
    registry_counts(&mut m, o);
    reclaimable(&mut m, o);
    repositories(&mut m, repos);
    findings(&mut m, o);
    scan_health(&mut m, scan);
    capacity(&mut m, o);
    m.0
}

/// The filesystem's size and free bytes, and the bytes of images never pulled since the
/// pull data began (only with pull data: without it nothing is known to be unpulled).
fn capacity(m: &mut Out, o: &Overview) {
    if let Some(c) = &o.capacity {
        let (size, free) = (c.size_bytes, c.free_bytes);
        m.gauge(
            "stowage_filesystem_size_bytes",
            "Size of the filesystem holding the storage.",
            size,
        );
        m.gauge(
            "stowage_filesystem_free_bytes",
            "Bytes available on the filesystem holding the storage.",
            free,
        );
    }
    if let Some(p) = &o.pulls
        && p.data_begins.is_some()
    {
        let never: u64 = p
            .buckets
            .iter()
            .filter(|b| b.label == "never pulled")
            .map(|b| b.bytes)
            .sum();
        m.gauge(
            "stowage_never_pulled_bytes",
            "Bytes of images never pulled since the pull data began (a shared blob counts with its freshest image).",
            never,
        );
    }
}

/// Storage and blob-store bytes and counts.
fn blob_store(m: &mut Out, o: &Overview) {
    let s = &o.summary.summary;
    m.gauge(
        "stowage_storage_bytes",
        "Bytes on the registry storage: blobs, uploads and files outside the layout.",
        o.summary.storage_bytes,
    );
    m.head(
        "stowage_blob_bytes",
        "gauge",
        "Bytes of blob data, by whether some manifest references the blob.",
    );
    m.sample(
        "stowage_blob_bytes",
        &[("referenced", "true")],
        s.referenced_bytes,
    );
    m.sample(
        "stowage_blob_bytes",
        &[("referenced", "false")],
        s.unreferenced_bytes,
    );
    m.head(
        "stowage_blobs",
        "gauge",
        "Blobs in the blob store, by whether some manifest references the blob.",
    );
    m.sample(
        "stowage_blobs",
        &[("referenced", "true")],
        s.referenced_blobs,
    );
    m.sample(
        "stowage_blobs",
        &[("referenced", "false")],
        s.unreferenced_blobs,
    );
    m.gauge(
        "stowage_missing_blobs",
        "Digests referenced by manifests but absent from the blob store.",
        s.missing_blobs,
    );
}

/// Repositories, tags, manifests and uploads over the registry.
fn registry_counts(m: &mut Out, o: &Overview) {
    let s = &o.summary.summary;
    m.gauge("stowage_repositories", "Repositories.", s.repositories);
    m.gauge("stowage_tags", "Tags over all repositories.", s.tags);
    m.gauge(
        "stowage_manifests",
        "Manifest revision links over all repositories.",
        s.manifests,
    );
    m.gauge(
        "stowage_untagged_manifests",
        "Manifest revision links that no tag of their repository points at.",
        s.untagged_manifests,
    );
    m.gauge(
        "stowage_uploads",
        "Upload directories (in progress or abandoned).",
        s.uploads,
    );
    m.gauge(
        "stowage_upload_bytes",
        "Bytes held by upload directories.",
        s.upload_bytes,
    );
}

/// What a GC plan would free now, by reason.
fn reclaimable(m: &mut Out, o: &Overview) {
    m.head(
        "stowage_reclaimable_bytes",
        "gauge",
        "Bytes a stowage gc plan would free now, by reason (before the grace period).",
    );
    for r in &o.reclaimable {
        m.sample(
            "stowage_reclaimable_bytes",
            &[("reason", &r.reason)],
            r.bytes,
        );
    }
}

/// Per-repository bytes: the top N by total, the rest as one `(other)` series.
fn repositories(m: &mut Out, repos: &RepoFigures) {
    m.head(
        "stowage_repository_bytes",
        "gauge",
        "Distinct bytes reachable from a repository's manifests (nested repositories apart); the largest repositories, the rest summed as (other).",
    );
    for (name, total, _) in &repos.top {
        m.sample("stowage_repository_bytes", &[("repository", name)], total);
    }
    if let Some((_, total, _)) = repos.other {
        m.sample("stowage_repository_bytes", &[("repository", OTHER)], total);
    }
    m.head(
        "stowage_repository_exclusive_bytes",
        "gauge",
        "Bytes that deleting the repository (then GC) would free; the rest summed as (other).",
    );
    for (name, _, excl) in &repos.top {
        m.sample(
            "stowage_repository_exclusive_bytes",
            &[("repository", name)],
            excl,
        );
    }
    if let Some((_, _, excl)) = repos.other {
        m.sample(
            "stowage_repository_exclusive_bytes",
            &[("repository", OTHER)],
            excl,
        );
    }
    m.gauge(
        "stowage_other_repositories",
        "Repositories summed into repository=\"(other)\".",
        repos.other.map_or(0, |o| o.0),
    );
}

/// Findings by kind and severity; every kind is written, 0 when absent, so series do not
/// appear and vanish.
fn findings(m: &mut Out, o: &Overview) {
    m.head(
        "stowage_findings",
        "gauge",
        "Integrity findings, by kind and severity.",
    );
    for k in FindingKind::ALL {
        let n = o
            .findings
            .iter()
            .find(|g| g.kind == k.as_str())
            .map_or(0, |g| g.count);
        m.sample(
            "stowage_findings",
            &[
                ("kind", k.as_str()),
                ("severity", &k.severity().to_string()),
            ],
            n,
        );
    }
}

/// The scan's own health: duration, last success, and (in the dashboard) scan counters.
fn scan_health(m: &mut Out, scan: &ScanInfo) {
    m.gauge(
        "stowage_scan_duration_seconds",
        "Wall time of the last successful scan and analysis.",
        format_f64(scan.duration_seconds),
    );
    m.gauge(
        "stowage_last_success_timestamp_seconds",
        "Unix time of the last successful scan.",
        format_f64(scan.last_success_unix),
    );
    if let (Some(ok), Some(failed)) = (scan.scans_success, scan.scans_failure) {
        m.head(
            "stowage_scans_total",
            "counter",
            "Scans run by this dashboard since it started, by result.",
        );
        m.sample("stowage_scans_total", &[("result", "success")], ok);
        m.sample("stowage_scans_total", &[("result", "failure")], failed);
    }
    if let Some(p) = scan.scan_in_progress {
        m.gauge(
            "stowage_scan_in_progress",
            "1 while a scan is running.",
            u8::from(p),
        );
    }
}

/// Floats without a needless exponent; integers stay integers.
fn format_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn floats() {
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(0.25), "0.25");
        assert_eq!(format_f64(1_795_348_523.0), "1795348523");
    }
}
