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

    /// One link file whose path names `path_digest`, from its stat (`stat`; read too when
    /// needed). `None` when there is no link file (a finding says why).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn link_at(
        &self,
        repo: u32,
        dir: &str,
        path_digest: Sha256,
        kind: LinkKind,
        tag: Option<&str>,
        stat: Result<Meta, StorageError>,
    ) -> Option<Link> {
        let file = format!("{dir}/link");
        let meta = match stat {
            Ok(m) => m,
            Err(e) if e.is_not_found() => {
                let why = match kind {
                    LinkKind::Revision => {
                        "revision directory without a link (left behind by a manifest DELETE)"
                    }
                    LinkKind::Layer => {
                        "_layers directory without a link (left behind by a blob DELETE)"
                    }
                    _ => "tag index directory without a link",
                };
                self.finding(FindingKind::EmptyDirectory, dir, why);
                return None;
            }
            Err(e) => {
                self.storage_finding(&e, "cannot stat link");
                self.link_unknown(repo, kind);
                return None;
            }
        };
        let target = self.intern_sha(path_digest);
        if meta.size == SHA256_LINK_LEN && !self.opts.verify_links {
            return Some(Link::new(target, LinkState::Assumed, meta.modified));
        }
        let state = self.read_link_checked(
            repo,
            &file,
            &Digest::Sha256(path_digest),
            meta.size,
            kind,
            tag,
        );
        state.map(|state| Link::new(target, state, meta.modified))
    }

    /// `check` only: list a `<alg>/<hex>/` directory and report whatever else is in it
    /// (interrupted atomic writes of registry 3.1+, schema 1 signature links, other tools'
    /// metadata). The default scan does not list these directories: one stat says enough.
    pub(crate) fn inspect_link_dir(&self, dir: &str, kind: LinkKind, snap: Option<&Snapshot>) {
        let Ok(entries) = self.list_in(snap, dir) else {
            return;
        };
        for e in entries {
            let p = format!("{dir}/{}", e.name);
            match (e.name.as_str(), e.kind) {
                ("link", EntryKind::File) => {}
                (n, EntryKind::File) if n.starts_with("link.") && n.ends_with(".tmp") => self.finding(
                    FindingKind::StaleTempFile,
                    &p,
                    "temporary file of an interrupted link write (registry 3.1+); safe to remove",
                ),
                ("signatures", EntryKind::Dir) if kind == LinkKind::Revision => self.finding(
                    FindingKind::LegacySignatures,
                    &p,
                    "schema 1 signature links from a registry up to 2.3; ignored by current registries",
                ),
                (n, EntryKind::Dir) if n.starts_with('_') => {
                    self.finding(FindingKind::ForeignMetadata, &p, "another tool's metadata; skipped")
                }
                _ => self.unexpected_file(&p, "not part of a link directory"),
            }
        }
    }

    /// Read a link's content and compare it with the digest its path names.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_link_checked(
        &self,
        repo: u32,
        file: &str,
        path_digest: &Digest,
        size: u64,
        kind: LinkKind,
        tag: Option<&str>,
    ) -> Option<LinkState> {
        if size > MAX_LINK_LEN {
            self.finding(
                FindingKind::LinkOversized,
                file,
                format!("{size} bytes; a link holds one digest (71 bytes for sha256)"),
            );
            self.odd_link(
                repo,
                OddLink {
                    kind,
                    tag: tag.map(str::to_owned),
                    path_digest: path_digest.clone(),
                    content: None,
                },
            );
            return Some(LinkState::Invalid);
        }
        let bytes = match self.storage.read(file, MAX_LINK_LEN) {
            Ok(b) => b,
            Err(e) => {
                self.storage_finding(&e, "cannot read link");
                self.link_unknown(repo, kind);
                return None;
            }
        };
        match parse_link(&bytes) {
            Ok(d) if &d == path_digest => Some(LinkState::Verified),
            Ok(d) => {
                self.finding(
                    FindingKind::LinkMismatch,
                    file,
                    format!("content {d} differs from the digest in its path ({path_digest}); the registry follows the content"),
                );
                self.odd_link(
                    repo,
                    OddLink {
                        kind,
                        tag: tag.map(str::to_owned),
                        path_digest: path_digest.clone(),
                        content: Some(d),
                    },
                );
                Some(LinkState::Differs)
            }
            Err(e) => {
                let k = if matches!(e, LinkError::Empty) {
                    FindingKind::LinkEmpty
                } else {
                    FindingKind::LinkInvalid
                };
                self.finding(k, file, e.to_string());
                self.odd_link(
                    repo,
                    OddLink {
                        kind,
                        tag: tag.map(str::to_owned),
                        path_digest: path_digest.clone(),
                        content: None,
                    },
                );
                Some(LinkState::Invalid)
            }
        }
    }

    /// `<dir>/<alg>/<hex>/link` families: `_layers`, `_manifests/revisions`, `tags/*/index`.
    /// Returns links, aliases, and whether everything could be listed (odd links go to the
    /// side list).
    #[allow(clippy::type_complexity)]
    pub(crate) fn scan_link_family(
        &self,
        repo: u32,
        dir: &str,
        kind: LinkKind,
        tag: Option<&str>,
        snap: Option<&Snapshot>,
    ) -> (Vec<Link>, Vec<(Digest, Option<Digest>)>, bool) {
        let mut links = Vec::new();
        let mut aliases = Vec::new();
        let algs = match self.list_in(snap, dir) {
            Ok(a) => a,
            Err(e) if e.is_not_found() && kind == LinkKind::TagIndex => {
                return (links, aliases, true);
            }
            Err(e) => {
                self.storage_finding(&e, "cannot list links");
                return (links, aliases, false);
            }
        };
        let mut complete = true;
        for alg in algs {
            let apath = format!("{dir}/{}", alg.name);
            if alg.kind != EntryKind::Dir {
                self.unexpected_file(&apath, "expected an algorithm directory");
                continue;
            }
            let hexes = match self.list_in(snap, &apath) {
                Ok(h) => h,
                Err(e) => {
                    self.storage_finding(&e, "cannot list links");
                    complete = false;
                    continue;
                }
            };
            // sha256 link directories whose `link` is stat-ed in one batch below `apath`.
            let mut linked: Vec<(Sha256, String)> = Vec::new();
            for hx in hexes {
                let hdir = format!("{apath}/{}", hx.name);
                if hx.kind != EntryKind::Dir {
                    self.unexpected_file(&hdir, "expected a directory named by a digest");
                    continue;
                }
                if alg.name == "sha256" {
                    match Sha256::from_hex(hx.name.as_bytes()) {
                        Some(h) => {
                            if self.opts.verify_links {
                                self.inspect_link_dir(&hdir, kind, snap);
                            }
                            linked.push((h, hx.name));
                        }
                        None => self.finding(
                            FindingKind::UnexpectedDirectory,
                            &hdir,
                            "not a sha256 digest; skipped",
                        ),
                    }
                    continue;
                }
                // Non-sha256: alias links (sha384/sha512 in _layers) or legacy tarsum dirs.
                match Digest::from_parts(&alg.name, &hx.name) {
                    Ok(d) if kind == LinkKind::Layer => {
                        let file = format!("{hdir}/link");
                        match self.storage.read(&file, MAX_LINK_LEN) {
                            Ok(b) => {
                                let content = parse_link(&b).ok();
                                self.finding(
                                    FindingKind::AliasLink,
                                    &file,
                                    match &content {
                                        Some(c) => format!("alias of {c}"),
                                        None => "alias link with unreadable content".into(),
                                    },
                                );
                                aliases.push((d, content));
                            }
                            Err(e) if e.is_not_found() => self.finding(
                                FindingKind::EmptyDirectory,
                                &hdir,
                                "alias directory without a link",
                            ),
                            Err(e) => {
                                // Its content is unknown: which blob it keeps is too.
                                self.storage_finding(&e, "cannot read alias link");
                                complete = false;
                            }
                        }
                    }
                    Ok(_) => self.finding(
                        FindingKind::UnexpectedDirectory,
                        &hdir,
                        "the registry stores manifests only under sha256; skipped",
                    ),
                    Err(_) => self.finding(
                        FindingKind::UnexpectedDirectory,
                        &hdir,
                        "not a digest directory (a legacy tarsum link?); skipped",
                    ),
                }
            }
            if self.opts.stat_candidates_only && snap.is_none() && kind != LinkKind::Revision {
                // Listed, not stat-ed: `resolve` stats the ones a plan names. Revision
                // links are always stat-ed: an empty revision directory (a manifest
                // DELETE's leftover) means the repository no longer holds the manifest.
                links.extend(
                    linked
                        .iter()
                        .map(|(h, _)| Link::unstated(self.intern_sha(*h))),
                );
                continue;
            }
            let rels: Vec<String> = linked.iter().map(|(_, n)| format!("{n}/link")).collect();
            let rels: Vec<&str> = rels.iter().map(String::as_str).collect();
            let stats = self.stat_below_in(snap, &apath, &rels);
            for ((h, name), stat) in linked.into_iter().zip(stats) {
                let hdir = format!("{apath}/{name}");
                if let Some(l) = self.link_at(repo, &hdir, h, kind, tag, stat) {
                    links.push(l);
                }
            }
        }
        (links, aliases, complete)
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
        let (index, _, complete) = self.scan_link_family(
            repo,
            &format!("{dir}/index"),
            LinkKind::TagIndex,
            Some(&name),
            snap,
        );
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

/// `src` appended to `dst` in an allocation made here (the assembling thread) rather than
/// kept where a worker made it: kept for the whole run, the workers' vectors would pin the
/// pages of the short-lived buffers around them.
pub(crate) fn append<T: Copy>(dst: &mut Vec<T>, src: &[T]) {
    dst.reserve_exact(src.len());
    dst.extend_from_slice(src);
}

/// Build the repositories from what the walk's tasks produced.
///
/// Everything kept is *copied* (links, tags, names, uploads), and the tasks' originals are
/// dropped by the caller only once every copy exists. Copying keeps long-lived data out of
/// the I/O workers' heaps, and copying before freeing matters as much: a chunk freed by this
/// thread goes to its allocator cache (glibc's tcache, whatever heap the chunk belongs to),
/// and the next allocation of that size would take it back, so a copy made right after
/// freeing its original lands where the original was.
pub(crate) fn assemble(
    heads: &[RepoHead],
    fragments: &[Fragment],
    odd: &[(u32, OddLink)],
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
    let mut tag_counts = vec![(0usize, 0usize); repos.len()];
    for f in fragments {
        if let (Part::Tag(t), Some((n, l))) = (&f.part, tag_counts.get_mut(f.repo as usize)) {
            *n += 1;
            *l += t.index.len();
        }
    }
    for (r, (n, l)) in repos.iter_mut().zip(tag_counts) {
        r.tags = Vec::with_capacity(n);
        r.tag_links = Vec::with_capacity(l);
    }
    // Tags in name order, so that their histories sit in `tag_links` in the same order
    // whatever order the tasks finished in.
    let mut tags: Vec<(u32, &TagOut)> = fragments
        .iter()
        .filter_map(|f| match &f.part {
            Part::Tag(t) => Some((f.repo, t)),
            _ => None,
        })
        .collect();
    tags.sort_unstable_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    for (ri, t) in tags {
        let Some(r) = repos.get_mut(ri as usize) else {
            continue;
        };
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
    for f in fragments {
        let Some(r) = repos.get_mut(f.repo as usize) else {
            continue;
        };
        match &f.part {
            Part::Layers { links, aliases } => {
                append(&mut r.layers, links);
                r.aliases.extend(aliases.iter().cloned());
            }
            Part::Revisions(links) => append(&mut r.revisions, links),
            Part::Tag(_) => {}
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
