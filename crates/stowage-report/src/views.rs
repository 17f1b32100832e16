//! Serializable records built from the graph: blobs, links, uploads, usage nodes, tags.

use serde::Serialize;
use stowage_graph::{BlobKind, Graph, Usage};
use stowage_layout as layout;
use stowage_model::inventory::{BlobId, LinkState, Repository};
use stowage_model::time::Timestamp;

/// One blob, with who needs it.
#[derive(Clone, Debug, Serialize)]
pub struct BlobRecord {
    pub record: &'static str,
    pub digest: String,
    pub size: u64,
    /// File modification time (for a blob: when its bytes were last written).
    pub modified: Timestamp,
    /// Birth time where the filesystem records it (`statx` btime), else null.
    pub created: Option<Timestamp>,
    pub kind: BlobKind,
    /// For manifests: the media type they are served with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<&'static str>,
    /// Reachable from some repository's manifests (the registry's GC keeps it).
    pub referenced: bool,
    /// Repositories whose manifests reach it (a manifest: repositories holding it).
    pub repositories: Vec<String>,
    /// `repo:tag` of every tag whose current image reaches it.
    pub tags: Vec<String>,
    /// Manifests that reference it directly.
    pub manifests: Vec<String>,
    /// Repositories with a `_layers` link to it.
    pub linked_in: Vec<String>,
    pub path: String,
}

/// Reusable buffers for building blob records (one per thread).
pub struct BlobRecordBuilder<'g, 'a> {
    g: &'g Graph<'a>,
    scratch: stowage_graph::Scratch,
}

impl<'g, 'a> BlobRecordBuilder<'g, 'a> {
    pub fn new(g: &'g Graph<'a>) -> Self {
        BlobRecordBuilder {
            g,
            scratch: stowage_graph::Scratch::new(g.len()),
        }
    }

    /// Who needs blob `id`: repositories and tags through every manifest that reaches it.
    pub fn owners(&mut self, id: BlobId) -> (Vec<String>, Vec<String>) {
        let g = self.g;
        let inv = g.inv;
        let mut repos: Vec<u32> = Vec::new();
        let mut tags: Vec<(u32, u32)> = Vec::new();
        g.for_each_ancestor(id, &mut self.scratch, |m| {
            repos.extend_from_slice(g.revision_repos(m));
            tags.extend(g.tags_of(m));
        });
        repos.sort_unstable();
        repos.dedup();
        tags.sort_unstable();
        tags.dedup();
        let repos = repos
            .into_iter()
            .map(|r| inv.repositories[r as usize].name.to_string())
            .collect();
        let tags = tags
            .into_iter()
            .map(|(r, t)| {
                let repo = &inv.repositories[r as usize];
                format!("{}:{}", repo.name, repo.tags[t as usize].name)
            })
            .collect();
        (repos, tags)
    }

    pub fn record(&mut self, id: BlobId, referenced: bool) -> BlobRecord {
        let g = self.g;
        let inv = g.inv;
        let b = &inv.blobs[id as usize];
        let (repositories, tags) = self.owners(id);
        let mut manifests: Vec<String> = g
            .parents(id)
            .iter()
            .map(|&p| inv.digest(p).to_string())
            .collect();
        manifests.sort();
        let mut linked_in: Vec<String> = g
            .layer_repos(id)
            .iter()
            .map(|&r| inv.repositories[r as usize].name.to_string())
            .collect();
        linked_in.sort();
        BlobRecord {
            record: "blob",
            digest: b.digest.to_string(),
            size: b.size,
            modified: b.modified(),
            created: b.created(),
            kind: g.blob_kind(id),
            media_type: g.manifest_kind(id).map(|k| k.media_type()),
            referenced,
            repositories,
            tags,
            manifests,
            linked_in,
            path: layout::blob_data(&b.digest),
        }
    }
}

