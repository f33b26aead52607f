//! The population-health indicators against hand-worked examples on a tiny cohort built here:
//! who is in the population (aged 65+ and alive on the window's first day), which admissions
//! count (emergency, starting in the 12 months to the as-of date; falls coded during the stay),
//! which deaths were in hospital or after three or more emergency admissions in the last 90
//! days of life, each at the edges of its window; then `indicators.csv` as published (rates from
//! the published counts, small counts suppressed, the outside auditor satisfied).

mod common;

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::indicators::{count, q, IndicatorCounts};
use strata::input::LoadOptions;

/// An encounter row with its own end date (a fresh encounter id each time).
fn stay(
    id: &str,
    setting: &'static str,
    start: &'static str,
    end: &'static str,
    emergency: bool,
) -> N {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    N {
        id: id.to_string(),
        enc: format!("e{k}"),
        setting,
        start,
        end: Some(end),
        emergency,
        ..Default::default()
    }
}

fn person(id: &str, birth: &'static str, pcn: &'static str, death: Option<&'static str>) -> P {
    let mut p = patient(id, birth);
    p.pcn = pcn;
    p.death = death;
    p
}

/// The worked example (as-of 2025-04-01, window 2024-04-02 to 2025-04-01), `copies` times over
/// in PCN `big` (ids suffixed), plus two people in PCN `small`.
fn example(copies: usize, big: &'static str) -> (Vec<P>, Vec<E>, Vec<N>) {
    let (mut ps, mut es, mut ns) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..copies {
        let id = |s: &str| format!("{s}_{c}");
        // a1, 75, alive: two emergency admissions in the window (one a falls admission, W01 on
        // the second day of the stay); one the day before the window, one after the as-of
        // date, an elective one; a W10 code outside any stay.
        ps.push(person(&id("a1"), "1950-01-01", big, None));
        ns.push(stay(
            &id("a1"),
            "inpatient",
            "2024-05-01",
            "2024-05-03",
            true,
        ));
        es.push(ev(&id("a1"), "2024-05-02", "icd10", "W01"));
        es.push(ev(&id("a1"), "2024-05-02", "icd10", "S52.5"));
        ns.push(stay(
            &id("a1"),
            "inpatient",
            "2024-06-10",
            "2024-06-12",
            true,
        ));
        es.push(ev(&id("a1"), "2024-06-20", "icd10", "W10"));
        ns.push(stay(
            &id("a1"),
            "inpatient",
            "2024-04-01",
            "2024-04-03",
            true,
        ));
        ns.push(stay(
            &id("a1"),
            "inpatient",
            "2024-07-01",
            "2024-07-02",
            false,
        ));
        ns.push(stay(&id("a1"), "ae", "2024-08-01", "2024-08-01", false));
        // a2: 64 on the window's first day (65 in May 2024): not in the population.
        ps.push(person(&id("a2"), "1959-05-01", big, None));
        ns.push(stay(
            &id("a2"),
            "inpatient",
            "2024-09-01",
            "2024-09-02",
            true,
        ));
        // a3 died 2025-01-10 during an emergency stay: in hospital, three emergency admissions
        // in the last 90 days of life.
        ps.push(person(&id("a3"), "1940-03-01", big, Some("2025-01-10")));
        for (s, e) in [
            ("2024-11-01", "2024-11-03"),
            ("2024-12-01", "2024-12-02"),
            ("2025-01-05", "2025-01-12"),
        ] {
            ns.push(stay(&id("a3"), "inpatient", s, e, true));
        }
        // a4 died 2024-12-25 at home; of three emergency admissions one is 90 days before
        // death (2024-09-26): two in the last 90 days of life.
        ps.push(person(&id("a4"), "1945-06-01", big, Some("2024-12-25")));
        for (s, e) in [
            ("2024-09-26", "2024-09-28"),
            ("2024-10-01", "2024-10-02"),
            ("2024-12-01", "2024-12-05"),
        ] {
            ns.push(stay(&id("a4"), "inpatient", s, e, true));
        }
        // a5 died 2024-06-30 at home, the day after a discharge; admissions on the window's
        // first day (= 89 days before death, the first of the last 90 days), and two more.
        ps.push(person(&id("a5"), "1930-01-01", big, Some("2024-06-30")));
        for (s, e) in [
            ("2024-04-02", "2024-04-04"),
            ("2024-05-01", "2024-05-01"),
            ("2024-06-29", "2024-06-29"),
        ] {
            ns.push(stay(&id("a5"), "inpatient", s, e, true));
        }
        // a6 died before the window: not in the population.
        ps.push(person(&id("a6"), "1935-01-01", big, Some("2024-03-15")));
        // a7 died on the window's first day, no admissions: in the population, a death
        // elsewhere.
        ps.push(person(&id("a7"), "1950-01-01", big, Some("2024-04-02")));
    }
    // b1, 69: a falls admission, W19 dated on the discharge day; b2: 64 on the window's first
    // day (65 on the as-of date): out; b3: an A&E attendance only.
    ps.push(person("b1", "1955-04-01", "small", None));
    ns.push(stay("b1", "inpatient", "2024-08-01", "2024-08-04", true));
    es.push(ev("b1", "2024-08-04", "icd10", "W19"));
    es.push(ev("b1", "2024-08-04", "icd10", "S72.0"));
    ps.push(person("b2", "1960-04-01", "small", None));
    ns.push(stay("b2", "inpatient", "2025-04-01", "2025-04-01", true));
    ps.push(person("b3", "1944-01-01", "small", None));
    ns.push(stay("b3", "ae", "2024-07-01", "2024-07-01", false));
    // A stay running past the as-of date: the admission counts, a falls code dated after the
    // as-of date does not make it a falls admission.
    ps.push(person("b4", "1940-01-01", "small", None));
    ns.push(stay("b4", "inpatient", "2025-03-30", "2025-04-05", true));
    es.push(ev("b4", "2025-04-03", "icd10", "W05"));
    es.push(ev("b4", "2025-04-03", "icd10", "S72.0"));
    (ps, es, ns)
}

