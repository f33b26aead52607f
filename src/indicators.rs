//! Population-health indicators an ICS tracks, per PCN and ICS-wide, from the cohort's own
//! history in the 12 months ending on the as-of date: emergency admissions per 1,000 people aged
//! 65+, falls admissions per 100,000 aged 65+ (crude, and directly age-standardised to the 2013
//! European Standard Population as OHID publishes it, with the age bands behind it), the share of
//! deaths in hospital, and the share of deaths with three or more emergency admissions in the
//! last 90 days of life.
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
//! - an emergency admission: an emergency spell (`cohort::Spells`: transfers and nested stays
//!   are one admission) admitted in the window; a falls admission: one whose primary diagnosis is
//!   an injury (S00-T98) with a fall (W00-W19) recorded on it, by the as-of date (OHID PHOF C29,
//!   the falls outcome's definition too). Both are counts of admissions, not of people;
//! - the age bands of the standardised rate: age on the window's first day, 65-69 to 90+
//!   (`models/hospital/esp2013.tsv`); a band with nobody in it adds nothing to the rate;
//! - a death: a death date in the window; in hospital: the death date falls within a spell
//!   (admission to discharge date inclusive, any admission method); three or more emergency
//!   admissions in the last 90 days of life: spells admitted from 89 days before the death date
//!   up to it.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::cohort::Cohort;
use crate::date;
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
pub const QUANTITIES: [&str; 10 + 2 * BANDS.len()] = [
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
    "people_65_69",
    "people_70_74",
    "people_75_79",
    "people_80_84",
    "people_85_89",
    "people_90_plus",
    "falls_admissions_65_69",
    "falls_admissions_70_74",
    "falls_admissions_75_79",
    "falls_admissions_80_84",
    "falls_admissions_85_89",
    "falls_admissions_90_plus",
];

/// The age bands of the standardised falls rate (first age of each; the last is open), as in
/// `models/hospital/esp2013.tsv` (a test checks the file has these).
pub const BANDS: [i32; 6] = [65, 70, 75, 80, 85, 90];

/// The band of an age (65 or over).
pub fn band(age: i32) -> usize {
    BANDS.iter().rposition(|&a| age >= a).unwrap_or(0)
}

/// The 2013 European Standard Population's weights of [`BANDS`], from the data file.
pub fn esp2013() -> &'static [u64; 6] {
    static W: std::sync::OnceLock<[u64; 6]> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        let text = include_str!("../models/hospital/esp2013.tsv");
        let mut w = [0u64; 6];
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .skip(1)
        {
            let f: Vec<&str> = line.split('\t').collect();
            if let (Some(Ok(from)), Some(Ok(weight))) = (
                f.first().map(|x| x.trim().parse::<i32>()),
                f.get(2).map(|x| x.trim().parse::<u64>()),
            ) {
                if let Some(b) = BANDS.iter().position(|&a| a == from) {
                    w[b] = weight;
                }
            }
        }
        w
    })
}

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
    /// People of each age band ([`super::BANDS`]): `PEOPLE_BAND + b`.
    pub const PEOPLE_BAND: usize = 10;
    /// Falls admissions of each age band: `FALLS_BAND + b`.
    pub const FALLS_BAND: usize = 16;
}

/// Number of counted quantities per area.
pub const WIDTH: usize = QUANTITIES.len();

/// How an indicator's rate is computed from the published cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Numerator x per / denominator.
    Crude,
    /// Directly age-standardised: the [`BANDS`]' rates weighted by [`esp2013`].
    Standardised,
}

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
    /// How the rate is computed.
    pub rate: Rate,
}

const fn band_indicator(name: &'static str, b: usize) -> Indicator {
    Indicator {
        name,
        numerator: q::FALLS_BAND + b,
        denominator: q::PEOPLE_BAND + b,
        per: 100_000,
        unit: "falls admissions per 100,000 people of the age band (the standardised rate's parts)",
        rate: Rate::Crude,
    }
}

