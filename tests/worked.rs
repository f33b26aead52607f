//! The hand-worked cohort in fixtures/worked/: strata's list must equal the one worked out by
//! hand in fixtures/worked/README.md.

mod common;

use common::*;
use polars::prelude::*;

#[test]
fn the_list_matches_the_hand_worked_example() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = score_into(&fixtures().join("worked"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = read_csv(&out.join("lists/WORKED/WORKED.csv"));
    let want = read_csv(&fixtures().join("worked/expected-list.csv"));
    let names: Vec<String> = want
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got = got.select(names.iter().map(|s| s.as_str())).unwrap();
    assert_eq!(got.height(), want.height(), "{got}");
    for name in &names {
        let (g, w) = (got.column(name).unwrap(), want.column(name).unwrap());
        let g = g.cast(&DataType::String).unwrap();
        let w = w.cast(&DataType::String).unwrap();
        assert_eq!(g, w, "column {name}:\n{got}\n{want}");
    }
    // The reasons name the deficits, heaviest HFRS diagnoses first.
    let a = read_csv(&out.join("lists/WORKED/WORKED.csv"));
    let hfrs = a
        .column("hfrs_diagnoses")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert_eq!(
        hfrs,
        "F00 Dementia in Alzheimer's disease (7.1); W19 Unspecified fall (3.2)"
    );
    let charlson = a
        .column("charlson_conditions")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert_eq!(charlson, "Dementia");
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    // 5 eligible (w-a, w-b, w-c, w-f, w-g): every count is 1-7 and so suppressed.
    assert!(
        summary.contains("WORKED,all,[c],[c],[c],[c],[c]"),
        "{summary}"
    );
}