fn load(ps: &[P], es: &[E], ns: &[N]) -> Cohort {
    Cohort::from_frames(
        patients_frame(ps),
        events_frame(es),
        encounters_frame(ns),
        &LoadOptions {
            today: days("2026-01-01"),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn hand_worked_counts() {
    let (ps, es, ns) = example(1, "big");
    let c = count(&load(&ps, &es, &ns), days(AS_OF));
    // big: people a1 a3 a4 a5 a7 (5), alive at the as-of date a1 (1); emergency admissions
    // a1 2 + a3 3 + a4 3 + a5 3 = 11, falls 1, others 10; deaths a3 a4 a5 a7 (4), in hospital
    // a3 (1), elsewhere 3; three or more in the last 90 days a3 a5 (2), fewer a4 a7 (2). Ages
    // on the window's first day (2024-04-02): a1 74, a3 84, a4 78, a5 94, a7 74; a1's falls
    // admission is in the 70-74 band.
    let row = |head: [u64; 10], people: [u64; 6], falls: [u64; 6]| {
        let mut r = head.to_vec();
        r.extend(people);
        r.extend(falls);
        r
    };
    assert_eq!(
        c.rows["big"].to_vec(),
        row(
            [5, 1, 11, 1, 10, 4, 1, 3, 2, 2],
            [0, 2, 1, 1, 0, 1],
            [0, 1, 0, 0, 0, 0]
        )
    );
    // small: b1 (69) b3 (80) b4 (84), all alive; admissions b1 (falls) and b4 (not falls: its
    // codes are dated after the as-of date).
    assert_eq!(
        c.rows["small"].to_vec(),
        row(
            [3, 3, 2, 1, 1, 0, 0, 0, 0, 0],
            [1, 0, 0, 2, 0, 0],
            [1, 0, 0, 0, 0, 0]
        )
    );
    // The ICS row is the sum, and the table's relations hold.
    let t = c.table();
    let w = strata::indicators::WIDTH;
    let all = &t.cells[2 * w..3 * w];
    assert_eq!(
        all.to_vec(),
        row(
            [8, 4, 13, 2, 11, 4, 1, 3, 2, 2],
            [1, 2, 1, 3, 0, 1],
            [1, 1, 0, 0, 0, 0]
        )
    );
    for r in &t.relations {
        let sum: u64 = r.parts.iter().map(|&i| t.cells[i]).sum();
        assert_eq!(t.cells[r.total], sum, "{r:?}");
    }
}

#[test]
fn the_window_moves_with_the_as_of_date() {
    // A day later the window starts on 2024-04-03: a7 (died 2024-04-02) and a5's admission on
    // 2024-04-02 fall out of it.
    let (ps, es, ns) = example(1, "big");
    let c = count(&load(&ps, &es, &ns), days("2025-04-02"));
    let big = c.rows["big"];
    assert_eq!(big[q::PEOPLE], 4, "a7 died the day before the window");
    assert_eq!(big[q::DEATHS], 3);
    assert_eq!(big[q::EMERGENCY], 10, "a5's admission on 2024-04-02 is out");
    // b2 is still 64 on the window's first day (65 on 2025-04-01).
    assert_eq!(c.rows["small"][q::PEOPLE], 3);
}

#[test]
fn partitions_add_up_to_the_whole() {
    let (ps, es, ns) = example(2, "big");
    let whole = count(&load(&ps, &es, &ns), days(AS_OF));
    let mut parts = IndicatorCounts::default();
    for pcn in ["big", "small"] {
        let keep: Vec<P> = ps.iter().filter(|p| p.pcn == pcn).cloned().collect();
        let ids: Vec<&str> = keep.iter().map(|p| p.id.as_str()).collect();
        let e: Vec<E> = es
            .iter()
            .filter(|e| ids.contains(&e.id.as_str()))
            .cloned()
            .collect();
        let n: Vec<N> = ns
            .iter()
            .filter(|n| ids.contains(&n.id.as_str()))
            .cloned()
            .collect();
        parts.add(&count(&load(&keep, &e, &n), days(AS_OF)));
    }
    assert_eq!(parts, whole);
}

fn rows(out: &std::path::Path) -> Vec<Vec<String>> {
    let df = read_csv(&out.join("indicators.csv"));
    (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| match c.get(i).unwrap() {
                    AnyValue::String(s) => s.to_string(),
                    v => v.to_string(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn published_with_rates_from_the_published_counts() {
    // Eight copies: every count of `big` and every difference of them is 0 or 8 and over, so
    // nothing is hidden and the rates can be worked out by hand. The cohort has only `big`.
    let (ps, es, ns) = example(8, "big");
    let ps: Vec<P> = ps.into_iter().filter(|p| p.pcn == "big").collect();
    let ids: Vec<String> = ps.iter().map(|p| p.id.clone()).collect();
    let es: Vec<E> = es.into_iter().filter(|e| ids.contains(&e.id)).collect();
    let ns: Vec<N> = ns.into_iter().filter(|n| ids.contains(&n.id)).collect();
    let d = tempfile::tempdir().unwrap();
    write_cohort(&d.path().join("cohort"), &ps, &es, &ns);
    let out = d.path().join("out");
    let o = score_into(&d.path().join("cohort"), &out, &["--today", "2026-01-01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = rows(&out);
    let want = |pcn: &str, ind: &str, n: &str, den: &str, rate: &str| {
        vec![pcn, ind, n, den, rate]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let got: Vec<Vec<String>> = r.iter().map(|x| x[..5].to_vec()).collect();
    // people 40, emergency 88, falls 8, deaths 32, in hospital 8, 3+ admissions 16. By age
    // band (65-69 ... 90+) people 0, 16, 8, 8, 0, 8 and falls admissions 0, 8, 0, 0, 0, 0: the
    // standardised rate is 5000 x 8/16 / 19500 per person = 12820.5 per 100,000.
    let big = [
        want("big", "emergency_admissions_65_plus", "88", "40", "2200.0"),
        want("big", "falls_admissions_65_plus", "8", "40", "20000.0"),
        want(
            "big",
            "falls_admissions_65_plus_age_standardised",
            "8",
            "40",
            "12820.5",
        ),
        want("big", "deaths_in_hospital", "8", "32", "25.0"),
        want(
            "big",
            "deaths_with_3_or_more_emergency_admissions_in_last_90_days",
            "16",
            "32",
            "50.0",
        ),
        want("big", "falls_admissions_65_69", "0", "0", "[z]"),
        want("big", "falls_admissions_70_74", "8", "16", "50000.0"),
        want("big", "falls_admissions_75_79", "0", "8", "0.0"),
        want("big", "falls_admissions_80_84", "0", "8", "0.0"),
        want("big", "falls_admissions_85_89", "0", "0", "[z]"),
        want("big", "falls_admissions_90_plus", "0", "8", "0.0"),
    ];
    let all: Vec<Vec<String>> = big
        .iter()
        .map(|w| {
            let mut w = w.clone();
            w[0] = "ALL".into();
            w
        })
        .collect();
    assert_eq!(got[..11], big[..]);
    assert_eq!(got[11..], all[..]);
    // (The ICS-wide rate beside each PCN row is checked with two PCNs, where it differs.)
    // The manifest hashes the file like every output.
    let m: serde_json::Value = manifest(&out);
    assert!(m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["path"] == "indicators.csv" && w["rows"] == 22));
}

#[test]
fn small_counts_and_their_rates_are_suppressed_and_the_auditor_agrees() {
    // Two copies in `big` and the four people of `small`: most counts are small.
    let (ps, es, ns) = example(2, "big");
    let d = tempfile::tempdir().unwrap();
    write_cohort(&d.path().join("cohort"), &ps, &es, &ns);
    for (name, extra) in [("plain", vec![]), ("publication", vec!["--publication"])] {
        let out = d.path().join(name);
        let mut args = vec!["--today", "2026-01-01"];
        args.extend(extra.iter());
        // score_into runs the outside auditor on indicators.csv too.
        let o = score_into(&d.path().join("cohort"), &out, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        let r = rows(&out);
        assert_eq!(r.len(), 3 * 11);
        // small: 3 people, 2 admissions (1 falls), no deaths. The 3, 2 and 1 are hidden, the
        // zero deaths are not; a rate of a hidden count is hidden, a rate over 0 deaths is
        // not applicable.
        let small: Vec<&Vec<String>> = r.iter().filter(|x| x[0] == "small").collect();
        assert_eq!(small[0][2..5], ["[c]", "[c]", "[c]"]);
        assert_eq!(small[1][2..5], ["[c]", "[c]", "[c]"]);
        assert_eq!(small[2][2..5], ["[c]", "[c]", "[c]"], "standardised");
        assert_eq!(small[3][2..5], ["0", "0", "[z]"]);
        // big: its counts (10 people, 22 admissions, ...) would give away small's hidden ones
        // through the ALL row (ALL = big + small, and ALL is shown), so every one of them is
        // hidden, and so are its rates. (That a shown count is the true one is checked with one
        // PCN above.)
        let big: Vec<&Vec<String>> = r.iter().filter(|x| x[0] == "big").collect();
        assert_eq!(big.len(), 11);
        for row in big.iter().take(5) {
            assert_eq!(row[2..5], ["[c]", "[c]", "[c]"], "{row:?}");
        }
        let all: Vec<&Vec<String>> = r.iter().filter(|x| x[0] == "ALL").collect();
        // The ICS's emergency admissions (24 in 13 people) are shown: its rate is what each
        // PCN row carries beside its own (below).
        assert!(all[0][2] != "[c]" && all[0][4] != "[c]", "{all:?}");
        // Beside every PCN row, the ICS-wide rate: the ALL row's rate for that indicator.
        for x in r.iter().filter(|x| x[0] != "ALL") {
            let all = r.iter().find(|a| a[0] == "ALL" && a[1] == x[1]).unwrap();
            assert_eq!(x[6], all[4], "{x:?}");
        }
    }
}

#[test]
fn the_auditor_catches_a_count_given_away_by_the_ics_row() {
    // A hand-made table where small's falls admissions (3) are hidden but the ALL row and
    // big's are shown: 11 - 8 = 3. The auditor must find it.
    let d = tempfile::tempdir().unwrap();
    let mut t = String::from("pcn_code,indicator,numerator,denominator,rate,unit,ics_rate\n");
    // (area, emergency admissions, falls admissions, people, their two rates)
    for (pcn, e, f, p, er, fr) in [
        ("big", "40", "8", "20", "2000.0", "40000.0"),
        ("small", "12", "[c]", "10", "1200.0", "[c]"),
        ("ALL", "52", "11", "30", "1733.3", "36666.7"),
    ] {
        t += &format!("{pcn},emergency_admissions_65_plus,{e},{p},{er},x,1733.3\n");
        t += &format!("{pcn},falls_admissions_65_plus,{f},{p},{fr},x,36666.7\n");
        t += &format!("{pcn},deaths_in_hospital,0,0,[z],x,[z]\n");
        t += &format!(
            "{pcn},deaths_with_3_or_more_emergency_admissions_in_last_90_days,0,0,[z],x,[z]\n"
        );
        // Everyone is 65-69: the standardised rate is 5500/19500 of that band's rate.
        let std = match pcn {
            "big" => "11282.1",
            "small" => "[c]",
            _ => "10341.9",
        };
        t += &format!("{pcn},falls_admissions_65_plus_age_standardised,{f},{p},{std},x,10341.9\n");
        t += &format!("{pcn},falls_admissions_65_69,{f},{p},{fr},x,36666.7\n");
        for band in ["70_74", "75_79", "80_84", "85_89", "90_plus"] {
            t += &format!("{pcn},falls_admissions_{band},0,0,[z],x,[z]\n");
        }
    }
    std::fs::write(d.path().join("indicators.csv"), t).unwrap();
    let f = audit::audit_indicators(d.path(), 1);
    assert!(
        f.pinned
            .iter()
            .any(|(_, area, what, v)| area == "small" && what == "falls" && *v == 3),
        "{f:?}"
    );
}
