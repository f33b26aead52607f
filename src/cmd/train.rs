//! `strata train`: fit a risk model with temporal validation, as SPARRA does.

use std::path::PathBuf;

use anyhow::Result;
use strata::cohort::Cohort;
use strata::date;
use strata::definitions::Definitions;
use strata::evaluation::{window, Window};
use strata::predictors::{Outcome, OUTCOME_DAYS};
use strata_models::card::{Cohort as CardCohort, ModelCard};
use strata_models::metrics::{evaluate, EvalOptions, Metrics};
use strata_models::{fit_gbdt, GbdtParams, LogisticModel, LogisticParams};

/// Fit a model of one outcome and write its model card (JSON).
///
/// Features are taken at the as-of date minus 12 months and labels from the 365 days after
/// that; the model is then validated on the later window (features at the as-of date, labels
/// from the 365 days after it), never on the rows it was fitted on. The card records the
/// outcome, the features in order, the preprocessing, the fitted parameters, both windows and
/// the validation figures (AUROC and AUPRC with bootstrap intervals, Brier, calibration).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cohort folder.
    #[arg(long)]
    pub cohort: PathBuf,
    /// Outcome: emergency_admission, falls_admission, death, or emergency_admission_or_death
    /// (SPARRA's composite: a death without an admission is an event). In the plain
    /// emergency_admission outcome a death without an admission is labelled "no admission".
    #[arg(long)]
    pub outcome: String,
    /// Model: auto (fit both, keep the better on the held-out fifth of the training year: AUROC,
    /// then calibration), logistic (L2, standardised features) or gbdt (histogram
    /// gradient-boosted trees, with early stopping).
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// Model card to write (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Validation as-of date; training uses the as-of date 12 months earlier.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: String,
    /// GBDT: most trees (early stopping usually keeps fewer).
    #[arg(long, default_value_t = GbdtParams::default().n_trees)]
    pub trees: usize,
    /// GBDT: learning rate (shrinkage of every leaf).
    #[arg(long, default_value_t = GbdtParams::default().learning_rate)]
    pub learning_rate: f64,
    /// GBDT: most leaves per tree.
    #[arg(long, default_value_t = GbdtParams::default().max_leaves)]
    pub max_leaves: usize,
    /// GBDT: deepest root-to-leaf path.
    #[arg(long, default_value_t = GbdtParams::default().max_depth)]
    pub max_depth: usize,
    /// GBDT: fewest rows in a leaf.
    #[arg(long, default_value_t = GbdtParams::default().min_child_samples)]
    pub min_child_samples: usize,
    /// GBDT: L2 penalty on leaf values.
    #[arg(long, default_value_t = GbdtParams::default().l2)]
    pub l2: f64,
    /// GBDT: stop when the held-out fifth of the training year's log-loss has not improved for
    /// this many trees (0: keep every tree).
    #[arg(long, default_value_t = GbdtParams::default().early_stopping_rounds)]
    pub early_stopping_rounds: usize,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// The card's description of a window.
fn describe(w: &Window, as_of: i32, what: &str) -> CardCohort {
    CardCohort {
        description: format!(
            "{what}: everyone alive at the as-of date and registered for the {OUTCOME_DAYS} days after it (a death ends registration; {} people who left or joined during them left out); features from records on or before it, label from the {OUTCOME_DAYS} days after",
            w.table.not_registered
        ),
        window_start: date::format_days(as_of),
        window_end: date::format_days(as_of + OUTCOME_DAYS),
        n_rows: w.data.n_rows(),
        events: w.data.y().iter().map(|&v| v as usize).sum(),
    }
}

/// Every `PRACTICE_HOLDOUT`-th practice (by code order) is held out for the practice validation.
const PRACTICE_HOLDOUT: usize = 5;

