//! The PCN profile (`pcn_profile.csv`): for each PCN large enough to show it, its eligible
//! people listed and not listed, in all, by practice, by ten-year age band, by sex and by IMD
//! quintile. It is what a PCN's HTML page and workbook show as the list's make-up against the
//! PCN's eligible population, so that an under-reached group shows.
//!
//! Pipeline position: part of `tables` (counting only): `lists` + `results` -> **profile** ->
//! `disclosure` -> `output`.
//!
//! Kept small on purpose, because every published count has to be protected together with the
//! summary and equity tables: three columns (listed + not listed = eligible) rather than the
//! four eFI categories, ten-year age bands, and no block at all for a PCN with fewer than
//! [`PROFILE_MIN_ELIGIBLE`] eligible people (its groups would be mostly counts of 1 to 7, so its
//! page would be mostly suppressed cells; the page says the make-up is not shown). What an
//! outsider can add up across tables is given to `disclosure` as [`Links`]: a PCN's `all` and
//! IMD-quintile-1 rows are its summary rows, the PCNs' rows of a group plus those of the PCNs
//! left out make the equity table's rows of that group, and, when the lists are exactly the
//! eligible people of an eFI category or worse, the listed column is the sum of those category
//! columns.

use std::collections::{BTreeMap, BTreeSet};

use super::{CountedTable, Links, Relation, Term, COUNT_COLUMNS};
use crate::cohort::Cohort;
use crate::population::{age_band, imd_quintile, Status};
use crate::scores::{EfiCategory, Scores};

/// Count columns of the profile table; the last is the total of the other two.
pub const PROFILE_COLUMNS: [&str; 3] = ["listed", "not_listed", "eligible"];

/// Dimensions of a PCN's profile, in table order (after its `all` row).
pub const PROFILE_DIMENSIONS: [&str; 4] = ["practice", "age_band", "sex", "imd_quintile"];

/// Fewest eligible people a PCN must have for its profile to be published. Below this a PCN's
/// groups hold a handful of people each (a tenth of them in a typical age band, sex and
/// quintile cell pair), so nearly every count would be 1 to 7 and suppressed, and the shares
/// would mislead; real PCNs (30,000 to 50,000 patients, several thousand aged 65 and over) are
/// far above it. Small test and partial extracts are below it.
pub const PROFILE_MIN_ELIGIBLE: u64 = 100;

/// A row of a PCN's profile. The order (derived) is the table's row order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileGroup {
    /// Everyone eligible in the PCN.
    All,
    /// A GP practice (ODS code).
    Practice(String),
    /// A ten-year age band by its lower bound: `65` is 65-74, `85` is 85 and over.
    Age(i32),
    /// Sex code: `F`, `M` or `U`.
    Sex(String),
    /// IMD quintile 1 (most deprived, Core20) to 5; 6 is unknown.
    Imd(u8),
}

/// Lower bound of the ten-year age band of `age` (bands 65-74, 75-84, 85+, and below 65 55-64,
/// 45-54, ...; the youngest, -5, holds ages 0-4).
pub fn age_group(age: i32) -> i32 {
    if age >= 85 {
        85
    } else {
        (65 + 10 * (age - 65).div_euclid(10)).max(-5)
    }
}

