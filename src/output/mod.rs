//! The files of a scoring run: per-PCN lists, the scores file, the protected aggregate tables
//! and rejected rows, built as tables and handed to writers.
//!
//! Pipeline position: `lists` + `disclosure` + `results` -> **output**, inside a folder that
//! `publish` makes appear atomically. The per-patient columns are defined once in [`columns`];
//! each file format is a [`TableWriter`] in a file of its own ([`csv`], [`parquet`]), or, for
//! the documents a care team opens (a PCN's list with its protected summary: [`xlsx`],
//! [`html`]), a [`PcnWriter`]: a new format is a new file, a `mod` line and its place in the
//! format lists below.

pub mod columns;
pub mod csv;
pub mod html;
pub mod indicators;
pub mod parquet;
pub mod parts;
pub mod programmes;
pub mod xlsx;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use crate::changes::{Changes, Dropped};
use crate::cohort::Cohort;
use crate::definitions::Definitions;
use crate::disclosure::Cell;
use crate::input::Reject;
use std::fmt::Write as _;

use crate::lists::{ListRules, RankBy};
use crate::publish::{record, FileDigest, OutFile, OutputError, Written};
use crate::results::Scored;
use crate::scores::Scorer;
use crate::tables::CountedTable;

pub use columns::{list_frame, scores_frame, PatientColumn, RiskColumns, PATIENT_COLUMNS};

/// A file format: encodes a table into any writer (a file being written, bytes in memory).
pub trait TableWriter: Sync {
    /// File name extension, without the dot.
    fn extension(&self) -> &'static str;
    /// Encode `df` into `w`.
    fn encode(&self, w: &mut dyn Write, df: &mut DataFrame) -> PolarsResult<()>;
    /// Write `df` to `path` (created or replaced) and sync it to disk; its size and hash.
    fn write(&self, path: &Path, df: &mut DataFrame) -> Result<FileDigest, OutputError> {
        let mut f = OutFile::create(path)?;
        self.encode(&mut f, df)
            .map_err(|source| OutputError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        f.finish()
    }
}

/// Why a PCN's document could not be made.
pub type DocumentError = Box<dyn std::error::Error + Send + Sync>;

/// A document for a PCN's care team: its list (the list's frame) and its protected summary.
pub trait PcnWriter: Sync {
    /// File name extension, without the dot.
    fn extension(&self) -> &'static str;
    /// Encode the PCN's document into `w`.
    fn encode(
        &self,
        w: &mut dyn Write,
        list: &DataFrame,
        pcn: &PcnSummary,
    ) -> Result<(), DocumentError>;
    /// Write the PCN's document to `path` (created or replaced) and sync it to disk; its size
    /// and hash.
    fn write(
        &self,
        path: &Path,
        list: &DataFrame,
        pcn: &PcnSummary,
    ) -> Result<FileDigest, OutputError> {
        let mut f = OutFile::create(path)?;
        self.encode(&mut f, list, pcn)
            .map_err(|source| OutputError::Document {
                path: path.to_path_buf(),
                source,
            })?;
        f.finish()
    }
}

/// Formats of each PCN list, in the order they are written and recorded.
pub const LIST_FORMATS: &[&dyn TableWriter] = &[&csv::Csv::EXCEL, &parquet::Parquet];
/// Documents written per PCN beside its list, in the order they are recorded.
pub const PCN_FORMATS: &[&dyn PcnWriter] = &[&xlsx::Xlsx, &html::Html];
/// Rows of the scores file built and written at a time (one row group each; polars' own row
/// group size).
pub const SCORES_BATCH: usize = 512 * 512;
/// Formats of the aggregate tables and of the rejected rows.
pub const TABLE_FORMATS: &[&dyn TableWriter] = &[&csv::Csv::PLAIN];

/// An aggregate table ready to write: its file stem, its counts and its published cells.
#[derive(Debug, Clone, Copy)]
pub struct PublishedTable<'a> {
    /// File name without extension (`summary`).
    pub stem: &'a str,
    /// The counted table (labels, layout).
    pub table: &'a CountedTable,
    /// Its published cells (from `disclosure`), same layout.
    pub cells: &'a [Cell],
}

