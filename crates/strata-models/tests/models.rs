//! Behaviour tests on small synthetic data: determinism, additivity, consistency, round trips.

use proptest::prelude::*;
use strata_models::card::{Cohort, ModelCard, Predictor};
use strata_models::metrics::{self, EvalOptions};
use strata_models::rng::SplitMix64;
use strata_models::{Dataset, GbdtParams, LogisticModel, LogisticParams, ModelError, fit_gbdt};

/// A small table with NaNs, integer and continuous columns and a non-linear signal.
fn synth(n: usize, p: usize, seed: u64) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let mut x = vec![0f32; n * p];
    for j in 0..p {
        for i in 0..n {
            let u = rng.next_f64();
            x[j * n + i] = if rng.next_f64() < 0.1 {
                f32::NAN
            } else if j % 2 == 0 {
                (u * 6.0).floor() as f32
            } else {
                (u * 4.0 - 2.0) as f32
            };
        }
    }
    let v = |x: &[f32], i: usize, j: usize| {
        let t = x[j * n + i];
        if t.is_nan() { 0.5 } else { f64::from(t) }
    };
    let y = (0..n)
        .map(|i| {
            let eta = -2.0
                + 0.4 * v(&x, i, 0)
                + v(&x, i, 1) * v(&x, i, 2 % p) * 0.5
                + if x[(p - 1) * n + i].is_nan() {
                    1.0
                } else {
                    0.0
                };
            u8::from(rng.next_f64() < 1.0 / (1.0 + (-eta).exp()))
        })
        .collect();
    Dataset::new((0..p).map(|j| format!("f{j}")).collect(), x, y).unwrap()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn small_gbdt() -> GbdtParams {
    GbdtParams {
        n_trees: 25,
        max_leaves: 15,
        max_depth: 5,
        min_child_samples: 5,
        // Every row fitted (leaf counts are checked against all rows).
        early_stopping_rounds: 0,
        ..GbdtParams::default()
    }
}

/// Early stopping keeps the trees up to the lowest held-out log-loss, and stops once it has
/// not improved for the given rounds.
#[test]
fn early_stopping_keeps_the_best_trees() {
    let d = synth(20_000, 5, 4);
    let p = GbdtParams {
        n_trees: 400,
        learning_rate: 0.3,
        early_stopping_rounds: 10,
        ..GbdtParams::default()
    };
    let fit = fit_gbdt(&d, &p).unwrap();
    let loss = &fit.holdout_logloss;
    let best = loss
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(fit.model.trees.len(), best + 1);
    assert!(loss.len() < 400, "stopped early: {}", loss.len());
    assert_eq!(loss.len(), best + 1 + 10);
}

