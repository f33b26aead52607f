//! eFI, HFRS and Charlson: pure functions from a patient's [`Features`] to scores, categories and
//! the reasons behind them, exactly as the model files define them.
//!
//! Pipeline position: `features` -> **scores** -> `results`. No I/O, no dates: every window was
//! applied by `features`, every list and weight comes from `definitions::Definitions`.

use crate::definitions::{DeficitRule, Definitions};
use crate::features::Features;

/// eFI category (Clegg et al. 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum EfiCategory {
    /// Score up to 0.12.
    Fit,
    /// Above 0.12 up to 0.24.
    Mild,
    /// Above 0.24 up to 0.36.
    Moderate,
    /// Above 0.36.
    Severe,
}

impl EfiCategory {
    /// All categories, fittest first.
    pub const ALL: [EfiCategory; 4] = [
        EfiCategory::Fit,
        EfiCategory::Mild,
        EfiCategory::Moderate,
        EfiCategory::Severe,
    ];

    /// Lower-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            EfiCategory::Fit => "fit",
            EfiCategory::Mild => "mild",
            EfiCategory::Moderate => "moderate",
            EfiCategory::Severe => "severe",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<EfiCategory> {
        EfiCategory::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// HFRS risk band (Gilbert et al. 2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum HfrsBand {
    /// Below 5.
    Low,
    /// 5 to 15 inclusive.
    Intermediate,
    /// Above 15.
    High,
}

impl HfrsBand {
    /// Lower-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            HfrsBand::Low => "low",
            HfrsBand::Intermediate => "intermediate",
            HfrsBand::High => "high",
        }
    }
}

/// The three scores of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores {
    /// eFI deficits present (0..=36).
    pub efi_deficits: u32,
    /// eFI category.
    pub efi_category: EfiCategory,
    /// HFRS in tenths of a point (exact).
    pub hfrs_tenths: u32,
    /// HFRS band.
    pub hfrs_band: HfrsBand,
    /// Charlson index under the configured weights, after the hierarchy rules.
    pub charlson: u32,
    /// Charlson categories that scored (bit per category, after the hierarchy).
    pub charlson_mask: u32,
}

/// Score functions bound to one set of model files.
#[derive(Debug, Clone)]
pub struct Scorer<'m> {
    models: &'m Definitions,
    /// Index of the polypharmacy deficit and its threshold, if the eFI has one.
    polypharmacy: Option<(usize, u32)>,
}

