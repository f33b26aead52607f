//! `strata features`: the risk models' feature table. No leakage: records after the as-of date
//! move no feature and only the outcome labels; the exported file is what the library computes.

mod common;

use common::*;
use strata::lists::ListRules;
use strata::predictors::{predictor_table, Outcome};
use strata::run::score_cohort;

fn enc(id: &str, k: &str, setting: &'static str, start: &'static str, em: bool) -> N {
    N {
        id: id.to_string(),
        enc: k.to_string(),
        setting,
        start,
        end: None,
        emergency: em,
        ..Default::default()
    }
}

/// The same history for `id`; `later` adds what happens after the as-of date.
fn history(id: &str, later: bool) -> (Vec<E>, Vec<N>) {
    let mut es = vec![
        ev(id, "2023-06-01", "snomed", "1912002"),
        ev(id, "2024-11-01", "icd10", "F00.1"),
        ev(id, "2025-01-10", "dmd", "39720311000001101"),
    ];
    let mut ns = vec![
        enc(id, &format!("{id}1"), "inpatient", "2024-11-01", true),
        enc(id, &format!("{id}2"), "ae", "2025-03-01", true),
        enc(id, &format!("{id}3"), "outpatient", "2024-02-01", false),
    ];
    if later {
        es.push(ev(id, "2025-06-01", "icd10", "W19"));
        // An injury primary diagnosis with the fall: a falls admission (OHID C29).
        es.push(ev(id, "2025-06-01", "icd10", "S72.0"));
        es.push(ev(id, "2025-06-01", "snomed", "161898004"));
        ns.push(enc(id, &format!("{id}4"), "inpatient", "2025-06-01", true));
        ns.push(enc(id, &format!("{id}5"), "ae", "2025-05-01", true));
    }
    (es, ns)
}

#[test]
fn records_after_the_as_of_date_move_no_feature_only_the_outcomes() {
    let mut later = patient("later", "1940-04-01");
    later.death = Some("2025-12-01");
    let ps = [patient("before", "1940-04-01"), later];
    let (mut es, mut ns) = history("before", false);
    let (e2, n2) = history("later", true);
    es.extend(e2);
    ns.extend(n2);
    let opts = load_options();
    let defs = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    for a in ADAPTORS {
        let c = load_via(a, &ps, &es, &ns, &opts).unwrap();
        let scored = score_cohort(&c, &defs, as_of, &ListRules::default());
        let t = predictor_table(&c, &defs, &scored, as_of, true);
        let w = t.names.len();
        assert_eq!(t.patients.len(), 2);
        let (before, later) = (&t.rows[..w], &t.rows[w..]);
        for j in 0..w {
            assert!(
                before[j] == later[j] || (before[j].is_nan() && later[j].is_nan()),
                "{a:?}: feature {} moved: {} vs {}",
                t.names[j],
                before[j],
                later[j]
            );
        }
        // The history is seen: one emergency admission and 12-month A&E, F00 in HFRS.
        let col = |n: &str| t.names.iter().position(|x| x == n).unwrap();
        assert_eq!(before[col("emergency_admissions_12m")], 1.0);
        assert_eq!(before[col("ae_attendances_3m")], 1.0);
        assert_eq!(before[col("outpatient_attendances_12m")], 0.0);
        assert_eq!(before[col("outpatient_attendances_24m")], 1.0);
        assert!((before[col("hfrs_score")] - 7.1).abs() < 1e-6);
        assert_eq!(before[col("days_since_emergency_admission")], 151.0);
        let o = t.outcomes.as_ref().unwrap();
        assert_eq!(o[0], [false, false, false, false]);
        assert_eq!(o[1], [true, true, true, true], "{:?}", Outcome::ALL);
    }
}

