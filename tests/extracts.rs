//! Codes and rows written the way NHS systems write them (EMIS, TPP, SUS/HES, spreadsheet exports)
//! score exactly as the same facts written plainly, with no row rejected. Each variant is carried
//! by a hand-made patient whose scores prove the fact was counted, on every input adaptor.

mod common;

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::input::LoadOptions;
use strata::lists::ListRules;
use strata::run::score_cohort;
use strata::scores::{HfrsBand, Scores};

const AS_OF: &str = "2025-04-01";

fn opts() -> LoadOptions {
    LoadOptions {
        today: strata::date::parse_days("2026-11-25").unwrap(),
        ..Default::default()
    }
}

fn scores(c: &Cohort) -> Vec<(String, Scores)> {
    let m = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let s = score_cohort(c, &m, as_of, &ListRules::default());
    (0..c.patients.len())
        .map(|i| (c.patients.id[i].clone(), s.scores[i]))
        .collect()
}

/// The same facts for patient `id`, written plainly or as extracts write them.
fn facts(id: &str, variant: bool) -> Vec<E> {
    let pick = |plain: &'static str, v: &'static str| if variant { v } else { plain };
    vec![
        // F00 (7.1) and G30 (4.0): HFRS 11.1, intermediate; with the marks lost it would be 0.
        ev(id, "2024-06-01", "icd10", pick("F00.1", "F00.1*")),
        ev(id, "2024-06-01", "icd10", pick("G30.9", "G30.9†")),
        ev(id, "2024-07-01", "icd10", pick("G30.9", "G30.9+")),
        // W19 (3.2) written with a HES filler.
        ev(id, "2024-08-01", "icd10", pick("W19", "W19X")),
        // Anaemia as EMIS writes Read v2 (five characters, term code 00), lower case kept.
        ev(id, "2015-01-01", "read2", pick("BBmA.", "BBmA.00")),
        // Falls, copied from a spreadsheet with non-breaking spaces and a byte-order mark.
        ev(
            id,
            "2024-01-01",
            "snomed",
            pick("1912002", "\u{feff}1912002\u{a0}"),
        ),
    ]
}

#[test]
fn every_variant_scores_as_the_plain_code_with_nothing_rejected() {
    let ps = [
        patient("plain", "1940-04-01"),
        patient("variant", "1940-04-01"),
    ];
    let mut es = facts("plain", false);
    es.extend(facts("variant", true));
    for a in ADAPTORS {
        let c = load_via(a, &ps, &es, &[], &opts()).unwrap();
        assert!(c.rejects.is_empty(), "{a:?}: {:?}", c.rejects);
        let s = scores(&c);
        let (plain, variant) = (&s[0], &s[1]);
        assert_eq!(plain.0, "plain");
        assert_eq!(plain.1, variant.1, "{a:?}");
        // The facts were counted: F00 + G30 + W19 = 14.3, anaemia and falls are 2 deficits.
        assert_eq!(variant.1.hfrs_tenths, 143, "{a:?}");
        assert_eq!(variant.1.hfrs_band, HfrsBand::Intermediate);
        assert_eq!(variant.1.efi_deficits, 2, "{a:?}");
    }
}

#[test]
fn a_lower_case_read_code_is_a_different_concept() {
    // BBmA is in the anaemia list; BBMA is not a code of any list.
    let ps = [
        patient("lower", "1940-04-01"),
        patient("upper", "1940-04-01"),
    ];
    let es = [
        ev("lower", "2015-01-01", "read2", "BBmA.00"),
        ev("upper", "2015-01-01", "read2", "BBMA.00"),
    ];
    for a in ADAPTORS {
        let c = load_via(a, &ps, &es, &[], &opts()).unwrap();
        let s = scores(&c);
        assert_eq!(s[0].1.efi_deficits, 1, "{a:?}");
        assert_eq!(s[1].1.efi_deficits, 0, "{a:?}");
    }
}

/// Events whose `code` column is an integer column (SNOMED CT and dm+d ids as bigint).
fn integer_code_events(rows: &[(&str, &str, &str, i64)]) -> DataFrame {
    let days = |s: &str| strata::date::parse_days(s).unwrap();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "patient_id".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Int32Chunked::from_vec(
                "event_date".into(),
                rows.iter().map(|r| days(r.1)).collect(),
            )
            .into_date()
            .into_column(),
            Column::new(
                "code_system".into(),
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
            Column::new("code".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        ],
    )
    .unwrap()
}

