//! The shared layout every decoder pushes rows into: the patient index, the row rules (one copy
//! of each reject rule for events and for encounters), code interning, and grouping rows by
//! patient into a [`Cohort`](crate::cohort::Cohort)'s columns.
//!
//! Pipeline position: part of the first stage, `input`. Decoders (`events`, `encounters`) turn an
//! adaptor's columns into raw values; this module decides what is kept and lays it out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use polars::prelude::{PolarsError, PolarsResult};
use polars_arrow::array::Utf8ViewArray;
use rayon::prelude::*;

use super::contract::{reason, ENCOUNTERS_FILE, EVENTS_FILE};
use super::LeaveOut;
use crate::codes::{normalise, CodeDict, CodeSystem};
use crate::cohort::{search_from, Encounters, Events, Patients, Setting};
use crate::report::Reject;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// No patient / no code: a row not (yet) kept.
pub(crate) const UNSET: u32 = u32::MAX;
/// At layout, on a global code id: the code's rows may be left out ([`LeaveOut`]). Code ids
/// stay far below it (a dictionary of 2^31 codes would not fit in memory).
const LEAVE: u32 = 1 << 31;
/// (column, reason) of a rejected row.
type RejectReason = (&'static str, &'static str);

/// Map pseudonyms to patient indices. Patients are held in pseudonym order, so a pseudonym is
/// found by searching forward from where the previous one was (a row group's dictionary of an
/// extract in patient order lists its pseudonyms in that order too), and the hash map is built
/// only when lookups come out of order often (an unsorted extract, or the general path's rows).
pub(crate) struct PatientIndex<'a> {
    /// Pseudonyms in patient order; searched only when `sorted`.
    ids: &'a [String],
    sorted: bool,
    /// Searches that could not start from their hint, across all threads.
    misses: AtomicUsize,
    map: OnceLock<FastMap<&'a str, u32>>,
}

/// Out-of-order searches allowed before the hash map is built and used for them instead.
const SEARCH_MISSES: usize = 1 << 14;

impl<'a> PatientIndex<'a> {
    /// The patient index of a pseudonym (surrounding whitespace forgiven), or `UNSET`.
    pub(crate) fn lookup(&self, p: &str) -> u32 {
        let map = self.map();
        map.get(p)
            .or_else(|| map.get(p.trim()))
            .copied()
            .unwrap_or(UNSET)
    }

    /// [`PatientIndex::lookup`], searching from `*hint` (the patient after the one found last,
    /// 0 to start); `*hint` moves past the patient found.
    pub(crate) fn lookup_from(&self, p: &str, hint: &mut usize) -> u32 {
        if !self.sorted {
            return self.lookup(p);
        }
        let found = match self.ids.get(*hint) {
            Some(h) if h.as_str() <= p => search_from(self.ids, p, *hint).ok(),
            _ if self.misses.fetch_add(1, Ordering::Relaxed) < SEARCH_MISSES => {
                search_from(self.ids, p, 0).ok()
            }
            _ => return self.lookup(p),
        };
        let found = match found {
            Some(i) => Some(i),
            None if p.trim().len() != p.len() => search_from(self.ids, p.trim(), 0).ok(),
            None => None,
        };
        match found {
            Some(i) => {
                *hint = i + 1;
                i as u32
            }
            None => UNSET,
        }
    }

    /// The patient index of each value of a row group's pseudonym dictionary (`UNSET` for null
    /// or unknown): each distinct pseudonym is looked up once, searching on from the previous
    /// one (a sorted extract's dictionary is in patient order).
    pub(crate) fn lookup_dictionary(&self, values: &Utf8ViewArray) -> Vec<u32> {
        let mut hint = 0;
        values
            .iter()
            .map(|v| v.map_or(UNSET, |p| self.lookup_from(p, &mut hint)))
            .collect()
    }

    fn map(&self) -> &FastMap<&'a str, u32> {
        self.map.get_or_init(|| {
            let mut map = FastMap::with_capacity_and_hasher(self.ids.len(), Default::default());
            for (i, id) in self.ids.iter().enumerate() {
                map.insert(id.as_str(), i as u32);
            }
            map
        })
    }

    /// Index every patient by pseudonym (nothing is built until it is needed).
    pub(crate) fn new(p: &'a Patients) -> Self {
        let ids = &p.id[..];
        PatientIndex {
            ids,
            sorted: ids.par_windows(2).all(|w| w[0] < w[1]),
            misses: AtomicUsize::new(0),
            map: OnceLock::new(),
        }
    }
}

