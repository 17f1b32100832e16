//! The sorted key file behind a [`crate::listing::Listing`]: an external sort, so that a
//! report of a hundred million objects costs disk, not memory.
//!
//! Rows arrive in the report's order. They are gathered into a chunk of at most
//! [`CHUNK_BYTES`] of keys, sorted, and written as a run (a temporary file); at the end the
//! runs are merged into one file of blocks of about [`BLOCK_BYTES`], each entry its key
//! front-coded against the previous one (varint shared length, varint rest length, rest),
//! varint size, `i64` modified (ns), and the ETag (an MD5's 16 bytes, or as written; see
//! [`encode`]). Only the first key
//! and the place of each block stay in memory (at 100 million objects, about 10 GB of file
//! and 160,000 blocks: some 15 MB). A key listed twice keeps its last row.
//!
//! Reading is by [`Cursor`]: a binary search of the block index, then a block decoded and
//! walked in order, so every question the scanner asks (a directory, a subtree, a range, a
//! file) costs one block read plus the blocks its answer spans.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

/// Keys gathered in memory before a sorted run is written.
pub const CHUNK_BYTES: usize = 16 << 20;
/// Target size of a block of the final file.
pub const BLOCK_BYTES: usize = 32 << 10;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: i64,
    pub etag: Option<String>,
}

/// Append `v` as LEB128 (7 bits a byte, low first).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(r: &mut impl Read) -> io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8; 1];
        loop {
            match r.read(&mut b) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if shift == 63 && b[0] > 1 {
            break;
        }
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "spill file: varint too long",
    ))
}

/// The longest key a row may carry: a corrupt temporary file never makes a huge
/// allocation (object keys are at most 1 KiB on S3, GCS and Azure).
const MAX_FIELD: usize = 1 << 20;

/// How an ETag is stored: most are an MD5 in hex (S3's, with or without the quotes its
/// API puts around it), kept as its 16 bytes; anything else byte for byte.
const ETAG_NONE: u8 = 0;
const ETAG_MD5: u8 = 1;
const ETAG_MD5_QUOTED: u8 = 2;
const ETAG_RAW: u8 = 3;

fn md5_hex(e: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    stowage_model::digest::decode_hex(e.as_bytes(), &mut out)?;
    Some(out)
}

/// Append one row. Keys are front-coded against `prev`, the previous key of the same run
/// or block (empty at its start): sorted keys share most of their path
/// (`docker/registry/v2/repositories/<repo>/_layers/sha256/`), so only the length of the
/// shared part and the rest are written. With varint numbers and ETags as bytes, a row of
/// the CI shape takes about half the bytes it took with whole keys: at 100M objects the
/// runs and the merged file are each about 10 GB otherwise, and both exist during the
/// merge.
fn encode(
    out: &mut Vec<u8>,
    prev: &mut Vec<u8>,
    key: &str,
    size: u64,
    modified: i64,
    etag: Option<&str>,
) {
    let k = key.as_bytes();
    let shared = prev.iter().zip(k).take_while(|(a, b)| a == b).count();
    put_varint(out, shared as u64);
    put_varint(out, (k.len() - shared) as u64);
    out.extend_from_slice(&k[shared..]);
    prev.truncate(shared);
    prev.extend_from_slice(&k[shared..]);
    put_varint(out, size);
    out.extend_from_slice(&modified.to_le_bytes());
    match etag.filter(|e| !e.is_empty()) {
        None => out.push(ETAG_NONE),
        Some(e) => {
            let quoted = e.strip_prefix('"').and_then(|x| x.strip_suffix('"'));
            if let Some(b) = md5_hex(e) {
                out.push(ETAG_MD5);
                out.extend_from_slice(&b);
            } else if let Some(b) = quoted.and_then(md5_hex) {
                out.push(ETAG_MD5_QUOTED);
                out.extend_from_slice(&b);
            } else {
                let e = &e.as_bytes()[..e.len().min(u16::MAX as usize)];
                out.push(ETAG_RAW);
                put_varint(out, e.len() as u64);
                out.extend_from_slice(e);
            }
        }
    }
}

