//! Reading log lines with a bounded length.
//!
//! An access log is input stowage does not control: a gzip of 8.7 MB can inflate to gigabytes
//! of NULs without a newline, and `read_until` would buffer the whole "line" (1.97 GB there,
//! an allocation failure for an endless stream). [`read_line`] keeps at most [`MAX_LINE`]
//! bytes of a line; a longer line is consumed to its newline without being buffered, and
//! reported as [`LineRead::TooLong`] so the caller skips and counts it. The next line starts
//! after that newline: the reader resynchronises at once.

use std::io::{self, BufRead};

/// Longest log line read, in bytes: 64 KiB (a registry access line is under 2 KiB; the
/// longest legitimate ones, with long user agents or URLs, a few KiB).
pub const MAX_LINE: usize = 64 << 10;

/// What one call read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineRead {
    /// End of input, nothing read.
    Eof,
    /// A line (with its newline, if it had one) is in the buffer.
    Line,
    /// A line longer than the limit was consumed (to its newline or the end of input); the
    /// buffer holds only its first `max` bytes, which are not a line.
    TooLong,
}

/// Read one line into `buf` (cleared first), keeping at most `max` bytes.
pub fn read_line<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            let room = max.saturating_sub(buf.len());
            if take > room {
                buf.extend_from_slice(&chunk[..room]);
                too_long = true;
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if done {
            break;
        }
    }
    Ok(match (any, too_long) {
        (false, _) => LineRead::Eof,
        (true, true) => LineRead::TooLong,
        (true, false) => LineRead::Line,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn usage_ingest_line_length_is_bounded_and_resynchronises() {
        let mut input: Vec<u8> = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(0u8, 1_000_000));
        input.extend_from_slice(b"\nafter\nlast");
        let mut r = io::BufReader::with_capacity(4096, &input[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"short\n");
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::TooLong);
        assert!(
            buf.capacity() < 4096 + 100,
            "the long line was not buffered"
        );
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"after\n");
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::Eof);
        // Exactly at the limit (newline included) is a line.
        let mut r = io::BufReader::new(&b"abcd\n"[..]);
        assert_eq!(read_line(&mut r, &mut buf, 5).unwrap(), LineRead::Line);
        let mut r = io::BufReader::new(&b"abcde\n"[..]);
        assert_eq!(read_line(&mut r, &mut buf, 5).unwrap(), LineRead::TooLong);
    }
}
