//! `strata runs`: the past runs of an output root.

use std::path::PathBuf;

use anyhow::Result;
use strata::history::{self, RunRecord};

/// List the runs of an output root (`strata score --root ROOT`), oldest first: as-of date, when
/// it started (UTC), patients in the cohort, patients listed, and status: `ok` (finished and
/// published), `failed` (stopped with an error; nothing published), `incomplete` (started and
/// never finished, e.g. killed: `latest` was not moved to it) or `running`. `latest` marks the
/// run ROOT/latest points at. Use it to check last night's batch, or to show which run a list
/// came from. Folders whose names are not dates, and `.tmp-*` leftovers, are never runs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output root, as given to `strata score --root`.
    #[arg(long)]
    pub root: PathBuf,
    /// Print the runs as JSON (one array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    if !a.root.is_dir() {
        return Err(super::usage(format!(
            "{} is not a folder (an output root of strata score --root)",
            a.root.display()
        )));
    }
    let runs = history::runs(&a.root).map_err(strata::Error::from)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    if runs.is_empty() {
        println!("no runs in {}", a.root.display());
        return Ok(0);
    }
    print!("{}", table(&runs));
    Ok(0)
}

/// The runs as an aligned text table.
fn table(runs: &[RunRecord]) -> String {
    let header = [
        "as_of",
        "started_utc",
        "patients",
        "listed",
        "status",
        "latest",
    ];
    let rows: Vec<[String; 6]> = runs
        .iter()
        .map(|r| {
            let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let mut status = r.status.word().to_string();
            if let Some(e) = &r.error {
                let first = e.lines().next().unwrap_or_default();
                status = format!("{status}: {first}");
            }
            [
                r.as_of.clone(),
                r.started.clone().unwrap_or_else(|| "-".into()),
                n(r.patients),
                n(r.listed),
                status,
                if r.latest {
                    "latest".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
