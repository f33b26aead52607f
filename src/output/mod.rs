//! Writers for lists, scores, summaries and rejects, the run manifest, and atomic publication of
//! the output folder.
//!
//! Pipeline position: last stage. Everything is written into a temporary folder beside the
//! destination and renamed into place only when complete, so a failed run never leaves a
//! half-written list where yesterday's good one was.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use crate::codelists::{fnv1a64, Models};
use crate::cohort::{Cohort, Reject};
use crate::lists::{self, Scored, Status, Summary, SUMMARY_COLUMNS};
use crate::scores::Scorer;

/// Errors of the output stage.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Polars could not encode a table.
    #[error("cannot write {path}: {source}")]
    Encode {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: PolarsError,
    },
    /// The destination exists and is not a strata output folder.
    #[error(
        "{0} exists and is not a strata output folder (no manifest.json); refusing to replace it"
    )]
    NotOurs(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file written, for the manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// Path relative to the output folder.
    pub path: String,
    /// Data rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// FNV-1a 64 of the bytes, hex.
    pub fnv1a64: String,
}

fn record(dir: &Path, rel: &str, rows: usize) -> Result<Written, OutputError> {
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    Ok(Written {
        path: rel.to_string(),
        rows: rows as u64,
        bytes: bytes.len() as u64,
        fnv1a64: format!("{:016x}", fnv1a64(&bytes)),
    })
}

fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), OutputError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    ParquetWriter::new(&mut f)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)
        .map_err(|source| OutputError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    f.sync_all().map_err(io_err(path))
}

fn write_csv(path: &Path, df: &mut DataFrame) -> Result<(), OutputError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    CsvWriter::new(&mut f)
        .include_header(true)
        .finish(df)
        .map_err(|source| OutputError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    f.sync_all().map_err(io_err(path))
}

/// A PCN code as a safe file stem: ASCII letters, digits, '-' and '_' kept, others '_'.
pub fn file_stem(code: &str) -> String {
    let s: String = code
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

fn encode_err(path: &Path) -> impl FnOnce(PolarsError) -> OutputError + '_ {
    move |source| OutputError::Encode {
        path: path.to_path_buf(),
        source,
    }
}

/// The columns of one PCN's list, in rank order.
pub fn list_frame(
    cohort: &Cohort,
    scored: &Scored,
    scorer: &Scorer,
    patients: &[u32],
) -> PolarsResult<DataFrame> {
    let p = &cohort.patients;
    let n = patients.len();
    let idx = |i: usize| patients[i] as usize;
    let denom = scorer.efi_denominator() as f64;
    let mut cols = Vec::new();
    let col_u32 = |name: &str, f: &dyn Fn(usize) -> u32| {
        Column::new(name.into(), (0..n).map(f).collect::<Vec<u32>>())
    };
    let col_str = |name: &str, f: &dyn Fn(usize) -> String| {
        Column::new(name.into(), (0..n).map(f).collect::<Vec<String>>())
    };
    cols.push(col_u32("rank", &|i| i as u32 + 1));
    cols.push(col_str("patient_id", &|i| p.id[idx(i)].clone()));
    cols.push(col_str("practice_code", &|i| {
        p.practices[p.practice[idx(i)] as usize].clone()
    }));
    cols.push(col_str("age_band", &|i| {
        lists::age_band(scored.ages[idx(i)])
    }));
    cols.push(col_str("sex", &|i| p.sex[idx(i)].code().to_string()));
    cols.push(Column::new(
        "efi_score".into(),
        (0..n)
            .map(|i| {
                let d = scored.scores[idx(i)].efi_deficits as f64;
                (d / denom * 1000.0).round() / 1000.0
            })
            .collect::<Vec<f64>>(),
    ));
    cols.push(col_u32("efi_deficits", &|i| {
        scored.scores[idx(i)].efi_deficits
    }));
    cols.push(col_str("efi_category", &|i| {
        scored.scores[idx(i)].efi_category.name().to_string()
    }));
    cols.push(Column::new(
        "hfrs_score".into(),
        (0..n)
            .map(|i| scored.scores[idx(i)].hfrs_tenths as f64 / 10.0)
            .collect::<Vec<f64>>(),
    ));
    cols.push(col_str("hfrs_band", &|i| {
        scored.scores[idx(i)].hfrs_band.name().to_string()
    }));
    cols.push(col_u32("charlson_score", &|i| {
        scored.scores[idx(i)].charlson
    }));
    cols.push(col_str("efi_deficits_present", &|i| {
        scorer.efi_reasons(&scored.features[idx(i)])
    }));
    cols.push(col_str("hfrs_diagnoses", &|i| {
        scorer.hfrs_reasons(&scored.features[idx(i)])
    }));
    cols.push(col_str("charlson_conditions", &|i| {
        scorer.charlson_reasons(&scored.scores[idx(i)])
    }));
    cols.push(col_u32("medicines_12m", &|i| {
        scored.features[idx(i)].medicines as u32
    }));
    cols.push(col_u32("emergency_admissions_12m", &|i| {
        scored.features[idx(i)].emergency_admissions_12m as u32
    }));
    cols.push(col_u32("ae_attendances_12m", &|i| {
        scored.features[idx(i)].ae_attendances_12m as u32
    }));
    cols.push(Column::new(
        "imd_quintile".into(),
        (0..n)
            .map(|i| lists::imd_quintile(p.imd_decile[idx(i)]).map(|q| q as u32))
            .collect::<Vec<Option<u32>>>(),
    ));
    cols.push(Column::new(
        "core20".into(),
        (0..n)
            .map(|i| lists::is_core20(p.imd_decile[idx(i)]))
            .collect::<Vec<bool>>(),
    ));
    cols.push(Column::new(
        "care_home".into(),
        (0..n).map(|i| p.care_home[idx(i)]).collect::<Vec<bool>>(),
    ));
    DataFrame::new(n, cols)
}

