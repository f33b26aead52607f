//! The prediction models' view of a patient: one row of numeric features at an as-of date, from
//! what is known on or before it only, and the outcome labels from the 365 days after it.
//!
//! Pipeline position: `features` + `scores` (per-patient results of a run) and `cohort` ->
//! **predictors** -> `models` (training, evaluation, prediction) and `strata features` (the
//! exported table). Like `features`, every row is computed from the patient's own slice, in
//! parallel over patients, so the table never depends on the thread count. Records after the
//! as-of date are read only by [`outcomes`], never by [`predictor_rows`] (tested: a record after
//! the as-of date moves no feature).

use rayon::prelude::*;

use crate::cohort::Cohort;
use crate::definitions::Definitions;
use crate::population::Status;
use crate::results::Scored;
use crate::scores::Scorer;

pub use crate::features::ACTIVITY_MONTHS;

/// The outcomes strata predicts, each over the 365 days after the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Any emergency (non-elective) inpatient admission (the SPARRA / PARR outcome).
    EmergencyAdmission,
    /// An emergency admission due to a fall: injury primary diagnosis (S00-T98) and a fall
    /// (W00-W19) recorded on the admission (OHID PHOF C29, `cohort::Spells::falls_by`).
    FallsAdmission,
    /// Death from any cause.
    Death,
    /// An emergency admission or death, whichever comes first (SPARRA's outcome): a death
    /// without an admission is an event here, while the plain emergency admission outcome labels
    /// it "no admission".
    EmergencyAdmissionOrDeath,
}

/// Number of outcomes ([`Outcome::ALL`]).
pub const N_OUTCOMES: usize = 4;

impl Outcome {
    /// All of them, in column order.
    pub const ALL: [Outcome; N_OUTCOMES] = [
        Outcome::EmergencyAdmission,
        Outcome::FallsAdmission,
        Outcome::Death,
        Outcome::EmergencyAdmissionOrDeath,
    ];

    /// Name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::EmergencyAdmission => "emergency_admission",
            Outcome::FallsAdmission => "falls_admission",
            Outcome::Death => "death",
            Outcome::EmergencyAdmissionOrDeath => "emergency_admission_or_death",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == s.trim())
    }

    /// How it reads on a list ("emergency admission").
    pub fn words(self) -> &'static str {
        match self {
            Outcome::EmergencyAdmission => "emergency admission",
            Outcome::FallsAdmission => "falls admission",
            Outcome::Death => "death",
            Outcome::EmergencyAdmissionOrDeath => "emergency admission or death",
        }
    }
}

/// Days after the as-of date in which an outcome counts: `as_of + 1 ..= as_of + OUTCOME_DAYS`.
pub const OUTCOME_DAYS: i32 = 365;

/// The feature table's column names, in order (the order a model file records).
pub fn predictor_names(defs: &Definitions) -> Vec<String> {
    // Sex is one variable (1 female, 0 male, missing when unknown), so no reason reads "not
    // male". `imd_decile` is the extract's current value (a snapshot); `care_home` is a
    // residence code on or before the date, or, for a patient with no residence code at all,
    // the extract's current flag (a snapshot).
    let mut v: Vec<String> = ["age", "sex_female", "imd_decile", "care_home"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for d in &defs.efi.deficits {
        v.push(format!("efi_{}", d.slug.replace('-', "_")));
    }
    v.extend(["efi_score", "hfrs_score", "hfrs_intermediate", "hfrs_high"].map(String::from));
    for c in &defs.charlson.categories {
        v.push(format!("charlson_{}", c.key));
    }
    v.push("charlson_score".into());
    for what in [
        "emergency_admissions",
        "ae_attendances",
        "outpatient_attendances",
        "bed_days",
    ] {
        for m in ACTIVITY_MONTHS {
            v.push(format!("{what}_{m}m"));
        }
    }
    // Never admitted is said by its own feature: "days since" is missing then, and a missing
    // value stands for the training mean, which without this flag would treat never admitted
    // as an average past admission.
    v.push("days_since_emergency_admission".into());
    v.push("no_emergency_admission".into());
    v.push("medicines_12m".into());
    v
}

/// Builds one patient's row of features (in [`predictor_names`] order) at an as-of date; made
/// once per run, then used for every patient (in parallel) or only for those a list shows.
pub struct RowBuilder<'a> {
    cohort: &'a Cohort,
    scored: &'a Scored,
    scorer: Scorer<'a>,
    defs: &'a Definitions,
    as_of: i32,
    width: usize,
}

