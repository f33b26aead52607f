//! `strata compare`: models and predictions side by side with the eFI and the HFRS alone, each
//! with the figures `strata evaluate` gives; the scores ranked as themselves and recalibrated on
//! the training window.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::evaluation;
use strata::input::LoadOptions;
use strata::predictors::Outcome;
use strata_models::metrics;

const TODAY: &str = "2026-11-25";
const TRAINING_AS_OF: &str = "2024-04-01";

fn cohort_dir() -> PathBuf {
    fixtures().join("cohort-2000")
}

fn run_ok(args: &[&str]) -> String {
    let o = strata(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn load() -> Cohort {
    let opts = LoadOptions {
        today: days(TODAY),
        ..Default::default()
    };
    Cohort::load(&cohort_dir(), &opts).unwrap()
}

fn train(dir: &Path, outcome: &str) -> PathBuf {
    let card = dir.join(format!("{outcome}.json"));
    run_ok(&[
        "train",
        "--cohort",
        cohort_dir().to_str().unwrap(),
        "--outcome",
        outcome,
        "--as-of",
        AS_OF,
        "--today",
        TODAY,
        "--out",
        card.to_str().unwrap(),
    ]);
    card
}

fn compare_args<'a>(extra: &[&'a str], cohort: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "compare", "--cohort", cohort, "--as-of", AS_OF, "--today", TODAY,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn compare_lists_models_predictions_and_the_scores_alone_like_evaluate() {
    let d = tempfile::tempdir().unwrap();
    let card = train(d.path(), "emergency_admission");
    let cohort = load();
    let defs = definitions();
    let c = strata::risk::load_card(&card, &defs).unwrap();
    let outcome = c.outcome;
    assert_eq!(outcome, Outcome::EmergencyAdmission);
    let w = evaluation::window(&cohort, &defs, days(AS_OF), outcome).unwrap();
    let p = evaluation::card_probabilities(&c, &w);
    // The same probabilities as a predictions file, rounded to 3 decimals (as a researcher's
    // CSV-to-Parquet round trip might): different figures, same patients.
    let preds = d.path().join("rounded.parquet");
    let ids: Vec<&str> = w
        .table
        .patients
        .iter()
        .map(|&i| cohort.patients.id[i as usize].as_str())
        .collect();
    let rounded: Vec<f64> = p.iter().map(|v| (v * 1000.0).round() / 1000.0).collect();
    write_parquet(
        &preds,
        DataFrame::new(
            ids.len(),
            vec![
                Column::new("patient_id".into(), ids),
                Column::new("probability".into(), rounded.clone()),
            ],
        )
        .unwrap(),
    );
    let dir = cohort_dir();
    let dir = dir.to_str().unwrap();
    let svg_path = d.path().join("compare.svg");
    let out: serde_json::Value = serde_json::from_str(&run_ok(&compare_args(
        &[
            "--model",
            card.to_str().unwrap(),
            "--predictions",
            preds.to_str().unwrap(),
            "--json",
            "--plot",
            svg_path.to_str().unwrap(),
        ],
        dir,
    )))
    .unwrap();
    assert_eq!(out["outcome"], "emergency_admission");
    assert_eq!(out["training_as_of"], TRAINING_AS_OF);
    let rows = out["predictors"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "emergency_admission.json",
            "rounded.parquet",
            "eFI alone",
            "HFRS alone"
        ]
    );

    // The model's row is exactly what `strata evaluate` reports.
    let e: serde_json::Value = serde_json::from_str(&run_ok(&[
        "evaluate",
        "--cohort",
        dir,
        "--model",
        card.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--today",
        TODAY,
        "--json",
    ]))
    .unwrap();
    assert_eq!(rows[0]["overall"], e["overall"]);
    assert_eq!(rows[0]["groups"], e["groups"]);
    // The predictions' row is the metrics of the rounded probabilities.
    let y = w.labels();
    assert_eq!(
        rows[1]["overall"]["auroc"].as_f64().unwrap(),
        metrics::auroc(y, &rounded).unwrap()
    );
    assert_eq!(
        rows[1]["overall"]["brier"].as_f64().unwrap(),
        metrics::brier(y, &rounded).unwrap()
    );

    // What each adds over the eFI alone: the difference of the AUROCs, with a paired interval
    // around it; none for the eFI itself.
    let efi_auroc = rows[2]["overall"]["auroc"].as_f64().unwrap();
    for r in [&rows[0], &rows[1], &rows[3]] {
        let d = &r["auroc_minus_efi"];
        let diff = d["difference"].as_f64().unwrap();
        assert!((diff - (r["overall"]["auroc"].as_f64().unwrap() - efi_auroc)).abs() < 1e-12);
        assert!(d["interval"]["lower"].as_f64().unwrap() <= diff);
        assert!(diff <= d["interval"]["upper"].as_f64().unwrap());
    }
    assert!(rows[2].get("auroc_minus_efi").is_none());

    // The scores alone: ranking figures from the score itself, calibration figures from the
    // recalibration fitted on the training window (a year earlier) and applied unchanged.
    let train_w = evaluation::window(&cohort, &defs, days(TRAINING_AS_OF), outcome).unwrap();
    for (row, column) in [(&rows[2], "efi_score"), (&rows[3], "hfrs_score")] {
        let score = w.feature(column).unwrap();
        let scaled: Vec<f64> = score.iter().map(|s| s / (1.0 + s)).collect();
        assert_eq!(
            row["overall"]["auroc"].as_f64().unwrap(),
            metrics::auroc(y, &scaled).unwrap(),
            "{column}"
        );
        assert_eq!(
            row["overall"]["auprc"].as_f64().unwrap(),
            metrics::average_precision(y, &scaled).unwrap(),
            "{column}"
        );
        let r = metrics::Recalibration::fit(&train_w.feature(column).unwrap(), train_w.labels())
            .unwrap();
        assert!(r.slope > 0.0, "{column}: {r:?}");
        assert_eq!(row["recalibration"]["slope"].as_f64().unwrap(), r.slope);
        let p = r.apply(&score);
        assert_eq!(
            row["overall"]["brier"].as_f64().unwrap(),
            metrics::brier(y, &p).unwrap(),
            "{column}"
        );
        assert_eq!(
            row["overall"]["calibration"]["slope"].as_f64().unwrap(),
            metrics::calibration(y, &p).unwrap().slope,
            "{column}"
        );
        assert!(row["calibration"]
            .as_str()
            .unwrap()
            .contains("fitted on the training window (as-of 2024-04-01"));
        let groups = row["groups"].as_array().unwrap();
        for g in ["core20", "rest"] {
            assert!(
                groups.iter().any(|x| x["dimension"] == "core20"
                    && x["group"] == g
                    && x["metrics"]["auroc"].is_f64()),
                "{column} {g}"
            );
        }
    }

    // One line of ten deciles per predictor in the plot.
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(svg.matches(r#"class="series""#).count(), 4);
    assert_eq!(svg.matches(r#"class="point""#).count(), 40);
    for name in names {
        assert!(svg.contains(&format!(r#"data-label="{name}""#)), "{name}");
    }
    assert!(svg.trim_end().ends_with("</svg>"));

    // The readable table: a header and one row per predictor with its AUROC.
    let table = run_ok(&compare_args(&["--model", card.to_str().unwrap()], dir));
    assert!(
        table.contains("AUROC [95% CI]") && table.contains("Core20"),
        "{table}"
    );
    for (name, row) in [
        ("emergency_admission.json", &rows[0]),
        ("eFI alone", &rows[2]),
        ("HFRS alone", &rows[3]),
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{table}"));
        let auroc = format!("{:.3}", row["overall"]["auroc"].as_f64().unwrap());
        assert!(line.contains(&auroc), "{line} lacks {auroc}");
    }
    assert!(
        table.contains("eFI alone: probability = logistic("),
        "{table}"
    );
}

#[test]
fn compare_needs_one_outcome() {
    let d = tempfile::tempdir().unwrap();
    let dir = cohort_dir();
    let dir = dir.to_str().unwrap();
    // The scores alone, for an outcome given on the command line.
    let out: serde_json::Value = serde_json::from_str(&run_ok(&compare_args(
        &["--outcome", "death", "--json"],
        dir,
    )))
    .unwrap();
    let names: Vec<&str> = out["predictors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eFI alone", "HFRS alone"]);
    assert_eq!(out["outcome"], "death");
    // No card and no --outcome; a card of another outcome.
    let o = strata(&compare_args(&[], dir));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let card = train(d.path(), "emergency_admission");
    let o = strata(&compare_args(
        &["--model", card.to_str().unwrap(), "--outcome", "death"],
        dir,
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("predicts emergency_admission, not death"));
}
