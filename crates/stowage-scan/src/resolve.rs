//! Stat, after the fact, what a scan with [`ScanOptions::stat_candidates_only`] listed but
//! did not stat, for the blobs a plan names.
//!
//! Why: on a local disk a `gc` scan spends most of its system calls on `statx` of every
//! blob's `data` and every link file, for sizes and dates only a plan's candidates need
//! (issue 22, "the floor"). The scan lists those files and leaves them unstated (present,
//! content as the registry writes it, time the latest there is, so every grace period
//! holds them back); the plan is made; then this stats the blobs it names and the
//! `_layers` and tag history links that point at them, and the plan is made again, until
//! it names nothing unstated (`stowage_analysis::settle`).
//!
//! A `_layers` link found gone is what a blob DELETE through the registry's API leaves (its
//! directory without the link): dropped and reported, as the full scan does. Anything else a
//! stat finds that the listing did not promise (a blob's `data` gone, a link of another size
//! than the registry writes, a non-file, an error) is [`Unexpected`]: the caller then scans
//! again with every file stat-ed, which reports it as the full scan always does. Nothing is
//! assumed that a full scan would have decided otherwise.

use stowage_layout::{SHA256_LINK_LEN, blob_data, layer_link, tag_index_link};
use stowage_model::finding::{Finding, FindingKind};
use stowage_model::inventory::{BlobId, Inventory};
use stowage_storage::{Storage, StorageError};

use rayon::prelude::*;

/// What a deferred stat found that a listing-only scan could not know; the caller scans
/// again with every file stat-ed.
#[derive(Debug, thiserror::Error)]
#[error("{why}; scanning again with every file stat-ed")]
pub struct Unexpected {
    pub path: String,
    /// What was found, naming the path.
    pub why: String,
}

impl Unexpected {
    fn of(e: &StorageError) -> Unexpected {
        Unexpected {
            path: e.path.clone(),
            why: e.to_string(),
        }
    }
}

/// What [`resolve`] did to the inventory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Files stat-ed: sizes and dates filled in, nothing else changed.
    pub stated: usize,
    /// `_layers` links found gone and removed from the inventory (its structure changed:
    /// what was built on it must be built again).
    pub dropped: usize,
}

/// One deferred stat: a blob's `data`, or a link (repository index, family, position).
enum Target {
    Blob(usize),
    Layer(usize, usize),
    History(usize, usize),
}

/// Stat the unstated blobs among `named` (ids of `inv`) and the unstated `_layers` and tag
/// history links pointing at any of `named`, on `concurrency` threads, and fill in what
/// they found. Returns how many were stat-ed and how many links were found gone (both 0:
/// nothing named is unstated).
pub fn resolve(
    storage: &dyn Storage,
    inv: &mut Inventory,
    named: &[BlobId],
    concurrency: usize,
) -> Result<Resolved, Unexpected> {
    let mut is_named = vec![false; inv.id_count()];
    for &id in named {
        if let Some(n) = is_named.get_mut(id as usize) {
            *n = true;
        }
    }
    let mut todo: Vec<(Target, String)> = Vec::new();
    for (i, b) in inv.blobs.iter().enumerate() {
        if is_named[i] && !b.is_stated() {
            todo.push((Target::Blob(i), blob_data(&b.digest)));
        }
    }
    // A link's target is the digest its path names (`inv.digest` gives it back).
    for (ri, r) in inv.repositories.iter().enumerate() {
        let name = r.name.as_str();
        for (li, l) in r.layers.iter().enumerate() {
            if !l.is_stated() && is_named[l.target() as usize] {
                let path = layer_link(name, &inv.digest(l.target()));
                todo.push((Target::Layer(ri, li), path));
            }
        }
        for t in &r.tags {
            for li in t.index.range() {
                let l = &r.tag_links[li];
                if !l.is_stated() && is_named[l.target() as usize] {
                    let path = tag_index_link(name, &t.name, &inv.digest(l.target()));
                    todo.push((Target::History(ri, li), path));
                }
            }
        }
    }
    if todo.is_empty() {
        return Ok(Resolved::default());
    }
    let stat = || {
        todo.par_iter()
            .map(|(_, path)| storage.stat(path))
            .collect::<Vec<_>>()
    };
    let metas = match rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()
    {
        Ok(pool) => pool.install(stat),
        Err(_) => todo.iter().map(|(_, p)| storage.stat(p)).collect(),
    };
    // `_layers` links found gone: what a blob DELETE leaves (the directory without its
    // link), which the full scan reports and does not count as a link.
    let mut gone: Vec<(usize, usize)> = Vec::new();
    for ((target, path), meta) in todo.iter().zip(metas) {
        let m = match (meta, target) {
            (Err(e), Target::Layer(ri, li)) if e.is_not_found() => {
                gone.push((*ri, *li));
                let dir = path.strip_suffix("/link").unwrap_or(path);
                inv.findings.push(Finding::new(
                    FindingKind::EmptyDirectory,
                    dir,
                    "_layers directory without a link (left behind by a blob DELETE)",
                ));
                continue;
            }
            (meta, _) => meta.map_err(|e| Unexpected::of(&e))?,
        };
        match *target {
            Target::Blob(i) => {
                inv.blobs[i].stat(m.size, m.modified);
                inv.set_created(i as BlobId, m.created);
            }
            Target::Layer(ri, li) | Target::History(ri, li) => {
                if m.size != SHA256_LINK_LEN {
                    return Err(Unexpected {
                        path: path.clone(),
                        why: format!(
                            "{path}: a link of {} bytes (the registry writes {SHA256_LINK_LEN})",
                            m.size
                        ),
                    });
                }
                let r = &mut inv.repositories[ri];
                match target {
                    Target::Layer(..) => r.layers[li].stat(m.modified),
                    _ => r.tag_links[li].stat(m.modified),
                }
            }
        }
    }
    // Highest index first, so the others stay where they are.
    gone.sort_unstable_by(|a, b| b.cmp(a));
    for (ri, li) in &gone {
        inv.repositories[*ri].layers.remove(*li);
    }
    if !gone.is_empty() {
        inv.findings.sort();
        inv.findings.dedup();
    }
    Ok(Resolved {
        stated: todo.len() - gone.len(),
        dropped: gone.len(),
    })
}
