//! Programme lists as files: per programme and PCN, `lists/<PCN>/<PCN>.<programme>.csv` and
//! `.parquet` beside the PCN's frailty list (`lists/<PCN>/<PCN>.csv`), with a `rule` column
//! saying in plain words which of the programme's rules put each person there.
//!
//! Pipeline position: `programmes` (who is on which list, and why) -> **here** -> the list
//! writers ([`super::LIST_FORMATS`]). A row has the frailty list's columns (scores, reasons,
//! activity, the models' columns) without its `change` column (what changed is said of the
//! frailty list). The rows are taken from the PCN's one list frame ([`super::write_outputs`]
//! builds it once for everyone on any of the PCN's lists), so a person on the frailty list and
//! three programmes is explained once, not four times.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::{encode_err, write_all, LIST_FORMATS};
use crate::programmes::{reason, Inputs, Programme, ProgrammeLists};
use crate::publish::{OutputError, Written};

/// The programme lists of a run, for [`super::write_outputs`].
#[derive(Clone, Copy)]
pub struct ProgrammeRun<'a> {
    /// The programmes, in configuration order.
    pub programmes: &'a [Programme],
    /// Each programme's lists, in the same order.
    pub selected: &'a [ProgrammeLists],
    /// What the rules read (for the `rule` column).
    pub inputs: &'a Inputs<'a>,
}

impl<'a> ProgrammeRun<'a> {
    /// The lists of PCN `pcn`: per programme (by index), its people with their rule masks.
    pub fn of_pcn(&self, pcn: u32) -> Vec<(usize, &'a [(u32, u16)])> {
        self.selected
            .iter()
            .enumerate()
            .filter_map(|(k, s)| {
                // `select` lists every PCN, in PCN index order.
                let (p, v) = s.lists.get(pcn as usize)?;
                debug_assert_eq!(*p, pcn);
                Some((k, v.as_slice()))
            })
            .collect()
    }
}

/// One programme's list of one PCN as a table: `rank`, `patient_id`, `rule`, then the frailty
/// list's columns; its rows taken from `full`, the PCN's list frame whose row `row_of[p]` is
/// patient `p`.
pub fn programme_frame(
    programme: &Programme,
    inputs: &Inputs,
    patients: &[(u32, u16)],
    full: &DataFrame,
    row_of: &HashMap<u32, IdxSize>,
) -> PolarsResult<DataFrame> {
    let idx: Vec<IdxSize> = patients
        .iter()
        .map(|(p, _)| {
            row_of.get(p).copied().ok_or_else(
                || polars_err!(ComputeError: "patient {p} is not in the PCN's list frame"),
            )
        })
        .collect::<PolarsResult<_>>()?;
    let mut df = full.take(&IdxCa::from_vec("".into(), idx))?;
    df.with_column(Column::new(
        "rank".into(),
        (1..=patients.len() as u32).collect::<Vec<u32>>(),
    ))?;
    df = df.drop("change")?;
    let rule: Vec<String> = patients
        .iter()
        .map(|&(p, mask)| reason(programme, inputs, p as usize, mask))
        .collect();
    df.insert_column(2, Column::new("rule".into(), rule))?;
    Ok(df)
}

/// Write the programme lists of one PCN into `dir` (which holds the PCN's folder): each of
/// `lists` (programme index, its people) from `full`, the PCN's list frame. `file` is the PCN's
/// file path without extension ([`super::pcn_file`]). Returns per programme the files written.
pub fn write_pcn_programmes(
    dir: &Path,
    file: &str,
    run: &ProgrammeRun,
    lists: &[(usize, &[(u32, u16)])],
    full: &DataFrame,
    row_of: &HashMap<u32, IdxSize>,
) -> Result<Vec<(usize, Vec<Written>)>, OutputError> {
    lists
        .iter()
        .map(|&(k, patients)| {
            let programme = &run.programmes[k];
            let stem = format!("{file}.{}", programme.name);
            let mut df = programme_frame(programme, run.inputs, patients, full, row_of)
                .map_err(encode_err(&dir.join(format!("{stem}.csv"))))?;
            Ok((k, write_all(dir, &stem, LIST_FORMATS, &mut df)?))
        })
        .collect()
}
