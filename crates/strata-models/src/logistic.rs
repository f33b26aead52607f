//! L2-penalised logistic regression on standardised features, fitted by Newton's method.
//!
//! ## Model
//! `logit P(y = 1 | x) = b0 + sum_j b_j z_j`, with `z_j = (x_j - mean_j) / sd_j` and the event
//! (`y = 1`) always the positive class. `mean_j` and `sd_j` (population sd, `ddof = 0`) are computed
//! on the non-missing training values of column `j` in `f64`. A missing value (`NaN`) is imputed with
//! the training mean, so its standardised value is exactly 0 and it contributes nothing to the
//! score. A constant column gets `sd = 1` (so `z = 0`); a column with no observed value gets
//! `mean = 0, sd = 1`.
//!
//! ## Penalty and scikit-learn's `C`
//! We minimise the **mean** penalised log-loss
//! `f(b) = (1/n) sum_i [log(1 + e^{eta_i}) - y_i eta_i] + (l2 / 2) sum_{j>=1} b_j^2`
//! (intercept not penalised). scikit-learn's `LogisticRegression(penalty="l2", C=C)` minimises
//! `C sum_i loss_i + (1/2) ||b||^2`, which is `n C` times ours when `l2 = 1 / (n C)`. Hence
//! **`C = 1 / (n * l2)`** and **`l2 = 1 / (n * C)`** ([`LogisticParams::from_sklearn_c`]); the
//! minimisers are identical. (sklearn also leaves the intercept unpenalised with lbfgs.)
//!
//! ## Solver
//! Newton-Raphson with a Cholesky solve of the `(p+1) x (p+1)` Hessian and backtracking (Armijo) line
//! search, from `b = 0, b0 = logit(mean y)`. The objective, gradient and Hessian are sums over rows
//! computed in parallel over fixed blocks of 2,048 rows and added in block order, so the fit is
//! bit-identical whatever the number of threads.

use crate::data::Dataset;
use crate::error::{ModelError, Result};
use crate::metrics::{log1pexp, sigmoid};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const BLOCK: usize = 2048;

/// Hyper-parameters of [`LogisticModel::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    /// L2 strength on the mean log-loss scale (see module docs; `l2 = 1 / (n C)` for sklearn's C).
    pub l2: f64,
    /// Maximum Newton iterations.
    pub max_iter: usize,
    /// Convergence: stop when the largest absolute gradient component is below `tol`.
    pub tol: f64,
}

impl Default for LogisticParams {
    /// `l2 = 1e-4`, 100 iterations, `tol = 1e-10`.
    fn default() -> Self {
        Self {
            l2: 1e-4,
            max_iter: 100,
            tol: 1e-10,
        }
    }
}

impl LogisticParams {
    /// Parameters equivalent to scikit-learn `LogisticRegression(C=c)` on `n_train` rows:
    /// `l2 = 1 / (n_train * c)`.
    pub fn from_sklearn_c(c: f64, n_train: usize) -> Self {
        Self {
            l2: 1.0 / (n_train as f64 * c),
            ..Self::default()
        }
    }

    /// The scikit-learn `C` equivalent to these parameters on `n_train` rows: `1 / (n_train * l2)`.
    pub fn sklearn_c(&self, n_train: usize) -> f64 {
        1.0 / (n_train as f64 * self.l2)
    }
}

/// A fitted logistic regression: standardisation, coefficients and intercept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// Feature names, in the order of `mean`, `sd` and `coef`.
    pub feature_names: Vec<String>,
    /// Training mean of each feature (non-missing values), used for centring and imputation.
    pub mean: Vec<f64>,
    /// Training population sd of each feature (1 for constant or empty columns).
    pub sd: Vec<f64>,
    /// Coefficient of each standardised feature (log-odds per training sd).
    pub coef: Vec<f64>,
    /// Intercept (log-odds of a patient at the training mean of every feature).
    pub intercept: f64,
    /// L2 strength used (mean-loss scale).
    pub l2: f64,
    /// Newton iterations taken.
    pub iterations: usize,
}

struct Eval {
    loss: f64,
    grad: Vec<f64>,
    hess: Vec<f64>,
}

/// Standardised value of `v` for column with `mean`, `sd`: 0 when missing.
#[inline]
fn standardise(v: f32, mean: f64, sd: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        (f64::from(v) - mean) / sd
    }
}

