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
//! left out make the equity table's rows of that group, and the listed column is tied to the
//! eFI category columns by the shape of the PCN's list ([`Share`]) under whatever rule made it
//! (by category, `--top`, `--top-percent`, risk bands): a category listed in full adds its count,
//! one not listed adds nothing, and the people listed from categories listed in part are a
//! derived count of their own, protected when small, as if the outsider knew the shape.

use std::collections::{BTreeMap, BTreeSet};

use super::{CountedTable, Links, Relation, Term, COUNT_COLUMNS};
use crate::cohort::Cohort;
use crate::population::{age_band, imd_quintile, Status};
use crate::scores::Scores;

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

/// A group's eligible people by eFI category (fit, mild, moderate, severe): `[listed,
/// eligible]` each. The profile's columns are sums of these; the categories give the shape of
/// each PCN's list ([`Share`]).
pub type CategoryCounts = [[u64; 2]; 4];

/// The profile's counts by PCN code and group. Plain numbers, addable across partitions of a
/// cohort (see [`super::Counts`]); which PCNs are shown is decided by [`ProfileCounts::table`]
/// from the whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileCounts {
    /// Counts per (PCN code, group). Every practice with patients has a row (zeros included);
    /// other groups only when anyone is eligible.
    pub rows: BTreeMap<(String, ProfileGroup), CategoryCounts>,
}

/// How a PCN's list takes the eligible people of one eFI category: all of them, none, or some.
/// By category (the default rule) every category is `Full` or `Zero`; `--top` and
/// `--top-percent` cut one category `Part`; risk-band additions make the milder categories
/// `Part`. Protection assumes the outsider knows the shape (what the rule and the published
/// counts nearly always tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Everyone eligible in the category is listed (also when nobody is eligible).
    Full,
    /// Nobody in the category is listed.
    Zero,
    /// Some are listed and some not.
    Part,
}

/// The shape of a list: each category's [`Share`].
pub fn shape(c: &CategoryCounts) -> [Share; 4] {
    c.map(|[listed, eligible]| {
        if listed == eligible {
            Share::Full
        } else if listed == 0 {
            Share::Zero
        } else {
            Share::Part
        }
    })
}

/// The profile's columns (`[listed, not listed, eligible]`) of a group's category counts.
pub fn columns(c: &CategoryCounts) -> [u64; 3] {
    let listed: u64 = c.iter().map(|x| x[0]).sum();
    let eligible: u64 = c.iter().map(|x| x[1]).sum();
    [listed, eligible - listed, eligible]
}

fn add(into: &mut CategoryCounts, c: &CategoryCounts) {
    for (x, y) in into.iter_mut().zip(c) {
        x[0] += y[0];
        x[1] += y[1];
    }
}

/// Slots of one PCN's dense counts: everyone, ten age bands (-5, 5, ..., 85), three sexes, six
/// IMD quintiles (1-5, unknown).
const SLOTS: usize = 1 + 10 + 3 + 6;
const SEXES: [&str; 3] = ["F", "M", "U"];

