//! The input stage's in-memory entry point: a cohort handed over as frames or Arrow record
//! batches (as Python and Spark hand it) goes through the same checks and layout as the same data
//! read from files, and scores identically.

mod common;

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::definitions::Definitions;
use strata::input::contract::{ENCOUNTERS_FILE, EVENTS_FILE, PATIENTS_FILE};
use strata::input::{InputError, LoadOptions};
use strata::lists::ListRules;
use strata::run::score_cohort;

fn opts() -> LoadOptions {
    LoadOptions {
        today: strata::date::parse_days("2026-11-25").unwrap(),
        ..Default::default()
    }
}

fn read(dir: &std::path::Path, name: &str) -> DataFrame {
    let f = std::fs::File::open(dir.join(name)).unwrap();
    ParquetReader::new(f).finish().unwrap()
}

fn fixture_frames() -> (DataFrame, DataFrame, DataFrame) {
    let dir = fixtures().join("cohort-2000");
    (
        read(&dir, PATIENTS_FILE),
        read(&dir, EVENTS_FILE),
        read(&dir, ENCOUNTERS_FILE),
    )
}

/// Everything a later stage reads from a cohort, and every score, must be equal.
fn assert_same(a: &Cohort, b: &Cohort) {
    assert_eq!(a.patients.id, b.patients.id);
    assert_eq!(a.patients.birth, b.patients.birth);
    assert_eq!(a.patients.pcns, b.patients.pcns);
    assert_eq!(a.patients.pcn, b.patients.pcn);
    assert_eq!(a.events, b.events);
    assert_eq!(a.encounters, b.encounters);
    assert_eq!(a.codes.len(), b.codes.len());
    assert!(a.codes.iter().zip(b.codes.iter()).all(|(x, y)| x == y));
    assert_eq!(a.rejects, b.rejects);
    assert_eq!(a.report.files, b.report.files);
    let d = Definitions::load(&models_dir()).unwrap();
    let as_of = strata::date::parse_days("2025-04-01").unwrap();
    let (sa, sb) = (
        score_cohort(a, &d, as_of, &ListRules::default()),
        score_cohort(b, &d, as_of, &ListRules::default()),
    );
    assert_eq!(sa.scores, sb.scores);
    assert_eq!(sa.features, sb.features);
}

#[test]
fn the_fixture_handed_in_memory_scores_exactly_as_read_from_files() {
    let from_files = Cohort::load(&fixtures().join("cohort-2000"), &opts()).unwrap();
    assert!(from_files.events.code.len() > 50_000, "a real cohort");
    let (p, e, n) = fixture_frames();
    let from_frames = Cohort::from_frames(p.clone(), e.clone(), n.clone(), &opts()).unwrap();
    assert_same(&from_files, &from_frames);
    let from_arrow = Cohort::from_arrow(batches(p), batches(e), batches(n), &opts()).unwrap();
    assert_same(&from_files, &from_arrow);
}

#[test]
fn frames_in_memory_are_checked_like_files_and_errors_name_the_table_and_column() {
    let (p, e, n) = fixture_frames();
    let p = p.drop("birth_date").unwrap();
    let err = Cohort::from_frames(p, e, n, &opts()).unwrap_err();
    let InputError::Invalid { report, .. } = err else {
        panic!("expected Invalid");
    };
    let text = report.to_string();
    assert!(
        text.contains("patients.parquet, column birth_date: required column is missing"),
        "{text}"
    );
}

#[test]
fn bad_rows_in_memory_are_rejected_with_their_row_numbers() {
    let ps = [patient("A", "1940-04-01")];
    let es = [
        ev("A", "2024-01-01", "snomed", "22298006"),
        ev("nobody", "2024-01-01", "snomed", "22298006"),
        ev("A", "2024-01-01", "klingon", "123456"),
    ];
    let o = LoadOptions {
        max_reject_fraction: 1.0,
        ..opts()
    };
    for a in ADAPTORS {
        let c = load_via(a, &ps, &es, &[], &o).unwrap();
        let rows: Vec<(u64, &str)> = c.rejects.iter().map(|r| (r.row, r.reason)).collect();
        assert_eq!(
            rows,
            vec![
                (2, "patient_id not in patients.parquet"),
                (3, "unknown code_system")
            ],
            "{a:?}"
        );
        assert_eq!(c.events.code.len(), 1, "{a:?}");
    }
}

#[test]
fn medications_handed_as_arrow_batches_are_read_as_the_same_frame_is() {
    let (p, e, n) = fixture_frames();
    // The fixture's dm+d events as a medications table.
    let meds = e
        .clone()
        .lazy()
        .filter(col("code_system").eq(lit("dmd")))
        .select([
            col("patient_id"),
            col("event_date").alias("issue_date"),
            col("code").alias("dmd_code"),
        ])
        .collect()
        .unwrap();
    assert!(meds.height() > 10_000, "a real medications table");
    let from_frames = Cohort::from_frames_with_medications(
        p.clone(),
        e.clone(),
        n.clone(),
        Some(meds.clone()),
        &opts(),
    )
    .unwrap();
    let from_arrow = Cohort::from_arrow_with_medications(
        batches(p),
        batches(e),
        batches(n),
        Some(batches(meds)),
        &opts(),
    )
    .unwrap();
    assert!(from_arrow.medications.present);
    assert_eq!(from_frames.medications, from_arrow.medications);
    assert_same(&from_frames, &from_arrow);
}