/// One link file (with `inventory --links`).
#[derive(Clone, Debug, Serialize)]
pub struct LinkRecord {
    pub record: &'static str,
    /// `layer`, `revision`, `tag_current` or `tag_index`.
    pub kind: &'static str,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: String,
    pub modified: Timestamp,
    /// Whether the blob it names exists.
    pub target_exists: bool,
    /// `assumed` (71 bytes, not read), `verified`, `differs` or `invalid`.
    pub state: &'static str,
    pub path: String,
}

fn state_str(s: LinkState) -> &'static str {
    match s {
        LinkState::Assumed => "assumed",
        LinkState::Verified => "verified",
        LinkState::Differs => "differs",
        LinkState::Invalid => "invalid",
    }
}

/// Every link file of a repository.
pub fn link_records(g: &Graph<'_>, r: &Repository) -> Vec<LinkRecord> {
    let inv = g.inv;
    let repo = r.name.as_str();
    let mut out = Vec::new();
    for l in &r.layers {
        let d = inv.digest(l.target());
        out.push(LinkRecord {
            record: "link",
            kind: "layer",
            repository: repo.into(),
            tag: None,
            path: layout::layer_link(repo, &d),
            digest: d.to_string(),
            modified: l.modified(),
            target_exists: inv.is_present(l.target()),
            state: state_str(l.state()),
        });
    }
    for l in &r.revisions {
        let d = inv.digest(l.target());
        out.push(LinkRecord {
            record: "link",
            kind: "revision",
            repository: repo.into(),
            tag: None,
            path: layout::revision_link(repo, &d),
            digest: d.to_string(),
            modified: l.modified(),
            target_exists: inv.is_present(l.target()),
            state: state_str(l.state()),
        });
    }
    for t in &r.tags {
        if let Some(c) = t.current {
            out.push(LinkRecord {
                record: "link",
                kind: "tag_current",
                repository: repo.into(),
                tag: Some(t.name.to_string()),
                path: layout::tag_current_link(repo, &t.name),
                digest: c
                    .target
                    .map(|id| inv.digest(id).to_string())
                    .unwrap_or_default(),
                modified: c.modified,
                target_exists: c.target.is_some_and(|id| inv.is_present(id)),
                state: if c.target.is_some() {
                    "verified"
                } else {
                    "invalid"
                },
            });
        }
        for l in &t.index {
            let d = inv.digest(l.target());
            out.push(LinkRecord {
                record: "link",
                kind: "tag_index",
                repository: repo.into(),
                tag: Some(t.name.to_string()),
                path: layout::tag_index_link(repo, &t.name, &d),
                digest: d.to_string(),
                modified: l.modified(),
                target_exists: inv.is_present(l.target()),
                state: state_str(l.state()),
            });
        }
    }
    out
}

/// One abandoned or in-progress upload.
#[derive(Clone, Debug, Serialize)]
pub struct UploadRecord {
    pub record: &'static str,
    pub repository: String,
    pub id: String,
    pub started_at: Option<Timestamp>,
    /// Seconds since `started_at` (or since the newest file when it is missing).
    pub age_seconds: i64,
    pub data_size: Option<u64>,
    pub total_size: u64,
    pub modified: Timestamp,
    pub path: String,
}

pub fn upload_records(r: &Repository, now: Timestamp) -> Vec<UploadRecord> {
    r.uploads
        .iter()
        .map(|u| UploadRecord {
            record: "upload",
            repository: r.name.to_string(),
            id: u.id.clone(),
            started_at: u.started_at,
            age_seconds: u.started_at.unwrap_or(u.modified).seconds_until(now),
            data_size: u.data_size,
            total_size: u.total_size,
            modified: u.modified,
            path: layout::upload_dir(r.name.as_str(), &u.id),
        })
        .collect()
}

/// One row of `stowage du`.
#[derive(Clone, Debug, Serialize)]
pub struct DuRecord {
    pub name: String,
    pub depth: u32,
    /// Whether a repository lives at this name (it may also be a namespace).
    pub repository: bool,
    pub total: u64,
    pub exclusive: u64,
    pub shared: u64,
    /// This repository alone, without nested ones (0 for a pure namespace).
    pub own_total: u64,
    pub own_exclusive: u64,
    pub repositories: u64,
    pub tags: u64,
    pub manifests: u64,
    pub untagged_manifests: u64,
    pub upload_bytes: u64,
}

