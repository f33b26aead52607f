//! Synthetic ICS cohorts in the cohort contract, for demos, tests and benchmarks.
//!
//! Pipeline position: beside the pipeline, writing what `cohort` reads. It uses the same code
//! lists as the scores (from `models/`), so it emits real eFI, HFRS and Charlson codes.
//!
//! The population: an English age-sex pyramid; PCNs that differ in deprivation (urban deprived to
//! rural affluent) and ethnic mix; a latent frailty per person that rises with age and
//! deprivation and drives coded deficits, medicines, GP contacts, A&E attendances, emergency
//! admissions (with falls), hospital diagnoses and deaths. Targets (checked by
//! `tests/synth.rs`): eFI among people aged 65+ near fit 50% / mild 35% / moderate 12% /
//! severe 3% (Clegg 2016); emergency admissions of people aged 65+ near 271 per 1,000 a year
//! and falls admissions near 2,100 per 100,000 a year (Staffordshire and Stoke-on-Trent,
//! 2021-23); deaths near 1% a year.
//!
//! Determinism: every patient draws from its own random stream seeded by (seed, patient), and
//! patients are generated in parallel into pre-ordered chunks, so the files are byte-identical
//! for a seed whatever the thread count.
//!
//! Memory: bounded whatever the number of patients (see [`generate`]): rows are written a Parquet
//! row group at a time, cut where polars cuts the whole table ([`row_group_plan`]), so the files
//! are the bytes writing each table at once gives.
//!
//! Medicine codes are synthetic identifiers (`99…`), not real dm+d codes: polypharmacy only
//! counts distinct medicine codes, so their meaning does not matter here.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use crate::codes::CodeSystem;
use crate::date;
use crate::definitions::{DeficitRule, Definitions};
use crate::input::contract::{ENCOUNTERS_FILE, EVENTS_FILE, PATIENTS_FILE};
use crate::publish::{self, OutputError};

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Bad settings.
    #[error("{0}")]
    Settings(String),
    /// Writing failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The writing pass did not produce the rows the counting pass planned (a bug).
    #[error("internal error: {0}")]
    Internal(String),
    /// Polars could not build or encode a table.
    #[error("cannot build {what}: {source}")]
    Encode {
        /// Which table.
        what: &'static str,
        /// Cause.
        source: PolarsError,
    },
}

/// Settings of a synthetic cohort.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of patients (default: one ICS, 1.2 million).
    pub patients: usize,
    /// Random seed: same seed, same files.
    pub seed: u64,
    /// The default as-of date the cohort is built around (days).
    pub as_of: i32,
    /// Years of history before `as_of`.
    pub history_years: u32,
    /// Years of follow-up after `as_of` (outcomes).
    pub followup_years: u32,
    /// Number of PCNs (default: one per 40,000 patients, 2 to 30), five practices each.
    pub pcns: Option<usize>,
    /// Output folder (replaced atomically).
    pub out: PathBuf,
    /// Rows per Parquet row group aimed at (default [`ROW_GROUP_ROWS`], what polars writes by
    /// default); smaller values let tests cover many row groups on a small cohort.
    pub row_group_rows: usize,
    /// The share of people aged 65 or over, in (0, 1): the pyramid's 65+ bands are scaled to
    /// give it (about half in the older populations real ICSs list). `None`: England's pyramid
    /// (about 15%).
    pub share_65_plus: Option<f64>,
}

/// The as-of date synthetic cohorts are built around: 2025-04-01.
pub fn default_as_of() -> i32 {
    date::parse_days("2025-04-01").unwrap_or(20179)
}

impl SynthOptions {
    /// Defaults for `patients` and `seed` writing to `out`.
    pub fn new(patients: usize, seed: u64, out: PathBuf) -> SynthOptions {
        SynthOptions {
            patients,
            seed,
            as_of: default_as_of(),
            history_years: 4,
            followup_years: 1,
            pcns: None,
            out,
            row_group_rows: ROW_GROUP_ROWS,
            share_65_plus: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    /// Patients.
    pub patients: u64,
    /// Event rows.
    pub events: u64,
    /// Encounter rows.
    pub encounters: u64,
    /// Practices.
    pub practices: u64,
    /// PCNs.
    pub pcns: u64,
    /// Seed.
    pub seed: u64,
    /// As-of date the cohort is built around.
    pub as_of: String,
    /// First and last dates of the records.
    pub period: (String, String),
}

/// SplitMix64: a small, fast, statistically sound generator; one stream per patient.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream for (seed, stream).
    pub fn new(seed: u64, stream: u64) -> Rng {
        Rng(mix(seed ^ mix(stream.wrapping_add(0x9E37_79B9_7F4A_7C15))))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((self.next_u64() as u128 * n as u128) >> 64) as u64
        }
    }

    /// True with probability p.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-300);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson(lambda): inversion for small means, a rounded normal for large ones.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 40.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let l = (-lambda).exp();
        let mut k = 0u32;
        let mut p = 1.0;
        loop {
            p *= self.f64();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }

