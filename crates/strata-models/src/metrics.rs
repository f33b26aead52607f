//! Evaluation metrics for binary risk predictions, computed in `f64` and defined exactly as the
//! reference Python implementations a researcher would check them against.
//!
//! | metric | definition | reference |
//! |---|---|---|
//! | AUROC | Mann-Whitney statistic with tied scores given mid-ranks | `sklearn.metrics.roc_auc_score` |
//! | AUPRC | step-wise average precision `sum_k (R_k - R_{k-1}) P_k` over distinct thresholds | `sklearn.metrics.average_precision_score` |
//! | Brier | mean of `(p - y)^2` | `sklearn.metrics.brier_score_loss` |
//! | log-loss | mean of `-(y ln p + (1-y) ln(1-p))`, `p` clipped to `[eps, 1-eps]`, `eps = f64::EPSILON` | `sklearn.metrics.log_loss` |
//! | calibration slope | coefficient of `logit(p)` in the logistic GLM `y ~ 1 + logit(p)` | statsmodels `GLM(..., Binomial())` |
//! | calibration intercept | intercept of the GLM `y ~ 1` with `logit(p)` as offset ("calibration-in-the-large") | statsmodels, `offset=logit(p)` |
//!
//! Probabilities must be finite and within `[0, 1]`; for the calibration GLMs they are clipped to
//! `[1e-12, 1 - 1e-12]` before the logit so that a prediction of exactly 0 or 1 stays finite.
//! The event (`y = 1`) is always the positive class.

use crate::error::{ModelError, Result};
use crate::rng::SplitMix64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

fn check(y: &[u8], p: &[f64]) -> Result<()> {
    if y.len() != p.len() {
        return Err(ModelError::Shape(format!(
            "{} labels but {} predictions",
            y.len(),
            p.len()
        )));
    }
    if y.is_empty() {
        return Err(ModelError::Empty("metric"));
    }
    if let Some(row) = y.iter().position(|&v| v > 1) {
        return Err(ModelError::BadLabel { row, value: y[row] });
    }
    if let Some(row) = p
        .iter()
        .position(|&v| !v.is_finite() || !(0.0..=1.0).contains(&v))
    {
        return Err(ModelError::BadProbability { row, value: p[row] });
    }
    Ok(())
}

/// Row indices sorted by score descending (ties by row index ascending).
fn order_desc(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.par_sort_unstable_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx
}

/// AUROC and AP from rows sorted by descending score, each row weighted by `w` (1 for the plain
/// metrics, a bootstrap count for a resample). Returns `None` if a class has zero weight.
fn ranked_auc_ap(order: &[usize], y: &[u8], p: &[f64], w: Option<&[u32]>) -> Option<(f64, f64)> {
    let weight = |i: usize| w.map_or(1.0, |w| f64::from(w[i]));
    let (mut tot_pos, mut tot_neg) = (0.0, 0.0);
    for &i in order {
        let wi = weight(i);
        if y[i] == 1 {
            tot_pos += wi;
        } else {
            tot_neg += wi;
        }
    }
    if tot_pos == 0.0 || tot_neg == 0.0 {
        return None;
    }
    // Walk groups of tied scores from the highest down. For AUROC, a positive in a group beats
    // every negative below the group and ties (counts 1/2) with the negatives in the group.
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut auc_num = 0.0f64;
    let mut ap = 0.0f64;
    let mut prev_recall = 0.0f64;
    let mut k = 0;
    while k < order.len() {
        let s = p[order[k]];
        let (mut gp, mut gn) = (0.0, 0.0);
        while k < order.len() && p[order[k]] == s {
            let i = order[k];
            let wi = weight(i);
            if y[i] == 1 {
                gp += wi;
            } else {
                gn += wi;
            }
            k += 1;
        }
        // negatives strictly below this group = tot_neg - fp - gn
        auc_num += gp * (tot_neg - fp - gn + 0.5 * gn);
        tp += gp;
        fp += gn;
        if gp + gn > 0.0 {
            let recall = tp / tot_pos;
            let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
            ap += (recall - prev_recall) * precision;
            prev_recall = recall;
        }
    }
    Some((auc_num / (tot_pos * tot_neg), ap))
}

/// Area under the ROC curve; tied scores get mid-ranks (equals `sklearn.metrics.roc_auc_score`).
/// Errors if only one class is present.
pub fn auroc(y: &[u8], p: &[f64]) -> Result<f64> {
    check(y, p)?;
    let order = order_desc(p);
    ranked_auc_ap(&order, y, p, None)
        .map(|v| v.0)
        .ok_or(ModelError::SingleClass("auroc"))
}

