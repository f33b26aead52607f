//! `strata evaluate --predictions`: predictions made elsewhere get exactly the figures of the
//! model that made them; bad files are refused naming file, column and rows; `--plot` writes the
//! calibration deciles as SVG.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::evaluation;
use strata::input::LoadOptions;
use strata::predictors::Outcome;

const TODAY: &str = "2026-11-25";

fn cohort_dir() -> PathBuf {
    fixtures().join("cohort-2000")
}

fn run_ok(args: &[&str]) -> String {
    let o = strata(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Train a logistic card on the fixture cohort.
fn train(dir: &Path) -> PathBuf {
    let card = dir.join("logistic.json");
    run_ok(&[
        "train",
        "--cohort",
        cohort_dir().to_str().unwrap(),
        "--outcome",
        "emergency_admission",
        "--as-of",
        AS_OF,
        "--today",
        TODAY,
        "--out",
        card.to_str().unwrap(),
    ]);
    card
}

/// The card's probabilities on the window at [`AS_OF`], computed with the library: (patient id,
/// probability) in window order.
fn card_predictions(card: &Path) -> Vec<(String, f64)> {
    let opts = LoadOptions {
        today: strata::date::parse_days(TODAY).unwrap(),
        ..Default::default()
    };
    let cohort = Cohort::load(&cohort_dir(), &opts).unwrap();
    let defs = definitions();
    let c = strata::risk::load_card(card, &defs).unwrap();
    let outcome = c.outcome;
    assert_eq!(outcome, Outcome::EmergencyAdmission);
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let w = evaluation::window(&cohort, &defs, as_of, outcome).unwrap();
    let p = evaluation::card_probabilities(&c, &w);
    w.table
        .patients
        .iter()
        .zip(p)
        .map(|(&i, p)| (cohort.patients.id[i as usize].clone(), p))
        .collect()
}

/// Rows of a predictions file: patient id and probability, `None` a null.
type Rows = Vec<(Option<String>, Option<f64>)>;

/// A bad file: its name, rows, column names, and what the error must say.
type Case = (&'static str, Rows, [&'static str; 2], Vec<String>);

/// Write predictions as Parquet with the given column names; `None` is a null.
fn write_predictions(path: &Path, rows: &[(Option<String>, Option<f64>)], names: [&str; 2]) {
    let ids: Vec<Option<&str>> = rows.iter().map(|r| r.0.as_deref()).collect();
    let ps: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
    let df = DataFrame::new(
        rows.len(),
        vec![
            Column::new(names[0].into(), ids),
            Column::new(names[1].into(), ps),
        ],
    )
    .unwrap();
    write_parquet(path, df);
}

fn evaluate_args<'a>(extra: &[&'a str], cohort: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "evaluate", "--cohort", cohort, "--as-of", AS_OF, "--today", TODAY,
    ];
    v.extend_from_slice(extra);
    v
}

