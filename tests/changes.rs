//! What changed since the previous run: `change` on each list row (new, up, down, same) and
//! `lists/<PCN>/<PCN>.dropped.csv` with the reason each person left a list; the first run says there
//! was nothing to compare with.

mod common;

use std::collections::HashMap;

use common::*;

/// `n` deficits' codes for `id`.
fn frail(id: &str, n: usize, codes: &[String]) -> Vec<E> {
    codes
        .iter()
        .take(n)
        .map(|c| ev(id, "2024-01-01", "snomed", c))
        .collect()
}

#[test]
fn lists_say_what_changed_and_who_dropped_off_why() {
    let codes = deficit_codes(&definitions());
    let (mild, moderate, severe) = (5, 10, 14);
    let person = |id: &str, pcn: &'static str| {
        let mut p = patient(id, "1945-04-01");
        p.pcn = pcn;
        p.practice = if pcn == "PCN1" { "P1" } else { "P2" };
        p
    };
    // First extract.
    let mut ps1 = Vec::new();
    let mut es1 = Vec::new();
    for (id, n) in [
        ("same", mild),
        ("rises", mild),
        ("eases", moderate),
        ("dies", mild),
        ("moves", mild),
        ("gone", mild),
        ("recovers", mild),
    ] {
        ps1.push(person(id, "PCN1"));
        es1.extend(frail(id, n, &codes));
    }
    ps1.push(person("other", "PCN2"));
    es1.extend(frail("other", severe, &codes));
    // A later extract of the same population.
    let mut ps2 = Vec::new();
    let mut es2 = Vec::new();
    for (id, n, pcn) in [
        ("same", mild, "PCN1"),
        ("rises", moderate, "PCN1"),
        ("eases", mild, "PCN1"),
        ("dies", mild, "PCN1"),
        ("moves", mild, "PCN2"),
        ("recovers", 0, "PCN1"),
        ("newbie", severe, "PCN1"),
        ("other", severe, "PCN2"),
    ] {
        let mut p = person(id, pcn);
        if id == "dies" {
            p.death = Some("2025-03-01");
        }
        ps2.push(p);
        es2.extend(frail(id, n, &codes));
    }

    let d = tempfile::tempdir().unwrap();
    let (c1, c2, out) = (
        d.path().join("c1"),
        d.path().join("c2"),
        d.path().join("out"),
    );
    write_cohort(&c1, &ps1, &es1, &[]);
    write_cohort(&c2, &ps2, &es2, &[]);

    let o = score_into(&c1, &out, &["--today", "2026-11-25"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("no previous run"), "{}", stdout(&o));
    let first = read_csv(&out.join("lists/PCN1/PCN1.csv"));
    assert!(strings(&first, "change").iter().all(|c| c.is_empty()));
    assert!(!out.join("lists/PCN1/PCN1.dropped.csv").exists());

    let o = score_into(&c2, &out, &["--today", "2026-11-25"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The dropped lists are not counted as lists.
    assert!(stdout(&o).contains("across 2 PCN lists"), "{}", stdout(&o));
    let list = read_csv(&out.join("lists/PCN1/PCN1.csv"));
    assert_eq!(list.get_column_names()[1].as_str(), "change");
    let change: HashMap<String, String> = strings(&list, "patient_id")
        .into_iter()
        .zip(strings(&list, "change"))
        .collect();
    let want: HashMap<String, String> = [
        ("same", "same"),
        ("rises", "up"),
        ("eases", "down"),
        ("newbie", "new"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(change, want);
    let pcn2 = read_csv(&out.join("lists/PCN2/PCN2.csv"));
    let change2: HashMap<String, String> = strings(&pcn2, "patient_id")
        .into_iter()
        .zip(strings(&pcn2, "change"))
        .collect();
    assert_eq!(change2["moves"], "new");
    assert_eq!(change2["other"], "same");

    let dropped = read_csv(&out.join("lists/PCN1/PCN1.dropped.csv"));
    let why: HashMap<String, String> = strings(&dropped, "patient_id")
        .into_iter()
        .zip(strings(&dropped, "reason"))
        .collect();
    assert_eq!(why.len(), 4, "{why:?}");
    assert_eq!(why["dies"], "died");
    assert_eq!(why["moves"], "moved to another PCN (PCN2)");
    assert!(why["gone"].starts_with("no longer in the cohort"));
    assert_eq!(why["recovers"], "frailty fell to fit");
    assert_eq!(
        read_csv(&out.join("lists/PCN2/PCN2.dropped.csv")).height(),
        0
    );
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["new_on_lists"], 2);
    assert_eq!(m["dropped_off_lists"], 4);
    assert!(m["compared_with"]
        .as_str()
        .unwrap()
        .contains("as of 2025-04-01"));

    // The same extract again: nothing new, nobody dropped.
    let o = score_into(&c2, &out, &["--today", "2026-11-25"]);
    assert!(o.status.success());
    let again = read_csv(&out.join("lists/PCN1/PCN1.csv"));
    assert!(strings(&again, "change").iter().all(|c| c == "same"));
    assert_eq!(
        read_csv(&out.join("lists/PCN1/PCN1.dropped.csv")).height(),
        0
    );

    // An explicit previous run, and none.
    let other = d.path().join("other");
    let o = score_into(
        &c2,
        &other,
        &["--today", "2026-11-25", "--previous", c1.to_str().unwrap()],
    );
    assert!(o.status.success());
    assert!(stdout(&o).contains("no previous run in"), "{}", stdout(&o));
    let o = score_into(&c2, &out, &["--today", "2026-11-25", "--no-compare"]);
    assert!(o.status.success());
    assert!(
        strings(&read_csv(&out.join("lists/PCN1/PCN1.csv")), "change")
            .iter()
            .all(|c| c.is_empty())
    );
}
