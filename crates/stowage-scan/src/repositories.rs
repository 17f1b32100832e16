//! Phase 2 of the scan: the walk of `repositories/`. A directory with `_manifests`,
//! `_layers` or `_uploads` is a repository; each section (`_layers`, revisions, tags,
//! uploads) and each tag is its own task on the I/O pool, producing fragments that
//! `assemble` puts together. Link files whose path names their digest are only stat-ed unless
//! their size is odd or `verify_links` is on; tag `current` links are read.

use super::*;

impl<'a> Ctx<'a> {
    /// Walk `repositories/<prefix>`: find repositories (directories with registry metadata
    /// children) and recurse into namespace components.
    pub(crate) fn walk_namespace<'s>(&'s self, s: &rayon::Scope<'s>, prefix: String) {
        let path = if prefix.is_empty() {
            "repositories".to_string()
        } else {
            format!("repositories/{prefix}")
        };
        let entries = match self.list(&path) {
            Ok(e) => e,
            Err(e) => {
                // We cannot know which repositories live below: every repository whose name
                // starts here is unknown. Plans refuse to delete blobs on such a scan.
                self.unlisted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(path);
                return self.storage_finding(
                    &e,
                    "cannot list repository namespace; repositories below it are unknown",
                );
            }
        };
        if entries.is_empty() {
            if !prefix.is_empty() {
                self.finding(
                    FindingKind::EmptyDirectory,
                    &path,
                    "empty repository directory",
                );
            }
            return;
        }
        let has = |n: &str| {
            entries
                .iter()
                .any(|e| e.name == n && e.kind == EntryKind::Dir)
        };
        let (m, l, u) = (has("_manifests"), has("_layers"), has("_uploads"));
        if !prefix.is_empty() && (m || l || u) {
            let name = match RepositoryName::parse_lenient(&prefix) {
                Ok(n) => {
                    if !n.is_strict() {
                        self.finding(
                            FindingKind::InvalidName,
                            &path,
                            "repository name outside the registry's strict grammar (lowercase, separators . _ __ -)",
                        );
                    }
                    n
                }
                Err(e) => {
                    self.finding(
                        FindingKind::InvalidName,
                        &path,
                        format!("repository name {prefix:?}: {e}; scanned anyway"),
                    );
                    RepositoryName::from_storage_unchecked(&prefix)
                }
            };
            self.progress.repositories.fetch_add(1, Ordering::Relaxed);
            self.scan_repository(s, name, m, l, u);
        }
        for ent in entries {
            let child = format!("{path}/{}", ent.name);
            if ent.name.starts_with('_') {
                if ent.kind != EntryKind::Dir {
                    self.unexpected_file(&child, "files do not belong in a repository directory");
                } else if !matches!(ent.name.as_str(), "_manifests" | "_layers" | "_uploads")
                    || prefix.is_empty()
                {
                    self.finding(
                        FindingKind::ForeignMetadata,
                        &child,
                        "'_' directory the registry does not use; skipped",
                    );
                }
                continue;
            }
            match ent.kind {
                EntryKind::Dir => {
                    let next = if prefix.is_empty() {
                        ent.name
                    } else {
                        format!("{prefix}/{}", ent.name)
                    };
                    s.spawn(move |s| self.walk_namespace(s, next));
                }
                _ => {
                    self.unexpected_file(&child, "files do not belong among repository directories")
                }
            }
        }
    }

    pub(crate) fn scan_repository<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        name: RepositoryName,
        m: bool,
        l: bool,
        u: bool,
    ) {
        let base = format!("repositories/{}", name.as_str());
        let repo = {
            let mut heads = lock(&self.heads);
            heads.push(RepoHead {
                name,
                has_manifests: m,
                has_layers: l,
                has_uploads: u,
                has_tags_dir: false,
            });
            (heads.len() - 1) as u32
        };
        if m {
            let mpath = format!("{base}/_manifests");
            let listed = self
                .take_snapshot(&mpath)
                .and_then(|snap| Ok((self.list_in(snap.as_deref(), &mpath)?, snap)));
            match listed {
                Ok((entries, snap)) => {
                    for e in entries {
                        let p = format!("{mpath}/{}", e.name);
                        match (e.name.as_str(), e.kind) {
                            ("revisions", EntryKind::Dir) => {
                                let snap = snap.clone();
                                s.spawn(move |_| self.scan_revisions(repo, p, snap));
                            }
                            ("tags", EntryKind::Dir) => {
                                if let Some(h) = lock(&self.heads).get_mut(repo as usize) {
                                    h.has_tags_dir = true;
                                }
                                let snap = snap.clone();
                                s.spawn(move |s| self.scan_tags(s, repo, p, snap));
                            }
                            (_, EntryKind::Dir) => self.finding(
                                FindingKind::ForeignMetadata,
                                &p,
                                "unknown directory in _manifests; skipped",
                            ),
                            _ => self.unexpected_file(&p, "files do not belong in _manifests"),
                        }
                    }
                }
                Err(e) => {
                    self.storage_finding(&e, "cannot list _manifests");
                    self.fragment(repo, Part::RevisionsUnlisted);
                }
            }
        }
        if l {
            let p = format!("{base}/_layers");
            s.spawn(move |_| self.scan_layers(repo, p));
        }
        if u {
            let p = format!("{base}/_uploads");
            s.spawn(move |_| self.scan_uploads(repo, p));
        }
    }

    pub(crate) fn scan_layers(&self, repo: u32, dir: String) {
        let snap = match self.take_snapshot(&dir) {
            Ok(s) => s,
            Err(e) => {
                self.storage_finding(&e, "cannot list links");
                return self.fragment(repo, Part::LayersUnlisted);
            }
        };
        let (links, aliases, complete) =
            self.scan_link_family(repo, &dir, LinkKind::Layer, None, snap.as_deref());
        if !complete {
            self.fragment(repo, Part::LayersUnlisted);
        }
        self.fragment(repo, Part::Layers { links, aliases });
    }

    pub(crate) fn scan_revisions(&self, repo: u32, dir: String, snap: Option<Arc<Snapshot>>) {
        let (links, _, complete) =
            self.scan_link_family(repo, &dir, LinkKind::Revision, None, snap.as_deref());
        if !complete {
            self.fragment(repo, Part::RevisionsUnlisted);
        }
        self.fragment(repo, Part::Revisions(links));
    }

    pub(crate) fn scan_tags<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        repo: u32,
        dir: String,
        snap: Option<Arc<Snapshot>>,
    ) {
        let tags = match self.list_in(snap.as_deref(), &dir) {
            Ok(t) => t,
            Err(e) => {
                self.storage_finding(&e, "cannot list tags");
                return self.incomplete(repo);
            }
        };
        for t in tags {
            let tdir = format!("{dir}/{}", t.name);
            if t.kind != EntryKind::Dir {
                self.unexpected_file(&tdir, "expected a tag directory");
                continue;
            }
            if !is_valid_tag(&t.name) {
                self.finding(
                    FindingKind::InvalidName,
                    &tdir,
                    "tag name outside [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
                );
            }
            let snap = snap.clone();
            s.spawn(move |_| self.scan_tag(repo, t.name, tdir, snap));
        }
    }

    pub(crate) fn scan_tag(
        &self,
        repo: u32,
        name: String,
        dir: String,
        snap: Option<Arc<Snapshot>>,
    ) {
        let snap = snap.as_deref();
        if self.opts.verify_links {
            // Interrupted rewrites of `current/link` (3.1+), whatever else is beside it or
            // beside `current/` itself.
            self.inspect_link_dir(&format!("{dir}/current"), LinkKind::TagCurrent, snap);
            self.inspect_tag_dir(&dir, snap);
        }
        let cpath = format!("{dir}/current/link");
        // A snapshot already says whether the link exists: no GET for a missing one.
        let read = match snap {
            // Its date from the listing, like every other date on this backend.
            Some(sn) if sn.covers(&cpath) => sn.stat(&cpath).and_then(|m| {
                self.tag_link_bytes(&cpath, m.etag.as_deref())
                    .map(|bytes| (bytes, m))
            }),
            _ => self.storage.read_with_meta(&cpath, MAX_LINK_LEN),
        };
        let current = match read {
            Ok((bytes, meta)) => match parse_link(&bytes) {
                Ok(d) => Some(CurrentLink {
                    target: Some(self.intern(&d)),
                    modified: meta.modified,
                }),
                Err(e) => {
                    let k = if matches!(e, LinkError::Empty) {
                        FindingKind::LinkEmpty
                    } else {
                        FindingKind::LinkInvalid
                    };
                    self.finding(k, &cpath, e.to_string());
                    Some(CurrentLink {
                        target: None,
                        modified: meta.modified,
                    })
                }
            },
            Err(e) if e.is_not_found() => {
                self.finding(
                    FindingKind::TagWithoutCurrent,
                    &dir,
                    "tag directory without current/link: listed by the API, resolves to nothing",
                );
                None
            }
            Err(e) if matches!(e.kind, ErrorKind::TooLarge { .. }) => {
                self.finding(
                    FindingKind::LinkOversized,
                    &cpath,
                    "larger than any digest; not read",
                );
                // Present but unreadable: the tag exists and names something unknown, which
                // makes the repository's tags unsure (all its revisions are kept).
                let modified = self
                    .stat_in(snap, &cpath)
                    .map(|m| m.modified)
                    .unwrap_or_default();
                Some(CurrentLink {
                    target: None,
                    modified,
                })
            }
            Err(e) => {
                self.storage_finding(&e, "cannot read tag");
                self.incomplete(repo);
                None
            }
        };
        // Skipped from a snapshot too: listing it would be free there, keeping it is not
        // (8 bytes a history entry, on a CI registry more than the tags themselves).
        let (index, _, complete) = if self.opts.skip_tag_history {
            (Vec::new(), Vec::new(), true)
        } else {
            self.scan_link_family(
                repo,
                &format!("{dir}/index"),
                LinkKind::TagIndex,
                Some(&name),
                snap,
            )
        };
        if !complete {
            self.incomplete(repo);
        }
        self.fragment(
            repo,
            Part::Tag(TagOut {
                name: name.into(),
                current,
                index,
            }),
        );
    }

    pub(crate) fn scan_uploads(&self, repo: u32, dir: String) {
        let listed = self
            .take_snapshot(&dir)
            .and_then(|snap| Ok((self.list_in(snap.as_deref(), &dir)?, snap)));
        let (entries, snap) = match listed {
            Ok(e) => e,
            Err(e) => return self.storage_finding(&e, "cannot list uploads"),
        };
        let mut uploads = Vec::new();
        for ent in entries {
            let udir = format!("{dir}/{}", ent.name);
            if ent.kind != EntryKind::Dir {
                self.unexpected_file(&udir, "expected an upload directory");
                continue;
            }
            if !layout::is_upload_id(&ent.name) {
                self.finding(
                    FindingKind::UnexpectedDirectory,
                    &udir,
                    "upload directory not named by a UUID; counted as an upload",
                );
            }
            uploads.push(self.scan_upload(ent.name, &udir, snap.as_deref()));
        }
        self.fragment(repo, Part::Uploads(uploads));
    }

    pub(crate) fn scan_upload(&self, id: String, dir: &str, snap: Option<&Snapshot>) -> Upload {
        let mut up = Upload {
            id,
            started_at: None,
            data_size: None,
            total_size: 0,
            modified: Timestamp::EPOCH,
        };
        let mut has_started = false;
        // Uploads are few; walk them whole so their bytes are exact.
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let entries = match self.list_in(snap, &d) {
                Ok(e) => e,
                Err(e) => {
                    self.storage_finding(&e, "cannot list upload");
                    continue;
                }
            };
            for e in entries {
                let p = format!("{d}/{}", e.name);
                match e.kind {
                    EntryKind::Dir => stack.push(p),
                    EntryKind::File => {
                        let top = d == dir;
                        if top && e.name == "startedat" {
                            has_started = true;
                            match self.storage.read_with_meta(&p, 64) {
                                Ok((b, m)) => {
                                    up.total_size += m.size;
                                    up.modified = up.modified.max(m.modified);
                                    match std::str::from_utf8(&b)
                                        .ok()
                                        .and_then(Timestamp::parse_rfc3339)
                                    {
                                        Some(t) => up.started_at = Some(t),
                                        None => self.finding(
                                            FindingKind::UploadBadStartedAt,
                                            &p,
                                            format!(
                                                "not an RFC 3339 time: {}",
                                                layout::show_bytes(&b, 40)
                                            ),
                                        ),
                                    }
                                }
                                Err(e) => self.storage_finding(&e, "cannot read startedat"),
                            }
                            continue;
                        }
                        match self.stat_in(snap, &p) {
                            Ok(m) => {
                                up.total_size += m.size;
                                up.modified = up.modified.max(m.modified);
                                if top && e.name == "data" {
                                    up.data_size = Some(m.size);
                                }
                            }
                            Err(e) => self.storage_finding(&e, "cannot stat upload file"),
                        }
                    }
                    _ => self.finding(FindingKind::UnexpectedFile, &p, "not a regular file"),
                }
            }
        }
        if !has_started {
            self.finding(
                FindingKind::UploadNoStartedAt,
                dir,
                "no startedat: the registry's upload purger never removes this upload",
            );
        }
        up
    }
}

