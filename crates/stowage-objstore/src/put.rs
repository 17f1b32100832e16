//! [`StoragePut`] on object stores: a migration's target, and opening one that is still empty.
//!
//! Small files (every link, most manifests and config blobs) are one PUT of the whole body.
//! Bigger ones are a multipart upload of [`PART_SIZE`] parts, read from the body one part at
//! a time (memory per write is one part), completed only after the body ended without error:
//! an upload aborted by a failed digest check is never visible.
//!
//! The body is read on the calling thread, outside the runtime: the body may itself be a
//! GET stream of another object store, which runs on the same runtime with `block_on`, and a
//! `block_on` inside a `block_on` would panic.

use std::io::Read;

use object_store::{ObjectStoreExt, PutPayload};
use stowage_layout::LAYOUT_ROOT;
use stowage_model::Timestamp;
use stowage_storage::{ErrorKind, StorageError, StoragePut};

use crate::{ObjectStorage, ObjectUrl, OpenError, Options, err};

/// The size of a multipart upload's parts, and the largest file written with one PUT.
/// S3's smallest part is 5 MiB; 16 MiB keeps a 10 GiB layer under S3's 10,000 parts.
pub const PART_SIZE: usize = 16 << 20;

/// Read up to `buf.len()` bytes (fewer only at the end of the body).
fn fill(body: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn short(path: &str, n: u64, size: u64) -> StorageError {
    StorageError {
        kind: ErrorKind::Other,
        path: path.to_owned(),
        source: Some(std::io::Error::other(format!(
            "read {n} bytes where {size} were expected"
        ))),
    }
}

impl ObjectStorage {
    /// Open `url` as the target of a migration, which may hold nothing yet: the layout root
    /// is `<prefix>/docker/registry/v2` (or the prefix itself when it already ends so),
    /// without looking for what is there.
    pub fn open_target(url: &str, opts: &Options) -> Result<ObjectStorage, OpenError> {
        let parsed = ObjectUrl::parse(url)?;
        let (store, lister) = crate::config::build(&parsed, opts)?;
        let root = if parsed.prefix.ends_with(LAYOUT_ROOT) {
            parsed.prefix.clone()
        } else {
            stowage_storage::join(&parsed.prefix, LAYOUT_ROOT)
        };
        ObjectStorage::with_store(store, lister, parsed.scheme, &parsed.container, &root)
    }

    /// The part size of multipart uploads ([`PART_SIZE`] by default; tests use S3's
    /// smallest, 5 MiB, to make several parts of a small blob).
    pub fn with_part_size(mut self, n: usize) -> ObjectStorage {
        self.part_size = n.max(1);
        self
    }

    fn put_multipart(
        &self,
        path: &str,
        key: &object_store::path::Path,
        first: Vec<u8>,
        body: &mut dyn Read,
        size: u64,
    ) -> Result<(), StorageError> {
        let mut up = self
            .run(&self.counters.writes, self.store.put_multipart(key))
            .map_err(|e| err(path, e))?;
        let mut sent = 0u64;
        let mut part = first;
        let result = loop {
            sent += part.len() as u64;
            let r = self.run(
                &self.counters.writes,
                up.put_part(PutPayload::from(std::mem::take(&mut part))),
            );
            if let Err(e) = r {
                break Err(err(path, e));
            }
            let mut buf = vec![0u8; self.part_size];
            match fill(body, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    buf.truncate(n);
                    part = buf;
                }
                Err(e) => break Err(StorageError::io(path, e)),
            }
        };
        let result = result.and_then(|()| {
            if sent == size {
                Ok(())
            } else {
                Err(short(path, sent, size))
            }
        });
        match result {
            Ok(()) => self
                .run(&self.counters.writes, up.complete())
                .map(|_| ())
                .map_err(|e| err(path, e)),
            Err(e) => {
                // Best effort: an upload left open costs storage until the bucket's
                // lifecycle rule removes it, but is never visible as an object.
                let _ = self.run(&self.counters.writes, up.abort());
                Err(e)
            }
        }
    }
}

impl StoragePut for ObjectStorage {
    fn put(
        &self,
        path: &str,
        body: &mut dyn Read,
        size: u64,
        _modified: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        let key = self.key(path)?;
        // Sized by what the caller expects (a link is 71 bytes), one byte more to notice a
        // body longer than announced; past a part, multipart.
        let cap = (size.min(self.part_size as u64) as usize).saturating_add(1);
        let mut first = vec![0u8; cap];
        let n = fill(body, &mut first).map_err(|e| StorageError::io(path, e))?;
        first.truncate(n);
        if n > self.part_size {
            let rest = first.split_off(self.part_size);
            let mut chained = std::io::Cursor::new(rest).chain(body);
            return self.put_multipart(path, &key, first, &mut chained, size);
        }
        if n as u64 != size {
            return Err(short(path, n as u64, size));
        }
        self.run(
            &self.counters.writes,
            self.store.put(&key, PutPayload::from(first)),
        )
        .map_err(|e| err(path, e))?;
        Ok(())
    }
}

impl ObjectStorage {
    /// [`stowage_storage::StorageWrite::create_file`] on an object store: one conditional
    /// PUT (`If-None-Match: *` on S3 and Azure, `x-goog-if-generation-match: 0` on GCS), so
    /// the object appears whole or not at all and never replaces one that is there (a link
    /// the registry wrote meanwhile). `Ok(false)` when the key exists.
    pub(crate) fn create_new(&self, path: &str, content: &[u8]) -> Result<bool, StorageError> {
        let key = self.key(path)?;
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        let payload = PutPayload::from(content.to_vec());
        match self.run(
            &self.counters.writes,
            self.store.put_opts(&key, payload, opts),
        ) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(err(path, e)),
        }
    }
}
