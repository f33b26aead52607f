//! Evaluating risk predictions on one window, the same way whoever made them: strata's model
//! cards, a researcher's own predictions (a Parquet file of patient and probability), or a
//! frailty score used alone as the ranking.
//!
//! Pipeline position: `cohort` + `definitions` -> `partition::score_cohort` -> `predictors` (the
//! feature table and the outcome labels at an as-of date) -> **evaluation** -> `strata train`,
//! `strata evaluate`, `strata compare`. A [`Window`] is everyone alive at the as-of date with
//! features from records on or before it and the label of one outcome from the 365 days after;
//! [`Subgroups`] splits its rows by sex, age band, IMD quintile, ethnic group and Core20;
//! [`evaluate`] and [`evaluate_baseline`] compute the figures (metrics from
//! `strata_models::metrics`) overall and in every group. Everything is deterministic: rows are
//! in patient order, groups in name order, and the bootstrap seeded.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use strata_models::metrics::{evaluate_score, EvalOptions, Metrics, Recalibration};
use strata_models::{Dataset, ModelError};

use crate::cohort::Cohort;
use crate::definitions::Definitions;
use crate::population::{imd_quintile, is_core20};
use crate::predictors::{predictor_table, Outcome, PredictorTable};
use crate::risk::RiskModel;

/// Bootstrap resamples for the intervals of each group (the overall figures use the options'
/// own count): fewer, since there are many groups.
pub const GROUP_BOOTSTRAP_RESAMPLES: usize = 100;

/// Rows shown in a problem with a predictions file.
const ROWS_SHOWN: usize = 5;

/// Everything that can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// A metric or the design matrix failed (e.g. a window with no event).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The predictions file could not be opened or decoded as Parquet.
    #[error("{path}: cannot read the predictions file: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The predictions file was read but cannot be evaluated as it is.
    #[error(
        "{path}: the predictions cannot be evaluated:\n{}",
        list(path, problems)
    )]
    Predictions {
        /// The file.
        path: PathBuf,
        /// Every problem found, by column.
        problems: Vec<PredictionProblem>,
    },
    /// The feature table lacks a column the evaluation needs.
    #[error("the feature table has no {0} column")]
    NoColumn(String),
}

/// One problem with a predictions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionProblem {
    /// The column at fault.
    pub column: &'static str,
    /// What is wrong.
    pub message: String,
    /// Rows with the problem (0 for a problem of the whole column or file).
    pub count: usize,
    /// The first rows with the problem, 1-based data rows.
    pub rows: Vec<u64>,
}

