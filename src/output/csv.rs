//! CSV: lists, the aggregate tables, rejected rows.
//!
//! Pipeline position: one of `output`'s writers ([`super::TableWriter`]).
//!
//! The lists, which people open in Excel, start with a UTF-8 byte order mark ([`Csv::EXCEL`]):
//! without it Excel reads the file in the machine's legacy code page and garbles any character
//! outside ASCII. The aggregate tables and rejected rows are read by programs (the disclosure
//! auditor, pipelines) and hold ASCII labels, so they are written plain ([`Csv::PLAIN`]).

use std::io::Write;

use polars::prelude::*;

use super::TableWriter;

/// Comma-separated values with a header line, as polars writes them.
#[derive(Debug, Clone, Copy)]
pub struct Csv {
    /// Start the file with a UTF-8 byte order mark.
    pub bom: bool,
}

impl Csv {
    /// For Excel: UTF-8 with a byte order mark.
    pub const EXCEL: Csv = Csv { bom: true };
    /// For programs: UTF-8, no byte order mark.
    pub const PLAIN: Csv = Csv { bom: false };
}

impl TableWriter for Csv {
    fn extension(&self) -> &'static str {
        "csv"
    }

    fn encode(&self, w: &mut dyn Write, df: &mut DataFrame) -> PolarsResult<()> {
        CsvWriter::new(w)
            .include_header(true)
            .include_bom(self.bom)
            .finish(df)
    }
}
