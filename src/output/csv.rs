//! CSV: lists, the summary and equity tables, rejected rows.
//!
//! Pipeline position: one of `output`'s writers ([`super::TableWriter`]).

use std::fs::File;
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
        let mut f = File::create(path).map_err(io_err(path))?;
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(df)
            .map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        f.sync_all().map_err(io_err(path))
    }
}
