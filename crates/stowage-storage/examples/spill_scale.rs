//! Scale run of the listing's external sort (`stowage-storage/src/spill.rs`;
//! `bench/scale.md`): push N rows shaped like a registry bucket's report (blob `data`
//! files, `_layers` and revision links) in no order at all (the worst case: every run
//! spans the whole key range), finish, then read every row back and check the order.
//! Prints the rows, the runs merged, the file's and the sort's peak disk bytes and the
//! time of each step; run it under `/usr/bin/time -v` for the peak memory.
//!
//! ```sh
//! cargo run --release -p stowage-storage --example spill_scale -- 100000000
//! ```

use std::time::Instant;

use stowage_storage::spill::Builder;

/// A well-mixed 64-bit value of `i` (splitmix64): digests in no order.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn key(i: u64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let h = [mix(i), mix(i ^ 1 << 62), mix(i ^ 2 << 62), mix(i ^ 3 << 62)];
    let hex = format!("{:016x}{:016x}{:016x}{:016x}", h[0], h[1], h[2], h[3]);
    let repo = mix(i / 3) % 30_000;
    let _ = match i % 3 {
        0 => write!(
            out,
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ),
        1 => write!(
            out,
            "docker/registry/v2/repositories/team{}/app{repo}/_layers/sha256/{hex}/link",
            repo % 300
        ),
        _ => write!(
            out,
            "docker/registry/v2/repositories/team{}/app{repo}/_manifests/revisions/sha256/{hex}/link",
            repo % 300
        ),
    };
}

fn main() -> std::io::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let mut b = Builder::new()?;
    let mut k = String::new();
    for i in 0..n {
        key(i, &mut k);
        b.push(&k, i % 50_000_000, 1_700_000_000_000_000_000, None)?;
    }
    let pushed = started.elapsed();
    let sorted = b.finish()?;
    let finished = started.elapsed();
    let (file, peak) = sorted.disk_bytes();
    let mut c = sorted.seek("")?;
    let (mut rows, mut prev) = (0u64, String::new());
    while let Some(e) = c.peek() {
        assert!(e.key > prev.as_str(), "out of order at row {rows}");
        prev.clear();
        prev.push_str(e.key);
        rows += 1;
        c.advance()?;
    }
    assert_eq!(rows, n, "every row once");
    println!(
        "{n} rows: {} runs; file {} MB, {} MB at the sort's peak, {} KB of index; push {:.1} s, sort and merge {:.1} s, read back {:.1} s",
        sorted.runs(),
        file / 1_000_000,
        peak / 1_000_000,
        sorted.index_bytes() / 1000,
        pushed.as_secs_f64(),
        (finished - pushed).as_secs_f64(),
        (started.elapsed() - finished).as_secs_f64(),
    );
    Ok(())
}
