//! Content digests, parsed once at the edge.
//!
//! The registry's storage is content-addressed: every blob lives under the sha256 of its bytes,
//! and every link file holds a digest string. Two types cover this:
//!
//! - [`Sha256`]: 32 raw bytes, `Copy`, ordered. This is what the hot tables (blobs, link
//!   entries) hold, because `blobs/` and manifest revisions only ever use sha256 (the registry
//!   canonicalises everything it stores to sha256, see `spec/registry-storage.md` §1.3).
//! - [`Digest`]: any digest the go-digest grammar accepts *and* the registry can validate
//!   (`sha256`, `sha384`, `sha512`, lowercase hex of the exact length). Manifests may reference
//!   sha512 layers and `_layers/` may hold sha512 alias links, so references use this type.
//!
//! Parsing is strict, like the registry's `digest.Parse` + `Validate`: an empty string, a trailing
//! newline, uppercase hex or a wrong length are errors. We never "repair" a digest; callers turn
//! errors into findings.
//!
//! ```
//! use stowage_model::digest::Digest;
//! let d: Digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".parse().unwrap();
//! assert_eq!(d.algorithm().as_str(), "sha256");
//! assert!("sha256:2C26".parse::<Digest>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// A sha256 digest as 32 raw bytes.
///
/// Ordered as its bytes are (which is also its hex's order), but compared as four
/// big-endian words: the scan's blob table is searched and sorted by digest millions of
/// times, and the derived order on `[u8; 32]` calls `memcmp` for each comparison (11% of a
/// `gc`'s CPU on a 100k-blob tree, measured with perf).
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    fn words(&self) -> [u64; 4] {
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        [w(0), w(1), w(2), w(3)]
    }

    /// The first eight bytes as a big-endian number: where the digest falls in the range.
    fn first_word(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

impl Ord for Sha256 {
    fn cmp(&self, other: &Sha256) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for Sha256 {
    fn partial_cmp(&self, other: &Sha256) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Find `key` in `items`, sorted by [`Sha256`] without duplicates: `Ok(index)` or the
/// `Err(insertion point)`, exactly what `binary_search_by` answers. Why not just that:
/// digests are uniformly distributed, so the place of a key is close to its value's share
/// of the whole range; a few interpolation steps narrow a 100k-entry table to a handful of
/// rows in about four probes where a binary search makes seventeen, each a cache miss in a
/// table of megabytes (perf: the blob-table lookup was 5% of a `gc`'s CPU). A table that is
/// not uniform (a test's hand-made digests) only costs the steps: the binary search over
/// what is left decides.
pub fn find_sorted<T>(
    items: &[T],
    key: &Sha256,
    digest: impl Fn(&T) -> &Sha256,
) -> Result<usize, usize> {
    let k = key.first_word();
    let (mut lo, mut hi) = (0usize, items.len());
    for _ in 0..4 {
        if hi - lo <= 8 {
            break;
        }
        let (lk, hk) = (
            digest(&items[lo]).first_word(),
            digest(&items[hi - 1]).first_word(),
        );
        if k <= lk || k >= hk {
            break;
        }
        // lk < k < hk, so the guess falls strictly inside (lo, hi - 1).
        // In floating point: a 128-bit division is a library call, slower than the probes
        // it saves. The ratio is below 1, so the guess stays in [lo, hi - 1].
        let ratio = (k - lk) as f64 / (hk - lk) as f64;
        let pos = lo + ((ratio * (hi - 1 - lo) as f64) as usize).min(hi - 1 - lo);
        match digest(&items[pos]).cmp(key) {
            std::cmp::Ordering::Equal => return Ok(pos),
            std::cmp::Ordering::Less => lo = pos + 1,
            std::cmp::Ordering::Greater => hi = pos,
        }
    }
    items[lo..hi]
        .binary_search_by(|t| digest(t).cmp(key))
        .map(|i| i + lo)
        .map_err(|i| i + lo)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The value of each lowercase hex character; `0x10` marks every other byte.
const HEX_VAL: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

/// Decode lowercase hex into `out`; `None` on any other character or a length mismatch.
/// Table-driven and branch-free per character, the bad characters checked once at the end:
/// every digest of every link and manifest goes through here (perf: the per-character
/// `match` with an early return was 4% of a `gc`'s CPU).
pub fn decode_hex(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX_VAL[pair[0] as usize], HEX_VAL[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | lo;
    }
    (bad & 0x10 == 0).then_some(())
}

/// Append `bytes` as lowercase hex.
pub fn encode_hex(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

impl Sha256 {
    /// Parse 64 lowercase hex characters (the `<hex>` part of a path), without allocating.
    pub fn from_hex(hex: &[u8]) -> Option<Sha256> {
        let mut out = [0u8; 32];
        decode_hex(hex, &mut out)?;
        Some(Sha256(out))
    }

    /// Hash `bytes` with sha256.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest as _;
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// The 64-character lowercase hex form.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        encode_hex(&self.0, &mut s);
        s
    }

    /// The first two hex characters: the 256-way fan-out directory under `blobs/sha256/`.
    pub fn shard(&self) -> [u8; 2] {
        [
            HEX[(self.0[0] >> 4) as usize],
            HEX[(self.0[0] & 15) as usize],
        ]
    }

    /// As a general [`Digest`].
    pub fn digest(self) -> Digest {
        Digest::Sha256(self)
    }

    /// A short form for humans: `sha256:` and 12 hex characters.
    pub fn short(&self) -> String {
        let mut s = String::from("sha256:");
        encode_hex(&self.0[..6], &mut s);
        s
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        encode_hex(&self.0, &mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        match s.parse::<Digest>().map_err(serde::de::Error::custom)? {
            Digest::Sha256(h) => Ok(h),
            other => Err(serde::de::Error::custom(format!(
                "expected a sha256 digest, got {other}"
            ))),
        }
    }
}

/// The digest algorithms the registry can validate.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Any digest the registry accepts. sha384/sha512 are boxed so the common case stays small.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Digest {
    Sha256(Sha256),
    Sha384(Box<[u8; 48]>),
    Sha512(Box<[u8; 64]>),
}

/// Why a string is not a digest. The messages match what an operator needs to fix a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    #[error("empty")]
    Empty,
    #[error("contains whitespace or control characters (a trailing newline?)")]
    Whitespace,
    #[error("no ':' separating algorithm and hex")]
    NoSeparator,
    #[error("unsupported digest algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error("{alg} digest must have {expected} hex characters, found {found}")]
    BadLength {
        alg: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("hex part must be lowercase 0-9a-f")]
    BadHex,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digest::Sha256(_) => Algorithm::Sha256,
            Digest::Sha384(_) => Algorithm::Sha384,
            Digest::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The raw digest bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Digest::Sha256(h) => &h.0,
            Digest::Sha384(b) => &b[..],
            Digest::Sha512(b) => &b[..],
        }
    }

    pub fn hex(&self) -> String {
        let mut s = String::new();
        encode_hex(self.bytes(), &mut s);
        s
    }

    /// A short form for humans: the algorithm and 12 hex characters (as [`Sha256::short`]).
    pub fn short(&self) -> String {
        match self {
            Digest::Sha256(h) => h.short(),
            other => format!("{}:{}", other.algorithm().as_str(), &other.hex()[..12]),
        }
    }

    /// The sha256 form, if this is a sha256 digest.
    pub fn sha256(&self) -> Option<Sha256> {
        match self {
            Digest::Sha256(h) => Some(*h),
            _ => None,
        }
    }

    /// Parse `alg` and `hex` given separately (as path components).
    pub fn from_parts(alg: &str, hex: &str) -> Result<Digest, DigestError> {
        let alg = Algorithm::from_name(alg)
            .ok_or_else(|| DigestError::UnknownAlgorithm(alg.to_owned()))?;
        let h = hex.as_bytes();
        if h.len() != alg.hex_len() {
            return Err(DigestError::BadLength {
                alg: alg.as_str(),
                expected: alg.hex_len(),
                found: h.len(),
            });
        }
        match alg {
            Algorithm::Sha256 => Sha256::from_hex(h)
                .map(Digest::Sha256)
                .ok_or(DigestError::BadHex),
            Algorithm::Sha384 => {
                let mut b = Box::new([0u8; 48]);
                decode_hex(h, &mut b[..]).ok_or(DigestError::BadHex)?;
                Ok(Digest::Sha384(b))
            }
            Algorithm::Sha512 => {
                let mut b = Box::new([0u8; 64]);
                decode_hex(h, &mut b[..]).ok_or(DigestError::BadHex)?;
                Ok(Digest::Sha512(b))
            }
        }
    }

    /// Parse raw bytes (the content of a link file) strictly.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Digest, DigestError> {
        if bytes.is_empty() {
            return Err(DigestError::Empty);
        }
        if bytes
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(DigestError::Whitespace);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| DigestError::BadHex)?;
        let (alg, hex) = s.split_once(':').ok_or(DigestError::NoSeparator)?;
        if alg.is_empty() {
            return Err(DigestError::UnknownAlgorithm(String::new()));
        }
        // go-digest's syntactic grammar first: anything else is not a digest at all.
        Digest::from_parts(alg, hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse_bytes(s.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digest::Sha256(h) => fmt::Display::fmt(h, f),
            other => write!(f, "{}:{}", other.algorithm().as_str(), other.hex()),
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Sha256> for Digest {
    fn from(h: Sha256) -> Digest {
        Digest::Sha256(h)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    proptest::proptest! {
        /// The interpolation search answers what a binary search answers, hits and misses
        /// (their insertion points), on uniform digests and on clustered ones (a shared
        /// first word, where interpolation learns nothing).
        #[test]
        fn find_sorted_is_binary_search(
            mut keys in proptest::collection::vec(proptest::array::uniform32(proptest::prelude::any::<u8>()), 0..300),
            probe in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            clustered in proptest::prelude::any::<bool>(),
            pick in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            if clustered {
                for k in &mut keys { k[..6].fill(7); }
            }
            let mut table: Vec<Sha256> = keys.into_iter().map(Sha256).collect();
            table.sort();
            table.dedup();
            let mut probes = vec![Sha256(probe), Sha256([0; 32]), Sha256([255; 32])];
            if !table.is_empty() {
                let hit = table[pick.index(table.len())];
                let mut near = hit;
                near.0[31] ^= 1;
                probes.extend([hit, near]);
            }
            for p in probes {
                proptest::prop_assert_eq!(find_sorted(&table, &p, |d| d), table.binary_search(&p));
            }
        }

        /// The word-wise order is the byte order (and so the hex order every output and
        /// every sorted file relies on), including digests that differ in one byte only.
        #[test]
        fn order_is_the_byte_order(a in proptest::array::uniform32(proptest::prelude::any::<u8>()),
                                   i in 0usize..32, v in proptest::prelude::any::<u8>()) {
            let mut b = a;
            b[i] = v;
            proptest::prop_assert_eq!(Sha256(a).cmp(&Sha256(b)), a.cmp(&b));
            proptest::prop_assert_eq!(Sha256(b).cmp(&Sha256(a)), b.cmp(&a));
            let hex = |x: &Sha256| x.to_string();
            proptest::prop_assert_eq!(Sha256(a).cmp(&Sha256(b)), hex(&Sha256(a)).cmp(&hex(&Sha256(b))));
        }

        #[test]
        fn order_of_unrelated_digests_is_the_byte_order(
            a in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            b in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            shared in 0usize..32,
        ) {
            // Sharing a prefix of any length: the first differing byte decides.
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            proptest::prop_assert_eq!(Sha256(a).cmp(&Sha256(b)), a.cmp(&b));
        }
    }

    #[test]
    fn short_forms_keep_algorithm_and_twelve_hex() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.short(), "sha256:e3b0c44298fc");
        let long: Digest = format!("sha512:{}", "0a".repeat(64)).parse().unwrap();
        assert_eq!(long.short(), "sha512:0a0a0a0a0a0a");
    }

    #[test]
    fn sha256_of_known_vectors() {
        assert_eq!(Sha256::of(b"").to_string(), EMPTY);
        assert_eq!(
            Sha256::of(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Multi-block input.
        let long = vec![b'a'; 1000];
        assert_eq!(
            Sha256::of(&long).hex(),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn parses_and_round_trips() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.sha256().unwrap().shard(), *b"e3");
        let s512 = format!("sha512:{}", "ab".repeat(64));
        let d512: Digest = s512.parse().unwrap();
        assert_eq!(d512.to_string(), s512);
        assert_eq!(d512.algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_what_the_registry_rejects() {
        let cases = [
            ("", DigestError::Empty),
            (&format!("{EMPTY}\n") as &str, DigestError::Whitespace),
            (" sha256:abc", DigestError::Whitespace),
            ("sha256", DigestError::NoSeparator),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                DigestError::UnknownAlgorithm("md5".into()),
            ),
            (
                "sha256:abc",
                DigestError::BadLength {
                    alg: "sha256",
                    expected: 64,
                    found: 3,
                },
            ),
            (
                &EMPTY.to_uppercase().replace("SHA256", "sha256") as &str,
                DigestError::BadHex,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<Digest>().unwrap_err(),
                want,
                "input {input:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..140)) {
            let _ = Digest::parse_bytes(&bytes);
        }

        #[test]
        fn sha256_round_trip(raw in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let h = Sha256(raw);
            let parsed: Digest = h.to_string().parse().unwrap();
            proptest::prop_assert_eq!(parsed, Digest::Sha256(h));
            proptest::prop_assert_eq!(Sha256::from_hex(h.hex().as_bytes()), Some(h));
        }
    }
}
