//! `strata validate`: check a cohort folder against the contract without scoring it.

use std::path::PathBuf;

use anyhow::Result;
use strata::cohort::Cohort;

/// Check a cohort folder against the contract and report every problem with its file, column
/// and rows. Use it when a new extract arrives, before the nightly run; `score` runs the same
/// checks itself. Exits 0 when the cohort can be scored (warnings allowed), 3 when it cannot.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder (patients.parquet, events.parquet, encounters.parquet).
    #[arg(long)]
    pub cohort: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let opts = a.input.options()?;
    let cohort = Cohort::read(&a.cohort, &opts);
    let report = &cohort.report;
    if a.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.is_ok() { 0 } else { 3 })
}
