//! Named programme lists: the palliative care register rule at its edges, who each rule lists
//! and in what order, the `rule` column's words, a person on several lists, the five example
//! programmes of `strata.toml` on the fixture (risk-model rules checked against the scores
//! file), byte-identical lists whatever the thread count, and the errors a bad programme gives.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::input::LoadOptions;

const CARE: &str = "103735009"; // Palliative care (PALCARE_COD)
const NOT_INDICATED: &str = "1048611000000104"; // Palliative care not currently clinically indicated

/// The coded deficit codes to give someone `n` deficits, falls left out unless `falls`.
fn deficits(defs: &strata::definitions::Definitions, n: usize, falls: bool) -> Vec<String> {
    let codes = deficit_codes(defs);
    let fall = defs
        .efi
        .deficits
        .iter()
        .position(|d| d.slug == "falls")
        .unwrap();
    let mut out: Vec<String> = codes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != fall)
        .map(|(_, c)| c.clone())
        .take(n - falls as usize)
        .collect();
    if falls {
        out.push(codes[fall].clone());
    }
    out
}

/// A small PCN: (id, deficits, falls, palliative codes (code, date), birth, death).
type Person = (
    &'static str,
    usize,
    bool,
    Vec<(&'static str, &'static str)>,
    &'static str,
    Option<&'static str>,
);

fn people() -> Vec<Person> {
    vec![
        ("fit0", 1, false, vec![], "1945-01-01", None),
        ("mild1", 6, false, vec![], "1945-01-01", None),
        ("mild2", 5, true, vec![], "1945-01-01", None),
        ("mod1", 10, false, vec![], "1945-01-01", None),
        ("sev1", 14, true, vec![], "1945-01-01", None),
        (
            "pal_on",
            6,
            false,
            vec![(CARE, "2020-01-01")],
            "1945-01-01",
            None,
        ),
        (
            "pal_ni",
            6,
            false,
            vec![(CARE, "2019-01-01"), (NOT_INDICATED, "2021-01-01")],
            "1945-01-01",
            None,
        ),
        (
            "pal_same",
            6,
            false,
            vec![(CARE, "2021-05-05"), (NOT_INDICATED, "2021-05-05")],
            "1945-01-01",
            None,
        ),
        (
            "pal_old",
            6,
            false,
            vec![(CARE, "2007-06-01")],
            "1945-01-01",
            None,
        ),
        (
            "pal_edge",
            6,
            false,
            vec![(CARE, "2008-04-01")],
            "1945-01-01",
            None,
        ),
        (
            "pal_later",
            6,
            false,
            vec![(CARE, "2025-05-01")],
            "1945-01-01",
            None,
        ),
        (
            "pal_back",
            6,
            false,
            vec![(NOT_INDICATED, "2019-01-01"), (CARE, "2020-01-01")],
            "1945-01-01",
            None,
        ),
        ("young", 14, true, vec![], "1970-01-01", None),
        ("dead", 14, true, vec![], "1940-01-01", Some("2025-01-01")),
    ]
}

fn cohort_rows() -> (Vec<P>, Vec<E>) {
    let defs = definitions();
    let (mut ps, mut es) = (Vec::new(), Vec::new());
    for (id, n, falls, pal, birth, death) in people() {
        let mut p = patient(id, birth);
        p.death = death;
        ps.push(p);
        for (k, c) in deficits(&defs, n, falls).into_iter().enumerate() {
            // The fall (the last code when there is one) within the 12 months to the as-of
            // date, the other deficits long before.
            let date = if falls && k + 1 == n {
                "2024-10-01"
            } else {
                "2023-01-01"
            };
            es.push(ev(id, date, "snomed", &c));
        }
        for (code, date) in pal {
            es.push(ev(id, date, "snomed", code));
        }
    }
    // A fall recorded 27 months before the as-of date and nothing since: no falls history in
    // the last 12 months (NICE NG249), so on no falls list.
    ps.push(patient("oldfall", "1945-01-01"));
    es.push(ev(
        "oldfall",
        "2023-01-01",
        "snomed",
        &deficits(&defs, 1, true)[0],
    ));
    (ps, es)
}

#[test]
fn the_palliative_register_follows_the_qof_rule_at_its_edges() {
    let (ps, es) = cohort_rows();
    let opts = LoadOptions {
        today: strata::date::parse_days("2026-01-01").unwrap(),
        ..Default::default()
    };
    for adaptor in ADAPTORS {
        let c: Cohort = load_via(adaptor, &ps, &es, &[], &opts).unwrap();
        let on = strata::palliative::on_register(
            &c,
            &definitions(),
            strata::date::parse_days(AS_OF).unwrap(),
        );
        let got: BTreeSet<&str> = (0..c.patients.len())
            .filter(|&i| on[i])
            .map(|i| c.patients.id[i].as_str())
            .collect();
        // pal_ni: a later "not indicated" code; pal_old: coded before 1 April 2008 only;
        // pal_later: coded after the as-of date only. A "not indicated" code on the same day
        // (pal_same) or before the care code (pal_back) does not take anyone off.
        let want: BTreeSet<&str> = ["pal_on", "pal_same", "pal_edge", "pal_back"].into();
        assert_eq!(got, want, "{adaptor:?}");
    }
}

