//! The sorted key file behind a [`crate::listing::Listing`]: an external sort, so that a
//! report of a hundred million objects costs disk, not memory.
//!
//! Rows arrive in the report's order. They are gathered into a chunk (each row's key and
//! encoded tail in one buffer, 12 bytes of places per row) of at most a budget that starts
//! at [`CHUNK_BYTES`] and grows with the report, sorted, and written as a run (a temporary
//! file); at the end the runs are merged into one file of blocks of about [`BLOCK_BYTES`], each entry its key
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

/// Bytes of memory a chunk of rows takes before it is sorted and written as a run, at
/// the least (see [`Builder::budget`]).
pub const CHUNK_BYTES: usize = 8 << 20;
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
    put_key(out, prev, key.as_bytes());
    encode_tail(out, size, modified, etag);
}

/// The key part of [`encode`].
fn put_key(out: &mut Vec<u8>, prev: &mut Vec<u8>, k: &[u8]) {
    let shared = prev.iter().zip(k).take_while(|(a, b)| a == b).count();
    put_varint(out, shared as u64);
    put_varint(out, (k.len() - shared) as u64);
    out.extend_from_slice(&k[shared..]);
    prev.truncate(shared);
    prev.extend_from_slice(&k[shared..]);
}

/// What follows the key in [`encode`]: size, modified, ETag. A chunk keeps each row's
/// tail encoded (it does not depend on the neighbours), so that a row in memory costs its
/// key, its tail and 12 bytes.
fn encode_tail(out: &mut Vec<u8>, size: u64, modified: i64, etag: Option<&str>) {
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

/// An ETag as a row holds it (see [`encode_tail`]).
enum Etag {
    None,
    Md5([u8; 16], bool),
    Raw(Vec<u8>),
}

impl Etag {
    /// Append its text (nothing for none).
    fn write_to(&self, out: &mut String) {
        match self {
            Etag::None => {}
            Etag::Md5(b, quoted) => {
                if *quoted {
                    out.push('"');
                }
                stowage_model::digest::encode_hex(b, out);
                if *quoted {
                    out.push('"');
                }
            }
            Etag::Raw(e) => out.push_str(&String::from_utf8_lossy(e)),
        }
    }

    fn text(&self) -> Option<String> {
        if matches!(self, Etag::None) {
            return None;
        }
        let mut s = String::new();
        self.write_to(&mut s);
        Some(s)
    }
}

/// Read one row written by [`encode`] with the same `prev`, leaving its key in `prev`;
/// `None` at the end.
fn decode_row(r: &mut impl Read, prev: &mut Vec<u8>) -> io::Result<Option<(u64, i64, Etag)>> {
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
    let etag = match tag[0] {
        ETAG_NONE => Etag::None,
        ETAG_MD5 | ETAG_MD5_QUOTED => {
            let mut b = [0u8; 16];
            r.read_exact(&mut b)?;
            Etag::Md5(b, tag[0] == ETAG_MD5_QUOTED)
        }
        ETAG_RAW => {
            let n = get_varint(r)? as usize;
            if n > usize::from(u16::MAX) {
                return Err(bad("an ETag longer than any the listing writes"));
            }
            let mut e = vec![0u8; n];
            r.read_exact(&mut e)?;
            Etag::Raw(e)
        }
        _ => return Err(bad("unknown ETag form")),
    };
    Ok(Some((size, i64::from_le_bytes(m), etag)))
}

/// A place in a buffer as a `u32` (chunks and blocks stay far below 4 GiB).
fn place(n: usize, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, what.to_owned()))
}

fn not_utf8() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "spill file: key is not UTF-8")
}

/// Read one row written by [`encode`] with the same `prev`; `None` at the end.
fn decode_from(r: &mut impl Read, prev: &mut Vec<u8>) -> io::Result<Option<Entry>> {
    let Some((size, modified, etag)) = decode_row(r, prev)? else {
        return Ok(None);
    };
    Ok(Some(Entry {
        key: String::from_utf8(prev.clone()).map_err(|_| not_utf8())?,
        size,
        modified,
        etag: etag.text(),
    }))
}

/// A block decoded: its keys and ETags each in one string, so that reading a block is a
/// few allocations, not two per row (the scan reads blocks from every I/O worker; rows
/// allocated one by one were most of its allocator churn).
#[derive(Debug, Default)]
struct Block {
    keys: String,
    etags: String,
    rows: Vec<BlockRow>,
}

#[derive(Debug, Clone, Copy)]
struct BlockRow {
    key: (u32, u32),
    etag: (u32, u32),
    size: u64,
    modified: i64,
}

/// A row of a block, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub key: &'a str,
    pub size: u64,
    pub modified: i64,
    /// `None` for none (an empty ETag is none).
    pub etag: Option<&'a str>,
}

