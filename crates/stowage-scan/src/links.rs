//! The link families of phase 2 (`_layers`, revisions, tag history): one directory per
//! digest below `<family>/<algorithm>/`, whose `link` file is stat-ed in one batch per
//! algorithm directory (existence and date), read only when its size is not the 71 bytes the
//! registry writes or `verify_links` is on (`check`), and not stat-ed at all for `_layers`
//! and tag history when the scan states only candidates (`resolve.rs` does it later).

use super::*;

impl Ctx<'_> {
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
        let odd = |content| {
            self.odd_link(
                repo,
                OddLink {
                    kind,
                    tag: tag.map(str::to_owned),
                    path_digest: path_digest.clone(),
                    content,
                },
            )
        };
        if size > MAX_LINK_LEN {
            self.finding(
                FindingKind::LinkOversized,
                file,
                format!("{size} bytes; a link holds one digest (71 bytes for sha256)"),
            );
            odd(None);
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
                odd(Some(d));
                Some(LinkState::Differs)
            }
            Err(e) => {
                let k = if matches!(e, LinkError::Empty) {
                    FindingKind::LinkEmpty
                } else {
                    FindingKind::LinkInvalid
                };
                self.finding(k, file, e.to_string());
                odd(None);
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
        // A scan that stats only candidates (`gc -m`) lists a tag's `index/sha256/` without
        // listing `index/` first: the registry writes a tag's history only there, and that
        // listing per tag was 15k of the CI shape's 42k directory listings (60k system
        // calls). History under another algorithm is not seen then; `gc -m` plans only
        // sha256 entries, and the full scans (`check`, `inventory`) report it.
        let direct = self.opts.stat_candidates_only && snap.is_none() && kind == LinkKind::TagIndex;
        let listed = if direct {
            Ok(vec![Ent {
                name: "sha256".to_owned(),
                kind: EntryKind::Dir,
            }])
        } else {
            self.list_in(snap, dir)
        };
        let algs = match listed {
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
                // No history (listed directly: `index/` itself may be absent too).
                Err(e) if direct && e.is_not_found() => continue,
                Err(e) => {
                    self.storage_finding(&e, "cannot list links");
                    complete = false;
                    continue;
                }
            };
            // sha256 link directories whose `link` is stat-ed in one batch below `apath`.
            let mut linked: Vec<(Sha256, String)> = Vec::new();
            for hx in hexes {
                // Named only where something is reported (no allocation per link).
                let hdir = || format!("{apath}/{}", hx.name);
                if hx.kind != EntryKind::Dir {
                    self.unexpected_file(&hdir(), "expected a directory named by a digest");
                    continue;
                }
                if alg.name == "sha256" {
                    match Sha256::from_hex(hx.name.as_bytes()) {
                        Some(h) => {
                            if self.opts.verify_links {
                                self.inspect_link_dir(&hdir(), kind, snap);
                            }
                            linked.push((h, hx.name));
                        }
                        None => self.finding(
                            FindingKind::UnexpectedDirectory,
                            &hdir(),
                            "not a sha256 digest; skipped",
                        ),
                    }
                    continue;
                }
                // Non-sha256: alias links (sha384/sha512 in _layers) or legacy tarsum dirs.
                match Digest::from_parts(&alg.name, &hx.name) {
                    Ok(d) if kind == LinkKind::Layer => {
                        let file = format!("{}/link", hdir());
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
                                &hdir(),
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
                        &hdir(),
                        "the registry stores manifests only under sha256; skipped",
                    ),
                    Err(_) => self.finding(
                        FindingKind::UnexpectedDirectory,
                        &hdir(),
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
}