#[test]
fn the_exported_file_is_the_table_with_outcomes() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("features.parquet");
    let o = strata(&[
        "features",
        "--cohort",
        fixtures().join("cohort-2000").to_str().unwrap(),
        "--as-of",
        "2024-04-01",
        "--out",
        out.to_str().unwrap(),
        "--outcomes",
        "--today",
        "2026-11-25",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let df = read_parquet(&out);
    let names = strata::predictors::predictor_names(&definitions());
    assert_eq!(df.width(), 1 + names.len() + strata::predictors::N_OUTCOMES);
    assert!(df.height() > 1900 && df.height() <= 2000, "{}", df.height());
    let admitted = df
        .column("emergency_admission")
        .unwrap()
        .bool()
        .unwrap()
        .sum()
        .unwrap();
    assert!(admitted > 0, "some admissions in the year after");
    // Outcomes need the year after the as-of date to have passed.
    let o = strata(&[
        "features",
        "--cohort",
        fixtures().join("cohort-2000").to_str().unwrap(),
        "--as-of",
        "2026-01-01",
        "--out",
        out.to_str().unwrap(),
        "--outcomes",
        "--today",
        "2026-11-25",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Training and evaluation rows: people registered for the whole outcome year. Someone who
/// leaves the practice during it, or joins after the as-of date, is left out (and counted); a
/// death ends registration and leaves nobody out. A death without an admission is no emergency
/// admission, and an event of the composite outcome.
#[test]
fn people_not_registered_for_the_outcome_year_are_left_out_and_counted() {
    let mut ps = vec![];
    for (id, reg, death) in [
        ("stays", (Some("2010-01-01"), None), None),
        ("leaves", (Some("2010-01-01"), Some("2025-09-30")), None),
        ("joins", (Some("2025-06-01"), None), None),
        (
            "dies",
            (Some("2010-01-01"), Some("2025-08-01")),
            Some("2025-08-01"),
        ),
        ("unknown", (None, None), None),
    ] {
        let mut p = patient(id, "1940-04-01");
        p.registered = reg;
        p.death = death;
        ps.push(p);
    }
    let opts = load_options();
    let defs = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    for a in ADAPTORS {
        let c = load_via(a, &ps, &[], &[], &opts).unwrap();
        let scored = score_cohort(&c, &defs, as_of, &ListRules::default());
        let t = predictor_table(&c, &defs, &scored, as_of, true);
        let ids: Vec<&str> = t
            .patients
            .iter()
            .map(|&p| c.patients.id[p as usize].as_str())
            .collect();
        assert_eq!(ids, ["dies", "stays", "unknown"], "{a:?}");
        assert_eq!(t.not_registered, 2, "{a:?}");
        let o = t.outcomes.as_ref().unwrap();
        assert_eq!(
            o[0],
            [false, false, true, true],
            "{a:?}: a death without an admission"
        );
        // Without outcomes (the nightly lists' features) nobody is left out.
        assert_eq!(
            predictor_table(&c, &defs, &scored, as_of, false)
                .patients
                .len(),
            5
        );
    }
}

/// Care home residence for the risk models comes from dated residence codes (PRIMIS
/// LONGRES_COD) when the cohort has them: a code recorded after a date does not count at that
/// date, so training on last year's features does not use this year's care home status.
#[test]
fn care_home_comes_from_dated_residence_codes() {
    let ps = [
        patient("at_home", "1935-04-01"),
        patient("moved_in", "1935-04-01"),
    ];
    let es = [ev("moved_in", "2024-10-01", "snomed", "248171000000108")];
    let opts = load_options();
    let defs = definitions();
    for a in ADAPTORS {
        let c = load_via(a, &ps, &es, &[], &opts).unwrap();
        for (date, want) in [("2024-04-01", [0.0, 0.0]), ("2025-04-01", [0.0, 1.0])] {
            let as_of = strata::date::parse_days(date).unwrap();
            let scored = score_cohort(&c, &defs, as_of, &ListRules::default());
            assert!(scored.care_home_coded, "{a:?}");
            let t = predictor_table(&c, &defs, &scored, as_of, false);
            let (w, col) = (
                t.names.len(),
                t.names.iter().position(|n| n == "care_home").unwrap(),
            );
            let got: Vec<f32> = (0..2).map(|r| t.rows[r * w + col]).collect();
            assert_eq!(got, want, "{a:?} at {date}");
        }
    }
    // Without any residence code in the cohort, nobody is coded and the patients file's flag
    // (a snapshot) is used.
    let c = load_via(Adaptor::Frames, &ps, &[], &[], &opts).unwrap();
    let scored = score_cohort(
        &c,
        &defs,
        strata::date::parse_days(AS_OF).unwrap(),
        &ListRules::default(),
    );
    assert!(!scored.care_home_coded);
}

/// What `strata score` leaves out once checked (event rows dated on or before the as-of date
/// whose code nothing strata computes reads, `RunModels::leave_out`) moves no feature, score,
/// predictor or palliative register entry: on the fixture cohort and on a patient whose body
/// weight is recorded before, on and after the as-of date beside a fall and a diagnosis on it,
/// through every adaptor. Only the rows dated on or before the as-of date are left out, and the
/// count is reported.
#[test]
fn rows_left_out_at_layout_move_no_feature_score_or_predictor() {
    use strata::cohort::Cohort;
    use strata::partition::RunModels;
    let defs = definitions();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let run = RunModels {
        definitions: defs.clone(),
        models: Vec::new(),
        withheld: Vec::new(),
        ranking: None,
    };
    let leaving = strata::input::LoadOptions {
        leave_out: Some(run.leave_out(as_of)),
        ..load_options()
    };
    let same = |keep: &Cohort, leave: &Cohort, what: &str| {
        let rules = ListRules::default();
        let (a, b) = (
            score_cohort(keep, &defs, as_of, &rules),
            score_cohort(leave, &defs, as_of, &rules),
        );
        // The first patient that differs, if any (the whole vectors would be long to print).
        let first = |x: Vec<String>, y: Vec<String>| {
            let k = x.iter().zip(&y).position(|(x, y)| x != y);
            (x.len() == y.len() && k.is_none())
                .then_some(())
                .ok_or_else(|| {
                    k.map(|k| format!("patient {k}: {} against {}", x[k], y[k]))
                        .unwrap_or_else(|| "patients".into())
                })
        };
        fn dbg<T: std::fmt::Debug>(v: &[T]) -> Vec<String> {
            v.iter().map(|x| format!("{x:?}")).collect()
        }
        assert_eq!(
            first(dbg(&a.features), dbg(&b.features)),
            Ok(()),
            "{what}: features"
        );
        assert_eq!(
            first(dbg(&a.scores), dbg(&b.scores)),
            Ok(()),
            "{what}: scores"
        );
        assert_eq!(a.unused_codes, b.unused_codes, "{what}: unused codes");
        let (ta, tb) = (
            predictor_table(keep, &defs, &a, as_of, true),
            predictor_table(leave, &defs, &b, as_of, true),
        );
        assert_eq!(
            format!("{:?}", ta.rows),
            format!("{:?}", tb.rows),
            "{what}: predictors"
        );
        assert_eq!(
            strata::palliative::on_register(keep, &defs, as_of),
            strata::palliative::on_register(leave, &defs, as_of),
            "{what}: palliative register"
        );
        assert_eq!(keep.rejects.len(), leave.rejects.len(), "{what}: rejects");
        keep.events.code.len() - leave.events.code.len()
    };
    let said = |c: &Cohort| {
        c.read_paths
            .iter()
            .find(|(_, p)| p.contains("left out once checked"))
            .map(|(f, p)| format!("{f}: {p}"))
    };

    let fixture = fixtures().join("cohort-2000");
    let keep = Cohort::load(&fixture, &load_options()).unwrap();
    let leave = Cohort::load(&fixture, &leaving).unwrap();
    let n = same(&keep, &leave, "fixture");
    assert!(n > 0, "the fixture has rows nothing reads");
    assert_eq!(said(&keep), None);
    assert_eq!(
        said(&leave),
        Some(format!(
            "events.parquet: {n} rows whose code nothing strata computes reads, dated on or before \
             {AS_OF}, left out once checked"
        ))
    );

    // Body weight (read by nothing) before, on and after the as-of date; a fall (an eFI deficit)
    // and a hospital diagnosis on it.
    let ps = [patient("w", "1940-04-01")];
    let es = [
        ev("w", "2024-01-01", "snomed", "27113001"),
        ev("w", "2025-04-01", "snomed", "27113001"),
        ev("w", "2025-04-02", "snomed", "27113001"),
        ev("w", "2025-04-01", "snomed", "1912002"),
        ev("w", "2025-04-01", "icd10", "F00.1"),
    ];
    for a in ADAPTORS {
        let keep = load_via(a, &ps, &es, &[], &load_options()).unwrap();
        let leave = load_via(a, &ps, &es, &[], &leaving).unwrap();
        assert_eq!(same(&keep, &leave, &format!("{a:?}")), 2, "{a:?}");
        assert_eq!(leave.events.code.len(), 3, "{a:?}");
    }
}
