//! Every entry of a plan file must name a storage key of its own kind.
//!
//! A plan is a file a person can edit (that is the point of reviewing it). Apply builds each
//! target's path from the entry (`layout::revision_dir(repository, digest)`, ...), so a
//! repository named `../../etc` or an `empty_dirs` entry of `repositories/../..` would make a
//! path outside the layout. Such entries were reported as "gone already"; they are now
//! refused, and the whole plan with them, naming the entry: a plan that was edited into
//! something stowage would never write is not applied in part.
//!
//! The check is the path grammar itself: the key built from an entry must classify
//! ([`layout::classify`]) as the kind of thing the entry says it is, with the same
//! repository, tag and digest, and parse as a [`StorageKey`] (no empty, `.` or `..` component).

use stowage_layout::{self as layout, Part, PathInfo};
use stowage_model::StorageKey;

use crate::plan::{Plan, PlanError};

fn bad(entry: String, key: &str, expected: &'static str, why: impl Into<String>) -> PlanError {
    PlanError::Key {
        entry,
        key: key.to_string(),
        expected,
        why: why.into(),
    }
}

/// Why `key` could leave the directory it is joined to ([`StorageKey::parse`], the rule every
/// backend applies), or is the layout root itself, which no entry names.
fn traversal(key: &str) -> Option<String> {
    match StorageKey::parse(key) {
        Ok(k) if k.is_root() => Some("an empty path".to_owned()),
        Ok(_) => None,
        Err(why) => Some(why.to_string()),
    }
}

fn check(
    entry: String,
    key: &str,
    expected: &'static str,
    ok: impl Fn(&PathInfo) -> bool,
) -> Result<(), PlanError> {
    if let Some(why) = traversal(key) {
        return Err(bad(entry, key, expected, why));
    }
    let info = layout::classify(key);
    if ok(&info) {
        return Ok(());
    }
    let why = match info {
        PathInfo::Unknown { why } => why,
        other => format!("the layout reads it as {other:?}"),
    };
    Err(bad(entry, key, expected, why))
}

/// Refuse a plan with an entry that is not a storage key of its kind.
pub fn validate(plan: &Plan) -> Result<(), PlanError> {
    for (i, t) in plan.tags.iter().enumerate() {
        let key = layout::tag_dir(&t.repository, &t.tag);
        check(
            format!("tags[{i}]"),
            &key,
            "a tag directory",
            |p| matches!(p, PathInfo::Tag { repo, tag } if *repo == t.repository && *tag == t.tag),
        )?;
    }
    for (i, m) in plan.manifests.iter().enumerate() {
        let key = layout::revision_dir(&m.repository, &m.digest);
        check(
            format!("manifests[{i}]"),
            &key,
            "a revision directory",
            |p| {
                matches!(p, PathInfo::RevisionLink { repo, digest, part: Part::Dir }
                if *repo == m.repository && *digest == m.digest)
            },
        )?;
    }
    for (i, t) in plan.tag_index_entries.iter().enumerate() {
        let key = layout::tag_index_dir(&t.repository, &t.tag, &t.digest);
        check(
            format!("tag_index_entries[{i}]"),
            &key,
            "a tag history entry",
            |p| {
                matches!(p, PathInfo::TagIndexEntry { repo, tag, digest, part: Part::Dir }
                if *repo == t.repository && *tag == t.tag && *digest == t.digest)
            },
        )?;
    }
    for (i, l) in plan.layer_links.iter().enumerate() {
        let key = layout::layer_link(&l.repository, &l.digest);
        check(format!("layer_links[{i}]"), &key, "a _layers link", |p| {
            matches!(p, PathInfo::LayerLink { repo, digest, part: Part::File }
                if *repo == l.repository && *digest == l.digest)
        })?;
    }
    for (i, u) in plan.uploads.iter().enumerate() {
        let key = layout::upload_dir(&u.repository, &u.id);
        check(format!("uploads[{i}]"), &key, "an upload directory", |p| {
            matches!(p, PathInfo::Upload { repo, id, rest: None }
                if *repo == u.repository && *id == u.id)
        })?;
    }
    if let Some(s) = &plan.surgery {
        surgery(s)?;
    }
    for (i, d) in plan.empty_dirs.iter().enumerate() {
        check(
            format!("empty_dirs[{i}]"),
            d,
            "a directory of the layout",
            is_layout_dir,
        )?;
    }
    Ok(())
}

