//! Decoding `encounters.parquet` rows: the general path over a polars frame and the dictionary
//! fast path over a Parquet file's row groups. Both push every row through
//! [`EncounterPart::push`], the one copy of the encounter row rules.
//!
//! Pipeline position: part of the first stage, `input`; its parts go to
//! [`super::layout::lay_out_encounters`].

use polars::prelude::*;

use super::dictread::DictFile;
use super::frame::{bool_col, day_col, text_col, Table};
use super::layout::{decode_encounter_parts, DecodedEncounters, PatientIndex, PidCache};
use super::LoadOptions;
use crate::cohort::Setting;
use crate::date;

/// `decode_encounters` on the dictionary fast path; see `decode_events_dict`.
pub(crate) fn decode_encounters_dict(
    f: &DictFile,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<(DecodedEncounters, u64)> {
    use polars_arrow::array::Array;
    let (los, rows) = f.row_starts();
    let bounds = (date::earliest(), opts.today);
    let spans: Vec<(usize, usize)> = (0..f.row_groups())
        .map(|rg| (los[rg], f.rows(rg)))
        .collect();
    let decoded = decode_encounter_parts(&spans, |rg, part| {
        let lo = los[rg];
        let pid = f.dict_column(rg, "patient_id")?;
        let setting = f.dict_column(rg, "setting")?;
        let start = f.date_column(rg, "start_date")?.values;
        let end = f.date_column(rg, "end_date")?.values;
        let em = f.bool_column(rg, "emergency")?;
        let len = spans[rg].1;
        if [
            pid.keys.len(),
            setting.keys.len(),
            start.len(),
            end.len(),
            em.len(),
        ]
        .iter()
        .any(|&l| l != len)
        {
            return Err(PolarsError::ComputeError("ragged row group".into()));
        }
        let pmap = pidx.lookup_dictionary(&pid.values);
        let smap: Vec<Option<Setting>> = setting
            .values
            .iter()
            .map(|v| v.and_then(Setting::parse))
            .collect();
        for k in 0..len {
            let pi = pid
                .keys
                .is_valid(k)
                .then(|| pmap[pid.keys.value(k) as usize]);
            let st = setting
                .keys
                .is_valid(k)
                .then(|| smap[setting.keys.value(k) as usize])
                .flatten();
            part.push(
                (lo + k) as u64 + 1,
                pi,
                st,
                start.is_valid(k).then(|| start.value(k)),
                end.is_valid(k).then(|| end.value(k)),
                em.is_valid(k).then(|| em.value(k)),
                bounds,
            );
        }
        Ok(())
    })?;
    Ok((decoded, rows as u64))
}

/// Decode the encounters of a frame (the general path), in parallel over its chunks.
pub(crate) fn decode_encounters(
    t: &Table,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<DecodedEncounters> {
    let mut df = DataFrame::new(
        t.df.height(),
        vec![
            text_col(&t.df, "patient_id")?.into_column(),
            text_col(&t.df, "setting")?.into_column(),
            day_col(&t.df, "start_date")?.into_column(),
            day_col(&t.df, "end_date")?.into_column(),
            bool_col(&t.df, "emergency")?.into_column(),
        ],
    )?;
    df.align_chunks_par();
    let pid = df.column("patient_id")?.str()?.clone();
    let setting = df.column("setting")?.str()?.clone();
    let start = df.column("start_date")?.i32()?.clone();
    let end = df.column("end_date")?.i32()?.clone();
    let emergency = df.column("emergency")?.bool()?.clone();
    let mut chunks = Vec::new();
    let mut lo = 0usize;
    for ((((p, s), st), en), em) in pid
        .downcast_iter()
        .zip(setting.downcast_iter())
        .zip(start.downcast_iter())
        .zip(end.downcast_iter())
        .zip(emergency.downcast_iter())
    {
        chunks.push((lo, p, s, st, en, em));
        lo += p.len();
    }
    let (earliest, today) = (date::earliest(), opts.today);
    let spans: Vec<(usize, usize)> = chunks.iter().map(|c| (c.0, c.1.len())).collect();
    decode_encounter_parts(&spans, |i, part| {
        let (lo, pid, setting, start, end, emergency) = chunks[i];
        let mut pids = PidCache::new(pidx);
        let pid_views = pid.views();
        let mut last_setting: Option<(&str, Option<Setting>)> = None;
        let it = pid
            .iter()
            .zip(setting.iter())
            .zip(start.iter())
            .zip(end.iter())
            .zip(emergency.iter());
        for (k, ((((p, s), st), en), em)) in it.enumerate() {
            let row = (lo + k) as u64 + 1;
            let pi = p.map(|p| pids.get(p, pid_views[k].as_u128()));
            let parsed = match (s, last_setting) {
                (Some(s), Some((raw, parsed))) if raw == s => parsed,
                (Some(s), _) => {
                    let parsed = Setting::parse(s);
                    last_setting = Some((s, parsed));
                    parsed
                }
                (None, _) => None,
            };
            part.push(
                row,
                pi,
                parsed,
                st.copied(),
                en.copied(),
                em,
                (earliest, today),
            );
        }
        Ok(())
    })
}