const PROGRAMMES: &str = r#"
[[programme]]
name = "mild"
description = "Mild frailty"
[[programme.rule]]
min_category = "mild"
max_category = "mild"

[[programme]]
name = "severe_or_falls"
[[programme.rule]]
min_category = "severe"
[[programme.rule]]
falls_history = true

[[programme]]
name = "review"
top = 3
[[programme.rule]]
min_category = "mild"
palliative_register = false
"#;

fn write_programmes(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("programmes.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// (patient_id, rule) of a programme list, in file order; the ranks are 1..n.
fn list(out: &Path, pcn: &str, programme: &str) -> Vec<(String, String)> {
    let df = read_csv(&out.join(format!("lists/{pcn}/{pcn}.{programme}.csv")));
    let s = |c: &str| strings(&df, c);
    let rank: Vec<i64> = df
        .column("rank")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(rank, (1..=df.height() as i64).collect::<Vec<_>>());
    s("patient_id").into_iter().zip(s("rule")).collect()
}

#[test]
fn each_rule_lists_whom_it_says_in_frailty_order_and_says_why() {
    let (ps, es) = cohort_rows();
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("cohort");
    write_cohort(&c, &ps, &es, &[]);
    let progs = write_programmes(d.path(), PROGRAMMES);
    let out = d.path().join("out");
    let o = score_into(
        &c,
        &out,
        &[
            "--today",
            "2026-01-01",
            "--no-risk-models",
            "--programmes",
            progs.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("programme mild: 9 listed (Mild frailty;"),
        "{}",
        stdout(&o)
    );
    // Mild: 5 to 8 deficits; by deficits (mild1 and the pal_* have 6, mild2 5), ties by
    // pseudonym. `young` and `dead` are never listed.
    let mild = list(&out, "PCN1", "mild");
    let ids: Vec<&str> = mild.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        ids,
        [
            "mild1",
            "pal_back",
            "pal_edge",
            "pal_later",
            "pal_ni",
            "pal_old",
            "pal_on",
            "pal_same",
            "mild2"
        ]
    );
    assert_eq!(mild[0].1, "mild frailty (eFI 6 of 36 deficits)");
    assert_eq!(mild[8].1, "mild frailty (eFI 5 of 36 deficits)");
    // Severe or a fall: sev1 by both rules, mild2 by its fall.
    let sf = list(&out, "PCN1", "severe_or_falls");
    assert_eq!(
        sf,
        vec![
            (
                "sev1".to_string(),
                "severe frailty (eFI 14 of 36 deficits); a fall recorded in the last 12 months"
                    .to_string()
            ),
            (
                "mild2".to_string(),
                "a fall recorded in the last 12 months".to_string()
            ),
        ]
    );
    // Not on the register, mild or worse, the top 3: sev1 (14), mod1 (10), then the first
    // with 6 deficits by pseudonym not on the register (mild1).
    let review = list(&out, "PCN1", "review");
    assert_eq!(
        review.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["sev1", "mod1", "mild1"]
    );
    assert_eq!(
        review[1].1,
        "moderate frailty (eFI 10 of 36 deficits) and not on the palliative care register"
    );
    // Parquet beside each CSV, the same rows and rules; the frailty list is untouched (no
    // `rule`).
    for prog in ["mild", "severe_or_falls", "review"] {
        let pq = read_parquet(&out.join(format!("lists/PCN1/PCN1.{prog}.parquet")));
        let csv = read_csv(&out.join(format!("lists/PCN1/PCN1.{prog}.csv")));
        for c in ["patient_id", "rule"] {
            assert_eq!(strings(&pq, c), strings(&csv, c), "{prog} {c}");
        }
    }
    assert_eq!(
        read_parquet(&out.join("lists/PCN1/PCN1.mild.parquet")).height(),
        9
    );
    let main = read_csv(&out.join("lists/PCN1/PCN1.csv"));
    assert!(main.column("rule").is_err() && main.column("change").is_ok());
    let prog = read_csv(&out.join("lists/PCN1/PCN1.mild.csv"));
    assert!(prog.column("change").is_err());
    // The manifest records each programme's count and hashes its files.
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["programmes"][2]["name"], "review");
    assert_eq!(m["programmes"][2]["listed"], 3);
    assert_eq!(
        m["config"]["programmes"][0]["rules"][0]["max_category"],
        "Mild"
    );
    let paths: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    for p in ["mild", "severe_or_falls", "review"] {
        for ext in ["csv", "parquet"] {
            assert!(
                paths.contains(&format!("lists/PCN1/PCN1.{p}.{ext}").as_str()),
                "{paths:?}"
            );
        }
    }
    // The frailty lists' count in the summary line is the PCN lists alone.
    assert!(stdout(&o).contains("across 1 PCN lists"), "{}", stdout(&o));
}

/// The fixture scored with the repository's strata.toml (the five example programmes) at
/// `threads` threads.
fn example_run(dir: &Path, threads: &str) -> PathBuf {
    let out = dir.join(format!("out-{threads}"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("strata.toml");
    let o = score_into(
        &fixtures().join("cohort-2000"),
        &out,
        // Bands by rank within the PCN here, so that "high" is the top ceil(5%) of each PCN
        // (card bands: tests/risk.rs).
        &[
            "--config",
            example.to_str().unwrap(),
            "--threads",
            threads,
            "--risk-bands",
            "pcn",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn the_five_example_programmes_on_the_fixture() {
    let d = tempfile::tempdir().unwrap();
    let out = example_run(d.path(), "1");
    let scores = read_parquet(&out.join("scores.parquet"));
    let (ids, pcn, status, cat) = (
        strings(&scores, "patient_id"),
        strings(&scores, "pcn_code"),
        strings(&scores, "status"),
        strings(&scores, "efi_category"),
    );
    // A model's high band and above: the top ceil(5%) of the PCN's eligible people.
    let top5 = |p: &str| {
        let n = (0..ids.len())
            .filter(|&i| pcn[i] == p && status[i] == "eligible")
            .count();
        (n as f64 * 0.05).ceil() as usize
    };
    let high = |b: &str| b == "high" || b == "very_high";
    let mut on_any: BTreeMap<String, usize> = BTreeMap::new();
    for p in ["U10000", "U10037", "U10074", "U10111"] {
        let by_cat = |lo: &str, hi: &str| -> BTreeSet<String> {
            let order = ["fit", "mild", "moderate", "severe"];
            let r = |c: &str| order.iter().position(|x| *x == c).unwrap();
            (0..ids.len())
                .filter(|&i| pcn[i] == p && status[i] == "eligible")
                .filter(|&i| r(&cat[i]) >= r(lo) && r(&cat[i]) <= r(hi))
                .map(|i| ids[i].clone())
                .collect()
        };
        let mut set = |prog: &str| -> BTreeSet<String> {
            let l = list(&out, p, prog);
            for (id, _) in &l {
                *on_any.entry(id.clone()).or_default() += 1;
            }
            l.into_iter().map(|(id, _)| id).collect()
        };
        assert_eq!(
            set("digital_self_management"),
            by_cat("mild", "mild"),
            "{p}"
        );
        assert_eq!(set("staying_well"), by_cat("moderate", "moderate"), "{p}");
        assert_eq!(set("anticipatory_care"), by_cat("severe", "severe"), "{p}");
        // Nobody in the fixture is on the palliative care register: the review list is the
        // death model's high band and above.
        let review = read_csv(&out.join(format!("lists/{p}/{p}.palliative_register_review.csv")));
        assert_eq!(review.height(), top5(p), "{p}");
        assert!(
            strings(&review, "death_band").iter().all(|b| high(b)),
            "{p}"
        );
        assert!(strings(&review, "rule")
            .iter()
            .all(|r| r.starts_with("death risk ")
                && r.ends_with(" and not on the palliative care register")));
        set("palliative_register_review");
        // Falls: the falls model's high band and above, and whoever has a fall recorded; the
        // rule column says which.
        let fl = read_csv(&out.join(format!("lists/{p}/{p}.falls_prevention.csv")));
        let (rule, present, band) = (
            strings(&fl, "rule"),
            strings(&fl, "efi_deficits_present"),
            strings(&fl, "falls_admission_band"),
        );
        assert_eq!(band.iter().filter(|b| high(b)).count(), top5(p), "{p}");
        for i in 0..fl.height() {
            let fall = present[i].split("; ").any(|x| x == "Falls");
            // A fall in the last 12 months is a fall recorded at all (the eFI deficit).
            assert!(!rule[i].contains("a fall recorded") || fall, "{p} row {i}");
            assert_eq!(
                rule[i].contains("falls admission risk"),
                high(&band[i]),
                "{p} row {i}"
            );
            assert!(fall || high(&band[i]), "{p} row {i}");
        }
        // Ranked by the falls model.
        let r: Vec<f64> = floats(&fl, "falls_admission_risk")
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        assert!(r.windows(2).all(|w| w[0] >= w[1]), "{p}");
        set("falls_prevention");
    }
    assert!(
        on_any.values().any(|&n| n >= 2),
        "someone is on several lists"
    );
}

#[test]
fn programme_lists_are_byte_identical_at_one_and_two_threads() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (example_run(d.path(), "1"), example_run(d.path(), "2"));
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        tree_bytes(dir)
            .into_iter()
            .filter(|(p, _)| p != "manifest.json")
            .collect()
    };
    let fa = files(&a);
    assert!(
        fa.iter()
            .filter(|(p, _)| p.contains(".falls_prevention."))
            .count()
            == 8
    );
    assert_eq!(fa, files(&b));
}

#[test]
fn bad_programmes_are_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let cohort = fixtures().join("cohort-2000");
    let run = |text: &str, extra: &[&str]| {
        let p = write_programmes(d.path(), text);
        let out = d.path().join("out");
        let mut args = vec!["--programmes", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = score_into(&cohort, &out, &args);
        assert!(!out.exists(), "nothing is written");
        (o.status.code(), stderr(&o))
    };
    // An unknown key is named.
    let (code, err) = run(
        "[[programme]]\nname = \"x\"\n[[programme.rule]]\nfalls_histry = true\n",
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("falls_histry"), "{err}");
    // A rule without a condition, a reserved name.
    let (code, err) = run("[[programme]]\nname = \"x\"\n[[programme.rule]]\n", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no condition"), "{err}");
    let (code, err) = run(
        "[[programme]]\nname = \"dropped\"\n[[programme.rule]]\nmin_category = \"severe\"\n",
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("dropped"), "{err}");
    // A rule on a model the run does not apply: the models' exit code, and why.
    let (code, err) = run(
        "[[programme]]\nname = \"x\"\n[[programme.rule]]\nrisk = \"death\"\nmin_band = \"high\"\n",
        &["--no-risk-models"],
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("programme 'x'") && err.contains("death model"),
        "{err}"
    );
}

/// A list file's rows as text, by pseudonym, without the columns named in `skip`.
fn rows_by_id(path: &Path, skip: &[&str]) -> BTreeMap<String, Vec<(String, String)>> {
    let df = read_csv(path);
    let cols: Vec<(String, Vec<String>)> = df
        .get_column_names()
        .iter()
        .filter(|c| !skip.contains(&c.as_str()))
        .map(|c| (c.to_string(), strings(&df, c)))
        .collect();
    let ids = strings(&df, "patient_id");
    (0..df.height())
        .map(|r| {
            let row = cols
                .iter()
                .map(|(c, v)| (c.clone(), v[r].clone()))
                .collect();
            (ids[r].clone(), row)
        })
        .collect()
}

#[test]
fn programme_rows_are_the_persons_list_row_and_programmes_leave_the_lists_alone() {
    let d = tempfile::tempdir().unwrap();
    let with = example_run(d.path(), "2");
    let cohort = fixtures().join("cohort-2000");
    let without = d.path().join("without");
    let o = score_into(
        &cohort,
        &without,
        &["--no-programmes", "--risk-bands", "pcn"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Everyone eligible on the frailty lists: every programme row has a list row to match.
    let everyone = d.path().join("everyone");
    let o = score_into(
        &cohort,
        &everyone,
        &[
            "--no-programmes",
            "--min-category",
            "fit",
            "--risk-bands",
            "pcn",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (mut checked, mut only_on_programmes) = (0, 0);
    for pcn in ["U10000", "U10037", "U10074", "U10111"] {
        // The frailty list and its documents are the same bytes with or without programmes.
        for ext in ["csv", "parquet", "xlsx", "html"] {
            let rel = format!("lists/{pcn}/{pcn}.{ext}");
            assert!(
                std::fs::read(with.join(&rel)).unwrap()
                    == std::fs::read(without.join(&rel)).unwrap(),
                "{rel} changes with programmes"
            );
        }
        let listed = rows_by_id(&with.join(format!("lists/{pcn}/{pcn}.csv")), &[]);
        let all = rows_by_id(
            &everyone.join(format!("lists/{pcn}/{pcn}.csv")),
            &["rank", "change"],
        );
        for programme in [
            "digital_self_management",
            "staying_well",
            "anticipatory_care",
            "falls_prevention",
            "palliative_register_review",
        ] {
            let file = with.join(format!("lists/{pcn}/{pcn}.{programme}.csv"));
            for (id, row) in rows_by_id(&file, &["rank", "rule"]) {
                assert_eq!(&row, &all[&id], "{pcn} {programme} {id}");
                checked += 1;
                only_on_programmes += usize::from(!listed.contains_key(&id));
            }
        }
    }
    assert!(checked > 200, "{checked}");
    // Some programme rows come from people not on the frailty list (fit, high risk).
    assert!(only_on_programmes > 0, "{only_on_programmes}");
}
