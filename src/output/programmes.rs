//! Programme lists as files: per programme and PCN, `lists/<PCN>/<PCN>.<programme>.csv` and
//! `.parquet` beside the PCN's frailty list (`lists/<PCN>/<PCN>.csv`), with a `rule` column saying in plain words
//! which of the programme's rules put each person there.
//!
//! Pipeline position: `programmes` (who is on which list, and why) -> **here** -> the list
//! writers ([`super::LIST_FORMATS`]). A row has the frailty list's columns (scores, reasons,
//! activity, the models' columns) without its `change` column (what changed is said of the
//! frailty list).

use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use super::{create_pcn_folder, list_frame, pcn_file, pcn_stems, RiskColumns, LIST_FORMATS};
use crate::changes::Changes;
use crate::programmes::{reason, Inputs, Programme, ProgrammeLists};
use crate::publish::{OutputError, Written};
use crate::scores::Scorer;

/// One programme's list of one PCN as a table: `rank`, `patient_id`, `rule`, then the frailty
/// list's columns.
pub fn programme_frame(
    programme: &Programme,
    inputs: &Inputs,
    patients: &[(u32, u16)],
    risk: &RiskColumns,
    changes: &Changes,
) -> PolarsResult<DataFrame> {
    let scorer = Scorer::new(inputs.defs);
    let ids: Vec<u32> = patients.iter().map(|&(p, _)| p).collect();
    let mut df = list_frame(inputs.cohort, inputs.scored, &scorer, &ids, risk, changes)?;
    df = df.drop("change")?;
    let rule: Vec<String> = patients
        .iter()
        .map(|&(p, mask)| reason(programme, inputs, p as usize, mask))
        .collect();
    df.insert_column(2, Column::new("rule".into(), rule))?;
    Ok(df)
}

/// One file to write: a programme, a PCN index, its listed patients with their rule masks.
type Job<'a> = (&'a Programme, u32, &'a [(u32, u16)]);

/// Write every programme's lists into `dir` (which holds `lists/`): one file per PCN, programme
/// and list format, PCNs that have nobody on a programme included (an empty list says so).
/// Returns the files written, programmes in order, then PCNs in code order.
pub fn write_programmes(
    dir: &Path,
    programmes: &[Programme],
    selected: &[ProgrammeLists],
    inputs: &Inputs,
    risk: &RiskColumns,
    changes: &Changes,
) -> Result<Vec<Written>, OutputError> {
    let stems = pcn_stems(&inputs.cohort.patients.pcns);
    let jobs: Vec<Job> = programmes
        .iter()
        .zip(selected)
        .flat_map(|(p, s)| s.lists.iter().map(move |(pcn, v)| (p, *pcn, v.as_slice())))
        .collect();
    let written =
        jobs.par_iter()
            .map(|&(programme, pcn, patients)| {
                create_pcn_folder(dir, &stems[pcn as usize])?;
                let stem = format!("{}.{}", pcn_file(&stems[pcn as usize]), programme.name);
                let mut df = programme_frame(programme, inputs, patients, risk, changes).map_err(
                    |source| OutputError::Encode {
                        path: dir.join(format!("{stem}.csv")),
                        source,
                    },
                )?;
                let mut written = Vec::with_capacity(LIST_FORMATS.len());
                for w in LIST_FORMATS {
                    let rel = format!("{stem}.{}", w.extension());
                    let digest = w.write(&dir.join(&rel), &mut df)?;
                    written.push(crate::publish::record(&rel, df.height(), digest));
                }
                Ok(written)
            })
            .collect::<Vec<Result<Vec<Written>, OutputError>>>();
    let mut out = Vec::new();
    for w in written {
        out.extend(w?);
    }
    Ok(out)
}
