//! A cohort read in parts (an engine's tasks, each holding whole PCNs): the checks that need
//! whole files, decided once from what the parts hand up (their rejected rows, numbered within
//! the whole files, and each file's row count), by the same rule and in the same words as for a
//! cohort read whole: each file's rejected-row warnings, "has no rows", and the error of a file
//! with more than `max_reject_fraction` of its rows rejected.
//!
//! Pipeline position: part of the first stage, `input`; the Spark driver calls it through the
//! Python extension once its tasks have read their parts.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::checker::Checker;
use super::contract::{self, reason};
use super::LoadOptions;
use crate::report::{Reject, ValidationReport};

/// Why a part of rejected rows written by an engine's task could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RejectPartError {
    /// The file is missing, is not Parquet or lacks a column.
    #[error("rejected rows part {path}: {reason}")]
    Unreadable {
        /// The part.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A row names a file, column or reason that is not the cohort contract's, or no row of
    /// the file (a row number below 1).
    #[error("rejected rows part {path}, row {at}: {what} is not a row, column and reason of a cohort contract file")]
    NotContract {
        /// The part.
        path: PathBuf,
        /// 1-based row in the part.
        at: usize,
        /// What the row says: file, row in it (`(null)` when missing), column and reason.
        what: String,
    },
    /// The part holds another number of rows than its task said it wrote (cut short, or
    /// written twice).
    #[error("rejected rows part {path} holds {read} rows, but its task wrote {written}")]
    Count {
        /// The part.
        path: PathBuf,
        /// Rows read.
        read: usize,
        /// Rows the task said it wrote.
        written: u64,
    },
}

/// The rejected rows one task of an engine wrote (Parquet, columns `file`, `row` (1-based in
/// the whole file), `column` and `reason`; `written` rows, as the task said), read back into
/// the contract's own names: the tasks write their rejects beside their lists so that the
/// driver's Python never holds them as objects; the reduce step reads the parts and gives them
/// to [`whole_files`].
pub fn read_reject_part(path: &Path, written: u64) -> Result<Vec<Reject>, RejectPartError> {
    let bad = |reason: String| RejectPartError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| bad(e.to_string()))?;
    let text = |name: &str| -> Result<StringChunked, RejectPartError> {
        let c = df.column(name).map_err(|e| bad(e.to_string()))?;
        Ok(c.str().map_err(|e| bad(e.to_string()))?.clone())
    };
    let (files, columns, reasons) = (text("file")?, text("column")?, text("reason")?);
    let rows = df
        .column("row")
        .and_then(|c| c.cast(&DataType::UInt64))
        .map_err(|e| bad(e.to_string()))?;
    let rows = rows.u64().map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(df.height());
    for (k, (((f, r), c), w)) in files
        .iter()
        .zip(rows.iter())
        .zip(columns.iter())
        .zip(reasons.iter())
        .enumerate()
    {
        let found = match (f, r, c, w) {
            (Some(f), Some(r), Some(c), Some(w)) if r >= 1 => reject_of(f, r, c, w),
            _ => None,
        };
        out.push(found.ok_or_else(|| RejectPartError::NotContract {
            path: path.to_path_buf(),
            at: k + 1,
            what: format!(
                "{} row {}, column {} ({})",
                f.unwrap_or("(null)"),
                r.map_or("(null)".into(), |r| r.to_string()),
                c.unwrap_or("(null)"),
                w.unwrap_or("(null)")
            ),
        })?);
    }
    if out.len() as u64 != written {
        return Err(RejectPartError::Count {
            path: path.to_path_buf(),
            read: out.len(),
            written,
        });
    }
    Ok(out)
}

/// A rejected row handed up as text (file, 1-based row in the whole file, column, reason),
/// read back into the contract's own names; `None` when one of them is not the contract's.
pub fn reject_of(file: &str, row: u64, column: &str, why: &str) -> Option<Reject> {
    let file = contract::FILES.into_iter().find(|f| *f == file)?;
    let column = contract::columns(file)?
        .iter()
        .map(|c| c.name)
        .find(|c| *c == column)?;
    let reason = reason::ALL.into_iter().find(|r| *r == why)?;
    Some(Reject {
        file,
        row,
        column,
        reason,
    })
}

