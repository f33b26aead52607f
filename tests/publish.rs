//! Publication of a run into an output root (`strata score --root ROOT`): `ROOT/<as-of>/` and
//! the `latest` symlink; a real `strata score` process killed with SIGKILL at every step of
//! publication, and at arbitrary moments, never damages the previous run or `latest` and never
//! leaves a folder that is taken for a run; the manifest's provenance (SHA-256 of inputs, model
//! files and outputs, build, configuration) and its byte-identity across reruns and thread
//! counts.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

fn cohort() -> PathBuf {
    fixtures().join("cohort-2000")
}

fn score_args<'a>(root: &'a Path, as_of: &'a str) -> Vec<&'a str> {
    vec![
        "score",
        "--cohort",
        cohort_str(),
        "--as-of",
        as_of,
        "--root",
        root.to_str().unwrap(),
    ]
}

fn cohort_str() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cohort-2000")
}

/// `strata score --root root` at `as_of`, which must succeed.
fn score_root(root: &Path, as_of: &str, extra: &[&str]) {
    let mut args = score_args(root, as_of);
    args.extend_from_slice(extra);
    let o = strata(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(args)
        .env("STRATA_MODELS", models_dir())
        .env_remove("STRATA_TEST_PAUSE_AT");
    c
}

/// Start `strata score` told to stop at `stage`, wait until it says it has, and kill it with
/// SIGKILL. Panics if it finishes without reaching the stage.
fn kill_at(root: &Path, as_of: &str, stage: &str) {
    let mut child: Child = command(&score_args(root, as_of))
        .env("STRATA_TEST_PAUSE_AT", stage)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(err).lines() {
        let line = line.unwrap();
        if line == format!("strata: paused at {stage}") {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    panic!("strata never reached {stage:?} ({status}): {seen:?}");
}

/// Start `strata score` and kill it with SIGKILL after `ms` milliseconds, wherever it is.
fn kill_after(root: &Path, as_of: &str, ms: u64) {
    let mut child = command(&score_args(root, as_of))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    child.wait().unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A folder is a complete run: it has a manifest, and holds exactly the files the manifest
/// lists (plus the manifest), each with the SHA-256 recorded.
fn assert_complete(dir: &Path) {
    let m = manifest(dir);
    let mut listed: Vec<String> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let rel = w["path"].as_str().unwrap().to_string();
            let bytes = std::fs::read(dir.join(&rel)).unwrap();
            assert_eq!(w["sha256"].as_str().unwrap(), sha256(&bytes), "{rel}");
            assert_eq!(w["bytes"].as_u64().unwrap(), bytes.len() as u64, "{rel}");
            rel
        })
        .collect();
    listed.push("manifest.json".into());
    listed.sort();
    let present: Vec<String> = tree_bytes(dir).into_iter().map(|(p, _)| p).collect();
    assert_eq!(present, listed, "{}", dir.display());
}

fn latest(root: &Path) -> String {
    std::fs::read_link(root.join("latest"))
        .unwrap()
        .to_string_lossy()
        .to_string()
}

/// `strata runs --root root --json`.
fn runs(root: &Path) -> Vec<serde_json::Value> {
    let o = strata(&["runs", "--root", root.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str::<serde_json::Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Every file of a run but the manifest.
fn outputs_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    tree_bytes(dir)
        .into_iter()
        .filter(|(p, _)| p != "manifest.json")
        .collect()
}

/// After a killed run at `killed`: the previous run `prev` is byte for byte what it was,
/// `latest` still points at it, whatever else is in the root is a `.tmp-*` leftover, the history,
/// or a complete run folder; and `strata runs` reports only complete runs as ok and the killed
/// one as incomplete, never a temporary folder.
fn assert_intact(root: &Path, prev: &str, before: &[(String, Vec<u8>)], killed: &str) {
    assert_eq!(tree_bytes(&root.join(prev)), before, "previous run changed");
    assert_eq!(latest(root), prev, "latest moved");
    for e in std::fs::read_dir(root).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name == "latest" || name == "runs.jsonl" || name.starts_with(".tmp-") {
            continue;
        }
        assert!(
            strata::history::is_run_name(&name),
            "unexpected entry {name}"
        );
        assert_complete(&root.join(&name));
    }
    let listed = runs(root);
    for r in &listed {
        let as_of = r["as_of"].as_str().unwrap();
        assert!(strata::history::is_run_name(as_of), "{r}");
        if r["status"] == "ok" {
            assert_complete(&root.join(as_of));
        }
    }
    let last = listed.last().unwrap();
    assert_eq!(last["as_of"], killed);
    assert_eq!(last["status"], "incomplete", "{listed:?}");
    assert_eq!(
        listed.iter().filter(|r| r["latest"] == true).count(),
        1,
        "{listed:?}"
    );
}

#[test]
fn a_run_goes_to_its_as_of_folder_and_latest_follows_successful_runs() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let compared = |as_of: &str| {
        manifest(&root.join(as_of))["compared_with"]
            .as_str()
            .unwrap()
            .to_string()
    };
    score_root(&root, "2025-04-01", &[]);
    assert_eq!(latest(&root), "2025-04-01");
    assert_complete(&root.join("2025-04-01"));
    assert!(root.join("latest/lists").is_dir());
    assert!(compared("2025-04-01").contains("no previous run"));
    score_root(&root, "2025-05-01", &[]);
    assert_eq!(latest(&root), "2025-05-01");
    // The previous run is found in the root: the newest before this date.
    assert!(
        compared("2025-05-01").contains("2025-04-01"),
        "{}",
        compared("2025-05-01")
    );
    // The earlier run stays.
    assert_complete(&root.join("2025-04-01"));
    // A back-test at an earlier date is published beside them; latest does not go backwards.
    score_root(&root, "2025-03-01", &[]);
    assert_complete(&root.join("2025-03-01"));
    assert_eq!(latest(&root), "2025-05-01");
    assert!(compared("2025-03-01").contains("no previous run"));
    // A rerun is compared with the run before its date, not with the run it replaces.
    score_root(&root, "2025-05-01", &[]);
    assert!(
        compared("2025-05-01").contains("2025-04-01"),
        "{}",
        compared("2025-05-01")
    );
    // A failed run (truncated events file) publishes nothing and leaves latest alone.
    let broken = d.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["patients.parquet", "encounters.parquet"] {
        std::fs::copy(cohort().join(f), broken.join(f)).unwrap();
    }
    let ev = std::fs::read(cohort().join("events.parquet")).unwrap();
    std::fs::write(broken.join("events.parquet"), &ev[..ev.len() / 2]).unwrap();
    let o = strata(&[
        "score",
        "--cohort",
        broken.to_str().unwrap(),
        "--as-of",
        "2025-06-01",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(latest(&root), "2025-05-01");
    assert!(!root.join("2025-06-01").exists());
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".tmp-")),
        "temporaries left: {names:?}"
    );
    // A `latest` that is not a symlink is not replaced.
    let other = d.path().join("other");
    std::fs::create_dir_all(other.join("latest")).unwrap();
    let o = strata(&score_args(&other, "2025-04-01"));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a symlink"), "{}", stderr(&o));
    assert!(other.join("latest").is_dir());
}

#[test]
fn a_run_killed_at_any_step_leaves_the_previous_run_and_latest_intact() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    // Twice: a rerun is compared with the run it replaces, so from the second on the outputs of
    // a rerun are the same (what changed: nothing).
    score_root(&root, "2025-04-01", &[]);
    score_root(&root, "2025-04-01", &[]);
    let before = tree_bytes(&root.join("2025-04-01"));
    // A new as-of date, killed at every step of publication.
    for stage in ["created", "wrote", "filled", "published", "linked"] {
        kill_at(&root, "2025-05-01", stage);
        assert_intact(&root, "2025-04-01", &before, "2025-05-01");
        let tmp = std::fs::read_dir(&root)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        match stage {
            // The folder being filled, or the new symlink, is left behind under a .tmp- name.
            "created" | "wrote" | "filled" | "linked" => assert!(tmp >= 1, "{stage}"),
            _ => {}
        }
        // Killed after the folder was in place: it is complete, but latest did not move.
        if stage == "published" || stage == "linked" {
            assert_complete(&root.join("2025-05-01"));
        }
    }
    // A rerun of the same as-of date killed between swapping its folder in and removing the old
    // one: the folder in place is a complete run with the same outputs.
    kill_at(&root, "2025-04-01", "swapped");
    assert_eq!(latest(&root), "2025-04-01");
    assert_complete(&root.join("2025-04-01"));
    let without_manifest = |v: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        v.iter()
            .filter(|(p, _)| p != "manifest.json")
            .cloned()
            .collect()
    };
    assert_eq!(
        outputs_of(&root.join("2025-04-01")),
        without_manifest(&before)
    );
    // Killed at arbitrary moments, from before reading to after writing.
    let before = tree_bytes(&root.join("2025-04-01"));
    for ms in [0, 10, 30, 60, 100, 150, 250, 400] {
        kill_after(&root, "2025-05-01", ms);
        assert_eq!(tree_bytes(&root.join("2025-04-01")), before, "{ms} ms");
        let l = latest(&root);
        assert!(l == "2025-04-01" || l == "2025-05-01", "{ms} ms: {l}");
        if l == "2025-05-01" {
            // The run got as far as moving latest: the folder is complete.
            assert_complete(&root.join("2025-05-01"));
            std::fs::remove_file(root.join("latest")).unwrap();
            std::os::unix::fs::symlink("2025-04-01", root.join("latest")).unwrap();
        }
        if root.join("2025-05-01").exists() {
            assert_complete(&root.join("2025-05-01"));
        }
    }
    // The next run succeeds, moves latest, and removes what the killed runs left.
    score_root(&root, "2025-05-01", &[]);
    assert_eq!(latest(&root), "2025-05-01");
    assert_complete(&root.join("2025-05-01"));
    let left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "stale temporaries not cleaned: {left:?}");
    let listed = runs(&root);
    let last = listed.last().unwrap();
    assert_eq!(last["status"], "ok");
    assert_eq!(last["latest"], true);
    assert!(listed.iter().any(|r| r["status"] == "incomplete"));
}

