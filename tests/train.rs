//! `strata train` and `strata evaluate`: temporal validation on the fixture cohort, the model
//! card, and the figures by group.

mod common;

use common::*;

fn run_ok(args: &[&str]) -> String {
    let o = strata(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn train_validates_on_the_following_year_and_evaluate_reports_by_group() {
    let d = tempfile::tempdir().unwrap();
    // The fixture carries strata synth's mark; a copy without it stands for local data.
    let marked = fixtures().join("cohort-2000");
    let unmarked = d.path().join("unmarked");
    unmarked_copy(&marked, &unmarked);
    for (model, cohort, caveat) in [
        ("logistic", &marked, strata_models::card::SYNTHETIC_CAVEAT),
        ("gbdt", &unmarked, "Trained on local data"),
    ] {
        let card = d.path().join(format!("{model}.json"));
        let text = run_ok(&[
            "train",
            "--cohort",
            cohort.to_str().unwrap(),
            "--outcome",
            "emergency_admission",
            "--model",
            model,
            "--trees",
            "30",
            "--as-of",
            "2025-04-01",
            "--today",
            "2026-11-25",
            "--out",
            card.to_str().unwrap(),
        ]);
        assert!(text.contains("validation (next year)"), "{text}");
        let c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
        assert_eq!(c["outcome"], "emergency_admission");
        assert_eq!(c["training_cohort"]["window_start"], "2024-04-01");
        assert_eq!(c["validation_cohort"]["window_start"], "2025-04-01");
        let auroc = c["validation_metrics"]["auroc"].as_f64().unwrap();
        assert!(auroc > 0.5 && auroc < 1.0, "{auroc}");
        assert!(
            c["validation_metrics"]["bootstrap"]["auroc"]["lower"]
                .as_f64()
                .unwrap()
                < auroc
        );
        // The caveat follows the training cohort's mark.
        assert!(
            c["caveats"].as_str().unwrap().starts_with(caveat),
            "{model}: {}",
            c["caveats"]
        );
        // The list population's figures, by eFI category; the snapshots named; the validation
        // on held-out practices.
        assert!(c["list_validation_metrics"]["auroc"].as_f64().is_some());
        let by: Vec<&str> = c["list_validation_by_group"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["group"].as_str().unwrap())
            .collect();
        assert_eq!(by, ["fit", "mild", "moderate", "severe"]);
        // The fixture's events hold care home residence codes (LONGRES_COD), so care_home is
        // dated there; only the IMD decile is the extract's current value.
        assert_eq!(c["snapshot_features"], serde_json::json!(["imd_decile"]));
        let pv = &c["practice_validation"];
        assert!(pv["practices"].as_u64().unwrap() >= 1, "{pv}");
        assert!(pv["all_metrics"]["auroc"].as_f64().is_some(), "{pv}");
        assert!(text.contains("held-out practices"), "{text}");

        let json = run_ok(&[
            "evaluate",
            "--cohort",
            cohort.to_str().unwrap(),
            "--model",
            card.to_str().unwrap(),
            "--as-of",
            "2025-04-01",
            "--today",
            "2026-11-25",
            "--json",
        ]);
        let e: serde_json::Value = serde_json::from_str(&json).unwrap();
        // The same window gives the card's validation figure.
        assert_eq!(e["overall"]["auroc"], c["validation_metrics"]["auroc"]);
        let groups = e["groups"].as_array().unwrap();
        assert!(groups
            .iter()
            .any(|g| g["dimension"] == "imd_quintile" && g["group"] == "1"));
        assert!(groups.iter().any(|g| g["dimension"] == "ethnicity_group"));
        let n: u64 = groups
            .iter()
            .filter(|g| g["dimension"] == "sex")
            .map(|g| g["n"].as_u64().unwrap())
            .sum();
        assert_eq!(n, e["overall"]["n"].as_u64().unwrap());
    }
}

/// `--model auto` (the default) on a cohort strata synth made: the card says which family it kept
/// and why, and carries the synthetic caveat with what made the cohort.
#[test]
fn auto_on_a_marked_synthetic_cohort() {
    let d = tempfile::tempdir().unwrap();
    let cohort = d.path().join("synth");
    run_ok(&[
        "synth",
        "--patients",
        "6000",
        "--seed",
        "3",
        "--out",
        cohort.to_str().unwrap(),
    ]);
    let card = d.path().join("auto.json");
    let text = run_ok(&[
        "train",
        "--cohort",
        cohort.to_str().unwrap(),
        "--outcome",
        "death",
        "--as-of",
        "2025-04-01",
        "--out",
        card.to_str().unwrap(),
    ]);
    assert!(text.contains("auto: on the held-out rows"), "{text}");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    // The note names one family, and it is the card's.
    let sel = c["model_selection"].as_str().unwrap();
    let kept = match (sel.ends_with("kept gbdt"), sel.ends_with("kept logistic")) {
        (true, false) => "gbdt",
        (false, true) => "logistic",
        _ => panic!("no family kept: {sel}"),
    };
    assert_eq!(c["kind"], kept);
    let caveat = c["caveats"].as_str().unwrap();
    assert!(
        caveat.starts_with("Trained on synthetic data") && caveat.contains("6000 patients, seed 3"),
        "{caveat}"
    );
    assert!(
        c["risk_bands"]["very_high"].as_f64().unwrap() >= c["risk_bands"]["high"].as_f64().unwrap()
    );
}
