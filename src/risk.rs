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
use strata_models::{CompiledTrees, ModelError, Predictor, ShapTables};

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
    /// A run needs a model whose only card is a default one trained on synthetic data, and the
    /// cohort is not synthetic.
    #[error("{what} needs the {outcome} model, but the default {outcome} card was trained on synthetic data and this cohort is not synthetic (no strata synth mark), so it is not applied: train a local card (strata train --outcome {outcome}) and give it with --risk-models (risk_models in strata.toml), or name the synthetic cards there to apply them anyway")]
    Withheld {
        /// What needs it (the ranking, a programme).
        what: String,
        /// Outcome.
        outcome: &'static str,
    },
}

/// The default cards trained on synthetic data are not applied to a cohort that is not
/// synthetic (no `strata synth` mark): their figures would say nothing about its patients. They
/// are applied when named (`--risk-models`, `risk_models=`), with a warning. Removes them from
/// `models` when `default_cards` and the cohort is not synthetic; returns those removed.
pub fn withhold_synthetic(
    models: &mut Vec<RiskModel>,
    default_cards: bool,
    cohort_synthetic: bool,
) -> Vec<RiskModel> {
    if !default_cards || cohort_synthetic {
        return Vec::new();
    }
    let (withheld, kept) = std::mem::take(models)
        .into_iter()
        .partition(RiskModel::synthetic);
    *models = kept;
    withheld
}

/// How a model's risk bands are set (`risk_bands` in the settings file, `--risk-bands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandMode {
    /// By the card's absolute probability cut-offs (its list population's top 1%, 5% and 20% in
    /// the validation year): "very high" means the same in every PCN, and a PCN scored alone
    /// gets the bands it gets in the whole run. A card without cut-offs is banded by PCN.
    #[default]
    Card,
    /// By rank within each PCN's eligible people (top 1%, 5%, 20% of the PCN).
    Pcn,
}

impl BandMode {
    /// Parse `card` or `pcn`.
    pub fn parse(s: &str) -> Option<BandMode> {
        match s.trim() {
            "card" => Some(BandMode::Card),
            "pcn" => Some(BandMode::Pcn),
            _ => None,
        }
    }
}

/// The index in `models` of the one predicting `outcome`, which `what` (the ranking, a
/// programme) needs; an error that says so when it is missing, and why when its default card was
/// withheld ([`withhold_synthetic`]). One check for every engine.
pub fn needed_model(
    models: &[RiskModel],
    withheld: &[RiskModel],
    outcome: crate::predictors::Outcome,
    what: &str,
) -> Result<usize, RiskError> {
    models
        .iter()
        .position(|m| m.outcome == outcome)
        .ok_or_else(|| {
            if withheld.iter().any(|m| m.outcome == outcome) {
                RiskError::Withheld {
                    what: what.to_string(),
                    outcome: outcome.name(),
                }
            } else {
                RiskError::NotLoaded(outcome.name())
            }
        })
}

/// The warning for cards [`withhold_synthetic`] removed, if any.
pub fn withheld_warning(withheld: &[RiskModel]) -> Option<String> {
    (!withheld.is_empty()).then(|| {
        format!(
            "warning: the default risk models ({}) were trained on synthetic data and this cohort is not synthetic (no strata synth mark): they were not applied, and the lists carry no risk figures. Train local models (strata train) and give them with --risk-models; to apply the synthetic ones anyway, name them (--risk-models {})",
            withheld
                .iter()
                .map(|m| m.outcome.name())
                .collect::<Vec<_>>()
                .join(", "),
            withheld
                .first()
                .and_then(|m| Path::new(&m.file.path).parent())
                .map_or_else(|| "models/risk".to_string(), |d| d.display().to_string())
        )
    })
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
    /// How each of the model's features is said in words, resolved once at load.
    words: Vec<Word>,
    /// A logistic model folded onto strata's full feature row, for applying it to everyone.
    linear: Option<Linear>,
    /// The card's band cut-offs (very high, high, moderate), if it has them.
    cutoffs: Option<[f64; 3]>,
    /// Each feature's mean contribution over the card's list population (zeros for a card
    /// without one): what explanations are measured against.
    baseline: Vec<f64>,
    /// A tree card's TreeSHAP tables, built once at load (exact, per leaf: Fast TreeSHAP v2).
    shap: Option<std::sync::Arc<ShapTables>>,
    /// A tree card's trees compiled for applying them to blocks of rows, built once at load.
    trees: Option<std::sync::Arc<CompiledTrees>>,
}

