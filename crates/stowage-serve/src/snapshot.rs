//! One completed scan, analysed, with what the API needs to answer quickly.

use stowage_graph::Graph;
use stowage_model::finding::Finding;
use stowage_model::inventory::{BlobId, Inventory};
use stowage_model::time::Timestamp;
use stowage_report::metrics::RepoFigures;
use stowage_report::overview::{self, Limits, Overview};

/// A completed scan.
pub struct Snapshot {
    pub inv: Inventory,
    /// Scan and graph findings, sorted.
    pub findings: Vec<Finding>,
    /// `live` is set: the page pages blobs through the API.
    pub overview: Overview,
    pub repos: RepoFigures,
    /// Per blob: some manifest references it.
    pub referenced: Vec<bool>,
    /// Seconds the scan and analysis took.
    pub seconds: f64,
    /// The scan's `now`.
    pub finished_at: Timestamp,
    /// Blob ids by size (then id), ascending.
    pub(crate) by_size: Vec<BlobId>,
    /// Blob ids by creation (birth, else modification) time, ascending.
    pub(crate) by_date: Vec<BlobId>,
}

impl Snapshot {
    /// Analyse an inventory. `findings` are the scan's and the graph's (see `stowage check`).
    pub fn build(
        inv: Inventory,
        findings: Vec<Finding>,
        now: Timestamp,
        limits: &Limits,
        metrics_top: usize,
        seconds: f64,
    ) -> Snapshot {
        let (mut ov, repos, referenced) = {
            let g = Graph::new(&inv);
            let referenced = g.mark(g.all_revision_roots(), false);
            let summary = stowage_graph::summary(
                &g,
                &referenced,
                stowage_model::finding::FindingCounts::of(&findings),
                now,
                limits.stale_upload_secs,
            );
            let u = stowage_graph::usage(&g);
            let ov = overview::build_with(&g, &u, &referenced, summary, &findings, now, limits);
            let repos = stowage_report::metrics::repository_figures(&g, &u, metrics_top);
            (ov, repos, referenced)
        };
        ov.live = true;
        let mut by_size: Vec<BlobId> = (0..inv.blobs.len() as BlobId).collect();
        by_size.sort_by_key(|&i| (inv.blobs[i as usize].size, i));
        let mut by_date: Vec<BlobId> = (0..inv.blobs.len() as BlobId).collect();
        by_date.sort_by_key(|&i| {
            let b = &inv.blobs[i as usize];
            (b.created().unwrap_or(b.modified()), i)
        });
        Snapshot {
            inv,
            findings,
            overview: ov,
            repos,
            referenced,
            seconds,
            finished_at: now,
            by_size,
            by_date,
        }
    }
}
