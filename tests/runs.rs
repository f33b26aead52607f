//! `strata runs --root DIR`: the past runs of an output root, with their status (ok, failed,
//! incomplete), counts and which one `latest` points at; what is not a run is never listed.

mod common;

use std::path::Path;

use common::*;

fn score_root(cohort: &Path, root: &Path, as_of: &str) -> std::process::Output {
    strata(&[
        "score",
        "--cohort",
        cohort.to_str().unwrap(),
        "--as-of",
        as_of,
        "--root",
        root.to_str().unwrap(),
    ])
}

fn runs_json(root: &Path) -> Vec<serde_json::Value> {
    let o = strata(&["runs", "--root", root.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str::<serde_json::Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn lists_ok_and_failed_runs_with_counts_and_marks_latest() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let cohort = fixtures().join("cohort-2000");
    for as_of in ["2025-03-01", "2025-04-01"] {
        let o = score_root(&cohort, &root, as_of);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // A failed run: a cohort folder with no files.
    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = score_root(&empty, &root, "2025-05-01");
    assert!(!o.status.success());
    // Things in the root that are not runs: a temporary folder (of a process that cannot exist),
    // a folder named as a date without a manifest, notes.
    std::fs::create_dir_all(root.join(".tmp-2025-06-01-4294967-17/lists")).unwrap();
    std::fs::create_dir_all(root.join("2025-07-01/lists")).unwrap();
    std::fs::write(root.join("notes.txt"), b"x").unwrap();
    // A line cut short by a crash while it was appended.
    let mut hist = std::fs::read_to_string(root.join("runs.jsonl")).unwrap();
    hist.push_str("{\"run\":\"1-2\",\"event\":\"st");
    std::fs::write(root.join("runs.jsonl"), hist).unwrap();

    let runs = runs_json(&root);
    let summary: Vec<(String, String, bool)> = runs
        .iter()
        .map(|r| {
            (
                r["as_of"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                r["latest"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("2025-03-01".to_string(), "ok".to_string(), false),
            ("2025-04-01".to_string(), "ok".to_string(), true),
            ("2025-05-01".to_string(), "failed".to_string(), false),
        ]
    );
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("2025-04-01/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(runs[1]["patients"], m["patients"]);
    assert_eq!(runs[1]["listed"], m["listed"]);
    assert_eq!(runs[1]["patients"], 2000);
    assert!(runs[2]["error"]
        .as_str()
        .unwrap()
        .contains("patients.parquet"));
    assert!(runs[0]["started"].as_str().unwrap().ends_with('Z'));

    // The table: one line per run, latest marked, the failure's reason shown.
    let o = strata(&["runs", "--root", root.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("as_of"), "{text}");
    assert!(lines[2].starts_with("2025-04-01") && lines[2].ends_with("latest"));
    assert!(lines[2].contains(" 2000 "), "{text}");
    assert!(lines[3].contains("failed: "), "{text}");
    assert!(
        !text.contains(".tmp-") && !text.contains("2025-07-01"),
        "{text}"
    );
}

#[test]
fn a_run_folder_from_before_the_history_is_listed_from_its_manifest() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let o = score_root(&fixtures().join("cohort-2000"), &root, "2025-04-01");
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(root.join("runs.jsonl")).unwrap();
    let runs = runs_json(&root);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["as_of"], "2025-04-01");
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[0]["started"], serde_json::Value::Null);
    assert_eq!(runs[0]["patients"], 2000);
    assert_eq!(runs[0]["latest"], true);
}

#[test]
fn an_empty_root_has_no_runs_and_a_missing_one_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let o = strata(&["runs", "--root", d.path().to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("no runs in "), "{}", stdout(&o));
    let o = strata(&["runs", "--root", d.path().join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}
