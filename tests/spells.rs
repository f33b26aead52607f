//! Hospital activity counted as clinicians count it, on hand-made cohorts through every input
//! adaptor: encounters joined into spells (transfers, nested stays, HES continuous inpatient
//! spells with transfer codes and spell ids), a spell across the as-of date, falls admissions as
//! OHID C29 defines them (injury primary diagnosis, W00-W19 cause, linked by `encounter_id`),
//! and one window on every boundary day for the list, the model features, the factors' source
//! and the indicators.

mod common;

use common::*;
use strata::cohort::Cohort;
use strata::indicators::{count, q};
use strata::input::spells::FallsLink;
use strata::input::LoadOptions;
use strata::lists::ListRules;
use strata::predictors::{outcomes, predictor_table};
use strata::run::score_cohort;

fn opts() -> LoadOptions {
    LoadOptions {
        today: days("2026-06-01"),
        ..Default::default()
    }
}

/// An inpatient encounter.
fn stay(id: &str, enc: &str, start: &'static str, end: &'static str, emergency: bool) -> N {
    N {
        id: id.into(),
        enc: enc.into(),
        setting: "inpatient",
        start,
        end: Some(end),
        emergency,
        ..Default::default()
    }
}

/// An ICD-10 diagnosis linked to encounter `enc` at `position`.
fn dx(id: &str, date: &'static str, code: &str, enc: &str, position: i32) -> E {
    E {
        enc: Some(enc.into()),
        position: Some(position),
        ..ev(id, date, "icd10", code)
    }
}

fn person(id: &str, birth: &'static str) -> P {
    patient(id, birth)
}

/// Each patient's spells as (start, end, emergency, falls by the as-of date).
fn spells_of(c: &Cohort, id: &str) -> Vec<(String, String, bool, bool)> {
    let p = c.patients.id.iter().position(|x| x == id).unwrap();
    let s = &c.spells;
    s.of(p)
        .map(|k| {
            (
                strata::date::format_days(s.start[k]),
                strata::date::format_days(s.end[k]),
                s.emergency[k],
                s.falls_by(k, days(AS_OF)),
            )
        })
        .collect()
}

fn each_adaptor(ps: &[P], es: &[E], ns: &[N], check: impl Fn(&Cohort, Adaptor)) {
    for a in ADAPTORS {
        let c = load_via(a, ps, es, ns, &opts()).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        check(&c, a);
    }
}

#[test]
fn a_transfer_on_the_day_of_discharge_is_one_admission_and_one_falls_admission() {
    // Discharged 15 June, transferred the same day to another hospital: one emergency spell, a
    // hip fracture after a fall on the first encounter and again on the second.
    let ps = [person("a", "1940-01-01")];
    let ns = [
        stay("a", "a1", "2024-06-10", "2024-06-15", true),
        stay("a", "a2", "2024-06-15", "2024-06-30", true),
    ];
    let es = [
        dx("a", "2024-06-10", "S72.0", "a1", 1),
        dx("a", "2024-06-10", "W19", "a1", 2),
        dx("a", "2024-06-15", "S720", "a2", 1),
        dx("a", "2024-06-15", "W19", "a2", 2),
    ];
    each_adaptor(&ps, &es, &ns, |c, a| {
        assert_eq!(
            spells_of(c, "a"),
            [("2024-06-10".into(), "2024-06-30".into(), true, true)],
            "{a:?}"
        );
        assert_eq!(c.spells.report.falls_link, FallsLink::EncounterId);
        assert!(c.spells.report.diagnosis_position);
        let k = count(c, days(AS_OF));
        let row = k.rows["PCN1"];
        assert_eq!((row[q::EMERGENCY], row[q::FALLS]), (1, 1), "{a:?}");
        // Age 84 on the window's first day: the 80-84 band.
        assert_eq!(row[q::FALLS_BAND + 3], 1, "{a:?}");
    });
}

