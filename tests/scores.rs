//! Hand-worked patients for each score: every published cut-point and the edges of every
//! look-back window, computed through the real path (Parquet in, scores out).

mod common;

use common::*;
use strata::input::LoadOptions;
use strata::lists::ListRules;
use strata::run::score_cohort;
use strata::scores::{EfiCategory, HfrsBand, Scores};

/// Score a tiny cohort through every input adaptor (Parquet on both decoding paths, frames and
/// Arrow batches in memory); they must agree exactly. Returns scores by patient id.
fn score(ps: &[P], es: &[E], ns: &[N]) -> Vec<(String, Scores, strata::features::Features)> {
    let opts = LoadOptions {
        today: strata::date::parse_days("2026-11-25").unwrap(),
        max_reject_fraction: 1.0,
        ..Default::default()
    };
    let m = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let mut results = ADAPTORS.iter().map(|&a| {
        let cohort = load_via(a, ps, es, ns, &opts).unwrap();
        let s = score_cohort(&cohort, &m, as_of, &ListRules::default());
        let r: Vec<_> = (0..cohort.patients.len())
            .map(|i| (cohort.patients.id[i].clone(), s.scores[i], s.features[i]))
            .collect();
        (a, r)
    });
    let (_, first) = results.next().unwrap();
    for (a, r) in results {
        assert_eq!(r, first, "adaptor {a:?} disagrees with Parquet");
    }
    first
}

fn get<'a>(
    r: &'a [(String, Scores, strata::features::Features)],
    id: &str,
) -> &'a (String, Scores, strata::features::Features) {
    r.iter().find(|x| x.0 == id).unwrap()
}

#[test]
fn efi_categories_change_exactly_at_the_published_cut_points() {
    let m = definitions();
    let codes = deficit_codes(&m);
    // n deficits -> expected category: 0.12*36 = 4.32, 0.24*36 = 8.64, 0.36*36 = 12.96.
    let cases = [
        (0, EfiCategory::Fit),
        (4, EfiCategory::Fit),
        (5, EfiCategory::Mild),
        (8, EfiCategory::Mild),
        (9, EfiCategory::Moderate),
        (12, EfiCategory::Moderate),
        (13, EfiCategory::Severe),
        (35, EfiCategory::Severe),
    ];
    let mut ps = Vec::new();
    let mut es = Vec::new();
    for (n, _) in cases {
        let id = format!("p{n:02}");
        ps.push(patient(&id, "1940-01-01"));
        for c in codes.iter().take(n) {
            es.push(ev(&id, "2020-06-01", "snomed", c));
        }
    }
    let r = score(&ps, &es, &[]);
    for (n, cat) in cases {
        let (_, s, _) = get(&r, &format!("p{n:02}"));
        assert_eq!(s.efi_deficits, n as u32, "{n} deficits");
        assert_eq!(s.efi_category, cat, "{n} deficits");
    }
}

#[test]
fn efi_counts_a_deficit_once_from_any_time_up_to_and_including_the_as_of_date() {
    let m = definitions();
    let codes = deficit_codes(&m);
    let ps = vec![
        patient("old", "1940-01-01"),
        patient("on", "1940-01-01"),
        patient("after", "1940-01-01"),
        patient("twice", "1940-01-01"),
    ];
    let es = vec![
        ev("old", "1995-01-01", "snomed", &codes[0]),
        ev("on", AS_OF, "snomed", &codes[0]),
        ev("after", "2025-04-02", "snomed", &codes[0]),
        ev("twice", "2019-01-01", "snomed", &codes[0]),
        ev("twice", "2024-01-01", "snomed", &codes[0]),
    ];
    let r = score(&ps, &es, &[]);
    assert_eq!(get(&r, "old").1.efi_deficits, 1, "no look-back limit");
    assert_eq!(get(&r, "on").1.efi_deficits, 1, "the as-of day counts");
    assert_eq!(get(&r, "after").1.efi_deficits, 0, "the day after does not");
    assert_eq!(get(&r, "after").2.ignored_after_as_of, 1);
    assert_eq!(get(&r, "twice").1.efi_deficits, 1, "a deficit counts once");
}

