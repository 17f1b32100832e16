//! Phase 1: the blob store, `blobs/sha256/<hh>/<hex>/data`.
//!
//! Only the registry's exact layout makes a blob: the algorithm directory `sha256`, a fan-out
//! directory of exactly two lowercase hex digits, a directory of 64 lowercase hex digits
//! starting with those two, and in it a regular file `data`. Anything else under `blobs/` is
//! reported (`blob_misplaced`, `unexpected_file`) and is never a blob, nor a second copy of
//! one: a copy under `a38/` or `a/` counted as a blob of the same digest made the digest of a
//! tagged index look unreferenced, and `gc -m` planned it (issue 25, item 5). A misplaced
//! directory is also recorded as unseen, which blocks blob deletion: it may be a manifest
//! moved out of its place, whose references (kept in a plan otherwise) are then unknown.
//!
//! A `data` that exists but is not a regular file (a FIFO, socket, device or directory), or
//! cannot be stat-ed, keeps its digest in the blob table, with size 0 and no date, and is
//! listed in [`Ctx::odd_blobs`]: the registry's directory is there, so its revisions are not
//! dangling and a manifest stored there is read (and fails, so it is kept as opaque) rather
//! than taken for missing. The path is also recorded as unseen, so that no blob is planned
//! for deletion on the strength of such a scan. A blob directory that is a symbolic link is
//! kept the same way, and never read through (see `manifests.rs`).

use std::sync::atomic::Ordering;

use stowage_model::digest::Sha256;
use stowage_model::finding::FindingKind;
use stowage_model::inventory::BlobFile;
use stowage_model::time::{Secs, Timestamp};
use stowage_storage::{EntryKind, StorageError};

use crate::{Ctx, Shard, lock};