#[test]
fn a_nested_stay_is_inside_its_spell_and_bed_days_are_the_spells() {
    let ps = [person("a", "1940-01-01")];
    let ns = [
        stay("a", "a1", "2024-09-01", "2024-09-11", true),
        stay("a", "a2", "2024-09-03", "2024-09-05", false),
    ];
    each_adaptor(&ps, &[], &ns, |c, a| {
        assert_eq!(
            spells_of(c, "a"),
            [("2024-09-01".into(), "2024-09-11".into(), true, false)],
            "{a:?}"
        );
        let defs = definitions();
        let scored = score_cohort(c, &defs, days(AS_OF), &ListRules::default());
        let t = predictor_table(c, &defs, &scored, days(AS_OF), false);
        let col = |n: &str| t.names.iter().position(|x| x == n).unwrap();
        assert_eq!(
            t.rows[col("bed_days_12m")],
            10.0,
            "{a:?}: 10 nights, not 12"
        );
        assert_eq!(t.rows[col("emergency_admissions_12m")], 1.0, "{a:?}");
    });
}

#[test]
fn a_spell_that_began_before_the_window_is_no_admission_in_it() {
    // In hospital on the as-of date (admitted 28 March), transferred on 3 April: no emergency
    // admission in the outcome year; a new admission in May is one.
    let ps = [person("a", "1940-01-01"), person("b", "1940-01-01")];
    let ns = [
        stay("a", "a1", "2025-03-28", "2025-04-03", true),
        stay("a", "a2", "2025-04-03", "2025-04-20", true),
        stay("b", "b1", "2025-03-28", "2025-04-03", true),
        stay("b", "b2", "2025-05-03", "2025-05-04", true),
    ];
    each_adaptor(&ps, &[], &ns, |c, a| {
        let o = outcomes(c, days(AS_OF));
        assert!(!o[0][0], "{a:?}: the transfer is not a new admission");
        assert!(o[1][0], "{a:?}");
        // The spell across the as-of date counts in the 12 months to it.
        let k = count(c, days(AS_OF));
        assert_eq!(k.rows["PCN1"][q::EMERGENCY], 2, "{a:?}");
    });
}

#[test]
fn falls_are_the_admissions_own_diagnoses() {
    // a: pneumonia admission; a W19 (and a wrist fracture) coded on an A&E attendance within
    // its dates: not a falls admission. b: a fall (W19) without an injury primary diagnosis:
    // not one. c: an injury primary diagnosis and a fall: one. d: the same, but the diagnoses
    // are linked to another patient's encounter: not one (counted as unmatched).
    let ps = ["a", "b", "c", "d"].map(|i| person(i, "1945-01-01"));
    let ns = vec![
        stay("a", "a1", "2024-07-01", "2024-07-10", true),
        N {
            setting: "ae",
            end: None,
            ..stay("a", "a2", "2024-07-04", "2024-07-04", true)
        },
        stay("b", "b1", "2024-07-01", "2024-07-05", true),
        stay("c", "c1", "2024-07-01", "2024-07-05", true),
        stay("d", "d1", "2024-07-01", "2024-07-05", true),
    ];
    let es = [
        dx("a", "2024-07-01", "J18.9", "a1", 1),
        dx("a", "2024-07-04", "S52.5", "a2", 1),
        dx("a", "2024-07-04", "W19", "a2", 2),
        dx("b", "2024-07-01", "J18.9", "b1", 1),
        dx("b", "2024-07-01", "W19", "b1", 2),
        dx("b", "2024-07-01", "S72.0", "b1", 3),
        dx("c", "2024-07-01", "S72.0", "c1", 1),
        dx("c", "2024-07-01", "W01", "c1", 2),
        dx("d", "2024-07-01", "S72.0", "c1", 1),
        dx("d", "2024-07-01", "W01", "c1", 2),
    ];
    each_adaptor(&ps, &es, &ns, |c, a| {
        for (id, falls) in [("a", false), ("b", false), ("c", true), ("d", false)] {
            assert_eq!(spells_of(c, id)[0].3, falls, "{a:?}: {id}");
        }
        // a's two A&E diagnoses and d's two linked to c's admission.
        assert_eq!(c.spells.report.unmatched_links, 4, "{a:?}");
        assert_eq!(count(c, days(AS_OF)).rows["PCN1"][q::FALLS], 1, "{a:?}");
    });
    // Without links, diagnoses are matched by date within the stay (and the manifest says so):
    // then a's A&E codes make its admission a falls admission, the error links avoid.
    let unlinked: Vec<E> = es
        .iter()
        .map(|e| E {
            enc: None,
            position: None,
            ..e.clone()
        })
        .collect();
    each_adaptor(&ps, &unlinked, &ns, |c, a| {
        assert_eq!(c.spells.report.falls_link, FallsLink::Date, "{a:?}");
        assert!(spells_of(c, "a")[0].3, "{a:?}");
        assert!(spells_of(c, "c")[0].3, "{a:?}");
    });
}

