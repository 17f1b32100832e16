//! The apply journal: append-only JSON lines, one `intent` before and one `done` (or
//! `skipped`) after every action, flushed as it goes. An interrupted apply is resumed by
//! running it again: actions are idempotent, and the journal says what was already done.
//! With a quarantine, the journal is what `stowage restore` replays backwards.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// `begin`, `intent`, `done`, `skipped`, `end`.
    pub status: String,
    /// `delete`, `move`, `rmdir` (for intent/done/skipped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `begin` only: the plan id and the quarantine directory, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plan: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub quarantine: String,
}

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    seq: u64,
    unsynced: u32,
}

impl Journal {
    /// Open (creating or appending) the journal at `path`.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        if let Some(p) = path.parent()
            && !p.as_os_str().is_empty()
        {
            std::fs::create_dir_all(p)?;
        }
        let seq = read(path)
            .map(|v| v.last().map_or(0, |e| e.seq))
            .unwrap_or(0);
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // One apply per journal at a time: a second run of the same plan (a retry from cron
        // while the first one settles) would act on the same fenced targets. The lock goes
        // with the file when the process ends, however it ends.
        if let Err(e) = file.try_lock() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("another stowage apply holds this journal ({e}); wait for it to finish"),
            ));
        }
        // A process killed mid-write leaves a torn last line: end it, so the next entry starts
        // on a line of its own (the torn one is then skipped by `read`).
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut r = File::open(path)?;
            r.seek(SeekFrom::Start(len - 1))?;
            let mut last = [0u8; 1];
            r.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            seq,
            unsynced: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry (its `seq` is assigned here).
    pub fn write(&mut self, mut e: Entry) -> std::io::Result<u64> {
        self.seq += 1;
        e.seq = self.seq;
        let mut line = serde_json::to_string(&e).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.unsynced += 1;
        // Every action is idempotent, so losing the tail of the journal in a crash only means
        // redoing a few no-ops; sync in batches rather than per line.
        if self.unsynced >= 256 {
            self.sync()?;
        }
        Ok(self.seq)
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        self.unsynced = 0;
        self.file.sync_data()
    }
}

/// Read a journal (a torn last line, from a crash mid-write, is ignored).
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) => out.push(e),
            Err(_) => continue,
        }
    }
    Ok(out)
}

pub fn entry(status: &str, op: &str, path: &str) -> Entry {
    Entry {
        seq: 0,
        status: status.into(),
        op: op.into(),
        path: path.into(),
        reason: String::new(),
        plan: String::new(),
        quarantine: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_apply_of_the_same_journal_is_refused_while_the_first_runs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plan.journal");
        let first = Journal::open(&p).unwrap();
        let e = Journal::open(&p).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        assert!(e.to_string().contains("another stowage apply"), "{e}");
        drop(first);
        Journal::open(&p).unwrap();
    }
}
