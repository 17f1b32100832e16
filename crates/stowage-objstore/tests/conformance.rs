//! The backend conformance suite (`stowage_testkit::conformance`) run against every backend:
//! the filesystem, an object store in memory, a real S3-compatible server on loopback
//! (moto's server), and the GCS and Azure Blob emulators (fake-gcs-server, Azurite), all
//! installed by `scripts/install-test-deps.sh`. Object stores write in parts of 5 MiB here
//! (S3's smallest), so the suite's 11 MiB file is a three-part upload.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use object_store::list::PaginatedListStore;
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};
use stowage_objstore::{ObjectStorage, Scheme};
use stowage_storage::{FsStorage, StoragePut, StorageWrite};
use stowage_testkit::conformance::{self, Harness};
use stowage_testkit::emulators;

mod common;
use common::Bucket;

const ROOT: &str = "reg/docker/registry/v2";
/// S3's smallest part.
const PART: usize = 5 << 20;

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
    fn target(&self) -> &dyn StoragePut {
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
        let s = ObjectStorage::with_store(store.clone(), None, Scheme::S3, "mem", ROOT)
            .unwrap()
            .with_part_size(PART);
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
    fn target(&self) -> &dyn StoragePut {
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
        Some(S3 {
            bucket,
            s: s.with_part_size(PART),
        })
    }
}

impl Harness for S3 {
    fn storage(&self) -> &dyn StorageWrite {
        &self.s
    }
    fn target(&self) -> &dyn StoragePut {
        &self.s
    }
    fn put(&self, rel: &str, bytes: &[u8]) {
        self.bucket.put(&format!("{ROOT}/{rel}"), bytes);
    }
    fn batch(&self) -> PathBuf {
        self.bucket.dir.path().join("quarantine/batch-1")
    }
}

/// A bucket (GCS) or container (Azure) on a loopback emulator, reached through a client
/// built here (not from the environment: tests run in parallel, each with its server).
struct Emulated {
    dir: tempfile::TempDir,
    _server: Box<dyn std::any::Any>,
    store: Arc<dyn ObjectStore>,
    s: ObjectStorage,
}

impl Emulated {
    fn gcs(test: &str) -> Option<Emulated> {
        use object_store::gcp::GoogleCloudStorageBuilder;
        let dir = tempfile::tempdir().unwrap();
        let server = emulators::Gcs::start(dir.path(), test)?;
        server.bucket("stowage-test");
        let key = &server.env()[0].1;
        let gcs = GoogleCloudStorageBuilder::new()
            .with_service_account_key(key)
            .with_bucket_name("stowage-test")
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap();
        let a = Arc::new(gcs);
        Some(Emulated::new(
            dir,
            Box::new(server),
            a.clone(),
            Some(a),
            Scheme::Gcs,
        ))
    }

    fn azure(test: &str) -> Option<Emulated> {
        use object_store::azure::MicrosoftAzureBuilder;
        let dir = tempfile::tempdir().unwrap();
        let server = emulators::Azurite::start(dir.path(), test)?;
        server.container("stowage-test");
        let az = MicrosoftAzureBuilder::new()
            .with_account(emulators::AZURE_ACCOUNT)
            .with_access_key(emulators::AZURE_KEY)
            .with_endpoint(server.endpoint())
            .with_container_name("stowage-test")
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap();
        let a = Arc::new(az);
        Some(Emulated::new(
            dir,
            Box::new(server),
            a.clone(),
            Some(a),
            Scheme::Azure,
        ))
    }

    fn new(
        dir: tempfile::TempDir,
        server: Box<dyn std::any::Any>,
        store: Arc<dyn ObjectStore>,
        lister: Option<Arc<dyn PaginatedListStore>>,
        scheme: Scheme,
    ) -> Emulated {
        let s = ObjectStorage::with_store(store.clone(), lister, scheme, "stowage-test", ROOT)
            .unwrap()
            .with_part_size(PART);
        Emulated {
            dir,
            _server: server,
            store,
            s,
        }
    }
}

impl Harness for Emulated {
    fn storage(&self) -> &dyn StorageWrite {
        &self.s
    }
    fn target(&self) -> &dyn StoragePut {
        &self.s
    }
    fn put(&self, rel: &str, bytes: &[u8]) {
        let key = object_store::path::Path::parse(format!("{ROOT}/{rel}")).unwrap();
        let store = self.store.clone();
        let payload = PutPayload::from(bytes.to_vec());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { store.put(&key, payload).await })
            .unwrap();
    }
    fn batch(&self) -> PathBuf {
        self.dir.path().join("quarantine/batch-1")
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
        mod gcs {
            use super::*;
            $( #[test] fn $name() {
                if let Some(h) = Emulated::gcs(concat!("gcs::", stringify!($name))) {
                    conformance::$name(&h);
                }
            } )*
        }
        mod azure {
            use super::*;
            $( #[test] fn $name() {
                if let Some(h) = Emulated::azure(concat!("azure::", stringify!($name))) {
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
    put_is_all_or_nothing,
    create_file_never_replaces,
);
