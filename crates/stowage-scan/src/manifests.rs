//! Phase 3: manifests. Each manifest a revision or a tag names is read once (at most
//! [`MANIFEST_LIMIT`](crate::MANIFEST_LIMIT) bytes, the registry's own limit) and parsed into compact references.
//!
//! Every descriptor's size is compared here with the size of the blob it names, known since
//! phase 1: a referenced blob truncated, emptied or replaced is a `blob_size_mismatch`
//! finding without hashing anything (issue 25, item 6). Nothing is kept for it: the check
//! happens while the manifest is parsed, so the scan's memory per blob does not change.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use stowage_layout as layout;
use stowage_model::finding::FindingKind;
use stowage_model::inventory::{
    BlobId, ManifestExtra, ManifestRecord, ManifestStatus, Ref, RefRole, Repository, Span,
};
use stowage_model::manifest::{self, Descriptor, ManifestKind, Platform};
use stowage_storage::ErrorKind;

use crate::{Ctx, IoPool, ManifestChunk, ScanError, lock};

/// Manifests read per batch at least ([`Ctx::read_manifests`]): about 0.7 MB of chunks.
const MANIFEST_BATCH: usize = 8192;

/// Phase 3's result: records, references and details.
pub(crate) type ReadManifests = (Vec<ManifestRecord>, Vec<Ref>, Vec<ManifestExtra>);

