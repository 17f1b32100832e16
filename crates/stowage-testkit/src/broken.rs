//! Broken-storage fixtures, one per defect, named by it (rustic's habit: a fixture's name says
//! what is wrong with it).
//!
//! Each defect starts from the same [`healthy`] tree and breaks one thing. Tests scan the
//! result and assert the finding (kind and path) that the defect must produce, and that the
//! rest of the tree still reads correctly.

use std::os::unix::ffi::OsStrExt;

use stowage_layout as layout;

use crate::{TreeBuilder, Written};

/// The healthy tree every defect starts from.
pub struct Healthy {
    pub app_config: Written,
    pub app_layer: Written,
    pub base_layer: Written,
    /// `app:v1`.
    pub app: Written,
    /// `lib/base:1.0`, sharing `base_layer` with `app:v1`.
    pub base: Written,
    /// `app@<digest>`, untagged.
    pub untagged: Written,
}

/// Two repositories, a shared layer, a tag and an untagged manifest.
pub fn healthy(t: &TreeBuilder) -> Healthy {
    let base_layer = t.layer("base", 4096);
    let base_config =
        t.blob(br#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z"}"#);
    let base = t.image("lib/base", Some("1.0"), &base_config, &[&base_layer]);
    let app_layer = t.layer("app", 1000);
    let app_config =
        t.blob(br#"{"architecture":"amd64","os":"linux","created":"2024-02-01T00:00:00Z"}"#);
    let app = t.image("app", Some("v1"), &app_config, &[&base_layer, &app_layer]);
    let old_config =
        t.blob(br#"{"architecture":"amd64","os":"linux","created":"2023-01-01T00:00:00Z"}"#);
    let untagged = t.image("app", None, &old_config, &[&base_layer]);
    Healthy {
        app_config,
        app_layer,
        base_layer,
        app,
        base,
        untagged,
    }
}

/// A named defect: what it breaks, and the finding kind (as its stable string) and a path
/// fragment the scan or the analysis must report.
pub struct Defect {
    pub name: &'static str,
    pub expect_kind: &'static str,
    pub expect_path: &'static str,
    /// Only a scan that reads every link (`check`) can see it: a 71-byte link is trusted to
    /// hold the digest its path names unless read.
    pub deep: bool,
    pub apply: fn(&TreeBuilder, &Healthy),
}

fn rev(h: &Written, repo: &str) -> String {
    layout::revision_link(repo, &h.digest())
}

/// Every defect, grouped by theme.
pub fn defects() -> Vec<Defect> {
    [
        link_defects(),
        manifest_defects(),
        tree_defects(),
        leftover_defects(),
        graph_defects(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Link files that are empty, malformed, oversized or point at the wrong thing, and tags
/// without a usable `current` link.
fn link_defects() -> Vec<Defect> {
    vec![
        Defect {
            name: "empty_revision_link",
            expect_kind: "link_empty",
            expect_path: "repositories/app/_manifests/revisions/sha256/",
            deep: false,
            apply: |t, h| t.write(&rev(&h.app, "app"), b""),
        },
        Defect {
            name: "revision_link_with_trailing_newline",
            expect_kind: "link_invalid",
            expect_path: "repositories/app/_manifests/revisions/sha256/",
            deep: false,
            apply: |t, h| {
                t.write(
                    &rev(&h.app, "app"),
                    format!("{}\n", h.app.digest).as_bytes(),
                )
            },
        },
        Defect {
            name: "layer_link_not_a_digest",
            expect_kind: "link_invalid",
            expect_path: "repositories/app/_layers/sha256/",
            deep: false,
            apply: |t, h| {
                t.write(
                    &layout::layer_link("app", &h.app_layer.digest()),
                    b"garbage!",
                )
            },
        },
        Defect {
            name: "revision_link_names_another_digest",
            expect_kind: "link_mismatch",
            expect_path: "repositories/app/_manifests/revisions/sha256/",
            deep: true,
            apply: |t, h| {
                t.write(
                    &rev(&h.untagged, "app"),
                    format!("sha256:{}", "0".repeat(64)).as_bytes(),
                )
            },
        },
        Defect {
            name: "huge_link_file",
            expect_kind: "link_oversized",
            expect_path: "repositories/app/_layers/sha256/",
            deep: false,
            apply: |t, h| {
                t.write(
                    &layout::layer_link("app", &h.app_layer.digest()),
                    &vec![b'a'; 1 << 20],
                )
            },
        },
        Defect {
            name: "tag_current_link_garbage",
            expect_kind: "link_invalid",
            expect_path: "repositories/app/_manifests/tags/v1/current/link",
            deep: false,
            apply: |t, _| t.write(&layout::tag_current_link("app", "v1"), b"sha256:zzzz"),
        },
        Defect {
            name: "tag_without_current_link",
            expect_kind: "tag_without_current",
            expect_path: "repositories/app/_manifests/tags/v1",
            deep: false,
            apply: |t, _| t.remove(&layout::tag_current_link("app", "v1")),
        },
        Defect {
            name: "tag_points_at_missing_manifest",
            expect_kind: "tag_dangling",
            expect_path: "repositories/app/_manifests/tags/v2",
            deep: false,
            apply: |t, _| {
                let d: stowage_model::Digest =
                    format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
                t.tag("app", "v2", &d);
            },
        },
    ]
}

/// Manifests that cannot be read or parsed, and blobs a revision or a manifest names but
/// the store lacks.
fn manifest_defects() -> Vec<Defect> {
    vec![
        Defect {
            name: "truncated_manifest_json",
            expect_kind: "manifest_unparseable",
            expect_path: "blobs/sha256/",
            deep: false,
            apply: |t, h| {
                let p = layout::blob_data(&h.app.digest);
                let full = std::fs::read(t.path(&p)).unwrap();
                t.write(&p, &full[..full.len() / 2]);
            },
        },
        Defect {
            name: "manifest_is_not_json",
            expect_kind: "manifest_unparseable",
            expect_path: "blobs/sha256/",
            deep: false,
            apply: |t, h| t.write(&layout::blob_data(&h.base.digest), b"\x00\x01binary"),
        },
        Defect {
            name: "manifest_blob_missing",
            expect_kind: "revision_missing_blob",
            expect_path: "repositories/app/_manifests/revisions/sha256/",
            deep: false,
            apply: |t, h| t.remove(&layout::blob_dir(&h.untagged.digest)),
        },
        Defect {
            name: "layer_blob_missing",
            expect_kind: "reference_missing",
            expect_path: "blobs/sha256/",
            deep: false,
            apply: |t, h| t.remove(&layout::blob_dir(&h.app_layer.digest)),
        },
        Defect {
            name: "huge_manifest",
            expect_kind: "manifest_unreadable",
            expect_path: "blobs/sha256/",
            deep: false,
            apply: |t, h| {
                let mut big = b"{\"schemaVersion\":2,\"x\":\"".to_vec();
                big.extend(std::iter::repeat_n(b'x', 5 << 20));
                big.extend_from_slice(b"\"}");
                t.write(&layout::blob_data(&h.untagged.digest), &big);
            },
        },
    ]
}

/// The shape of the tree: partial or misplaced blob directories, symbolic links (which the
/// scan never follows), names the registry cannot have, stray files.
fn tree_defects() -> Vec<Defect> {
    vec![
        Defect {
            name: "blob_dir_without_data",
            expect_kind: "blob_missing_data",
            expect_path: "blobs/sha256/",
            deep: false,
            apply: |t, _| {
                t.write(
                    &format!("blobs/sha256/ee/{}/partial", "ee".repeat(32)),
                    b"x",
                )
            },
        },
        Defect {
            name: "blob_in_wrong_shard",
            expect_kind: "blob_misplaced",
            expect_path: "blobs/sha256/00/",
            deep: false,
            apply: |t, _| t.write(&format!("blobs/sha256/00/{}/data", "ff".repeat(32)), b"x"),
        },
        Defect {
            name: "symlink_repository_escaping_root",
            expect_kind: "symlink",
            expect_path: "repositories/evil",
            deep: false,
            apply: |t, _| std::os::unix::fs::symlink("/etc", t.path("repositories/evil")).unwrap(),
        },
        Defect {
            name: "symlink_blob_data",
            expect_kind: "symlink",
            expect_path: "blobs/sha256/",
            deep: false,
            apply: |t, h| {
                let p = t.path(&layout::blob_data(&h.app_layer.digest));
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
            },
        },
        Defect {
            name: "non_utf8_repository_name",
            expect_kind: "non_utf8_name",
            expect_path: "repositories/",
            deep: false,
            apply: |t, _| {
                let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
                std::fs::create_dir_all(t.path("repositories").join(name).join("_manifests"))
                    .unwrap();
            },
        },
        Defect {
            name: "repository_name_with_space",
            expect_kind: "invalid_name",
            expect_path: "repositories/odd name",
            deep: false,
            apply: |t, h| t.link_layer("odd name", &h.app_layer.digest()),
        },
        Defect {
            name: "stray_file_in_blob_store",
            expect_kind: "unexpected_file",
            expect_path: "blobs/sha256/README",
            deep: false,
            apply: |t, _| t.write("blobs/sha256/README", b"hello"),
        },
    ]
}

/// What other writers leave behind: emptied directories, uploads, temporary links, other
/// tools' metadata, schema 1 signatures.
fn leftover_defects() -> Vec<Defect> {
    vec![
        Defect {
            name: "empty_revision_dir_after_api_delete",
            expect_kind: "empty_directory",
            expect_path: "repositories/app/_manifests/revisions/sha256/",
            deep: false,
            apply: |t, h| t.remove(&rev(&h.untagged, "app")),
        },
        Defect {
            name: "upload_without_startedat",
            expect_kind: "upload_no_startedat",
            expect_path: "repositories/app/_uploads/",
            deep: false,
            apply: |t, _| {
                t.write(
                    "repositories/app/_uploads/0b1c2d3e-0000-4000-8000-000000000000/data",
                    b"partial",
                )
            },
        },
        Defect {
            name: "upload_startedat_garbage",
            expect_kind: "upload_bad_startedat",
            expect_path: "repositories/app/_uploads/",
            deep: false,
            apply: |t, _| {
                t.upload(
                    "app",
                    "0b1c2d3e-0000-4000-8000-000000000001",
                    "yesterday",
                    10,
                )
            },
        },
        Defect {
            name: "foreign_metadata_dir",
            expect_kind: "foreign_metadata",
            expect_path: "repositories/app/_referrers",
            deep: false,
            apply: |t, _| t.write("repositories/app/_referrers/x", b"x"),
        },
        Defect {
            name: "stale_tmp_link_from_interrupted_write",
            expect_kind: "stale_temp_file",
            expect_path: "repositories/app/_manifests/revisions/sha256/",
            deep: true,
            apply: |t, h| {
                let dir = stowage_layout::revision_dir("app", &h.app.digest());
                t.write(
                    &format!("{dir}/link.0b1c2d3e-0000-4000-8000-000000000000.tmp"),
                    b"sha256:",
                );
            },
        },
        Defect {
            name: "schema1_signatures_dir",
            expect_kind: "legacy_signatures",
            expect_path: "/signatures",
            deep: true,
            apply: |t, h| {
                let dir = stowage_layout::revision_dir("app", &h.app.digest());
                t.write(
                    &format!("{dir}/signatures/sha256/{}/link", "ab".repeat(32)),
                    format!("sha256:{}", "ab".repeat(32)).as_bytes(),
                );
            },
        },
    ]
}

/// Defects only the reference graph shows (the analysis, not the scan, reports them).
fn graph_defects() -> Vec<Defect> {
    vec![Defect {
        name: "index_child_not_linked",
        expect_kind: "index_child_unlinked",
        expect_path: "repositories/app/_manifests/revisions/sha256/",
        deep: false,
        apply: |t, h| {
            // An index in `app` whose child is only a revision of `lib/base`.
            t.index("app", Some("multi"), &[(&h.base, "amd64")]);
        },
    }]
}
