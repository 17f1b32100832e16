//! Property tests of the manifest parser (issue 25, "our own fuzzing"): no panic on any
//! input, manifests built from generated descriptors parse back to exactly those references
//! (the round trip), and a value of the wrong JSON type in any field the registry's Go
//! structs decode makes the manifest unparseable, as it makes it undecodable for the registry.
//!
//! Bounded for CI by proptest's case count (`PROPTEST_CASES` raises it for a longer run).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use stowage_model::digest::Digest;
use stowage_model::manifest::{ManifestKind, parse};

fn digest() -> impl Strategy<Value = String> {
    proptest::array::uniform32(any::<u8>()).prop_map(|b| {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("sha256:{hex}")
    })
}

fn descriptor() -> impl Strategy<Value = Value> {
    (
        digest(),
        any::<i64>(),
        "[a-z./+-]{1,40}",
        proptest::option::of(proptest::collection::btree_map(
            "[a-z.]{1,12}",
            "[ -~]{0,12}",
            0..3,
        )),
    )
        .prop_map(|(d, size, mt, ann)| {
            let mut v = json!({"mediaType": mt, "digest": d, "size": size});
            if let Some(a) = ann {
                v["annotations"] = json!(a);
            }
            v
        })
}

/// An OCI image manifest or index from generated descriptors.
fn manifest() -> impl Strategy<Value = (Value, Vec<String>)> {
    (
        any::<bool>(),
        descriptor(),
        proptest::collection::vec(descriptor(), 0..6),
    )
        .prop_map(|(is_index, config, items)| {
            let mut digests: Vec<String> = Vec::new();
            let m = if is_index {
                digests.extend(items.iter().map(|d| d["digest"].as_str().unwrap().into()));
                json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": items, "annotations": {"a": "b"}})
            } else {
                digests.push(config["digest"].as_str().unwrap().into());
                digests.extend(items.iter().map(|d| d["digest"].as_str().unwrap().into()));
                json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": config, "layers": items})
            };
            (m, digests)
        })
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Fields the registry decodes, with the JSON types Go accepts for each (`null` always).
const TYPED: &[(&str, &[&str])] = &[
    ("/mediaType", &["string"]),
    ("/schemaVersion", &["integer"]),
    ("/annotations", &["object"]),
    ("/config", &["object"]),
    ("/layers", &["array"]),
    ("/layers/0", &["object"]),
    ("/layers/0/size", &["integer"]),
    ("/layers/0/digest", &["string"]),
    ("/layers/0/mediaType", &["string"]),
    ("/layers/0/urls", &["array"]),
    ("/layers/0/annotations", &["object"]),
    ("/config/size", &["integer"]),
];

fn base() -> Value {
    json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                 "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": "sha256:78445dd45222097f5f22a4b0ab87d9e8eba7b27e7cfb72ae0d2ea6c7ab8d0a04",
                  "size": 5, "urls": [], "annotations": {}}],
      "annotations": {"org.example": "x"}})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn manifest_parser_round_trips_generated_descriptors((m, digests) in manifest()) {
        let bytes = serde_json::to_vec(&m).unwrap();
        let parsed = parse(&bytes).unwrap();
        let got: Vec<String> = parsed.references().map(|d| d.digest.to_string()).collect();
        prop_assert_eq!(got, digests);
        prop_assert!(matches!(parsed.kind, ManifestKind::OciIndex | ManifestKind::OciManifest));
        for (d, raw) in parsed.references().zip(
            m.get("config").into_iter()
                .chain(m.get("layers").and_then(Value::as_array).into_iter().flatten())
                .chain(m.get("manifests").and_then(Value::as_array).into_iter().flatten())
        ) {
            prop_assert_eq!(d.size, raw["size"].as_i64());
            prop_assert_eq!(&d.digest, &raw["digest"].as_str().unwrap().parse::<Digest>().unwrap());
        }
    }

    #[test]
    fn manifest_parser_refuses_values_of_a_type_go_refuses(
        field in 0..TYPED.len(),
        value in json_value(),
    ) {
        let (pointer, accepted) = TYPED[field];
        let mut m = base();
        *m.pointer_mut(pointer).unwrap() = value.clone();
        let r = parse(&serde_json::to_vec(&m).unwrap());
        let t = type_name(&value);
        if !accepted.contains(&t) && t != "null" {
            prop_assert!(r.is_err(), "{} = {} parsed", pointer, value);
        }
    }

    #[test]
    fn manifest_parser_never_panics_on_any_json(value in json_value()) {
        let _ = parse(&serde_json::to_vec(&value).unwrap());
        let mut m = base();
        m["layers"][0]["platform"] = value.clone();
        let _ = parse(&serde_json::to_vec(&m).unwrap());
        m["manifests"] = json!([value]);
        let _ = parse(&serde_json::to_vec(&m).unwrap());
    }
}

/// Issue 25 item 11, at the parser: the registry's own decoder rejects these.
#[test]
fn messages_wrong_json_types_are_refused_as_the_registry_refuses_them() {
    for (pointer, value) in [
        ("/annotations", json!(-1)),
        ("/annotations", json!({"a": 1})),
        ("/mediaType", json!(5)),
        ("/layers", json!({})),
        ("/layers/0", json!(5)),
        ("/layers/0/size", json!("5")),
        ("/layers/0/size", json!(1.5)),
        ("/layers/0/urls", json!("https://x")),
        ("/layers/0/annotations", json!([])),
        ("/schemaVersion", json!("2")),
    ] {
        let mut m = base();
        *m.pointer_mut(pointer).unwrap() = value.clone();
        assert!(
            parse(&serde_json::to_vec(&m).unwrap()).is_err(),
            "{pointer} = {value}"
        );
    }
    let mut m = base();
    m["layers"][0]["platform"] =
        json!({"os": "linux", "architecture": "amd64", "os.features": "x"});
    assert!(parse(&serde_json::to_vec(&m).unwrap()).is_err());
    // What Go accepts still parses: nulls, empty maps, null annotation values.
    let mut m = base();
    m["annotations"] = json!({"a": null});
    m["layers"][0]["urls"] = Value::Null;
    assert!(parse(&serde_json::to_vec(&m).unwrap()).is_ok());
    assert!(parse(&serde_json::to_vec(&base()).unwrap()).is_ok());
}
