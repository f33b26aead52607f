//! One file per subcommand; each parses its arguments, calls the library and prints a short
//! report. Exit codes: 0 success, 1 other failure, 2 usage, 3 invalid cohort, 4 model files,
//! 5 output, 6 not enough memory.

pub mod compare;
pub mod demo;
pub mod evaluate;
pub mod features;
pub mod logging;
pub mod runs;
pub mod score;
pub mod synth;
pub mod train;
pub mod validate;

use std::path::PathBuf;

use anyhow::Result;
use strata::input::LoadOptions;

/// A bad argument value: exit code 2, like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error as an anyhow error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Parse `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<i32> {
    strata::date::parse_days(s).ok_or_else(|| usage(format!("'{s}' is not a date (YYYY-MM-DD)")))
}

/// Input-checking flags shared by `validate` and `score`.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Accept columns that look like direct identifiers (names, NHS numbers, postcodes,
    /// day-precise birth dates). Only for data already cleared by your IG lead.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub allow_identifiers: Option<bool>,
    /// Largest fraction of a file's rows that may be rejected before the cohort is refused
    /// [default: 0.01].
    #[arg(long, value_name = "FRACTION")]
    pub max_rejected: Option<f64>,
    /// Treat this date as today (dates after it are impossible). Default: the real date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub today: Option<String>,
    /// Skip the check that the cohort fits in memory.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub skip_memory_check: Option<bool>,
    /// Memory the run may use, in MB (default: what the machine has available).
    #[arg(long, value_name = "MB")]
    pub memory_limit: Option<u64>,
    /// Decode every string with polars instead of the dictionary fast path (for benchmarks).
    #[arg(long, hide = true)]
    pub no_dictionary_path: bool,
}

impl InputArgs {
    /// The library's options.
    pub fn options(&self) -> Result<LoadOptions> {
        self.options_over(&Default::default())
    }

    /// These flags as settings (`[input]`).
    pub fn config(&self) -> strata::config::InputConfig {
        strata::config::InputConfig {
            allow_identifiers: self.allow_identifiers,
            max_rejected: self.max_rejected,
            today: self.today.clone(),
            skip_memory_check: self.skip_memory_check,
            memory_limit: self.memory_limit,
        }
    }

    /// The library's options, these flags laid over a settings file's `[input]`: a flag given
    /// wins, then the file, then the default (`strata::settings::load_options`).
    pub fn options_over(&self, file: &strata::config::InputConfig) -> Result<LoadOptions> {
        let mut o = strata::settings::load_options(&self.config().over(file))
            .map_err(|e| usage(e.to_string()))?;
        o.dictionary_path = !self.no_dictionary_path;
        Ok(o)
    }
}

/// The models folder: the flag, else the default search.
pub fn models_dir(flag: &Option<PathBuf>) -> PathBuf {
    flag.clone()
        .unwrap_or_else(strata::definitions::Definitions::default_dir)
}