#[test]
fn an_integer_code_column_is_read_as_its_digits() {
    let ps = [patient("A", "1940-04-01"), patient("B", "1940-04-01")];
    let ints = integer_code_events(&[
        ("A", "2024-01-01", "snomed", 1912002),
        ("A", "2024-01-01", "snomed", 161898004),
        ("B", "2024-01-01", "snomed", 160983005),
    ]);
    let strings = events_frame(&[
        ev("A", "2024-01-01", "snomed", "1912002"),
        ev("A", "2024-01-01", "snomed", "161898004"),
        ev("B", "2024-01-01", "snomed", "160983005"),
    ]);
    let load = |events: DataFrame| {
        let dir = tempfile::tempdir().unwrap();
        write_cohort(dir.path(), &ps, &[], &[]);
        write_parquet(&dir.path().join("events.parquet"), events.clone());
        let from_file = Cohort::load(dir.path(), &opts()).unwrap();
        let in_memory =
            Cohort::from_frames(patients_frame(&ps), events, encounters_frame(&[]), &opts())
                .unwrap();
        assert!(from_file.rejects.is_empty());
        assert_eq!(scores(&from_file), scores(&in_memory));
        scores(&from_file)
    };
    let (i, s) = (load(ints), load(strings));
    assert_eq!(i, s);
    assert_eq!(i[0].1.efi_deficits, 1, "falls (two codes of one deficit)");
    assert_eq!(i[1].1.efi_deficits, 1, "activity limitation");
}

#[test]
fn outpatient_and_ae_rows_need_no_emergency_flag_but_admissions_do() {
    let ps = [patient("A", "1940-04-01")];
    let days = |s: &str| strata::date::parse_days(s).unwrap();
    let rows: [(&str, &str, Option<bool>); 4] = [
        ("ae", "2024-06-01", None),
        ("outpatient", "2024-07-01", None),
        ("inpatient", "2024-08-01", Some(true)),
        ("inpatient", "2024-09-01", None),
    ];
    let enc = DataFrame::new(
        rows.len(),
        vec![
            Column::new("patient_id".into(), vec!["A"; 4]),
            Column::new("encounter_id".into(), vec!["1", "2", "3", "4"]),
            Column::new(
                "setting".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Int32Chunked::from_vec(
                "start_date".into(),
                rows.iter().map(|r| days(r.1)).collect(),
            )
            .into_date()
            .into_column(),
            Int32Chunked::from_vec("end_date".into(), rows.iter().map(|r| days(r.1)).collect())
                .into_date()
                .into_column(),
            Column::new(
                "emergency".into(),
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
        ],
    )
    .unwrap();
    let o = LoadOptions {
        max_reject_fraction: 1.0,
        ..opts()
    };
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), &ps, &[], &[]);
    write_parquet(&dir.path().join("encounters.parquet"), enc.clone());
    for c in [
        Cohort::load(dir.path(), &o).unwrap(),
        Cohort::from_frames(patients_frame(&ps), events_frame(&[]), enc, &o).unwrap(),
    ] {
        let rejected: Vec<(u64, &str)> = c.rejects.iter().map(|r| (r.row, r.column)).collect();
        assert_eq!(
            rejected,
            vec![(4, "emergency")],
            "only the admission without a flag"
        );
        let m = definitions();
        let s = score_cohort(
            &c,
            &m,
            strata::date::parse_days(AS_OF).unwrap(),
            &ListRules::default(),
        );
        assert_eq!(s.features[0].ae_attendances_12m, 1);
        assert_eq!(s.features[0].emergency_admissions_12m, 1);
    }
}

/// One medications row: (patient, issue date, dm+d id, VTM id, BNF code).
type Med<'a> = (&'a str, &'a str, i64, Option<i64>, Option<&'a str>);

/// A medications table.
fn medications_frame(rows: &[Med]) -> DataFrame {
    let days = |s: &str| strata::date::parse_days(s).unwrap();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "patient_id".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Int32Chunked::from_vec(
                "issue_date".into(),
                rows.iter().map(|r| days(r.1)).collect(),
            )
            .into_date()
            .into_column(),
            Column::new(
                "dmd_code".into(),
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
            Column::new(
                "vtm_code".into(),
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            ),
            Column::new(
                "bnf_code".into(),
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            ),
        ],
    )
    .unwrap()
}

