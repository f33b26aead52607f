//! The shared layout every decoder pushes rows into: the patient index, the row rules (one copy
//! of each reject rule for events and for encounters), code interning, and grouping rows by
//! patient into a [`Cohort`](crate::cohort::Cohort)'s columns.
//!
//! Pipeline position: part of the first stage, `input`. Decoders (`events`, `encounters`) turn an
//! adaptor's columns into raw values; this module decides what is kept and lays it out.

use std::collections::HashMap;

use polars::prelude::{PolarsError, PolarsResult};
use rayon::prelude::*;

use super::contract::{reason, ENCOUNTERS_FILE, EVENTS_FILE};
use super::report::Reject;
use crate::codes::{normalise, CodeDict, CodeSystem};
use crate::cohort::{Encounters, Events, Medications, Patients, Setting};

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// No patient / no code: a row not (yet) kept.
pub(crate) const UNSET: u32 = u32::MAX;
/// (column, reason) of a rejected row.
type RejectReason = (&'static str, &'static str);

/// Map pseudonyms to patient indices; consecutive equal pseudonyms (the common sorted case)
/// skip the hash lookup.
pub(crate) struct PatientIndex<'a> {
    map: FastMap<&'a str, u32>,
}

impl<'a> PatientIndex<'a> {
    /// The patient index of a pseudonym (surrounding whitespace forgiven), or `UNSET`.
    pub(crate) fn lookup(&self, p: &str) -> u32 {
        self.map
            .get(p)
            .or_else(|| self.map.get(p.trim()))
            .copied()
            .unwrap_or(UNSET)
    }

    /// Index every patient by pseudonym.
    pub(crate) fn new(p: &'a Patients) -> Self {
        let mut map = FastMap::with_capacity_and_hasher(p.len(), Default::default());
        for (i, id) in p.id.iter().enumerate() {
            map.insert(id.as_str(), i as u32);
        }
        PatientIndex { map }
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
/// within the part; a row rejected while decoding has `code == UNSET`.
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
    let mut total = 0usize;
    for &(lo, len) in spans {
        if lo != total {
            return Err(PolarsError::ComputeError(
                "event parts are not contiguous".into(),
            ));
        }
        total += len;
    }
    let mut patient = vec![UNSET; total];
    let mut day = vec![0i32; total];
    let mut code = vec![UNSET; total];
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
        let mut reject = |column: &'static str, reason: &'static str| {
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
/// code is malformed, and group the kept rows by patient. Kept rows are compacted in place.
pub(crate) fn lay_out_events(
    decoded: DecodedEvents,
    patients: &Patients,
) -> (Events, CodeDict, Vec<Reject>) {
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
    // Within each part, move its kept rows to the front of its slice (in place: a row only moves
    // down) with their global code ids, and note the rows whose code was refused.
    let compacted: Vec<(usize, Vec<Reject>)> = {
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
                let mut refused = Vec::new();
                let mut j = 0;
                for k in 0..c.len() {
                    let local = c[k];
                    if local == UNSET {
                        continue;
                    }
                    match map[local as usize] {
                        Ok(id) => {
                            p[j] = p[k];
                            d[j] = d[k];
                            c[j] = id;
                            j += 1;
                        }
                        Err((column, reason)) => refused.push(Reject {
                            file: EVENTS_FILE,
                            row: (part.lo + k) as u64 + 1,
                            column,
                            reason,
                        }),
                    }
                }
                (j, refused)
            })
            .collect()
    };
    // Then close the gaps between parts (a no-op when nothing was rejected).
    let mut rejects = Vec::new();
    let mut kept = 0;
    for (part, (n, refused)) in parts.into_iter().zip(compacted) {
        if part.lo != kept {
            patient.copy_within(part.lo..part.lo + n, kept);
            day.copy_within(part.lo..part.lo + n, kept);
            code.copy_within(part.lo..part.lo + n, kept);
        }
        kept += n;
        rejects.extend(part.rejects);
        rejects.extend(refused);
    }
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
    (events, dict, rejects)
}

/// One decoded chunk of the encounters file: kept rows and rejects.
#[derive(Default)]
pub(crate) struct EncounterPart {
    pub(crate) patient: Vec<u32>,
    pub(crate) setting: Vec<Setting>,
    pub(crate) start: Vec<i32>,
    pub(crate) end: Vec<i32>,
    pub(crate) emergency: Vec<bool>,
    pub(crate) rejects: Vec<Reject>,
}

impl EncounterPart {
    /// Check one decoded row and keep or reject it. `patient` is `None` when the pseudonym is
    /// null and `Some(UNSET)` when it is unknown; `setting` is `None` when null or unknown.
    #[allow(clippy::too_many_arguments)]
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
        self.patient.push(pi);
        self.setting.push(setting);
        self.start.push(st);
        self.end.push(en);
        self.emergency.push(em);
    }
}

