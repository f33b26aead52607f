//! Risk models on the nightly lists (`strata score` with model cards): the probabilities
//! recomputed independently from the card and the exported feature table, rank, percentile and
//! band within the PCN, explanations that add up to the prediction, ranking by a model, and the
//! errors a bad card configuration gets.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::*;
use polars::prelude::*;
use strata::cohort::Cohort;
use strata::risk::{self, Explainer, RiskBand};

const TODAY: &str = "2026-11-25";

fn cohort_dir() -> std::path::PathBuf {
    fixtures().join("cohort-2000")
}

fn run_ok(args: &[&str]) -> String {
    let o = strata(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn score(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--today", TODAY];
    args.extend_from_slice(extra);
    score_into(&cohort_dir(), out, &args)
}

fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    let col = df.column(c).unwrap().cast(&DataType::String).unwrap();
    col.str()
        .unwrap()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

/// Train a small GBDT card on the fixture (the default cards are logistic).
fn gbdt_card(dir: &Path, outcome: &str) -> std::path::PathBuf {
    let card = dir.join(format!("{outcome}.gbdt.json"));
    run_ok(&[
        "train",
        "--cohort",
        cohort_dir().to_str().unwrap(),
        "--outcome",
        outcome,
        "--model",
        "gbdt",
        "--trees",
        "25",
        "--as-of",
        AS_OF,
        "--today",
        TODAY,
        "--out",
        card.to_str().unwrap(),
    ]);
    card
}

#[test]
fn probabilities_match_the_card_applied_independently_to_the_exported_table() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = score(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: serde_json::Value = manifest(&out);
    assert_eq!(manifest["risk_models"].as_array().unwrap().len(), 3);
    assert!(stderr(&o).contains("trained on synthetic data"));

    // The feature table strata exports, and the default emergency-admission card, applied here
    // by hand: standardise, missing -> the mean (z = 0), dot product, logistic.
    let table = d.path().join("features.parquet");
    run_ok(&[
        "features",
        "--cohort",
        cohort_dir().to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--today",
        TODAY,
        "--out",
        table.to_str().unwrap(),
    ]);
    let x = read_parquet(&table);
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join("risk/emergency_admission.logistic.json"))
            .unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = card["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let num = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let coef = num(&card["model"]["logistic"]["coef"]);
    let mean = num(&card["preprocessing"]["standardise"]["mean"]);
    let sd = num(&card["preprocessing"]["standardise"]["sd"]);
    let intercept = card["model"]["logistic"]["intercept"].as_f64().unwrap();
    let cols: Vec<Vec<Option<f64>>> = names.iter().map(|n| floats(&x, n)).collect();
    let ids = strs(&x, "patient_id");
    let mut expected: HashMap<String, f64> = HashMap::new();
    for (r, id) in ids.iter().enumerate() {
        let mut z = intercept;
        for j in 0..names.len() {
            if let Some(v) = cols[j][r] {
                z += coef[j] * (v - mean[j]) / sd[j];
            }
        }
        expected.insert(id.clone().unwrap(), 1.0 / (1.0 + (-z).exp()));
    }

    let scores = read_parquet(&out.join("scores.parquet"));
    let sid = strs(&scores, "patient_id");
    let risk = floats(&scores, "emergency_admission_risk");
    let status = strs(&scores, "status");
    let mut checked = 0;
    for i in 0..sid.len() {
        let id = sid[i].clone().unwrap();
        match expected.get(&id) {
            Some(p) => {
                let got = risk[i].expect("a probability for everyone alive");
                assert!((got - p).abs() <= 0.00005 + 1e-9, "{id}: {got} vs {p}");
                checked += 1;
            }
            None => {
                assert_eq!(status[i].as_deref(), Some("deceased"), "{id}");
                assert_eq!(risk[i], None, "no probability for the dead: {id}");
            }
        }
    }
    assert_eq!(checked, expected.len());
    assert!(checked > 1500, "{checked}");
}

#[test]
fn rank_percentile_and_band_are_within_the_pcn_and_reasons_are_words() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(score(&out, &["--risk-bands", "pcn"]).status.success());
    let scores = read_parquet(&out.join("scores.parquet"));
    let pcn = strs(&scores, "pcn_code");
    let status = strs(&scores, "status");
    let sid = strs(&scores, "patient_id");
    // Eligible people per PCN.
    let mut eligible: HashMap<String, u32> = HashMap::new();
    for i in 0..sid.len() {
        if status[i].as_deref() == Some("eligible") {
            *eligible.entry(pcn[i].clone().unwrap()).or_default() += 1;
        }
    }
    let (mut listed, mut with_reasons) = (0, 0);
    for (code, n) in eligible {
        let list = read_csv(&out.join(format!("lists/{code}/{code}.csv")));
        let ids = strs(&list, "patient_id");
        let prob = floats(&list, "death_risk");
        let ranks = floats(&list, "death_rank_in_pcn");
        let pct = floats(&list, "death_percentile_in_pcn");
        let band = strs(&list, "death_band");
        let factors = strs(&list, "death_factors");
        // Ranks are distinct, within 1..=n, and follow the (published, rounded) probability.
        let mut by_rank: Vec<(u32, f64)> = (0..ids.len())
            .map(|k| (ranks[k].unwrap() as u32, prob[k].unwrap()))
            .collect();
        by_rank.sort_by_key(|x| x.0);
        for w in by_rank.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 >= w[1].1, "{code}: {w:?}");
        }
        for k in 0..ids.len() {
            let id = ids[k].as_deref().unwrap();
            let r = ranks[k].unwrap() as u32;
            assert!((1..=n).contains(&r), "{code} {id} rank {r} of {n}");
            let p = (100 * (n - r + 1)).div_ceil(n);
            assert_eq!(pct[k], Some(p as f64), "{code} {id}");
            assert_eq!(
                band[k].as_deref(),
                Some(RiskBand::of_rank(r, n).name()),
                "{code} {id}"
            );
            // Someone whose risk nothing raises above the list population's has no reasons.
            let f = factors[k].clone().unwrap_or_default();
            with_reasons += !f.is_empty() as usize;
            for raw in ["efi_", "_12m", "_3m", "sex_", "imd_decile", "charlson_"] {
                assert!(!f.contains(raw), "{id}: feature name in {f:?}");
            }
            listed += 1;
        }
    }
    assert!(listed > 100, "{listed}");
    assert!(
        with_reasons * 2 > listed,
        "{with_reasons} of {listed} have reasons"
    );
}