/// Average precision, step-wise (equals `sklearn.metrics.average_precision_score`; not the
/// trapezoidal area, which is optimistic). Errors if only one class is present.
pub fn average_precision(y: &[u8], p: &[f64]) -> Result<f64> {
    check(y, p)?;
    let order = order_desc(p);
    ranked_auc_ap(&order, y, p, None)
        .map(|v| v.1)
        .ok_or(ModelError::SingleClass("average precision"))
}

/// Brier score: mean squared difference between predicted probability and outcome.
pub fn brier(y: &[u8], p: &[f64]) -> Result<f64> {
    check(y, p)?;
    let s: f64 = y
        .iter()
        .zip(p)
        .map(|(&yi, &pi)| (pi - f64::from(yi)).powi(2))
        .sum();
    Ok(s / y.len() as f64)
}

/// Mean binary cross-entropy (natural log), probabilities clipped to `[eps, 1 - eps]` with
/// `eps = f64::EPSILON` so a confident wrong prediction costs a large but finite amount.
pub fn log_loss(y: &[u8], p: &[f64]) -> Result<f64> {
    check(y, p)?;
    let eps = f64::EPSILON;
    let s: f64 = y
        .iter()
        .zip(p)
        .map(|(&yi, &pi)| {
            let q = pi.clamp(eps, 1.0 - eps);
            if yi == 1 { -q.ln() } else { -(1.0 - q).ln() }
        })
        .sum();
    Ok(s / y.len() as f64)
}

fn logit_clipped(p: f64) -> f64 {
    let q = p.clamp(1e-12, 1.0 - 1e-12);
    (q / (1.0 - q)).ln()
}

/// Numerically stable `log(1 + exp(z))`.
pub(crate) fn log1pexp(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Logistic function `1 / (1 + exp(-z))`, stable for large `|z|`.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Calibration intercept and slope of predictions against outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Calibration-in-the-large: intercept `a` of `logit P(y=1) = a + logit(p)` (offset GLM);
    /// 0 when the average risk is right, > 0 when predictions are too low.
    pub intercept: f64,
    /// Slope `b` of `logit P(y=1) = c + b logit(p)`; 1 is ideal, < 1 means predictions are too
    /// extreme (over-fitting), > 1 too modest.
    pub slope: f64,
}

/// Fits the two calibration GLMs by Newton's method (at most 100 steps), stopping when a step is
/// below 1e-12 or the score equations are zero to rounding (gradient below 1e-12 x the rows:
/// with a million rows the sums cannot get closer, and the estimates are then exact to ~1e-10).
/// Errors if only one class is present or the fit does not converge (e.g. perfect separation).
pub fn calibration(y: &[u8], p: &[f64]) -> Result<Calibration> {
    check(y, p)?;
    let events = y.iter().filter(|&&v| v == 1).count();
    if events == 0 || events == y.len() {
        return Err(ModelError::SingleClass("calibration"));
    }
    let lp: Vec<f64> = p.iter().map(|&v| logit_clipped(v)).collect();
    if lp.iter().all(|&v| v == lp[0]) {
        return Err(ModelError::ConstantPredictions("calibration slope"));
    }
    // Intercept with offset.
    let mut a = 0.0f64;
    let mut converged = false;
    let mut last = f64::INFINITY;
    for _ in 0..100 {
        let (mut g, mut h) = (0.0, 0.0);
        for (&yi, &o) in y.iter().zip(&lp) {
            let mu = sigmoid(a + o);
            g += f64::from(yi) - mu;
            h += mu * (1.0 - mu);
        }
        if h <= 0.0 {
            return Err(ModelError::NotPositiveDefinite("calibration intercept"));
        }
        let step = g / h;
        a += step;
        last = g.abs();
        if step.abs() < 1e-12 || last < 1e-12 * y.len() as f64 {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(ModelError::NoConvergence {
            solver: "calibration intercept",
            iterations: 100,
            grad_norm: last,
        });
    }
    // Slope: y ~ 1 + lp. Newton steps, halved until the log-likelihood does not fall, so that
    // near-separated predictions (a tree ensemble on its own training rows) cannot throw the
    // iteration off to infinity.
    let loglik = |c: f64, b: f64| -> f64 {
        y.iter()
            .zip(&lp)
            .map(|(&yi, &x)| {
                let z = c + b * x;
                // log sigmoid(z) and log(1 - sigmoid(z)), stable.
                let log1pexp = if z > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                };
                if yi == 1 { z - log1pexp } else { -log1pexp }
            })
            .sum()
    };
    let (mut c, mut b) = (0.0f64, 1.0f64);
    let mut ll = loglik(c, b);
    converged = false;
    for _ in 0..100 {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&yi, &x) in y.iter().zip(&lp) {
            let mu = sigmoid(c + b * x);
            let r = f64::from(yi) - mu;
            let w = mu * (1.0 - mu);
            g0 += r;
            g1 += r * x;
            h00 += w;
            h01 += w * x;
            h11 += w * x * x;
        }
        let det = h00 * h11 - h01 * h01;
        if det <= 0.0 || !det.is_finite() {
            return Err(ModelError::NotPositiveDefinite("calibration slope"));
        }
        let dc = (h11 * g0 - h01 * g1) / det;
        let db = (h00 * g1 - h01 * g0) / det;
        last = g0.abs().max(g1.abs());
        if dc.abs().max(db.abs()) < 1e-12 || last < 1e-12 * y.len() as f64 {
            converged = true;
            break;
        }
        let mut t = 1.0;
        loop {
            let (nc, nb) = (c + t * dc, b + t * db);
            let nll = loglik(nc, nb);
            // Accept unless the log-likelihood really falls: a drop within rounding of a sum of
            // a million terms is no reason to shorten the step (that would stall the iteration).
            if (nll.is_finite() && nll >= ll - 1e-10 * (1.0 + ll.abs())) || t < 1e-10 {
                c = nc;
                b = nb;
                ll = nll;
                break;
            }
            t *= 0.5;
        }
    }
    if !converged {
        return Err(ModelError::NoConvergence {
            solver: "calibration slope",
            iterations: 100,
            grad_norm: last,
        });
    }
    Ok(Calibration {
        intercept: a,
        slope: b,
    })
}

