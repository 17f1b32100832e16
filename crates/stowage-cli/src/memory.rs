//! Handing freed memory back to the system between the phases of a big scan.
//!
//! The scanner's I/O workers allocate and free millions of short-lived buffers (paths,
//! listings, manifest bodies). glibc keeps what they freed in each worker's heap, resident,
//! until a `malloc_trim`; only the top of a heap is returned on its own. At a million blobs
//! that was 20 to 40 MB of a 220 MB peak (`bench/README.md`, "Memory"). The scan calls
//! [`release`] when a phase's temporary data has been dropped (`ScanOptions::release_memory`),
//! so the next phase and the analysis start from what is really in use.
//!
//! This is the workspace's only `unsafe` code: calls into the C library with constant
//! arguments. On other C libraries (musl returns memory itself) it does nothing.

/// Fix the allocator's thresholds (glibc `mallopt`), at the start of `main`.
///
/// glibc raises its mmap threshold to the size of any large block freed (up to 32 MB), and
/// its trim threshold to twice that: after the scan frees its first big temporary vectors,
/// later ones of tens of megabytes come from the heaps instead of their own mappings, and
/// freed, stay resident (the graph built to count findings, 30 MB at a million blobs, was
/// still resident when the command built its own). Fixed thresholds keep large blocks in
/// their own mappings, returned when freed, and let a worker's heap shrink once its top is
/// free.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` sets allocator parameters under the allocator's lock; the
        // values are glibc's own defaults, made fixed.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        }
    }
}

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