fn list(path: &Path, problems: &[PredictionProblem]) -> String {
    problems
        .iter()
        .map(|p| {
            let rows = if p.count == 0 {
                String::new()
            } else {
                let shown: Vec<String> = p.rows.iter().map(|r| r.to_string()).collect();
                format!(
                    " ({} row{}; row{} {}{})",
                    p.count,
                    if p.count == 1 { "" } else { "s" },
                    if p.rows.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if p.count > p.rows.len() { ", ..." } else { "" }
                )
            };
            format!(
                "  {}, column {}: {}{rows}",
                path.display(),
                p.column,
                p.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One evaluation window: everyone alive at the as-of date, their features from records on or
/// before it, and the label of one outcome from the 365 days after.
pub struct Window {
    /// As-of date (days).
    pub as_of: i32,
    /// The outcome labelled.
    pub outcome: Outcome,
    /// Features and labels (1 = the outcome happened), rows in patient order.
    pub data: Dataset,
    /// The feature table the rows came from (`table.patients[k]` is row `k`'s patient).
    pub table: PredictorTable,
    /// Each row's eFI category at the as-of date (`fit`, `mild`, `moderate`, `severe`).
    pub efi_category: Vec<&'static str>,
    /// Whether the cohort's events hold care home residence codes (`Scored::care_home_coded`):
    /// then `care_home` is dated, not a snapshot.
    pub care_home_coded: bool,
}

impl Window {
    /// Rows.
    pub fn len(&self) -> usize {
        self.table.patients.len()
    }

    /// True when nobody is in the window.
    pub fn is_empty(&self) -> bool {
        self.table.patients.is_empty()
    }

    /// The outcome labels, one per row.
    pub fn labels(&self) -> &[u8] {
        self.data.y()
    }

    /// One feature of every row, as `f64`.
    pub fn feature(&self, name: &str) -> Result<Vec<f64>, EvaluationError> {
        let width = self.table.names.len();
        let c = self
            .table
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| EvaluationError::NoColumn(name.to_string()))?;
        Ok((0..self.len())
            .map(|k| f64::from(self.table.rows[k * width + c]))
            .collect())
    }
}

/// The feature table of `cohort` at `as_of` with the labels of `outcome`.
pub fn window(
    cohort: &Cohort,
    defs: &Definitions,
    as_of: i32,
    outcome: Outcome,
) -> Result<Window, EvaluationError> {
    let scored = crate::partition::score_cohort(cohort, defs, as_of, &Default::default());
    let table = predictor_table(cohort, defs, &scored, as_of, true);
    let k = Outcome::ALL
        .iter()
        .position(|&o| o == outcome)
        .unwrap_or_default();
    let y: Vec<u8> = table
        .outcomes
        .as_ref()
        .map(|o| o.iter().map(|r| u8::from(r[k])).collect())
        .unwrap_or_default();
    let data = Dataset::from_row_major(table.names.clone(), &table.rows, y)?;
    let efi_category = table
        .patients
        .iter()
        .map(|&p| scored.scores[p as usize].efi_category.name())
        .collect();
    Ok(Window {
        as_of,
        outcome,
        data,
        table,
        efi_category,
        care_home_coded: scored.care_home_coded,
    })
}

/// A model card's probabilities for every row of the window.
pub fn card_probabilities(model: &RiskModel, w: &Window) -> Vec<f64> {
    model.probabilities(&w.table.rows, w.table.names.len())
}

/// The probabilities of a predictions file (`patient_id` string or integer, `probability` a
/// float in `[0, 1]`), in the window's row order.
///
/// Every row must name a patient of the cohort who is in the window (alive at the as-of date),
/// once, with a probability that is not null and lies in `[0, 1]`; and every patient in the
/// window must have a prediction (never silently dropped). Otherwise the error lists every
/// problem with column, count and first rows (1-based). Pseudonyms are matched as the cohort
/// reads them: integers as their decimal text, surrounding whitespace ignored.
pub fn read_predictions(
    path: &Path,
    cohort: &Cohort,
    w: &Window,
) -> Result<Vec<f64>, EvaluationError> {
    let read_err = |message: String| EvaluationError::Read {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| read_err(format!("not a readable Parquet file ({e})")))?;
    let problem = |column: &'static str, message: String| PredictionProblem {
        column,
        message,
        count: 0,
        rows: vec![],
    };
    let bad = |path: &Path, problems: Vec<PredictionProblem>| EvaluationError::Predictions {
        path: path.to_path_buf(),
        problems,
    };
    // Columns and their types first: nothing else can be checked without them.
    let mut problems = Vec::new();
    let ids = match df.column("patient_id") {
        Err(_) => {
            problems.push(problem(
                "patient_id",
                "missing (the file needs columns patient_id and probability)".into(),
            ));
            None
        }
        Ok(c) if c.dtype() == &DataType::String || c.dtype().is_integer() => Some(
            c.cast(&DataType::String)
                .map_err(|e| read_err(e.to_string()))?,
        ),
        Ok(c) => {
            problems.push(problem(
                "patient_id",
                format!("is {}; expected a string or integer", c.dtype()),
            ));
            None
        }
    };
    let probs = match df.column("probability") {
        Err(_) => {
            problems.push(problem(
                "probability",
                "missing (the file needs columns patient_id and probability)".into(),
            ));
            None
        }
        Ok(c) if c.dtype().is_float() => Some(
            c.cast(&DataType::Float64)
                .map_err(|e| read_err(e.to_string()))?,
        ),
        Ok(c) => {
            problems.push(problem(
                "probability",
                format!("is {}; expected a float (probability in [0, 1])", c.dtype()),
            ));
            None
        }
    };
    let (Some(ids), Some(probs)) = (ids, probs) else {
        return Err(bad(path, problems));
    };
    let ids = ids.str().map_err(|e| read_err(e.to_string()))?;
    let probs = probs.f64().map_err(|e| read_err(e.to_string()))?;
    // Row problems, by kind, in file order.
    let mut null_id = Vec::new();
    let mut unknown: Vec<(u64, String)> = Vec::new();
    let mut outside: Vec<(u64, String)> = Vec::new();
    let mut duplicate: Vec<(u64, u64)> = Vec::new();
    let mut null_p = Vec::new();
    let mut bad_p: Vec<(u64, f64)> = Vec::new();
    let mut out = vec![f64::NAN; w.len()];
    let mut from_row = vec![0u64; w.len()];
    for (i, (id, p)) in ids.iter().zip(probs.iter()).enumerate() {
        let row = i as u64 + 1;
        match p {
            None => null_p.push(row),
            Some(v) if !(v.is_finite() && (0.0..=1.0).contains(&v)) => bad_p.push((row, v)),
            Some(_) => {}
        }
        let id = match id.map(str::trim) {
            None | Some("") => {
                null_id.push(row);
                continue;
            }
            Some(s) => s,
        };
        let Ok(patient) = cohort.patients.id.binary_search_by(|x| x.as_str().cmp(id)) else {
            unknown.push((row, id.to_string()));
            continue;
        };
        let Ok(k) = w.table.patients.binary_search(&(patient as u32)) else {
            outside.push((row, id.to_string()));
            continue;
        };
        if from_row[k] != 0 {
            duplicate.push((row, from_row[k]));
            continue;
        }
        from_row[k] = row;
        out[k] = p.unwrap_or(f64::NAN);
    }
    let rows_problem = |column: &'static str, message: String, rows: Vec<u64>| {
        (!rows.is_empty()).then(|| PredictionProblem {
            column,
            message,
            count: rows.len(),
            rows: rows.into_iter().take(ROWS_SHOWN).collect(),
        })
    };
    let examples = |v: &[(u64, String)]| {
        v.iter()
            .take(3)
            .map(|(_, id)| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    problems.extend(rows_problem("patient_id", "null or empty".into(), null_id));
    problems.extend(rows_problem(
        "patient_id",
        format!("not a patient of the cohort (e.g. {})", examples(&unknown)),
        unknown.iter().map(|r| r.0).collect(),
    ));
    problems.extend(rows_problem(
        "patient_id",
        format!(
            "not in the evaluation window: died on or before the as-of date or born after it (e.g. {})",
            examples(&outside)
        ),
        outside.iter().map(|r| r.0).collect(),
    ));
    problems.extend(rows_problem(
        "patient_id",
        format!(
            "a patient predicted twice (e.g. row {} repeats row {})",
            duplicate.first().map_or(0, |d| d.0),
            duplicate.first().map_or(0, |d| d.1)
        ),
        duplicate.iter().map(|r| r.0).collect(),
    ));
    problems.extend(rows_problem("probability", "null".into(), null_p));
    problems.extend(rows_problem(
        "probability",
        format!(
            "outside [0, 1] (e.g. {})",
            bad_p.first().map_or(0.0, |b| b.1)
        ),
        bad_p.iter().map(|r| r.0).collect(),
    ));
    let missing: Vec<usize> = (0..w.len()).filter(|&k| from_row[k] == 0).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing
            .iter()
            .take(3)
            .map(|&k| format!("'{}'", cohort.patients.id[w.table.patients[k] as usize]))
            .collect();
        problems.push(problem(
            "patient_id",
            format!(
                "{} of the {} patients in the evaluation window have no prediction (e.g. {}); every patient alive at the as-of date needs one",
                missing.len(),
                w.len(),
                shown.join(", ")
            ),
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(bad(path, problems))
    }
}

/// One way of splitting the window's rows: a name, its groups in name order, and each row's
/// group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// `sex`, `age_band`, `imd_quintile`, `ethnicity_group` or `core20`.
    pub name: &'static str,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// Index into `groups` of every row.
    pub of_row: Vec<u32>,
}

/// The subgroups every evaluation reports, for one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subgroups {
    /// In report order.
    pub dimensions: Vec<Dimension>,
}

/// Age band of the evaluation's subgroups (wider than the lists' five-year bands, so that each
/// holds enough events for an interval).
pub fn evaluation_age_band(age: i32) -> &'static str {
    match age {
        a if a < 18 => "0-17",
        a if a < 65 => "18-64",
        a if a < 75 => "65-74",
        a if a < 85 => "75-84",
        _ => "85+",
    }
}

/// Split `w`'s rows by the list population (`65_plus`: alive and aged 65 or over at the as-of
/// date, whom the default lists serve; `under_65`), eFI category, sex (F, M, U), age band at
/// the as-of date (the table's `age`), IMD quintile (1 = most deprived, `unknown` when not
/// recorded), ethnic group as recorded, and Core20 (`core20`: IMD quintile 1; `rest`: everyone
/// else, unknown IMD included).
pub fn subgroups(cohort: &Cohort, w: &Window) -> Result<Subgroups, EvaluationError> {
    let pa = &cohort.patients;
    let ages = w.feature("age")?;
    let patient = |k: usize| w.table.patients[k] as usize;
    let dim = |name: &'static str, key: &dyn Fn(usize) -> String| {
        let keys: Vec<String> = (0..w.len()).map(key).collect();
        let mut groups = keys.clone();
        groups.sort_unstable();
        groups.dedup();
        let of_row = keys
            .iter()
            .map(|k| groups.partition_point(|g| g < k) as u32)
            .collect();
        Dimension {
            name,
            groups,
            of_row,
        }
    };
    Ok(Subgroups {
        dimensions: vec![
            dim("list_population", &|k| {
                let min = crate::lists::ListRules::default().min_age;
                if ages[k] >= f64::from(min) {
                    format!("{min}_plus")
                } else {
                    format!("under_{min}")
                }
            }),
            dim("efi_category", &|k| w.efi_category[k].to_string()),
            dim("sex", &|k| pa.sex[patient(k)].code().to_string()),
            dim("age_band", &|k| {
                evaluation_age_band(ages[k] as i32).to_string()
            }),
            dim("imd_quintile", &|k| {
                imd_quintile(pa.imd_decile[patient(k)])
                    .map_or("unknown".to_string(), |q| q.to_string())
            }),
            dim("ethnicity_group", &|k| {
                pa.ethnicities[pa.ethnicity[patient(k)] as usize].clone()
            }),
            dim("core20", &|k| {
                if is_core20(pa.imd_decile[patient(k)]) {
                    "core20".to_string()
                } else {
                    "rest".to_string()
                }
            }),
        ],
    })
}

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupMetrics {
    /// The dimension (`sex`, `age_band`, ...).
    pub dimension: &'static str,
    /// The group.
    pub group: String,
    /// Its figures; `None` when the group has only events or only non-events (no AUROC), or a
    /// figure could not be computed on it.
    pub metrics: Option<Metrics>,
    /// Rows in the group.
    pub n: usize,
    /// Why there are no figures, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The figures of one set of predictions on one window, overall and by group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// On every row.
    pub overall: Metrics,
    /// By group, dimensions in [`Subgroups`] order, groups in name order.
    pub groups: Vec<GroupMetrics>,
}