/// Every patient's scores (one row per patient, pseudonym order), for analysts.
pub fn scores_frame(cohort: &Cohort, scored: &Scored) -> PolarsResult<DataFrame> {
    let p = &cohort.patients;
    let n = p.len();
    let s = &scored.scores;
    let status = |st: Status| match st {
        Status::Eligible => "eligible",
        Status::TooYoung => "below_min_age",
        Status::Deceased => "deceased",
        Status::NotYetBorn => "not_yet_born",
    };
    let cols = vec![
        Column::new("patient_id".into(), &p.id),
        Column::new(
            "pcn_code".into(),
            p.pcn
                .iter()
                .map(|&i| p.pcns[i as usize].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "practice_code".into(),
            p.practice
                .iter()
                .map(|&i| p.practices[i as usize].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "age_band".into(),
            scored
                .ages
                .iter()
                .map(|&a| lists::age_band(a))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            scored.status.iter().map(|&x| status(x)).collect::<Vec<_>>(),
        ),
        Column::new(
            "efi_deficits".into(),
            s.iter().map(|x| x.efi_deficits).collect::<Vec<u32>>(),
        ),
        Column::new(
            "efi_category".into(),
            s.iter().map(|x| x.efi_category.name()).collect::<Vec<_>>(),
        ),
        Column::new(
            "hfrs_score".into(),
            s.iter()
                .map(|x| x.hfrs_tenths as f64 / 10.0)
                .collect::<Vec<f64>>(),
        ),
        Column::new(
            "hfrs_band".into(),
            s.iter().map(|x| x.hfrs_band.name()).collect::<Vec<_>>(),
        ),
        Column::new(
            "charlson_score".into(),
            s.iter().map(|x| x.charlson).collect::<Vec<u32>>(),
        ),
        Column::new(
            "imd_quintile".into(),
            p.imd_decile
                .iter()
                .map(|&d| lists::imd_quintile(d).map(|q| q as u32))
                .collect::<Vec<Option<u32>>>(),
        ),
        Column::new(
            "core20".into(),
            p.imd_decile
                .iter()
                .map(|&d| lists::is_core20(d))
                .collect::<Vec<bool>>(),
        ),
    ];
    DataFrame::new(n, cols)
}

/// The summary as a table of strings (suppressed cells are `[c]`).
pub fn summary_frame(summary: &Summary) -> PolarsResult<DataFrame> {
    let n = summary.rows.len();
    let [l0, l1] = summary.label_names;
    let mut cols = vec![
        Column::new(
            l0.into(),
            summary
                .rows
                .iter()
                .map(|r| r.0.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            l1.into(),
            summary
                .rows
                .iter()
                .map(|r| r.1.as_str())
                .collect::<Vec<_>>(),
        ),
    ];
    for (c, name) in SUMMARY_COLUMNS.iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            (0..n)
                .map(|r| summary.cells[r * 5 + c].text())
                .collect::<Vec<String>>(),
        ));
    }
    DataFrame::new(n, cols)
}

