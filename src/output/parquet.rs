//! Parquet (zstd): lists and the scores file, typed, for analysts.
//!
//! Pipeline position: one of `output`'s writers ([`super::TableWriter`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use polars::prelude::*;

use super::TableWriter;
use crate::publish::{io_err, OutputError};

/// Parquet with zstd compression.
#[derive(Debug, Clone, Copy)]
pub struct Parquet;

impl TableWriter for Parquet {
    fn extension(&self) -> &'static str {
        "parquet"
    }

    fn write(&self, path: &Path, df: &mut DataFrame) -> Result<(), OutputError> {
        // Buffered: the encoders issue many small writes (185,000 syscalls for a 1.2M run).
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io_err(path))?);
        ParquetWriter::new(&mut w)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(df)
            .map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        w.flush().map_err(io_err(path))?;
        let f = w.into_inner().map_err(|e| io_err(path)(e.into_error()))?;
        f.sync_all().map_err(io_err(path))
    }
}