/// Pseudonym lookup for rows in file order: rows of one patient usually sit together, so the
/// previous row's answer is reused when the Arrow view is identical (dictionary-decoded values
/// share one view) or the text is equal, and only otherwise is the pseudonym hashed.
pub(crate) struct PidCache<'p, 'a> {
    index: &'p PatientIndex<'a>,
    last_view: u128,
    last_text: Option<&'p str>,
    last_idx: u32,
}

impl<'p, 'a> PidCache<'p, 'a> {
    /// An empty cache in front of `index`.
    pub(crate) fn new(index: &'p PatientIndex<'a>) -> Self {
        PidCache {
            index,
            last_view: u128::MAX,
            last_text: None,
            last_idx: UNSET,
        }
    }

    /// Patient index of `text` (whose Arrow view bits are `view`), or `UNSET`.
    pub(crate) fn get(&mut self, text: &'p str, view: u128) -> u32 {
        if view != self.last_view && self.last_text != Some(text) {
            self.last_idx = self.index.lookup(text);
            self.last_text = Some(text);
        }
        self.last_view = view;
        self.last_idx
    }
}

/// The rules every dated row of events and medications meets, in order: a pseudonym (`None`
/// when null, `Some(UNSET)` when not in `patients.parquet`), then a date (`None` when null)
/// within 1900..=today. Returns the patient index and day, or the column and reason to reject.
#[inline]
pub(crate) fn check_patient_and_date(
    patient: Option<u32>,
    day: Option<i32>,
    date_column: &'static str,
    (earliest, today): (i32, i32),
) -> Result<(u32, i32), RejectReason> {
    let pi = patient.ok_or(("patient_id", reason::NULL_PATIENT))?;
    if pi == UNSET {
        return Err(("patient_id", reason::UNKNOWN_PATIENT));
    }
    let d = day.ok_or((date_column, reason::NULL_DATE))?;
    if d < earliest || d > today {
        return Err((date_column, reason::DATE_RANGE));
    }
    Ok((pi, d))
}

/// One parallel part (an aligned chunk, typically a Parquet row group) of the events file, being
/// decoded: its rows' slices of the file-wide columns ([`decode_event_parts`]), indexed by row
/// within the part; a row rejected while decoding has `code == UNSET`. Every row of the part
/// must go through [`EventPart::admit`], and every row it admits through [`EventPart::keep`].
pub(crate) struct EventPart<'a> {
    /// First row of the part (0-based) in the file.
    pub(crate) lo: usize,
    pub(crate) patient: &'a mut [u32],
    pub(crate) day: &'a mut [i32],
    /// Local id into `local`.
    pub(crate) code: &'a mut [u32],
    /// Distinct raw (code_system, code) pairs of the part, as they appear in the file.
    pub(crate) local: Vec<(String, String)>,
    pub(crate) rejects: Vec<Reject>,
}

/// What is left of a decoded part besides its rows: where they are, its local codes, its rejects.
pub(crate) struct PartInfo {
    lo: usize,
    len: usize,
    local: Vec<(String, String)>,
    rejects: Vec<Reject>,
}

/// The decoded events file: one set of columns for the whole file (every part wrote its own
/// rows in place), and the parts' codes and rejects. Laying out then compacts the columns in
/// place, so a row is never held twice.
pub(crate) struct DecodedEvents {
    patient: Vec<u32>,
    day: Vec<i32>,
    code: Vec<u32>,
    parts: Vec<PartInfo>,
}