/// `intercept + sum coef_j (x_j - mean_j) / sd_j` (missing -> the mean) rewritten as
/// `base + sum w_j v_j` over strata's whole feature row, `v_j = x_j`, or `mean_j` when missing;
/// `w_j = coef_j / sd_j`, zero for features the model does not use.
#[derive(Debug, Clone)]
struct Linear {
    base: f64,
    w: Vec<f64>,
    mean: Vec<f64>,
}

impl Linear {
    fn new(m: &strata_models::LogisticModel, columns: &[usize], width: usize) -> Linear {
        let (mut w, mut mean) = (vec![0.0; width], vec![0.0; width]);
        let mut base = m.intercept;
        for (j, &c) in columns.iter().enumerate() {
            w[c] += m.coef[j] / m.sd[j];
            mean[c] = m.mean[j];
            base -= m.coef[j] / m.sd[j] * m.mean[j];
        }
        Linear { base, w, mean }
    }

    /// Log-odds of one full row; four running sums so the loop is not one long chain of adds.
    fn margin(&self, row: &[f32]) -> f64 {
        let mut acc = [0.0f64; 4];
        for (k, ((&x, &w), &mean)) in row.iter().zip(&self.w).zip(&self.mean).enumerate() {
            let v = if x.is_nan() { mean } else { f64::from(x) };
            acc[k % 4] += w * v;
        }
        self.base + (acc[0] + acc[1]) + (acc[2] + acc[3])
    }
}

/// How a feature is said in words, resolved from its name once per model.
#[derive(Debug, Clone)]
enum Word {
    Age,
    Female,
    NeverAdmitted,
    Imd,
    CareHome,
    EfiScore,
    HfrsScore,
    CharlsonScore,
    DaysSinceEmergency,
    /// A yes/no feature: its name when present.
    Flag(String),
    /// A count: singular and plural phrases.
    Count(String, String),
    /// Anything else: the raw name.
    Raw(String),
}