/// Read one row written by [`encode`] with the same `prev`; `None` at the end.
fn decode_from(r: &mut impl Read, prev: &mut Vec<u8>) -> io::Result<Option<Entry>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("spill file: {why}"));
    let shared = match get_varint(r) {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if shared > prev.len() {
        return Err(bad("a key shares more than the previous key has"));
    }
    let rest = get_varint(r)? as usize;
    if rest > MAX_FIELD {
        return Err(bad("a key longer than any the listing writes"));
    }
    prev.truncate(shared);
    prev.resize(shared + rest, 0);
    r.read_exact(&mut prev[shared..])?;
    let size = get_varint(r)?;
    let mut m = [0u8; 8];
    r.read_exact(&mut m)?;
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag)?;
    let hex = |b: &[u8; 16]| {
        let mut h = String::with_capacity(34);
        stowage_model::digest::encode_hex(b, &mut h);
        h
    };
    let etag = match tag[0] {
        ETAG_NONE => None,
        ETAG_MD5 | ETAG_MD5_QUOTED => {
            let mut b = [0u8; 16];
            r.read_exact(&mut b)?;
            let mut h = hex(&b);
            if tag[0] == ETAG_MD5_QUOTED {
                h.insert(0, '"');
                h.push('"');
            }
            Some(h)
        }
        ETAG_RAW => {
            let n = get_varint(r)? as usize;
            if n > usize::from(u16::MAX) {
                return Err(bad("an ETag longer than any the listing writes"));
            }
            let mut e = vec![0u8; n];
            r.read_exact(&mut e)?;
            Some(String::from_utf8_lossy(&e).into_owned())
        }
        _ => return Err(bad("unknown ETag form")),
    };
    Ok(Some(Entry {
        key: String::from_utf8(prev.clone()).map_err(|_| bad("key is not UTF-8"))?,
        size,
        modified: i64::from_le_bytes(m),
        etag,
    }))
}

/// A row of the chunk: key start and end in the arena, size, modified, ETag.
type ChunkRow = (usize, usize, u64, i64, Option<Box<str>>);
/// First key, offset and length of each block.
type BlockIndex = Vec<(Box<str>, u64, u32)>;

/// Rows being gathered (see the module doc).
#[derive(Debug)]
pub struct Builder {
    dir: tempfile::TempDir,
    arena: String,
    rows: Vec<ChunkRow>,
    runs: Vec<File>,
    /// Bytes written to the runs so far.
    run_bytes: u64,
    len: u64,
}

/// The finished, sorted file.
#[derive(Debug)]
pub struct Sorted {
    _dir: tempfile::TempDir,
    file: File,
    index: BlockIndex,
    len: usize,
    /// Bytes of the file, and of the file and the runs together (what the temporary
    /// directory held at the end of the merge).
    file_bytes: u64,
    peak_bytes: u64,
}

impl Builder {
    /// A builder spilling into a fresh temporary directory (`$TMPDIR`).
    pub fn new() -> io::Result<Builder> {
        Ok(Builder {
            dir: tempfile::Builder::new()
                .prefix("stowage-listing-")
                .tempdir()?,
            arena: String::new(),
            rows: Vec::new(),
            runs: Vec::new(),
            run_bytes: 0,
            len: 0,
        })
    }

