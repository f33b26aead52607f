//! Tables as polars frames: the schema check every adaptor applies, the column accessors of the
//! general decoding path, and the in-memory adaptor (frames or Arrow record batches handed over
//! by Python, Spark or a test, checked exactly as files are).
//!
//! Pipeline position: part of the first stage, `input`. A frame here holds Arrow memory; the
//! physical variations the contract accepts (integer ids, timestamps, string views) are
//! normalised here, once.

use polars::prelude::*;

use super::checker::Checker;
use super::contract::ColumnSpec;
use super::{LoadOptions, Opened, Source};
use crate::privacy::looks_like_identifier;

/// A table whose schema passed, as a frame of the columns strata reads.
pub(crate) struct Table {
    /// Contract file name (used in every message).
    pub(crate) name: &'static str,
    /// The columns strata reads.
    pub(crate) df: DataFrame,
    /// Which optional columns are there.
    pub(crate) present: Vec<&'static str>,
}

/// Check a table's columns against the contract: direct identifiers, required columns, types.
/// Returns the used columns present and their types, or `None` with the problems recorded.
pub(crate) fn check_schema(
    name: &'static str,
    fields: &[(String, DataType)],
    spec: &[ColumnSpec],
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<(Vec<&'static str>, Vec<DataType>)> {
    let mut present = Vec::new();
    let mut types = Vec::new();
    let mut ok = true;
    if !opts.allow_identifiers {
        for (n, _) in fields {
            if looks_like_identifier(n) {
                ck.file_error(
                    name,
                    Some(n),
                    "column looks like a direct identifier; strata takes pseudonymised data only (remove it, or pass --allow-identifiers if it is not identifying)".into(),
                );
                ok = false;
            }
        }
    }
    for c in spec {
        match fields.iter().find(|(n, _)| n == c.name) {
            None if c.required => {
                ck.file_error(name, Some(c.name), "required column is missing".into());
                ok = false;
            }
            None => {}
            Some((_, dt)) if !c.kind.accepts(dt) => {
                ck.file_error(
                    name,
                    Some(c.name),
                    format!("has type {dt}, expected {}", c.kind.describe()),
                );
                ok = false;
            }
            Some((_, dt)) if c.used => {
                present.push(c.name);
                types.push(dt.clone());
            }
            Some(_) => {}
        }
    }
    ok.then_some((present, types))
}

/// The in-memory adaptor: check a frame's schema like a file's; its rows are then decoded on the
/// general path.
pub(crate) fn open(
    name: &'static str,
    df: DataFrame,
    spec: &'static [ColumnSpec],
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<Opened> {
    let fields: Vec<(String, DataType)> = df
        .schema()
        .iter()
        .map(|(n, dt)| (n.to_string(), dt.clone()))
        .collect();
    let (present, types) = check_schema(name, &fields, spec, opts, ck)?;
    // The contract's columns only; those the main decoders skip stay for `links`' own pass.
    let keep: Vec<&str> = spec
        .iter()
        .map(|c| c.name)
        .filter(|n| fields.iter().any(|(f, _)| f == n))
        .collect();
    let df = match df.select(keep) {
        Ok(df) => df,
        Err(e) => {
            polars_err(ck, name, e);
            return None;
        }
    };
    Some(Opened {
        name,
        present,
        types,
        source: Source::Frame(df),
    })
}

fn col_series(df: &DataFrame, name: &str) -> PolarsResult<Series> {
    Ok(df.column(name)?.as_materialized_series().clone())
}

/// A column as text: strings as they are, integers as decimal text.
pub(crate) fn text_col(df: &DataFrame, name: &str) -> PolarsResult<StringChunked> {
    let s = col_series(df, name)?;
    Ok(s.cast(&DataType::String)?.str()?.clone())
}

/// A date or timestamp column as days since 1970.
pub(crate) fn day_col(df: &DataFrame, name: &str) -> PolarsResult<Int32Chunked> {
    let s = col_series(df, name)?;
    Ok(s.cast(&DataType::Date)?
        .cast(&DataType::Int32)?
        .i32()?
        .clone())
}

/// A boolean column.
pub(crate) fn bool_col(df: &DataFrame, name: &str) -> PolarsResult<BooleanChunked> {
    Ok(col_series(df, name)?.bool()?.clone())
}

/// An integer column as `i64`.
pub(crate) fn int_col(df: &DataFrame, name: &str) -> PolarsResult<Int64Chunked> {
    let s = col_series(df, name)?;
    Ok(s.cast(&DataType::Int64)?.i64()?.clone())
}

/// A frame that polars could not decode: a file-level error.
pub(crate) fn polars_err(ck: &mut Checker, file: &str, e: PolarsError) {
    ck.file_error(file, None, format!("cannot decode: {e}"));
}

/// A frame from Arrow record batches (all with the first batch's schema), without copying the
/// buffers: each column is the batches' arrays as chunks. No batches give an empty frame, which
/// the schema check then refuses for its missing columns.
pub fn from_batches(
    batches: Vec<polars_arrow::record_batch::RecordBatch>,
) -> PolarsResult<DataFrame> {
    let Some(first) = batches.first() else {
        return Ok(DataFrame::empty());
    };
    let schema = first.schema().clone();
    let height = batches.iter().map(|b| b.height()).sum();
    let mut arrays: Vec<Vec<ArrayRef>> = vec![Vec::new(); schema.len()];
    for (i, b) in batches.into_iter().enumerate() {
        if b.schema() != &schema {
            polars_bail!(SchemaMismatch: "record batch {} has a different schema from the first", i + 1);
        }
        for (col, a) in arrays.iter_mut().zip(b.into_arrays()) {
            col.push(a);
        }
    }
    let columns = schema
        .iter_values()
        .zip(arrays)
        .map(|(field, arrs)| Series::try_from((field, arrs)).map(Column::from))
        .collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new(height, columns)
}
