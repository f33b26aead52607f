//! `strata validate` and the input edge under hostile input: a corpus of broken cohorts, each
//! with the exact message expected, a documented exit code, no panic and no partial output.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;

fn base_patients() -> Vec<P> {
    vec![
        patient("a1", "1940-01-01"),
        patient("b2", "1950-06-01"),
        patient("c3", "1935-03-01"),
    ]
}

fn base_events() -> Vec<E> {
    let mut es = Vec::new();
    for id in ["a1", "b2", "c3"] {
        for k in 0..40 {
            es.push(ev(id, "2024-01-01", "snomed", &format!("{}", 1912002 + k)));
        }
        es.push(ev(id, "2024-01-01", "icd10", "F00.1"));
    }
    // One of them a prescription, so the cohort can show polypharmacy (else validation warns).
    es[39] = ev("a1", "2024-01-01", "dmd", "39720311000001101");
    es
}

fn base_encounters() -> Vec<N> {
    vec![N {
        id: "a1".into(),
        enc: "e1".into(),
        setting: "inpatient",
        start: "2024-01-01",
        end: None,
        emergency: true,
        ..Default::default()
    }]
}

/// A valid tiny cohort in a fresh folder.
fn good() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    write_cohort(&c, &base_patients(), &base_events(), &base_encounters());
    (d, c)
}

