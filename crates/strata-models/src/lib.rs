//! Prediction models and evaluation metrics for strata's 12-month risk models (emergency
//! admission, falls admission, death).
//!
//! * [`Dataset`]: the column-major `f32` feature table with 0/1 labels (1 = event).
//! * [`LogisticModel`]: L2-penalised logistic regression on standardised features (Newton/Cholesky),
//!   with per-patient contributions.
//! * [`fit_gbdt`] / [`GbdtModel`]: histogram gradient-boosted trees, applied from raw `f32`
//!   thresholds; [`GbdtModel::shap`] gives exact path-dependent TreeSHAP contributions.
//! * [`metrics`]: AUROC, AUPRC, Brier, log-loss, calibration, top-k case-finding, bootstrap CIs,
//!   matching scikit-learn / statsmodels definitions.
//! * [`card`]: the self-describing JSON model artefact ("model card").
//! * [`plot`]: the calibration plot as a self-contained SVG.
//!
//! Everything is deterministic: seeded generators, and parallel work (rayon) reduced in a fixed
//! order or with exact integer arithmetic, so results do not depend on the thread count.

// Numeric kernels index several arrays with one loop variable; iterator chains would obscure them.
#![allow(clippy::needless_range_loop)]
#![warn(missing_docs)]

pub mod card;
pub mod data;
pub mod error;
pub mod explain;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod plot;
pub mod rng;
pub mod select;
pub mod shap;
pub mod tree;

pub use card::{
    Cohort, GroupFigures, ListBaseline, ModelCard, ModelKind, ModelParams, PracticeValidation,
    Predictor, Preprocessing, RiskBandCutoffs,
};
pub use data::Dataset;
pub use error::{ModelError, Result};
pub use gbdt::{BinCuts, GbdtFit, GbdtParams, fit_gbdt};
pub use logistic::{LogisticModel, LogisticParams};
pub use metrics::{EvalOptions, Metrics, Recalibration, evaluate};
pub use shap::{ShapTables, TreeExplainer};
pub use tree::{CompiledTrees, GbdtModel, Tree};
