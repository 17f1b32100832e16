//! Images and their last pull, and bytes by last-pull age: what `stowage usage`, `stowage
//! tags --db`, the report and the dashboard show. Pure: graph + pull summary + `now`.
//!
//! An *image* is a manifest or index of a repository that no other manifest of the same
//! repository references (tagged or not), with its referrers (signatures, SBOMs: a manifest
//! whose `subject` is in the image belongs to it, not an image of its own). Its last pull is the latest pull of itself or of
//! anything it references (a client pulls an index, then the platform manifest by digest;
//! either is use of the image). "Never pulled" means: not pulled since the data began;
//! with no data at all, every image is "no data", never "never pulled".

use std::collections::HashMap;

use crate::events::PullSummary;
use serde::Serialize;
use stowage_graph::Graph;
use stowage_graph::Scratch;
use stowage_model::time::Timestamp;

/// Last-pull age classes, freshest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bucket {
    /// Pulled within 7 days of `now`.
    Week,
    /// Within 30 days.
    Month,
    /// Longer ago.
    Older,
    /// Not pulled since the data began.
    Never,
    /// No pull data at all.
    NoData,
}

impl Bucket {
    pub const ALL: [Bucket; 5] = [
        Bucket::Week,
        Bucket::Month,
        Bucket::Older,
        Bucket::Never,
        Bucket::NoData,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Bucket::Week => "pulled this week",
            Bucket::Month => "pulled this month",
            Bucket::Older => "pulled longer ago",
            Bucket::Never => "never pulled",
            Bucket::NoData => "no pull data",
        }
    }

    pub fn of(last: Option<Timestamp>, has_data: bool, now: Timestamp) -> Bucket {
        match last {
            _ if !has_data => Bucket::NoData,
            None => Bucket::Never,
            Some(t) if t.seconds_until(now) <= 7 * 86_400 => Bucket::Week,
            Some(t) if t.seconds_until(now) <= 30 * 86_400 => Bucket::Month,
            Some(_) => Bucket::Older,
        }
    }
}

/// One image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageUsage {
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    /// When the manifest was linked into the repository (its revision link's date).
    pub pushed: Timestamp,
    /// Distinct bytes of the image (manifest, configs, layers, children).
    pub size: u64,
    pub last_pulled: Option<Timestamp>,
    /// Pulls of the image and of what it references.
    pub pulls: u64,
    pub bucket: Bucket,
}

/// Bytes and images per bucket. A blob shared by images of different buckets counts in the
/// freshest one, so the `never` bytes are what only never-pulled images need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BucketFigures {
    pub bucket: Option<Bucket>,
    pub images: u64,
    pub bytes: u64,
}

/// The whole view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageView {
    pub now: Timestamp,
    pub data_begins: Option<Timestamp>,
    pub data_ends: Option<Timestamp>,
    pub buckets: Vec<BucketFigures>,
    /// Sorted by repository, then digest.
    pub images: Vec<ImageUsage>,
}

/// Per (repository, digest): (last pull, pulls).
pub fn pull_index(s: &PullSummary) -> HashMap<(&str, &str), (Timestamp, u64)> {
    s.pulls
        .iter()
        .map(|p| {
            (
                (p.repository.as_str(), p.digest.as_str()),
                (p.last_pulled, p.pulls),
            )
        })
        .collect()
}

