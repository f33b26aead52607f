//! Population-health indicators an ICS tracks, per PCN and ICS-wide, from the cohort's own
//! history in the 12 months ending on the as-of date: emergency admissions per 1,000 people aged
//! 65+, falls admissions per 100,000 aged 65+, the share of deaths in hospital, and the share of
//! deaths with three or more emergency admissions in the last 90 days of life.
//!
//! Pipeline position: `cohort` -> **indicators** -> `disclosure` (with the summary and equity
//! tables, as one grid) -> `output` (`indicators.csv`). Like `tables`, it only counts: per-PCN
//! [`IndicatorCounts`] add up across partitions of a cohort, and [`IndicatorCounts::table`] lays
//! them out as a [`CountedTable`] with the relations an outsider can see among the cells. Like
//! `predictors::outcomes`, it reads dates itself (the window, ages at its start, deaths): every
//! patient is counted from their own records, records after the as-of date never count.
//!
//! Definitions (README, "Population-health indicators"):
//! - the population: people aged 65 or over on the window's first day (the day after the as-of
//!   date minus 12 months) and alive on it, whatever happened after (a closed cohort: those who
//!   died during the year are in it, those who turned 65 during it are not);
//! - an emergency admission: an inpatient encounter flagged emergency that starts in the window;
//!   a falls admission: one with an ICD-10 W00-W19 diagnosis dated during the stay (admission to
//!   discharge, up to the as-of date; `predictors::falls_codes`, as the falls outcome). Both are
//!   counts of admissions, not of people;
//! - a death: a death date in the window; in hospital: the death date falls within an inpatient
//!   stay (admission to discharge date inclusive, any admission method); three or more emergency
//!   admissions in the last 90 days of life: starting from 89 days before the death date up to it.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::cohort::{Cohort, Setting};
use crate::date;
use crate::predictors::{falls_codes, falls_days, falls_within};
use crate::tables::{CountedTable, Relation};

/// Youngest age (on the window's first day) in the indicators' population.
pub const MIN_AGE: i32 = 65;
/// Days of "the last 90 days of life", the day of death included.
pub const LAST_DAYS: i32 = 90;
/// Emergency admissions in the last days of life that count (three or more).
pub const MIN_LAST_ADMISSIONS: u32 = 3;

/// The counted quantities of one area, in cell order. Some are never printed: they are what an
/// outsider gets by subtracting printed ones (people minus deaths, emergency minus falls
/// admissions, deaths minus those in hospital, deaths minus those with three or more
/// admissions), counted so that disclosure control protects them like any other count.
pub const QUANTITIES: [&str; 10] = [
    "people",
    "people_alive_at_as_of",
    "emergency_admissions",
    "falls_admissions",
    "other_emergency_admissions",
    "deaths",
    "deaths_in_hospital",
    "deaths_elsewhere",
    "deaths_3_or_more_admissions",
    "deaths_fewer_admissions",
];

/// Index of each quantity in [`QUANTITIES`].
pub mod q {
    /// People aged 65+ alive on the window's first day.
    pub const PEOPLE: usize = 0;
    /// Of them, alive at the as-of date (never printed).
    pub const SURVIVORS: usize = 1;
    /// Their emergency admissions in the window.
    pub const EMERGENCY: usize = 2;
    /// Of which falls admissions.
    pub const FALLS: usize = 3;
    /// Of which not falls admissions (never printed).
    pub const OTHER_EMERGENCY: usize = 4;
    /// Their deaths in the window.
    pub const DEATHS: usize = 5;
    /// Of which in hospital.
    pub const IN_HOSPITAL: usize = 6;
    /// Of which elsewhere (never printed).
    pub const ELSEWHERE: usize = 7;
    /// Of which with 3+ emergency admissions in the last 90 days of life.
    pub const THREE_PLUS: usize = 8;
    /// Of which with fewer (never printed).
    pub const FEWER: usize = 9;
}

/// Number of counted quantities per area.
pub const WIDTH: usize = QUANTITIES.len();

/// One published indicator: a numerator and a denominator quantity and how the rate is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indicator {
    /// Name in `indicators.csv`.
    pub name: &'static str,
    /// Numerator quantity (index into [`QUANTITIES`]).
    pub numerator: usize,
    /// Denominator quantity.
    pub denominator: usize,
    /// The rate is numerator x this / denominator.
    pub per: u64,
    /// The rate's unit in words.
    pub unit: &'static str,
}

