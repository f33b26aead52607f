//! Risk models applied to a run: each configured model card's probability for every patient
//! alive at the as-of date, the rank, percentile and band of each eligible patient within their
//! PCN, and, for the patients a list shows, the factors that raise their risk most, in plain
//! words.
//!
//! Pipeline position: `results` (+ `predictors`' feature rows) -> **risk** -> `lists` (ranking
//! by a model) and `output` (the model columns). Cards are fitted by `strata train`
//! (`strata-models`); this module only reads and applies them. Probabilities are per patient and
//! ranks per PCN, so a PCN scored alone gets the same figures as in the whole cohort, and nothing
//! depends on the thread count.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use strata_models::card::{ModelCard, ModelKind};
use strata_models::explain::top_factors;
use strata_models::{ModelError, Predictor};

use crate::cohort::Cohort;
use crate::datafile::fnv1a64;
use crate::definitions::Definitions;
use crate::population::Status;
use crate::predictors::{predictor_names, Outcome, RowBuilder, ACTIVITY_MONTHS};
use crate::results::Scored;

/// Factors named per patient and model on the lists.
pub const FACTORS_SHOWN: usize = 3;

/// A model card that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The file or folder could not be read.
    #[error("risk model {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The card is not a valid model card.
    #[error("risk model {path}: {source}")]
    Card {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: ModelError,
    },
    /// The card predicts something strata does not know.
    #[error("risk model {path}: outcome '{outcome}' is not one strata predicts (emergency_admission, falls_admission, death)")]
    Outcome {
        /// Path.
        path: PathBuf,
        /// The card's outcome.
        outcome: String,
    },
    /// The card needs a feature strata's table does not have (fitted on another definition set).
    #[error("risk model {path}: feature '{feature}' is not in strata's feature table with these code lists (`strata features` shows the columns); retrain the model")]
    Feature {
        /// Path.
        path: PathBuf,
        /// Feature name.
        feature: String,
    },
    /// Two cards predict the same outcome.
    #[error("two risk models predict {outcome}: {first} and {second}; give the one to apply with --risk-models FILE")]
    Duplicate {
        /// Outcome.
        outcome: &'static str,
        /// First card.
        first: PathBuf,
        /// Second card.
        second: PathBuf,
    },
    /// Lists are to be ranked by a model that is not loaded.
    #[error("lists are to be ranked by the {0} model, but no {0} model is configured")]
    NotLoaded(&'static str),
}

/// A model card ready to apply.
#[derive(Debug, Clone)]
pub struct RiskModel {
    /// What it predicts.
    pub outcome: Outcome,
    /// The card as read (path as given, hash, size), for the run manifest.
    pub file: AppliedModel,
    predictor: Predictor,
    /// Column of strata's feature table for each of the model's features.
    columns: Vec<usize>,
    /// The model's feature names, in its order.
    names: Vec<String>,
}

/// What the manifest records of each applied model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliedModel {
    /// Outcome name.
    pub outcome: &'static str,
    /// `logistic` or `gbdt`.
    pub kind: &'static str,
    /// Path as configured.
    pub path: String,
    /// FNV-1a 64-bit hash of the card's bytes, hex.
    pub fnv1a64: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The card's training window (`start` to `end`).
    pub trained_on: String,
    /// The card's caveats (e.g. trained on synthetic data).
    pub caveats: String,
}

/// Where a patient's risk stands among the eligible people of their PCN, by rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    /// Not eligible for the lists (too young, deceased): not ranked.
    NotRanked,
    /// Below the top 20% of the PCN.
    Low,
    /// In the top 20% of the PCN (and not the top 5%).
    Moderate,
    /// In the top 5% (and not the top 1%).
    High,
    /// In the top 1% of the PCN.
    VeryHigh,
}

