//! Golden outputs: every command in every format, on the committed sample and on a generated
//! 10k-blob tree, compared byte for byte with `tests/golden/`.
//!
//! Why: the analysed-registry refactor (issue 24) moves the whole pipeline from the binary
//! into the library; "no output changes" is only true if something fails when one does. A
//! change that alters an output on purpose re-records the goldens in the same commit and says
//! why (`STOWAGE_BLESS=1 cargo nextest run -p stowage-cli --test golden`).
//!
//! What is masked: only what differs between two runs of the same build on the same tree: the
//! temporary paths, and figures derived from file birth times (`created`), which are the time
//! the test extracted the tree. Large outputs (over [`INLINE_LIMIT`]) are kept as a SHA-256 with
//! their size and line count, so the repository does not carry megabytes of JSON; on a
//! mismatch the actual output is written under `target/golden-actual/` to diff.

#![allow(clippy::unwrap_used)]

#[path = "golden/cases.rs"]
mod cases;
#[path = "golden/support.rs"]
mod support;

use std::path::PathBuf;

use support::{Outcome, Tree};

/// Outputs bigger than this are stored as a hash.
const INLINE_LIMIT: usize = 64 * 1024;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn run_tree(tree: &Tree) -> Vec<String> {
    let bless = std::env::var_os("STOWAGE_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases::all(tree) {
        let actual = case.run(tree);
        match support::compare(&golden_dir(), &tree.name, &case.name, &actual, bless) {
            Outcome::Same | Outcome::Blessed => {}
            Outcome::Differs(why) => failures.push(format!("{}/{}: {why}", tree.name, case.name)),
        }
    }
    failures
}

#[test]
fn every_output_on_the_sample_is_unchanged() {
    let tree = Tree::sample();
    let failures = run_tree(&tree);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_output_on_a_generated_10k_blob_tree_is_unchanged() {
    let tree = Tree::generated(10_000);
    let failures = run_tree(&tree);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
