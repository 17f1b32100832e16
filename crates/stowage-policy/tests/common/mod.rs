//! A small registry builder with controlled dates, and a one-call "evaluate this policy".

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_policy::eval::{Decision, Inputs, LoadedSource, Outcome};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::{TreeBuilder, Written};

/// Fixed reference date: 2026-06-01T00:00:00Z.
pub const T0: i64 = 1_780_272_000;
pub const DAY: i64 = 86400;

pub fn at(days: i64) -> Timestamp {
    Timestamp::from_secs(T0 + days * DAY)
}

pub struct Reg {
    pub dir: tempfile::TempDir,
    pub t: TreeBuilder,
    n: u32,
}

fn set_mtime(path: &std::path::Path, t: Timestamp) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let st = SystemTime::UNIX_EPOCH + Duration::from_secs(t.secs() as u64);
    f.set_modified(st).unwrap();
}

impl Reg {
    pub fn new() -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let t = TreeBuilder::new(dir.path());
        Reg { dir, t, n: 0 }
    }

    /// Push a single-platform image pushed (and tagged) on day `day` (relative to T0).
    pub fn push(&mut self, repo: &str, tag: Option<&str>, day: i64) -> Written {
        self.n += 1;
        let config = self
            .t
            .blob(format!("{{\"created\":\"2020-01-01T00:00:00Z\",\"n\":{}}}", self.n).as_bytes());
        let layer = self
            .t
            .layer(&format!("layer{}", self.n), 1000 + self.n as usize);
        let base = self.t.layer("shared-base", 5000);
        let w = self.t.image(repo, None, &config, &[&base, &layer]);
        set_mtime(
            &self.t.path(&layout::revision_link(repo, &w.digest())),
            at(day),
        );
        if let Some(tag) = tag {
            self.tag(repo, tag, &w, day);
        }
        w
    }

    /// Point `tag` at `w` on day `day`.
    pub fn tag(&self, repo: &str, tag: &str, w: &Written, day: i64) {
        self.t.tag(repo, tag, &w.digest());
        set_mtime(&self.t.path(&layout::tag_current_link(repo, tag)), at(day));
        set_mtime(
            &self.t.path(&layout::tag_index_link(repo, tag, &w.digest())),
            at(day),
        );
    }

    /// A two-platform index (children untagged) pushed on `day`.
    pub fn push_index(
        &mut self,
        repo: &str,
        tag: Option<&str>,
        day: i64,
    ) -> (Written, Written, Written) {
        let a = self.push(repo, None, day);
        let b = self.push(repo, None, day);
        let i = self.t.index(repo, None, &[(&a, "amd64"), (&b, "arm64")]);
        set_mtime(
            &self.t.path(&layout::revision_link(repo, &i.digest())),
            at(day),
        );
        if let Some(tag) = tag {
            self.tag(repo, tag, &i, day);
        }
        (i, a, b)
    }

    /// An OCI referrer (signature) of `subject`, untagged, pushed on `day`.
    pub fn referrer(&mut self, repo: &str, subject: &Written, day: i64) -> Written {
        self.n += 1;
        let sig = self.t.blob(format!("sig {}", self.n).as_bytes());
        let empty = self.t.blob(b"{}");
        self.t.link_layer(repo, &sig.digest());
        self.t.link_layer(repo, &empty.digest());
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{}","size":{}}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}}}"#,
            empty.digest, sig.digest, sig.size, subject.digest, subject.size
        );
        let w = self.t.manifest(repo, None, body.as_bytes());
        set_mtime(
            &self.t.path(&layout::revision_link(repo, &w.digest())),
            at(day),
        );
        w
    }

    pub fn scan(&self) -> Inventory {
        let s = FsStorage::open(&self.t.root).unwrap();
        scan(
            &s,
            &ScanOptions {
                concurrency: 2,
                verify_links: false,
                ..Default::default()
            },
            &Progress::default(),
        )
        .unwrap()
    }

    pub fn storage(&self) -> FsStorage {
        FsStorage::open(&self.t.root).unwrap()
    }
}

