//! strata: population-health risk stratification for Integrated Care Systems.
//!
//! Reads a pseudonymised cohort (Parquet: patients, coded events, hospital encounters), computes
//! the electronic Frailty Index, the Hospital Frailty Risk Score and the Charlson index exactly as
//! published, and writes a ranked, explained frailty list per Primary Care Network.
//!
//! Data flows one way through the modules, one per stage:
//!
//! ```text
//! cohort ──► features ──► scores ──► lists ──► output
//!   ▲            ▲
//! codes      codelists (models/: code lists, weights, cut-points as data files)
//! ```
//!
//! [`run::score`] wires the stages together; [`synth`] writes synthetic cohorts in the same
//! contract for demos, tests and benchmarks.

pub mod codelists;
pub mod codes;
pub mod cohort;
pub mod date;
pub mod features;
pub mod input;
pub mod lists;
pub mod output;
pub mod privacy;
pub mod run;
pub mod scores;
pub mod synth;

/// Any error of the library, by stage. The binary maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cohort could not be read or failed validation.
    #[error(transparent)]
    Input(#[from] input::InputError),
    /// A model file is missing or malformed.
    #[error(transparent)]
    Model(#[from] codelists::ModelError),
    /// Outputs could not be written.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// The synthetic cohort could not be generated.
    #[error(transparent)]
    Synth(#[from] synth::SynthError),
}

impl Error {
    /// The process exit code documented in README.md.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(input::InputError::Invalid { .. }) => 3,
            Error::Input(input::InputError::TooLarge { .. }) => 6,
            Error::Model(_) => 4,
            Error::Output(_) => 5,
            Error::Synth(_) => 5,
        }
    }
}