/// The whole files' checks: `files` each contract file read with its rows (in any order; a
/// file not named was not given), `rejects` every part's rejected rows. Returns the rejects in
/// the order a whole read gives them (file by file in contract order, then by row, column and
/// reason) and the report: per-file counts, the rejected-row warnings and any error.
pub fn whole_files(
    files: &[(String, u64)],
    rejects: Vec<Reject>,
    opts: &LoadOptions,
) -> (Vec<Reject>, ValidationReport) {
    let mut ck = Checker::default();
    let mut rest = rejects;
    for name in contract::FILES {
        let mine;
        (mine, rest) = rest.into_iter().partition(|r| r.file == name);
        match files.iter().find(|(f, _)| f == name) {
            Some(&(_, rows)) => ck.finish_file(name, rows, mine, opts),
            // Rows rejected in a file whose rows were not counted: never dropped unsaid.
            None if !mine.is_empty() => ck.file_error(
                name,
                None,
                format!(
                    "{} rows rejected in a file whose rows were not counted",
                    mine.len()
                ),
            ),
            None => {}
        }
    }
    let report = ValidationReport {
        // Errors first, as a whole read reports them.
        problems: {
            let mut p = ck.problems;
            p.sort_by_key(|p| p.severity);
            p
        },
        files: ck.files,
        distinct_codes: Vec::new(),
    };
    (ck.rejects, report)
}