/// The fixture scored, with the default death card and a small GBDT emergency-admission card
/// trained in `dir`.
fn fixture_with_trees(
    dir: &Path,
) -> (
    strata::definitions::Definitions,
    Cohort,
    strata::results::Scored,
    i32,
    Vec<risk::RiskModel>,
) {
    let gbdt = gbdt_card(dir, "emergency_admission");
    let (defs, cohort, scored, as_of) = fixture_scored();
    let models = risk::load(
        &[models_dir().join("risk/death.logistic.json"), gbdt],
        &defs,
    )
    .unwrap();
    (defs, cohort, scored, as_of, models)
}

#[test]
fn contributions_add_up_to_the_prediction_for_logistic_and_trees() {
    let d = tempfile::tempdir().unwrap();
    let (defs, cohort, scored, as_of, models) = fixture_with_trees(d.path());
    assert_eq!(models.len(), 2);
    let risks = risk::apply(
        &models,
        &cohort,
        &defs,
        &scored,
        as_of,
        strata::lists::BandMode::Card,
    );
    let ex = Explainer::new(&cohort, &defs, &scored, as_of);
    let mut nonzero = 0;
    for p in (0..cohort.patients.len()).step_by(7) {
        let row = ex.row(p);
        for (m, r) in models.iter().zip(&risks) {
            let c = m.contributions(&row);
            let margin = m.margin(&row);
            let sum: f64 = m.base_value() + c.iter().sum::<f64>();
            assert!(
                (sum - margin).abs() <= 1e-6 * (1.0 + margin.abs()),
                "{:?} patient {p}: base + contributions {sum} vs margin {margin}",
                m.outcome
            );
            if !r.probability[p].is_nan() {
                let prob = 1.0 / (1.0 + (-margin).exp());
                assert!((r.probability[p] - prob).abs() < 1e-12);
            }
            nonzero += c.iter().filter(|v| v.abs() > 0.0).count();
        }
    }
    assert!(nonzero > 0);
}

