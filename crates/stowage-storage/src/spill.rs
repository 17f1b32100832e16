//! The sorted key file behind a [`crate::listing::Listing`]: an external sort, so that a
//! report of a hundred million objects costs disk, not memory.
//!
//! Rows arrive in the report's order. They are gathered into a chunk of at most
//! [`CHUNK_BYTES`] of keys, sorted, and written as a run (a temporary file); at the end the
//! runs are merged into one file of blocks of about [`BLOCK_BYTES`], each entry `u32` key
//! length, key, `u64` size, `i64` modified (ns), `u16` ETag length, ETag. Only the first key
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
pub const BLOCK_BYTES: usize = 64 << 10;

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: i64,
    pub etag: Option<String>,
}

fn encode(out: &mut Vec<u8>, key: &str, size: u64, modified: i64, etag: Option<&str>) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    let e = etag.unwrap_or("").as_bytes();
    let e = &e[..e.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(e.len() as u16).to_le_bytes());
    out.extend_from_slice(e);
}

fn decode_from(r: &mut impl Read) -> io::Result<Option<Entry>> {
    let mut n = [0u8; 4];
    match r.read_exact(&mut n) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; u32::from_le_bytes(n) as usize];
    r.read_exact(&mut key)?;
    let mut f = [0u8; 18];
    r.read_exact(&mut f)?;
    let mut e = vec![0u8; u16::from_le_bytes([f[16], f[17]]) as usize];
    r.read_exact(&mut e)?;
    let bad = |_| io::Error::new(io::ErrorKind::InvalidData, "spill file: key is not UTF-8");
    Ok(Some(Entry {
        key: String::from_utf8(key).map_err(bad)?,
        size: u64::from_le_bytes(f[..8].try_into().unwrap_or_default()),
        modified: i64::from_le_bytes(f[8..16].try_into().unwrap_or_default()),
        etag: (!e.is_empty()).then(|| String::from_utf8_lossy(&e).into_owned()),
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
    len: u64,
}

/// The finished, sorted file.
#[derive(Debug)]
pub struct Sorted {
    _dir: tempfile::TempDir,
    file: File,
    index: BlockIndex,
    len: usize,
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
        for i in order {
            let (s, e, size, modified, etag) = &self.rows[i];
            buf.clear();
            encode(
                &mut buf,
                &self.arena[*s..*e],
                *size,
                *modified,
                etag.as_deref(),
            );
            w.write_all(&buf)?;
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
            let mut heads: Vec<Option<Entry>> = readers
                .iter_mut()
                .map(decode_from)
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
                    heads[i] = decode_from(&mut readers[i])?;
                    if let Some(e) = &heads[i] {
                        heap.push(Reverse((e.key.clone(), i)));
                    }
                }
            }
        }
        let (file, index, len) = out.finish()?;
        Ok(Sorted {
            _dir: self.dir,
            file,
            index,
            len,
        })
    }
}

struct BlockWriter {
    file: BufWriter<File>,
    buf: Vec<u8>,
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
        encode(&mut self.buf, key, size, modified, etag);
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
        }
        Ok(())
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

    /// Bytes of memory the index holds.
    pub fn index_bytes(&self) -> usize {
        self.index.iter().map(|(k, _, _)| k.len() + 32).sum()
    }

    fn block(&self, i: usize) -> io::Result<Vec<Entry>> {
        let (_, off, len) = &self.index[i];
        let mut buf = vec![0u8; *len as usize];
        self.file.read_exact_at(&mut buf, *off)?;
        let mut r = &buf[..];
        let mut out = Vec::with_capacity(*len as usize / 96);
        while let Some(e) = decode_from(&mut r)? {
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

    #[test]
    fn runs_merge_sorted_and_the_last_row_of_a_key_wins() {
        let mut b = Builder::new().unwrap();
        // Force several runs and blocks: spill by hand between pushes.
        for round in 0..3i64 {
            for i in (0..12000u64).rev() {
                b.push(&format!("k/{i:06}"), i, round, Some("e")).unwrap();
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