impl Evaluation {
    /// The figures of one group, if computed.
    pub fn group(&self, dimension: &str, group: &str) -> Option<&Metrics> {
        self.groups
            .iter()
            .find(|g| g.dimension == dimension && g.group == group)
            .and_then(|g| g.metrics.as_ref())
    }
}

/// Figures of a ranking `score` with probabilities `probability` (see
/// `strata_models::metrics::evaluate_score`), overall with `opts` and in every group with
/// [`GROUP_BOOTSTRAP_RESAMPLES`].
fn evaluate_ranked(
    y: &[u8],
    score: &[f64],
    probability: Option<&[f64]>,
    groups: &Subgroups,
    opts: &EvalOptions,
) -> Result<Evaluation, EvaluationError> {
    let overall = evaluate_score(y, score, probability, opts)?;
    let group_opts = EvalOptions {
        bootstrap_resamples: GROUP_BOOTSTRAP_RESAMPLES,
        ..opts.clone()
    };
    let mut out = Vec::new();
    for d in &groups.dimensions {
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); d.groups.len()];
        for (k, &g) in d.of_row.iter().enumerate() {
            rows[g as usize].push(k);
        }
        for (g, rows) in d.groups.iter().zip(rows) {
            let gy: Vec<u8> = rows.iter().map(|&k| y[k]).collect();
            let gs: Vec<f64> = rows.iter().map(|&k| score[k]).collect();
            let gp: Option<Vec<f64>> = probability.map(|p| rows.iter().map(|&k| p[k]).collect());
            // A group with no event (or no non-event) has no AUROC.
            let (metrics, note) = match evaluate_score(&gy, &gs, gp.as_deref(), &group_opts) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(GroupMetrics {
                dimension: d.name,
                group: g.clone(),
                n: rows.len(),
                metrics,
                note,
            });
        }
    }
    Ok(Evaluation {
        overall,
        groups: out,
    })
}

