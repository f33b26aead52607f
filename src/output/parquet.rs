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
    let mut w = OutFile::create(path)?;
    encode_batched(&mut w, path, rows, batch, frame)?;
    w.finish()
}

/// [`write_batched`]'s encoding into any writer (`path` names it in errors): the same row
/// groups whoever writes the table, so an engine that holds the table in memory (the Spark
/// driver) writes the binary's bytes.
pub fn encode_batched<W: std::io::Write>(
    w: &mut W,
    path: &Path,
    rows: usize,
    batch: usize,
    frame: impl Fn(std::ops::Range<usize>) -> PolarsResult<DataFrame>,
) -> Result<(), OutputError> {
    let enc = |source| OutputError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let step = batch.max(1);
    // The first batch (empty for an empty table) gives the schema.
    // `write_batch` takes each batch's chunks as row groups and needs them aligned.
    let batch_frame = |range| {
        let mut df = frame(range)?;
        df.align_chunks_par();
        Ok(df)
    };
    let first = batch_frame(0..step.min(rows)).map_err(enc)?;
    let mut writer = writer_for(w).batched(first.schema()).map_err(enc)?;
    writer.write_batch(&first).map_err(enc)?;
    drop(first);
    let mut lo = step.min(rows);
    while lo < rows {
        let hi = (lo + step).min(rows);
        writer
            .write_batch(&batch_frame(lo..hi).map_err(enc)?)
            .map_err(enc)?;
        lo = hi;
    }
    writer.finish().map_err(enc)?;
    Ok(())
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

    fn encode(&self, w: &mut dyn std::io::Write, df: &mut DataFrame) -> PolarsResult<()> {
        writer_for(w).finish(df).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batched writing gives the table whole: no rows, an exact multiple of the batch, a
    /// remainder; one row group per batch.
    #[test]
    fn batches_make_the_whole_table() {
        let d = tempfile::tempdir().unwrap();
        let frame = |rows: std::ops::Range<usize>| {
            let ids: Vec<String> = rows.clone().map(|k| format!("p{k:03}")).collect();
            let n = rows.len();
            DataFrame::new(
                n,
                vec![
                    Column::new("patient_id".into(), ids),
                    Column::new("k".into(), rows.map(|k| k as u32).collect::<Vec<u32>>()),
                ],
            )
        };
        for (rows, groups) in [(0usize, 0usize), (6, 2), (7, 3)] {
            let path = d.path().join(format!("t{rows}.parquet"));
            write_batched(&path, rows, 3, frame).unwrap();
            let back = ParquetReader::new(std::fs::File::open(&path).unwrap())
                .finish()
                .unwrap();
            assert!(back.equals(&frame(0..rows).unwrap()), "{rows} rows");
            let meta =
                polars_parquet::read::read_metadata(&mut std::fs::File::open(&path).unwrap())
                    .unwrap();
            assert_eq!(meta.row_groups.len(), groups, "{rows} rows");
        }
    }
}