    /// Index drawn with the given weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// The SplitMix64 finaliser: a bijection on u64, so distinct inputs give distinct outputs.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// England's registered population by five-year age band (percent, 0-4 ... 90+), ONS mid-year
/// estimates rounded.
const AGE_BANDS: [f64; 19] = [
    5.4, 5.9, 6.1, 5.8, 6.0, 6.6, 6.9, 6.8, 6.4, 6.3, 6.8, 6.8, 6.0, 5.1, 5.0, 4.2, 2.8, 1.7, 1.0,
];

/// The factor on the pyramid's 65+ bands (from 65, the 14th) that makes `share` of the people
/// 65 or over (before each PCN's tilt by deprivation); 1 for England's pyramid.
fn older_factor(share: Option<f64>) -> f64 {
    let Some(share) = share.filter(|s| *s > 0.0 && *s < 1.0) else {
        return 1.0;
    };
    let old: f64 = AGE_BANDS[13..].iter().sum();
    let young: f64 = AGE_BANDS[..13].iter().sum();
    share * young / ((1.0 - share) * old)
}

/// Ethnic groups (ONS 2021 high-level categories) and their shares in an affluent/rural and a
/// deprived/urban PCN; a PCN mixes the two by its deprivation.
const ETHNICITY: [(&str, f64, f64); 6] = [
    ("White", 0.93, 0.62),
    ("Asian or Asian British", 0.03, 0.20),
    ("Black or Black British", 0.01, 0.09),
    ("Mixed", 0.015, 0.04),
    ("Other ethnic group", 0.005, 0.03),
    ("Not stated", 0.01, 0.02),
];

/// Relative prevalence of each coded eFI deficit (by slug) among older people, and whether it
/// marks advanced frailty (drawn more often when many deficits are present).
const DEFICIT_WEIGHTS: &[(&str, f64, bool)] = &[
    ("hypertension", 10.0, false),
    ("arthritis", 8.0, false),
    ("respiratory-disease", 4.0, false),
    ("ckd", 4.0, false),
    ("diabetes", 4.0, false),
    ("chd", 3.5, false),
    ("hearing-loss", 3.0, false),
    ("vision-problems", 3.0, false),
    ("urinary-system-disease", 3.0, false),
    ("dyspnoea", 3.0, false),
    ("falls", 2.5, true),
    ("dizziness", 2.5, false),
    ("anaemia", 2.5, false),
    ("osteoporosis", 2.0, false),
    ("atrial-fibrillation", 2.0, false),
    ("foot-problems", 2.0, false),
    ("sleep-disturbance", 2.0, false),
    ("thyroid-disorders", 2.0, false),
    ("urinary-incontinence", 2.0, true),
    ("heart-failure", 1.5, true),
    ("stroke-tia", 1.5, false),
    ("peptic-ulcer", 1.5, false),
    ("hypotension", 1.5, false),
    ("cognitive-problems", 1.5, true),
    ("mobility-problems", 1.5, true),
    ("fragility-fracture", 1.2, true),
    ("skin-ulcer", 1.0, true),
    ("pvd", 1.0, false),
    ("activity-limitation", 1.0, true),
    ("weight-loss", 1.0, true),
    ("heart-valve-disease", 1.0, false),
    ("social-vulnerability", 1.0, false),
    ("housebound", 0.7, true),
    ("care-requirement", 0.7, true),
    ("parkinsons", 0.4, true),
];

/// ICD-10 codes a hospital records for a patient with a deficit (secondary diagnoses).
const DEFICIT_ICD10: &[(&str, &[&str])] = &[
    ("hypertension", &["I10X"]),
    ("arthritis", &["M199", "M179"]),
    ("respiratory-disease", &["J449", "J459"]),
    ("ckd", &["N183", "N184"]),
    ("diabetes", &["E119", "E112"]),
    ("chd", &["I251", "I252"]),
    ("hearing-loss", &["H919"]),
    ("vision-problems", &["H540", "H269"]),
    ("urinary-system-disease", &["N390"]),
    ("dyspnoea", &["R060"]),
    ("falls", &["R296"]),
    ("dizziness", &["R42X"]),
    ("anaemia", &["D649"]),
    ("osteoporosis", &["M819"]),
    ("atrial-fibrillation", &["I48X"]),
    ("sleep-disturbance", &["G479"]),
    ("thyroid-disorders", &["E039"]),
    ("urinary-incontinence", &["R32X"]),
    ("heart-failure", &["I500"]),
    ("stroke-tia", &["I639", "I693", "G459"]),
    ("peptic-ulcer", &["K259"]),
    ("hypotension", &["I959", "R55X"]),
    ("cognitive-problems", &["F03X", "F019", "G309"]),
    ("mobility-problems", &["R268", "Z993"]),
    ("fragility-fracture", &["S720", "S525"]),
    ("skin-ulcer", &["L899"]),
    ("pvd", &["I739"]),
    ("activity-limitation", &["Z736"]),
    ("weight-loss", &["R634"]),
    ("heart-valve-disease", &["I350"]),
    ("social-vulnerability", &["Z602"]),
    ("housebound", &["Z742"]),
    ("care-requirement", &["Z749"]),
    ("parkinsons", &["G20X"]),
];

/// Primary diagnoses of emergency admissions: (code, weight in the general population, extra
/// weight per eFI deficit).
const ACUTE_ICD10: &[(&str, f64, f64)] = &[
    ("R074", 6.0, 0.0),
    ("J189", 3.0, 0.6),
    ("N390", 2.0, 0.6),
    ("J440", 1.5, 0.3),
    ("K359", 2.0, 0.0),
    ("R104", 5.0, 0.0),
    ("L031", 1.5, 0.2),
    ("A419", 1.0, 0.3),
    ("N179", 0.8, 0.4),
    ("E86X", 0.5, 0.3),
    ("F059", 0.3, 0.5),
    ("R55X", 1.0, 0.3),
    ("I214", 1.0, 0.1),
    ("I639", 0.8, 0.2),
    ("I500", 0.5, 0.4),
    ("R410", 0.2, 0.3),
    ("E871", 0.3, 0.2),
    ("R53X", 0.2, 0.3),
];

/// Injuries recorded with a fall (external cause W00-W19 goes with them).
const FALL_INJURY_ICD10: &[&str] = &["S720", "S721", "S525", "S065", "S010", "S422", "T141"];
/// Fall external-cause codes.
const FALL_CAUSE_ICD10: &[&str] = &["W19", "W18", "W10", "W01", "W06"];
/// Other comorbidities a hospital may record (Charlson conditions beyond the eFI).
const OTHER_ICD10: &[(&str, f64)] = &[
    ("C349", 0.2),
    ("C509", 0.25),
    ("C189", 0.2),
    ("C61X", 0.25),
    ("C787", 0.05),
    ("C795", 0.05),
    ("K703", 0.05),
    ("K746", 0.05),
    ("M069", 0.15),
    ("B24X", 0.01),
    ("G819", 0.03),
    ("K219", 0.4),
    ("E785", 0.6),
    ("Z867", 0.3),
];

/// Common primary-care codes outside every eFI list (observations, vaccinations, reviews), SNOMED
/// CT. `tests/synth.rs` checks that none is in a code list.
const NOISE_SNOMED: &[(&str, Option<(f64, f64)>)] = &[
    ("75367002", Some((132.0, 16.0))),
    ("271649006", Some((132.0, 16.0))),
    ("271650006", Some((80.0, 9.0))),
    ("27113001", Some((78.0, 15.0))),
    ("60621009", Some((27.5, 4.5))),
    ("50373000", Some((168.0, 9.0))),
    ("77176002", None),
    ("8517006", None),
    ("266919005", None),
    ("185316007", None),
    ("390906007", None),
    ("86198006", None),
    ("228273003", None),
    ("410620009", None),
];

/// A synthetic code table: every code the generator can emit, by index.
struct CodeTable {
    codes: Vec<(CodeSystem, String)>,
    /// [deficit][0 = snomed, 1 = read2, 2 = ctv3] -> code indices.
    deficit: Vec<[Vec<u32>; 3]>,
    deficit_weight: Vec<f64>,
    deficit_advanced: Vec<bool>,
    deficit_icd: Vec<Vec<u32>>,
    acute: Vec<(u32, f64, f64)>,
    fall_injury: Vec<u32>,
    fall_cause: Vec<u32>,
    other: Vec<(u32, f64)>,
    noise: Vec<(u32, Option<(f64, f64)>)>,
    medicines: Vec<u32>,
    /// Care home residence codes (LONGRES_COD).
    care_home: Vec<u32>,
    /// By code index: the code records care home residence (some eFI care-requirement codes
    /// do), so only residents get it.
    residence: Vec<bool>,
    coded_deficits: usize,
}

impl CodeTable {
    fn add(&mut self, system: CodeSystem, code: &str) -> u32 {
        self.codes.push((system, code.to_string()));
        (self.codes.len() - 1) as u32
    }

