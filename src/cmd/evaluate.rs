//! `strata evaluate`: a model's figures on one window, overall and by group.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use strata::cohort::Cohort;
use strata::definitions::Definitions;
use strata::population::imd_quintile;
use strata::predictors::{Outcome, OUTCOME_DAYS};
use strata_models::card::ModelCard;
use strata_models::metrics::{evaluate, EvalOptions, Metrics};

/// Evaluate a model card on a cohort at an as-of date: features at the date, labels from the 365
/// days after it. Prints AUROC and AUPRC with bootstrap 95% intervals, Brier score, calibration
/// intercept and slope, and the same by sex, age band, IMD quintile and ethnic group, so that a researcher sees
/// whether the model serves the most deprived fifth as well as the rest. `--json` for machines.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder.
    #[arg(long)]
    pub cohort: PathBuf,
    /// Model card (JSON) from `strata train`.
    #[arg(long)]
    pub model: PathBuf,
    /// As-of date of the window evaluated.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// Figures of one group.
#[derive(serde::Serialize)]
struct Group {
    dimension: &'static str,
    group: String,
    metrics: Option<Metrics>,
    n: usize,
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
    let card = ModelCard::load(&a.model)?;
    let outcome = Outcome::parse(&card.outcome)
        .ok_or_else(|| anyhow!("{}: unknown outcome {}", a.model.display(), card.outcome))?;
    let defs = Definitions::load(&super::models_dir(&a.models)).map_err(strata::Error::from)?;
    if card.feature_names != strata::predictors::predictor_names(&defs) {
        return Err(anyhow!(
            "{}: the model's features are not strata's feature table for these definitions",
            a.model.display()
        ));
    }
    let cohort = Cohort::load(&a.cohort, &load).map_err(strata::Error::from)?;
    let w = super::train::window(&cohort, &defs, as_of, outcome)?;
    let p = card.predictor()?.predict_proba(&w.data)?;
    let y = w.data.y();
    let opts = EvalOptions::default();
    let overall = evaluate(y, &p, &opts)?;
    let pa = &cohort.patients;
    // Ages are the table's `age` column.
    let width = w.table.names.len();
    let age = w
        .table
        .names
        .iter()
        .position(|n| n == "age")
        .ok_or_else(|| anyhow!("the feature table has no age column"))?;
    let ages: Vec<i32> = (0..y.len())
        .map(|k| w.table.rows[k * width + age] as i32)
        .collect();
    type Key<'a> = Box<dyn Fn(usize) -> String + 'a>;
    let dims: [(&'static str, Key); 4] = [
        (
            "sex",
            Box::new(|k: usize| pa.sex[w.table.patients[k] as usize].code().to_string()),
        ),
        (
            "age_band",
            Box::new(|k: usize| {
                match ages[k] {
                    a if a < 18 => "0-17",
                    a if a < 65 => "18-64",
                    a if a < 75 => "65-74",
                    a if a < 85 => "75-84",
                    _ => "85+",
                }
                .to_string()
            }),
        ),
        (
            "imd_quintile",
            Box::new(|k: usize| {
                imd_quintile(pa.imd_decile[w.table.patients[k] as usize])
                    .map_or("unknown".to_string(), |q| q.to_string())
            }),
        ),
        (
            "ethnicity_group",
            Box::new(|k: usize| {
                let p = w.table.patients[k] as usize;
                pa.ethnicities[pa.ethnicity[p] as usize].clone()
            }),
        ),
    ];
    let group_opts = EvalOptions {
        bootstrap_resamples: 100,
        ..opts
    };
    let mut groups = Vec::new();
    for (dim, key) in &dims {
        let mut by: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for k in 0..y.len() {
            by.entry(key(k)).or_default().push(k);
        }
        for (g, rows) in by {
            let (gy, gp): (Vec<u8>, Vec<f64>) = rows.iter().map(|&k| (y[k], p[k])).unzip();
            groups.push(Group {
                dimension: dim,
                group: g,
                n: rows.len(),
                // A group with no event (or no non-event) has no AUROC.
                metrics: evaluate(&gy, &gp, &group_opts).ok(),
            });
        }
    }
    if a.json {
        let out = serde_json::json!({
            "model": a.model.display().to_string(),
            "outcome": outcome.name(),
            "as_of": a.as_of,
            "overall": overall,
            "groups": groups,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        super::train::print_metrics(&format!("{} at {}", outcome.name(), a.as_of), &overall);
        println!("by group (AUROC [95% bootstrap interval], observed vs mean predicted risk):");
        for g in &groups {
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
                        "  {:<13} {:<8} n {:>7}  AUROC {:.3} {ci}  observed {:.3} predicted {:.3}",
                        g.dimension, g.group, m.n, m.auroc, m.prevalence, mean_p
                    );
                }
                None => println!(
                    "  {:<13} {:<8} n {:>7}  (one class only)",
                    g.dimension, g.group, g.n
                ),
            }
        }
    }
    Ok(0)
}