/// Decode the events file in parallel parts: `spans` are the parts' (first row, rows), in file
/// order and contiguous from row 0; `decode(i, part)` fills part `i` through
/// [`EventPart::admit`] and [`EventPart::keep`]. The first error stops the decoding.
pub(crate) fn decode_event_parts(
    spans: &[(usize, usize)],
    decode: impl Fn(usize, &mut EventPart) -> PolarsResult<()> + Sync,
) -> PolarsResult<DecodedEvents> {
    let total = contiguous(spans)?;
    // Zeroed allocations come from fresh pages with no fill pass, so the pages are first
    // touched by the decoding threads, in parallel; every row's code is then written, `UNSET`
    // for a rejected row ([`EventPart::admit`]).
    let mut patient = vec![0u32; total];
    let mut day = vec![0i32; total];
    let mut code = vec![0u32; total];
    let parts = {
        let mut tasks = Vec::with_capacity(spans.len());
        let (mut pr, mut dr, mut cr) = (&mut patient[..], &mut day[..], &mut code[..]);
        for (i, &(lo, len)) in spans.iter().enumerate() {
            let (p0, p1) = pr.split_at_mut(len);
            let (d0, d1) = dr.split_at_mut(len);
            let (c0, c1) = cr.split_at_mut(len);
            tasks.push((i, lo, p0, d0, c0));
            (pr, dr, cr) = (p1, d1, c1);
        }
        tasks
            .into_par_iter()
            .map(|(i, lo, patient, day, code)| {
                let len = patient.len();
                let mut part = EventPart {
                    lo,
                    patient,
                    day,
                    code,
                    local: Vec::new(),
                    rejects: Vec::new(),
                };
                decode(i, &mut part)?;
                Ok(PartInfo {
                    lo,
                    len,
                    local: part.local,
                    rejects: part.rejects,
                })
            })
            .collect::<PolarsResult<Vec<PartInfo>>>()?
    };
    Ok(DecodedEvents {
        patient,
        day,
        code,
        parts,
    })
}

impl EventPart<'_> {
    /// Rows of the part.
    pub(crate) fn len(&self) -> usize {
        self.code.len()
    }

    /// The event row rules, in order: a pseudonym (`None` when null, `Some(UNSET)` when unknown),
    /// a date within 1900..=today, a code system and a code. On success the row's patient and
    /// day are recorded at `k` and `true` is returned; the caller then sets its code id with
    /// [`EventPart::keep`]. Otherwise the reject is recorded. The system is parsed and the code
    /// normalised later, once per distinct pair ([`lay_out_events`]).
    #[inline]
    pub(crate) fn admit(
        &mut self,
        k: usize,
        patient: Option<u32>,
        day: Option<i32>,
        has_system: bool,
        has_code: bool,
        bounds: (i32, i32),
    ) -> bool {
        let row = (self.lo + k) as u64 + 1;
        // A kept row's code is written by `keep`; only a rejected row is marked here.
        let mut reject = |column: &'static str, reason: &'static str| {
            self.code[k] = UNSET;
            self.rejects.push(Reject {
                file: EVENTS_FILE,
                row,
                column,
                reason,
            });
            false
        };
        let (pi, d) = match check_patient_and_date(patient, day, "event_date", bounds) {
            Ok(x) => x,
            Err((column, reason)) => return reject(column, reason),
        };
        if !has_system {
            return reject("code_system", reason::NULL_SYSTEM);
        }
        if !has_code {
            return reject("code", reason::NULL_CODE);
        }
        self.patient[k] = pi;
        self.day[k] = d;
        true
    }

    /// Set the local code id of an admitted row.
    #[inline]
    pub(crate) fn keep(&mut self, k: usize, local_id: u32) {
        self.code[k] = local_id;
    }

    /// The local id of a raw (system, code) pair first seen at this row.
    pub(crate) fn add_local(&mut self, system: &str, code: &str) -> u32 {
        self.local.push((system.to_string(), code.to_string()));
        (self.local.len() - 1) as u32
    }
}

