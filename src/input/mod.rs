//! The first stage: reading a cohort, checking it against the contract, normalising it once at
//! the edge and laying it out grouped by patient as a [`Cohort`].
//!
//! ```text
//!  adaptors                    decoders                  shared layout
//!  parquet (files) ─┐     ┌─ patients ──────────────┐
//!                   ├─► Opened ─┼─ events (general | dict) ─┼─► layout ──► Cohort
//!  frame (memory) ──┘     └─ encounters (general | dict)┘     (rules, index, interning, grouping)
//! ```
//!
//! - [`contract`]: the files, columns, accepted types and reject reasons, one definition;
//! - `parquet` / `frame`: the adaptors (a folder of Parquet files; frames or Arrow record batches
//!   in memory). A new adaptor (CSV, OMOP) is one file that yields an [`Opened`] table per
//!   contract file, plus one arm in [`open_folder`] or one constructor beside
//!   [`Cohort::from_frames`];
//! - `patients`, `events`, `encounters`: decode rows; `layout`: keep or reject them (one copy of
//!   each rule), intern codes, group by patient;
//! - [`report`]: problems, rejects, counts; [`memory`]: the memory check.
//!
//! Rules (documented in README.md, "The cohort contract"):
//! - a structural problem (missing or unreadable file, missing column, wrong type, a bad patient
//!   row, direct identifiers) is an **error**: the cohort is refused;
//! - a bad event or encounter row (null or impossible value, unknown patient, unknown code
//!   system, malformed code) is **rejected**: counted, kept in [`Cohort::rejects`] with file, row
//!   and reason, and written beside the outputs. More than `max_reject_fraction` of a file
//!   rejected is an error;
//! - codes that no code list uses are counted, never an error.

pub mod contract;
mod dictread;
mod encounters;
mod events;
mod frame;
pub use frame::from_batches;
mod checker;
mod layout;
mod links;
mod medications;
pub mod memory;
mod parquet;
pub mod parts;
mod patients;
pub mod spells;

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::codes::CodeDict;
use crate::codes::CodeSystem;
use crate::cohort::{Cohort, Encounters, Events, Medications, Patients};
use crate::date;
pub use crate::report::{FileCounts, InputError, Problem, Reject, Severity, ValidationReport};
use checker::Checker;
use contract::{
    ColumnSpec, ENCOUNTERS_FILE, ENCOUNTER_COLUMNS, EVENTS_FILE, EVENT_COLUMNS, MEDICATIONS_FILE,
    MEDICATION_COLUMNS, PATIENTS_FILE, PATIENT_COLUMNS,
};
use frame::Table;
use layout::PatientIndex;
pub use memory::{
    available_memory, estimate_memory, memory_estimate, FileEstimate, MemoryEstimate, ReadPath,
    BYTES_PER_EVENT, BYTES_PER_PATIENT, DICT_BYTES_PER_EVENT,
};

/// Settings of a load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadOptions {
    /// "Today": dates after it are impossible.
    #[serde(serialize_with = "date::serialize_days")]
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
    /// Event rows a scoring run does not need kept once checked ([`LeaveOut`]); `None` (the
    /// default, and `strata validate`'s) keeps every admitted row.
    #[serde(skip)]
    pub leave_out: Option<LeaveOut>,
}

/// Event rows left out once they are read and checked: those dated on or before `through` whose
/// code `unread` marks. A scoring run at an as-of date sets it from its definitions (codes that
/// nothing it computes reads, [`crate::definitions::Definitions::unread_ids`]), so that the rows
/// are neither grouped, held nor scanned. They are still checked (a bad one is rejected, as
/// always) and counted in the report's read paths; rows after `through` are always kept (they
/// are counted as ignored after the as-of date, and a later care home code is read).
#[derive(Clone)]
pub struct LeaveOut {
    /// The last day whose rows may be left out (the as-of date).
    pub through: i32,
    /// For a cohort's code dictionary: per code id, whether nothing reads the code.
    pub unread: UnreadCodes,
}

/// [`LeaveOut::unread`]: for a cohort's code dictionary, per code id, whether nothing reads it.
pub type UnreadCodes = std::sync::Arc<dyn Fn(&CodeDict) -> Vec<bool> + Send + Sync>;

