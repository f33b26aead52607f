//! `strata compare`: several models side by side on one window, with the eFI and the HFRS alone.

use std::path::PathBuf;

use anyhow::Result;
use strata::cohort::Cohort;
use strata::date;
use strata::definitions::Definitions;
use strata::evaluation::{self, Evaluation};
use strata::predictors::{Outcome, OUTCOME_DAYS};
use strata_models::metrics::{paired_auroc_difference, AurocDifference, EvalOptions, Metrics};

use super::evaluate::{file_label, parse_outcome, write_plot};

/// Compare risk models on the same window, side by side, always with the eFI alone and the HFRS
/// alone as predictors, so that what a model adds over "just use the eFI" is measured.
///
/// Use it to choose between models (strata's cards from `strata train`, and predictions made
/// elsewhere as with `strata evaluate --predictions`) before putting one on the lists. Every
/// predictor is evaluated exactly as `strata evaluate` does: everyone alive at the as-of date,
/// the outcome in the 365 days after, the same metrics and groups. The table shows AUROC with its
/// bootstrap 95% interval, AUPRC, Brier score, calibration slope, sensitivity and PPV when the
/// top 5% are flagged, AUROC in Core20 (IMD quintile 1) and in the rest, and each predictor's
/// AUROC minus the eFI's with a paired bootstrap 95% interval (an interval excluding 0 is a
/// difference the window can tell apart); `--json` prints everything, by group too.
///
/// The eFI and the HFRS are scores, not probabilities: their ranking figures (AUROC, AUPRC,
/// sensitivity, PPV) are the score's own, and for Brier and calibration each is turned into a
/// probability by a logistic recalibration fitted on the training window (the as-of date minus
/// 12 months, outcome in the year after it: nothing of the evaluated year) and applied unchanged.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder.
    #[arg(long)]
    pub cohort: PathBuf,
    /// As-of date of the window evaluated (the 365 days after it must have passed).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// Outcome: emergency_admission, falls_admission or death. Default: the model cards'
    /// outcome; needed when there is no card.
    #[arg(long)]
    pub outcome: Option<String>,
    /// A model card (JSON) from `strata train`; repeat for several.
    #[arg(long, value_name = "CARD.json")]
    pub model: Vec<PathBuf>,
    /// Predictions made elsewhere (Parquet: patient_id, probability; one row per patient alive
    /// at the as-of date); repeat for several.
    #[arg(long, value_name = "FILE.parquet")]
    pub predictions: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write a calibration plot (one line per predictor) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// One predictor's row.
#[derive(serde::Serialize)]
struct Entry {
    /// Label in the table.
    name: String,
    /// `model`, `predictions` or `score`.
    kind: &'static str,
    /// The file, for a model or predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    /// Where its probabilities come from.
    calibration: String,
    /// The score recalibration, for a score.
    #[serde(skip_serializing_if = "Option::is_none")]
    recalibration: Option<strata_models::Recalibration>,
    /// AUROC minus the eFI's, with a paired bootstrap interval (not for the eFI itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    auroc_minus_efi: Option<AurocDifference>,
    overall: Metrics,
    groups: Vec<evaluation::GroupMetrics>,
}