/// Lay out decoded encounter parts: concatenate them in file order and group by patient.
pub(crate) fn lay_out_encounters(
    parts: Vec<EncounterPart>,
    patients: &Patients,
) -> (Encounters, Vec<Reject>) {
    let total: usize = parts.iter().map(|p| p.patient.len()).sum();
    let mut patient = Vec::with_capacity(total);
    let mut e = Encounters {
        offsets: Vec::new(),
        setting: Vec::with_capacity(total),
        start: Vec::with_capacity(total),
        end: Vec::with_capacity(total),
        emergency: Vec::with_capacity(total),
    };
    let mut rejects = Vec::new();
    for part in parts {
        patient.extend_from_slice(&part.patient);
        e.setting.extend_from_slice(&part.setting);
        e.start.extend_from_slice(&part.start);
        e.end.extend_from_slice(&part.end);
        e.emergency.extend_from_slice(&part.emergency);
        rejects.extend(part.rejects);
    }
    let (offsets, perm) = group_by_patient(patients.len(), &patient);
    e.offsets = offsets;
    e.setting = apply(e.setting, &perm);
    e.start = apply(e.start, &perm);
    e.end = apply(e.end, &perm);
    e.emergency = apply(e.emergency, &perm);
    (e, rejects)
}

/// Lay out decoded medication parts: concatenate them in file order and group by patient.
pub(crate) fn lay_out_medications(
    parts: Vec<super::medications::MedicationPart>,
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

/// Group decoded rows by patient with a counting sort (or a straight copy when the file was
/// already in patient order). Returns the offsets and the permutation applied.
pub(crate) fn group_by_patient(n_patients: usize, patient: &[u32]) -> (Vec<u64>, Option<Vec<u32>>) {
    let mut counts = vec![0u64; n_patients + 1];
    for &p in patient {
        counts[p as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let offsets = counts;
    let sorted = patient.par_windows(2).all(|w| w[0] <= w[1]);
    if sorted {
        return (offsets, None);
    }
    let mut next = offsets.clone();
    let mut perm = vec![0u32; patient.len()];
    for (k, &p) in patient.iter().enumerate() {
        let slot = &mut next[p as usize];
        perm[*slot as usize] = k as u32;
        *slot += 1;
    }
    (offsets, Some(perm))
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

    /// Rows rejected while decoding and rows whose code is refused at layout, in several parts:
    /// the kept rows close up in place, in file order, and the rejects come part by part.
    #[test]
    fn events_are_compacted_in_place_across_parts() {
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
        let (events, dict, rejects) = lay_out_events(decoded, &patients);
        let kept: Vec<(i32, String)> = events
            .code
            .iter()
            .zip(&events.day)
            .map(|(&c, &d)| (d, dict.entry(c).1.to_string()))
            .collect();
        // Patient 0's rows (days 13, 15), then patient 1's (10, 16).
        assert_eq!(events.offsets, vec![0, 2, 4]);
        assert_eq!(
            kept,
            vec![
                (13, "F001".to_string()),
                (15, "271649006".to_string()),
                (10, "75367002".to_string()),
                (16, "75367002".to_string()),
            ]
        );
        let rows: Vec<(u64, &str)> = rejects.iter().map(|r| (r.row, r.column)).collect();
        assert_eq!(
            rows,
            vec![(2, "patient_id"), (3, "code_system"), (5, "code_system")]
        );
    }

    #[test]
    fn grouping_is_a_stable_counting_sort() {
        let (off, perm) = group_by_patient(3, &[2, 0, 2, 1, 0]);
        assert_eq!(off, vec![0, 2, 3, 5]);
        assert_eq!(perm.unwrap(), vec![1, 4, 3, 0, 2]);
        let (off, perm) = group_by_patient(3, &[0, 0, 2]);
        assert_eq!(off, vec![0, 2, 2, 3]);
        assert!(perm.is_none());
    }
}
