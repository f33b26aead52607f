//! Parquet (zstd): lists and the scores file, typed, for analysts.
//!
//! Pipeline position: one of `output`'s writers ([`super::TableWriter`]).

use std::path::Path;

use polars::prelude::*;

use super::TableWriter;
use crate::publish::{FileDigest, OutFile, OutputError};

/// zstd level: 1, not the default 3. Compression was the largest part of writing a 1.2M run's
/// files at level 3; level 1 leaves them a few per cent larger.
const ZSTD_LEVEL: i32 = 1;

/// Parquet with zstd compression.
#[derive(Debug, Clone, Copy)]
pub struct Parquet;

impl TableWriter for Parquet {
    fn extension(&self) -> &'static str {
        "parquet"
    }

    fn write(&self, path: &Path, df: &mut DataFrame) -> Result<FileDigest, OutputError> {
        let mut w = OutFile::create(path)?;
        ParquetWriter::new(&mut w)
            .with_compression(ParquetCompression::Zstd(
                polars_parquet::write::ZstdLevel::try_new(ZSTD_LEVEL).ok(),
            ))
            .finish(df)
            .map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        w.finish()
    }
}
