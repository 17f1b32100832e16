//! Range listings ([`Storage::list_tree_range`](stowage_storage::Storage::list_tree_range)):
//! a big subtree (the blob store's 256 fan-outs) listed as several key ranges at once, each
//! costing only its own pages.

use std::sync::Arc;

use object_store::list::{PaginatedListOptions, PaginatedListStore};
use stowage_storage::{EntryKind, StorageError, TreeEntry};

use crate::{ObjectStorage, err, to_meta};

impl ObjectStorage {
    /// [`Storage::list_tree_range`] on a paginated lister: the first request starts after
    /// `after` (S3 `StartAfter`, GCS `startOffset`), and paging stops at the first key at
    /// or past `before`. Keys outside the range are still filtered here, for a service that
    /// ignores the offset.
    pub(crate) fn range_pages(
        &self,
        lister: &Arc<dyn PaginatedListStore>,
        path: &str,
        after: Option<&str>,
        before: Option<&str>,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<bool, StorageError> {
        let full = self.full(path)?;
        let prefix = (!full.is_empty()).then(|| format!("{full}/"));
        let strip = prefix.as_ref().map_or(0, String::len);
        let mut token = None;
        let mut any = false;
        loop {
            let opts = PaginatedListOptions {
                offset: after.map(|a| format!("{}{a}", prefix.as_deref().unwrap_or(""))),
                page_token: token.take(),
                max_keys: self.page_size,
                ..Default::default()
            };
            let page = self
                .run(
                    &self.counters.lists,
                    lister.list_paginated(prefix.as_deref(), opts),
                )
                .map_err(|e| err(path, e))?;
            let mut past = false;
            for m in page.result.objects {
                let Some(rel) = m.location.as_ref().get(strip..) else {
                    continue;
                };
                any = true;
                if before.is_some_and(|b| rel >= b) {
                    past = true;
                    continue;
                }
                if rel.is_empty() || after.is_some_and(|a| rel <= a) {
                    continue;
                }
                visit(TreeEntry {
                    path: rel,
                    kind: EntryKind::File,
                    meta: Some(to_meta(&m)),
                });
            }
            match page.page_token {
                Some(t) if !t.is_empty() && !past => token = Some(t),
                _ => return Ok(any),
            }
        }
    }
}
