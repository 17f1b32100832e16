//! Property tests of the policy parser on hostile input (issue 25, fuzzing): arbitrary text,
//! YAML-shaped noise and mutations of a real policy never panic; whatever parses compiles or
//! is refused with an error. Bounded for CI: a few hundred cases of inputs up to a few KiB.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

/// Cases per property: `default` in CI; `STOWAGE_FUZZ_CASES=100000` for a longer run.
fn cases(default: u32) -> u32 {
    std::env::var("STOWAGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const POLICY: &str = r#"apiVersion: retention.v1
kind: RetentionPolicy
settings: {time_source: tag_updated}
protections:
  keep_newest_per_repository: 1
  immutable_tags: ["glob:latest", "regex:v\\d+\\.\\d+"]
policies:
  - id: ci
    scope: {repositories: ["glob:apps/**", "!glob:apps/sandbox/**"]}
    select: {tags: ["regex:(?P<branch>[a-z0-9._-]+)-[0-9a-f]{7,40}"]}
    keep:
      - id: recent
        group_by: [branch]
        all: [{last: 5}, {within: 30d}]
    delete:
      - id: stale
        older_than: 14d
    otherwise: keep
"#;

fn check(text: &str) {
    if let Ok(f) = stowage_policy::parse(text) {
        let _ = stowage_policy::compile(&f);
        let _ = stowage_policy::lint::lint(&f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn policy_parser_never_panics_on_arbitrary_text(s in "\\PC{0,2000}") {
        check(&s);
    }

    #[test]
    fn policy_parser_never_panics_on_yaml_shaped_noise(s in "[\\[\\]{}:,\\-'\"#&*!|>? \\n a-z0-9]{0,3000}") {
        check(&s);
    }

    /// A real policy with a slice replaced by noise: the hard cases are near-valid files.
    #[test]
    fn policy_parser_never_panics_on_mutated_policies(
        at in 0usize..POLICY.len(),
        cut in 0usize..40,
        junk in "[\\[\\]{}:,\\-'\"*?!\\\\()a-z0-9 \\n]{0,40}",
    ) {
        let at = (0..=at).rev().find(|&i| POLICY.is_char_boundary(i)).unwrap_or(0);
        let end = (at + cut).min(POLICY.len());
        let end = (end..=POLICY.len()).find(|&i| POLICY.is_char_boundary(i)).unwrap_or(POLICY.len());
        let mut m = POLICY[..at].to_string();
        m.push_str(&junk);
        m.push_str(&POLICY[end..]);
        check(&m);
    }

    /// Patterns in a policy: any text, including brace and group bombs, is a pattern or an
    /// error (never a panic in globset or regex).
    #[test]
    fn every_pattern_compiles_or_is_refused(p in "[{}\\[\\]()*?!,a\\\\|+]{0,600}") {
        for prefix in ["glob:", "regex:"] {
            let text = format!(
                "apiVersion: retention.v1\nkind: RetentionPolicy\npolicies:\n  - id: p\n    scope: {{repositories: [{:?}]}}\n    otherwise: delete\n",
                format!("{prefix}{p}")
            );
            check(&text);
        }
    }
}
