//! How the scanner reads the storage: a directory's listing into owned entries (names that
//! are not UTF-8 and symbolic links become findings), and stats, answered by a subtree's
//! snapshot where one covers the path (object stores: one listing gave every size and
//! date) and by the storage otherwise, one at a time or in a batch below one directory.

use super::*;

impl Ctx<'_> {
    /// List a directory into owned entries; non-UTF-8 names and symlinks become findings and
    /// are left out. `Err` only when the directory itself could not be listed.
    pub(crate) fn list(&self, path: &str) -> Result<Vec<Ent>, StorageError> {
        self.list_keeping(path, false)
    }

    /// [`Ctx::list`], where `keep_symlinks` also returns symbolic links (reported all the
    /// same), for a caller that must know what they stand for.
    pub(crate) fn list_keeping(
        &self,
        path: &str,
        keep_symlinks: bool,
    ) -> Result<Vec<Ent>, StorageError> {
        let mut out = Vec::new();
        let mut bad: Vec<(FindingKind, String, String)> = Vec::new();
        self.storage
            .list_dir(path, &mut |e| match std::str::from_utf8(e.name) {
                Ok(n) if e.kind == EntryKind::Symlink => {
                    bad.push((
                        FindingKind::Symlink,
                        format!("{path}/{n}"),
                        "symbolic link inside the storage; not followed".into(),
                    ));
                    if keep_symlinks {
                        out.push(Ent {
                            name: n.to_owned(),
                            kind: e.kind,
                        });
                    }
                }
                Ok(n) => out.push(Ent {
                    name: n.to_owned(),
                    kind: e.kind,
                }),
                Err(_) => bad.push((
                    FindingKind::NonUtf8Name,
                    format!("{path}/{}", String::from_utf8_lossy(e.name)),
                    format!(
                        "name is not UTF-8 (bytes {}); skipped",
                        layout::show_bytes(e.name, 64)
                    ),
                )),
            })?;
        self.progress
            .paths
            .fetch_add((out.len() + bad.len()) as u64, Ordering::Relaxed);
        for (k, p, m) in bad {
            // The registry follows symbolic links and may read what we skip: what lies behind
            // them is unknown to us, so no plan may delete on the strength of this scan.
            self.unseen(&p);
            self.finding(
                k,
                &p,
                format!("{m}; blob deletion is blocked while it is there"),
            );
        }
        Ok(out)
    }

    /// On backends that prefer it (object stores), list the whole subtree at `path` in one
    /// go; `None` on the others, which walk it directory by directory.
    pub(crate) fn take_snapshot(&self, path: &str) -> Result<Option<Arc<Snapshot>>, StorageError> {
        if !self.storage.prefers_tree_listing() {
            return Ok(None);
        }
        Snapshot::take(self.storage, path).map(|s| Some(Arc::new(s)))
    }

    /// [`Ctx::list`], answered by the snapshot when it covers `path`.
    pub(crate) fn list_in(
        &self,
        snap: Option<&Snapshot>,
        path: &str,
    ) -> Result<Vec<Ent>, StorageError> {
        match snap {
            Some(sn) if sn.covers(path) => {
                let out: Vec<Ent> = sn
                    .list(path)?
                    .map(|(n, kind)| Ent {
                        name: n.to_owned(),
                        kind,
                    })
                    .collect();
                self.progress
                    .paths
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                Ok(out)
            }
            _ => self.list(path),
        }
    }

    /// `Storage::stat`, answered by the snapshot when it covers `path`.
    pub(crate) fn stat_in(
        &self,
        snap: Option<&Snapshot>,
        path: &str,
    ) -> Result<Meta, StorageError> {
        match snap {
            Some(sn) if sn.covers(path) => sn.stat(path),
            _ => self.storage.stat(path),
        }
    }

    /// [`Ctx::stat_in`] of each `rels[i]` below `dir`, in order: one batch for the storage
    /// ([`stowage_storage::Storage::stat_below`]: on a filesystem one directory open and a
    /// short relative lookup each, instead of a walk of the whole path per file).
    pub(crate) fn stat_below_in(
        &self,
        snap: Option<&Snapshot>,
        dir: &str,
        rels: &[&str],
    ) -> Vec<Result<Meta, StorageError>> {
        match snap {
            Some(sn) if sn.covers(dir) => rels
                .iter()
                .map(|r| sn.stat(&stowage_storage::join(dir, r)))
                .collect(),
            _ => {
                let mut out = Vec::with_capacity(rels.len());
                self.storage.stat_below(dir, rels, &mut |_, r| out.push(r));
                out
            }
        }
    }
}