impl Word {
    fn of(defs: &Definitions, name: &str) -> Word {
        match name {
            "age" => return Word::Age,
            "sex_female" => return Word::Female,
            "imd_decile" => return Word::Imd,
            "care_home" => return Word::CareHome,
            "efi_score" => return Word::EfiScore,
            "hfrs_score" => return Word::HfrsScore,
            "hfrs_intermediate" => return Word::Flag("HFRS intermediate".into()),
            "hfrs_high" => return Word::Flag("HFRS high".into()),
            "charlson_score" => return Word::CharlsonScore,
            "days_since_emergency_admission" => return Word::DaysSinceEmergency,
            "no_emergency_admission" => return Word::NeverAdmitted,
            "medicines_12m" => {
                return Word::Count(
                    "medicine in 12 months".into(),
                    "medicines in 12 months".into(),
                )
            }
            _ => {}
        }
        if let Some(slug) = name.strip_prefix("efi_") {
            if let Some(d) = defs
                .efi
                .deficits
                .iter()
                .find(|d| d.slug.replace('-', "_") == slug)
            {
                return Word::Flag(d.name.clone());
            }
        }
        if let Some(key) = name.strip_prefix("charlson_") {
            if let Some(c) = defs.charlson.categories.iter().find(|c| c.key == key) {
                return Word::Flag(c.name.clone());
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
                    return Word::Count(
                        format!("{one} in {m} months"),
                        format!("{many} in {m} months"),
                    );
                }
            }
        }
        Word::Raw(name.to_string())
    }

    /// Whether value `v` says something is absent (not recorded, not present): never a reason.
    fn is_absence(&self, v: f32) -> bool {
        match self {
            Word::Flag(_) | Word::CareHome => v.is_nan() || v < 0.5,
            Word::NeverAdmitted => true,
            Word::DaysSinceEmergency | Word::Imd | Word::Female | Word::Raw(_) => v.is_nan(),
            Word::Count(_, _) => v.is_nan() || v <= 0.0,
            _ => v.is_nan(),
        }
    }

    /// Value `v` in words, appended to `out` (the list's factor texts are written into one
    /// buffer a patient, not built a phrase at a time).
    fn say(&self, v: f32, out: &mut String) {
        use std::fmt::Write;
        let yes = v >= 0.5;
        // Writing into a String cannot fail.
        let _ = if v.is_nan() {
            match self {
                Word::Imd => write!(out, "deprivation (IMD) not recorded"),
                Word::DaysSinceEmergency => write!(out, "no emergency admission on record"),
                Word::Raw(n) | Word::Flag(n) | Word::Count(_, n) => write!(out, "{n} not recorded"),
                _ => write!(out, "not recorded"),
            }
        } else {
            match self {
                // The band, as on the lists: an exact age is one more quasi-identifier.
                Word::Age => write!(out, "age {}", crate::population::age_band(v as i32)),
                Word::Female => write!(out, "{}", if yes { "female" } else { "male" }),
                Word::NeverAdmitted => write!(out, "no emergency admission on record"),
                Word::Imd => write!(out, "IMD decile {v} (1 = most deprived)"),
                Word::CareHome => write!(
                    out,
                    "{}",
                    if yes {
                        "lives in a care home"
                    } else {
                        "not in a care home"
                    }
                ),
                Word::EfiScore => write!(out, "eFI {v:.2}"),
                Word::HfrsScore => write!(out, "HFRS {v:.1}"),
                Word::CharlsonScore => write!(out, "Charlson score {v}"),
                Word::DaysSinceEmergency => write!(out, "last emergency admission {v} days ago"),
                Word::Flag(n) if yes => write!(out, "{n}"),
                Word::Flag(n) => write!(out, "no record of {}", n.to_lowercase()),
                Word::Count(one, _) if v == 1.0 => write!(out, "1 {one}"),
                Word::Count(_, many) => write!(out, "{v} {many}"),
                Word::Raw(n) => write!(out, "{n} {v}"),
            }
        };
    }
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
    /// SHA-256 of the card's bytes, hex.
    pub sha256: String,
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
        let top = |b: RiskBand| {
            b.top_percent()
                .is_some_and(|pct| rank as f64 <= (n as f64 * f64::from(pct) / 100.0).ceil())
        };
        [RiskBand::VeryHigh, RiskBand::High, RiskBand::Moderate]
            .into_iter()
            .find(|&b| top(b))
            .unwrap_or(RiskBand::Low)
    }

    /// The share of the PCN's eligible people, by rank, that the band and those above it take,
    /// in % (`None` for `Low` and `NotRanked`): what "top 1%" in the lists' words means.
    pub fn top_percent(self) -> Option<u32> {
        match self {
            RiskBand::VeryHigh => Some(1),
            RiskBand::High => Some(5),
            RiskBand::Moderate => Some(20),
            RiskBand::Low | RiskBand::NotRanked => None,
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
    /// Eligible people per PCN (by PCN index): what ranks are out of.
    pub pcn_eligible: Vec<u32>,
    /// The card's probability cut-offs of very high, high and moderate, when bands are set by
    /// them (`BandMode::Card`); `None`: bands by rank within the PCN.
    pub cutoffs: Option<[f64; 3]>,
}

impl ModelRisk {
    fn ranked(&self, pcn: &[u32], p: usize) -> Option<(u32, u32)> {
        let r = self.pcn_rank[p];
        (r > 0).then(|| (r, self.pcn_eligible[pcn[p] as usize]))
    }

    /// Percentage of the PCN's eligible people at or below patient `p`'s rank (100 = the
    /// highest), `ceil(100 (n - rank + 1) / n)`; 0 when not eligible. `pcn` is the patients'
    /// PCN index column.
    pub fn percentile(&self, pcn: &[u32], p: usize) -> u32 {
        self.ranked(pcn, p).map_or(0, |(r, n)| {
            (100 * (n - r + 1) as u64).div_ceil(n as u64) as u32
        })
    }

    /// What band `b` means, in words: "top 5% of the PCN", or with card cut-offs "risk from
    /// 18.2% (the list population's top 5% in the card's validation year)"; `None` below the
    /// moderate band.
    pub fn band_meaning(&self, b: RiskBand) -> Option<String> {
        let pct = b.top_percent()?;
        Some(match self.cutoffs {
            None => format!("top {pct}% of the PCN"),
            Some(c) => {
                let cut = match b {
                    RiskBand::VeryHigh => c[0],
                    RiskBand::High => c[1],
                    _ => c[2],
                };
                format!(
                    "risk from {:.1}%, the list population's top {pct}% in the card's validation year",
                    cut * 100.0
                )
            }
        })
    }

    /// Patient `p`'s band: by the card's probability cut-offs, or by rank within the PCN.
    pub fn band(&self, pcn: &[u32], p: usize) -> RiskBand {
        let Some((r, n)) = self.ranked(pcn, p) else {
            return RiskBand::NotRanked;
        };
        match self.cutoffs {
            Some([very_high, high, moderate]) => {
                let v = self.probability[p];
                if v >= very_high {
                    RiskBand::VeryHigh
                } else if v >= high {
                    RiskBand::High
                } else if v >= moderate {
                    RiskBand::Moderate
                } else {
                    RiskBand::Low
                }
            }
            None => RiskBand::of_rank(r, n),
        }
    }
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
        let m = load_one(&path, &table, defs)?;
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

/// Load one model card, checked against this build's feature table (every feature it needs must
/// be there). What `strata evaluate` and `strata compare` read as well as `strata score`.
pub fn load_card(path: &Path, defs: &Definitions) -> Result<RiskModel, RiskError> {
    load_one(path, &predictor_names(defs), defs)
}

fn load_one(path: &Path, table: &[String], defs: &Definitions) -> Result<RiskModel, RiskError> {
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
            sha256: crate::provenance::sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            trained_on: format!(
                "{} to {}",
                card.training_cohort.window_start, card.training_cohort.window_end
            ),
            caveats: card.caveats.clone(),
        },
        linear: match &predictor {
            Predictor::Logistic(m) => Some(Linear::new(m, &columns, table.len())),
            Predictor::Gbdt(_) => None,
        },
        shap: match &predictor {
            Predictor::Gbdt(m) => Some(std::sync::Arc::new(m.shap_tables())),
            Predictor::Logistic(_) => None,
        },
        trees: match &predictor {
            Predictor::Gbdt(m) => Some(std::sync::Arc::new(m.compile())),
            Predictor::Logistic(_) => None,
        },
        predictor,
        columns,
        words: card
            .feature_names
            .iter()
            .map(|n| Word::of(defs, n))
            .collect(),
        cutoffs: card
            .risk_bands
            .as_ref()
            .map(|b| [b.very_high, b.high, b.moderate]),
        baseline: card
            .list_baseline
            .as_ref()
            .map(|b| b.mean_contribution.clone())
            .filter(|b| b.len() == card.feature_names.len())
            .unwrap_or_else(|| vec![0.0; card.feature_names.len()]),
        names: card.feature_names.clone(),
    })
}