/// Count the profile: each PCN's eligible people listed (`listed[i]`: on the PCN's list) and not,
/// by eFI category, in all, by practice, ten-year age band, sex and IMD quintile.
pub fn profile(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    ages: &[i32],
    listed: &[bool],
) -> ProfileCounts {
    let p = &cohort.patients;
    let mut dense = vec![[CategoryCounts::default(); SLOTS]; p.pcns.len()];
    let mut practices: BTreeMap<(u32, u32), CategoryCounts> = BTreeMap::new();
    for i in 0..p.len() {
        let practice = practices.entry((p.pcn[i], p.practice[i])).or_default();
        if status[i] != Status::Eligible {
            continue;
        }
        let on_list = u64::from(listed.get(i).copied().unwrap_or(false));
        let category = scores[i].efi_category as usize;
        practice[category][0] += on_list;
        practice[category][1] += 1;
        let age = ((age_group(ages[i]) + 5) / 10) as usize;
        let sex = match p.sex[i].code() {
            "F" => 0,
            "M" => 1,
            _ => 2,
        };
        let imd = imd_quintile(p.imd_decile[i]).map_or(6, usize::from);
        let d = &mut dense[p.pcn[i] as usize];
        for slot in [0, 1 + age, 11 + sex, 13 + imd] {
            d[slot][category][0] += on_list;
            d[slot][category][1] += 1;
        }
    }
    let mut rows = BTreeMap::new();
    for (pcn, d) in dense.iter().enumerate() {
        let code = &p.pcns[pcn];
        for (slot, c) in d.iter().enumerate() {
            if columns(c)[2] == 0 {
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
    ProfileCounts { rows }
}

/// The eFI-category side of a listed count: the category cells of `populations` (rows of the
/// summary or equity table) that `shape` lists in full, plus one derived count of the people
/// listed from the categories listed in part (`counts`: the true counts of those populations),
/// which with the part-listed people not listed (a second derived count) makes up those
/// categories' cells. Derived counts are protected when small: an outsider who knows the shape
/// can take the difference.
fn listed_side(
    links: &mut Links,
    populations: &[String],
    shape: &[Share; 4],
    counts: &CategoryCounts,
) -> Vec<Term> {
    let cells = |k: usize| {
        populations.iter().map(move |population| Term::Other {
            population: population.clone(),
            column: k,
        })
    };
    let mut side: Vec<Term> = (0..4)
        .filter(|&k| shape[k] == Share::Full)
        .flat_map(cells)
        .collect();
    let part: Vec<usize> = (0..4).filter(|&k| shape[k] == Share::Part).collect();
    if !part.is_empty() {
        let listed = part.iter().map(|&k| counts[k][0]).sum();
        let not = part.iter().map(|&k| counts[k][1] - counts[k][0]).sum();
        links.derived.push(listed);
        let listed = Term::Derived(links.derived.len() - 1);
        links.derived.push(not);
        let not = Term::Derived(links.derived.len() - 1);
        links.sums.push((
            part.iter().copied().flat_map(cells).collect(),
            vec![listed.clone(), not],
        ));
        side.push(listed);
    }
    side
}

impl ProfileCounts {
    /// Add another partition's counts (rows with the same labels add up).
    pub fn add(&mut self, other: &ProfileCounts) {
        for (k, c) in &other.rows {
            add(self.rows.entry(k.clone()).or_default(), c);
        }
    }

    /// Eligible people of each PCN with any (zero for a PCN with patients but none eligible),
    /// with its `all` row's category counts.
    fn everyone(&self) -> BTreeMap<&str, CategoryCounts> {
        let mut out = BTreeMap::new();
        for ((pcn, g), c) in &self.rows {
            let e = out.entry(pcn.as_str()).or_default();
            if *g == ProfileGroup::All {
                *e = *c;
            }
        }
        out
    }

    /// The PCNs whose profile is published: at least [`PROFILE_MIN_ELIGIBLE`] eligible people.
    pub fn shown(&self) -> BTreeSet<String> {
        self.everyone()
            .into_iter()
            .filter(|(_, c)| columns(c)[2] >= PROFILE_MIN_ELIGIBLE)
            .map(|(p, _)| p.to_string())
            .collect()
    }

    /// The shape of the lists across all PCNs: a category is `Full` (or `Zero`) only when it is
    /// in every PCN with anyone eligible in it.
    fn overall_shape(&self) -> [Share; 4] {
        let mut out = [None; 4];
        for c in self.everyone().values() {
            for ((o, s), [_, eligible]) in out.iter_mut().zip(shape(c)).zip(c) {
                // A PCN with nobody eligible in a category says nothing of its shape there.
                if *eligible == 0 {
                    continue;
                }
                *o = match *o {
                    None => Some(s),
                    Some(t) if t == s => Some(t),
                    Some(_) => Some(Share::Part),
                };
            }
        }
        out.map(|s| s.unwrap_or(Share::Full))
    }

    /// Lay out the published profile: the shown PCNs' rows (everyone, practices, then every age
    /// band, sex and quintile anyone eligible falls in, zeros included, so a row says nothing by
    /// being there), each row's listed + not listed = eligible, each dimension adding up to the
    /// PCN's `all` row, and the [`Links`] with the summary and equity tables.
    pub fn table(&self) -> CountedTable {
        const LISTED: usize = 0;
        const ELIGIBLE: usize = 2;
        const TOTAL: usize = COUNT_COLUMNS.len() - 1;
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
        let everyone = self.everyone();
        let groups: BTreeSet<&ProfileGroup> = self
            .rows
            .iter()
            .filter(|((_, g), c)| {
                !matches!(g, ProfileGroup::All | ProfileGroup::Practice(_)) && columns(c)[2] > 0
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
            let list_shape = shape(&everyone[pcn.as_str()]);
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
                let counts = self
                    .rows
                    .get(&(pcn.clone(), g.clone()))
                    .copied()
                    .unwrap_or_default();
                let r = rows.len();
                rows.push((pcn.clone(), g.label()));
                keys.push((pcn, g));
                cells.extend_from_slice(&columns(&counts));
                relations.push(Relation {
                    total: r * nc + 2,
                    parts: vec![r * nc, r * nc + 1],
                });
                populations.push(match g {
                    ProfileGroup::All => format!("pcn={pcn}"),
                    g => format!("pcn={pcn}&{}", g.label()),
                });
                if !g.equity_populations().is_empty() {
                    for k in [LISTED, ELIGIBLE] {
                        across
                            .entry((g, k))
                            .or_default()
                            .push(Term::Own(r * nc + k));
                    }
                }
                // The PCN's everyone and Core20 rows are its summary rows: eligible is the
                // total, listed the categories the list's shape takes.
                let summary_row = match g {
                    ProfileGroup::All => Some(format!("pcn={pcn}")),
                    ProfileGroup::Imd(1) => Some(format!("pcn={pcn}&imd_quintile=1")),
                    _ => None,
                };
                if let Some(population) = summary_row {
                    links.sums.push((
                        vec![Term::Own(r * nc + ELIGIBLE)],
                        vec![Term::Other {
                            population: population.clone(),
                            column: TOTAL,
                        }],
                    ));
                    let side = listed_side(&mut links, &[population], &list_shape, &counts);
                    links.sums.push((vec![Term::Own(r * nc + LISTED)], side));
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
        // are the equity table's rows of that group (listed: by the lists' shape across PCNs).
        let left_out: Vec<&str> = everyone
            .keys()
            .copied()
            .filter(|p| !shown.contains(*p))
            .collect();
        let overall = self.overall_shape();
        let mut residuals: BTreeMap<(&str, usize), Vec<Term>> = BTreeMap::new();
        for g in &groups {
            let mut whole = CategoryCounts::default();
            for ((_, h), c) in &self.rows {
                if h == *g {
                    add(&mut whole, c);
                }
            }
            // The left-out PCNs' people of the group: listed, not listed, eligible.
            let mut left_counts = [0u64; 3];
            for c in left_out
                .iter()
                .filter_map(|p| self.rows.get(&(p.to_string(), (*g).clone())))
            {
                for (x, y) in left_counts.iter_mut().zip(columns(c)) {
                    *x += y;
                }
            }
            let mut left_terms = [None, None, None];
            for k in [LISTED, ELIGIBLE] {
                let mut left = across.remove(&(*g, k)).unwrap_or_default();
                if !left_out.is_empty() {
                    links.derived.push(left_counts[k]);
                    let d = Term::Derived(links.derived.len() - 1);
                    residuals
                        .entry((g.dimension(), k))
                        .or_default()
                        .push(d.clone());
                    left_terms[k] = Some(d.clone());
                    left.push(d);
                }
                let equity = g.equity_populations();
                let right = if k == ELIGIBLE {
                    equity
                        .into_iter()
                        .map(|population| Term::Other {
                            population,
                            column: TOTAL,
                        })
                        .collect()
                } else {
                    listed_side(&mut links, &equity, &overall, &whole)
                };
                links.sums.push((left, right));
            }
            // Their listed people are some of their eligible people: the not listed are a count
            // of their own (never negative), as each published row's are.
            if let [Some(listed), _, Some(eligible)] = left_terms {
                links
                    .derived
                    .push(left_counts[ELIGIBLE] - left_counts[LISTED]);
                let not = Term::Derived(links.derived.len() - 1);
                links.sums.push((vec![eligible], vec![listed, not]));
            }
        }
        // The left-out PCNs' people of a dimension's groups add up to their summary rows.
        let mut listed_sides: BTreeMap<&str, Vec<Term>> = BTreeMap::new();
        for ((_, k), left) in residuals {
            let mut right = Vec::new();
            for p in &left_out {
                let population = format!("pcn={p}");
                if k == ELIGIBLE {
                    right.push(Term::Other {
                        population,
                        column: TOTAL,
                    });
                } else {
                    let c = &everyone[p];
                    let side = listed_sides
                        .entry(p)
                        .or_insert_with(|| listed_side(&mut links, &[population], &shape(c), c));
                    right.extend(side.iter().cloned());
                }
            }
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

    /// Listed people as severe, the others as fit: a list by category.
    fn counts(rows: &[(&str, ProfileGroup, [u64; 3])]) -> ProfileCounts {
        ProfileCounts {
            rows: rows
                .iter()
                .map(|(p, g, [l, n, _])| {
                    (
                        (p.to_string(), g.clone()),
                        [[0, *n], [0, 0], [0, 0], [*l, *l]],
                    )
                })
                .collect(),
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
        // SMALL's women (listed 3, eligible 23, so 20 not listed) and its men (0, 0, 0).
        assert_eq!(t.links.derived, [3, 23, 20, 0, 0, 0]);
        // Sums: BIG's summary row (eligible, listed); 2 sex groups x (2 columns, and the left-out
        // people's listed + not listed = eligible); the left-out PCNs' total per column.
        assert_eq!(t.links.sums.len(), 2 + 2 * 3 + 2);
        // Issue 23: without "the left-out people's not listed are never negative" an outsider
        // could pin a PCN's hidden listed count from an equity row with no one left to spare.
        let (left, right) = &t.links.sums[4];
        assert_eq!(left, &vec![Term::Derived(1)]);
        assert_eq!(right, &vec![Term::Derived(0), Term::Derived(2)]);
    }

    #[test]
    fn a_pcn_with_nobody_in_a_category_leaves_its_shape_across_pcns_alone() {
        use ProfileGroup::*;
        // Fit people are listed nowhere; SMALL has no fit people at all (vacuously "all listed").
        let c = ProfileCounts {
            rows: [
                ("BIG", [[0, 50], [20, 20], [30, 30], [40, 40]]),
                ("SMALL", [[0, 0], [3, 3], [2, 2], [1, 1]]),
            ]
            .into_iter()
            .map(|(p, c)| ((p.to_string(), All), c))
            .collect(),
        };
        assert_eq!(
            c.overall_shape(),
            [Share::Zero, Share::Full, Share::Full, Share::Full]
        );
    }

    #[test]
    fn a_category_listed_in_part_is_a_derived_count_of_its_own() {
        use ProfileGroup::*;
        // A list cut by --top: every severe person, 5 of the 30 moderate, no one milder.
        let c = ProfileCounts {
            rows: [
                (All, [[0, 50], [0, 20], [5, 30], [40, 40]]),
                (Practice("P1".into()), [[0, 50], [0, 20], [5, 30], [40, 40]]),
            ]
            .into_iter()
            .map(|(g, c)| (("BIG".to_string(), g), c))
            .collect(),
        };
        assert_eq!(
            shape(&c.rows[&("BIG".into(), All)]),
            [Share::Zero, Share::Zero, Share::Part, Share::Full]
        );
        let t = c.table();
        assert_eq!(&t.cells[..3], [45, 95, 140]);
        // The listed moderates (5) and the moderates not listed (25).
        assert_eq!(t.links.derived, [5, 25]);
        let moderate = Term::Other {
            population: "pcn=BIG".into(),
            column: 2,
        };
        let severe = Term::Other {
            population: "pcn=BIG".into(),
            column: 3,
        };
        assert!(t
            .links
            .sums
            .contains(&(vec![moderate], vec![Term::Derived(0), Term::Derived(1)])));
        assert!(t
            .links
            .sums
            .contains(&(vec![Term::Own(0)], vec![severe, Term::Derived(0)])));
    }
}