pub fn compile(yaml: &str) -> stowage_policy::Compiled {
    let f = stowage_policy::parse(yaml).unwrap_or_else(|e| panic!("parse: {e}"));
    stowage_policy::compile(&f).unwrap_or_else(|e| panic!("compile: {e}"))
}

pub fn compile_err(yaml: &str) -> String {
    match stowage_policy::parse(yaml) {
        Err(e) => e.to_string(),
        Ok(f) => match stowage_policy::compile(&f) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected the policy to be refused:\n{yaml}"),
        },
    }
}

pub fn eval_with(
    inv: &Inventory,
    yaml: &str,
    now: Timestamp,
    sources: &[LoadedSource],
    created: &HashMap<u32, Timestamp>,
) -> Result<Outcome, String> {
    let p = compile(yaml);
    let g = Graph::new(inv);
    stowage_policy::evaluate(
        &p,
        &Inputs {
            graph: &g,
            now,
            created,
            built: &HashMap::new(),
            facts: &HashMap::new(),
            in_use: sources,
            unsafe_allow_empty: false,
            pulls: None,
        },
    )
    .map_err(|e| e.to_string())
}

pub fn eval(inv: &Inventory, yaml: &str, now: Timestamp) -> Outcome {
    eval_with(inv, yaml, now, &[], &HashMap::new()).unwrap()
}

/// `repo:tag` -> `keep` / `remove`, and `repo@<12 hex>` -> image decision (untagged images
/// and every image).
pub fn decisions(inv: &Inventory, o: &Outcome) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for im in &o.images {
        let repo = inv.repositories[im.repo as usize].name.to_string();
        let d = inv.digest(im.digest).to_string();
        m.insert(
            format!("{repo}@{}", &d[7..19]),
            im.decision.as_str().to_string(),
        );
        for t in &im.tags {
            m.insert(
                format!("{repo}:{}", t.tag),
                if t.remove { "remove" } else { "keep" }.to_string(),
            );
        }
        for c in &im.cascade {
            let cd = inv.digest(c.digest).to_string();
            m.insert(
                format!("{repo}@{} ({})", &cd[7..19], c.role),
                if c.delete { "delete" } else { "keep" }.to_string(),
            );
        }
    }
    m
}

pub fn tag_decision(inv: &Inventory, o: &Outcome, reference: &str) -> String {
    decisions(inv, o)
        .get(reference)
        .cloned()
        .unwrap_or_else(|| panic!("{reference} not in {:#?}", decisions(inv, o)))
}

pub fn image_decision(inv: &Inventory, o: &Outcome, repo: &str, w: &Written) -> Decision {
    let id = inv.id_of(&w.digest()).unwrap();
    o.images
        .iter()
        .find(|i| inv.repositories[i.repo as usize].name.as_str() == repo && i.digest == id)
        .map(|i| i.decision)
        .unwrap_or_else(|| panic!("{repo}@{} is not a top-level image", w.digest))
}

pub fn reasons_of_tag(inv: &Inventory, o: &Outcome, repo: &str, tag: &str) -> Vec<String> {
    o.images
        .iter()
        .filter(|i| inv.repositories[i.repo as usize].name.as_str() == repo)
        .flat_map(|i| i.tags.iter())
        .find(|t| t.tag == tag)
        .map(|t| t.reasons.clone())
        .unwrap_or_default()
}

/// Header with no floor (tests that want it set it themselves).
pub fn header(extra_protections: &str) -> String {
    format!(
        "apiVersion: retention.v1\nkind: RetentionPolicy\nprotections:\n  keep_newest_per_repository: 0\n  allow_empty_repository: false\n{extra_protections}\n"
    )
}

pub fn eval_pulls(
    inv: &Inventory,
    yaml: &str,
    now: Timestamp,
    pulls: &stowage_policy::PullData,
) -> Result<Outcome, String> {
    let p = compile(yaml);
    let g = Graph::new(inv);
    stowage_policy::evaluate(
        &p,
        &Inputs {
            graph: &g,
            now,
            created: &HashMap::new(),
            built: &HashMap::new(),
            facts: &HashMap::new(),
            in_use: &[],
            unsafe_allow_empty: false,
            pulls: Some(pulls),
        },
    )
    .map_err(|e| e.to_string())
}