/// Lay out the decoded events: parse each distinct raw (system, code) pair once, intern the
/// codes in sorted order (so code ids do not depend on row order), reject rows whose system or
/// code is malformed, leave out the admitted rows `leave_out` marks (their count is returned
/// last), and group the kept rows by patient. Kept rows are compacted in place.
pub(crate) fn lay_out_events(
    decoded: DecodedEvents,
    patients: &Patients,
    leave_out: Option<&LeaveOut>,
) -> (Events, CodeDict, Vec<Reject>, u64) {
    let DecodedEvents {
        mut patient,
        mut day,
        mut code,
        parts,
    } = decoded;
    // Parse each distinct raw (system, code) pair once, then build the dictionary in sorted
    // order so code ids do not depend on row order.
    let mut raw: Vec<(&str, &str)> = parts
        .iter()
        .flat_map(|p| p.local.iter().map(|(s, c)| (s.as_str(), c.as_str())))
        .collect();
    raw.par_sort_unstable();
    raw.dedup();
    let parsed: Vec<Result<(CodeSystem, String), RejectReason>> = raw
        .par_iter()
        .map(|(s, c)| {
            let system = CodeSystem::parse(s).ok_or(("code_system", reason::UNKNOWN_SYSTEM))?;
            let code = normalise(system, c).map_err(|p| ("code", p.reason()))?;
            Ok((system, code))
        })
        .collect();
    let dict = CodeDict::from_pairs(
        parsed
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect(),
    );
    let global: FastMap<(&str, &str), Result<u32, RejectReason>> = raw
        .iter()
        .zip(&parsed)
        .map(|(k, r)| {
            let id = match r {
                Ok((system, code)) => dict.get(*system, code).ok_or(("code", "code not interned")),
                Err(e) => Err(*e),
            };
            (*k, id)
        })
        .collect();
    // Per part: local id -> global id.
    let maps: Vec<Vec<Result<u32, RejectReason>>> = parts
        .par_iter()
        .map(|part| {
            part.local
                .iter()
                .map(|(s, c)| global[&(s.as_str(), c.as_str())])
                .collect()
        })
        .collect();
    drop(global);
    drop(raw);
    // The codes whose rows may be left out, by global id, and the last day they may be.
    let (unread, through) = match leave_out {
        Some(l) => ((l.unread)(&dict), l.through),
        None => (Vec::new(), i32::MIN),
    };
    // Within each part, move its kept rows to the front of its slice (in place: a row only moves
    // down) with their global code ids, and note the rows whose code was refused and count those
    // left out.
    let compacted: Vec<(usize, Vec<Reject>, u64)> = {
        let mut tasks = Vec::with_capacity(parts.len());
        let (mut pr, mut dr, mut cr) = (&mut patient[..], &mut day[..], &mut code[..]);
        for part in &parts {
            let (p0, p1) = pr.split_at_mut(part.len);
            let (d0, d1) = dr.split_at_mut(part.len);
            let (c0, c1) = cr.split_at_mut(part.len);
            tasks.push((p0, d0, c0));
            (pr, dr, cr) = (p1, d1, c1);
        }
        tasks
            .into_par_iter()
            .zip(parts.par_iter().zip(&maps))
            .map(|((p, d, c), (part, map))| {
                // Local id -> global id, `UNSET` when refused, with `LEAVE` set when unread.
                let ids: Vec<u32> = map
                    .iter()
                    .map(|r| match r {
                        Ok(id) if unread.get(*id as usize) == Some(&true) => id | LEAVE,
                        Ok(id) => *id,
                        Err(_) => UNSET,
                    })
                    .collect();
                // Nothing rejected in the part, no code refused and none to leave out (the usual
                // case without a leave-out): every row stays where it is and only its code id
                // changes.
                if part.rejects.is_empty() && ids.iter().all(|&g| g != UNSET && g & LEAVE == 0) {
                    for x in c.iter_mut() {
                        debug_assert_ne!(*x, UNSET, "a row without a reject has a code");
                        *x = ids[*x as usize];
                    }
                    return (c.len(), Vec::new(), 0);
                }
                let mut refused = Vec::new();
                let (mut j, mut left) = (0, 0u64);
                for k in 0..c.len() {
                    let local = c[k];
                    if local == UNSET {
                        continue;
                    }
                    let g = ids[local as usize];
                    if g == UNSET {
                        if let Err((column, reason)) = map[local as usize] {
                            refused.push(Reject {
                                file: EVENTS_FILE,
                                row: (part.lo + k) as u64 + 1,
                                column,
                                reason,
                            });
                        }
                        continue;
                    }
                    // Written whether kept or not (the next kept row overwrites a row left out):
                    // no branch on the 1 row in 4 or 5 an extract's background codes take.
                    let leave = (g & LEAVE != 0) & (d[k] <= through);
                    p[j] = p[k];
                    d[j] = d[k];
                    c[j] = g & !LEAVE;
                    j += usize::from(!leave);
                    left += u64::from(leave);
                }
                (j, refused, left)
            })
            .collect()
    };
    // Then close the gaps between parts (nothing moves when nothing was rejected or left out),
    // the three columns side by side.
    let mut rejects = Vec::new();
    let mut moves = Vec::with_capacity(parts.len());
    let (mut kept, mut left) = (0, 0);
    for (part, (n, refused, l)) in parts.into_iter().zip(compacted) {
        left += l;
        if part.lo != kept {
            moves.push((part.lo..part.lo + n, kept));
        }
        kept += n;
        rejects.extend(part.rejects);
        rejects.extend(refused);
    }
    fn close<T: Copy>(v: &mut [T], moves: &[(std::ops::Range<usize>, usize)]) {
        for (from, to) in moves {
            v.copy_within(from.clone(), *to);
        }
    }
    rayon::join(
        || close(&mut patient, &moves),
        || rayon::join(|| close(&mut day, &moves), || close(&mut code, &moves)),
    );
    patient.truncate(kept);
    day.truncate(kept);
    code.truncate(kept);
    let (offsets, perm) = group_by_patient(patients.len(), &patient);
    drop(patient);
    let events = Events {
        offsets,
        code: apply(code, &perm),
        day: apply(day, &perm),
    };
    (events, dict, rejects, left)
}

