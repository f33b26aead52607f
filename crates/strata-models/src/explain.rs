//! Turning per-patient contributions into "top factors" for risk lists.

/// One feature's contribution to one patient's risk score.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Feature index.
    pub feature: usize,
    /// Contribution to the log-odds (positive raises the risk).
    pub contribution: f64,
}

/// The `k` features with the largest **positive** contributions (the reasons a patient is high
/// risk), largest first; ties broken by lower feature index so lists are reproducible. Works on a
/// row of logistic contributions or SHAP values alike.
pub fn top_factors(contributions: &[f64], k: usize) -> Vec<Factor> {
    let mut v: Vec<Factor> = contributions
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0.0)
        .map(|(feature, &contribution)| Factor {
            feature,
            contribution,
        })
        .collect();
    v.sort_by(|a, b| {
        b.contribution
            .total_cmp(&a.contribution)
            .then(a.feature.cmp(&b.feature))
    });
    v.truncate(k);
    v
}
