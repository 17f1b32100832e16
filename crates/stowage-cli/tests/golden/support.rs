//! Running a golden case and comparing its output (see `golden.rs`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// A storage tree the cases run on.
pub struct Tree {
    pub name: String,
    pub root: PathBuf,
    pub now: &'static str,
    /// A repository, a tag of it and a digest to ask `tags` and `explain` about.
    pub repo: String,
    pub tag: String,
    pub digest: String,
    _keep: tempfile::TempDir,
}

impl Tree {
    pub fn sample() -> Tree {
        let s = stowage_testkit::sample();
        let root = s.rootdirectory();
        Tree {
            name: "sample".into(),
            root,
            now: "2026-12-01T00:00:00Z",
            repo: "team/app/api".into(),
            tag: "latest".into(),
            digest: "sha256:156eae76738a1cf153fcd872cc285e8d5a0706132f0f415c6bcf6e8477757b25"
                .into(),
            _keep: s.dir,
        }
    }

    pub fn generated(blobs: u64) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        stowage_gen::generate(&stowage_gen::Options::new(&root, blobs)).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("gen-manifest.json")).unwrap())
                .unwrap();
        // The first tag of the generator's list, and the blob its tag link names.
        let first = manifest["tags"][0].as_str().unwrap().to_string();
        let (repo, tag) = first.split_once(':').unwrap();
        let link = root.join(format!(
            "docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}/current/link"
        ));
        let digest = std::fs::read_to_string(link).unwrap();
        Tree {
            name: format!("gen{}k", blobs / 1000),
            root,
            now: "2026-11-01T00:00:00Z",
            repo: repo.into(),
            tag: tag.into(),
            digest,
            _keep: dir,
        }
    }
}

