//! Type checks for fields the registry's Go structs decode but stowage does not keep.
//!
//! The registry decodes a stored manifest into Go structs (`distribution.Descriptor`,
//! `ocischema.Manifest`, `manifestlist.ManifestList`, `schema1.Manifest`) with
//! `encoding/json`, which fails on a value of the wrong JSON type for a typed field:
//! `"annotations": -1` into `map[string]string`, `"urls": "x"` into `[]string`. A manifest the
//! registry cannot decode is not one it serves or walks, so stowage must not read it
//! leniently and then delete it as untagged (issue 25, item 11): these types make serde fail
//! where Go would, without allocating for what is only checked. `null` is accepted wherever
//! Go accepts it (every field here is wrapped in `Option`).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON string (Go `string`), checked and dropped.
pub(super) struct GoString;

/// A JSON array of strings (Go `[]string`).
pub(super) struct GoStrings;

/// A JSON object of strings (Go `map[string]string`, as `annotations`).
pub(super) struct GoStringMap;

struct StrVisitor;

impl Visitor<'_> for StrVisitor {
    type Value = GoString;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<GoString, E> {
        Ok(GoString)
    }
}

impl<'de> serde::Deserialize<'de> for GoString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for GoStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoStrings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoStrings, A::Error> {
                while seq.next_element::<GoString>()?.is_some() {}
                Ok(GoStrings)
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> serde::Deserialize<'de> for GoStringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoStringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoStringMap, A::Error> {
                // Values may be JSON `null` in Go (the zero string); anything else must be a
                // string.
                while map.next_key::<GoString>()?.is_some() {
                    map.next_value::<Option<GoString>>()?;
                }
                Ok(GoStringMap)
            }
        }
        d.deserialize_map(V)
    }
}

/// Schema 1's `history` entries (`schema1.History`).
#[derive(serde::Deserialize)]
pub(super) struct GoHistory {
    #[serde(rename = "v1Compatibility", default)]
    _v1_compatibility: Option<GoString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default)]
        _m: Option<GoStringMap>,
        #[serde(default)]
        _l: Option<GoStrings>,
    }

    #[test]
    fn types_are_checked_like_go() {
        let ok = |s: &str| serde_json::from_str::<T>(s).is_ok();
        assert!(ok(r#"{"_m":{"a":"b","c":null},"_l":["x"]}"#));
        assert!(ok(r#"{"_m":null,"_l":null}"#));
        assert!(ok(r#"{"_m":{},"_l":[]}"#));
        for bad in [
            r#"{"_m":-1}"#,
            r#"{"_m":"x"}"#,
            r#"{"_m":[]}"#,
            r#"{"_m":{"a":1}}"#,
            r#"{"_m":{"a":{}}}"#,
            r#"{"_l":"x"}"#,
            r#"{"_l":[1]}"#,
            r#"{"_l":{}}"#,
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
