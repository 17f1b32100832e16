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

/// Write a file through a buffer with `write`, naming the path in any error.
pub fn write_file(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    use anyhow::Context;
    let f = std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 16, f);
    write(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