/// One step of a case: a command line, or an HTTP GET to the dashboard the case started.
pub enum Step {
    Run(Vec<String>),
    /// Append a file the previous steps wrote (relative to the case's output directory).
    File(&'static str),
    Get(String),
}

/// A named sequence of steps whose combined output is compared.
pub struct Case {
    pub name: String,
    pub steps: Vec<Step>,
    /// Start `stowage serve` first (for `Step::Get`).
    pub serve: bool,
}

impl Case {
    pub fn run(&self, tree: &Tree) -> String {
        let out = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let server = self.serve.then(|| Server::start(tree, out.path()));
        for step in &self.steps {
            match step {
                Step::Run(args) => text.push_str(&run(tree, out.path(), args)),
                Step::File(f) => {
                    let p = out.path().join(f);
                    let body = std::fs::read(&p).unwrap_or_else(|e| format!("({e})").into_bytes());
                    text.push_str(&format!(
                        "=== file {f}\n{}\n",
                        String::from_utf8_lossy(&body)
                    ));
                }
                Step::Get(path) => {
                    let s = server.as_ref().unwrap();
                    let path = expand(path, tree, out.path());
                    text.push_str(&format!("=== GET {path}\n{}\n", s.get(&path)));
                }
            }
        }
        drop(server);
        mask(&text, tree, out.path())
    }
}

fn expand(arg: &str, tree: &Tree, out: &Path) -> String {
    arg.replace("$OUT", out.to_str().unwrap())
        .replace("$WS", stowage_testkit::workspace_root().to_str().unwrap())
        .replace("$REPO", &tree.repo)
        .replace("$TAG", &tree.tag)
        .replace("$DIGEST", &tree.digest)
}

fn run(tree: &Tree, out: &Path, args: &[String]) -> String {
    let args: Vec<String> = args.iter().map(|a| expand(a, tree, out)).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.arg("--storage").arg(&tree.root).arg("--no-progress");
    if !args.iter().any(|a| a == "--now") {
        cmd.args(["--now", tree.now]);
    }
    let o = cmd
        .args(&args)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap();
    format!(
        "=== stowage {}\nexit {:?}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Replace what differs between two runs on the same tree: temporary paths, and any JSON
/// value under a `created` key (file birth times are the time the test extracted the tree).
fn mask(text: &str, tree: &Tree, out: &Path) -> String {
    let mut t = text
        .replace(out.to_str().unwrap(), "$OUT")
        .replace(tree.root.to_str().unwrap(), "$ROOT")
        .replace(stowage_testkit::workspace_root().to_str().unwrap(), "$WS");
    for key in ["\"created\":", "\"created\": "] {
        t = mask_values(&t, key);
    }
    t = mask_number_after(&t, "stowage_scan_duration_seconds ");
    // The filesystem's size and free bytes are the test machine's, at that moment.
    for name in [
        "stowage_filesystem_size_bytes ",
        "stowage_filesystem_free_bytes ",
        "\"size_bytes\":",
        "\"free_bytes\":",
        "\"days_until_full\":",
        "\"growth_bytes_per_day\":",
        "\"size_bytes\": ",
        "\"free_bytes\": ",
        "\"days_until_full\": ",
        "\"growth_bytes_per_day\": ",
    ] {
        t = mask_number_after(&t, name);
    }
    // Birth times are the time the test wrote the tree: today (or yesterday, past midnight).
    let day = 86_400_000_000_000i64;
    let today = stowage_model::time::Timestamp::from_system_time(std::time::SystemTime::now());
    for d in [today.0, today.0 - day] {
        let date = &stowage_model::time::Timestamp(d).rfc3339()[..10];
        t = mask_run_dates(&t, date);
    }
    t
}

/// `NAME 0.0123` -> `NAME *`.
fn mask_number_after(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(name) {
        let (head, tail) = rest.split_at(i + name.len());
        out.push_str(head);
        let n = tail
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
            .unwrap_or(tail.len());
        out.push('*');
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// `2026-12-06T05:39:19Z`, `2026-12-06 05:39` -> `<run time>` for the given date.
fn mask_run_dates(text: &str, date: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(date) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = &tail[date.len()..];
        let n = after
            .find(|c: char| !(c.is_ascii_digit() || ":.TZ ".contains(c)))
            .unwrap_or(after.len());
        // Keep a separator that follows the time (a space before the next word).
        let time = after[..n].trim_end_matches(' ');
        out.push_str("<run time>");
        rest = &after[time.len()..];
    }
    out.push_str(rest);
    out
}

/// `"created":"2026-..."` -> `"created":"*"` (strings only; `null` is kept, it is stable).
fn mask_values(text: &str, key: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        let (head, tail) = rest.split_at(i + key.len());
        out.push_str(head);
        if let Some(body) = tail.strip_prefix('"')
            && let Some(end) = body.find('"')
        {
            out.push_str("\"*\"");
            rest = &body[end + 1..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

pub enum Outcome {
    Same,
    Blessed,
    Differs(String),
}

/// Compare with (or, blessing, write) `DIR/TREE/NAME.txt`, or `NAME.sha256` for large outputs.
pub fn compare(dir: &Path, tree: &str, name: &str, actual: &str, bless: bool) -> Outcome {
    let text = dir.join(tree).join(format!("{name}.txt"));
    let hash = dir.join(tree).join(format!("{name}.sha256"));
    let summary = format!(
        "{:x} {} bytes {} lines\n",
        Sha256::digest(actual.as_bytes()),
        actual.len(),
        actual.lines().count()
    );
    if bless {
        std::fs::create_dir_all(dir.join(tree)).unwrap();
        let _ = std::fs::remove_file(&text);
        let _ = std::fs::remove_file(&hash);
        if actual.len() > super::INLINE_LIMIT {
            std::fs::write(&hash, &summary).unwrap();
            // The full text, for diffing a later mismatch on this machine.
            let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("golden-blessed")
                .join(tree);
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::write(keep.join(format!("{name}.txt")), actual).unwrap();
        } else {
            std::fs::write(&text, actual).unwrap();
        }
        return Outcome::Blessed;
    }
    let same = match (
        std::fs::read_to_string(&text),
        std::fs::read_to_string(&hash),
    ) {
        (Ok(expected), _) => expected == actual,
        (_, Ok(expected)) => expected == summary,
        _ => return Outcome::Differs("no golden recorded (STOWAGE_BLESS=1 records it)".into()),
    };
    if same {
        return Outcome::Same;
    }
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("golden-actual")
        .join(tree);
    std::fs::create_dir_all(&keep).unwrap();
    let path = keep.join(format!("{name}.txt"));
    std::fs::write(&path, actual).unwrap();
    Outcome::Differs(format!("differs; actual output in {}", path.display()))
}

/// `stowage serve` on a free loopback port, killed when dropped.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(tree: &Tree, out: &Path) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .arg("--storage")
            .arg(&tree.root)
            .args(["--now", tree.now, "--no-progress", "serve", "--listen"])
            .args(["127.0.0.1:0", "--interval", "1h", "--history"])
            .arg(out.join("serve.db"))
            .env("TZ", "UTC")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut r = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|x| x.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        std::thread::spawn(move || for _ in r.lines() {});
        let s = Server { child, addr };
        // The first scan runs in the background: wait until it is served.
        for _ in 0..600 {
            if s.get("/api/v1/report").starts_with("HTTP/1.0 200")
                || s.get("/api/v1/report").starts_with("HTTP/1.1 200")
            {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the dashboard never served its first scan");
    }

    /// Status line, content type and body (HTTP/1.0: no chunked encoding to undo).
    fn get(&self, path: &str) -> String {
        let Ok(mut c) = std::net::TcpStream::connect(&self.addr) else {
            return "(connect failed)".into();
        };
        let _ = write!(c, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let status = lines.next().unwrap_or("");
        let ctype = lines
            .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .unwrap_or("");
        format!("{status}\n{ctype}\n{body}")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
