//! Image ages and the dates of the repository and tag tables: when each image was built (its
//! config's `created`, `stowage_model::build`), when it was pushed here (its revision link),
//! when it was last pulled (pull data), and "bytes by image age".
//!
//! Why beside the file dates: a registry copied with `cp -a`, rsync, a restore or an object
//! store sync has every file "created" on the copy day, so "bytes by month of creation" is one
//! bar. The build date travels inside the image. Each chart says which date it uses; an image
//! whose build date is unknown (config unreadable, no `created`, a 1970 placeholder) is
//! counted as unknown, never given a guessed date.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_model::build::{BuildDate, BuildDates};
use stowage_model::inventory::BlobId;
use stowage_model::time::Timestamp;

use crate::overview::{Overview, TagRow};

/// Bytes by image age (the report's and dashboard's chart).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageAges {
    /// Which date the chart uses, in words.
    pub date_used: String,
    /// Youngest first; the last bucket is the images whose build date is unknown.
    pub buckets: Vec<AgeBucket>,
    /// Images without a build date, by reason.
    pub unknown: Vec<UnknownCount>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgeBucket {
    pub label: String,
    /// Upper bound of the bucket in days (`None`: no bound; the unknown bucket has none).
    pub max_days: Option<u32>,
    /// Manifests with a revision link whose build falls in the bucket.
    pub images: u64,
    /// Referenced blobs, each counted once at the age of the youngest image that uses it.
    pub blobs: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnknownCount {
    pub reason: String,
    pub description: String,
    pub images: u64,
}

const BUCKETS: [(&str, Option<u32>); 7] = [
    ("under 1 month", Some(30)),
    ("1-3 months", Some(91)),
    ("3-6 months", Some(182)),
    ("6-12 months", Some(365)),
    ("1-2 years", Some(730)),
    ("2-3 years", Some(1095)),
    ("over 3 years", None),
];

const UNKNOWN_LABEL: &str = "build date unknown";

fn bucket_of(now: Timestamp, t: Timestamp) -> usize {
    let days = t.seconds_until(now).max(0) / 86_400;
    BUCKETS
        .iter()
        .position(|(_, max)| max.is_none_or(|m| days < i64::from(m)))
        .unwrap_or(BUCKETS.len() - 1)
}

/// Bytes by image age at `now` (every referenced blob once; `referenced` per id).
pub fn image_ages(
    g: &Graph<'_>,
    builds: &BuildDates,
    referenced: &[bool],
    now: Timestamp,
) -> ImageAges {
    let inv = g.inv;
    let mut buckets: Vec<AgeBucket> = BUCKETS
        .iter()
        .map(|(l, m)| AgeBucket {
            label: (*l).to_string(),
            max_days: *m,
            ..AgeBucket::default()
        })
        .chain(std::iter::once(AgeBucket {
            label: UNKNOWN_LABEL.into(),
            ..AgeBucket::default()
        }))
        .collect();
    let unknown_ix = BUCKETS.len();
    // Youngest first: the first walk that reaches a blob gives it its age.
    let mut dated: Vec<(Timestamp, BlobId)> = inv
        .manifests
        .iter()
        .filter_map(|m| Some((builds.date(m.id).at()?, m.id)))
        .collect();
    dated.sort_unstable_by(|a, b| b.cmp(a));
    let mut age: Vec<Option<Timestamp>> = vec![None; g.len()];
    let mut scratch = stowage_graph::Scratch::new(g.len());
    for &(t, m) in &dated {
        if age.get(m as usize).copied().flatten().is_some() {
            continue; // reached from a younger image: so is all it references
        }
        g.for_each_descendant(m, &mut scratch, |b| {
            if let Some(a @ None) = age.get_mut(b as usize) {
                *a = Some(t);
            }
        });
    }
    for (i, b) in inv.blobs.iter().enumerate() {
        if !referenced.get(i).copied().unwrap_or(false) {
            continue;
        }
        let k = age[i].map_or(unknown_ix, |t| bucket_of(now, t));
        buckets[k].blobs += 1;
        buckets[k].bytes += b.size;
    }
    for m in &inv.manifests {
        if g.revision_repos(m.id).is_empty() {
            continue;
        }
        let k = builds
            .date(m.id)
            .at()
            .map_or(unknown_ix, |t| bucket_of(now, t));
        buckets[k].images += 1;
    }
    let unknown = builds
        .unknown_counts()
        .into_iter()
        .map(|(u, n)| UnknownCount {
            reason: u.as_str().into(),
            description: u.describe().into(),
            images: n,
        })
        .collect();
    ImageAges {
        date_used: "image build date: the config's created (else its newest dated build step), read from the image, so a copy of the storage does not change it".into(),
        buckets,
        unknown,
    }
}

/// Fill the tables' dates (pushed, built) and the image-age chart. `builds` is `None` when
/// the build dates were not read: the rows then carry no build date and there is no chart.
pub fn enrich(ov: &mut Overview, g: &Graph<'_>, referenced: &[bool], builds: Option<&BuildDates>) {
    let inv = g.inv;
    fill_tag_rows(&mut ov.tags, g, builds);
    fill_tag_rows(&mut ov.top_tags, g, builds);
    let repo_ix = repo_index(g);
    let build = |id: BlobId| builds.map(|b| b.date(id));
    for row in ov.top_repositories.iter_mut().chain(&mut ov.repositories) {
        let Some(&ri) = repo_ix.get(row.repository.as_str()) else {
            continue;
        };
        let r = &inv.repositories[ri];
        row.last_pushed = r.revisions.iter().map(|l| l.modified()).max();
        row.newest_build = r
            .revisions
            .iter()
            .filter_map(|l| build(l.target())?.at())
            .max();
    }
    if let Some(b) = builds {
        ov.image_ages = Some(image_ages(g, b, referenced, ov.generated_at));
    }
}

/// Set tag rows' push and build dates (`builds`: `None` when they were not read).
pub fn fill_tag_rows(rows: &mut [TagRow], g: &Graph<'_>, builds: Option<&BuildDates>) {
    let inv = g.inv;
    let repo_ix = repo_index(g);
    let pushed = |ri: usize, id: BlobId| {
        let r = &inv.repositories[ri];
        r.revisions
            .binary_search_by_key(&id, |l| l.target())
            .ok()
            .map(|i| r.revisions[i].modified())
    };
    let build = |id: BlobId| builds.map(|b| b.date(id));
    for row in rows.iter_mut() {
        let Some((ri, target)) = tag_target(g, &repo_ix, &row.repository, &row.tag) else {
            continue;
        };
        row.pushed = pushed(ri, target);
        match build(target) {
            Some(BuildDate::Known { at, .. }) => row.built = Some(at),
            Some(BuildDate::Unknown(u)) => row.build_unknown = Some(u.as_str().into()),
            None => {}
        }
    }
}

fn repo_index<'g>(g: &Graph<'g>) -> HashMap<&'g str, usize> {
    g.inv
        .repositories
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect()
}

