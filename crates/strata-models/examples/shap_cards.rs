//! Timing of exact TreeSHAP for a tree card on an feature table (not part of the
//! comparison): `cargo run --release --example shap_cards -- CARD.json ROWS.f32`, rows of the
//! card's features as little-endian f32, row-major (exported with pyarrow).

use std::time::Instant;
use strata_models::Predictor;
use strata_models::card::ModelCard;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let card = ModelCard::from_json(&std::fs::read_to_string(&a[0])?)?;
    let Predictor::Gbdt(model) = card.predictor()? else {
        return Err("not a tree card".into());
    };
    let raw = std::fs::read(&a[1])?;
    let all: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let t = Instant::now();
    let tables = model.shap_tables();
    println!(
        "{} trees: tables {:.3}s, {:.1} MB, {} trees by Algorithm 2",
        model.trees.len(),
        t.elapsed().as_secs_f64(),
        tables.table_bytes() as f64 / 1e6,
        tables.fallback_trees()
    );
    let p = model.feature_names.len();
    let xs = all;
    let n = xs.len() / p;
    let t = Instant::now();
    let phi = tables.explain_rows(&model, &xs)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} rows {s:.3}s = {:.2} us/row wall ({} threads)",
        s / n as f64 * 1e6,
        rayon::current_num_threads()
    );
    let mut worst = 0f64;
    for (x, ph) in xs.chunks(p).zip(phi.chunks(p)).take(2000) {
        let d = ph.iter().sum::<f64>() + tables.expected_value() - model.margin_row(x);
        worst = worst.max(d.abs());
    }
    println!("max |sum(phi) + E - margin| over 2000 rows = {worst:.2e}");
    Ok(())
}
