//! Atomic publication of an output folder, and its manifest: the temporary folder, the rename,
//! the JSON manifest and the record (size, hash) of every file written.
//!
//! Pipeline position: last. `run` publishes a scoring run's folder (filled by `output`) and
//! `synth` a synthetic cohort's. Everything is written into a temporary folder beside the
//! destination and renamed into place only when complete, so a failed run never leaves a
//! half-written list where yesterday's good one was.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::PolarsError;

use crate::datafile::fnv1a64;

/// Errors of writing an output folder.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Polars could not encode a table.
    #[error("cannot write {path}: {source}")]
    Encode {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: PolarsError,
    },
    /// The destination exists and is not a strata output folder.
    #[error(
        "{0} exists and is not a strata output folder (no manifest.json); refusing to replace it"
    )]
    NotOurs(PathBuf),
}

/// An I/O error on `path`, for `map_err`.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file written, for the manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// Path relative to the output folder.
    pub path: String,
    /// Data rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// FNV-1a 64 of the bytes, hex.
    pub fnv1a64: String,
}

/// Record `rel` (a file under `dir` holding `rows` data rows) for the manifest.
pub fn record(dir: &Path, rel: &str, rows: usize) -> Result<Written, OutputError> {
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    Ok(Written {
        path: rel.to_string(),
        rows: rows as u64,
        bytes: bytes.len() as u64,
        fnv1a64: format!("{:016x}", fnv1a64(&bytes)),
    })
}

/// Write `value` as pretty JSON to `path`, synced.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    let text =
        serde_json::to_string_pretty(value).map_err(|e| io_err(path)(std::io::Error::other(e)))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))?;
    f.write_all(b"\n").map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Build an output folder atomically: `fill` writes into a fresh temporary folder beside `out`;
/// only when it succeeds is the folder renamed to `out` (the previous `out`, if any, is moved
/// aside first and removed after). On failure the temporary folder is removed and `out` is left
/// as it was.
pub fn publish<T, E: From<OutputError>>(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| E::from(io_err(&parent)(e)))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    if out.exists() && !out.join("manifest.json").is_file() && !is_empty_dir(out) {
        return Err(E::from(OutputError::NotOurs(out.to_path_buf())));
    }
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".{name}.partial-{nonce}"));
    std::fs::create_dir(&tmp).map_err(|e| E::from(io_err(&tmp)(e)))?;
    let result = fill(&tmp);
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let old = parent.join(format!(".{name}.previous-{nonce}"));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old).map_err(|e| E::from(io_err(out)(e)))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(E::from(io_err(out)(e)));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(value)
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}
