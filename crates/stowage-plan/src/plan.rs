//! The plan file: a reviewable, deterministic list of what an apply will remove
//! (`stowage.plan/v1`, documented in docs/json-schema.md).

use serde::{Deserialize, Serialize};
use stowage_model::digest::Digest;
use stowage_model::time::Timestamp;

use crate::gc::GcOptions;

pub const PLAN_SCHEMA: &str = "stowage.plan/v1";

/// Why an action or a kept item is listed. Most reasons are one of a few fixed words
/// (`unreferenced`, `untagged`, `dangling`...): borrowed, they cost no allocation per row in
/// a plan of a million blobs; reasons that name digests are owned.
pub type Reason = std::borrow::Cow<'static, str>;

/// A blob to delete (`blobs/sha256/<hh>/<hex>`, the whole directory, as the registry does).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobAction {
    pub digest: Digest,
    pub size: u64,
    /// Modification time seen when planning; apply skips the blob if it changed.
    pub modified: Timestamp,
    /// `unreferenced` or `untagged` (only untagged manifests referenced it).
    pub reason: Reason,
}

/// An untagged manifest whose revision directory goes (and its tag-history entries).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAction {
    pub repository: String,
    pub digest: Digest,
    /// When the revision link was written (when it was pushed to this repository).
    pub modified: Timestamp,
    /// Retention plans: why (`delete: ci-builds/stale`, `cascade: child of sha256:…`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A tag to remove (retention): its directory `_manifests/tags/<tag>/` goes, as the
/// registry's own untag does. Applied only if the tag still points where the plan saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagAction {
    pub repository: String,
    pub tag: String,
    /// The digest the tag pointed at when planning (the precondition).
    pub digest: Digest,
    /// Modification time of its `current/link` when planning.
    pub current_modified: Timestamp,
    pub reasons: Vec<String>,
    /// A signature tag removed because its subject is gone (`GcOptions::orphan_signatures`):
    /// the subject, which apply checks is still linked by no repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_of: Option<Digest>,
}

/// A tag-history entry (`tags/<tag>/index/<alg>/<hex>/`) to remove.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagIndexAction {
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    /// `untagged-manifest` (goes with a deleted manifest) or `dangling` (its blob is gone).
    pub reason: Reason,
}

/// A `_layers` link to remove.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkAction {
    pub repository: String,
    pub digest: Digest,
    /// `dangling` (blob missing) or `blob-deleted` (its blob is deleted by this plan).
    pub reason: Reason,
}

/// An abandoned upload directory to remove.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadAction {
    pub repository: String,
    pub id: String,
    pub size: u64,
    pub started_at: Option<Timestamp>,
}

/// Something the registry's GC would delete that this plan keeps, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kept {
    pub digest: Digest,
    pub size: u64,
    pub reason: Reason,
}

/// A manifest the registry's GC would delete that this plan keeps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptManifest {
    pub repository: String,
    pub digest: Digest,
    pub reason: Reason,
}

/// What the grace period (or a safety rule) kept out of the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldBack {
    pub blobs: Vec<Kept>,
    pub blob_bytes: u64,
    pub manifests: Vec<ManifestAction>,
    pub uploads: Vec<UploadAction>,
    pub upload_bytes: u64,
    /// Orphaned signature tags modified within the grace period (`orphan_signatures`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagAction>,
}

/// What made a plan; apply's re-check differs by kind (a retention plan re-evaluates its
/// policy's protections). A plan file of another kind is refused when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanKind {
    /// `stowage gc` (with or without `--delete-untagged`).
    Gc,
    /// `stowage plan --policy`.
    Retention,
    /// `stowage plan repo-delete | repo-move | tag-delete` (the `surgery` section says which).
    Surgery,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Gc => "gc",
            PlanKind::Retention => "retention",
            PlanKind::Surgery => "surgery",
        }
    }
}

impl std::fmt::Display for PlanKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a plan's listing came from when it was not a live listing: a provider's
/// inventory report, as of its date (the plan's `created_at` is that date too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingSource {
    /// The report (`S3 Inventory s3://.../manifest.json`).
    pub report: String,
    /// When the provider began listing.
    pub date: Timestamp,
}