/// Refit the card's family without a fifth of the practices (every
/// [`PRACTICE_HOLDOUT`]-th by code) on the training year, and evaluate it on those practices'
/// people in the validation year: how the model does in practices it never saw.
#[allow(clippy::too_many_arguments)]
fn practice_validation(
    cohort: &Cohort,
    train: &Window,
    valid: &Window,
    card: &ModelCard,
    lp: &LogisticParams,
    gp: &GbdtParams,
    min_age: i32,
    opts: &EvalOptions,
) -> Result<strata_models::PracticeValidation> {
    let held = |w: &Window, k: usize| {
        cohort.patients.practice[w.table.patients[k] as usize] as usize % PRACTICE_HOLDOUT
            == PRACTICE_HOLDOUT - 1
    };
    let fit_rows: Vec<usize> = (0..train.len()).filter(|&k| !held(train, k)).collect();
    let data = train.data.select_rows(&fit_rows)?;
    let refit = match card.kind {
        strata_models::ModelKind::Logistic => {
            let m = LogisticModel::fit(&data, lp)?;
            ModelCard::logistic("refit", &m, lp, card.training_cohort.clone())
        }
        strata_models::ModelKind::Gbdt => {
            let f = fit_gbdt(&data, gp)?;
            ModelCard::gbdt("refit", &f, gp, card.training_cohort.clone())
        }
    };
    let p = refit.predictor()?.predict_proba(&valid.data)?;
    let ages = valid.feature("age")?;
    let score = |rows: Vec<usize>| {
        let y: Vec<u8> = rows.iter().map(|&k| valid.data.y()[k]).collect();
        let p: Vec<f64> = rows.iter().map(|&k| p[k]).collect();
        evaluate(&y, &p, opts).ok()
    };
    let all: Vec<usize> = (0..valid.len()).filter(|&k| held(valid, k)).collect();
    let list: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&k| ages[k] >= f64::from(min_age))
        .collect();
    let practices = (0..cohort.patients.practices.len())
        .filter(|p| p % PRACTICE_HOLDOUT == PRACTICE_HOLDOUT - 1)
        .count();
    Ok(strata_models::PracticeValidation {
        description: format!(
            "refitted ({:?}, same settings) on the training year without every {PRACTICE_HOLDOUT}th practice in code order ({practices} practices), evaluated on those practices' people in the validation year",
            card.kind
        ),
        practices,
        list_metrics: score(list),
        all_metrics: score(all),
    })
}

/// Trees' contributions (TreeSHAP) are averaged over at most this many people of the list
/// population, evenly spaced in pseudonym order; a linear model's over all of them.
const BASELINE_SAMPLE: usize = 5_000;

/// The list population's mean contribution of each feature (see `ListBaseline`).
fn list_baseline(
    predictor: &strata_models::Predictor,
    valid: &Window,
    listed: &[usize],
    min_age: i32,
    as_of: i32,
) -> strata_models::ListBaseline {
    let width = valid.table.names.len();
    let rows: Vec<usize> = match predictor {
        strata_models::Predictor::Logistic(_) => listed.to_vec(),
        _ => {
            let step = listed.len().div_ceil(BASELINE_SAMPLE).max(1);
            listed.iter().copied().step_by(step).collect()
        }
    };
    let sums = rows
        .iter()
        .map(|&k| predictor.contributions_row(&valid.table.rows[k * width..(k + 1) * width]))
        .fold(vec![0.0f64; width], |mut acc, c| {
            for (a, v) in acc.iter_mut().zip(c) {
                *a += v;
            }
            acc
        });
    let n = rows.len().max(1) as f64;
    let mean_contribution: Vec<f64> = sums.iter().map(|s| s / n).collect();
    strata_models::ListBaseline {
        description: format!(
            "the list population of the validation window: alive at {} and aged {min_age} or over",
            date::format_days(as_of)
        ),
        min_age,
        n: rows.len(),
        mean_log_odds: predictor.base_value() + mean_contribution.iter().sum::<f64>(),
        mean_contribution,
    }
}

