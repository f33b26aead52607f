//! The per-patient columns of the lists and the scores file, defined once: each column's name,
//! which files show it, and how its value is got from a patient's results.
//!
//! Pipeline position: inside `output`, reading `results` and `population`. A new per-patient
//! column (a new score, a model's risk) is one entry of [`PATIENT_COLUMNS`]; its place in the
//! table is its place in both files.

use polars::prelude::*;
use rayon::prelude::*;

use crate::changes::Changes;
use crate::cohort::Cohort;
use crate::population::{age_band, imd_quintile, is_core20};
use crate::predictors::Outcome;
use crate::results::Scored;
use crate::risk::{Explainer, ModelRisk, RiskBand, RiskModel};
use crate::scores::{tenths_str, EfiCategory, HfrsBand, Scorer};

/// One patient as a column sees it: the run's results and the patient's index (and rank on a
/// list).
#[derive(Clone, Copy)]
pub struct Row<'a> {
    /// The cohort (patient attributes).
    pub cohort: &'a Cohort,
    /// The run's per-patient results.
    pub scored: &'a Scored,
    /// The score definitions (denominators, reasons).
    pub scorer: &'a Scorer<'a>,
    /// Patient index.
    pub i: usize,
    /// Position on the list, from 1 (0 in the scores file).
    pub rank: u32,
}