impl LogisticModel {
    /// Fits the model on a labelled table. Errors on an unlabelled or single-class table, a
    /// non-positive or non-finite `l2` ... (`l2 = 0` is allowed but may fail with
    /// [`ModelError::NotPositiveDefinite`] under perfect separation), or non-convergence.
    pub fn fit(data: &Dataset, params: &LogisticParams) -> Result<Self> {
        let y = data.labels_for("logistic fit")?;
        if !(params.l2 >= 0.0 && params.l2.is_finite()) {
            return Err(ModelError::Param {
                name: "l2",
                reason: format!("{} must be finite and >= 0", params.l2),
            });
        }
        let n = data.n_rows();
        let p = data.n_features();
        let events = y.iter().filter(|&&v| v == 1).count();
        if events == 0 || events == n {
            return Err(ModelError::SingleClass("logistic fit"));
        }
        let stats: Vec<(f64, f64)> = (0..p)
            .into_par_iter()
            .map(|j| {
                let col = data.column(j);
                let (mut s, mut m) = (0.0f64, 0usize);
                for &v in col {
                    if !v.is_nan() {
                        s += f64::from(v);
                        m += 1;
                    }
                }
                if m == 0 {
                    return (0.0, 1.0);
                }
                let mean = s / m as f64;
                let mut ss = 0.0f64;
                for &v in col {
                    if !v.is_nan() {
                        ss += (f64::from(v) - mean).powi(2);
                    }
                }
                let sd = (ss / m as f64).sqrt();
                let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
                (mean, sd)
            })
            .collect();
        let mean: Vec<f64> = stats.iter().map(|s| s.0).collect();
        let sd: Vec<f64> = stats.iter().map(|s| s.1).collect();
        if let Some(j) = mean.iter().position(|m| !m.is_finite()) {
            return Err(ModelError::Shape(format!(
                "feature {} has a non-finite mean (infinite values?)",
                data.feature_names()[j]
            )));
        }
        let d = p + 1;
        let ybar = events as f64 / n as f64;
        let mut theta = vec![0.0f64; d];
        theta[0] = (ybar / (1.0 - ybar)).ln();
        let mut cur = evaluate(data, y, &mean, &sd, &theta, params.l2, true);
        let mut iterations = 0;
        let mut gnorm = max_abs(&cur.grad);
        while gnorm > params.tol {
            if iterations >= params.max_iter {
                return Err(ModelError::NoConvergence {
                    solver: "logistic newton",
                    iterations,
                    grad_norm: gnorm,
                });
            }
            iterations += 1;
            let step = cholesky_solve(&cur.hess, &cur.grad, d)?;
            // Armijo backtracking along -step. The full step is evaluated with its Hessian, since
            // it is almost always accepted and then needs no second pass over the data.
            let slope: f64 = step.iter().zip(&cur.grad).map(|(s, g)| s * g).sum();
            let mut t = 1.0;
            let mut accepted = None;
            for _ in 0..40 {
                let cand: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
                let e = evaluate(data, y, &mean, &sd, &cand, params.l2, t == 1.0);
                if e.loss <= cur.loss - 1e-4 * t * slope || (cur.loss - e.loss).abs() <= 1e-15 {
                    accepted = Some((cand, e));
                    break;
                }
                t *= 0.5;
            }
            let Some((next, e)) = accepted else {
                // No decrease possible in floating point: we are at the optimum to machine precision.
                break;
            };
            let moved = next
                .iter()
                .zip(&theta)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            theta = next;
            cur = if t == 1.0 {
                e
            } else {
                evaluate(data, y, &mean, &sd, &theta, params.l2, true)
            };
            gnorm = max_abs(&cur.grad);
            if moved < 1e-14 {
                break;
            }
        }
        Ok(Self {
            feature_names: data.feature_names().to_vec(),
            mean,
            sd,
            intercept: theta[0],
            coef: theta[1..].to_vec(),
            l2: params.l2,
            iterations,
        })
    }

    fn check_features(&self, data: &Dataset) -> Result<()> {
        if data.feature_names() != self.feature_names.as_slice() {
            return Err(ModelError::FeatureMismatch(format!(
                "model expects {} features {:?}..., table has {}",
                self.feature_names.len(),
                self.feature_names.first(),
                data.n_features()
            )));
        }
        Ok(())
    }

    /// Log-odds for one row of raw feature values (model feature order).
    pub fn margin_row(&self, row: &[f32]) -> f64 {
        let mut s = self.intercept;
        for (j, &v) in row.iter().enumerate().take(self.coef.len()) {
            s += self.coef[j] * standardise(v, self.mean[j], self.sd[j]);
        }
        s
    }

    /// Predicted event probability for every row of `data` (columns must match the model's
    /// feature names), computed in parallel.
    pub fn predict_proba(&self, data: &Dataset) -> Result<Vec<f64>> {
        self.check_features(data)?;
        let n = data.n_rows();
        let mut eta = vec![self.intercept; n];
        for j in 0..self.coef.len() {
            let col = data.column(j);
            let (c, m, s) = (self.coef[j], self.mean[j], self.sd[j]);
            eta.par_chunks_mut(BLOCK)
                .zip(col.par_chunks(BLOCK))
                .for_each(|(e, x)| {
                    for (ei, &v) in e.iter_mut().zip(x) {
                        *ei += c * standardise(v, m, s);
                    }
                });
        }
        Ok(eta.into_par_iter().map(sigmoid).collect())
    }