impl RiskBand {
    /// Name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RiskBand::NotRanked => "",
            RiskBand::Low => "low",
            RiskBand::Moderate => "moderate",
            RiskBand::High => "high",
            RiskBand::VeryHigh => "very_high",
        }
    }

    /// Parse a band name (`low`, `moderate`, `high`, `very_high`).
    pub fn parse(s: &str) -> Option<RiskBand> {
        [
            RiskBand::Low,
            RiskBand::Moderate,
            RiskBand::High,
            RiskBand::VeryHigh,
        ]
        .into_iter()
        .find(|b| b.name() == s.trim().to_ascii_lowercase().replace([' ', '-'], "_"))
    }

    /// The band of rank `rank` (from 1) among `n`: top 1%, 5% and 20% by rank, each at least
    /// the first person (`ceil(n x fraction)` people).
    pub fn of_rank(rank: u32, n: u32) -> RiskBand {
        let top = |f: f64| rank as f64 <= (n as f64 * f).ceil();
        if top(0.01) {
            RiskBand::VeryHigh
        } else if top(0.05) {
            RiskBand::High
        } else if top(0.20) {
            RiskBand::Moderate
        } else {
            RiskBand::Low
        }
    }
}

/// One model's results over the cohort, in patient order.
#[derive(Debug, Clone)]
pub struct ModelRisk {
    /// What the model predicts.
    pub outcome: Outcome,
    /// Probability of the outcome in the 365 days after the as-of date; `NaN` for patients not
    /// alive at the as-of date.
    pub probability: Vec<f64>,
    /// Rank within the PCN's eligible people (1 = highest risk; ties by pseudonym); 0 when not
    /// eligible.
    pub pcn_rank: Vec<u32>,
    /// Percentage of the PCN's eligible people at or below this patient's rank (100 = the
    /// highest); 0 when not eligible.
    pub percentile: Vec<u8>,
    /// Band by rank within the PCN.
    pub band: Vec<RiskBand>,
}

