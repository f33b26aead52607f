//! Where output bytes go: a file being written, hashed and counted on its way to disk, the record
//! of each file for the manifest, and the errors of writing.
//!
//! Pipeline position: the bottom layer. `output`'s writers and `publish` write through it; it
//! knows no format and no folder layout.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::PolarsError;
use sha2::{Digest as _, Sha256};

use crate::digest::hex;

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
    /// A document (a workbook) could not be put together.
    #[error("cannot write {path}: {source}")]
    Document {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `ROOT/latest` exists and is not a symlink.
    #[error("{0} exists and is not a symlink; refusing to replace it")]
    NotALink(PathBuf),
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
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// What went into one file: its size and SHA-256, taken as the bytes went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// A file being written: buffered (1 MiB: encoders issue many small writes), hashed and
/// counted on its way to disk, so its manifest record needs no second read; synced by
/// [`OutFile::finish`].
pub struct OutFile {
    path: PathBuf,
    w: BufWriter<File>,
    sha: Sha256,
    bytes: u64,
}

impl OutFile {
    /// Create (or replace) the file at `path`.
    pub fn create(path: &Path) -> Result<OutFile, OutputError> {
        Ok(OutFile {
            path: path.to_path_buf(),
            w: BufWriter::with_capacity(1 << 20, File::create(path).map_err(io_err(path))?),
            sha: Sha256::new(),
            bytes: 0,
        })
    }

    /// Flush and sync the file to disk; its size and hash.
    pub fn finish(self) -> Result<FileDigest, OutputError> {
        let path = self.path;
        let f = self
            .w
            .into_inner()
            .map_err(|e| io_err(&path)(e.into_error()))?;
        f.sync_all().map_err(io_err(&path))?;
        Ok(FileDigest {
            bytes: self.bytes,
            sha256: hex(&self.sha.finalize()),
        })
    }
}

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}