impl std::fmt::Debug for LeaveOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaveOut")
            .field("through", &self.through)
            .finish_non_exhaustive()
    }
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
            leave_out: None,
        }
    }
}

/// A table whose schema passed the contract, its rows not yet decoded.
pub(crate) struct Opened {
    /// Contract file name.
    pub(crate) name: &'static str,
    /// Used columns present.
    pub(crate) present: Vec<&'static str>,
    /// Their types, in `present` order.
    pub(crate) types: Vec<DataType>,
    /// Where the rows are.
    pub(crate) source: Source,
}

/// Where an opened table's rows are.
pub(crate) enum Source {
    /// A Parquet file, checked and mapped into memory for the dictionary path.
    Parquet {
        /// The file.
        path: PathBuf,
        /// Its bytes and metadata.
        dict: dictread::DictFile,
    },
    /// A frame handed in memory.
    Frame(DataFrame),
}

impl Opened {
    /// The table as a frame of its used columns (reading the file on the Parquet path).
    fn load(self, ck: &mut Checker) -> Option<Table> {
        match self.source {
            Source::Parquet { path, .. } => parquet::load(self.name, &path, self.present, ck),
            Source::Frame(df) => Some(Table {
                name: self.name,
                df,
                present: self.present,
            }),
        }
    }

    /// Whether [`decode_file`] will most likely take the dictionary path (its footer says so;
    /// a page can still make it fall back).
    fn dictionary_likely(&self, dict_types: &[(&str, DataType)], opts: &LoadOptions) -> bool {
        match &self.source {
            Source::Parquet { dict, .. } => {
                opts.dictionary_path
                    && self.types_fit(dict_types)
                    && memory::dictionary_encoded(dict.meta(), dict_types)
            }
            Source::Frame(_) => false,
        }
    }

    /// Whether the used columns have the types of `dict_types` (those it names).
    fn types_fit(&self, dict_types: &[(&str, DataType)]) -> bool {
        self.present.iter().zip(&self.types).all(|(c, t)| {
            dict_types
                .iter()
                .find(|(name, _)| name == c)
                .is_none_or(|(_, want)| want == t)
        })
    }

    /// The synthetic-data mark of a Parquet file (`strata synth`'s key-value metadata), if any.
    fn synthetic_mark(&self) -> Option<String> {
        match &self.source {
            Source::Parquet { dict, .. } => dict
                .meta()
                .key_value_metadata()
                .as_ref()?
                .iter()
                .find(|kv| kv.key == contract::SYNTHETIC_KEY)
                .map(|kv| kv.value.clone().unwrap_or_default()),
            Source::Frame(_) => None,
        }
    }

    /// The same rows for `links`' own pass.
    fn link_input(&self) -> links::LinkInput {
        match &self.source {
            Source::Parquet { path, .. } => links::LinkInput::File(path.clone()),
            Source::Frame(df) => links::LinkInput::Frame(df.clone()),
        }
    }

    /// Rows, without decoding them.
    fn rows(&self) -> u64 {
        match &self.source {
            Source::Parquet { path, .. } => parquet::footer_rows(path).unwrap_or(0),
            Source::Frame(df) => df.height() as u64,
        }
    }
}

/// The opened tables of a cohort: the three required ones, and medications when given.
pub(crate) struct OpenedTables {
    patients: Option<Opened>,
    events: Option<Opened>,
    encounters: Option<Opened>,
    /// `None` when the cohort has no medications table (not an error).
    medications: Option<Opened>,
}

/// Pick the adaptor for each contract file of a cohort folder and open it. Today every file is
/// Parquet; a CSV or OMOP adaptor is chosen here by what the folder holds.
fn open_folder(dir: &Path, opts: &LoadOptions, ck: &mut Checker) -> OpenedTables {
    let open = |name: &'static str, spec: &'static [ColumnSpec], ck: &mut Checker| {
        parquet::open(dir, name, spec, opts, ck)
    };
    OpenedTables {
        patients: open(PATIENTS_FILE, PATIENT_COLUMNS, ck),
        events: open(EVENTS_FILE, EVENT_COLUMNS, ck),
        encounters: open(ENCOUNTERS_FILE, ENCOUNTER_COLUMNS, ck),
        medications: if dir.join(MEDICATIONS_FILE).exists() {
            open(MEDICATIONS_FILE, MEDICATION_COLUMNS, ck)
        } else {
            None
        },
    }
}

