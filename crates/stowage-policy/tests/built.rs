//! `time_source: built`: the build date read from each image's config (through
//! `stowage_scan::read_build_dates`, as the plan reads it), as a table at two `now` values.
//! Every file is dated the same day (a copied registry): only the build dates differ.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::*;
use stowage_graph::Graph;
use stowage_model::Timestamp;
use stowage_policy::eval::{Decision, Inputs};

fn rfc(t: Timestamp) -> String {
    t.rfc3339()
}

#[test]
fn built_ages_images_by_their_config_dates_at_two_nows() {
    let r = Reg::new();
    let base = r.t.layer("base", 3000);
    // (tag, config JSON): pushed (all files) on day 0, built on various days.
    let cases: Vec<(&str, String)> = vec![
        ("old", format!(r#"{{"created":"{}"}}"#, rfc(at(-400)))),
        ("mid", format!(r#"{{"created":"{}"}}"#, rfc(at(-100)))),
        ("new", format!(r#"{{"created":"{}"}}"#, rfc(at(-10)))),
        (
            "repro",
            r#"{"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z"}]}"#
                .into(),
        ),
        (
            "steps",
            format!(
                r#"{{"history":[{{"created":"{}"}},{{"created":"{}"}}]}}"#,
                rfc(at(-500)),
                rfc(at(-300))
            ),
        ),
        ("future", format!(r#"{{"created":"{}"}}"#, rfc(at(150)))),
        ("nodate", r#"{"architecture":"amd64"}"#.into()),
    ];
    let mut written = Vec::new();
    for (i, (tag, cfg)) in cases.iter().enumerate() {
        let config = r.t.blob(cfg.as_bytes());
        let layer = r.t.layer(&format!("l{i}"), 100 + i);
        let w = r.t.image("app", None, &config, &[&base, &layer]);
        let link = r.t.path(&stowage_layout::revision_link("app", &w.digest()));
        let f = std::fs::OpenOptions::new().write(true).open(link).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at(0).secs() as u64))
            .unwrap();
        r.tag("app", tag, &w, 0);
        written.push((*tag, w));
    }
    let inv = r.scan();
    let policy = header("")
        + r#"settings:
  time_source: built
policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    delete:
      - id: old
        older_than: 180d
    otherwise: keep
"#;
    let compiled = compile(&policy);
    let g = Graph::new(&inv);
    // (tag, decision at day 0, decision at day 200)
    let table = [
        ("old", Decision::Delete, Decision::Delete),
        // 100 days old at day 0, 300 at day 200.
        ("mid", Decision::Keep, Decision::Delete),
        // 10 days old at day 0, 210 at day 200.
        ("new", Decision::Keep, Decision::Delete),
        // A placeholder date is unknown: kept, never aged from 1970.
        ("repro", Decision::Keep, Decision::Keep),
        // No created: the newest dated build step (day -300).
        ("steps", Decision::Delete, Decision::Delete),
        // After now at day 0 (unknown: kept); 50 days old at day 200.
        ("future", Decision::Keep, Decision::Keep),
        ("nodate", Decision::Keep, Decision::Keep),
    ];
    for (col, now) in [(0, at(0)), (1, at(200))] {
        let dates = stowage_scan::read_build_dates(&r.storage(), &inv, now, 2);
        let built: HashMap<u32, Timestamp> = dates
            .by_manifest
            .iter()
            .filter_map(|(&id, b)| Some((id, b.date.at()?)))
            .collect();
        let o = stowage_policy::evaluate(
            &compiled,
            &Inputs {
                graph: &g,
                now,
                created: &HashMap::new(),
                built: &built,
                facts: &HashMap::new(),
                in_use: &[],
                unsafe_allow_empty: false,
                pulls: None,
            },
        )
        .unwrap();
        for (tag, at0, at200) in &table {
            let w = &written.iter().find(|(t, _)| t == tag).unwrap().1;
            let want = if col == 0 { at0 } else { at200 };
            assert_eq!(
                &image_decision(&inv, &o, "app", w),
                want,
                "{tag} at now #{col}"
            );
        }
    }
    // The same files aged by `pushed` (the copy day) see no difference between the images.
    let pushed = eval(&inv, &policy.replace("built", "pushed"), at(200));
    for (tag, w) in &written {
        assert_eq!(
            image_decision(&inv, &pushed, "app", w),
            Decision::Delete,
            "{tag}"
        );
    }
}
