//! What a patient's records say, carried from the stage that reads the records to the stage that
//! ranks the patient's PCN, when a run is split in two: the Spark job at national size, where
//! the records meet their patients in buckets of the pseudonym's hash (one shuffle) and only
//! one small record per patient then moves to its PCN's task.
//!
//! Pipeline position: `features` (the record-derived results of a patient) -> **carried** ->
//! `partition` (the records stage writes it, the PCN stage reads it back). Every per-patient
//! result of the run that reads the records is here: the features, the hospital activity of the
//! prediction models and the palliative care register; the rest of the run reads the patients'
//! own columns, so the PCN stage gives the same rows as a run that read the records itself. What
//! the records say of the run as a whole (the indicators' counts, rejected rows, warnings,
//! spells, prescriptions) the records stage hands up itself (`partition::RecordsPart`).
//!
//! A record is [`RECORD_BYTES`] bytes, little-endian, led by a version byte: a record written
//! by another strata version is refused, never read wrongly.

use crate::features::{Activity, Features};

/// The layout's version: the first byte of every record.
pub const VERSION: u8 = 1;

/// Bytes per patient.
pub const RECORD_BYTES: usize = 1 + FEATURE_BYTES + ACTIVITY_BYTES + 1;
const FEATURE_BYTES: usize = 8 + 1 + 16 + 4 + 2 + 2 + 4 + 4 + 1 + 1;
const ACTIVITY_BYTES: usize = 9 * 2 + 3 * 4 + 4;

/// A carried record that cannot be read, or patients and records that do not match.
#[derive(Debug, thiserror::Error)]
pub enum CarriedError {
    /// A record of another length or version.
    #[error(
        "the carried record of patient row {row} is {len} bytes of layout version {version}, \
         not {RECORD_BYTES} of version {VERSION}: the records stage ran another strata version"
    )]
    Record {
        /// 1-based row among the records handed in.
        row: usize,
        /// Its length.
        len: usize,
        /// Its first byte (0 when empty).
        version: u8,
    },
    /// Patients and records do not match one to one.
    #[error("{patients} patients and {records} carried records, {matched} of them matched by pseudonym: every patient of the part needs exactly one")]
    Mismatch {
        /// Patients of the part.
        patients: usize,
        /// Records handed in.
        records: usize,
        /// Patients with a record.
        matched: usize,
    },
}

/// The record-derived results of a part's patients, in patient order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Carried {
    /// Features.
    pub features: Vec<Features>,
    /// Hospital activity of the prediction models.
    pub activity: Vec<Activity>,
    /// On the palliative care register; empty when no programme asks for it.
    pub register: Vec<bool>,
}

impl Carried {
    /// Patient `p`'s record, appended to `out`.
    pub fn encode(&self, p: usize, out: &mut Vec<u8>) {
        let f = &self.features[p];
        out.push(VERSION);
        out.extend_from_slice(&f.efi_coded.to_le_bytes());
        out.push(f.medicines);
        out.extend_from_slice(&f.hfrs.to_le_bytes());
        out.extend_from_slice(&f.charlson.to_le_bytes());
        out.extend_from_slice(&f.emergency_admissions_12m.to_le_bytes());
        out.extend_from_slice(&f.ae_attendances_12m.to_le_bytes());
        out.extend_from_slice(&f.ignored_after_as_of.to_le_bytes());
        out.extend_from_slice(&f.falls_last.to_le_bytes());
        out.push(f.care_home_coded as u8);
        out.push(f.care_home_later as u8);
        let a = &self.activity[p];
        for c in a.counts.iter().flatten() {
            out.extend_from_slice(&c.to_le_bytes());
        }
        for b in a.bed_days {
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.extend_from_slice(&a.last_emergency.to_le_bytes());
        // 2: the register was not asked for.
        out.push(self.register.get(p).map_or(2, |&r| r as u8));
    }

    /// Read one record (`row`, 1-based, for the message).
    fn decode(row: usize, b: &[u8]) -> Result<(Features, Activity, u8), CarriedError> {
        if b.len() != RECORD_BYTES || b[0] != VERSION {
            return Err(CarriedError::Record {
                row,
                len: b.len(),
                version: b.first().copied().unwrap_or(0),
            });
        }
        let mut at = 1;
        let mut take = |n: usize| {
            let s = &b[at..at + n];
            at += n;
            s
        };
        fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            a
        }
        let f = Features {
            efi_coded: u64::from_le_bytes(arr(take(8))),
            medicines: take(1)[0],
            hfrs: u128::from_le_bytes(arr(take(16))),
            charlson: u32::from_le_bytes(arr(take(4))),
            emergency_admissions_12m: u16::from_le_bytes(arr(take(2))),
            ae_attendances_12m: u16::from_le_bytes(arr(take(2))),
            ignored_after_as_of: u32::from_le_bytes(arr(take(4))),
            falls_last: i32::from_le_bytes(arr(take(4))),
            care_home_coded: take(1)[0] != 0,
            care_home_later: take(1)[0] != 0,
        };
        let mut a = Activity::default();
        for c in a.counts.iter_mut().flatten() {
            *c = u16::from_le_bytes(arr(take(2)));
        }
        for d in a.bed_days.iter_mut() {
            *d = u32::from_le_bytes(arr(take(4)));
        }
        a.last_emergency = i32::from_le_bytes(arr(take(4)));
        let register = take(1)[0];
        Ok((f, a, register))
    }