/// How a column's value is got from a [`Row`], by type.
#[derive(Clone, Copy)]
pub enum Value {
    /// Unsigned integer.
    U32(fn(Row<'_>) -> u32),
    /// Unsigned integer or null.
    OptU32(fn(Row<'_>) -> Option<u32>),
    /// Floating point.
    F64(fn(Row<'_>) -> f64),
    /// Boolean.
    Bool(fn(Row<'_>) -> bool),
    /// Text borrowed from the cohort or the definitions.
    Text(for<'a> fn(Row<'a>) -> &'a str),
    /// Text written into a buffer (a list of names: one buffer for the whole column, no
    /// string built a row).
    Written(fn(Row<'_>, &mut String)),
}

/// Which per-patient files show a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The PCN lists only (what a care team needs to act: reasons, activity, flags).
    List,
    /// The scores file only (cohort-wide fields for analysts).
    Scores,
    /// Both.
    Both,
}

impl Shown {
    /// On the PCN lists.
    pub fn on_list(self) -> bool {
        matches!(self, Shown::List | Shown::Both)
    }

    /// In the scores file.
    pub fn in_scores(self) -> bool {
        matches!(self, Shown::Scores | Shown::Both)
    }
}

/// One per-patient output column.
#[derive(Clone, Copy)]
pub struct PatientColumn {
    /// Column name in every file.
    pub name: &'static str,
    /// Which files show it.
    pub shown: Shown,
    /// The value.
    pub value: Value,
}

const fn col(name: &'static str, shown: Shown, value: Value) -> PatientColumn {
    PatientColumn { name, shown, value }
}

/// Every per-patient column, in file order (each file keeps the columns it shows, in this
/// order).
pub const PATIENT_COLUMNS: &[PatientColumn] = &[
    col("rank", Shown::List, Value::U32(|r| r.rank)),
    col(
        "patient_id",
        Shown::Both,
        Value::Text(|r| &r.cohort.patients.id[r.i]),
    ),
    col(
        "pcn_code",
        Shown::Scores,
        Value::Text(|r| {
            let p = &r.cohort.patients;
            &p.pcns[p.pcn[r.i] as usize]
        }),
    ),
    col(
        "practice_code",
        Shown::Both,
        Value::Text(|r| {
            let p = &r.cohort.patients;
            &p.practices[p.practice[r.i] as usize]
        }),
    ),
    col(
        "age_band",
        Shown::Both,
        Value::Text(|r| age_band(r.scored.ages[r.i])),
    ),
    col(
        "sex",
        Shown::List,
        Value::Text(|r| r.cohort.patients.sex[r.i].code()),
    ),
    col(
        "status",
        Shown::Scores,
        Value::Text(|r| r.scored.status[r.i].name()),
    ),
    col(
        "efi_score",
        Shown::List,
        Value::F64(|r| {
            let d = r.scored.scores[r.i].efi_deficits as f64;
            (d / r.scorer.efi_denominator() as f64 * 1000.0).round() / 1000.0
        }),
    ),
    col(
        "efi_deficits",
        Shown::Both,
        Value::U32(|r| r.scored.scores[r.i].efi_deficits),
    ),
    col(
        "efi_category",
        Shown::Both,
        Value::Text(|r| r.scored.scores[r.i].efi_category.name()),
    ),
    col(
        "hfrs_score",
        Shown::Both,
        Value::F64(|r| r.scored.scores[r.i].hfrs_tenths as f64 / 10.0),
    ),
    col(
        "hfrs_band",
        Shown::Both,
        Value::Text(|r| r.scored.scores[r.i].hfrs_band.name()),
    ),
    col(
        "charlson_score",
        Shown::Both,
        Value::U32(|r| r.scored.scores[r.i].charlson),
    ),
    col(
        "efi_deficits_present",
        Shown::List,
        Value::Written(|r, out| r.scorer.write_efi_reasons(&r.scored.features[r.i], out)),
    ),
    col(
        "hfrs_diagnoses",
        Shown::List,
        Value::Written(|r, out| r.scorer.write_hfrs_reasons(&r.scored.features[r.i], out)),
    ),
    col(
        "charlson_conditions",
        Shown::List,
        Value::Written(|r, out| r.scorer.write_charlson_reasons(&r.scored.scores[r.i], out)),
    ),
    col(
        "medicines_12m",
        Shown::List,
        Value::U32(|r| r.scored.features[r.i].medicines as u32),
    ),
    col(
        "emergency_admissions_12m",
        Shown::List,
        Value::U32(|r| r.scored.features[r.i].emergency_admissions_12m as u32),
    ),
    col(
        "ae_attendances_12m",
        Shown::List,
        Value::U32(|r| r.scored.features[r.i].ae_attendances_12m as u32),
    ),
    col(
        "imd_quintile",
        Shown::Both,
        Value::OptU32(|r| imd_quintile(r.cohort.patients.imd_decile[r.i]).map(|q| q as u32)),
    ),
    col(
        "core20",
        Shown::Both,
        Value::Bool(|r| is_core20(r.cohort.patients.imd_decile[r.i])),
    ),
    col(
        "care_home",
        Shown::List,
        Value::Bool(|r| r.cohort.patients.care_home[r.i]),
    ),
];

impl PatientColumn {
    /// The column over `n` rows, row `k` given by `row(k)`.
    pub fn build<'a>(&self, n: usize, row: impl Fn(usize) -> Row<'a>) -> Column {
        let name = self.name.into();
        match self.value {
            Value::U32(f) => Column::new(name, (0..n).map(|k| f(row(k))).collect::<Vec<u32>>()),
            Value::OptU32(f) => Column::new(
                name,
                (0..n).map(|k| f(row(k))).collect::<Vec<Option<u32>>>(),
            ),
            Value::F64(f) => Column::new(name, (0..n).map(|k| f(row(k))).collect::<Vec<f64>>()),
            Value::Bool(f) => Column::new(name, (0..n).map(|k| f(row(k))).collect::<Vec<bool>>()),
            Value::Text(f) => {
                StringChunked::from_iter_values(name, (0..n).map(|k| f(row(k)))).into_column()
            }
            Value::Written(f) => {
                let mut b = StringChunkedBuilder::new(name, n);
                let mut text = String::new();
                for k in 0..n {
                    text.clear();
                    f(row(k), &mut text);
                    b.append_value(&text);
                }
                b.finish().into_column()
            }
        }
    }
}

/// The risk models a run applied, their results, and what explains them: the model columns of
/// the lists and the scores file. Model columns are named after the outcome (`death_risk`) and
/// follow the fixed columns, models in outcome order.
pub struct RiskColumns<'a> {
    /// The models applied, in outcome order.
    pub models: &'a [RiskModel],
    /// Each patient's PCN index (ranks are within it).
    pub pcn: &'a [u32],
    /// Their results, same order.
    pub risks: &'a [ModelRisk],
    /// Explains listed patients' risks.
    pub explainer: Explainer<'a>,
}

/// The list column saying where the risk figures come from.
pub const RISK_SOURCE: &str = "risk_models_trained_on";

/// How [`RISK_SOURCE`] starts when the cards were trained on synthetic data (the page's
/// banner and the workbook's note key on it).
pub const SYNTHETIC_SOURCE: &str = "SYNTHETIC data, not this population";

/// What to do about risk figures from synthetic cards: said once on each workbook sheet and on
/// the PCN page, beside [`RISK_SOURCE`]'s text (not on every row: a fifth of a list's bytes).
pub const SYNTHETIC_ADVICE: &str =
    "the risk figures show the method only; train local models (strata train) before acting on them";

/// Where the applied cards were trained, in words: synthetic data (with the caveat) or local
/// data, and the training window: once when every card has the same (the usual case: they are
/// trained together), else each card's.
pub fn risk_source(models: &[RiskModel]) -> String {
    let first = models.first().map(|m| m.file.trained_on.as_str());
    let windows = if models
        .iter()
        .all(|m| Some(m.file.trained_on.as_str()) == first)
    {
        first.unwrap_or_default().to_string()
    } else {
        models
            .iter()
            .map(|m| format!("{} {}", m.outcome.name(), m.file.trained_on))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if models.iter().any(RiskModel::synthetic) {
        format!("{SYNTHETIC_SOURCE} ({windows})")
    } else {
        format!("local data ({windows})")
    }
}

/// A probability as published: four decimal places.
fn rounded(p: f64) -> Option<f64> {
    (!p.is_nan()).then(|| (p * 10_000.0).round() / 10_000.0)
}

fn band_text(b: RiskBand) -> Option<&'static str> {
    (b != RiskBand::NotRanked).then(|| b.name())
}

impl RiskColumns<'_> {
    /// The model columns of a list (`patients` in rank order): per model its probability, rank
    /// and percentile within the PCN, band, and the top factors in plain words.
    pub fn list_columns(&self, patients: &[u32]) -> Vec<Column> {
        // One feature row per listed patient explains every model: looked up where the run
        // explained its listed people ahead (not copied), else worked out here.
        let worked_out;
        let factors: Vec<&[String]> = match self.explainer.factors_ahead(patients) {
            Some(f) => f,
            None => {
                worked_out = self.explainer.factors_of(self.models, patients);
                worked_out.iter().map(Vec::as_slice).collect()
            }
        };
        let mut cols = Vec::new();
        for (m, r) in self.risks.iter().enumerate() {
            let o = r.outcome.name();
            cols.push(Column::new(
                format!("{o}_risk").into(),
                patients
                    .iter()
                    .map(|&p| rounded(r.probability[p as usize]))
                    .collect::<Vec<Option<f64>>>(),
            ));
            cols.push(Column::new(
                format!("{o}_rank_in_pcn").into(),
                patients
                    .iter()
                    .map(|&p| r.pcn_rank[p as usize])
                    .collect::<Vec<u32>>(),
            ));
            cols.push(Column::new(
                format!("{o}_percentile_in_pcn").into(),
                patients
                    .iter()
                    .map(|&p| r.percentile(self.pcn, p as usize))
                    .collect::<Vec<u32>>(),
            ));
            cols.push(Column::new(
                format!("{o}_band").into(),
                patients
                    .iter()
                    .map(|&p| band_text(r.band(self.pcn, p as usize)))
                    .collect::<Vec<Option<&str>>>(),
            ));
            cols.push(Column::new(
                format!("{o}_factors").into(),
                factors.iter().map(|f| f[m].as_str()).collect::<Vec<&str>>(),
            ));
        }
        if !self.models.is_empty() {
            // Where the figures come from goes with them on every row.
            let source = risk_source(self.models);
            cols.push(Column::new(
                RISK_SOURCE.into(),
                vec![source.as_str(); patients.len()],
            ));
        }
        cols
    }

    /// The model columns of the scores file: per model its probability (null for patients
    /// not alive at the as-of date). Ranks and bands are on the lists.
    pub fn score_columns(&self, rows: std::ops::Range<usize>) -> Vec<Column> {
        self.risks
            .iter()
            .map(|r| {
                Column::new(
                    format!("{}_risk", r.outcome.name()).into(),
                    r.probability[rows.clone()]
                        .iter()
                        .map(|&p| rounded(p))
                        .collect::<Vec<Option<f64>>>(),
                )
            })
            .collect()
    }
}

/// The columns of one PCN's list, in rank order (`patients` are the listed patients in rank
/// order).
pub fn list_frame(
    cohort: &Cohort,
    scored: &Scored,
    scorer: &Scorer,
    patients: &[u32],
    risk: &RiskColumns,
    changes: &Changes,
) -> PolarsResult<DataFrame> {
    let n = patients.len();
    let row = |k: usize| Row {
        cohort,
        scored,
        scorer,
        i: patients[k] as usize,
        rank: k as u32 + 1,
    };
    let mut cols: Vec<Column> = PATIENT_COLUMNS
        .iter()
        .filter(|c| c.shown.on_list())
        .map(|c| c.build(n, row))
        .collect();
    // What changed since the previous run, beside the rank ("" when nothing was compared).
    cols.insert(
        1.min(cols.len()),
        Column::new(
            "change".into(),
            patients
                .iter()
                .map(|&p| changes.change[p as usize].map_or("", |c| c.name()))
                .collect::<Vec<&str>>(),
        ),
    );
    cols.extend(risk.list_columns(patients));
    let mut whys = StringChunkedBuilder::new("why".into(), n);
    let mut text = String::new();
    for k in 0..n {
        text.clear();
        why(&mut text, row(k), risk);
        whys.append_value(&text);
    }
    cols.push(whys.finish().into_column());
    DataFrame::new(n, cols)
}

/// Deficits named in the `why` column.
pub const WHY_DEFICITS: usize = 3;

/// Why a patient is on a list, in plain words, from their scores, activity and risk bands:
/// "severe frailty: 14 of 36 deficits, incl. falls, mobility and transfer problems,
/// polypharmacy; 2 emergency admissions in 12 months; very high emergency admission risk (top
/// 1% of the PCN)". Parts, in this order, each only when it applies: the eFI category and
/// deficits (the [`WHY_DEFICITS`] most actionable named), emergency admissions, A&E attendances
/// (2 or more), a high HFRS, living in a care home, and each model's band when high or very
/// high. Appended to `out` (one buffer for a whole column, no text built per part).
pub fn why(out: &mut String, r: Row<'_>, risk: &RiskColumns) {
    use std::fmt::Write;
    let s = &r.scored.scores[r.i];
    let f = &r.scored.features[r.i];
    // Writing into a String cannot fail.
    let _ = match s.efi_category {
        EfiCategory::Fit => write!(out, "not frail by the eFI ("),
        c => write!(out, "{} frailty: ", c.name()),
    };
    let _ = write!(
        out,
        "{} of {} deficits",
        s.efi_deficits,
        r.scorer.efi_denominator()
    );
    let names = r.scorer.efi_salient(f, WHY_DEFICITS);
    if !names.is_empty() {
        out.push_str(if (s.efi_deficits as usize) <= names.len() {
            ": "
        } else {
            ", incl. "
        });
        for (k, n) in names.iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(n);
        }
    }
    if s.efi_category == EfiCategory::Fit {
        out.push(')');
    }
    // `n` and a noun, plural unless `n` is 1 ("1 emergency admission", "2 emergency admissions").
    let counted = |out: &mut String, n: u32, noun: &str| {
        let _ = write!(
            out,
            "; {n} {noun}{} in 12 months",
            if n == 1 { "" } else { "s" }
        );
    };
    if f.emergency_admissions_12m > 0 {
        counted(
            out,
            f.emergency_admissions_12m.into(),
            "emergency admission",
        );
    }
    if f.ae_attendances_12m >= 2 {
        counted(out, f.ae_attendances_12m.into(), "A&E attendance");
    }
    if s.hfrs_band == HfrsBand::High {
        let _ = write!(
            out,
            "; high Hospital Frailty Risk Score ({})",
            tenths_str(s.hfrs_tenths)
        );
    }
    if r.cohort.patients.care_home[r.i] {
        out.push_str("; lives in a care home");
    }
    for m in risk.risks {
        let b = m.band(&r.cohort.patients.pcn, r.i);
        let (band, meaning) = match (b, m.band_meaning(b)) {
            (RiskBand::VeryHigh, Some(t)) => ("very high", t),
            (RiskBand::High, Some(t)) => ("high", t),
            _ => continue,
        };
        let what = match m.outcome {
            Outcome::Death => "one-year mortality",
            o => o.words(),
        };
        let _ = write!(out, "; {band} {what} risk ({meaning})");
    }
}

/// Every patient's scores (one row per patient, pseudonym order), for analysts.
pub fn scores_frame(
    cohort: &Cohort,
    scored: &Scored,
    scorer: &Scorer,
    risk: &RiskColumns,
    listed: &[bool],
) -> PolarsResult<DataFrame> {
    let all = 0..cohort.patients.len();
    scores_frame_rows(cohort, scored, scorer, risk, listed, all)
}

/// The rows `rows` (patient indices) of [`scores_frame`]: the scores file is written a batch
/// of rows at a time, so the whole frame is never held at once.
pub fn scores_frame_rows(
    cohort: &Cohort,
    scored: &Scored,
    scorer: &Scorer,
    risk: &RiskColumns,
    listed: &[bool],
    rows: std::ops::Range<usize>,
) -> PolarsResult<DataFrame> {
    let (lo, n) = (rows.start, rows.len());
    let row = |k: usize| Row {
        cohort,
        scored,
        scorer,
        i: lo + k,
        rank: 0,
    };
    // The columns built side by side.
    let mut cols: Vec<Column> = PATIENT_COLUMNS
        .par_iter()
        .filter(|c| c.shown.in_scores())
        .map(|c| c.build(n, row))
        .collect();
    cols.push(Column::new("listed".into(), &listed[rows.clone()]));
    cols.extend(risk.score_columns(rows));
    DataFrame::new(n, cols)
}