/// The aggregate tables of a run, by file stem, in the one order the run counts, protects
/// (`disclosure::protect`), writes and records them: every engine walks this list.
pub const AGGREGATE_TABLES: [&str; 4] = ["summary", "equity", "indicators", "pcn_profile"];

/// Where the summary and the PCN profile (what a PCN's documents show) stand in
/// [`AGGREGATE_TABLES`].
pub const SUMMARY: usize = 0;
/// See [`SUMMARY`].
pub const PROFILE: usize = 3;

/// The run's published tables, one per [`AGGREGATE_TABLES`] stem, from its counted tables and
/// their protected cells (both in that order).
pub fn published<'a>(
    tables: &'a [CountedTable; 4],
    cells: &'a [Vec<Cell>],
) -> Vec<PublishedTable<'a>> {
    AGGREGATE_TABLES
        .iter()
        .zip(tables)
        .zip(cells)
        .map(|((stem, table), cells)| PublishedTable { stem, table, cells })
        .collect()
}

impl PublishedTable<'_> {
    /// The table as written: `indicators.csv`'s own layout (rates beside their counts), or the
    /// counts of the other tables ([`table_frame`]).
    pub fn frame(&self) -> PolarsResult<DataFrame> {
        if self.stem == "indicators" {
            indicators::indicators_frame(self.table, self.cells)
        } else {
            table_frame(self)
        }
    }
}

/// What a PCN's documents show beside its list: the PCN's published rows of `summary.csv` and
/// of `pcn_profile.csv` (the same cells), the as-of date and who the lists take.
#[derive(Debug, Clone)]
pub struct PcnSummary {
    /// PCN code.
    pub pcn: String,
    /// As-of date, ISO (`2025-04-01`).
    pub as_of: String,
    /// The list rules of the run.
    pub rules: ListRules,
    /// The PCN's summary rows by eFI category ([`crate::tables::COUNT_COLUMNS`]): everyone (`all`), then the
    /// most deprived fifth (`core20`).
    pub categories: Vec<(String, [Cell; 5])>,
    /// The PCN's profile rows: dimension (`all` for everyone, then [`crate::tables::PROFILE_DIMENSIONS`]),
    /// group and cells ([`crate::tables::PROFILE_COLUMNS`]: listed, not listed, eligible). Empty when the PCN
    /// has fewer than [`crate::tables::PROFILE_MIN_ELIGIBLE`] eligible people and its profile is not published.
    pub profile: Vec<(String, String, [Cell; 3])>,
}

impl PcnSummary {
    /// The PCN's rows of the published summary and profile tables.
    pub fn new(
        summary: &PublishedTable,
        profile: &PublishedTable,
        pcn: &str,
        as_of: &str,
        rules: &ListRules,
    ) -> PcnSummary {
        fn rows<'t, const N: usize>(
            t: &'t PublishedTable,
            pcn: &'t str,
        ) -> impl Iterator<Item = (&'t str, [Cell; N])> + 't {
            t.table
                .rows
                .iter()
                .enumerate()
                .filter(move |(_, (a, _))| a == pcn)
                .map(move |(r, (_, g))| {
                    let mut cells = [Cell::Suppressed; N];
                    cells.copy_from_slice(&t.cells[r * N..r * N + N]);
                    (g.as_str(), cells)
                })
        }
        PcnSummary {
            pcn: pcn.to_string(),
            as_of: as_of.to_string(),
            rules: *rules,
            categories: rows::<5>(summary, pcn)
                .map(|(g, c)| (g.to_string(), c))
                .collect(),
            profile: rows::<3>(profile, pcn)
                .map(|(g, c)| {
                    let (d, v) = g.split_once('=').unwrap_or(("all", g));
                    (d.to_string(), v.to_string(), c)
                })
                .collect(),
        }
    }

