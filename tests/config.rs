//! `strata score --config FILE`: settings from a TOML file, every one overridable by its flag,
//! unknown keys refused by name, and the effective settings recorded in the manifest.

mod common;

use std::path::Path;

use common::*;

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("strata.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_file_sets_the_run_and_flags_override_it() {
    let d = tempfile::tempdir().unwrap();
    let cohort = fixtures().join("cohort-2000");
    let cfg = write_config(
        d.path(),
        &format!(
            "cohort = {:?}\nas_of = \"2025-04-01\"\nroot = \"runs\"\nmin_age = 70\n\
             min_category = \"moderate\"\npublication = true\nrank_by = \"death\"\ntop = 10\n\n[input]\ntoday = \"2030-06-30\"\n\
             max_rejected = 0.05\n",
            cohort.to_str().unwrap()
        ),
    );
    let o = strata(&["score", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A relative root is relative to the file's folder.
    let dir = d.path().join("runs/2025-04-01");
    let c = manifest(&dir)["config"].clone();
    assert_eq!(c["rules"]["min_age"], 70);
    assert_eq!(c["rules"]["min_category"], "Moderate");
    assert_eq!(c["suppression"]["round_to"], 5);
    assert_eq!(c["load"]["today"], "2030-06-30");
    assert_eq!(c["load"]["max_reject_fraction"], 0.05);
    assert_eq!(c["out"]["root"], d.path().join("runs").to_str().unwrap());
    assert_eq!(c["rules"]["rank_by"]["risk"], "death", "{c}");
    assert_eq!(c["rules"]["top"], 10, "{c}");
    for p in list_files(&dir) {
        if p.extension().is_some_and(|e| e == "csv") {
            assert!(read_csv(&p).height() <= 10, "{}", p.display());
        }
    }
    audit::assert_protected(&dir, 5);

    // Every setting given as a flag wins over the file.
    let out = d.path().join("flags");
    let o = strata(&[
        "score",
        "--config",
        cfg.to_str().unwrap(),
        "--as-of",
        "2025-03-01",
        "--out",
        out.to_str().unwrap(),
        "--min-age",
        "80",
        "--min-category",
        "mild",
        "--publication=false",
        "--today",
        "2030-07-01",
        "--max-rejected",
        "0.02",
        "--rank-by",
        "frailty",
        "--top-percent",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&out);
    let c = &m["config"];
    assert_eq!(m["as_of"], "2025-03-01");
    assert_eq!(c["rules"]["min_age"], 80);
    assert_eq!(c["rules"]["min_category"], "Mild");
    assert_eq!(c["suppression"]["round_to"], 1);
    assert_eq!(c["load"]["today"], "2030-07-01");
    assert_eq!(c["load"]["max_reject_fraction"], 0.02);
    assert_eq!(c["out"]["folder"], out.to_str().unwrap());
    assert_eq!(c["rules"]["rank_by"], "frailty", "{c}");
    // --top-percent replaces the file's top: the two are one setting.
    assert_eq!(c["rules"]["top"], serde_json::Value::Null, "{c}");
    assert_eq!(c["rules"]["top_percent"], 5.0, "{c}");
    // The file's settings a flag did not override still apply (its cohort).
    assert_eq!(c["cohort"], cohort.to_str().unwrap());
    audit::assert_protected(&out, 1);
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let d = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("min_agee = 70\n", "min_agee"),
        ("[input]\nmax_rejectd = 0.1\n", "max_rejectd"),
        ("[lists]\ntop = 10\n", "lists"),
        ("top_n = 10\n", "top_n"),
    ] {
        let cfg = write_config(d.path(), text);
        let o = strata(&[
            "score",
            "--config",
            cfg.to_str().unwrap(),
            "--cohort",
            fixtures().join("cohort-2000").to_str().unwrap(),
            "--root",
            d.path().join("runs").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(key), "{key}: {}", stderr(&o));
        assert!(!d.path().join("runs").exists(), "nothing is written");
    }
    // A value of the wrong type is refused too.
    let cfg = write_config(d.path(), "min_age = \"seventy\"\n");
    let o = strata(&["score", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("min_age"), "{}", stderr(&o));
}

#[test]
fn without_cohort_or_destination_it_says_what_is_missing_and_as_of_defaults_to_today() {
    let d = tempfile::tempdir().unwrap();
    let o = strata(&["score", "--root", d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--cohort"), "{}", stderr(&o));
    let cohort = fixtures().join("cohort-2000");
    let o = strata(&["score", "--cohort", cohort.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--root"), "{}", stderr(&o));
    let root = d.path().join("runs");
    let o = strata(&[
        "score",
        "--cohort",
        cohort.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let latest = std::fs::read_link(root.join("latest")).unwrap();
    // (A run that straddles midnight UTC may see the next day.)
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let got = latest.to_string_lossy().to_string();
    assert!(got == today || got == yesterday, "{got}");
}

#[test]
fn the_example_in_the_repository_is_a_valid_configuration() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("runs");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("strata.toml");
    let o = strata(&[
        "score",
        "--config",
        example.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(root.join("latest/manifest.json").is_file());
    // It ships the five example programmes: each writes its list for every PCN.
    for p in [
        "digital_self_management",
        "staying_well",
        "anticipatory_care",
        "falls_prevention",
        "palliative_register_review",
    ] {
        assert!(
            root.join(format!("latest/lists/U10000/U10000.{p}.csv"))
                .is_file(),
            "{p}"
        );
    }
}
