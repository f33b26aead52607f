//! The model artefact: a self-describing JSON "model card" holding everything needed to apply,
//! explain and judge a model, with no dependency beyond this crate's plain structs.
//!
//! Floats are written by `serde_json` with its `float_roundtrip` feature, so a saved model reloads
//! with bit-identical parameters and therefore bit-identical predictions.

use crate::data::Dataset;
use crate::error::{ModelError, Result};
use crate::gbdt::{GbdtFit, GbdtParams};
use crate::logistic::{LogisticModel, LogisticParams};
use crate::metrics::Metrics;
use crate::tree::{GbdtModel, Tree};
use serde::{Deserialize, Serialize};

/// Version of the card layout written by this crate; [`ModelCard::from_json`] refuses others.
pub const FORMAT_VERSION: u32 = 1;

/// Default caveat for models fitted on strata's synthetic cohorts.
pub const SYNTHETIC_CAVEAT: &str = "Trained on synthetic data; retrain on local data before use.";

/// Caveat of a model fitted on a cohort without the synthetic-data mark.
pub const LOCAL_CAVEAT: &str = "Trained on local data (a cohort without strata synth's synthetic-data mark); validated on the following year of the same population.";

/// Which kind of model the card holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// L2-penalised logistic regression on standardised features.
    Logistic,
    /// Gradient-boosted decision trees (log-odds scale).
    Gbdt,
}

/// How raw features are transformed before the model sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocessing {
    /// `z = (x - mean) / sd`, missing -> `z = 0` (training-mean imputation).
    Standardise {
        /// Training means, in feature order.
        mean: Vec<f64>,
        /// Training population sds, in feature order.
        sd: Vec<f64>,
    },
    /// None at apply time (trees test raw values); the training bin cut points are recorded for
    /// audit and retraining.
    Bins {
        /// Cut points per feature.
        cuts: Vec<Vec<f32>>,
    },
}

/// The fitted parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelParams {
    /// Logistic regression.
    Logistic {
        /// Intercept (log-odds at the training mean).
        intercept: f64,
        /// Coefficients of the standardised features.
        coef: Vec<f64>,
    },
    /// Tree ensemble.
    Gbdt {
        /// Initial log-odds.
        base_score: f64,
        /// Trees in boosting order.
        trees: Vec<Tree>,
    },
}

/// The hyper-parameters the model was fitted with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hyperparameters {
    /// Logistic regression parameters (plus the equivalent scikit-learn C).
    Logistic {
        /// The parameters.
        params: LogisticParams,
        /// scikit-learn `C` equivalent on the training rows (`1 / (n * l2)`).
        sklearn_c: f64,
        /// Newton iterations taken.
        iterations: usize,
    },
    /// GBDT parameters.
    Gbdt(GbdtParams),
}

/// A cohort the model was fitted or validated on, described by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Cohort {
    /// Free text: population, source, inclusion criteria.
    pub description: String,
    /// First as-of date of the window (ISO 8601, as supplied).
    pub window_start: String,
    /// Last as-of date of the window.
    pub window_end: String,
    /// Rows (patient-dates).
    pub n_rows: usize,
    /// Events among them.
    pub events: usize,
}

/// The model card: model, provenance, figures and intended use, as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Outcome predicted, e.g. `"emergency_admission_12m"`.
    pub outcome: String,
    /// Model kind.
    pub kind: ModelKind,
    /// Feature names, in the order the model expects them.
    pub feature_names: Vec<String>,
    /// Feature preprocessing.
    pub preprocessing: Preprocessing,
    /// Fitted parameters.
    pub model: ModelParams,
    /// Hyper-parameters.
    pub hyperparameters: Hyperparameters,
    /// Training cohort.
    pub training_cohort: Cohort,
    /// Validation cohort, if any.
    pub validation_cohort: Option<Cohort>,
    /// Figures on the training cohort.
    pub training_metrics: Option<Metrics>,
    /// Figures on the validation cohort.
    pub validation_metrics: Option<Metrics>,
    /// What the model is for (and not for).
    pub intended_use: String,
    /// Known limitations.
    pub limitations: String,
    /// Caveats, by default [`SYNTHETIC_CAVEAT`].
    pub caveats: String,
    /// Software that produced the card.
    pub software: String,
    /// The population the lists serve in the validation window, and each feature's mean
    /// contribution in it: explanations are re-centred on it, so a factor is named as raising
    /// risk only against the people it is listed beside (absent on older cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_baseline: Option<ListBaseline>,
    /// Figures on the validation cohort's list population (alive, aged `list_baseline.min_age`
    /// or over): the headline a care team's list is judged by. `validation_metrics` covers all
    /// ages, children included, where age alone discriminates well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_validation_metrics: Option<Metrics>,
    /// The list population's validation figures by group (eFI category: fit, mild, moderate,
    /// severe), bootstrap-free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list_validation_by_group: Vec<GroupFigures>,
    /// Features that are the extract's current values (snapshots), not what was known at the
    /// as-of date: in training, a year before it, they may already reflect what followed
    /// (a move into a care home after a fall).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_features: Vec<String>,
    /// Validation on practices the model never saw: refitted (same family and settings) without
    /// a fifth of the practices, evaluated on those practices in the validation year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice_validation: Option<PracticeValidation>,
    /// How the model family was chosen (`strata train --model auto`), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_selection: Option<String>,
    /// Absolute probability cut-offs of the risk bands, the same in every PCN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_bands: Option<RiskBandCutoffs>,
}