impl<'a> RowBuilder<'a> {
    /// A builder for `cohort` at `as_of`, from the run's per-patient results.
    pub fn new(cohort: &'a Cohort, defs: &'a Definitions, scored: &'a Scored, as_of: i32) -> Self {
        RowBuilder {
            cohort,
            scored,
            scorer: Scorer::new(defs),
            defs,
            as_of,
            width: predictor_names(defs).len(),
        }
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Write patient `p`'s features into `row` (`width()` long); `NaN` where unknown (sex not
    /// stated, IMD decile not recorded, days since an emergency admission when there was none:
    /// `no_emergency_admission` says so).
    pub fn fill(&self, p: usize, row: &mut [f32]) {
        let (defs, cohort, as_of) = (self.defs, self.cohort, self.as_of);
        let n_def = defs.efi.deficits.len();
        let n_ch = defs.charlson.categories.len();
        let hfrs = &defs.hfrs;
        let pa = &cohort.patients;
        let (f, s) = (&self.scored.features[p], &self.scored.scores[p]);
        let mut k = 0;
        let mut put = |v: f32| {
            row[k] = v;
            k += 1;
        };
        put(self.scored.ages[p] as f32);
        put(match pa.sex[p] {
            crate::cohort::Sex::F => 1.0,
            crate::cohort::Sex::M => 0.0,
            crate::cohort::Sex::U => f32::NAN,
        });
        put(match pa.imd_decile[p] {
            0 => f32::NAN,
            d => d as f32,
        });
        // Care home residence from the patient's dated residence codes (no later move leaking
        // into a past date); the patients file's current flag only for a patient with none.
        let care_home = f.care_home_coded || (!f.care_home_later && pa.care_home[p]);
        put(care_home as u8 as f32);
        let mask = self.scorer.efi_mask(f);
        for d in 0..n_def {
            put(((mask >> d) & 1) as f32);
        }
        put(s.efi_deficits as f32 / n_def.max(1) as f32);
        put(s.hfrs_tenths as f32 / 10.0);
        put((s.hfrs_tenths >= hfrs.intermediate_from_tenths
            && s.hfrs_tenths <= hfrs.high_above_tenths) as u8 as f32);
        put((s.hfrs_tenths > hfrs.high_above_tenths) as u8 as f32);
        for c in 0..n_ch {
            put(((f.charlson >> c) & 1) as f32);
        }
        put(s.charlson as f32);
        let a = &self.scored.activity[p];
        for (what, c) in a.counts.iter().enumerate() {
            for &v in c {
                put(v as f32);
            }
            if what == 2 {
                for &v in &a.bed_days {
                    put(v as f32);
                }
            }
        }
        let last_emergency = (a.last_emergency != i32::MIN).then_some(a.last_emergency);
        put(last_emergency.map_or(f32::NAN, |d| (as_of - d) as f32));
        put(last_emergency.is_none() as u8 as f32);
        put(f.medicines as f32);
        debug_assert_eq!(k, self.width);
    }
}

/// One row of features per patient (in patient order), row-major, `NaN` where unknown (IMD decile
/// not recorded, no emergency admission ever).
pub fn predictor_rows(
    cohort: &Cohort,
    defs: &Definitions,
    scored: &Scored,
    as_of: i32,
) -> Vec<f32> {
    let b = RowBuilder::new(cohort, defs, scored, as_of);
    let width = b.width();
    let mut out = vec![0f32; cohort.patients.len() * width];
    out.par_chunks_mut(width)
        .with_min_len(1024)
        .enumerate()
        .for_each(|(p, row)| b.fill(p, row));
    out
}

/// The outcome labels of every patient (in patient order, columns in [`Outcome::ALL`] order):
/// what happened in the 365 days after `as_of`. A death without an admission is no emergency
/// admission (and an event of the composite outcome).
pub fn outcomes(cohort: &Cohort, as_of: i32) -> Vec<[bool; N_OUTCOMES]> {
    let end = as_of + OUTCOME_DAYS;
    let sp = &cohort.spells;
    (0..cohort.patients.len())
        .into_par_iter()
        .with_min_len(2048)
        .map(|p| {
            // An emergency spell admitted in the outcome window (one that began before it, a
            // stay across the as-of date, is not an admission in it).
            let mut admission = false;
            let mut falls_admission = false;
            for s in sp.of(p) {
                if sp.emergency[s] && sp.start[s] > as_of && sp.start[s] <= end {
                    admission = true;
                    falls_admission |= sp.falls_by(s, end);
                }
            }
            let d = cohort.patients.death[p];
            let died = d > as_of && d <= end;
            [admission, falls_admission, died, admission || died]
        })
        .collect()
}

/// The exported feature table of one as-of date: who is in it (everyone alive at the as-of
/// date), the features in [`predictor_names`] order, and the outcomes when asked.
#[derive(Debug, Clone)]
pub struct PredictorTable {
    /// Column names, in order.
    pub names: Vec<String>,
    /// Patient indices of the rows (alive and born at the as-of date), ascending.
    pub patients: Vec<u32>,
    /// Row-major features, `patients.len() * names.len()`.
    pub rows: Vec<f32>,
    /// The outcomes per row, when asked for.
    pub outcomes: Option<Vec<[bool; N_OUTCOMES]>>,
    /// With outcomes: people alive at the as-of date left out because they were not registered
    /// for the whole outcome year (`registration_start` / `registration_end`; a death ends
    /// registration and leaves nobody out).
    pub not_registered: usize,
}

/// Build the table for `cohort` at `as_of` from a run's per-patient results.
pub fn predictor_table(
    cohort: &Cohort,
    defs: &Definitions,
    scored: &Scored,
    as_of: i32,
    with_outcomes: bool,
) -> PredictorTable {
    let names = predictor_names(defs);
    let width = names.len();
    let all = predictor_rows(cohort, defs, scored, as_of);
    // Alive and born at the as-of date, whatever their age (the lists' minimum age is not the
    // models' population).
    let alive: Vec<u32> = (0..cohort.patients.len() as u32)
        .filter(|&p| {
            !matches!(
                scored.status[p as usize],
                Status::Deceased | Status::NotYetBorn
            )
        })
        .collect();
    // With outcomes (training, evaluation), only people registered for the whole outcome year:
    // someone who left (or joined) during it has outcomes strata cannot see.
    let patients: Vec<u32> = if with_outcomes {
        let pa = &cohort.patients;
        alive
            .iter()
            .copied()
            .filter(|&p| pa.registered_throughout(p as usize, as_of, as_of + OUTCOME_DAYS))
            .collect()
    } else {
        alive.clone()
    };
    let not_registered = alive.len() - patients.len();
    let mut rows = Vec::with_capacity(patients.len() * width);
    for &p in &patients {
        rows.extend_from_slice(&all[p as usize * width..(p as usize + 1) * width]);
    }
    let outcomes = with_outcomes.then(|| {
        let o = outcomes(cohort, as_of);
        patients.iter().map(|&p| o[p as usize]).collect()
    });
    PredictorTable {
        names,
        patients,
        rows,
        outcomes,
        not_registered,
    }
}