/// The probabilities of the list population's top 1%, 5% and 20% (the lowest probability in
/// each, `ceil(fraction x n)` people): the card's band cut-offs.
fn band_cutoffs(p: &[f64], min_age: i32, as_of: i32) -> strata_models::RiskBandCutoffs {
    let mut sorted: Vec<f64> = p.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let at = |f: f64| {
        let k = ((f * sorted.len() as f64 - 1e-9).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(k - 1).copied().unwrap_or(1.0)
    };
    strata_models::RiskBandCutoffs {
        description: format!(
            "the probabilities of the top 1%, 5% and 20% of the list population (alive at {}, aged {min_age} or over) in the validation year",
            date::format_days(as_of)
        ),
        very_high: at(0.01),
        high: at(0.05),
        moderate: at(0.20),
    }
}

/// Print the headline figures of an evaluation.
pub fn print_metrics(label: &str, m: &Metrics) {
    let ci = m
        .bootstrap
        .as_ref()
        .map(|b| format!(" [{:.3}, {:.3}]", b.auroc.lower, b.auroc.upper))
        .unwrap_or_default();
    println!(
        "{label}: n {} events {} ({:.1}%)  AUROC {:.3}{ci}  AUPRC {:.3}  Brier {:.4}  calibration slope {:.2} intercept {:.2}",
        m.n,
        m.events,
        100.0 * m.prevalence,
        m.auroc,
        m.auprc,
        m.brier,
        m.calibration.slope,
        m.calibration.intercept
    );
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let outcome = Outcome::parse(&a.outcome).ok_or_else(|| {
        super::usage("--outcome must be emergency_admission, falls_admission, death or emergency_admission_or_death")
    })?;
    let as_of = super::parse_date(&a.as_of)?;
    let load = a.input.options()?;
    if as_of + OUTCOME_DAYS > load.today {
        return Err(super::usage(
            "validation needs the 365 days after --as-of to have passed",
        ));
    }
    let train_at = date::minus_months(as_of, 12);
    let defs = Definitions::load(&super::models_dir(&a.models)).map_err(strata::Error::from)?;
    let cohort = Cohort::load(&a.cohort, &load).map_err(strata::Error::from)?;
    let train = window(&cohort, &defs, train_at, outcome)?;
    let valid = window(&cohort, &defs, as_of, outcome)?;
    let opts = EvalOptions::default();
    let fit_started = std::time::Instant::now();
    // Never rank the more deprived of two otherwise identical people lower (Core20PLUS5): a
    // tree's prediction may only rise as the IMD decile falls.
    let gbdt_params = GbdtParams {
        n_trees: a.trees,
        learning_rate: a.learning_rate,
        max_leaves: a.max_leaves,
        max_depth: a.max_depth,
        min_child_samples: a.min_child_samples,
        l2: a.l2,
        early_stopping_rounds: a.early_stopping_rounds,
        monotone: vec![("imd_decile".into(), -1)],
        ..GbdtParams::default()
    };
    let logistic_params = LogisticParams::default();
    let described = describe(&train, train_at, "training");
    let fit_logistic = || -> Result<(ModelCard, Vec<f64>)> {
        let m = LogisticModel::fit(&train.data, &logistic_params)?;
        let p = m.predict_proba(&train.data)?;
        let card = ModelCard::logistic(outcome.name(), &m, &logistic_params, described.clone());
        Ok((card, p))
    };
    let fit_trees = || -> Result<(ModelCard, Vec<f64>, strata_models::GbdtFit)> {
        let fit = fit_gbdt(&train.data, &gbdt_params)?;
        let p = fit.model.predict_proba(&train.data)?;
        let card = ModelCard::gbdt(outcome.name(), &fit, &gbdt_params, described.clone());
        Ok((card, p, fit))
    };
    let (mut card, p_train, selection) = match a.model.as_str() {
        "logistic" => {
            let (c, p) = fit_logistic()?;
            (c, p, None)
        }
        "gbdt" => {
            let (c, p, _) = fit_trees()?;
            (c, p, None)
        }
        "auto" => {
            // Both families, compared on the held-out fifth of the training year (the rows the
            // trees' early stopping holds out): the next year stays untouched for the figures.
            let auto =
                strata_models::select::fit_auto(&train.data, &logistic_params, &gbdt_params)?;
            let note = auto.note();
            println!("{note}");
            let card = match &auto.chosen {
                strata_models::select::Chosen::Logistic(m) => {
                    ModelCard::logistic(outcome.name(), m, &logistic_params, described.clone())
                }
                strata_models::select::Chosen::Gbdt(f) => {
                    ModelCard::gbdt(outcome.name(), f, &gbdt_params, described.clone())
                }
            };
            let p = card.predictor()?.predict_proba(&train.data)?;
            (card, p, Some(note))
        }
        _ => return Err(super::usage("--model must be auto, logistic or gbdt")),
    };
    card.model_selection = selection;
    println!(
        "fitted {} on {} rows x {} features in {:.2} s ({} threads)",
        a.model,
        train.data.n_rows(),
        train.table.names.len(),
        fit_started.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let predictor = card.predictor()?;
    let p_valid = predictor.predict_proba(&valid.data)?;
    let training = evaluate(
        train.data.y(),
        &p_train,
        &EvalOptions {
            bootstrap_resamples: 0,
            ..opts.clone()
        },
    )?;
    let validation = evaluate(valid.data.y(), &p_valid, &opts)?;
    // The population the lists serve: alive at the as-of date (the window) and aged min_age or
    // over. Its figures are the headline; its mean contributions are the explanations' baseline.
    let min_age = strata::lists::ListRules::default().min_age;
    let ages = valid.feature("age")?;
    let listed: Vec<usize> = (0..valid.len())
        .filter(|&k| ages[k] >= f64::from(min_age))
        .collect();
    let y_list: Vec<u8> = listed.iter().map(|&k| valid.data.y()[k]).collect();
    let p_list: Vec<f64> = listed.iter().map(|&k| p_valid[k]).collect();
    let list_validation = evaluate(&y_list, &p_list, &opts)?;
    card.list_baseline = Some(list_baseline(&predictor, &valid, &listed, min_age, as_of));
    card.risk_bands = Some(band_cutoffs(&p_list, min_age, as_of));
    card.list_validation_metrics = Some(list_validation.clone());
    // The list population by eFI category (the ICS asks for risk across frailty categories).
    let quick = EvalOptions {
        bootstrap_resamples: 0,
        ..opts.clone()
    };
    for cat in ["fit", "mild", "moderate", "severe"] {
        let rows: Vec<usize> = listed
            .iter()
            .copied()
            .filter(|&k| valid.efi_category[k] == cat)
            .collect();
        let y: Vec<u8> = rows.iter().map(|&k| valid.data.y()[k]).collect();
        let p: Vec<f64> = rows.iter().map(|&k| p_valid[k]).collect();
        card.list_validation_by_group
            .push(strata_models::GroupFigures {
                dimension: "efi_category".into(),
                group: cat.into(),
                n: rows.len(),
                metrics: evaluate(&y, &p, &quick).ok(),
            });
    }
    // Care home is dated (residence codes) when the cohort has them; otherwise a snapshot too.
    let care_home_dated = train.care_home_coded;
    card.snapshot_features = ["imd_decile", "care_home"]
        .iter()
        .filter(|f| **f != "care_home" || !care_home_dated)
        .filter(|f| valid.table.names.iter().any(|n| n == *f))
        .map(|f| f.to_string())
        .collect();
    card.practice_validation = Some(practice_validation(
        &cohort,
        &train,
        &valid,
        &card,
        &logistic_params,
        &gbdt_params,
        min_age,
        &quick,
    )?);
    card.training_metrics = Some(training.clone());
    card.validation_metrics = Some(validation.clone());
    card.validation_cohort = Some(describe(
        &valid,
        as_of,
        "temporal validation (the following year)",
    ));
    card.intended_use = format!(
        "Ranking people by their risk of {} in the next 365 days, to help a proactive care team decide whom to review first. Not a diagnosis, and not for decisions about any one person without clinical review.",
        outcome.words()
    );
    // The caveat follows where the training cohort came from (strata synth marks its files).
    card.caveats = match &cohort.synthetic {
        Some(made) => format!("{} ({made})", strata_models::card::SYNTHETIC_CAVEAT),
        None => strata_models::card::LOCAL_CAVEAT.to_string(),
    };
    card.limitations = "Fitted on one cohort and validated on the same population a year later (temporal validation), not on another population. Features come from coded primary-care and hospital records, so people with little recorded contact look low-risk. Check calibration and discrimination by deprivation, sex, age and ethnic group with `strata evaluate` before use.".into();
    card.save(&a.out)?;
    print_metrics("training (fitted on, not validation)", &training);
    print_metrics("validation (next year), all ages", &validation);
    print_metrics(
        &format!("validation (next year), the list population ({min_age}+)"),
        &list_validation,
    );
    if let Some(m) = card
        .practice_validation
        .as_ref()
        .and_then(|v| v.list_metrics.as_ref())
    {
        print_metrics(
            &format!("validation (next year), held-out practices' list population ({min_age}+)"),
            m,
        );
    }
    println!("{}: model card written", a.out.display());
    Ok(0)
}
