//! A repo-move killed mid-apply (SIGABRT, no cleanup: `STOWAGE_TEST_KILL_AFTER=N` after the
//! N-th completed action, links and removals alike), then resumed by running the same apply
//! again: the end state is exactly the plan's (every planned link under the destination
//! with its planned digest and nothing else there, the source's sections gone) and the real
//! registry serves every kept image (`skopeo copy --all`), moved tags at their old digests.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real::Server;

fn stowage(storage: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file below `dir`, relative to `base`.
fn files(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(base, &p, out);
        } else {
            out.insert(p.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

const SRC: &str = "multiarch/tool";
const DST: &str = "moved/tool";

#[test]
fn a_move_killed_at_any_point_and_resumed_ends_exactly_as_planned() {
    // Kill points: after the first link, midway through the links, after the last link,
    // after the first source section is fenced.
    let probe = stowage_testkit::sample();
    let plan_file = probe.dir.path().join("plan.json");
    let plan = |root: &Path, file: &Path| -> Value {
        let o = stowage(
            root,
            &[
                "plan",
                "repo-move",
                SRC,
                DST,
                "--grace",
                "0s",
                "-o",
                file.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let n = plan(&probe.rootdirectory(), &plan_file)["surgery"]["links"]
        .as_array()
        .unwrap()
        .len();
    assert!(n >= 6, "{n} links");
    drop(probe);
    for kill in [1, n / 2, n, n + 1] {
        let s = stowage_testkit::sample();
        let root = s.rootdirectory();
        let server = Server::start(&root);
        let tags = ["1.0", "1.0-docker"];
        let before: Vec<u16> = tags
            .iter()
            .map(|t| server.manifest_status(SRC, t))
            .collect();
        assert_eq!(before, [200, 200]);
        let pf = s.dir.path().join("plan.json");
        let v = plan(&root, &pf);
        let apply = ["apply", pf.to_str().unwrap(), "--yes", "--offline"];
        let apply: Vec<&str> = apply
            .iter()
            .copied()
            .chain(["--registry-cache", "none"])
            .collect();
        let k = kill.to_string();
        let o = stowage(&root, &apply, &[("STOWAGE_TEST_KILL_AFTER", &k)]);
        assert_ne!(o.status.code(), Some(0), "kill {kill}: {}", text(&o));
        let o = stowage(&root, &apply, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "resume after {kill}: {}",
            text(&o)
        );
        // Exactly the plan's links under the destination, each with its planned digest.
        let v2 = root.join("docker/registry/v2");
        let planned: BTreeSet<String> = v["surgery"]["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let digest = l["digest"].as_str().unwrap();
                let path = match (l["kind"].as_str().unwrap(), l["tag"].as_str()) {
                    ("layer", _) => {
                        format!("repositories/{DST}/_layers/sha256/{}/link", &digest[7..])
                    }
                    ("revision", _) => format!(
                        "repositories/{DST}/_manifests/revisions/sha256/{}/link",
                        &digest[7..]
                    ),
                    ("tag-index", Some(t)) => format!(
                        "repositories/{DST}/_manifests/tags/{t}/index/sha256/{}/link",
                        &digest[7..]
                    ),
                    ("tag-current", Some(t)) => {
                        format!("repositories/{DST}/_manifests/tags/{t}/current/link")
                    }
                    other => panic!("{other:?}"),
                };
                assert_eq!(
                    std::fs::read_to_string(v2.join(&path)).unwrap(),
                    digest,
                    "kill {kill}: {path}"
                );
                path
            })
            .collect();
        let mut there = BTreeSet::new();
        files(&v2, &v2.join("repositories").join(DST), &mut there);
        assert_eq!(there, planned, "kill {kill}: files under {DST}");
        assert!(
            !v2.join("repositories").join(SRC).exists(),
            "kill {kill}: the source is gone"
        );
        // The registry: the moved tags serve, the source does not, every other image pulls.
        for t in tags {
            assert_eq!(
                server.manifest_status(DST, t),
                200,
                "kill {kill}: {DST}:{t}"
            );
            assert_eq!(
                server.manifest_status(SRC, t),
                404,
                "kill {kill}: {SRC}:{t}"
            );
        }
        let mut refs: Vec<String> = stowage_testkit::sample_api_state()["manifests"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|r| r.rsplit_once(':').unwrap().0 != SRC)
            .cloned()
            .collect();
        refs.extend(tags.iter().map(|t| format!("{DST}:{t}")));
        assert_eq!(server.pull_all(&refs), Vec::<String>::new(), "kill {kill}");
    }
}
