//! Aggregate tables counted: the summary (eligible patients per PCN by eFI category, everyone
//! and Core20), the equity table (by deprivation quintile, sex, age band and ethnic group) and
//! the PCN profile (who is listed, by practice, age band, sex and deprivation: [`profile`]).
//!
//! Pipeline position: `results` -> **tables** -> `disclosure` -> `output`. This module only
//! counts: [`Counts`] are plain numbers keyed by row labels, so the counts of two partitions of a
//! cohort (PCN by PCN, or node by node on a cluster) add up with [`Counts::add`] to the counts of
//! the whole. [`Counts::table`] lays them out as a [`CountedTable`]: cells in row-major order and
//! the linear [`Relation`]s among them (a row's categories add up to its total; each group's rows
//! add up to the `ALL` row), which is what `disclosure` needs to protect them. A new table is a
//! new counting function and [`TableKind`] here (with its relations), and one line in `run`.

mod profile;

use std::collections::BTreeMap;

pub use profile::{
    profile, ProfileCounts, ProfileGroup, PROFILE_COLUMNS, PROFILE_DIMENSIONS, PROFILE_MIN_ELIGIBLE,
};

use crate::cohort::Cohort;
use crate::population::{age_band, imd_quintile, is_core20, Status};
use crate::scores::Scores;

/// Names of the count columns of every table: the four eFI categories and their total.
pub const COUNT_COLUMNS: [&str; 5] = ["fit", "mild", "moderate", "severe", "total"];

/// Dimensions of the equity table, in table order.
pub const EQUITY_DIMENSIONS: [&str; 4] = ["imd_quintile", "sex", "age_band", "ethnicity_group"];

/// Which table a set of counts is: it fixes the label columns and the relations among cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Eligible patients per PCN by eFI category, for everyone and for Core20, with an all-PCN
    /// total row per group.
    Summary,
    /// Eligible patients by eFI category within each group of each equity dimension, with one
    /// total row.
    Equity,
}

impl TableKind {
    /// Names of the two label columns.
    pub fn label_names(self) -> [&'static str; 2] {
        match self {
            TableKind::Summary => ["pcn_code", "group"],
            TableKind::Equity => ["dimension", "group"],
        }
    }

    /// The population a row counts (see [`CountedTable::populations`]).
    pub fn population(self, a: &str, b: &str) -> String {
        let core20 = "imd_quintile=1";
        match self {
            TableKind::Summary => match (a, b) {
                ("ALL", "all") => "all".into(),
                ("ALL", _) => core20.into(),
                (pcn, "all") => format!("pcn={pcn}"),
                (pcn, _) => format!("pcn={pcn}&{core20}"),
            },
            TableKind::Equity => match (a, b) {
                ("ALL", _) => "all".into(),
                // "1 (most deprived, Core20)" -> 1.
                ("imd_quintile", q) => format!("imd_quintile={}", q.split(' ').next().unwrap_or(q)),
                (dim, g) => format!("{dim}={g}"),
            },
        }
    }

    /// The section holding the total (`ALL`) rows; the sections before it hold their parts.
    fn total_section(self) -> u8 {
        match self {
            TableKind::Summary => 1,
            TableKind::Equity => EQUITY_DIMENSIONS.len() as u8,
        }
    }
}

/// Where a row sits: `section` orders blocks of rows (the total rows come last), then the two
/// labels order rows within a block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    /// Block of rows: a summary's PCN rows (0) or totals (1); an equity dimension (its index in
    /// [`EQUITY_DIMENSIONS`]) or the total.
    pub section: u8,
    /// The two label values.
    pub labels: (String, String),
}

/// The counts of one table by row: plain numbers, addable across partitions of a cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Which table.
    pub kind: TableKind,
    /// Counts per row, one per [`COUNT_COLUMNS`] entry.
    pub rows: BTreeMap<RowKey, [u64; 5]>,
}

impl Counts {
    /// No rows yet.
    pub fn new(kind: TableKind) -> Counts {
        Counts {
            kind,
            rows: BTreeMap::new(),
        }
    }

    /// The counts of row (`section`, `a`, `b`), created as zeros if new.
    fn row(&mut self, section: u8, a: &str, b: &str) -> &mut [u64; 5] {
        self.rows
            .entry(RowKey {
                section,
                labels: (a.to_string(), b.to_string()),
            })
            .or_default()
    }

    /// Add another partition's counts of the same table: rows with the same labels are summed,
    /// new rows are added.
    pub fn add(&mut self, other: &Counts) {
        debug_assert_eq!(self.kind, other.kind, "adding counts of different tables");
        for (key, v) in &other.rows {
            let row = self.rows.entry(key.clone()).or_default();
            for (a, b) in row.iter_mut().zip(v) {
                *a += b;
            }
        }
    }