    fn build(models: &Definitions) -> Result<CodeTable, SynthError> {
        let coded: Vec<&str> = models
            .efi
            .deficits
            .iter()
            .filter(|d| d.rule == DeficitRule::Codes)
            .map(|d| d.slug.as_str())
            .collect();
        let mut t = CodeTable {
            codes: Vec::new(),
            deficit: vec![Default::default(); coded.len()],
            deficit_weight: vec![0.3; coded.len()],
            deficit_advanced: vec![false; coded.len()],
            deficit_icd: vec![Vec::new(); coded.len()],
            acute: Vec::new(),
            fall_injury: Vec::new(),
            fall_cause: Vec::new(),
            other: Vec::new(),
            noise: Vec::new(),
            medicines: Vec::new(),
            care_home: Vec::new(),
            residence: Vec::new(),
            coded_deficits: coded.len(),
        };
        for (d, system, code) in &models.efi.codes {
            let slot = match system {
                CodeSystem::Snomed => 0,
                CodeSystem::Read2 => 1,
                CodeSystem::Ctv3 => 2,
                _ => continue,
            };
            // Read v2 and CTV3 are written padded to five characters, as extracts hold them.
            let text = if slot == 0 {
                code.clone()
            } else {
                format!("{code:.<5}")
            };
            let id = t.add(*system, &text);
            t.deficit[*d as usize][slot].push(id);
        }
        for (slug, w, adv) in DEFICIT_WEIGHTS {
            if let Some(d) = coded.iter().position(|s| s == slug) {
                t.deficit_weight[d] = *w;
                t.deficit_advanced[d] = *adv;
            }
        }
        for (slug, codes) in DEFICIT_ICD10 {
            if let Some(d) = coded.iter().position(|s| s == slug) {
                for c in codes.iter() {
                    let id = t.add(CodeSystem::Icd10, c);
                    t.deficit_icd[d].push(id);
                }
            }
        }
        for (c, w, per) in ACUTE_ICD10 {
            let id = t.add(CodeSystem::Icd10, c);
            t.acute.push((id, *w, *per));
        }
        for c in FALL_INJURY_ICD10 {
            let id = t.add(CodeSystem::Icd10, c);
            t.fall_injury.push(id);
        }
        for c in FALL_CAUSE_ICD10 {
            let id = t.add(CodeSystem::Icd10, c);
            t.fall_cause.push(id);
        }
        for (c, w) in OTHER_ICD10 {
            let id = t.add(CodeSystem::Icd10, c);
            t.other.push((id, *w));
        }
        for (system, code) in &models.care_home {
            let id = t.add(*system, code);
            t.care_home.push(id);
        }
        for (c, v) in NOISE_SNOMED {
            let id = t.add(CodeSystem::Snomed, c);
            t.noise.push((id, *v));
        }
        for k in 0..240u32 {
            let id = t.add(CodeSystem::Dmd, &format!("99{:07}", 1000 + k * 37));
            t.medicines.push(id);
        }
        if t.deficit.iter().any(|s| s[0].is_empty()) {
            return Err(SynthError::Settings(
                "every coded eFI deficit needs at least one SNOMED CT code".into(),
            ));
        }
        t.residence = t
            .codes
            .iter()
            .map(|(system, code)| {
                models
                    .care_home
                    .iter()
                    .any(|(s, c)| s == system && c == code)
            })
            .collect();
        Ok(t)
    }
}

/// Calibrated parameters (see module docs for the targets; `tests/synth.rs` checks them).
mod k {
    /// Mean eFI deficits at age 75 in a middling-deprivation area.
    pub const EFI_AT_75: f64 = 5.2;
    /// Growth of the mean per year of age (65+).
    pub const EFI_PER_YEAR: f64 = 0.03;
    /// Extra growth per year of age below 50 (fewer deficits in the young).
    pub const EFI_YOUNG_PER_YEAR: f64 = 0.035;
    /// Deprivation effect: mean multiplied by exp(DEPRIVATION * (5.5 - decile) / 4.5).
    pub const DEPRIVATION: f64 = 0.25;
    /// Spread of the latent frailty (log scale).
    pub const SIGMA: f64 = 0.42;
    /// Emergency admissions a year at 50, before frailty.
    pub const EMERGENCY_AT_50: f64 = 0.098;
    /// Growth per year of age.
    pub const EMERGENCY_PER_YEAR: f64 = 0.04;
    /// Admission rate multiplied by exp(EMERGENCY_PER_DEFICIT * deficits) (normalised).
    pub const EMERGENCY_PER_DEFICIT: f64 = 0.12;
    /// Share of emergency admissions of people 65+ that follow a fall, before frailty.
    pub const FALL_SHARE: f64 = 0.04;
    /// Extra fall share per eFI deficit.
    pub const FALL_SHARE_PER_DEFICIT: f64 = 0.006;
    /// Share of emergency spells of people 65+ that go on in another hospital, before frailty
    /// (one spell, two encounters).
    pub const TRANSFER_65: f64 = 0.05;
    /// Extra transfer share per eFI deficit.
    pub const TRANSFER_PER_DEFICIT: f64 = 0.01;
    /// Transfer share under 65.
    pub const TRANSFER_YOUNG: f64 = 0.02;
    /// Share of A&E attendances of people 65+ with a fall and an injury coded on them.
    pub const AE_FALL: f64 = 0.03;
    /// Gompertz mortality: ln(annual probability) = MORT_A + MORT_B * age.
    pub const MORT_A: f64 = -9.9;
    /// See MORT_A.
    pub const MORT_B: f64 = 0.0865;
    /// Mortality multiplied by exp(MORT_PER_DEFICIT * deficits) (normalised).
    pub const MORT_PER_DEFICIT: f64 = 0.12;
    // Published relations the generator reproduces (tests/synth.rs checks them from the files):
    // - deprivation: SPARRA v4 (Public Health Scotland) reports a 12-month emergency admission
    //   or death rate of 11.3% in the most deprived SIMD decile against 6.3% in the least;
    //   English emergency admission rates of people 65+ are of the order of 1.5x in the most
    //   deprived fifth against the least (OHID Fingertips, by IMD quintile). Deprivation acts
    //   through frailty (higher eFI, `DEPRIVATION`) and directly, exp(X * d), d = +1 in the
    //   most deprived decile, -1 in the least;
    // - care homes: residents' annual mortality is several times that of people of the same age
    //   at home (Shah SM et al., Age Ageing 2013;42(4):438-443: about three times at 85+);
    // - sex: men's mortality above women's at every age (ONS life tables), emergency admissions
    //   a little higher in men;
    // - a non-linear part: being both 80 or over and frail (OLD_FRAIL_DEFICITS deficits or
    //   more) multiplies risk beyond the two effects (an interaction a linear model misses).
    /// Spread (log scale) of a person's own propensity to be admitted.
    pub const ADMISSION_SPREAD: f64 = 0.6;
    /// Care-home residence: probability CARE_HOME x deficits^1.6 (doubled at 85+).
    pub const CARE_HOME: f64 = 0.007;
    /// Direct deprivation effect on emergency admissions.
    pub const EMERGENCY_DEPRIVATION: f64 = 0.06;
    /// Direct deprivation effect on mortality.
    pub const MORT_DEPRIVATION: f64 = 0.05;
    /// Care-home residents' mortality, against others of the same age and frailty.
    pub const MORT_CARE_HOME: f64 = 2.2;
    /// Care-home residents' emergency admissions.
    pub const EMERGENCY_CARE_HOME: f64 = 1.3;
    /// Men's and women's mortality multipliers.
    pub const MORT_MALE: f64 = 1.4;
    /// See MORT_MALE.
    pub const MORT_FEMALE: f64 = 0.78;
    /// Men's and women's emergency admission multipliers.
    pub const EMERGENCY_MALE: f64 = 1.08;
    /// See EMERGENCY_MALE.
    pub const EMERGENCY_FEMALE: f64 = 0.94;
    /// Deficits from which someone 80 or over is "old and frail" (the interaction).
    pub const OLD_FRAIL_DEFICITS: u32 = 8;
    /// The interaction's mortality multiplier.
    pub const MORT_OLD_FRAIL: f64 = 1.6;
    /// The interaction's emergency admission multiplier.
    pub const EMERGENCY_OLD_FRAIL: f64 = 1.5;
}

/// The generated rows of a chunk of patients.
#[derive(Default)]
struct Chunk {
    birth: Vec<i32>,
    sex: Vec<&'static str>,
    practice: Vec<u32>,
    imd: Vec<i32>,
    ethnicity: Vec<&'static str>,
    care_home: Vec<bool>,
    death: Vec<Option<i32>>,
    // events
    e_patient: Vec<u32>,
    e_day: Vec<i32>,
    e_code: Vec<u32>,
    e_value: Vec<Option<f64>>,
    e_encounter: Vec<Option<u64>>,
    /// Diagnosis position on its encounter (1 = primary); `None` for GP records.
    e_position: Vec<Option<i32>>,
    // encounters
    n_patient: Vec<u32>,
    n_id: Vec<u64>,
    n_setting: Vec<&'static str>,
    n_start: Vec<i32>,
    n_end: Vec<i32>,
    n_emergency: Vec<bool>,
    /// HES ADMIMETH, ADMISORC and DISDEST of inpatient rows (`None` on attendances).
    n_method: Vec<Option<&'static str>>,
    n_source: Vec<Option<&'static str>>,
    n_dest: Vec<Option<&'static str>>,
}

struct World<'a> {
    t: &'a CodeTable,
    seed: u64,
    as_of: i32,
    start: i32,
    end: i32,
    snomed_from: i32,
    n_practices: usize,
    practices_per_pcn: usize,
    /// Mean IMD decile per PCN.
    pcn_decile: Vec<f64>,
    /// Practice uses Read v2 (EMIS-like) rather than CTV3 (TPP-like) before SNOMED CT.
    practice_read2: Vec<bool>,
    /// Factor on the pyramid's 65+ bands ([`SynthOptions::share_65_plus`]; 1 for England's).
    older: f64,
}

fn efi_mean(age: f64, decile: f64) -> f64 {
    let mut m = k::EFI_AT_75 * (k::EFI_PER_YEAR * (age - 75.0)).exp();
    if age < 50.0 {
        m *= (k::EFI_YOUNG_PER_YEAR * (age - 50.0)).exp();
    }
    m * (k::DEPRIVATION * (5.5 - decile) / 4.5).exp()
}

/// Days in a year.
const YEAR: f64 = 365.25;

