//! The Parquet adaptor: opening a cohort file, checking its magic bytes, footer and page headers
//! before any decoder trusts them, and reading its schema; the rows are then decoded on the
//! dictionary path ([`super::dictread`]) where the file allows it, else as a polars frame.
//!
//! Pipeline position: part of the first stage, `input`. It hands an [`Opened`] table to the
//! shared decoders; it knows nothing of patients, codes or reject rules.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use polars::prelude::*;

use super::checker::Checker;
use super::contract::ColumnSpec;
use super::dictread::DictFile;
use super::frame::{check_schema, Table};
use super::{LoadOptions, Opened, Source};

/// Open one file of a cohort folder: magic bytes, footer, page headers and schema. `None` (with
/// the problem recorded) when any of them fails.
pub(crate) fn open(
    dir: &Path,
    name: &'static str,
    spec: &'static [ColumnSpec],
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<Opened> {
    let path = dir.join(name);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ck.file_error(name, None, "file is missing".into());
            return None;
        }
        Err(e) => {
            ck.file_error(name, None, format!("cannot open: {e}"));
            return None;
        }
    };
    if let Err(msg) = check_magic(&mut file) {
        ck.file_error(name, None, msg);
        return None;
    }
    // Footer and page headers are checked before any decoder trusts them; the mapping made for
    // it is kept for the dictionary path.
    let dict_file = match DictFile::open_checked(&path) {
        Ok(f) => f,
        Err(msg) => {
            ck.file_error(
                name,
                None,
                format!("not a readable Parquet file (corrupt or truncated): {msg}"),
            );
            return None;
        }
    };
    let mut reader = ParquetReader::new(file);
    // Polars may panic on footers it cannot represent (e.g. decimal columns without the decimal
    // feature): turn any panic into an error message.
    let schema = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.schema().map(|schema| {
            schema
                .iter()
                .map(|(n, f)| (n.to_string(), DataType::from_arrow_field(f)))
                .collect::<Vec<(String, DataType)>>()
        })
    }))
    .unwrap_or_else(|_| {
        Err(PolarsError::ComputeError(
            "the file's schema uses a type strata cannot read".into(),
        ))
    });
    let fields = match schema {
        Ok(s) => s,
        Err(e) => {
            ck.file_error(
                name,
                None,
                format!("not a readable Parquet file (corrupt or truncated): {e}"),
            );
            return None;
        }
    };
    let (present, types) = check_schema(name, &fields, spec, opts, ck)?;
    Some(Opened {
        name,
        present,
        types,
        source: Source::Parquet {
            path,
            dict: dict_file,
        },
    })
}

/// Read the contract's columns of an opened file as a frame (the general path).
pub(crate) fn load(
    name: &'static str,
    path: &Path,
    present: Vec<&'static str>,
    ck: &mut Checker,
) -> Option<Table> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            ck.file_error(name, None, format!("cannot open: {e}"));
            return None;
        }
    };
    let df = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ParquetReader::new(file)
            .with_columns(Some(present.iter().map(|s| s.to_string()).collect()))
            .finish()
    }))
    .unwrap_or_else(|_| {
        Err(PolarsError::ComputeError(
            "the Parquet decoder failed on this file".into(),
        ))
    });
    match df {
        Ok(df) => Some(Table { name, df, present }),
        Err(e) => {
            ck.file_error(
                name,
                None,
                format!("not a readable Parquet file (corrupt or truncated): {e}"),
            );
            None
        }
    }
}

/// Rows in a Parquet file from its footer, without reading data.
pub(crate) fn footer_rows(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    ParquetReader::new(f).num_rows().ok().map(|n| n as u64)
}

/// Parquet files start and end with `PAR1`; say what the file looks like when they do not.
pub(crate) fn check_magic(file: &mut File) -> Result<(), String> {
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if len == 0 {
        return Err("file is empty (0 bytes)".into());
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    let n = file
        .read(&mut head)
        .map_err(|e| format!("cannot read: {e}"))?;
    if n < 4 || &head != b"PAR1" {
        let looks_text = head[..n]
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        return Err(if looks_text {
            "not a Parquet file: it starts with text (a CSV file renamed to .parquet?)".into()
        } else {
            "not a Parquet file: it does not start with the PAR1 magic bytes".into()
        });
    }
    if len < 12 {
        return Err(
            "not a readable Parquet file: truncated (shorter than a Parquet footer)".into(),
        );
    }
    file.seek(SeekFrom::End(-4))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| format!("cannot read: {e}"))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read: {e}"))?;
    if &tail != b"PAR1" {
        return Err("not a readable Parquet file: truncated (no PAR1 footer at the end)".into());
    }
    Ok(())
}
