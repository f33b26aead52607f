//! Choosing the model family: fit a logistic model and gradient-boosted trees and keep the better
//! on rows neither was fitted on (`strata train --model auto`).
//!
//! The trees hold out every `holdout_every`-th row for early stopping; the logistic model is
//! fitted on the same other rows for the comparison, and both are scored on the held-out rows:
//! AUROC to three decimals, then the calibration slope nearer 1. The winner is refitted on every
//! row when it is the logistic model (the trees keep their early-stopped fit). Nothing of a later
//! validation window is used, so its figures stay honest.

use crate::data::Dataset;
use crate::error::Result;
use crate::gbdt::{GbdtFit, GbdtParams, fit_gbdt};
use crate::logistic::{LogisticModel, LogisticParams};
use crate::metrics::{EvalOptions, Metrics, evaluate};

/// The family kept.
#[derive(Debug, Clone)]
pub enum Chosen {
    /// The logistic model, refitted on every row.
    Logistic(LogisticModel),
    /// The trees.
    Gbdt(GbdtFit),
}

/// What [`fit_auto`] fitted and why it kept what it kept.
#[derive(Debug, Clone)]
pub struct AutoFit {
    /// The model kept.
    pub chosen: Chosen,
    /// The logistic model's figures on the held-out rows.
    pub logistic: Metrics,
    /// The trees' figures on the held-out rows.
    pub gbdt: Metrics,
    /// Trees the early stopping kept.
    pub trees: usize,
    /// Held-out rows.
    pub held_out: usize,
}

impl AutoFit {
    /// The choice in words, for the model card.
    pub fn note(&self) -> String {
        format!(
            "auto: on the held-out rows of the training window ({} rows), gbdt ({} trees) AUROC {:.4} calibration slope {:.2}, logistic AUROC {:.4} slope {:.2}: kept {}",
            self.held_out,
            self.trees,
            self.gbdt.auroc,
            self.gbdt.calibration.slope,
            self.logistic.auroc,
            self.logistic.calibration.slope,
            match self.chosen {
                Chosen::Logistic(_) => "logistic",
                Chosen::Gbdt(_) => "gbdt",
            }
        )
    }
}

/// Whether figures `a` beat `b`: AUROC to three decimals, then the calibration slope nearer 1.
pub fn better(a: &Metrics, b: &Metrics) -> bool {
    let round = |v: f64| (v * 1000.0).round();
    round(a.auroc) > round(b.auroc)
        || (round(a.auroc) == round(b.auroc)
            && (a.calibration.slope - 1.0).abs() < (b.calibration.slope - 1.0).abs())
}

/// Fit both families on `data` and keep the better on the held-out rows (see the module docs).
/// `gp.early_stopping_rounds` should be above 0 (the held-out rows are those of early stopping);
/// with 0, every `holdout_every`-th row is still held out from both for the comparison.
pub fn fit_auto(data: &Dataset, lp: &LogisticParams, gp: &GbdtParams) -> Result<AutoFit> {
    let every = gp.holdout_every.max(2);
    let (kept, held): (Vec<usize>, Vec<usize>) =
        (0..data.n_rows()).partition(|i| i % every != every - 1);
    let trees_params = GbdtParams {
        early_stopping_rounds: gp.early_stopping_rounds.max(1),
        ..gp.clone()
    };
    let fit = fit_gbdt(data, &trees_params)?;
    let lr = LogisticModel::fit(&data.select_rows(&kept)?, lp)?;
    let held_data = data.select_rows(&held)?;
    let quick = EvalOptions {
        bootstrap_resamples: 0,
        ..EvalOptions::default()
    };
    let logistic = evaluate(held_data.y(), &lr.predict_proba(&held_data)?, &quick)?;
    let gbdt = evaluate(held_data.y(), &fit.model.predict_proba(&held_data)?, &quick)?;
    let trees = fit.model.trees.len();
    let chosen = if better(&gbdt, &logistic) {
        Chosen::Gbdt(fit)
    } else {
        Chosen::Logistic(LogisticModel::fit(data, lp)?)
    };
    Ok(AutoFit {
        chosen,
        logistic,
        gbdt,
        trees,
        held_out: held.len(),
    })
}