impl World<'_> {
    fn patient(&self, i: usize, c: &mut Chunk) {
        let mut r = Rng::new(self.seed, i as u64);
        let t = self.t;
        let practice = r.below(self.n_practices as u64) as usize;
        let pcn = practice / self.practices_per_pcn;
        let decile = (self.pcn_decile[pcn] + 1.8 * r.normal())
            .round()
            .clamp(1.0, 10.0);
        // Age at the as-of date: older populations in affluent areas.
        let tilt = 1.0 + 0.04 * (decile - 5.5);
        let weights: Vec<f64> = AGE_BANDS
            .iter()
            .enumerate()
            .map(|(b, w)| if b >= 13 { w * tilt * self.older } else { *w })
            .collect();
        let band = r.weighted(&weights);
        let age = if band == 18 {
            90.0 + (-(1.0 - r.f64()).ln() * 4.0).min(15.0)
        } else {
            band as f64 * 5.0 + r.f64() * 5.0
        };
        let birth_exact = self.as_of - (age * YEAR) as i32;
        let bd = date::from_days(birth_exact);
        let birth = date::to_days(bd - chrono::Duration::days(chrono::Datelike::day0(&bd) as i64));
        let p_female = if age >= 85.0 {
            0.62
        } else if age >= 70.0 {
            0.54
        } else {
            0.5
        };
        let sex = if r.chance(0.002) {
            "U"
        } else if r.chance(p_female) {
            "F"
        } else {
            "M"
        };
        let urban = ((10.0 - self.pcn_decile[pcn]) / 8.0).clamp(0.0, 1.0);
        let ew: Vec<f64> = ETHNICITY
            .iter()
            .map(|(_, a, b)| a * (1.0 - urban) + b * urban)
            .collect();
        let ethnicity = ETHNICITY[r.weighted(&ew)].0;

        // Latent frailty and eFI deficits at the as-of date.
        let mean = efi_mean(age, decile);
        let z = r.normal();
        let lambda = mean * (k::SIGMA * z - k::SIGMA * k::SIGMA / 2.0).exp();
        let total = r.poisson(lambda).min(t.coded_deficits as u32 + 1);
        let poly_p = 1.0 / (1.0 + (-(total as f64 - 3.5)).exp());
        let poly = total >= 1 && r.chance(poly_p);
        let coded = (total - poly as u32) as usize;
        let mut w: Vec<f64> = (0..t.coded_deficits)
            .map(|d| {
                let base = t.deficit_weight[d];
                if t.deficit_advanced[d] {
                    base * (0.3 + total as f64 / 6.0)
                } else {
                    base
                }
            })
            .collect();
        let mut deficits = Vec::with_capacity(coded);
        for _ in 0..coded.min(t.coded_deficits) {
            let d = r.weighted(&w);
            w[d] = 0.0;
            deficits.push(d);
        }
        // About one in seven people 85+ live in a care home (ONS 2021 Census: 15% of those 85+
        // in communal establishments, most of them care homes), the frail more often.
        let care_home = age >= 65.0
            && r.chance(
                (k::CARE_HOME * (total as f64).powf(1.6) * if age >= 85.0 { 2.0 } else { 1.0 })
                    .min(0.6),
            );
        // Risk relations in the published directions (see `k`): deprivation (+1 in the most
        // deprived decile, -1 in the least), sex, care home, and a non-linear part (old and
        // frail together) for trees to find. Frailty is normalised at middling deprivation,
        // so the deprived keep the risk their extra frailty brings.
        let dep = (5.5 - decile) / 4.5;
        let male = sex == "M";
        let old_and_frail = age >= 80.0 && total >= k::OLD_FRAIL_DEFICITS;
        let ref_mean = efi_mean(age, 5.5);

        // Death: Gompertz hazard scaled by frailty, over the whole period.
        let frail_norm = (ref_mean * ((k::MORT_PER_DEFICIT).exp() - 1.0))
            .exp()
            .max(1e-9);
        let mort_mult = (k::MORT_DEPRIVATION * dep).exp()
            * if care_home { k::MORT_CARE_HOME } else { 1.0 }
            * if male { k::MORT_MALE } else { k::MORT_FEMALE }
            * if old_and_frail {
                k::MORT_OLD_FRAIL
            } else {
                1.0
            }
            / frail_norm;
        let mut death = None;
        let hazard_at = |a: f64| (k::MORT_A + k::MORT_B * a).exp().min(0.9);
        let mut day = self.start;
        while day <= self.end {
            let a = age + (day - self.as_of) as f64 / YEAR;
            if a >= 0.0 {
                let q = (hazard_at(a) * (k::MORT_PER_DEFICIT * total as f64).exp() * mort_mult)
                    .min(0.95);
                if r.chance(q / 12.0) {
                    death = Some(day + r.below(30) as i32);
                    break;
                }
            }
            day += 30;
        }
        let death = death.filter(|&d| d <= self.end && d >= birth);
        let last = death.unwrap_or(self.end).min(self.end);
        let first = self.start.max(birth);
        let pi = i as u32;

        let legacy_read2 = self.practice_read2[practice];
        let push = |c: &mut Chunk, day: i32, code: u32, value: Option<f64>, enc: Option<u64>| {
            c.e_patient.push(pi);
            c.e_day.push(day);
            c.e_code.push(code);
            c.e_value.push(value);
            c.e_encounter.push(enc);
            c.e_position.push(None);
        };
        // A hospital diagnosis at its position on the encounter.
        let diagnose = |c: &mut Chunk, day: i32, code: u32, enc: u64, position: i32| {
            push(c, day, code, None, Some(enc));
            if let Some(last) = c.e_position.last_mut() {
                *last = Some(position);
            }
        };
        let span = (last - first).max(0) as u64;
        let uniform_day = |r: &mut Rng| first + r.below(span + 1) as i32;

        // Care home residents have a residence code (LONGRES_COD) from when they moved in, before
        // the extract window (residents are residents throughout it here). Drawn from a hash of
        // the patient's index, not the generator's stream, so the other draws are as before
        // (three of the seven codes are also the eFI's care requirement, as in real records).
        if care_home && !self.t.care_home.is_empty() {
            let h = crate::datafile::fnv1a64(&(i as u64 ^ 0xCA2E_4011).to_le_bytes());
            let day = (self.start - 1 - (h % 1095) as i32).max(birth + 60 * 365);
            let code = self.t.care_home[(h >> 32) as usize % self.t.care_home.len()];
            if death.is_none_or(|d| day <= d) {
                push(c, day, code, None, None);
            }
        }

        if last >= first {
            // Coded deficits: first recorded before the as-of date, sometimes long before the
            // extract window; recoded now and then.
            for &d in &deficits {
                let onset = (self.as_of - (r.f64() * r.f64() * 15.0 * YEAR) as i32)
                    .max(birth + 365)
                    .min(self.as_of);
                if death.is_some_and(|x| onset > x) {
                    continue;
                }
                let repeats = 1 + r.poisson(1.2);
                for k in 0..repeats {
                    let day = if k == 0 {
                        onset
                    } else {
                        onset + r.below((last - onset).max(0) as u64 + 1) as i32
                    };
                    let slot = if day >= self.snomed_from {
                        0
                    } else if legacy_read2 {
                        1
                    } else {
                        2
                    };
                    let list = if t.deficit[d][slot].is_empty() {
                        &t.deficit[d][0]
                    } else {
                        &t.deficit[d][slot]
                    };
                    // Most coding uses a few common codes of each list.
                    let pick = if r.chance(0.7) {
                        r.below(list.len().min(3) as u64)
                    } else {
                        r.below(list.len() as u64)
                    };
                    // A care home residence code only for a resident: others get the list's
                    // first other code (no draw, so the rest of the cohort is as before).
                    let mut code = list[pick as usize];
                    if !care_home && t.residence[code as usize] {
                        match list.iter().find(|&&k| !t.residence[k as usize]) {
                            Some(&k) => code = k,
                            None => continue,
                        }
                    }
                    push(c, day, code, None, None);
                }
            }
            // New deficits in the follow-up year.
            if r.chance((0.04 * lambda).min(0.5)) {
                let d = r.below(t.coded_deficits as u64) as usize;
                if !deficits.contains(&d) && last > self.as_of {
                    let day = self.as_of + 1 + r.below((last - self.as_of) as u64) as i32;
                    let code = t.deficit[d][0]
                        .iter()
                        .find(|&&k| care_home || !t.residence[k as usize]);
                    if let Some(&code) = code {
                        push(c, day, code, None, None);
                    }
                }
            }
            // Medicines: repeat prescriptions every ~3 months. Polypharmacy means 5 or more
            // distinct medicines in the 12 months to the as-of date; without it, at most 4.
            let regular = if poly {
                5 + r.poisson(0.35 * total as f64)
            } else {
                r.poisson(0.1 + 0.25 * total as f64 + 0.01 * (age - 40.0).max(0.0))
                    .min(4)
            };
            let mut meds: Vec<u32> = Vec::new();
            while meds.len() < regular as usize {
                let m = t.medicines[r.below(t.medicines.len() as u64 / 2) as usize];
                if !meds.contains(&m) {
                    meds.push(m);
                }
            }
            for &m in &meds {
                let mut day = first + r.below(90) as i32;
                while day <= last {
                    push(c, day, m, None, None);
                    day += 112 + r.below(56) as i32;
                }
            }
            // Acute courses, kept outside the polypharmacy window when they would tip the count.
            let window_from = date::minus_months(self.as_of, 12);
            for _ in 0..r.poisson(0.3 * (self.end - self.start) as f64 / YEAR) {
                let m = t.medicines[(t.medicines.len() / 2
                    + r.below(t.medicines.len() as u64 / 2) as usize)
                    .min(t.medicines.len() - 1)];
                let day = uniform_day(&mut r);
                let in_window = day >= window_from && day <= self.as_of;
                if in_window && !poly {
                    continue;
                }
                push(c, day, m, None, None);
            }
            // GP contacts: observations, reviews, vaccinations.
            let years = (last - first) as f64 / YEAR;
            let n_obs = r.poisson(years * (1.0 + 0.025 * age.max(0.0) + 0.4 * total as f64));
            for _ in 0..n_obs {
                let (code, v) = t.noise[r.below(t.noise.len() as u64) as usize];
                let value = v.map(|(m, s)| ((m + s * r.normal()) * 10.0).round() / 10.0);
                let day = uniform_day(&mut r);
                push(c, day, code, value, None);
            }

            // Hospital activity.
            // A person's own propensity to be admitted (log-normal, mean 1): why a past
            // admission predicts the next beyond frailty and age.
            let spread = k::ADMISSION_SPREAD;
            let propensity = (spread * r.normal() - spread * spread / 2.0).exp();
            let adm_norm = (ref_mean * ((k::EMERGENCY_PER_DEFICIT).exp() - 1.0)).exp();
            let rate = propensity
                * k::EMERGENCY_AT_50
                * (k::EMERGENCY_PER_YEAR * (age - 50.0)).exp()
                * (k::EMERGENCY_PER_DEFICIT * total as f64).exp()
                * (k::EMERGENCY_DEPRIVATION * dep).exp()
                * if male {
                    k::EMERGENCY_MALE
                } else {
                    k::EMERGENCY_FEMALE
                }
                * if care_home {
                    k::EMERGENCY_CARE_HOME
                } else {
                    1.0
                }
                * if old_and_frail {
                    k::EMERGENCY_OLD_FRAIL
                } else {
                    1.0
                }
                / adm_norm;
            let other: Vec<u32> = t
                .other
                .iter()
                .filter(|(_, p)| r.chance(p * 0.02 * (age / 50.0).powi(2)))
                .map(|(id, _)| *id)
                .collect();
            let mut enc_k = 0u64;
            // An encounter with its HES method, source and destination (inpatient rows).
            type Hes = Option<(&'static str, &'static str, &'static str)>;
            let mut new_enc = |setting: &'static str,
                               start: i32,
                               end: i32,
                               emergency: bool,
                               hes: Hes,
                               c: &mut Chunk|
             -> u64 {
                enc_k += 1;
                let id = mix(self.seed ^ mix((i as u64) << 16 | enc_k));
                c.n_patient.push(pi);
                c.n_id.push(id);
                c.n_setting.push(setting);
                c.n_start.push(start);
                c.n_end.push(end);
                c.n_emergency.push(emergency);
                c.n_method.push(hes.map(|h| h.0));
                c.n_source.push(hes.map(|h| h.1));
                c.n_dest.push(hes.map(|h| h.2));
                id
            };
            let n_emerg = r.poisson(rate * years);
            let acute_w: Vec<f64> = t
                .acute
                .iter()
                .map(|(_, w, per)| w + per * total as f64)
                .collect();
            for _ in 0..n_emerg {
                let start = uniform_day(&mut r);
                let los = r.poisson(1.0 + 0.6 * total as f64 + (age / 30.0)) as i32;
                let end = (start + los).min(self.end);
                // Some spells go on in another hospital (a transfer, older and frailer people
                // more often): on the day of discharge, or a day or two later with the
                // transfer coded (HES discharge destination and admission source 51, admission
                // method 2B), so that spells of two encounters are exercised.
                let transfer_p = if age >= 65.0 {
                    (k::TRANSFER_65 + k::TRANSFER_PER_DEFICIT * total as f64).min(0.3)
                } else {
                    k::TRANSFER_YOUNG
                };
                let transfer = end < self.end && r.chance(transfer_p);
                let method = if r.chance(0.75) { "21" } else { "22" };
                let dest = if transfer { "51" } else { "19" };
                let enc = new_enc("inpatient", start, end, true, Some((method, "19", dest)), c);
                let mut episodes = vec![(enc, start)];
                if transfer {
                    let gap = if r.chance(0.7) {
                        0
                    } else {
                        1 + r.below(2) as i32
                    };
                    let s2 = (end + gap).min(self.end);
                    let e2 = (s2 + r.poisson(3.0 + 0.5 * total as f64) as i32).min(self.end);
                    let enc2 = new_enc("inpatient", s2, e2, true, Some(("2B", "51", "19")), c);
                    episodes.push((enc2, s2));
                }
                let fall_p = if age >= 65.0 {
                    k::FALL_SHARE + k::FALL_SHARE_PER_DEFICIT * total as f64
                } else {
                    0.02
                };
                let primary = if r.chance(fall_p) {
                    let inj = t.fall_injury[r.below(t.fall_injury.len() as u64) as usize];
                    let cause = t.fall_cause[r.below(t.fall_cause.len() as u64) as usize];
                    Some((inj, cause))
                } else {
                    None
                };
                let acute = t.acute[r.weighted(&acute_w)].0;
                for &(enc, day) in &episodes {
                    let mut position = 1;
                    let mut dx = |c: &mut Chunk, code: u32| {
                        diagnose(c, day, code, enc, position);
                        position += 1;
                    };
                    match primary {
                        Some((inj, cause)) => {
                            dx(c, inj);
                            dx(c, cause);
                        }
                        None => dx(c, acute),
                    }
                    // Secondary diagnoses: the patient's long-term conditions.
                    for &d in &deficits {
                        if !t.deficit_icd[d].is_empty() && r.chance(0.5) {
                            let codes = &t.deficit_icd[d];
                            dx(c, codes[r.below(codes.len() as u64) as usize]);
                        }
                    }
                    for &o in &other {
                        if r.chance(0.7) {
                            dx(c, o);
                        }
                    }
                }
            }
            for _ in 0..r.poisson(years * (0.25 + 0.002 * age + 0.05 * total as f64)) {
                let day = uniform_day(&mut r);
                let enc = new_enc("ae", day, day, true, None, c);
                // Noise for the falls definition: a fall and an injury coded on an A&E
                // attendance (not an admission: linked to the attendance, never counted as a
                // falls admission even when an admission's dates cover the day).
                if age >= 65.0 && r.chance(k::AE_FALL) {
                    let inj = t.fall_injury[r.below(t.fall_injury.len() as u64) as usize];
                    let cause = t.fall_cause[r.below(t.fall_cause.len() as u64) as usize];
                    diagnose(c, day, inj, enc, 1);
                    diagnose(c, day, cause, enc, 2);
                }
            }
            for _ in 0..r.poisson(years * (0.03 + 0.001 * age)) {
                let start = uniform_day(&mut r);
                let end = (start + r.poisson(1.5) as i32).min(self.end);
                let enc = new_enc("inpatient", start, end, false, Some(("11", "19", "19")), c);
                let code = if !other.is_empty() && r.chance(0.5) {
                    other[r.below(other.len() as u64) as usize]
                } else {
                    t.acute[r.below(t.acute.len() as u64) as usize].0
                };
                diagnose(c, start, code, enc, 1);
            }
            for _ in 0..r.poisson(years * (0.4 + 0.01 * age + 0.1 * total as f64)) {
                let day = uniform_day(&mut r);
                new_enc("outpatient", day, day, false, None, c);
            }
        }
        c.birth.push(birth);
        c.sex.push(sex);
        c.practice.push(practice as u32);
        c.imd.push(decile as i32);
        c.ethnicity.push(ethnicity);
        c.care_home.push(care_home);
        c.death.push(death);
    }
}

