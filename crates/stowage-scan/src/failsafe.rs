//! Repositories that hold something the scan could not see are incomplete.
//!
//! A symbolic link or a name that is not UTF-8 inside a repository is reported and skipped by
//! the listing that met it (the registry would follow or read it; we do not). What it stands
//! for is unknown: a tag directory that is a symbolic link hides a tag, and without it the
//! tag's manifest looks untagged. So the repository it sits in is incomplete, which keeps
//! every manifest of it out of any plan, and an unseen `revisions/` or `_layers/` entry makes
//! "no revision (or layer) link" no evidence of anything.

use stowage_model::inventory::Repository;

/// Mark the repositories that `unlisted` paths lie in (paths relative to the layout root).
pub(crate) fn mark_unseen_parts(repos: &mut [Repository], unlisted: &[String]) {
    for path in unlisted {
        let Some(rest) = path.strip_prefix("repositories/") else {
            continue;
        };
        // The repository is everything before its first `_` section.
        let comps: Vec<&str> = rest.split('/').collect();
        let Some(i) = comps.iter().position(|c| c.starts_with('_')) else {
            continue;
        };
        let name = comps[..i].join("/");
        let Ok(ri) = repos.binary_search_by(|r| r.name.as_str().cmp(&name)) else {
            continue;
        };
        let r = &mut repos[ri];
        r.complete = false;
        match comps.get(i..i + 2) {
            Some(["_manifests", "revisions"]) => r.revisions_listed = false,
            Some(["_layers", _]) => r.layers_listed = false,
            _ => {}
        }
    }
}