/// One parallel part (an aligned chunk, typically a Parquet row group) of the encounters file,
/// being decoded: its rows' slices of the file-wide columns ([`decode_encounter_parts`]). Kept
/// rows are written from the start of the slices, so a part's rows close up as they are checked.
pub(crate) struct EncounterPart<'a> {
    /// Rows kept so far.
    kept: usize,
    patient: &'a mut [u32],
    setting: &'a mut [Setting],
    start: &'a mut [i32],
    end: &'a mut [i32],
    emergency: &'a mut [bool],
    file_row: &'a mut [u32],
    rejects: Vec<Reject>,
}

/// The decoded encounters file: one set of columns for the whole file (each part's kept rows at
/// the start of its own span), and each part's (first row, kept rows, rejects).
pub(crate) struct DecodedEncounters {
    patient: Vec<u32>,
    setting: Vec<Setting>,
    start: Vec<i32>,
    end: Vec<i32>,
    emergency: Vec<bool>,
    file_row: Vec<u32>,
    parts: Vec<(usize, usize, Vec<Reject>)>,
}

/// Decode the encounters file in parallel parts; see [`decode_event_parts`] for `spans`.
/// `decode(i, part)` pushes every row of part `i` through [`EncounterPart::push`].
pub(crate) fn decode_encounter_parts(
    spans: &[(usize, usize)],
    decode: impl Fn(usize, &mut EncounterPart) -> PolarsResult<()> + Sync,
) -> PolarsResult<DecodedEncounters> {
    let total = contiguous(spans)?;
    let mut d = DecodedEncounters {
        patient: vec![0; total],
        setting: vec![Setting::Inpatient; total],
        start: vec![0; total],
        end: vec![0; total],
        emergency: vec![false; total],
        file_row: vec![0; total],
        parts: Vec::new(),
    };
    let mut tasks = Vec::with_capacity(spans.len());
    let (mut p, mut s, mut st, mut en, mut em, mut fr) = (
        &mut d.patient[..],
        &mut d.setting[..],
        &mut d.start[..],
        &mut d.end[..],
        &mut d.emergency[..],
        &mut d.file_row[..],
    );
    for (i, &(_, len)) in spans.iter().enumerate() {
        let (p0, p1) = p.split_at_mut(len);
        let (s0, s1) = s.split_at_mut(len);
        let (st0, st1) = st.split_at_mut(len);
        let (en0, en1) = en.split_at_mut(len);
        let (em0, em1) = em.split_at_mut(len);
        let (fr0, fr1) = fr.split_at_mut(len);
        tasks.push((
            i,
            EncounterPart {
                kept: 0,
                patient: p0,
                setting: s0,
                start: st0,
                end: en0,
                emergency: em0,
                file_row: fr0,
                rejects: Vec::new(),
            },
        ));
        (p, s, st, en, em, fr) = (p1, s1, st1, en1, em1, fr1);
    }
    d.parts = tasks
        .into_par_iter()
        .map(|(i, mut part)| {
            decode(i, &mut part)?;
            Ok((spans[i].0, part.kept, part.rejects))
        })
        .collect::<PolarsResult<_>>()?;
    Ok(d)
}