/// One group of the calibration table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Rows in the group.
    pub n: usize,
    /// Events in the group.
    pub events: usize,
    /// Mean predicted probability (`None` for an empty group, when there are fewer rows than groups).
    pub mean_predicted: Option<f64>,
    /// Observed event rate, events / n (`None` for an empty group).
    pub observed_rate: Option<f64>,
}

/// Calibration table by `groups` equal-count groups of predicted risk (10 = deciles).
///
/// Rows are ordered by predicted probability ascending, ties by row index ascending; group `g`
/// (0-based, lowest risk first) holds sorted positions `floor(g n / groups) .. floor((g+1) n / groups)`,
/// so sizes differ by at most one and tied predictions may straddle a boundary (deterministically).
pub fn calibration_table(y: &[u8], p: &[f64], groups: usize) -> Result<Vec<CalibrationBin>> {
    check(y, p)?;
    if groups == 0 {
        return Err(ModelError::Param {
            name: "groups",
            reason: "must be at least 1".into(),
        });
    }
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.par_sort_unstable_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let n = p.len();
    let mut out = Vec::with_capacity(groups);
    for g in 0..groups {
        let lo = g * n / groups;
        let hi = (g + 1) * n / groups;
        let rows = &idx[lo..hi];
        let events = rows.iter().filter(|&&i| y[i] == 1).count();
        let sp: f64 = rows.iter().map(|&i| p[i]).sum();
        let m = rows.len();
        out.push(CalibrationBin {
            n: m,
            events,
            mean_predicted: (m > 0).then(|| sp / m as f64),
            observed_rate: (m > 0).then(|| events as f64 / m as f64),
        });
    }
    Ok(out)
}

/// Case-finding performance when the highest-risk fraction of the population is flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFraction {
    /// Fraction flagged (e.g. 0.05 for the top 5%).
    pub fraction: f64,
    /// Rows flagged: `ceil(fraction * n)`.
    pub flagged: usize,
    /// Events among the flagged rows.
    pub events_flagged: usize,
    /// Sensitivity (recall): events flagged / all events (NaN if there is no event, which
    /// [`evaluate`] refuses, so it never reaches a model card).
    pub sensitivity: f64,
    /// Positive predictive value (precision): events flagged / rows flagged.
    pub ppv: f64,
}

/// Sensitivity and PPV when the top `fraction` of rows by predicted risk are flagged.
///
/// `flagged = ceil(fraction * n)` (computed as `ceil(fraction * n - 1e-9)` to absorb binary
/// rounding, e.g. `0.07 * 100`). Rows are ranked by probability descending; ties at the cut-off are
/// broken by **row index ascending** (the earlier row is flagged), so the result is deterministic
/// and every flagged count is exact — as a list of exactly that many patients would be.
pub fn top_fraction(y: &[u8], p: &[f64], fraction: f64) -> Result<TopFraction> {
    check(y, p)?;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(ModelError::Param {
            name: "fraction",
            reason: format!("{fraction} not in (0, 1]"),
        });
    }
    let order = order_desc(p);
    Ok(top_from_order(&order, y, fraction))
}