    /// The records of `ids` (a part's pseudonyms, in patient order: ascending) from records
    /// handed in as (pseudonym, record) in any order: each patient needs exactly one.
    pub fn gather(ids: &[String], records: &[(&str, &[u8])]) -> Result<Carried, CarriedError> {
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_unstable_by(|&a, &b| records[a].0.cmp(records[b].0));
        let mismatch = || CarriedError::Mismatch {
            patients: ids.len(),
            records: records.len(),
            matched: ids
                .iter()
                .filter(|id| {
                    order
                        .binary_search_by(|&k| records[k].0.cmp(id.as_str()))
                        .is_ok()
                })
                .count(),
        };
        if records.len() != ids.len() {
            return Err(mismatch());
        }
        let mut c = Carried {
            features: Vec::with_capacity(ids.len()),
            activity: Vec::with_capacity(ids.len()),
            register: Vec::with_capacity(ids.len()),
        };
        let mut asked = true;
        for (id, &k) in ids.iter().zip(&order) {
            let (rid, bytes) = records[k];
            if rid != id {
                return Err(mismatch());
            }
            let (f, a, r) = Carried::decode(k + 1, bytes)?;
            c.features.push(f);
            c.activity.push(a);
            asked &= r != 2;
            c.register.push(r == 1);
        }
        if !asked {
            c.register.clear();
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Carried {
        let f = Features {
            efi_coded: 0x8000_0000_0000_0001,
            medicines: 11,
            hfrs: 1u128 << 100 | 5,
            charlson: 0b1011,
            emergency_admissions_12m: 3,
            ae_attendances_12m: 65535,
            ignored_after_as_of: 70_000,
            falls_last: -4,
            care_home_coded: true,
            care_home_later: false,
        };
        let a = Activity {
            counts: [[1, 2, 3], [4, 5, 6], [7, 8, 65535]],
            bed_days: [0, 400, 100_000],
            last_emergency: 19_000,
        };
        Carried {
            features: vec![f, Features::default()],
            activity: vec![a, Activity::default()],
            register: vec![false, true],
        }
    }

    #[test]
    fn records_read_back_as_written_in_any_order() {
        let c = sample();
        let (mut r0, mut r1) = (Vec::new(), Vec::new());
        c.encode(0, &mut r0);
        c.encode(1, &mut r1);
        assert_eq!(r0.len(), RECORD_BYTES);
        let ids = ["A".to_string(), "B".to_string()];
        let back = Carried::gather(&ids, &[("B", &r1), ("A", &r0)]).expect("gathered");
        assert_eq!(back, c);
        // Without the register: it stays empty.
        let none = Carried {
            register: Vec::new(),
            ..c.clone()
        };
        let (mut n0, mut n1) = (Vec::new(), Vec::new());
        none.encode(0, &mut n0);
        none.encode(1, &mut n1);
        let back = Carried::gather(&ids, &[("A", &n0), ("B", &n1)]).expect("gathered");
        assert_eq!(back, none);
    }

    #[test]
    fn mismatches_and_other_layouts_are_refused() {
        let c = sample();
        let mut r0 = Vec::new();
        c.encode(0, &mut r0);
        let ids = ["A".to_string(), "B".to_string()];
        let e = Carried::gather(&ids, &[("A", &r0)]).unwrap_err();
        assert!(
            matches!(e, CarriedError::Mismatch { matched: 1, .. }),
            "{e}"
        );
        let e = Carried::gather(&ids, &[("A", &r0), ("C", &r0)]).unwrap_err();
        assert!(
            matches!(e, CarriedError::Mismatch { matched: 1, .. }),
            "{e}"
        );
        let mut old = r0.clone();
        old[0] = 0;
        let e = Carried::gather(&ids[..1], &[("A", &old)]).unwrap_err();
        assert!(e.to_string().contains("version 0"), "{e}");
        let e = Carried::gather(&ids[..1], &[("A", &r0[..20])]).unwrap_err();
        assert!(e.to_string().contains("20 bytes"), "{e}");
    }
}
