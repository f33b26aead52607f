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
    let cohort = fixtures().join("cohort-2000");
    for model in ["logistic", "gbdt"] {
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
        assert!(c["caveats"].as_str().unwrap().contains("synthetic"));

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