fn top_from_order(order: &[usize], y: &[u8], fraction: f64) -> TopFraction {
    let n = order.len();
    let flagged = ((fraction * n as f64 - 1e-9).ceil().max(0.0) as usize).min(n);
    let events_total = y.iter().filter(|&&v| v == 1).count();
    let events_flagged = order[..flagged].iter().filter(|&&i| y[i] == 1).count();
    TopFraction {
        fraction,
        flagged,
        events_flagged,
        sensitivity: if events_total > 0 {
            events_flagged as f64 / events_total as f64
        } else {
            f64::NAN
        },
        ppv: if flagged > 0 {
            events_flagged as f64 / flagged as f64
        } else {
            f64::NAN
        },
    }
}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// Bootstrap percentile intervals for AUROC and AUPRC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapCi {
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Resamples requested.
    pub resamples: usize,
    /// Resamples used (a resample with no event or no non-event is skipped).
    pub used: usize,
    /// RNG seed; the same seed gives the same interval on any number of threads.
    pub seed: u64,
    /// Percentile interval for AUROC.
    pub auroc: Interval,
    /// Percentile interval for AUPRC.
    pub auprc: Interval,
}

/// Quantile with linear interpolation between order statistics (numpy's default, "type 7").
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// Non-parametric bootstrap (resampling rows with replacement) percentile intervals for AUROC
/// and AUPRC.
///
/// Resample `b` draws `n` row indices from its own generator `SplitMix64::stream(seed, b)`, so
/// each resample is the same whichever thread computes it; resamples run in parallel and are
/// collected in resample order. Rows are sorted by score once and each resample is evaluated as
/// a weighted pass (weight = times drawn), O(n) per resample. Interval bounds are the
/// `(1-level)/2` and `(1+level)/2` quantiles of the resampled statistics (linear interpolation).
pub fn bootstrap_ci(
    y: &[u8],
    p: &[f64],
    resamples: usize,
    seed: u64,
    level: f64,
) -> Result<BootstrapCi> {
    check(y, p)?;
    bootstrap_unchecked(y, p, resamples, seed, level)
}

/// [`bootstrap_ci`] on any finite scores (checked by the caller).
fn bootstrap_unchecked(
    y: &[u8],
    p: &[f64],
    resamples: usize,
    seed: u64,
    level: f64,
) -> Result<BootstrapCi> {
    if resamples == 0 || !(level > 0.0 && level < 1.0) {
        return Err(ModelError::Param {
            name: "bootstrap",
            reason: format!("resamples {resamples} must be > 0 and level {level} in (0, 1)"),
        });
    }
    let n = y.len();
    let order = order_desc(p);
    let stats: Vec<Option<(f64, f64)>> = (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = SplitMix64::stream(seed, b as u64);
            let mut w = vec![0u32; n];
            for _ in 0..n {
                w[rng.below(n)] += 1;
            }
            ranked_auc_ap(&order, y, p, Some(&w))
        })
        .collect();
    let mut aucs: Vec<f64> = stats.iter().flatten().map(|s| s.0).collect();
    let mut aps: Vec<f64> = stats.iter().flatten().map(|s| s.1).collect();
    if aucs.is_empty() {
        return Err(ModelError::SingleClass("bootstrap"));
    }
    aucs.sort_by(f64::total_cmp);
    aps.sort_by(f64::total_cmp);
    let (ql, qu) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
    Ok(BootstrapCi {
        level,
        resamples,
        used: aucs.len(),
        seed,
        auroc: Interval {
            lower: quantile_sorted(&aucs, ql),
            upper: quantile_sorted(&aucs, qu),
        },
        auprc: Interval {
            lower: quantile_sorted(&aps, ql),
            upper: quantile_sorted(&aps, qu),
        },
    })
}

/// The difference in AUROC between two rankings of the same rows, with a paired bootstrap
/// interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AurocDifference {
    /// AUROC of the first ranking minus AUROC of the second.
    pub difference: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Resamples requested.
    pub resamples: usize,
    /// Resamples used (one with no event or no non-event is skipped).
    pub used: usize,
    /// RNG seed.
    pub seed: u64,
    /// Percentile interval of the difference.
    pub interval: Interval,
}

