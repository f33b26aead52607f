//! Parquet (zstd): lists and the scores file, typed, for analysts.
//!
//! Pipeline position: one of `output`'s writers ([`super::TableWriter`]).

use std::fs::File;
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
        let mut f = File::create(path).map_err(io_err(path))?;
        ParquetWriter::new(&mut f)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(df)
            .map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        f.sync_all().map_err(io_err(path))
    }
}