/// The probabilities from which a person is in the `very_high`, `high` and `moderate` bands:
/// by default those of the list population's top 1%, 5% and 20% in the validation year, so that
/// "very high" means the same in every PCN and a PCN scored alone gets the same band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskBandCutoffs {
    /// How they were set.
    pub description: String,
    /// From this probability: very high.
    pub very_high: f64,
    /// High.
    pub high: f64,
    /// Moderate.
    pub moderate: f64,
}

/// Validation on held-out practices (geographical validation, beside the temporal one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticeValidation {
    /// Which practices were held out and how the model was refitted.
    pub description: String,
    /// Practices held out.
    pub practices: usize,
    /// Figures on their list population (alive, 65+) in the validation year.
    pub list_metrics: Option<Metrics>,
    /// Figures on all their people in the validation year.
    pub all_metrics: Option<Metrics>,
}

/// Figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFigures {
    /// The dimension (`efi_category`).
    pub dimension: String,
    /// The group.
    pub group: String,
    /// People in it.
    pub n: usize,
    /// Its figures; `None` when it has no event or only events.
    pub metrics: Option<Metrics>,
}

/// The list population of a model card's validation window and its mean contributions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListBaseline {
    /// Who it is, in words.
    pub description: String,
    /// Youngest age in it.
    pub min_age: i32,
    /// People in it (those whose contributions were averaged: all of them for a linear model,
    /// an evenly spaced sample of at most `sample` for trees, whose contributions cost more).
    pub n: usize,
    /// Each feature's mean contribution to the log-odds (card feature order).
    pub mean_contribution: Vec<f64>,
    /// The mean log-odds (base value plus the mean contributions).
    pub mean_log_odds: f64,
}

fn software() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