/// The indicators, in file order: four headline ones, the falls rate standardised, and the age
/// bands behind it (so that it can be recomputed).
pub const INDICATORS: [Indicator; 5 + BANDS.len()] = [
    Indicator {
        name: "emergency_admissions_65_plus",
        numerator: q::EMERGENCY,
        denominator: q::PEOPLE,
        per: 1_000,
        unit: "emergency admissions (spells) per 1,000 people aged 65+",
        rate: Rate::Crude,
    },
    Indicator {
        name: "falls_admissions_65_plus",
        numerator: q::FALLS,
        denominator: q::PEOPLE,
        per: 100_000,
        unit: "emergency admissions due to falls (OHID PHOF C29 definition) per 100,000 people aged 65+, crude",
        rate: Rate::Crude,
    },
    Indicator {
        name: "falls_admissions_65_plus_age_standardised",
        numerator: q::FALLS,
        denominator: q::PEOPLE,
        per: 100_000,
        unit: "emergency admissions due to falls (OHID PHOF C29 definition) per 100,000 people aged 65+, directly age-standardised to the 2013 European Standard Population (as OHID publishes C29)",
        rate: Rate::Standardised,
    },
    Indicator {
        name: "deaths_in_hospital",
        numerator: q::IN_HOSPITAL,
        denominator: q::DEATHS,
        per: 100,
        unit: "% of deaths aged 65+",
        rate: Rate::Crude,
    },
    Indicator {
        name: "deaths_with_3_or_more_emergency_admissions_in_last_90_days",
        numerator: q::THREE_PLUS,
        denominator: q::DEATHS,
        per: 100,
        unit: "% of deaths aged 65+",
        rate: Rate::Crude,
    },
    band_indicator("falls_admissions_65_69", 0),
    band_indicator("falls_admissions_70_74", 1),
    band_indicator("falls_admissions_75_79", 2),
    band_indicator("falls_admissions_80_84", 3),
    band_indicator("falls_admissions_85_89", 4),
    band_indicator("falls_admissions_90_plus", 5),
];

