//! Shared by the object-store test binaries: a bucket on a loopback moto server, and a
//! plain `object_store` client to put objects into it the way the registry's driver does.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ObjectStoreExt, PutPayload};
use stowage_objstore::Options;
use stowage_testkit::s3::{self, S3Server};

pub struct Bucket {
    pub dir: tempfile::TempDir,
    pub server: S3Server,
    pub name: String,
    client: Arc<AmazonS3>,
}

impl Bucket {
    pub fn new(test: &str) -> Option<Bucket> {
        let dir = tempfile::tempdir().unwrap();
        let server = S3Server::start(dir.path(), test)?;
        let name = "stowage-test".to_string();
        server.bucket(&name);
        let client = AmazonS3Builder::new()
            .with_bucket_name(&name)
            .with_endpoint(server.endpoint())
            .with_allow_http(true)
            .with_region(s3::REGION)
            .with_access_key_id(s3::ACCESS_KEY)
            .with_secret_access_key(s3::SECRET_KEY)
            .build()
            .unwrap();
        Some(Bucket {
            dir,
            server,
            name,
            client: Arc::new(client),
        })
    }

    pub fn options(&self) -> Options {
        Options {
            endpoint: Some(self.server.endpoint()),
            region: Some(s3::REGION.into()),
            access_key: Some(s3::ACCESS_KEY.into()),
            secret_key: Some(s3::SECRET_KEY.into()),
            ..Options::default()
        }
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// Put one object (one PutObject, as the registry writes links and manifests).
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let client = self.client.clone();
        let key = object_store::path::Path::parse(key).unwrap();
        let payload = PutPayload::from(bytes.to_vec());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { client.put(&key, payload).await })
            .unwrap();
    }

    /// Upload every file below `dir` to `prefix/<path below dir>` (32 PUTs in flight).
    /// Returns the number of objects.
    pub fn upload_tree(&self, dir: &std::path::Path, prefix: &str) -> usize {
        use futures_util::StreamExt;
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else if e.file_type().unwrap().is_file() {
                    files.push(e.path());
                }
            }
        }
        let n = files.len();
        let client = self.client.clone();
        let jobs = files.into_iter().map(|f| {
            let rel = f.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
            let key = object_store::path::Path::parse(format!("{prefix}/{rel}")).unwrap();
            let payload = PutPayload::from(std::fs::read(&f).unwrap());
            let client = client.clone();
            async move { client.put(&key, payload).await.unwrap() }
        });
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                futures_util::stream::iter(jobs)
                    .buffer_unordered(32)
                    .for_each(|_| async {})
                    .await
            });
        n
    }

    pub fn exists(&self, key: &str) -> bool {
        let client = self.client.clone();
        let key = object_store::path::Path::parse(key).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { client.head(&key).await })
            .is_ok()
    }
}
