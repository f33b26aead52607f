//! The cohort contract: reading `patients.parquet`, `events.parquet` and `encounters.parquet`,
//! checking them, normalising them once at the edge, and laying them out grouped by patient.
//!
//! Pipeline position: first stage. Input is a folder of Parquet files; output is a [`Cohort`]
//! (columnar, one offsets array per table over parallel columns) plus a [`ValidationReport`].
//! After this stage there are no strings in the per-event data: patients are indices, codes are
//! `u32` ids into [`CodeDict`], dates are days since 1970.
//!
//! Rules (documented in README.md, "The cohort contract"):
//! - a structural problem (missing or unreadable file, missing column, wrong type, a bad patient
//!   row, direct identifiers) is an **error**: the cohort is refused;
//! - a bad event or encounter row (null or impossible value, unknown patient, unknown code
//!   system, malformed code) is **rejected**: counted, kept in [`Cohort::rejects`] with file, row
//!   and reason, and written beside the outputs. More than `max_reject_fraction` of a file
//!   rejected is an error;
//! - codes that no code list uses are counted, never an error.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use crate::codes::{normalise, CodeDict, CodeSystem};
use crate::date;
pub use crate::privacy::{is_nhs_number, looks_like_identifier};

/// The three files of a cohort folder.
pub const PATIENTS_FILE: &str = "patients.parquet";
/// Coded clinical events.
pub const EVENTS_FILE: &str = "events.parquet";
/// Hospital encounters.
pub const ENCOUNTERS_FILE: &str = "encounters.parquet";

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Sex as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
    /// Unknown or not stated.
    U,
}

impl Sex {
    /// One-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Sex::F => "F",
            Sex::M => "M",
            Sex::U => "U",
        }
    }
}

/// Hospital setting of an encounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setting {
    /// Admitted patient care.
    Inpatient,
    /// Accident and emergency attendance.
    Ae,
    /// Outpatient appointment.
    Outpatient,
}

impl Setting {
    /// Parse a `setting` value (case-insensitive; `a&e`, `a_and_e`, `ed` accepted for `ae`).
    pub fn parse(raw: &str) -> Option<Setting> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "inpatient" | "ip" | "apc" => Some(Setting::Inpatient),
            "ae" | "a&e" | "a_and_e" | "ed" | "ecds" => Some(Setting::Ae),
            "outpatient" | "op" => Some(Setting::Outpatient),
            _ => None,
        }
    }

    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Inpatient => "inpatient",
            Setting::Ae => "ae",
            Setting::Outpatient => "outpatient",
        }
    }
}

/// Registered patients, one row each, sorted by pseudonym (so every output order that ends in
/// "then by patient" is the index order).
#[derive(Debug, Clone, Default)]
pub struct Patients {
    /// Pseudonyms, ascending, unique.
    pub id: Vec<String>,
    /// Date of birth (days).
    pub birth: Vec<i32>,
    /// Sex.
    pub sex: Vec<Sex>,
    /// Index into `practices`.
    pub practice: Vec<u32>,
    /// Distinct practice codes, sorted.
    pub practices: Vec<String>,
    /// Index into `pcns`.
    pub pcn: Vec<u32>,
    /// Distinct PCN codes, sorted.
    pub pcns: Vec<String>,
    /// IMD decile 1 (most deprived) to 10; 0 when not recorded.
    pub imd_decile: Vec<u8>,
    /// Index into `ethnicities`.
    pub ethnicity: Vec<u32>,
    /// Distinct ethnicity groups, sorted ("Unknown" when not recorded).
    pub ethnicities: Vec<String>,
    /// Lives in a care home (false when not recorded).
    pub care_home: Vec<bool>,
    /// Date of death (days), `i32::MAX` when alive.
    pub death: Vec<i32>,
}

impl Patients {
    /// Number of patients.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// Coded events grouped by patient: patient `p`'s events are `offsets[p]..offsets[p + 1]`.
/// Order within a patient is not significant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    /// `patients.len() + 1` offsets.
    pub offsets: Vec<u64>,
    /// Code id into [`CodeDict`].
    pub code: Vec<u32>,
    /// Event date (days).
    pub day: Vec<i32>,
}

/// Hospital encounters grouped by patient, like [`Events`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encounters {
    /// `patients.len() + 1` offsets.
    pub offsets: Vec<u64>,
    /// Setting.
    pub setting: Vec<Setting>,
    /// Start date (days).
    pub start: Vec<i32>,
    /// End date (days); equals `start` when not recorded.
    pub end: Vec<i32>,
    /// Emergency (non-elective) admission or attendance.
    pub emergency: Vec<bool>,
}

/// A cohort read, checked and laid out for scoring.
#[derive(Debug, Clone, Default)]
pub struct Cohort {
    /// The folder read.
    pub dir: PathBuf,
    /// Patients.
    pub patients: Patients,
    /// Events by patient.
    pub events: Events,
    /// Encounters by patient.
    pub encounters: Encounters,
    /// Interned codes.
    pub codes: CodeDict,
    /// What was checked and found.
    pub report: ValidationReport,
    /// Rows rejected, in file and row order.
    pub rejects: Vec<Reject>,
    /// How each large file was decoded: (file, "dictionary" or "general").
    pub read_paths: Vec<(String, String)>,
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The cohort is refused.
    Error,
    /// Rows were rejected or something looks odd; the run goes on.
    Warning,
}

/// One finding: where, what, how often, and the first rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// File name within the cohort folder.
    pub file: String,
    /// Column, when the problem is about one.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
    /// Rows affected (0 for file-level problems).
    pub count: u64,
    /// The first affected rows, 1-based data-row numbers.
    pub first_rows: Vec<u64>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}", self.file)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        write!(f, ": {}", self.message)?;
        if self.count > 0 {
            let rows: Vec<String> = self.first_rows.iter().map(|r| r.to_string()).collect();
            let s = if self.count == 1 { "" } else { "s" };
            write!(f, " ({} row{s}", self.count)?;
            if !rows.is_empty() {
                let more = if self.count as usize > rows.len() {
                    ", ..."
                } else {
                    ""
                };
                let label = if rows.len() == 1 { "row" } else { "rows" };
                write!(f, "; {label} {}{more}", rows.join(", "))?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Rows read and rejected for one file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FileCounts {
    /// File name.
    pub file: String,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
}

/// Everything validation found, for `strata validate` and the run manifest.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ValidationReport {
    /// Findings, errors first, then in file order.
    pub problems: Vec<Problem>,
    /// Per-file row counts.
    pub files: Vec<FileCounts>,
    /// Distinct codes seen, per code system.
    pub distinct_codes: Vec<(String, u64)>,
}

impl ValidationReport {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors()
    }

    /// True when the cohort can be scored.
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        for c in &self.files {
            writeln!(f, "{}: {} rows, {} rejected", c.file, c.rows, c.rejected)?;
        }
        write!(
            f,
            "{} error(s), {} warning(s)",
            self.errors(),
            self.warnings()
        )
    }
}