fn encode(what: &'static str) -> impl FnOnce(PolarsError) -> SynthError {
    move |source| SynthError::Encode { what, source }
}

/// Sort a chunk's events by (patient, date, code) and encounters by (patient, start, id), so the
/// files read like an extract ordered by pseudonym and date.
fn order_chunk(c: &mut Chunk) {
    let mut idx: Vec<usize> = (0..c.e_patient.len()).collect();
    idx.sort_by_key(|&k| (c.e_patient[k], c.e_day[k], c.e_code[k], c.e_encounter[k]));
    c.e_patient = idx.iter().map(|&k| c.e_patient[k]).collect();
    c.e_day = idx.iter().map(|&k| c.e_day[k]).collect();
    c.e_code = idx.iter().map(|&k| c.e_code[k]).collect();
    c.e_value = idx.iter().map(|&k| c.e_value[k]).collect();
    c.e_encounter = idx.iter().map(|&k| c.e_encounter[k]).collect();
    c.e_position = idx.iter().map(|&k| c.e_position[k]).collect();
    let mut idx: Vec<usize> = (0..c.n_patient.len()).collect();
    idx.sort_by_key(|&k| (c.n_patient[k], c.n_start[k], c.n_id[k]));
    c.n_patient = idx.iter().map(|&k| c.n_patient[k]).collect();
    c.n_id = idx.iter().map(|&k| c.n_id[k]).collect();
    c.n_setting = idx.iter().map(|&k| c.n_setting[k]).collect();
    c.n_start = idx.iter().map(|&k| c.n_start[k]).collect();
    c.n_end = idx.iter().map(|&k| c.n_end[k]).collect();
    c.n_emergency = idx.iter().map(|&k| c.n_emergency[k]).collect();
    c.n_method = idx.iter().map(|&k| c.n_method[k]).collect();
    c.n_source = idx.iter().map(|&k| c.n_source[k]).collect();
    c.n_dest = idx.iter().map(|&k| c.n_dest[k]).collect();
}