/// Rejected rows as a table.
pub fn rejects_frame(rejects: &[Reject]) -> PolarsResult<DataFrame> {
    let n = rejects.len();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "file".into(),
                rejects.iter().map(|r| r.file).collect::<Vec<_>>(),
            ),
            Column::new(
                "row".into(),
                rejects.iter().map(|r| r.row).collect::<Vec<u64>>(),
            ),
            Column::new(
                "column".into(),
                rejects.iter().map(|r| r.column).collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                rejects.iter().map(|r| r.reason).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Write every output of a scoring run into `dir` (which must exist and be empty). Returns the
/// files written, in a fixed order.
#[allow(clippy::too_many_arguments)]
pub fn write_outputs(
    dir: &Path,
    cohort: &Cohort,
    scored: &Scored,
    models: &Models,
    ranked: &[(u32, Vec<u32>)],
    summary: &Summary,
    equity: &Summary,
) -> Result<Vec<Written>, OutputError> {
    let scorer = Scorer::new(models);
    let lists_dir = dir.join("lists");
    std::fs::create_dir_all(&lists_dir).map_err(io_err(&lists_dir))?;
    // Distinct stems even if two PCN codes clean up to the same text.
    let mut stems: Vec<String> = Vec::new();
    for (pcn, _) in ranked {
        let base = file_stem(&cohort.patients.pcns[*pcn as usize]);
        let mut stem = base.clone();
        let mut k = 2;
        while stems.contains(&stem) {
            stem = format!("{base}~{k}");
            k += 1;
        }
        stems.push(stem);
    }
    // The lists and the cohort-wide scores file are independent: write them side by side.
    let (per_pcn, scores) = rayon::join(
        || {
            ranked
                .par_iter()
                .zip(stems.par_iter())
                .map(|((_, pats), stem)| {
                    let csv_rel = format!("lists/{stem}.csv");
                    let pq_rel = format!("lists/{stem}.parquet");
                    let csv = dir.join(&csv_rel);
                    let mut df =
                        list_frame(cohort, scored, &scorer, pats).map_err(encode_err(&csv))?;
                    write_csv(&csv, &mut df)?;
                    write_parquet(&dir.join(&pq_rel), &mut df)?;
                    Ok(vec![
                        record(dir, &csv_rel, pats.len())?,
                        record(dir, &pq_rel, pats.len())?,
                    ])
                })
                .collect::<Vec<Result<Vec<Written>, OutputError>>>()
        },
        || -> Result<Written, OutputError> {
            let path = dir.join("scores.parquet");
            let mut df = scores_frame(cohort, scored).map_err(encode_err(&path))?;
            write_parquet(&path, &mut df)?;
            record(dir, "scores.parquet", df.height())
        },
    );
    let mut written = Vec::new();
    for w in per_pcn {
        written.extend(w?);
    }
    written.push(scores?);

    let path = dir.join("summary.csv");
    let mut df = summary_frame(summary).map_err(encode_err(&path))?;
    write_csv(&path, &mut df)?;
    written.push(record(dir, "summary.csv", df.height())?);

    let path = dir.join("equity.csv");
    let mut df = summary_frame(equity).map_err(encode_err(&path))?;
    write_csv(&path, &mut df)?;
    written.push(record(dir, "equity.csv", df.height())?);

    if !cohort.rejects.is_empty() {
        let path = dir.join("rejects.csv");
        let mut df = rejects_frame(&cohort.rejects).map_err(encode_err(&path))?;
        write_csv(&path, &mut df)?;
        written.push(record(dir, "rejects.csv", df.height())?);
    }
    Ok(written)
}

/// Write `value` as pretty JSON to `path`, synced.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    let text =
        serde_json::to_string_pretty(value).map_err(|e| io_err(path)(std::io::Error::other(e)))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))?;
    f.write_all(b"\n").map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Build an output folder atomically: `fill` writes into a fresh temporary folder beside `out`;
/// only when it succeeds is the folder renamed to `out` (the previous `out`, if any, is moved
/// aside first and removed after). On failure the temporary folder is removed and `out` is left
/// as it was.
pub fn publish<T, E: From<OutputError>>(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| E::from(io_err(&parent)(e)))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    if out.exists() && !out.join("manifest.json").is_file() && !is_empty_dir(out) {
        return Err(E::from(OutputError::NotOurs(out.to_path_buf())));
    }
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".{name}.partial-{nonce}"));
    std::fs::create_dir(&tmp).map_err(|e| E::from(io_err(&tmp)(e)))?;
    let result = fill(&tmp);
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let old = parent.join(format!(".{name}.previous-{nonce}"));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old).map_err(|e| E::from(io_err(out)(e)))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(E::from(io_err(out)(e)));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(value)
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}
