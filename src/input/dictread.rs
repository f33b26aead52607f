//! The fast path of the input stage: reading dictionary-encoded string columns of a Parquet
//! file as their dictionary (a handful of distinct values per row group) plus integer keys,
//! instead of materialising one string per row.
//!
//! Pipeline position: inside `input`, part of the Parquet adaptor, beside the general path. Parquet writers
//! (pyarrow, polars, Spark) dictionary-encode low- and medium-cardinality string columns by
//! default, so for a typical extract every string in the events file is decoded once per row
//! group rather than once per row. When a column chunk is not fully dictionary-encoded, or a
//! column has another physical type, the caller falls back to the general reader, which gives the
//! same result more slowly.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::{PlSmallStr, PolarsError, PolarsResult};
use polars_arrow::array::{Array, BooleanArray, DictionaryArray, PrimitiveArray, Utf8ViewArray};
use polars_arrow::datatypes::{ArrowDataType, Field, IntegerType, DTYPE_CATEGORICAL_NEW};
use polars_buffer::Buffer;
use polars_parquet::parquet::page::CompressedPage;
use polars_parquet::read::{read_metadata, FileMetadata, PageReader, RowGroupMetadata};

/// A Parquet file mapped into memory with its footer, for row-group-wise decoding.
pub struct DictFile {
    bytes: Buffer<u8>,
    meta: FileMetadata,
}

/// One row group's dictionary-encoded string column: keys (null = missing) and distinct values.
pub struct DictColumn {
    /// One key per row, into `values`.
    pub keys: PrimitiveArray<u32>,
    /// Distinct values of the row group.
    pub values: Utf8ViewArray,
}

/// One row group's text column, dictionary-encoded or not.
pub enum TextColumn {
    /// Keys and distinct values.
    Dict(DictColumn),
    /// One value per row.
    Plain(Utf8ViewArray),
}

impl TextColumn {
    /// Row `k`'s value (`None` when null).
    pub fn get(&self, k: usize) -> Option<&str> {
        use polars_arrow::array::Array;
        match self {
            TextColumn::Dict(d) => d
                .keys
                .is_valid(k)
                .then(|| d.values.get(d.keys.value(k) as usize))
                .flatten(),
            TextColumn::Plain(v) => v.get(k),
        }
    }
}

/// One row group's 32-bit integer column (e.g. a date as days since 1970).
pub struct IntColumn {
    /// Values, with validity.
    pub values: PrimitiveArray<i32>,
}

fn other(msg: &str) -> PolarsError {
    PolarsError::ComputeError(msg.to_string().into())
}

impl DictFile {
    /// Map the whole file and read its footer. The file is mapped, not copied: its pages stay
    /// in the page cache and only the column chunks decoded are touched. A cohort file must
    /// not change while a run reads it (polars maps its inputs too): one cut short underneath
    /// the mapping stops the process (SIGBUS) instead of being reported as corrupt.
    pub fn open(path: &Path) -> PolarsResult<DictFile> {
        let file = std::fs::File::open(path).map_err(|e| other(&e.to_string()))?;
        // SAFETY: the mapping is read-only and private to this run; see above for the
        // file being modified underneath it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| other(&e.to_string()))?;
        let meta = read_metadata(&mut std::io::Cursor::new(&map[..]))?;
        Ok(DictFile {
            bytes: Buffer::from_owner(map),
            meta,
        })
    }

    /// The file's footer.
    pub(crate) fn meta(&self) -> &FileMetadata {
        &self.meta
    }

    /// Number of row groups.
    pub fn row_groups(&self) -> usize {
        self.meta.row_groups.len()
    }

    /// Rows of row group `rg`.
    pub fn rows(&self, rg: usize) -> usize {
        self.meta.row_groups[rg].num_rows()
    }

    /// The first row (0-based) of every row group, and the file's row count.
    pub fn row_starts(&self) -> (Vec<usize>, usize) {
        let mut starts = Vec::with_capacity(self.row_groups());
        let mut lo = 0;
        for rg in 0..self.row_groups() {
            starts.push(lo);
            lo += self.rows(rg);
        }
        (starts, lo)
    }