/// Rows per row group that polars' `ParquetWriter::finish` aims at when none is set (512²).
pub const ROW_GROUP_ROWS: usize = 512 * 512;

/// Patients generated together by one task (their events are sorted within it).
const CHUNK_PATIENTS: usize = 4096;

/// Chunks generated in parallel before their rows are written: the writing pass holds one wave's
/// rows plus less than one row group per file, whatever the number of patients.
const WAVE_CHUNKS: usize = 16;

/// The row groups, by number of rows, that polars' `ParquetWriter::finish` (0.55) cuts a
/// one-chunk frame of `rows` rows into for the target `target`: none for an empty frame, one
/// below the target, otherwise `rows / target` groups of `rows / (rows / target)` rows, the last
/// also taking the remainder. Writing these groups one by one through the same writer gives the
/// bytes of writing the whole frame at once, which is how `synth` streams without changing its
/// files.
pub fn row_group_plan(rows: usize, target: usize) -> Vec<usize> {
    if rows == 0 {
        return Vec::new();
    }
    let target = target.max(1);
    if rows < target {
        return vec![rows];
    }
    let groups = rows / target;
    let size = rows / groups;
    let mut plan = vec![size; groups - 1];
    plan.push(rows - size * (groups - 1));
    plan
}

/// A Parquet file written row group by row group, cut as [`row_group_plan`] says, so that its
/// bytes are those `ParquetWriter::finish` writes for the whole table at once.
pub struct GroupedWriter {
    name: &'static str,
    writer: polars::io::parquet::write::BatchedWriter<std::fs::File>,
    plan: Vec<usize>,
    next: usize,
    written: usize,
}

impl GroupedWriter {
    /// Create `dir/name` for a table of `rows` rows with `schema`, zstd-compressed, in row
    /// groups planned for `target` rows.
    pub fn create(
        dir: &Path,
        name: &'static str,
        schema: &Schema,
        rows: usize,
        target: usize,
    ) -> Result<GroupedWriter, SynthError> {
        GroupedWriter::create_marked(dir, name, schema, rows, target, None)
    }

    /// [`GroupedWriter::create`], with the file-level key-value metadata `mark` (the
    /// synthetic-data mark, [`crate::provenance::SYNTHETIC_KEY`]).
    pub fn create_marked(
        dir: &Path,
        name: &'static str,
        schema: &Schema,
        rows: usize,
        target: usize,
        mark: Option<(&str, &str)>,
    ) -> Result<GroupedWriter, SynthError> {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).map_err(|source| OutputError::Io {
            path: path.clone(),
            source,
        })?;
        let kv = mark.map(|(k, v)| {
            polars::io::parquet::write::KeyValueMetadata::from_static(vec![(
                k.to_string(),
                v.to_string(),
            )])
        });
        let writer = ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .with_key_value_metadata(kv)
            .batched(schema)
            .map_err(encode(name))?;
        Ok(GroupedWriter {
            name,
            writer,
            plan: row_group_plan(rows, target),
            next: 0,
            written: 0,
        })
    }

    /// Rows the next row group takes (`None` once every group is written).
    pub fn wanted(&self) -> Option<usize> {
        self.plan.get(self.next).copied()
    }

    /// Padding rows the frame of the next group starts with (see [`GroupedWriter::write_next`]).
    pub fn padding(&self) -> usize {
        self.written % 8
    }

    /// Write the next row group from `padded`: [`GroupedWriter::padding`] rows of any content,
    /// then exactly [`GroupedWriter::wanted`] rows. The padding is sliced off, which leaves the
    /// group's validity and boolean bitmaps at the bit offset they have in a slice of the whole
    /// table: the writer sizes its pages from those bitmaps' bytes, so the pages, and the file,
    /// come out the same.
    pub fn write_next(&mut self, padded: &DataFrame) -> Result<(), SynthError> {
        let (pad, rows) = (self.padding(), self.wanted().unwrap_or(0));
        if rows == 0 || padded.height() != pad + rows {
            return Err(SynthError::Internal(format!(
                "{}: a row group of {} rows does not match the plan ({pad} + {rows})",
                self.name,
                padded.height()
            )));
        }
        let group = padded.slice(pad as i64, rows);
        self.writer.write_batch(&group).map_err(encode(self.name))?;
        self.written += rows;
        self.next += 1;
        Ok(())
    }

    /// Write the footer; fails when the rows written are not the rows planned.
    pub fn finish(self) -> Result<(), SynthError> {
        if self.next != self.plan.len() {
            return Err(SynthError::Internal(format!(
                "{}: {} rows written of {} planned",
                self.name,
                self.written,
                self.plan.iter().sum::<usize>()
            )));
        }
        self.writer.finish().map_err(encode(self.name))?;
        Ok(())
    }
}

fn date_col(name: &str, v: Vec<i32>) -> Column {
    Int32Chunked::from_vec(name.into(), v)
        .into_date()
        .into_column()
}

fn opt_date_col(name: &str, v: &[Option<i32>]) -> Column {
    Int32Chunked::new(name.into(), v).into_date().into_column()
}

/// `v` at the rows `idx`.
fn take<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&k| v[k].clone()).collect()
}

/// Row indices of a group of `rows` rows preceded by `pad` padding rows (copies of row 0).
fn padded_rows(pad: usize, rows: usize) -> Vec<usize> {
    std::iter::repeat_n(0, pad).chain(0..rows).collect()
}

/// A pseudonym: 16 hex digits.
fn pseudonym(h: u64) -> String {
    format!("{h:016x}")
}

/// An encounter id: 16 hex digits.
fn encounter_text(e: u64) -> String {
    format!("{e:016x}")
}

/// Generated rows waiting for their row group, one queue per file (the patients' queue in
/// `pat`, events in `ev`, encounters in `en`; each uses its own fields of [`Chunk`]).
#[derive(Default)]
struct Pending {
    pat: Chunk,
    /// Patient slot of the first row of `pat`.
    pat_first: usize,
    ev: Chunk,
    en: Chunk,
}

impl Pending {
    fn push(&mut self, c: Chunk) {
        let p = &mut self.pat;
        p.birth.extend(c.birth);
        p.sex.extend(c.sex);
        p.practice.extend(c.practice);
        p.imd.extend(c.imd);
        p.ethnicity.extend(c.ethnicity);
        p.care_home.extend(c.care_home);
        p.death.extend(c.death);
        let e = &mut self.ev;
        e.e_patient.extend(c.e_patient);
        e.e_day.extend(c.e_day);
        e.e_code.extend(c.e_code);
        e.e_value.extend(c.e_value);
        e.e_encounter.extend(c.e_encounter);
        e.e_position.extend(c.e_position);
        let n = &mut self.en;
        n.n_patient.extend(c.n_patient);
        n.n_id.extend(c.n_id);
        n.n_setting.extend(c.n_setting);
        n.n_start.extend(c.n_start);
        n.n_end.extend(c.n_end);
        n.n_emergency.extend(c.n_emergency);
        n.n_method.extend(c.n_method);
        n.n_source.extend(c.n_source);
        n.n_dest.extend(c.n_dest);
    }

    fn drop_patients(&mut self, k: usize) {
        let p = &mut self.pat;
        p.birth.drain(..k);
        p.sex.drain(..k);
        p.practice.drain(..k);
        p.imd.drain(..k);
        p.ethnicity.drain(..k);
        p.care_home.drain(..k);
        p.death.drain(..k);
        self.pat_first += k;
    }

    fn drop_events(&mut self, k: usize) {
        let e = &mut self.ev;
        e.e_patient.drain(..k);
        e.e_day.drain(..k);
        e.e_code.drain(..k);
        e.e_value.drain(..k);
        e.e_encounter.drain(..k);
        e.e_position.drain(..k);
    }

    fn drop_encounters(&mut self, k: usize) {
        let n = &mut self.en;
        n.n_patient.drain(..k);
        n.n_id.drain(..k);
        n.n_setting.drain(..k);
        n.n_start.drain(..k);
        n.n_end.drain(..k);
        n.n_emergency.drain(..k);
        n.n_method.drain(..k);
        n.n_source.drain(..k);
        n.n_dest.drain(..k);
    }
}