/// The repository index and the manifest a tag row's tag points at.
fn tag_target(
    g: &Graph<'_>,
    repo_ix: &HashMap<&str, usize>,
    repository: &str,
    tag: &str,
) -> Option<(usize, BlobId)> {
    let ri = *repo_ix.get(repository)?;
    let r = &g.inv.repositories[ri];
    let ti = r.tags.binary_search_by(|t| t.name.as_str().cmp(tag)).ok()?;
    Some((ri, r.tags[ti].current.and_then(|c| c.target)?))
}

/// Set each row's last pull from pull data: per (repository, manifest digest) the last pull.
pub fn set_last_pulled(
    ov: &mut Overview,
    g: &Graph<'_>,
    last: &HashMap<(String, String), Timestamp>,
) {
    set_tag_rows_last_pulled(&mut ov.tags, g, last);
    set_tag_rows_last_pulled(&mut ov.top_tags, g, last);
    let mut by_repo: HashMap<&str, Timestamp> = HashMap::new();
    for ((r, _), &t) in last {
        let e = by_repo.entry(r.as_str()).or_insert(t);
        *e = (*e).max(t);
    }
    for row in ov.top_repositories.iter_mut().chain(&mut ov.repositories) {
        row.last_pulled = by_repo.get(row.repository.as_str()).copied();
    }
}

/// [`set_last_pulled`] for a list of tag rows.
pub fn set_tag_rows_last_pulled(
    rows: &mut [TagRow],
    g: &Graph<'_>,
    last: &HashMap<(String, String), Timestamp>,
) {
    let repo_ix = repo_index(g);
    for row in rows.iter_mut() {
        if let Some((_, target)) = tag_target(g, &repo_ix, &row.repository, &row.tag) {
            let key = (row.repository.clone(), g.inv.digest(target).to_string());
            row.last_pulled = last.get(&key).copied();
        }
    }
}

/// Set each tag record's build date (`rows` are [`crate::tag_records`] of repository `ri`).
pub fn fill_tag_records(
    rows: &mut [crate::TagRecord],
    g: &Graph<'_>,
    ri: usize,
    builds: &BuildDates,
) {
    let r = &g.inv.repositories[ri];
    for row in rows {
        let Ok(ti) = r.tags.binary_search_by(|t| t.name.as_str().cmp(&row.tag)) else {
            continue;
        };
        let Some(target) = r.tags[ti].current.and_then(|c| c.target) else {
            continue;
        };
        match builds.date(target) {
            BuildDate::Known { at, .. } => row.built = Some(at),
            BuildDate::Unknown(u) => row.build_unknown = Some(u.as_str()),
        }
    }
}