    fn decode(
        &self,
        rg: &RowGroupMetadata,
        column: &str,
        dtype: ArrowDataType,
        md: bool,
    ) -> PolarsResult<Box<dyn Array>> {
        let metas = rg
            .columns_under_root_iter(column)
            .ok_or_else(|| other("column not found"))?;
        let cols: Vec<_> = metas
            .map(|m| {
                let r = m.byte_range();
                (
                    m,
                    self.bytes.clone().sliced(r.start as usize..r.end as usize),
                )
            })
            .collect();
        let mut field = Field::new(PlSmallStr::from_str(column), dtype, true);
        if md {
            let mut meta = BTreeMap::new();
            meta.insert(
                PlSmallStr::from_static(DTYPE_CATEGORICAL_NEW),
                PlSmallStr::from_static(""),
            );
            field = field.with_metadata(meta);
        }
        let (mut arrays, _) =
            polars::io::parquet::read::_internal::to_deserializer(cols, field, None)?;
        if arrays.len() != 1 {
            return Err(other("expected one array per row group"));
        }
        Ok(arrays.remove(0))
    }

    /// Decode a string column of row group `rg` as keys + dictionary. Fails (and the caller falls
    /// back) when any page of the chunk is not dictionary-encoded.
    pub fn dict_column(&self, rg: usize, column: &str) -> PolarsResult<DictColumn> {
        let dtype = ArrowDataType::Dictionary(
            IntegerType::UInt32,
            Box::new(ArrowDataType::Utf8View),
            false,
        );
        let rgm = &self.meta.row_groups[rg];
        let array = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decode(rgm, column, dtype, true)
        }))
        .map_err(|_| other("dictionary decoding failed"))??;
        let dict = array
            .as_any()
            .downcast_ref::<DictionaryArray<u32>>()
            .ok_or_else(|| other("not a dictionary array"))?;
        let values = dict
            .values()
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .ok_or_else(|| other("dictionary values are not strings"))?
            .clone();
        Ok(DictColumn {
            keys: dict.keys().clone(),
            values,
        })
    }

    /// Decode a Date32 column of row group `rg`.
    pub fn date_column(&self, rg: usize, column: &str) -> PolarsResult<IntColumn> {
        let rgm = &self.meta.row_groups[rg];
        let array = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decode(rgm, column, ArrowDataType::Date32, false)
        }))
        .map_err(|_| other("date decoding failed"))??;
        let values = array
            .as_any()
            .downcast_ref::<PrimitiveArray<i32>>()
            .ok_or_else(|| other("not an i32 array"))?
            .clone();
        Ok(IntColumn { values })
    }
}

impl DictFile {
    /// A text column of row group `rg`, as keys into its dictionary when every page has one
    /// (the values are then decoded once per distinct value), else as [`DictFile::text_column`].
    pub fn any_text_column(&self, rg: usize, column: &str) -> PolarsResult<TextColumn> {
        match self.dict_column(rg, column) {
            Ok(d) => Ok(TextColumn::Dict(d)),
            Err(_) => Ok(TextColumn::Plain(self.text_column(rg, column)?)),
        }
    }

