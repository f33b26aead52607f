//! Who a run is about: each patient's eligibility [`Status`], and the derived groupings every
//! output shares (five-year age band, IMD quintile, Core20).
//!
//! Pipeline position: `features` (ages and vital states at the as-of date) -> **population** ->
//! `lists`, `tables`, `output`. No dates are compared here: `features` is the only module that
//! looks at time; this one applies the list's age rule to what `features` found.

use crate::features::Vital;

/// Where a patient stands at the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Alive, born, old enough: counted and possibly listed.
    Eligible,
    /// Younger than the list's minimum age.
    TooYoung,
    /// Died on or before the as-of date.
    Deceased,
    /// Born after the as-of date (a back-test at a past date).
    NotYetBorn,
}

impl Status {
    /// Name used in the scores file.
    pub fn name(self) -> &'static str {
        match self {
            Status::Eligible => "eligible",
            Status::TooYoung => "below_min_age",
            Status::Deceased => "deceased",
            Status::NotYetBorn => "not_yet_born",
        }
    }
}

/// Status of every patient from their age and vital state at the as-of date: alive patients
/// aged `min_age` or over are eligible.
pub fn statuses(ages: &[i32], vitals: &[Vital], min_age: i32) -> Vec<Status> {
    ages.iter()
        .zip(vitals)
        .map(|(&age, &vital)| match vital {
            Vital::NotYetBorn => Status::NotYetBorn,
            Vital::Deceased => Status::Deceased,
            Vital::Alive if age < min_age => Status::TooYoung,
            Vital::Alive => Status::Eligible,
        })
        .collect()
}

/// Age band shown on lists: five-year bands, "90+" at the top. An exact age is not needed to
/// act on a list and is one more quasi-identifier.
pub fn age_band(age: i32) -> &'static str {
    const BANDS: [&str; 19] = [
        "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49",
        "50-54", "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90+",
    ];
    BANDS[(age.clamp(0, 90) / 5) as usize]
}

/// IMD quintile (1 = most deprived fifth) from a decile; `None` when unknown.
pub fn imd_quintile(decile: u8) -> Option<u8> {
    (1..=10).contains(&decile).then(|| decile.div_ceil(2))
}

/// Core20: the most deprived 20% of the national population (IMD quintile 1).
pub fn is_core20(decile: u8) -> bool {
    imd_quintile(decile) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_and_quintiles() {
        assert_eq!(age_band(65), "65-69");
        assert_eq!(age_band(-3), "0-4");
        assert_eq!(age_band(4), "0-4");
        assert_eq!(age_band(89), "85-89");
        assert_eq!(age_band(90), "90+");
        assert_eq!(age_band(117), "90+");
        for age in 0..90 {
            let lo = (age / 5) * 5;
            assert_eq!(age_band(age), format!("{}-{}", lo, lo + 4));
        }
        assert_eq!(imd_quintile(1), Some(1));
        assert_eq!(imd_quintile(2), Some(1));
        assert_eq!(imd_quintile(3), Some(2));
        assert_eq!(imd_quintile(10), Some(5));
        assert_eq!(imd_quintile(0), None);
        assert!(is_core20(2) && !is_core20(3) && !is_core20(0));
    }
}
