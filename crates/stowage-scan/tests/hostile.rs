//! Hostile storage, one regression test per item of issue 25 this crate owns: special files
//! where the registry keeps files (item 1), blob placement (item 5), broken referenced blobs
//! (item 6), misleading messages (item 11), and read limits.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use stowage_layout as layout;
use stowage_model::finding::{Finding, FindingKind, Severity};
use stowage_model::inventory::ManifestStatus;
use stowage_storage::ErrorKind;
use stowage_storage::faults::{Fault, FaultyStorage, Ops};
use stowage_storage::{FsStorage, Storage};
use stowage_testkit::broken::{Healthy, healthy};
use stowage_testkit::{TreeBuilder, Written};
use support::{Special, check, gc_m, make_special, planned, scan_fs, scan_storage, tag_closure};

/// The healthy tree of the broken fixtures, plus a tagged index of two images.
struct Tree {
    _dir: tempfile::TempDir,
    t: TreeBuilder,
    h: Healthy,
    index: Written,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = healthy(&t);
    let cfg = t.blob(br#"{"architecture":"arm64","os":"linux"}"#);
    let arm = t.image("multi", None, &cfg, &[&h.base_layer]);
    let amd = t.image("multi", None, &h.app_config, &[&h.app_layer]);
    let index = t.index("multi", Some("latest"), &[(&amd, "amd64"), (&arm, "arm64")]);
    Tree {
        _dir: dir,
        t,
        h,
        index,
    }
}

fn has(findings: &[Finding], kind: FindingKind, path: &str) -> bool {
    findings.iter().any(|f| f.kind == kind && f.path == path)
}

fn show(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {f}\n"))
        .collect::<String>()
}

/// Issue 25 item 1: a FIFO (or socket, device, directory) where a link file or a manifest's
/// `data` belongs blocked `open()` forever. Each one is now a `not_a_regular_file` finding
/// at its path, the scan finishes, and nothing is planned on its strength.
#[test]
fn fifo_hang_special_files_where_files_belong_are_findings_and_plan_nothing() {
    let probe = tree();
    let app = probe.h.app.digest();
    let places = [
        layout::tag_current_link("app", "v1"),
        layout::tag_current_link("multi", "latest"),
        layout::revision_link("app", &app),
        layout::layer_link("app", &probe.h.app_layer.digest()),
        layout::tag_index_link("app", "v1", &app),
        layout::blob_data(&probe.h.app.digest),
        layout::blob_data(&probe.index.digest),
        layout::blob_data(&probe.h.app_layer.digest),
    ];
    let closure = tag_closure(&scan_fs(&probe.t.root, false));
    for place in &places {
        for what in [
            Special::Fifo,
            Special::Socket,
            Special::Directory,
            Special::CharDevice,
        ] {
            let tr = tree();
            if !make_special(&tr.t.root, place, what) {
                continue;
            }
            for verify_links in [false, true] {
                let inv = scan_fs(&tr.t.root, verify_links);
                assert!(
                    has(&inv.findings, FindingKind::NotARegularFile, place),
                    "{what:?} at {place} (verify_links {verify_links}):\n{}",
                    show(&inv.findings)
                );
                let plan = gc_m(&inv);
                assert!(
                    plan.blobs.is_empty(),
                    "{what:?} at {place}: blobs planned {:?}",
                    plan.blobs
                );
                let bad: Vec<_> = planned(&plan).intersection(&closure).cloned().collect();
                assert!(bad.is_empty(), "{what:?} at {place}: planned {bad:?}");
            }
            let f = check(&tr.t.root);
            assert!(
                f.iter().any(|f| f.severity() == Severity::Error),
                "check passes with {what:?} at {place}"
            );
        }
    }
}

/// Issue 25 item 5: a copy of a blob under a fan-out that is a hex prefix of the wrong
/// length (`a38/`, `a/`), an uppercase one, the wrong one, or named in uppercase, was (for
/// the first two) a second blob of the same digest, unreferenced: `gc -m` planned the digest
/// of a tagged index. Each is a `blob_misplaced` finding and never a blob.
#[test]
fn blob_placement_misplaced_copies_are_findings_never_second_blobs() {
    let clean = tree();
    let healthy_plan = planned(&gc_m(&scan_fs(&clean.t.root, false)));
    let hex = clean.index.digest.hex();
    let wrong = if hex.starts_with("00") { "01" } else { "00" };
    // An uppercase fan-out needs a letter in it: the first of the tree's blobs with one.
    let lettered = clean
        .t
        .path("blobs/sha256")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.bytes().any(|c| c.is_ascii_lowercase()))
        .min()
        .unwrap();
    let copies = [
        (
            format!("blobs/sha256/{}/{hex}", &hex[..3]),
            format!("blobs/sha256/{}", &hex[..3]),
        ),
        (
            format!("blobs/sha256/{}/{hex}", &hex[..1]),
            format!("blobs/sha256/{}", &hex[..1]),
        ),
        (
            format!("blobs/sha256/{}/{hex}", lettered.to_uppercase()),
            format!("blobs/sha256/{}", lettered.to_uppercase()),
        ),
        (
            format!("blobs/sha256/{wrong}/{hex}"),
            format!("blobs/sha256/{wrong}/{hex}"),
        ),
        (
            format!("blobs/sha256/{}/{}", &hex[..2], hex.to_uppercase()),
            format!("blobs/sha256/{}/{}", &hex[..2], hex.to_uppercase()),
        ),
        (format!("blobs/sha256/{hex}"), format!("blobs/sha256/{hex}")),
    ];
    let body = std::fs::read(clean.t.path(&layout::blob_data(&clean.index.digest))).unwrap();
    for (dir, reported) in &copies {
        let tr = tree();
        tr.t.write(&format!("{dir}/data"), &body);
        let inv = scan_fs(&tr.t.root, false);
        assert_eq!(
            inv.blobs
                .iter()
                .filter(|b| b.digest == tr.index.digest)
                .count(),
            1,
            "{dir}: counted twice"
        );
        assert!(
            has(&inv.findings, FindingKind::BlobMisplaced, reported),
            "{dir}:\n{}",
            show(&inv.findings)
        );
        let plan = gc_m(&inv);
        assert!(
            !planned(&plan).contains(&tr.index.digest()),
            "{dir}: index planned"
        );
        // What lies there may be a blob moved out of place: blob deletion waits for it.
        assert!(plan.blobs.is_empty(), "{dir}: blobs planned");
        assert!(
            plan.blocked.iter().any(|b| b.contains(reported.as_str())),
            "{dir}: {:?}",
            plan.blocked
        );
        let manifests: BTreeSet<_> = plan.manifests.iter().map(|m| m.digest.clone()).collect();
        assert!(manifests.is_subset(&healthy_plan), "{dir}: {manifests:?}");
    }
    // A file beside `data` in a blob directory: only `check` lists blob directories.
    let tr = tree();
    let extra = format!("{}/data.orig", layout::blob_dir(&tr.index.digest));
    tr.t.write(&extra, b"x");
    assert!(has(&check(&tr.t.root), FindingKind::BlobMisplaced, &extra));
    assert_eq!(planned(&gc_m(&scan_fs(&tr.t.root, false))), healthy_plan);
}

