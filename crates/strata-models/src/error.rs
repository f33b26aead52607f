//! Typed errors for every fallible operation in the crate.

use thiserror::Error;

/// Everything that can go wrong when building a data set, fitting, predicting, scoring or
/// (de)serialising a model. Data-dependent problems are reported as errors, never panics, so that
/// a nightly job can log them and carry on with the other outcomes.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The matrix, label vector or feature-name list do not have consistent lengths.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A label other than 0 or 1 was supplied.
    #[error("label at row {row} is {value}; labels must be 0 or 1")]
    BadLabel {
        /// Row index of the first offending label.
        row: usize,
        /// The value found.
        value: u8,
    },
    /// A probability outside [0, 1] or a NaN prediction was given to a metric.
    #[error("prediction at row {row} is {value}; probabilities must be finite and in [0, 1]")]
    BadProbability {
        /// Row index of the first offending prediction.
        row: usize,
        /// The value found.
        value: f64,
    },
    /// The outcome is constant (all 0 or all 1), so the requested model or metric is undefined.
    #[error("{0}: needs both events (1) and non-events (0)")]
    SingleClass(&'static str),
    /// No rows were supplied.
    #[error("{0}: no rows")]
    Empty(&'static str),
    /// A hyper-parameter is outside its valid range.
    #[error("invalid parameter {name}: {reason}")]
    Param {
        /// Parameter name as spelled in the params struct.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An iterative solver did not reach its tolerance.
    #[error(
        "{solver} did not converge in {iterations} iterations (last gradient norm {grad_norm:e})"
    )]
    NoConvergence {
        /// Which solver.
        solver: &'static str,
        /// Iterations run.
        iterations: usize,
        /// Max-abs gradient at the last iterate.
        grad_norm: f64,
    },
    /// A matrix that should be positive definite was not (e.g. a Hessian with perfect separation).
    #[error("matrix not positive definite in {0}")]
    NotPositiveDefinite(&'static str),
    /// Every prediction is the same, so a slope against them is undefined (e.g. a tree model
    /// that found no split: too few events for its minimum leaf size).
    #[error(
        "{0}: every prediction is the same (a model that found no split has too few events to learn from)"
    )]
    ConstantPredictions(&'static str),
    /// The model file is malformed or inconsistent (bad child index, wrong feature count, ...).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// Features given at prediction time do not match the model's feature names.
    #[error("feature mismatch: {0}")]
    FeatureMismatch(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// JSON (de)serialisation failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
}

/// Crate-wide result alias.
pub type Result<T> = std::result::Result<T, ModelError>;