#[test]
fn gbdt_is_identical_whatever_the_thread_count() {
    // 40k rows so that histograms take the parallel path
    let d = synth(40_000, 6, 1);
    let p = GbdtParams {
        n_trees: 8,
        subsample: 0.8,
        seed: 9,
        ..GbdtParams::default()
    };
    let a = in_pool(1, || fit_gbdt(&d, &p).unwrap());
    let b = in_pool(2, || fit_gbdt(&d, &p).unwrap());
    let c = in_pool(3, || fit_gbdt(&d, &p).unwrap());
    let ja = serde_json::to_string(&a.model).unwrap();
    assert_eq!(ja, serde_json::to_string(&b.model).unwrap());
    assert_eq!(ja, serde_json::to_string(&c.model).unwrap());
    let pa = in_pool(1, || a.model.predict_proba(&d).unwrap());
    let pc = in_pool(3, || a.model.predict_proba(&d).unwrap());
    assert!(pa.iter().zip(&pc).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn gbdt_learns_and_leaf_counts_match_raw_thresholds() {
    let d = synth(6_000, 5, 2);
    let fit = fit_gbdt(&d, &small_gbdt()).unwrap();
    let auc = metrics::auroc(d.y(), &fit.model.predict_proba(&d).unwrap()).unwrap();
    assert!(auc > 0.7, "training AUROC {auc}");
    // Rows routed by raw f32 thresholds (prediction) reach exactly the leaves their bins reached in
    // training: every leaf's recorded count is reproduced.
    let mut row = vec![0f32; d.n_features()];
    for tree in fit.model.trees.iter().take(5) {
        let mut counts = vec![0u64; tree.nodes.len()];
        for i in 0..d.n_rows() {
            d.row_into(i, &mut row);
            counts[tree.leaf_index(&row)] += 1;
        }
        for (k, node) in tree.nodes.iter().enumerate() {
            if let strata_models::tree::Node::Leaf(l) = node {
                assert_eq!(counts[k], l.count, "leaf {k}");
            }
        }
    }
    // batch prediction (lockstep, compiled) equals row-by-row prediction bit for bit
    let batch = fit.model.predict_margin(&d).unwrap();
    for (i, b) in batch.iter().enumerate() {
        d.row_into(i, &mut row);
        assert_eq!(b.to_bits(), fit.model.margin_row(&row).to_bits());
    }
    // missing values went somewhere learned: some split has default_left = true and some false
    let dl: Vec<bool> = fit
        .model
        .trees
        .iter()
        .flat_map(|t| t.nodes.iter())
        .filter_map(|n| match n {
            strata_models::tree::Node::Split(s) => Some(s.default_left),
            _ => None,
        })
        .collect();
    assert!(dl.iter().any(|&b| b) && dl.iter().any(|&b| !b));
}

#[test]
fn gbdt_respects_limits() {
    let d = synth(5_000, 4, 3);
    let p = GbdtParams {
        n_trees: 5,
        max_leaves: 7,
        max_depth: 3,
        min_child_samples: 50,
        ..GbdtParams::default()
    };
    let fit = fit_gbdt(&d, &p).unwrap();
    for t in &fit.model.trees {
        assert!(t.nodes.len().div_ceil(2) <= 7);
        assert!(t.depth() <= 3);
        for n in &t.nodes {
            if let strata_models::tree::Node::Leaf(l) = n {
                assert!(l.count >= 50);
            }
        }
    }
    assert!(fit.bins.cuts.iter().all(|c| c.len() <= 254));
}

#[test]
fn shap_adds_up_and_fast_equals_algorithm_2() {
    let d = synth(3_000, 7, 4);
    let fit = fit_gbdt(&d, &small_gbdt()).unwrap();
    let m = &fit.model;
    let ex = m.explainer();
    let rows: Vec<usize> = (0..300).collect();
    let fast = ex.shap(&d, Some(&rows)).unwrap();
    let p = d.n_features();
    let mut x = vec![0f32; p];
    for (k, &r) in rows.iter().enumerate() {
        d.row_into(r, &mut x);
        let slow = m.shap_row(&x);
        let phi = &fast[k * p..(k + 1) * p];
        let total: f64 = phi.iter().sum::<f64>() + ex.expected_value();
        assert!((total - m.margin_row(&x)).abs() < 1e-6);
        for j in 0..p {
            assert!((phi[j] - slow[j]).abs() < 1e-9, "row {r} feature {j}");
        }
        let s2: f64 = slow.iter().sum::<f64>() + m.expected_value();
        assert!((s2 - m.margin_row(&x)).abs() < 1e-6);
    }
}

/// A row's SHAP values are the same bits whichever rows are explained with it, in batches past
/// one pattern-finding batch (`explain_rows` splits at 2^17 rows) and in groups of trees, and
/// Algorithm 2's values to rounding.
#[test]
fn shap_values_do_not_depend_on_the_batch() {
    let d = synth(3_000, 7, 11);
    // More trees than one group of `explain_rows` (16).
    let params = GbdtParams {
        n_trees: 40,
        ..small_gbdt()
    };
    let fit = fit_gbdt(&d, &params).unwrap();
    let m = &fit.model;
    assert!(m.trees.len() > 16);
    let tables = m.shap_tables();
    let p = d.n_features();
    let mut xs = vec![0f32; d.n_rows() * p];
    for (i, x) in xs.chunks_mut(p).enumerate() {
        d.row_into(i, x);
    }
    let all = tables.explain_rows(m, &xs).unwrap();
    for i in (0..d.n_rows()).step_by(37) {
        let slow = m.shap_row(&xs[i * p..(i + 1) * p]);
        for (a, b) in all[i * p..(i + 1) * p].iter().zip(&slow) {
            assert!((a - b).abs() < 1e-9, "row {i}: {a} vs Algorithm 2 {b}");
        }
        let one = tables.explain_rows(m, &xs[i * p..(i + 1) * p]).unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<u64>>();
        assert_eq!(bits(&one), bits(&all[i * p..(i + 1) * p]), "row {i}");
    }
    // 2^17 + 5 rows (the table repeated): two batches, the same values as one.
    let n = (1usize << 17) + 5;
    let big: Vec<f32> = xs.chunks(p).cycle().take(n).flatten().copied().collect();
    let phi = tables.explain_rows(m, &big).unwrap();
    for i in [0, 1, (1 << 17) - 1, 1 << 17, n - 1] {
        let r = i % d.n_rows();
        assert_eq!(phi[i * p..(i + 1) * p], all[r * p..(r + 1) * p], "row {i}");
    }
    // Another model's rows are refused.
    assert!(tables.explain_rows(m, &xs[..p - 1]).is_err());
}

/// A tree with a path through more distinct features than the tables take
/// (`MAX_TABLE_PATH_FEATURES`) is explained by Algorithm 2, inside the same batch walk.
#[test]
fn a_tree_too_deep_for_tables_is_explained_exactly() {
    use strata_models::GbdtModel;
    use strata_models::shap::MAX_TABLE_PATH_FEATURES;
    use strata_models::tree::{Leaf, Node, Split, Tree};
    // A chain: split k on feature k, left a leaf, right the next split; the last split has two
    // leaves. Covers halve down the chain.
    let depth = MAX_TABLE_PATH_FEATURES + 2;
    let mut nodes = Vec::new();
    let mut cover = 1024.0;
    for k in 0..depth {
        let here = nodes.len() as u32;
        let last = k + 1 == depth;
        nodes.push(Node::Split(Split {
            feature: k as u32,
            threshold: 0.5,
            default_left: k % 2 == 0,
            left: here + 1,
            right: here + 2,
            gain: 1.0,
            cover,
            count: cover as u64,
        }));
        nodes.push(Node::Leaf(Leaf {
            value: 0.1 * (k as f64 + 1.0) * if k % 3 == 0 { -1.0 } else { 1.0 },
            cover: cover / 2.0,
            count: (cover / 2.0) as u64,
        }));
        if last {
            nodes.push(Node::Leaf(Leaf {
                value: 0.7,
                cover: cover / 2.0,
                count: (cover / 2.0) as u64,
            }));
        }
        cover /= 2.0;
    }
    let p = depth;
    let model = GbdtModel {
        feature_names: (0..p).map(|j| format!("f{j}")).collect(),
        base_score: -1.0,
        trees: vec![Tree { nodes }],
    };
    model.validate().unwrap();
    let tables = model.shap_tables();
    assert_eq!(tables.fallback_trees(), 1);
    let mut rng = strata_models::rng::SplitMix64::new(3);
    let xs: Vec<f32> = (0..200 * p)
        .map(|_| match rng.next_f64() {
            u if u < 0.1 => f32::NAN,
            u if u < 0.3 => 0.0,
            _ => 1.0,
        })
        .collect();
    let phi = tables.explain_rows(&model, &xs).unwrap();
    for (x, ph) in xs.chunks(p).zip(phi.chunks(p)) {
        let slow = model.shap_row(x);
        assert_eq!(ph, &slow[..]);
        let total: f64 = ph.iter().sum::<f64>() + tables.expected_value();
        assert!((total - model.margin_row(x)).abs() < 1e-9);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Additivity on random tables and random hyper-parameters, to 1e-6.
    #[test]
    fn shap_additivity_random(seed in 0u64..1000, p in 2usize..6, leaves in 2usize..20, depth in 1usize..7) {
        let d = synth(800, p, seed);
        let params = GbdtParams { n_trees: 6, max_leaves: leaves, max_depth: depth, min_child_samples: 3, learning_rate: 0.3, ..GbdtParams::default() };
        let fit = fit_gbdt(&d, &params).unwrap();
        let ex = fit.model.explainer();
        let phi = ex.shap(&d, None).unwrap();
        let mut x = vec![0f32; p];
        for i in 0..d.n_rows() {
            d.row_into(i, &mut x);
            let s: f64 = phi[i * p..(i + 1) * p].iter().sum::<f64>() + ex.expected_value();
            prop_assert!((s - fit.model.margin_row(&x)).abs() < 1e-6);
        }
    }
}

#[test]
fn logistic_event_is_the_positive_class_and_contributions_add_up() {
    let d = synth(4_000, 5, 5);
    let lp = LogisticParams::default();
    let m = LogisticModel::fit(&d, &lp).unwrap();
    let flipped: Vec<u8> = d.y().iter().map(|&v| 1 - v).collect();
    let d2 = Dataset::new(d.feature_names().to_vec(), d.x().to_vec(), flipped).unwrap();
    let m2 = LogisticModel::fit(&d2, &lp).unwrap();
    for (a, b) in m.coef.iter().zip(&m2.coef) {
        assert!((a + b).abs() < 1e-8, "coef {a} vs flipped {b}");
    }
    let p = m.predict_proba(&d).unwrap();
    assert!(metrics::auroc(d.y(), &p).unwrap() > 0.6);
    let mut x = vec![0f32; d.n_features()];
    for i in 0..50 {
        d.row_into(i, &mut x);
        let c = m.contributions_row(&x);
        let s: f64 = c.iter().sum::<f64>() + m.intercept;
        assert!((s - m.margin_row(&x)).abs() < 1e-12);
        for (j, &v) in x.iter().enumerate() {
            if v.is_nan() {
                assert_eq!(c[j], 0.0);
            }
        }
    }
    let all = m.contributions(&d).unwrap();
    d.row_into(7, &mut x);
    assert_eq!(&all[7 * 5..8 * 5], m.contributions_row(&x).as_slice());
    // identical whatever the thread count
    let a = in_pool(1, || LogisticModel::fit(&d, &lp).unwrap());
    let b = in_pool(3, || LogisticModel::fit(&d, &lp).unwrap());
    assert_eq!(a, b);
}

#[test]
fn cards_round_trip_bit_identical_and_refuse_bad_models() {
    let d = synth(3_000, 4, 6);
    let cohort = Cohort {
        description: "synthetic".into(),
        window_start: "2023-04-01".into(),
        window_end: "2024-03-31".into(),
        n_rows: d.n_rows(),
        events: d.y().iter().filter(|&&v| v == 1).count(),
    };
    let lp = LogisticParams::default();
    let lm = LogisticModel::fit(&d, &lp).unwrap();
    let gp = small_gbdt();
    let gf = fit_gbdt(&d, &gp).unwrap();
    let mut lcard = ModelCard::logistic("death_12m", &lm, &lp, cohort.clone());
    let probs = lm.predict_proba(&d).unwrap();
    lcard.validation_metrics =
        Some(metrics::evaluate(d.y(), &probs, &EvalOptions::default()).unwrap());
    lcard.intended_use = "ranking patients for proactive review".into();
    let gcard = ModelCard::gbdt("death_12m", &gf, &gp, cohort);
    for card in [&lcard, &gcard] {
        let pred = card.predictor().unwrap();
        let before = pred.predict_proba(&d).unwrap();
        let json = card.to_json(true).unwrap();
        let back = ModelCard::from_json(&json).unwrap();
        assert_eq!(&back, card);
        let after = back.predictor().unwrap().predict_proba(&d).unwrap();
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let mut x = vec![0f32; 4];
        d.row_into(3, &mut x);
        let c = pred.contributions_row(&x);
        assert!((c.iter().sum::<f64>() + pred.base_value() - pred.margin_row(&x)).abs() < 1e-9);
    }
    assert!(matches!(lcard.predictor().unwrap(), Predictor::Logistic(_)));
    // save/load through a file
    let path = std::env::temp_dir().join(format!("card-{}.json", std::process::id()));
    gcard.save(&path).unwrap();
    assert_eq!(ModelCard::load(&path).unwrap(), gcard);
    std::fs::remove_file(&path).ok();
    // a tampered tree, a kind mismatch and a future version are refused
    let mut bad = gcard.clone();
    if let strata_models::ModelParams::Gbdt { trees, .. } = &mut bad.model {
        if let strata_models::tree::Node::Split(s) = &mut trees[0].nodes[0] {
            s.left = 0;
        }
    }
    assert!(matches!(
        ModelCard::from_json(&bad.to_json(false).unwrap()),
        Err(ModelError::InvalidModel(_))
    ));
    let mut bad = gcard.clone();
    bad.kind = strata_models::ModelKind::Logistic;
    assert!(ModelCard::from_json(&bad.to_json(false).unwrap()).is_err());
    let mut bad = lcard.clone();
    bad.format_version = 99;
    assert!(ModelCard::from_json(&bad.to_json(false).unwrap()).is_err());
}

#[test]
fn bootstrap_is_seeded_and_thread_independent() {
    let d = synth(3_000, 3, 7);
    let m = LogisticModel::fit(&d, &LogisticParams::default()).unwrap();
    let p = m.predict_proba(&d).unwrap();
    let a = in_pool(1, || {
        metrics::bootstrap_ci(d.y(), &p, 300, 42, 0.95).unwrap()
    });
    let b = in_pool(3, || {
        metrics::bootstrap_ci(d.y(), &p, 300, 42, 0.95).unwrap()
    });
    assert_eq!(a, b);
    let auc = metrics::auroc(d.y(), &p).unwrap();
    assert!(a.auroc.lower < auc && auc < a.auroc.upper);
    let c = metrics::bootstrap_ci(d.y(), &p, 300, 43, 0.95).unwrap();
    assert_ne!(a.auroc, c.auroc);
}

#[test]
fn metric_edge_cases() {
    assert!(matches!(
        metrics::auroc(&[1, 1], &[0.2, 0.3]),
        Err(ModelError::SingleClass(_))
    ));
    assert!(matches!(
        metrics::brier(&[1, 0], &[0.2, 1.3]),
        Err(ModelError::BadProbability { row: 1, .. })
    ));
    assert!(matches!(
        metrics::brier(&[1, 0], &[f64::NAN, 0.3]),
        Err(ModelError::BadProbability { row: 0, .. })
    ));
    assert!(metrics::brier(&[1, 0, 1], &[0.2, 0.3]).is_err());
    // all scores tied: AUROC 0.5, AP = prevalence
    let y = [1, 0, 0, 1, 0];
    let p = [0.3; 5];
    assert_eq!(metrics::auroc(&y, &p).unwrap(), 0.5);
    assert!((metrics::average_precision(&y, &p).unwrap() - 0.4).abs() < 1e-15);
    // ties at the cut-off go to the lower row index
    let t = metrics::top_fraction(&[0, 1, 0, 1], &[0.5, 0.5, 0.5, 0.1], 0.5).unwrap();
    assert_eq!((t.flagged, t.events_flagged), (2, 1));
    // fewer rows than groups: empty groups have no mean
    let tab = metrics::calibration_table(&[0, 1, 0], &[0.1, 0.2, 0.3], 10).unwrap();
    assert_eq!(tab.iter().filter(|g| g.n == 0).count(), 7);
    assert!(tab.iter().all(|g| (g.n == 0) == g.mean_predicted.is_none()));
    // a perfectly calibrated prediction has intercept ~0 and slope ~1
    let mut rng = SplitMix64::new(3);
    let p: Vec<f64> = (0..20_000).map(|_| 0.02 + 0.5 * rng.next_f64()).collect();
    let y: Vec<u8> = p.iter().map(|&q| u8::from(rng.next_f64() < q)).collect();
    let c = metrics::calibration(&y, &p).unwrap();
    assert!(
        c.intercept.abs() < 0.1 && (c.slope - 1.0).abs() < 0.1,
        "{c:?}"
    );
}

#[test]
fn dataset_refuses_infinities_and_fit_refuses_single_class() {
    let names = vec!["a".to_string()];
    assert!(Dataset::new(names.clone(), vec![1.0, f32::INFINITY], vec![0, 1]).is_err());
    let d = Dataset::new(names, vec![1.0, 2.0, 3.0], vec![0, 0, 0]).unwrap();
    assert!(matches!(
        fit_gbdt(&d, &GbdtParams::default()),
        Err(ModelError::SingleClass(_))
    ));
    assert!(matches!(
        LogisticModel::fit(&d, &LogisticParams::default()),
        Err(ModelError::SingleClass(_))
    ));
    let bad = GbdtParams {
        max_bins: 300,
        ..GbdtParams::default()
    };
    let d = synth(100, 2, 1);
    assert!(matches!(fit_gbdt(&d, &bad), Err(ModelError::Param { .. })));
}

#[test]
fn top_factors_are_positive_and_ordered() {
    let f = strata_models::explain::top_factors(&[0.1, -0.5, 0.3, 0.3, 0.0], 3);
    let idx: Vec<usize> = f.iter().map(|x| x.feature).collect();
    assert_eq!(idx, vec![2, 3, 0]);
}

/// A monotone constraint holds for every row: with feature 1 (which enters through an
/// interaction, rising for some rows and falling for others) constrained to never raise the
/// prediction, moving it from its lowest to its highest value never raises any row's margin;
/// without the constraint some rows rise. The constraint is recorded on the card.
#[test]
fn a_monotone_constraint_holds_for_every_row() {
    let d = synth(20_000, 4, 3);
    let name = d.feature_names()[1].clone();
    let free = fit_gbdt(&d, &small_gbdt()).unwrap().model;
    let constrained = GbdtParams {
        monotone: vec![(name.clone(), -1)],
        ..small_gbdt()
    };
    let fit = fit_gbdt(&d, &constrained).unwrap();
    let m = &fit.model;
    let (mut rises_free, mut checked) = (0, 0);
    for i in 0..d.n_rows() {
        let mut row: Vec<f32> = (0..4).map(|j| d.get(i, j)).collect();
        row[1] = -2.0;
        let (lo, lo_free) = (m.margin_row(&row), free.margin_row(&row));
        row[1] = 2.0;
        let (hi, hi_free) = (m.margin_row(&row), free.margin_row(&row));
        assert!(hi <= lo + 1e-12, "row {i}: {lo} -> {hi}");
        rises_free += (hi_free > lo_free + 1e-9) as usize;
        checked += 1;
    }
    assert!(checked == 20_000 && rises_free > 100, "{rises_free}");
    let card = ModelCard::gbdt(
        "y",
        &fit,
        &constrained,
        Cohort {
            description: "test".into(),
            window_start: "2024-01-01".into(),
            window_end: "2024-12-31".into(),
            n_rows: d.n_rows(),
            events: 0,
        },
    );
    assert!(card.to_json(false).unwrap().contains("\"monotone\""));
    let bad = GbdtParams {
        monotone: vec![("nope".into(), 1)],
        ..small_gbdt()
    };
    assert!(fit_gbdt(&d, &bad).is_err());
}

/// `--model auto` keeps the trees where the risk is non-linear (thresholds, an interaction) and
/// the logistic model where it is linear, judged on rows neither was fitted on.
#[test]
fn auto_keeps_trees_for_a_non_linear_risk_and_logistic_for_a_linear_one() {
    let n = 30_000;
    let mut rng = SplitMix64::new(11);
    let mut x = vec![0f32; n * 3];
    for v in x.iter_mut() {
        *v = (rng.next_f64() * 4.0 - 2.0) as f32;
    }
    let col = |x: &[f32], j: usize, i: usize| f64::from(x[j * n + i]);
    let draw =
        |eta: f64, rng: &mut SplitMix64| u8::from(rng.next_f64() < 1.0 / (1.0 + (-eta).exp()));
    let names: Vec<String> = (0..3).map(|j| format!("x{j}")).collect();
    // Non-linear: a threshold and an interaction, nothing a straight line in x can follow.
    let y_nl: Vec<u8> = (0..n)
        .map(|i| {
            let (a, b) = (col(&x, 0, i), col(&x, 1, i));
            let eta =
                -1.5 + if a.abs() > 1.0 { 2.0 } else { 0.0 } + if a * b > 0.5 { 1.5 } else { 0.0 };
            draw(eta, &mut rng)
        })
        .collect();
    let y_lin: Vec<u8> = (0..n)
        .map(|i| draw(-1.0 + 0.8 * col(&x, 0, i) - 0.5 * col(&x, 2, i), &mut rng))
        .collect();
    let gp = GbdtParams::default();
    let lp = LogisticParams::default();
    let nl = Dataset::new(names.clone(), x.clone(), y_nl).unwrap();
    let fit = strata_models::select::fit_auto(&nl, &lp, &gp).unwrap();
    assert!(
        matches!(fit.chosen, strata_models::select::Chosen::Gbdt(_)),
        "{}",
        fit.note()
    );
    assert!(fit.gbdt.auroc > fit.logistic.auroc + 0.05, "{}", fit.note());
    // Against the truth: the true probability's AUROC on the same held-out rows (every 5th).
    let truth_p: Vec<f64> = (0..n)
        .filter(|i| i % 5 == 4)
        .map(|i| {
            let (a, b) = (col(&x, 0, i), col(&x, 1, i));
            let eta: f64 =
                -1.5 + if a.abs() > 1.0 { 2.0 } else { 0.0 } + if a * b > 0.5 { 1.5 } else { 0.0 };
            1.0 / (1.0 + (-eta).exp())
        })
        .collect();
    let held_y: Vec<u8> = (0..n).filter(|i| i % 5 == 4).map(|i| nl.y()[i]).collect();
    let truth = metrics::auroc(&held_y, &truth_p).unwrap();
    println!(
        "non-linear risk, held-out AUROC: truth {truth:.4}, gbdt {:.4}, logistic {:.4}",
        fit.gbdt.auroc, fit.logistic.auroc
    );
    assert!(truth - fit.gbdt.auroc < 0.02, "{truth} {}", fit.note());
    let lin = Dataset::new(names, x, y_lin).unwrap();
    let fit = strata_models::select::fit_auto(&lin, &lp, &gp).unwrap();
    assert!(
        matches!(fit.chosen, strata_models::select::Chosen::Logistic(_)),
        "{}",
        fit.note()
    );
}