/// Opening and closing tags balance (self-closing ones aside): the file is XML-shaped.
fn assert_balanced_tags(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("unclosed tag") + i;
        let tag = &rest[i + 1..j];
        rest = &rest[j + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        if tag.starts_with('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "{tag}");
        } else {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn predictions_of_the_models_own_probabilities_give_its_figures_and_plot() {
    let d = tempfile::tempdir().unwrap();
    let card = train(d.path());
    let mut preds = card_predictions(&card);
    // In another order than the window's: rows are matched by patient.
    preds.reverse();
    let file = d.path().join("mine.parquet");
    let rows: Vec<_> = preds
        .iter()
        .map(|(id, p)| (Some(id.clone()), Some(*p)))
        .collect();
    write_predictions(&file, &rows, ["patient_id", "probability"]);
    let cohort = cohort_dir();
    let cohort = cohort.to_str().unwrap();
    let by_model: serde_json::Value = serde_json::from_str(&run_ok(&evaluate_args(
        &["--model", card.to_str().unwrap(), "--json"],
        cohort,
    )))
    .unwrap();
    let svg_path = d.path().join("calibration.svg");
    let by_file: serde_json::Value = serde_json::from_str(&run_ok(&evaluate_args(
        &[
            "--predictions",
            file.to_str().unwrap(),
            "--outcome",
            "emergency_admission",
            "--json",
            "--plot",
            svg_path.to_str().unwrap(),
        ],
        cohort,
    )))
    .unwrap();
    // Exactly the same figures, overall and in every group (Core20 included).
    assert_eq!(by_file["overall"], by_model["overall"]);
    assert_eq!(by_file["groups"], by_model["groups"]);
    assert_eq!(by_file["predictions"], file.to_str().unwrap());
    assert_eq!(
        by_model["overall"]["n"].as_u64().unwrap() as usize,
        preds.len()
    );
    let groups = by_model["groups"].as_array().unwrap();
    for dim in [
        "list_population",
        "efi_category",
        "sex",
        "age_band",
        "imd_quintile",
        "ethnicity_group",
        "core20",
    ] {
        assert!(groups.iter().any(|g| g["dimension"] == dim), "{dim}");
    }
    // The fairness table: the list population's (65+) top 1/5/10% flagged once, shared out
    // among each dimension's groups; every rate is its counts' ratio.
    assert_eq!(by_file["fairness"], by_model["fairness"]);
    let fair = by_model["fairness"].as_array().unwrap();
    let list_n = groups
        .iter()
        .find(|g| g["dimension"] == "list_population" && g["group"] == "65_plus")
        .unwrap()["n"]
        .as_u64()
        .unwrap();
    let u = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap();
    for f in [0.01, 0.05, 0.10] {
        let rows: Vec<&serde_json::Value> = fair
            .iter()
            .filter(|r| (r["top_fraction"].as_f64().unwrap() - f).abs() < 1e-12)
            .collect();
        let all = rows.iter().find(|r| r["dimension"] == "all").unwrap();
        assert_eq!(u(all, "n"), list_n);
        assert_eq!(u(all, "flagged"), (f * list_n as f64 - 1e-9).ceil() as u64);
        for dim in ["sex", "imd_quintile", "core20", "efi_category"] {
            let part: Vec<_> = rows.iter().filter(|r| r["dimension"] == dim).collect();
            assert!(!part.is_empty(), "{dim}");
            for k in ["n", "flagged", "events"] {
                assert_eq!(
                    part.iter().map(|r| u(r, k)).sum::<u64>(),
                    u(all, k),
                    "{dim} {k}"
                );
            }
        }
        for r in &rows {
            let (n, fl, ev) = (u(r, "n"), u(r, "flagged"), u(r, "events"));
            if let (Some(s), Some(p)) = (r["sensitivity"].as_f64(), r["ppv"].as_f64()) {
                let ev_fl = (s * ev as f64).round();
                assert!((p - ev_fl / fl as f64).abs() < 1e-9, "{r}");
                if n > fl {
                    let fo = r["false_omission_rate"].as_f64().unwrap();
                    assert!(
                        (fo - (ev as f64 - ev_fl) / (n - fl) as f64).abs() < 1e-9,
                        "{r}"
                    );
                }
                let fd = r["false_discovery_rate"].as_f64().unwrap();
                assert!((fd - (1.0 - p)).abs() < 1e-9, "{r}");
            }
        }
    }
    let core20: u64 = groups
        .iter()
        .filter(|g| g["dimension"] == "core20")
        .map(|g| g["n"].as_u64().unwrap())
        .sum();
    assert_eq!(core20 as usize, preds.len());

    // The plot: one point per decile, at the table's figures, on labelled axes with the diagonal.
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_balanced_tags(&svg);
    assert!(svg.contains("Mean predicted risk") && svg.contains("Observed event rate"));
    assert!(svg.contains(r#"class="diagonal""#));
    assert!(svg.contains("mine.parquet"));
    let table = by_model["overall"]["calibration_table"].as_array().unwrap();
    assert_eq!(table.len(), 10);
    assert_eq!(svg.matches(r#"class="point""#).count(), 10);
    for b in table {
        let point = format!(
            r#"data-predicted="{:.6}" data-observed="{:.6}" data-n="{}""#,
            b["mean_predicted"].as_f64().unwrap(),
            b["observed_rate"].as_f64().unwrap(),
            b["n"]
        );
        assert!(svg.contains(&point), "{point} not in the plot");
    }
}

#[test]
fn bad_predictions_files_are_refused_with_file_column_and_rows() {
    let d = tempfile::tempdir().unwrap();
    let card = train(d.path());
    let preds = card_predictions(&card);
    let n = preds.len();
    let good: Rows = preds
        .iter()
        .map(|(id, p)| (Some(id.clone()), Some(*p)))
        .collect();
    let cohort = cohort_dir();
    let cohort = cohort.to_str().unwrap();
    // Each case: the rows, the column names, and what the error must say.
    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "missing-column",
        good.clone(),
        ["patient_id", "risk"],
        vec!["column probability: missing".into()],
    ));
    let mut r = good.clone();
    r[2].1 = Some(1.5);
    r[6].1 = Some(-0.1);
    r[4].1 = None;
    cases.push((
        "bad-probability",
        r,
        ["patient_id", "probability"],
        vec![
            "column probability: outside [0, 1] (e.g. 1.5) (2 rows; rows 3, 7)".into(),
            "column probability: null (1 row; row 5)".into(),
        ],
    ));
    let mut r = good.clone();
    r[1].0 = Some("nobody-at-all".into());
    cases.push((
        "unknown-patient",
        r,
        ["patient_id", "probability"],
        vec![
            "column patient_id: not a patient of the cohort (e.g. 'nobody-at-all') (1 row; row 2)"
                .into(),
            // The patient replaced has no prediction now.
            format!(
                "column patient_id: 1 of the {n} patients in the evaluation window have no prediction"
            ),
        ],
    ));
    let mut r = good.clone();
    r.push(r[0].clone());
    cases.push((
        "duplicate",
        r,
        ["patient_id", "probability"],
        vec![format!(
            "column patient_id: a patient predicted twice (e.g. row {} repeats row 1) (1 row; row {})",
            n + 1,
            n + 1
        )],
    ));
    let mut r = good.clone();
    r.truncate(n - 3);
    cases.push((
        "missing-patients",
        r,
        ["patient_id", "probability"],
        vec![format!(
            "column patient_id: 3 of the {n} patients in the evaluation window have no prediction"
        )],
    ));
    for (name, rows, cols, expect) in cases {
        let file = d.path().join(format!("{name}.parquet"));
        write_predictions(&file, &rows, cols);
        let o = strata(&evaluate_args(
            &[
                "--predictions",
                file.to_str().unwrap(),
                "--outcome",
                "emergency_admission",
            ],
            cohort,
        ));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(
            stdout(&o).is_empty(),
            "{name}: figures printed for a bad file"
        );
        for e in expect {
            let line = format!("{}, {e}", file.display());
            assert!(err.contains(&line), "{name}: {line:?} not in\n{err}");
        }
    }

    // A patient id that is neither text nor an integer.
    let file = d.path().join("float-ids.parquet");
    let df = DataFrame::new(
        2,
        vec![
            Column::new("patient_id".into(), vec![1.5f64, 2.5]),
            Column::new("probability".into(), vec![0.1f64, 0.2]),
        ],
    )
    .unwrap();
    write_parquet(&file, df);
    let o = strata(&evaluate_args(
        &[
            "--predictions",
            file.to_str().unwrap(),
            "--outcome",
            "death",
        ],
        cohort,
    ));
    assert!(
        stderr(&o).contains("column patient_id: is f64; expected a string or integer"),
        "{}",
        stderr(&o)
    );

    // Not Parquet at all.
    let file = d.path().join("text.parquet");
    std::fs::write(&file, "patient_id,probability\nA,0.5\n").unwrap();
    let o = strata(&evaluate_args(
        &[
            "--predictions",
            file.to_str().unwrap(),
            "--outcome",
            "death",
        ],
        cohort,
    ));
    assert!(
        stderr(&o).contains(&format!(
            "{}: cannot read the predictions file",
            file.display()
        )),
        "{}",
        stderr(&o)
    );

    // --predictions needs --outcome; --model and --predictions exclude each other; the outcome
    // must be the card's.
    let p = d.path().join("missing-patients.parquet");
    let o = strata(&evaluate_args(
        &["--predictions", p.to_str().unwrap()],
        cohort,
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = strata(&evaluate_args(
        &[
            "--predictions",
            p.to_str().unwrap(),
            "--model",
            card.to_str().unwrap(),
            "--outcome",
            "death",
        ],
        cohort,
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = strata(&evaluate_args(
        &["--model", card.to_str().unwrap(), "--outcome", "death"],
        cohort,
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("predicts emergency_admission"));
}

#[test]
fn integer_patient_ids_and_float32_probabilities_match_the_cohort_by_value() {
    // Sixty patients with numeric pseudonyms; every third has an emergency admission in the
    // year after the as-of date; patient 160 died before it, so is not in the window.
    let d = tempfile::tempdir().unwrap();
    let mut ps: Vec<P> = (101..=160)
        .map(|i| patient(&i.to_string(), "1950-04-01"))
        .collect();
    ps[59].death = Some("2025-01-15");
    let es: Vec<E> = ps
        .iter()
        .map(|p| ev(&p.id, "2024-01-10", "snomed", "38341003"))
        .collect();
    let ns: Vec<N> = ps
        .iter()
        .enumerate()
        .filter(|(k, _)| k % 3 == 0)
        .map(|(k, p)| N {
            id: p.id.clone(),
            enc: format!("E{k}"),
            setting: "inpatient",
            start: "2025-06-01",
            end: None,
            emergency: true,
            ..Default::default()
        })
        .collect();
    write_cohort(d.path(), &ps, &es, &ns);
    let opts = LoadOptions {
        today: strata::date::parse_days(TODAY).unwrap(),
        ..Default::default()
    };
    let cohort = Cohort::load(d.path(), &opts).unwrap();
    let defs = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let w = evaluation::window(&cohort, &defs, as_of, Outcome::EmergencyAdmission).unwrap();
    assert_eq!(w.len(), 59);
    assert_eq!(w.labels().iter().filter(|&&v| v == 1).count(), 20);

    // Integer ids in descending order, float32 probabilities id / 1000.
    let write = |path: &Path, ids: Vec<i64>| {
        let probs: Vec<f32> = ids.iter().map(|&i| i as f32 / 1000.0).collect();
        let df = DataFrame::new(
            ids.len(),
            vec![
                Column::new("patient_id".into(), ids),
                Column::new("probability".into(), probs),
            ],
        )
        .unwrap();
        write_parquet(path, df);
    };
    let file = d.path().join("int-ids.parquet");
    write(&file, (101..=159).rev().collect());
    let p = evaluation::read_predictions(&file, &cohort, &w).unwrap();
    for (k, &patient) in w.table.patients.iter().enumerate() {
        let id: i64 = cohort.patients.id[patient as usize].parse().unwrap();
        assert_eq!(p[k], f64::from(id as f32 / 1000.0), "row {k}");
    }
    // The patient who died before the as-of date is not in the window: refused, not dropped.
    let file = d.path().join("with-dead.parquet");
    write(&file, (101..=160).collect());
    let err = evaluation::read_predictions(&file, &cohort, &w)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column patient_id: not in the evaluation window: died on or before the as-of date or born after it (e.g. '160') (1 row; row 60)"),
        "{err}"
    );
}
