//! The filesystem backend's unit tests.

use super::*;

#[test]
fn resolves_rootdirectory_v2_and_gitlab() {
    let t = tempfile::tempdir().unwrap();
    let v2 = t.path().join("reg").join(LAYOUT_ROOT);
    std::fs::create_dir_all(v2.join("blobs")).unwrap();
    let r = resolve_root(&t.path().join("reg")).unwrap();
    assert_eq!(
        (r.layout_root.as_path(), r.how),
        (v2.as_path(), RootLayout::RootDirectory)
    );
    let r = resolve_root(&v2).unwrap();
    assert_eq!(r.how, RootLayout::LayoutRoot);
    let gl = t
        .path()
        .join("gitlab/gitlab-rails/shared/registry")
        .join(LAYOUT_ROOT);
    std::fs::create_dir_all(&gl).unwrap();
    let r = resolve_root(&t.path().join("gitlab")).unwrap();
    assert_eq!(
        (r.layout_root.as_path(), r.how),
        (gl.as_path(), RootLayout::GitLabOmnibus)
    );
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = resolve_root(&empty).unwrap_err();
    assert!(e.to_string().contains("rootdirectory"), "{e}");
    assert!(
        resolve_root(&t.path().join("nope"))
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn never_follows_symlinks() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("secret"), b"outside").unwrap();
    let root = t.path().join("v2");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink(t.path().join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(t.path(), root.join("dir")).unwrap();
    let s = FsStorage::open(&root).unwrap();
    let mut kinds = Vec::new();
    s.list_dir("", &mut |e| {
        kinds.push((String::from_utf8_lossy(e.name).into_owned(), e.kind))
    })
    .unwrap();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("dir".to_string(), EntryKind::Symlink),
            ("link".to_string(), EntryKind::Symlink)
        ]
    );
    assert_eq!(s.read("link", 100).unwrap_err().kind, ErrorKind::Symlink);
    assert_eq!(s.stat("link").unwrap_err().kind, ErrorKind::Symlink);
}

#[test]
fn keys_cannot_leave_the_root() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("v2")).unwrap();
    std::fs::write(t.path().join("outside"), b"x").unwrap();
    let s = FsStorage::open(&t.path().join("v2")).unwrap();
    for bad in [
        "../outside",
        "/etc/passwd",
        "a/../../outside",
        "a//b",
        "./x",
    ] {
        assert!(s.stat(bad).is_err(), "{bad}");
        assert!(crate::StorageWrite::delete(&s, bad).is_err(), "{bad}");
    }
    assert!(t.path().join("outside").exists());
}

#[test]
fn read_limits_and_errors_name_paths() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("big"), vec![b'x'; 1000]).unwrap();
    let s = FsStorage::open(t.path()).unwrap();
    let e = s.read("big", 100).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge { limit: 100 });
    assert_eq!(e.to_string(), "big: larger than 100 bytes");
    assert_eq!(s.read("big", 1000).unwrap().len(), 1000);
    let e = s.stat("missing/file").unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.to_string(), "missing/file: not found");
    let snap = s.counters().snapshot();
    assert_eq!((snap.reads, snap.stats, snap.in_flight), (2, 1, 0));
    // The refused read counts what it read to learn the file was too large.
    assert_eq!(snap.bytes_read, 101 + 1000);
}

/// Reads stop at the size the descriptor's fstat gave without an extra read, so every
/// size around the first buffer and the limit must still come back whole and exact
/// (or be refused as too large), with its bytes in order.
#[test]
fn reads_are_whole_at_every_size_around_the_buffer_and_the_limit() {
    let t = tempfile::tempdir().unwrap();
    let s = FsStorage::open(t.path()).unwrap();
    let hint = READ_HINT as usize;
    for size in [0, 1, 71, 72, hint - 1, hint, hint + 1, 3 * hint + 5] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(t.path().join("f"), &bytes).unwrap();
        for limit in [size as u64, size as u64 + 1, 2 * size as u64 + 3, u64::MAX] {
            assert_eq!(
                s.read("f", limit).unwrap(),
                bytes,
                "size {size}, limit {limit}"
            );
            let (b, m) = s.read_with_meta("f", limit).unwrap();
            assert_eq!((b.len(), m.size), (size, size as u64));
        }
        if size > 0 {
            let e = s.read("f", size as u64 - 1).unwrap_err();
            assert_eq!(
                e.kind,
                ErrorKind::TooLarge {
                    limit: size as u64 - 1
                }
            );
        }
    }
}