impl Ctx<'_> {
    pub(crate) fn intern_platform(&self, p: Platform) -> Arc<Platform> {
        let mut set = lock(&self.platforms);
        if let Some(known) = set.get(&p) {
            return known.clone();
        }
        let p = Arc::new(p);
        set.insert(p.clone());
        p
    }

    pub(crate) fn intern_media_type(&self, t: Option<String>) -> Option<Arc<str>> {
        let t = t?;
        let mut set = lock(&self.media_types);
        if let Some(known) = set.get(t.as_str()) {
            return Some(known.clone());
        }
        let t: Arc<str> = t.into();
        set.insert(t.clone());
        Some(t)
    }

    /// Read and parse one manifest into `out` (its record, references and details).
    pub(crate) fn read_manifest(&self, id: BlobId, out: &mut ManifestChunk) {
        let h = self.table[id as usize].digest;
        let path = layout::blob_data(&h);
        let mut rec = ManifestRecord::new(id, ManifestStatus::Parsed, None);
        self.progress.manifests.fetch_add(1, Ordering::Relaxed);
        if lock(&self.linked_blobs).binary_search(&h).is_ok() {
            // Its directory is a symbolic link: reading `data` would follow it.
            rec.status = ManifestStatus::Unreadable;
            self.finding(
                FindingKind::ManifestUnreadable,
                &path,
                "its blob directory is a symbolic link (not followed); kept with everything its repository links",
            );
            out.records.push(rec);
            return;
        }
        let bytes = match self.manifest_bytes(id, &path) {
            Ok(b) => b,
            Err(e) => {
                rec.status = ManifestStatus::Unreadable;
                if !self.table[id as usize].is_stated()
                    && !matches!(e.kind, ErrorKind::TooLarge { .. } | ErrorKind::NotFound)
                {
                    // Not stat-ed (`stat_candidates_only`): the stat a full scan makes would
                    // have failed the same way, and made the path unseen (no blob deleted).
                    self.unseen(&path);
                }
                // A device or FIFO is refused by type, not read until the limit: the message
                // says what it is (issue 25 item 11: a character device was "larger than 4 MiB").
                let msg = match e.kind {
                    ErrorKind::TooLarge { .. } => {
                        "manifest larger than the registry's 4 MiB limit; not read, kept with everything its repository links".to_string()
                    }
                    _ => format!("{e}; kept with everything its repository links"),
                };
                self.finding(FindingKind::ManifestUnreadable, &path, msg);
                out.records.push(rec);
                return;
            }
        };
        match manifest::parse(&bytes) {
            Ok(m) => {
                let refs = &mut out.refs;
                let first = refs.len();
                let mut push = |d: &Descriptor, role: RefRole| {
                    let id = self.intern(&d.digest);
                    self.check_size(id, d);
                    if !refs[first..].iter().any(|r| r.id() == id) {
                        refs.push(Ref::new(id, role));
                    }
                };
                if let Some(c) = &m.config {
                    push(c, RefRole::Config);
                }
                for l in &m.layers {
                    let role = if l.external {
                        RefRole::External
                    } else {
                        RefRole::Layer
                    };
                    push(l, role);
                }
                for c in &m.children {
                    push(&c.descriptor, RefRole::Child);
                }
                for b in &m.blobs {
                    push(b, RefRole::ArtifactBlob);
                }
                rec.refs = Span {
                    start: first as u32,
                    len: (refs.len() - first) as u32,
                };
                rec.set_subject(m.subject.as_ref().map(|s| self.intern(&s.digest)));
                rec.kind = Some(m.kind);
                if m.kind == ManifestKind::Unknown {
                    self.finding(
                        FindingKind::ManifestUnknownMediaType,
                        &path,
                        format!(
                            "media type {:?} is not one the registry knows; kept with everything its repository links",
                            m.media_type.as_deref().unwrap_or("")
                        ),
                    );
                }
                if m.kind.is_index() || m.artifact_type.is_some() || m.kind == ManifestKind::Unknown
                {
                    // Collected into a new vector: collected in place, it would keep the
                    // children's (far larger) allocation for the whole run.
                    let mut platforms = Vec::with_capacity(m.children.len());
                    platforms.extend(
                        m.children
                            .into_iter()
                            .map(|c| c.platform.map(|p| self.intern_platform(p))),
                    );
                    rec.set_extra_index(Some(out.extras.len()));
                    out.extras.push(ManifestExtra {
                        media_type: self.intern_media_type(m.media_type),
                        artifact_type: self.intern_media_type(m.artifact_type),
                        platforms,
                    });
                }
            }
            Err(e) => {
                rec.status = ManifestStatus::Unparseable;
                self.finding(
                    FindingKind::ManifestUnparseable,
                    &path,
                    format!("{e}; kept with everything its repository links"),
                );
            }
        }
        out.records.push(rec);
    }

    /// Phase 3: read every manifest a revision or a tag names, then index children not yet
    /// read, round after round. Returns the records, references and details, laid out in id
    /// order batch by batch (see below), references still in temporary ids.
    pub(crate) fn read_manifests(
        &self,
        repositories: &[Repository],
    ) -> Result<ReadManifests, ScanError> {
        let present = self.table.len();
        let mut wanted: Vec<BlobId> = repositories
            .iter()
            .flat_map(|r| {
                r.revisions.iter().map(|l| l.target()).chain(
                    r.tags
                        .iter()
                        .filter_map(|t| t.current.and_then(|c| c.target)),
                )
            })
            .filter(|&id| (id as usize) < present)
            .collect();
        // A bit per present blob: read already (a hash set of ids cost 20 times more).
        let mut seen = vec![0u64; present.div_ceil(64)];
        let mut read: Vec<ManifestRecord> = Vec::new();
        let mut read_refs: Vec<Ref> = Vec::new();
        let mut read_extras: Vec<ManifestExtra> = Vec::new();
        let pool = IoPool::new(self.opts.concurrency)?;
        loop {
            wanted.sort_unstable();
            wanted.dedup();
            wanted.retain(|&id| {
                let (w, bit) = (id as usize / 64, 1u64 << (id % 64));
                let new = seen[w] & bit == 0;
                seen[w] |= bit;
                new
            });
            if wanted.is_empty() {
                break;
            }
            let first = read.len();
            // In batches: a batch's chunks and the lists they are merged into are held at
            // once, and with the whole round in one batch that was the scan's peak (at 1M
            // objects 8.5 MB of chunks beside 7 MB of lists). Each batch ends when its
            // slowest read does: with many reads in flight per batch, a few waits per scan.
            // At most one record per id: the records' list grows once per round.
            read.reserve_exact(wanted.len());
            let batch = MANIFEST_BATCH.max(64 * self.opts.concurrency);
            for ids in wanted.chunks(batch) {
                self.read_batch(&pool, ids, (&mut read, &mut read_refs, &mut read_extras));
            }
            wanted = read[first..]
                .iter()
                .flat_map(|m| read_refs[m.refs.range()].iter())
                .filter(|r| r.role() == RefRole::Child)
                .map(|r| r.id())
                .filter(|&id| {
                    (id as usize) < present && seen[id as usize / 64] >> (id % 64) & 1 == 0
                })
                .collect();
        }
        pool.finish();
        drop((seen, wanted));
        Ok((read, read_refs, read_extras))
    }

    /// Read the manifests `ids` and append what they hold to `out` (records, references,
    /// details), in the order of `ids`.
    fn read_batch(
        &self,
        pool: &IoPool,
        ids: &[BlobId],
        (read, read_refs, read_extras): (
            &mut Vec<ManifestRecord>,
            &mut Vec<Ref>,
            &mut Vec<ManifestExtra>,
        ),
    ) {
        // Each worker appends to its own growing lists (records, references, details)
        // instead of allocating small lists per manifest in the middle of that manifest's
        // read and parse buffers: with the system allocator, small long-lived allocations
        // pinned the pages of the freed buffers (at 100k blobs, 18 MB of resident memory
        // for 2 MB of references). The lists are merged here, one after another.
        let chunks: Vec<ManifestChunk> = pool.pool.install(|| {
            use rayon::prelude::*;
            ids.par_iter()
                .fold(ManifestChunk::default, |mut c, &id| {
                    self.read_manifest(id, &mut c);
                    c
                })
                .collect()
        });
        read.reserve_exact(chunks.iter().map(|c| c.records.len()).sum());
        read_refs.reserve_exact(chunks.iter().map(|c| c.refs.len()).sum());
        // Chunks come in the order of `ids` (rayon's collect keeps it), so references and
        // details are laid out batch by batch in id order whatever the split: the inventory
        // does not depend on concurrency.
        for c in &chunks {
            let (ref_base, extra_base) = (read_refs.len() as u32, read_extras.len());
            read_refs.extend_from_slice(&c.refs);
            // Copied: platform lists are small allocations of the workers (see `assemble`).
            read_extras.extend(c.extras.iter().cloned());
            for m in &c.records {
                let mut m = m.clone();
                m.refs.start += ref_base;
                m.set_extra_index(m.extra_index().map(|i| i + extra_base));
                read.push(m);
            }
        }
        crate::free_apart(chunks);
    }

    /// Compare a descriptor's size with the blob it names, when that blob is in the table
    /// and its size is known.
    fn check_size(&self, id: BlobId, d: &Descriptor) {
        let (Some(claimed), Some(b)) = (d.size, self.table.get(id as usize)) else {
            return;
        };
        if !b.is_stated() {
            // Listed, not stat-ed (`stat_candidates_only`): its size is not known.
            return;
        }
        if u64::try_from(claimed).is_ok_and(|c| c == b.size)
            || lock(&self.odd_blobs).binary_search(&b.digest).is_ok()
        {
            return;
        }
        // The message names no manifest: a shared base layer truncated would otherwise give
        // one finding per image; the same sizes give one finding.
        self.finding(
            FindingKind::BlobSizeMismatch,
            &layout::blob_data(&b.digest),
            format!(
                "{} bytes on disk, but a manifest's descriptor says {claimed}: truncated or replaced; pulls of it fail",
                { b.size }
            ),
        );
    }
}