impl ProfileGroup {
    /// The dimension ([`PROFILE_DIMENSIONS`]), or `all`.
    pub fn dimension(&self) -> &'static str {
        match self {
            ProfileGroup::All => "all",
            ProfileGroup::Practice(_) => PROFILE_DIMENSIONS[0],
            ProfileGroup::Age(_) => PROFILE_DIMENSIONS[1],
            ProfileGroup::Sex(_) => PROFILE_DIMENSIONS[2],
            ProfileGroup::Imd(_) => PROFILE_DIMENSIONS[3],
        }
    }

    /// The group's value within its dimension: `P81001`, `75-84`, `85+`, `F`, `1`, `unknown`;
    /// `all` for everyone.
    pub fn value(&self) -> String {
        match self {
            ProfileGroup::All => "all".into(),
            ProfileGroup::Practice(p) => p.clone(),
            ProfileGroup::Age(85) => "85+".into(),
            ProfileGroup::Age(lo) => format!("{}-{}", (*lo).max(0), lo + 9),
            ProfileGroup::Sex(s) => s.clone(),
            ProfileGroup::Imd(6) => "unknown".into(),
            ProfileGroup::Imd(q) => q.to_string(),
        }
    }

    /// The group of a dimension ([`ProfileGroup::dimension`]) and value ([`ProfileGroup::value`]),
    /// as another engine hands them over: `None` when they name no group.
    pub fn parse(dimension: &str, value: &str) -> Option<ProfileGroup> {
        Some(match dimension {
            "all" => ProfileGroup::All,
            "practice" => ProfileGroup::Practice(value.to_string()),
            "age_band" => ProfileGroup::Age(match value {
                "85+" => 85,
                "0-4" => -5,
                v => v.split('-').next()?.parse().ok()?,
            }),
            "sex" => ProfileGroup::Sex(value.to_string()),
            "imd_quintile" => ProfileGroup::Imd(match value {
                "unknown" => 6,
                v => v.parse().ok()?,
            }),
            _ => return None,
        })
    }

    /// The `group` label of `pcn_profile.csv`: `all`, or `dimension=value` (`age_band=75-84`).
    pub fn label(&self) -> String {
        match self {
            ProfileGroup::All => "all".into(),
            g => format!("{}={}", g.dimension(), g.value()),
        }
    }

    /// The populations of the equity table's rows that make up this group across all PCNs
    /// (two five-year age bands per ten-year band); none for `all` and practices.
    fn equity_populations(&self) -> Vec<String> {
        match self {
            ProfileGroup::All | ProfileGroup::Practice(_) => Vec::new(),
            ProfileGroup::Age(lo) => [*lo, lo + 5]
                .into_iter()
                .filter(|&a| a >= 0)
                .map(|a| format!("age_band={}", age_band(a)))
                .collect(),
            g => vec![g.label()],
        }
    }
}

/// The profile's counts by PCN code and group: `[listed, not listed, eligible]`. Plain numbers,
/// addable across partitions of a cohort (see [`super::Counts`]); which PCNs are shown is
/// decided by [`ProfileCounts::table`] from the whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileCounts {
    /// Counts per (PCN code, group). Every practice with patients has a row (zeros included);
    /// other groups only when non-zero.
    pub rows: BTreeMap<(String, ProfileGroup), [u64; 3]>,
    /// The lists are exactly the eligible people of `min_category` or worse, so an outsider
    /// knows each listed count is a sum of eFI category counts.
    pub by_category: bool,
    /// The mildest eFI category listed.
    pub min_category: EfiCategory,
}

/// Slots of one PCN's dense counts: everyone, ten age bands (-5, 5, ..., 85), three sexes, six
/// IMD quintiles (1-5, unknown).
const SLOTS: usize = 1 + 10 + 3 + 6;
const SEXES: [&str; 3] = ["F", "M", "U"];

