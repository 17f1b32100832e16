//! The golden cases: every command, every output format (see `golden.rs`).

use super::support::{Case, Step, Tree};

const FORMATS: [&str; 4] = ["table", "json", "ndjson", "csv"];
const POLICIES: [&str; 4] = [
    "ci-branches",
    "semver-releases",
    "signatures",
    "untagged-cleanup",
];

fn run(args: &[&str]) -> Step {
    Step::Run(args.iter().map(|s| s.to_string()).collect())
}

fn case(name: impl Into<String>, steps: Vec<Step>) -> Case {
    Case {
        name: name.into(),
        steps,
        serve: false,
    }
}

/// Every case for a tree. `$REPO`, `$TAG`, `$DIGEST`, `$OUT` (the case's scratch directory)
/// and `$WS` (the workspace) are expanded when run.
pub fn all(_tree: &Tree) -> Vec<Case> {
    let mut v = Vec::new();
    for f in FORMATS {
        let fmt = ["--format", f];
        let with = |args: &[&str]| -> Step {
            let mut a: Vec<&str> = fmt.to_vec();
            a.extend_from_slice(args);
            run(&a)
        };
        v.push(case(format!("inventory-{f}"), vec![with(&["inventory"])]));
        v.push(case(format!("du-{f}"), vec![with(&["du"])]));
        v.push(case(format!("check-{f}"), vec![with(&["check"])]));
        v.push(case(format!("tags-{f}"), vec![with(&["tags", "$REPO"])]));
        v.push(case(format!("gc-{f}"), vec![with(&["gc"])]));
        v.push(case(format!("gc-m-{f}"), vec![with(&["gc", "-m"])]));
        v.push(case(format!("metrics-{f}"), vec![with(&["metrics"])]));
        for p in POLICIES {
            let file = format!("$WS/examples/policies/{p}.yaml");
            v.push(case(
                format!("plan-{p}-{f}"),
                vec![with(&["plan", "--policy", &file])],
            ));
        }
    }
    v.push(case(
        "tags-history-json",
        vec![run(&["--format", "json", "tags", "--history", "$REPO"])],
    ));
    for (name, target) in [
        ("digest", "$DIGEST"),
        ("reference", "$REPO:$TAG"),
        (
            "path",
            "docker/registry/v2/repositories/$REPO/_manifests/tags/$TAG/current/link",
        ),
    ] {
        for f in ["table", "json"] {
            v.push(case(
                format!("explain-{name}-{f}"),
                vec![run(&["--format", f, "explain", target])],
            ));
        }
    }
    v.push(case(
        "gc-m-tidy-plan",
        vec![
            run(&["gc", "-m", "--tidy", "--out", "$OUT/plan.json"]),
            Step::File("plan.json"),
            run(&[
                "--format",
                "json",
                "explain",
                "$OUT/plan.json",
                "$REPO:$TAG",
            ]),
        ],
    ));
    for p in POLICIES {
        let file = format!("$WS/examples/policies/{p}.yaml");
        v.push(case(
            format!("plan-{p}-file"),
            vec![
                run(&["plan", "--policy", &file, "-o", "$OUT/plan.json"]),
                Step::File("plan.json"),
            ],
        ));
    }
    v.push(case(
        "report-html",
        vec![
            run(&["report", "--html", "$OUT/r.html", "--csv", "$OUT/r.csv"]),
            Step::File("r.html"),
            Step::File("r.csv"),
        ],
    ));
    v.push(case(
        "report-html-plan",
        vec![
            run(&["gc", "-m", "--out", "$OUT/plan.json"]),
            run(&[
                "report",
                "--html",
                "$OUT/r.html",
                "--plan",
                "$OUT/plan.json",
            ]),
            Step::File("r.html"),
        ],
    ));
    v.push(case("history", history_steps()));
    v.push(serve_case());
    v
}

/// Two snapshots a day apart, then `history`, `metrics --history` and `usage` on them.
fn history_steps() -> Vec<Step> {
    let mut steps = vec![
        run(&[
            "--now",
            "2026-10-01T00:00:00Z",
            "snapshot",
            "--db",
            "$OUT/h.db",
        ]),
        run(&["snapshot", "--db", "$OUT/h.db"]),
    ];
    for f in FORMATS {
        steps.push(run(&["--format", f, "history", "--db", "$OUT/h.db"]));
        steps.push(run(&["--format", f, "usage", "--db", "$OUT/h.db"]));
    }
    steps.push(run(&["metrics", "--history", "$OUT/h.db"]));
    steps
}

/// The dashboard's JSON API, page and metrics.
fn serve_case() -> Case {
    let gets = [
        "/api/v1/report",
        "/api/v1/repositories",
        "/api/v1/tags",
        "/api/v1/tags?repository=$REPO",
        "/api/v1/findings",
        "/api/v1/findings?kind=dangling_tag&offset=1&limit=2",
        "/api/v1/blobs",
        "/api/v1/blobs?sort=modified&order=asc&offset=3&limit=20",
        "/api/v1/blobs?q=sha256:0&sort=kind&limit=5",
        "/api/v1/blobs.csv",
        "/api/v1/usage",
        "/metrics",
        "/api/openapi.json",
        "/",
    ];
    Case {
        name: "serve".into(),
        steps: gets.iter().map(|g| Step::Get(g.to_string())).collect(),
        serve: true,
    }
}
