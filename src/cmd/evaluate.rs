//! `strata evaluate`: one model's figures on one window, overall and by group.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use strata::cohort::Cohort;
use strata::definitions::Definitions;
use strata::evaluation::{self, Evaluation};
use strata::predictors::{Outcome, OUTCOME_DAYS};
use strata_models::metrics::EvalOptions;
use strata_models::plot::{calibration_svg, Series};

/// Evaluate a model card, or predictions made elsewhere, on a cohort at an as-of date: features
/// at the date, labels from the 365 days after it.
///
/// Prints AUROC and AUPRC with bootstrap 95% intervals, Brier score, calibration intercept and
/// slope, the calibration table by decile and sensitivity/PPV at the top 1%, 5% and 10%, and the
/// same by sex, age band, IMD quintile, ethnic group and Core20, so that a researcher sees
/// whether the model serves the most deprived fifth as well as the rest. `--json` for machines,
/// `--plot` for a calibration plot (SVG).
///
/// With `--predictions FILE.parquet` (columns `patient_id` and `probability`) instead of
/// `--model`, a model fitted elsewhere (e.g. in Python on `strata features`) is evaluated with
/// exactly the same figures on exactly the same window: every patient alive at the as-of date
/// needs one prediction, and a file that is not so is refused with file, column and rows.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder.
    #[arg(long)]
    pub cohort: PathBuf,
    /// Model card (JSON) from `strata train`.
    #[arg(
        long,
        required_unless_present = "predictions",
        conflicts_with = "predictions"
    )]
    pub model: Option<PathBuf>,
    /// Predictions made elsewhere (Parquet: patient_id string or integer, probability float in
    /// [0, 1]; one row per patient alive at the as-of date). Needs --outcome.
    #[arg(long, value_name = "FILE.parquet", requires = "outcome")]
    pub predictions: Option<PathBuf>,
    /// Outcome the predictions are of: emergency_admission, falls_admission or death (with
    /// --model, the card's outcome; if given, it must agree).
    #[arg(long)]
    pub outcome: Option<String>,
    /// As-of date of the window evaluated.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write a calibration plot (observed against predicted risk by decile) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// Parse `--outcome`, a usage error if it is not one strata labels.
pub fn parse_outcome(s: &str) -> Result<Outcome> {
    Outcome::parse(s).ok_or_else(|| {
        super::usage("--outcome must be emergency_admission, falls_admission, death or emergency_admission_or_death")
    })
}

/// Write a calibration plot of `series` (label, figures) to `path`, beside itself first.
pub fn write_plot(path: &Path, title: &str, series: &[(String, &Evaluation)]) -> Result<()> {
    let s: Vec<Series> = series
        .iter()
        .map(|(label, e)| Series {
            label,
            bins: &e.overall.calibration_table,
        })
        .collect();
    let svg = calibration_svg(title, &s);
    let tmp = path.with_extension("svg.partial");
    std::fs::write(&tmp, svg).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// The file name of a path, for labels.
pub fn file_label(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |f| f.to_string_lossy().to_string(),
    )
}