impl RiskModel {
    /// The model's features of one patient, from their row of strata's feature table.
    fn gather(&self, full: &[f32], out: &mut Vec<f32>) {
        out.clear();
        self.gather_rows(full, full.len().max(1), out);
    }

    /// The model's features of rows of strata's feature table (row-major, `width` columns),
    /// appended to `out` row-major in the model's order.
    fn gather_rows(&self, full: &[f32], width: usize, out: &mut Vec<f32>) {
        for row in full.chunks(width.max(1)) {
            out.extend(self.columns.iter().map(|&c| row[c]));
        }
    }

    /// Log-odds of the outcome for one patient's row of strata's feature table.
    pub fn margin(&self, full: &[f32]) -> f64 {
        let mut x = Vec::with_capacity(self.columns.len());
        self.gather(full, &mut x);
        self.predictor.margin_row(&x)
    }

    /// Probabilities for rows of strata's feature table (row-major, `width` columns), as the
    /// card's own model computes them (no folding), in row order.
    pub fn probabilities(&self, rows: &[f32], width: usize) -> Vec<f64> {
        rows.par_chunks(width.max(1))
            .with_min_len(1024)
            .map_init(Vec::new, |x, row| {
                self.gather(row, x);
                sigmoid(self.predictor.margin_row(x))
            })
            .collect()
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

    /// [`RiskModel::contributions`] for rows of strata's feature table (row-major, `width`
    /// columns), returned row-major in the model's feature order; a tree card's through its
    /// tables, eight rows at a time.
    pub fn contributions_rows(&self, full: &[f32], width: usize) -> Vec<f64> {
        let p = self.columns.len();
        let width = width.max(1);
        let n = full.len().div_ceil(width);
        // Rows in parallel into buffers sized once: a whole run's listed people at once is
        // hundreds of thousands of rows a model.
        let mut xs = vec![0f32; n * p];
        if p > 0 {
            xs.par_chunks_mut(p)
                .zip(full.par_chunks(width))
                .with_min_len(1024)
                .for_each(|(x, row)| {
                    for (x, &c) in x.iter_mut().zip(&self.columns) {
                        *x = row[c];
                    }
                });
        }
        if let (Predictor::Gbdt(m), Some(t)) = (&self.predictor, &self.shap) {
            // The tables were built from this model, so the shapes agree.
            if let Ok(phi) = t.explain_rows(m, &xs) {
                return phi;
            }
        }
        let mut out = vec![0f64; n * p];
        if p > 0 {
            out.par_chunks_mut(p)
                .zip(xs.par_chunks(p))
                .with_min_len(1024)
                .for_each(|(o, x)| {
                    for (o, c) in o.iter_mut().zip(self.predictor.contributions_row(x)) {
                        *o = c;
                    }
                });
        }
        out
    }

    /// Whether the card was trained on synthetic data (its caveat says so).
    pub fn synthetic(&self) -> bool {
        self.file
            .caveats
            .starts_with(strata_models::card::SYNTHETIC_CAVEAT)
    }

    /// The model's feature names, in its order.
    pub fn feature_names(&self) -> &[String] {
        &self.names
    }

    /// [`RiskModel::contributions`] re-centred on the card's list population: each minus its
    /// mean there, so that a positive value raises this person's risk above that of the people
    /// the list serves (they add up to the person's log-odds minus the population's mean).
    pub fn contributions_against_list(&self, full: &[f32]) -> Vec<f64> {
        let mut c = self.contributions(full);
        for (c, b) in c.iter_mut().zip(&self.baseline) {
            *c -= b;
        }
        c
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
    bands: BandMode,
) -> Vec<ModelRisk> {
    if models.is_empty() {
        return Vec::new();
    }
    let n = cohort.patients.len();
    let builder = RowBuilder::new(cohort, defs, scored, as_of);
    let width = builder.width();
    // One probability column per model, filled in fixed patient ranges in parallel: each range
    // builds a patient's feature row once for every model.
    const RANGE: usize = 4096;
    let mut probability: Vec<Vec<f64>> = models.iter().map(|_| vec![f64::NAN; n]).collect();
    let mut ranges: Vec<Vec<&mut [f64]>> = Vec::new();
    for column in probability.iter_mut() {
        for (c, chunk) in column.chunks_mut(RANGE).enumerate() {
            if ranges.len() <= c {
                ranges.push(Vec::new());
            }
            ranges[c].push(chunk);
        }
    }
    ranges.into_par_iter().enumerate().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        |(rows, x, alive, z), (c, mut outs)| {
            // Blocks of living patients: each one's feature row built once for every model, a
            // tree card applied to the block tree by tree.
            const BLOCK: usize = 256;
            let len = outs.first().map_or(0, |o| o.len());
            for k0 in (0..len).step_by(BLOCK) {
                alive.clear();
                alive.extend((k0..(k0 + BLOCK).min(len)).filter(|&k| {
                    !matches!(
                        scored.status[c * RANGE + k],
                        Status::Deceased | Status::NotYetBorn
                    )
                }));
                rows.resize(alive.len() * width, 0.0);
                for (&k, row) in alive.iter().zip(rows.chunks_mut(width.max(1))) {
                    builder.fill(c * RANGE + k, row);
                }
                for (m, out) in models.iter().zip(outs.iter_mut()) {
                    if let Some(l) = &m.linear {
                        for (&k, row) in alive.iter().zip(rows.chunks(width.max(1))) {
                            out[k] = sigmoid(l.margin(row));
                        }
                        continue;
                    }
                    x.clear();
                    m.gather_rows(rows, width, x);
                    z.clear();
                    z.resize(alive.len(), 0.0);
                    match &m.trees {
                        Some(t) => t.margins_into(x, m.columns.len(), z),
                        None => {
                            for (z, x) in z.iter_mut().zip(x.chunks(m.columns.len().max(1))) {
                                *z = m.predictor.margin_row(x);
                            }
                        }
                    }
                    for (&k, &z) in alive.iter().zip(z.iter()) {
                        out[k] = sigmoid(z);
                    }
                }
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
    let pcn_eligible: Vec<u32> = by_pcn.iter().map(|v| v.len() as u32).collect();
    probability
        .into_par_iter()
        .zip(models)
        .map(|(probability, model)| {
            let mut pcn_rank = vec![0u32; n];
            let mut order: Vec<u32> = Vec::new();
            for members in &by_pcn {
                order.clear();
                order.extend_from_slice(members);
                order.sort_by(|&a, &b| {
                    probability[b as usize]
                        .total_cmp(&probability[a as usize])
                        .then(a.cmp(&b))
                });
                for (r, &p) in order.iter().enumerate() {
                    pcn_rank[p as usize] = r as u32 + 1;
                }
            }
            ModelRisk {
                outcome: model.outcome,
                probability,
                pcn_rank,
                pcn_eligible: pcn_eligible.clone(),
                cutoffs: match bands {
                    BandMode::Card => model.cutoffs,
                    BandMode::Pcn => None,
                },
            }
        })
        .collect()
}

/// Explains patients' risks in plain words, for the patients a list shows (explaining everyone
/// would cost a tree ensemble's SHAP values for a million people).
pub struct Explainer<'a> {
    builder: RowBuilder<'a>,
    /// Factors worked out ahead for the people a run lists (sorted patients, their factors).
    ahead: Option<(Vec<u32>, Vec<Vec<String>>)>,
}

impl<'a> Explainer<'a> {
    /// An explainer for a run's cohort and results at `as_of`.
    pub fn new(cohort: &'a Cohort, defs: &'a Definitions, scored: &'a Scored, as_of: i32) -> Self {
        Explainer {
            builder: RowBuilder::new(cohort, defs, scored, as_of),
            ahead: None,
        }
    }

    /// Works out the factors of everyone in `patients` (any order, repeats allowed) under
    /// `models` in one batch, for [`Explainer::factors_of`] to look up: tree cards explain each
    /// distinct pattern of a batch once, so one batch of everyone a run lists costs less than a
    /// batch per PCN. The factors are the same either way (see `ShapTables::explain_rows`).
    pub fn ahead(mut self, models: &[RiskModel], mut patients: Vec<u32>) -> Self {
        if models.is_empty() {
            return self;
        }
        patients.sort_unstable();
        patients.dedup();
        let factors = self.compute(models, &patients);
        self.ahead = Some((patients, factors));
        self
    }

    /// Patient `p`'s row of strata's feature table.
    pub fn row(&self, p: usize) -> Vec<f32> {
        let mut row = vec![0f32; self.builder.width()];
        self.builder.fill(p, &mut row);
        row
    }

    /// For each of `models`, the factors raising patient `p`'s risk most above the list
    /// population's (largest positive re-centred contributions first, at most
    /// [`FACTORS_SHOWN`]), in plain words, joined by "; ". A factor that is the absence of
    /// something (no record of a condition, not in a care home) is never given as a reason.
    pub fn factors(&self, models: &[RiskModel], p: usize) -> Vec<String> {
        self.factors_of(models, &[p as u32])
            .pop()
            .unwrap_or_default()
    }

    /// [`Explainer::factors`] for each of `patients` (same order): blocks of patients in
    /// parallel, each block's feature rows built once and explained by every model together
    /// (a tree card through its tables, eight rows at a time).
    pub fn factors_of(&self, models: &[RiskModel], patients: &[u32]) -> Vec<Vec<String>> {
        match self.factors_ahead(patients) {
            Some(found) => found.into_iter().map(<[String]>::to_vec).collect(),
            None => self.compute(models, patients),
        }
    }

    /// [`Explainer::factors_of`] without copying the words: each of `patients`' factors as
    /// worked out ahead ([`Explainer::ahead`]); `None` when one of them was not.
    pub fn factors_ahead(&self, patients: &[u32]) -> Option<Vec<&[String]>> {
        let (known, factors) = self.ahead.as_ref()?;
        patients
            .iter()
            .map(|p| known.binary_search(p).ok().map(|k| factors[k].as_slice()))
            .collect()
    }

    fn compute(&self, models: &[RiskModel], patients: &[u32]) -> Vec<Vec<String>> {
        let width = self.builder.width().max(1);
        let mut rows = vec![0f32; patients.len() * width];
        rows.par_chunks_mut(width)
            .zip(patients.par_iter())
            .with_min_len(256)
            .for_each(|(row, &p)| self.builder.fill(p as usize, row));
        // Each model over every row (a tree card's patterns are found across them all at once).
        let per_model: Vec<Vec<String>> = models
            .iter()
            .map(|m| m.reasons_rows(&rows, width))
            .collect();
        // Patient by patient, each model's words moved, not copied.
        let mut models: Vec<std::vec::IntoIter<String>> =
            per_model.into_iter().map(Vec::into_iter).collect();
        (0..patients.len())
            .map(|_| {
                models
                    .iter_mut()
                    .map(|m| m.next().unwrap_or_default())
                    .collect()
            })
            .collect()
    }
}

impl RiskModel {
    /// The reasons in words for one patient's row of strata's feature table and their
    /// contributions (model order): re-centred on the list population, absences left out, the
    /// largest [`FACTORS_SHOWN`] positive ones, joined by "; ".
    fn reasons(&self, row: &[f32], contributions: &[f64]) -> String {
        // Only what has a baseline, as a zip of the two would.
        let mut c = contributions[..contributions.len().min(self.baseline.len())].to_vec();
        for (j, (c, b)) in c.iter_mut().zip(&self.baseline).enumerate() {
            *c = if self.words[j].is_absence(row[self.columns[j]]) {
                f64::NAN
            } else {
                *c - b
            };
        }
        let mut out = String::with_capacity(96);
        for (k, f) in top_factors(&c, FACTORS_SHOWN).iter().enumerate() {
            if k > 0 {
                out.push_str("; ");
            }
            self.words[f.feature].say(row[self.columns[f.feature]], &mut out);
        }
        out
    }

    /// [`RiskModel::reasons`] for rows of strata's feature table (row-major, `width` columns):
    /// a tree card's contributions through its tables for all the rows at once (its patterns
    /// are found across them), any other card's row by row, so that no buffer of every row's
    /// contributions is held (a run's listed people are hundreds of thousands of rows).
    fn reasons_rows(&self, rows: &[f32], width: usize) -> Vec<String> {
        let width = width.max(1);
        if let (Predictor::Gbdt(_), Some(_)) = (&self.predictor, &self.shap) {
            let c = self.contributions_rows(rows, width);
            let k = self.columns.len().max(1);
            return rows
                .par_chunks(width)
                .zip(c.par_chunks(k))
                .with_min_len(256)
                .map(|(row, c)| self.reasons(row, c))
                .collect();
        }
        rows.par_chunks(width)
            .with_min_len(256)
            .map_init(
                || Vec::with_capacity(self.columns.len()),
                |x, row| {
                    self.gather(row, x);
                    // As contributions_rows fills them: the model's width, zero where none.
                    let mut c = self.predictor.contributions_row(x);
                    c.resize(self.columns.len(), 0.0);
                    self.reasons(row, &c)
                },
            )
            .collect()
    }
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
