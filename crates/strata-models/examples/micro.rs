//! Small timing harness used while optimising (not part of the comparison):
//! `cargo run --release --example micro -- ROWS TREES SHAP_ROWS`.

use std::time::Instant;
use strata_models::rng::SplitMix64;
use strata_models::{Dataset, GbdtParams, LogisticModel, LogisticParams, fit_gbdt};

/// Process CPU seconds (user + system) from /proc/self/stat, to see through a busy machine.
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let (n, trees, shap_rows) = (
        a.first().copied().unwrap_or(200_000),
        a.get(1).copied().unwrap_or(50),
        a.get(2).copied().unwrap_or(1000),
    );
    let p = 60;
    let mut rng = SplitMix64::new(1);
    let mut x = vec![0f32; n * p];
    for j in 0..p {
        for i in 0..n {
            let u = rng.next_f64();
            x[j * n + i] = if u < 0.05 {
                f32::NAN
            } else if j % 3 == 0 {
                (u * 10.0).floor() as f32
            } else {
                (u * 3.0 - 1.5) as f32
            };
        }
    }
    let y: Vec<u8> = (0..n)
        .map(|i| {
            let v = |j: usize| {
                let t = x[j * n + i];
                if t.is_nan() { 0.0 } else { f64::from(t) }
            };
            let eta =
                -3.0 + 0.3 * v(0) + v(1) * v(2) + (v(4) > 0.5) as i32 as f64 + 0.5 * v(7).sin();
            u8::from(rng.next_f64() < 1.0 / (1.0 + (-eta).exp()))
        })
        .collect();
    let data = match std::env::var("BENCH") {
        Ok(path) => {
            let d = Dataset::read_raw(std::path::Path::new(&path))?;
            d.split_at(n.min(d.n_rows()))?.0
        }
        Err(_) => Dataset::new((0..p).map(|j| format!("f{j}")).collect(), x, y)?,
    };
    let p = data.n_features();
    let t = Instant::now();
    let lm = LogisticModel::fit(&data, &LogisticParams::default())?;
    println!(
        "logistic {:.3}s ({} it)",
        t.elapsed().as_secs_f64(),
        lm.iterations
    );
    let c0 = cpu();
    let t = Instant::now();
    let fit = fit_gbdt(
        &data,
        &GbdtParams {
            n_trees: trees,
            ..GbdtParams::default()
        },
    )?;
    println!(
        "gbdt {} trees {:.3}s (cpu {:.2}s)",
        trees,
        t.elapsed().as_secs_f64(),
        cpu() - c0
    );
    let rows: Vec<usize> = (0..shap_rows).collect();
    let t = Instant::now();
    let ex = fit.model.explainer();
    println!(
        "explainer tables {:.3}s, {} MB",
        t.elapsed().as_secs_f64(),
        ex.table_bytes() >> 20
    );
    let t = Instant::now();
    let c0 = cpu();
    let fast = ex.shap(&data, Some(&rows))?;
    let s = t.elapsed().as_secs_f64();
    println!("  (cpu {:.3}s)", cpu() - c0);
    println!(
        "fast shap {} rows {:.3}s = {:.1} us/row ({:.3} us/row/tree)",
        shap_rows,
        s,
        s / shap_rows as f64 * 1e6,
        s / shap_rows as f64 * 1e6 / trees as f64
    );
    let mut worst = 0.0f64;
    let mut buf = vec![0f32; p];
    for (k, &r) in rows.iter().enumerate().take(200) {
        data.row_into(r, &mut buf);
        let slow = fit.model.shap_row(&buf);
        for j in 0..p {
            worst = worst.max((slow[j] - fast[k * p + j]).abs());
        }
    }
    println!("max |fast - algorithm 2| = {worst:.2e}");
    let t = Instant::now();
    for &r in &rows {
        data.row_into(r, &mut buf);
        let _ = fit.model.shap_row(&buf);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "shap {} rows {:.3}s = {:.1} us/row ({:.2} us/row/tree)",
        shap_rows,
        s,
        s / shap_rows as f64 * 1e6,
        s / shap_rows as f64 * 1e6 / trees as f64
    );
    Ok(())
}