#[test]
fn polypharmacy_needs_five_distinct_medicines_in_the_12_months_to_the_as_of_date() {
    let meds = ["1000001", "1000002", "1000003", "1000004", "1000005"];
    let mut es = Vec::new();
    // five: four recent + one on the first day of the window (the day after the as-of date
    // minus 12 months: the window is 365 days ending on the as-of date)
    for m in &meds[..4] {
        es.push(ev("five", "2025-01-01", "dmd", m));
    }
    es.push(ev("five", "2024-04-02", "dmd", meds[4]));
    // edge: the fifth exactly 12 months before, one day before the window opens
    for m in &meds[..4] {
        es.push(ev("edge", "2025-01-01", "dmd", m));
    }
    es.push(ev("edge", "2024-04-01", "dmd", meds[4]));
    // repeats: one medicine issued five times
    for d in [
        "2024-05-01",
        "2024-07-01",
        "2024-09-01",
        "2024-11-01",
        "2025-01-01",
    ] {
        es.push(ev("repeat", d, "dmd", meds[0]));
    }
    // the fifth after the as-of date
    for m in &meds[..4] {
        es.push(ev("later", "2025-01-01", "dmd", m));
    }
    es.push(ev("later", "2025-04-02", "dmd", meds[4]));
    let ps: Vec<P> = ["five", "edge", "repeat", "later"]
        .iter()
        .map(|id| patient(id, "1940-01-01"))
        .collect();
    let r = score(&ps, &es, &[]);
    assert_eq!(get(&r, "five").1.efi_deficits, 1);
    assert_eq!(get(&r, "five").2.medicines, 5);
    assert_eq!(get(&r, "edge").1.efi_deficits, 0);
    assert_eq!(get(&r, "edge").2.medicines, 4);
    assert_eq!(get(&r, "repeat").1.efi_deficits, 0);
    assert_eq!(get(&r, "repeat").2.medicines, 1);
    assert_eq!(get(&r, "later").1.efi_deficits, 0);
}

#[test]
fn read_v2_and_ctv3_codes_match_with_padding_and_case_kept() {
    let ps: Vec<P> = ["padded", "bare", "wrongcase", "ctv3", "both"]
        .iter()
        .map(|id| patient(id, "1940-01-01"))
        .collect();
    let es = vec![
        // 8HTl. "Ref elderly fall prevent clinc" is in the falls list (Read v2, lower-case l).
        ev("padded", "2020-01-01", "read2", "8HTl."),
        ev("bare", "2020-01-01", "readv2", " 8HTl "),
        ev("wrongcase", "2020-01-01", "read2", "8HTL."),
        // CTV3 TC... "Accidental fall".
        ev("ctv3", "2020-01-01", "ctv3", "TC..."),
        // Falls coded in all three systems still count once.
        ev("both", "2020-01-01", "ctv3", "TC..."),
        ev("both", "2021-01-01", "snomed", "1912002"),
        ev("both", "2021-01-01", "read2", "16D.."),
    ];
    let r = score(&ps, &es, &[]);
    assert_eq!(get(&r, "padded").1.efi_deficits, 1);
    assert_eq!(get(&r, "bare").1.efi_deficits, 1);
    assert_eq!(
        get(&r, "wrongcase").1.efi_deficits,
        0,
        "Read codes are case-sensitive"
    );
    assert_eq!(get(&r, "ctv3").1.efi_deficits, 1);
    assert_eq!(get(&r, "both").1.efi_deficits, 1);
}

#[test]
fn a_code_in_two_deficits_counts_for_both() {
    let m = definitions();
    let snomed = strata::codes::CodeSystem::Snomed;
    let (code, n) = m
        .efi
        .codes
        .iter()
        .filter(|(_, s, _)| *s == snomed)
        .map(|(_, _, c)| {
            (
                c.clone(),
                m.efi
                    .codes
                    .iter()
                    .filter(|(_, s, c2)| *s == snomed && c2 == c)
                    .count(),
            )
        })
        .find(|(_, n)| *n == 2)
        .unwrap();
    assert_eq!(n, 2);
    let r = score(
        &[patient("a", "1940-01-01")],
        &[ev("a", "2020-01-01", "snomed", &code)],
        &[],
    );
    assert_eq!(get(&r, "a").1.efi_deficits, 2);
}

fn icd(id: &str, date: &'static str, code: &str) -> E {
    ev(id, date, "icd10", code)
}

#[test]
fn hfrs_sums_published_weights_once_per_three_character_category() {
    let ps: Vec<P> = ["dementia", "b49", "b50", "b150", "b151"]
        .iter()
        .map(|id| patient(id, "1940-01-01"))
        .collect();
    let es = vec![
        // F00 (7.1) three times with different fourth characters and dots: counts once.
        icd("dementia", "2024-01-01", "F00.1"),
        icd("dementia", "2024-02-01", "F009"),
        icd("dementia", "2024-03-01", "f00"),
        // 4.9 = G81 (4.4) + Z91 (0.5): low.
        icd("b49", "2024-01-01", "G810"),
        icd("b49", "2024-01-01", "Z915"),
        // 5.0 = G81 (4.4) + Z73 (0.6): intermediate (Gilbert 2018: 5-15).
        icd("b50", "2024-01-01", "G81.1"),
        icd("b50", "2024-01-01", "Z736"),
        // 15.0 = F00 7.1 + G81 4.4 + N39 3.2 + R11 0.3: intermediate.
        icd("b150", "2024-01-01", "F001"),
        icd("b150", "2024-01-01", "G819"),
        icd("b150", "2024-01-01", "N390"),
        icd("b150", "2024-01-01", "R11X"),
        // 15.1 = F00 7.1 + G81 4.4 + R29 3.6: high.
        icd("b151", "2024-01-01", "F001"),
        icd("b151", "2024-01-01", "G819"),
        icd("b151", "2024-01-01", "R296"),
    ];
    let r = score(&ps, &es, &[]);
    let h = |id: &str| (get(&r, id).1.hfrs_tenths, get(&r, id).1.hfrs_band);
    assert_eq!(h("dementia"), (71, HfrsBand::Intermediate));
    assert_eq!(h("b49"), (49, HfrsBand::Low));
    assert_eq!(h("b50"), (50, HfrsBand::Intermediate));
    assert_eq!(h("b150"), (150, HfrsBand::Intermediate));
    assert_eq!(h("b151"), (151, HfrsBand::High));
}

