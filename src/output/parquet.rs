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

/// Write a table of `rows` rows `batch` rows at a time, each batch built by `frame(range)` only
/// when it is written and written as one row group, so the whole table is never in memory (the
/// cohort-wide scores file: fresh memory costs more than the writing on a busy machine).
pub fn write_batched(
    path: &Path,
    rows: usize,
    batch: usize,
    frame: impl Fn(std::ops::Range<usize>) -> PolarsResult<DataFrame>,
) -> Result<FileDigest, OutputError> {
    let enc = |source| OutputError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let mut w = OutFile::create(path)?;
    let step = batch.max(1);
    // The first batch (empty for an empty table) gives the schema.
    let first = frame(0..step.min(rows)).map_err(enc)?;
    let mut writer = writer_for(&mut w).batched(first.schema()).map_err(enc)?;
    writer.write_batch(&first).map_err(enc)?;
    drop(first);
    let mut lo = step.min(rows);
    while lo < rows {
        let hi = (lo + step).min(rows);
        writer
            .write_batch(&frame(lo..hi).map_err(enc)?)
            .map_err(enc)?;
        lo = hi;
    }
    writer.finish().map_err(enc)?;
    drop(writer);
    w.finish()
}

/// The Parquet writer strata uses: zstd at [`ZSTD_LEVEL`].
fn writer_for<W: std::io::Write>(w: W) -> ParquetWriter<W> {
    ParquetWriter::new(w).with_compression(ParquetCompression::Zstd(
        polars_parquet::write::ZstdLevel::try_new(ZSTD_LEVEL).ok(),
    ))
}

impl TableWriter for Parquet {
    fn extension(&self) -> &'static str {
        "parquet"
    }

    fn write(&self, path: &Path, df: &mut DataFrame) -> Result<FileDigest, OutputError> {
        let mut w = OutFile::create(path)?;
        writer_for(&mut w)
            .finish(df)
            .map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        w.finish()
    }
}
