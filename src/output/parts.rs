//! The patients' files of a run scored in parts (an engine's tasks, each holding whole PCNs):
//! each PCN's list and programme lists handed up as the bytes the binary writes, the scores
//! table's rows, and who dropped off each list; written into the run's folder with each PCN's
//! documents made from its list, in the order and under the names [`super::write_outputs`]
//! gives a run held in memory, so both engines' folders are the same bytes.
//!
//! Pipeline position: `output`, for the reduce step (`finish`) of an engine that scores in
//! parts (the Spark job's driver, through the Python extension).

use std::io::Write as _;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use super::{
    create_pcn_folder, encode_err, parquet, pcn_file, pcn_stems, record, Outputs, PcnDocs,
    PcnSummary, PCN_FORMATS, SCORES_BATCH,
};
use crate::publish::{OutFile, OutputError, Written};

/// A programme list handed up: programme index (configuration order), PCN code, programme
/// name, and the bytes of its `.csv` and `.parquet`.
pub type ProgrammeFile = (usize, String, String, Vec<u8>, Vec<u8>);

/// What an engine's tasks handed up to be written.
#[derive(Default)]
pub struct PartFiles {
    /// Each PCN's list as the bytes of its `.csv` and `.parquet` (any order; PCN codes unique).
    pub lists: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// The programme lists.
    pub programmes: Vec<ProgrammeFile>,
    /// Who dropped off each PCN's list, as the bytes of its `.dropped.csv` (empty when nothing
    /// was compared).
    pub dropped: Vec<(String, Vec<u8>)>,
    /// Every patient's scores (the scores file's rows and columns), in pseudonym order, to be
    /// written as `scores.parquet`; or none, the tasks having written the table's parts
    /// themselves (`staged`).
    pub scores: Option<DataFrame>,
    /// Files the tasks wrote into `stage` themselves (the scores table's parts,
    /// `scores/part-NNNNN.parquet`), with their records: moved into the run's folder.
    pub staged: Vec<Written>,
    /// The staging folder the tasks wrote into (beside the run's folder, on its file system).
    pub stage: Option<std::path::PathBuf>,
}

/// Write `bytes` as `dir/rel`, synced; its record with `rows` data rows.
fn write_bytes(dir: &Path, rel: &str, bytes: &[u8], rows: usize) -> Result<Written, OutputError> {
    let path = dir.join(rel);
    let mut f = OutFile::create(&path)?;
    f.write_all(bytes).map_err(crate::publish::io_err(&path))?;
    Ok(record(rel, rows, f.finish()?))
}

/// The rows of a Parquet file held as bytes.
fn parquet_frame(bytes: &[u8], path: &Path) -> Result<DataFrame, OutputError> {
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(encode_err(path))
}

/// Data rows of a CSV file strata wrote (one line a row after the header; no field of the
/// files written so holds a line break).
fn csv_rows(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1)
}

/// Write what the tasks handed up into `dir` (which must exist and be empty): per PCN (in code
/// order) its list, its documents (made here from the list and the run's protected tables),
/// what dropped off it; then the scores file; the programme lists by programme, then PCN.
pub fn write_parts(dir: &Path, files: PartFiles, docs: &PcnDocs) -> Result<Outputs, OutputError> {
    let PartFiles {
        mut lists,
        programmes,
        dropped,
        scores,
        mut staged,
        stage,
    } = files;
    lists.sort_by(|a, b| a.0.cmp(&b.0));
    let codes: Vec<String> = lists.iter().map(|(pcn, _, _)| pcn.clone()).collect();
    let stems = pcn_stems(&codes);
    let dropped: std::collections::HashMap<String, Vec<u8>> = dropped.into_iter().collect();
    let (per_pcn, scores) = rayon::join(
        || {
            lists
                .par_iter()
                .zip(stems.par_iter())
                .map(|((pcn, csv, parquet), stem)| {
                    create_pcn_folder(dir, stem)?;
                    let stem = pcn_file(stem);
                    let list = parquet_frame(parquet, &dir.join(format!("{stem}.parquet")))?;
                    let rows = list.height();
                    let mut written = vec![
                        write_bytes(dir, &format!("{stem}.csv"), csv, rows)?,
                        write_bytes(dir, &format!("{stem}.parquet"), parquet, rows)?,
                    ];
                    let summary =
                        PcnSummary::new(docs.summary, docs.profile, pcn, docs.as_of, docs.rules);
                    for w in PCN_FORMATS {
                        let rel = format!("{stem}.{}", w.extension());
                        let digest = w.write(&dir.join(&rel), &list, &summary)?;
                        written.push(record(&rel, rows, digest));
                    }
                    if let Some(d) = dropped.get(pcn) {
                        let rel = format!("{stem}.dropped.csv");
                        written.push(write_bytes(dir, &rel, d, csv_rows(d))?);
                    }
                    Ok(written)
                })
                .collect::<Vec<Result<Vec<Written>, OutputError>>>()
        },
        || -> Result<Vec<Written>, OutputError> {
            let Some(df) = scores else {
                return Ok(Vec::new());
            };
            let rel = "scores.parquet";
            let path = dir.join(rel);
            let n = df.height();
            let digest = parquet::write_batched(&path, n, SCORES_BATCH, |r| {
                Ok(df.slice(r.start as i64, r.len()))
            })?;
            Ok(vec![record(rel, n, digest)])
        },
    );
    let mut written = Vec::new();
    for w in per_pcn {
        written.extend(w?);
    }
    written.extend(scores?);
    // The tasks' own files, moved into place (the staging folder is on the run folder's file
    // system), in path order.
    staged.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(stage) = &stage {
        for w in staged {
            let (from, to) = (stage.join(&w.path), dir.join(&w.path));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(crate::publish::io_err(parent))?;
            }
            std::fs::rename(&from, &to).map_err(crate::publish::io_err(&from))?;
            written.push(w);
        }
    }
    let stem_of: std::collections::HashMap<&str, &String> =
        codes.iter().map(String::as_str).zip(&stems).collect();
    let mut programmes = programmes;
    programmes.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut programme_files = Vec::new();
    for (_, pcn, name, csv, parquet) in &programmes {
        let stem = stem_of
            .get(pcn.as_str())
            .ok_or_else(|| OutputError::Document {
                path: dir.join(format!("lists/{pcn}")),
                source: format!("programme {name}'s list of PCN {pcn}, which has no list").into(),
            })?;
        let stem = pcn_file(stem);
        let rel = format!("{stem}.{name}.parquet");
        let rows = parquet_frame(parquet, &dir.join(&rel))?.height();
        programme_files.push(write_bytes(dir, &format!("{stem}.{name}.csv"), csv, rows)?);
        programme_files.push(write_bytes(dir, &rel, parquet, rows)?);
    }
    Ok(Outputs {
        files: written,
        programmes: programme_files,
    })
}
