//! Phase 3: manifests. Each manifest a revision or a tag names is read once (at most
//! [`MANIFEST_LIMIT`] bytes, the registry's own limit) and parsed into compact references.
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
    BlobId, ManifestExtra, ManifestRecord, ManifestStatus, Ref, RefRole, Span,
};
use stowage_model::manifest::{self, Descriptor, ManifestKind, Platform};
use stowage_storage::ErrorKind;

use crate::{Ctx, MANIFEST_LIMIT, ManifestChunk, lock};

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
        let bytes = match self.storage.read(&path, MANIFEST_LIMIT) {
            Ok(b) => b,
            Err(e) => {
                rec.status = ManifestStatus::Unreadable;
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

    /// Compare a descriptor's size with the blob it names, when that blob is in the table
    /// and its size is known.
    fn check_size(&self, id: BlobId, d: &Descriptor) {
        let (Some(claimed), Some(b)) = (d.size, self.table.get(id as usize)) else {
            return;
        };
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
                b.size
            ),
        );
    }
}