    /// Lay the counts out as a table: rows in key order, cells row-major, and the relations.
    pub fn table(&self) -> CountedTable {
        let rows: Vec<(String, String)> = self.rows.keys().map(|k| k.labels.clone()).collect();
        let cells: Vec<u64> = self.rows.values().flatten().copied().collect();
        let sections: Vec<u8> = self.rows.keys().map(|k| k.section).collect();
        let nc = COUNT_COLUMNS.len();
        // Every row: its categories add up to its total.
        let mut relations: Vec<Relation> = (0..rows.len())
            .map(|r| Relation {
                total: r * nc + nc - 1,
                parts: (0..nc - 1).map(|c| r * nc + c).collect(),
            })
            .collect();
        let total_section = self.kind.total_section();
        let in_section =
            |s: u8| -> Vec<usize> { (0..sections.len()).filter(|&r| sections[r] == s).collect() };
        match self.kind {
            // Each group's PCN rows add up to that group's ALL row, column by column.
            TableKind::Summary => {
                for t in in_section(total_section) {
                    let group: Vec<usize> = in_section(0)
                        .into_iter()
                        .filter(|&r| rows[r].1 == rows[t].1)
                        .collect();
                    for c in 0..nc {
                        relations.push(Relation {
                            total: t * nc + c,
                            parts: group.iter().map(|r| r * nc + c).collect(),
                        });
                    }
                }
            }
            // Each dimension's groups add up to the ALL row, column by column.
            TableKind::Equity => {
                if let Some(&t) = in_section(total_section).first() {
                    for d in 0..total_section {
                        let group = in_section(d);
                        for c in 0..nc {
                            relations.push(Relation {
                                total: t * nc + c,
                                parts: group.iter().map(|r| r * nc + c).collect(),
                            });
                        }
                    }
                }
            }
        }
        let populations = rows
            .iter()
            .map(|(a, b)| self.kind.population(a, b))
            .collect();
        CountedTable {
            label_names: self.kind.label_names(),
            rows,
            cells,
            relations,
            populations,
            columns: &COUNT_COLUMNS,
            links: Links::default(),
        }
    }
}

/// A linear relation among the cells of a table: `cells[total] == sum of cells[parts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Index of the total cell.
    pub total: usize,
    /// Indices of the cells that add up to it.
    pub parts: Vec<usize>,
}

/// A counted table laid out for protection and writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedTable {
    /// Names of the two label columns.
    pub label_names: [&'static str; 2],
    /// Row labels.
    pub rows: Vec<(String, String)>,
    /// Counts, row-major, one column per [`Self::columns`] entry.
    pub cells: Vec<u64>,
    /// Every linear relation among the cells that a reader could use to recover a hidden one.
    pub relations: Vec<Relation>,
    /// Per row, the population it counts, as a canonical key: two rows of any tables with the
    /// same key count the same people, so their cells are equal (the summary's `ALL`/`core20`
    /// row is the equity table's IMD quintile 1 row, and both `ALL` rows are everyone). Keys
    /// are `&`-joined `name=value` conditions in a fixed order; everyone eligible is `all`.
    /// Rows are matched only between tables with the same [`Self::columns`].
    pub populations: Vec<String>,
    /// Names of the count columns; the last is each row's total ([`COUNT_COLUMNS`] for the
    /// summary and equity tables).
    pub columns: &'static [&'static str],
    /// Relations with cells of the run's other tables that are not plain equalities of rows.
    pub links: Links,
}

/// A cell that a [`Links`] sum names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A cell of this table (row-major index).
    Own(usize),
    /// A cell of another table of the run with [`COUNT_COLUMNS`]: the row counting `population`
    /// (see [`CountedTable::populations`]), column `column`. No such row: nobody, zero.
    Other {
        /// The population the row counts.
        population: String,
        /// Index into [`COUNT_COLUMNS`].
        column: usize,
    },
    /// A count printed nowhere (index into [`Links::derived`]).
    Derived(usize),
}

/// How a table's cells relate to the other tables of its run beyond equal rows: sums an
/// outsider can form across tables (a PCN's listed people are its moderate and severe people
/// of the summary; the PCNs' people aged 75-84 are the equity table's 75-79 and 80-84).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// Counts printed nowhere that the sums need (the people of the PCNs a table leaves out, by
    /// group): protected like cells when small, never printed.
    pub derived: Vec<u64>,
    /// Each pair: the terms on the left add up to the terms on the right.
    pub sums: Vec<(Vec<Term>, Vec<Term>)>,
}

