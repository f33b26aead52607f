//! Per-patient features at an as-of date: which deficits, diagnoses and medicines fall in which
//! window, and each patient's age and whether they are alive on that date. This is the only
//! module that looks at time.
//!
//! Pipeline position: `cohort` (grouped events) + `definitions::Lookup` -> **features** ->
//! `scores`; the ages and [`Vital`] states feed `population`. Each patient is computed from its own slice alone, so any partition of the cohort
//! by patient gives the same rows; rayon runs over patient ranges and writes into a pre-sized
//! vector, so output order never depends on the thread count.

use rayon::prelude::*;

use crate::cohort::{Cohort, Setting};
use crate::date;
use crate::definitions::{CodeInfo, DeficitRule, Definitions, Lookup};

/// The windows of one scoring run: each is the N calendar months ending on the as-of date, as
/// the inclusive day range from the day after the as-of date minus N months to the as-of date
/// (12 months: 365 days, 366 across 29 February), so windows of consecutive years tile without
/// overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// The as-of (index) date: nothing after it counts.
    pub as_of: i32,
    /// First day of the polypharmacy window.
    pub medicines_from: i32,
    /// First day of the HFRS window.
    pub hfrs_from: i32,
    /// First day of the Charlson window.
    pub charlson_from: i32,
}

impl Windows {
    /// Windows for `as_of` under the model files' look-backs (calendar months).
    pub fn new(models: &Definitions, as_of: i32) -> Windows {
        let poly_months = models
            .efi
            .deficits
            .iter()
            .find_map(|d| match d.rule {
                DeficitRule::Polypharmacy {
                    lookback_months, ..
                } => Some(lookback_months),
                DeficitRule::Codes => None,
            })
            .unwrap_or(12);
        Windows {
            as_of,
            medicines_from: date::window_start(as_of, poly_months),
            hfrs_from: date::window_start(as_of, models.hfrs.lookback_months),
            charlson_from: date::window_start(as_of, models.charlson.lookback_months),
        }
    }
}

/// What one patient's record shows at the as-of date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Bit d: coded eFI deficit d recorded on or before the as-of date.
    pub efi_coded: u64,
    /// Distinct dm+d codes in the polypharmacy window (capped at 255).
    pub medicines: u8,
    /// Bit c: HFRS category c coded in the HFRS window.
    pub hfrs: u128,
    /// Bit c: Charlson category c coded in the Charlson window.
    pub charlson: u32,
    /// Emergency admissions (spells, `cohort::Spells`) starting in the 12 months to the as-of
    /// date.
    pub emergency_admissions_12m: u16,
    /// A&E attendances in the 12 months to the as-of date.
    pub ae_attendances_12m: u16,
    /// Events and encounters dated after the as-of date, ignored (they are outcomes).
    pub ignored_after_as_of: u32,
    /// The latest day on or before the as-of date a fall was coded (the eFI falls deficit's
    /// codes); `i32::MIN` when never.
    pub falls_last: i32,
    /// A care home residence code (LONGRES_COD) recorded on or before the as-of date.
    pub care_home_coded: bool,
    /// A care home residence code recorded only after the as-of date (a later move); looked
    /// for only in patients the patients file flags, the only ones for whom it changes anything.
    pub care_home_later: bool,
}

/// Features and hospital activity of one patient from its event, encounter and spell slices.
pub fn patient_features(
    cohort: &Cohort,
    lookup: &Lookup,
    w: &Windows,
    p: usize,
) -> (Features, Activity) {
    let mut f = Features {
        falls_last: i32::MIN,
        ..Features::default()
    };
    let ev = &cohort.events;
    let (lo, hi) = (ev.offsets[p] as usize, ev.offsets[p + 1] as usize);
    let mut meds: [u32; 8] = [0; 8];
    let mut n_meds = 0usize;
    let mut more_meds: Vec<u32> = Vec::new();
    // With a medications table, medicines are counted from it alone (by VTM where given), never
    // added to dm+d events, which could name the same medicine by another product.
    let use_medications = cohort.medications.present;
    // Records after the as-of date are skipped unread, but for a flagged care home resident.
    let flagged = cohort.patients.care_home[p];
    for k in lo..hi {
        let day = ev.day[k];
        let code = ev.code[k];
        if day > w.as_of {
            f.ignored_after_as_of += 1;
            // A later residence code matters only against the patients file's flag.
            if flagged {
                f.care_home_later |= lookup.info[code as usize].flags & CodeInfo::CARE_HOME != 0;
            }
            continue;
        }
        let ci: &CodeInfo = &lookup.info[code as usize];
        f.efi_coded |= ci.efi;
        if ci.efi & lookup.falls != 0 {
            f.falls_last = f.falls_last.max(day);
        }
        if ci.flags == 0 {
            continue;
        }
        if ci.flags & CodeInfo::CARE_HOME != 0 {
            f.care_home_coded = true;
        }
        if ci.flags & CodeInfo::MEDICINE != 0
            && !use_medications
            && day >= w.medicines_from
            && !meds[..n_meds.min(8)].contains(&code)
            && !more_meds.contains(&code)
        {
            if n_meds < 8 {
                meds[n_meds] = code;
            } else {
                more_meds.push(code);
            }
            n_meds += 1;
        }
        if ci.flags & CodeInfo::HOSPITAL_DX != 0 {
            if ci.hfrs != 0 && day >= w.hfrs_from {
                f.hfrs |= 1u128 << (ci.hfrs - 1);
            }
            if day >= w.charlson_from {
                f.charlson |= ci.charlson;
            }
        }
    }
    if use_medications {
        n_meds = distinct_medicines(cohort, w, p);
    }
    f.medicines = n_meds.min(255) as u8;
    // The 12-month hospital activity shown on lists is the models' 12-month window: one walk
    // of the encounters and spells gives both.
    let (a, ignored) = hospital(cohort, w.as_of, p);
    f.ignored_after_as_of += ignored;
    f.ae_attendances_12m = a.counts[AE][TWELVE_MONTHS];
    f.emergency_admissions_12m = a.counts[EMERGENCY][TWELVE_MONTHS];
    (f, a)
}

