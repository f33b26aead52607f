//! The cohort contract: the files, their columns, the types each column accepts, and the rules a
//! row must meet. One definition used by every input adaptor, by `synth` (which writes cohorts in
//! it) and by the tests, as ehrQL's table schemas are.
//!
//! Pipeline position: part of the first stage, `input`. README.md, "The cohort contract", is the
//! same contract in prose.

use polars::prelude::DataType;

use crate::cohort::Sex;

/// Registered patients, one row each.
pub const PATIENTS_FILE: &str = "patients.parquet";
/// Coded clinical events.
pub const EVENTS_FILE: &str = "events.parquet";
/// Hospital encounters.
pub const ENCOUNTERS_FILE: &str = "encounters.parquet";
/// Prescriptions issued (optional): when present, the eFI's polypharmacy is counted from it.
pub const MEDICATIONS_FILE: &str = "medications.parquet";

/// The Parquet key-value metadata key with which `strata synth` marks every file it writes
/// (pyarrow keeps it as Arrow schema metadata): its value says what made the file. A cohort
/// without it is taken for real (local) data.
pub const SYNTHETIC_KEY: &str = "strata.synthetic";

/// One column of the contract.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    /// Column name, exactly as it must appear.
    pub name: &'static str,
    /// A file without it is refused.
    pub required: bool,
    /// Physical types accepted.
    pub kind: Kind,
    /// Read by strata (others are only type-checked).
    pub used: bool,
}

/// The physical types a column accepts; each adaptor normalises them once at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
    /// Whether a column of type `dt` is accepted.
    pub fn accepts(self, dt: &DataType) -> bool {
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

    /// The accepted types, for messages.
    pub fn describe(self) -> &'static str {
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

/// An optional column the main decoders do not read: `input::links` reads it in a pass of its
/// own.
const fn opt_side(name: &'static str, kind: Kind) -> ColumnSpec {
    checked(opt(name, kind))
}

/// A column checked against the contract but not read (kept in the contract for later stages).
const fn checked(spec: ColumnSpec) -> ColumnSpec {
    ColumnSpec {
        used: false,
        ..spec
    }
}

/// Columns of `patients.parquet`.
pub const PATIENT_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    req("birth_date", Kind::Date),
    req("sex", Kind::Text),
    req("practice_code", Kind::Text),
    req("pcn_code", Kind::Text),
    opt("imd_decile", Kind::Int),
    opt("ethnicity_group", Kind::Text),
    opt("care_home", Kind::Bool),
    opt("death_date", Kind::Date),
    // Registration with the practice (GP registration periods): people not registered for the
    // whole outcome year are left out of training and evaluation.
    opt("registration_start", Kind::Date),
    opt("registration_end", Kind::Date),
];

/// Columns of `events.parquet`.
pub const EVENT_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    req("event_date", Kind::Date),
    req("code_system", Kind::Text),
    // SNOMED CT and dm+d ids are often held as bigint columns.
    req("code", Kind::Id),
    checked(opt("value", Kind::Number)),
    // Links a hospital diagnosis to its admission (`encounters.parquet`); read for the injury
    // and falls diagnoses of the falls admission definition (`input::links`).
    opt_side("encounter_id", Kind::Id),
    // Diagnosis position on that encounter, 1 = primary (HES DIAG_01).
    opt_side("position", Kind::Int),
];

/// Columns of `encounters.parquet`.
pub const ENCOUNTER_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    checked(req("encounter_id", Kind::Id)),
    req("setting", Kind::Text),
    req("start_date", Kind::Date),
    req("end_date", Kind::Date),
    req("emergency", Kind::Bool),
    // Optional HES fields for spells (`input::links`, `input::spells`): the provider spell, and
    // ADMIMETH, ADMISORC and DISDEST as in the NHS Data Dictionary.
    opt_side("spell_id", Kind::Id),
    opt_side("admission_method", Kind::Id),
    opt_side("admission_source", Kind::Id),
    opt_side("discharge_destination", Kind::Id),
];