/// The total rows of `spans`, checked to be contiguous from row 0.
fn contiguous(spans: &[(usize, usize)]) -> PolarsResult<usize> {
    let mut total = 0usize;
    for &(lo, len) in spans {
        if lo != total {
            return Err(PolarsError::ComputeError("parts are not contiguous".into()));
        }
        total += len;
    }
    Ok(total)
}

impl EncounterPart<'_> {
    /// Check one decoded row and keep or reject it. `patient` is `None` when the pseudonym is
    /// null and `Some(UNSET)` when it is unknown; `setting` is `None` when null or unknown.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn push(
        &mut self,
        row: u64,
        patient: Option<u32>,
        setting: Option<Setting>,
        start: Option<i32>,
        end: Option<i32>,
        emergency: Option<bool>,
        (earliest, today): (i32, i32),
    ) {
        let mut reject = |column: &'static str, reason: &'static str| {
            self.rejects.push(Reject {
                file: ENCOUNTERS_FILE,
                row,
                column,
                reason,
            })
        };
        let Some(pi) = patient else {
            return reject("patient_id", reason::NULL_PATIENT);
        };
        if pi == UNSET {
            return reject("patient_id", reason::UNKNOWN_PATIENT);
        }
        let Some(setting) = setting else {
            return reject("setting", reason::UNKNOWN_SETTING);
        };
        let Some(st) = start else {
            return reject("start_date", reason::NULL_DATE);
        };
        if st < earliest || st > today {
            return reject("start_date", reason::DATE_RANGE);
        }
        let en = end.unwrap_or(st);
        if en < st {
            return reject("end_date", reason::END_BEFORE_START);
        }
        if en > today {
            return reject("end_date", reason::DATE_RANGE);
        }
        // The flag means something for admissions only: a null on an A&E or outpatient row is
        // what SUS and HES write there, not an error.
        let em = match emergency {
            Some(em) => em,
            None if setting != Setting::Inpatient => false,
            None => return reject("emergency", reason::NULL_EMERGENCY),
        };
        let j = self.kept;
        self.patient[j] = pi;
        self.setting[j] = setting;
        self.start[j] = st;
        self.end[j] = en;
        self.emergency[j] = em;
        // `row` counts from 1 in messages; the file row is 0-based.
        self.file_row[j] = (row - 1) as u32;
        self.kept += 1;
    }
}

/// Lay out the decoded encounters: close the gaps rejected rows left between parts (nothing
/// moves when none were rejected) and group by patient.
pub(crate) fn lay_out_encounters(
    decoded: DecodedEncounters,
    patients: &Patients,
) -> (Encounters, Vec<Reject>) {
    let DecodedEncounters {
        mut patient,
        mut setting,
        mut start,
        mut end,
        mut emergency,
        mut file_row,
        parts,
    } = decoded;
    let mut rejects = Vec::new();
    let mut kept = 0;
    for (lo, n, part_rejects) in parts {
        if lo != kept {
            patient.copy_within(lo..lo + n, kept);
            setting.copy_within(lo..lo + n, kept);
            start.copy_within(lo..lo + n, kept);
            end.copy_within(lo..lo + n, kept);
            emergency.copy_within(lo..lo + n, kept);
            file_row.copy_within(lo..lo + n, kept);
        }
        kept += n;
        rejects.extend(part_rejects);
    }
    patient.truncate(kept);
    setting.truncate(kept);
    start.truncate(kept);
    end.truncate(kept);
    emergency.truncate(kept);
    file_row.truncate(kept);
    let (offsets, perm) = group_by_patient(patients.len(), &patient);
    drop(patient);
    let e = Encounters {
        offsets,
        setting: apply(setting, &perm),
        start: apply(start, &perm),
        end: apply(end, &perm),
        emergency: apply(emergency, &perm),
        row: apply(file_row, &perm),
    };
    (e, rejects)
}

