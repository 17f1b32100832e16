//! Serializable records built from the graph: blobs, links, uploads, usage nodes, tags.

use serde::{Deserialize, Serialize};
use stowage_graph::{BlobKind, Graph, NodeUsage, Usage};
use stowage_layout as layout;
use stowage_model::inventory::{BlobId, LinkState, Repository};
use stowage_model::time::Timestamp;

/// One blob, with who needs it: the `blob` record of `stowage.inventory/v1`.
///
/// Built per blob while writing (`BlobRecordBuilder::record`) and serialized straight from
/// the graph: owners are held as indices, and names and digests are written as they are
/// serialized. A base layer needed by every image of a million-blob registry has hundreds of
/// thousands of owners; as strings its record alone cost about 10 MB.
pub struct BlobRecord<'g, 'a> {
    g: &'g Graph<'a>,
    pub id: BlobId,
    /// Reachable from some repository's manifests (the registry's GC keeps it).
    pub referenced: bool,
    /// Repositories whose manifests reach it (a manifest: repositories holding it), as
    /// indices into `inv.repositories` (so in name order).
    pub repositories: Vec<u32>,
    /// Tags whose current image reaches it, as (repository, tag) indices, in name order.
    pub tags: Vec<(u32, u32)>,
}

impl<'g, 'a> BlobRecord<'g, 'a> {
    fn blob(&self) -> &'a stowage_model::inventory::BlobFile {
        &self.g.inv.blobs[self.id as usize]
    }

    pub fn digest(&self) -> String {
        self.blob().digest.to_string()
    }

    pub fn size(&self) -> u64 {
        self.blob().size
    }

    /// File modification time (for a blob: when its bytes were last written).
    pub fn modified(&self) -> Timestamp {
        self.blob().modified()
    }

    /// Birth time where the filesystem records it (`statx` btime).
    pub fn created(&self) -> Option<Timestamp> {
        self.g.inv.created(self.id)
    }

    pub fn kind(&self) -> BlobKind {
        self.g.blob_kind(self.id)
    }

    pub fn path(&self) -> String {
        layout::blob_data(&self.blob().digest)
    }

    /// Repository names, in order.
    pub fn repository_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        let inv = self.g.inv;
        self.repositories
            .iter()
            .map(move |&r| inv.repositories[r as usize].name.as_str())
    }

    /// `repo:tag` of every tag whose current image reaches it, in order.
    pub fn tag_names(&self) -> impl Iterator<Item = String> + '_ {
        let inv = self.g.inv;
        self.tags.iter().map(move |&(r, t)| {
            let repo = &inv.repositories[r as usize];
            format!("{}:{}", repo.name, repo.tags[t as usize].name)
        })
    }
}

/// A sequence serialized from an iterator of displayable items, without collecting it.
struct Strs<I>(std::cell::Cell<Option<I>>);

impl<I, T> Serialize for Strs<I>
where
    I: Iterator<Item = T>,
    T: std::fmt::Display,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for item in self.0.take().into_iter().flatten() {
            seq.serialize_element(&Disp(item))?;
        }
        seq.end()
    }
}

struct Disp<T>(T);

impl<T: std::fmt::Display> Serialize for Disp<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

fn strs<I: IntoIterator>(it: I) -> Strs<I::IntoIter> {
    Strs(std::cell::Cell::new(Some(it.into_iter())))
}

/// `repo:tag`, written without building the string.
struct TagName<'x>(&'x str, &'x str);

impl std::fmt::Display for TagName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl Serialize for BlobRecord<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let g = self.g;
        let inv = g.inv;
        let b = self.blob();
        let media_type = g.manifest_kind(self.id).map(|k| k.media_type());
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("record", "blob")?;
        m.serialize_entry("digest", &Disp(&b.digest))?;
        m.serialize_entry("size", &{ b.size })?;
        m.serialize_entry("modified", &b.modified())?;
        m.serialize_entry("created", &self.created())?;
        m.serialize_entry("kind", &self.kind())?;
        if let Some(mt) = media_type {
            m.serialize_entry("media_type", mt)?;
        }
        m.serialize_entry("referenced", &self.referenced)?;
        m.serialize_entry("repositories", &strs(self.repository_names()))?;
        m.serialize_entry(
            "tags",
            &strs(self.tags.iter().map(|&(r, t)| {
                let repo = &inv.repositories[r as usize];
                TagName(repo.name.as_str(), &repo.tags[t as usize].name)
            })),
        )?;
        // Parents are manifests (present sha256 blobs): id order is digest order.
        let mut parents = g.parents(self.id).to_vec();
        parents.sort_unstable();
        parents.dedup();
        m.serialize_entry("manifests", &strs(parents.iter().map(|&p| inv.digest(p))))?;
        let mut linked = g.layer_repos(self.id).to_vec();
        linked.sort_unstable();
        linked.dedup();
        m.serialize_entry(
            "linked_in",
            &strs(
                linked
                    .iter()
                    .map(|&r| inv.repositories[r as usize].name.as_str()),
            ),
        )?;
        m.serialize_entry("path", &self.path())?;
        m.end()
    }
}