/// A surgery's repository sections and the links it creates.
fn surgery(s: &crate::surgery::Surgery) -> Result<(), PlanError> {
    use crate::surgery::LinkKind;
    for (i, r) in s.repositories.iter().enumerate() {
        let entry = || format!("surgery.repositories[{i}]");
        if r.sections.is_empty() {
            return Err(bad(
                entry(),
                &r.repository,
                "a repository",
                "no section listed",
            ));
        }
        for key in r.section_keys() {
            check(entry(), &key, "a repository section", |p| match p {
                PathInfo::ManifestsDir { repo }
                | PathInfo::LayersDir { repo }
                | PathInfo::UploadsDir { repo } => *repo == r.repository,
                _ => false,
            })?;
        }
    }
    for (i, l) in s.links.iter().enumerate() {
        let key = l.path();
        let tag_ok = |repo: &str, tag: &str| repo == l.repository && l.tag.as_deref() == Some(tag);
        check(
            format!("surgery.links[{i}]"),
            &key,
            "a link file",
            |p| match (l.kind, p) {
                (
                    LinkKind::Layer,
                    PathInfo::LayerLink {
                        repo,
                        digest,
                        part: Part::File,
                    },
                )
                | (
                    LinkKind::Revision,
                    PathInfo::RevisionLink {
                        repo,
                        digest,
                        part: Part::File,
                    },
                ) => *repo == l.repository && *digest == l.digest && l.tag.is_none(),
                (
                    LinkKind::TagIndex,
                    PathInfo::TagIndexEntry {
                        repo,
                        tag,
                        digest,
                        part: Part::File,
                    },
                ) => tag_ok(repo, tag) && *digest == l.digest,
                (LinkKind::TagCurrent, PathInfo::TagCurrent { repo, tag }) => {
                    key.ends_with("/current/link") && tag_ok(repo, tag)
                }
                _ => false,
            },
        )?;
        // Only sha256 links: the registry's manifests and canonical blobs are sha256.
        if l.digest.sha256().is_none() {
            return Err(bad(
                format!("surgery.links[{i}]"),
                &key,
                "a link file",
                "not a sha256 digest",
            ));
        }
    }
    Ok(())
}

/// Directories a plan may ask to remove when empty: anything inside `blobs/` or
/// `repositories/` that is a directory of the grammar, never the roots themselves.
fn is_layout_dir(p: &PathInfo) -> bool {
    match p {
        PathInfo::BlobShard { .. }
        | PathInfo::RepositoryDir { .. }
        | PathInfo::LayersDir { .. }
        | PathInfo::ManifestsDir { .. }
        | PathInfo::TagsDir { .. }
        | PathInfo::Tag { .. }
        | PathInfo::TagCurrent { .. }
        | PathInfo::UploadsDir { .. }
        | PathInfo::Upload { rest: None, .. } => true,
        PathInfo::Blob { part, .. }
        | PathInfo::LayerLink { part, .. }
        | PathInfo::RevisionLink { part, .. }
        | PathInfo::TagIndexEntry { part, .. } => *part == Part::Dir,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_in_any_component_is_found() {
        for k in ["/etc", "repositories/../x", "repositories/a//b", "a/./b"] {
            assert!(traversal(k).is_some(), "{k}");
        }
        assert_eq!(traversal("repositories/team/app/_uploads"), None);
        assert_eq!(
            traversal("repositories/a\u{1b}[2J"),
            None,
            "odd, not traversal"
        );
    }

    #[test]
    fn only_layout_directories_are_removable_dirs() {
        assert!(is_layout_dir(&layout::classify("repositories/team/app")));
        assert!(is_layout_dir(&layout::classify("blobs/sha256/ab")));
        assert!(!is_layout_dir(&layout::classify("repositories")));
        assert!(!is_layout_dir(&layout::classify("blobs")));
        assert!(!is_layout_dir(&layout::classify("")));
        assert!(!is_layout_dir(&layout::classify("etc/passwd")));
    }
}
