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
    /// The eFI deficits in the order [`Scorer::efi_salient`] names them (the
    /// [`SALIENT_DEFICITS`] found, then the others in model-file order), with their names in
    /// lower case: worked out when the scorer is made, not for every listed patient.
    salient: Vec<(usize, String)>,
    /// The HFRS categories in the order [`Scorer::hfrs_reasons`] gives them (heaviest first,
    /// ties by code), each with its text ("F05 Delirium (3.2)").
    hfrs_order: Vec<(usize, String)>,
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
        let deficits = &models.efi.deficits;
        let salient = SALIENT_DEFICITS
            .iter()
            .filter_map(|slug| deficits.iter().position(|d| d.slug == *slug))
            .chain(
                (0..deficits.len())
                    .filter(|i| !SALIENT_DEFICITS.contains(&deficits[*i].slug.as_str())),
            )
            .map(|i| (i, deficits[i].name.to_lowercase()))
            .collect();
        let cats = &models.hfrs.categories;
        let mut order: Vec<usize> = (0..cats.len().min(128)).collect();
        order.sort_by(|&a, &b| {
            cats[b]
                .weight_tenths
                .cmp(&cats[a].weight_tenths)
                .then(cats[a].code.cmp(&cats[b].code))
        });
        let hfrs_order = order
            .into_iter()
            .map(|c| {
                let c_ = &cats[c];
                let text = format!(
                    "{} {} ({}.{})",
                    c_.code,
                    c_.description,
                    c_.weight_tenths / 10,
                    c_.weight_tenths % 10
                );
                (c, text)
            })
            .collect();
        Scorer {
            models,
            polypharmacy,
            salient,
            hfrs_order,
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
        let mut out = String::new();
        self.write_efi_reasons(f, &mut out);
        out
    }

    /// [`Scorer::efi_reasons`] appended to `out` (a list column is written into one buffer).
    pub fn write_efi_reasons(&self, f: &Features, out: &mut String) {
        let m = self.efi_mask(f);
        let present = self.models.efi.deficits.iter().enumerate();
        joined(
            out,
            present.filter(|(i, _)| m & (1 << i) != 0),
            |out, (_, d)| out.push_str(&d.name),
        );
    }

    /// Names of up to `n` eFI deficits present, lower case, the ones a care team acts on first
    /// ([`SALIENT_DEFICITS`] in that order, then the others in model-file order): `["falls",
    /// "mobility and transfer problems", "polypharmacy"]`.
    pub fn efi_salient(&self, f: &Features, n: usize) -> Vec<&str> {
        let m = self.efi_mask(f);
        self.salient
            .iter()
            .filter(|(i, _)| m & (1 << i) != 0)
            .take(n)
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// HFRS categories coded, heaviest first, ties by code ("F05 Delirium (3.2); ...").
    pub fn hfrs_reasons(&self, f: &Features) -> String {
        let mut out = String::new();
        self.write_hfrs_reasons(f, &mut out);
        out
    }

    /// [`Scorer::hfrs_reasons`] appended to `out`.
    pub fn write_hfrs_reasons(&self, f: &Features, out: &mut String) {
        let coded = self
            .hfrs_order
            .iter()
            .filter(|(c, _)| f.hfrs & (1u128 << c) != 0);
        joined(out, coded, |out, (_, text)| out.push_str(text));
    }

    /// Charlson conditions that scored, in model-file order.
    pub fn charlson_reasons(&self, s: &Scores) -> String {
        let mut out = String::new();
        self.write_charlson_reasons(s, &mut out);
        out
    }

    /// [`Scorer::charlson_reasons`] appended to `out`.
    pub fn write_charlson_reasons(&self, s: &Scores, out: &mut String) {
        let cats = self.models.charlson.categories.iter().enumerate();
        let scored = cats.filter(|(i, _)| s.charlson_mask & (1 << i) != 0);
        joined(out, scored, |out, (_, c)| out.push_str(&c.name));
    }
}

/// Each of `items` written into `out` by `write`, separated by "; ".
fn joined<T>(out: &mut String, items: impl Iterator<Item = T>, write: impl Fn(&mut String, T)) {
    for (k, item) in items.enumerate() {
        if k > 0 {
            out.push_str("; ");
        }
        write(out, item);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn defs() -> Definitions {
        Definitions::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))).unwrap()
    }

    fn slug(d: &Definitions, s: &str) -> usize {
        d.efi.deficits.iter().position(|x| x.slug == s).unwrap()
    }

    #[test]
    fn salient_deficits_come_first_then_model_file_order() {
        let d = defs();
        let scorer = Scorer::new(&d);
        // Two deficits that are not salient (first in the file), and two salient ones whose
        // order there (housebound before mobility problems) is not SALIENT_DEFICITS' order.
        let others: Vec<usize> = (0..d.efi.deficits.len())
            .filter(|&i| !SALIENT_DEFICITS.contains(&d.efi.deficits[i].slug.as_str()))
            .take(2)
            .collect();
        let (housebound, mobility) = (slug(&d, "housebound"), slug(&d, "mobility-problems"));
        assert!(others[1] < housebound && housebound < mobility);
        let mut f = Features::default();
        for i in [others[1], others[0], housebound, mobility] {
            f.efi_coded |= 1 << i;
        }
        let name = |i: usize| d.efi.deficits[i].name.to_lowercase();
        assert_eq!(
            scorer.efi_salient(&f, 3),
            vec![name(mobility), name(housebound), name(others[0])]
        );
        assert_eq!(scorer.efi_salient(&f, 9).len(), 4);
        // Every deficit present, by its published name, in model-file order.
        let mut by_file = [others[0], others[1], housebound, mobility];
        by_file.sort_unstable();
        let want: Vec<&str> = by_file
            .iter()
            .map(|&i| d.efi.deficits[i].name.as_str())
            .collect();
        assert_eq!(scorer.efi_reasons(&f), want.join("; "));
        assert_eq!(scorer.efi_reasons(&Features::default()), "");
    }

    #[test]
    fn hfrs_and_charlson_reasons_name_what_scored_heaviest_first() {
        let d = defs();
        let scorer = Scorer::new(&d);
        let cats = &d.hfrs.categories;
        let find = |code: &str| cats.iter().position(|c| c.code == code).unwrap();
        let mut f = Features::default();
        // N39 and F05 weigh 3.2 each, N39 first in the file: ties go by code; R54 weighs less.
        for c in ["R54", "N39", "F05"] {
            f.hfrs |= 1u128 << find(c);
        }
        // The published weights (models/hfrs/weights.tsv, Gilbert et al. 2018).
        assert_eq!(
            scorer.hfrs_reasons(&f),
            "F05 Delirium, not induced by alcohol and other psychoactive substances (3.2); \
             N39 Other disorders of urinary system (includes urinary tract infection and urinary \
             incontinence) (3.2); R54 Senility (2.2)"
        );
        let s = Scores {
            charlson_mask: 0b101,
            ..scorer.score(&Features::default())
        };
        let ch = &d.charlson.categories;
        assert_eq!(
            scorer.charlson_reasons(&s),
            format!("{}; {}", ch[0].name, ch[2].name)
        );
    }
}
