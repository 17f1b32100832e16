//! Copying one file, and checking a blob's bytes against its digest.
//!
//! A blob streams from the source's reader through [`Checked`] into the target's
//! [`StoragePut::put`]: the SHA-256 and the length are checked when the body ends, and a
//! mismatch is a read error, which makes the target drop the write (a staged file is
//! removed, a multipart upload aborted). So a blob is either in the target with its digest
//! or not there at all, and a corrupt source blob is reported, never copied.

use std::io::Read;

use sha2::{Digest as _, Sha256 as Hasher};
use stowage_model::digest::Sha256;
use stowage_storage::{Storage, StorageError, StoragePut};

use crate::walk::File;

/// A reader that checks, at its end, that it gave `size` bytes hashing to `want`.
pub(crate) struct Checked<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
    size: u64,
    want: Sha256,
}

impl<R: Read> Checked<R> {
    pub fn new(inner: R, want: Sha256, size: u64) -> Checked<R> {
        Checked {
            inner,
            hasher: Hasher::new(),
            read: 0,
            size,
            want,
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            let got = Sha256(self.hasher.clone().finalize().into());
            if self.read != self.size {
                return Err(std::io::Error::other(format!(
                    "the source gave {} bytes where its listing said {}",
                    self.read, self.size
                )));
            }
            if got != self.want {
                return Err(std::io::Error::other(format!(
                    "the source's bytes hash to sha256:{}, not to the digest of their path: a corrupt blob is not copied",
                    got.hex()
                )));
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The digest a blob's key names (`blobs/sha256/ab/<hex>/data`), when it is exactly that.
pub(crate) fn blob_digest(key: &str) -> Option<Sha256> {
    let rest = key.strip_prefix("blobs/sha256/")?;
    let (shard, rest) = rest.split_once('/')?;
    let (hex, name) = rest.split_once('/')?;
    let d = Sha256::from_hex(hex.as_bytes())?;
    (name == "data" && shard.as_bytes() == d.shard()).then_some(d)
}

/// Copy a blob, checking its digest on the way.
pub(crate) fn blob(
    from: &dyn Storage,
    to: &dyn StoragePut,
    f: &File,
    want: Sha256,
) -> Result<(), StorageError> {
    let r = from.open(&f.key)?;
    let mut body = Checked::new(r, want, f.size);
    to.put(&f.key, &mut body, f.size, Some(f.modified))
}

/// Copy a file that is not a blob (a link, or anything else below `repositories/`), whose
/// bytes have been read already.
pub(crate) fn bytes(to: &dyn StoragePut, f: &File, bytes: &[u8]) -> Result<(), StorageError> {
    to.put(
        &f.key,
        &mut &bytes[..],
        bytes.len() as u64,
        Some(f.modified),
    )
}

/// Hash a blob as the target holds it. `Ok(None)` when it matches, `Ok(Some(why))` when not.
pub(crate) fn verify(
    to: &dyn Storage,
    key: &str,
    want: Sha256,
    size: u64,
) -> Result<Option<String>, StorageError> {
    let r = to.open(key)?;
    let mut c = Checked::new(r, want, size);
    match std::io::copy(&mut c, &mut std::io::sink()) {
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_reader_refuses_wrong_bytes_and_lengths() {
        let d = Sha256::of(b"hello");
        let mut ok = Checked::new(&b"hello"[..], d, 5);
        assert_eq!(std::io::read_to_string(&mut ok).unwrap(), "hello");
        let mut bad = Checked::new(&b"hellO"[..], d, 5);
        let e = std::io::read_to_string(&mut bad).unwrap_err();
        assert!(e.to_string().contains("not to the digest"), "{e}");
        let mut short = Checked::new(&b"hell"[..], d, 5);
        let e = std::io::read_to_string(&mut short).unwrap_err();
        assert!(
            e.to_string().contains("4 bytes where its listing said 5"),
            "{e}"
        );
    }

    #[test]
    fn only_the_exact_layout_names_a_blob() {
        let d = Sha256::of(b"x");
        let hex = d.hex();
        let shard = &hex[..2];
        assert_eq!(
            blob_digest(&format!("blobs/sha256/{shard}/{hex}/data")),
            Some(d)
        );
        assert_eq!(blob_digest(&format!("blobs/sha256/zz/{hex}/data")), None);
        assert_eq!(
            blob_digest(&format!("blobs/sha256/{shard}/{hex}/other")),
            None
        );
        assert_eq!(
            blob_digest(&format!("blobs/sha256/{shard}/{}/data", &hex[1..])),
            None
        );
    }
}