/// Decode a file's rows on the dictionary path ([`dictread`]) when its columns have the
/// types that path reads (`dict_types`) and its pages allow it, else on the general polars path;
/// record which path was taken. Returns the decoded rows and the file's row count.
pub(crate) fn decode_file<T>(
    o: Opened,
    dict_types: &[(&str, DataType)],
    dictionary: impl FnOnce(&dictread::DictFile) -> PolarsResult<(T, u64)>,
    general: impl FnOnce(&Table) -> PolarsResult<T>,
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<(T, u64)> {
    let types_ok = o.types_fit(dict_types);
    let fast = match &o.source {
        Source::Parquet { dict, .. } if types_ok && opts.dictionary_path => dictionary(dict).ok(),
        _ => None,
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
            let t = o.load(ck)?;
            match general(&t) {
                Ok(p) => Some((p, t.df.height() as u64)),
                Err(e) => {
                    frame::polars_err(ck, t.name, e);
                    None
                }
            }
        }
    }
}

/// The columns the dictionary path reads from `events.parquet` and the types they must have
/// (strings dictionary-decoded, dates as days); the memory check reads the same list.
pub(crate) const EVENT_DICT_TYPES: &[(&str, DataType)] = &[
    ("patient_id", DataType::String),
    ("code_system", DataType::String),
    ("code", DataType::String),
    ("event_date", DataType::Date),
];

/// See [`EVENT_DICT_TYPES`]: the same for `encounters.parquet`.
pub(crate) const ENCOUNTER_DICT_TYPES: &[(&str, DataType)] = &[
    ("patient_id", DataType::String),
    ("setting", DataType::String),
    ("start_date", DataType::Date),
    ("end_date", DataType::Date),
];

/// Decode, check and lay out the events table.
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
        EVENT_DICT_TYPES,
        |f| events::decode_events_dict(f, pidx, opts),
        |t| events::decode_events(t, pidx, opts),
        opts,
        ck,
    )?;
    let (events, dict, rejects, left_out) =
        layout::lay_out_events(parts, patients, opts.leave_out.as_ref());
    if let Some(l) = &opts.leave_out {
        ck.paths.push((
            name.to_string(),
            format!(
                "{left_out} rows whose code nothing strata computes reads, dated on or before {}, \
                 left out once checked",
                date::format_days(l.through)
            ),
        ));
    }
    ck.finish_file(name, rows, rejects, opts);
    Some((events, dict))
}

/// Decode, check and lay out the encounters table.
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
        ENCOUNTER_DICT_TYPES,
        |f| encounters::decode_encounters_dict(f, pidx, opts),
        |t| encounters::decode_encounters(t, pidx, opts),
        opts,
        ck,
    )?;
    let (e, rejects) = layout::lay_out_encounters(parts, patients);
    ck.finish_file(name, rows, rejects, opts);
    Some(e)
}

/// Decode, check and lay out the medications table.
fn read_medications(
    o: Opened,
    patients: &Patients,
    pidx: &PatientIndex,
    opts: &LoadOptions,
    ck: &mut Checker,
) -> Option<Medications> {
    let name = o.name;
    let t = o.load(ck)?;
    let rows = t.df.height() as u64;
    let parts = match medications::decode_medications(&t, pidx, opts) {
        Ok(p) => p,
        Err(e) => {
            frame::polars_err(ck, name, e);
            return None;
        }
    };
    let (m, rejects) = medications::lay_out_medications(parts, patients);
    ck.finish_file(name, rows, rejects, opts);
    Some(m)
}

