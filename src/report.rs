//! What reading a cohort found, as plain values: problems (errors and warnings) with file,
//! column and rows, rejected rows, per-file counts, what building the spells found, and the
//! errors of the input stage.
//!
//! Pipeline position: the bottom layer, beside `cohort` (which carries its report): `input`
//! fills these through its checker and `run` writes them to the manifest; nothing here reads a
//! file.

use std::fmt;
use std::path::PathBuf;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The cohort is refused.
    Error,
    /// Rows were rejected or something looks odd; the run goes on.
    Warning,
}

/// Of what a problem is true, when a cohort is read in parts (an engine's tasks, each holding
/// whole PCNs): what the run's reduce step (`finish`) does with a part's problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Of some of the part's rows: true of the cohort when any part has it.
    #[default]
    Rows,
    /// Of a whole file (its rows counted, rows rejected, no rows at all): decided again from
    /// the whole files ([`crate::input::parts::whole_files`]), never from a part.
    WholeFile,
    /// Of the part as a whole (no prescriptions in it): true of the cohort only when every
    /// part has it.
    EveryPart,
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
    /// Of what it is true when the cohort is read in parts.
    #[serde(skip)]
    pub scope: Scope,
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

/// How falls diagnoses were tied to their admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallsLink {
    /// By `encounter_id` on `events.parquet` (the published definition).
    #[default]
    EncounterId,
    /// By date within the stay: the extract has no links (or links none of its injury and falls
    /// diagnoses).
    Date,
}

/// What building the spells found, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpellReport {
    /// Inpatient encounters read.
    pub inpatient_encounters: u64,
    /// Spells they form.
    pub spells: u64,
    /// Of which emergency admissions.
    pub emergency_spells: u64,
    /// Of which falls admissions (at any date).
    pub falls_spells: u64,
    /// Spells of more than one encounter (transfers, nested stays).
    pub joined_spells: u64,
    /// The optional `encounters.parquet` columns the extract gave.
    pub columns: Vec<String>,
    /// Inpatient encounters whose `admission_method` and `emergency` flag disagree (the method
    /// decides).
    pub method_disagreements: u64,
    /// How falls diagnoses were tied to their admission.
    pub falls_link: FallsLink,
    /// Whether diagnoses carry a `position` (1 = primary).
    pub diagnosis_position: bool,
    /// Injury and falls diagnoses whose `encounter_id` names no inpatient encounter of the same
    /// patient (A&E and outpatient attendances included).
    pub unmatched_links: u64,
}

impl SpellReport {
    /// Add another part's report (a cohort read in parts, each holding whole PCNs): counts
    /// summed; the optional columns and the diagnosis positions are the files', so any part's
    /// count; falls are linked by `encounter_id` when any part links them so.
    pub fn add(&mut self, other: &SpellReport) {
        self.inpatient_encounters += other.inpatient_encounters;
        self.spells += other.spells;
        self.emergency_spells += other.emergency_spells;
        self.falls_spells += other.falls_spells;
        self.joined_spells += other.joined_spells;
        self.method_disagreements += other.method_disagreements;
        self.unmatched_links += other.unmatched_links;
        for c in &other.columns {
            if !self.columns.contains(c) {
                self.columns.push(c.clone());
            }
        }
        if other.falls_link == FallsLink::EncounterId {
            self.falls_link = FallsLink::EncounterId;
        }
        self.diagnosis_position |= other.diagnosis_position;
    }
}