/// Issue 25 item 6: plain `check` (no digest verification) passed with a referenced blob
/// truncated, emptied, replaced by a directory, socket or device, or described as 4 GiB.
/// Sizes are compared while manifests are parsed; non-regular files are found by type.
#[test]
fn check_misses_broken_referenced_blobs_sizes_and_types_are_compared() {
    let check_plain = |root: &Path| {
        let inv = scan_fs(root, false);
        let mut f = inv.findings.clone();
        f.extend(stowage_graph::analyze_findings(&stowage_graph::Graph::new(
            &inv,
        )));
        f
    };
    let layer = |tr: &Tree| layout::blob_data(&tr.h.app_layer.digest);
    for bytes in [&b"0123456789"[..], b""] {
        let tr = tree();
        tr.t.write(&layer(&tr), bytes);
        let f = check_plain(&tr.t.root);
        assert!(
            has(&f, FindingKind::BlobSizeMismatch, &layer(&tr)),
            "{} bytes:\n{}",
            bytes.len(),
            show(&f)
        );
        let m = f
            .iter()
            .find(|f| f.kind == FindingKind::BlobSizeMismatch)
            .unwrap();
        assert_eq!(
            m.message,
            format!(
                "{} bytes on disk, but a manifest's descriptor says 1000: truncated or replaced; pulls of it fail",
                bytes.len()
            )
        );
    }
    for what in [Special::Directory, Special::Socket, Special::CharDevice] {
        let tr = tree();
        if make_special(&tr.t.root, &layer(&tr), what) {
            let f = check_plain(&tr.t.root);
            assert!(
                has(&f, FindingKind::NotARegularFile, &layer(&tr)),
                "{what:?}:\n{}",
                show(&f)
            );
        }
    }
    // A descriptor claiming 4 GiB for a 4096-byte blob.
    let tr = tree();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":4294967296}}]}}"#,
        tr.h.app_config.digest(),
        tr.h.app_config.size,
        tr.h.base_layer.digest()
    );
    tr.t.manifest("claims", Some("big"), body.as_bytes());
    let f = check_plain(&tr.t.root);
    let base = layout::blob_data(&tr.h.base_layer.digest);
    assert!(
        has(&f, FindingKind::BlobSizeMismatch, &base),
        "{}",
        show(&f)
    );
    // The healthy tree: no size finding (descriptors are right).
    let clean = tree();
    assert!(
        !check_plain(&clean.t.root)
            .iter()
            .any(|f| f.kind == FindingKind::BlobSizeMismatch)
    );
}

