//! `strata demo` end to end on a small synthetic cohort: it scores a month earlier first, so
//! the lists it leaves say what changed since the last run, and `latest` points at the later run.

mod common;

use common::*;

#[test]
fn demo_writes_two_runs_and_the_later_lists_say_what_changed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = strata(&["demo", "--dir", dir.to_str().unwrap(), "--patients", "3000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("scoring the cohort at 2025-03-01 first"),
        "{}",
        stdout(&o)
    );
    // It says which files to open, and they are there.
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("open a PCN's page and workbook: "))
        .unwrap_or_else(|| panic!("{}", stdout(&o)))
        .to_string();
    let rest = line.trim_start_matches("open a PCN's page and workbook: ");
    let (page, book) = rest.split_once(" and ").unwrap();
    assert!(
        page.ends_with(".html") && std::path::Path::new(page).is_file(),
        "{page}"
    );
    assert!(
        book.ends_with(".xlsx") && std::path::Path::new(book).is_file(),
        "{book}"
    );
    let runs = dir.join("runs");
    assert!(runs.join("2025-03-01/manifest.json").is_file());
    assert_eq!(
        std::fs::read_link(runs.join("latest"))
            .unwrap()
            .file_name()
            .unwrap(),
        "2025-04-01"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("latest/manifest.json")).unwrap())
            .unwrap();
    assert!(
        m["compared_with"]
            .as_str()
            .unwrap()
            .ends_with("2025-03-01 (as of 2025-03-01)"),
        "{}",
        m["compared_with"]
    );
    let mut change = std::collections::BTreeSet::new();
    for f in list_files(&runs.join("latest")) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let pcn = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
        if name == format!("{pcn}.csv") {
            change.extend(strings(&read_csv(&f), "change"));
        }
    }
    // A month of records moves people: some new on the lists, most the same.
    assert!(
        change.contains("same") && change.contains("new"),
        "{change:?}"
    );

    // Run again: no third run; the 2025-04-01 run is compared with 2025-03-01 again.
    let o = strata(&["demo", "--dir", dir.to_str().unwrap(), "--patients", "3000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("first, so that"), "{}", stdout(&o));
    let mut names: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(names, ["2025-03-01", "2025-04-01", "latest", "runs.jsonl"]);
}