#[test]
fn out_folder_killed_after_the_swap_is_complete_and_cleaned_next_time() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    // Twice, so that the run killed below compares like with like (see above).
    assert!(score_into(&cohort(), &out, &[]).status.success());
    assert!(score_into(&cohort(), &out, &[]).status.success());
    let before = outputs_of(&out);
    let mut child = command(&[
        "score",
        "--cohort",
        cohort_str(),
        "--as-of",
        AS_OF,
        "--out",
        out.to_str().unwrap(),
    ])
    .env("STRATA_TEST_PAUSE_AT", "swapped")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    for line in err.lines() {
        if line.unwrap() == "strata: paused at swapped" {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert_complete(&out);
    assert_eq!(outputs_of(&out), before);
    let stale = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-out-")
            })
            .count()
    };
    assert_eq!(stale(d.path()), 1, "the old folder, swapped out");
    assert!(score_into(&cohort(), &out, &[]).status.success());
    assert_eq!(stale(d.path()), 0);
}

#[test]
fn manifest_records_sha256_of_inputs_models_and_outputs_the_build_and_the_configuration() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    score_root(&root, "2025-04-01", &["--min-age", "70", "--publication"]);
    let dir = root.join("2025-04-01");
    let m = manifest(&dir);
    // Inputs: every cohort file, hashed.
    let inputs = m["input_files"].as_array().unwrap();
    let names: Vec<&str> = inputs.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["patients.parquet", "events.parquet", "encounters.parquet"]
    );
    for f in inputs {
        let bytes = std::fs::read(cohort().join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), sha256(&bytes));
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
    }
    // Model files: every one, hashed.
    let models = m["models"].as_array().unwrap();
    assert!(models.len() >= 7);
    for f in models {
        let bytes = std::fs::read(models_dir().join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), sha256(&bytes), "{f}");
    }
    // Risk model cards: every one applied (the models folder's risk/ by default), hashed.
    let cards = m["risk_models"].as_array().unwrap();
    assert!(!cards.is_empty(), "the default cards are applied");
    for f in cards {
        let bytes = std::fs::read(f["path"].as_str().unwrap()).unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), sha256(&bytes), "{f}");
    }
    // Outputs: every file but the manifest, hashed (assert_complete checks each hash).
    assert_complete(&dir);
    assert!(m["outputs"].as_array().unwrap().len() >= 10);
    // Build.
    assert_eq!(m["strata_version"], env!("CARGO_PKG_VERSION"));
    let commit = m["git_commit"].as_str().unwrap();
    let git = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match git {
        Ok(o) if o.status.success() => {
            assert_eq!(commit, String::from_utf8_lossy(&o.stdout).trim())
        }
        _ => assert_eq!(commit, "unknown"),
    }
    // Configuration: every option, as given or defaulted.
    let c = &m["config"];
    assert_eq!(c["as_of"], "2025-04-01");
    assert_eq!(c["cohort"], cohort_str());
    assert_eq!(c["out"]["root"], root.to_str().unwrap());
    assert_eq!(c["models"], models_dir().to_str().unwrap());
    assert_eq!(c["rules"]["min_age"], 70);
    assert_eq!(c["rules"]["min_category"], "Mild");
    assert_eq!(c["suppression"]["round_to"], 5);
    for key in [
        "today",
        "allow_identifiers",
        "max_reject_fraction",
        "skip_memory_check",
        "memory_limit",
        "dictionary_path",
    ] {
        assert!(c["load"].get(key).is_some(), "config.load.{key} missing");
    }
}

