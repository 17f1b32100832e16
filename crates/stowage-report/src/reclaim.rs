//! "Reclaimable now" and the manager's sentence, from the plans the offered commands make.
//!
//! Why plans and not the summary's counters: the cards used to add up what the registry's GC
//! would delete with no grace period and counted every untagged revision, while the command
//! they offered held back recent blobs and kept platform children: the card said 2.6 KiB,
//! the command freed 0 B (issue 19 items 3 and 12). Each card is now the plan its command
//! makes, built by [`stowage_plan::gc::build`] with the same options and the same `now`, so
//! the figure is what that command then does, by construction.
//!
//! ```no_run
//! # fn f(g: &stowage_graph::Graph<'_>, now: stowage_model::time::Timestamp) {
//! let limits = stowage_report::overview::Limits::default();
//! let r = stowage_report::reclaim::reclaimable(g, &limits, now);
//! println!("{} bytes freed by `{}`", r.cards[0].bytes, r.cards[0].command);
//! # }
//! ```

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_plan::gc::{self, GcOptions};

use crate::overview::{Limits, Reclaimable, shell_quote};

/// The cards, and what the plain GC plan (the safe step) frees and holds back.
pub struct Reclaim {
    pub cards: Vec<Reclaimable>,
    /// Bytes the plain `gc` plan frees (unreferenced blobs past the grace period).
    pub safe_bytes: u64,
    /// Extra bytes `gc --delete-untagged` frees beyond `safe_bytes`.
    pub untagged_bytes: u64,
    /// The same per repository: the `untagged` blobs of that plan reachable from the
    /// manifests it deletes in the repository (the repository table's "untagged" bytes).
    pub untagged_by_repository: std::collections::BTreeMap<String, u64>,
}

/// One sentence and the commands that act on it, at the top of the report and dashboard.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Headline {
    /// "412 GiB in 18,204 blobs; 96 GiB (23%) can be freed safely now; ..."
    pub sentence: String,
    /// The next commands, in order (none when nothing can be freed safely).
    pub steps: Vec<Step>,
    /// The figures of the sentence: blobs, uploads and other files on disk.
    pub storage_bytes: u64,
    pub blobs: u64,
    /// What the first step's plan frees (the "unreferenced" card's command).
    pub safe_bytes: u64,
    /// What `gc --delete-untagged` frees beyond it.
    pub untagged_bytes: u64,
    /// A retention plan shown in the report: its name and what it frees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<(String, u64)>,
    #[serde(default)]
    pub metadata_database: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    /// A shell command, or empty when the step is not one (read the plan).
    pub command: String,
}