impl Block {
    fn decode(mut r: &[u8]) -> io::Result<Block> {
        // Front-coded keys come out about twice the block's bytes; a row is about 40
        // bytes of block.
        let mut b = Block {
            keys: String::with_capacity(r.len() * 2),
            etags: String::new(),
            rows: Vec::with_capacity(r.len() / 40),
        };
        let mut prev = Vec::new();
        let place = |n| place(n, "spill file: a block of over 4 GiB");
        while let Some((size, modified, etag)) = decode_row(&mut r, &mut prev)? {
            let key = std::str::from_utf8(&prev).map_err(|_| not_utf8())?;
            let k0 = place(b.keys.len())?;
            b.keys.push_str(key);
            let e0 = place(b.etags.len())?;
            etag.write_to(&mut b.etags);
            b.rows.push(BlockRow {
                key: (k0, place(b.keys.len())?),
                etag: (e0, place(b.etags.len())?),
                size,
                modified,
            });
        }
        Ok(b)
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn key(&self, i: usize) -> &str {
        let (s, e) = self.rows[i].key;
        &self.keys[s as usize..e as usize]
    }

    fn get(&self, i: usize) -> Option<EntryRef<'_>> {
        let r = self.rows.get(i)?;
        let (s, e) = r.etag;
        Some(EntryRef {
            key: self.key(i),
            size: r.size,
            modified: r.modified,
            etag: (s < e).then(|| &self.etags[s as usize..e as usize]),
        })
    }

    /// The first row whose key is `>= k`, from `from` on.
    fn first_at_or_after(&self, from: usize, k: &str) -> usize {
        let from = from.min(self.len());
        let key = |r: &BlockRow| &self.keys[r.key.0 as usize..r.key.1 as usize];
        from + self.rows[from..].partition_point(|r| key(r) < k)
    }
}

/// A row of the chunk: where its key starts and ends in the arena, and where its encoded
/// tail ([`encode_tail`]) ends.
#[derive(Clone, Copy, Debug)]
struct ChunkRow {
    start: u32,
    key_end: u32,
    end: u32,
}

/// First key, offset and length of each block.
type BlockIndex = Vec<(Box<str>, u64, u32)>;

/// Rows being gathered (see the module doc).
#[derive(Debug)]
pub struct Builder {
    dir: tempfile::TempDir,
    /// The chunk: each row's key then its encoded tail.
    arena: Vec<u8>,
    rows: Vec<ChunkRow>,
    runs: Vec<File>,
    /// Bytes the runs hold now, and the most they held at once.
    run_bytes: u64,
    peak_run_bytes: u64,
    /// Bytes of the chunks spilled so far (what the chunk's budget grows with).
    gathered: u64,
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
    /// Runs merged into the file (0: the rows fitted one chunk).
    runs: usize,
}

impl Builder {
    /// A builder spilling into a fresh temporary directory (`$TMPDIR`).
    pub fn new() -> io::Result<Builder> {
        Ok(Builder {
            dir: tempfile::Builder::new()
                .prefix("stowage-listing-")
                .tempdir()?,
            arena: Vec::new(),
            rows: Vec::new(),
            runs: Vec::new(),
            run_bytes: 0,
            peak_run_bytes: 0,
            gathered: 0,
            len: 0,
        })
    }

    /// Bytes of memory a chunk may take: [`CHUNK_BYTES`], or a 128th of what was spilled
    /// before when that is more (at most 1 GiB, so that places fit in a `u32`). Memory
    /// stays in proportion to the report (about 100 MB at 100M objects, 8 MiB at 1M),
    /// and the runs stay few: 128 chunks of the floor, then one more for every 0.8% the
    /// report grows (about 450 runs at 100M objects of 133 bytes a row).
    fn budget(&self) -> usize {
        let grown = usize::try_from(self.gathered / 128).unwrap_or(usize::MAX);
        grown.clamp(CHUNK_BYTES, 1 << 30)
    }

    pub fn push(
        &mut self,
        key: &str,
        size: u64,
        modified: i64,
        etag: Option<&str>,
    ) -> io::Result<()> {
        let start = self.arena.len();
        self.arena.extend_from_slice(key.as_bytes());
        let key_end = self.arena.len();
        encode_tail(&mut self.arena, size, modified, etag);
        let place = |n| place(n, "a report row of over 3 GiB");
        self.rows.push(ChunkRow {
            start: place(start)?,
            key_end: place(key_end)?,
            end: place(self.arena.len())?,
        });
        self.len += 1;
        if self.arena.len() + self.rows.len() * std::mem::size_of::<ChunkRow>() >= self.budget() {
            self.spill()?;
        }
        Ok(())
    }