/// Rows of the usage tree in pre-order, children sorted by `key` (descending when `desc`).
pub fn du_records(
    u: &Usage,
    max_depth: Option<u32>,
    key: fn(&DuRecord) -> (u64, String),
    desc: bool,
) -> Vec<DuRecord> {
    let rec = |i: u32| {
        let n = &u.nodes[i as usize];
        DuRecord {
            name: if n.name.is_empty() {
                "/".into()
            } else {
                n.name.clone()
            },
            depth: n.depth,
            repository: n.repository.is_some(),
            total: n.total,
            exclusive: n.exclusive,
            shared: n.shared(),
            own_total: n.own_total,
            own_exclusive: n.own_exclusive,
            repositories: n.repositories,
            tags: n.tags,
            manifests: n.manifests,
            untagged_manifests: n.untagged,
            upload_bytes: n.upload_bytes,
        }
    };
    let mut out = Vec::new();
    let mut stack = vec![0u32];
    while let Some(i) = stack.pop() {
        let r = rec(i);
        let depth = r.depth;
        out.push(r);
        if max_depth.is_some_and(|d| depth >= d) {
            continue;
        }
        let mut kids: Vec<(DuRecord, u32)> = u.nodes[i as usize]
            .children
            .iter()
            .map(|&c| (rec(c), c))
            .collect();
        kids.sort_by(|a, b| {
            let (ka, kb) = (key(&a.0), key(&b.0));
            let ord = ka.0.cmp(&kb.0);
            let ord = if desc { ord.reverse() } else { ord };
            ord.then_with(|| ka.1.cmp(&kb.1))
        });
        for (_, c) in kids.into_iter().rev() {
            stack.push(c);
        }
    }
    out
}

/// One tag history entry.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub digest: String,
    /// When the tag was set to this digest (the index link's mtime; the registry records no
    /// other date).
    pub date: Timestamp,
    pub exists: bool,
}

/// One row of `stowage tags REPO`.
#[derive(Clone, Debug, Serialize)]
pub struct TagRecord {
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
    pub media_type: Option<&'static str>,
    /// Platforms of an index's children (`os/arch[/variant]`).
    pub platforms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub total: u64,
    pub exclusive: u64,
    /// When `current` was last written: when the tag last moved.
    pub moved: Option<Timestamp>,
    /// Every digest the tag ever pointed to, newest first.
    pub history: Vec<HistoryEntry>,
}

pub fn tag_records(g: &Graph<'_>, u: &Usage, repo_index: usize) -> Vec<TagRecord> {
    let inv = g.inv;
    let r = &inv.repositories[repo_index];
    r.tags
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let target = t.current.and_then(|c| c.target);
            let m = target.and_then(|id| g.manifest(id));
            let platforms: Vec<String> = m
                .and_then(|m| inv.extra_of(m))
                .map(|e| {
                    e.platforms
                        .iter()
                        .map(|p| {
                            p.as_ref()
                                .map(|p| p.to_string())
                                .unwrap_or_else(|| "?".into())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut history: Vec<HistoryEntry> = t
                .index
                .iter()
                .map(|l| HistoryEntry {
                    digest: inv.digest(l.target()).to_string(),
                    date: l.modified(),
                    exists: inv.is_present(l.target()),
                })
                .collect();
            history.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.digest.cmp(&b.digest)));
            let tu = &u.tags[repo_index][ti];
            TagRecord {
                repository: r.name.to_string(),
                tag: t.name.to_string(),
                digest: target.map(|id| inv.digest(id).to_string()),
                media_type: target
                    .and_then(|id| g.manifest_kind(id))
                    .map(|k| k.media_type()),
                platforms,
                artifact_type: m
                    .and_then(|m| inv.extra_of(m))
                    .and_then(|e| e.artifact_type.as_deref().map(str::to_owned)),
                total: tu.total,
                exclusive: tu.exclusive,
                moved: t.current.map(|c| c.modified),
                history,
            }
        })
        .collect()
}