/// `1h`, `7d`, `90m`, `30s`: the shortest exact form the CLI's `--grace` parses.
pub fn duration_arg(secs: i64) -> String {
    match secs {
        s if s > 0 && s % 86400 == 0 => format!("{}d", s / 86400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{}s", s.max(0)),
    }
}

/// The directory that holds `docker/registry/v2` (the registry's `rootdirectory`), for the
/// quarantine beside it (same filesystem, so the moves are renames).
fn rootdirectory(layout_root: &str) -> &str {
    layout_root
        .trim_end_matches('/')
        .strip_suffix("docker/registry/v2")
        .map(|r| r.trim_end_matches('/'))
        .filter(|r| !r.is_empty())
        .unwrap_or(layout_root)
}

/// The apply command every card offers: quarantine (restorable) and the registry restart
/// its blob descriptor cache needs (README, "apply").
pub fn apply_command(root: &str) -> String {
    let root_q = shell_quote(root);
    // An object store keeps its batch under `<rootdirectory>/stowage-quarantine/` itself.
    let keep = if root.contains("://") {
        "--keep-quarantine 7d".to_string()
    } else {
        format!(
            "--quarantine {}",
            shell_quote(&format!("{}/stowage-quarantine", rootdirectory(root)))
        )
    };
    format!(
        "stowage --storage {root_q} apply {keep} --registry-restart 'systemctl restart docker-registry' plan.json"
    )
}

/// The cards, each from the plan its command makes (same grace, same `-m` semantics): three
/// always, and the orphaned signatures' when there are some.
pub fn reclaimable(g: &Graph<'_>, limits: &Limits, now: Timestamp) -> Reclaim {
    let root = &g.inv.root;
    let root_q = shell_quote(root);
    let grace = duration_arg(limits.grace_seconds);
    let apply = apply_command(root);
    let stale_days = limits.stale_upload_secs / 86400;
    let opts = GcOptions {
        grace_seconds: limits.grace_seconds,
        ..GcOptions::default()
    };
    let plain = gc::build(g, &opts, now);
    let untagged = gc::build(
        g,
        &GcOptions {
            delete_untagged: true,
            ..opts.clone()
        },
        now,
    );
    let uploads = gc::build(
        g,
        &GcOptions {
            uploads_older_than_seconds: Some(limits.stale_upload_secs),
            ..opts.clone()
        },
        now,
    );
    let blocked = |p: &stowage_plan::Plan| {
        if p.blocked.is_empty() {
            String::new()
        } else {
            format!(" Nothing is planned: {}.", p.blocked.join("; "))
        }
    };
    let held = |b: u64| {
        if b > 0 {
            format!(
                " {} modified within the grace period ({grace}) is held back.",
                human_bytes(b)
            )
        } else {
            String::new()
        }
    };
    let untagged_bytes = untagged.blob_bytes.saturating_sub(plain.blob_bytes);
    // A fourth plan only where a tag looks like a signature's: most registries have none,
    // and the report should not pay a whole GC plan for nothing.
    let any_signature = g.inv.repositories.iter().any(|r| {
        r.tags
            .iter()
            .any(|t| stowage_model::signature::subject(&t.name).is_some())
    });
    let signatures = any_signature.then(|| {
        gc::build(
            g,
            &GcOptions {
                delete_untagged: true,
                orphan_signatures: true,
                ..opts.clone()
            },
            now,
        )
    });
    let mut cards = vec![
        Reclaimable {
            reason: "unreferenced".into(),
            title: "Unreferenced blobs".into(),
            bytes: plain.blob_bytes,
            count: plain.blobs.len() as u64,
            command: format!("stowage --storage {root_q} gc --grace {grace} --out plan.json"),
            apply: apply.clone(),
            note: format!(
                "No manifest in any repository needs them: what the registry's own garbage-collect deletes, less what was written in the last {grace}.{}{}",
                held(plain.held_back.blob_bytes),
                blocked(&plain)
            ),
            plan_bytes: plain.bytes,
            held_back_bytes: plain.held_back.blob_bytes,
            grace_seconds: limits.grace_seconds,
        },
        Reclaimable {
            reason: "untagged".into(),
            title: "Untagged manifests' exclusive bytes".into(),
            bytes: untagged_bytes,
            count: untagged.manifests.len() as u64,
            command: format!(
                "stowage --storage {root_q} gc --delete-untagged --grace {grace} --out plan.json"
            ),
            apply: apply.clone(),
            note: format!(
                "Needed only by manifests no tag points at; platform children and signatures of tagged images are kept, so they are not counted. The plan also includes the unreferenced blobs: {} in all.{}{}",
                human_bytes(untagged.bytes),
                held(untagged.held_back.blob_bytes),
                blocked(&untagged)
            ),
            plan_bytes: untagged.bytes,
            held_back_bytes: untagged.held_back.blob_bytes,
            grace_seconds: limits.grace_seconds,
        },
        Reclaimable {
            reason: "stale_uploads".into(),
            title: format!("Uploads older than {stale_days} days"),
            bytes: uploads.upload_bytes,
            count: uploads.uploads.len() as u64,
            command: format!(
                "stowage --storage {root_q} gc --uploads-older-than {stale_days}d --grace {grace} --out plan.json"
            ),
            apply,
            note: format!(
                "Abandoned pushes under _uploads. The plan also includes the unreferenced blobs: {} in all.{}",
                human_bytes(uploads.bytes),
                held(uploads.held_back.upload_bytes)
            ),
            plan_bytes: uploads.bytes,
            held_back_bytes: uploads.held_back.upload_bytes,
            grace_seconds: limits.grace_seconds,
        },
    ];
    // Signatures whose subject was deleted: shown only when there are some (issue 23), so
    // a registry without any reads as before.
    if let Some(signatures) = signatures.filter(|p| !p.tags.is_empty()) {
        cards.push(Reclaimable {
            reason: "orphaned_signatures".into(),
            title: "Signatures of deleted images".into(),
            bytes: signatures.blob_bytes.saturating_sub(untagged.blob_bytes),
            count: signatures.tags.len() as u64,
            command: format!(
                "stowage --storage {root_q} gc --delete-untagged --orphan-signatures --grace {grace} --out plan.json"
            ),
            apply: apply_command(root),
            note: format!(
                "Signature, attestation and SBOM tags (cosign's sha256-<hex>.sig/.att/.sbom, referrers-tag-schema indexes) whose image was deleted here: the registry's GC keeps them forever because they are tags. Signatures of images this storage never held are kept. The plan also includes the untagged manifests and unreferenced blobs: {} in all.{}",
                human_bytes(signatures.bytes),
                held(signatures.held_back.blob_bytes)
            ),
            plan_bytes: signatures.bytes,
            held_back_bytes: signatures.held_back.blob_bytes,
            grace_seconds: limits.grace_seconds,
        });
    }
    Reclaim {
        safe_bytes: plain.bytes,
        untagged_bytes,
        untagged_by_repository: untagged_by_repository(g, &untagged),
        cards,
    }
}

/// Bytes of `plan`'s untagged blobs reachable from the manifests it deletes, per repository.
fn untagged_by_repository(
    g: &Graph<'_>,
    plan: &stowage_plan::Plan,
) -> std::collections::BTreeMap<String, u64> {
    let inv = g.inv;
    let mut size: std::collections::HashMap<u32, u64> = Default::default();
    for b in plan.blobs.iter().filter(|b| b.reason == "untagged") {
        if let Some(id) = inv.id_of(&b.digest) {
            size.insert(id, b.size);
        }
    }
    let mut roots: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
    for m in &plan.manifests {
        if let Some(id) = inv.id_of(&m.digest) {
            roots.entry(m.repository.as_str()).or_default().push(id);
        }
    }
    let mut scratch = stowage_graph::Scratch::new(g.len());
    roots
        .into_iter()
        .map(|(repo, ids)| {
            let mut bytes = 0;
            g.for_each_descendant_of_all(&ids, &mut scratch, |b| {
                bytes += size.get(&b).copied().unwrap_or(0)
            });
            (repo.to_string(), bytes)
        })
        .collect()
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A percentage of `part` in `whole`, rounded; "<1%" for a small non-zero share.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 || part == 0 {
        return "0%".into();
    }
    let p = (part as f64 * 100.0 / whole as f64).round();
    if p < 1.0 {
        "<1%".into()
    } else {
        format!("{p:.0}%")
    }
}

/// The manager's sentence and the next commands, from the cards.
pub fn headline(storage_bytes: u64, blobs: u64, r: &Reclaim, metadata_database: bool) -> Headline {
    let mut h = Headline {
        storage_bytes,
        blobs,
        safe_bytes: r.safe_bytes,
        untagged_bytes: r.untagged_bytes,
        retention: None,
        metadata_database,
        ..Headline::default()
    };
    if !metadata_database
        && r.safe_bytes > 0
        && let Some(card) = r.cards.first()
    {
        h.steps = vec![
            Step {
                what: "Plan it (read-only; the plan lists every file and its bytes)".into(),
                command: card.command.clone(),
            },
            Step {
                what: "Apply it: targets are re-checked, moved to a quarantine you can restore, and the registry is restarted so its cache forgets them".into(),
                command: card.apply.clone(),
            },
        ];
    }
    h.render();
    h
}

impl Headline {
    /// Add what a retention plan shown in the report frees (`report --plan` of a retention
    /// plan): "; 140 GiB more under <name>".
    pub fn add_retention(&mut self, name: &str, bytes: u64) {
        self.retention = Some((name.to_string(), bytes));
        self.render();
    }

    /// The storage's links are not the registry's metadata: no step, and the sentence says so.
    pub fn filesystem_metadata_only(&mut self) {
        self.metadata_database = true;
        self.steps.clear();
        self.render();
    }

    fn render(&mut self) {
        let mut s = format!(
            "{} in {} blobs; {} ({}) can be freed safely now",
            human_bytes(self.storage_bytes),
            thousands(self.blobs),
            human_bytes(self.safe_bytes),
            share(self.safe_bytes, self.storage_bytes),
        );
        if self.untagged_bytes > 0 {
            s.push_str(&format!(
                "; {} more by deleting untagged manifests",
                human_bytes(self.untagged_bytes)
            ));
        }
        if let Some((name, bytes)) = &self.retention {
            s.push_str(&format!("; {} more under {name}", human_bytes(*bytes)));
        }
        s.push('.');
        if self.metadata_database {
            s.push_str(" These figures are from filesystem metadata only: stowage plans no deletion on this registry.");
        }
        self.sentence = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_figures() {
        assert_eq!(duration_arg(3600), "1h");
        assert_eq!(duration_arg(7 * 86400), "7d");
        assert_eq!(duration_arg(0), "0s");
        assert_eq!(duration_arg(90), "90s");
        assert_eq!(thousands(18_204), "18,204");
        assert_eq!(thousands(999), "999");
        assert_eq!(share(96, 412), "23%");
        assert_eq!(share(1, 1000), "<1%");
        assert_eq!(
            rootdirectory("/var/lib/registry/docker/registry/v2"),
            "/var/lib/registry"
        );
        assert_eq!(rootdirectory("s3://b/root"), "s3://b/root");
    }
}
