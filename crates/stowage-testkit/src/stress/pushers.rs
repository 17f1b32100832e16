//! The concurrent clients of a stress run: pushers that push garbage images again (to new
//! repositories, to their old repository, by cross-repository mount) once the trigger opens
//! the gate, and pullers that pull kept images until told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Api, Images, Skopeo};

/// How a pusher pushes an image again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// skopeo to a new repository (skopeo mounts from the old one when its cache knows it).
    SkopeoNewRepo,
    /// skopeo to the image's old repository, a new tag (skopeo skips blobs HEAD says exist).
    SkopeoOldRepo,
    /// By hand to the old repository: HEAD each blob, upload only the missing ones.
    ApiOldRepo,
    /// By hand to a new repository: mount every blob from the old repository.
    ApiMount,
    /// By hand to a new repository: upload every blob (an upload commit of a blob whose data
    /// is already there only writes the link).
    ApiUpload,
}

pub const KINDS: [PushKind; 5] = [
    PushKind::SkopeoNewRepo,
    PushKind::ApiMount,
    PushKind::ApiOldRepo,
    PushKind::SkopeoOldRepo,
    PushKind::ApiUpload,
];

impl PushKind {
    pub fn name(self) -> &'static str {
        match self {
            PushKind::SkopeoNewRepo => "skopeo-new-repo",
            PushKind::SkopeoOldRepo => "skopeo-old-repo",
            PushKind::ApiOldRepo => "api-old-repo",
            PushKind::ApiMount => "api-mount",
            PushKind::ApiUpload => "api-upload",
        }
    }
}

/// One planned push: image `image` (an index into the victims) as `repo:tag`.
#[derive(Debug, Clone)]
pub struct Push {
    pub kind: PushKind,
    pub image: usize,
    pub repo: String,
    pub tag: String,
}

/// What the client was told.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    pub push: Push,
    pub image_name: String,
    pub digest: String,
    pub result: Result<(), String>,
    pub started: Duration,
    pub ended: Duration,
}

/// Opened once; everyone waiting is released. Remembers when.
#[derive(Default)]
pub struct Gate {
    opened: Mutex<Option<Duration>>,
    cv: Condvar,
}

impl Gate {
    pub fn open(&self, at: Duration) {
        let mut g = self.opened.lock().unwrap();
        if g.is_none() {
            *g = Some(at);
            self.cv.notify_all();
        }
    }

    pub fn opened_at(&self) -> Option<Duration> {
        *self.opened.lock().unwrap()
    }

    /// Wait until opened or `timeout`; true when opened.
    pub fn wait(&self, timeout: Duration) -> bool {
        let g = self.opened.lock().unwrap();
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |o| o.is_none())
            .unwrap();
        g.is_some()
    }
}

/// splitmix64: the harness's only source of "randomness", seeded per run.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The deterministic push list of pusher `p`: kinds rotate, images are drawn from the first
/// `needed` victims.
pub fn plan(
    seed: u64,
    p: usize,
    count: usize,
    needed: usize,
    victim_repo: &dyn Fn(usize) -> String,
) -> Vec<Push> {
    (0..count)
        .map(|j| {
            let kind = KINDS[(p + j) % KINDS.len()];
            let image = (mix(seed ^ ((p as u64) << 32) ^ j as u64) % needed as u64) as usize;
            let (repo, tag) = match kind {
                PushKind::SkopeoOldRepo | PushKind::ApiOldRepo => {
                    (victim_repo(image), format!("p{p}-{j}"))
                }
                _ => (
                    format!("stress/again/{}-p{p}-{j}", kind.name()),
                    "v1".to_string(),
                ),
            };
            Push {
                kind,
                image,
                repo,
                tag,
            }
        })
        .collect()
}

/// Everything a pusher or puller needs.
#[derive(Clone)]
pub struct Clients {
    pub images: Arc<Images>,
    pub skopeo: Skopeo,
    pub api: Api,
    pub host: String,
    pub victim_repo: Arc<dyn Fn(usize) -> String + Send + Sync>,
}

fn push_once(c: &Clients, push: &Push) -> Result<(), String> {
    let img = &c.images.list[push.image];
    let dest = format!("{}:{}", push.repo, push.tag);
    match push.kind {
        PushKind::SkopeoNewRepo | PushKind::SkopeoOldRepo => {
            return c.skopeo.push(&c.images, &img.name, &c.host, &dest);
        }
        PushKind::ApiOldRepo => {
            for b in &img.blobs {
                if c.api.head_blob(&push.repo, b)? != 200 {
                    c.api.upload(&push.repo, b, &c.images.blob_file(b))?;
                }
            }
        }
        PushKind::ApiMount => {
            let from = (c.victim_repo)(push.image);
            for b in &img.blobs {
                c.api
                    .mount_or_upload(&push.repo, b, &from, &c.images.blob_file(b))?;
            }
        }
        PushKind::ApiUpload => {
            for b in &img.blobs {
                c.api.upload(&push.repo, b, &c.images.blob_file(b))?;
            }
        }
    }
    c.api.put_manifest(
        &push.repo,
        &push.tag,
        &img.digest,
        &c.images.blob_file(&img.digest),
    )
}

/// Start one thread per push list; each waits for the gate (at most `wait`), then pushes.
pub fn spawn_pushers(
    c: &Clients,
    lists: Vec<Vec<Push>>,
    gate: Arc<Gate>,
    start: Instant,
    wait: Duration,
) -> Vec<JoinHandle<Vec<PushOutcome>>> {
    lists
        .into_iter()
        .map(|list| {
            let c = c.clone();
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait(wait);
                list.into_iter()
                    .map(|push| {
                        let started = start.elapsed();
                        let result = push_once(&c, &push);
                        let img = &c.images.list[push.image];
                        PushOutcome {
                            image_name: img.name.clone(),
                            digest: img.digest.clone(),
                            push,
                            result,
                            started,
                            ended: start.elapsed(),
                        }
                    })
                    .collect()
            })
        })
        .collect()
}

/// A pull during the collection: `reference` failed with `error` at `at`.
#[derive(Debug, Clone)]
pub struct PullFailure {
    pub reference: String,
    pub at: Duration,
    pub error: String,
}

/// Pullers: each pulls the kept references round robin until `stop`. Returns (pulls, failures).
pub fn spawn_pullers(
    c: &Clients,
    n: usize,
    kept: Arc<Vec<(String, String)>>,
    scratch: &std::path::Path,
    stop: Arc<AtomicBool>,
    start: Instant,
) -> Vec<JoinHandle<(usize, Vec<PullFailure>)>> {
    (0..n)
        .map(|i| {
            let c = c.clone();
            let kept = kept.clone();
            let stop = stop.clone();
            let dir = scratch.join(format!("puller-{i}"));
            std::thread::spawn(move || {
                let (mut pulls, mut failures) = (0, Vec::new());
                let mut k = i;
                while !stop.load(Ordering::SeqCst) && !kept.is_empty() {
                    let (reference, digest) = &kept[k % kept.len()];
                    if let Err(error) = c.skopeo.pull_check(&c.host, reference, digest, &dir) {
                        failures.push(PullFailure {
                            reference: reference.clone(),
                            at: start.elapsed(),
                            error,
                        });
                        // A refused connection fails at once: do not count one outage a
                        // hundred times.
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    pulls += 1;
                    k += 1;
                }
                (pulls, failures)
            })
        })
        .collect()
}