/// Build the view.
pub fn build(g: &Graph<'_>, pulls: &PullSummary, now: Timestamp) -> UsageView {
    let inv = g.inv;
    let idx = pull_index(pulls);
    let has_data = pulls.data_begins.is_some();
    let mut scratch = Scratch::new(g.len());
    let mut images = Vec::new();
    // Per blob: the freshest bucket of any image needing it.
    let mut freshest: Vec<Option<Bucket>> = vec![None; g.len()];
    for r in &inv.repositories {
        let name = r.name.as_str();
        let revs: std::collections::HashSet<u32> = r.revisions.iter().map(|l| l.target()).collect();
        for l in &r.revisions {
            let id = l.target();
            if g.parents(id).iter().any(|p| revs.contains(p)) {
                continue;
            }
            // A referrer (signature, SBOM) belongs to its subject's image.
            if g.manifest(id)
                .and_then(|m| m.subject())
                .is_some_and(|s| revs.contains(&s))
            {
                continue;
            }
            let digest = inv.digest(id).to_string();
            let mut last: Option<Timestamp> = None;
            let mut n = 0u64;
            let mut size = 0u64;
            let mut members = Vec::new();
            g.for_each_descendant(id, &mut scratch, |b| {
                size += g.size(b);
                members.push(b);
            });
            // With the referrers of its manifests (in this repository), and theirs.
            let mut i = 0;
            while i < members.len() {
                let m = members[i];
                i += 1;
                for &r in g.referrers(m) {
                    if revs.contains(&r) && !members.contains(&r) {
                        let mut extra = Vec::new();
                        g.for_each_descendant(r, &mut scratch, |b| extra.push(b));
                        for b in extra {
                            if !members.contains(&b) {
                                size += g.size(b);
                                members.push(b);
                            }
                        }
                    }
                }
            }
            for &b in &members {
                if g.manifest(b).is_some() {
                    let d = inv.digest(b).to_string();
                    if let Some(&(t, c)) = idx.get(&(name, d.as_str())) {
                        last = Some(last.map_or(t, |x| x.max(t)));
                        n += c;
                    }
                }
            }
            let bucket = Bucket::of(last, has_data, now);
            for b in members {
                let f = &mut freshest[b as usize];
                *f = Some(f.map_or(bucket, |x| x.min(bucket)));
            }
            let mut tags: Vec<String> = r
                .tags
                .iter()
                .filter(|t| t.current.and_then(|c| c.target) == Some(id))
                .map(|t| t.name.to_string())
                .collect();
            tags.sort();
            images.push(ImageUsage {
                repository: name.to_string(),
                digest,
                tags,
                pushed: l.modified(),
                size,
                last_pulled: last,
                pulls: n,
                bucket,
            });
        }
    }
    images.sort_by(|a, b| (&a.repository, &a.digest).cmp(&(&b.repository, &b.digest)));
    images.dedup_by(|a, b| a.repository == b.repository && a.digest == b.digest);
    let mut buckets: Vec<BucketFigures> = Bucket::ALL
        .iter()
        .map(|&b| BucketFigures {
            bucket: Some(b),
            images: images.iter().filter(|i| i.bucket == b).count() as u64,
            bytes: 0,
        })
        .collect();
    for (b, f) in freshest.iter().enumerate() {
        if let Some(f) = f
            && let Some(x) = buckets.iter_mut().find(|x| x.bucket == Some(*f))
        {
            x.bytes += g.size(b as u32);
        }
    }
    buckets.retain(|b| b.images > 0 || (has_data && b.bucket != Some(Bucket::NoData)));
    UsageView {
        now,
        data_begins: pulls.data_begins,
        data_ends: pulls.data_ends,
        buckets,
        images,
    }
}

/// Per blob id: the latest pull of any image that needs it (in any repository), for
/// `stowage inventory --db`.
pub fn blob_last_pulled(g: &Graph<'_>, pulls: &PullSummary) -> Vec<Option<Timestamp>> {
    let v = build(g, pulls, Timestamp::default());
    let mut out: Vec<Option<Timestamp>> = vec![None; g.len()];
    let mut scratch = Scratch::new(g.len());
    for i in &v.images {
        let Some(t) = i.last_pulled else {
            continue;
        };
        let Ok(d) = i.digest.parse::<stowage_model::digest::Digest>() else {
            continue;
        };
        let Some(id) = g.inv.id_of(&d) else {
            continue;
        };
        g.for_each_descendant(id, &mut scratch, |b| {
            let x = &mut out[b as usize];
            *x = Some(x.map_or(t, |y| y.max(t)));
        });
    }
    out
}

/// The report's section (`stowage report --history DB`, the dashboard).
pub fn report_section(v: &UsageView) -> stowage_report::overview::PullsView {
    use stowage_report::overview::{PullBucket, PullImage, PullsView};
    let mut never: Vec<&ImageUsage> = v
        .images
        .iter()
        .filter(|i| i.bucket == Bucket::Never)
        .collect();
    never.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| (&a.repository, &a.digest).cmp(&(&b.repository, &b.digest)))
    });
    PullsView {
        data_begins: v.data_begins,
        data_ends: v.data_ends,
        buckets: v
            .buckets
            .iter()
            .map(|b| PullBucket {
                label: b.bucket.map(Bucket::label).unwrap_or("-").to_string(),
                images: b.images,
                bytes: b.bytes,
            })
            .collect(),
        never_pulled_total: never.len() as u64,
        never_pulled: never
            .into_iter()
            .take(200)
            .map(|i| PullImage {
                repository: i.repository.clone(),
                tags: i.tags.clone(),
                digest: i.digest.clone(),
                pushed: i.pushed,
                size: i.size,
            })
            .collect(),
    }
}