/// Count the profile: each PCN's eligible people listed (`listed[i]`: on the PCN's list) and not,
/// in all, by practice, ten-year age band, sex and IMD quintile.
pub fn profile(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    ages: &[i32],
    listed: &[bool],
    min_category: EfiCategory,
) -> ProfileCounts {
    let p = &cohort.patients;
    let mut dense = vec![[[0u64; 3]; SLOTS]; p.pcns.len()];
    let mut practices: BTreeMap<(u32, u32), [u64; 3]> = BTreeMap::new();
    let mut by_category = true;
    for i in 0..p.len() {
        let practice = practices.entry((p.pcn[i], p.practice[i])).or_default();
        if status[i] != Status::Eligible {
            continue;
        }
        let on_list = listed.get(i).copied().unwrap_or(false);
        by_category &= on_list == (scores[i].efi_category >= min_category);
        let k = usize::from(!on_list);
        practice[k] += 1;
        practice[2] += 1;
        let age = ((age_group(ages[i]) + 5) / 10) as usize;
        let sex = match p.sex[i].code() {
            "F" => 0,
            "M" => 1,
            _ => 2,
        };
        let imd = imd_quintile(p.imd_decile[i]).map_or(6, usize::from);
        let d = &mut dense[p.pcn[i] as usize];
        for slot in [0, 1 + age, 11 + sex, 13 + imd] {
            d[slot][k] += 1;
            d[slot][2] += 1;
        }
    }
    let mut rows = BTreeMap::new();
    for (pcn, d) in dense.iter().enumerate() {
        let code = &p.pcns[pcn];
        for (slot, c) in d.iter().enumerate() {
            if c[2] == 0 {
                continue;
            }
            let g = match slot {
                0 => ProfileGroup::All,
                1..=10 => ProfileGroup::Age(slot as i32 * 10 - 15),
                11..=13 => ProfileGroup::Sex(SEXES[slot - 11].to_string()),
                _ => ProfileGroup::Imd((slot - 13) as u8),
            };
            rows.insert((code.clone(), g), *c);
        }
    }
    for ((pcn, practice), c) in practices {
        let g = ProfileGroup::Practice(p.practices[practice as usize].clone());
        rows.insert((p.pcns[pcn as usize].clone(), g), c);
    }
    ProfileCounts {
        rows,
        by_category,
        min_category,
    }
}

