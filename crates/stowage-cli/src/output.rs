//! Writing data to stdout or `-o FILE`: buffered, JSON documents and NDJSON lines; whether
//! a command's output is Parquet.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::args::Format;

pub type Out = BufWriter<Box<dyn Write + Send>>;

pub fn stdout() -> Out {
    BufWriter::with_capacity(1 << 16, Box::new(std::io::stdout()))
}

/// Standard output, or the file `-o` names (created; errors name it).
pub fn to(path: Option<&Path>) -> Result<Out> {
    let Some(path) = path else {
        return Ok(stdout());
    };
    let file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(BufWriter::with_capacity(
        1 << 16,
        Box::new(Named {
            file,
            path: path.to_path_buf(),
        }),
    ))
}

/// A file whose write errors name it.
struct Named {
    file: std::fs::File,
    path: PathBuf,
}

impl Write for Named {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let p = &self.path;
        self.file
            .write(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", p.display())))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let p = &self.path;
        self.file
            .flush()
            .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", p.display())))
    }
}

/// The Parquet file to write, if the output is Parquet: `--format parquet -o FILE`, or `-o`
/// naming a `.parquet` file. `--format parquet` without `-o` is refused (a binary table is
/// not for a terminal or a pipe).
pub fn parquet_target(format: Format, output: Option<&Path>) -> Result<Option<&Path>> {
    match output {
        Some(p) if format == Format::Parquet || p.extension().is_some_and(|e| e == "parquet") => {
            Ok(Some(p))
        }
        None if format == Format::Parquet => {
            anyhow::bail!("--format parquet writes a file: add -o FILE")
        }
        _ => Ok(None),
    }
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

/// Write a file atomically: a temporary file in the same directory, synced, then renamed
/// over the target (readers such as the node-exporter never see half a file).
pub fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        write(&mut f)?;
        f.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A digest shortened for a table: `sha256:` and the first 12 hex digits.
pub fn short(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_string(),
    }
}

/// Write `rows` (JSON records) as the Parquet table of schema `stowage.<kind>/v1`
/// (`stowage_parquet::tables`) at `path`, creating its parent directories.
#[cfg(feature = "parquet")]
pub fn write_parquet<T: Serialize>(
    path: &Path,
    kind: &str,
    rows: impl IntoIterator<Item = T>,
) -> Result<()> {
    let cols = stowage_parquet::tables::columns(kind)
        .with_context(|| format!("no Parquet table for {kind}"))?;
    stowage_parquet::tables::write(path, &stowage_report::schema(kind), &cols, rows)?;
    Ok(())
}

#[cfg(not(feature = "parquet"))]
pub fn write_parquet<T: Serialize>(
    path: &Path,
    _kind: &str,
    _rows: impl IntoIterator<Item = T>,
) -> Result<()> {
    anyhow::bail!(
        "{}: this build of stowage has no Parquet output; build it with the default features (or --features parquet)",
        path.display()
    )
}
