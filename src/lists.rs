//! Per-PCN frailty lists and the cohort summary: who is eligible, ranking, and small-number
//! suppression of aggregate tables.
//!
//! Pipeline position: `scores` -> **lists** -> `output`. Cohort-wide steps (ranking within a
//! PCN, counting) live here, after the per-patient stage, and are small.

use crate::cohort::Cohort;
use crate::date;
use crate::features::Features;
use crate::scores::{EfiCategory, Scores};

/// Who goes on a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ListRules {
    /// Youngest age (years at the as-of date) listed and counted; the eFI was developed and
    /// validated in people aged 65 and over (Clegg 2016).
    pub min_age: i32,
    /// Mildest eFI category listed.
    pub min_category: EfiCategory,
}

impl Default for ListRules {
    fn default() -> Self {
        ListRules {
            min_age: 65,
            min_category: EfiCategory::Mild,
        }
    }
}

/// Small-number rules for aggregate tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Suppression {
    /// Counts from 1 to this are suppressed (NHS publication rule: 7).
    pub max_suppressed: u64,
    /// Round every other count to the nearest multiple of this (5 for publication, as HES and
    /// OpenSAFELY do); 1 leaves counts as they are.
    pub round_to: u64,
}

impl Default for Suppression {
    fn default() -> Self {
        Suppression {
            max_suppressed: 7,
            round_to: 1,
        }
    }
}

impl Suppression {
    /// Suppression plus rounding to 5, for tables meant for publication.
    pub fn publication() -> Self {
        Suppression {
            max_suppressed: 7,
            round_to: 5,
        }
    }
}

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

/// Age in whole years at `as_of` and status of every patient.
pub fn statuses(cohort: &Cohort, as_of: i32, rules: &ListRules) -> (Vec<i32>, Vec<Status>) {
    let p = &cohort.patients;
    let mut ages = Vec::with_capacity(p.len());
    let mut st = Vec::with_capacity(p.len());
    for i in 0..p.len() {
        let age = date::age_years(p.birth[i], as_of);
        ages.push(age);
        st.push(if p.birth[i] > as_of {
            Status::NotYetBorn
        } else if p.death[i] <= as_of {
            Status::Deceased
        } else if age < rules.min_age {
            Status::TooYoung
        } else {
            Status::Eligible
        });
    }
    (ages, st)
}

/// Age band shown on lists: five-year bands, "90+" at the top. An exact age is not needed to
/// act on a list and is one more quasi-identifier.
pub fn age_band(age: i32) -> String {
    if age >= 90 {
        "90+".to_string()
    } else {
        let lo = (age.max(0) / 5) * 5;
        format!("{}-{}", lo, lo + 4)
    }
}

/// IMD quintile (1 = most deprived fifth) from a decile; `None` when unknown.
pub fn imd_quintile(decile: u8) -> Option<u8> {
    (1..=10).contains(&decile).then(|| decile.div_ceil(2))
}

/// Core20: the most deprived 20% of the national population (IMD quintile 1).
pub fn is_core20(decile: u8) -> bool {
    imd_quintile(decile) == Some(1)
}

/// Listed patients of each PCN in rank order: `(pcn index, patient indices)`, PCNs in code
/// order. Severe first; within a category by eFI, then HFRS, both descending; ties by
/// pseudonym (patient indices are in pseudonym order).
pub fn rank(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    rules: &ListRules,
) -> Vec<(u32, Vec<u32>)> {
    let p = &cohort.patients;
    let mut by_pcn: Vec<Vec<u32>> = vec![Vec::new(); p.pcns.len()];
    for i in 0..p.len() {
        if status[i] == Status::Eligible && scores[i].efi_category >= rules.min_category {
            by_pcn[p.pcn[i] as usize].push(i as u32);
        }
    }
    by_pcn
        .into_iter()
        .enumerate()
        .map(|(pcn, mut v)| {
            v.sort_by(|&a, &b| {
                let (sa, sb) = (&scores[a as usize], &scores[b as usize]);
                sb.efi_category
                    .cmp(&sa.efi_category)
                    .then(sb.efi_deficits.cmp(&sa.efi_deficits))
                    .then(sb.hfrs_tenths.cmp(&sa.hfrs_tenths))
                    .then(a.cmp(&b))
            });
            (pcn as u32, v)
        })
        .collect()
}

/// A count as published: a number, or suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Shown (after any rounding).
    Count(u64),
    /// Suppressed: a small number, or a cell that would reveal one by subtraction.
    Suppressed,
}

impl Cell {
    /// Text for CSV: the number, or `[c]` (the GOV.UK symbol for "confidential").
    pub fn text(self) -> String {
        match self {
            Cell::Count(n) => n.to_string(),
            Cell::Suppressed => "[c]".to_string(),
        }
    }
}

