//! The checker every input adaptor reports through, so a problem reads the same whichever
//! adaptor met it (the values it fills are `crate::report`'s).
//!
//! Pipeline position: part of the first stage, `input`.

use super::LoadOptions;
use crate::report::{FileCounts, Problem, Reject, Scope, Severity};

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
            scope: Scope::Rows,
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
            scope: Scope::Rows,
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
                scope: Scope::WholeFile,
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
            if let Some(p) = ck.problems.last_mut() {
                p.scope = Scope::WholeFile;
            }
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