/// Format a figure, `n/a` when not applicable.
fn fig(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// The table row of one predictor.
fn row(en: &Entry, e: &Evaluation, width: usize) -> String {
    let (name, m) = (&en.name, &en.overall);
    let vs_efi = en.auroc_minus_efi.as_ref().map_or_else(
        || "-".to_string(),
        |d| {
            format!(
                "{:+.3} [{:+.3}, {:+.3}]",
                d.difference, d.interval.lower, d.interval.upper
            )
        },
    );
    let ci = m
        .bootstrap
        .as_ref()
        .map(|b| format!("[{:.3}, {:.3}]", b.auroc.lower, b.auroc.upper))
        .unwrap_or_default();
    let top5 = m.top.iter().find(|t| (t.fraction - 0.05).abs() < 1e-12);
    let group_auroc = |g: &str| {
        e.group("core20", g)
            .map_or_else(|| "n/a".to_string(), |m| format!("{:.3}", m.auroc))
    };
    format!(
        "{name:<width$} {:.3} {ci:<16} {:>6.3} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}  {vs_efi}",
        m.auroc,
        m.auprc,
        fig(m.brier, 4),
        fig(m.calibration.slope, 2),
        top5.map_or("n/a".into(), |t| fig(t.sensitivity, 3)),
        top5.map_or("n/a".into(), |t| fig(t.ppv, 3)),
        group_auroc("core20"),
        group_auroc("rest"),
    )
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let as_of = super::parse_date(&a.as_of)?;
    let load = a.input.options()?;
    if as_of + OUTCOME_DAYS > load.today {
        return Err(super::usage(
            "comparison needs the 365 days after --as-of to have passed",
        ));
    }
    let flag_outcome = a.outcome.as_deref().map(parse_outcome).transpose()?;
    let defs = Definitions::load(&super::models_dir(&a.models)).map_err(strata::Error::from)?;
    let mut cards = Vec::new();
    for path in &a.model {
        let card = strata::risk::load_card(path, &defs).map_err(strata::Error::from)?;
        let outcome = card.outcome;
        cards.push((path, (card, outcome)));
    }
    let outcome: Outcome = match (flag_outcome, cards.first()) {
        (Some(o), _) => o,
        (None, Some((_, (_, o)))) => *o,
        (None, None) => {
            return Err(super::usage(
                "--outcome is needed when no --model card names it",
            ))
        }
    };
    for (path, (_, o)) in &cards {
        if *o != outcome {
            return Err(super::usage(format!(
                "{} predicts {}, not {}: compare models of one outcome",
                path.display(),
                o.name(),
                outcome.name()
            )));
        }
    }
    let cohort = Cohort::load(&a.cohort, &load).map_err(strata::Error::from)?;
    let train_at = date::minus_months(as_of, 12);
    let w = evaluation::window(&cohort, &defs, as_of, outcome)?;
    let train = evaluation::window(&cohort, &defs, train_at, outcome)?;
    let groups = evaluation::subgroups(&cohort, &w)?;
    let opts = EvalOptions::default();
    let y = w.labels();
    // Labels: file names, or the paths when two files share a name.
    let paths: Vec<&PathBuf> = a.model.iter().chain(&a.predictions).collect();
    let names: Vec<String> = paths.iter().map(|p| file_label(p)).collect();
    let unique = {
        let mut s = names.clone();
        s.sort();
        s.dedup();
        s.len() == names.len()
    };
    let label = |k: usize| {
        if unique {
            names[k].clone()
        } else {
            paths[k].display().to_string()
        }
    };
    let mut entries: Vec<(Entry, Evaluation)> = Vec::new();
    // The ranking each entry is judged by, for the paired comparison with the eFI.
    let mut rankings: Vec<Vec<f64>> = Vec::new();
    for (k, (path, (card, _))) in cards.iter().enumerate() {
        let p = evaluation::card_probabilities(card, &w);
        let e = evaluation::evaluate(y, &p, &groups, &opts)?;
        rankings.push(p);
        entries.push((
            Entry {
                name: label(k),
                kind: "model",
                source: Some(path.display().to_string()),
                calibration: "the model's own probabilities".into(),
                recalibration: None,
                auroc_minus_efi: None,
                overall: e.overall.clone(),
                groups: e.groups.clone(),
            },
            e,
        ));
    }
    for (k, path) in a.predictions.iter().enumerate() {
        let p = evaluation::read_predictions(path, &cohort, &w)?;
        let e = evaluation::evaluate(y, &p, &groups, &opts)?;
        rankings.push(p);
        entries.push((
            Entry {
                name: label(cards.len() + k),
                kind: "predictions",
                source: Some(path.display().to_string()),
                calibration: "the file's own probabilities".into(),
                recalibration: None,
                auroc_minus_efi: None,
                overall: e.overall.clone(),
                groups: e.groups.clone(),
            },
            e,
        ));
    }
    for (name, column) in [("eFI alone", "efi_score"), ("HFRS alone", "hfrs_score")] {
        let b = evaluation::evaluate_baseline(column, &train, &w, &groups, &opts)?;
        rankings.push(w.feature(column)?);
        entries.push((
            Entry {
                name: name.into(),
                kind: "score",
                source: Some(column.into()),
                calibration: b.calibration.note.clone(),
                recalibration: b.calibration.recalibration,
                auroc_minus_efi: None,
                overall: b.evaluation.overall.clone(),
                groups: b.evaluation.groups.clone(),
            },
            b.evaluation,
        ));
    }
    let efi = w.feature("efi_score")?;
    for ((en, _), r) in entries.iter_mut().zip(&rankings) {
        if en.source.as_deref() != Some("efi_score") {
            en.auroc_minus_efi = Some(paired_auroc_difference(
                y,
                r,
                &efi,
                opts.bootstrap_resamples,
                opts.bootstrap_seed,
                opts.level,
            )?);
        }
    }
    if let Some(plot) = &a.plot {
        let series: Vec<(String, &Evaluation)> =
            entries.iter().map(|(en, e)| (en.name.clone(), e)).collect();
        write_plot(
            plot,
            &format!("Calibration: {} at {}", outcome.name(), a.as_of),
            &series,
        )?;
    }
    if a.json {
        let out = serde_json::json!({
            "outcome": outcome.name(),
            "as_of": a.as_of,
            "training_as_of": date::format_days(train_at),
            "n": w.len(),
            "events": y.iter().map(|&v| usize::from(v)).sum::<usize>(),
            "core20": "core20 = IMD quintile 1 (the most deprived fifth nationally); rest = everyone else, unknown IMD included",
            "predictors": entries.iter().map(|(en, _)| en).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let events: usize = y.iter().map(|&v| usize::from(v)).sum();
        println!(
            "{} at {}: n {}, events {} ({:.1}%); everyone alive at the as-of date, outcome in the {OUTCOME_DAYS} days after",
            outcome.name(),
            a.as_of,
            w.len(),
            events,
            100.0 * events as f64 / w.len().max(1) as f64
        );
        let width = entries
            .iter()
            .map(|(en, _)| en.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(10);
        println!(
            "{:<width$} {:<22} {:>6} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}  AUROC minus eFI's [95% CI]",
            "predictor",
            "AUROC [95% CI]",
            "AUPRC",
            "Brier",
            "slope",
            "sens5%",
            "PPV5%",
            "Core20",
            "rest"
        );
        for (en, e) in &entries {
            println!("{}", row(en, e, width));
        }
        println!();
        println!(
            "sens5%, PPV5%: sensitivity and PPV when the top 5% by predicted risk are flagged."
        );
        println!(
            "Core20, rest: AUROC in IMD quintile 1 and in everyone else (unknown IMD included)."
        );
        for (en, _) in entries.iter().filter(|(en, _)| en.kind == "score") {
            println!("{}: {}", en.name, en.calibration);
        }
    }
    if let Some(plot) = &a.plot {
        eprintln!("{}: calibration plot written", plot.display());
    }
    Ok(0)
}