/// The relations within one area's row: `(total, parts)`.
pub fn row_relations() -> Vec<(usize, Vec<usize>)> {
    vec![
        (q::PEOPLE, vec![q::DEATHS, q::SURVIVORS]),
        (q::EMERGENCY, vec![q::FALLS, q::OTHER_EMERGENCY]),
        (q::DEATHS, vec![q::IN_HOSPITAL, q::ELSEWHERE]),
        (q::DEATHS, vec![q::THREE_PLUS, q::FEWER]),
        (
            q::PEOPLE,
            (0..BANDS.len()).map(|b| q::PEOPLE_BAND + b).collect(),
        ),
        (
            q::FALLS,
            (0..BANDS.len()).map(|b| q::FALLS_BAND + b).collect(),
        ),
    ]
}

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
            from: date::window_start(as_of, 12),
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
fn patient(cohort: &Cohort, w: Window, p: usize) -> [u64; WIDTH] {
    let mut c = [0u64; WIDTH];
    let pa = &cohort.patients;
    let (birth, death) = (pa.birth[p], pa.death[p]);
    let age = date::age_years(birth, w.from);
    if birth > w.from || age < MIN_AGE || death < w.from {
        return c;
    }
    let b = band(age);
    c[q::PEOPLE] = 1;
    c[q::PEOPLE_BAND + b] = 1;
    let sp = &cohort.spells;
    let died = death <= w.to;
    let (mut in_hospital, mut last_admissions) = (false, 0u32);
    for s in sp.of(p) {
        let (start, end, emergency) = (sp.start[s], sp.end[s], sp.emergency[s]);
        if start > w.to {
            continue;
        }
        if emergency && start >= w.from {
            c[q::EMERGENCY] += 1;
            // Records after the window (the as-of date) never count.
            if sp.falls_by(s, w.to) {
                c[q::FALLS] += 1;
                c[q::FALLS_BAND + b] += 1;
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
    let pa = &cohort.patients;
    let npcn = pa.pcns.len();
    let by_pcn = (0..pa.len())
        .into_par_iter()
        .with_min_len(4096)
        .fold(
            || vec![[0u64; WIDTH]; npcn],
            |mut acc, p| {
                let c = patient(cohort, w, p);
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
            for (t, parts) in row_relations() {
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

/// The directly age-standardised rate per `per` as published, from the published band cells
/// (`people`, `falls`: [`BANDS`] order): `None` when any is suppressed, `Some(None)` when nobody
/// is in any band, else to one decimal place, halves rounded up, computed exactly. A band with
/// nobody in it adds nothing.
pub fn standardised_rate(
    people: &[Option<u64>],
    falls: &[Option<u64>],
    per: u64,
) -> Option<Option<String>> {
    let w = esp2013();
    let total: u128 = w.iter().map(|&x| u128::from(x)).sum();
    // The rate is sum_b w_b f_b / n_b / total: exact as a fraction over the product of the
    // non-empty bands' people.
    let mut num: u128 = 0;
    let mut den: u128 = 1;
    let mut any = false;
    for (b, &weight) in w.iter().enumerate() {
        let (n, f) = (people.get(b).copied()??, falls.get(b).copied()??);
        if n == 0 {
            continue;
        }
        any = true;
        // num/den + w f / n = (num n + w f den) / (den n)
        num = num * u128::from(n) + u128::from(weight) * u128::from(f) * den;
        den *= u128::from(n);
    }
    if !any {
        return Some(None);
    }
    let (num, den) = (num * u128::from(per), den * total);
    let tenths = (num * 20 + den) / (2 * den);
    Some(Some(format!("{}.{}", tenths / 10, tenths % 10)))
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
    fn the_standard_population_is_the_2013_esp() {
        assert_eq!(esp2013(), &[5500, 5000, 4000, 2500, 1500, 1000]);
        assert_eq!(esp2013().iter().sum::<u64>(), 19_500);
        assert_eq!(
            [64, 65, 69, 70, 89, 90, 104].map(band),
            [0, 0, 0, 1, 4, 5, 5]
        );
    }

    #[test]
    fn the_standardised_rate_is_worked_by_hand() {
        let some = |v: [u64; 6]| v.map(Some);
        // Band rates 1/100, 0, 2/50, 0, 0, 1/10 per person: (5500 x 0.01 + 4000 x 0.04 +
        // 1000 x 0.1) / 19500 = 315 / 19500 = 1615.38... per 100,000.
        assert_eq!(
            standardised_rate(
                &some([100, 80, 50, 20, 5, 10]),
                &some([1, 0, 2, 0, 0, 1]),
                100_000
            ),
            Some(Some("1615.4".into()))
        );
        // Falls in the first band only: 5500 x 0.02 / 19500 = 564.1 per 100,000, whatever the
        // other bands' sizes.
        assert_eq!(
            standardised_rate(
                &some([1000, 10, 10, 10, 10, 10]),
                &some([20, 0, 0, 0, 0, 0]),
                100_000
            )
            .unwrap()
            .unwrap(),
            "564.1"
        );
        // An empty band adds nothing; nobody at all is [z]; a hidden cell hides the rate.
        assert_eq!(
            standardised_rate(&some([0; 6]), &some([0; 6]), 100_000),
            Some(None)
        );
        let mut hidden = some([10; 6]);
        hidden[3] = None;
        assert_eq!(standardised_rate(&hidden, &some([1; 6]), 100_000), None);
    }

    #[test]
    fn counts_of_partitions_add_up_and_relations_hold() {
        let mut a = IndicatorCounts::default();
        let row = |head: [u64; 10], people: [u64; 6], falls: [u64; 6]| {
            let mut r = [0u64; WIDTH];
            r[..10].copy_from_slice(&head);
            r[10..16].copy_from_slice(&people);
            r[16..].copy_from_slice(&falls);
            r
        };
        a.rows.insert(
            "P1".into(),
            row(
                [10, 8, 5, 1, 4, 2, 1, 1, 0, 2],
                [4, 2, 2, 1, 1, 0],
                [1, 0, 0, 0, 0, 0],
            ),
        );
        let mut b = IndicatorCounts::default();
        b.rows.insert(
            "P2".into(),
            row(
                [20, 17, 9, 2, 7, 3, 2, 1, 1, 2],
                [5, 5, 4, 3, 2, 1],
                [0, 0, 1, 0, 1, 0],
            ),
        );
        a.add(&b);
        let t = a.table();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[2].0, "ALL");
        assert_eq!(
            &t.cells[2 * WIDTH..2 * WIDTH + 10],
            &[30, 25, 14, 3, 11, 5, 3, 2, 1, 4]
        );
        assert_eq!(
            &t.cells[2 * WIDTH + 10..2 * WIDTH + 16],
            &[9, 7, 6, 4, 3, 1]
        );
        for r in &t.relations {
            let sum: u64 = r.parts.iter().map(|&i| t.cells[i]).sum();
            assert_eq!(t.cells[r.total], sum, "{r:?}");
        }
        assert_eq!(t.relations.len(), 3 * 6 + WIDTH);
        assert_eq!(t.populations[0], "indicators:pcn=P1");
    }
}