/// The figures of probabilities `p` (one per row of the window the labels `y` and `groups` come
/// from), overall and by group.
pub fn evaluate(
    y: &[u8],
    p: &[f64],
    groups: &Subgroups,
    opts: &EvalOptions,
) -> Result<Evaluation, EvaluationError> {
    evaluate_ranked(y, p, Some(p), groups, opts)
}

/// Case finding at one cut-off, in one group: the cut-off is the list population's (everyone
/// aged `min_age`+ in the window, ranked together), as a hub would apply it, and the figures are
/// each group's share of it (SPARRA's fairness analysis: the same threshold for everyone).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FairnessRow {
    /// The dimension (`sex`, `imd_quintile`, ...), or `all`.
    pub dimension: &'static str,
    /// The group.
    pub group: String,
    /// The fraction of the list population flagged (0.01, 0.05, 0.10).
    pub top_fraction: f64,
    /// People of the list population in the group.
    pub n: usize,
    /// Of them flagged.
    pub flagged: usize,
    /// Events among them.
    pub events: usize,
    /// Events flagged / events (recall).
    pub sensitivity: Option<f64>,
    /// Events flagged / flagged (precision).
    pub ppv: Option<f64>,
    /// Events not flagged / not flagged.
    pub false_omission_rate: Option<f64>,
    /// Non-events flagged / flagged (1 - PPV).
    pub false_discovery_rate: Option<f64>,
}