/// What the frames of the three files are built from besides the generated rows.
struct Names<'a> {
    /// Sorted pseudonym hashes, by patient slot.
    hashes: &'a [u64],
    practice_codes: &'a [String],
    pcn_codes: &'a [String],
    practices_per_pcn: usize,
    t: &'a CodeTable,
}

impl Names<'_> {
    /// Pseudonyms of the patients whose slots `slots` hold, as `&str` through `store`.
    fn pseudonyms<'s>(&self, slots: &[u32], store: &'s mut Vec<String>) -> Vec<&'s str> {
        let lo = slots.iter().copied().min().unwrap_or(0) as usize;
        let hi = slots.iter().copied().max().map_or(0, |h| h as usize + 1);
        *store = self.hashes[lo..hi.max(lo)]
            .iter()
            .map(|&h| pseudonym(h))
            .collect();
        let store: &'s Vec<String> = store;
        slots
            .iter()
            .map(|&s| store[s as usize - lo].as_str())
            .collect()
    }

    /// `patients.parquet` rows `idx` of `p`, whose row 0 is patient slot `first`.
    fn patients(&self, p: &Chunk, first: usize, idx: &[usize]) -> PolarsResult<DataFrame> {
        let ids: Vec<String> = idx
            .iter()
            .map(|&k| pseudonym(self.hashes[first + k]))
            .collect();
        let practice: Vec<&str> = idx
            .iter()
            .map(|&k| self.practice_codes[p.practice[k] as usize].as_str())
            .collect();
        let pcn: Vec<&str> = idx
            .iter()
            .map(|&k| self.pcn_codes[p.practice[k] as usize / self.practices_per_pcn].as_str())
            .collect();
        DataFrame::new(
            idx.len(),
            vec![
                Column::new("patient_id".into(), &ids),
                date_col("birth_date", take(&p.birth, idx)),
                Column::new("sex".into(), take(&p.sex, idx)),
                Column::new("practice_code".into(), practice),
                Column::new("pcn_code".into(), pcn),
                Column::new("imd_decile".into(), take(&p.imd, idx)),
                Column::new("ethnicity_group".into(), take(&p.ethnicity, idx)),
                Column::new("care_home".into(), take(&p.care_home, idx)),
                opt_date_col("death_date", &take(&p.death, idx)),
            ],
        )
    }

    /// `events.parquet` rows `idx` of `e`.
    fn events(&self, e: &Chunk, idx: &[usize]) -> PolarsResult<DataFrame> {
        let mut store = Vec::new();
        let pid = self.pseudonyms(&take(&e.e_patient, idx), &mut store);
        let (mut system, mut code) = (Vec::with_capacity(idx.len()), Vec::with_capacity(idx.len()));
        for &k in idx {
            let (s, text) = &self.t.codes[e.e_code[k] as usize];
            system.push(s.name());
            code.push(text.as_str());
        }
        let enc: Vec<Option<String>> = idx
            .iter()
            .map(|&k| e.e_encounter[k].map(encounter_text))
            .collect();
        DataFrame::new(
            idx.len(),
            vec![
                Column::new("patient_id".into(), pid),
                date_col("event_date", take(&e.e_day, idx)),
                Column::new("code_system".into(), system),
                Column::new("code".into(), code),
                Column::new("value".into(), take(&e.e_value, idx)),
                Column::new("encounter_id".into(), enc),
                Column::new("position".into(), take(&e.e_position, idx)),
            ],
        )
    }

    /// `encounters.parquet` rows `idx` of `n`.
    fn encounters(&self, n: &Chunk, idx: &[usize]) -> PolarsResult<DataFrame> {
        let mut store = Vec::new();
        let pid = self.pseudonyms(&take(&n.n_patient, idx), &mut store);
        let id: Vec<String> = idx.iter().map(|&k| encounter_text(n.n_id[k])).collect();
        DataFrame::new(
            idx.len(),
            vec![
                Column::new("patient_id".into(), pid),
                Column::new("encounter_id".into(), id),
                Column::new("setting".into(), take(&n.n_setting, idx)),
                date_col("start_date", take(&n.n_start, idx)),
                date_col("end_date", take(&n.n_end, idx)),
                Column::new("emergency".into(), take(&n.n_emergency, idx)),
                Column::new("admission_method".into(), take(&n.n_method, idx)),
                Column::new("admission_source".into(), take(&n.n_source, idx)),
                Column::new("discharge_destination".into(), take(&n.n_dest, idx)),
            ],
        )
    }
}

/// The three files being written and the rows waiting for them.
struct Writers<'a> {
    names: Names<'a>,
    patients: GroupedWriter,
    events: GroupedWriter,
    encounters: GroupedWriter,
    pending: Pending,
}

impl Writers<'_> {
    /// Write every row group whose rows are all pending.
    fn flush(&mut self) -> Result<(), SynthError> {
        while let Some(rows) = self.patients.wanted() {
            if self.pending.pat.birth.len() < rows {
                break;
            }
            let idx = padded_rows(self.patients.padding(), rows);
            let p = &self.pending;
            let df = self
                .names
                .patients(&p.pat, p.pat_first, &idx)
                .map_err(encode(PATIENTS_FILE))?;
            self.patients.write_next(&df)?;
            self.pending.drop_patients(rows);
        }
        while let Some(rows) = self.events.wanted() {
            if self.pending.ev.e_patient.len() < rows {
                break;
            }
            let idx = padded_rows(self.events.padding(), rows);
            let df = self
                .names
                .events(&self.pending.ev, &idx)
                .map_err(encode(EVENTS_FILE))?;
            self.events.write_next(&df)?;
            self.pending.drop_events(rows);
        }
        while let Some(rows) = self.encounters.wanted() {
            if self.pending.en.n_patient.len() < rows {
                break;
            }
            let idx = padded_rows(self.encounters.padding(), rows);
            let df = self
                .names
                .encounters(&self.pending.en, &idx)
                .map_err(encode(ENCOUNTERS_FILE))?;
            self.encounters.write_next(&df)?;
            self.pending.drop_encounters(rows);
        }
        Ok(())
    }

    /// Write the footers; fails when rows are left over or missing.
    fn finish(self) -> Result<(), SynthError> {
        let p = &self.pending;
        if !p.pat.birth.is_empty() || !p.ev.e_patient.is_empty() || !p.en.n_patient.is_empty() {
            return Err(SynthError::Internal(
                "rows generated beyond the counts of the first pass".into(),
            ));
        }
        self.patients.finish()?;
        self.events.finish()?;
        self.encounters.finish()
    }
}