/// A rejected row: file, 1-based row, column and reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reject {
    /// File name.
    pub file: &'static str,
    /// 1-based data row.
    pub row: u64,
    /// Column at fault.
    pub column: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Errors of the input stage.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The cohort failed validation; the report says where and why.
    #[error("cohort {dir} is not valid:\n{report}")]
    Invalid {
        /// The folder.
        dir: PathBuf,
        /// The findings.
        report: Box<ValidationReport>,
    },
    /// The cohort would not fit in memory.
    #[error("cohort {dir} needs about {needed_mb} MB to load but only {available_mb} MB of memory is available; run on a larger machine or split the cohort by PCN and score the parts (see README, 'Resource limits')")]
    TooLarge {
        /// The folder.
        dir: PathBuf,
        /// Estimated need.
        needed_mb: u64,
        /// What the machine has.
        available_mb: u64,
    },
}

/// Settings of a load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// "Today": dates after it are impossible.
    pub today: i32,
    /// Accept columns that look like direct identifiers and day-precise birth dates.
    pub allow_identifiers: bool,
    /// A file with more than this fraction of its rows rejected is an error.
    pub max_reject_fraction: f64,
    /// Skip the memory estimate.
    pub skip_memory_check: bool,
    /// Memory the run may use, in bytes (default: what the machine has available).
    pub memory_limit: Option<u64>,
    /// Use the dictionary fast path where the file allows it (default). Off forces the general
    /// path, for benchmarking it and for checking that both give the same cohort.
    pub dictionary_path: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            today: date::today(),
            allow_identifiers: false,
            max_reject_fraction: 0.01,
            skip_memory_check: false,
            memory_limit: None,
            dictionary_path: true,
        }
    }
}

const MAX_ROWS_SHOWN: usize = 5;

/// Collects problems and rejects while reading.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    files: Vec<FileCounts>,
    rejects: Vec<Reject>,
    paths: Vec<(String, String)>,
}

impl Checker {
    fn file_error(&mut self, file: &str, column: Option<&str>, message: String) {
        self.problems.push(Problem {
            severity: Severity::Error,
            file: file.to_string(),
            column: column.map(|c| c.to_string()),
            message,
            count: 0,
            first_rows: vec![],
        });
    }

    fn rows(&mut self, sev: Severity, file: &str, column: &str, message: &str, rows: &[u64]) {
        if rows.is_empty() {
            return;
        }
        self.problems.push(Problem {
            severity: sev,
            file: file.to_string(),
            column: Some(column.to_string()),
            message: message.to_string(),
            count: rows.len() as u64,
            first_rows: rows.iter().take(MAX_ROWS_SHOWN).copied().collect(),
        });
    }
}

/// Columns of the contract: name, required, accepted types (for messages).
struct ColumnSpec {
    name: &'static str,
    required: bool,
    kind: Kind,
    /// Read by strata (others are only type-checked).
    used: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// String, or an integer type (cast to its decimal text).
    Id,
    /// String.
    Text,
    /// Date, or Datetime (truncated to the date).
    Date,
    /// Any integer type.
    Int,
    /// Any number.
    Number,
    /// Boolean.
    Bool,
}

impl Kind {
    fn accepts(self, dt: &DataType) -> bool {
        let int = matches!(
            dt,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
        );
        match self {
            Kind::Id => int || matches!(dt, DataType::String),
            Kind::Text => matches!(dt, DataType::String),
            Kind::Date => matches!(dt, DataType::Date | DataType::Datetime(_, _)),
            Kind::Int => int,
            Kind::Number => int || matches!(dt, DataType::Float32 | DataType::Float64),
            Kind::Bool => matches!(dt, DataType::Boolean),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Id => "string or integer",
            Kind::Text => "string",
            Kind::Date => "date or timestamp",
            Kind::Int => "integer",
            Kind::Number => "number",
            Kind::Bool => "boolean",
        }
    }
}

const fn req(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec {
        name,
        required: true,
        kind,
        used: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec {
        name,
        required: false,
        kind,
        used: true,
    }
}

/// A column checked against the contract but not read (kept in the contract for later stages).
const fn checked(spec: ColumnSpec) -> ColumnSpec {
    ColumnSpec {
        used: false,
        ..spec
    }
}

const PATIENT_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    req("birth_date", Kind::Date),
    req("sex", Kind::Text),
    req("practice_code", Kind::Text),
    req("pcn_code", Kind::Text),
    opt("imd_decile", Kind::Int),
    opt("ethnicity_group", Kind::Text),
    opt("care_home", Kind::Bool),
    opt("death_date", Kind::Date),
];

const EVENT_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    req("event_date", Kind::Date),
    req("code_system", Kind::Text),
    req("code", Kind::Text),
    checked(opt("value", Kind::Number)),
    checked(opt("encounter_id", Kind::Id)),
];

const ENCOUNTER_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    checked(req("encounter_id", Kind::Id)),
    req("setting", Kind::Text),
    req("start_date", Kind::Date),
    req("end_date", Kind::Date),
    req("emergency", Kind::Bool),
];

/// A schema-checked, opened Parquet file.
struct Table {
    name: &'static str,
    df: DataFrame,
    present: Vec<&'static str>,
}