/// Count the summary: eligible patients per PCN by eFI category, for everyone and for the
/// Core20 (most deprived quintile) group, with an all-PCN total row per group. Every PCN of the
/// cohort has its rows, even when no patient of it is eligible.
pub fn summary(cohort: &Cohort, scores: &[Scores], status: &[Status]) -> Counts {
    let p = &cohort.patients;
    let npcn = p.pcns.len();
    // Count by PCN index first (cheap), then label the rows.
    let mut by_pcn = vec![[[0u64; 5]; 2]; npcn + 1];
    for i in 0..p.len() {
        if status[i] != Status::Eligible {
            continue;
        }
        let c = scores[i].efi_category as usize;
        let pcn = p.pcn[i] as usize;
        let mut add = |pcn: usize, g: usize| {
            by_pcn[pcn][g][c] += 1;
            by_pcn[pcn][g][4] += 1;
        };
        add(pcn, 0);
        add(npcn, 0);
        if is_core20(p.imd_decile[i]) {
            add(pcn, 1);
            add(npcn, 1);
        }
    }
    let mut counts = Counts::new(TableKind::Summary);
    let total_section = TableKind::Summary.total_section();
    for (k, groups) in by_pcn.iter().enumerate() {
        let (section, pcn) = if k == npcn {
            (total_section, "ALL")
        } else {
            (0, p.pcns[k].as_str())
        };
        for (g, name) in ["all", "core20"].iter().enumerate() {
            *counts.row(section, pcn, name) = groups[g];
        }
    }
    counts
}

/// The group label of a patient (by index) within one dimension of the equity table.
type GroupOf<'a> = Box<dyn Fn(usize) -> String + 'a>;

/// Count the equity table: eligible patients by eFI category within each group of deprivation
/// quintile, sex, age band and ethnic group, with a total row. It shows whether frailty, and so
/// the lists, fall unevenly across the population.
pub fn equity(cohort: &Cohort, scores: &[Scores], status: &[Status], ages: &[i32]) -> Counts {
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
    let dims: [GroupOf; 4] = [
        Box::new(quintile),
        Box::new(|i: usize| p.sex[i].code().to_string()),
        Box::new(|i: usize| age_band(ages[i]).to_string()),
        Box::new(|i: usize| p.ethnicities[p.ethnicity[i] as usize].clone()),
    ];
    let eligible: Vec<usize> = (0..p.len())
        .filter(|&i| status[i] == Status::Eligible)
        .collect();
    let mut counts = Counts::new(TableKind::Equity);
    for (d, key) in dims.iter().enumerate() {
        let mut groups: BTreeMap<String, [u64; 5]> = BTreeMap::new();
        for &i in &eligible {
            let g = groups.entry(key(i)).or_default();
            g[scores[i].efi_category as usize] += 1;
            g[4] += 1;
        }
        for (g, c) in groups {
            *counts.row(d as u8, EQUITY_DIMENSIONS[d], &g) = c;
        }
    }
    let total = counts.row(TableKind::Equity.total_section(), "ALL", "all");
    for &i in &eligible {
        total[scores[i].efi_category as usize] += 1;
        total[4] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(kind: TableKind, rows: &[(u8, &str, &str, [u64; 5])]) -> Counts {
        let mut c = Counts::new(kind);
        for (s, a, b, v) in rows {
            *c.row(*s, a, b) = *v;
        }
        c
    }

    #[test]
    fn counts_of_partitions_add_up_to_the_counts_of_the_whole() {
        let a = counts(
            TableKind::Summary,
            &[
                (0, "P1", "all", [1, 2, 0, 0, 3]),
                (0, "P1", "core20", [1, 0, 0, 0, 1]),
                (1, "ALL", "all", [1, 2, 0, 0, 3]),
                (1, "ALL", "core20", [1, 0, 0, 0, 1]),
            ],
        );
        let b = counts(
            TableKind::Summary,
            &[
                (0, "P2", "all", [0, 1, 1, 0, 2]),
                (0, "P2", "core20", [0, 0, 0, 0, 0]),
                (1, "ALL", "all", [0, 1, 1, 0, 2]),
                (1, "ALL", "core20", [0, 0, 0, 0, 0]),
            ],
        );
        let mut whole = a.clone();
        whole.add(&b);
        let t = whole.table();
        assert_eq!(
            t.rows,
            vec![
                ("P1".to_string(), "all".to_string()),
                ("P1".to_string(), "core20".to_string()),
                ("P2".to_string(), "all".to_string()),
                ("P2".to_string(), "core20".to_string()),
                ("ALL".to_string(), "all".to_string()),
                ("ALL".to_string(), "core20".to_string()),
            ]
        );
        assert_eq!(&t.cells[20..25], &[1, 3, 1, 0, 5]);
        // Every relation holds on the added counts.
        for r in &t.relations {
            let sum: u64 = r.parts.iter().map(|&i| t.cells[i]).sum();
            assert_eq!(t.cells[r.total], sum, "{r:?}");
        }
        // 6 row relations and 2 groups x 5 columns.
        assert_eq!(t.relations.len(), 6 + 10);
    }
}