/// Generate a cohort and write it to `opts.out` atomically. `models` supplies the code lists.
///
/// Memory is bounded whatever the number of patients: a first pass generates every patient and
/// only counts the rows (the row groups of a file depend on its total), a second generates them
/// again, wave by wave, and writes each row group as soon as its rows exist. Apart from one
/// 8-byte pseudonym hash per patient, what is held is a wave of patients' rows plus less than
/// a row group per file. The files are byte-identical to writing each table as one frame.
pub fn generate(opts: &SynthOptions, models: &Definitions) -> Result<SynthSummary, SynthError> {
    if opts.patients == 0 {
        return Err(SynthError::Settings("--patients must be at least 1".into()));
    }
    let end = date::to_days(
        date::from_days(opts.as_of)
            .checked_add_months(chrono::Months::new(12 * opts.followup_years))
            .unwrap_or(date::from_days(opts.as_of)),
    ) - 1;
    if end > date::today() {
        return Err(SynthError::Settings(format!(
            "the follow-up would end on {}, after today: choose an earlier --as-of",
            date::format_days(end)
        )));
    }
    if opts.patients > u32::MAX as usize {
        return Err(SynthError::Settings(format!(
            "--patients must be at most {}",
            u32::MAX
        )));
    }
    let t = CodeTable::build(models)?;
    let n = opts.patients;
    let n_pcns = opts
        .pcns
        .unwrap_or(((n as f64 / 40_000.0).round() as usize).clamp(2, 30))
        .max(1);
    let practices_per_pcn = 5;
    let n_practices = n_pcns * practices_per_pcn;
    let mut wr = Rng::new(opts.seed, u64::MAX);
    // PCN deprivation from urban deprived (decile ~2) to rural affluent (~9), shuffled.
    let mut pcn_decile: Vec<f64> = (0..n_pcns)
        .map(|p| 2.0 + 7.0 * p as f64 / (n_pcns - 1).max(1) as f64)
        .collect();
    for i in (1..pcn_decile.len()).rev() {
        let j = wr.below(i as u64 + 1) as usize;
        pcn_decile.swap(i, j);
    }
    let practice_read2: Vec<bool> = (0..n_practices).map(|_| wr.chance(0.7)).collect();
    let world = World {
        t: &t,
        seed: opts.seed,
        as_of: opts.as_of,
        start: date::minus_months(opts.as_of, 12 * opts.history_years),
        end,
        snomed_from: date::parse_days("2018-04-01").unwrap_or(17622),
        n_practices,
        practices_per_pcn,
        pcn_decile,
        practice_read2,
        older: older_factor(opts.share_65_plus),
    };
    // Pseudonyms: 16 hex digits from a bijective mix, so distinct; patients are generated in
    // pseudonym order so the files are sorted as many extracts are. Patient slot i has the i-th
    // smallest hash.
    let mut hashes: Vec<u64> = (0..n)
        .into_par_iter()
        .map(|i| mix(opts.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ mix(i as u64)))
        .collect();
    hashes.par_sort_unstable();
    let n_chunks = n.div_ceil(CHUNK_PATIENTS);
    let chunk = |ci: usize| {
        let mut c = Chunk::default();
        for slot in ci * CHUNK_PATIENTS..((ci + 1) * CHUNK_PATIENTS).min(n) {
            world.patient(slot, &mut c);
        }
        c
    };
    // First pass: the row counts, which fix the row groups.
    let (ne, nn) = (0..n_chunks)
        .into_par_iter()
        .map(|ci| {
            let c = chunk(ci);
            (c.e_patient.len(), c.n_patient.len())
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let ods = |prefix: char, i: usize| format!("{prefix}{:05}", 81000 + i * 7);
    let practice_codes: Vec<String> = (0..n_practices).map(|i| ods('P', i)).collect();
    let pcn_codes: Vec<String> = (0..n_pcns)
        .map(|i| format!("U{:05}", 10000 + i * 37))
        .collect();
    let names = Names {
        hashes: &hashes,
        practice_codes: &practice_codes,
        pcn_codes: &pcn_codes,
        practices_per_pcn,
        t: &t,
    };

    let summary = publish::publish(
        &opts.out,
        |dir: &Path| -> Result<SynthSummary, SynthError> {
            let empty = Chunk::default();
            let schema = |df: PolarsResult<DataFrame>, what: &'static str| {
                df.map(|d| d.schema().as_ref().clone())
                    .map_err(encode(what))
            };
            let patients_schema = schema(names.patients(&empty, 0, &[]), PATIENTS_FILE)?;
            let events_schema = schema(names.events(&empty, &[]), EVENTS_FILE)?;
            let encounters_schema = schema(names.encounters(&empty, &[]), ENCOUNTERS_FILE)?;
            // Every file says it is synthetic, and how it was made.
            let made = format!(
                "strata {} synth: {n} patients, seed {}",
                crate::provenance::VERSION,
                opts.seed
            );
            let mark = Some((crate::provenance::SYNTHETIC_KEY, made.as_str()));
            let mut w = Writers {
                patients: GroupedWriter::create_marked(
                    dir,
                    PATIENTS_FILE,
                    &patients_schema,
                    n,
                    opts.row_group_rows,
                    mark,
                )?,
                events: GroupedWriter::create_marked(
                    dir,
                    EVENTS_FILE,
                    &events_schema,
                    ne,
                    opts.row_group_rows,
                    mark,
                )?,
                encounters: GroupedWriter::create_marked(
                    dir,
                    ENCOUNTERS_FILE,
                    &encounters_schema,
                    nn,
                    opts.row_group_rows,
                    mark,
                )?,
                names,
                pending: Pending::default(),
            };
            // Second pass: generate again, a wave of chunks at a time, and write.
            for wave in (0..n_chunks).step_by(WAVE_CHUNKS) {
                let chunks: Vec<Chunk> = (wave..(wave + WAVE_CHUNKS).min(n_chunks))
                    .into_par_iter()
                    .map(|ci| {
                        let mut c = chunk(ci);
                        order_chunk(&mut c);
                        c
                    })
                    .collect();
                for c in chunks {
                    w.pending.push(c);
                }
                w.flush()?;
            }
            w.finish()?;

            let summary = SynthSummary {
                patients: n as u64,
                events: ne as u64,
                encounters: nn as u64,
                practices: n_practices as u64,
                pcns: n_pcns as u64,
                seed: opts.seed,
                as_of: date::format_days(opts.as_of),
                period: (date::format_days(world.start), date::format_days(world.end)),
            };
            publish::write_json(&dir.join("manifest.json"), &summary)?;
            Ok(summary)
        },
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(8, 1).next_u64());
    }

    /// A frame of the given absolute rows with every kind of column the generator writes: long
    /// and short strings (plain and dictionary-encoded), a mostly null string, a number null only
    /// in the first rows (so later row groups have no validity bitmap at all), dates, booleans.
    fn frame(rows: &[usize]) -> DataFrame {
        let long: Vec<String> = rows
            .iter()
            .map(|&k| format!("{:016x}", mix(k as u64)))
            .collect();
        let short: Vec<&str> = rows.iter().map(|&k| ["a", "bb", "ccc"][k % 3]).collect();
        let enc: Vec<Option<String>> = rows
            .iter()
            .map(|&k| (k % 5 == 0).then(|| format!("{:016x}", k / 5)))
            .collect();
        let value: Vec<Option<f64>> = rows
            .iter()
            .map(|&k| (k >= 1500 || k % 7 != 0).then_some(k as f64 / 10.0))
            .collect();
        let day: Vec<i32> = rows.iter().map(|&k| 19000 + (k % 400) as i32).collect();
        let flag: Vec<bool> = rows.iter().map(|&k| k % 3 == 1).collect();
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("long".into(), long),
                Column::new("short".into(), short),
                Column::new("enc".into(), enc),
                Column::new("value".into(), value),
                date_col("day", day),
                Column::new("flag".into(), flag),
            ],
        )
        .unwrap()
    }

    #[test]
    fn row_group_plans_match_polars() {
        assert_eq!(row_group_plan(0, 10), Vec::<usize>::new());
        assert_eq!(row_group_plan(9, 10), vec![9]);
        assert_eq!(row_group_plan(19, 10), vec![19]);
        assert_eq!(row_group_plan(20, 10), vec![10, 10]);
        assert_eq!(row_group_plan(29, 10), vec![14, 15]);
        assert_eq!(row_group_plan(54_295_421, ROW_GROUP_ROWS).len(), 207);
    }

    #[test]
    fn writing_row_group_by_row_group_gives_the_bytes_of_writing_the_whole_frame() {
        let d = tempfile::tempdir().unwrap();
        // Targets that put group starts at every bit offset within a byte.
        for (rows, target) in [
            (0, 1001),
            (5, 1001),
            (1000, 1001),
            (2003, 1001),
            (10_499, 1001),
            (7_777, 333),
        ] {
            let mut whole = frame(&(0..rows).collect::<Vec<_>>());
            let mut expected = Vec::new();
            ParquetWriter::new(&mut expected)
                .with_compression(ParquetCompression::Zstd(None))
                .with_row_group_size(Some(target))
                .finish(&mut whole)
                .unwrap();
            let mut w =
                GroupedWriter::create(d.path(), "t.parquet", whole.schema(), rows, target).unwrap();
            let mut start = 0;
            while let Some(n) = w.wanted() {
                let pad = w.padding();
                let idx: Vec<usize> = std::iter::repeat_n(start, pad)
                    .chain(start..start + n)
                    .collect();
                w.write_next(&frame(&idx)).unwrap();
                start += n;
            }
            w.finish().unwrap();
            let got = std::fs::read(d.path().join("t.parquet")).unwrap();
            assert!(got == expected, "{rows} rows in groups of {target}");
        }
    }

    #[test]
    fn a_row_group_of_the_wrong_size_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let whole = frame(&[0, 1, 2]);
        let mut w = GroupedWriter::create(d.path(), "t.parquet", whole.schema(), 3, 10).unwrap();
        assert!(matches!(
            w.write_next(&frame(&[0, 1])),
            Err(SynthError::Internal(_))
        ));
        assert!(matches!(w.finish(), Err(SynthError::Internal(_))));
    }

    #[test]
    fn poisson_mean_is_right() {
        let mut r = Rng::new(1, 1);
        for lambda in [0.3, 4.7, 60.0] {
            let n = 20000;
            let mean: f64 = (0..n).map(|_| r.poisson(lambda) as f64).sum::<f64>() / n as f64;
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.02,
                "{lambda}: {mean}"
            );
        }
    }
}