    /// Per-feature contributions to one row's log-odds: `coef_j * z_j` (0 for a missing value).
    /// They add up, with the intercept, to the row's log-odds; positive values raise the risk.
    /// This is the exact SHAP value of a linear model with independent, standardised features
    /// (the training mean being the reference patient).
    pub fn contributions_row(&self, row: &[f32]) -> Vec<f64> {
        row.iter()
            .enumerate()
            .take(self.coef.len())
            .map(|(j, &v)| self.coef[j] * standardise(v, self.mean[j], self.sd[j]))
            .collect()
    }

    /// Contributions for every row, row-major (`n_rows x n_features`).
    pub fn contributions(&self, data: &Dataset) -> Result<Vec<f64>> {
        self.check_features(data)?;
        let p = self.coef.len();
        let mut out = vec![0.0f64; data.n_rows() * p];
        out.par_chunks_mut(p).enumerate().for_each(|(i, o)| {
            for (j, oj) in o.iter_mut().enumerate() {
                *oj = self.coef[j] * standardise(data.get(i, j), self.mean[j], self.sd[j]);
            }
        });
        Ok(out)
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |a, &b| a.max(b.abs()))
}

/// Dot product with eight accumulators added in a fixed order (vectorises; deterministic).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// Objective, gradient and (optionally) lower-triangular Hessian at `theta`.
///
/// Each block of rows is standardised into a column-major `d x m` buffer (column 0 = the
/// intercept's ones); gradient and Hessian entries are dot products over the block's rows.
fn evaluate(
    data: &Dataset,
    y: &[u8],
    mean: &[f64],
    sd: &[f64],
    theta: &[f64],
    l2: f64,
    hess: bool,
) -> Eval {
    let n = data.n_rows();
    let d = theta.len();
    let p = d - 1;
    let blocks: Vec<Eval> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let lo = b * BLOCK;
            let hi = (lo + BLOCK).min(n);
            let m = hi - lo;
            let mut z = vec![0.0f64; m * d];
            z[..m].fill(1.0);
            let mut eta = vec![theta[0]; m];
            for j in 0..p {
                let col = &data.column(j)[lo..hi];
                let zc = &mut z[(j + 1) * m..(j + 2) * m];
                let (mj, sj, tj) = (mean[j], sd[j], theta[j + 1]);
                for ((zi, &v), e) in zc.iter_mut().zip(col).zip(eta.iter_mut()) {
                    *zi = standardise(v, mj, sj);
                    *e += tj * *zi;
                }
            }
            let mut e = Eval {
                loss: 0.0,
                grad: vec![0.0; d],
                hess: if hess { vec![0.0; d * d] } else { Vec::new() },
            };
            let mut r = vec![0.0f64; m];
            let mut w = vec![0.0f64; m];
            for i in 0..m {
                let yi = f64::from(y[lo + i]);
                e.loss += log1pexp(eta[i]) - yi * eta[i];
                let mu = sigmoid(eta[i]);
                r[i] = mu - yi;
                w[i] = mu * (1.0 - mu);
            }
            for a in 0..d {
                e.grad[a] = dot(&r, &z[a * m..(a + 1) * m]);
            }
            if hess {
                let mut wz = vec![0.0f64; m];
                for a in 0..d {
                    let za = &z[a * m..(a + 1) * m];
                    for ((o, &wi), &zi) in wz.iter_mut().zip(&w).zip(za) {
                        *o = wi * zi;
                    }
                    for b2 in 0..=a {
                        e.hess[a * d + b2] = dot(&wz, &z[b2 * m..(b2 + 1) * m]);
                    }
                }
            }
            e
        })
        .collect();
    let mut tot = Eval {
        loss: 0.0,
        grad: vec![0.0; d],
        hess: if hess { vec![0.0; d * d] } else { Vec::new() },
    };
    for e in &blocks {
        tot.loss += e.loss;
        for (a, b) in tot.grad.iter_mut().zip(&e.grad) {
            *a += b;
        }
        for (a, b) in tot.hess.iter_mut().zip(&e.hess) {
            *a += b;
        }
    }
    let inv_n = 1.0 / n as f64;
    tot.loss *= inv_n;
    for g in &mut tot.grad {
        *g *= inv_n;
    }
    for j in 1..d {
        tot.loss += 0.5 * l2 * theta[j] * theta[j];
        tot.grad[j] += l2 * theta[j];
    }
    if hess {
        for h in &mut tot.hess {
            *h *= inv_n;
        }
        for j in 1..d {
            tot.hess[j * d + j] += l2;
        }
    }
    tot
}

/// Solves `H x = g` for symmetric positive definite `H` given by its lower triangle (row-major,
/// `d x d`) by Cholesky factorisation.
fn cholesky_solve(h: &[f64], g: &[f64], d: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = h[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return Err(ModelError::NotPositiveDefinite("logistic hessian"));
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    let mut x = g.to_vec();
    for i in 0..d {
        let mut s = x[i];
        for k in 0..i {
            s -= l[i * d + k] * x[k];
        }
        x[i] = s / l[i * d + i];
    }
    for i in (0..d).rev() {
        let mut s = x[i];
        for k in i + 1..d {
            s -= l[k * d + i] * x[k];
        }
        x[i] = s / l[i * d + i];
    }
    Ok(x)
}
