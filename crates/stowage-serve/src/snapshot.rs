//! One completed scan, analysed, with what the API needs to answer quickly.
//!
//! The snapshot keeps the library's analysed registry ([`Analysis`]: the inventory with its
//! graph index, marks and usage figures) between requests, so no request builds a graph.

use stowage_analysis::Analysis;
use stowage_model::finding::Finding;
use stowage_model::inventory::{BlobId, Inventory};
use stowage_model::time::Timestamp;
use stowage_report::metrics::RepoFigures;
use stowage_report::overview::{Limits, Overview, TagRow};

/// A completed scan.
pub struct Snapshot {
    pub analysis: Analysis,
    /// `live` is set: the page pages blobs through the API.
    pub overview: Overview,
    pub repos: RepoFigures,
    /// Seconds the scan and analysis took.
    pub seconds: f64,
    /// The scan's `now`.
    pub finished_at: Timestamp,
    /// Blob ids by size (then id), ascending.
    pub(crate) by_size: Vec<BlobId>,
    /// Blob ids by creation (birth, else modification) time, ascending.
    pub(crate) by_date: Vec<BlobId>,
    /// Blob ids by kind name, then size, ascending.
    pub(crate) by_kind: Vec<BlobId>,
    /// Blob ids unreferenced first, then by size, ascending.
    pub(crate) by_referenced: Vec<BlobId>,
    /// Every tag's row (the tag table the API sorts and searches); the caller sets their
    /// last pulls when it has pull data.
    pub tags: Vec<TagRow>,
    /// On a pull-through cache: per stored blob, its scheduler entries (the blob page's cache
    /// columns).
    pub(crate) blob_cache: Option<stowage_analysis::cache::BlobCaches>,
}

impl Snapshot {
    /// The figures of an analysed registry (built with its findings listed, see `stowage check`).
    pub fn build(
        analysis: Analysis,
        limits: &Limits,
        metrics_top: usize,
        seconds: f64,
    ) -> Snapshot {
        let mut overview = analysis.overview(limits);
        overview.live = true;
        let repos = analysis.repository_figures(metrics_top);
        let inv = analysis.inv();
        let mut by_size: Vec<BlobId> = (0..inv.blobs.len() as BlobId).collect();
        by_size.sort_by_key(|&i| (inv.blobs[i as usize].size, i));
        let mut by_date: Vec<BlobId> = (0..inv.blobs.len() as BlobId).collect();
        by_date.sort_by_key(|&i| {
            let b = &inv.blobs[i as usize];
            (inv.created(i).unwrap_or(b.modified()), i)
        });
        let g = analysis.graph();
        g.build_tables();
        let mut by_kind = by_size.clone();
        by_kind.sort_by_key(|&i| g.blob_kind(i).as_str());
        let referenced = analysis.referenced();
        let mut by_referenced = by_size.clone();
        by_referenced.sort_by_key(|&i| referenced[i as usize]);
        let finished_at = analysis.now();
        let tags = analysis.all_tag_rows();
        let blob_cache = analysis.cache_figures().map(|c| c.by_blob());
        Snapshot {
            blob_cache,
            tags,
            analysis,
            overview,
            repos,
            seconds,
            finished_at,
            by_size,
            by_date,
            by_kind,
            by_referenced,
        }
    }

    pub fn inv(&self) -> &Inventory {
        self.analysis.inv()
    }

    /// Scan and graph findings, sorted.
    pub fn findings(&self) -> &[Finding] {
        self.analysis.findings()
    }

    /// Per blob: some manifest references it.
    pub fn referenced(&self) -> &[bool] {
        self.analysis.referenced()
    }
}