/// The four indicators, in file order.
pub const INDICATORS: [Indicator; 4] = [
    Indicator {
        name: "emergency_admissions_65_plus",
        numerator: q::EMERGENCY,
        denominator: q::PEOPLE,
        per: 1_000,
        unit: "admissions per 1,000 people aged 65+",
    },
    Indicator {
        name: "falls_admissions_65_plus",
        numerator: q::FALLS,
        denominator: q::PEOPLE,
        per: 100_000,
        unit: "admissions per 100,000 people aged 65+",
    },
    Indicator {
        name: "deaths_in_hospital",
        numerator: q::IN_HOSPITAL,
        denominator: q::DEATHS,
        per: 100,
        unit: "% of deaths aged 65+",
    },
    Indicator {
        name: "deaths_with_3_or_more_emergency_admissions_in_last_90_days",
        numerator: q::THREE_PLUS,
        denominator: q::DEATHS,
        per: 100,
        unit: "% of deaths aged 65+",
    },
];

/// The relations within one area's row: `(total, parts)`.
pub const ROW_RELATIONS: [(usize, [usize; 2]); 4] = [
    (q::PEOPLE, [q::DEATHS, q::SURVIVORS]),
    (q::EMERGENCY, [q::FALLS, q::OTHER_EMERGENCY]),
    (q::DEATHS, [q::IN_HOSPITAL, q::ELSEWHERE]),
    (q::DEATHS, [q::THREE_PLUS, q::FEWER]),
];

/// Label of the ICS-wide row (as in `summary.csv`).
pub const ALL: &str = "ALL";
/// Value of the second label column: who the row counts.
pub const POPULATION: &str = "aged_65_plus";

/// The window of the indicators: the 12 months ending on the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First day (the day after the as-of date minus 12 months).
    pub from: i32,
    /// Last day (the as-of date).
    pub to: i32,
}

impl Window {
    /// The 12 months ending on `as_of`.
    pub fn new(as_of: i32) -> Window {
        Window {
            from: date::minus_months(as_of, 12) + 1,
            to: as_of,
        }
    }
}

/// The counts per PCN code: plain numbers, addable across partitions of a cohort.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndicatorCounts {
    /// Per PCN code, the [`QUANTITIES`].
    pub rows: BTreeMap<String, [u64; WIDTH]>,
}

/// What one patient adds to their PCN's counts.
fn patient(cohort: &Cohort, falls: &[bool], w: Window, p: usize) -> [u64; WIDTH] {
    let mut c = [0u64; WIDTH];
    let pa = &cohort.patients;
    let (birth, death) = (pa.birth[p], pa.death[p]);
    if birth > w.from || date::age_years(birth, w.from) < MIN_AGE || death < w.from {
        return c;
    }
    c[q::PEOPLE] = 1;
    let en = &cohort.encounters;
    let died = death <= w.to;
    let (mut in_hospital, mut last_admissions) = (false, 0u32);
    // The patient's falls-code days, from one pass over their events at the first admission.
    let mut fall_days: Option<Vec<i32>> = None;
    for e in en.offsets[p] as usize..en.offsets[p + 1] as usize {
        let (start, end) = (en.start[e], en.end[e]);
        if en.setting[e] != Setting::Inpatient || start > w.to {
            continue;
        }
        let emergency = en.emergency[e];
        if emergency && start >= w.from {
            c[q::EMERGENCY] += 1;
            // Records after the window (the as-of date) never count.
            let days = fall_days.get_or_insert_with(|| falls_days(cohort, falls, p));
            if falls_within(days, start, end.min(w.to)) {
                c[q::FALLS] += 1;
            }
        }
        if died {
            in_hospital |= start <= death && death <= end;
            if emergency && start <= death && start > death - LAST_DAYS {
                last_admissions += 1;
            }
        }
    }
    c[q::OTHER_EMERGENCY] = c[q::EMERGENCY] - c[q::FALLS];
    if died {
        c[q::DEATHS] = 1;
        c[q::IN_HOSPITAL] = in_hospital as u64;
        c[q::ELSEWHERE] = !in_hospital as u64;
        c[q::THREE_PLUS] = (last_admissions >= MIN_LAST_ADMISSIONS) as u64;
        c[q::FEWER] = (last_admissions < MIN_LAST_ADMISSIONS) as u64;
    } else {
        c[q::SURVIVORS] = 1;
    }
    c
}

/// Count the indicators of `cohort` at `as_of`, per PCN. Every PCN of the cohort has its row,
/// even when nobody in it is aged 65+.
pub fn count(cohort: &Cohort, as_of: i32) -> IndicatorCounts {
    let w = Window::new(as_of);
    let falls = falls_codes(cohort);
    let pa = &cohort.patients;
    let npcn = pa.pcns.len();
    let by_pcn = (0..pa.len())
        .into_par_iter()
        .with_min_len(4096)
        .fold(
            || vec![[0u64; WIDTH]; npcn],
            |mut acc, p| {
                let c = patient(cohort, &falls, w, p);
                for (a, v) in acc[pa.pcn[p] as usize].iter_mut().zip(c) {
                    *a += v;
                }
                acc
            },
        )
        .reduce(
            || vec![[0u64; WIDTH]; npcn],
            |mut a, b| {
                for (ra, rb) in a.iter_mut().zip(&b) {
                    for (x, y) in ra.iter_mut().zip(rb) {
                        *x += y;
                    }
                }
                a
            },
        );
    IndicatorCounts {
        rows: pa.pcns.iter().cloned().zip(by_pcn).collect(),
    }
}

