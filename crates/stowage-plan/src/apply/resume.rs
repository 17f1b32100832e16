//! What an interrupted earlier run of the same plan did, read back from its journal.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use super::{ApplyError, Mode};
use crate::journal::{self, Journal, entry};

/// The journal, opened for this run, and what earlier runs left.
pub(crate) struct Before {
    pub journal: Journal,
    /// Paths acted on before (`intent` or `done`).
    pub done_before: HashSet<String>,
    /// Paths still fenced: moved into the batch and neither restored, purged nor kept since.
    pub fenced: BTreeSet<String>,
    /// Of those, the ones an online run fenced (its `begin` says `online`): they wait for
    /// an online verify.
    pub fenced_online: BTreeSet<String>,
    /// Fenced paths whose purge began (`intent` or `done`).
    pub purged: HashSet<String>,
}

/// Open the journal, reading what an interrupted earlier run of this plan did, and begin
/// this run (its `begin` names the quarantine and the mode).
pub(crate) fn open_journal(
    path: &Path,
    id: &str,
    batch: Option<&Path>,
    mode: Mode,
) -> Result<Before, ApplyError> {
    let jerr = |source| ApplyError::Journal {
        path: path.to_path_buf(),
        source,
    };
    let previous = if path.exists() {
        journal::read(path).map_err(jerr)?
    } else {
        Vec::new()
    };
    if let Some(b) = previous.iter().find(|e| e.status == "begin")
        && b.plan != id
    {
        return Err(ApplyError::ForeignJournal(path.to_path_buf()));
    }
    // An `intent` without its `done` means the process died between the two: the action may
    // have happened, so its target being gone now is this plan's doing too.
    let done_before: HashSet<String> = previous
        .iter()
        .filter(|e| e.status == "done" || e.status == "intent")
        .map(|e| e.path.clone())
        .collect();
    let mut fenced = BTreeSet::new();
    let mut fenced_online = BTreeSet::new();
    let mut purged = HashSet::new();
    let mut online = false;
    for e in &previous {
        match (e.status.as_str(), e.op.as_str()) {
            // Journals written before the mode was recorded say nothing: not online.
            ("begin", op) => online = op == "online",
            ("done" | "intent", "move") => {
                fenced.insert(e.path.clone());
                if online {
                    fenced_online.insert(e.path.clone());
                }
            }
            ("done" | "intent", "purge") => {
                purged.insert(e.path.clone());
                if e.status == "done" {
                    fenced.remove(&e.path);
                    fenced_online.remove(&e.path);
                }
            }
            ("done", "restore" | "keep") => {
                fenced.remove(&e.path);
                fenced_online.remove(&e.path);
            }
            _ => {}
        }
    }
    let mut journal = Journal::open(path).map_err(jerr)?;
    let mut begin = entry("begin", "", "");
    begin.op = match mode {
        Mode::Online => "online".into(),
        Mode::Offline => "offline".into(),
    };
    begin.plan = id.to_string();
    begin.quarantine = batch.map(|q| q.display().to_string()).unwrap_or_default();
    journal.write(begin).map_err(jerr)?;
    Ok(Before {
        journal,
        done_before,
        fenced,
        fenced_online,
        purged,
    })
}
