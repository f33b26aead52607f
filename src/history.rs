//! The run history of an output root: `ROOT/runs.jsonl`, one JSON line when a run starts and one
//! when it ends (ok or failed, with its counts or error), and reading it back, with the run
//! folders on disk, for `strata runs`.
//!
//! Pipeline position: around the whole flow when the destination is an output root. `run`
//! wraps a scoring run in [`logged`]; `publish` owns the folders and `latest`. A run killed with
//! kill -9 leaves a start line and no end line: it is reported as incomplete, and what it left
//! on disk is only ever `.tmp-*` entries (never a run folder) or a complete run folder that
//! `latest` does not point at yet.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::publish::{self, Destination, OutputError};

/// The run history's file name in an output root.
pub const HISTORY_FILE: &str = "runs.jsonl";

/// One line of `runs.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    /// Run id: `<pid>-<start nanoseconds>`, shared by a run's start and end lines.
    pub run: String,
    /// `start` or `end`.
    pub event: String,
    /// As-of date of the run.
    pub as_of: String,
    /// UTC time of the event, `YYYY-MM-DDTHH:MM:SSZ`.
    pub at: String,
    /// Process id of the run.
    pub pid: u32,
    /// End lines: `ok` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// End lines of successful runs: patients in the cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patients: Option<u64>,
    /// End lines of successful runs: patients listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<u64>,
    /// End lines of failed runs: the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Finished: its folder is in place and `latest` was moved to it.
    Ok,
    /// Stopped with an error; nothing of it was published.
    Failed,
    /// Started and never ended (killed, or the machine went down): its outputs, if any, are
    /// not what `latest` was moved to.
    Incomplete,
    /// Started, not ended, and its process is still running.
    Running,
}

impl RunStatus {
    /// The word `strata runs` prints.
    pub fn word(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Running => "running",
        }
    }
}

/// One past run of an output root.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRecord {
    /// As-of date.
    pub as_of: String,
    /// When it started (UTC), if the history records it.
    pub started: Option<String>,
    /// When it ended (UTC), if it did.
    pub ended: Option<String>,
    /// Patients in the cohort.
    pub patients: Option<u64>,
    /// Patients listed.
    pub listed: Option<u64>,
    /// How it ended.
    pub status: RunStatus,
    /// The error of a failed run.
    pub error: Option<String>,
    /// Its folder, `ROOT/<as-of>`, holds this run's outputs and `latest` points at it.
    pub latest: bool,
}

/// A run being recorded in an output root's `runs.jsonl`: its start line is written when it
/// begins ([`RunLog::start`]), its end line when it ends ([`RunLog::end`]). For an engine that
/// cannot hand its run over as a closure (the Spark driver); [`logged`] wraps one that can.
#[derive(Debug, Clone)]
pub struct RunLog {
    root: PathBuf,
    start: Line,
}

impl RunLog {
    /// Write the start line of a run of `as_of` into `root/runs.jsonl` (creating `root`).
    pub fn start(root: &Path, as_of: &str) -> Result<RunLog, OutputError> {
        std::fs::create_dir_all(root).map_err(publish::io_err(root))?;
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let start = Line {
            run: format!("{pid}-{nanos}"),
            event: "start".into(),
            as_of: as_of.to_string(),
            at: now(),
            pid,
            status: None,
            patients: None,
            listed: None,
            error: None,
        };
        append(root, &start)?;
        Ok(RunLog {
            root: root.to_path_buf(),
            start,
        })
    }

    /// Write the end line: `Ok((patients, listed))`, or the error that ended the run.
    pub fn end(self, outcome: Result<(u64, u64), String>) -> Result<(), OutputError> {
        let mut end = Line {
            event: "end".into(),
            at: now(),
            ..self.start
        };
        match outcome {
            Ok((patients, listed)) => {
                end.status = Some("ok".into());
                end.patients = Some(patients);
                end.listed = Some(listed);
            }
            Err(e) => {
                end.status = Some("failed".into());
                end.error = Some(e);
            }
        }
        append(&self.root, &end)
    }
}

/// Run `f`, a run at `as_of` published to `dest`, recording its start and end in the root's
/// history when `dest` is an output root (a plain folder keeps no history). `counts` gives a
/// successful run's patients and listed. The start line is written before `f` runs, so a run
/// that fails or is killed is still on record. If the end line cannot be written, a run that
/// otherwise succeeded returns that error: its folder and `latest` are in place, but the history
/// would call it incomplete, and a scheduler should hear about it.
pub fn logged<T, E>(
    dest: &Destination,
    as_of: &str,
    counts: impl FnOnce(&T) -> (u64, u64),
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E>
where
    E: From<OutputError> + std::fmt::Display,
{
    let Destination::Root(root) = dest else {
        return f();
    };
    let log = RunLog::start(root, as_of).map_err(E::from)?;
    let result = f();
    let logged = log.end(match &result {
        Ok(v) => Ok(counts(v)),
        Err(e) => Err(e.to_string()),
    });
    match (result, logged) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(E::from(e)),
        (Err(e), _) => Err(e),
    }
}