/// The manifest's text up to its timings (`seconds`, the last field).
fn before_timings(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let at = text.find("\"seconds\"").expect("manifest has timings");
    assert!(
        !text[at..].contains("\n  \""),
        "seconds is not the manifest's last field"
    );
    text[..at].to_string()
}

#[test]
fn reruns_and_thread_counts_give_byte_identical_outputs_and_manifests_apart_from_timings() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let dir = root.join("2025-04-01");
    // A first run has nothing to compare with; the reruns below are all compared with the run
    // they replace, so they are like for like.
    score_root(&root, "2025-04-01", &[]);
    score_root(&root, "2025-04-01", &["--threads", "1"]);
    let (files1, manifest1) = (outputs_of(&dir), before_timings(&dir));
    // The same run again at 1 thread, replacing the first: identical, timings aside.
    score_root(&root, "2025-04-01", &["--threads", "1"]);
    assert_eq!(outputs_of(&dir), files1);
    assert_eq!(before_timings(&dir), manifest1);
    // At 2 threads: every output file identical; the manifest differs only in `threads`.
    score_root(&root, "2025-04-01", &["--threads", "2"]);
    assert!(files1.len() >= 10);
    assert_eq!(outputs_of(&dir), files1);
    let manifest2 = before_timings(&dir);
    assert!(manifest1.contains("\"threads\": 1,"), "{manifest1}");
    assert_eq!(
        manifest2.replace("\"threads\": 2,", "\"threads\": 1,"),
        manifest1
    );
}
