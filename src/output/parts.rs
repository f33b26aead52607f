//! The patients' files of a run scored in parts (an engine's tasks, each holding whole PCNs):
//! each PCN's list and programme lists and its part of the scores table, written by the tasks
//! into a staging folder as the binary writes them, and who dropped off each list; moved into
//! the run's folder with each PCN's documents made from its list (read back one PCN at a time,
//! so the reduce step never holds every list), in the order and under the names
//! [`super::write_outputs`] gives a run held in memory, so both engines' folders are the same
//! bytes.
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

/// A PCN's list as its task wrote it into the staging folder: PCN code, and the records of its
/// `.csv` and `.parquet` (paths relative to the run folder, as the binary names them).
pub type StagedList = (String, Written, Written);

/// A programme list as its task wrote it: programme index (configuration order), PCN code,
/// programme name, and the records of its `.csv` and `.parquet`.
pub type ProgrammeFile = (usize, String, String, Written, Written);

/// What an engine's tasks wrote and handed up.
#[derive(Default)]
pub struct PartFiles {
    /// Each PCN's list (any order; PCN codes unique), in `stage`.
    pub lists: Vec<StagedList>,
    /// The programme lists, in `stage`.
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

/// Move a file a task wrote from `stage` into `dir` (the same relative path; the staging folder
/// is on the run folder's file system, so this is a rename); its record as the task made it.
fn move_in(stage: &Path, dir: &Path, w: Written) -> Result<Written, OutputError> {
    let (from, to) = (stage.join(&w.path), dir.join(&w.path));
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(crate::publish::io_err(parent))?;
    }
    std::fs::rename(&from, &to).map_err(crate::publish::io_err(&from))?;
    Ok(w)
}

/// Write `bytes` as `dir/rel`, synced; its record with `rows` data rows.
fn write_bytes(dir: &Path, rel: &str, bytes: &[u8], rows: usize) -> Result<Written, OutputError> {
    let path = dir.join(rel);
    let mut f = OutFile::create(&path)?;
    f.write_all(bytes).map_err(crate::publish::io_err(&path))?;
    Ok(record(rel, rows, f.finish()?))
}

/// The rows of a Parquet file.
fn parquet_frame(path: &Path) -> Result<DataFrame, OutputError> {
    let f = std::fs::File::open(path).map_err(crate::publish::io_err(path))?;
    ParquetReader::new(f).finish().map_err(encode_err(path))
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

/// Put what the tasks wrote and handed up into `dir` (which must exist and be empty): per PCN
/// (in code order) its list, its documents (made here from the list, read back from the file,
/// and the run's protected tables), what dropped off it; then the scores file, or the scores
/// table's parts; the programme lists by programme, then PCN.
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
    let stage = stage.as_deref();
    let staged_in = |dir: &Path| -> Result<&Path, OutputError> {
        stage.ok_or_else(|| OutputError::Document {
            path: dir.to_path_buf(),
            source: "files written by the tasks, but no staging folder given".into(),
        })
    };
    // A list's `.csv` and `.parquet` (`what`: whose list) moved in, once their staged paths are
    // checked to be `name`.csv and `name`.parquet, the binary's names.
    let move_pair = |what: &str, name: &str, csv: Written, parquet: Written| {
        let stage = staged_in(dir)?;
        let mut moved = Vec::with_capacity(2);
        for (w, ext) in [(csv, "csv"), (parquet, "parquet")] {
            if w.path != format!("{name}.{ext}") {
                return Err(OutputError::Document {
                    path: dir.join(&w.path),
                    source: format!("{what} was staged as {}, not {name}.{ext}", w.path).into(),
                });
            }
            moved.push(move_in(stage, dir, w)?);
        }
        Ok(moved)
    };
    let (per_pcn, scores) = rayon::join(
        || {
            lists
                .into_par_iter()
                .zip(stems.par_iter())
                .map(|((pcn, csv, parquet), stem)| {
                    create_pcn_folder(dir, stem)?;
                    let stem = pcn_file(stem);
                    let mut written = move_pair(&format!("PCN {pcn}'s list"), &stem, csv, parquet)?;
                    // One PCN's list in memory at a time (a thread's), for its documents.
                    let list = parquet_frame(&dir.join(&written[1].path))?;
                    let rows = list.height();
                    let summary =
                        PcnSummary::new(docs.summary, docs.profile, &pcn, docs.as_of, docs.rules);
                    for w in PCN_FORMATS {
                        let rel = format!("{stem}.{}", w.extension());
                        let digest = w.write(&dir.join(&rel), &list, &summary)?;
                        written.push(record(&rel, rows, digest));
                    }
                    if let Some(d) = dropped.get(&pcn) {
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
    // The tasks' other files (the scores table's parts), moved into place in path order.
    staged.sort_by(|a, b| a.path.cmp(&b.path));
    for w in staged {
        written.push(move_in(staged_in(dir)?, dir, w)?);
    }
    let stem_of: std::collections::HashMap<&str, &String> =
        codes.iter().map(String::as_str).zip(&stems).collect();
    let mut programmes = programmes;
    programmes.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut programme_files = Vec::new();
    for (_, pcn, name, csv, parquet) in programmes {
        let stem = stem_of
            .get(pcn.as_str())
            .ok_or_else(|| OutputError::Document {
                path: dir.join(format!("lists/{pcn}")),
                source: format!("programme {name}'s list of PCN {pcn}, which has no list").into(),
            })?;
        let stem = pcn_file(stem);
        programme_files.extend(move_pair(
            &format!("PCN {pcn}'s {name} list"),
            &format!("{stem}.{name}"),
            csv,
            parquet,
        )?);
    }
    Ok(Outputs {
        files: written,
        programmes: programme_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::ListRules;
    use crate::output::PublishedTable;
    use crate::tables::CountedTable;

    fn staged(path: &str) -> Written {
        Written {
            path: path.into(),
            rows: 0,
            bytes: 0,
            sha256: String::new(),
        }
    }

    #[test]
    fn a_list_staged_under_another_name_is_refused_and_left_where_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let (stage, dir) = (tmp.path().join("stage"), tmp.path().join("run"));
        std::fs::create_dir_all(stage.join("lists/U1")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["lists/U1/U2.csv", "lists/U1/U2.parquet"] {
            std::fs::write(stage.join(f), b"x").unwrap();
        }
        let table = CountedTable {
            label_names: ["a", "b"],
            rows: Vec::new(),
            cells: Vec::new(),
            relations: Vec::new(),
            populations: Vec::new(),
            columns: &[],
            links: Default::default(),
        };
        let published = PublishedTable {
            stem: "summary",
            table: &table,
            cells: &[],
        };
        let rules = ListRules::default();
        let docs = PcnDocs {
            summary: &published,
            profile: &published,
            as_of: "2025-04-01",
            rules: &rules,
        };
        let files = PartFiles {
            lists: vec![(
                "U1".into(),
                staged("lists/U1/U2.csv"),
                staged("lists/U1/U2.parquet"),
            )],
            stage: Some(stage.clone()),
            ..Default::default()
        };
        let err = write_parts(&dir, files, &docs).unwrap_err().to_string();
        assert!(
            err.contains("PCN U1's list was staged as lists/U1/U2.csv, not lists/U1/U1.csv"),
            "{err}"
        );
        // Nothing moved in under the wrong name.
        assert!(stage.join("lists/U1/U2.csv").is_file());
        assert!(!dir.join("lists/U1/U2.csv").exists());
    }
}
