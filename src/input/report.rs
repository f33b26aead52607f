//! What reading a cohort found: problems (errors and warnings) with file, column and rows,
//! rejected rows, per-file counts, and the errors of the input stage.
//!
//! Pipeline position: part of the first stage, `input`; every adaptor reports through one
//! [`Checker`], so a problem reads the same whichever adaptor met it.

use std::fmt;
use std::path::PathBuf;

use super::LoadOptions;

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

const MAX_ROWS_SHOWN: usize = 5;

/// Collects problems and rejects while reading.
#[derive(Default)]
pub(crate) struct Checker {
    pub(crate) problems: Vec<Problem>,
    pub(crate) files: Vec<FileCounts>,
    pub(crate) rejects: Vec<Reject>,
    /// How each large file was decoded: (file, path name).
    pub(crate) paths: Vec<(String, String)>,
}

impl Checker {
    /// Add what another checker found after what this one found.
    pub(crate) fn append(&mut self, other: Checker) {
        self.problems.extend(other.problems);
        self.files.extend(other.files);
        self.rejects.extend(other.rejects);
        self.paths.extend(other.paths);
    }

    /// A problem with a whole file (or one of its columns): the cohort is refused.
    pub(crate) fn file_error(&mut self, file: &str, column: Option<&str>, message: String) {
        self.problems.push(Problem {
            severity: Severity::Error,
            file: file.to_string(),
            column: column.map(|c| c.to_string()),
            message,
            count: 0,
            first_rows: vec![],
        });
    }

    /// A problem found on `rows` (1-based); nothing is recorded when there are none.
    pub(crate) fn rows(
        &mut self,
        sev: Severity,
        file: &str,
        column: &str,
        message: &str,
        rows: &[u64],
    ) {
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

impl Checker {
    /// Record a file's counts and rejects, and turn a high reject rate into an error.
    pub(crate) fn finish_file(
        &mut self,
        name: &'static str,
        rows: u64,
        mut rejects: Vec<Reject>,
        opts: &LoadOptions,
    ) {
        let ck = self;
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
}