/// Apply primary suppression (1..=max), then secondary suppression so that no suppressed cell
/// can be worked out from a total: every constraint is a set of cells whose last member is the
/// sum of the others; while a constraint has exactly one suppressed cell, the smallest other
/// non-zero cell (a total only as a last resort) is suppressed too. Then round.
pub fn suppress(values: &[u64], constraints: &[Vec<usize>], rule: &Suppression) -> Vec<Cell> {
    let mut hidden: Vec<bool> = values
        .iter()
        .map(|&v| v >= 1 && v <= rule.max_suppressed)
        .collect();
    loop {
        let mut changed = false;
        for c in constraints {
            if c.iter().filter(|&&i| hidden[i]).count() != 1 {
                continue;
            }
            let total = *c.last().expect("constraint has a total");
            let pick = c
                .iter()
                .copied()
                .filter(|&i| !hidden[i] && values[i] > 0 && i != total)
                .min_by_key(|&i| (values[i], i))
                .or_else(|| Some(total).filter(|&t| !hidden[t] && values[t] > 0));
            if let Some(i) = pick {
                hidden[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    values
        .iter()
        .zip(hidden)
        .map(|(&v, h)| {
            if h {
                Cell::Suppressed
            } else if rule.round_to > 1 {
                Cell::Count((v + rule.round_to / 2) / rule.round_to * rule.round_to)
            } else {
                Cell::Count(v)
            }
        })
        .collect()
}

/// The cohort summary: eligible patients per PCN by eFI category, for everyone and for the
/// Core20 (most deprived quintile) group, with an all-PCN total row per group.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Names of the two label columns (`pcn_code`, `group`).
    pub label_names: [&'static str; 2],
    /// Row labels: (pcn code or "ALL", group "all" | "core20").
    pub rows: Vec<(String, String)>,
    /// Raw counts, row-major, 5 columns: fit, mild, moderate, severe, total.
    pub counts: Vec<u64>,
    /// Published cells, same layout.
    pub cells: Vec<Cell>,
}

/// Column names of the summary's count columns.
pub const SUMMARY_COLUMNS: [&str; 5] = ["fit", "mild", "moderate", "severe", "total"];

/// Count and suppress the summary table.
pub fn summary(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    rule: &Suppression,
) -> Summary {
    let p = &cohort.patients;
    let npcn = p.pcns.len();
    // Row r = 2 * pcn + group; the two last rows are the totals.
    let nrows = 2 * npcn + 2;
    let mut counts = vec![0u64; nrows * 5];
    for i in 0..p.len() {
        if status[i] != Status::Eligible {
            continue;
        }
        let c = scores[i].efi_category as usize;
        let pcn = p.pcn[i] as usize;
        let mut add = |row: usize| {
            counts[row * 5 + c] += 1;
            counts[row * 5 + 4] += 1;
        };
        add(2 * pcn);
        add(2 * npcn);
        if is_core20(p.imd_decile[i]) {
            add(2 * pcn + 1);
            add(2 * npcn + 1);
        }
    }
    let mut constraints = Vec::new();
    for r in 0..nrows {
        constraints.push((0..5).map(|c| r * 5 + c).collect());
    }
    for g in 0..2 {
        for c in 0..5 {
            let mut set: Vec<usize> = (0..npcn).map(|pcn| (2 * pcn + g) * 5 + c).collect();
            set.push((2 * npcn + g) * 5 + c);
            constraints.push(set);
        }
    }
    let cells = suppress(&counts, &constraints, rule);
    let mut rows = Vec::with_capacity(nrows);
    for pcn in p.pcns.iter().chain(std::iter::once(&"ALL".to_string())) {
        rows.push((pcn.clone(), "all".to_string()));
        rows.push((pcn.clone(), "core20".to_string()));
    }
    Summary {
        label_names: ["pcn_code", "group"],
        rows,
        counts,
        cells,
    }
}

/// The group label of a patient (by index) within one dimension of the equity table.
type GroupOf<'a> = Box<dyn Fn(usize) -> String + 'a>;

/// The equity table: eligible patients by eFI category within each group of deprivation
/// quintile, sex, age band and ethnic group, with a total row; suppressed like the summary (each
/// dimension's groups add up to the total, so that is a constraint too). It shows whether frailty,
/// and so the lists, fall unevenly across the population.
pub fn equity(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    ages: &[i32],
    rule: &Suppression,
) -> Summary {
    let p = &cohort.patients;
    let quintile = |i: usize| match imd_quintile(p.imd_decile[i]) {
        Some(q) => format!(
            "{q}{}",
            if q == 1 {
                " (most deprived, Core20)"
            } else if q == 5 {
                " (least deprived)"
            } else {
                ""
            }
        ),
        None => "unknown".to_string(),
    };
    let dims: Vec<(&str, GroupOf)> = vec![
        ("imd_quintile", Box::new(quintile)),
        ("sex", Box::new(|i: usize| p.sex[i].code().to_string())),
        ("age_band", Box::new(|i: usize| age_band(ages[i]))),
        (
            "ethnicity_group",
            Box::new(|i: usize| p.ethnicities[p.ethnicity[i] as usize].clone()),
        ),
    ];
    let eligible: Vec<usize> = (0..p.len())
        .filter(|&i| status[i] == Status::Eligible)
        .collect();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut constraints: Vec<Vec<usize>> = Vec::new();
    let mut dim_rows: Vec<Vec<usize>> = Vec::new();
    for (name, key) in &dims {
        let mut groups: std::collections::BTreeMap<String, [u64; 5]> = Default::default();
        for &i in &eligible {
            let g = groups.entry(key(i)).or_default();
            g[scores[i].efi_category as usize] += 1;
            g[4] += 1;
        }
        let mut these = Vec::new();
        for (g, c) in groups {
            these.push(rows.len());
            rows.push((name.to_string(), g));
            counts.extend_from_slice(&c);
        }
        dim_rows.push(these);
    }
    let total_row = rows.len();
    let mut total = [0u64; 5];
    for &i in &eligible {
        total[scores[i].efi_category as usize] += 1;
        total[4] += 1;
    }
    rows.push(("ALL".to_string(), "all".to_string()));
    counts.extend_from_slice(&total);
    for r in 0..rows.len() {
        constraints.push((0..5).map(|c| r * 5 + c).collect());
    }
    for these in &dim_rows {
        for c in 0..5 {
            let mut set: Vec<usize> = these.iter().map(|&r| r * 5 + c).collect();
            set.push(total_row * 5 + c);
            constraints.push(set);
        }
    }
    let cells = suppress(&counts, &constraints, rule);
    Summary {
        label_names: ["dimension", "group"],
        rows,
        counts,
        cells,
    }
}

/// Per-patient results of a run, in patient order.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Features.
    pub features: Vec<Features>,
    /// Scores.
    pub scores: Vec<Scores>,
    /// Age at the as-of date.
    pub ages: Vec<i32>,
    /// Status at the as-of date.
    pub status: Vec<Status>,
    /// Distinct codes of the cohort no code list uses, per system.
    pub unused_codes: Vec<(crate::codes::CodeSystem, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_and_quintiles() {
        assert_eq!(age_band(65), "65-69");
        assert_eq!(age_band(69), "65-69");
        assert_eq!(age_band(89), "85-89");
        assert_eq!(age_band(90), "90+");
        assert_eq!(age_band(0), "0-4");
        assert_eq!(imd_quintile(1), Some(1));
        assert_eq!(imd_quintile(2), Some(1));
        assert_eq!(imd_quintile(3), Some(2));
        assert_eq!(imd_quintile(10), Some(5));
        assert_eq!(imd_quintile(0), None);
        assert!(is_core20(2) && !is_core20(3) && !is_core20(0));
    }

    #[test]
    fn counts_one_to_seven_are_suppressed_zero_and_eight_are_not() {
        let v = [0, 1, 7, 8, 16];
        let cells = suppress(&v, &[], &Suppression::default());
        assert_eq!(
            cells,
            vec![
                Cell::Count(0),
                Cell::Suppressed,
                Cell::Suppressed,
                Cell::Count(8),
                Cell::Count(16)
            ]
        );
    }

    #[test]
    fn a_lone_suppressed_cell_drags_a_second_so_the_total_does_not_reveal_it() {
        // fit=100, mild=3, moderate=20, severe=9, total=132.
        let v = [100, 3, 20, 9, 132];
        let cells = suppress(&v, &[vec![0, 1, 2, 3, 4]], &Suppression::default());
        assert_eq!(cells[1], Cell::Suppressed);
        assert_eq!(cells[3], Cell::Suppressed, "smallest other cell goes too");
        assert_eq!(cells[0], Cell::Count(100));
        assert_eq!(cells[4], Cell::Count(132));
    }

    #[test]
    fn when_only_the_total_is_left_it_is_suppressed() {
        let v = [0, 3, 0, 0, 3];
        let cells = suppress(&v, &[vec![0, 1, 2, 3, 4]], &Suppression::default());
        assert_eq!(cells[1], Cell::Suppressed);
        assert_eq!(cells[4], Cell::Suppressed);
        assert_eq!(cells[0], Cell::Count(0));
    }

    #[test]
    fn publication_rounds_to_five_after_suppression() {
        let v = [12, 13, 22, 100];
        let cells = suppress(&v, &[], &Suppression::publication());
        assert_eq!(
            cells,
            vec![
                Cell::Count(10),
                Cell::Count(15),
                Cell::Count(20),
                Cell::Count(100)
            ]
        );
    }
}
