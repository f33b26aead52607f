//! `strata demo`: the whole job on built-in synthetic data.

use std::path::PathBuf;

use anyhow::Result;
use strata::config::ScoreConfig;
use strata::definitions::Definitions;
use strata::publish::Destination;
use strata::run::{self, ScoreOptions};
use strata::synth::{self, SynthOptions};

/// Run the nightly job end to end on a synthetic cohort: generate it if absent, score it at
/// 2025-03-01 (once) and then at 2025-04-01, compared with the earlier run, and write the
/// per-PCN lists to <dir>/runs/2025-04-01/lists/<PCN>/ (<dir>/runs/latest points at it). Use it
/// to see what strata produces, what changed since the last run included, before pointing it
/// at real data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the demo cohort and outputs go.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// Patients in the demo cohort.
    #[arg(long, default_value_t = 100_000)]
    pub patients: usize,
    #[command(flatten)]
    pub risk: super::score::RiskArgs,
}

/// Whether the demo applies the death and falls admission models the example programmes read.
fn opts_have_models(risk: &super::score::RiskArgs, models: &std::path::Path) -> bool {
    !risk.no_risk_models && risk.risk_models.is_empty() && models.join("risk").is_dir()
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let models_dir = Definitions::default_dir();
    let cohort = a.dir.join("cohort");
    let root = a.dir.join("runs");
    if !cohort.join("manifest.json").is_file() {
        let models = Definitions::load(&models_dir).map_err(strata::Error::from)?;
        let say = !super::logging::quiet();
        if say {
            println!(
                "generating a synthetic cohort of {} patients in {}",
                a.patients,
                cohort.display()
            );
        }
        let s = synth::generate(&SynthOptions::new(a.patients, 42, cohort.clone()), &models)
            .map_err(strata::Error::from)?;
        if say {
            println!("  {} events, {} encounters", s.events, s.encounters);
        }
    }
    // The five example programmes of strata.toml (they read the death and falls models).
    let programme = if opts_have_models(&a.risk, &models_dir) {
        strata::programmes::examples()
    } else {
        Vec::new()
    };
    let dest = Destination::Root(root.clone());
    let as_of = synth::default_as_of();
    let settings = ScoreConfig {
        cohort: Some(cohort),
        root: Some(root.clone()),
        as_of: Some(strata::date::format_days(as_of)),
        models: Some(models_dir),
        programme: Some(programme),
        no_compare: Some(true),
        ..a.risk.config()
    };
    let mut opts = ScoreOptions::resolve(&settings).map_err(|e| super::usage(e.to_string()))?;
    // A run a month earlier first (once), so that the lists say what changed since the last
    // run, as they do every night: who is new, who moved up or down, who dropped off and why.
    let day = strata::date::format_days(as_of);
    if strata::history::previous_run(&root, &day).is_none() {
        let earlier = strata::date::minus_months(as_of, 1);
        if !super::logging::quiet() {
            println!(
                "scoring the cohort at {} first, so that the {day} lists say what changed since then",
                strata::date::format_days(earlier)
            );
        }
        let mut first = opts.clone();
        first.settings.as_of = earlier;
        run::score(&first)?;
    }
    opts.previous = strata::settings::previous_run(&ScoreConfig::default(), &dest, as_of);
    let m = run::score(&opts)?;
    let out = root.join(&m.as_of);
    super::score::print_manifest(&m, &out);
    if super::logging::quiet() {
        return Ok(0);
    }
    println!("summary: {}", out.join("summary.csv").display());
    // Where a care coordinator would start: the first PCN's page and workbook.
    let first = m.outputs.iter().find_map(|w| {
        w.path
            .strip_suffix(".html")
            .filter(|p| p.starts_with("lists/"))
    });
    if let Some(page) = first {
        println!(
            "open a PCN's page and workbook: {} and {}",
            out.join(format!("{page}.html")).display(),
            out.join(format!("{page}.xlsx")).display()
        );
    }
    println!(
        "latest run: {} (past runs: strata runs --root {})",
        root.join(strata::publish::LATEST).display(),
        root.display()
    );
    Ok(0)
}
