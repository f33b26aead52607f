//! The central data structure: a cohort laid out for scoring.
//!
//! Pipeline position: produced by `input` (from Parquet files or Arrow data in memory), read by
//! every later stage (`features`, `population`, `lists`, `output`). Columnar, one offsets array
//! per table over parallel columns, grouped by patient. There are no strings in the per-event
//! data: patients are indices, codes are `u32` ids into [`CodeDict`], dates are days since 1970.

use std::path::PathBuf;

use crate::codes::CodeDict;
use crate::report::{Reject, SpellReport, ValidationReport};

/// Sex as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
    /// Unknown or not stated.
    U,
}

impl Sex {
    /// One-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Sex::F => "F",
            Sex::M => "M",
            Sex::U => "U",
        }
    }
}

/// Hospital setting of an encounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setting {
    /// Admitted patient care.
    Inpatient,
    /// Accident and emergency attendance.
    Ae,
    /// Outpatient appointment.
    Outpatient,
}

impl Setting {
    /// Parse a `setting` value (case-insensitive; `a&e`, `a_and_e`, `ed` accepted for `ae`).
    pub fn parse(raw: &str) -> Option<Setting> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "inpatient" | "ip" | "apc" => Some(Setting::Inpatient),
            "ae" | "a&e" | "a_and_e" | "ed" | "ecds" => Some(Setting::Ae),
            "outpatient" | "op" => Some(Setting::Outpatient),
            _ => None,
        }
    }

    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Inpatient => "inpatient",
            Setting::Ae => "ae",
            Setting::Outpatient => "outpatient",
        }
    }
}

/// Registered patients, one row each, sorted by pseudonym (so every output order that ends in
/// "then by patient" is the index order).
#[derive(Debug, Clone, Default)]
pub struct Patients {
    /// Pseudonyms, ascending, unique.
    pub id: Vec<String>,
    /// Date of birth (days).
    pub birth: Vec<i32>,
    /// Sex.
    pub sex: Vec<Sex>,
    /// Index into `practices`.
    pub practice: Vec<u32>,
    /// Distinct practice codes, sorted.
    pub practices: Vec<String>,
    /// Index into `pcns`.
    pub pcn: Vec<u32>,
    /// Distinct PCN codes, sorted.
    pub pcns: Vec<String>,
    /// IMD decile 1 (most deprived) to 10; 0 when not recorded.
    pub imd_decile: Vec<u8>,
    /// Index into `ethnicities`.
    pub ethnicity: Vec<u32>,
    /// Distinct ethnicity groups, sorted ("Unknown" when not recorded).
    pub ethnicities: Vec<String>,
    /// Lives in a care home (false when not recorded).
    pub care_home: Vec<bool>,
    /// Date of death (days), `i32::MAX` when alive.
    pub death: Vec<i32>,
    /// First day registered with the practice (`registration_start`; `i32::MIN` when not
    /// given).
    pub registered_from: Vec<i32>,
    /// Last day registered (`registration_end`; `i32::MAX` when not given or still registered).
    pub registered_to: Vec<i32>,
}

impl Patients {
    /// Whether patient `p` was registered on every day from `from` to `to` (a death ends
    /// registration: registered until death counts as registered to `to`). Training and
    /// evaluation leave out people who were not, since their records or outcomes are missing.
    pub fn registered_throughout(&self, p: usize, from: i32, to: i32) -> bool {
        self.registered_from[p] <= from && self.registered_to[p] >= to.min(self.death[p])
    }
}

impl Patients {
    /// Number of patients.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// Where `key` is in `sorted[from..]` (pseudonyms in ascending order, as [`Patients::id`] and a
/// previous run's listed people are held): `Ok(index)`, or `Err(index)` where it would be, both
/// counted from the start of `sorted`. Steps double from `from` before halving, so a sequence of
/// ascending searches, each from where the last ended, costs about the logarithm of each gap
/// rather than of the whole slice.
pub fn search_from(sorted: &[String], key: &str, from: usize) -> Result<usize, usize> {
    let from = from.min(sorted.len());
    let rest = &sorted[from..];
    let mut hi = 1;
    while hi < rest.len() && rest[hi - 1].as_str() < key {
        hi *= 2;
    }
    match rest[..hi.min(rest.len())].binary_search_by(|x| x.as_str().cmp(key)) {
        Ok(i) => Ok(from + i),
        Err(i) => Err(from + i),
    }
}

/// Coded events grouped by patient: patient `p`'s events are `offsets[p]..offsets[p + 1]`.
/// Order within a patient is not significant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    /// `patients.len() + 1` offsets.
    pub offsets: Vec<u64>,
    /// Code id into [`CodeDict`].
    pub code: Vec<u32>,
    /// Event date (days).
    pub day: Vec<i32>,
}

