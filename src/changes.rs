//! What changed since the previous run: for each person on a list, whether they are new on it or
//! moved up or down a frailty category; for each person who was on a list last time and is not
//! now, why (died, left the PCN or the cohort, frailty fell, below the list's cut-off).
//!
//! Pipeline position: `lists` (this run's ranked lists) + the previous run's `scores.parquet` ->
//! **changes** -> `output`. The previous run is read before the new one is published (with
//! `--out`, it is the folder about to be replaced), through its pseudonyms only. The comparison
//! needs of this run only what its scores file holds ([`Current`]), so the Spark job makes it on
//! its driver from the scores its tasks return, and its tasks fill each list's `change` column
//! from the previous run's rows of their own patients ([`Previous::from_rows`]).

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::cohort::{search_from, Cohort};
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

/// The previous run's scores file as needed here: the people who were on a list (all a
/// comparison reads of it), in pseudonym order.
#[derive(Debug, Clone)]
pub struct Previous {
    /// Folder it was read from.
    pub dir: PathBuf,
    /// Its as-of date (from its manifest), if recorded.
    pub as_of: Option<String>,
    ids: Vec<String>,
    pcn: Vec<String>,
    category: Vec<Option<EfiCategory>>,
}

/// The columns a comparison reads of a scores file (or part).
fn read_scores(path: &Path) -> Result<DataFrame, ChangesError> {
    let bad = |reason: String| ChangesError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    ParquetReader::new(file)
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
        })
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
        let file = dir.join("scores.parquet");
        let parts = dir.join("scores");
        let (path, df) = if file.is_file() {
            let df = read_scores(&file)?;
            (file, df)
        } else if parts.is_dir() {
            // A run scored in parts (the Spark job): its scores table is a folder of parts, each
            // some PCNs' patients; put together in pseudonym order they are the binary's rows.
            let unreadable = |e: std::io::Error| ChangesError::Unreadable {
                path: parts.clone(),
                reason: e.to_string(),
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(&parts).map_err(unreadable)? {
                let p = entry.map_err(unreadable)?.path();
                if p.extension().is_some_and(|e| e == "parquet") {
                    files.push(p);
                }
            }
            files.sort();
            let Some((first, rest)) = files.split_first() else {
                return Ok(None);
            };
            let mut df = read_scores(first)?;
            for f in rest {
                df.vstack_mut(&read_scores(f)?)
                    .map_err(|e| ChangesError::Unreadable {
                        path: f.clone(),
                        reason: e.to_string(),
                    })?;
            }
            df.sort_in_place(["patient_id"], Default::default())
                .map_err(|e| ChangesError::Unreadable {
                    path: parts.clone(),
                    reason: e.to_string(),
                })?;
            (parts, df)
        } else {
            return Ok(None);
        };
        let bad = |reason: String| ChangesError::Unreadable {
            path: path.clone(),
            reason,
        };
        let listed: Vec<bool> = df
            .column("listed")
            .ok()
            .and_then(|c| c.bool().ok())
            .ok_or_else(|| bad("no boolean column 'listed'".into()))?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect();
        // Every row is checked for order; only the listed ones are kept (a tenth or so of the
        // cohort), so no text is copied for the others.
        let ids = column(&df, &path, "patient_id")?;
        let mut last: Option<&str> = None;
        for id in ids.iter() {
            let id = id.unwrap_or_default();
            if last.is_some_and(|l| l >= id) {
                return Err(bad("patients are not in pseudonym order".into()));
            }
            last = Some(id);
        }
        let categories = column(&df, &path, "efi_category")?;
        let pcns = column(&df, &path, "pcn_code")?;
        let as_of = std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["as_of"].as_str().map(String::from));
        let mut prev = Previous {
            dir: dir.to_path_buf(),
            as_of,
            ids: Vec::new(),
            pcn: Vec::new(),
            category: Vec::new(),
        };
        let rows = ids.iter().zip(pcns.iter()).zip(categories.iter());
        for (listed, ((id, pcn), category)) in listed.iter().zip(rows) {
            if *listed {
                prev.ids.push(id.unwrap_or_default().to_string());
                prev.pcn.push(pcn.unwrap_or_default().to_string());
                prev.category
                    .push(EfiCategory::parse(category.unwrap_or_default()));
            }
        }
        Ok(Some(prev))
    }

    /// Its listed people, `(patient_id, pcn_code, efi_category)`, in pseudonym order: all a
    /// comparison reads of them besides who dropped off.
    pub fn listed_rows(&self) -> impl Iterator<Item = (&str, &str, Option<EfiCategory>)> {
        (0..self.ids.len()).map(|q| (self.ids[q].as_str(), self.pcn[q].as_str(), self.category[q]))
    }

    /// A previous run from its rows `(patient_id, pcn_code, efi_category, listed)`, in any
    /// order, as read from its scores file elsewhere (the Spark job hands each task the rows of
    /// its own patients). `dir` and `as_of` say what it is. A pseudonym given twice is refused.
    pub fn from_rows(
        dir: PathBuf,
        as_of: Option<String>,
        mut rows: Vec<(String, String, Option<EfiCategory>, bool)>,
    ) -> Result<Previous, ChangesError> {
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ChangesError::Unreadable {
                path: dir,
                reason: format!("pseudonym {} given twice", w[0].0),
            });
        }
        let mut prev = Previous {
            dir,
            as_of,
            ids: Vec::new(),
            pcn: Vec::new(),
            category: Vec::new(),
        };
        for (id, pcn, category, listed) in rows {
            if listed {
                prev.ids.push(id);
                prev.pcn.push(pcn);
                prev.category.push(category);
            }
        }
        Ok(prev)
    }
}