impl IndicatorCounts {
    /// Add another partition's counts: rows of the same PCN are summed, new ones added.
    pub fn add(&mut self, other: &IndicatorCounts) {
        for (pcn, v) in &other.rows {
            let row = self.rows.entry(pcn.clone()).or_insert([0; WIDTH]);
            for (a, b) in row.iter_mut().zip(v) {
                *a += b;
            }
        }
    }

    /// Lay the counts out for protection: one row per PCN (code order), then the ICS-wide
    /// (`ALL`) row, [`WIDTH`] cells each; relations: each row's [`ROW_RELATIONS`], and every
    /// quantity's PCN rows adding up to the `ALL` row. Row populations are keys of this table's
    /// own (`indicators:...`): its rows count other people than the summary's (aged 65+ at the
    /// window's start, alive then), so no cell is equal to another table's.
    pub fn table(&self) -> CountedTable {
        let mut rows: Vec<(String, String)> = self
            .rows
            .keys()
            .map(|k| (k.clone(), POPULATION.to_string()))
            .collect();
        rows.push((ALL.to_string(), POPULATION.to_string()));
        let mut cells: Vec<u64> = self.rows.values().flatten().copied().collect();
        let mut total = [0u64; WIDTH];
        for v in self.rows.values() {
            for (t, x) in total.iter_mut().zip(v) {
                *t += x;
            }
        }
        cells.extend(total);
        let n = rows.len();
        let mut relations = Vec::new();
        for r in 0..n {
            for (t, parts) in ROW_RELATIONS {
                relations.push(Relation {
                    total: r * WIDTH + t,
                    parts: parts.iter().map(|&c| r * WIDTH + c).collect(),
                });
            }
        }
        let all = n - 1;
        for c in 0..WIDTH {
            relations.push(Relation {
                total: all * WIDTH + c,
                parts: (0..all).map(|r| r * WIDTH + c).collect(),
            });
        }
        let populations = rows
            .iter()
            .map(|(a, _)| {
                if a == ALL {
                    "indicators:all".to_string()
                } else {
                    format!("indicators:pcn={a}")
                }
            })
            .collect();
        CountedTable {
            label_names: ["pcn_code", "population"],
            rows,
            cells,
            relations,
            populations,
            columns: &QUANTITIES,
            links: crate::tables::Links::default(),
        }
    }
}

/// A rate as published, from the published numerator and denominator: `None` when either is
/// suppressed (the caller prints `[c]`), `Some(None)` when the denominator is 0 (`[z]`, not
/// applicable), else the rate to one decimal place, halves rounded up, computed exactly.
pub fn rate(numerator: Option<u64>, denominator: Option<u64>, per: u64) -> Option<Option<String>> {
    let (n, d) = (numerator?, denominator?);
    if d == 0 {
        return Some(None);
    }
    let tenths = (u128::from(n) * u128::from(per) * 20 + u128::from(d)) / (2 * u128::from(d));
    Some(Some(format!("{}.{}", tenths / 10, tenths % 10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_to_one_decimal_place() {
        assert_eq!(rate(Some(1), Some(3), 100), Some(Some("33.3".into())));
        assert_eq!(rate(Some(2), Some(3), 100), Some(Some("66.7".into())));
        // 1/8 = 12.5% exactly; 1/16 = 6.25% rounds half up to 6.3.
        assert_eq!(rate(Some(1), Some(16), 100), Some(Some("6.3".into())));
        assert_eq!(rate(Some(0), Some(5), 1000), Some(Some("0.0".into())));
        assert_eq!(rate(Some(7), Some(0), 100), Some(None));
        assert_eq!(rate(None, Some(10), 100), None);
        assert_eq!(rate(Some(3), None, 100), None);
    }

    #[test]
    fn counts_of_partitions_add_up_and_relations_hold() {
        let mut a = IndicatorCounts::default();
        a.rows.insert("P1".into(), [10, 8, 5, 1, 4, 2, 1, 1, 0, 2]);
        let mut b = IndicatorCounts::default();
        b.rows.insert("P2".into(), [20, 17, 9, 2, 7, 3, 2, 1, 1, 2]);
        a.add(&b);
        let t = a.table();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[2].0, "ALL");
        assert_eq!(&t.cells[20..30], &[30, 25, 14, 3, 11, 5, 3, 2, 1, 4]);
        for r in &t.relations {
            let sum: u64 = r.parts.iter().map(|&i| t.cells[i]).sum();
            assert_eq!(t.cells[r.total], sum, "{r:?}");
        }
        assert_eq!(t.relations.len(), 3 * 4 + WIDTH);
        assert_eq!(t.populations[0], "indicators:pcn=P1");
    }
}
