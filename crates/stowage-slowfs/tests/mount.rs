//! Mount tests: need `/dev/fuse` (and root, or `fusermount3` from Debian's `fuse3`). Without
//! `/dev/fuse` each test says so and passes; any other mount failure fails.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use stowage_slowfs::{Errno, FUSE_SUPER_MAGIC, Mount, Op, Options, parse_fault};

const DELAY: Duration = Duration::from_millis(2);
const LAYERS: &str = "docker/registry/v2/repositories/team/app/_layers";
const HEX: &str = "ab3f4e0c1d2b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d";

fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("skipped: no /dev/fuse on this machine");
    }
    ok
}

/// A small registry-like tree, with symbolic links and a file larger than one FUSE read.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let v2 = root.join("docker/registry/v2");
    let blob = v2.join(format!("blobs/sha256/ab/{HEX}"));
    fs::create_dir_all(&blob).expect("mkdir");
    fs::write(blob.join("data"), b"{\"schemaVersion\":2}").expect("write");
    for repo in ["team/app", "team/other"] {
        let layer = v2.join(format!("repositories/{repo}/_layers/sha256/{HEX}"));
        fs::create_dir_all(&layer).expect("mkdir");
        fs::write(layer.join("link"), format!("sha256:{HEX}")).expect("write");
        let tag = v2.join(format!(
            "repositories/{repo}/_manifests/tags/latest/current"
        ));
        fs::create_dir_all(&tag).expect("mkdir");
        fs::write(tag.join("link"), format!("sha256:{HEX}")).expect("write");
    }
    fs::create_dir_all(root.join("files")).expect("mkdir");
    for i in 0..200 {
        fs::write(root.join(format!("files/f{i}")), format!("file {i}\n")).expect("write");
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("big"), big).expect("write");
    symlink("docker/registry/v2", root.join("v2")).expect("symlink");
    symlink("../nowhere", root.join("dangling")).expect("symlink");
    dir
}

#[derive(Debug, PartialEq)]
struct Node {
    path: PathBuf,
    kind: &'static str,
    len: u64,
    mode: u32,
    mtime: (i64, i64),
    uid: u32,
    gid: u32,
    nlink: u64,
    content: Vec<u8>,
}

/// Every node below `root`, sorted, with its metadata, file content or link target.
fn walk(root: &Path) -> Vec<Node> {
    fn go(root: &Path, rel: &Path, out: &mut Vec<Node>) {
        let path = root.join(rel);
        let md = fs::symlink_metadata(&path).expect("lstat");
        let ft = md.file_type();
        let (kind, content) = if ft.is_symlink() {
            (
                "link",
                fs::read_link(&path)
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if ft.is_dir() {
            ("dir", Vec::new())
        } else {
            ("file", fs::read(&path).expect("read"))
        };
        out.push(Node {
            path: rel.to_path_buf(),
            kind,
            len: md.len(),
            mode: md.mode(),
            mtime: (md.mtime(), md.mtime_nsec()),
            uid: md.uid(),
            gid: md.gid(),
            nlink: md.nlink(),
            content,
        });
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&path)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            for name in names {
                go(root, &rel.join(name), out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, Path::new(""), &mut out);
    out
}

fn os_error(r: std::io::Result<impl std::fmt::Debug>) -> Option<i32> {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.raw_os_error(),
    }
}

fn mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let path = path.to_str().expect("utf-8 path");
    info.lines().any(|l| l.split(' ').nth(4) == Some(path))
}

#[test]
fn listing_stat_and_read_match_the_source() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let mount = Mount::start(src.path(), DELAY, &[]).expect("mount");
    let expected = walk(src.path());
    let seen = walk(mount.path());
    assert_eq!(seen.len(), expected.len());
    for (s, e) in seen.iter().zip(&expected) {
        assert_eq!(s, e);
    }
    // Entry types come with the listing, as from any filesystem.
    let kinds: Vec<_> = fs::read_dir(mount.path())
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name(), e.file_type().expect("type").is_symlink())
        })
        .collect();
    assert!(kinds.iter().any(|(n, link)| n == "v2" && *link));
    // A client sees FUSE's filesystem type (what stowage's backend detects as network).
    let st = rustix::fs::statfs(mount.path()).expect("statfs");
    assert_eq!(st.f_type as i64, FUSE_SUPER_MAGIC);
    assert!(mount.stats().get(Op::Lookup) > 0);
    assert!(
        mount.stats().get(Op::Read) > 1,
        "the big file takes more than one read"
    );
    assert_eq!(
        os_error(fs::symlink_metadata(mount.path().join("files/nope"))),
        Some(Errno::NOENT.raw_os_error())
    );
    // Read-only.
    assert_eq!(
        os_error(fs::write(mount.path().join("files/f0"), b"x")),
        Some(Errno::ROFS.raw_os_error())
    );
}

