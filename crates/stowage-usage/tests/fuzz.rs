//! Property tests of the pull-data inputs on hostile input (issue 25, fuzzing): the access-log
//! line parser, the bounded line reader and the notification body parser never panic, and
//! the reader never holds more than its limit. Bounded for CI.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

/// Cases per property: `default` in CI; `STOWAGE_FUZZ_CASES=100000` for a longer run.
fn cases(default: u32) -> u32 {
    std::env::var("STOWAGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
use stowage_model::time::Timestamp;
use stowage_usage::{Filter, LineRead, Window, parse_envelope_within, parse_line, read_line};

fn event() -> serde_json::Value {
    serde_json::json!({"id": "e1", "timestamp": "2026-11-30T10:00:00Z", "action": "pull",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e",
                   "repository": "library/base", "tag": "1.0"},
        "request": {"id": "r1", "addr": "10.0.0.1:1", "method": "GET", "useragent": "docker"},
        "actor": {"name": "ci"}})
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,9}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// Long hostile lines (quotes, escapes, separators) never panic the line parser.
    #[test]
    fn access_log_parser_never_panics_on_long_hostile_lines(
        s in "[\"\\\\= a-z0-9:/{}\\[\\],.\\-]{0,4000}",
    ) {
        let _ = parse_line(&s);
        let _ = parse_line(&format!("time=\"{s}\" level=info msg=\"response completed\" http.request.uri={s}"));
        let _ = parse_line(&format!("{{\"log\":{s:?},\"time\":\"2026-11-30T10:00:00Z\"}}"));
    }

    /// The bounded reader: every call holds at most `max` bytes, and the lines it returns,
    /// joined with what it skipped, are the input's lines (it resynchronises at newlines).
    #[test]
    fn bounded_reader_holds_at_most_its_limit(
        input in prop::collection::vec(prop_oneof![Just(b'\n'), Just(0u8), any::<u8>()], 0..5000),
        max in 1usize..300,
        cap in 1usize..64,
    ) {
        let mut r = std::io::BufReader::with_capacity(cap, &input[..]);
        let mut buf = Vec::new();
        let expected: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
        let mut n = 0;
        loop {
            match read_line(&mut r, &mut buf, max).unwrap() {
                LineRead::Eof => break,
                LineRead::Line => {
                    prop_assert!(buf.len() <= max);
                    prop_assert_eq!(&buf[..], expected[n]);
                }
                LineRead::TooLong => {
                    prop_assert!(buf.len() <= max);
                    prop_assert!(expected[n].len() > max);
                }
            }
            n += 1;
        }
        prop_assert_eq!(n, expected.len());
    }

    /// Envelopes with arbitrary values in every field (wrong JSON types included) are
    /// recorded, skipped or refused, never a panic; arbitrary bytes are refused.
    #[test]
    fn notification_parser_never_panics_on_wrong_types(
        field in prop::sample::select(vec!["id", "timestamp", "action", "target", "request", "actor", "mediaType", "digest", "repository", "tag"]),
        v in json_value(),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut e = event();
        match field {
            "mediaType" | "digest" | "repository" | "tag" => e["target"][field] = v.clone(),
            f => e[f] = v.clone(),
        }
        let f = Filter::default();
        let w = Window::new(Timestamp::from_secs(0), Timestamp::from_secs(4_000_000_000), 900);
        for body in [
            serde_json::json!({"events": [e.clone()]}),
            serde_json::json!({"events": v.clone()}),
            v.clone(),
        ] {
            let _ = parse_envelope_within(body.to_string().as_bytes(), &f, Some(w));
        }
        let _ = parse_envelope_within(&bytes, &f, None);
    }
}