    /// Sort the chunk's rows by key, keeping of equal keys the last pushed only.
    fn sort_chunk(&mut self) {
        let arena = &self.arena;
        let key = |r: &ChunkRow| &arena[r.start as usize..r.key_end as usize];
        // Places grow with pushing: the later of two rows has the greater start.
        self.rows
            .sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.start.cmp(&b.start)));
        self.rows.dedup_by(|later, earlier| {
            let same = key(later) == key(earlier);
            if same {
                *earlier = *later;
            }
            same
        });
    }

    /// The key and the encoded tail of a row of the chunk.
    fn parts(&self, r: ChunkRow) -> (&[u8], &[u8]) {
        (
            &self.arena[r.start as usize..r.key_end as usize],
            &self.arena[r.key_end as usize..r.end as usize],
        )
    }

    /// Write the chunk as a sorted run.
    fn spill(&mut self) -> io::Result<()> {
        self.write_run()?;
        if self.runs.len() >= MAX_RUNS {
            // Far past 100M objects only: the runs so far become one, so that a merge never
            // holds more files open than the usual limit allows.
            let mut w = RunWriter::new(&self.dir)?;
            merge(std::mem::take(&mut self.runs), |e| w.push(e))?;
            self.peak_run_bytes = self.peak_run_bytes.max(self.run_bytes + w.bytes);
            self.run_bytes = 0;
            self.add_run(w)?;
        }
        Ok(())
    }

    /// Write the chunk as a sorted run, whatever the number of runs (`finish` merges at
    /// most [`MAX_RUNS`] of them directly: no pass of merging into one first).
    fn write_run(&mut self) -> io::Result<()> {
        self.sort_chunk();
        let mut w = RunWriter::new(&self.dir)?;
        for &r in &self.rows {
            let (key, tail) = self.parts(r);
            w.push_raw(key, tail)?;
        }
        self.gathered += self.arena.len() as u64;
        self.arena = Vec::new();
        self.rows = Vec::new();
        self.add_run(w)
    }

    fn add_run(&mut self, w: RunWriter) -> io::Result<()> {
        self.run_bytes += w.bytes;
        self.peak_run_bytes = self.peak_run_bytes.max(self.run_bytes);
        self.runs.push(w.finish()?);
        Ok(())
    }

    /// Merge everything into the block file.
    pub fn finish(mut self) -> io::Result<Sorted> {
        let mut out = BlockWriter {
            file: BufWriter::new(tempfile::tempfile_in(self.dir.path())?),
            buf: Vec::with_capacity(BLOCK_BYTES * 2),
            prev: Vec::new(),
            tail: Vec::new(),
            first: None,
            offset: 0,
            index: Vec::new(),
            len: 0,
        };
        let mut runs = 0;
        if self.runs.is_empty() {
            self.sort_chunk();
            for &r in &self.rows {
                let (key, tail) = self.parts(r);
                out.push_raw(key, tail)?;
            }
        } else {
            if !self.rows.is_empty() {
                self.write_run()?;
            }
            runs = self.runs.len();
            merge(std::mem::take(&mut self.runs), |e| {
                out.push(&e.key, e.size, e.modified, e.etag.as_deref())
            })?;
        }
        let file_bytes = out.offset_after_flush();
        let (file, index, len) = out.finish()?;
        Ok(Sorted {
            _dir: self.dir,
            file,
            index,
            len,
            file_bytes,
            peak_bytes: (file_bytes + self.run_bytes).max(self.peak_run_bytes),
            runs,
        })
    }
}

/// Runs merged at once. Past this many, the runs so far are merged into one first: a
/// merge holds every run open (at the end, this many and one more), and the usual limit
/// is 1,024 open files. With the growing chunk budget, reports of 100M to 160M rows reach
/// it, by their keys' length (`examples/spill_scale.rs`: 498 runs at 100M rows of about
/// 128-byte keys in random order).
const MAX_RUNS: usize = 512;

/// Merge sorted runs in key order, giving `emit` every key once: of a key in several
/// runs, the row of the latest run (the last pushed).
fn merge(runs: Vec<File>, mut emit: impl FnMut(&Entry) -> io::Result<()>) -> io::Result<()> {
    let mut readers: Vec<BufReader<File>> = runs
        .into_iter()
        .map(|mut f| {
            std::io::Seek::rewind(&mut f)?;
            Ok(BufReader::with_capacity(BLOCK_BYTES, f))
        })
        .collect::<io::Result<_>>()?;
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
    let mut same = Vec::new();
    while let Some(Reverse((key, first))) = heap.pop() {
        // Every run whose head is this key: the latest run's row wins.
        let mut winner = first;
        same.clear();
        same.push(first);
        while let Some(Reverse((k, i))) = heap.peek()
            && *k == key
        {
            winner = winner.max(*i);
            same.push(*i);
            heap.pop();
        }
        if let Some(e) = &heads[winner] {
            emit(e)?;
        }
        for &i in &same {
            heads[i] = decode_from(&mut readers[i], &mut prevs[i])?;
            if let Some(e) = &heads[i] {
                heap.push(Reverse((e.key.clone(), i)));
            }
        }
    }
    Ok(())
}