/// AUROC of `a` minus AUROC of `b` on the same rows (scores: any finite numbers, higher = more
/// risk), with a paired bootstrap percentile interval: each resample draws rows once, from the
/// same generator [`bootstrap_ci`] uses (`SplitMix64::stream(seed, b)`), and both rankings are
/// evaluated on it, so the interval reflects the correlation between the two. An interval that
/// excludes 0 is a difference the window can tell apart.
pub fn paired_auroc_difference(
    y: &[u8],
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
    level: f64,
) -> Result<AurocDifference> {
    if y.len() != a.len() || y.len() != b.len() {
        return Err(ModelError::Shape(format!(
            "{} labels but {} and {} scores",
            y.len(),
            a.len(),
            b.len()
        )));
    }
    if y.is_empty() {
        return Err(ModelError::Empty("paired AUROC difference"));
    }
    if let Some(row) = y.iter().position(|&v| v > 1) {
        return Err(ModelError::BadLabel { row, value: y[row] });
    }
    if let Some(row) = a.iter().chain(b).position(|v| !v.is_finite()) {
        return Err(ModelError::Param {
            name: "scores",
            reason: format!("row {} is not a finite number", row % y.len()),
        });
    }
    if resamples == 0 || !(level > 0.0 && level < 1.0) {
        return Err(ModelError::Param {
            name: "bootstrap",
            reason: format!("resamples {resamples} must be > 0 and level {level} in (0, 1)"),
        });
    }
    let (oa, ob) = (order_desc(a), order_desc(b));
    let single = || ModelError::SingleClass("paired AUROC difference");
    let difference = ranked_auc_ap(&oa, y, a, None).ok_or_else(single)?.0
        - ranked_auc_ap(&ob, y, b, None).ok_or_else(single)?.0;
    let n = y.len();
    let stats: Vec<Option<f64>> = (0..resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = SplitMix64::stream(seed, r as u64);
            let mut w = vec![0u32; n];
            for _ in 0..n {
                w[rng.below(n)] += 1;
            }
            let ra = ranked_auc_ap(&oa, y, a, Some(&w))?;
            let rb = ranked_auc_ap(&ob, y, b, Some(&w))?;
            Some(ra.0 - rb.0)
        })
        .collect();
    let mut d: Vec<f64> = stats.into_iter().flatten().collect();
    if d.is_empty() {
        return Err(single());
    }
    d.sort_by(f64::total_cmp);
    let (ql, qu) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
    Ok(AurocDifference {
        difference,
        level,
        resamples,
        used: d.len(),
        seed,
        interval: Interval {
            lower: quantile_sorted(&d, ql),
            upper: quantile_sorted(&d, qu),
        },
    })
}

/// What [`evaluate`] computes beyond the point metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Groups for the calibration table (10 = deciles).
    pub calibration_groups: usize,
    /// Fractions for sensitivity/PPV at the top of the risk ranking.
    pub top_fractions: Vec<f64>,
    /// Bootstrap resamples (0 = no intervals).
    pub bootstrap_resamples: usize,
    /// Bootstrap seed.
    pub bootstrap_seed: u64,
    /// Interval level.
    pub level: f64,
}

impl Default for EvalOptions {
    /// Deciles, top 1/5/10%, 200 bootstrap resamples with seed 20261130, 95% intervals.
    fn default() -> Self {
        Self {
            calibration_groups: 10,
            top_fractions: vec![0.01, 0.05, 0.10],
            bootstrap_resamples: 200,
            bootstrap_seed: 20261130,
            level: 0.95,
        }
    }
}

/// The full set of figures for one model on one cohort (what goes into the model card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows evaluated.
    pub n: usize,
    /// Events among them.
    pub events: usize,
    /// Event rate.
    pub prevalence: f64,
    /// Area under the ROC curve (mid-ranks for ties).
    pub auroc: f64,
    /// Average precision (step-wise).
    pub auprc: f64,
    /// Brier score.
    pub brier: f64,
    /// Log-loss.
    pub log_loss: f64,
    /// Calibration intercept and slope.
    pub calibration: Calibration,
    /// Calibration table by group of predicted risk, lowest risk first.
    pub calibration_table: Vec<CalibrationBin>,
    /// Sensitivity and PPV at the requested top fractions.
    pub top: Vec<TopFraction>,
    /// Bootstrap intervals, if requested.
    pub bootstrap: Option<BootstrapCi>,
}

/// Computes every metric of [`Metrics`] for outcomes `y` (1 = event) and probabilities `p`.
pub fn evaluate(y: &[u8], p: &[f64], opts: &EvalOptions) -> Result<Metrics> {
    check(y, p)?;
    evaluate_score(y, p, Some(p), opts)
}