    pub fn push(
        &mut self,
        key: &str,
        size: u64,
        modified: i64,
        etag: Option<&str>,
    ) -> io::Result<()> {
        let start = self.arena.len();
        self.arena.push_str(key);
        self.rows.push((
            start,
            self.arena.len(),
            size,
            modified,
            etag.map(Into::into),
        ));
        self.len += 1;
        if self.arena.len() >= CHUNK_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    /// The chunk's rows in key order, of equal keys the last pushed only.
    fn sorted_chunk(&mut self) -> Vec<usize> {
        let arena = &self.arena;
        let key = |i: usize| &arena[self.rows[i].0..self.rows[i].1];
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by(|&a, &b| key(a).cmp(key(b)));
        order.dedup_by(|later, earlier| {
            let same = key(*later) == key(*earlier);
            if same {
                *earlier = *later;
            }
            same
        });
        order
    }

    /// Write the chunk as a sorted run.
    fn spill(&mut self) -> io::Result<()> {
        let order = self.sorted_chunk();
        let mut w = BufWriter::new(tempfile::tempfile_in(self.dir.path())?);
        let mut buf = Vec::new();
        let mut prev = Vec::new();
        for i in order {
            let (s, e, size, modified, etag) = &self.rows[i];
            buf.clear();
            encode(
                &mut buf,
                &mut prev,
                &self.arena[*s..*e],
                *size,
                *modified,
                etag.as_deref(),
            );
            w.write_all(&buf)?;
            self.run_bytes += buf.len() as u64;
        }
        let mut f = w.into_inner().map_err(|e| e.into_error())?;
        std::io::Seek::rewind(&mut f)?;
        self.runs.push(f);
        self.arena = String::new();
        self.rows = Vec::new();
        Ok(())
    }

    /// Merge everything into the block file.
    pub fn finish(mut self) -> io::Result<Sorted> {
        let mut out = BlockWriter {
            file: BufWriter::new(tempfile::tempfile_in(self.dir.path())?),
            buf: Vec::with_capacity(BLOCK_BYTES * 2),
            prev: Vec::new(),
            first: None,
            offset: 0,
            index: Vec::new(),
            len: 0,
        };
        if self.runs.is_empty() {
            for i in self.sorted_chunk() {
                let (s, e, size, modified, etag) = &self.rows[i];
                out.push(&self.arena[*s..*e], *size, *modified, etag.as_deref())?;
            }
        } else {
            if !self.rows.is_empty() {
                self.spill()?;
            }
            let mut readers: Vec<BufReader<File>> = std::mem::take(&mut self.runs)
                .into_iter()
                .map(|f| BufReader::with_capacity(BLOCK_BYTES, f))
                .collect();
            let mut prevs: Vec<Vec<u8>> = vec![Vec::new(); readers.len()];
            let mut heads: Vec<Option<Entry>> = readers
                .iter_mut()
                .zip(&mut prevs)
                .map(|(r, p)| decode_from(r, p))
                .collect::<io::Result<_>>()?;
            let mut heap: BinaryHeap<Reverse<(String, usize)>> = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|e| Reverse((e.key.clone(), i))))
                .collect();
            while let Some(Reverse((key, first))) = heap.pop() {
                // Every run whose head is this key: the latest run's row wins.
                let mut winner = first;
                let mut same = vec![first];
                while let Some(Reverse((k, i))) = heap.peek()
                    && *k == key
                {
                    winner = winner.max(*i);
                    same.push(*i);
                    heap.pop();
                }
                if let Some(e) = &heads[winner] {
                    out.push(&e.key, e.size, e.modified, e.etag.as_deref())?;
                }
                for i in same {
                    heads[i] = decode_from(&mut readers[i], &mut prevs[i])?;
                    if let Some(e) = &heads[i] {
                        heap.push(Reverse((e.key.clone(), i)));
                    }
                }
            }
        }
        let file_bytes = out.offset_after_flush();
        let (file, index, len) = out.finish()?;
        Ok(Sorted {
            _dir: self.dir,
            file,
            index,
            len,
            file_bytes,
            peak_bytes: file_bytes + self.run_bytes,
        })
    }
}

struct BlockWriter {
    file: BufWriter<File>,
    buf: Vec<u8>,
    /// The block's previous key (front coding restarts at each block, so that a block is
    /// read on its own).
    prev: Vec<u8>,
    first: Option<Box<str>>,
    offset: u64,
    index: BlockIndex,
    len: usize,
}

impl BlockWriter {
    fn push(&mut self, key: &str, size: u64, modified: i64, etag: Option<&str>) -> io::Result<()> {
        if self.first.is_none() {
            self.first = Some(key.into());
        }
        encode(&mut self.buf, &mut self.prev, key, size, modified, etag);
        self.len += 1;
        if self.buf.len() >= BLOCK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(first) = self.first.take() {
            self.file.write_all(&self.buf)?;
            self.index.push((first, self.offset, self.buf.len() as u32));
            self.offset += self.buf.len() as u64;
            self.buf.clear();
            self.prev.clear();
        }
        Ok(())
    }

    /// The file's length once the last block is written.
    fn offset_after_flush(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    fn finish(mut self) -> io::Result<(File, BlockIndex, usize)> {
        self.flush()?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.index, self.len))
    }
}

impl Sorted {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes on disk: the sorted file, and the most the temporary directory held (the
    /// runs and the file, at the end of the merge).
    pub fn disk_bytes(&self) -> (u64, u64) {
        (self.file_bytes, self.peak_bytes)
    }

    /// Bytes of memory the index holds.
    pub fn index_bytes(&self) -> usize {
        self.index.iter().map(|(k, _, _)| k.len() + 32).sum()
    }

    fn block(&self, i: usize) -> io::Result<Vec<Entry>> {
        let (_, off, len) = &self.index[i];
        let mut buf = vec![0u8; *len as usize];
        self.file.read_exact_at(&mut buf, *off)?;
        let mut r = &buf[..];
        let mut out = Vec::with_capacity(*len as usize / 48);
        let mut prev = Vec::new();
        while let Some(e) = decode_from(&mut r, &mut prev)? {
            out.push(e);
        }
        Ok(out)
    }

    /// A cursor at the first entry whose key is `>= k`.
    pub fn seek(&self, k: &str) -> io::Result<Cursor<'_>> {
        let b = self.index.partition_point(|(first, _, _)| &**first <= k);
        let mut c = Cursor {
            s: self,
            block: b.saturating_sub(1),
            entries: Vec::new(),
            pos: 0,
        };
        if !self.index.is_empty() {
            c.entries = self.block(c.block)?;
            c.pos = c.entries.partition_point(|e| e.key.as_str() < k);
            c.settle()?;
        }
        Ok(c)
    }
}