/// Run validate and score on a cohort; both must fail with exit code 3, no panic, no output,
/// and every expected fragment in the message.
fn refused(cohort: &Path, expect: &[&str]) {
    let v = strata(&["validate", "--cohort", cohort.to_str().unwrap()]);
    let text = stdout(&v) + &stderr(&v);
    assert_eq!(v.status.code(), Some(3), "validate: {text}");
    for e in expect {
        assert!(text.contains(e), "validate output lacks {e:?}:\n{text}");
    }
    assert!(!text.contains("panicked"), "{text}");
    let out = cohort.parent().unwrap().join("out");
    let s = score_into(cohort, &out, &[]);
    let text = stderr(&s);
    assert_eq!(s.status.code(), Some(3), "score: {text}");
    for e in expect {
        assert!(text.contains(e), "score output lacks {e:?}:\n{text}");
    }
    assert!(!out.exists(), "score left output behind");
    let stray: Vec<_> = std::fs::read_dir(cohort.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Score must succeed; returns (stdout, out folder).
fn scores(cohort: &Path, extra: &[&str]) -> (String, PathBuf) {
    let out = cohort.parent().unwrap().join("out");
    let s = score_into(cohort, &out, extra);
    assert!(s.status.success(), "{}", stderr(&s));
    (stdout(&s) + &stderr(&s), out)
}

#[test]
fn a_good_cohort_validates() {
    let (_d, c) = good();
    validate_says(&c, &[], 0, "0 error(s), 0 warning(s)");
    let (_, json) = validate(&c, &["--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["files"][1]["rows"], 123);
}

#[test]
fn missing_folder_and_missing_file() {
    let d = tempfile::tempdir().unwrap();
    validate_says(
        &d.path().join("nope"),
        &[],
        3,
        "cohort folder does not exist",
    );
    let (_d, c) = good();
    std::fs::remove_file(c.join("encounters.parquet")).unwrap();
    refused(&c, &["encounters.parquet: file is missing"]);
}

#[test]
fn truncated_parquet() {
    let (_d, c) = good();
    let bytes = std::fs::read(c.join("events.parquet")).unwrap();
    std::fs::write(c.join("events.parquet"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(
        &c,
        &["events.parquet: not a readable Parquet file: truncated"],
    );
}

#[test]
fn corrupt_parquet_pages_and_footer() {
    let (_d, c) = good();
    let mut bytes = std::fs::read(c.join("patients.parquet")).unwrap();
    // Scribble over the footer metadata, keeping the magic bytes.
    let n = bytes.len();
    for b in &mut bytes[n - 60..n - 8] {
        *b = 0xA5;
    }
    std::fs::write(c.join("patients.parquet"), &bytes).unwrap();
    refused(
        &c,
        &["patients.parquet: not a readable Parquet file (corrupt or truncated)"],
    );

    let (_d, c) = good();
    let mut bytes = std::fs::read(c.join("events.parquet")).unwrap();
    // Scribble over the data pages.
    for b in &mut bytes[8..200] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(c.join("events.parquet"), &bytes).unwrap();
    refused(&c, &["events.parquet"]);
}

#[test]
fn csv_renamed_to_parquet() {
    let (_d, c) = good();
    std::fs::write(
        c.join("patients.parquet"),
        "patient_id,birth_date\na1,1940-01-01\n",
    )
    .unwrap();
    refused(
        &c,
        &["patients.parquet: not a Parquet file: it starts with text (a CSV file renamed to .parquet?)"],
    );
}

#[test]
fn empty_file() {
    let (_d, c) = good();
    std::fs::write(c.join("events.parquet"), b"").unwrap();
    refused(&c, &["events.parquet: file is empty (0 bytes)"]);
}

#[test]
fn zero_rows() {
    let (_d, c) = good();
    write_parquet(&c.join("patients.parquet"), patients_frame(&[]));
    refused(
        &c,
        &["patients.parquet: has no rows: a cohort needs patients"],
    );
    // No events or encounters at all is odd but scoreable.
    let (_d, c) = good();
    write_parquet(&c.join("events.parquet"), events_frame(&[]));
    write_parquet(&c.join("encounters.parquet"), encounters_frame(&[]));
    let (text, out) = scores(&c, &[]);
    assert!(text.contains("events.parquet: has no rows"), "{text}");
    assert!(out.join("scores.parquet").is_file());
}

#[test]
fn missing_required_column() {
    let (_d, c) = good();
    let df = events_frame(&base_events()).drop("code").unwrap();
    write_parquet(&c.join("events.parquet"), df);
    refused(
        &c,
        &["events.parquet, column code: required column is missing"],
    );
}

#[test]
fn wrong_column_type() {
    let (_d, c) = good();
    let mut df = events_frame(&base_events());
    let as_text = df
        .column("event_date")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    df.with_column(as_text).unwrap();
    write_parquet(&c.join("events.parquet"), df);
    refused(
        &c,
        &["events.parquet, column event_date: has type str, expected date or timestamp"],
    );
}

#[test]
fn integer_ids_and_timestamps_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    let mut ps = base_patients();
    for (i, p) in ps.iter_mut().enumerate() {
        p.id = format!("{}", 100 + i);
    }
    let es: Vec<E> = base_events()
        .into_iter()
        .map(|mut e| {
            e.id = match e.id.as_str() {
                "a1" => "100",
                "b2" => "101",
                _ => "102",
            }
            .into();
            e
        })
        .collect();
    write_cohort(&c, &ps, &es, &[]);
    for f in ["patients.parquet", "events.parquet"] {
        let path = c.join(f);
        let mut df = read_parquet(&path);
        let id = df
            .column("patient_id")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap();
        df.with_column(id).unwrap();
        if f == "events.parquet" {
            let ts = df
                .column("event_date")
                .unwrap()
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .unwrap();
            df.with_column(ts).unwrap();
        }
        write_parquet(&path, df);
    }
    let (_, out) = scores(&c, &[]);
    let s = read_parquet(&out.join("scores.parquet"));
    let ids: Vec<String> = s
        .column("patient_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|x| x.unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["100", "101", "102"]);
}

#[test]
fn nulls_in_required_patient_columns() {
    let (_d, c) = good();
    let mut df = patients_frame(&base_patients());
    let pcn = Column::new("pcn_code".into(), vec![Some("PCN1"), None, Some("PCN1")]);
    df.with_column(pcn).unwrap();
    write_parquet(&c.join("patients.parquet"), df);
    refused(
        &c,
        &["patients.parquet, column pcn_code: null or empty PCN code (1 row; row 2)"],
    );
}

#[test]
fn duplicate_patient_ids() {
    let (_d, c) = good();
    let mut ps = base_patients();
    ps.push(patient("b2", "1960-01-01"));
    write_parquet(&c.join("patients.parquet"), patients_frame(&ps));
    refused(
        &c,
        &["patients.parquet, column patient_id: duplicate pseudonym (1 row; row 4)"],
    );
}

#[test]
fn events_for_unknown_patients_are_rejected_and_too_many_refuse_the_cohort() {
    let (_d, c) = good();
    let mut es = base_events();
    es.push(ev("zz9", "2024-01-01", "snomed", "1912002"));
    write_parquet(&c.join("events.parquet"), events_frame(&es));
    // 1 of 124 rows (0.8%): rejected, reported, written beside the output.
    let (text, out) = scores(&c, &[]);
    assert!(
        text.contains("events.parquet, column patient_id: row rejected: patient_id not in patients.parquet (1 row; row 124)"),
        "{text}"
    );
    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    assert_eq!(rejects, "file,row,column,reason\nevents.parquet,124,patient_id,patient_id not in patients.parquet\n");
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["rejected_rows"], 1);
    assert_eq!(m["inputs"][1]["rejected"], 1);
    // With a stricter threshold the cohort is refused.
    validate_says(
        &c,
        &["--max-rejected", "0.001"],
        3,
        "1 of 124 rows rejected, more than the 0.10% allowed",
    );
}

#[test]
fn impossible_dates_are_rejected_rows() {
    let (_d, c) = good();
    let mut es = base_events();
    es.push(ev("a1", "1899-12-31", "snomed", "1912002"));
    es.push(ev("a1", "2099-01-01", "snomed", "1912002"));
    write_parquet(&c.join("events.parquet"), events_frame(&es));
    validate_says(
        &c,
        &["--max-rejected", "0.5"],
        0,
        "events.parquet, column event_date: row rejected: date before 1900 or after today (2 rows; rows 124, 125)",
    );
    // Birth dates are patient rows: an impossible one refuses the cohort.
    let (_d, c) = good();
    let mut ps = base_patients();
    ps[0].birth = "1890-01-01";
    write_parquet(&c.join("patients.parquet"), patients_frame(&ps));
    refused(&c, &["patients.parquet, column birth_date: birth date before 1900 or after today (1 row; row 1)"]);
}

#[test]
fn records_after_the_as_of_date_are_ignored_and_counted() {
    let (_d, c) = good();
    let mut es = base_events();
    es.push(ev("a1", "2025-06-01", "icd10", "W19"));
    write_parquet(&c.join("events.parquet"), events_frame(&es));
    let (text, out) = scores(&c, &[]);
    assert!(
        text.contains("1 records after the as-of date ignored"),
        "{text}"
    );
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["ignored_after_as_of"], 1);
}

#[test]
fn non_utf8_bytes_are_a_type_error() {
    let (_d, c) = good();
    let mut df = events_frame(&base_events());
    let n = df.height();
    let bad: Vec<&[u8]> = (0..n).map(|_| &b"\xff\xfe1912002"[..]).collect();
    df.with_column(Column::new("code".into(), bad)).unwrap();
    write_parquet(&c.join("events.parquet"), df);
    refused(
        &c,
        &["events.parquet, column code: has type binary, expected string"],
    );
}

#[test]
fn absurdly_long_strings() {
    let (_d, c) = good();
    let mut ps = base_patients();
    ps[1].id = "x".repeat(10_000);
    write_parquet(&c.join("patients.parquet"), patients_frame(&ps));
    refused(&c, &["patients.parquet, column patient_id: pseudonym longer than 128 characters (1 row; row 2)"]);

    let (_d, c) = good();
    let mut es = base_events();
    es.push(ev("a1", "2024-01-01", "snomed", &"9".repeat(100_000)));
    es.push(ev("a1", "2024-01-01", "read2", "ABCDEFGH"));
    write_parquet(&c.join("events.parquet"), events_frame(&es));
    validate_says(
        &c,
        &["--max-rejected", "0.5"],
        0,
        "column code: row rejected: code too long (2 rows; rows 124, 125)",
    );
}

#[test]
fn codes_with_whitespace_and_case_are_normalised() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    let es = vec![
        ev("a1", "2024-01-01", "ICD10", " f00.1 "),
        ev("a1", "2024-01-01", " Snomed", " 1912002\t"),
    ];
    write_cohort(&c, &[patient("a1", "1940-01-01")], &es, &[]);
    let (_, out) = scores(&c, &["--min-category", "fit"]);
    let list = read_csv(&out.join("lists/PCN1/PCN1.csv"));
    assert_eq!(
        list.column("hfrs_score").unwrap().f64().unwrap().get(0),
        Some(7.1)
    );
    assert_eq!(
        list.column("efi_deficits")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .get(0),
        Some(1)
    );
}

#[test]
fn unknown_code_systems_are_rejected_rows() {
    let (_d, c) = good();
    let mut es = base_events();
    es.push(ev("a1", "2024-01-01", "loinc", "1234-5"));
    write_parquet(&c.join("events.parquet"), events_frame(&es));
    let (_, text) = validate(&c, &[]);
    assert!(
        text.contains("column code_system: row rejected: unknown code_system (1 row; row 124)"),
        "{text}"
    );
}

#[test]
fn a_pcn_of_one_and_a_cohort_of_one() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    let mut ps = base_patients();
    ps[2].pcn = "LONE";
    let mut es = Vec::new();
    for id in ["a1", "b2", "c3"] {
        for code in ["1912002", "38341003", "195967001", "73211009", "49436004"] {
            es.push(ev(id, "2020-01-01", "snomed", code));
        }
    }
    write_cohort(&c, &ps, &es, &[]);
    let (_, out) = scores(&c, &[]);
    let lone = read_csv(&out.join("lists/LONE/LONE.csv"));
    assert_eq!(lone.height(), 1);
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.contains("LONE,all,0,[c],0,0,[c]"), "{summary}");

    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    write_cohort(
        &c,
        &[patient("solo", "1930-01-01")],
        &[ev("solo", "2020-01-01", "snomed", "1912002")],
        &[],
    );
    let (text, out) = scores(&c, &["--min-category", "fit"]);
    assert!(text.contains("scored 1 patients"), "{text}");
    assert_eq!(read_csv(&out.join("lists/PCN1/PCN1.csv")).height(), 1);
}

#[test]
fn ten_thousand_codes_for_one_patient() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    let mut es = Vec::new();
    for k in 0..10_000 {
        es.push(ev(
            "big",
            "2024-06-01",
            "dmd",
            &format!("{}", 5_000_000 + k),
        ));
    }
    write_cohort(
        &c,
        &[patient("big", "1940-01-01"), patient("small", "1940-01-01")],
        &es,
        &[],
    );
    let (_, out) = scores(&c, &["--min-category", "fit"]);
    let list = read_csv(&out.join("lists/PCN1/PCN1.csv"));
    assert_eq!(
        list.column("patient_id").unwrap().str().unwrap().get(0),
        Some("big")
    );
    // Polypharmacy counts; the medicine count saturates at 255 rather than overflowing.
    assert_eq!(
        list.column("medicines_12m")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .get(0),
        Some(255)
    );
}