/// The default cards were trained on synthetic data: on a cohort without strata synth's mark
/// they are applied only when named, and the run says why its lists carry no risk figures.
#[test]
fn default_synthetic_cards_are_applied_to_an_unmarked_cohort_only_when_named() {
    let d = tempfile::tempdir().unwrap();
    let unmarked = d.path().join("unmarked");
    unmarked_copy(&cohort_dir(), &unmarked);
    let list_columns = |out: &Path| -> Vec<String> {
        let lists = out.join("lists");
        let pcn = std::fs::read_dir(&lists).unwrap().next().unwrap().unwrap();
        let stem = pcn.file_name().to_string_lossy().to_string();
        let df = read_parquet(&pcn.path().join(format!("{stem}.parquet")));
        df.get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect()
    };

    // Not named: not applied; a warning and the manifest say so.
    let out = d.path().join("default");
    let o = score_into(&unmarked, &out, &["--today", TODAY]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(m["risk_models"].as_array().unwrap().len(), 0);
    assert_eq!(m["withheld_risk_models"].as_array().unwrap().len(), 3);
    assert!(m["cohort_synthetic"].is_null());
    let warned = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("were not applied"));
    assert!(warned, "{}", m["warnings"]);
    assert!(stderr(&o).contains("were not applied"));
    let cols = list_columns(&out);
    assert!(!cols.iter().any(|c| c.ends_with("_risk")), "{cols:?}");
    assert!(!cols
        .iter()
        .any(|c| c == strata::output::columns::RISK_SOURCE));

    // Ranking by a withheld model is refused with the reason and the way out.
    let o = score_into(
        &unmarked,
        &d.path().join("ranked"),
        &["--today", TODAY, "--rank-by", "death"],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("not synthetic") && err.contains("strata train --outcome death"),
        "{err}"
    );

    // Named: applied, with the caveat on every row.
    let out = d.path().join("named");
    let cards = models_dir().join("risk");
    let o = score_into(
        &unmarked,
        &out,
        &["--today", TODAY, "--risk-models", cards.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(m["risk_models"].as_array().unwrap().len(), 3);
    assert_eq!(m["withheld_risk_models"].as_array().unwrap().len(), 0);
    let cols = list_columns(&out);
    assert!(cols.iter().any(|c| c == "death_risk"), "{cols:?}");
    assert!(cols
        .iter()
        .any(|c| c == strata::output::columns::RISK_SOURCE));

    // The fixture itself is marked: the defaults apply there.
    let out = d.path().join("marked");
    let o = score(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest(&out)["risk_models"].as_array().unwrap().len(), 3);
    assert!(manifest(&out)["cohort_synthetic"].is_string());
}

/// The run explains everyone it lists in one batch (tree cards find each pattern of splits
/// once across them all); a PCN's list, or one person, explained alone gets the same words.
#[test]
fn explanations_do_not_depend_on_who_else_is_explained() {
    let d = tempfile::tempdir().unwrap();
    let (defs, cohort, scored, as_of, models) = fixture_with_trees(d.path());
    let everyone: Vec<u32> = (0..cohort.patients.len() as u32).collect();
    let alone = Explainer::new(&cohort, &defs, &scored, as_of);
    let ahead = Explainer::new(&cohort, &defs, &scored, as_of).ahead(&models, everyone.clone());
    let all = ahead.factors_of(&models, &everyone);
    let mut named = 0;
    for (k, chunk) in everyone.chunks(97).enumerate() {
        // A chunk explained on its own, in reverse order, against the batch of everyone.
        let rev: Vec<u32> = chunk.iter().rev().copied().collect();
        let own = alone.factors_of(&models, &rev);
        for (i, &p) in rev.iter().enumerate() {
            assert_eq!(own[i], all[p as usize], "patient {p}");
        }
        if k % 5 == 0 {
            assert_eq!(
                alone.factors(&models, chunk[0] as usize),
                all[chunk[0] as usize]
            );
        }
        named += chunk
            .iter()
            .filter(|&&p| !all[p as usize][1].is_empty())
            .count();
    }
    assert!(named > 100, "{named} people have tree reasons");
}

#[test]
fn lists_can_be_ranked_by_a_model_and_carry_high_risk_people_who_are_not_frail() {
    let d = tempfile::tempdir().unwrap();
    let by_frailty = d.path().join("frailty");
    let by_risk = d.path().join("risk");
    assert!(score(&by_frailty, &[]).status.success());
    let o = score(
        &by_risk,
        &[
            "--rank-by",
            "emergency_admission",
            "--list-risk-band",
            "moderate",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (mut n_frailty, mut n_risk, mut fit_but_high) = (0, 0, 0);
    for p in list_files(&by_risk) {
        if p.extension().is_none_or(|x| x != "csv") {
            continue;
        }
        let list = read_csv(&p);
        let prob = floats(&list, "emergency_admission_risk");
        let band = strs(&list, "emergency_admission_band");
        let cat = strs(&list, "efi_category");
        let rank = floats(&list, "rank");
        for k in 0..prob.len() {
            assert_eq!(rank[k], Some(k as f64 + 1.0));
            if k > 0 {
                assert!(prob[k - 1] >= prob[k], "{p:?} not in risk order at {k}");
            }
            let high = matches!(band[k].as_deref(), Some("moderate" | "high" | "very_high"));
            let frail = cat[k].as_deref() != Some("fit");
            assert!(high || frail, "{p:?} row {k} neither frail nor high risk");
            if !frail {
                fit_but_high += 1;
            }
        }
        n_risk += prob.len();
        n_frailty += read_csv(&by_frailty.join(p.strip_prefix(&by_risk).unwrap())).height();
    }
    assert!(
        fit_but_high > 0,
        "no fit person in the high band was listed"
    );
    assert_eq!(n_risk, n_frailty + fit_but_high);
}

#[test]
fn bad_model_configurations_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = score(&out, &["--rank-by", "death", "--no-risk-models"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("no death model is configured"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    let o = score(&out, &["--list-risk-band", "high"]);
    assert_eq!(o.status.code(), Some(2));

    // A card that needs a feature strata does not make.
    let text = std::fs::read_to_string(models_dir().join("risk/death.logistic.json")).unwrap();
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, text.replacen("\"age\"", "\"age_exact_days\"", 1)).unwrap();
    let o = score(&out, &["--risk-models", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("age_exact_days"), "{}", stderr(&o));

    // Two cards for one outcome.
    let copy = d.path().join("copy.json");
    std::fs::write(&copy, &text).unwrap();
    let o = score(
        &out,
        &[
            "--risk-models",
            copy.to_str().unwrap(),
            "--risk-models",
            models_dir().join("risk").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("two risk models predict death"),
        "{}",
        stderr(&o)
    );

    // Not a card.
    std::fs::write(&bad, "{\"outcome\": \"death\"}").unwrap();
    let o = score(&out, &["--risk-models", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("bad.json"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn without_models_the_lists_have_no_model_columns() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(score(&out, &["--no-risk-models"]).status.success());
    let scores = read_parquet(&out.join("scores.parquet"));
    assert!(scores.column("death_risk").is_err());
}

fn list_lengths(out: &Path) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = list_files(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .map(|p| {
            let n = read_csv(&p).height();
            (p.file_stem().unwrap().to_string_lossy().to_string(), n)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn list_size_can_be_capped_by_count_share_or_probability() {
    let d = tempfile::tempdir().unwrap();
    let full = d.path().join("full");
    assert!(score(&full, &[]).status.success());
    let all = list_lengths(&full);

    let top = d.path().join("top");
    assert!(score(&top, &["--top", "5"]).status.success());
    let capped = list_lengths(&top);
    for ((pcn, n), (_, m)) in all.iter().zip(&capped) {
        assert_eq!(*m, (*n).min(5), "{pcn}");
        // The same five people, in the same order, as the top of the full list.
        let a = read_csv(&full.join(format!("lists/{pcn}/{pcn}.csv")));
        let b = read_csv(&top.join(format!("lists/{pcn}/{pcn}.csv")));
        assert_eq!(strs(&a, "patient_id")[..*m], strs(&b, "patient_id")[..]);
    }

    // Top 10% of each PCN's eligible people (from scores.parquet), rounded up.
    let pct = d.path().join("pct");
    assert!(score(&pct, &["--top-percent", "10"]).status.success());
    let scores = read_parquet(&full.join("scores.parquet"));
    let (pcns, status) = (strs(&scores, "pcn_code"), strs(&scores, "status"));
    for (pcn, m) in list_lengths(&pct) {
        let eligible = (0..pcns.len())
            .filter(|&i| {
                pcns[i].as_deref() == Some(&pcn) && status[i].as_deref() == Some("eligible")
            })
            .count();
        let n = all.iter().find(|x| x.0 == pcn).unwrap().1;
        assert_eq!(m, n.min((eligible as f64 * 0.1).ceil() as usize), "{pcn}");
    }

    // Everyone eligible at or above a probability, ranked by that model.
    let thr = d.path().join("thr");
    let o = score(
        &thr,
        &[
            "--rank-by",
            "death",
            "--min-risk",
            "0.2",
            "--min-category",
            "severe",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut over = 0;
    for (pcn, _) in list_lengths(&thr) {
        let l = read_csv(&thr.join(format!("lists/{pcn}/{pcn}.csv")));
        let (p, cat) = (floats(&l, "death_risk"), strs(&l, "efi_category"));
        for k in 0..p.len() {
            let high = p[k].unwrap() >= 0.2 - 0.00005;
            assert!(high || cat[k].as_deref() == Some("severe"), "{pcn} row {k}");
            over += high as usize;
        }
    }
    assert!(over > 0);
    assert_eq!(score(&thr, &["--min-risk", "0.2"]).status.code(), Some(2));
    assert_eq!(score(&thr, &["--top-percent", "0"]).status.code(), Some(2));
}

/// The fixture cohort read and scored at [`AS_OF`], with the definitions.
fn fixture_scored() -> (
    strata::definitions::Definitions,
    Cohort,
    strata::results::Scored,
    i32,
) {
    let defs = definitions();
    let opts = strata::input::LoadOptions {
        today: strata::date::parse_days(TODAY).unwrap(),
        ..Default::default()
    };
    let cohort = Cohort::load(&cohort_dir(), &opts).unwrap();
    let as_of = strata::date::parse_days(AS_OF).unwrap();
    let scored = strata::run::score_cohort(&cohort, &defs, as_of, &Default::default());
    (defs, cohort, scored, as_of)
}

/// Every shipped card (`models/risk`, trees included) ranks the more deprived of two otherwise
/// identical people at least as high, for every person of the fixture aged 65+ (IMD decile 1
/// against 10), and its list population and baseline are on the card.
#[test]
fn no_shipped_card_ranks_the_more_deprived_lower() {
    let (defs, cohort, scored, as_of) = fixture_scored();
    let ex = Explainer::new(&cohort, &defs, &scored, as_of);
    let names = strata::predictors::predictor_names(&defs);
    let imd = names.iter().position(|n| n == "imd_decile").unwrap();
    let mut cards: Vec<std::path::PathBuf> = Vec::new();
    for dir in [models_dir().join("risk"), models_dir().join("risk/gbdt")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                cards.push(e.path());
            }
        }
    }
    assert!(cards.len() >= 3, "{cards:?}");
    for card in &cards {
        let text = std::fs::read_to_string(card).unwrap();
        let c = strata_models::ModelCard::from_json(&text).unwrap();
        let b = c
            .list_baseline
            .as_ref()
            .unwrap_or_else(|| panic!("{card:?}: no list baseline"));
        assert_eq!(b.min_age, 65);
        assert!(c.list_validation_metrics.is_some(), "{card:?}");
        let m = &risk::load(std::slice::from_ref(card), &defs).unwrap()[0];
        let mut checked = 0;
        for p in 0..cohort.patients.len() {
            if scored.status[p] != strata::population::Status::Eligible {
                continue;
            }
            let mut row = ex.row(p);
            row[imd] = 1.0;
            let deprived = m.margin(&row);
            row[imd] = 10.0;
            let affluent = m.margin(&row);
            assert!(
                deprived >= affluent,
                "{card:?}: patient {p} {deprived} < {affluent}"
            );
            checked += 1;
        }
        assert!(checked > 100);
    }
}

/// Explanations are measured against the list population: the re-centred contributions add up
/// to the person's log-odds minus the population's mean, and a listed 65-69-year-old has age as
/// a reason only when their age raises their risk against that population.
#[test]
fn reasons_are_measured_against_the_list_population() {
    let (defs, cohort, scored, as_of) = fixture_scored();
    let ex = Explainer::new(&cohort, &defs, &scored, as_of);
    let card = models_dir().join("risk/death.logistic.json");
    let c = strata_models::ModelCard::from_json(&std::fs::read_to_string(&card).unwrap()).unwrap();
    let mean = c.list_baseline.unwrap().mean_log_odds;
    let m = &risk::load(&[card], &defs).unwrap()[0];
    let age = m.feature_names().iter().position(|n| n == "age").unwrap();
    let (mut young, mut young_with_age) = (0, 0);
    for p in 0..cohort.patients.len() {
        if scored.status[p] != strata::population::Status::Eligible {
            continue;
        }
        let row = ex.row(p);
        let c = m.contributions_against_list(&row);
        let sum: f64 = c.iter().sum();
        assert!((sum - (m.margin(&row) - mean)).abs() < 1e-9);
        let words = ex.factors(std::slice::from_ref(m), p).remove(0);
        if (65..70).contains(&scored.ages[p]) {
            young += 1;
            let named = words.contains("age 65-69");
            young_with_age += named as usize;
            assert!(!named || c[age] > 0.0, "{words}");
            assert!(c[age] < 0.0, "65-69 is below the 65+ mean age: {}", c[age]);
        }
        assert!(
            !words.contains("not ") && !words.contains("no record"),
            "{words}"
        );
    }
    assert!(
        young > 20 && young_with_age == 0,
        "{young} {young_with_age}"
    );
}

/// With the default card bands, a band is a probability range the card fixes (its list
/// population's top 1/5/20% in the validation year): the same in every PCN, so a PCN scored
/// alone gets exactly the bands it gets in the whole run.
#[test]
fn card_bands_are_the_same_whichever_pcns_are_scored() {
    let d = tempfile::tempdir().unwrap();
    let whole = d.path().join("whole");
    assert!(score(&whole, &[]).status.success());
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join("risk/death.logistic.json")).unwrap(),
    )
    .unwrap();
    let cut = |k: &str| card["risk_bands"][k].as_f64().unwrap();
    let (very_high, high, moderate) = (cut("very_high"), cut("high"), cut("moderate"));
    assert!(very_high > high && high > moderate && moderate > 0.0);
    // One PCN alone: its patients' rows of the three files.
    let scores = read_parquet(&whole.join("scores.parquet"));
    let pcns = strs(&scores, "pcn_code");
    let pcn = pcns[0].clone().unwrap();
    let alone = d.path().join("alone-cohort");
    std::fs::create_dir_all(&alone).unwrap();
    let patients = read_parquet(&cohort_dir().join("patients.parquet"));
    let keep = patients
        .column("pcn_code")
        .unwrap()
        .str()
        .unwrap()
        .equal(pcn.as_str());
    let patients = patients.filter(&keep).unwrap();
    let ids: Vec<String> = strs(&patients, "patient_id")
        .into_iter()
        .flatten()
        .collect();
    write_parquet_marked(&alone.join("patients.parquet"), patients);
    for f in ["events.parquet", "encounters.parquet"] {
        let df = read_parquet(&cohort_dir().join(f));
        let keep: BooleanChunked = strs(&df, "patient_id")
            .iter()
            .map(|id| id.as_ref().is_some_and(|id| ids.binary_search(id).is_ok()))
            .collect();
        write_parquet(&alone.join(f), df.filter(&keep).unwrap());
    }
    let alone_out = d.path().join("alone");
    let o = score_into(&alone, &alone_out, &["--today", TODAY]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = |out: &Path| {
        let l = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
        let ids = strs(&l, "patient_id");
        let bands = strs(&l, "death_band");
        let risk = floats(&l, "death_risk");
        (0..ids.len())
            .map(|k| {
                (
                    ids[k].clone().unwrap(),
                    bands[k].clone().unwrap(),
                    risk[k].unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (list(&whole), list(&alone_out));
    assert!(a.len() > 20, "{}", a.len());
    assert_eq!(a, b, "a PCN scored alone gets the bands of the whole run");
    // The bands follow the card's cut-offs (published probabilities are rounded to 4 places:
    // a probability within rounding of a cut-off could be either side).
    for (id, band, p) in &a {
        if [very_high, high, moderate]
            .iter()
            .any(|c| (p - c).abs() < 1e-4)
        {
            continue;
        }
        let want = if *p > very_high {
            "very_high"
        } else if *p > high {
            "high"
        } else if *p > moderate {
            "moderate"
        } else {
            "low"
        };
        assert_eq!(band, want, "{id} at {p}");
    }
}
