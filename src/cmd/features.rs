//! `strata features`: the prediction models' feature table, exported.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata::cohort::Cohort;
use strata::definitions::Definitions;
use strata::lists::ListRules;
use strata::output::{self, TableWriter};
use strata::predictors::{predictor_table, OUTCOME_DAYS};
use strata::run::score_cohort;

/// Export the risk models' feature table (one row per patient alive at the as-of date).
///
/// The features strata's risk models use (age, sex, deprivation, care home, every eFI deficit, eFI, HFRS and its bands, Charlson
/// conditions, hospital activity over 3, 12 and 24 months, days since the last emergency
/// admission, medicines), from records on or before the as-of date only. With `--outcomes`, add
/// what happened in the 365 days after it (emergency admission, falls admission, death). Use it
/// to fit your own model in Python or R on exactly strata's table.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder.
    #[arg(long)]
    pub cohort: PathBuf,
    /// As-of date: features use records on or before it.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// Output Parquet file (written beside itself first, then renamed into place).
    #[arg(long)]
    pub out: PathBuf,
    /// Add the three outcome labels of the 365 days after the as-of date.
    #[arg(long)]
    pub outcomes: bool,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let as_of = super::parse_date(&a.as_of)?;
    let load = a.input.options()?;
    if a.outcomes && as_of + OUTCOME_DAYS > load.today {
        return Err(super::usage(format!(
            "--outcomes needs the 365 days after the as-of date to have passed (as-of {} + 365 days is after today)",
            a.as_of
        )));
    }
    let defs = Definitions::load(&super::models_dir(&a.models)).map_err(strata::Error::from)?;
    let cohort = Cohort::load(&a.cohort, &load).map_err(strata::Error::from)?;
    let scored = score_cohort(&cohort, &defs, as_of, &ListRules::default());
    let table = predictor_table(&cohort, &defs, &scored, as_of, a.outcomes);
    let mut df = output::predictor_frame(&cohort, &table).context("building the table")?;
    let tmp = a.out.with_extension("parquet.partial");
    output::parquet::Parquet
        .write(&tmp, &mut df)
        .map_err(strata::Error::from)?;
    std::fs::rename(&tmp, &a.out).with_context(|| format!("renaming into {}", a.out.display()))?;
    println!(
        "{}: {} patients x {} features{}",
        a.out.display(),
        table.patients.len(),
        table.names.len(),
        if a.outcomes { " + 3 outcomes" } else { "" }
    );
    Ok(0)
}
