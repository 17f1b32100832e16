//! The backend conformance suite (`stowage_testkit::conformance`) run against every backend:
//! the filesystem, an object store in memory, and a real S3-compatible server on loopback
//! (moto's server, installed by `scripts/install-test-deps.sh`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use stowage_objstore::{ObjectStorage, Scheme};
use stowage_storage::{FsStorage, StorageWrite};
use stowage_testkit::conformance::{self, Harness};

mod common;
use common::Bucket;

const ROOT: &str = "reg/docker/registry/v2";

struct Fs {
    dir: tempfile::TempDir,
    s: FsStorage,
}

impl Fs {
    fn new() -> Fs {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(ROOT);
        std::fs::create_dir_all(&root).unwrap();
        let s = FsStorage::open(&root).unwrap();
        Fs { dir, s }
    }
}

impl Harness for Fs {
    fn storage(&self) -> &dyn StorageWrite {
        &self.s
    }
    fn put(&self, rel: &str, bytes: &[u8]) {
        let p = self.dir.path().join(ROOT).join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    fn batch(&self) -> PathBuf {
        self.dir.path().join("quarantine/batch-1")
    }
}

struct Memory {
    dir: tempfile::TempDir,
    store: Arc<InMemory>,
    s: ObjectStorage,
}

impl Memory {
    fn new() -> Memory {
        let store = Arc::new(InMemory::new());
        let s = ObjectStorage::with_store(store.clone(), None, Scheme::S3, "mem", ROOT).unwrap();
        Memory {
            dir: tempfile::tempdir().unwrap(),
            store,
            s,
        }
    }
}

impl Harness for Memory {
    fn storage(&self) -> &dyn StorageWrite {
        &self.s
    }
    fn put(&self, rel: &str, bytes: &[u8]) {
        let key = object_store::path::Path::parse(format!("{ROOT}/{rel}")).unwrap();
        let store = self.store.clone();
        let payload = PutPayload::from(bytes.to_vec());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async move { store.put(&key, payload).await })
            .unwrap();
    }
    fn batch(&self) -> PathBuf {
        self.dir.path().join("quarantine/batch-1")
    }
}

/// A bucket on a real S3 server on loopback (moto).
struct S3 {
    bucket: Bucket,
    s: ObjectStorage,
}

impl S3 {
    fn new(test: &str) -> Option<S3> {
        let bucket = Bucket::new(test)?;
        let (s, _) = ObjectStorage::open(&bucket.url(ROOT), &bucket.options()).unwrap();
        Some(S3 { bucket, s })
    }
}

impl Harness for S3 {
    fn storage(&self) -> &dyn StorageWrite {
        &self.s
    }
    fn put(&self, rel: &str, bytes: &[u8]) {
        self.bucket.put(&format!("{ROOT}/{rel}"), bytes);
    }
    fn batch(&self) -> PathBuf {
        self.bucket.dir.path().join("quarantine/batch-1")
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod fs {
            use super::*;
            $( #[test] fn $name() { conformance::$name(&Fs::new()); } )*
        }
        mod memory {
            use super::*;
            $( #[test] fn $name() { conformance::$name(&Memory::new()); } )*
        }
        mod s3 {
            use super::*;
            $( #[test] fn $name() {
                if let Some(h) = S3::new(concat!("s3::", stringify!($name))) {
                    conformance::$name(&h);
                }
            } )*
        }
    };
}

suite!(
    list_kinds_and_meta,
    list_tree_finds_every_file,
    stat_read_and_limits,
    keys_cannot_leave_the_root,
    delete_is_idempotent,
    quarantine_round_trip,
);