/// A position in a [`Sorted`] file.
pub struct Cursor<'a> {
    s: &'a Sorted,
    block: usize,
    entries: Vec<Entry>,
    pos: usize,
}

impl Cursor<'_> {
    /// Move past the end of a block into the next one.
    fn settle(&mut self) -> io::Result<()> {
        while self.pos >= self.entries.len() && self.block + 1 < self.s.index.len() {
            self.block += 1;
            self.entries = self.s.block(self.block)?;
            self.pos = 0;
        }
        Ok(())
    }

    pub fn peek(&self) -> Option<&Entry> {
        self.entries.get(self.pos)
    }

    pub fn advance(&mut self) -> io::Result<()> {
        self.pos += 1;
        self.settle()
    }

    /// Move forward to the first entry whose key is `>= k` (within the block when it is
    /// there, else by a new seek).
    pub fn skip_to(&mut self, k: &str) -> io::Result<()> {
        if self.entries.last().is_some_and(|e| e.key.as_str() >= k) {
            self.pos += self.entries[self.pos..].partition_point(|e| e.key.as_str() < k);
            return self.settle();
        }
        *self = self.s.seek(k)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag_strategy() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(None),
            Just(Some(String::new())),
            "[0-9a-f]{32}".prop_map(Some),
            "[0-9a-f]{32}".prop_map(|h| Some(format!("\"{h}\""))),
            "[0-9A-F]{32}".prop_map(Some),
            "[0-9a-f]{32}-[0-9]{1,3}".prop_map(|h| Some(format!("\"{h}\""))),
            ".{0,40}".prop_map(Some),
        ]
    }

    proptest::proptest! {
        /// Every row comes back as it went in, through front-coded keys that share any
        /// part (down to the middle of a multi-byte character), any size and date, and
        /// every form of ETag (an empty one reads as none, as before).
        #[test]
        fn rows_round_trip_through_the_encoding(
            mut keys in proptest::collection::vec("(docker/registry/v2/)?[a-cé/]{0,12}[0-9a-f]{0,8}", 1..60),
            sizes in proptest::collection::vec(proptest::prelude::any::<u64>(), 60),
            dates in proptest::collection::vec(proptest::prelude::any::<i64>(), 60),
            etags in proptest::collection::vec(etag_strategy(), 60),
        ) {
            keys.sort();
            let (mut out, mut prev) = (Vec::new(), Vec::new());
            for (i, k) in keys.iter().enumerate() {
                encode(&mut out, &mut prev, k, sizes[i], dates[i], etags[i].as_deref());
            }
            let (mut r, mut prev) = (&out[..], Vec::new());
            for (i, k) in keys.iter().enumerate() {
                let e = decode_from(&mut r, &mut prev).unwrap().unwrap();
                proptest::prop_assert_eq!(&e.key, k);
                proptest::prop_assert_eq!((e.size, e.modified), (sizes[i], dates[i]));
                proptest::prop_assert_eq!(e.etag, etags[i].clone().filter(|e| !e.is_empty()));
            }
            proptest::prop_assert!(decode_from(&mut r, &mut prev).unwrap().is_none());
        }
    }

    #[test]
    fn runs_merge_sorted_and_the_last_row_of_a_key_wins() {
        let mut b = Builder::new().unwrap();
        // Force several runs and blocks: spill by hand between pushes.
        for round in 0..3i64 {
            for i in (0..12000u64).rev() {
                // A long ETag: rows big enough to fill several blocks.
                b.push(&format!("k/{i:06}"), i, round, Some(&"e".repeat(80)))
                    .unwrap();
            }
            b.spill().unwrap();
        }
        b.push("k/000007", 99, 9, None).unwrap();
        let s = b.finish().unwrap();
        assert_eq!(s.len(), 12000);
        assert!(s.index.len() > 3, "several blocks");
        let mut c = s.seek("k/000005").unwrap();
        let mut keys = Vec::new();
        while let Some(e) = c.peek() {
            keys.push((e.key.clone(), e.size, e.modified));
            c.advance().unwrap();
        }
        assert_eq!(keys.len(), 11995);
        assert_eq!(keys[0], ("k/000005".into(), 5, 2));
        assert_eq!(keys[2], ("k/000007".into(), 99, 9));
        assert!(keys.windows(2).all(|w| w[0].0 < w[1].0));
        let mut c = s.seek("k/").unwrap();
        c.skip_to("k/011999").unwrap();
        assert_eq!(c.peek().unwrap().key, "k/011999");
        c.advance().unwrap();
        assert!(c.peek().is_none());
        assert!(s.seek("l").unwrap().peek().is_none());
    }
}
