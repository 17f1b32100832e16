//! Property tests of the path grammar and the link parser (issue 25, "our own fuzzing"): no
//! panic on any input, and round trips: every path the builders make classifies back to what
//! it was built from, and a link parses exactly when its bytes are a digest's canonical form.
//!
//! Bounded for CI by proptest's case count (`PROPTEST_CASES` raises it for a longer run).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use stowage_layout::{self as layout, Part, PathInfo, classify, parse_link};
use stowage_model::digest::{Digest, Sha256};

fn sha() -> impl Strategy<Value = Sha256> {
    proptest::array::uniform32(any::<u8>()).prop_map(|b| Sha256::of(&b))
}

fn digest() -> impl Strategy<Value = Digest> {
    (sha(), 0..3u8).prop_map(|(h, alg)| {
        let hex = h.hex();
        match alg {
            0 => Digest::Sha256(h),
            1 => Digest::from_parts("sha384", &(hex.clone() + &hex[..32])).unwrap(),
            _ => Digest::from_parts("sha512", &(hex.clone() + &hex)).unwrap(),
        }
    })
}

/// Repository names of the registry's grammar: components of [a-z0-9] with separators.
fn repo() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?", 1..4).prop_map(|v| v.join("/"))
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

/// Path components, odd ones included.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("blobs".to_string()),
        Just("repositories".to_string()),
        Just("sha256".to_string()),
        Just("_manifests".to_string()),
        Just("_layers".to_string()),
        Just("_uploads".to_string()),
        Just("revisions".to_string()),
        Just("tags".to_string()),
        Just("index".to_string()),
        Just("current".to_string()),
        Just("link".to_string()),
        Just("data".to_string()),
        Just("..".to_string()),
        Just(String::new()),
        "[0-9a-fA-F]{1,3}",
        "[0-9a-f]{64}",
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn classify_never_panics_on_any_string(s in "\\PC{0,300}") {
        let _ = classify(&s);
    }

    #[test]
    fn classify_never_panics_on_grammar_like_paths(
        parts in proptest::collection::vec(component(), 0..12)
    ) {
        let _ = classify(&parts.join("/"));
    }

    #[test]
    fn classify_round_trips_every_builder(h in sha(), d in digest(), r in repo(), t in tag()) {
        let sd = Digest::Sha256(h);
        prop_assert_eq!(
            classify(&layout::blob_data(&h)),
            PathInfo::Blob { digest: sd.clone(), part: Part::File }
        );
        prop_assert_eq!(
            classify(&layout::blob_dir(&h)),
            PathInfo::Blob { digest: sd.clone(), part: Part::Dir }
        );
        prop_assert_eq!(
            classify(&layout::layer_link(&r, &d)),
            PathInfo::LayerLink { repo: r.clone(), digest: d.clone(), part: Part::File }
        );
        prop_assert_eq!(
            classify(&layout::revision_link(&r, &sd)),
            PathInfo::RevisionLink { repo: r.clone(), digest: sd.clone(), part: Part::File }
        );
        prop_assert_eq!(
            classify(&layout::tag_current_link(&r, &t)),
            PathInfo::TagCurrent { repo: r.clone(), tag: t.clone() }
        );
        prop_assert_eq!(
            classify(&layout::tag_index_link(&r, &t, &sd)),
            PathInfo::TagIndexEntry { repo: r.clone(), tag: t.clone(), digest: sd.clone(), part: Part::File }
        );
    }

    /// Issue 25 item 5 at the grammar: only the digest's own two-digit fan-out is a blob.
    #[test]
    fn blob_placement_only_the_exact_fan_out_classifies_as_a_blob(h in sha(), len in 0usize..5) {
        let hex = h.hex();
        let shard = &hex[..len];
        let info = classify(&format!("blobs/sha256/{shard}/{hex}/data"));
        prop_assert_eq!(matches!(info, PathInfo::Blob { .. }), len == 2);
        let upper = format!("blobs/sha256/{}/{hex}/data", hex[..2].to_uppercase());
        prop_assert_eq!(
            matches!(classify(&upper), PathInfo::Blob { .. }),
            hex[..2] == hex[..2].to_uppercase()
        );
    }

    #[test]
    fn parse_link_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_link(&bytes);
    }

    #[test]
    fn parse_link_round_trips_and_accepts_only_canonical_bytes(
        d in digest(),
        noise in proptest::collection::vec(any::<u8>(), 0..4),
        at in any::<prop::sample::Index>(),
    ) {
        let text = d.to_string();
        prop_assert_eq!(parse_link(text.as_bytes()), Ok(d.clone()));
        // Whatever is accepted is exactly the canonical text of what it parsed to.
        let mut bytes = text.clone().into_bytes();
        let i = at.index(bytes.len() + 1);
        bytes.splice(i..i, noise.iter().copied());
        if let Ok(p) = parse_link(&bytes) {
            prop_assert_eq!(p.to_string().into_bytes(), bytes);
        }
        let mut nl = text.into_bytes();
        nl.push(b'\n');
        prop_assert!(parse_link(&nl).is_err());
    }
}