#[test]
fn direct_identifiers_are_refused_unless_overridden() {
    let (_d, c) = good();
    let mut df = patients_frame(&base_patients());
    df.with_column(Column::new("NHS_Number".into(), vec!["x", "y", "z"]))
        .unwrap();
    write_parquet(&c.join("patients.parquet"), df);
    refused(
        &c,
        &["patients.parquet, column NHS_Number: column looks like a direct identifier"],
    );
    let (text, _) = scores(&c, &["--allow-identifiers"]);
    assert!(text.contains("scored 3 patients"), "{text}");

    // Valid NHS numbers as pseudonyms.
    let (_d, c) = good();
    let mut ps = base_patients();
    ps[0].id = "9434765919".into();
    write_parquet(&c.join("patients.parquet"), patients_frame(&ps));
    refused(
        &c,
        &["patients.parquet, column patient_id: value is a valid NHS number"],
    );

    // Exact dates of birth.
    let (_d, c) = good();
    let mut ps = base_patients();
    ps[1].birth = "1950-06-17";
    write_parquet(&c.join("patients.parquet"), patients_frame(&ps));
    refused(
        &c,
        &["patients.parquet, column birth_date: birth date more precise than the month"],
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let (_d, c) = good();
    std::fs::write(c.join("encounters.parquet"), b"").unwrap();
    let df = events_frame(&base_events()).drop("code_system").unwrap();
    write_parquet(&c.join("events.parquet"), df);
    let mut ps = base_patients();
    ps.push(patient("a1", "1940-01-01"));
    write_parquet(&c.join("patients.parquet"), patients_frame(&ps));
    refused(
        &c,
        &[
            "encounters.parquet: file is empty",
            "events.parquet, column code_system: required column is missing",
            "patients.parquet, column patient_id: duplicate pseudonym",
            "3 error(s)",
        ],
    );
}

#[test]
fn a_cohort_too_large_for_memory_is_refused_before_loading() {
    let c = fixtures().join("cohort-2000");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let s = score_into(&c, &out, &["--memory-limit", "1"]);
    assert_eq!(s.status.code(), Some(6), "{}", stderr(&s));
    assert!(
        stderr(&s).contains("needs about 2 MB to load but only 1 MB of memory is available"),
        "{}",
        stderr(&s)
    );
    assert!(!out.exists());
    // Enough memory: runs.
    let s = score_into(&c, &out, &["--memory-limit", "64"]);
    assert!(s.status.success(), "{}", stderr(&s));
}

#[test]
fn the_dictionary_path_and_the_general_path_read_the_same_cohort() {
    use strata::cohort::Cohort;
    use strata::input::LoadOptions;
    for dir in [fixtures().join("cohort-2000"), fixtures().join("worked")] {
        let fast = Cohort::load(&dir, &LoadOptions::default()).unwrap();
        let general = Cohort::load(
            &dir,
            &LoadOptions {
                dictionary_path: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!fast.events.code.is_empty());
        let paths = |c: &Cohort, p: &str| {
            c.read_paths
                .iter()
                .map(|(f, x)| (f.clone(), x.clone()))
                .collect::<Vec<_>>()
                == vec![
                    ("events.parquet".to_string(), p.to_string()),
                    ("encounters.parquet".to_string(), p.to_string()),
                ]
        };
        assert!(paths(&fast, "dictionary"), "{:?}", fast.read_paths);
        assert!(paths(&general, "general"), "{:?}", general.read_paths);
        assert_eq!(fast.events, general.events);
        assert_eq!(fast.encounters, general.encounters);
        assert_eq!(fast.report, general.report);
        let codes = |c: &Cohort| {
            c.codes
                .iter()
                .map(|(i, s, c)| (i, s, c.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&fast), codes(&general));
    }
}

#[test]
fn a_page_that_claims_more_values_than_its_row_group_is_refused_not_an_abort() {
    // Found by fuzzing (fuzz/README.md): a patients.parquet whose page header claims ~2^64
    // values made the decoder ask for exabytes and abort the process.
    let (_d, c) = good();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/patients-page-claims-too-many-values.parquet"
        ),
        c.join("patients.parquet"),
    )
    .unwrap();
    refused(&c, &["patients.parquet: not a readable Parquet file (corrupt or truncated): row group 0, column care_home: a page claims more values or bytes than the row group holds"]);
}

#[test]
fn the_memory_estimate_follows_the_path_each_file_is_read_on() {
    use strata::cohort::Cohort;
    use strata::input::{memory_estimate, LoadOptions, ReadPath, BYTES_PER_EVENT};
    use strata::input::{BYTES_PER_PATIENT, DICT_BYTES_PER_EVENT};
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    std::fs::create_dir(&c).unwrap();
    for f in ["patients.parquet", "events.parquet", "encounters.parquet"] {
        std::fs::copy(fixtures().join("cohort-2000").join(f), c.join(f)).unwrap();
    }
    // What the estimate says each file is read on, and what the reader then does.
    let paths = |c: &Path| {
        let estimated: Vec<(String, String)> = memory_estimate(c)
            .files
            .iter()
            .filter(|f| f.file != "patients.parquet")
            .map(|f| {
                let p = match f.path {
                    ReadPath::Dictionary => "dictionary",
                    ReadPath::General => "general",
                };
                (f.file.to_string(), p.to_string())
            })
            .collect();
        (
            estimated,
            Cohort::read(c, &LoadOptions::default()).read_paths,
        )
    };
    let (estimated, read) = paths(&c);
    assert_eq!(estimated, read);
    assert!(
        estimated.iter().all(|(_, p)| p == "dictionary"),
        "{estimated:?}"
    );
    let before = memory_estimate(&c);
    let events = |e: &strata::input::MemoryEstimate| {
        e.files
            .iter()
            .find(|f| f.file == "events.parquet")
            .unwrap()
            .clone()
    };
    let ev = events(&before);
    assert_eq!(ev.needed, ev.rows * DICT_BYTES_PER_EVENT + ev.bytes);
    let pa = &before.files[0];
    assert_eq!(
        (pa.file, pa.needed),
        ("patients.parquet", pa.rows * BYTES_PER_PATIENT)
    );

    // A code column with every value distinct is written plain, not dictionary-encoded: the
    // events are then read on the general path, and the estimate says so.
    let mut df = read_parquet(&c.join("events.parquet"));
    let unique: Vec<String> = (0..df.height()).map(|i| format!("X{i}")).collect();
    df.with_column(Column::new("code".into(), unique)).unwrap();
    write_parquet(&c.join("events.parquet"), df);
    let (estimated, read) = paths(&c);
    assert_eq!(estimated, read);
    assert_eq!(
        estimated,
        vec![
            ("events.parquet".to_string(), "general".to_string()),
            ("encounters.parquet".to_string(), "dictionary".to_string()),
        ]
    );
    let ev = events(&memory_estimate(&c));
    assert_eq!(ev.needed, ev.rows * BYTES_PER_EVENT);
}
