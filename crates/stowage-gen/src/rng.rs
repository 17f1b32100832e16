//! A small deterministic PRNG (SplitMix64) with derived sub-streams.
//!
//! Everything the generator decides comes from here, so a seed fixes the whole tree. Only
//! integer arithmetic and exact IEEE operations (`+ - * /` and comparisons on `f64`) are used:
//! no `ln`/`exp`/`powf`, whose last bit may differ between libm builds, so the same seed gives
//! the same tree on every machine.

/// SplitMix64 finaliser: a good 64-bit mixing function.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Debug)]
pub struct Rng {
    s: u64,
}

impl Rng {
    /// An independent stream for `(seed, parts...)`: the same key always gives the same stream,
    /// whatever else was drawn before.
    pub fn derive(seed: u64, parts: &[u64]) -> Rng {
        let mut h = mix(seed ^ 0x5354_4F57_4147_4531); // "STOWAGE1"
        for (i, p) in parts.iter().enumerate() {
            h = mix(h ^ p
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64 + 1));
        }
        Rng { s: h }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.s = self.s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.s)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..hi`; `lo` when the range is empty.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below((hi - lo) as u64) as i64
        }
    }

    /// Uniform in `lo..hi` for unsigned values; `lo` when the range is empty.
    pub fn range_u(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo)
        }
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// Index chosen with probability proportional to its weight.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total.max(1));
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// A size from a table of `(weight, lo, hi)` buckets, skewed towards `lo` inside a bucket
    /// (a cheap stand-in for a log-normal: many small values, a long tail).
    pub fn size(&mut self, table: &[(u64, u64, u64)]) -> u64 {
        let ws: Vec<u64> = table.iter().map(|b| b.0).collect();
        let (_, lo, hi) = table[self.weighted(&ws)];
        let u = self.unit();
        lo + ((hi - lo) as f64 * u * u) as u64
    }

    /// Fill `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }

    /// `n` lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n);
        s
    }

    /// A random (version 4) UUID in canonical lowercase form, as `uuid.NewString()` writes.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let a = (a & !0xF000) | 0x4000; // version 4 in bits 12..16 of the third group
        let b = (b & !(0xC000u64 << 48)) | (0x8000u64 << 48); // variant 10xx
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stable_and_independent() {
        let mut a = Rng::derive(7, &[1, 2]);
        let mut b = Rng::derive(7, &[1, 2]);
        let mut c = Rng::derive(7, &[2, 1]);
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn uuids_are_canonical_v4() {
        let mut r = Rng::derive(1, &[]);
        for _ in 0..100 {
            let u = r.uuid();
            assert!(stowage_layout::is_upload_id(&u), "{u}");
            assert_eq!(&u[14..15], "4");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        }
    }

    #[test]
    fn ranges() {
        let mut r = Rng::derive(3, &[]);
        for _ in 0..1000 {
            let x = r.range(-5, 5);
            assert!((-5..5).contains(&x));
            assert!(r.unit() < 1.0);
        }
        assert_eq!(r.range(4, 4), 4);
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
