//! The analysed registry: one scan, analysed once, that every command and the dashboard use.
//!
//! Why a type of its own: the pipeline every command runs (scan, graph, findings, marks,
//! usage figures, the GitLab metadata-database check) used to be assembled in the binary and
//! again in the dashboard, with the graph rebuilt per command and per request. Here it is
//! built once per scan and kept: [`Analysis`] owns the inventory and its
//! [`GraphIndex`](stowage_graph::GraphIndex), so a [`Graph`] view is free; the reachability
//! marks and usage figures are computed the first time something asks for them (a `gc` never
//! pays for usage figures) and then kept. The model is rustic_core's `Repository`: the
//! library owns the opened, indexed repository; the binary parses arguments, calls one method
//! and renders.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use stowage_analysis::{Analysis, GraphFindings, Options};
//! let storage = stowage_storage::FsStorage::open("/var/lib/registry/docker/registry/v2".as_ref())?;
//! let a = Analysis::scan(&storage, &Default::default(), &Default::default(), &Options::default())?;
//! println!("{} blobs, {} bytes referenced", a.inv().blobs.len(), a.summary(a.now(), 7 * 86_400).referenced_bytes);
//! # Ok(()) }
//! ```

pub mod cache;
mod settle;

pub use settle::settle;

use std::sync::OnceLock;

use stowage_graph::{Graph, GraphIndex, Summary, Usage};
use stowage_model::build::BuildDates;
use stowage_model::finding::{Finding, FindingCounts};
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::metadata_db::{self, Evidence};
use stowage_report::metrics::RepoFigures;
use stowage_report::overview::{self, Limits, Overview};
use stowage_scan::{Progress, ScanError, ScanOptions};
use stowage_storage::Storage;

/// What the analysis does with the findings that need the graph.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum GraphFindings {
    /// Add them to the inventory's findings, sorted (commands that show findings).
    #[default]
    List,
    /// Only count them (commands that print totals): no path or message is built, which at
    /// a million blobs is tens of megabytes of strings nobody reads.
    Count,
}

/// How to analyse.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub graph_findings: GraphFindings,
    /// The registry's config says its links are not its metadata (GitLab's metadata
    /// database: `stowage_plan::metadata_db`); otherwise the storage's signature is checked.
    pub metadata_config: Option<Evidence>,
    /// The present moment of the analysis (`--now`): ages, grace periods, plans.
    pub now: Timestamp,
    /// `proxy.remoteurl` from the registry's config: the storage is a pull-through cache.
    pub proxy_remote_url: Option<String>,
}

/// One scanned and analysed registry.
pub struct Analysis {
    inv: Inventory,
    index: GraphIndex,
    unlisted: FindingCounts,
    metadata_database: Option<Evidence>,
    now: Timestamp,
    proxy_remote_url: Option<String>,
    referenced: OnceLock<Vec<bool>>,
    usage: OnceLock<Usage>,
    /// Image build dates, when read ([`Analysis::read_build_dates`]).
    builds: Option<BuildDates>,
    /// How it was analysed (to analyse again after [`settle`] stats more).
    opts: Options,
}

impl Analysis {
    /// Scan `storage` and analyse the result.
    pub fn scan(
        storage: &dyn Storage,
        scan: &ScanOptions,
        progress: &Progress,
        opts: &Options,
    ) -> Result<Analysis, ScanError> {
        Ok(Analysis::new(
            stowage_scan::scan(storage, scan, progress)?,
            opts,
        ))
    }