    /// The summary row by eFI category of `group` (`all` or `core20`).
    pub fn category_row(&self, group: &str) -> Option<&[Cell; 5]> {
        self.categories
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, c)| c)
    }

    /// Eligible people in the PCN, as published (`None` when suppressed).
    pub fn eligible(&self) -> Option<u64> {
        self.category_row("all").and_then(|c| c[4].count())
    }

    /// Whether the PCN's profile is published.
    pub fn has_profile(&self) -> bool {
        !self.profile.is_empty()
    }

    /// The profile rows of one dimension (`all`, `practice`, `age_band`, ...): group and cells.
    pub fn dimension<'a>(
        &'a self,
        dim: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [Cell; 3])> + 'a {
        self.profile
            .iter()
            .filter(move |(d, _, _)| d == dim)
            .map(|(_, g, c)| (g.as_str(), c))
    }

    /// The profile's everyone row.
    pub fn everyone(&self) -> Option<&[Cell; 3]> {
        self.dimension("all").next().map(|(_, c)| c)
    }

    /// Who the lists take, in words: "eligible people with eFI category mild or worse", with
    /// the risk and size rules when set.
    pub fn rule_text(&self) -> String {
        let r = &self.rules;
        let mut s = format!(
            "eligible people with eFI category {} or worse",
            r.min_category.name()
        );
        if let RankBy::Risk(o) = r.rank_by {
            if let Some(b) = r.min_risk_band {
                let band = b.name().replace('_', " ");
                let _ = write!(s, ", or {} {band} risk or above", o.words());
            }
            if let Some(p) = r.min_risk {
                let _ = write!(s, ", or with {} risk of at least {p}", o.words());
            }
            let _ = write!(s, ", ranked by {} risk", o.words());
        }
        if let Some(n) = r.top {
            let _ = write!(s, "; at most {n} per PCN");
        }
        if let Some(p) = r.top_percent {
            let _ = write!(s, "; at most {p}% of the PCN's eligible people");
        }
        s
    }
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

/// PCN file stems by PCN index, as the frailty lists are named: distinct even if two PCN codes
/// clean up to the same text (`~2`, `~3` ... in PCN code order).
pub fn pcn_stems(pcns: &[String]) -> Vec<String> {
    let mut stems: Vec<String> = Vec::with_capacity(pcns.len());
    for code in pcns {
        let base = file_stem(code);
        let mut stem = base.clone();
        let mut k = 2;
        while stems.contains(&stem) {
            stem = format!("{base}~{k}");
            k += 1;
        }
        stems.push(stem);
    }
    stems
}

/// A PCN's folder, relative to the run folder: `lists/<stem>/`. Everything of one PCN (its
/// list in each format, its workbook and page, who dropped off, its programme lists) is in it,
/// so the folder can go to the PCN's team as it is.
pub fn pcn_folder(stem: &str) -> String {
    format!("lists/{stem}")
}

/// A PCN's file path without extension, relative to the run folder: `lists/<stem>/<stem>`. The
/// file names carry the PCN code too, so a file sent on its own still says whose list it is.
pub fn pcn_file(stem: &str) -> String {
    format!("lists/{stem}/{stem}")
}

/// Create the folder of the PCN with file stem `stem` under the run folder `dir`.
pub fn create_pcn_folder(dir: &Path, stem: &str) -> Result<(), OutputError> {
    let folder = dir.join(pcn_folder(stem));
    std::fs::create_dir_all(&folder).map_err(crate::publish::io_err(&folder))
}