#[test]
fn symlinks_stay_symlinks() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let mount = Mount::start(src.path(), DELAY, &[]).expect("mount");
    let v2 = mount.path().join("v2");
    assert!(
        fs::symlink_metadata(&v2)
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(&v2).expect("readlink"),
        Path::new("docker/registry/v2")
    );
    // The kernel follows it (within the mount) when asked to; the filesystem itself never does.
    assert!(fs::metadata(&v2).expect("stat").is_dir());
    assert!(
        fs::symlink_metadata(v2.join("blobs"))
            .expect("lstat")
            .is_dir()
    );
    let dangling = mount.path().join("dangling");
    assert!(
        fs::symlink_metadata(&dangling)
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::metadata(&dangling).map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    // O_NOFOLLOW on the link is refused with ELOOP, as on any filesystem.
    let nofollow = rustix::fs::open(
        &v2,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    );
    assert_eq!(nofollow.err(), Some(Errno::LOOP));
    assert!(mount.stats().get(Op::Readlink) > 0);
}

/// 32 stats from 32 threads at once cost about one delay, not 32 (best of 3 rounds, each on
/// names never looked up before, so each stat is one LOOKUP round trip).
#[test]
fn concurrent_operations_overlap() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let mount = Mount::start(src.path(), DELAY, &[]).expect("mount");
    let files = mount.path().join("files");
    fs::symlink_metadata(&files).expect("lstat");

    // Sequentially, every cold stat pays the delay.
    let start = Instant::now();
    for i in 100..132 {
        fs::symlink_metadata(files.join(format!("f{i}"))).expect("lstat");
    }
    let sequential = start.elapsed();
    assert!(
        sequential >= DELAY * 32,
        "32 sequential stats took {sequential:?}"
    );

    let mut best = Duration::MAX;
    for round in 0..3 {
        let barrier = Arc::new(Barrier::new(33));
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                let path = files.join(format!("f{}", round * 32 + i));
                std::thread::spawn(move || {
                    barrier.wait();
                    fs::symlink_metadata(path).expect("lstat");
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for t in threads {
            t.join().expect("thread");
        }
        best = best.min(start.elapsed());
    }
    eprintln!("32 sequential stats: {sequential:?}; 32 concurrent: {best:?} (delay {DELAY:?})");
    assert!(
        best < DELAY * 16,
        "32 concurrent stats took {best:?}: they did not overlap"
    );
}

#[test]
fn faults_fail_exactly_their_paths() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let faults = [
        (LAYERS.to_owned(), Errno::IO),
        (
            "docker/registry/v2/blobs/sha256/ab/".to_owned(),
            Errno::STALE,
        ),
        ("files/f1".to_owned(), Errno::ACCESS),
        ("/big".to_owned(), Errno::TIMEDOUT),
    ];
    let mount = Mount::start(src.path(), DELAY, &faults).expect("mount");
    let m = mount.path();
    let app = m.join("docker/registry/v2/repositories/team/app");

    // The faulty name is still listed by its parent, but any use of it fails.
    let names: Vec<_> = fs::read_dir(&app)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.iter().any(|n| n == "_layers"));
    assert_eq!(
        os_error(fs::symlink_metadata(app.join("_layers"))),
        Some(Errno::IO.raw_os_error())
    );
    assert_eq!(
        os_error(fs::read_dir(app.join("_layers"))),
        Some(Errno::IO.raw_os_error())
    );
    let tag = app.join("_manifests/tags/latest/current/link");
    assert_eq!(
        fs::read(&tag).expect("read tag"),
        format!("sha256:{HEX}").as_bytes()
    );
    let other = m.join("docker/registry/v2/repositories/team/other/_layers/sha256");
    assert!(fs::read_dir(other).expect("read_dir other").count() == 1);

    // "…/ab/" (trailing slash): the shard itself is fine, what is below it is stale.
    let shard = m.join("docker/registry/v2/blobs/sha256/ab");
    let names: Vec<_> = fs::read_dir(&shard)
        .expect("read_dir shard")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [HEX]);
    assert_eq!(
        os_error(fs::read(shard.join(HEX).join("data"))),
        Some(Errno::STALE.raw_os_error())
    );

    // String prefixes: "files/f1" covers f1, f10..f19 and f100..f199, not f2.
    for name in ["f1", "f15", "f150"] {
        let r = fs::symlink_metadata(m.join("files").join(name));
        assert_eq!(os_error(r), Some(Errno::ACCESS.raw_os_error()), "{name}");
    }
    assert_eq!(fs::read(m.join("files/f2")).expect("read f2"), b"file 2\n");
    assert_eq!(
        os_error(fs::read(m.join("big"))),
        Some(Errno::TIMEDOUT.raw_os_error())
    );
    // A leading "/" in a prefix is ignored: paths are relative to the source.
    assert_eq!(
        os_error(fs::symlink_metadata(m.join("big"))),
        Some(Errno::TIMEDOUT.raw_os_error())
    );
}