/// Issue 25 item 11: an unreadable `revisions/` gave a false `tag_unlinked` error. It is
/// reported as what it is, and the repository is incomplete.
#[test]
fn messages_unreadable_revisions_is_reported_not_tag_unlinked() {
    let tr = tree();
    let revisions = "repositories/app/_manifests/revisions";
    let s = FaultyStorage::new(
        FsStorage::open(&tr.t.root).unwrap(),
        vec![Fault {
            prefix: revisions.into(),
            kind: ErrorKind::PermissionDenied,
            on: Ops::List,
        }],
    );
    let inv = scan_storage(&s, false);
    let mut f = inv.findings.clone();
    f.extend(stowage_graph::analyze_findings(&stowage_graph::Graph::new(
        &inv,
    )));
    assert!(
        has(&f, FindingKind::PermissionDenied, revisions),
        "{}",
        show(&f)
    );
    assert!(
        !f.iter().any(|f| f.kind == FindingKind::TagUnlinked),
        "{}",
        show(&f)
    );
    let app = inv.repository("app").unwrap();
    assert!(!app.complete && !app.revisions_listed);
    assert!(gc_m(&inv).manifests.is_empty());
}

/// Issue 25 item 11: a character device as manifest data was "larger than 4 MiB" (read
/// until the limit). It is named for what it is, and the manifest is kept.
#[test]
fn messages_a_device_as_manifest_data_says_what_it_is() {
    let tr = tree();
    let data = layout::blob_data(&tr.h.untagged.digest);
    if !make_special(&tr.t.root, &data, Special::CharDevice) {
        eprintln!("cannot make a device node here (no CAP_MKNOD): case skipped");
        return;
    }
    let inv = scan_fs(&tr.t.root, false);
    let id = inv.id_of(&tr.h.untagged.digest()).unwrap();
    assert_eq!(inv.manifest(id).unwrap().status, ManifestStatus::Unreadable);
    let msgs: Vec<&str> = inv
        .findings
        .iter()
        .filter(|f| f.path == data)
        .map(|f| f.message.as_ref())
        .collect();
    assert!(!msgs.is_empty());
    for m in &msgs {
        assert!(m.contains("is a character device"), "{m}");
        assert!(!m.contains("4 MiB"), "{m}");
    }
    assert!(!planned(&gc_m(&inv)).contains(&tr.h.untagged.digest()));
}

/// Issue 25 item 11: `"annotations": -1`, which the registry's own parser rejects, was read
/// leniently and the manifest deleted as untagged. It is unparseable, kept and reported.
#[test]
fn messages_wrong_json_types_make_a_manifest_unparseable_and_kept() {
    let tr = tree();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[],"annotations":-1}}"#,
        tr.h.app_config.digest(),
        tr.h.app_config.size
    );
    let m = tr.t.manifest("app", None, body.as_bytes());
    let inv = scan_fs(&tr.t.root, false);
    let id = inv.id_of(&m.digest()).unwrap();
    assert_eq!(
        inv.manifest(id).unwrap().status,
        ManifestStatus::Unparseable
    );
    assert!(has(
        &inv.findings,
        FindingKind::ManifestUnparseable,
        &layout::blob_data(&m.digest)
    ));
    let plan = planned(&gc_m(&inv));
    assert!(!plan.contains(&m.digest()));
    // Opaque: everything its repository links stays, the other untagged manifest too.
    assert!(!plan.contains(&tr.h.untagged.digest()));
}

