//! Decoding `events.parquet` rows: the general path over a polars frame (any accepted types,
//! files or memory) and the dictionary fast path over a Parquet file's row groups. Both push
//! every row through [`EventPart::admit`], the one copy of the event row rules.
//!
//! Pipeline position: part of the first stage, `input`; its parts go to
//! [`super::layout::lay_out_events`].

use polars::prelude::*;

use super::dictread::DictFile;
use super::frame::{day_col, text_col, Table};
use super::layout::{decode_event_parts, DecodedEvents, FastMap, PatientIndex, PidCache, UNSET};
use super::LoadOptions;
use crate::date;

/// log2 of the slots in the per-part code cache of `decode_events`.
const CACHE_BITS: u32 = 10;

/// Key of a raw value for interning: a short string (<= 12 bytes, the common case for codes and
/// code systems) is its Arrow view, which holds the bytes inline, so nothing is hashed but two
/// integers; a longer one is its text.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum RawKey<'a> {
    Inline(u128),
    Long(&'a str),
}

fn raw_key(view_len: u32, view_bits: u128, text: &str) -> RawKey<'_> {
    if view_len <= 12 {
        RawKey::Inline(view_bits)
    } else {
        RawKey::Long(text)
    }
}

/// Decode the events of a frame (the general path), in parallel over its chunks.
pub(crate) fn decode_events(
    t: &Table,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<DecodedEvents> {
    let mut df = DataFrame::new(
        t.df.height(),
        vec![
            text_col(&t.df, "patient_id")?.into_column(),
            day_col(&t.df, "event_date")?.into_column(),
            text_col(&t.df, "code_system")?.into_column(),
            text_col(&t.df, "code")?.into_column(),
        ],
    )?;
    df.align_chunks_par();
    let pid = df.column("patient_id")?.str()?.clone();
    let day = df.column("event_date")?.i32()?.clone();
    let sys = df.column("code_system")?.str()?.clone();
    let code = df.column("code")?.str()?.clone();
    let mut chunks = Vec::new();
    let mut lo = 0usize;
    for (((p, d), s), c) in pid
        .downcast_iter()
        .zip(day.downcast_iter())
        .zip(sys.downcast_iter())
        .zip(code.downcast_iter())
    {
        chunks.push((lo, p, d, s, c));
        lo += p.len();
    }
    let bounds = (date::earliest(), opts.today);
    let spans: Vec<(usize, usize)> = chunks.iter().map(|c| (c.0, c.1.len())).collect();
    decode_event_parts(&spans, |i, part| {
        let (_, pid, day, sys, code) = chunks[i];
        let mut local: FastMap<(RawKey, RawKey), u32> = FastMap::default();
        let mut cache = vec![(0u128, 0u128, UNSET); 1 << CACHE_BITS];
        let mut pids = PidCache::new(pidx);
        let (sys_views, code_views, pid_views) = (sys.views(), code.views(), pid.views());
        let it = pid.iter().zip(day.iter()).zip(sys.iter()).zip(code.iter());
        for (k, (((p, d), s), c)) in it.enumerate() {
            let pi = p.map(|p| pids.get(p, pid_views[k].as_u128()));
            // `admit` refuses (and marks) a row without a system or code, so an admitted row
            // has both.
            let admitted = part.admit(k, pi, d.copied(), s.is_some(), c.is_some(), bounds);
            let (true, Some(s), Some(c)) = (admitted, s, c) else {
                continue;
            };
            // The system is parsed and the code normalised later, once per distinct pair.
            let (sv, cv) = (sys_views[k], code_views[k]);
            let (sb, cb) = (sv.as_u128(), cv.as_u128());
            let inline = sv.length <= 12 && cv.length <= 12;
            // A small direct-mapped cache in front of the map: most rows repeat a code seen
            // recently, and then no hashing is needed at all.
            let slot = ((cb ^ (cb >> 64) ^ sb) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                >> (64 - CACHE_BITS);
            let cached = &mut cache[slot as usize];
            let id = if inline && cached.2 != UNSET && cached.0 == sb && cached.1 == cb {
                cached.2
            } else {
                let key = (raw_key(sv.length, sb, s), raw_key(cv.length, cb, c));
                let id = match local.get(&key) {
                    Some(&id) => id,
                    None => {
                        let id = part.add_local(s, c);
                        local.insert(key, id);
                        id
                    }
                };
                if inline {
                    *cached = (sb, cb, id);
                }
                id
            };
            part.keep(k, id);
        }
        Ok(())
    })
}

/// `decode_events` on the dictionary fast path ([`crate::dictread`]): the same parts, from keys
/// and per-row-group dictionaries. Fails when the file is not dictionary-encoded throughout; the
/// caller then uses the general path. Returns the parts and the file's row count.
pub(crate) fn decode_events_dict(
    f: &DictFile,
    pidx: &PatientIndex,
    opts: &LoadOptions,
) -> PolarsResult<(DecodedEvents, u64)> {
    use polars_arrow::array::Array;
    let (los, rows) = f.row_starts();
    let bounds = (date::earliest(), opts.today);
    let spans: Vec<(usize, usize)> = (0..f.row_groups())
        .map(|rg| (los[rg], f.rows(rg)))
        .collect();
    let decoded = decode_event_parts(&spans, |rg, part| {
        let pid = f.dict_column(rg, "patient_id")?;
        let sys = f.dict_column(rg, "code_system")?;
        let code = f.dict_column(rg, "code")?;
        let day = f.date_column(rg, "event_date")?.values;
        let len = part.len();
        if pid.keys.len() != len
            || sys.keys.len() != len
            || code.keys.len() != len
            || day.len() != len
        {
            return Err(PolarsError::ComputeError("ragged row group".into()));
        }
        let pmap = pidx.lookup_dictionary(&pid.values);
        let ncode = code.values.len();
        let mut pair = vec![UNSET; sys.values.len() * ncode];
        let (pk, sk, ck) = (pid.keys.values(), sys.keys.values(), code.keys.values());
        let dv = day.values();
        let nulls = pid.keys.null_count()
            + sys.keys.null_count()
            + code.keys.null_count()
            + day.null_count()
            > 0;
        for k in 0..len {
            let pi = (!nulls || pid.keys.is_valid(k)).then(|| pmap[pk[k] as usize]);
            let d = (!nulls || day.is_valid(k)).then(|| dv[k]);
            let has_system = !nulls || sys.keys.is_valid(k);
            let has_code = !nulls || code.keys.is_valid(k);
            if !part.admit(k, pi, d, has_system, has_code, bounds) {
                continue;
            }
            let slot = sk[k] as usize * ncode + ck[k] as usize;
            let mut id = pair[slot];
            if id == UNSET {
                id = part.add_local(
                    sys.values.value(sk[k] as usize),
                    code.values.value(ck[k] as usize),
                );
                pair[slot] = id;
            }
            part.keep(k, id);
        }
        Ok(())
    })?;
    Ok((decoded, rows as u64))
}