/// Print the figures by group.
fn print_groups(e: &Evaluation) {
    println!("by group (AUROC [95% bootstrap interval], observed vs mean predicted risk):");
    for g in &e.groups {
        match &g.metrics {
            Some(m) => {
                let ci = m
                    .bootstrap
                    .as_ref()
                    .map(|b| format!("[{:.3}, {:.3}]", b.auroc.lower, b.auroc.upper))
                    .unwrap_or_default();
                let mean_p: f64 = m
                    .calibration_table
                    .iter()
                    .map(|b| b.mean_predicted.unwrap_or(0.0) * b.n as f64)
                    .sum::<f64>()
                    / m.n as f64;
                println!(
                    "  {:<15} {:<8} n {:>7}  AUROC {:.3} {ci}  observed {:.3} predicted {:.3}",
                    g.dimension, g.group, m.n, m.auroc, m.prevalence, mean_p
                );
            }
            None => println!(
                "  {:<15} {:<8} n {:>7}  no figures: {}",
                g.dimension,
                g.group,
                g.n,
                g.note.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// The fairness table: each group's share of the list population's top 1%, 5% and 10%.
fn print_fairness(rows: &[evaluation::FairnessRow], min_age: i32) {
    println!(
        "case finding at the cut-offs of the list population ({min_age}+), by group (sensitivity, PPV, false omission rate, false discovery rate):"
    );
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    for r in rows {
        println!(
            "  top {:>3.0}%  {:<15} {:<8} n {:>7} flagged {:>6}  sens {:>6}  PPV {:>6}  FOR {:>6}  FDR {:>6}",
            100.0 * r.top_fraction,
            r.dimension,
            r.group,
            r.n,
            r.flagged,
            pct(r.sensitivity),
            pct(r.ppv),
            pct(r.false_omission_rate),
            pct(r.false_discovery_rate)
        );
    }
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let as_of = super::parse_date(&a.as_of)?;
    let load = a.input.options()?;
    if as_of + OUTCOME_DAYS > load.today {
        return Err(super::usage(
            "evaluation needs the 365 days after --as-of to have passed",
        ));
    }
    let flag_outcome = a.outcome.as_deref().map(parse_outcome).transpose()?;
    let defs = Definitions::load(&super::models_dir(&a.models)).map_err(strata::Error::from)?;
    let card = match &a.model {
        Some(path) => {
            let card = strata::risk::load_card(path, &defs).map_err(strata::Error::from)?;
            let outcome = card.outcome;
            if flag_outcome.is_some_and(|o| o != outcome) {
                return Err(super::usage(format!(
                    "--outcome is {} but {} predicts {}",
                    a.outcome.as_deref().unwrap_or_default(),
                    path.display(),
                    outcome.name()
                )));
            }
            Some((path, card, outcome))
        }
        None => None,
    };
    let outcome = match (&card, flag_outcome) {
        (Some((_, _, o)), _) => *o,
        (None, Some(o)) => o,
        (None, None) => return Err(super::usage("--predictions needs --outcome")),
    };
    let cohort = Cohort::load(&a.cohort, &load).map_err(strata::Error::from)?;
    let w = evaluation::window(&cohort, &defs, as_of, outcome)?;
    let (source_key, source) = match (&card, &a.predictions) {
        (Some((path, card, _)), _) => (
            "model",
            (path.to_path_buf(), evaluation::card_probabilities(card, &w)),
        ),
        (None, Some(path)) => (
            "predictions",
            (
                path.clone(),
                evaluation::read_predictions(path, &cohort, &w)?,
            ),
        ),
        (None, None) => return Err(super::usage("give --model or --predictions")),
    };
    let (path, p) = source;
    let groups = evaluation::subgroups(&cohort, &w)?;
    let e = evaluation::evaluate(w.labels(), &p, &groups, &EvalOptions::default())?;
    if let Some(plot) = &a.plot {
        write_plot(
            plot,
            &format!("Calibration: {} at {}", outcome.name(), a.as_of),
            &[(file_label(&path), &e)],
        )?;
    }
    let min_age = strata::lists::ListRules::default().min_age;
    let fair = evaluation::fairness(&w, &p, &groups, min_age)?;
    if a.json {
        let mut out = serde_json::json!({
            "outcome": outcome.name(),
            "as_of": a.as_of,
            "overall": e.overall,
            "groups": e.groups,
            "fairness": fair,
        });
        out[source_key] = serde_json::Value::String(path.display().to_string());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        super::train::print_metrics(&format!("{} at {}", outcome.name(), a.as_of), &e.overall);
        print_groups(&e);
        print_fairness(&fair, min_age);
    }
    if let Some(plot) = &a.plot {
        eprintln!("{}: calibration plot written", plot.display());
    }
    Ok(0)
}
