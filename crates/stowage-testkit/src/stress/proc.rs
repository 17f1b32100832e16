//! Child processes for the stress harness: every wait has a deadline (a hang is an error that
//! says what hung), every child is killed and reaped when its guard is dropped, and a long
//! running child's output is streamed line by line so the harness can react to progress lines.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Run `cmd` to completion with stdin closed; kill it after `timeout`. The error names `what`.
pub fn run(cmd: &mut Command, timeout: Duration, what: &str) -> Result<Finished, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard::spawn(cmd, what)?;
    let out = drain(child.child.stdout.take());
    let err = drain(child.child.stderr.take());
    let status = child.wait(timeout)?;
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub struct Guard {
    pub child: Child,
    what: String,
}

impl Guard {
    pub fn spawn(cmd: &mut Command, what: &str) -> Result<Guard, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("{what}: could not start: {e}"))?;
        Ok(Guard {
            child,
            what: what.to_string(),
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait at most `timeout`; on expiry the child is killed and the error says so.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "{} did not finish within {timeout:?} (killed)",
                    self.what
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap (no-op when it already exited).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.kill();
        }
    }
}

/// One output line of a streamed child, tagged with the stream and the time since the start.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Duration,
    pub stderr: bool,
    pub text: String,
}

/// A running child whose stdout and stderr lines arrive on `lines`.
pub struct Streamed {
    pub guard: Guard,
    pub lines: Receiver<Line>,
    readers: Vec<JoinHandle<()>>,
}

fn pump<R: Read + Send + 'static>(
    r: Option<R>,
    stderr: bool,
    start: Instant,
    tx: Sender<Line>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(r) = r else { return };
        for line in BufReader::new(r).lines() {
            let Ok(text) = line else { break };
            let at = start.elapsed();
            if tx.send(Line { at, stderr, text }).is_err() {
                break;
            }
        }
    })
}

impl Streamed {
    /// Start `cmd`, stdin closed, with `start` as time zero of its lines.
    pub fn spawn(cmd: &mut Command, what: &str, start: Instant) -> Result<Streamed, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(cmd, what)?;
        let (tx, lines) = channel();
        let readers = vec![
            pump(guard.child.stdout.take(), false, start, tx.clone()),
            pump(guard.child.stderr.take(), true, start, tx),
        ];
        Ok(Streamed {
            guard,
            lines,
            readers,
        })
    }

    /// After the child exited: the lines still in flight, until its pipes close or `grace`
    /// passes (a grandchild that inherited a pipe must not hang the harness).
    pub fn rest(&mut self, grace: Duration) -> Vec<Line> {
        let deadline = Instant::now() + grace;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(_) => break,
            }
        }
        self.readers.clear();
        out
    }
}