#[test]
fn readdirplus_mode_matches_the_source_and_keeps_faults() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let options = Options {
        delay: DELAY,
        faults: vec![parse_fault(&format!("{LAYERS}=EIO")).expect("fault")],
        readdirplus: true,
        ..Options::default()
    };
    let mount = Mount::with_options(src.path(), &options).expect("mount");
    let files = mount.path().join("files");
    let names: Vec<_> = fs::read_dir(&files)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 200);
    for name in &names {
        let (a, b) = (
            fs::symlink_metadata(files.join(name)),
            fs::symlink_metadata(src.path().join("files").join(name)),
        );
        let (a, b) = (a.expect("lstat mount"), b.expect("lstat source"));
        assert_eq!(
            (a.len(), a.mtime(), a.mtime_nsec()),
            (b.len(), b.mtime(), b.mtime_nsec())
        );
    }
    let app = mount
        .path()
        .join("docker/registry/v2/repositories/team/app");
    assert!(
        fs::read_dir(&app)
            .expect("read_dir")
            .any(|e| e.expect("entry").file_name() == "_layers")
    );
    assert_eq!(
        os_error(fs::symlink_metadata(app.join("_layers"))),
        Some(Errno::IO.raw_os_error())
    );
}

#[test]
fn drop_unmounts() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let mount = Mount::start(src.path(), DELAY, &[]).expect("mount");
    let path = mount.path().to_path_buf();
    assert!(mounted(&path));
    assert!(
        fs::symlink_metadata(path.join("big"))
            .expect("lstat")
            .is_file()
    );
    drop(mount);
    assert!(!mounted(&path));
    assert!(!path.exists(), "the temporary mountpoint is removed");

    let mount = Mount::start(src.path(), DELAY, &[]).expect("mount");
    let path = mount.path().to_path_buf();
    mount.unmount().expect("unmount");
    assert!(!mounted(&path));
}

#[test]
fn drop_with_a_busy_mount_detaches_lazily() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let mount = Mount::start(src.path(), DELAY, &[]).expect("mount");
    let path = mount.path().to_path_buf();
    let file = fs::File::open(path.join("big")).expect("open");
    drop(mount);
    assert!(!mounted(&path), "detached");
    // The open file is still served until it is closed.
    let mut buf = [0u8; 3];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 1).expect("read after detach");
    assert_eq!(buf, [7, 14, 21]);
}

/// The binary prints `ready` once mounted, serves, and unmounts and exits 0 on SIGTERM; it also
/// exits 0 when unmounted from outside (`fusermount3 -u`).
#[test]
fn binary_serves_until_sigterm_or_unmount() {
    if !fuse_available() {
        return;
    }
    let src = tree();
    let mnt = tempfile::tempdir().expect("tempdir");
    let start = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stowage-slowfs"))
            .arg(src.path())
            .arg(mnt.path())
            .args(["--delay-us", "2000", "--threads", "8"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stowage-slowfs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read ready");
        assert_eq!(line, "ready\n");
        child
    };

    let child = start(&["--fail", "files/f7=ESTALE"]);
    assert!(mounted(mnt.path()));
    assert_eq!(
        fs::read(mnt.path().join("files/f2")).expect("read"),
        b"file 2\n"
    );
    assert_eq!(
        os_error(fs::symlink_metadata(mnt.path().join("files/f7"))),
        Some(Errno::STALE.raw_os_error())
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("operations (lookup"), "{stderr}");
    assert!(!mounted(mnt.path()));

    if Command::new("fusermount3")
        .arg("--version")
        .output()
        .is_ok()
    {
        let child = start(&[]);
        assert!(mounted(mnt.path()));
        let status = Command::new("fusermount3")
            .arg("-u")
            .arg(mnt.path())
            .status()
            .expect("fusermount3");
        assert!(status.success());
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{out:?}");
        assert!(!mounted(mnt.path()));
    } else {
        eprintln!("fusermount3 not installed: external unmount not tested");
    }
}

#[test]
fn fault_specs_parse() {
    let f = parse_fault("docker/registry/v2/repositories/team/app/_layers=EIO").expect("parse");
    assert_eq!(f.prefix, LAYERS);
    assert_eq!(f.errno, Errno::IO);
    assert_eq!(parse_fault("/a=b=estale").expect("parse").prefix, "a=b");
    assert_eq!(parse_fault("x=EACCES").expect("parse").errno, Errno::ACCESS);
    assert_eq!(
        parse_fault("x=ETIMEDOUT").expect("parse").errno,
        Errno::TIMEDOUT
    );
    assert!(parse_fault("x=ENOENT").is_err());
    assert!(parse_fault("x").is_err());
}