/// Where `id` is in `ids` (ascending), searching on from `*from` ([`search_from`]) and leaving
/// `*from` where the search ended; `None` when absent.
fn search_forward(ids: &[String], id: &str, from: &mut usize) -> Option<usize> {
    let found = search_from(ids, id, *from);
    *from = found.unwrap_or_else(|i| i);
    found.ok()
}

/// A run as the comparison sees it, whole-cohort: every patient in pseudonym order with their
/// PCN, status, frailty category and whether they are on their PCN's list. The binary builds it
/// from its cohort ([`Changes::compare`]); the Spark job from the scores its tasks return.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    /// Pseudonyms, ascending.
    pub ids: &'a [String],
    /// PCN codes, ascending, distinct.
    pub pcns: &'a [String],
    /// Per patient, their PCN (index into `pcns`).
    pub pcn: &'a [u32],
    /// Per patient, their eligibility status.
    pub status: &'a [Status],
    /// Per patient, their eFI category.
    pub category: &'a [EfiCategory],
    /// Per patient, whether they are on their PCN's list.
    pub listed: &'a [bool],
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
        Changes::none_for(cohort.patients.len(), cohort.patients.pcns.len(), why)
    }

    /// No comparison, for a run of `patients` people in `pcns` PCNs, saying why.
    pub fn none_for(patients: usize, pcns: usize, why: impl Into<String>) -> Changes {
        Changes {
            compared_with: why.into(),
            change: vec![None; patients],
            dropped: vec![Vec::new(); pcns],
            dropped_from_gone_pcns: 0,
        }
    }

    /// Compare this run's lists (who is on them: `listed`, per patient, from
    /// [`crate::lists::listed_mask`]) with `prev`.
    pub fn compare(
        cohort: &Cohort,
        scored: &Scored,
        rules: &ListRules,
        listed: &[bool],
        prev: &Previous,
    ) -> Changes {
        let pa = &cohort.patients;
        let category: Vec<EfiCategory> = scored.scores.iter().map(|s| s.efi_category).collect();
        let now = Current {
            ids: &pa.id,
            pcns: &pa.pcns,
            pcn: &pa.pcn,
            status: &scored.status,
            category: &category,
            listed,
        };
        Changes::between(&now, rules.min_category, prev)
    }

    /// Compare a run, as [`Current`] describes it, with `prev`; `min_category` is the lists'
    /// frailty cut-off (it tells "frailty fell" from "below the list's cut-off").
    pub fn between(now: &Current, min_category: EfiCategory, prev: &Previous) -> Changes {
        let mut out = Changes::none_for(
            now.ids.len(),
            now.pcns.len(),
            format!(
                "{} (as of {})",
                prev.dir.display(),
                prev.as_of.as_deref().unwrap_or("unknown")
            ),
        );
        // Both sides are in pseudonym order, so each side is searched forward from where the
        // last search ended (a merge), not from scratch.
        let mut from = 0;
        for p in (0..now.ids.len()).filter(|&p| now.listed[p]) {
            let before = search_forward(&prev.ids, &now.ids[p], &mut from)
                .filter(|&q| prev.pcn[q] == now.pcns[now.pcn[p] as usize]);
            let c = now.category[p];
            out.change[p] = Some(match before.map(|q| prev.category[q]) {
                None => Change::New,
                Some(Some(b)) if c > b => Change::Up,
                Some(Some(b)) if c < b => Change::Down,
                Some(_) => Change::Same,
            });
        }
        let mut from = 0;
        for q in 0..prev.ids.len() {
            let Ok(pcn) = now.pcns.binary_search(&prev.pcn[q]) else {
                out.dropped_from_gone_pcns += 1;
                continue;
            };
            let reason = match search_forward(now.ids, &prev.ids[q], &mut from) {
                None => "no longer in the cohort (deregistered or moved away)".to_string(),
                Some(p) if now.listed[p] && now.pcn[p] as usize == pcn => continue,
                Some(p) if now.status[p] == Status::Deceased => "died".to_string(),
                Some(p) if now.pcn[p] as usize != pcn => {
                    format!("moved to another PCN ({})", now.pcns[now.pcn[p] as usize])
                }
                Some(p) if now.status[p] != Status::Eligible => {
                    format!("no longer eligible ({})", now.status[p].name())
                }
                Some(p) if now.category[p] < min_category => {
                    format!("frailty fell to {}", now.category[p].name())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// Rows in any order; every kind of change and of reason from a run described by its scores
    /// alone (what the Spark job's driver has).
    #[test]
    fn a_run_described_by_its_scores_compares_as_the_binary_does() {
        use EfiCategory::*;
        let prev = Previous::from_rows(
            PathBuf::from("prev"),
            Some("2025-01-01".into()),
            vec![
                ("up".into(), "A".into(), Some(Mild), true),
                ("gone".into(), "A".into(), Some(Mild), true),
                ("same".into(), "A".into(), Some(Mild), true),
                ("moved".into(), "A".into(), Some(Moderate), true),
                ("died".into(), "A".into(), Some(Mild), true),
                ("fell".into(), "A".into(), Some(Mild), true),
                ("oldpcn".into(), "Z".into(), Some(Mild), true),
                ("unlisted".into(), "A".into(), Some(Fit), false),
            ],
        )
        .unwrap();
        assert_eq!(
            prev.listed_rows().map(|r| r.0).collect::<Vec<_>>(),
            ["died", "fell", "gone", "moved", "oldpcn", "same", "up"]
        );
        // This run, in pseudonym order.
        let ids = s(&["died", "fell", "moved", "newbie", "same", "unlisted", "up"]);
        let pcns = s(&["A", "B"]);
        let now = Current {
            ids: &ids,
            pcns: &pcns,
            pcn: &[0, 0, 1, 0, 0, 0, 0],
            status: &[
                Status::Deceased,
                Status::Eligible,
                Status::Eligible,
                Status::Eligible,
                Status::Eligible,
                Status::Eligible,
                Status::Eligible,
            ],
            category: &[Mild, Fit, Moderate, Severe, Mild, Mild, Moderate],
            listed: &[false, false, true, true, true, true, true],
        };
        let c = Changes::between(&now, Mild, &prev);
        let change: Vec<_> = c.change.iter().map(|x| x.map(Change::name)).collect();
        assert_eq!(
            change,
            [
                None,
                None,
                Some("new"),
                Some("new"),
                Some("same"),
                Some("new"),
                Some("up")
            ]
        );
        let why: Vec<_> = c.dropped[0]
            .iter()
            .map(|d| (d.patient_id.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(
            why,
            [
                ("died", "died"),
                ("fell", "frailty fell to fit"),
                (
                    "gone",
                    "no longer in the cohort (deregistered or moved away)"
                ),
                ("moved", "moved to another PCN (B)"),
            ]
        );
        assert!(c.dropped[1].is_empty());
        assert_eq!((c.new_on_lists(), c.dropped_total()), (3, 5));
        assert_eq!(c.compared_with, "prev (as of 2025-01-01)");
    }

    #[test]
    fn a_pseudonym_given_twice_is_refused() {
        let row = |id: &str| (id.to_string(), "A".to_string(), None, true);
        let e = Previous::from_rows(PathBuf::from("p"), None, vec![row("x"), row("y"), row("x")]);
        assert!(matches!(e, Err(ChangesError::Unreadable { .. })));
    }
}
