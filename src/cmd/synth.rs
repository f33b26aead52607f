//! `strata synth`: write a synthetic cohort.

use std::path::PathBuf;

use anyhow::Result;
use strata::definitions::Definitions;
use strata::synth::{self, SynthOptions};

/// Write a synthetic ICS cohort in the cohort contract: an English age-sex pyramid, PCNs from
/// urban deprived to rural affluent, and a latent frailty driving coded conditions, medicines,
/// hospital activity and deaths, calibrated to published rates. Use it for demos, tests,
/// benchmarks and training models without real data. Same seed, same files.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of patients (default: one ICS).
    #[arg(long, default_value_t = 1_200_000)]
    pub patients: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The as-of date the cohort is built around (4 years of history before, 1 after).
    #[arg(long, default_value = "2025-04-01", value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// Number of PCNs, five practices each (default: one per 40,000 patients, 2 to 30).
    #[arg(long)]
    pub pcns: Option<usize>,
    /// Share of people aged 65 or over, between 0 and 1 (default: England's, about 0.15): an
    /// older population, as the lists of a real ICS draw on (0.5 for about half).
    #[arg(long, value_name = "SHARE", value_parser = share)]
    pub share_65_plus: Option<f64>,
    /// Output folder; replaced atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Models folder (the code lists the generator draws codes from).
    #[arg(long)]
    pub models: Option<PathBuf>,
}

/// A share strictly between 0 and 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err(format!(
            "'{s}' is not a share between 0 and 1 (such as 0.5)"
        )),
    }
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let models = Definitions::load(&super::models_dir(&a.models)).map_err(strata::Error::from)?;
    let mut opts = SynthOptions::new(a.patients, a.seed, a.out.clone());
    opts.as_of = super::parse_date(&a.as_of)?;
    opts.pcns = a.pcns;
    opts.share_65_plus = a.share_65_plus;
    let t = std::time::Instant::now();
    let s = synth::generate(&opts, &models).map_err(strata::Error::from)?;
    if super::logging::quiet() {
        return Ok(0);
    }
    println!(
        "wrote {} patients, {} events, {} encounters ({} practices, {} PCNs, {} to {}) to {} in {:.1}s",
        s.patients,
        s.events,
        s.encounters,
        s.practices,
        s.pcns,
        s.period.0,
        s.period.1,
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(0)
}