/// A reviewable deletion plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub schema: String,
    pub kind: PlanKind,
    pub created_at: Timestamp,
    /// The layout root the plan was made for; apply refuses another.
    pub storage: String,
    pub options: GcOptions,
    /// Bytes freed: blobs plus uploads.
    pub bytes: u64,
    pub blob_bytes: u64,
    pub upload_bytes: u64,
    pub manifests: Vec<ManifestAction>,
    pub tag_index_entries: Vec<TagIndexAction>,
    pub layer_links: Vec<LinkAction>,
    pub blobs: Vec<BlobAction>,
    pub uploads: Vec<UploadAction>,
    /// Directories to remove if (and only if) they are empty when apply reaches them.
    pub empty_dirs: Vec<String>,
    pub held_back: HeldBack,
    /// Blobs the registry's own GC (2.8, same flags) would delete but this plan keeps.
    pub kept_unlike_registry: Vec<Kept>,
    /// Manifests (revision links) the registry's GC with `--delete-untagged` would delete but
    /// this plan keeps: index children and referrers of kept images, recent pushes.
    pub manifests_kept_unlike_registry: Vec<KeptManifest>,
    /// Reasons some deletions were not planned at all (incomplete scan...).
    pub blocked: Vec<String>,
    /// Retention plans: tags to remove, in order, before any manifest (always written, empty
    /// for other plans: a plan document has every top-level array).
    #[serde(default)]
    pub tags: Vec<TagAction>,
    /// Retention plans: the policy, every decision with its reasons, and the byte accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Box<crate::retention::Retention>>,
    /// Recent pulls the plan would break (`crate::replay`); a plan made without pull data
    /// says so here.
    #[serde(default)]
    pub would_break: crate::replay::WouldBreak,
    /// Made from a provider inventory report rather than a live listing (apply refuses it
    /// once the report is older than the plan's grace window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<ListingSource>,
    /// Cache GC plans (`GcOptions::cache`): how `scheduler-state.json` changes with the
    /// plan, and what applying it requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Box<crate::cache::CacheEdit>>,
    /// Surgery plans: what is removed, moved or copied (`crate::surgery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surgery: Option<Box<crate::surgery::Surgery>>,
}

impl Plan {
    /// Every digest the plan names, as an action, a hold-back or a kept-unlike-the-registry
    /// record (sorted, once each): what a scan that stated only candidates must stat before
    /// the plan is final (`stowage_analysis::settle`).
    pub fn named_digests(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::new();
        out.extend(self.manifests.iter().map(|m| m.digest.clone()));
        out.extend(self.tag_index_entries.iter().map(|t| t.digest.clone()));
        out.extend(self.layer_links.iter().map(|l| l.digest.clone()));
        out.extend(self.blobs.iter().map(|b| b.digest.clone()));
        out.extend(self.held_back.blobs.iter().map(|b| b.digest.clone()));
        out.extend(self.held_back.manifests.iter().map(|m| m.digest.clone()));
        out.extend(self.kept_unlike_registry.iter().map(|k| k.digest.clone()));
        out.extend(
            self.manifests_kept_unlike_registry
                .iter()
                .map(|k| k.digest.clone()),
        );
        for t in self.tags.iter().chain(&self.held_back.tags) {
            out.push(t.digest.clone());
            out.extend(t.orphan_of.clone());
        }
        out.sort();
        out.dedup();
        out
    }