/// Columns of `medications.parquet` (optional file).
pub const MEDICATION_COLUMNS: &[ColumnSpec] = &[
    req("patient_id", Kind::Id),
    req("issue_date", Kind::Date),
    // dm+d id of the product issued (VMP, AMP, VMPP or AMPP); SNOMED CT ids of dm+d concepts
    // are the same numbers.
    req("dmd_code", Kind::Id),
    // Virtual Therapeutic Moiety (or ingredient) id: when given, medicines are counted by it,
    // so one drug at two strengths or forms is one medicine.
    opt("vtm_code", Kind::Id),
    // BNF code: chapters 20-23 (dressings, appliances, incontinence and stoma products) are
    // devices, not medicines, and are not counted.
    opt("bnf_code", Kind::Text),
];

/// Is a BNF code in the device chapters (20 dressings, 21 appliances, 22 incontinence, 23
/// stoma)? BNF codes start with the two-digit chapter.
pub fn is_bnf_device(bnf: &str) -> bool {
    matches!(bnf.trim().get(..2), Some("20" | "21" | "22" | "23"))
}

/// A pseudonym given to two patient rows: an error of `patients.parquet` (the cohort is
/// refused), however the cohort is read.
pub const DUPLICATE_PSEUDONYM: &str = "duplicate pseudonym";

/// Reasons a row is rejected, shared by events and encounters and by every adaptor.
pub mod reason {
    pub const MALFORMED_DMD: &str = "dm+d code is not 6 to 18 digits";
    pub const NULL_PATIENT: &str = "null patient_id";
    pub const UNKNOWN_PATIENT: &str = "patient_id not in patients.parquet";
    pub const NULL_DATE: &str = "null date";
    pub const DATE_RANGE: &str = "date before 1900 or after today";
    pub const NULL_SYSTEM: &str = "null code_system";
    pub const UNKNOWN_SYSTEM: &str = "unknown code_system";
    pub const NULL_CODE: &str = "null code";
    pub const UNKNOWN_SETTING: &str = "setting is not inpatient, ae or outpatient";
    pub const END_BEFORE_START: &str = "end_date before start_date";
    pub const NULL_EMERGENCY: &str = "null emergency flag on an inpatient admission";
    /// Every reason, for reading one back from its text.
    pub const ALL: [&str; 11] = [
        MALFORMED_DMD,
        NULL_PATIENT,
        UNKNOWN_PATIENT,
        NULL_DATE,
        DATE_RANGE,
        NULL_SYSTEM,
        UNKNOWN_SYSTEM,
        NULL_CODE,
        UNKNOWN_SETTING,
        END_BEFORE_START,
        NULL_EMERGENCY,
    ];
}

/// The contract files, in the order a cohort is read and reported.
pub const FILES: [&str; 4] = [
    PATIENTS_FILE,
    EVENTS_FILE,
    ENCOUNTERS_FILE,
    MEDICATIONS_FILE,
];

/// The columns of one contract file by its name.
pub fn columns(file: &str) -> Option<&'static [ColumnSpec]> {
    match file {
        PATIENTS_FILE => Some(PATIENT_COLUMNS),
        EVENTS_FILE => Some(EVENT_COLUMNS),
        ENCOUNTERS_FILE => Some(ENCOUNTER_COLUMNS),
        MEDICATIONS_FILE => Some(MEDICATION_COLUMNS),
        _ => None,
    }
}

/// Parse a `sex` value: `F`/`M`/`U` (any case), `female`/`male`/`unknown`, the NHS data
/// dictionary's `2`/`1`/`9`/`0`; null or empty is `U`. `None` for anything else.
pub fn parse_sex(raw: Option<&str>) -> Option<Sex> {
    match raw.map(str::trim) {
        None | Some("") => Some(Sex::U),
        Some(s) if s.eq_ignore_ascii_case("f") || s.eq_ignore_ascii_case("female") || s == "2" => {
            Some(Sex::F)
        }
        Some(s) if s.eq_ignore_ascii_case("m") || s.eq_ignore_ascii_case("male") || s == "1" => {
            Some(Sex::M)
        }
        Some(s)
            if s.eq_ignore_ascii_case("u")
                || s.eq_ignore_ascii_case("unknown")
                || s == "9"
                || s == "0" =>
        {
            Some(Sex::U)
        }
        Some(_) => None,
    }
}
