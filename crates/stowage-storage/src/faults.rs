//! A fault-injecting decorator (object_store's habit): wraps any [`Storage`] and fails chosen
//! paths with chosen error kinds, so tests can show that every failure becomes a finding and
//! a safe plan. Also used by the latency/error FUSE harness's tests.

use std::io::Read;

use crate::{BackendKind, Entry, ErrorKind, Meta, OpCounters, Storage, StorageError};

/// Fail operations on paths starting with a prefix.
#[derive(Clone, Debug)]
pub struct Fault {
    pub prefix: String,
    pub kind: ErrorKind,
    /// Which operations fail.
    pub on: Ops,
}

/// Operation selector for a [`Fault`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ops {
    All,
    List,
    Stat,
    Read,
}

/// A storage whose chosen paths fail.
pub struct FaultyStorage<S> {
    pub inner: S,
    pub faults: Vec<Fault>,
}

impl<S: Storage> FaultyStorage<S> {
    pub fn new(inner: S, faults: Vec<Fault>) -> Self {
        FaultyStorage { inner, faults }
    }

    fn check(&self, path: &str, op: Ops) -> Result<(), StorageError> {
        for f in &self.faults {
            if path.starts_with(&f.prefix) && (f.on == Ops::All || f.on == op) {
                let source = std::io::Error::other("injected fault");
                return Err(StorageError {
                    kind: f.kind,
                    path: path.to_owned(),
                    source: Some(source),
                });
            }
        }
        Ok(())
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }
    fn backend(&self) -> BackendKind {
        self.inner.backend()
    }
    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        self.check(path, Ops::List)?;
        self.inner.list_dir(path, visit)
    }
    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        self.check(path, Ops::Stat)?;
        self.inner.stat(path)
    }
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.check(path, Ops::Read)?;
        self.inner.read(path, limit)
    }
    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.check(path, Ops::Read)?;
        self.inner.read_with_meta(path, limit)
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        self.check(path, Ops::Read)?;
        self.inner.open(path)
    }
    fn counters(&self) -> &OpCounters {
        self.inner.counters()
    }
    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, crate::StorageError>> {
        self.inner.read_at_driver_root(name, limit)
    }
    // `list_tree` is left to the default walk, so every listed directory and stat-ed file
    // passes through the faults above; only the strategy is the inner storage's.
    fn prefers_tree_listing(&self) -> bool {
        self.inner.prefers_tree_listing()
    }
}
