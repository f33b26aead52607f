//! strata: population-health risk stratification for Integrated Care Systems.
//!
//! Reads a pseudonymised cohort (Parquet: patients, coded events, hospital encounters, optional
//! medications), computes the electronic Frailty Index, the Hospital Frailty Risk Score and the
//! Charlson index from their published definitions, and writes a ranked, explained frailty list
//! per Primary Care Network.
//!
//! Data flows one way through the modules, one per stage:
//!
//! ```text
//!                            ┌─► scores ──────┐
//! input ──► cohort ──► features              ├─► results ─┬─► lists ─────────────────┬─► output ─► publish
//!   ▲                     ▲ └─► population ──┘            └─► tables ─► disclosure ──┘
//! codes              definitions (models/: code lists, weights, cut-points as data files, via datafile)
//! ```
//!
//! `input` reads and checks a cohort (Parquet files or Arrow data in memory) into a [`cohort::Cohort`].
//!
//! `features` is the only module that looks at time (windows, ages, deaths at the as-of date);
//! `population` turns that into eligibility and the shared groupings (age band, IMD quintile,
//! Core20); `results` is the per-patient hand-off; `tables` counts and `disclosure` protects the
//! aggregate tables; `output` builds the files (per-patient columns defined once in
//! `output::columns`, one writer per format) and `publish` makes the folder appear atomically
//! with its manifest (in a plain folder, or in an output root as `ROOT/<as-of>/` with a `latest`
//! symlink); `provenance` records SHA-256 of inputs, model files and outputs and the build, and
//! `history` an output root's runs (`strata runs`). [`run::score`] wires the stages together; [`synth`] writes synthetic
//! cohorts in the same contract for demos, tests and benchmarks (through `publish`).
//!
//! `programmes` (named programme lists, reading `palliative`, the QOF palliative care register)
//! sits beside `lists`; `indicators` (population-health indicators, protected with the other
//! tables) beside `tables`.
//!
//! `allocator` holds the binary's allocator settings (mimalloc), which the benchmarks apply too.
//!
//! The risk models branch off after `results`: `predictors` builds their feature table and
//! outcome labels, and `evaluation` scores predictions on a window (`strata train`, `evaluate`,
//! `compare`).

pub mod allocator;
pub mod carried;
pub mod changes;
pub mod codes;
pub mod cohort;
pub mod config;
pub mod datafile;
pub mod date;
pub mod definitions;
pub mod digest;
pub mod disclosure;
pub mod evaluation;
pub mod features;
pub mod finish;
pub mod history;
pub mod indicators;
pub mod input;
pub mod lists;
pub mod output;
pub mod palliative;
pub mod partition;
pub mod population;
pub mod predictors;
pub mod privacy;
pub mod programmes;
pub mod provenance;
pub mod publish;
pub mod report;
pub mod results;
pub mod risk;
pub mod run;
pub mod scores;
pub mod settings;
pub mod sink;
pub mod synth;
pub mod tables;
pub mod threads;

/// Any error of the library, by stage. The binary maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cohort could not be read or failed validation.
    #[error(transparent)]
    Input(#[from] input::InputError),
    /// A definition file (models/) is missing or malformed.
    #[error(transparent)]
    Definitions(#[from] definitions::DefinitionError),
    /// The aggregate tables could not be protected (an inconsistent table or a solver failure:
    /// nothing is published).
    #[error(transparent)]
    Disclosure(#[from] disclosure::DisclosureError),
    /// A risk model card could not be read or applied.
    #[error(transparent)]
    Risk(#[from] risk::RiskError),
    /// A programme asks for something the run does not have (a risk model, a falls deficit).
    #[error(transparent)]
    Programme(#[from] programmes::ProgrammeError),
    /// Outputs could not be written.
    #[error(transparent)]
    Output(#[from] publish::OutputError),
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
            Error::Definitions(_) | Error::Risk(_) | Error::Programme(_) => 4,
            Error::Output(_) => 5,
            Error::Disclosure(_) => 1,
            Error::Synth(_) => 5,
        }
    }
}