/// The fairness table of predictions `p` on `w`: for the top 1%, 5% and 10% of the list
/// population (aged `min_age`+), sensitivity, PPV, false omission and false discovery rates,
/// overall and in every group of `groups` (its `list_population` dimension left out). Ties at a
/// cut-off are broken by row (pseudonym) order, so exactly the fraction is flagged.
pub fn fairness(
    w: &Window,
    p: &[f64],
    groups: &Subgroups,
    min_age: i32,
) -> Result<Vec<FairnessRow>, EvaluationError> {
    let ages = w.feature("age")?;
    let y = w.labels();
    let list: Vec<usize> = (0..w.len())
        .filter(|&k| ages[k] >= f64::from(min_age))
        .collect();
    let mut order = list.clone();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    let mut out = Vec::new();
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    for f in [0.01, 0.05, 0.10] {
        let n_flag = ((f * list.len() as f64 - 1e-9).ceil().max(0.0) as usize).min(list.len());
        let mut flagged = vec![false; w.len()];
        for &k in &order[..n_flag] {
            flagged[k] = true;
        }
        let mut row = |dimension: &'static str, group: String, who: &dyn Fn(usize) -> bool| {
            let (mut n, mut fl, mut ev, mut ev_fl) = (0, 0, 0, 0);
            for &k in list.iter().filter(|&&k| who(k)) {
                n += 1;
                fl += flagged[k] as usize;
                ev += y[k] as usize;
                ev_fl += (flagged[k] && y[k] == 1) as usize;
            }
            out.push(FairnessRow {
                dimension,
                group,
                top_fraction: f,
                n,
                flagged: fl,
                events: ev,
                sensitivity: ratio(ev_fl, ev),
                ppv: ratio(ev_fl, fl),
                false_omission_rate: ratio(ev - ev_fl, n - fl),
                false_discovery_rate: ratio(fl - ev_fl, fl),
            });
        };
        row("all", "all".into(), &|_| true);
        for d in groups
            .dimensions
            .iter()
            .filter(|d| d.name != "list_population")
        {
            for (g, name) in d.groups.iter().enumerate() {
                row(d.name, name.clone(), &|k| d.of_row[k] == g as u32);
            }
        }
    }
    Ok(out)
}