fn encode_err(path: &Path) -> impl FnOnce(PolarsError) -> OutputError + '_ {
    move |source| OutputError::Encode {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `df` as `stem` in each of `formats` under `dir`; the records of the files written.
fn write_all(
    dir: &Path,
    stem: &str,
    formats: &[&dyn TableWriter],
    df: &mut DataFrame,
) -> Result<Vec<Written>, OutputError> {
    let mut written = Vec::with_capacity(formats.len());
    for w in formats {
        let rel = format!("{stem}.{}", w.extension());
        let digest = w.write(&dir.join(&rel), df)?;
        written.push(record(&rel, df.height(), digest));
    }
    Ok(written)
}

/// A published table as a table of strings (suppressed cells are `[c]`).
pub fn table_frame(t: &PublishedTable) -> PolarsResult<DataFrame> {
    let rows = &t.table.rows;
    let n = rows.len();
    let nc = t.table.columns.len();
    let [l0, l1] = t.table.label_names;
    let mut cols = vec![
        Column::new(
            l0.into(),
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            l1.into(),
            rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ),
    ];
    for (c, name) in t.table.columns.iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            (0..n)
                .map(|r| t.cells[r * nc + c].text())
                .collect::<Vec<String>>(),
        ));
    }
    DataFrame::new(n, cols)
}