/// Open, check magic bytes and schema, and read the contract's columns of one file.
fn open_table(
    dir: &Path,
    name: &'static str,
    spec: &[ColumnSpec],
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
    // Footer and page headers are checked before any decoder trusts them; the file read for it
    // is kept for the dictionary path, so it is read from disk once.
    let dict_file = match crate::dictread::DictFile::open_checked(&path) {
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
    let mut present = Vec::new();
    let mut types = Vec::new();
    let mut ok = true;
    if !opts.allow_identifiers {
        for (n, _) in &fields {
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
    if !ok {
        return None;
    }
    Some(Opened {
        name,
        path,
        present,
        types,
        dict_file,
    })
}

/// A file whose magic bytes and schema passed; its data not yet read.
struct Opened {
    name: &'static str,
    path: PathBuf,
    present: Vec<&'static str>,
    /// Polars types of the present columns, in `present` order.
    types: Vec<DataType>,
    /// The file in memory, checked, for the dictionary path.
    dict_file: crate::dictread::DictFile,
}

/// Read the contract's columns of an opened file.
fn load_table(o: Opened, ck: &mut Checker) -> Option<Table> {
    let Opened {
        name,
        path,
        present,
        ..
    } = o;
    let file = match File::open(&path) {
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

/// Parquet files start and end with `PAR1`; say what the file looks like when they do not.
fn check_magic(file: &mut File) -> Result<(), String> {
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

fn col_series(df: &DataFrame, name: &str) -> PolarsResult<Series> {
    Ok(df.column(name)?.as_materialized_series().clone())
}

/// A column as text: strings as they are, integers as decimal text.
fn text_col(df: &DataFrame, name: &str) -> PolarsResult<StringChunked> {
    let s = col_series(df, name)?;
    Ok(s.cast(&DataType::String)?.str()?.clone())
}

/// A date or timestamp column as days since 1970.
fn day_col(df: &DataFrame, name: &str) -> PolarsResult<Int32Chunked> {
    let s = col_series(df, name)?;
    Ok(s.cast(&DataType::Date)?
        .cast(&DataType::Int32)?
        .i32()?
        .clone())
}

fn bool_col(df: &DataFrame, name: &str) -> PolarsResult<BooleanChunked> {
    Ok(col_series(df, name)?.bool()?.clone())
}

fn int_col(df: &DataFrame, name: &str) -> PolarsResult<Int64Chunked> {
    let s = col_series(df, name)?;
    Ok(s.cast(&DataType::Int64)?.i64()?.clone())
}

fn polars_err(ck: &mut Checker, file: &str, e: PolarsError) {
    ck.file_error(file, None, format!("cannot decode: {e}"));
}

fn read_patients(t: &Table, opts: &LoadOptions, ck: &mut Checker) -> Option<Patients> {
    let name = t.name;
    let df = &t.df;
    let n = df.height();
    ck.files.push(FileCounts {
        file: name.into(),
        rows: n as u64,
        rejected: 0,
    });
    if n == 0 {
        ck.file_error(name, None, "has no rows: a cohort needs patients".into());
        return None;
    }
    let has = |c: &str| t.present.contains(&c);
    let cols = (|| -> PolarsResult<_> {
        Ok((
            text_col(df, "patient_id")?,
            day_col(df, "birth_date")?,
            text_col(df, "sex")?,
            text_col(df, "practice_code")?,
            text_col(df, "pcn_code")?,
            if has("imd_decile") {
                Some(int_col(df, "imd_decile")?)
            } else {
                None
            },
            if has("ethnicity_group") {
                Some(text_col(df, "ethnicity_group")?)
            } else {
                None
            },
            if has("care_home") {
                Some(bool_col(df, "care_home")?)
            } else {
                None
            },
            if has("death_date") {
                Some(day_col(df, "death_date")?)
            } else {
                None
            },
        ))
    })();
    let (pid, birth, sex, practice, pcn, imd, eth, care, death) = match cols {
        Ok(c) => c,
        Err(e) => {
            polars_err(ck, name, e);
            return None;
        }
    };
    let before = ck.problems.len();
    let err = Severity::Error;
    let mut bad: Vec<Vec<u64>> = vec![Vec::new(); 12];
    let (earliest, today) = (date::earliest(), opts.today);
    let mut p = Patients::default();
    let mut ids: Vec<&str> = Vec::with_capacity(n);
    for (i, v) in pid.iter().enumerate() {
        let row = i as u64 + 1;
        let s = v.map(str::trim).unwrap_or("");
        if s.is_empty() {
            bad[0].push(row);
        } else if s.len() > 128 {
            bad[1].push(row);
        } else if !opts.allow_identifiers && is_nhs_number(s) {
            bad[2].push(row);
        }
        ids.push(s);
    }
    for (i, v) in birth.iter().enumerate() {
        let row = i as u64 + 1;
        match v {
            None => bad[3].push(row),
            Some(d) if d < earliest || d > today => bad[4].push(row),
            Some(d) => {
                if !opts.allow_identifiers && chrono::Datelike::day(&date::from_days(d)) != 1 {
                    bad[5].push(row);
                }
            }
        }
        p.birth.push(v.unwrap_or(0));
    }
    for (i, v) in sex.iter().enumerate() {
        let s = match v.map(str::trim) {
            None | Some("") => Sex::U,
            Some(s)
                if s.eq_ignore_ascii_case("f") || s.eq_ignore_ascii_case("female") || s == "2" =>
            {
                Sex::F
            }
            Some(s)
                if s.eq_ignore_ascii_case("m") || s.eq_ignore_ascii_case("male") || s == "1" =>
            {
                Sex::M
            }
            Some(s)
                if s.eq_ignore_ascii_case("u")
                    || s.eq_ignore_ascii_case("unknown")
                    || s == "9"
                    || s == "0" =>
            {
                Sex::U
            }
            Some(_) => {
                bad[6].push(i as u64 + 1);
                Sex::U
            }
        };
        p.sex.push(s);
    }
    let (practice, practices) = intern_column(&practice, None, &mut bad[7]);
    let (pcn, pcns) = intern_column(&pcn, None, &mut bad[8]);
    match imd {
        Some(imd) => {
            for (i, v) in imd.iter().enumerate() {
                match v {
                    None => p.imd_decile.push(0),
                    Some(d) if (1..=10).contains(&d) => p.imd_decile.push(d as u8),
                    Some(_) => {
                        bad[9].push(i as u64 + 1);
                        p.imd_decile.push(0);
                    }
                }
            }
        }
        None => p.imd_decile = vec![0; n],
    }
    let (ethnicity, ethnicities) = match eth {
        Some(eth) => intern_column(&eth, Some("Unknown"), &mut Vec::new()),
        None => (vec![0; n], vec!["Unknown".to_string()]),
    };
    p.care_home = match care {
        Some(c) => c.iter().map(|v| v.unwrap_or(false)).collect(),
        None => vec![false; n],
    };
    match death {
        Some(death) => {
            for (i, v) in death.iter().enumerate() {
                match v {
                    None => p.death.push(i32::MAX),
                    Some(d) if d < earliest || d > today || d < p.birth[i] => {
                        bad[10].push(i as u64 + 1);
                        p.death.push(i32::MAX);
                    }
                    Some(d) => p.death.push(d),
                }
            }
        }
        None => p.death = vec![i32::MAX; n],
    }
    // Patients in pseudonym order; duplicates sit side by side.
    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by(|&a, &b| ids[a].cmp(ids[b]).then(a.cmp(&b)));
    for w in order.windows(2) {
        if ids[w[0]] == ids[w[1]] && !ids[w[0]].is_empty() {
            bad[11].push(w[1] as u64 + 1);
        }
    }
    bad[11].sort_unstable();
    let msgs: [(&str, &str); 12] = [
        ("patient_id", "null or empty pseudonym"),
        ("patient_id", "pseudonym longer than 128 characters"),
        ("patient_id", "value is a valid NHS number: strata takes pseudonyms only (pass --allow-identifiers if these are not NHS numbers)"),
        ("birth_date", "null birth date"),
        ("birth_date", "birth date before 1900 or after today"),
        ("birth_date", "birth date more precise than the month (day is not the 1st): exact dates of birth identify people; truncate to the month or pass --allow-identifiers"),
        ("sex", "sex is not F, M or U"),
        ("practice_code", "null or empty practice code"),
        ("pcn_code", "null or empty PCN code"),
        ("imd_decile", "IMD decile outside 1-10"),
        ("death_date", "death date before 1900, after today or before birth"),
        ("patient_id", "duplicate pseudonym"),
    ];
    for (k, (col, msg)) in msgs.iter().enumerate() {
        ck.rows(err, name, col, msg, &bad[k]);
    }
    if ck.problems.len() > before {
        return None;
    }
    p.id = order.iter().map(|&i| ids[i].to_string()).collect();
    p.birth = permute(&p.birth, &order);
    p.sex = permute(&p.sex, &order);
    p.imd_decile = permute(&p.imd_decile, &order);
    p.care_home = permute(&p.care_home, &order);
    p.death = permute(&p.death, &order);
    p.practice = permute(&practice, &order);
    p.practices = practices;
    p.pcn = permute(&pcn, &order);
    p.pcns = pcns;
    p.ethnicity = permute(&ethnicity, &order);
    p.ethnicities = ethnicities;
    Some(p)
}

/// Intern a text column to indices into its sorted distinct (trimmed) values. Null or empty
/// values become `missing` when given, else their rows are recorded in `bad`.
fn intern_column(
    ca: &StringChunked,
    missing: Option<&str>,
    bad: &mut Vec<u64>,
) -> (Vec<u32>, Vec<String>) {
    let mut first: FastMap<&str, u32> = FastMap::default();
    let mut raw_ids = Vec::with_capacity(ca.len());
    let mut distinct: Vec<&str> = Vec::new();
    for (i, v) in ca.iter().enumerate() {
        let s = match v.map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => match missing {
                Some(m) => m,
                None => {
                    bad.push(i as u64 + 1);
                    ""
                }
            },
        };
        let next = distinct.len() as u32;
        let id = *first.entry(s).or_insert(next);
        if id == next {
            distinct.push(s);
        }
        raw_ids.push(id);
    }
    let mut sorted: Vec<(&str, u32)> = distinct.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    let mut remap = vec![0u32; sorted.len()];
    for (rank, (_, old)) in sorted.iter().enumerate() {
        remap[*old as usize] = rank as u32;
    }
    (
        raw_ids.into_iter().map(|i| remap[i as usize]).collect(),
        sorted
            .into_iter()
            .map(|(s, _)| s.chars().take(64).collect())
            .collect(),
    )
}

fn permute<T: Copy>(v: &[T], order: &[usize]) -> Vec<T> {
    order.iter().map(|&i| v[i]).collect()
}

/// Map pseudonyms to patient indices; consecutive equal pseudonyms (the common sorted case)
/// skip the hash lookup.
struct PatientIndex<'a> {
    map: FastMap<&'a str, u32>,
}

impl<'a> PatientIndex<'a> {
    /// The patient index of a pseudonym (surrounding whitespace forgiven), or `UNSET`.
    fn lookup(&self, p: &str) -> u32 {
        self.map
            .get(p)
            .or_else(|| self.map.get(p.trim()))
            .copied()
            .unwrap_or(UNSET)
    }

    fn new(p: &'a Patients) -> Self {
        let mut map = FastMap::with_capacity_and_hasher(p.len(), Default::default());
        for (i, id) in p.id.iter().enumerate() {
            map.insert(id.as_str(), i as u32);
        }
        PatientIndex { map }
    }
}

/// Pseudonym lookup for rows in file order: rows of one patient usually sit together, so the
/// previous row's answer is reused when the Arrow view is identical (dictionary-decoded values
/// share one view) or the text is equal, and only otherwise is the pseudonym hashed.
struct PidCache<'p, 'a> {
    index: &'p PatientIndex<'a>,
    last_view: u128,
    last_text: Option<&'p str>,
    last_idx: u32,
}

impl<'p, 'a> PidCache<'p, 'a> {
    fn new(index: &'p PatientIndex<'a>) -> Self {
        PidCache {
            index,
            last_view: u128::MAX,
            last_text: None,
            last_idx: UNSET,
        }
    }

    /// Patient index of `text` (whose Arrow view bits are `view`), or `UNSET`.
    fn get(&mut self, text: &'p str, view: u128) -> u32 {
        if view != self.last_view && self.last_text != Some(text) {
            self.last_idx = self.index.lookup(text);
            self.last_text = Some(text);
        }
        self.last_view = view;
        self.last_idx
    }
}

/// Reasons a row is rejected, shared by events and encounters.
mod reason {
    pub const NULL_PATIENT: &str = "null patient_id";
    pub const UNKNOWN_PATIENT: &str = "patient_id not in patients.parquet";
    pub const NULL_DATE: &str = "null date";
    pub const DATE_RANGE: &str = "date before 1900 or after today";
    pub const NULL_SYSTEM: &str = "null code_system";
    pub const UNKNOWN_SYSTEM: &str = "unknown code_system";
    pub const NULL_CODE: &str = "null code";
    pub const UNKNOWN_SETTING: &str = "setting is not inpatient, ae or outpatient";
    pub const END_BEFORE_START: &str = "end_date before start_date";
    pub const NULL_EMERGENCY: &str = "null emergency flag";
}

const UNSET: u32 = u32::MAX;
/// (column, reason) of a rejected row.
type RejectReason = (&'static str, &'static str);
/// log2 of the slots in the per-part code cache of `decode_events`.
const CACHE_BITS: u32 = 10;

/// One parallel part (an aligned chunk, typically a Parquet row group) of the events file,
/// decoded. Vectors are indexed by row within the part; a row rejected while decoding has
/// `code == UNSET`.
struct EventPart {
    /// First row of the part (0-based) in the file.
    lo: usize,
    patient: Vec<u32>,
    day: Vec<i32>,
    /// Local id into `local`.
    code: Vec<u32>,
    /// Distinct raw (code_system, code) pairs of the part, as they appear in the file.
    local: Vec<(String, String)>,
    rejects: Vec<Reject>,
}

/// Key of a raw value for interning: a short string (<= 12 bytes, the common case for codes and
/// code systems) is its Arrow view, which holds the bytes inline, so nothing is hashed but two
/// integers; a longer one is its text.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum RawKey<'a> {
    Inline(u128),
    Long(&'a str),
}

fn raw_key(view_len: u32, view_bits: u128, text: &str) -> RawKey<'_> {
    if view_len <= 12 {
        RawKey::Inline(view_bits)
    } else {
        RawKey::Long(text)
    }
}

fn decode_events(
    t: &Table,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<Vec<EventPart>> {
    let mut df = DataFrame::new(
        t.df.height(),
        vec![
            text_col(&t.df, "patient_id")?.into_column(),
            day_col(&t.df, "event_date")?.into_column(),
            text_col(&t.df, "code_system")?.into_column(),
            text_col(&t.df, "code")?.into_column(),
        ],
    )?;
    df.align_chunks_par();
    let pid = df.column("patient_id")?.str()?.clone();
    let day = df.column("event_date")?.i32()?.clone();
    let sys = df.column("code_system")?.str()?.clone();
    let code = df.column("code")?.str()?.clone();
    let mut chunks = Vec::new();
    let mut lo = 0usize;
    for (((p, d), s), c) in pid
        .downcast_iter()
        .zip(day.downcast_iter())
        .zip(sys.downcast_iter())
        .zip(code.downcast_iter())
    {
        chunks.push((lo, p, d, s, c));
        lo += p.len();
    }
    let (earliest, today) = (date::earliest(), opts.today);
    let parts = chunks
        .into_par_iter()
        .map(|(lo, pid, day, sys, code)| {
            let len = pid.len();
            let mut part = EventPart {
                lo,
                patient: vec![UNSET; len],
                day: vec![0; len],
                code: vec![UNSET; len],
                local: Vec::new(),
                rejects: Vec::new(),
            };
            let mut local: FastMap<(RawKey, RawKey), u32> = FastMap::default();
            let mut cache = vec![(0u128, 0u128, UNSET); 1 << CACHE_BITS];
            let mut pids = PidCache::new(pidx);
            let (sys_views, code_views, pid_views) = (sys.views(), code.views(), pid.views());
            let it = pid.iter().zip(day.iter()).zip(sys.iter()).zip(code.iter());
            for (k, (((p, d), s), c)) in it.enumerate() {
                let row = (lo + k) as u64 + 1;
                let mut reject = |column: &'static str, reason: &'static str| {
                    part.rejects.push(Reject {
                        file: EVENTS_FILE,
                        row,
                        column,
                        reason,
                    })
                };
                let Some(p) = p else {
                    reject("patient_id", reason::NULL_PATIENT);
                    continue;
                };
                let pi = pids.get(p, pid_views[k].as_u128());
                if pi == UNSET {
                    reject("patient_id", reason::UNKNOWN_PATIENT);
                    continue;
                }
                let Some(&d) = d else {
                    reject("event_date", reason::NULL_DATE);
                    continue;
                };
                if d < earliest || d > today {
                    reject("event_date", reason::DATE_RANGE);
                    continue;
                }
                let Some(s) = s else {
                    reject("code_system", reason::NULL_SYSTEM);
                    continue;
                };
                let Some(c) = c else {
                    reject("code", reason::NULL_CODE);
                    continue;
                };
                // The system is parsed and the code normalised later, once per distinct pair.
                let (sv, cv) = (sys_views[k], code_views[k]);
                let (sb, cb) = (sv.as_u128(), cv.as_u128());
                let inline = sv.length <= 12 && cv.length <= 12;
                // A small direct-mapped cache in front of the map: most rows repeat a code seen
                // recently, and then no hashing is needed at all.
                let slot = ((cb ^ (cb >> 64) ^ sb) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    >> (64 - CACHE_BITS);
                let cached = &mut cache[slot as usize];
                let id = if inline && cached.2 != UNSET && cached.0 == sb && cached.1 == cb {
                    cached.2
                } else {
                    let key = (raw_key(sv.length, sb, s), raw_key(cv.length, cb, c));
                    let next = local.len() as u32;
                    let id = *local.entry(key).or_insert(next);
                    if id == next {
                        part.local.push((s.to_string(), c.to_string()));
                    }
                    if inline {
                        *cached = (sb, cb, id);
                    }
                    id
                };
                part.patient[k] = pi;
                part.day[k] = d;
                part.code[k] = id;
            }
            part
        })
        .collect();
    Ok(parts)
}

/// `decode_events` on the dictionary fast path ([`crate::dictread`]): the same parts, from keys
/// and per-row-group dictionaries. Fails when the file is not dictionary-encoded throughout; the
/// caller then uses the general path. Returns the parts and the file's row count.
fn decode_events_dict(
    f: &crate::dictread::DictFile,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<(Vec<EventPart>, u64)> {
    use polars_arrow::array::Array;
    let (los, lo) = f.row_starts();
    let (earliest, today) = (date::earliest(), opts.today);
    let parts: PolarsResult<Vec<EventPart>> = (0..f.row_groups())
        .into_par_iter()
        .map(|rg| {
            let lo = los[rg];
            let pid = f.dict_column(rg, "patient_id")?;
            let sys = f.dict_column(rg, "code_system")?;
            let code = f.dict_column(rg, "code")?;
            let day = f.date_column(rg, "event_date")?.values;
            let len = pid.keys.len();
            if sys.keys.len() != len || code.keys.len() != len || day.len() != len {
                return Err(PolarsError::ComputeError("ragged row group".into()));
            }
            // Each distinct pseudonym of the row group is looked up once.
            let pmap: Vec<u32> = pid
                .values
                .iter()
                .map(|v| v.map_or(UNSET, |p| pidx.lookup(p)))
                .collect();
            let ncode = code.values.len();
            let mut pair = vec![UNSET; sys.values.len() * ncode];
            let mut part = EventPart {
                lo,
                patient: vec![UNSET; len],
                day: vec![0; len],
                code: vec![UNSET; len],
                local: Vec::new(),
                rejects: Vec::new(),
            };
            let (pk, sk, ck) = (pid.keys.values(), sys.keys.values(), code.keys.values());
            let dv = day.values();
            let nulls = pid.keys.null_count()
                + sys.keys.null_count()
                + code.keys.null_count()
                + day.null_count()
                > 0;
            for k in 0..len {
                let row = (lo + k) as u64 + 1;
                let mut reject = |column: &'static str, reason: &'static str| {
                    part.rejects.push(Reject {
                        file: EVENTS_FILE,
                        row,
                        column,
                        reason,
                    })
                };
                if nulls && !pid.keys.is_valid(k) {
                    reject("patient_id", reason::NULL_PATIENT);
                    continue;
                }
                let pi = pmap[pk[k] as usize];
                if pi == UNSET {
                    reject("patient_id", reason::UNKNOWN_PATIENT);
                    continue;
                }
                if nulls && !day.is_valid(k) {
                    reject("event_date", reason::NULL_DATE);
                    continue;
                }
                let d = dv[k];
                if d < earliest || d > today {
                    reject("event_date", reason::DATE_RANGE);
                    continue;
                }
                if nulls && !sys.keys.is_valid(k) {
                    reject("code_system", reason::NULL_SYSTEM);
                    continue;
                }
                if nulls && !code.keys.is_valid(k) {
                    reject("code", reason::NULL_CODE);
                    continue;
                }
                let slot = sk[k] as usize * ncode + ck[k] as usize;
                let mut id = pair[slot];
                if id == UNSET {
                    id = part.local.len() as u32;
                    part.local.push((
                        sys.values.value(sk[k] as usize).to_string(),
                        code.values.value(ck[k] as usize).to_string(),
                    ));
                    pair[slot] = id;
                }
                part.patient[k] = pi;
                part.day[k] = d;
                part.code[k] = id;
            }
            Ok(part)
        })
        .collect();
    Ok((parts?, lo as u64))
}

/// Group decoded rows by patient with a counting sort (or a straight copy when the file was
/// already in patient order). Returns the offsets and the permutation applied.
fn group_by_patient(n_patients: usize, patient: &[u32]) -> (Vec<u64>, Option<Vec<u32>>) {
    let mut counts = vec![0u64; n_patients + 1];
    for &p in patient {
        counts[p as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let offsets = counts;
    let sorted = patient.par_windows(2).all(|w| w[0] <= w[1]);
    if sorted {
        return (offsets, None);
    }
    let mut next = offsets.clone();
    let mut perm = vec![0u32; patient.len()];
    for (k, &p) in patient.iter().enumerate() {
        let slot = &mut next[p as usize];
        perm[*slot as usize] = k as u32;
        *slot += 1;
    }
    (offsets, Some(perm))
}

fn apply<T: Copy + Send + Sync>(v: Vec<T>, perm: &Option<Vec<u32>>) -> Vec<T> {
    match perm {
        None => v,
        Some(perm) => perm.par_iter().map(|&k| v[k as usize]).collect(),
    }
}

/// Decode a file's rows on the dictionary path ([`crate::dictread`]) when its columns have the
/// types that path reads (`dict_types`) and its pages allow it, else on the general polars path;
/// record which path was taken. Returns the decoded parts and the file's row count.
fn decode_file<P>(
    o: Opened,
    dict_types: &[(&str, DataType)],
    dictionary: impl FnOnce(&crate::dictread::DictFile) -> PolarsResult<(Vec<P>, u64)>,
    general: impl FnOnce(&Table) -> PolarsResult<Vec<P>>,
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<(Vec<P>, u64)> {
    let types_ok = o.present.iter().zip(&o.types).all(|(c, t)| {
        dict_types
            .iter()
            .find(|(name, _)| name == c)
            .is_none_or(|(_, want)| want == t)
    });
    let fast = if types_ok && opts.dictionary_path {
        dictionary(&o.dict_file).ok()
    } else {
        None
    };
    let path = if fast.is_some() {
        "dictionary"
    } else {
        "general"
    };
    ck.paths.push((o.name.to_string(), path.to_string()));
    match fast {
        Some(x) => Some(x),
        None => {
            let t = load_table(o, ck)?;
            match general(&t) {
                Ok(p) => Some((p, t.df.height() as u64)),
                Err(e) => {
                    polars_err(ck, t.name, e);
                    None
                }
            }
        }
    }
}

fn read_events(
    o: Opened,
    patients: &Patients,
    pidx: &PatientIndex,
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<(Events, CodeDict)> {
    let name = o.name;
    let (parts, rows) = decode_file(
        o,
        &[
            ("patient_id", DataType::String),
            ("code_system", DataType::String),
            ("code", DataType::String),
            ("event_date", DataType::Date),
        ],
        |f| decode_events_dict(f, pidx, opts),
        |t| decode_events(t, pidx, opts),
        opts,
        ck,
    )?;
    // Parse each distinct raw (system, code) pair once, then build the dictionary in sorted
    // order so code ids do not depend on row order.
    let mut raw: Vec<(&str, &str)> = parts
        .iter()
        .flat_map(|p| p.local.iter().map(|(s, c)| (s.as_str(), c.as_str())))
        .collect();
    raw.par_sort_unstable();
    raw.dedup();
    let parsed: Vec<Result<(CodeSystem, String), RejectReason>> = raw
        .par_iter()
        .map(|(s, c)| {
            let system = CodeSystem::parse(s).ok_or(("code_system", reason::UNKNOWN_SYSTEM))?;
            let code = normalise(system, c).map_err(|p| ("code", p.reason()))?;
            Ok((system, code))
        })
        .collect();
    let dict = CodeDict::from_pairs(
        parsed
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect(),
    );
    let global: FastMap<(&str, &str), Result<u32, RejectReason>> = raw
        .iter()
        .zip(&parsed)
        .map(|(k, r)| {
            let id = match r {
                Ok((system, code)) => dict.get(*system, code).ok_or(("code", "code not interned")),
                Err(e) => Err(*e),
            };
            (*k, id)
        })
        .collect();
    // Per part: local id -> global id, and the rows kept.
    let maps: Vec<Vec<Result<u32, RejectReason>>> = parts
        .par_iter()
        .map(|part| {
            part.local
                .iter()
                .map(|(s, c)| global[&(s.as_str(), c.as_str())])
                .collect()
        })
        .collect();
    drop(global);
    drop(raw);
    let kept: Vec<usize> = parts
        .par_iter()
        .zip(&maps)
        .map(|(part, map)| {
            part.code
                .iter()
                .filter(|&&c| c != UNSET && map[c as usize].is_ok())
                .count()
        })
        .collect();
    let total: usize = kept.iter().sum();
    let mut patient = vec![0u32; total];
    let mut day = vec![0i32; total];
    let mut code = vec![0u32; total];
    // Fill the output columns in parallel: each part writes its own disjoint slice.
    {
        let mut tasks = Vec::with_capacity(parts.len());
        let (mut pr, mut dr, mut cr) = (&mut patient[..], &mut day[..], &mut code[..]);
        for n in &kept {
            let (p0, p1) = pr.split_at_mut(*n);
            let (d0, d1) = dr.split_at_mut(*n);
            let (c0, c1) = cr.split_at_mut(*n);
            tasks.push((p0, d0, c0));
            (pr, dr, cr) = (p1, d1, c1);
        }
        tasks
            .into_par_iter()
            .zip(parts.par_iter().zip(&maps))
            .for_each(|((po, dout, co), (part, map))| {
                let mut j = 0;
                for k in 0..part.code.len() {
                    let c = part.code[k];
                    if c == UNSET {
                        continue;
                    }
                    if let Ok(id) = map[c as usize] {
                        po[j] = part.patient[k];
                        dout[j] = part.day[k];
                        co[j] = id;
                        j += 1;
                    }
                }
            });
    }
    let mut rejects = Vec::new();
    for (part, map) in parts.into_iter().zip(&maps) {
        rejects.extend(part.rejects);
        if map.iter().all(|m| m.is_ok()) {
            continue;
        }
        for (k, &c) in part.code.iter().enumerate() {
            if c == UNSET {
                continue;
            }
            if let Err((column, reason)) = map[c as usize] {
                rejects.push(Reject {
                    file: EVENTS_FILE,
                    row: (part.lo + k) as u64 + 1,
                    column,
                    reason,
                });
            }
        }
    }
    let (offsets, perm) = group_by_patient(patients.len(), &patient);
    drop(patient);
    let events = Events {
        offsets,
        code: apply(code, &perm),
        day: apply(day, &perm),
    };
    finish_file(name, rows, rejects, opts, ck);
    Some((events, dict))
}

/// Record a file's counts and rejects, and turn a high reject rate into an error.
fn finish_file(
    name: &'static str,
    rows: u64,
    mut rejects: Vec<Reject>,
    opts: &LoadOptions,
    ck: &mut Checker,
) {
    rejects.sort();
    ck.files.push(FileCounts {
        file: name.into(),
        rows,
        rejected: rejects.len() as u64,
    });
    if rows == 0 {
        ck.problems.push(Problem {
            severity: Severity::Warning,
            file: name.into(),
            column: None,
            message: "has no rows".into(),
            count: 0,
            first_rows: vec![],
        });
    }
    let mut by_reason: Vec<((&str, &str), Vec<u64>)> = Vec::new();
    for r in &rejects {
        match by_reason
            .iter_mut()
            .find(|(k, _)| *k == (r.column, r.reason))
        {
            Some((_, rows)) => rows.push(r.row),
            None => by_reason.push(((r.column, r.reason), vec![r.row])),
        }
    }
    let too_many = rows > 0 && rejects.len() as f64 > opts.max_reject_fraction * rows as f64;
    for ((col, reason), rs) in by_reason {
        ck.rows(
            Severity::Warning,
            name,
            col,
            &format!("row rejected: {reason}"),
            &rs,
        );
    }
    if too_many {
        ck.file_error(
            name,
            None,
            format!(
                "{} of {} rows rejected, more than the {:.2}% allowed (--max-rejected); see the rejected-row warnings",
                rejects.len(),
                rows,
                opts.max_reject_fraction * 100.0
            ),
        );
    }
    ck.rejects.extend(rejects);
}

/// One decoded chunk of the encounters file: kept rows and rejects.
#[derive(Default)]
struct EncounterPart {
    patient: Vec<u32>,
    setting: Vec<Setting>,
    start: Vec<i32>,
    end: Vec<i32>,
    emergency: Vec<bool>,
    rejects: Vec<Reject>,
}

impl EncounterPart {
    /// Check one decoded row and keep or reject it. `patient` is `None` when the pseudonym is
    /// null and `Some(UNSET)` when it is unknown; `setting` is `None` when null or unknown.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        row: u64,
        patient: Option<u32>,
        setting: Option<Setting>,
        start: Option<i32>,
        end: Option<i32>,
        emergency: Option<bool>,
        (earliest, today): (i32, i32),
    ) {
        let mut reject = |column: &'static str, reason: &'static str| {
            self.rejects.push(Reject {
                file: ENCOUNTERS_FILE,
                row,
                column,
                reason,
            })
        };
        let Some(pi) = patient else {
            return reject("patient_id", reason::NULL_PATIENT);
        };
        if pi == UNSET {
            return reject("patient_id", reason::UNKNOWN_PATIENT);
        }
        let Some(setting) = setting else {
            return reject("setting", reason::UNKNOWN_SETTING);
        };
        let Some(st) = start else {
            return reject("start_date", reason::NULL_DATE);
        };
        if st < earliest || st > today {
            return reject("start_date", reason::DATE_RANGE);
        }
        let en = end.unwrap_or(st);
        if en < st {
            return reject("end_date", reason::END_BEFORE_START);
        }
        if en > today {
            return reject("end_date", reason::DATE_RANGE);
        }
        let Some(em) = emergency else {
            return reject("emergency", reason::NULL_EMERGENCY);
        };
        self.patient.push(pi);
        self.setting.push(setting);
        self.start.push(st);
        self.end.push(en);
        self.emergency.push(em);
    }
}

/// `decode_encounters` on the dictionary fast path; see `decode_events_dict`.
fn decode_encounters_dict(
    f: &crate::dictread::DictFile,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<(Vec<EncounterPart>, u64)> {
    use polars_arrow::array::Array;
    let (los, lo) = f.row_starts();
    let bounds = (date::earliest(), opts.today);
    let parts: PolarsResult<Vec<EncounterPart>> = (0..f.row_groups())
        .into_par_iter()
        .map(|rg| {
            let lo = los[rg];
            let pid = f.dict_column(rg, "patient_id")?;
            let setting = f.dict_column(rg, "setting")?;
            let start = f.date_column(rg, "start_date")?.values;
            let end = f.date_column(rg, "end_date")?.values;
            let em = f.bool_column(rg, "emergency")?;
            let len = pid.keys.len();
            if [setting.keys.len(), start.len(), end.len(), em.len()]
                .iter()
                .any(|&l| l != len)
            {
                return Err(PolarsError::ComputeError("ragged row group".into()));
            }
            let pmap: Vec<u32> = pid
                .values
                .iter()
                .map(|v| v.map_or(UNSET, |p| pidx.lookup(p)))
                .collect();
            let smap: Vec<Option<Setting>> = setting
                .values
                .iter()
                .map(|v| v.and_then(Setting::parse))
                .collect();
            let mut part = EncounterPart::default();
            for k in 0..len {
                let pi = pid
                    .keys
                    .is_valid(k)
                    .then(|| pmap[pid.keys.value(k) as usize]);
                let st = setting
                    .keys
                    .is_valid(k)
                    .then(|| smap[setting.keys.value(k) as usize])
                    .flatten();
                part.push(
                    (lo + k) as u64 + 1,
                    pi,
                    st,
                    start.is_valid(k).then(|| start.value(k)),
                    end.is_valid(k).then(|| end.value(k)),
                    em.is_valid(k).then(|| em.value(k)),
                    bounds,
                );
            }
            Ok(part)
        })
        .collect();
    Ok((parts?, lo as u64))
}

fn decode_encounters(
    t: &Table,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<Vec<EncounterPart>> {
    let mut df = DataFrame::new(
        t.df.height(),
        vec![
            text_col(&t.df, "patient_id")?.into_column(),
            text_col(&t.df, "setting")?.into_column(),
            day_col(&t.df, "start_date")?.into_column(),
            day_col(&t.df, "end_date")?.into_column(),
            bool_col(&t.df, "emergency")?.into_column(),
        ],
    )?;
    df.align_chunks_par();
    let pid = df.column("patient_id")?.str()?.clone();
    let setting = df.column("setting")?.str()?.clone();
    let start = df.column("start_date")?.i32()?.clone();
    let end = df.column("end_date")?.i32()?.clone();
    let emergency = df.column("emergency")?.bool()?.clone();
    let mut chunks = Vec::new();
    let mut lo = 0usize;
    for ((((p, s), st), en), em) in pid
        .downcast_iter()
        .zip(setting.downcast_iter())
        .zip(start.downcast_iter())
        .zip(end.downcast_iter())
        .zip(emergency.downcast_iter())
    {
        chunks.push((lo, p, s, st, en, em));
        lo += p.len();
    }
    let (earliest, today) = (date::earliest(), opts.today);
    Ok(chunks
        .into_par_iter()
        .map(|(lo, pid, setting, start, end, emergency)| {
            let mut part = EncounterPart::default();
            let mut pids = PidCache::new(pidx);
            let pid_views = pid.views();
            let mut last_setting: Option<(&str, Option<Setting>)> = None;
            let it = pid
                .iter()
                .zip(setting.iter())
                .zip(start.iter())
                .zip(end.iter())
                .zip(emergency.iter());
            for (k, ((((p, s), st), en), em)) in it.enumerate() {
                let row = (lo + k) as u64 + 1;
                let pi = p.map(|p| pids.get(p, pid_views[k].as_u128()));
                let parsed = match (s, last_setting) {
                    (Some(s), Some((raw, parsed))) if raw == s => parsed,
                    (Some(s), _) => {
                        let parsed = Setting::parse(s);
                        last_setting = Some((s, parsed));
                        parsed
                    }
                    (None, _) => None,
                };
                part.push(
                    row,
                    pi,
                    parsed,
                    st.copied(),
                    en.copied(),
                    em,
                    (earliest, today),
                );
            }
            part
        })
        .collect())
}

fn read_encounters(
    o: Opened,
    patients: &Patients,
    pidx: &PatientIndex,
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<Encounters> {
    let name = o.name;
    let (parts, rows) = decode_file(
        o,
        &[
            ("patient_id", DataType::String),
            ("setting", DataType::String),
            ("start_date", DataType::Date),
            ("end_date", DataType::Date),
        ],
        |f| decode_encounters_dict(f, pidx, opts),
        |t| decode_encounters(t, pidx, opts),
        opts,
        ck,
    )?;
    let total: usize = parts.iter().map(|p| p.patient.len()).sum();
    let mut patient = Vec::with_capacity(total);
    let mut e = Encounters {
        offsets: Vec::new(),
        setting: Vec::with_capacity(total),
        start: Vec::with_capacity(total),
        end: Vec::with_capacity(total),
        emergency: Vec::with_capacity(total),
    };
    let mut rejects = Vec::new();
    for part in parts {
        patient.extend_from_slice(&part.patient);
        e.setting.extend_from_slice(&part.setting);
        e.start.extend_from_slice(&part.start);
        e.end.extend_from_slice(&part.end);
        e.emergency.extend_from_slice(&part.emergency);
        rejects.extend(part.rejects);
    }
    let (offsets, perm) = group_by_patient(patients.len(), &patient);
    e.offsets = offsets;
    e.setting = apply(e.setting, &perm);
    e.start = apply(e.start, &perm);
    e.end = apply(e.end, &perm);
    e.emergency = apply(e.emergency, &perm);
    finish_file(name, rows, rejects, opts, ck);
    Some(e)
}

/// Bytes of memory a load needs per event or encounter row and per patient: the worst case, the
/// general (non-dictionary) path, measured at 4.3 GB peak for 63.6 million rows and 1.2 million
/// patients (BENCHMARKS.md), rounded up. The dictionary path needs less than half of it.
pub const BYTES_PER_EVENT: u64 = 72;
/// See [`BYTES_PER_EVENT`].
pub const BYTES_PER_PATIENT: u64 = 400;

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

/// Rows in a Parquet file from its footer, without reading data.
fn footer_rows(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    ParquetReader::new(f).num_rows().ok().map(|n| n as u64)
}

/// Estimated bytes needed to load the cohort in `dir`, from the files' footers.
pub fn estimate_memory(dir: &Path) -> u64 {
    let ev = footer_rows(&dir.join(EVENTS_FILE)).unwrap_or(0)
        + footer_rows(&dir.join(ENCOUNTERS_FILE)).unwrap_or(0);
    let pa = footer_rows(&dir.join(PATIENTS_FILE)).unwrap_or(0);
    ev * BYTES_PER_EVENT + pa * BYTES_PER_PATIENT
}

impl Cohort {
    /// Read, check and lay out the cohort in `dir`. Fails with [`InputError::Invalid`] when the
    /// report has errors.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Cohort, InputError> {
        if !opts.skip_memory_check {
            let needed = estimate_memory(dir);
            if let Some(avail) = opts.memory_limit.or_else(available_memory) {
                if needed > avail {
                    return Err(InputError::TooLarge {
                        dir: dir.to_path_buf(),
                        needed_mb: needed >> 20,
                        available_mb: avail >> 20,
                    });
                }
            }
        }
        let cohort = Cohort::read(dir, opts);
        if cohort.report.is_ok() {
            Ok(cohort)
        } else {
            Err(InputError::Invalid {
                dir: dir.to_path_buf(),
                report: Box::new(cohort.report),
            })
        }
    }

    /// Read and check everything that can be read, never failing: the report says what is
    /// wrong. This is `strata validate`.
    pub fn read(dir: &Path, opts: &LoadOptions) -> Cohort {
        let mut ck = Checker::default();
        let mut cohort = Cohort {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        if !dir.is_dir() {
            ck.file_error(
                &dir.display().to_string(),
                None,
                "cohort folder does not exist".into(),
            );
        } else {
            // Every file's schema is checked first, so that all structural problems are
            // reported together; then the data are read one file at a time, each dropped once
            // decoded, to keep peak memory down.
            let pt = open_table(dir, PATIENTS_FILE, PATIENT_COLUMNS, opts, &mut ck);
            let et = open_table(dir, EVENTS_FILE, EVENT_COLUMNS, opts, &mut ck);
            let nt = open_table(dir, ENCOUNTERS_FILE, ENCOUNTER_COLUMNS, opts, &mut ck);
            let patients = pt
                .and_then(|o| load_table(o, &mut ck))
                .and_then(|t| read_patients(&t, opts, &mut ck));
            if let Some(p) = patients {
                let pidx = PatientIndex::new(&p);
                if let Some((events, dict)) =
                    et.and_then(|o| read_events(o, &p, &pidx, opts, &mut ck))
                {
                    cohort.events = events;
                    cohort.codes = dict;
                }
                if let Some(e) = nt.and_then(|o| read_encounters(o, &p, &pidx, opts, &mut ck)) {
                    cohort.encounters = e;
                }
                drop(pidx);
                cohort.patients = p;
            } else {
                // Without patients nothing else can be checked row by row; still say how big
                // the other files are.
                for o in [et, nt].into_iter().flatten() {
                    ck.files.push(FileCounts {
                        file: o.name.into(),
                        rows: footer_rows(&o.path).unwrap_or(0),
                        rejected: 0,
                    });
                }
            }
        }
        let mut by_system = std::collections::BTreeMap::new();
        for (_, s, _) in cohort.codes.iter() {
            *by_system.entry(s.name().to_string()).or_insert(0u64) += 1;
        }
        ck.problems.sort_by_key(|p| p.severity);
        cohort.report = ValidationReport {
            problems: ck.problems,
            files: ck.files,
            distinct_codes: by_system.into_iter().collect(),
        };
        cohort.rejects = ck.rejects;
        cohort.read_paths = ck.paths;
        cohort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_is_a_stable_counting_sort() {
        let (off, perm) = group_by_patient(3, &[2, 0, 2, 1, 0]);
        assert_eq!(off, vec![0, 2, 3, 5]);
        assert_eq!(perm.unwrap(), vec![1, 4, 3, 0, 2]);
        let (off, perm) = group_by_patient(3, &[0, 0, 2]);
        assert_eq!(off, vec![0, 2, 2, 3]);
        assert!(perm.is_none());
    }
}