/// Read every opened table into `cohort`, recording what was found. Patients first: without
/// them nothing else can be checked row by row.
fn read_tables(cohort: &mut Cohort, tables: OpenedTables, opts: &LoadOptions, ck: &mut Checker) {
    let OpenedTables {
        patients: pt,
        events: et,
        encounters: nt,
        medications: mt,
    } = tables;
    if let Some(mark) = pt.as_ref().and_then(Opened::synthetic_mark) {
        cohort.synthetic = Some(mark);
    }
    let patients = pt
        .and_then(|o| o.load(ck))
        .and_then(|t| patients::read_patients(&t, opts, ck));
    if let Some(p) = patients {
        let pidx = PatientIndex::new(&p);
        // The optional hospital columns and diagnosis links are read in a pass of their own
        // (`links`), after the main decoders.
        let link_inputs = et
            .as_ref()
            .zip(nt.as_ref())
            .map(|(e, n)| (e.link_input(), n.link_input()));
        // On the dictionary path (a few integers a row) events and encounters are decoded side
        // by side: each is parallel over its row groups, and the serial steps of one (grouping,
        // closing gaps) overlap the other's decoding. On the general path (a string a row) they
        // are read one after the other, each frame dropped before the next is read, to keep
        // peak memory down. The encounters' findings are recorded after the events' either way.
        let side_by_side = [(&et, EVENT_DICT_TYPES), (&nt, ENCOUNTER_DICT_TYPES)]
            .iter()
            .all(|(o, types)| o.as_ref().is_some_and(|o| o.dictionary_likely(types, opts)));
        let (events, encounters) = if side_by_side {
            let mut ck_encounters = Checker::default();
            let both = rayon::join(
                || et.and_then(|o| read_events(o, &p, &pidx, opts, ck)),
                || nt.and_then(|o| read_encounters(o, &p, &pidx, opts, &mut ck_encounters)),
            );
            ck.append(ck_encounters);
            both
        } else {
            let events = et.and_then(|o| read_events(o, &p, &pidx, opts, ck));
            (
                events,
                nt.and_then(|o| read_encounters(o, &p, &pidx, opts, ck)),
            )
        };
        if let Some((events, dict)) = events {
            cohort.events = events;
            cohort.codes = dict;
        }
        if let Some(e) = encounters {
            cohort.encounters = e;
            if let Some((ev_in, en_in)) = link_inputs.filter(|_| !cohort.events.offsets.is_empty())
            {
                match links::read(&ev_in, &en_in, &cohort.encounters, &pidx) {
                    Ok((facts, columns)) => {
                        cohort.spells = spells::build(
                            &cohort.encounters,
                            &facts,
                            &cohort.events,
                            &cohort.codes,
                            columns,
                        );
                    }
                    Err(e) => frame::polars_err(ck, ENCOUNTERS_FILE, e),
                }
            }
        }
        if let Some(m) = mt.and_then(|o| read_medications(o, &p, &pidx, opts, ck)) {
            cohort.medications = m;
        }
        drop(pidx);
        cohort.patients = p;
    } else {
        // Still say how big the other files are.
        for o in [et, nt, mt].into_iter().flatten() {
            ck.files.push(FileCounts {
                file: o.name.into(),
                rows: o.rows(),
                rejected: 0,
            });
        }
    }
}

