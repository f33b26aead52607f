//! Disclosure control that holds: the two differencing attacks found on the old table-by-table
//! rule are reproduced and defeated, and on random cohorts (small PCNs, skewed deprivation) the
//! outside auditor (`tests/common/audit.rs`, which reads only the published CSV files) and the
//! library's auditor (which knows the true counts) find no suppressed count that can be worked
//! out. Every other test that runs `strata score` also audits its output (`common::score_into`).

mod common;

use common::audit::audit_folder;
use common::*;
use proptest::prelude::*;
use strata::disclosure::{self, Cell, Suppression};
use strata::tables::{CountedTable, Relation};

/// The old rule (kept here only to show it fails): hide 1-7, then while a relation has exactly
/// one hidden cell, hide its smallest other non-zero part (the total as a last resort).
fn naive(values: &[u64], relations: &[Relation]) -> Vec<Cell> {
    let mut hidden: Vec<bool> = values.iter().map(|&v| (1..=7).contains(&v)).collect();
    loop {
        let mut changed = false;
        for r in relations {
            let members = || r.parts.iter().copied().chain(std::iter::once(r.total));
            if members().filter(|&i| hidden[i]).count() != 1 {
                continue;
            }
            let pick = r
                .parts
                .iter()
                .copied()
                .filter(|&i| !hidden[i] && values[i] > 0)
                .min_by_key(|&i| (values[i], i))
                .or_else(|| Some(r.total).filter(|&t| !hidden[t] && values[t] > 0));
            if let Some(i) = pick {
                hidden[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    hidden
        .iter()
        .zip(values)
        .map(|(&h, &v)| if h { Cell::Suppressed } else { Cell::Count(v) })
        .collect()
}

/// A table of PCN rows and their ALL row, five columns, with every relation.
fn pcn_table(rows: &[(&str, [u64; 5])]) -> CountedTable {
    let n = rows.len();
    let mut relations: Vec<Relation> = (0..n)
        .map(|r| Relation {
            total: r * 5 + 4,
            parts: (0..4).map(|c| r * 5 + c).collect(),
        })
        .collect();
    for c in 0..5 {
        relations.push(Relation {
            total: (n - 1) * 5 + c,
            parts: (0..n - 1).map(|r| r * 5 + c).collect(),
        });
    }
    CountedTable {
        label_names: ["pcn_code", "group"],
        rows: rows
            .iter()
            .map(|(p, _)| (p.to_string(), "all".to_string()))
            .collect(),
        cells: rows.iter().flat_map(|(_, v)| *v).collect(),
        relations,
        populations: rows
            .iter()
            .map(|(p, _)| {
                if *p == "ALL" {
                    "all".into()
                } else {
                    format!("pcn={p}")
                }
            })
            .collect(),
        columns: &strata::tables::COUNT_COLUMNS,
        links: Default::default(),
    }
}

/// The summary of attack (a): PCNs A, B and C with small fit and mild counts.
fn attack_a() -> CountedTable {
    pcn_table(&[
        ("A", [2, 4, 3, 40, 49]),
        ("B", [5, 6, 30, 50, 91]),
        ("C", [1, 7, 25, 60, 93]),
        ("D", [20, 30, 8, 9, 67]),
        ("E", [40, 35, 11, 10, 96]),
        ("ALL", [68, 82, 77, 169, 396]),
    ])
}

/// (a) Within one table: PCNs A, B and C have their fit and mild counts suppressed; with row
/// totals and the ALL row, the old rule let A's moderate count (3) be solved exactly.
#[test]
fn differencing_rows_and_the_all_row_no_longer_recovers_a_cell() {
    let t = attack_a();
    let rule = Suppression::default();
    let a_moderate = 2;
    let old = naive(&t.cells, &t.relations);
    let a = disclosure::audit_tables(&[&t], &[old], &rule).unwrap();
    assert!(
        a.exposed.contains(&a_moderate),
        "the attack works on the old rule"
    );
    let iv = a.interval(a_moderate).unwrap();
    assert_eq!((iv.lo, iv.hi), (3.0, 3.0));

    let new = disclosure::protect(&[&t], &rule).unwrap();
    assert_eq!(new[0][a_moderate], Cell::Suppressed);
    let a = disclosure::audit_tables(&[&t], &new, &rule).unwrap();
    assert!(a.is_safe(), "exposed {:?}", a.exposed);
    let iv = a.interval(a_moderate).unwrap();
    assert!(iv.lo < iv.hi, "{iv:?}");
}

/// Patients with the given counts per IMD quintile (1..5, then unknown) and eFI category, in
/// two PCNs.
fn cohort_with(counts: &[[usize; 4]; 6]) -> (Vec<P>, Vec<E>) {
    let defs = definitions();
    let codes = deficit_codes(&defs);
    let deficits = [0, 5, 9, 13];
    let (mut ps, mut es) = (Vec::new(), Vec::new());
    for (g, row) in counts.iter().enumerate() {
        for (cat, &n) in row.iter().enumerate() {
            for i in 0..n {
                let id = format!("p{g}{cat}{i:04}");
                let mut p = patient(&id, "1940-01-01");
                p.imd = (g < 5).then_some(2 * g as i32 + 1);
                p.pcn = if g < 3 { "PCN_A" } else { "PCN_B" };
                p.practice = if g < 3 { "P_A" } else { "P_B" };
                p.sex = if i % 2 == 0 { "F" } else { "M" };
                for c in codes.iter().take(deficits[cat]) {
                    es.push(ev(&id, "2024-01-01", "snomed", c));
                }
                ps.push(p);
            }
        }
    }
    (ps, es)
}

/// (b) Across tables: the summary's ALL/core20 row equals the equity table's IMD quintile 1
/// row. Protected separately, the equity table hid q1's fit (10) to cover unknown's fit (3), the
/// summary printed 10, and 3 followed by subtraction. Through the binary, on a hand-made cohort.
#[test]
fn a_count_hidden_in_one_table_is_not_printed_in_another() {
    let (ps, es) = cohort_with(&[
        [10, 12, 20, 15],
        [30, 25, 20, 14],
        [28, 26, 18, 13],
        [35, 22, 21, 16],
        [40, 30, 19, 17],
        [3, 11, 20, 25],
    ]);
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    write_cohort(&c, &ps, &es, &[]);
    let out = d.path().join("out");
    let o = score_into(&c, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let equity = std::fs::read_to_string(out.join("equity.csv")).unwrap();
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let unknown = equity
        .lines()
        .find(|l| l.starts_with("imd_quintile,unknown"))
        .unwrap();
    assert!(
        unknown.starts_with("imd_quintile,unknown,[c],"),
        "{unknown}"
    );
    let q1 = equity
        .lines()
        .find(|l| l.starts_with("imd_quintile,\"1 "))
        .unwrap();
    let core20 = summary
        .lines()
        .find(|l| l.starts_with("ALL,core20"))
        .unwrap();
    // The same count is shown or hidden alike in both tables.
    let counts = |l: &str| l.rsplit(',').take(5).map(String::from).collect::<Vec<_>>();
    assert_eq!(counts(q1), counts(core20));
    let f = audit_folder(&out, 1);
    assert!(f.suppressed > 0 && f.pinned.is_empty(), "{f:?}");
}

#[test]
fn the_fixture_and_a_publication_run_pass_the_outside_auditor() {
    let d = tempfile::tempdir().unwrap();
    let mut hidden = Vec::new();
    for (name, extra) in [
        ("plain", vec![]),
        ("publication", vec!["--publication"]),
        ("nhse-2018", vec!["--disclosure-rule", "nhse-2018"]),
    ] {
        let out = d.path().join(name);
        let o = score_into(&fixtures().join("cohort-2000"), &out, &extra);
        assert!(o.status.success(), "{}", stderr(&o));
        let f = audit_folder(&out, if extra.is_empty() { 1 } else { 5 });
        assert!(f.suppressed > 0, "the fixture has small counts to protect");
        assert!(f.pinned.is_empty(), "{f:?}");
        // The provable interval widths of the hidden counts (shown with --nocapture).
        println!(
            "{name}: {} hidden, widths {:?}, {} unbounded",
            f.suppressed, f.widths, f.unbounded
        );
        let m = manifest(&out);
        assert_eq!(
            m["config"]["suppression"]["rule"],
            if name == "nhse-2018" {
                "nhse-2018"
            } else {
                "complementary"
            }
        );
        hidden.push(f.suppressed);
        // Under the 2018 rule every shown count is a multiple of 5.
        if name == "nhse-2018" {
            let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
            for line in summary.lines().skip(1) {
                for v in line.split(',').skip(2) {
                    assert!(v == "[c]" || v.parse::<u64>().unwrap() % 5 == 0, "{line}");
                }
            }
        }
    }
    // The 2018 rule hides the counts of 1-7 and few others: fewer than complementary
    // suppression.
    assert!(hidden[2] < hidden[0], "{hidden:?}");
    // An unknown rule is refused, naming it.
    let o = score_into(
        &fixtures().join("cohort-2000"),
        &d.path().join("bad"),
        &["--disclosure-rule", "hes"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("disclosure rule 'hes'"),
        "{}",
        stderr(&o)
    );
}

/// A random small cohort: `n` patients over up to four PCNs, deprivation skewed towards one
/// quintile, mixed frailty.
fn random_cohort() -> impl Strategy<Value = Vec<(u8, Option<u8>, u8, u8)>> {
    prop::collection::vec(
        (
            0u8..4,
            prop_oneof![
                6 => Just(Some(1u8)),
                1 => (2u8..=5).prop_map(Some),
                1 => Just(None),
            ],
            prop_oneof![4 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
            0u8..2,
        ),
        1..70,
    )
}

/// Write `people` (PCN index, IMD quintile, eFI category index, sex index; everyone born in
/// 1945) as a cohort under `dir`; with `core20_pcn`, PCN_D is almost all Core20 (every person
/// but each twentieth in IMD quintile 1). Returns the cohort folder.
fn small_cohort(
    dir: &std::path::Path,
    people: &[(u8, Option<u8>, u8, u8)],
    core20_pcn: bool,
) -> std::path::PathBuf {
    let defs = definitions();
    let codes = deficit_codes(&defs);
    let deficits = [0, 5, 9, 13];
    let (mut ps, mut es) = (Vec::new(), Vec::new());
    for (i, (pcn, q, cat, sex)) in people.iter().enumerate() {
        let id = format!("r{i:03}");
        let mut p = patient(&id, "1945-01-01");
        p.pcn = ["PCN_A", "PCN_B", "PCN_C", "PCN_D"][*pcn as usize];
        let q = if core20_pcn && *pcn == 3 && i % 20 != 0 {
            Some(1)
        } else {
            *q
        };
        p.imd = q.map(|q| 2 * q as i32);
        p.sex = if *sex == 0 { "F" } else { "M" };
        for c in codes.iter().take(deficits[*cat as usize]) {
            es.push(ev(&id, "2024-01-01", "snomed", c));
        }
        ps.push(p);
    }
    let c = dir.join("cohort");
    write_cohort(&c, &ps, &es, &[]);
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(50))]

    /// Small PCNs, skewed deprivation, one PCN (PCN_D) almost all Core20, a random list rule
    /// (mild, severe, the top 10, the top 30%) and a random minimum protection interval, under
    /// both disclosure rules (complementary, nhse-2018): the outside auditor pins nothing and
    /// finds no interval narrower than asked.
    #[test]
    fn no_suppressed_count_of_a_random_cohort_can_be_worked_out(
        people in random_cohort(),
        rule in 0u8..4,
        width in prop_oneof![3 => Just(0u64), 1 => Just(2u64)],
    ) {
        let d = tempfile::tempdir().unwrap();
        let c = small_cohort(d.path(), &people, true);
        let out = d.path().join("out");
        let mut rules = strata::lists::ListRules::default();
        match rule {
            1 => rules.min_category = strata::scores::EfiCategory::Severe,
            2 => rules.top = Some(10),
            3 => rules.top_percent = Some(30.0),
            _ => {}
        }
        // Both rules on every cohort.
        for suppression in [Suppression::default(), Suppression::nhse_2018()] {
            let _ = std::fs::remove_dir_all(&out);
            score_in_process(&c, &out, rules, suppression.with_min_interval(width), &[]);
            let f = audit_folder(&out, 1);
            prop_assert!(f.pinned.is_empty() && f.narrow.is_empty(), "{:?}", f);
        }
    }
}

#[test]
fn outside_auditor_catches_the_old_rule() {
    // The auditor must be able to fail: a summary written with the old rule's cells is caught.
    let t = attack_a();
    let old = naive(&t.cells, &t.relations);
    let d = tempfile::tempdir().unwrap();
    let mut summary = String::from("pcn_code,group,fit,mild,moderate,severe,total\n");
    let mut core20 = String::new();
    for (r, (p, _)) in t.rows.iter().enumerate() {
        let cells: Vec<String> = old[r * 5..r * 5 + 5].iter().map(|c| c.text()).collect();
        summary += &format!("{p},all,{}\n", cells.join(","));
        core20 += &format!("{p},core20,0,0,0,0,0\n");
    }
    std::fs::write(d.path().join("summary.csv"), summary + &core20).unwrap();
    std::fs::write(
        d.path().join("equity.csv"),
        "dimension,group,fit,mild,moderate,severe,total\nALL,all,68,82,77,169,396\n",
    )
    .unwrap();
    let f = audit_folder(d.path(), 1);
    assert!(
        f.pinned
            .iter()
            .any(|(_, row, col, v)| row == "A/all" && col == "moderate" && *v == 3),
        "{f:?}"
    );
}

/// One person: PCN, age index, sex index, IMD quintile, eFI category index.
type Person = (u8, u8, u8, Option<u8>, u8);

/// A random cohort with PCN profiles: two PCNs of 100-150 eligible people (a profile each) and
/// one of 20-60 (left out, its people a derived count), people spread over two practices per
/// PCN, six ages, three sexes, six quintile values and four eFI categories; the second PCN has
/// nobody in the most deprived two quintiles nor aged 100 (zeros that must not give the other
/// PCN's counts away).
fn random_profile_cohort() -> impl Strategy<Value = Vec<Person>> {
    let person = |pcn: u8| {
        let (q, age) = if pcn == 1 { (3u8, 1u8) } else { (1, 0) };
        (
            Just(pcn),
            age..6,
            prop_oneof![8 => 0u8..2, 1 => Just(2u8)],
            prop_oneof![4 => (q..=5).prop_map(Some), 1 => Just(None)],
            prop_oneof![4 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8)],
        )
    };
    (
        prop::collection::vec(person(0), 100..150),
        prop::collection::vec(person(1), 100..150),
        prop::collection::vec(person(2), 20..60),
    )
        .prop_map(|(a, b, c)| [a, b, c].concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// The profile is protected together with the summary, equity and indicator tables (their
    /// cells may change for it), whatever the list rule: by category (mild, or severe only), the
    /// top 40 or top 15% (a category listed in part), severe frailty ranked by a risk model with
    /// its moderate band added (milder people listed), rounded for publication, or under the
    /// nhse-2018 rule.
    #[test]
    fn profiles_of_random_cohorts_pass_the_outside_auditor(people in random_profile_cohort()) {
        const BIRTHS: [&str; 6] =
            ["1925-01-01", "1932-01-01", "1938-01-01", "1944-01-01", "1950-01-01", "1956-01-01"];
        let defs = definitions();
        let codes = deficit_codes(&defs);
        let deficits = [0, 5, 9, 13];
        let (mut ps, mut es) = (Vec::new(), Vec::new());
        for (i, (pcn, age, sex, q, cat)) in people.iter().enumerate() {
            let id = format!("r{i:04}");
            let mut p = patient(&id, BIRTHS[*age as usize]);
            p.pcn = ["PCN_A", "PCN_B", "PCN_C"][*pcn as usize];
            p.practice = ["P_A1", "P_A2", "P_B1", "P_B2", "P_C1", "P_C2"][*pcn as usize * 2 + i % 2];
            p.imd = q.map(|q| 2 * q as i32);
            p.sex = ["F", "M", "U"][*sex as usize];
            for c in codes.iter().take(deficits[*cat as usize]) {
                es.push(ev(&id, "2024-01-01", "snomed", c));
            }
            ps.push(p);
        }
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("cohort");
        write_cohort(&c, &ps, &es, &[]);
        // Every list rule on every cohort.
        let card = models_dir().join("risk/emergency_admission.logistic.json");
        for variant in 0u8..7 {
            let mut rules = strata::lists::ListRules::default();
            let mut suppression = Suppression::default();
            let mut cards: &[std::path::PathBuf] = &[];
            match variant {
                1 => rules.min_category = strata::scores::EfiCategory::Severe,
                2 => rules.top = Some(40),
                3 => suppression = Suppression::publication(),
                4 => suppression = Suppression::nhse_2018(),
                5 => rules.top_percent = Some(15.0),
                6 => {
                    rules.rank_by = strata::lists::RankBy::Risk(
                        strata::predictors::Outcome::EmergencyAdmission,
                    );
                    rules.min_risk_band = Some(strata::risk::RiskBand::Moderate);
                    // Severe frailty, plus the PCN's top 20% by risk (bands by rank within the
                    // PCN): milder people added, their categories listed in part.
                    rules.min_category = strata::scores::EfiCategory::Severe;
                    rules.risk_bands = strata::lists::BandMode::Pcn;
                    cards = std::slice::from_ref(&card);
                }
                _ => {}
            }
            let score = |out: &std::path::Path| {
                score_in_process(&c, out, rules, suppression, cards);
            };
            let out = d.path().join(format!("out-{variant}"));
            score(&out);
            let profile = std::fs::read_to_string(out.join("pcn_profile.csv")).unwrap();
            prop_assert!(profile.contains("PCN_A,all,") && profile.contains("PCN_B,all,"));
            prop_assert!(!profile.contains("PCN_C"), "a PCN under 100 eligible has no profile");
            let f = audit_folder(&out, suppression.round_to as i64);
            prop_assert!(f.pinned.is_empty(), "variant {variant}: {:?}", f);
            if variant == 6 {
                let list = std::fs::read_to_string(out.join("lists/PCN_A/PCN_A.csv")).unwrap();
                prop_assert!(
                    list.contains(",moderate,") || list.contains(",mild,"),
                    "the risk band adds people less than severely frail"
                );
            }
        }
    }
}

/// Issue 23's reproduction: on this cohort a PCN's listed Core20 count in `pcn_profile.csv` was
/// hidden but equal to a sum of hidden summary cells that `summary.csv` and `equity.csv` pinned,
/// because the profile was protected after them. Protected together, nothing is recoverable
/// (`score_into` runs the outside auditor, which no longer excuses such sums).
#[test]
fn a_profile_count_that_hidden_summary_cells_add_up_to_is_protected() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("c");
    synth_into(&c, "30000", "17", "6");
    let out = d.path().join("o");
    let o = score_into(&c, &out, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let profile = std::fs::read_to_string(out.join("pcn_profile.csv")).unwrap();
    assert!(profile.contains("U10111,imd_quintile=1,"), "{profile}");
}

/// A `[c]` is never 0 (zeros are always shown), and an outsider who knows it could pin cells that
/// a bound of 0 leaves open: on this cohort the least deprived quintile's moderate and severe
/// counts were both hidden and added up to 2, so both were 1. Protection now knows what the
/// outsider knows (`score_into` runs the outside auditor, which bounds every `[c]` by 1).
#[test]
fn hidden_counts_known_to_be_at_least_one_are_protected() {
    for (seed, pcns) in [("11", "3"), ("2", "3"), ("5", "4")] {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("c");
        synth_into(&c, "1500", seed, pcns);
        let o = score_into(&c, &d.path().join("o"), &["-q"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

/// `--min-interval w` (`[disclosure] min_interval` in strata.toml) hides cells until every
/// hidden count's provable interval is at least `w` wide: the outside auditor reads `w` from the
/// manifest and checks every interval (`score_into`), and the same runs without it have narrower
/// intervals.
#[test]
fn a_minimum_protection_interval_widens_every_hidden_count() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("c");
    synth_into(&c, "1500", "11", "3");
    let hidden = |out: &std::path::Path| -> usize {
        [
            "summary.csv",
            "equity.csv",
            "indicators.csv",
            "pcn_profile.csv",
        ]
        .iter()
        .map(|f| {
            std::fs::read_to_string(out.join(f))
                .unwrap()
                .matches("[c]")
                .count()
        })
        .sum()
    };
    let plain = d.path().join("plain");
    assert!(score_into(&c, &plain, &["-q"]).status.success());
    let f = audit_folder(&plain, 1);
    assert!(f.narrow.is_empty() && f.pinned.is_empty(), "{:?}", f);
    for w in ["3", "5"] {
        let out = d.path().join(format!("w{w}"));
        let o = score_into(&c, &out, &["-q", "--min-interval", w]);
        assert!(o.status.success(), "{}", stderr(&o));
        let m = manifest(&out);
        assert_eq!(
            m["config"]["suppression"]["min_interval"],
            w.parse::<i64>().unwrap()
        );
        assert!(hidden(&out) > hidden(&plain), "w = {w}: more cells hidden");
    }
    // The same from the settings file.
    let toml = d.path().join("strata.toml");
    std::fs::write(&toml, "[disclosure]\nmin_interval = 3\n").unwrap();
    let out = d.path().join("toml");
    let o = score_into(&c, &out, &["-q", "--config", toml.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest(&out)["config"]["suppression"]["min_interval"], 3);
    std::fs::write(&toml, "[disclosure]\nmin_intervals = 3\n").unwrap();
    let o = score_into(
        &c,
        &d.path().join("bad"),
        &["-q", "--config", toml.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("min_intervals"), "{}", stderr(&o));
}

/// `strata synth --patients N --seed S --pcns P --out dir`.
fn synth_into(dir: &std::path::Path, patients: &str, seed: &str, pcns: &str) {
    let o = strata(&[
        "synth",
        "--patients",
        patients,
        "--seed",
        seed,
        "--pcns",
        pcns,
        "--out",
        dir.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Score `cohort` into `out` through the library (no programmes), with `rules`, `suppression`
/// and the risk model cards `risk_models`.
fn score_in_process(
    cohort: &std::path::Path,
    out: &std::path::Path,
    rules: strata::lists::ListRules,
    suppression: Suppression,
    risk_models: &[std::path::PathBuf],
) {
    let opts = strata::run::ScoreOptions {
        cohort: cohort.to_path_buf(),
        out: strata::publish::Destination::Folder(out.to_path_buf()),
        settings: strata::settings::Settings {
            as_of: strata::date::parse_days(AS_OF).unwrap(),
            models: models_dir(),
            load: load_options(),
            rules,
            suppression,
            risk_models: risk_models.to_vec(),
            default_risk_models: false,
            programmes: Vec::new(),
        },
        previous: None,
    };
    strata::run::score(&opts).unwrap();
}

/// Seven people, every count 1 to 7: under the 2018 rule everything non-zero is hidden and the
/// run still succeeds, its tables passing the outside auditor. (An outsider who took every `[c]`
/// to be at most 7 could pin PCN_A's fit count here, which no pattern can prevent; README says
/// a `[c]` may be a larger count hidden to protect a small one, and that the complementary rule
/// is the one to use where such an outsider matters.)
#[test]
fn a_cohort_of_seven_under_the_2018_rule() {
    let people: [(u8, Option<u8>, u8, u8); 7] = [
        (0, Some(1), 1, 0),
        (0, Some(1), 0, 1),
        (0, Some(1), 0, 0),
        (0, Some(1), 2, 0),
        (0, Some(2), 1, 0),
        (1, Some(1), 1, 0),
        (0, Some(1), 2, 1),
    ];
    let d = tempfile::tempdir().unwrap();
    let c = small_cohort(d.path(), &people, false);
    let out = d.path().join("out");
    score_in_process(
        &c,
        &out,
        strata::lists::ListRules::default(),
        Suppression::nhse_2018(),
        &[],
    );
    let f = audit_folder(&out, 5);
    assert!(f.pinned.is_empty() && f.suppressed > 10, "{f:?}");
}