impl ModelCard {
    /// A card with the fitted parts; figures, free text and everything measured after the fit
    /// are left for the caller to fill.
    fn fitted(
        outcome: &str,
        kind: ModelKind,
        feature_names: Vec<String>,
        preprocessing: Preprocessing,
        model: ModelParams,
        hyperparameters: Hyperparameters,
        training_cohort: Cohort,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            outcome: outcome.into(),
            kind,
            feature_names,
            preprocessing,
            model,
            hyperparameters,
            training_cohort,
            validation_cohort: None,
            training_metrics: None,
            validation_metrics: None,
            intended_use: String::new(),
            limitations: String::new(),
            caveats: SYNTHETIC_CAVEAT.into(),
            software: software(),
            list_baseline: None,
            list_validation_metrics: None,
            list_validation_by_group: Vec::new(),
            snapshot_features: Vec::new(),
            practice_validation: None,
            model_selection: None,
            risk_bands: None,
        }
    }

    /// A card for a fitted logistic model; figures and free text are left for the caller to fill.
    pub fn logistic(
        outcome: &str,
        model: &LogisticModel,
        params: &LogisticParams,
        training_cohort: Cohort,
    ) -> Self {
        let hyperparameters = Hyperparameters::Logistic {
            params: params.clone(),
            sklearn_c: params.sklearn_c(training_cohort.n_rows.max(1)),
            iterations: model.iterations,
        };
        Self::fitted(
            outcome,
            ModelKind::Logistic,
            model.feature_names.clone(),
            Preprocessing::Standardise {
                mean: model.mean.clone(),
                sd: model.sd.clone(),
            },
            ModelParams::Logistic {
                intercept: model.intercept,
                coef: model.coef.clone(),
            },
            hyperparameters,
            training_cohort,
        )
    }

    /// A card for a fitted GBDT; figures and free text are left for the caller to fill.
    pub fn gbdt(
        outcome: &str,
        fit: &GbdtFit,
        params: &GbdtParams,
        training_cohort: Cohort,
    ) -> Self {
        Self::fitted(
            outcome,
            ModelKind::Gbdt,
            fit.model.feature_names.clone(),
            Preprocessing::Bins {
                cuts: fit.bins.cuts.clone(),
            },
            ModelParams::Gbdt {
                base_score: fit.model.base_score,
                trees: fit.model.trees.clone(),
            },
            Hyperparameters::Gbdt(params.clone()),
            training_cohort,
        )
    }

    /// Serialises the card (compact JSON unless `pretty`).
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        Ok(if pretty {
            serde_json::to_string_pretty(self)?
        } else {
            serde_json::to_string(self)?
        })
    }

    /// Parses and validates a card (version, kinds consistent, lengths match the feature list,
    /// trees well formed).
    pub fn from_json(s: &str) -> Result<Self> {
        let card: Self = serde_json::from_str(s)?;
        card.validate()?;
        Ok(card)
    }

    /// Writes the card to `path`.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, self.to_json(false)?).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// Reads and validates a card from `path`.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_json(&s)
    }

    /// Checks internal consistency (see [`ModelCard::from_json`]).
    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(ModelError::InvalidModel(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                self.format_version
            )));
        }
        self.predictor().map(|_| ())
    }

    /// The applicable model (built once; use it to predict and explain many rows).
    pub fn predictor(&self) -> Result<Predictor> {
        let p = self.feature_names.len();
        let bad = |m: &str| Err(ModelError::InvalidModel(m.into()));
        match (
            &self.kind,
            &self.model,
            &self.preprocessing,
            &self.hyperparameters,
        ) {
            (
                ModelKind::Logistic,
                ModelParams::Logistic { intercept, coef },
                Preprocessing::Standardise { mean, sd },
                Hyperparameters::Logistic {
                    params, iterations, ..
                },
            ) => {
                if coef.len() != p || mean.len() != p || sd.len() != p {
                    return bad("coefficient/mean/sd lengths differ from the feature list");
                }
                if !intercept.is_finite()
                    || coef.iter().chain(mean).any(|v| !v.is_finite())
                    || sd.iter().any(|v| !(v.is_finite() && *v > 0.0))
                {
                    return bad("non-finite coefficient, mean or sd");
                }
                Ok(Predictor::Logistic(LogisticModel {
                    feature_names: self.feature_names.clone(),
                    mean: mean.clone(),
                    sd: sd.clone(),
                    coef: coef.clone(),
                    intercept: *intercept,
                    l2: params.l2,
                    iterations: *iterations,
                }))
            }
            (
                ModelKind::Gbdt,
                ModelParams::Gbdt { base_score, trees },
                Preprocessing::Bins { cuts },
                Hyperparameters::Gbdt(_),
            ) => {
                if cuts.len() != p {
                    return bad("bin cut lists differ from the feature list");
                }
                let m = GbdtModel {
                    feature_names: self.feature_names.clone(),
                    base_score: *base_score,
                    trees: trees.clone(),
                };
                m.validate()?;
                Ok(Predictor::Gbdt(m))
            }
            _ => bad("kind, model, preprocessing and hyper-parameters disagree"),
        }
    }
}

/// A model ready to apply, built from a card by [`ModelCard::predictor`].
#[derive(Debug, Clone, PartialEq)]
pub enum Predictor {
    /// Logistic regression.
    Logistic(LogisticModel),
    /// Tree ensemble.
    Gbdt(GbdtModel),
}

impl Predictor {
    /// Log-odds for one row of raw feature values.
    pub fn margin_row(&self, row: &[f32]) -> f64 {
        match self {
            Predictor::Logistic(m) => m.margin_row(row),
            Predictor::Gbdt(m) => m.margin_row(row),
        }
    }

    /// Event probabilities for every row of `data`.
    pub fn predict_proba(&self, data: &Dataset) -> Result<Vec<f64>> {
        match self {
            Predictor::Logistic(m) => m.predict_proba(data),
            Predictor::Gbdt(m) => m.predict_proba(data),
        }
    }

    /// The log-odds a patient with no information starts from: the intercept (logistic) or the
    /// SHAP expected value (GBDT). `base_value + sum(contributions) = log-odds`.
    pub fn base_value(&self) -> f64 {
        match self {
            Predictor::Logistic(m) => m.intercept,
            Predictor::Gbdt(m) => m.expected_value(),
        }
    }

    /// Per-feature contributions to one row's log-odds: `coef x z` (logistic) or TreeSHAP (GBDT).
    pub fn contributions_row(&self, row: &[f32]) -> Vec<f64> {
        match self {
            Predictor::Logistic(m) => m.contributions_row(row),
            Predictor::Gbdt(m) => m.shap_row(row),
        }
    }
}
