//! `check --verify-digests`: re-hash blob contents in parallel and compare with their digests.
//!
//! Hashing is CPU-bound on a local disk (sha2 uses the SHA extensions where the CPU has them)
//! and latency-bound on network storage, so it runs on the same kind of I/O pool as the scan,
//! one blob per task, streaming through a 1 MiB buffer.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;
use stowage_layout as layout;
use stowage_model::digest::Sha256;
use stowage_model::finding::{Finding, FindingKind};
use stowage_model::inventory::Inventory;
use stowage_storage::Storage;

/// Options for [`verify_blobs`].
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub concurrency: usize,
}

/// Hash every blob in `inv`; return a finding for each one whose content does not match its
/// digest or could not be read. `hashed` counts bytes as they go (for progress).
pub fn verify_blobs(
    storage: &dyn Storage,
    inv: &Inventory,
    opts: &VerifyOptions,
    hashed: &AtomicU64,
) -> Vec<Finding> {
    use rayon::prelude::*;
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(opts.concurrency.max(1))
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::new(
                FindingKind::IoError,
                "",
                format!("cannot start hashing pool: {e}"),
            )];
        }
    };
    let mut out: Vec<Finding> = pool.install(|| {
        inv.blobs
            .par_iter()
            .filter_map(|b| {
                let path = layout::blob_data(&b.digest);
                // A blob the scan could not see (its directory a symbolic link, its data not
                // a regular file) has its finding already; opening `data` below a symbolic
                // link would follow it, out of the storage.
                let dir = layout::blob_dir(&b.digest);
                if inv.unlisted.binary_search(&dir).is_ok()
                    || inv.unlisted.binary_search(&path).is_ok()
                {
                    return None;
                }
                match hash(storage, &path, hashed) {
                    Ok((h, n)) if h == b.digest => {
                        if n != b.size {
                            Some(Finding::new(
                                FindingKind::Vanished,
                                path,
                                format!("size changed during verification ({} -> {n} bytes)", {
                                    b.size
                                }),
                            ))
                        } else {
                            None
                        }
                    }
                    Ok((h, n)) => Some(Finding::new(
                        FindingKind::BlobDigestMismatch,
                        path,
                        format!(
                            "{n} bytes hash to {h}, not {}: the content is corrupt",
                            b.digest
                        ),
                    )),
                    Err(e) => Some(Finding::new(
                        FindingKind::IoError,
                        path,
                        format!("cannot verify: {e}"),
                    )),
                }
            })
            .collect()
    });
    out.sort();
    out
}

fn hash(storage: &dyn Storage, path: &str, hashed: &AtomicU64) -> Result<(Sha256, u64), String> {
    let mut r = storage.open(path).map_err(|e| e.to_string())?;
    // One 1 MiB buffer per thread, reused: most blobs are small, and allocating (and
    // zeroing) a fresh buffer per blob would cost more than hashing them.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut h = sha2::Sha256::new();
        let mut total = 0u64;
        loop {
            let n = r.read(&mut buf).map_err(|e| format!("{path}: {e}"))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            total += n as u64;
            hashed.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok((Sha256(h.finalize().into()), total))
    })
}