/// People who dropped off a list since the previous run, as a table.
pub fn dropped_frame(dropped: &[Dropped]) -> PolarsResult<DataFrame> {
    DataFrame::new(
        dropped.len(),
        vec![
            Column::new(
                "patient_id".into(),
                dropped
                    .iter()
                    .map(|d| d.patient_id.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "previous_category".into(),
                dropped
                    .iter()
                    .map(|d| d.previous_category.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                dropped
                    .iter()
                    .map(|d| d.reason.as_str())
                    .collect::<Vec<_>>(),
            ),
        ],
    )
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

/// What the per-PCN documents ([`PCN_FORMATS`]) are made from besides the lists.
#[derive(Debug, Clone, Copy)]
pub struct PcnDocs<'a> {
    /// The published summary table.
    pub summary: &'a PublishedTable<'a>,
    /// The published profile table.
    pub profile: &'a PublishedTable<'a>,
    /// As-of date, ISO.
    pub as_of: &'a str,
    /// The run's list rules.
    pub rules: &'a ListRules,
}

/// Everything a scoring run writes, computed: what [`write_outputs`] turns into files.
pub struct RunResults<'a> {
    /// The cohort (patient attributes, rejects).
    pub cohort: &'a Cohort,
    /// Per-patient results.
    pub scored: &'a Scored,
    /// Score definitions (denominators, reasons).
    pub definitions: &'a Definitions,
    /// Each PCN's list in rank order.
    pub ranked: &'a [(u32, Vec<u32>)],
    /// Per patient, whether on a list ([`crate::lists::listed_mask`] of `ranked`).
    pub listed: &'a [bool],
    /// The risk models' columns.
    pub risk: &'a RiskColumns<'a>,
    /// What changed since the previous run.
    pub changes: &'a Changes,
    /// With this, each PCN also gets its [`PCN_FORMATS`] documents.
    pub pcn_docs: Option<PcnDocs<'a>>,
    /// The programme lists to write beside each PCN's frailty list.
    pub programmes: Option<programmes::ProgrammeRun<'a>>,
}

/// The files of a scoring run, as [`write_outputs`] writes them.
#[derive(Debug, Default)]
pub struct Outputs {
    /// The lists, what dropped off them, the documents and the scores file, in a fixed order.
    pub files: Vec<Written>,
    /// The programme lists: programmes in configuration order, then PCNs in code order.
    pub programmes: Vec<Written>,
}

/// Write the patients' outputs of a scoring run held in memory into `dir` (which must exist and
/// be empty): per PCN its list, what dropped off it, its documents and its programme lists, and
/// the scores file. Returns the files written, in a fixed order. The run's tables and rejected
/// rows are [`write_tables`]'.
pub fn write_outputs(dir: &Path, r: &RunResults) -> Result<Outputs, OutputError> {
    let RunResults {
        cohort,
        scored,
        definitions,
        ranked,
        listed,
        risk,
        changes,
        pcn_docs,
        programmes,
    } = *r;
    let scorer = Scorer::new(definitions);
    let lists_dir = dir.join("lists");
    std::fs::create_dir_all(&lists_dir).map_err(crate::publish::io_err(&lists_dir))?;
    let by_pcn = pcn_stems(&cohort.patients.pcns);
    let stems: Vec<&String> = ranked
        .iter()
        .map(|(pcn, _)| &by_pcn[*pcn as usize])
        .collect();
    // Whether anything was compared and found: then every PCN gets its `.dropped` table.
    let compared =
        !changes.change.iter().all(Option::is_none) || !changes.dropped.iter().all(Vec::is_empty);
    // The lists and the cohort-wide scores file are independent: write them side by side.
    let (per_pcn, scores) = rayon::join(
        || {
            ranked
                .par_iter()
                .zip(stems.par_iter())
                .map(|((pcn, pats), stem)| {
                    create_pcn_folder(dir, stem)?;
                    let stem = pcn_file(stem);
                    let lists = programmes.map(|p| p.of_pcn(*pcn)).unwrap_or_default();
                    let (full, row_of) =
                        pcn_frame(cohort, scored, &scorer, pats, &lists, risk, changes)
                            .map_err(encode_err(&dir.join(format!("{stem}.csv"))))?;
                    // The frailty list: the frame's first rows (a view, not a copy).
                    let mut df = full.slice(0, pats.len());
                    let programme_files = match &programmes {
                        Some(run) => programmes::write_pcn_programmes(
                            dir, &stem, run, &lists, &full, &row_of,
                        )?,
                        None => Vec::new(),
                    };
                    drop(full);
                    let mut written = match &pcn_docs {
                        None => write_all(dir, &stem, LIST_FORMATS, &mut df)?,
                        Some(docs) => {
                            let summary = PcnSummary::new(
                                docs.summary,
                                docs.profile,
                                &cohort.patients.pcns[*pcn as usize],
                                docs.as_of,
                                docs.rules,
                            );
                            // The documents are built from the same frame, beside the plain
                            // files.
                            let (plain, docs) = rayon::join(
                                || write_all(dir, &stem, LIST_FORMATS, &mut df.clone()),
                                || {
                                    PCN_FORMATS
                                        .par_iter()
                                        .map(|w| {
                                            let rel = format!("{stem}.{}", w.extension());
                                            let digest = w.write(&dir.join(&rel), &df, &summary)?;
                                            Ok(record(&rel, df.height(), digest))
                                        })
                                        .collect::<Result<Vec<Written>, OutputError>>()
                                },
                            );
                            let mut written = plain?;
                            written.extend(docs?);
                            written
                        }
                    };
                    if compared {
                        let dropped = format!("{stem}.dropped");
                        let mut df = dropped_frame(&changes.dropped[*pcn as usize])
                            .map_err(encode_err(&dir.join(format!("{dropped}.csv"))))?;
                        written.extend(write_all(dir, &dropped, TABLE_FORMATS, &mut df)?);
                    }
                    tracing::trace!(total = ranked.len() as u64, "list written");
                    Ok((written, programme_files))
                })
                .collect::<Vec<Result<PcnFiles, OutputError>>>()
        },
        || -> Result<Vec<Written>, OutputError> {
            let n = cohort.patients.len();
            let rel = "scores.parquet";
            let digest = parquet::write_batched(&dir.join(rel), n, SCORES_BATCH, |rows| {
                columns::scores_frame_rows(cohort, scored, &scorer, risk, listed, rows)
            })?;
            Ok(vec![record(rel, n, digest)])
        },
    );
    let mut written = Vec::new();
    // Programme files by programme, then PCN (the order of `ranked`, PCN code order).
    let mut by_programme: Vec<Vec<Written>> =
        vec![Vec::new(); programmes.map_or(0, |p| p.programmes.len())];
    for w in per_pcn {
        let (files, programme_files) = w?;
        written.extend(files);
        for (k, files) in programme_files {
            by_programme[k].extend(files);
        }
    }
    written.extend(scores?);
    Ok(Outputs {
        files: written,
        programmes: by_programme.into_iter().flatten().collect(),
    })
}

/// Write a run's published aggregate tables and, if any, its rejected rows into `dir`, after
/// the patients' files; whichever engine made them, the same files.
pub fn write_tables(
    dir: &Path,
    tables: &[PublishedTable],
    rejects: &[Reject],
) -> Result<Vec<Written>, OutputError> {
    let mut written = Vec::new();
    for t in tables {
        let mut df = t
            .frame()
            .map_err(encode_err(&dir.join(format!("{}.csv", t.stem))))?;
        written.extend(write_all(dir, t.stem, TABLE_FORMATS, &mut df)?);
    }
    if !rejects.is_empty() {
        let mut df = rejects_frame(rejects).map_err(encode_err(&dir.join("rejects.csv")))?;
        written.extend(write_all(dir, "rejects", TABLE_FORMATS, &mut df)?);
    }
    Ok(written)
}

/// One frame for everyone on any of a PCN's lists: the frailty list's people (`pats`) in rank
/// order, then those only on one of its programme lists (`lists`: programme index, people);
/// with the frame's row of each patient (empty when there are no programme lists). The frailty
/// list is the frame's first `pats.len()` rows.
pub fn pcn_frame(
    cohort: &Cohort,
    scored: &Scored,
    scorer: &Scorer,
    pats: &[u32],
    lists: &[(usize, &[(u32, u16)])],
    risk: &RiskColumns,
    changes: &Changes,
) -> PolarsResult<(DataFrame, HashMap<u32, IdxSize>)> {
    let mut union = pats.to_vec();
    let mut row_of: HashMap<u32, IdxSize> = HashMap::new();
    if !lists.is_empty() {
        row_of.extend(pats.iter().enumerate().map(|(k, &p)| (p, k as IdxSize)));
        for &(p, _) in lists.iter().flat_map(|(_, v)| v.iter()) {
            row_of.entry(p).or_insert_with(|| {
                union.push(p);
                union.len() as IdxSize - 1
            });
        }
    }
    Ok((
        list_frame(cohort, scored, scorer, &union, risk, changes)?,
        row_of,
    ))
}

/// One PCN's files: its lists and documents, and its programme lists by programme index.
type PcnFiles = (Vec<Written>, Vec<(usize, Vec<Written>)>);

/// The exported feature table as a frame: `patient_id`, the features (`f32`, null where
/// unknown), then the outcome labels when present.
pub fn predictor_frame(
    cohort: &Cohort,
    t: &crate::predictors::PredictorTable,
) -> PolarsResult<DataFrame> {
    let n = t.patients.len();
    let w = t.names.len();
    let mut cols: Vec<Column> = Vec::with_capacity(w + 4);
    cols.push(Column::new(
        "patient_id".into(),
        t.patients
            .iter()
            .map(|&p| cohort.patients.id[p as usize].as_str())
            .collect::<Vec<_>>(),
    ));
    for (j, name) in t.names.iter().enumerate() {
        let v: Vec<Option<f32>> = (0..n)
            .map(|i| Some(t.rows[i * w + j]).filter(|x| !x.is_nan()))
            .collect();
        cols.push(Column::new(name.as_str().into(), v));
    }
    if let Some(o) = &t.outcomes {
        for (k, outcome) in crate::predictors::Outcome::ALL.iter().enumerate() {
            cols.push(Column::new(
                outcome.name().into(),
                o.iter().map(|r| r[k]).collect::<Vec<bool>>(),
            ));
        }
    }
    DataFrame::new(n, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_tables_stand_where_the_list_says() {
        assert_eq!(AGGREGATE_TABLES[SUMMARY], "summary");
        assert_eq!(AGGREGATE_TABLES[PROFILE], "pcn_profile");
    }
}