/// Hospital encounters grouped by patient, like [`Events`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encounters {
    /// `patients.len() + 1` offsets.
    pub offsets: Vec<u64>,
    /// Setting.
    pub setting: Vec<Setting>,
    /// Start date (days).
    pub start: Vec<i32>,
    /// End date (days); equals `start` when not recorded.
    pub end: Vec<i32>,
    /// Emergency (non-elective) admission or attendance, as the extract's `emergency` flag says
    /// (an `admission_method`, where given, decides instead: see [`crate::spells`]).
    pub emergency: Vec<bool>,
    /// The row of `encounters.parquet` (0-based, counting rejected rows) each encounter came from:
    /// how the optional columns and the events' `encounter_id` links find it.
    pub row: Vec<u32>,
}

/// Hospital spells (admissions as HES counts them), grouped by patient like [`Events`]: built
/// once from the inpatient encounters by `input::spells`, read by every admission count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spells {
    /// `patients.len() + 1` offsets.
    pub offsets: Vec<u64>,
    /// Admission day (the first encounter's start).
    pub start: Vec<i32>,
    /// Discharge day (the latest end of its encounters).
    pub end: Vec<i32>,
    /// An emergency admission (its first encounter was).
    pub emergency: Vec<bool>,
    /// Encounters joined into it.
    pub episodes: Vec<u16>,
    /// The day from which it is a falls admission (OHID C29: both the injury primary diagnosis
    /// and the W00-W19 cause recorded by then); `i32::MAX` when it is not one.
    pub falls_from: Vec<i32>,
    /// What building them found, for the manifest.
    pub report: SpellReport,
}

impl Spells {
    /// Patient `p`'s spells, as indices.
    pub fn of(&self, p: usize) -> std::ops::Range<usize> {
        self.offsets[p] as usize..self.offsets[p + 1] as usize
    }

    /// Whether spell `s` is an emergency admission due to a fall on the records of `as_of`
    /// (nothing recorded after it counts).
    pub fn falls_by(&self, s: usize, as_of: i32) -> bool {
        self.emergency[s] && self.falls_from[s] <= as_of
    }
}

/// Prescriptions issued, grouped by patient like [`Events`], from `medications.parquet`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Medications {
    /// Whether the cohort has a medications file (else polypharmacy uses `dmd` events).
    pub present: bool,
    /// `patients.len() + 1` offsets (empty when not present).
    pub offsets: Vec<u64>,
    /// Issue date (days).
    pub day: Vec<i32>,
    /// What counts as one medicine: the VTM id when given (tagged `1 << 63`), else the dm+d id.
    pub medicine: Vec<u64>,
    /// Rows left out as devices (BNF chapters 20-23).
    pub devices: u64,
}

impl Medications {
    /// Tag on [`Medications::medicine`] keys that are VTM ids, so a VTM id and a dm+d id that
    /// happen to be the same number stay apart.
    pub const VTM: u64 = 1 << 63;
}

/// A cohort read, checked and laid out for scoring.
#[derive(Debug, Clone, Default)]
pub struct Cohort {
    /// The folder read.
    pub dir: PathBuf,
    /// Patients.
    pub patients: Patients,
    /// Events by patient.
    pub events: Events,
    /// Encounters by patient.
    pub encounters: Encounters,
    /// Prescriptions by patient, from `medications.parquet` when the cohort has one.
    pub medications: Medications,
    /// Interned codes.
    pub codes: CodeDict,
    /// What was checked and found.
    pub report: ValidationReport,
    /// Rows rejected, in file and row order.
    pub rejects: Vec<Reject>,
    /// How each large file was decoded: (file, "dictionary" or "general").
    pub read_paths: Vec<(String, String)>,
    /// Hospital spells built from the inpatient encounters ([`crate::spells`]): what every
    /// admission count reads.
    pub spells: Spells,
    /// What made the cohort when its patients file carries `strata synth`'s mark
    /// ([`crate::provenance::SYNTHETIC_KEY`]); `None` for real (local) data.
    pub synthetic: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searching_from_a_point_finds_what_a_binary_search_finds() {
        // Pseudonyms 0002..2000 in steps of 2; queries 0000.. ascending, present and absent,
        // with gaps of every size, before the first and after the last, each searched from where
        // the last search ended.
        let ids: Vec<String> = (1..=1000).map(|i| format!("{:04}", 2 * i)).collect();
        for step in [1, 2, 3, 7, 64, 999, 2500] {
            let mut from = 0;
            let mut q = 0;
            while q <= 2001 {
                let id = format!("{q:04}");
                let got = search_from(&ids, &id, from);
                assert_eq!(got, ids.binary_search(&id), "{id} step {step}");
                from = got.unwrap_or_else(|i| i);
                q += step;
            }
        }
        // From past the end, and in an empty slice.
        assert_eq!(search_from(&ids, "9999", 5000), Err(1000));
        assert_eq!(search_from(&[], "x", 0), Err(0));
    }
}