#[test]
fn hfrs_window_is_the_two_years_up_to_the_as_of_date() {
    let ps: Vec<P> = ["first", "before", "on", "after", "gp"]
        .iter()
        .map(|id| patient(id, "1940-01-01"))
        .collect();
    let es = vec![
        icd("first", "2023-04-02", "F00"),
        icd("before", "2023-04-01", "F00"),
        icd("on", AS_OF, "F00"),
        icd("after", "2025-04-02", "F00"),
        // An ICD-10-like string in a GP code system is not a hospital diagnosis.
        ev("gp", "2024-01-01", "snomed", "26929004"),
    ];
    let r = score(&ps, &es, &[]);
    assert_eq!(
        get(&r, "first").1.hfrs_tenths,
        71,
        "window opens the day after the as-of date minus 24 months"
    );
    assert_eq!(get(&r, "before").1.hfrs_tenths, 0);
    assert_eq!(get(&r, "on").1.hfrs_tenths, 71);
    assert_eq!(get(&r, "after").1.hfrs_tenths, 0);
    assert_eq!(get(&r, "gp").1.hfrs_tenths, 0);
}

#[test]
fn charlson_uses_quan_2011_weights_and_the_hierarchy() {
    let ps: Vec<P> = ["diab", "mets", "liver", "aids", "mixed", "old"]
        .iter()
        .map(|id| patient(id, "1940-01-01"))
        .collect();
    let es = vec![
        // Uncomplicated (0) and complicated (1) diabetes: only the complicated one scores.
        icd("diab", "2024-01-01", "E11.9"),
        icd("diab", "2024-01-01", "E11.2"),
        // Lung cancer (2) and secondary (6): metastatic supersedes any malignancy.
        icd("mets", "2024-01-01", "C34.9"),
        icd("mets", "2024-01-01", "C78.0"),
        // Mild (2) and moderate/severe (4) liver disease: 4.
        icd("liver", "2024-01-01", "K70.3"),
        icd("liver", "2024-01-01", "I85.0"),
        // HIV disease: 4 under Quan 2011.
        icd("aids", "2024-01-01", "B20"),
        // MI (0) + CHF (2) + dementia (2) + COPD (1) + renal (1) = 6.
        icd("mixed", "2024-01-01", "I21.4"),
        icd("mixed", "2024-01-01", "I50.0"),
        icd("mixed", "2024-01-01", "F01.9"),
        icd("mixed", "2024-01-01", "J44.9"),
        icd("mixed", "2024-01-01", "N18.4"),
        // Outside the 24-month window.
        icd("old", "2023-04-01", "I50.0"),
    ];
    let r = score(&ps, &es, &[]);
    let c = |id: &str| get(&r, id).1.charlson;
    assert_eq!(c("diab"), 1);
    assert_eq!(c("mets"), 6);
    assert_eq!(c("liver"), 4);
    assert_eq!(c("aids"), 4);
    assert_eq!(c("mixed"), 6);
    assert_eq!(c("old"), 0);
}

#[test]
fn hospital_activity_counts_the_12_months_to_the_as_of_date() {
    let enc = |id: &str, k: &str, setting: &'static str, start: &'static str, em: bool| N {
        id: id.to_string(),
        enc: k.to_string(),
        setting,
        start,
        end: None,
        emergency: em,
        ..Default::default()
    };
    let ns = vec![
        enc("a", "1", "inpatient", "2024-04-02", true),
        enc("a", "2", "inpatient", "2024-04-01", true),
        enc("a", "3", "inpatient", "2025-01-01", false),
        enc("a", "4", "ae", "2025-04-01", true),
        enc("a", "5", "ae", "2025-04-02", true),
    ];
    let r = score(&[patient("a", "1940-01-01")], &[], &ns);
    let f = get(&r, "a").2;
    assert_eq!(f.emergency_admissions_12m, 1);
    assert_eq!(f.ae_attendances_12m, 1);
    assert_eq!(f.ignored_after_as_of, 1);
}