/// Load a cohort with a medications table from a folder and in memory; both must agree.
fn with_medications(ps: &[P], meds: DataFrame) -> Vec<(String, Scores, u8)> {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), ps, &[], &[]);
    write_parquet(&dir.path().join("medications.parquet"), meds.clone());
    let from_file = Cohort::load(dir.path(), &opts()).unwrap();
    let in_memory = Cohort::from_frames_with_medications(
        patients_frame(ps),
        events_frame(&[]),
        encounters_frame(&[]),
        Some(meds),
        &opts(),
    )
    .unwrap();
    let m = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let run = |c: &Cohort| {
        let s = score_cohort(c, &m, as_of, &ListRules::default());
        (0..c.patients.len())
            .map(|i| {
                (
                    c.patients.id[i].clone(),
                    s.scores[i],
                    s.features[i].medicines,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(from_file.medications, in_memory.medications);
    assert!(from_file.rejects.is_empty(), "{:?}", from_file.rejects);
    let r = run(&from_file);
    assert_eq!(r, run(&in_memory));
    r
}

#[test]
fn polypharmacy_counts_medicines_by_vtm_not_products_or_devices() {
    let ps = [
        patient("five", "1940-04-01"),
        patient("strengths", "1940-04-01"),
        patient("devices", "1940-04-01"),
    ];
    let d = "2025-01-15";
    let mut rows = Vec::new();
    // Five different medicines.
    for k in 0..5 {
        rows.push(("five", d, 300000 + k, Some(700000 + k), Some("0212000B0")));
    }
    // Five products of four medicines (one at two strengths).
    for (k, vtm) in [(0, 0), (1, 0), (2, 2), (3, 3), (4, 4)] {
        rows.push((
            "strengths",
            d,
            400000 + k,
            Some(700000 + vtm),
            Some("0212000B0"),
        ));
    }
    // Four medicines and a dressing and a test strip (BNF chapters 20 and 21).
    for k in 0..4 {
        rows.push((
            "devices",
            d,
            500000 + k,
            Some(700000 + k),
            Some("0212000B0"),
        ));
    }
    rows.push(("devices", d, 600001, None, Some("20030100")));
    rows.push(("devices", d, 600002, None, Some("21000000")));
    let r = with_medications(&ps, medications_frame(&rows));
    let by = |id: &str| r.iter().find(|x| x.0 == id).unwrap();
    assert_eq!(by("five").2, 5);
    assert_eq!(by("five").1.efi_deficits, 1, "polypharmacy");
    assert_eq!(by("strengths").2, 4);
    assert_eq!(by("strengths").1.efi_deficits, 0);
    assert_eq!(by("devices").2, 4);
    assert_eq!(by("devices").1.efi_deficits, 0);
}

#[test]
fn without_a_vtm_medicines_are_counted_by_product_within_twelve_months() {
    let ps = [patient("A", "1940-04-01")];
    let rows: Vec<Med> = vec![
        ("A", "2025-01-15", 300001, None, None),
        ("A", "2025-01-15", 300002, None, None),
        ("A", "2025-01-15", 300003, None, None),
        ("A", "2025-01-15", 300004, None, None),
        // Before the 12-month window: not counted.
        ("A", "2023-01-15", 300005, None, None),
    ];
    let r = with_medications(&ps, medications_frame(&rows));
    assert_eq!(r[0].2, 4);
    assert_eq!(r[0].1.efi_deficits, 0);
}

#[test]
fn a_cohort_without_prescriptions_is_warned_about() {
    let ps = [patient("A", "1940-04-01")];
    let es = [ev("A", "2024-01-01", "snomed", "1912002")];
    for a in ADAPTORS {
        let c = load_via(a, &ps, &es, &[], &opts()).unwrap();
        let text = c.report.to_string();
        assert!(
            text.contains("no prescriptions")
                && text.contains("polypharmacy deficit cannot be assessed"),
            "{a:?}: {text}"
        );
        assert_eq!(strata::input::prescriptions_source(&c), "none");
    }
    // With a dm+d row, no warning.
    let es = [ev("A", "2024-01-01", "dmd", "39720311000001101")];
    let c = load_via(Adaptor::Parquet, &ps, &es, &[], &opts()).unwrap();
    assert!(!c.report.to_string().contains("no prescriptions"));
}

#[test]
fn score_says_when_polypharmacy_cannot_be_assessed_and_the_manifest_records_it() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    write_cohort(
        &c,
        &[patient("A", "1940-04-01")],
        &[ev("A", "2024-01-01", "snomed", "1912002")],
        &[],
    );
    let out = d.path().join("out");
    let o = score_into(&c, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o) + &stderr(&o);
    assert!(
        text.contains("polypharmacy deficit cannot be assessed"),
        "{text}"
    );
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["prescriptions"], "none");
}
