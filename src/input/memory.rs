//! The memory check: an estimate, from the files' footers alone, of what loading and scoring a
//! cohort takes, against what the machine has, so a run too large fails in a second with advice
//! rather than being killed by the operating system after minutes.
//!
//! The estimate follows the path each file will be read on (`input::decode_file`): a file whose
//! string columns are dictionary-encoded in every row group (the footer records a dictionary page
//! per column chunk) goes through the dictionary path, which holds the file's bytes and a few
//! integers per row; any other file goes through the general path, which materialises strings.
//!
//! Pipeline position: before the first stage reads any data.

use std::fs::File;
use std::path::Path;

use polars::prelude::DataType;
use polars_parquet::parquet::schema::types::PhysicalType;
use polars_parquet::read::{read_metadata, FileMetadata};

use super::contract::{ENCOUNTERS_FILE, EVENTS_FILE, MEDICATIONS_FILE, PATIENTS_FILE};
use super::{ENCOUNTER_DICT_TYPES, EVENT_DICT_TYPES};

/// Bytes of memory a load needs per event or encounter row read on the general (non-dictionary)
/// path, and per patient: `strata score` peaked at 6.61 GB for 63.6 million rows and 1.2 million
/// patients in files written by pyarrow without dictionaries (BENCHMARKS.md, "Reading faster and
/// keeping freed memory"; 96 bytes a row besides the patients), rounded up. (72 bytes, from an
/// earlier 4.2 GB measurement on other files, was too few for these.)
pub const BYTES_PER_EVENT: u64 = 104;
/// See [`BYTES_PER_EVENT`].
pub const BYTES_PER_PATIENT: u64 = 400;
/// Bytes per event or encounter row read on the dictionary path, on top of the file's own bytes
/// (mapped whole, see `dictread::DictFile`: the pages decoded are resident while they are read).
/// The dictionary path keeps no string per row: a decoded event is its patient index, day and
/// code id (12 bytes), and an encounter 14 bytes, each written once into file-wide columns and
/// compacted in place (`layout::decode_event_parts`, `layout::decode_encounter_parts`; a file
/// not in patient order is then permuted into it, a copy of the kept columns); the few row
/// groups being decoded add 16 bytes a row each. Measured peaks of `strata score`
/// (BENCHMARKS.md, "Reading faster"; the allocator keeps freed memory, `crate::allocator`), with
/// this estimate: 1.2 million patients, 63.7 million rows, 1.29-1.33 GB against 1.73 GB; 5.8
/// million patients, 307.7 million rows, 6.04-6.24 GB against 8.36 GB.
pub const DICT_BYTES_PER_EVENT: u64 = 14;

/// The path a file will be read on, as its footer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReadPath {
    /// Keys and per-row-group dictionaries (`dictread`).
    Dictionary,
    /// A polars frame with one string per row.
    General,
}

/// One file of the estimate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEstimate {
    /// Contract file name.
    pub file: &'static str,
    /// Rows, from the footer.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// The path it will be read on.
    pub path: ReadPath,
    /// Bytes this file adds to the estimate.
    pub needed: u64,
}

/// What loading a cohort folder is estimated to take, file by file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemoryEstimate {
    /// The files present (patients, events, encounters, medications).
    pub files: Vec<FileEstimate>,
    /// Total bytes.
    pub needed: u64,
}

/// The columns (and types) a file's dictionary path reads.
type DictTypes = &'static [(&'static str, DataType)];

/// Memory available to this process in bytes (Linux `MemAvailable`, or the cgroup limit when
/// lower); `None` when it cannot be told.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let avail = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?
        * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(cgroup.map_or(avail, |c| c.min(avail)))
}

/// Estimated bytes needed to load and score the cohort in `dir`, from the files' footers.
pub fn estimate_memory(dir: &Path) -> u64 {
    memory_estimate(dir).needed
}

/// The estimate of [`estimate_memory`], file by file. A file that is missing or whose footer
/// cannot be read counts as empty: the load then reports the problem itself.
pub fn memory_estimate(dir: &Path) -> MemoryEstimate {
    let mut files = Vec::new();
    let tables: [(&'static str, Option<DictTypes>); 4] = [
        (PATIENTS_FILE, None),
        (EVENTS_FILE, Some(EVENT_DICT_TYPES)),
        (ENCOUNTERS_FILE, Some(ENCOUNTER_DICT_TYPES)),
        (MEDICATIONS_FILE, None),
    ];
    for (file, dict_types) in tables {
        let path = dir.join(file);
        let Some((rows, bytes, dictionary)) = footer(&path, dict_types.unwrap_or(&[])) else {
            continue;
        };
        let (path, needed) = if file == PATIENTS_FILE {
            (ReadPath::General, rows * BYTES_PER_PATIENT)
        } else if dictionary && dict_types.is_some() {
            (ReadPath::Dictionary, rows * DICT_BYTES_PER_EVENT + bytes)
        } else {
            (ReadPath::General, rows * BYTES_PER_EVENT)
        };
        files.push(FileEstimate {
            file,
            rows,
            bytes,
            path,
            needed,
        });
    }
    let needed = files.iter().map(|f| f.needed).sum();
    MemoryEstimate { files, needed }
}

/// Rows and size of a Parquet file, and whether the dictionary path can read it: every row
/// group holds each of `dict_types`' columns, string columns as byte arrays with a dictionary
/// page, date columns as 32-bit integers. Reads the footer only.
///
/// A writer that starts a column chunk with a dictionary and falls back to plain pages within
/// it (pyarrow does when a chunk's dictionary passes 1 MB) cannot be told apart from the footer
/// as polars reads it; the reader then falls back to the general path for that file, and the
/// estimate for it is low. polars, Spark and pyarrow with ordinary extracts write whole chunks
/// one way or the other.
fn footer(path: &Path, dict_types: &[(&str, DataType)]) -> Option<(u64, u64, bool)> {
    let mut f = File::open(path).ok()?;
    let bytes = f.metadata().ok()?.len();
    // The footer decoder may panic on a corrupt file: the load reports it, the estimate skips it.
    let meta = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_metadata(&mut f)))
        .ok()?
        .ok()?;
    let rows = meta.num_rows as u64;
    Some((rows, bytes, dictionary_encoded(&meta, dict_types)))
}

/// Whether a file's footer lets the dictionary path read it: every row group holds each of
/// `dict_types`' columns, string columns as byte arrays with a dictionary page, date columns as
/// 32-bit integers. The reader asks the same before decoding two files at once.
pub(crate) fn dictionary_encoded(meta: &FileMetadata, dict_types: &[(&str, DataType)]) -> bool {
    meta.row_groups.iter().all(|rg| {
        dict_types.iter().all(|(name, dtype)| {
            let Some(mut chunks) = rg.columns_under_root_iter(name) else {
                return false;
            };
            match chunks.next() {
                Some(c) if *dtype == DataType::String => {
                    c.physical_type() == PhysicalType::ByteArray
                        && c.dictionary_page_offset().is_some()
                }
                Some(c) => c.physical_type() == PhysicalType::Int32,
                None => false,
            }
        })
    })
}
