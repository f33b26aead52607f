//! `strata score`: the nightly job.

use std::path::PathBuf;

use anyhow::Result;
use strata::disclosure::Suppression;
use strata::lists::ListRules;
use strata::run::{self, ScoreOptions};
use strata::scores::EfiCategory;

/// Score a cohort at an as-of date and write, per PCN, a ranked frailty list (CSV and Parquet)
/// with the reasons each person is on it, plus every patient's scores, a small-number-suppressed
/// summary, any rejected rows and a manifest. Use it for the nightly batch. The output folder is
/// replaced only when the run succeeds.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder (patients.parquet, events.parquet, encounters.parquet).
    #[arg(long)]
    pub cohort: PathBuf,
    /// As-of (index) date: records after it are ignored (they are outcomes in a back-test).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// Output folder; replaced atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Youngest age listed and counted.
    #[arg(long, default_value_t = 65)]
    pub min_age: i32,
    /// Mildest eFI category listed: fit, mild, moderate or severe.
    #[arg(long, default_value = "mild")]
    pub min_category: String,
    /// Round summary counts to the nearest 5 as well as suppressing 1-7 (for publication).
    #[arg(long)]
    pub publication: bool,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let opts = options(&a)?;
    let m = run::score(&opts)?;
    print_manifest(&m, &opts.out);
    Ok(0)
}

/// Library options from the arguments.
pub fn options(a: &Args) -> Result<ScoreOptions> {
    let min_category = EfiCategory::parse(&a.min_category)
        .ok_or_else(|| super::usage("--min-category must be fit, mild, moderate or severe"))?;
    Ok(ScoreOptions {
        cohort: a.cohort.clone(),
        out: a.out.clone(),
        as_of: super::parse_date(&a.as_of)?,
        models: super::models_dir(&a.models),
        load: a.input.options()?,
        rules: ListRules {
            min_age: a.min_age,
            min_category,
        },
        suppression: if a.publication {
            Suppression::publication()
        } else {
            Suppression::default()
        },
    })
}

/// Print what a run did.
pub fn print_manifest(m: &run::Manifest, out: &std::path::Path) {
    for w in &m.warnings {
        eprintln!("{w}");
    }
    let total: f64 = m.seconds.iter().map(|(_, s)| s).sum();
    println!(
        "scored {} patients at {}: {} eligible (aged {}+, alive), {} listed ({} in the most deprived fifth, Core20) across {} PCN lists; {} rows rejected, {} records after the as-of date ignored",
        m.patients,
        m.as_of,
        m.eligible,
        m.rules.min_age,
        m.listed,
        m.listed_core20,
        m.outputs.iter().filter(|w| w.path.ends_with(".csv") && w.path.starts_with("lists/")).count(),
        m.rejected_rows,
        m.ignored_after_as_of
    );
    let stages: Vec<String> = m
        .seconds
        .iter()
        .map(|(n, s)| format!("{n} {s:.2}s"))
        .collect();
    println!("time {total:.2}s ({})", stages.join(", "));
    println!("lists: {}", out.join("lists").display());
}
