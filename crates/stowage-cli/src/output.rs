//! Writing data to stdout: buffered, JSON documents and NDJSON lines.

use std::io::{BufWriter, Stdout, Write};

use anyhow::Result;
use serde::Serialize;

pub type Out = BufWriter<Stdout>;

pub fn stdout() -> Out {
    BufWriter::with_capacity(1 << 16, std::io::stdout())
}

/// Pretty JSON document followed by a newline.
pub fn json<T: Serialize>(out: &mut Out, v: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// One compact JSON line.
pub fn ndjson<T: Serialize>(out: &mut Out, v: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}
