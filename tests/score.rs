//! `strata score` end to end on the committed 2,000-patient fixture: what the lists hold, that
//! runs are deterministic whatever the thread count, that a failed run leaves yesterday's output
//! alone, and that scoring by partition gives the same rows as scoring the whole.

mod common;

use common::*;
use polars::prelude::*;

fn cohort() -> std::path::PathBuf {
    fixtures().join("cohort-2000")
}

#[test]
fn writes_a_ranked_explained_list_per_pcn() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = score_into(&cohort(), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("across 4 PCN lists"), "{}", stdout(&o));
    // One folder per PCN, holding only that PCN's files, each named by its code.
    let mut folders: Vec<String> = std::fs::read_dir(out.join("lists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    assert_eq!(folders, ["U10000", "U10037", "U10074", "U10111"]);
    for f in list_files(&out) {
        let pcn = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(&format!("{pcn}.")), "{}", f.display());
    }
    let mut listed = 0;
    for pcn in ["U10000", "U10037", "U10074", "U10111"] {
        let csv = read_csv(&out.join(format!("lists/{pcn}/{pcn}.csv")));
        let pq = ParquetReader::new(
            std::fs::File::open(out.join(format!("lists/{pcn}/{pcn}.parquet"))).unwrap(),
        )
        .finish()
        .unwrap();
        assert_eq!(csv.height(), pq.height());
        assert!(csv.height() > 10);
        listed += csv.height();
        let names: Vec<String> = csv
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        for forbidden in [
            "birth_date",
            "age",
            "death_date",
            "nhs_number",
            "ethnicity_group",
        ] {
            assert!(
                !names.contains(&forbidden.to_string()),
                "{forbidden} leaked"
            );
        }
        let cat = csv.column("efi_category").unwrap().str().unwrap().clone();
        let def = csv
            .column("efi_deficits")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap();
        let def = def.i64().unwrap();
        let hfrs = csv
            .column("hfrs_score")
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap();
        let hfrs = hfrs.f64().unwrap();
        let pid = csv.column("patient_id").unwrap().str().unwrap().clone();
        let reasons = csv
            .column("efi_deficits_present")
            .unwrap()
            .str()
            .unwrap()
            .clone();
        let rank = |c: &str| {
            ["fit", "mild", "moderate", "severe"]
                .iter()
                .position(|x| *x == c)
                .unwrap()
        };
        for i in 0..csv.height() {
            let c = cat.get(i).unwrap();
            assert_ne!(c, "fit", "fit patients are not listed by default");
            let n = def.get(i).unwrap();
            assert_eq!(
                reasons.get(i).unwrap().split("; ").count() as i64,
                n,
                "one reason per deficit"
            );
            if i > 0 {
                let prev = (
                    rank(cat.get(i - 1).unwrap()),
                    def.get(i - 1).unwrap(),
                    hfrs.get(i - 1).unwrap(),
                );
                let cur = (rank(c), n, hfrs.get(i).unwrap());
                assert!(prev >= cur, "row {i} out of order");
                if prev == cur {
                    assert!(
                        pid.get(i - 1).unwrap() < pid.get(i).unwrap(),
                        "ties by pseudonym"
                    );
                }
            }
        }
    }
    let scores = read_parquet(&out.join("scores.parquet"));
    assert_eq!(scores.height(), 2000);
    let manifest: serde_json::Value = manifest(&out);
    assert_eq!(manifest["listed"].as_u64().unwrap() as usize, listed);
    assert_eq!(manifest["patients"], 2000);
    assert!(manifest["models"].as_array().unwrap().len() >= 7);
}

#[test]
fn summary_suppresses_small_numbers_and_can_round_for_publication() {
    let d = tempfile::tempdir().unwrap();
    for (flag, step) in [(None, 1), (Some("--publication"), 5)] {
        let out = d.path().join(format!("out{step}"));
        let extra: Vec<&str> = flag.into_iter().collect();
        let o = score_into(&cohort(), &out, &extra);
        assert!(o.status.success(), "{}", stderr(&o));
        for file in ["summary.csv", "equity.csv"] {
            let text = std::fs::read_to_string(out.join(file)).unwrap();
            let mut suppressed = 0;
            for line in text.lines().skip(1) {
                // Group labels may be quoted and hold commas: count cells from the right.
                let all: Vec<&str> = line.split(',').collect();
                let cells: Vec<&str> = all[all.len() - 7..].to_vec();
                assert_eq!(cells.len(), 7);
                let row: Vec<Option<u64>> = cells[2..].iter().map(|c| c.parse().ok()).collect();
                for (c, v) in cells[2..].iter().zip(&row) {
                    match v {
                        Some(n) => {
                            assert!(*n == 0 || *n >= 8, "unsuppressed small count in {line}");
                            assert_eq!(n % step, 0, "not rounded to {step}: {line}");
                        }
                        None => {
                            assert_eq!(*c, "[c]");
                            suppressed += 1;
                        }
                    }
                }
                // A row with a shown total never has exactly one suppressed cell.
                let hidden = row.iter().filter(|v| v.is_none()).count();
                assert_ne!(hidden, 1, "a lone suppressed cell is recoverable: {line}");
            }
            assert!(suppressed > 0, "the fixture has small cells in {file}");
        }
    }
}