#[test]
fn a_death_after_two_admissions_one_with_a_transfer_is_not_three() {
    let mut ps = vec![];
    let mut ns = vec![];
    for k in 0..10 {
        let id = format!("p{k}");
        let mut p = person(&id, "1940-01-01");
        p.death = Some("2025-02-01");
        ps.push(p);
        ns.push(stay(
            &id,
            &format!("{id}a"),
            "2024-12-01",
            "2024-12-05",
            true,
        ));
        ns.push(stay(
            &id,
            &format!("{id}b"),
            "2024-12-05",
            "2024-12-12",
            true,
        ));
        ns.push(stay(
            &id,
            &format!("{id}c"),
            "2025-01-10",
            "2025-01-12",
            true,
        ));
    }
    each_adaptor(&ps, &[], &ns, |c, a| {
        let row = count(c, days(AS_OF)).rows["PCN1"];
        assert_eq!(row[q::DEATHS], 10, "{a:?}");
        assert_eq!(row[q::THREE_PLUS], 0, "{a:?}: two spells, not three rows");
        assert_eq!(row[q::EMERGENCY], 20, "{a:?}");
    });
}

#[test]
fn hes_continuous_inpatient_spells_follow_transfer_codes_and_spell_ids() {
    let ps = ["a", "b", "c", "d", "e"].map(|i| person(i, "1945-01-01"));
    let t =
        |n: N, source: Option<&'static str>, dest: Option<&'static str>| N { source, dest, ..n };
    let ns = vec![
        // a: discharged to another hospital (51), admitted there two days later: one CIPS.
        t(
            stay("a", "a1", "2024-05-01", "2024-05-04", true),
            None,
            Some("51"),
        ),
        t(
            stay("a", "a2", "2024-05-06", "2024-05-09", false),
            Some("51"),
            None,
        ),
        // b: the same two days apart without transfer codes: two spells.
        t(
            stay("b", "b1", "2024-05-01", "2024-05-04", true),
            Some("19"),
            Some("19"),
        ),
        t(
            stay("b", "b2", "2024-05-06", "2024-05-09", true),
            Some("19"),
            Some("19"),
        ),
        // c: a transfer three days later is past the gap: two spells.
        t(
            stay("c", "c1", "2024-05-01", "2024-05-04", true),
            None,
            Some("51"),
        ),
        t(
            stay("c", "c2", "2024-05-07", "2024-05-09", true),
            Some("51"),
            None,
        ),
        // d: two episodes of one provider spell with a gap in the dates: one spell.
        N {
            spell: Some("S1"),
            ..stay("d", "d1", "2024-05-01", "2024-05-02", true)
        },
        N {
            spell: Some("S1"),
            ..stay("d", "d2", "2024-05-05", "2024-05-06", true)
        },
        // e: admission method elective (11) on a row flagged emergency: the method decides.
        N {
            method: Some("11"),
            ..stay("e", "e1", "2024-05-01", "2024-05-02", true)
        },
        N {
            method: Some("21"),
            ..stay("e", "e2", "2024-08-01", "2024-08-02", true)
        },
    ];
    each_adaptor(&ps, &[], &ns, |c, a| {
        let n = |id: &str| spells_of(c, id).len();
        assert_eq!(
            [n("a"), n("b"), n("c"), n("d"), n("e")],
            [1, 2, 2, 1, 2],
            "{a:?}"
        );
        assert!(
            spells_of(c, "a")[0].2,
            "{a:?}: emergency as its first episode"
        );
        assert_eq!(
            spells_of(c, "e").iter().map(|s| s.2).collect::<Vec<_>>(),
            [false, true],
            "{a:?}"
        );
        let r = &c.spells.report;
        assert_eq!(r.method_disagreements, 1, "{a:?}");
        assert_eq!(
            r.columns,
            [
                "spell_id",
                "admission_method",
                "admission_source",
                "discharge_destination"
            ],
            "{a:?}"
        );
        assert_eq!(r.falls_link, FallsLink::Date);
    });
}