/// Distinct medicines (VTM, else dm+d product) issued to patient `p` in the polypharmacy window,
/// from the medications table.
fn distinct_medicines(cohort: &Cohort, w: &Windows, p: usize) -> usize {
    let m = &cohort.medications;
    let (lo, hi) = (m.offsets[p] as usize, m.offsets[p + 1] as usize);
    let mut seen: Vec<u64> = (lo..hi)
        .filter(|&k| m.day[k] >= w.medicines_from && m.day[k] <= w.as_of)
        .map(|k| m.medicine[k])
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// Whether a patient is alive at the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vital {
    /// Born on or before the as-of date and not dead by it.
    Alive,
    /// Died on or before the as-of date.
    Deceased,
    /// Born after the as-of date (a back-test at a past date).
    NotYetBorn,
}

/// Age in whole years at `as_of` and vital state of every patient, in patient order.
pub fn ages_and_vitals(cohort: &Cohort, as_of: i32) -> (Vec<i32>, Vec<Vital>) {
    let p = &cohort.patients;
    let mut ages = Vec::with_capacity(p.len());
    let mut vitals = Vec::with_capacity(p.len());
    let on = date::civil(as_of);
    for i in 0..p.len() {
        ages.push(date::age_on(p.birth[i], on));
        vitals.push(if p.birth[i] > as_of {
            Vital::NotYetBorn
        } else if p.death[i] <= as_of {
            Vital::Deceased
        } else {
            Vital::Alive
        });
    }
    (ages, vitals)
}

/// Features and hospital activity of every patient, in patient order, computed in parallel.
pub fn all_features(
    cohort: &Cohort,
    lookup: &Lookup,
    w: &Windows,
) -> (Vec<Features>, Vec<Activity>) {
    (0..cohort.patients.len())
        .into_par_iter()
        .with_min_len(2048)
        .map(|p| patient_features(cohort, lookup, w, p))
        .unzip()
}

/// Look-backs of the hospital-activity features of the prediction models, in calendar months.
pub const ACTIVITY_MONTHS: [u32; 3] = [3, 12, 24];

/// What a patient's hospital records say for the prediction models (`predictors`) at an as-of date: the
/// activity counts of the [`ACTIVITY_MONTHS`] windows and the last emergency admission. Worked
/// out once per patient where the records are ([`patient_features`]), so that a stage without
/// them (the Spark job's PCN stage at national size) builds the same feature rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Per window: emergency admissions (spells), A&E attendances, outpatient attendances
    /// (encounter rows), each capped at 65,535.
    pub counts: [[u16; 3]; 3],
    /// Per window: nights in hospital (a day case is 0).
    pub bed_days: [u32; 3],
    /// Admission day of the latest emergency spell on or before the as-of date; `i32::MIN` when
    /// none.
    pub last_emergency: i32,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            counts: [[0; 3]; 3],
            bed_days: [0; 3],
            last_emergency: i32::MIN,
        }
    }
}

/// Index of the 12-month window in [`ACTIVITY_MONTHS`].
const TWELVE_MONTHS: usize = 1;
/// Rows of [`Activity::counts`].
const EMERGENCY: usize = 0;
const AE: usize = 1;
const OUTPATIENT: usize = 2;

/// Patient `p`'s [`Activity`] at `as_of`, and their encounters dated after it (ignored):
/// attendances are encounter rows; admissions and bed days are spells (HES continuous
/// inpatient spells, `cohort::Spells`).
fn hospital(cohort: &Cohort, as_of: i32, p: usize) -> (Activity, u32) {
    let froms = ACTIVITY_MONTHS.map(|m| date::window_start(as_of, m));
    let mut a = Activity::default();
    let mut ignored = 0u32;
    let en = &cohort.encounters;
    for e in en.offsets[p] as usize..en.offsets[p + 1] as usize {
        let st = en.start[e];
        if st > as_of {
            ignored += 1;
            continue;
        }
        let what = match en.setting[e] {
            Setting::Ae => AE,
            Setting::Outpatient => OUTPATIENT,
            Setting::Inpatient => continue,
        };
        for (w, &from) in froms.iter().enumerate() {
            if st >= from {
                a.counts[what][w] = a.counts[what][w].saturating_add(1);
            }
        }
    }
    let sp = &cohort.spells;
    for s in sp.of(p) {
        let (st, end) = (sp.start[s], sp.end[s].min(as_of));
        if st > as_of {
            continue;
        }
        if sp.emergency[s] {
            a.last_emergency = a.last_emergency.max(st);
        }
        for (w, &from) in froms.iter().enumerate() {
            if sp.emergency[s] && st >= from {
                a.counts[EMERGENCY][w] = a.counts[EMERGENCY][w].saturating_add(1);
            }
            // Nights in hospital within the window (a day case is 0).
            let nights = end - st.max(from);
            if nights > 0 {
                a.bed_days[w] = a.bed_days[w].saturating_add(nights as u32);
            }
        }
    }
    (a, ignored)
}
