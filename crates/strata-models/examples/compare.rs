//! Rust side of the benchmark: `python py/compare.py` first (writes the table and Python's
//! figures), then
//!
//! ```sh
//! cargo run --release --example compare -- [/work/scratch/data]
//! ```
//!
//! Reads `bench.bin`, splits 80/20 by row order, fits the logistic model (l2 = 1e-4, the same
//! penalty as Python's C) and the GBDT (300 rounds, lr 0.1, depth 6, 63 leaves, 255 bins), reports
//! fit seconds, test AUROC/Brier, TreeSHAP time for 10,000 test rows, and prints Python's figures
//! alongside. Also saves and reloads both model cards and checks predictions are bit-identical.

use std::time::Instant;
use strata_models::card::Cohort;
use strata_models::metrics::{self, EvalOptions};
use strata_models::{Dataset, GbdtParams, LogisticModel, LogisticParams, ModelCard, fit_gbdt};

/// Process CPU seconds (user + system, all threads) from /proc/self/stat: on a shared machine
/// this says how much work was done, wall time how long it took.
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/scratch/data".into());
    let dir = std::path::Path::new(&dir);
    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let data = Dataset::read_raw(&dir.join("bench.bin"))?;
    println!(
        "read {} x {} in {:.2}s ({} rayon threads)",
        data.n_rows(),
        data.n_features(),
        t.elapsed().as_secs_f64(),
        threads
    );
    let ntr = data.n_rows() * 8 / 10;
    let (train, test) = data.split_at(ntr)?;
    drop(data);
    let yte = test.y().to_vec();
    let mut out = serde_json::Map::new();

    // logistic
    let lp = LogisticParams {
        l2: 1e-4,
        ..LogisticParams::default()
    };
    println!("load average before fits: {}", loadavg());
    out.insert("load_before".into(), loadavg().into());
    let t = Instant::now();
    let c0 = cpu();
    let lm = LogisticModel::fit(&train, &lp)?;
    let lr_fit = t.elapsed().as_secs_f64();
    let lr_cpu = cpu() - c0;
    let p_lr = lm.predict_proba(&test)?;
    let lr_auc = metrics::auroc(&yte, &p_lr)?;
    let lr_brier = metrics::brier(&yte, &p_lr)?;
    println!(
        "rust logistic: fit {lr_fit:.2}s (cpu {lr_cpu:.1}s, {} Newton iterations), test AUROC {lr_auc:.4}, Brier {lr_brier:.4}",
        lm.iterations
    );

    // gbdt
    let gp = GbdtParams::default();
    let t = Instant::now();
    let c0 = cpu();
    let fit = fit_gbdt(&train, &gp)?;
    let gb_fit = t.elapsed().as_secs_f64();
    let gb_cpu = cpu() - c0;
    let t = Instant::now();
    let p_gb = fit.model.predict_proba(&test)?;
    let gb_pred = t.elapsed().as_secs_f64();
    let gb_auc = metrics::auroc(&yte, &p_gb)?;
    let gb_brier = metrics::brier(&yte, &p_gb)?;
    let leaves: usize = fit
        .model
        .trees
        .iter()
        .map(|t| t.nodes.len().div_ceil(2))
        .sum();
    println!(
        "rust gbdt: fit {gb_fit:.2}s (cpu {gb_cpu:.1}s, incl. binning), predict {} rows {gb_pred:.2}s, test AUROC {gb_auc:.4}, Brier {gb_brier:.4}, mean leaves/tree {:.1}",
        test.n_rows(),
        leaves as f64 / fit.model.trees.len() as f64
    );

    // TreeSHAP on 10k test rows
    let rows: Vec<usize> = (0..10_000.min(test.n_rows())).collect();
    let t = Instant::now();
    let ex = fit.model.explainer();
    let tables_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let c0 = cpu();
    let phi = ex.shap(&test, Some(&rows))?;
    let shap_s = t.elapsed().as_secs_f64();
    let shap_cpu = cpu() - c0;
    println!(
        "TreeSHAP tables: {tables_s:.2}s, {} MB",
        ex.table_bytes() >> 20
    );
    let p = test.n_features();
    let ev = fit.model.expected_value();
    let mut worst = 0.0f64;
    let mut buf = vec![0f32; p];
    for (k, &r) in rows.iter().enumerate() {
        test.row_into(r, &mut buf);
        let s: f64 = phi[k * p..(k + 1) * p].iter().sum::<f64>() + ev;
        worst = worst.max((s - fit.model.margin_row(&buf)).abs());
    }
    println!(
        "rust TreeSHAP: {} rows in {shap_s:.2}s (cpu {shap_cpu:.2}s) = {:.0} us/row wall, {:.0} us/row cpu; max |sum(phi) + E - margin| = {worst:.2e}",
        rows.len(),
        shap_s / rows.len() as f64 * 1e6,
        shap_cpu / rows.len() as f64 * 1e6
    );
    // Algorithm 2 directly, on 1,000 rows, for comparison
    let t = Instant::now();
    let slow: Vec<Vec<f64>> = {
        use rayon::prelude::*;
        rows[..1000]
            .par_iter()
            .map(|&r| {
                let mut b = vec![0f32; p];
                test.row_into(r, &mut b);
                fit.model.shap_row(&b)
            })
            .collect()
    };
    let alg2 = t.elapsed().as_secs_f64();
    let diff = slow
        .iter()
        .enumerate()
        .flat_map(|(k, s)| s.iter().enumerate().map(move |(j, v)| (k, j, v)))
        .map(|(k, j, v)| (v - phi[k * p + j]).abs())
        .fold(0.0f64, f64::max);
    println!(
        "Algorithm 2 (recursive): 1000 rows in {alg2:.2}s = {:.0} us/row wall; max |fast - algorithm 2| = {diff:.1e}",
        alg2 / 1000.0 * 1e6
    );

    // full evaluation with bootstrap, on the GBDT
    let t = Instant::now();
    let m = metrics::evaluate(&yte, &p_gb, &EvalOptions::default())?;
    println!(
        "evaluate (200 bootstrap resamples) {:.2}s: AUPRC {:.4}, cal. slope {:.3}, AUROC 95% CI {:.4}-{:.4}",
        t.elapsed().as_secs_f64(),
        m.auprc,
        m.calibration.slope,
        m.bootstrap.as_ref().map_or(f64::NAN, |b| b.auroc.lower),
        m.bootstrap.as_ref().map_or(f64::NAN, |b| b.auroc.upper)
    );

    // model cards: save, reload, bit-identical predictions
    let cohort = Cohort {
        description: "synthetic benchmark table (py/compare.py)".into(),
        window_start: "2024-04-01".into(),
        window_end: "2024-04-01".into(),
        n_rows: train.n_rows(),
        events: train.y().iter().filter(|&&v| v == 1).count(),
    };
    for (name, mut card, probs) in [
        (
            "logistic",
            ModelCard::logistic("emergency_admission_12m", &lm, &lp, cohort.clone()),
            &p_lr,
        ),
        (
            "gbdt",
            ModelCard::gbdt("emergency_admission_12m", &fit, &gp, cohort.clone()),
            &p_gb,
        ),
    ] {
        if name == "gbdt" {
            card.validation_metrics = Some(m.clone());
        }
        let path = dir.join(format!("card_{name}.json"));
        card.save(&path)?;
        let t = Instant::now();
        let back = ModelCard::load(&path)?;
        let load_s = t.elapsed().as_secs_f64();
        let again = back.predictor()?.predict_proba(&test)?;
        let same = again
            .iter()
            .zip(probs.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        let size = std::fs::metadata(&path)?.len();
        println!(
            "card {name}: {size} bytes, load {load_s:.3}s, reloaded predictions bit-identical: {same}"
        );
    }

    // Python's figures
    let pyres: Option<serde_json::Value> =
        std::fs::read_to_string(dir.join(format!("python_results_{threads}t.json")))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
    if let Some(py) = &pyres {
        let coef: Vec<f64> = py["sklearn_logistic"]["coef"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        let diff = coef
            .iter()
            .zip(&lm.coef)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        println!("max |coef rust - coef sklearn| = {diff:.2e} (sklearn tol 1e-6)");
        println!("\n| model | fit s | test AUROC | Brier | SHAP 10k rows s |");
        println!("|---|---|---|---|---|");
        println!(
            "| ceiling (true observed logit) | - | {:.4} | | |",
            py["ceiling_test_auroc"].as_f64().unwrap_or(f64::NAN)
        );
        let s = &py["sklearn_logistic"];
        println!(
            "| scikit-learn LogisticRegression lbfgs | {:.2} (+{:.2} standardise) | {:.4} | {:.4} | |",
            s["fit_s"].as_f64().unwrap_or(f64::NAN),
            s["standardise_s"].as_f64().unwrap_or(f64::NAN),
            s["auroc"].as_f64().unwrap_or(f64::NAN),
            s["brier"].as_f64().unwrap_or(f64::NAN)
        );
        println!("| rust logistic (Newton) | {lr_fit:.2} | {lr_auc:.4} | {lr_brier:.4} | |");
        let l = &py["lightgbm"];
        println!(
            "| LightGBM | {:.2} (+{:.2} binning) | {:.4} | {:.4} | {:.2} |",
            l["fit_s"].as_f64().unwrap_or(f64::NAN),
            l["binning_s"].as_f64().unwrap_or(f64::NAN),
            l["auroc"].as_f64().unwrap_or(f64::NAN),
            l["brier"].as_f64().unwrap_or(f64::NAN),
            l["shap_10k_s"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "| rust gbdt | {gb_fit:.2} (incl. binning) | {gb_auc:.4} | {gb_brier:.4} | {shap_s:.2} |"
        );
    }
    println!("load average after: {}", loadavg());
    out.insert("load_after".into(), loadavg().into());
    out.insert("rust_logistic_cpu_s".into(), lr_cpu.into());
    out.insert("rust_gbdt_cpu_s".into(), gb_cpu.into());
    out.insert("rust_logistic_auroc".into(), lr_auc.into());
    out.insert("rust_logistic_fit_s".into(), lr_fit.into());
    out.insert("rust_gbdt_fit_s".into(), gb_fit.into());
    out.insert("rust_gbdt_auroc".into(), gb_auc.into());
    out.insert("rust_shap_10k_s".into(), shap_s.into());
    std::fs::write(
        dir.join(format!("rust_results_{threads}t.json")),
        serde_json::to_string_pretty(&out)?,
    )?;
    Ok(())
}