impl<'m> Scorer<'m> {
    /// Bind to the loaded models.
    pub fn new(models: &'m Definitions) -> Scorer<'m> {
        let polypharmacy = models
            .efi
            .deficits
            .iter()
            .enumerate()
            .find_map(|(i, d)| match d.rule {
                DeficitRule::Polypharmacy { min_distinct, .. } => Some((i, min_distinct)),
                DeficitRule::Codes => None,
            });
        Scorer {
            models,
            polypharmacy,
        }
    }

    /// Number of eFI deficits (the denominator, 36 for the published eFI).
    pub fn efi_denominator(&self) -> u32 {
        self.models.efi.deficits.len() as u32
    }

    /// Bit mask of all deficits present, polypharmacy included (bit = deficit index).
    pub fn efi_mask(&self, f: &Features) -> u64 {
        let mut m = f.efi_coded;
        if let Some((i, min)) = self.polypharmacy {
            if f.medicines as u32 >= min {
                m |= 1 << i;
            }
        }
        m
    }

    /// eFI category of a deficit count, from the model's cut-points.
    pub fn efi_category(&self, deficits: u32) -> EfiCategory {
        let [fit, mild, moderate] = self.models.efi.category_max_count;
        if deficits <= fit {
            EfiCategory::Fit
        } else if deficits <= mild {
            EfiCategory::Mild
        } else if deficits <= moderate {
            EfiCategory::Moderate
        } else {
            EfiCategory::Severe
        }
    }

    /// HFRS band of a score in tenths.
    pub fn hfrs_band(&self, tenths: u32) -> HfrsBand {
        let h = &self.models.hfrs;
        if tenths < h.intermediate_from_tenths {
            HfrsBand::Low
        } else if tenths <= h.high_above_tenths {
            HfrsBand::Intermediate
        } else {
            HfrsBand::High
        }
    }

    /// Charlson categories that score once the hierarchy is applied.
    pub fn charlson_scoring(&self, present: u32) -> u32 {
        let mut m = present;
        for &(milder, severe) in &self.models.charlson.hierarchy {
            if present & (1 << severe) != 0 {
                m &= !(1 << milder);
            }
        }
        m
    }

    /// All scores of one patient.
    pub fn score(&self, f: &Features) -> Scores {
        let efi_deficits = self.efi_mask(f).count_ones();
        let mut hfrs_tenths = 0;
        let mut bits = f.hfrs;
        while bits != 0 {
            let c = bits.trailing_zeros() as usize;
            hfrs_tenths += self.models.hfrs.categories[c].weight_tenths;
            bits &= bits - 1;
        }
        let charlson_mask = self.charlson_scoring(f.charlson);
        let charlson = self
            .models
            .charlson
            .categories
            .iter()
            .enumerate()
            .filter(|(i, _)| charlson_mask & (1 << i) != 0)
            .map(|(_, c)| c.weight)
            .sum();
        Scores {
            efi_deficits,
            efi_category: self.efi_category(efi_deficits),
            hfrs_tenths,
            hfrs_band: self.hfrs_band(hfrs_tenths),
            charlson,
            charlson_mask,
        }
    }

    /// Names of the eFI deficits present, in model-file order ("Falls; Hypertension").
    pub fn efi_reasons(&self, f: &Features) -> String {
        let m = self.efi_mask(f);
        let names: Vec<&str> = self
            .models
            .efi
            .deficits
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .map(|(_, d)| d.name.as_str())
            .collect();
        names.join("; ")
    }

    /// Names of up to `n` eFI deficits present, lower case, the ones a care team acts on first
    /// ([`SALIENT_DEFICITS`] in that order, then the others in model-file order): `["falls",
    /// "mobility and transfer problems", "polypharmacy"]`.
    pub fn efi_salient(&self, f: &Features, n: usize) -> Vec<String> {
        let m = self.efi_mask(f);
        let deficits = &self.models.efi.deficits;
        let present = |i: &usize| m & (1 << i) != 0;
        let salient = SALIENT_DEFICITS
            .iter()
            .filter_map(|slug| deficits.iter().position(|d| d.slug == *slug))
            .filter(present);
        let others = (0..deficits.len())
            .filter(present)
            .filter(|i| !SALIENT_DEFICITS.contains(&deficits[*i].slug.as_str()));
        salient
            .chain(others)
            .take(n)
            .map(|i| deficits[i].name.to_lowercase())
            .collect()
    }

    /// HFRS categories coded, heaviest first, ties by code ("F05 Delirium (3.2); ...").
    pub fn hfrs_reasons(&self, f: &Features) -> String {
        let mut cats: Vec<&crate::definitions::HfrsCategory> = (0..128)
            .filter(|c| f.hfrs & (1u128 << c) != 0)
            .map(|c| &self.models.hfrs.categories[c])
            .collect();
        cats.sort_by(|a, b| {
            b.weight_tenths
                .cmp(&a.weight_tenths)
                .then(a.code.cmp(&b.code))
        });
        cats.iter()
            .map(|c| {
                format!(
                    "{} {} ({}.{})",
                    c.code,
                    c.description,
                    c.weight_tenths / 10,
                    c.weight_tenths % 10
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Charlson conditions that scored, in model-file order.
    pub fn charlson_reasons(&self, s: &Scores) -> String {
        self.models
            .charlson
            .categories
            .iter()
            .enumerate()
            .filter(|(i, _)| s.charlson_mask & (1 << i) != 0)
            .map(|(_, c)| c.name.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// eFI deficits (by slug) named first when a list says why someone is on it: those that most
/// change what a proactive care team does (falls, fractures, mobility, cognition, being
/// housebound or needing care, many medicines).
pub const SALIENT_DEFICITS: [&str; 9] = [
    "falls",
    "fragility-fracture",
    "mobility-problems",
    "cognitive-problems",
    "housebound",
    "care-requirement",
    "polypharmacy",
    "activity-limitation",
    "weight-loss",
];

/// Format tenths as a decimal string ("7.1").
pub fn tenths_str(t: u32) -> String {
    format!("{}.{}", t / 10, t % 10)
}