/// The error of a cohort read in parts whose `patients.parquet` gives one pseudonym to more
/// than one row (an engine finds them across its parts: `rows`, 1-based, every row after each
/// pseudonym's first), in the words a whole read reports it; `None` when there are none.
pub fn duplicate_pseudonyms(mut rows: Vec<u64>) -> Option<ValidationReport> {
    rows.sort_unstable();
    let mut ck = Checker::default();
    ck.rows(
        crate::report::Severity::Error,
        contract::PATIENTS_FILE,
        "patient_id",
        contract::DUPLICATE_PSEUDONYM,
        &rows,
    );
    (!ck.problems.is_empty()).then(|| ValidationReport {
        problems: ck.problems,
        files: Vec::new(),
        distinct_codes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(file: &'static str, row: u64, why: &'static str) -> Reject {
        Reject {
            file,
            row,
            column: "patient_id",
            reason: why,
        }
    }

    /// A row of a test part: file, row, column, reason.
    type PartRow<'a> = (&'a str, i64, &'a str, &'a str);

    fn write_part(path: &Path, rows: &[PartRow]) {
        let mut df = df!(
            "file" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "row" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "column" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "reason" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(path).unwrap())
            .finish(&mut df)
            .unwrap();
    }

    #[test]
    fn a_tasks_rejects_part_is_read_back_in_the_contracts_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.parquet");
        write_part(
            &path,
            &[
                (
                    contract::EVENTS_FILE,
                    12,
                    "patient_id",
                    reason::UNKNOWN_PATIENT,
                ),
                (
                    contract::ENCOUNTERS_FILE,
                    3,
                    "patient_id",
                    reason::NULL_PATIENT,
                ),
            ],
        );
        assert_eq!(
            read_reject_part(&path, 2).unwrap(),
            vec![
                reject(contract::EVENTS_FILE, 12, reason::UNKNOWN_PATIENT),
                reject(contract::ENCOUNTERS_FILE, 3, reason::NULL_PATIENT),
            ]
        );
        // Refused, with the part and what is wrong named, never dropped: a row that is not the
        // contract's, a row number below 1 (no row of the file), a part holding other than the
        // rows its task wrote.
        const E: &str = contract::EVENTS_FILE;
        const WHY: &str = reason::UNKNOWN_PATIENT;
        let cases: [(&[PartRow], u64, &str); 3] = [
            (
                &[(E, 12, "patient_id", WHY), (E, 13, "nhs_number", WHY)],
                2,
                "part-00000.parquet, row 2: events.parquet row 13, column nhs_number",
            ),
            (
                &[(E, 0, "patient_id", WHY)],
                1,
                "row 1: events.parquet row 0",
            ),
            (
                &[(E, 7, "patient_id", WHY)],
                2,
                "holds 1 rows, but its task wrote 2",
            ),
        ];
        for (rows, written, said) in cases {
            write_part(&path, rows);
            let err = read_reject_part(&path, written).unwrap_err().to_string();
            assert!(err.contains(said), "{err}");
        }
        // A missing part is an error naming it.
        let err = read_reject_part(&dir.path().join("gone.parquet"), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone.parquet"), "{err}");
    }

    #[test]
    fn duplicate_pseudonyms_found_in_parts_read_as_a_whole_read_says_them() {
        assert!(duplicate_pseudonyms(Vec::new()).is_none());
        let r = duplicate_pseudonyms(vec![90, 3, 7, 12, 40, 41]).unwrap();
        assert_eq!(r.errors(), 1);
        assert_eq!(
            r.problems[0].to_string(),
            "error: patients.parquet, column patient_id: duplicate pseudonym (6 rows; rows 3, 7, 12, 40, 41, ...)"
        );
    }

    #[test]
    fn a_reject_reads_back_only_into_the_contract_s_names() {
        let r = reject_of("events.parquet", 7, "patient_id", reason::NULL_PATIENT).unwrap();
        assert_eq!(r, reject(contract::EVENTS_FILE, 7, reason::NULL_PATIENT));
        assert!(reject_of("events.parquet", 7, "nhs_number", reason::NULL_PATIENT).is_none());
        assert!(reject_of("events.parquet", 7, "patient_id", "bad luck").is_none());
        assert!(reject_of("other.parquet", 7, "patient_id", reason::NULL_PATIENT).is_none());
    }

    #[test]
    fn parts_rejects_are_judged_on_the_whole_files() {
        let opts = LoadOptions {
            max_reject_fraction: 0.01,
            ..LoadOptions::default()
        };
        // Two parts' rejects, handed up out of order: 2 of 100 encounter rows (2%, over the
        // limit) and 1 of 1,000 event rows (0.1%).
        let rejects = vec![
            reject(contract::ENCOUNTERS_FILE, 90, reason::UNKNOWN_PATIENT),
            reject(contract::EVENTS_FILE, 500, reason::NULL_PATIENT),
            reject(contract::ENCOUNTERS_FILE, 3, reason::UNKNOWN_PATIENT),
        ];
        let files = [
            ("patients.parquet".to_string(), 40),
            ("encounters.parquet".to_string(), 100),
            ("events.parquet".to_string(), 1000),
        ];
        let (sorted, report) = whole_files(&files, rejects, &opts);
        let rows: Vec<(&str, u64)> = sorted.iter().map(|r| (r.file, r.row)).collect();
        assert_eq!(
            rows,
            [
                ("events.parquet", 500),
                ("encounters.parquet", 3),
                ("encounters.parquet", 90)
            ]
        );
        let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            text,
            [
                "error: encounters.parquet: 2 of 100 rows rejected, more than the 1.00% allowed (--max-rejected); see the rejected-row warnings",
                "warning: events.parquet, column patient_id: row rejected: null patient_id (1 row; row 500)",
                "warning: encounters.parquet, column patient_id: row rejected: patient_id not in patients.parquet (2 rows; rows 3, 90)",
            ]
        );
        assert!(!report.is_ok());
        let counts: Vec<(&str, u64, u64)> = report
            .files
            .iter()
            .map(|c| (c.file.as_str(), c.rows, c.rejected))
            .collect();
        assert_eq!(
            counts,
            [
                ("patients.parquet", 40, 0),
                ("events.parquet", 1000, 1),
                ("encounters.parquet", 100, 2)
            ]
        );
    }

    #[test]
    fn rejects_of_a_file_not_counted_are_an_error_not_dropped() {
        let rejects = vec![reject(contract::MEDICATIONS_FILE, 4, reason::NULL_PATIENT)];
        let files = [("events.parquet".to_string(), 10)];
        let (_, report) = whole_files(&files, rejects, &LoadOptions::default());
        assert!(!report.is_ok());
        assert_eq!(
            report.problems[0].to_string(),
            "error: medications.parquet: 1 rows rejected in a file whose rows were not counted"
        );
    }
}