/// A run being written: rows front-coded against the run's previous key.
struct RunWriter {
    w: BufWriter<File>,
    prev: Vec<u8>,
    buf: Vec<u8>,
    bytes: u64,
}

impl RunWriter {
    fn new(dir: &tempfile::TempDir) -> io::Result<RunWriter> {
        Ok(RunWriter {
            w: BufWriter::new(tempfile::tempfile_in(dir.path())?),
            prev: Vec::new(),
            buf: Vec::new(),
            bytes: 0,
        })
    }

    fn push_raw(&mut self, key: &[u8], tail: &[u8]) -> io::Result<()> {
        self.buf.clear();
        put_key(&mut self.buf, &mut self.prev, key);
        self.buf.extend_from_slice(tail);
        self.write_buf()
    }

    fn write_buf(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        Ok(())
    }

    fn push(&mut self, e: &Entry) -> io::Result<()> {
        self.buf.clear();
        encode(
            &mut self.buf,
            &mut self.prev,
            &e.key,
            e.size,
            e.modified,
            e.etag.as_deref(),
        );
        self.write_buf()
    }

    fn finish(self) -> io::Result<File> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

struct BlockWriter {
    file: BufWriter<File>,
    buf: Vec<u8>,
    /// The block's previous key (front coding restarts at each block, so that a block is
    /// read on its own).
    prev: Vec<u8>,
    /// Scratch for a row's encoded tail.
    tail: Vec<u8>,
    first: Option<Box<str>>,
    offset: u64,
    index: BlockIndex,
    len: usize,
}

impl BlockWriter {
    fn push(&mut self, key: &str, size: u64, modified: i64, etag: Option<&str>) -> io::Result<()> {
        let mut tail = std::mem::take(&mut self.tail);
        tail.clear();
        encode_tail(&mut tail, size, modified, etag);
        let r = self.push_raw(key.as_bytes(), &tail);
        self.tail = tail;
        r
    }

    /// A row whose tail is already encoded.
    fn push_raw(&mut self, key: &[u8], tail: &[u8]) -> io::Result<()> {
        if self.first.is_none() {
            // Keys were pushed as `str` and are cut at their own ends: valid UTF-8.
            self.first = Some(String::from_utf8_lossy(key).into());
        }
        put_key(&mut self.buf, &mut self.prev, key);
        self.buf.extend_from_slice(tail);
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

    /// Sorted runs merged into the file (0 when the rows fitted one chunk).
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Bytes of memory the index holds.
    pub fn index_bytes(&self) -> usize {
        self.index.iter().map(|(k, _, _)| k.len() + 32).sum()
    }

    fn block(&self, i: usize) -> io::Result<Block> {
        let (_, off, len) = &self.index[i];
        let mut buf = vec![0u8; *len as usize];
        self.file.read_exact_at(&mut buf, *off)?;
        Block::decode(&buf)
    }

    /// A cursor at the first entry whose key is `>= k`.
    pub fn seek(&self, k: &str) -> io::Result<Cursor<'_>> {
        let b = self.index.partition_point(|(first, _, _)| &**first <= k);
        let mut c = Cursor {
            s: self,
            block: b.saturating_sub(1),
            entries: Block::default(),
            pos: 0,
        };
        if !self.index.is_empty() {
            c.entries = self.block(c.block)?;
            c.pos = c.entries.first_at_or_after(0, k);
            c.settle()?;
        }
        Ok(c)
    }
}

/// A position in a [`Sorted`] file.
pub struct Cursor<'a> {
    s: &'a Sorted,
    block: usize,
    entries: Block,
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

    pub fn peek(&self) -> Option<EntryRef<'_>> {
        self.entries.get(self.pos)
    }

    pub fn advance(&mut self) -> io::Result<()> {
        self.pos += 1;
        self.settle()
    }

    /// Move forward to the first entry whose key is `>= k` (within the block when it is
    /// there, else by a new seek).
    pub fn skip_to(&mut self, k: &str) -> io::Result<()> {
        let n = self.entries.len();
        if n > 0 && self.entries.key(n - 1) >= k {
            self.pos = self.entries.first_at_or_after(self.pos, k);
            return self.settle();
        }
        *self = self.s.seek(k)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