#[test]
fn every_boundary_day_falls_in_one_window_for_every_count() {
    // As-of 2025-04-01: the 12-month window is 2024-04-02..=2025-04-01. One emergency
    // admission each on the day before the window, its first day, the as-of date and the day
    // after.
    let cases = [
        ("before", "2024-04-01", 0),
        ("first", "2024-04-02", 1),
        ("last", "2025-04-01", 1),
        ("after", "2025-04-02", 0),
    ];
    let ps: Vec<P> = cases
        .iter()
        .map(|(i, _, _)| person(i, "1940-01-01"))
        .collect();
    let ns: Vec<N> = cases
        .iter()
        .map(|(i, d, _)| stay(i, &format!("{i}1"), d, d, true))
        .collect();
    let defs = definitions();
    each_adaptor(&ps, &[], &ns, |c, a| {
        let as_of = days(AS_OF);
        let scored = score_cohort(c, &defs, as_of, &ListRules::default());
        let t = predictor_table(c, &defs, &scored, as_of, false);
        let col = t
            .names
            .iter()
            .position(|x| x == "emergency_admissions_12m")
            .unwrap();
        let per_pcn = count(c, as_of).rows["PCN1"][q::EMERGENCY];
        let mut total = 0;
        for (id, _, want) in &cases {
            let p = c.patients.id.iter().position(|x| x == id).unwrap();
            // The list column and the model feature (the factors' source) agree.
            assert_eq!(
                scored.features[p].emergency_admissions_12m as i32, *want,
                "{a:?}: list column, {id}"
            );
            let row = t.patients.iter().position(|&x| x as usize == p).unwrap();
            assert_eq!(
                t.rows[row * t.names.len() + col] as i32,
                *want,
                "{a:?}: feature, {id}"
            );
            total += want;
        }
        assert_eq!(per_pcn as i32, total, "{a:?}: indicators");
    });
}

#[test]
fn a_fall_coded_only_after_a_transfer_is_not_the_admissions_cause() {
    // OHID C29 counts the admission's first episode: its primary diagnosis an injury and a fall
    // recorded on it. a: hip fracture and W19 on the first encounter, transferred the same day:
    // a falls admission. b: a hip fracture first with no fall recorded, the fall coded only on
    // the transfer's encounter: not a falls admission by C29 (one taking a fall from any episode
    // would count it), still one emergency admission.
    let ps = [person("a", "1940-01-01"), person("b", "1940-01-01")];
    let ns = [
        stay("a", "a1", "2024-06-10", "2024-06-15", true),
        stay("a", "a2", "2024-06-15", "2024-06-30", true),
        stay("b", "b1", "2024-06-10", "2024-06-15", true),
        stay("b", "b2", "2024-06-15", "2024-06-30", true),
    ];
    let es = [
        dx("a", "2024-06-10", "S72.0", "a1", 1),
        dx("a", "2024-06-10", "W19", "a1", 2),
        dx("b", "2024-06-10", "S72.0", "b1", 1),
        dx("b", "2024-06-20", "S72.0", "b2", 1),
        dx("b", "2024-06-20", "W19", "b2", 2),
    ];
    each_adaptor(&ps, &es, &ns, |c, a| {
        assert!(spells_of(c, "a")[0].3, "{a:?}");
        assert_eq!(spells_of(c, "b").len(), 1, "{a:?}");
        assert!(!spells_of(c, "b")[0].3, "{a:?}");
        let row = count(c, days(AS_OF)).rows["PCN1"];
        assert_eq!((row[q::EMERGENCY], row[q::FALLS]), (2, 1), "{a:?}");
    });
}
