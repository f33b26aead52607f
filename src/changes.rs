//! What changed since the previous run: for each person on a list, whether they are new on it or
//! moved up or down a frailty category; for each person who was on a list last time and is not
//! now, why (died, left the PCN or the cohort, frailty fell, below the list's cut-off).
//!
//! Pipeline position: `lists` (this run's ranked lists) + the previous run's `scores.parquet` ->
//! **changes** -> `output`. The previous run is read before the new one is published (with
//! `--out`, it is the folder about to be replaced), through its pseudonyms only.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::cohort::Cohort;
use crate::lists::ListRules;
use crate::population::Status;
use crate::results::Scored;
use crate::scores::EfiCategory;

/// The previous run could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// Its scores file is unreadable or not what strata writes.
    #[error("previous run {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The previous run's scores file as needed here, in pseudonym order.
#[derive(Debug, Clone)]
pub struct Previous {
    /// Folder it was read from.
    pub dir: PathBuf,
    /// Its as-of date (from its manifest), if recorded.
    pub as_of: Option<String>,
    ids: Vec<String>,
    pcn: Vec<String>,
    category: Vec<Option<EfiCategory>>,
    listed: Vec<bool>,
}

fn column<'a>(
    df: &'a DataFrame,
    path: &Path,
    name: &str,
) -> Result<&'a StringChunked, ChangesError> {
    df.column(name)
        .ok()
        .and_then(|c| c.str().ok())
        .ok_or_else(|| ChangesError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("no text column '{name}'"),
        })
}

impl Previous {
    /// Read the run in `dir`, if it is one: `Ok(None)` when `dir` has no `scores.parquet`.
    pub fn read(dir: &Path) -> Result<Option<Previous>, ChangesError> {
        let path = dir.join("scores.parquet");
        if !path.is_file() {
            return Ok(None);
        }
        let bad = |reason: String| ChangesError::Unreadable {
            path: path.clone(),
            reason,
        };
        let file = std::fs::File::open(&path).map_err(|e| bad(e.to_string()))?;
        let df = ParquetReader::new(file)
            .with_columns(Some(
                ["patient_id", "pcn_code", "efi_category", "listed"]
                    .map(String::from)
                    .to_vec(),
            ))
            .finish()
            .map_err(|e| {
                bad(format!(
                    "{e} (a run by a strata without the `listed` column cannot be compared with)"
                ))
            })?;
        let listed: Vec<bool> = df
            .column("listed")
            .ok()
            .and_then(|c| c.bool().ok())
            .ok_or_else(|| bad("no boolean column 'listed'".into()))?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect();
        let text = |name: &str| -> Result<Vec<String>, ChangesError> {
            Ok(column(&df, &path, name)?
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect())
        };
        let ids = text("patient_id")?;
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("patients are not in pseudonym order".into()));
        }
        let category = text("efi_category")?
            .iter()
            .map(|c| EfiCategory::parse(c))
            .collect();
        let as_of = std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["as_of"].as_str().map(String::from));
        Ok(Some(Previous {
            dir: dir.to_path_buf(),
            as_of,
            ids,
            pcn: text("pcn_code")?,
            category,
            listed,
        }))
    }
}

/// How a listed person's place changed since the previous run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not on this PCN's list last time.
    New,
    /// On it, in a more severe frailty category now.
    Up,
    /// On it, in a milder frailty category now.
    Down,
    /// On it, same category.
    Same,
}

impl Change {
    /// Word on the list.
    pub fn name(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Up => "up",
            Change::Down => "down",
            Change::Same => "same",
        }
    }
}

/// Someone on a list last time who is not on it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Pseudonym.
    pub patient_id: String,
    /// Their frailty category last time.
    pub previous_category: String,
    /// Why they are not on the list now.
    pub reason: String,
}

/// The changes of a run against the previous one.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Folder and as-of date compared with, or why nothing was compared.
    pub compared_with: String,
    /// Per current patient index: their change if listed now (None when not listed, or no
    /// previous run).
    pub change: Vec<Option<Change>>,
    /// Per current PCN index: people who dropped off its list, in pseudonym order.
    pub dropped: Vec<Vec<Dropped>>,
    /// Dropped people whose previous PCN is not in this run (not in any file).
    pub dropped_from_gone_pcns: u64,
}

impl Changes {
    /// No comparison (first run, or switched off), saying why.
    pub fn none(cohort: &Cohort, why: impl Into<String>) -> Changes {
        Changes {
            compared_with: why.into(),
            change: vec![None; cohort.patients.len()],
            dropped: vec![Vec::new(); cohort.patients.pcns.len()],
            dropped_from_gone_pcns: 0,
        }
    }

    /// Compare this run's lists (`ranked`) with `prev`.
    pub fn compare(
        cohort: &Cohort,
        scored: &Scored,
        rules: &ListRules,
        ranked: &[(u32, Vec<u32>)],
        prev: &Previous,
    ) -> Changes {
        let pa = &cohort.patients;
        let mut out = Changes::none(
            cohort,
            format!(
                "{} (as of {})",
                prev.dir.display(),
                prev.as_of.as_deref().unwrap_or("unknown")
            ),
        );
        let mut listed_now = vec![false; pa.len()];
        for (_, members) in ranked {
            for &p in members {
                listed_now[p as usize] = true;
            }
        }
        let lookup = |ids: &[String], id: &str| ids.binary_search_by(|x| x.as_str().cmp(id)).ok();
        for (pcn, members) in ranked {
            for &p in members {
                let p = p as usize;
                let before = lookup(&prev.ids, &pa.id[p])
                    .filter(|&q| prev.listed[q] && prev.pcn[q] == pa.pcns[*pcn as usize]);
                let now = scored.scores[p].efi_category;
                out.change[p] = Some(match before.map(|q| prev.category[q]) {
                    None => Change::New,
                    Some(Some(c)) if now > c => Change::Up,
                    Some(Some(c)) if now < c => Change::Down,
                    Some(_) => Change::Same,
                });
            }
        }
        for q in 0..prev.ids.len() {
            if !prev.listed[q] {
                continue;
            }
            let Ok(pcn) = pa.pcns.binary_search(&prev.pcn[q]) else {
                out.dropped_from_gone_pcns += 1;
                continue;
            };
            let reason = match lookup(&pa.id, &prev.ids[q]) {
                None => "no longer in the cohort (deregistered or moved away)".to_string(),
                Some(p) if listed_now[p] && pa.pcn[p] as usize == pcn => continue,
                Some(p) if scored.status[p] == Status::Deceased => "died".to_string(),
                Some(p) if pa.pcn[p] as usize != pcn => {
                    format!("moved to another PCN ({})", pa.pcns[pa.pcn[p] as usize])
                }
                Some(p) if scored.status[p] != Status::Eligible => {
                    format!("no longer eligible ({})", scored.status[p].name())
                }
                Some(p) if scored.scores[p].efi_category < rules.min_category => {
                    format!("frailty fell to {}", scored.scores[p].efi_category.name())
                }
                Some(_) => "below the list's cut-off this time".to_string(),
            };
            out.dropped[pcn].push(Dropped {
                patient_id: prev.ids[q].clone(),
                previous_category: prev.category[q].map_or("", |c| c.name()).to_string(),
                reason,
            });
        }
        out
    }

    /// People new on a list.
    pub fn new_on_lists(&self) -> u64 {
        self.change
            .iter()
            .filter(|c| **c == Some(Change::New))
            .count() as u64
    }

    /// People who dropped off a list.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|d| d.len() as u64).sum::<u64>() + self.dropped_from_gone_pcns
    }
}
