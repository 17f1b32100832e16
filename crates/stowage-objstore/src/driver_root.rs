//! Files at the storage driver's root on an object store: a pull-through cache's
//! `scheduler-state.json`, which registry 2.8 keeps at `<rootdirectory>/scheduler-state.json`
//! through the same storage driver as the layout (`registry/proxy/scheduler`: `driver.PutContent`
//! of the state's path, `/scheduler-state.json` under the driver's root).
//!
//! The driver's root is the layout root without its `docker/registry/v2` suffix. A layout
//! opened at its `v2` prefix itself (no such suffix) cannot address it: `None`, as on a
//! filesystem opened the same way. Replacing is one PUT of the whole body, which S3 and the
//! other stores make visible atomically (a reader gets the old object or the new one).

use object_store::{ObjectStoreExt, PutPayload};
use stowage_layout::LAYOUT_ROOT;
use stowage_storage::{ErrorKind, StorageError};

use crate::{Key, ObjectStorage, err};

/// The key of `name` at the driver's root, when the layout root is `<prefix>/docker/registry/v2`.
fn key_of(root: &str, name: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let parent = root.strip_suffix(LAYOUT_ROOT.trim_matches('/'))?;
    if !(parent.is_empty() || parent.ends_with('/')) {
        return None;
    }
    Some(format!("{parent}{name}"))
}

fn parse(full: &str) -> Result<Key, StorageError> {
    Key::parse(full).map_err(|e| StorageError {
        kind: ErrorKind::Other,
        path: full.to_owned(),
        source: Some(std::io::Error::other(e)),
    })
}

pub(crate) fn read(
    s: &ObjectStorage,
    name: &str,
    limit: u64,
) -> Option<Result<Option<Vec<u8>>, StorageError>> {
    let full = key_of(&s.root, name)?;
    Some(get(s, &full, limit))
}

fn get(s: &ObjectStorage, full: &str, limit: u64) -> Result<Option<Vec<u8>>, StorageError> {
    let key = parse(full)?;
    s.run(&s.counters.reads, async {
        let r = match s.store.get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(err(full, e)),
        };
        if r.meta.size > limit {
            return Err(StorageError::new(ErrorKind::TooLarge { limit }, full));
        }
        let bytes = r.bytes().await.map_err(|e| err(full, e))?;
        if bytes.len() as u64 > limit {
            return Err(StorageError::new(ErrorKind::TooLarge { limit }, full));
        }
        Ok(Some(bytes.to_vec()))
    })
}

pub(crate) fn replace(
    s: &ObjectStorage,
    name: &str,
    bytes: &[u8],
) -> Option<Result<(), StorageError>> {
    let full = key_of(&s.root, name)?;
    Some(parse(&full).and_then(|key| {
        s.run(
            &s.counters.writes,
            s.store.put(&key, PutPayload::from(bytes.to_vec())),
        )
        .map(|_| ())
        .map_err(|e| err(&full, e))
    }))
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn the_driver_root_is_above_the_layout() {
        let f = "scheduler-state.json";
        assert_eq!(
            key_of("reg/docker/registry/v2", f).as_deref(),
            Some("reg/scheduler-state.json")
        );
        assert_eq!(
            key_of("docker/registry/v2", f).as_deref(),
            Some("scheduler-state.json")
        );
        assert_eq!(key_of("reg/v2", f), None);
        assert_eq!(key_of("xdocker/registry/v2", f), None);
        assert_eq!(key_of("docker/registry/v2", "../x"), None);
    }
}