/// Load the model cards at `paths` (each a card file or a folder whose `*.json` files are all
/// cards, read in name order), at most one per outcome, ordered by outcome.
pub fn load(paths: &[PathBuf], defs: &Definitions) -> Result<Vec<RiskModel>, RiskError> {
    let table = predictor_names(defs);
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.is_dir() {
            let io = |source| RiskError::Io {
                path: p.clone(),
                source,
            };
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            found.retain(|f| f.extension().is_some_and(|e| e == "json") && f.is_file());
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut models: Vec<RiskModel> = Vec::new();
    for path in files {
        let m = load_one(&path, &table)?;
        if let Some(first) = models.iter().find(|x| x.outcome == m.outcome) {
            return Err(RiskError::Duplicate {
                outcome: m.outcome.name(),
                first: PathBuf::from(&first.file.path),
                second: path,
            });
        }
        models.push(m);
    }
    models.sort_by_key(|m| Outcome::ALL.iter().position(|&o| o == m.outcome));
    Ok(models)
}

fn load_one(path: &Path, table: &[String]) -> Result<RiskModel, RiskError> {
    let bytes = std::fs::read(path).map_err(|source| RiskError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let card_err = |source| RiskError::Card {
        path: path.to_path_buf(),
        source,
    };
    let text = String::from_utf8_lossy(&bytes);
    let card = ModelCard::from_json(&text).map_err(card_err)?;
    let predictor = card.predictor().map_err(card_err)?;
    let outcome = Outcome::parse(&card.outcome).ok_or_else(|| RiskError::Outcome {
        path: path.to_path_buf(),
        outcome: card.outcome.clone(),
    })?;
    let columns = card
        .feature_names
        .iter()
        .map(|f| {
            table
                .iter()
                .position(|t| t == f)
                .ok_or_else(|| RiskError::Feature {
                    path: path.to_path_buf(),
                    feature: f.clone(),
                })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    Ok(RiskModel {
        outcome,
        file: AppliedModel {
            outcome: outcome.name(),
            kind: match card.kind {
                ModelKind::Logistic => "logistic",
                ModelKind::Gbdt => "gbdt",
            },
            path: path.display().to_string(),
            fnv1a64: format!("{:016x}", fnv1a64(&bytes)),
            bytes: bytes.len() as u64,
            trained_on: format!(
                "{} to {}",
                card.training_cohort.window_start, card.training_cohort.window_end
            ),
            caveats: card.caveats.clone(),
        },
        predictor,
        columns,
        names: card.feature_names.clone(),
    })
}

impl RiskModel {
    /// The model's features of one patient, from their row of strata's feature table.
    fn gather(&self, full: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.columns.iter().map(|&c| full[c]));
    }

    /// Log-odds of the outcome for one patient's row of strata's feature table.
    pub fn margin(&self, full: &[f32]) -> f64 {
        let mut x = Vec::with_capacity(self.columns.len());
        self.gather(full, &mut x);
        self.predictor.margin_row(&x)
    }

    /// The log-odds a patient with no information starts from (see `Predictor::base_value`).
    pub fn base_value(&self) -> f64 {
        self.predictor.base_value()
    }

    /// Per-feature contributions to one patient's log-odds (the model's feature order):
    /// coefficient x standardised value (logistic) or TreeSHAP values (trees). They add up,
    /// with [`RiskModel::base_value`], to [`RiskModel::margin`].
    pub fn contributions(&self, full: &[f32]) -> Vec<f64> {
        let mut x = Vec::with_capacity(self.columns.len());
        self.gather(full, &mut x);
        self.predictor.contributions_row(&x)
    }

    /// The model's feature names, in its order.
    pub fn feature_names(&self) -> &[String] {
        &self.names
    }
}

fn sigmoid(z: f64) -> f64 {
    strata_models::metrics::sigmoid(z)
}

/// Apply `models` to every patient alive at the as-of date, and rank the eligible people of
/// each PCN by each model.
pub fn apply(
    models: &[RiskModel],
    cohort: &Cohort,
    defs: &Definitions,
    scored: &Scored,
    as_of: i32,
) -> Vec<ModelRisk> {
    if models.is_empty() {
        return Vec::new();
    }
    let n = cohort.patients.len();
    let builder = RowBuilder::new(cohort, defs, scored, as_of);
    let width = builder.width();
    let k = models.len();
    // Row-major n x k probabilities, computed per patient in parallel.
    let mut probs = vec![f64::NAN; n * k];
    probs
        .par_chunks_mut(k)
        .with_min_len(2048)
        .enumerate()
        .for_each_init(
            || (vec![0f32; width], Vec::new()),
            |(row, x), (p, out)| {
                if matches!(scored.status[p], Status::Deceased | Status::NotYetBorn) {
                    return;
                }
                builder.fill(p, row);
                for (m, o) in models.iter().zip(out.iter_mut()) {
                    m.gather(row, x);
                    *o = sigmoid(m.predictor.margin_row(x));
                }
            },
        );
    // Eligible patients per PCN, in pseudonym (index) order.
    let pa = &cohort.patients;
    let mut by_pcn: Vec<Vec<u32>> = vec![Vec::new(); pa.pcns.len()];
    for (p, s) in scored.status.iter().enumerate() {
        if *s == Status::Eligible {
            by_pcn[pa.pcn[p] as usize].push(p as u32);
        }
    }
    (0..k)
        .into_par_iter()
        .map(|m| {
            let probability: Vec<f64> = (0..n).map(|p| probs[p * k + m]).collect();
            let mut pcn_rank = vec![0u32; n];
            let mut percentile = vec![0u8; n];
            let mut band = vec![RiskBand::NotRanked; n];
            for members in &by_pcn {
                let mut order = members.clone();
                order.sort_by(|&a, &b| {
                    probability[b as usize]
                        .total_cmp(&probability[a as usize])
                        .then(a.cmp(&b))
                });
                let total = order.len() as u32;
                for (r, &p) in order.iter().enumerate() {
                    let rank = r as u32 + 1;
                    pcn_rank[p as usize] = rank;
                    percentile[p as usize] =
                        ((100 * (total - rank + 1) as u64).div_ceil(total as u64)) as u8;
                    band[p as usize] = RiskBand::of_rank(rank, total);
                }
            }
            ModelRisk {
                outcome: models[m].outcome,
                probability,
                pcn_rank,
                percentile,
                band,
            }
        })
        .collect()
}

/// Explains patients' risks in plain words, for the patients a list shows (explaining everyone
/// would cost a tree ensemble's SHAP values for a million people).
pub struct Explainer<'a> {
    builder: RowBuilder<'a>,
    defs: &'a Definitions,
}

impl<'a> Explainer<'a> {
    /// An explainer for a run's cohort and results at `as_of`.
    pub fn new(cohort: &'a Cohort, defs: &'a Definitions, scored: &'a Scored, as_of: i32) -> Self {
        Explainer {
            builder: RowBuilder::new(cohort, defs, scored, as_of),
            defs,
        }
    }

    /// Patient `p`'s row of strata's feature table.
    pub fn row(&self, p: usize) -> Vec<f32> {
        let mut row = vec![0f32; self.builder.width()];
        self.builder.fill(p, &mut row);
        row
    }

    /// The factors raising patient `p`'s risk most under `model` (largest positive
    /// contributions first, at most [`FACTORS_SHOWN`]), in plain words, joined by "; ".
    pub fn factors(&self, model: &RiskModel, p: usize) -> String {
        let row = self.row(p);
        let contributions = model.contributions(&row);
        top_factors(&contributions, FACTORS_SHOWN)
            .iter()
            .map(|f| {
                describe(
                    self.defs,
                    &model.names[f.feature],
                    row[model.columns[f.feature]],
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn plural(n: f32, one: &str, many: &str) -> String {
    if n == 1.0 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A feature of strata's table with its value, in words a care coordinator reads ("2 emergency
/// admissions in 12 months", "Falls", "no record of heart failure", "age 85-89").
pub fn describe(defs: &Definitions, name: &str, v: f32) -> String {
    let flag = |what: &str| {
        if v >= 0.5 {
            what.to_string()
        } else {
            format!("no record of {}", what.to_lowercase())
        }
    };
    if v.is_nan() {
        return match name {
            "imd_decile" => "deprivation (IMD) not recorded".to_string(),
            "days_since_emergency_admission" => "no emergency admission on record".to_string(),
            _ => format!("{name} not recorded"),
        };
    }
    match name {
        // The band, as on the lists: an exact age is one more quasi-identifier.
        "age" => return format!("age {}", crate::population::age_band(v as i32)),
        "sex_female" => return if v >= 0.5 { "female" } else { "not female" }.to_string(),
        "sex_male" => return if v >= 0.5 { "male" } else { "not male" }.to_string(),
        "imd_decile" => return format!("IMD decile {v} (1 = most deprived)"),
        "care_home" => {
            return if v >= 0.5 {
                "lives in a care home".to_string()
            } else {
                "not in a care home".to_string()
            }
        }
        "efi_score" => return format!("eFI {v:.2}"),
        "hfrs_score" => return format!("HFRS {v:.1}"),
        "hfrs_intermediate" => return flag("HFRS intermediate"),
        "hfrs_high" => return flag("HFRS high"),
        "charlson_score" => return format!("Charlson score {v}"),
        "days_since_emergency_admission" => {
            return format!("last emergency admission {v} days ago")
        }
        "medicines_12m" => return plural(v, "medicine in 12 months", "medicines in 12 months"),
        _ => {}
    }
    if let Some(slug) = name.strip_prefix("efi_") {
        if let Some(d) = defs
            .efi
            .deficits
            .iter()
            .find(|d| d.slug.replace('-', "_") == slug)
        {
            return flag(&d.name);
        }
    }
    if let Some(key) = name.strip_prefix("charlson_") {
        if let Some(c) = defs.charlson.categories.iter().find(|c| c.key == key) {
            return flag(&c.name);
        }
    }
    for (what, one, many) in [
        (
            "emergency_admissions",
            "emergency admission",
            "emergency admissions",
        ),
        ("ae_attendances", "A&E attendance", "A&E attendances"),
        (
            "outpatient_attendances",
            "outpatient attendance",
            "outpatient attendances",
        ),
        ("bed_days", "night in hospital", "nights in hospital"),
    ] {
        for m in ACTIVITY_MONTHS {
            if name == format!("{what}_{m}m") {
                return plural(
                    v,
                    &format!("{one} in {m} months"),
                    &format!("{many} in {m} months"),
                );
            }
        }
    }
    format!("{name} {v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_rank_fractions() {
        assert_eq!(RiskBand::of_rank(1, 1), RiskBand::VeryHigh);
        assert_eq!(RiskBand::of_rank(1, 1000), RiskBand::VeryHigh);
        assert_eq!(RiskBand::of_rank(10, 1000), RiskBand::VeryHigh);
        assert_eq!(RiskBand::of_rank(11, 1000), RiskBand::High);
        assert_eq!(RiskBand::of_rank(50, 1000), RiskBand::High);
        assert_eq!(RiskBand::of_rank(51, 1000), RiskBand::Moderate);
        assert_eq!(RiskBand::of_rank(200, 1000), RiskBand::Moderate);
        assert_eq!(RiskBand::of_rank(201, 1000), RiskBand::Low);
        assert_eq!(RiskBand::parse("Very high"), Some(RiskBand::VeryHigh));
        assert_eq!(RiskBand::parse("none"), None);
    }
}
