//! Agreement with the reference Python implementations (fixtures written by py/make_fixtures.py).

use serde_json::Value;
use strata_models::metrics::{self, EvalOptions};
use strata_models::{Dataset, LogisticModel, LogisticParams, Tree};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn rows_f32(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32))
                .collect()
        })
        .collect()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol,
        "{what}: rust {a} vs python {b} (tol {tol})"
    );
}

#[test]
fn metrics_match_sklearn_and_statsmodels() {
    let fx = load("metrics.json");
    for (k, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let y: Vec<u8> = case["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let p = f64s(&case["p"]);
        let opts = EvalOptions {
            bootstrap_resamples: 0,
            ..EvalOptions::default()
        };
        let m = metrics::evaluate(&y, &p, &opts).unwrap();
        let c = |f: &str| case[f].as_f64().unwrap();
        close(m.auroc, c("auroc"), 1e-12, &format!("case {k} auroc"));
        close(m.auprc, c("auprc"), 1e-12, &format!("case {k} auprc"));
        close(m.brier, c("brier"), 1e-12, &format!("case {k} brier"));
        close(
            m.log_loss,
            c("log_loss"),
            1e-12,
            &format!("case {k} log_loss"),
        );
        close(
            m.calibration.intercept,
            c("calibration_intercept"),
            1e-8,
            "cal intercept",
        );
        close(
            m.calibration.slope,
            c("calibration_slope"),
            1e-8,
            "cal slope",
        );
        // the stand-alone functions agree with evaluate()
        assert_eq!(metrics::auroc(&y, &p).unwrap(), m.auroc);
        assert_eq!(metrics::average_precision(&y, &p).unwrap(), m.auprc);
        for (got, want) in m
            .calibration_table
            .iter()
            .zip(case["calibration_table"].as_array().unwrap())
        {
            assert_eq!(got.n as u64, want["n"].as_u64().unwrap());
            assert_eq!(got.events as u64, want["events"].as_u64().unwrap());
            close(
                got.mean_predicted.unwrap(),
                want["mean_predicted"].as_f64().unwrap(),
                1e-12,
                "decile mean",
            );
            close(
                got.observed_rate.unwrap(),
                want["observed_rate"].as_f64().unwrap(),
                1e-12,
                "decile rate",
            );
        }
        for (got, want) in m.top.iter().zip(case["top"].as_array().unwrap()) {
            assert_eq!(got.flagged as u64, want["flagged"].as_u64().unwrap());
            assert_eq!(
                got.events_flagged as u64,
                want["events_flagged"].as_u64().unwrap()
            );
            close(
                got.sensitivity,
                want["sensitivity"].as_f64().unwrap(),
                1e-12,
                "sensitivity",
            );
            close(got.ppv, want["ppv"].as_f64().unwrap(), 1e-12, "ppv");
        }
    }
}

#[test]
fn logistic_matches_sklearn_lbfgs() {
    let fx = load("logistic.json");
    let rows = rows_f32(&fx["x_row_major"]);
    let p = rows[0].len();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let y: Vec<u8> = fx["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let names = (0..p).map(|j| format!("x{j}")).collect();
    let data = Dataset::from_row_major(names, &flat, y).unwrap();
    let n = data.n_rows();
    for fit in fx["fits"].as_array().unwrap() {
        let l2 = fit["l2"].as_f64().unwrap();
        let c = fit["C"].as_f64().unwrap();
        let params = LogisticParams::from_sklearn_c(c, n);
        close(params.l2, l2, 1e-18, "C -> l2 mapping");
        let m = LogisticModel::fit(&data, &params).unwrap();
        for j in 0..p {
            close(m.mean[j], f64s(&fx["mean"])[j], 1e-12, "mean");
            close(m.sd[j], f64s(&fx["sd"])[j], 1e-12, "sd");
        }
        // sklearn's lbfgs stops at tol 1e-12 on its own (sum-loss) scale: agreement to ~1e-6.
        close(
            m.intercept,
            fit["intercept"].as_f64().unwrap(),
            1e-6,
            "intercept",
        );
        for (a, b) in m.coef.iter().zip(f64s(&fit["coef"])) {
            close(*a, b, 1e-6, &format!("coef (l2 = {l2})"));
        }
        let proba = m.predict_proba(&data).unwrap();
        for (a, b) in proba.iter().zip(f64s(&fit["proba"])) {
            close(*a, b, 1e-7, "probability");
        }
    }
}

#[test]
fn tree_shap_matches_lightgbm_pred_contrib() {
    let fx = load("shap_lgbm.json");
    let nf = fx["n_features"].as_u64().unwrap() as usize;
    let trees: Vec<Tree> = serde_json::from_value(fx["trees"].clone()).unwrap();
    let model = strata_models::GbdtModel {
        feature_names: (0..nf).map(|j| format!("f{j}")).collect(),
        base_score: 0.0,
        trees,
    };
    model.validate().unwrap();
    let rows = rows_f32(&fx["x_row_major"]);
    let raw = f64s(&fx["raw"]);
    let contrib = fx["contrib"].as_array().unwrap();
    let ev = model.expected_value();
    for (i, row) in rows.iter().enumerate() {
        close(model.margin_row(row), raw[i], 1e-12, "raw score");
        let phi = model.shap_row(row);
        let want = f64s(&contrib[i]);
        for j in 0..nf {
            close(phi[j], want[j], 1e-9, &format!("row {i} feature {j} shap"));
        }
        close(ev, want[nf], 1e-9, "expected value");
    }
}