/// Group decoded rows by patient with a counting sort, or, when the file was already in
/// patient order (the usual extract), from where each patient's run starts, with nothing moved.
/// Returns the offsets and the permutation to apply (`None`: rows are in order).
pub(crate) fn group_by_patient(n_patients: usize, patient: &[u32]) -> (Vec<u64>, Option<Vec<u32>>) {
    let sorted = patient.par_windows(2).all(|w| w[0] <= w[1]);
    if sorted {
        return (sorted_offsets(n_patients, patient), None);
    }
    let mut counts = vec![0u64; n_patients + 1];
    for &p in patient {
        counts[p as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let offsets = counts;
    let mut next = offsets.clone();
    let mut perm = vec![0u32; patient.len()];
    for (k, &p) in patient.iter().enumerate() {
        let slot = &mut next[p as usize];
        perm[*slot as usize] = k as u32;
        *slot += 1;
    }
    (offsets, Some(perm))
}

/// Offsets of rows already in patient order: each run's first row, found in parallel, then one
/// pass over the patients.
fn sorted_offsets(n_patients: usize, patient: &[u32]) -> Vec<u64> {
    const CHUNK: usize = 1 << 16;
    let starts: Vec<(u64, u32)> = patient
        .par_chunks(CHUNK)
        .enumerate()
        .flat_map_iter(|(c, rows)| {
            let base = c * CHUNK;
            let before = (base > 0).then(|| patient[base - 1]);
            rows.iter().enumerate().filter_map(move |(k, &p)| {
                let prev = if k == 0 { before } else { Some(rows[k - 1]) };
                (prev != Some(p)).then_some(((base + k) as u64, p))
            })
        })
        .collect();
    let mut offsets = vec![0u64; n_patients + 1];
    let mut next = 0usize;
    for (k, p) in starts {
        while next <= p as usize {
            offsets[next] = k;
            next += 1;
        }
    }
    offsets[next..].fill(patient.len() as u64);
    offsets
}

/// Apply a permutation from [`group_by_patient`] to a column.
pub(crate) fn apply<T: Copy + Send + Sync>(v: Vec<T>, perm: &Option<Vec<u32>>) -> Vec<T> {
    match perm {
        None => v,
        Some(perm) => perm.par_iter().map(|&k| v[k as usize]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of [`events_are_compacted_in_place_across_parts`], decoded in three parts and laid
    /// out under `leave_out`: the kept (day, code) rows in layout order, the offsets, the
    /// rejects' (row, column) and the count left out.
    #[allow(clippy::type_complexity)]
    fn laid_out(
        leave_out: Option<&LeaveOut>,
    ) -> (Vec<(i32, String)>, Vec<u64>, Vec<(u64, &'static str)>, u64) {
        let patients = Patients {
            id: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        // (patient, day, system, code); patient UNSET = rejected while decoding.
        let rows: [(u32, i32, &str, &str); 7] = [
            (1, 10, "snomed", "75367002"),
            (UNSET, 11, "snomed", "75367002"),
            (0, 12, "nonsense", "1"),
            (0, 13, "icd10", "F00.1"),
            (1, 14, "nonsense", "1"),
            (0, 15, "snomed", "271649006"),
            (1, 16, "snomed", "75367002"),
        ];
        let spans = [(0, 3), (3, 2), (5, 2)];
        let decoded = decode_event_parts(&spans, |i, part| {
            for k in 0..part.len() {
                let (p, d, s, c) = rows[spans[i].0 + k];
                let pi = if p == UNSET { None } else { Some(p) };
                if part.admit(k, pi, Some(d), true, true, (0, 100)) {
                    let id = part.add_local(s, c);
                    part.keep(k, id);
                }
            }
            Ok(())
        })
        .unwrap();
        let (events, dict, rejects, left) = lay_out_events(decoded, &patients, leave_out);
        let kept = events
            .code
            .iter()
            .zip(&events.day)
            .map(|(&c, &d)| (d, dict.entry(c).1.to_string()))
            .collect();
        let rejects = rejects.iter().map(|r| (r.row, r.column)).collect();
        (kept, events.offsets, rejects, left)
    }

    /// Rows rejected while decoding and rows whose code is refused at layout, in several parts:
    /// the kept rows close up in place, in file order, and the rejects come part by part.
    #[test]
    fn events_are_compacted_in_place_across_parts() {
        let (kept, offsets, rejects, left) = laid_out(None);
        // Patient 0's rows (days 13, 15), then patient 1's (10, 16).
        assert_eq!(offsets, vec![0, 2, 4]);
        assert_eq!(
            kept,
            vec![
                (13, "F001".to_string()),
                (15, "271649006".to_string()),
                (10, "75367002".to_string()),
                (16, "75367002".to_string()),
            ]
        );
        assert_eq!(
            rejects,
            vec![(2, "patient_id"), (3, "code_system"), (5, "code_system")]
        );
        assert_eq!(left, 0);
    }

    /// Rows of a code marked unread are left out only when admitted and dated on or before the
    /// last day: the same code's later row stays, a bad row with it is still rejected, and every
    /// other row and reject is as without the leave-out.
    #[test]
    fn unread_rows_are_left_out_through_the_last_day_only() {
        let leave = LeaveOut {
            through: 15,
            unread: std::sync::Arc::new(|dict: &CodeDict| {
                (0..dict.len() as u32)
                    .map(|c| dict.entry(c).1 == "75367002")
                    .collect()
            }),
        };
        let (kept, offsets, rejects, left) = laid_out(Some(&leave));
        assert_eq!(offsets, vec![0, 2, 3]);
        assert_eq!(
            kept,
            vec![
                (13, "F001".to_string()),
                (15, "271649006".to_string()),
                (16, "75367002".to_string()),
            ]
        );
        assert_eq!(rejects, laid_out(None).2);
        assert_eq!(left, 1);
    }

    /// The searched lookups give what the map gives, in order, out of order, with gaps, for
    /// unknown and space-padded pseudonyms, on sorted and unsorted patients.
    #[test]
    fn pseudonyms_found_by_search_equal_the_map() {
        let ids: Vec<String> = (0..5000).map(|k| format!("p{:06}", k * 3)).collect();
        let mut asked: Vec<String> = (0..15_100).map(|k| format!("p{:06}", k)).collect();
        asked.extend([
            " p000003".into(),
            "p000006 ".into(),
            "".into(),
            "zzz".into(),
        ]);
        let mut reversed = asked.clone();
        reversed.reverse();
        let mut unsorted = ids.clone();
        unsorted.swap(0, 4999);
        for ids in [ids, unsorted] {
            let patients = Patients {
                id: ids,
                ..Default::default()
            };
            let index = PatientIndex::new(&patients);
            let truth = |p: &str| {
                patients
                    .id
                    .iter()
                    .position(|x| x == p || x == p.trim())
                    .map_or(UNSET, |i| i as u32)
            };
            for order in [&asked, &reversed] {
                let mut hint = 0;
                for p in order.iter() {
                    assert_eq!(index.lookup_from(p, &mut hint), truth(p), "{p}");
                    assert_eq!(index.lookup(p), truth(p), "{p}");
                }
            }
        }
    }

    #[test]
    fn grouping_is_a_stable_counting_sort() {
        let (off, perm) = group_by_patient(3, &[2, 0, 2, 1, 0]);
        assert_eq!(off, vec![0, 2, 3, 5]);
        assert_eq!(perm.unwrap(), vec![1, 4, 3, 0, 2]);
        let (off, perm) = group_by_patient(3, &[0, 0, 2]);
        assert_eq!(off, vec![0, 2, 2, 3]);
        assert!(perm.is_none());
        // Sorted rows across chunk edges, patients with no rows at the start, between and at
        // the end: the same offsets as counting.
        let rows: Vec<u32> = (0..200_000u32).map(|k| 1 + (k / 7) * 2).collect();
        let n = 60_000;
        let mut counted = vec![0u64; n + 1];
        for &p in &rows {
            counted[p as usize + 1] += 1;
        }
        for i in 1..counted.len() {
            counted[i] += counted[i - 1];
        }
        let (off, perm) = group_by_patient(n, &rows);
        assert!(perm.is_none());
        assert_eq!(off, counted);
        assert_eq!(group_by_patient(2, &[]).0, vec![0, 0, 0]);
    }
}
