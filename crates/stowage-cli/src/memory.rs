//! Handing freed memory back to the system between the phases of a big scan.
//!
//! The scanner's I/O workers allocate and free millions of short-lived buffers (paths,
//! listings, manifest bodies). glibc keeps what they freed in each worker's heap, resident,
//! until a `malloc_trim`; only the top of a heap is returned on its own. At a million blobs
//! that was 20 to 40 MB of a 220 MB peak (`bench/README.md`, "Memory"). The scan calls
//! [`release`] when a phase's temporary data has been dropped (`ScanOptions::release_memory`),
//! so the next phase and the analysis start from what is really in use.
//!
//! This is the workspace's only `unsafe` code: one call into the C library, with no
//! arguments that could be wrong. On other C libraries (musl returns memory itself) it does
//! nothing.

/// Return free memory of every allocator arena to the system (glibc `malloc_trim(0)`).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only walks the allocator's own free lists, under the
        // allocator's locks; it takes a padding size and touches no memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