    /// Decode a column of row group `rg` as text, whatever its encoding: strings as they are,
    /// integers as their decimal text (ids held as bigint).
    pub fn text_column(&self, rg: usize, column: &str) -> PolarsResult<Utf8ViewArray> {
        let rgm = &self.meta.row_groups[rg];
        let decode = |dtype: ArrowDataType| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.decode(rgm, column, dtype, false)
            }))
            .map_err(|_| other("text decoding failed"))?
        };
        if let Ok(a) = decode(ArrowDataType::Utf8View) {
            if let Some(v) = a.as_any().downcast_ref::<Utf8ViewArray>() {
                return Ok(v.clone());
            }
        }
        let ints = self.int_column(rg, column)?;
        let text: Vec<Option<String>> = ints.iter().map(|v| v.map(|x| x.to_string())).collect();
        Ok(Utf8ViewArray::from_slice(&text))
    }

    /// Decode an integer column of row group `rg` (32- or 64-bit) as `i64`.
    pub fn int_column(&self, rg: usize, column: &str) -> PolarsResult<PrimitiveArray<i64>> {
        let rgm = &self.meta.row_groups[rg];
        let decode = |dtype: ArrowDataType| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.decode(rgm, column, dtype, false)
            }))
            .map_err(|_| other("integer decoding failed"))?
        };
        if let Ok(a) = decode(ArrowDataType::Int64) {
            if let Some(v) = a.as_any().downcast_ref::<PrimitiveArray<i64>>() {
                return Ok(v.clone());
            }
        }
        let a = decode(ArrowDataType::Int32)?;
        let v = a
            .as_any()
            .downcast_ref::<PrimitiveArray<i32>>()
            .ok_or_else(|| other("not an integer array"))?;
        Ok(v.iter().map(|x| x.map(|x| i64::from(*x))).collect())
    }

    /// Decode a boolean column of row group `rg`.
    pub fn bool_column(&self, rg: usize, column: &str) -> PolarsResult<BooleanArray> {
        let rgm = &self.meta.row_groups[rg];
        let array = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decode(rgm, column, ArrowDataType::Boolean, false)
        }))
        .map_err(|_| other("boolean decoding failed"))??;
        Ok(array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| other("not a boolean array"))?
            .clone())
    }
}

/// Largest page strata accepts, compressed or not (writers use about 1 MB).
const MAX_PAGE_BYTES: usize = 256 << 20;
/// Most rows a file may claim (patient and event indices are 32-bit).
const MAX_ROWS: u64 = u32::MAX as u64;

impl DictFile {
    /// Check the footer and every page header against each other before any decoder trusts
    /// them: a corrupt or hostile file can claim more values or bytes than it holds, and a
    /// decoder that believes it asks for exabytes of memory and aborts the process (found by
    /// fuzzing; `fuzz/artifacts-found/`). Reads headers only, not page data.
    pub fn check(&self) -> Result<(), String> {
        let total: u64 = self
            .meta
            .row_groups
            .iter()
            .map(|r| r.num_rows() as u64)
            .sum();
        if total > MAX_ROWS {
            return Err(format!(
                "the footer claims {total} rows, more than strata supports"
            ));
        }
        let len = self.bytes.len() as u64;
        for (g, rg) in self.meta.row_groups.iter().enumerate() {
            let rows = rg.num_rows();
            for col in rg.parquet_columns() {
                let name = col.descriptor().path_in_schema.join(".");
                let r = col.byte_range();
                if r.start > r.end || r.end > len {
                    return Err(format!(
                        "row group {g}, column {name}: data lies outside the file (truncated?)"
                    ));
                }
                if col.num_values() < 0 || col.num_values() as u64 > rows as u64 {
                    return Err(format!(
                        "row group {g}, column {name}: {} values claimed for {rows} rows",
                        col.num_values()
                    ));
                }
                let chunk = self.bytes.clone().sliced(r.start as usize..r.end as usize);
                let pages =
                    PageReader::new(std::io::Cursor::new(chunk), col, vec![], MAX_PAGE_BYTES);
                let mut seen = 0usize;
                for page in pages {
                    let page = page.map_err(|e| {
                        format!("row group {g}, column {name}: unreadable page header: {e}")
                    })?;
                    let (values, bytes) = match &page {
                        CompressedPage::Data(d) => (d.num_values(), d.uncompressed_size()),
                        CompressedPage::Dict(_) => (0, 0),
                    };
                    seen = seen.saturating_add(values);
                    if seen > rows || bytes > MAX_PAGE_BYTES {
                        return Err(format!(
                            "row group {g}, column {name}: a page claims more values or bytes than the row group holds"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl DictFile {
    /// Map a file and check its footer and page headers (see [`DictFile::check`]).
    pub fn open_checked(path: &Path) -> Result<DictFile, String> {
        let f = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| DictFile::open(path)))
            .map_err(|_| "the footer could not be decoded".to_string())?
            .map_err(|e| e.to_string())?;
        f.check()?;
        Ok(f)
    }
}