    /// Analyse an inventory: build its graph index once, add (or count) the graph's
    /// integrity findings, and look for GitLab's metadata database.
    pub fn new(mut inv: Inventory, opts: &Options) -> Analysis {
        let index = GraphIndex::build(&inv);
        let mut unlisted = FindingCounts::default();
        let cache_findings = cache::findings(&inv);
        match opts.graph_findings {
            GraphFindings::List => {
                let mut derived = stowage_graph::analyze_findings(&Graph::view(&inv, &index));
                derived.extend(cache_findings);
                // One list, not the scan's plus a copy: a collected registry yields a
                // dangling-link finding per deleted image.
                inv.findings.reserve_exact(derived.len());
                inv.findings.extend(derived);
                inv.findings.sort();
                inv.findings.dedup();
            }
            GraphFindings::Count => {
                unlisted = stowage_graph::count_findings(&Graph::view(&inv, &index));
                unlisted += FindingCounts::of(&cache_findings);
            }
        }
        let metadata_database = opts
            .metadata_config
            .clone()
            .or_else(|| metadata_db::signature(&inv));
        Analysis {
            inv,
            index,
            unlisted,
            metadata_database,
            now: opts.now,
            proxy_remote_url: opts.proxy_remote_url.clone(),
            referenced: OnceLock::new(),
            usage: OnceLock::new(),
            builds: None,
            opts: opts.clone(),
        }
    }

    /// The same analysis over `inv`, the same inventory with sizes and dates filled in
    /// ([`settle`]): the graph index and the graph's findings depend only on which blobs,
    /// links and references exist, so they are kept (building them again took 3.5% of a
    /// `gc`'s CPU at 100k blobs, perf); what reads sizes or dates is redone.
    fn restated(self, inv: Inventory) -> Analysis {
        let metadata_database = self
            .opts
            .metadata_config
            .clone()
            .or_else(|| metadata_db::signature(&inv));
        Analysis {
            inv,
            metadata_database,
            usage: OnceLock::new(),
            ..self
        }
    }

    /// Read every image config's build date (`created`, build steps) from `storage`, one
    /// read per config on `concurrency` threads; kept for [`Analysis::build_dates`] and the
    /// overview's image ages. A separate step because it reads the storage: the commands
    /// that show build dates call it, `gc` and the plans do not pay for it.
    pub fn read_build_dates(&mut self, storage: &dyn Storage, concurrency: usize) {
        self.builds = Some(stowage_scan::read_build_dates(
            storage,
            &self.inv,
            self.now,
            concurrency,
        ));
    }

    /// The build dates, if [`Analysis::read_build_dates`] ran.
    pub fn build_dates(&self) -> Option<&BuildDates> {
        self.builds.as_ref()
    }

    /// The scan, with the graph's findings added when [`GraphFindings::List`].
    pub fn inv(&self) -> &Inventory {
        &self.inv
    }