/// How a score used alone as a predictor was given probabilities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BaselineCalibration {
    /// The recalibration `P = sigmoid(intercept + slope * score)`, fitted on the training window;
    /// `None` when it could not be fitted (then Brier and calibration are not applicable).
    pub recalibration: Option<Recalibration>,
    /// In words: where it was fitted, or why not.
    pub note: String,
}

/// A frailty score used alone as the predictor, evaluated like a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Baseline {
    /// The feature table column (`efi_score`, `hfrs_score`).
    pub column: String,
    /// Its recalibration.
    pub calibration: BaselineCalibration,
    /// The figures.
    pub evaluation: Evaluation,
    /// Its recalibrated probabilities on the evaluation window (for the calibration plot).
    #[serde(skip)]
    pub probabilities: Option<Vec<f64>>,
}

/// Evaluate the feature `column` (a score, higher = more risk) alone as a predictor on `eval`.
///
/// The ranking metrics (AUROC, AUPRC, sensitivity and PPV at the top) are those of the score
/// itself, ties kept. For Brier, log-loss and calibration, the score is turned into a
/// probability by a one-variable logistic recalibration fitted on `train` (the window a year
/// earlier, so nothing of the evaluation window's outcomes is used) and applied unchanged to
/// `eval`; if it cannot be fitted (no event in the training window, a constant score) those
/// figures are not applicable (NaN, `null` in JSON) and the note says why.
pub fn evaluate_baseline(
    column: &str,
    train: &Window,
    eval: &Window,
    groups: &Subgroups,
    opts: &EvalOptions,
) -> Result<Baseline, EvaluationError> {
    let train_score = train.feature(column)?;
    let score = eval.feature(column)?;
    let (recalibration, note) = match Recalibration::fit(&train_score, train.labels()) {
        Ok(r) => (
            Some(r),
            format!(
                "probability = logistic({:.4} + {:.4} x {column}), fitted on the training window (as-of {}, {} rows); ranking figures are the score's own",
                r.intercept,
                r.slope,
                crate::date::format_days(train.as_of),
                train.len()
            ),
        ),
        Err(e) => (
            None,
            format!(
                "calibration not applicable: the recalibration could not be fitted on the training window (as-of {}): {e}",
                crate::date::format_days(train.as_of)
            ),
        ),
    };
    let probabilities = recalibration.map(|r| r.apply(&score));
    let evaluation = evaluate_ranked(
        eval.labels(),
        &score,
        probabilities.as_deref(),
        groups,
        opts,
    )?;
    Ok(Baseline {
        column: column.to_string(),
        calibration: BaselineCalibration {
            recalibration,
            note,
        },
        evaluation,
        probabilities,
    })
}