/// On a local filesystem lookups start from the root's descriptor; a root directory
/// replaced by another one (a restore renamed into place) is followed from the next
/// listing of the root, the start of every scan, as a path would be.
#[test]
fn a_replaced_root_is_followed_from_the_next_scan() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("v2");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), b"old").unwrap();
    let s = FsStorage::open(&root).unwrap();
    assert_eq!(s.read("f", 10).unwrap(), b"old");
    std::fs::rename(&root, t.path().join("v2.old")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), b"new").unwrap();
    let mut names = Vec::new();
    s.list_dir("", &mut |e| {
        names.push(String::from_utf8_lossy(e.name).into_owned())
    })
    .unwrap();
    assert_eq!(names, ["f"]);
    assert_eq!(s.read("f", 10).unwrap(), b"new");
    assert_eq!(s.stat("f").unwrap().size, 3);
    assert!(matches!(
        s.stat("").unwrap_err().kind,
        ErrorKind::NotAFile(FileType::Directory)
    ));
}

/// Issue 25, item 1 (FIFO hang): `read` of a FIFO blocked in `open` forever. Every
/// special file (and a directory) where a file belongs is refused by type, unread, with
/// its path; the test runs the reads on a thread so that a regression fails instead of
/// hanging.
#[test]
fn fifo_hang_special_files_are_refused_by_type_without_blocking() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("file"), b"sha256:x").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = FsStorage::open(&root).unwrap();
        let mut out = Vec::new();
        for p in ["fifo", "sock", "dir"] {
            out.push((p, s.read(p, 100).map(|_| ()).unwrap_err()));
            out.push((p, s.read_with_meta(p, 100).map(|_| ()).unwrap_err()));
            out.push((p, s.stat(p).map(|_| ()).unwrap_err()));
            out.push((p, s.open(p).map(|_| ()).unwrap_err()));
        }
        tx.send((out, s.read("file", 100).unwrap())).unwrap();
    });
    let (errors, file) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("reading special files blocked");
    assert_eq!(file, b"sha256:x");
    for (p, e) in errors {
        let want = match p {
            "fifo" => FileType::Fifo,
            "sock" => FileType::Socket,
            _ => FileType::Directory,
        };
        assert_eq!(e.kind, ErrorKind::NotAFile(want), "{p}: {e}");
        assert_eq!(e.path, p);
    }
    let s = FsStorage::open(t.path()).unwrap();
    assert_eq!(
        s.read("fifo", 10).unwrap_err().to_string(),
        "fifo: is a FIFO (named pipe), not a regular file; not opened"
    );
    // A character device: refused by type, not read until the limit ("larger than").
    let s = FsStorage::open(Path::new("/dev")).unwrap();
    assert_eq!(
        s.read("zero", 10).unwrap_err().kind,
        ErrorKind::NotAFile(FileType::CharDevice)
    );
    assert_eq!(
        s.stat("null").unwrap_err().kind,
        ErrorKind::NotAFile(FileType::CharDevice)
    );
}

/// A directory named by a key without having been listed (a tag's `index/sha256/` in a
/// `gc -m` scan) is never followed when it is a symbolic link: the listing fails as one.
#[test]
fn a_listed_directory_that_is_a_symbolic_link_is_refused() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("elsewhere/x")).unwrap();
    std::fs::create_dir_all(t.path().join("v2/tags/t/index")).unwrap();
    std::os::unix::fs::symlink(
        t.path().join("elsewhere"),
        t.path().join("v2/tags/t/index/sha256"),
    )
    .unwrap();
    let s = FsStorage::open(&t.path().join("v2")).unwrap();
    let mut seen = 0;
    let e = s
        .list_dir("tags/t/index/sha256", &mut |_| seen += 1)
        .unwrap_err();
    assert_eq!((e.kind, seen), (ErrorKind::Symlink, 0));
    assert_eq!(e.path, "tags/t/index/sha256");
}