/// Labels and scores of equal, non-zero length; labels 0/1; scores finite.
fn check_scores(y: &[u8], score: &[f64], what: &'static str) -> Result<()> {
    if y.len() != score.len() {
        return Err(ModelError::Shape(format!(
            "{} labels but {} scores",
            y.len(),
            score.len()
        )));
    }
    if y.is_empty() {
        return Err(ModelError::Empty(what));
    }
    if let Some(row) = y.iter().position(|&v| v > 1) {
        return Err(ModelError::BadLabel { row, value: y[row] });
    }
    if let Some(row) = score.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::Param {
            name: "scores",
            reason: format!("row {row} is {}, not a finite number", score[row]),
        });
    }
    Ok(())
}

/// Like [`evaluate`] for a risk score that is not itself a probability (the eFI, the HFRS): the
/// ranking metrics (AUROC, AUPRC, the top fractions and their bootstrap intervals) come from
/// `score` (any finite numbers, higher = more risk, ties kept), and the metrics that need a
/// probability (Brier, log-loss, calibration intercept and slope, calibration table) from
/// `probability`, e.g. the score through a [`Recalibration`].
///
/// With `probability` `None` those are not applicable: Brier, log-loss and the calibration
/// intercept and slope are NaN (`null` in JSON) and the calibration table holds the observed
/// rate of each group of the score with no mean predicted risk.
/// `evaluate_score(y, p, Some(p), opts)` equals `evaluate(y, p, opts)`.
pub fn evaluate_score(
    y: &[u8],
    score: &[f64],
    probability: Option<&[f64]>,
    opts: &EvalOptions,
) -> Result<Metrics> {
    check_scores(y, score, "metric")?;
    if let Some(p) = probability {
        check(y, p)?;
    }
    let order = order_desc(score);
    let (auroc, auprc) =
        ranked_auc_ap(&order, y, score, None).ok_or(ModelError::SingleClass("evaluate"))?;
    let mut top = Vec::new();
    for &f in &opts.top_fractions {
        if !(f > 0.0 && f <= 1.0) {
            return Err(ModelError::Param {
                name: "top_fractions",
                reason: format!("{f} not in (0, 1]"),
            });
        }
        top.push(top_from_order(&order, y, f));
    }
    let events = y.iter().filter(|&&v| v == 1).count();
    let bootstrap = if opts.bootstrap_resamples > 0 {
        Some(bootstrap_unchecked(
            y,
            score,
            opts.bootstrap_resamples,
            opts.bootstrap_seed,
            opts.level,
        )?)
    } else {
        None
    };
    let (brier, log_loss, calibration, calibration_table) = match probability {
        Some(p) => (
            brier(y, p)?,
            log_loss(y, p)?,
            calibration(y, p)?,
            calibration_table(y, p, opts.calibration_groups)?,
        ),
        None => {
            // Groups of the score itself (the same rule, on the score), observed rates only.
            let ranks: Vec<f64> = {
                let mut r = vec![0.0; y.len()];
                let n = y.len() as f64;
                // Position in descending order -> a value in [0, 1] increasing with the score,
                // tied scores sharing one value.
                let mut k = 0;
                while k < order.len() {
                    let s = score[order[k]];
                    let start = k;
                    while k < order.len() && score[order[k]] == s {
                        k += 1;
                    }
                    for &i in &order[start..k] {
                        r[i] = 1.0 - start as f64 / n;
                    }
                }
                r
            };
            let mut table = calibration_table(y, &ranks, opts.calibration_groups)?;
            for b in &mut table {
                b.mean_predicted = None;
            }
            (
                f64::NAN,
                f64::NAN,
                Calibration {
                    intercept: f64::NAN,
                    slope: f64::NAN,
                },
                table,
            )
        }
    };
    Ok(Metrics {
        n: y.len(),
        events,
        prevalence: events as f64 / y.len() as f64,
        auroc,
        auprc,
        brier,
        log_loss,
        calibration,
        calibration_table,
        top,
        bootstrap,
    })
}

/// A one-variable logistic recalibration `P(y=1) = sigmoid(intercept + slope * x)`: turns a score
/// that is not a probability (the eFI, the HFRS) into one, fitted by maximum likelihood on one
/// window and applied to another. Increasing in `x` when `slope > 0`, so it keeps the score's
/// ranking (and its ties).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recalibration {
    /// Log-odds at `x = 0`.
    pub intercept: f64,
    /// Change in log-odds per unit of `x`.
    pub slope: f64,
}