/// The current UTC time, to the second.
fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Append one line to `root/runs.jsonl` in a single write, synced.
fn append(root: &Path, line: &Line) -> Result<(), OutputError> {
    let path = root.join(HISTORY_FILE);
    let mut text = serde_json::to_string(line)
        .map_err(|e| publish::io_err(&path)(std::io::Error::other(e)))?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(publish::io_err(&path))?;
    f.write_all(text.as_bytes())
        .map_err(publish::io_err(&path))?;
    f.sync_all().map_err(publish::io_err(&path))
}

/// Whether `name` is an as-of date folder name (`YYYY-MM-DD`): what a run folder is called.
pub fn is_run_name(name: &str) -> bool {
    name.len() == 10 && crate::date::parse_days(name).is_some()
}

/// The newest run in the output root `root` before the as-of date `as_of` (`YYYY-MM-DD`): the
/// run a new one is compared with. Only complete runs count (a folder named as a date holding a
/// `manifest.json`, which is written last), never `.tmp-*` leftovers; a rerun of the same date is
/// compared with the run before that date, not with itself.
pub fn previous_run(root: &Path, as_of: &str) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| is_run_name(n) && n.as_str() < as_of)
        .filter(|n| root.join(n).join("manifest.json").is_file())
        .max()
        .map(|n| root.join(n))
}

/// Every run of the output root `root`, oldest first: each run the history records (lines that
/// do not parse, such as a line cut short by a crash, are skipped), then run folders the history
/// does not mention (written before it existed) with the counts of their manifest. Only folders
/// named as a date and holding a `manifest.json` count as runs; `.tmp-*` entries never do.
pub fn runs(root: &Path) -> Result<Vec<RunRecord>, OutputError> {
    if !root.is_dir() {
        return Err(OutputError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such output root"),
        });
    }
    let latest = publish::latest(root);
    let text = match std::fs::read_to_string(root.join(HISTORY_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(publish::io_err(&root.join(HISTORY_FILE))(e)),
    };
    // Runs by id, in order of their start lines.
    let mut order: Vec<String> = Vec::new();
    let mut starts: BTreeMap<String, Line> = BTreeMap::new();
    let mut ends: BTreeMap<String, Line> = BTreeMap::new();
    for line in text.lines() {
        let Ok(l) = serde_json::from_str::<Line>(line) else {
            continue;
        };
        match l.event.as_str() {
            "start" => {
                if !starts.contains_key(&l.run) {
                    order.push(l.run.clone());
                }
                starts.insert(l.run.clone(), l);
            }
            "end" => {
                ends.insert(l.run.clone(), l);
            }
            _ => {}
        }
    }
    let mut out: Vec<RunRecord> = Vec::new();
    for id in &order {
        let Some(start) = starts.get(id) else {
            continue;
        };
        let end = ends.get(id);
        let status = match end.and_then(|e| e.status.as_deref()) {
            Some("ok") => RunStatus::Ok,
            Some(_) => RunStatus::Failed,
            None if publish::process_alive(start.pid) && start.pid != std::process::id() => {
                RunStatus::Running
            }
            None => RunStatus::Incomplete,
        };
        out.push(RunRecord {
            as_of: start.as_of.clone(),
            started: Some(start.at.clone()),
            ended: end.map(|e| e.at.clone()),
            patients: end.and_then(|e| e.patients),
            listed: end.and_then(|e| e.listed),
            status,
            error: end.and_then(|e| e.error.clone()),
            latest: false,
        });
    }
    // Folders the history does not mention.
    let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .map_err(publish::io_err(root))?
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .filter(|(n, p)| is_run_name(n) && p.join("manifest.json").is_file())
        .collect();
    folders.sort();
    for (name, path) in folders {
        if out.iter().any(|r| r.as_of == name) {
            continue;
        }
        let counts = std::fs::read_to_string(path.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|m| (m["patients"].as_u64(), m["listed"].as_u64()))
            .unwrap_or((None, None));
        out.push(RunRecord {
            as_of: name,
            started: None,
            ended: None,
            patients: counts.0,
            listed: counts.1,
            status: RunStatus::Ok,
            error: None,
            latest: false,
        });
    }
    // `latest` marks the last successful run of the as-of date it points at.
    if let Some(name) = latest {
        if let Some(r) = out
            .iter_mut()
            .rev()
            .find(|r| r.as_of == name && r.status == RunStatus::Ok)
        {
            r.latest = true;
        }
    }
    Ok(out)
}