/// Close the report: the prescriptions warning, problems errors first, distinct codes per
/// system, rejects and read paths.
fn finish(cohort: &mut Cohort, mut ck: Checker) {
    if ck.problems.iter().all(|p| p.severity != Severity::Error) && !cohort.patients.is_empty() {
        if let Some(message) = prescriptions_warning(cohort) {
            ck.problems.push(Problem {
                severity: Severity::Warning,
                file: if cohort.medications.present {
                    MEDICATIONS_FILE
                } else {
                    EVENTS_FILE
                }
                .into(),
                column: None,
                message,
                count: 0,
                first_rows: vec![],
                // A part without prescriptions does not make a cohort without them.
                scope: crate::report::Scope::EveryPart,
            });
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
}

/// Where the cohort's prescriptions come from, for the manifest: `medications.parquet`, the
/// `dmd` rows of `events.parquet`, or `none` (polypharmacy cannot be assessed).
pub fn prescriptions_source(cohort: &Cohort) -> &'static str {
    if cohort.medications.present {
        MEDICATIONS_FILE
    } else if cohort.codes.iter().any(|(_, s, _)| s == CodeSystem::Dmd) {
        "events.parquet (dmd)"
    } else {
        "none"
    }
}

/// A cohort with no prescriptions cannot show polypharmacy: say so rather than list nobody with it.
fn prescriptions_warning(cohort: &Cohort) -> Option<String> {
    let m = &cohort.medications;
    if m.present && m.medicine.is_empty() {
        Some("has no prescriptions (none kept): the eFI's polypharmacy deficit cannot be assessed and is absent for everyone".into())
    } else if prescriptions_source(cohort) == "none" {
        Some("no prescriptions: no medications.parquet and no dmd rows in events.parquet, so the eFI's polypharmacy deficit cannot be assessed and is absent for everyone (prescriptions recorded as SNOMED CT ids are dm+d ids: give them code_system dmd, or supply medications.parquet)".into())
    } else {
        None
    }
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
        Cohort::read(dir, opts).checked()
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
            // reported together; then the data are read: patients, then events and encounters
            // (side by side on the dictionary path, one after the other otherwise, see
            // `read_tables`), then medications.
            let opened = open_folder(dir, opts, &mut ck);
            read_tables(&mut cohort, opened, opts, &mut ck);
        }
        finish(&mut cohort, ck);
        cohort
    }

    /// The in-memory entry point: the same checks and layout as [`Cohort::load`], from three
    /// polars frames (Arrow memory: from Python, Spark or a test). Each frame is named in
    /// messages by the contract file it stands for (`patients.parquet`, ...). Fails with
    /// [`InputError::Invalid`] when the report has errors.
    pub fn from_frames(
        patients: DataFrame,
        events: DataFrame,
        encounters: DataFrame,
        opts: &LoadOptions,
    ) -> Result<Cohort, InputError> {
        Cohort::from_frames_with_medications(patients, events, encounters, None, opts)
    }

    /// [`Cohort::from_frames`] with the optional medications table.
    pub fn from_frames_with_medications(
        patients: DataFrame,
        events: DataFrame,
        encounters: DataFrame,
        medications: Option<DataFrame>,
        opts: &LoadOptions,
    ) -> Result<Cohort, InputError> {
        let mut ck = Checker::default();
        let mut cohort = Cohort::default();
        let opened = OpenedTables {
            patients: frame::open(PATIENTS_FILE, patients, PATIENT_COLUMNS, opts, &mut ck),
            events: frame::open(EVENTS_FILE, events, EVENT_COLUMNS, opts, &mut ck),
            encounters: frame::open(
                ENCOUNTERS_FILE,
                encounters,
                ENCOUNTER_COLUMNS,
                opts,
                &mut ck,
            ),
            medications: medications
                .and_then(|m| frame::open(MEDICATIONS_FILE, m, MEDICATION_COLUMNS, opts, &mut ck)),
        };
        read_tables(&mut cohort, opened, opts, &mut ck);
        finish(&mut cohort, ck);
        cohort.checked()
    }

    /// The in-memory entry point for Arrow record batches (e.g. from the Arrow C data interface):
    /// each table's batches become a frame without copying the buffers, then are checked as
    /// [`Cohort::from_frames`] does.
    pub fn from_arrow(
        patients: ArrowTable,
        events: ArrowTable,
        encounters: ArrowTable,
        opts: &LoadOptions,
    ) -> Result<Cohort, InputError> {
        Cohort::from_arrow_with_medications(patients, events, encounters, None, opts)
    }

    /// [`Cohort::from_arrow`] with the optional medications table.
    pub fn from_arrow_with_medications(
        patients: ArrowTable,
        events: ArrowTable,
        encounters: ArrowTable,
        medications: Option<ArrowTable>,
        opts: &LoadOptions,
    ) -> Result<Cohort, InputError> {
        let frame = |name: &'static str, t: ArrowTable| -> Result<DataFrame, InputError> {
            frame::from_batches(t).map_err(|e| {
                let mut ck = Checker::default();
                frame::polars_err(&mut ck, name, e);
                let mut c = Cohort::default();
                finish(&mut c, ck);
                InputError::Invalid {
                    dir: PathBuf::new(),
                    report: Box::new(c.report),
                }
            })
        };
        let medications = match medications {
            Some(m) => Some(frame(MEDICATIONS_FILE, m)?),
            None => None,
        };
        Cohort::from_frames_with_medications(
            frame(PATIENTS_FILE, patients)?,
            frame(EVENTS_FILE, events)?,
            frame(ENCOUNTERS_FILE, encounters)?,
            medications,
            opts,
        )
    }

    /// `Ok(self)` when the report has no errors.
    fn checked(self) -> Result<Cohort, InputError> {
        if self.report.is_ok() {
            Ok(self)
        } else {
            Err(InputError::Invalid {
                dir: self.dir.clone(),
                report: Box::new(self.report),
            })
        }
    }
}

/// One table as Arrow record batches (each carries its schema), in row order.
pub type ArrowTable = Vec<polars_arrow::record_batch::RecordBatch>;