/// Is `name` a fan-out directory the registry writes: two lowercase hex digits?
fn is_shard_name(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

impl Ctx<'_> {
    pub(crate) fn scan_blobs<'s>(&'s self, s: &rayon::Scope<'s>) {
        let algs = match self.list("blobs") {
            Ok(e) => e,
            Err(e) => {
                self.unseen("blobs");
                return self.storage_finding(&e, "cannot list blobs/");
            }
        };
        for alg in algs {
            let path = format!("blobs/{}", alg.name);
            if alg.kind != EntryKind::Dir {
                self.unexpected_file(&path, "blobs/ holds only algorithm directories");
                continue;
            }
            if alg.name != "sha256" {
                // The registry canonicalises every blob to sha256 (spec §1.3).
                self.finding(
                    FindingKind::UnexpectedDirectory,
                    &path,
                    "blobs are only ever stored under sha256/; not scanned",
                );
                continue;
            }
            let shards = match self.list(&path) {
                Ok(e) => e,
                Err(e) => {
                    self.unseen(&path);
                    self.storage_finding(&e, "cannot list the blob store");
                    continue;
                }
            };
            // On an object store the fan-outs are listed flat in sixteen ranges (by their
            // first hex digit), each answering its sixteen shards: a fixed 256 requests
            // become one per thousand keys, at least sixteen, still in parallel.
            let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new(); 16];
            let grouped = self.storage.prefers_tree_listing();
            for shard in shards {
                let p = format!("{path}/{}", shard.name);
                if shard.kind != EntryKind::Dir {
                    self.unexpected_file(&p, "expected a two-hex-digit fan-out directory");
                    continue;
                }
                if !is_shard_name(&shard.name) {
                    // `a38/`, `a/`, `A3/`, a 64-digit name without fan-out: the registry
                    // never looks there, so nothing below is a blob. But what is below may be
                    // a blob moved out of its place (its manifest's references unknown), so
                    // no blob is deleted while it is there.
                    self.unseen(&p);
                    self.finding(
                        FindingKind::BlobMisplaced,
                        &p,
                        "not a fan-out directory (two lowercase hex digits); nothing below it is a blob",
                    );
                    continue;
                }
                match shard.name.as_bytes()[0] {
                    c @ b'0'..=b'9' if grouped => groups[(c - b'0') as usize].push((p, shard.name)),
                    c @ b'a'..=b'f' if grouped => {
                        groups[(c - b'a' + 10) as usize].push((p, shard.name))
                    }
                    _ => s.spawn(move |_| self.scan_shard(p, shard.name, None)),
                }
            }
            for (i, group) in groups.into_iter().enumerate() {
                if group.is_empty() {
                    continue;
                }
                let path = path.clone();
                s.spawn(move |s| self.scan_shard_group(s, path, i, group));
            }
        }
    }

    /// List the shards whose names start with hex digit `digit` in one flat range, then scan
    /// each over that listing.
    fn scan_shard_group<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        path: String,
        digit: usize,
        shards: Vec<(String, String)>,
    ) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let after = (HEX[digit] as char).to_string();
        let before = HEX.get(digit + 1).map(|&c| (c as char).to_string());
        match crate::Snapshot::take_range(self.storage, &path, Some(&after), before.as_deref()) {
            Ok(snap) => {
                let snap = std::sync::Arc::new(snap);
                for (p, name) in shards {
                    let snap = snap.clone();
                    s.spawn(move |_| self.scan_shard(p, name, Some(snap)));
                }
            }
            Err(e) => {
                for (p, _) in shards {
                    self.unseen(&p);
                    let here = StorageError {
                        kind: e.kind,
                        path: p,
                        source: e
                            .source
                            .as_ref()
                            .map(|s| std::io::Error::new(s.kind(), s.to_string())),
                    };
                    self.storage_finding(&here, "cannot list blob shard");
                }
            }
        }
    }

    fn scan_shard(
        &self,
        path: String,
        shard: String,
        listed: Option<std::sync::Arc<crate::Snapshot>>,
    ) {
        // Symbolic links kept: a blob directory that is one is reported, and its digest kept
        // as present but unknown (see the module's doc).
        let snap = match listed {
            Some(l) => Ok(Some(l)),
            None => self.take_snapshot(&path),
        };
        let entries = match snap.and_then(|snap| {
            let ents = match &snap {
                Some(sn) => self.list_in(Some(sn), &path)?,
                None => self.list_keeping(&path, true)?,
            };
            Ok((ents, snap))
        }) {
            Ok(e) => e,
            Err(e) => {
                // Manifests stored here would look missing, and what they reference unreferenced.
                self.unseen(&path);
                return self.storage_finding(&e, "cannot list blob shard");
            }
        };
        let (entries, snap) = entries;
        if entries.is_empty() {
            self.finding(
                FindingKind::EmptyDirectory,
                &path,
                "empty fan-out directory (left behind by GC)",
            );
            return;
        }
        let mut out = Vec::with_capacity(entries.len());
        // Blob directories whose `data` is stat-ed, in one batch below the shard.
        let mut blob_dirs: Vec<(Sha256, String)> = Vec::with_capacity(entries.len());
        for ent in entries {
            // Named only where something is reported (no allocation per blob).
            let dir = || format!("{path}/{}", ent.name);
            if ent.kind == EntryKind::Symlink {
                // Reported by the listing, and blob deletion is blocked; a manifest stored
                // behind it must not look missing (its revision would look dangling).
                if let Some(h) = Sha256::from_hex(ent.name.as_bytes())
                    && h.shard()[..] == *shard.as_bytes()
                {
                    out.push((BlobFile::new(h, 0, Timestamp::EPOCH), Secs::NONE));
                    lock(&self.odd_blobs).push(h);
                    lock(&self.linked_blobs).push(h);
                }
                continue;
            }
            if ent.kind != EntryKind::Dir {
                self.unexpected_file(&dir(), "expected a blob directory named by its digest");
                continue;
            }
            let Some(h) = Sha256::from_hex(ent.name.as_bytes()) else {
                self.unseen(&dir());
                self.finding(
                    FindingKind::BlobMisplaced,
                    &dir(),
                    "directory name is not a sha256 hex digest; not a blob",
                );
                continue;
            };
            if h.shard()[..] != *shard.as_bytes() {
                self.unseen(&dir());
                self.finding(
                    FindingKind::BlobMisplaced,
                    &dir(),
                    format!(
                        "blob {} sits under fan-out {shard}; the registry never finds it there",
                        h.short()
                    ),
                );
                continue;
            }
            if self.opts.verify_links {
                self.inspect_blob_dir(&dir(), snap.as_deref());
            }
            if self.opts.stat_candidates_only && snap.is_none() {
                self.progress.blobs.fetch_add(1, Ordering::Relaxed);
                out.push((BlobFile::unstated(h), Secs::NONE));
                continue;
            }
            blob_dirs.push((h, ent.name));
        }
        let rels: Vec<String> = blob_dirs.iter().map(|(_, n)| format!("{n}/data")).collect();
        let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
        let metas = self.stat_below_in(snap.as_deref(), &path, &rels);
        for ((h, name), meta) in blob_dirs.into_iter().zip(metas) {
            let dir = || format!("{path}/{name}");
            match meta {
                Ok(m) => {
                    self.progress.blobs.fetch_add(1, Ordering::Relaxed);
                    out.push((BlobFile::new(h, m.size, m.modified), Secs::from_opt(m.created)));
                }
                Err(e) if e.is_not_found() => self.finding(
                    FindingKind::BlobMissingData,
                    &dir(),
                    "blob directory without a data file (not a blob; an interrupted write or partial delete)",
                ),
                Err(e) => {
                    self.unseen(&format!("{}/data", dir()));
                    self.storage_finding(
                        &e,
                        "blob data that cannot be stat-ed as a regular file; blob deletion is blocked",
                    );
                    self.progress.blobs.fetch_add(1, Ordering::Relaxed);
                    out.push((BlobFile::new(h, 0, Timestamp::EPOCH), Secs::NONE));
                    lock(&self.odd_blobs).push(h);
                }
            }
        }
        out.sort_unstable_by_key(|b| b.0.digest);
        if !out.is_empty() {
            lock(&self.blobs).push(Shard::from(out));
        }
    }

    /// `check` only: list a blob directory and report anything but its `data` file (the
    /// default scan stats `data` and lists nothing per blob).
    fn inspect_blob_dir(&self, dir: &str, snap: Option<&crate::Snapshot>) {
        let Ok(entries) = self.list_in(snap, dir) else {
            return;
        };
        for e in entries {
            if e.name != "data" {
                self.finding(
                    FindingKind::BlobMisplaced,
                    &format!("{dir}/{}", e.name),
                    "not part of a blob directory (which holds only its data file)",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_shard_name;

    #[test]
    fn only_two_lowercase_hex_digits_make_a_fan_out() {
        for ok in ["00", "a3", "ff", "9c"] {
            assert!(is_shard_name(ok), "{ok}");
        }
        for bad in ["a", "a38", "A3", "g0", "", "0x", "a\u{301}"] {
            assert!(!is_shard_name(bad), "{bad}");
        }
    }
}