    /// The reference graph (a view over the kept index: free).
    pub fn graph(&self) -> Graph<'_> {
        Graph::view(&self.inv, &self.index)
    }

    /// The present moment the analysis was made for.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Per id: some manifest in some repository needs it (marked from every revision link,
    /// index children and the opaque-manifest rule; referrers not followed).
    pub fn referenced(&self) -> &[bool] {
        self.referenced.get_or_init(|| {
            let g = self.graph();
            g.mark(g.revision_roots(), false)
        })
    }

    /// Total, exclusive and shared bytes per repository, namespace and tag.
    pub fn usage(&self) -> &Usage {
        self.usage
            .get_or_init(|| stowage_graph::usage(&self.graph()))
    }

    /// Every finding, listed or only counted, by severity.
    pub fn finding_counts(&self) -> FindingCounts {
        let mut c = FindingCounts::of(&self.inv.findings);
        c += self.unlisted;
        c
    }

    /// The listed findings, sorted (scan and graph).
    pub fn findings(&self) -> &[Finding] {
        &self.inv.findings
    }

    /// Add findings found after the scan (`check --verify-digests` re-hashing blobs); the
    /// list stays sorted and free of duplicates.
    pub fn add_findings(&mut self, found: impl IntoIterator<Item = Finding>) {
        self.inv.findings.extend(found);
        self.inv.findings.sort();
        self.inv.findings.dedup();
    }

    /// Why the storage's links are not this registry's metadata, if they are not: figures
    /// are then "filesystem metadata only" and nothing may be deleted.
    pub fn metadata_database(&self) -> Option<&Evidence> {
        self.metadata_database.as_ref()
    }

    /// Refuse a deleting plan on a registry whose links are not its metadata. A signature
    /// alone may be overridden (`--unsafe-ignore-metadata-signature`); a config never.
    pub fn refuse_deleting(&self, ignore_signature: bool) -> Result<(), Refusal> {
        match &self.metadata_database {
            None => Ok(()),
            Some(Evidence::Signature { .. }) if ignore_signature => Ok(()),
            Some(e) => Err(Refusal(e.refusal())),
        }
    }

    /// The headline figures (`stale_upload_secs`: uploads older than this are stale).
    pub fn summary(&self, now: Timestamp, stale_upload_secs: i64) -> Summary {
        stowage_graph::summary(
            &self.graph(),
            self.referenced(),
            self.finding_counts(),
            now,
            stale_upload_secs,
        )
    }

    /// Every figure of the HTML report, the dashboard and the metrics.
    pub fn overview(&self, limits: &Limits) -> Overview {
        let g = self.graph();
        let summary = self.summary(self.now, limits.stale_upload_secs);
        let mut ov = overview::build_with(
            &g,
            self.usage(),
            self.referenced(),
            summary,
            &self.inv.findings,
            self.now,
            limits,
        );
        stowage_report::ages::enrich(&mut ov, &g, self.referenced(), self.builds.as_ref());
        ov.metadata_database = self.metadata_database.as_ref().map(Evidence::label);
        if ov.metadata_database.is_some() {
            ov.headline.filesystem_metadata_only();
        }
        if let Some(c) = self.cache_figures() {
            c.fill_blob_rows(&mut ov.blobs.rows);
            c.fill_tag_rows(&mut ov.top_tags);
            ov.cache = Some(c.overview());
        }
        ov
    }

    /// What says the storage belongs to a pull-through cache (empty when nothing does).
    pub fn proxy_cache(&self) -> Vec<String> {
        cache::detected_by(&self.inv, self.proxy_remote_url.as_deref())
    }

    /// The pull-through cache's figures at the analysis's `now`; `None` for a registry that
    /// is not a cache.
    pub fn cache_figures(&self) -> Option<cache::CacheFigures> {
        if self.proxy_cache().is_empty() {
            return None;
        }
        Some(cache::figures(
            &self.graph(),
            self.now,
            self.proxy_remote_url.as_deref(),
        ))
    }

    /// The tags of repository `ri` with sizes and history, and their build dates when
    /// [`Analysis::read_build_dates`] ran.
    pub fn tag_records(&self, ri: usize) -> Vec<stowage_report::TagRecord> {
        let g = self.graph();
        let mut rows = stowage_report::tag_records(&g, self.usage(), ri);
        if let Some(b) = &self.builds {
            stowage_report::ages::fill_tag_records(&mut rows, &g, ri, b);
        }
        rows
    }

    /// Every tag as a table row (digest, sizes, moved, pushed, built), by exclusive bytes.
    pub fn all_tag_rows(&self) -> Vec<stowage_report::overview::TagRow> {
        let g = self.graph();
        let mut rows = overview::all_tag_rows(&self.inv, self.usage());
        stowage_report::ages::fill_tag_rows(&mut rows, &g, self.builds.as_ref());
        if let Some(c) = self.cache_figures() {
            c.fill_tag_rows(&mut rows);
        }
        rows
    }

    /// Per-repository figures for the metrics: the `top` largest by name, the rest as one.
    pub fn repository_figures(&self, top: usize) -> RepoFigures {
        stowage_report::metrics::repository_figures(&self.graph(), self.usage(), top)
    }
}

/// A deleting plan refused on a registry whose links are not its metadata; the message says
/// why and what to use instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}
