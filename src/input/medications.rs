//! Decoding `medications.parquet` (optional): prescriptions issued, one row each, with the dm+d
//! product and, when the extract has it, the VTM (what counts as one medicine) and the BNF code
//! (which tells devices apart). Read on the general path: the file is small beside the events.
//!
//! Pipeline position: part of the first stage, `input`; its parts go to
//! [`lay_out_medications`], and `features` counts distinct medicines from them.

use polars::prelude::*;
use rayon::prelude::*;

use super::contract::{is_bnf_device, reason, MEDICATIONS_FILE};
use super::frame::{day_col, text_col, Table};
use super::layout::{apply, check_patient_and_date, group_by_patient, PatientIndex, PidCache};
use super::LoadOptions;
use crate::codes::{normalise, CodeSystem};
use crate::cohort::{Medications, Patients};
use crate::date;
use crate::report::Reject;

/// One decoded chunk of the medications file: kept rows, devices left out, rejects.
#[derive(Default)]
pub(crate) struct MedicationPart {
    pub(crate) patient: Vec<u32>,
    pub(crate) day: Vec<i32>,
    pub(crate) medicine: Vec<u64>,
    pub(crate) devices: u64,
    pub(crate) rejects: Vec<Reject>,
}

/// A dm+d or VTM id as its number, or `None` when it is not 6 to 18 digits.
fn dmd_id(raw: &str) -> Option<u64> {
    normalise(CodeSystem::Dmd, raw).ok()?.parse().ok()
}

/// Decode the medications of a frame, in parallel over its chunks.
pub(crate) fn decode_medications(
    t: &Table,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<Vec<MedicationPart>> {
    let has = |c: &str| t.present.contains(&c);
    let n = t.df.height();
    let nulls = |name: &str| StringChunked::full_null(name.into(), n).into_column();
    let mut df = DataFrame::new(
        n,
        vec![
            text_col(&t.df, "patient_id")?.into_column(),
            day_col(&t.df, "issue_date")?.into_column(),
            text_col(&t.df, "dmd_code")?.into_column(),
            if has("vtm_code") {
                text_col(&t.df, "vtm_code")?.into_column()
            } else {
                nulls("vtm_code")
            },
            if has("bnf_code") {
                text_col(&t.df, "bnf_code")?.into_column()
            } else {
                nulls("bnf_code")
            },
        ],
    )?;
    df.align_chunks_par();
    let pid = df.column("patient_id")?.str()?.clone();
    let day = df.column("issue_date")?.i32()?.clone();
    let dmd = df.column("dmd_code")?.str()?.clone();
    let vtm = df.column("vtm_code")?.str()?.clone();
    let bnf = df.column("bnf_code")?.str()?.clone();
    let mut chunks = Vec::new();
    let mut lo = 0usize;
    for ((((p, d), m), v), b) in pid
        .downcast_iter()
        .zip(day.downcast_iter())
        .zip(dmd.downcast_iter())
        .zip(vtm.downcast_iter())
        .zip(bnf.downcast_iter())
    {
        chunks.push((lo, p, d, m, v, b));
        lo += p.len();
    }
    let bounds = (date::earliest(), opts.today);
    Ok(chunks
        .into_par_iter()
        .map(|(lo, pid, day, dmd, vtm, bnf)| {
            let mut part = MedicationPart::default();
            let mut pids = PidCache::new(pidx);
            let pid_views = pid.views();
            let it = pid
                .iter()
                .zip(day.iter())
                .zip(dmd.iter())
                .zip(vtm.iter())
                .zip(bnf.iter());
            for (k, ((((p, d), m), v), b)) in it.enumerate() {
                let row = (lo + k) as u64 + 1;
                let mut reject = |column: &'static str, reason: &'static str| {
                    part.rejects.push(Reject {
                        file: MEDICATIONS_FILE,
                        row,
                        column,
                        reason,
                    })
                };
                let pi = p.map(|p| pids.get(p, pid_views[k].as_u128()));
                let (pi, d) = match check_patient_and_date(pi, d.copied(), "issue_date", bounds) {
                    Ok(x) => x,
                    Err((column, reason)) => {
                        reject(column, reason);
                        continue;
                    }
                };
                let Some(m) = m else {
                    reject("dmd_code", reason::NULL_CODE);
                    continue;
                };
                let Some(dmd) = dmd_id(m) else {
                    reject("dmd_code", reason::MALFORMED_DMD);
                    continue;
                };
                let medicine = match v.map(str::trim).filter(|v| !v.is_empty()) {
                    Some(v) => match dmd_id(v) {
                        Some(id) => id | Medications::VTM,
                        None => {
                            reject("vtm_code", reason::MALFORMED_DMD);
                            continue;
                        }
                    },
                    None => dmd,
                };
                if b.is_some_and(is_bnf_device) {
                    part.devices += 1;
                    continue;
                }
                part.patient.push(pi);
                part.day.push(d);
                part.medicine.push(medicine);
            }
            part
        })
        .collect())
}

/// Lay out decoded medication parts: concatenate them in file order and group by patient.
pub(crate) fn lay_out_medications(
    parts: Vec<MedicationPart>,
    patients: &Patients,
) -> (Medications, Vec<Reject>) {
    let mut patient = Vec::new();
    let mut m = Medications {
        present: true,
        ..Default::default()
    };
    let mut rejects = Vec::new();
    for part in parts {
        patient.extend_from_slice(&part.patient);
        m.day.extend_from_slice(&part.day);
        m.medicine.extend_from_slice(&part.medicine);
        m.devices += part.devices;
        rejects.extend(part.rejects);
    }
    let (offsets, perm) = group_by_patient(patients.len(), &patient);
    m.offsets = offsets;
    m.day = apply(m.day, &perm);
    m.medicine = apply(m.medicine, &perm);
    (m, rejects)
}