#[test]
fn equity_table_partitions_the_eligible_population_in_every_dimension() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = score_into(&cohort(), &out, &[]);
    assert!(o.status.success());
    let eq = read_csv(&out.join("equity.csv"));
    let dims = eq.column("dimension").unwrap().str().unwrap().clone();
    let dims: std::collections::BTreeSet<String> =
        dims.iter().map(|x| x.unwrap().to_string()).collect();
    assert_eq!(
        dims.into_iter().collect::<Vec<_>>(),
        vec!["ALL", "age_band", "ethnicity_group", "imd_quintile", "sex"]
    );
    let text = std::fs::read_to_string(out.join("equity.csv")).unwrap();
    assert!(
        text.contains("imd_quintile,\"1 (most deprived, Core20)\","),
        "{text}"
    );
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let total_summary = summary
        .lines()
        .find(|l| l.starts_with("ALL,all,"))
        .unwrap()
        .to_string();
    let total_equity = text
        .lines()
        .find(|l| l.starts_with("ALL,all,"))
        .unwrap()
        .to_string();
    assert_eq!(
        total_summary, total_equity,
        "both tables count the same eligible patients"
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    let b = d.path().join("b");
    assert!(score_into(&cohort(), &a, &["--threads", "1"])
        .status
        .success());
    assert!(score_into(&cohort(), &b, &["--threads", "2"])
        .status
        .success());
    let strip = |v: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter()
            .filter(|(p, _)| p != "manifest.json")
            .collect()
    };
    let (ta, tb) = (strip(tree_bytes(&a)), strip(tree_bytes(&b)));
    assert!(ta.len() >= 10);
    assert_eq!(ta, tb);
}

#[test]
fn a_failed_run_leaves_the_previous_output_untouched() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(score_into(&cohort(), &out, &[]).status.success());
    let before = tree_bytes(&out);
    // A broken cohort: events file truncated.
    let broken = d.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["patients.parquet", "encounters.parquet"] {
        std::fs::copy(cohort().join(f), broken.join(f)).unwrap();
    }
    let ev = std::fs::read(cohort().join("events.parquet")).unwrap();
    std::fs::write(broken.join("events.parquet"), &ev[..ev.len() / 2]).unwrap();
    let o = score_into(&broken, &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("events.parquet"), "{}", stderr(&o));
    assert_eq!(tree_bytes(&out), before);
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left: {leftovers:?}"
    );
}

#[test]
fn refuses_to_replace_a_folder_that_is_not_a_strata_output() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("precious");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("thesis.docx"), b"years of work").unwrap();
    let o = score_into(&cohort(), &out, &[]);
    assert_eq!(o.status.code(), Some(5));
    assert!(stderr(&o).contains("not a strata output folder"));
    assert_eq!(
        std::fs::read(out.join("thesis.docx")).unwrap(),
        b"years of work"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let o = score_into(&cohort(), &d.path().join("o"), &["--min-category", "frail"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--min-category"));
    let o = strata(&[
        "score",
        "--cohort",
        "x",
        "--out",
        "y",
        "--as-of",
        "2025-13-01",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a date"));
}

#[test]
fn reports_stages_as_log_lines_or_nothing_with_quiet() {
    let d = tempfile::tempdir().unwrap();
    // --quiet: a scheduler's run prints nothing at all, and still writes everything.
    let out = d.path().join("quiet");
    let o = score_into(&cohort(), &out, &["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "");
    assert!(out.join("lists/U10000/U10000.csv").is_file());
    let m: serde_json::Value = manifest(&out);
    assert!(!m["warnings"].as_array().unwrap().is_empty());

    // JSON lines: every stderr line is one JSON object; each stage starts then finishes, in
    // the order of the manifest's timings; the warnings come as WARN events.
    let out = d.path().join("json");
    let o = score_into(&cohort(), &out, &["--log-format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let events: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let finished: Vec<&str> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "finished")
        .map(|e| e["fields"]["stage"].as_str().unwrap())
        .collect();
    let m: serde_json::Value = manifest(&out);
    let stages: Vec<&str> = m["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(finished, stages);
    assert_eq!(stages.first(), Some(&"load_models"));
    assert_eq!(stages.last(), Some(&"write"));
    let warns = events.iter().filter(|e| e["level"] == "WARN").count();
    assert_eq!(warns, m["warnings"].as_array().unwrap().len());

    // Not a terminal and no format asked: readable log lines.
    let out = d.path().join("text");
    let o = score_into(&cohort(), &out, &[]);
    assert!(
        stderr(&o).contains("INFO finished stage=\"write\""),
        "{}",
        stderr(&o)
    );
}