/// Who needs blob `id`, as indices: repositories, and (repository, tag) pairs, through every
/// manifest that reaches it; both sorted (so in name order).
pub fn owner_ids(
    g: &Graph<'_>,
    scratch: &mut stowage_graph::Scratch,
    id: BlobId,
) -> (Vec<u32>, Vec<(u32, u32)>) {
    let mut repos: Vec<u32> = Vec::new();
    let mut tags: Vec<(u32, u32)> = Vec::new();
    g.for_each_ancestor(id, scratch, |m| {
        repos.extend_from_slice(g.revision_repos(m));
        tags.extend(g.tags_of(m));
    });
    repos.sort_unstable();
    repos.dedup();
    tags.sort_unstable();
    tags.dedup();
    (repos, tags)
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

    /// Who needs blob `id`, as indices ([`owner_ids`]).
    pub fn owner_ids(&mut self, id: BlobId) -> (Vec<u32>, Vec<(u32, u32)>) {
        owner_ids(self.g, &mut self.scratch, id)
    }

    /// Who needs blob `id`: repository names and `repo:tag` names.
    pub fn owners(&mut self, id: BlobId) -> (Vec<String>, Vec<String>) {
        let (repos, tags) = self.owner_ids(id);
        let r = BlobRecord {
            g: self.g,
            id,
            referenced: false,
            repositories: repos,
            tags,
        };
        (
            r.repository_names().map(str::to_owned).collect(),
            r.tag_names().collect(),
        )
    }

    pub fn record(&mut self, id: BlobId, referenced: bool) -> BlobRecord<'g, 'a> {
        let (repositories, tags) = self.owner_ids(id);
        BlobRecord {
            g: self.g,
            id,
            referenced,
            repositories,
            tags,
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
        for l in r.history(t) {
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

// One shape for `du`, the dashboard's API and the report's tree (`overview::TreeNode`
// flattens it, adding its place in the tree): issue 24, there were two, kept in step by a
// `From`.
/// One node of the namespace tree: a row of `stowage du`, of the dashboard's
/// `/api/v1/repositories` and a node of the report's tree (its OpenAPI schema is derived
/// from this struct with the `openapi` feature).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Repository))]
pub struct DuRecord {
    /// Full name (`team/app`); `/` for the registry root.
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

impl DuRecord {
    /// The record of one node of the usage tree (the root, named `""` there, is `/`).
    pub fn of(n: &NodeUsage) -> DuRecord {
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
            shared: n.total.saturating_sub(n.exclusive),
            own_total: n.own_total,
            own_exclusive: n.own_exclusive,
            repositories: n.repositories,
            tags: n.tags,
            manifests: n.manifests,
            untagged_manifests: n.untagged,
            upload_bytes: n.upload_bytes,
        }
    }
}

/// Rows of the usage tree in pre-order, children sorted by `key` (descending when `desc`).
pub fn du_records(
    u: &Usage,
    max_depth: Option<u32>,
    key: fn(&DuRecord) -> (u64, String),
    desc: bool,
) -> Vec<DuRecord> {
    let rec = |i: u32| DuRecord::of(&u.nodes[i as usize]);
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
    /// When the image was built (config `created`), when the build dates were read
    /// (`crate::ages::fill_tag_records`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built: Option<Timestamp>,
    /// Why the build date is unknown (`stowage_model::build::Unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_unknown: Option<&'static str>,
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
            let mut history: Vec<HistoryEntry> = r
                .history(t)
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
                built: None,
                build_unknown: None,
            }
        })
        .collect()
}
