//! What lies directly in a tag's directory besides `current/` and `index/` (with
//! `verify_links`, as `check` runs): every file outside the storage grammar is a finding
//! (issue 19: a stray `link.<uuid>.tmp` beside a tag's `current/` was reported at no level).

use super::*;

impl<'a> Ctx<'a> {
    /// List `_manifests/tags/<tag>` and report anything but `current/` and `index/`.
    pub(crate) fn inspect_tag_dir(&self, dir: &str, snap: Option<&Snapshot>) {
        let Ok(entries) = self.list_in(snap, dir) else {
            return;
        };
        for e in entries {
            let p = format!("{dir}/{}", e.name);
            match (e.name.as_str(), e.kind) {
                ("current" | "index", EntryKind::Dir) => {}
                (n, EntryKind::File) if n.starts_with("link.") && n.ends_with(".tmp") => self
                    .finding(
                        FindingKind::StaleTempFile,
                        &p,
                        "temporary file of an interrupted link write, beside the tag's current/ (not where the registry writes one); safe to remove",
                    ),
                (_, EntryKind::Dir) => self.finding(
                    FindingKind::UnexpectedDirectory,
                    &p,
                    "not part of a tag directory (current/, index/)",
                ),
                _ => self.unexpected_file(&p, "not part of a tag directory (current/, index/)"),
            }
        }
    }
}
