//! Opening the two sides of a migration from what the command line names: a filesystem path
//! (the registry's rootdirectory) or an object-store URL (`s3://bucket/rootdirectory`,
//! `gs://...`, `az://...`, with the `object-store` feature).
//!
//! The source must hold a registry (its layout root is found as every command finds it).
//! The target may be empty or not exist yet: its layout root is
//! `<rootdirectory>/docker/registry/v2`, created only when the migration writes. A dry run
//! on a target that does not exist lists it as empty ([`Absent`]) and creates nothing.

use std::path::Path;
use std::sync::Arc;

use stowage_storage::{
    BackendKind, Entry, ErrorKind, FsStorage, Meta, OpCounters, Storage, StorageError, StoragePut,
    resolve_root,
};

/// How to reach one side when it is an object store (see `stowage_objstore::Options`).
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub allow_http: Option<bool>,
    /// Idle connections kept per host: the migration's concurrency.
    pub pool_size: Option<usize>,
}

/// Opening a side failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("opening {spec}")]
    Storage {
        spec: String,
        #[source]
        source: StorageError,
    },
    #[cfg(feature = "object-store")]
    #[error(transparent)]
    Object(#[from] stowage_objstore::OpenError),
    #[error("{0}: this build of stowage has no object-store support (cargo feature object-store)")]
    NotBuilt(String),
}

fn is_url(spec: &str) -> bool {
    spec.contains("://")
}

fn fs_err(spec: &str) -> impl FnOnce(StorageError) -> OpenError + '_ {
    move |source| OpenError::Storage {
        spec: spec.to_owned(),
        source,
    }
}

/// Open the source.
pub fn source(spec: &str, e: &Endpoint) -> Result<Arc<dyn Storage>, OpenError> {
    if is_url(spec) {
        return object_source(spec, e);
    }
    let resolved = resolve_root(Path::new(spec)).map_err(fs_err(spec))?;
    Ok(Arc::new(
        FsStorage::open(&resolved.layout_root).map_err(fs_err(spec))?,
    ))
}

/// Open the target; `create` makes a filesystem target's directories (an executing run).
pub fn target(spec: &str, e: &Endpoint, create: bool) -> Result<Arc<dyn StoragePut>, OpenError> {
    if is_url(spec) {
        return object_target(spec, e);
    }
    let p = Path::new(spec);
    let layout = if p.ends_with(stowage_layout::LAYOUT_ROOT) {
        p.to_path_buf()
    } else {
        p.join(stowage_layout::LAYOUT_ROOT)
    };
    if create {
        std::fs::create_dir_all(&layout)
            .map_err(|io| fs_err(spec)(StorageError::io(layout.display().to_string(), io)))?;
    } else if !layout.exists() {
        return Ok(Arc::new(Absent(layout.display().to_string())));
    }
    Ok(Arc::new(FsStorage::open(&layout).map_err(fs_err(spec))?))
}

#[cfg(feature = "object-store")]
fn options(e: &Endpoint) -> stowage_objstore::Options {
    stowage_objstore::Options {
        endpoint: e.endpoint.clone(),
        region: e.region.clone(),
        path_style: e.path_style,
        allow_http: e.allow_http,
        pool_size: e.pool_size,
        ..Default::default()
    }
}

#[cfg(feature = "object-store")]
fn object_source(spec: &str, e: &Endpoint) -> Result<Arc<dyn Storage>, OpenError> {
    let (s, _) = stowage_objstore::ObjectStorage::open(spec, &options(e))?;
    Ok(Arc::new(s))
}

#[cfg(feature = "object-store")]
fn object_target(spec: &str, e: &Endpoint) -> Result<Arc<dyn StoragePut>, OpenError> {
    Ok(Arc::new(stowage_objstore::ObjectStorage::open_target(
        spec,
        &options(e),
    )?))
}

#[cfg(not(feature = "object-store"))]
fn object_source(spec: &str, _: &Endpoint) -> Result<Arc<dyn Storage>, OpenError> {
    Err(OpenError::NotBuilt(spec.to_owned()))
}

#[cfg(not(feature = "object-store"))]
fn object_target(spec: &str, _: &Endpoint) -> Result<Arc<dyn StoragePut>, OpenError> {
    Err(OpenError::NotBuilt(spec.to_owned()))
}

/// A filesystem target that does not exist yet, seen by a dry run: empty, never written.
pub struct Absent(String);

impl Storage for Absent {
    fn describe(&self) -> String {
        self.0.clone()
    }
    fn backend(&self) -> BackendKind {
        BackendKind::LocalFs {
            fs_type: "absent".into(),
        }
    }
    fn list_dir(&self, path: &str, _: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        Err(StorageError::new(ErrorKind::NotFound, path))
    }
    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        Err(StorageError::new(ErrorKind::NotFound, path))
    }
    fn read(&self, path: &str, _: u64) -> Result<Vec<u8>, StorageError> {
        Err(StorageError::new(ErrorKind::NotFound, path))
    }
    fn read_with_meta(&self, path: &str, _: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        Err(StorageError::new(ErrorKind::NotFound, path))
    }
    fn open(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        Err(StorageError::new(ErrorKind::NotFound, path))
    }
    fn counters(&self) -> &OpCounters {
        static C: std::sync::OnceLock<OpCounters> = std::sync::OnceLock::new();
        C.get_or_init(OpCounters::default)
    }
}

impl StoragePut for Absent {
    fn put(
        &self,
        path: &str,
        _: &mut dyn std::io::Read,
        _: u64,
        _: Option<stowage_model::Timestamp>,
    ) -> Result<(), StorageError> {
        Err(StorageError {
            kind: ErrorKind::Other,
            path: path.to_owned(),
            source: Some(std::io::Error::other("a dry run writes nothing")),
        })
    }
}