    /// The plan file: pretty JSON and a newline.
    pub fn to_json(&self) -> String {
        let mut v = Vec::new();
        // Writing to a vector cannot fail, and the plan's types always serialize.
        let _ = self.write_json(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// [`Plan::to_json`], written to `w` as it is produced: a plan of a big registry is tens
    /// of megabytes of JSON (every blob, manifest and history entry it deletes), which need
    /// not sit in memory beside the plan itself.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, self)?;
        w.write_all(b"\n")
    }

    /// Read and validate a plan file (the one reader of plan files: `apply`, `plan show`,
    /// `plan replay`, `explain PLAN`, `report --plan`). Plans are small (a key per target),
    /// so the file is read whole.
    pub fn read(path: &std::path::Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Plan::from_json(&text).map_err(|e| PlanError::In {
            path: path.display().to_string(),
            source: Box::new(e),
        })
    }

    pub fn from_json(text: &str) -> Result<Plan, PlanError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PlanError::Invalid(e.to_string()))?;
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(PLAN_SCHEMA) => {}
            Some(other) => return Err(PlanError::Schema(other.to_string())),
            None => {
                return Err(PlanError::Invalid(
                    "no schema field: not a stowage plan".into(),
                ));
            }
        }
        drop(v);
        // Parsed again from the text so an error names its line and column (a hand-edited
        // digest, a missing field). A key given twice is refused ("duplicate field"), where
        // a `Value` would have kept the last one.
        let plan: Plan =
            serde_json::from_str(text).map_err(|e| PlanError::Invalid(e.to_string()))?;
        crate::keys::validate(&plan)?;
        Ok(plan)
    }

    /// A short fingerprint of the plan's content (names journals and quarantine batches).
    pub fn id(&self) -> String {
        use sha2::Digest as _;
        // The hash of the plan file's bytes, fed as they are written.
        let mut hasher = sha2::Sha256::new();
        let _ = self.write_json(&mut hasher);
        let h = hasher.finalize();
        h.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty()
            && self.tags.is_empty()
            && self.tag_index_entries.is_empty()
            && self.layer_links.is_empty()
            && self.blobs.is_empty()
            && self.uploads.is_empty()
            && self.empty_dirs.is_empty()
            && self
                .surgery
                .as_ref()
                .is_none_or(|s| s.links.is_empty() && s.repositories.is_empty())
    }
}

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("not a valid plan: {0}")]
    Invalid(String),
    #[error("plan schema {0:?} is not {PLAN_SCHEMA:?}; this stowage cannot apply it")]
    Schema(String),
    /// An entry whose storage key is not a key of its kind (`..`, a link, a path outside
    /// the layout): the whole plan is refused, naming the entry.
    #[error("not a valid plan: {entry}: {key:?} is not {expected} ({why})")]
    Key {
        entry: String,
        key: String,
        expected: &'static str,
        why: String,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    In {
        path: String,
        source: Box<PlanError>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn plan() -> Plan {
        Plan {
            schema: PLAN_SCHEMA.into(),
            kind: PlanKind::Gc,
            created_at: Timestamp::from_secs(1_700_000_000),
            storage: "/srv/registry/docker/registry/v2".into(),
            options: GcOptions::default(),
            bytes: 5,
            blob_bytes: 5,
            upload_bytes: 0,
            manifests: vec![],
            tag_index_entries: vec![],
            layer_links: vec![],
            blobs: vec![BlobAction {
                digest: D.parse().unwrap(),
                size: 5,
                modified: Timestamp::from_secs(1_600_000_000),
                reason: "unreferenced".into(),
            }],
            uploads: vec![],
            empty_dirs: vec![],
            held_back: HeldBack::default(),
            kept_unlike_registry: vec![Kept {
                digest: D.parse().unwrap(),
                size: 5,
                reason: format!("needed by {D}").into(),
            }],
            manifests_kept_unlike_registry: vec![],
            blocked: vec![],
            tags: vec![],
            retention: None,
            would_break: Default::default(),
            listing: None,
            cache: None,
            surgery: None,
        }
    }

    #[test]
    fn a_plan_file_reads_back_as_written() {
        let p = plan();
        let text = p.to_json();
        assert!(text.contains(&format!("\"digest\": \"{D}\"")), "{text}");
        let back = Plan::from_json(&text).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.id(), p.id());
    }

    #[test]
    fn an_edited_plan_with_a_bad_digest_is_refused_whole() {
        // Digests are typed: a plan whose digest was mistyped by hand does not load at all,
        // so apply never runs half of an edited plan.
        let text = plan().to_json().replacen(D, "sha256:e3b0c442", 1);
        match Plan::from_json(&text) {
            Err(PlanError::Invalid(msg)) => assert!(msg.contains("digest"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let text =
            plan()
                .to_json()
                .replacen("\"bytes\": 5,", "\"bytes\": 5,\n  \"bytes\": 99999,", 1);
        match Plan::from_json(&text) {
            Err(PlanError::Invalid(msg)) => assert!(msg.contains("duplicate field"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_plan_of_an_unknown_kind_is_refused_when_read() {
        // The kind decides apply's re-check (a retention plan re-evaluates its policy): a
        // kind this stowage does not know is not applied as if it were a gc plan.
        let text = plan().to_json();
        assert!(text.contains("\"kind\": \"gc\""), "{text}");
        let edited = text.replace("\"kind\": \"gc\"", "\"kind\": \"prune\"");
        match Plan::from_json(&edited) {
            Err(PlanError::Invalid(msg)) => assert!(msg.contains("prune"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn traversal_entries_in_an_edited_plan_are_refused_by_name() {
        // Were reported as "gone already" by apply; now the plan does not load.
        let mut p = plan();
        p.empty_dirs = vec!["repositories/../../etc".into()];
        match Plan::from_json(&p.to_json()) {
            Err(PlanError::Key { entry, .. }) => assert_eq!(entry, "empty_dirs[0]"),
            other => panic!("{other:?}"),
        }
        let mut p = plan();
        p.manifests = vec![ManifestAction {
            repository: "../x".into(),
            digest: D.parse().unwrap(),
            modified: Timestamp::from_secs(1),
            reason: String::new(),
        }];
        let e = Plan::from_json(&p.to_json()).unwrap_err().to_string();
        assert!(e.contains("manifests[0]") && e.contains(".."), "{e}");
        let mut p = plan();
        p.uploads = vec![UploadAction {
            repository: "team/app".into(),
            id: "a/../../b".into(),
            size: 1,
            started_at: None,
        }];
        let e = Plan::from_json(&p.to_json()).unwrap_err().to_string();
        assert!(e.contains("uploads[0]"), "{e}");
        let mut p = plan();
        p.empty_dirs = vec!["blobs".into(), "repositories/team/app/_uploads".into()];
        let e = Plan::from_json(&p.to_json()).unwrap_err().to_string();
        assert!(e.contains("empty_dirs[0]"), "{e}");
        p.empty_dirs.remove(0);
        assert!(Plan::from_json(&p.to_json()).is_ok());
    }
}
