//! CSV: lists, the summary and equity tables, rejected rows.
//!
//! Pipeline position: one of `output`'s writers ([`super::TableWriter`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use polars::prelude::*;

use super::TableWriter;
use crate::publish::{io_err, OutputError};

/// Comma-separated values with a header line, as polars writes them.
#[derive(Debug, Clone, Copy)]
pub struct Csv;

impl TableWriter for Csv {
    fn extension(&self) -> &'static str {
        "csv"
    }

    fn write(&self, path: &Path, df: &mut DataFrame) -> Result<(), OutputError> {
        // Buffered: the encoders issue many small writes (185,000 syscalls for a 1.2M run).
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io_err(path))?);
        CsvWriter::new(&mut w)
            .include_header(true)
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