/// Bounded memory: a link is read with a 256-byte limit and a manifest with the registry's
/// 4 MiB, so a 10 MiB link or manifest costs at most that (counted by the storage).
#[test]
fn bounded_memory_links_and_manifests_are_read_with_a_limit() {
    let read_bytes = |root: &Path| {
        let s = FsStorage::open(root).unwrap();
        let inv = scan_storage(&s, false);
        (inv, s.counters().snapshot().bytes_read)
    };
    let clean = tree();
    let (_, base) = read_bytes(&clean.t.root);
    let tr = tree();
    let big = vec![b'x'; 10 << 20];
    let current = layout::tag_current_link("app", "v1");
    tr.t.write(&current, &big);
    let manifest = layout::blob_data(&tr.h.untagged.digest);
    tr.t.write(&manifest, &big);
    let (inv, read) = read_bytes(&tr.t.root);
    assert!(has(&inv.findings, FindingKind::LinkOversized, &current));
    assert!(has(
        &inv.findings,
        FindingKind::ManifestUnreadable,
        &manifest
    ));
    let limits = stowage_scan::MANIFEST_LIMIT + 1 + layout::MAX_LINK_LEN + 1;
    assert!(
        read <= base + limits,
        "{read} bytes read, {base} for the clean tree"
    );
    let kinds: BTreeSet<_> = inv.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::LinkOversized));
}

/// Issue 25 item 1 on the FUSE test filesystem, which presents FIFOs and sockets as what they
/// are (the kernel opens them locally, as on NFS): the same findings, and no hang.
#[test]
fn fifo_hang_on_the_fuse_filesystem_special_files_are_findings_too() {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse on this machine");
        return;
    }
    let tr = tree();
    let current = layout::tag_current_link("app", "v1");
    let revision = layout::revision_link("app", &tr.h.app.digest());
    let data = layout::blob_data(&tr.index.digest);
    assert!(make_special(&tr.t.root, &current, Special::Fifo));
    assert!(make_special(&tr.t.root, &revision, Special::Socket));
    assert!(make_special(&tr.t.root, &data, Special::Fifo));
    let source = tr.t.root.ancestors().nth(3).unwrap().to_path_buf();
    let mount =
        stowage_slowfs::Mount::start(&source, std::time::Duration::from_micros(100), &[]).unwrap();
    let root = mount.path().join(layout::LAYOUT_ROOT);
    let inv = scan_fs(&root, true);
    for p in [&current, &revision, &data] {
        assert!(
            has(&inv.findings, FindingKind::NotARegularFile, p),
            "{p}:\n{}",
            show(&inv.findings)
        );
    }
    assert!(gc_m(&inv).blobs.is_empty());
    assert!(!planned(&gc_m(&inv)).contains(&tr.index.digest()));
}

/// A blob directory that is a symbolic link is reported and kept, and nothing reads through
/// it: not the manifest read, not digest verification (`O_NOFOLLOW` guards only the last
/// component of a path).
#[test]
fn a_symlinked_blob_directory_is_never_read_through() {
    let tr = tree();
    let outside = tempfile::tempdir().unwrap();
    let body = std::fs::read(tr.t.path(&layout::blob_data(&tr.index.digest))).unwrap();
    std::fs::write(outside.path().join("data"), &body).unwrap();
    let dir = layout::blob_dir(&tr.index.digest);
    std::fs::remove_dir_all(tr.t.path(&dir)).unwrap();
    std::os::unix::fs::symlink(outside.path(), tr.t.path(&dir)).unwrap();
    let s = FsStorage::open(&tr.t.root).unwrap();
    let inv = scan_storage(&s, false);
    assert!(has(&inv.findings, FindingKind::Symlink, &dir));
    let id = inv.id_of(&tr.index.digest()).unwrap();
    assert_eq!(inv.manifest(id).unwrap().status, ManifestStatus::Unreadable);
    let hashed = std::sync::atomic::AtomicU64::new(0);
    let f = stowage_scan::verify_blobs(
        &s,
        &inv,
        &stowage_scan::VerifyOptions { concurrency: 2 },
        &hashed,
    );
    assert!(!f.iter().any(|f| f.path.starts_with(&dir)), "{}", show(&f));
    let total: u64 = inv.blobs.iter().map(|b| b.size).sum();
    assert_eq!(hashed.into_inner(), total, "hashed what is not a blob");
    let plan = gc_m(&inv);
    assert!(plan.blobs.is_empty() && !planned(&plan).contains(&tr.index.digest()));
}