impl ProfileCounts {
    /// Eligible people of each PCN with any (zero for a PCN with patients but none eligible).
    fn eligible(&self) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for ((pcn, g), c) in &self.rows {
            let e = out.entry(pcn.as_str()).or_insert(0);
            if *g == ProfileGroup::All {
                *e = c[2];
            }
        }
        out
    }

    /// The PCNs whose profile is published: at least [`PROFILE_MIN_ELIGIBLE`] eligible people.
    pub fn shown(&self) -> BTreeSet<String> {
        self.eligible()
            .into_iter()
            .filter(|&(_, e)| e >= PROFILE_MIN_ELIGIBLE)
            .map(|(p, _)| p.to_string())
            .collect()
    }

    /// Which eFI columns ([`COUNT_COLUMNS`]) a profile column adds up to, when an outsider knows.
    fn efi_columns(&self, k: usize) -> Vec<usize> {
        let min = self.min_category as usize;
        match k {
            2 => vec![COUNT_COLUMNS.len() - 1],
            0 if self.by_category => (min..4).collect(),
            1 if self.by_category => (0..min).collect(),
            _ => Vec::new(),
        }
    }

    /// Lay out the published profile: the shown PCNs' rows (everyone, practices, then every age
    /// band, sex and quintile anyone eligible falls in, zeros included, so a row says nothing by
    /// being there), each row's listed + not listed = eligible, each dimension adding up to the
    /// PCN's `all` row, and the [`Links`] with the summary and equity tables.
    pub fn table(&self) -> CountedTable {
        let shown = self.shown();
        let nc = PROFILE_COLUMNS.len();
        if shown.is_empty() {
            return CountedTable {
                label_names: ["pcn_code", "group"],
                rows: Vec::new(),
                cells: Vec::new(),
                relations: Vec::new(),
                populations: Vec::new(),
                columns: &PROFILE_COLUMNS,
                links: Links::default(),
            };
        }
        let groups: BTreeSet<&ProfileGroup> = self
            .rows
            .iter()
            .filter(|((_, g), c)| {
                !matches!(g, ProfileGroup::All | ProfileGroup::Practice(_)) && c[2] > 0
            })
            .map(|((_, g), _)| g)
            .collect();
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut keys: Vec<(&str, &ProfileGroup)> = Vec::new();
        let mut cells = Vec::new();
        let mut relations = Vec::new();
        let mut populations = Vec::new();
        let mut links = Links::default();
        // (group, column) -> cells of the shown PCNs.
        let mut across: BTreeMap<(&ProfileGroup, usize), Vec<Term>> = BTreeMap::new();
        let all = ProfileGroup::All;
        for pcn in &shown {
            let first_row = rows.len();
            let practices = self
                .rows
                .range((pcn.clone(), ProfileGroup::All)..)
                .take_while(|((p, _), _)| p == pcn)
                .map(|((_, g), _)| g)
                .filter(|g| matches!(g, ProfileGroup::Practice(_)));
            for g in std::iter::once(&all)
                .chain(practices)
                .chain(groups.iter().copied())
            {
                let c = self
                    .rows
                    .get(&(pcn.clone(), g.clone()))
                    .copied()
                    .unwrap_or_default();
                let r = rows.len();
                rows.push((pcn.clone(), g.label()));
                keys.push((pcn, g));
                cells.extend_from_slice(&c);
                relations.push(Relation {
                    total: r * nc + 2,
                    parts: vec![r * nc, r * nc + 1],
                });
                populations.push(match g {
                    ProfileGroup::All => format!("pcn={pcn}"),
                    g => format!("pcn={pcn}&{}", g.label()),
                });
                for k in 0..nc {
                    if !self.efi_columns(k).is_empty() && !g.equity_populations().is_empty() {
                        across
                            .entry((g, k))
                            .or_default()
                            .push(Term::Own(r * nc + k));
                    }
                }
                // The PCN's everyone and Core20 rows are its summary rows.
                let summary_row = match g {
                    ProfileGroup::All => Some(format!("pcn={pcn}")),
                    ProfileGroup::Imd(1) => Some(format!("pcn={pcn}&imd_quintile=1")),
                    _ => None,
                };
                if let Some(population) = summary_row {
                    for k in 0..nc {
                        let efi = self.efi_columns(k);
                        if efi.is_empty() {
                            continue;
                        }
                        let right = efi
                            .into_iter()
                            .map(|column| Term::Other {
                                population: population.clone(),
                                column,
                            })
                            .collect();
                        links.sums.push((vec![Term::Own(r * nc + k)], right));
                    }
                }
            }
            // Each dimension's groups add up to the PCN's `all` row.
            let block = first_row..rows.len();
            for dim in PROFILE_DIMENSIONS {
                let parts: Vec<usize> = block
                    .clone()
                    .filter(|&r| keys[r].1.dimension() == dim)
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                for k in 0..nc {
                    relations.push(Relation {
                        total: first_row * nc + k,
                        parts: parts.iter().map(|r| r * nc + k).collect(),
                    });
                }
            }
        }
        // Across PCNs: the shown PCNs' rows of a group, plus the people of the PCNs left out,
        // are the equity table's rows of that group.
        let left_out: Vec<&str> = self
            .eligible()
            .into_keys()
            .filter(|p| !shown.contains(*p))
            .collect();
        let mut residuals: BTreeMap<(&str, usize), Vec<Term>> = BTreeMap::new();
        for g in &groups {
            for k in 0..nc {
                let efi = self.efi_columns(k);
                if efi.is_empty() {
                    continue;
                }
                let mut left = across.remove(&(*g, k)).unwrap_or_default();
                if !left_out.is_empty() {
                    let v = left_out
                        .iter()
                        .filter_map(|p| self.rows.get(&(p.to_string(), (*g).clone())))
                        .map(|c| c[k])
                        .sum();
                    links.derived.push(v);
                    let d = Term::Derived(links.derived.len() - 1);
                    residuals
                        .entry((g.dimension(), k))
                        .or_default()
                        .push(d.clone());
                    left.push(d);
                }
                let right = g
                    .equity_populations()
                    .into_iter()
                    .flat_map(|population| {
                        efi.iter().map(move |&column| Term::Other {
                            population: population.clone(),
                            column,
                        })
                    })
                    .collect();
                links.sums.push((left, right));
            }
        }
        // The left-out PCNs' people of a dimension's groups add up to their summary rows.
        for ((_, k), left) in residuals {
            let right = left_out
                .iter()
                .flat_map(|p| {
                    self.efi_columns(k)
                        .into_iter()
                        .map(move |column| Term::Other {
                            population: format!("pcn={p}"),
                            column,
                        })
                })
                .collect();
            links.sums.push((left, right));
        }
        CountedTable {
            label_names: ["pcn_code", "group"],
            rows,
            cells,
            relations,
            populations,
            columns: &PROFILE_COLUMNS,
            links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_through_dimension_and_value() {
        for g in [
            ProfileGroup::All,
            ProfileGroup::Practice("P81001".into()),
            ProfileGroup::Age(-5),
            ProfileGroup::Age(5),
            ProfileGroup::Age(75),
            ProfileGroup::Age(85),
            ProfileGroup::Sex("U".into()),
            ProfileGroup::Imd(1),
            ProfileGroup::Imd(6),
        ] {
            assert_eq!(
                ProfileGroup::parse(g.dimension(), &g.value()),
                Some(g.clone())
            );
        }
        assert_eq!(ProfileGroup::parse("age_band", "x"), None);
        assert_eq!(ProfileGroup::parse("ward", "1"), None);
    }

    #[test]
    fn ten_year_bands_from_65_and_their_five_year_parts() {
        assert_eq!(age_group(65), 65);
        assert_eq!(age_group(74), 65);
        assert_eq!(age_group(84), 75);
        assert_eq!(age_group(85), 85);
        assert_eq!(age_group(103), 85);
        assert_eq!(age_group(64), 55);
        assert_eq!(age_group(3), -5);
        assert_eq!(ProfileGroup::Age(75).label(), "age_band=75-84");
        assert_eq!(ProfileGroup::Age(85).label(), "age_band=85+");
        assert_eq!(ProfileGroup::Age(-5).label(), "age_band=0-4");
        assert_eq!(
            ProfileGroup::Age(75).equity_populations(),
            vec!["age_band=75-79", "age_band=80-84"]
        );
        assert_eq!(
            ProfileGroup::Age(85).equity_populations(),
            vec!["age_band=85-89", "age_band=90+"]
        );
        assert_eq!(
            ProfileGroup::Age(-5).equity_populations(),
            vec!["age_band=0-4"]
        );
        assert_eq!(ProfileGroup::Imd(6).label(), "imd_quintile=unknown");
    }

    fn counts(rows: &[(&str, ProfileGroup, [u64; 3])]) -> ProfileCounts {
        ProfileCounts {
            rows: rows
                .iter()
                .map(|(p, g, c)| ((p.to_string(), g.clone()), *c))
                .collect(),
            by_category: true,
            min_category: EfiCategory::Moderate,
        }
    }

    #[test]
    fn small_pcns_are_left_out_and_their_people_are_a_derived_count() {
        use ProfileGroup::*;
        let c = counts(&[
            ("BIG", All, [40, 80, 120]),
            ("BIG", Practice("P1".into()), [40, 80, 120]),
            ("BIG", Sex("F".into()), [30, 40, 70]),
            ("BIG", Sex("M".into()), [10, 40, 50]),
            ("SMALL", All, [3, 20, 23]),
            ("SMALL", Practice("P2".into()), [3, 20, 23]),
            ("SMALL", Sex("F".into()), [3, 20, 23]),
        ]);
        assert_eq!(c.shown(), BTreeSet::from(["BIG".to_string()]));
        let t = c.table();
        let labels: Vec<&str> = t.rows.iter().map(|(_, g)| g.as_str()).collect();
        assert_eq!(labels, ["all", "practice=P1", "sex=F", "sex=M"]);
        assert!(t.rows.iter().all(|(p, _)| p == "BIG"));
        // Every relation holds.
        for r in &t.relations {
            let sum: u64 = r.parts.iter().map(|&i| t.cells[i]).sum();
            assert_eq!(t.cells[r.total], sum, "{r:?}");
        }
        // SMALL's women, by column (listed 3, not listed 20, eligible 23) and its men (0).
        assert_eq!(t.links.derived, [3, 20, 23, 0, 0, 0]);
        // Sums: 2 summary rows x 3 columns; 2 sex groups x 3 columns; the left-out PCNs' total
        // per column.
        assert_eq!(t.links.sums.len(), 3 + 6 + 3);
    }
}