/// What [`assemble`] sizes each repository's lists to, counted before anything is copied.
#[derive(Clone, Copy, Default)]
struct Counts {
    tags: usize,
    tag_links: usize,
    layers: usize,
    revisions: usize,
}

/// Fragments placed between two releases of freed memory in [`assemble`].
const ASSEMBLE_BATCH: usize = 16_384;

/// Build the repositories from what the walk's tasks produced.
///
/// Everything kept is *copied* (links, tags, names, uploads) into lists allocated here, each
/// once at its final size, and not kept where a worker made it: kept for the whole run, the
/// workers' vectors would pin the pages of the short-lived buffers around them. The
/// fragments are consumed as they are copied, and every [`ASSEMBLE_BATCH`] of them the
/// freed originals are given back (`release`, and the fragment list shrunk): holding every
/// fragment and every copy at once was the scan's peak (at 1M objects 17.6 MB of fragments
/// beside 8.8 MB of copies).
pub(crate) fn assemble(
    heads: &[RepoHead],
    mut fragments: Vec<Fragment>,
    odd: &[(u32, OddLink)],
    release: &dyn Fn(),
) -> Vec<Repository> {
    let mut repos: Vec<Repository> = heads
        .iter()
        .map(|h| {
            let mut r = Repository::new(h.name.clone());
            r.has_manifests = h.has_manifests;
            r.has_layers = h.has_layers;
            r.has_uploads = h.has_uploads;
            r.has_tags_dir = h.has_tags_dir;
            r
        })
        .collect();
    let mut counts = vec![Some(Counts::default()); repos.len()];
    for f in &fragments {
        let Some(Some(c)) = counts.get_mut(f.repo as usize) else {
            continue;
        };
        match &f.part {
            Part::Tag(t) => {
                c.tags += 1;
                c.tag_links += t.index.len();
            }
            Part::Layers { links, .. } => c.layers += links.len(),
            Part::Revisions(links) => c.revisions += links.len(),
            _ => {}
        }
    }
    // Taken from the end: in reverse, each repository's tags come in name order, so that
    // their histories sit in `tag_links` in the same order whatever order the tasks
    // finished in. The other parts are sorted once placed (links by target, uploads by id).
    fn tag_name(f: &Fragment) -> Option<&str> {
        match &f.part {
            Part::Tag(t) => Some(t.name.as_str()),
            _ => None,
        }
    }
    fragments.sort_unstable_by(|a, b| (b.repo, tag_name(b)).cmp(&(a.repo, tag_name(a))));
    let mut placed = Vec::with_capacity(ASSEMBLE_BATCH);
    while let Some(f) = fragments.pop() {
        if let (Some(r), Some(c)) = (
            repos.get_mut(f.repo as usize),
            counts.get_mut(f.repo as usize),
        ) {
            // Each repository's lists are allocated when its first fragment is placed, not
            // all at once before any fragment is freed: a list's allocation touches its
            // pages (the allocator's headers), so allocating them all first held every
            // copy's memory beside every fragment's, the very peak this avoids.
            if let Some(c) = c.take() {
                r.tags = Vec::with_capacity(c.tags);
                r.tag_links = Vec::with_capacity(c.tag_links);
                r.layers = Vec::with_capacity(c.layers);
                r.revisions = Vec::with_capacity(c.revisions);
            }
            place(r, &f.part);
        }
        placed.push(f.part);
        if placed.len() == ASSEMBLE_BATCH {
            crate::free_apart(std::mem::replace(
                &mut placed,
                Vec::with_capacity(ASSEMBLE_BATCH),
            ));
            fragments.shrink_to_fit();
            release();
        }
    }
    crate::free_apart((placed, fragments));
    for (ri, o) in odd {
        if let Some(r) = repos.get_mut(*ri as usize) {
            r.odd_links.push(o.clone());
        }
    }
    for r in &mut repos {
        // Ids are unique within a repository (directory names): an unstable sort is
        // deterministic and needs no buffer.
        r.uploads.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        r.odd_links.sort_unstable();
        r.aliases.sort_unstable();
    }
    repos.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    repos
}

/// Copy one fragment into its repository.
fn place(r: &mut Repository, part: &Part) {
    match part {
        Part::Tag(t) => {
            let start = r.tag_links.len() as u32;
            r.tag_links.extend_from_slice(&t.index);
            r.tags.push(Tag {
                name: compact_str::CompactString::from(t.name.as_str()),
                current: t.current,
                index: Span {
                    start,
                    len: t.index.len() as u32,
                },
            });
        }
        Part::Layers { links, aliases } => {
            r.layers.extend_from_slice(links);
            r.aliases.extend(aliases.iter().cloned());
        }
        Part::Revisions(links) => r.revisions.extend_from_slice(links),
        Part::Uploads(u) => r.uploads.extend(u.iter().cloned()),
        Part::Incomplete => r.complete = false,
        Part::RevisionsUnlisted => {
            r.complete = false;
            r.revisions_listed = false;
        }
        Part::LayersUnlisted => {
            r.complete = false;
            r.layers_listed = false;
        }
    }
}
