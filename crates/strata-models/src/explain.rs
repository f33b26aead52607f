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
    // One pass keeping the best `k` in order (lists explain three factors of a few dozen, for
    // every listed patient and model: a full sort of the positives costs several times more).
    let mut v: Vec<Factor> = Vec::with_capacity(k + 1);
    if k == 0 {
        return v;
    }
    for (feature, &c) in contributions.iter().enumerate() {
        if c.is_nan() || c <= 0.0 {
            continue;
        }
        // Features come in index order, so a tie stays behind the lower index already kept.
        let pos = v
            .iter()
            .position(|f| f.contribution.total_cmp(&c) == std::cmp::Ordering::Less)
            .unwrap_or(v.len());
        if pos < k {
            v.insert(
                pos,
                Factor {
                    feature,
                    contribution: c,
                },
            );
            v.truncate(k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: every positive contribution sorted, largest first, ties by lower index.
    fn sorted(contributions: &[f64], k: usize) -> Vec<Factor> {
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

    #[test]
    fn top_factors_equal_a_full_sort() {
        assert_eq!(
            top_factors(&[0.5, -1.0, 2.0, 0.5, f64::NAN, 0.0, 2.0], 3),
            vec![
                Factor {
                    feature: 2,
                    contribution: 2.0
                },
                Factor {
                    feature: 6,
                    contribution: 2.0
                },
                Factor {
                    feature: 0,
                    contribution: 0.5
                },
            ]
        );
        assert!(top_factors(&[1.0], 0).is_empty());
        // Many small random rows with frequent ties (values on a coarse grid).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 12) as usize;
            let row: Vec<f64> = (0..n)
                .map(|j| ((state >> (j * 5)) % 7) as f64 - 3.0)
                .collect();
            for k in 0..5 {
                assert_eq!(top_factors(&row, k), sorted(&row, k), "{row:?} k={k}");
            }
        }
    }
}