impl Recalibration {
    /// Fits `y ~ 1 + x` (unpenalised logistic GLM, the statsmodels `GLM(y, [1, x], Binomial())`
    /// estimate) by Newton's method, to a step below 1e-10, at most 100 steps. Errors if `x` is
    /// not finite, only one class is present, `x` is constant, or the fit does not converge
    /// (perfect separation).
    pub fn fit(x: &[f64], y: &[u8]) -> Result<Recalibration> {
        check_scores(y, x, "recalibration")?;
        let events = y.iter().filter(|&&v| v == 1).count();
        if events == 0 || events == y.len() {
            return Err(ModelError::SingleClass("recalibration"));
        }
        // Start from the event rate with slope 0, the null model.
        let rate = events as f64 / y.len() as f64;
        let (mut a, mut b) = ((rate / (1.0 - rate)).ln(), 0.0f64);
        let mut last = f64::INFINITY;
        for _ in 0..100 {
            let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&yi, &xi) in y.iter().zip(x) {
                let mu = sigmoid(a + b * xi);
                let r = f64::from(yi) - mu;
                let w = mu * (1.0 - mu);
                g0 += r;
                g1 += r * xi;
                h00 += w;
                h01 += w * xi;
                h11 += w * xi * xi;
            }
            let det = h00 * h11 - h01 * h01;
            if !(det.is_finite() && det > 1e-12 * (h00 * h11).max(f64::MIN_POSITIVE)) {
                return Err(ModelError::NotPositiveDefinite("recalibration"));
            }
            let da = (h11 * g0 - h01 * g1) / det;
            let db = (h00 * g1 - h01 * g0) / det;
            a += da;
            b += db;
            last = g0.abs().max(g1.abs());
            if da.abs().max(db.abs()) < 1e-10 {
                return Ok(Recalibration {
                    intercept: a,
                    slope: b,
                });
            }
        }
        Err(ModelError::NoConvergence {
            solver: "recalibration",
            iterations: 100,
            grad_norm: last,
        })
    }

    /// The recalibrated probability of each score.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .map(|&v| sigmoid(self.intercept + self.slope * v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recalibration_recovers_the_generating_model() {
        // Exact expected counts: at score x, n = 1000 rows of which round(1000 sigmoid(-2 + 0.5 x))
        // are events, so the MLE is close to (-2, 0.5) (exact up to the rounding of counts).
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for s in 0..10 {
            let xs = f64::from(s);
            let events = (1000.0 * sigmoid(-2.0 + 0.5 * xs)).round() as usize;
            for k in 0..1000 {
                x.push(xs);
                y.push(u8::from(k < events));
            }
        }
        let r = Recalibration::fit(&x, &y).unwrap();
        assert!((r.intercept + 2.0).abs() < 0.01, "{r:?}");
        assert!((r.slope - 0.5).abs() < 0.01, "{r:?}");
        // Increasing in the score, so the ranking is the score's.
        let p = r.apply(&[0.0, 1.0, 9.0]);
        assert!(p[0] < p[1] && p[1] < p[2]);
        // The fitted model's mean equals the event rate (a property of the logistic MLE).
        let mean: f64 = r.apply(&x).iter().sum::<f64>() / x.len() as f64;
        let rate = y.iter().map(|&v| f64::from(v)).sum::<f64>() / y.len() as f64;
        assert!((mean - rate).abs() < 1e-8, "{mean} vs {rate}");
    }

    #[test]
    fn a_score_ranks_like_its_probability() {
        // Probabilities on a grid of 0.01 (so with ties), outcomes that follow them loosely.
        let p: Vec<f64> = (0..200)
            .map(|i| ((i * 37) % 98 + 1) as f64 / 100.0)
            .collect();
        let y: Vec<u8> = (0..200)
            .map(|i| u8::from((((i * 61) % 100) as f64 / 100.0) < p[i]))
            .collect();
        let opts = EvalOptions::default();
        let m = evaluate(&y, &p, &opts).unwrap();
        assert_eq!(evaluate_score(&y, &p, Some(&p), &opts).unwrap(), m);
        // A score on another scale (ties kept), with the probabilities for calibration.
        let score: Vec<f64> = p.iter().map(|v| 40.0 * v - 3.0).collect();
        assert_eq!(evaluate_score(&y, &score, Some(&p), &opts).unwrap(), m);
        // Without probabilities: the ranking metrics stay, calibration is not applicable.
        let r = evaluate_score(&y, &score, None, &opts).unwrap();
        assert_eq!((r.auroc, r.auprc, &r.top), (m.auroc, m.auprc, &m.top));
        assert_eq!(r.bootstrap, m.bootstrap);
        assert!(r.brier.is_nan() && r.calibration.slope.is_nan());
        assert!(
            r.calibration_table
                .iter()
                .all(|b| b.mean_predicted.is_none())
        );
        let events: usize = r.calibration_table.iter().map(|b| b.events).sum();
        assert_eq!(events, m.events);
        assert!(evaluate_score(&y, &[f64::NAN; 200], None, &opts).is_err());
    }

    #[test]
    fn calibration_slope_converges_where_a_full_newton_step_overshoots() {
        // A small group whose predictions carry almost no information and include extreme ones:
        // the slope is near 0, far from the starting 1, and the logits reach -9.
        let p: Vec<f64> = (0..60)
            .map(|i| match i % 6 {
                0 => 0.0001,
                1 => 0.9,
                2 => 0.3,
                3 => 0.05,
                4 => 0.6,
                _ => 0.15,
            })
            .collect();
        let y: Vec<u8> = (0..60).map(|i| u8::from(i % 5 == 0)).collect();
        let c = calibration(&y, &p).unwrap();
        // The score equations of y ~ 1 + logit(p) hold at the fitted values.
        let lp: Vec<f64> = p.iter().map(|&v| logit_clipped(v)).collect();
        // Refit the intercept for the fitted slope by Newton in one variable, then check both
        // score equations.
        let mut icpt = 0.0;
        for _ in 0..200 {
            let (mut g, mut h) = (0.0, 0.0);
            for (&yi, &x) in y.iter().zip(&lp) {
                let mu = sigmoid(icpt + c.slope * x);
                g += f64::from(yi) - mu;
                h += mu * (1.0 - mu);
            }
            icpt += g / h;
        }
        let (mut g0, mut g1) = (0.0, 0.0);
        for (&yi, &x) in y.iter().zip(&lp) {
            let r = f64::from(yi) - sigmoid(icpt + c.slope * x);
            g0 += r;
            g1 += r * x;
        }
        assert!(g0.abs() < 1e-8 && g1.abs() < 1e-6, "{g0} {g1} {c:?}");
        assert!(c.slope.abs() < 0.5, "{c:?}");
    }

    #[test]
    fn paired_difference_is_zero_for_one_ranking_and_signed_otherwise() {
        let p: Vec<f64> = (0..300)
            .map(|i| ((i * 37) % 98 + 1) as f64 / 100.0)
            .collect();
        let y: Vec<u8> = (0..300)
            .map(|i| u8::from((((i * 61) % 100) as f64 / 100.0) < p[i]))
            .collect();
        // The same ranking on another scale: exactly 0, interval [0, 0].
        let scaled: Vec<f64> = p.iter().map(|v| 3.0 * v + 1.0).collect();
        let same = paired_auroc_difference(&y, &p, &scaled, 50, 7, 0.95).unwrap();
        assert_eq!(same.difference, 0.0);
        assert_eq!((same.interval.lower, same.interval.upper), (0.0, 0.0));
        // Against a noisier ranking: the point difference is the difference of the AUROCs, and
        // swapping the two negates it.
        let noisy: Vec<f64> = p
            .iter()
            .enumerate()
            .map(|(i, v)| v + ((i * 13) % 10) as f64 / 10.0)
            .collect();
        let d = paired_auroc_difference(&y, &p, &noisy, 200, 7, 0.95).unwrap();
        let expect = auroc(&y, &p).unwrap()
            - auroc(&y, &noisy.iter().map(|v| v / 2.0).collect::<Vec<_>>()).unwrap();
        assert!((d.difference - expect).abs() < 1e-12, "{d:?} {expect}");
        assert!(
            d.difference > 0.0
                && d.interval.lower <= d.difference
                && d.difference <= d.interval.upper
        );
        let r = paired_auroc_difference(&y, &noisy, &p, 200, 7, 0.95).unwrap();
        assert_eq!(r.difference, -d.difference);
        assert!((r.interval.lower + d.interval.upper).abs() < 1e-12);
        // Paired resamples: the interval of the difference is narrower than the two AUROC
        // intervals side by side would suggest.
        let ca = bootstrap_ci(&y, &p, 200, 7, 0.95).unwrap();
        assert!(d.interval.upper - d.interval.lower < 2.0 * (ca.auroc.upper - ca.auroc.lower));
    }

    #[test]
    fn recalibration_refuses_what_it_cannot_fit() {
        assert!(matches!(
            Recalibration::fit(&[1.0, 2.0], &[0, 0]),
            Err(ModelError::SingleClass(_))
        ));
        assert!(Recalibration::fit(&[1.0, 1.0, 1.0], &[0, 1, 0]).is_err());
        // Perfect separation: no finite maximum.
        assert!(Recalibration::fit(&[0.0, 1.0, 2.0, 3.0], &[0, 0, 1, 1]).is_err());
        assert!(Recalibration::fit(&[f64::NAN, 1.0], &[0, 1]).is_err());
    }
}
