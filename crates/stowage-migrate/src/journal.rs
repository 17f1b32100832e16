//! The migration's journal: what was copied, so that a run killed at any point resumes and a
//! later run (`--incremental`) copies only what changed.
//!
//! A JSON-lines file: a header naming the source and the target, then one line per file
//! written to the target *after* the write completed (and, for a blob, after its digest
//! matched), then a `done` line when a run finished without error. Each line is one
//! `write` call: a process killed with `kill -9` loses at most the line it had not written,
//! and the write it stands for is then simply made again (writes are idempotent and all or
//! nothing). A torn last line is ignored.
//!
//! A file's entry records what the source file was when it was copied (size, modification
//! time, ETag where the store gives one). A file whose source still has the same record and
//! that the target still holds is not copied again.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use stowage_model::Timestamp;

use crate::Error;
use crate::walk::File;

pub const SCHEMA: &str = "stowage.migrate-journal/v1";

#[derive(Serialize, Deserialize)]
struct Header {
    schema: String,
    source: String,
    target: String,
}

/// What the source file was when it was copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Key.
    pub k: String,
    /// Size.
    pub s: u64,
    /// Modification time, ns.
    pub m: i64,
    /// ETag, where the source store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

impl Record {
    pub fn of(f: &File) -> Record {
        Record {
            k: f.key.clone(),
            s: f.size,
            m: f.modified.0,
            e: f.etag.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Done {
    done: String,
}

/// What an existing journal says.
#[derive(Default)]
pub(crate) struct Previous {
    /// Key -> the source file as it was copied.
    pub copied: HashMap<String, Record>,
    /// When the last complete run ended (the journal has a `done` line after its last copy).
    pub completed: Option<String>,
    pub existed: bool,
}

/// Read the journal at `path`, if there is one, refusing one made for another pair.
pub(crate) fn read(path: &Path, source: &str, target: &str) -> Result<Previous, Error> {
    let io = |e| Error::Journal {
        path: path.to_owned(),
        source: e,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Previous::default()),
        Err(e) => return Err(io(e)),
    };
    let mut prev = Previous {
        existed: true,
        ..Previous::default()
    };
    let mut lines = std::io::BufReader::new(f).lines();
    let header: Header = match lines.next() {
        Some(l) => serde_json::from_str(&l.map_err(io)?).map_err(|e| Error::JournalFormat {
            path: path.to_owned(),
            why: format!("line 1: {e}"),
        })?,
        None => return Ok(Previous::default()),
    };
    if header.schema != SCHEMA || header.source != source || header.target != target {
        return Err(Error::JournalFormat {
            path: path.to_owned(),
            why: format!(
                "it is the journal of a migration from {} to {} ({}); pass another --journal",
                header.source, header.target, header.schema
            ),
        });
    }
    for line in lines {
        let line = line.map_err(io)?;
        if let Ok(r) = serde_json::from_str::<Record>(&line) {
            prev.completed = None;
            prev.copied.insert(r.k.clone(), r);
        } else if let Ok(d) = serde_json::from_str::<Done>(&line) {
            prev.completed = Some(d.done);
        }
        // Anything else is a line torn by a kill: its write is made again.
    }
    Ok(prev)
}

/// The journal being appended to.
pub(crate) struct Writer {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Writer {
    pub fn open(path: &Path, source: &str, target: &str, fresh: bool) -> Result<Writer, Error> {
        let io = |e| Error::Journal {
            path: path.to_owned(),
            source: e,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if fresh {
            let h = Header {
                schema: SCHEMA.into(),
                source: source.into(),
                target: target.into(),
            };
            let mut line = serde_json::to_vec(&h).map_err(|e| io(e.into()))?;
            line.push(b'\n');
            file.write_all(&line).map_err(io)?;
        }
        Ok(Writer {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    fn line(&self, v: &impl Serialize) -> Result<(), Error> {
        let mut line = serde_json::to_vec(v).map_err(|e| Error::Journal {
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        // One write per line (appending): a kill leaves whole lines and at most one torn.
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&line)
            .map_err(|e| Error::Journal {
                path: self.path.clone(),
                source: e,
            })
    }

    pub fn copied(&self, r: &Record) -> Result<(), Error> {
        self.line(r)
    }

    /// Make every line durable (between phases and at the end).
    pub fn sync(&self) -> Result<(), Error> {
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync_data()
            .map_err(|e| Error::Journal {
                path: self.path.clone(),
                source: e,
            })
    }

    pub fn done(&self, at: Timestamp) -> Result<(), Error> {
        self.line(&Done { done: at.rfc3339() })?;
        self.sync()
    }
}
