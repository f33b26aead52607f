//! Statistical disclosure control of the aggregate tables of one run: which cells are published,
//! suppressed or rounded, decided for all tables together and proved by a linear-programming
//! auditor.
//!
//! Pipeline position: `tables` (counts and the relations among them) -> **disclosure** ->
//! `output`. It never counts and never sees a patient. As statistical agencies do (tau-Argus, R
//! sdcTable), every table of a run is flattened into one [`Grid`] of cells with every relation an
//! outsider can see among them: a row's categories add up to its total, the PCN rows add up to
//! the `ALL` rows, each equity dimension adds up to `ALL`, rows of different tables that count the
//! same people are equal (the summary's `ALL`/`core20` row is the equity table's IMD quintile 1
//! row), and a difference an outsider can take (a PCN's everyone minus its Core20: the rest of the
//! PCN) is a cell of its own that must be protected when small. Counts 1-7 are hidden (primary
//! suppression), then complementary cells are hidden until the auditor, which bounds every hidden
//! cell from below and above by LP over all relations, finds none pinned to one value. Rounding
//! (`--publication`) is applied on top. Counting stays in `tables`, so counts from several
//! partitions can be added before they are protected here, once.
//!
//! The LP solver is `microlp` (pure Rust, maintained: the successor of minilp, used by good_lp).
//! `grid`, `audit` and `protect` hold the general method; this file maps strata's tables onto it.

mod audit;
mod grid;
mod protect;

use std::collections::HashMap;

pub use audit::{audit, Audit, CellInterval};
pub use grid::{Grid, Relation, Table};
pub use protect::{primary_mask, protect_with, Options, Rule};

use crate::tables::{CountedTable, Term, COUNT_COLUMNS};

/// Which small-number rule protects the aggregate tables (`[disclosure] rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DisclosureRule {
    /// Suppress 1-7, then hide complementary cells until the LP auditor can work out none
    /// (the tau-Argus / sdcTable method); `--publication` rounds the rest to 5 on top. Counts
    /// stay exact for analysts; more cells are `[c]`.
    #[default]
    #[serde(rename = "complementary")]
    Complementary,
    /// NHS England's rule since 2018 (HES and other national publications): suppress 1-7,
    /// round every other count to the nearest 5 (totals from unrounded values, then rounded),
    /// and add a complementary cell only where the auditor, knowing the rounding, could still
    /// work a hidden count out. Few `[c]`; every count is within 2 of the truth.
    #[serde(rename = "nhse-2018")]
    Nhse2018,
}

impl DisclosureRule {
    /// Parse `complementary` or `nhse-2018`.
    pub fn parse(s: &str) -> Option<DisclosureRule> {
        match s.trim() {
            "complementary" => Some(DisclosureRule::Complementary),
            "nhse-2018" => Some(DisclosureRule::Nhse2018),
            _ => None,
        }
    }
}

/// Small-number rules for aggregate tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Suppression {
    /// The rule ([`DisclosureRule`]).
    pub rule: DisclosureRule,
    /// Counts from 1 to this are suppressed (NHS publication rule: 7).
    pub max_suppressed: u64,
    /// Round every other count to the nearest multiple of this (5 for publication, as HES and
    /// OpenSAFELY do); 1 leaves counts as they are.
    pub round_to: u64,
    /// The narrowest interval an outsider may prove for any hidden count (`[disclosure]
    /// min_interval`): 0 (the default) refuses exact recovery only, as the guidance asks; `w > 0`
    /// hides cells until every hidden count's provable interval is at least `w` wide.
    pub min_interval: u64,
}

impl Default for Suppression {
    fn default() -> Self {
        Suppression {
            rule: DisclosureRule::Complementary,
            max_suppressed: 7,
            round_to: 1,
            min_interval: 0,
        }
    }
}

impl Suppression {
    /// Suppression plus rounding to 5, for tables meant for publication.
    pub fn publication() -> Self {
        Suppression {
            round_to: 5,
            ..Suppression::default()
        }
    }

    /// NHS England's 2018 rule ([`DisclosureRule::Nhse2018`]): 1-7 hidden, the rest rounded
    /// to 5.
    pub fn nhse_2018() -> Self {
        Suppression {
            rule: DisclosureRule::Nhse2018,
            round_to: 5,
            ..Suppression::default()
        }
    }

    /// These rules with a minimum protection interval.
    pub fn with_min_interval(self, min_interval: u64) -> Self {
        Suppression {
            min_interval,
            ..self
        }
    }

    /// The rules a run's settings ask for, resolved once for every front end: `rule`
    /// (`complementary`, the default, or `nhse-2018`), `publication` (rounding to 5 on top of
    /// the complementary rule; the 2018 rule always rounds) and `min_interval`. An unknown rule
    /// is an error that names it.
    pub fn resolve(
        rule: Option<&str>,
        publication: bool,
        min_interval: u64,
    ) -> Result<Suppression, DisclosureError> {
        let rule = match rule {
            None => DisclosureRule::Complementary,
            Some(r) => DisclosureRule::parse(r).ok_or_else(|| {
                DisclosureError::Settings(format!(
                    "disclosure rule '{r}' is not complementary or nhse-2018"
                ))
            })?,
        };
        let base = match rule {
            DisclosureRule::Nhse2018 => Suppression::nhse_2018(),
            DisclosureRule::Complementary if publication => Suppression::publication(),
            DisclosureRule::Complementary => Suppression::default(),
        };
        Ok(base.with_min_interval(min_interval))
    }
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
    /// The number shown, or `None` when suppressed.
    pub fn count(self) -> Option<u64> {
        match self {
            Cell::Count(n) => Some(n),
            Cell::Suppressed => None,
        }
    }

    /// Text for CSV: the number, or `[c]` (the GOV.UK symbol for "confidential").
    pub fn text(self) -> String {
        match self {
            Cell::Count(n) => n.to_string(),
            Cell::Suppressed => "[c]".to_string(),
        }
    }
}

/// Everything that can go wrong; all of it comes from the input grid except `Solver` and
/// `Settings`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    /// The disclosure settings cannot be used (named in the message).
    #[error("{0}")]
    Settings(String),
    /// A builder call named a cell that does not exist.
    #[error("cell {cell} out of range: the grid has {cells} cells")]
    CellOutOfRange {
        /// The offending index.
        cell: usize,
        /// Number of cells in the grid.
        cells: usize,
    },
    /// A relation names a cell that does not exist.
    #[error("relation {relation} names cell {cell}, but the grid has {cells} cells")]
    RelationOutOfRange {
        /// Index of the relation in `Grid::relations`.
        relation: usize,
        /// The offending index.
        cell: usize,
        /// Number of cells in the grid.
        cells: usize,
    },
    /// A relation does not hold for the true values: the tables were not counted consistently,
    /// so the auditor's reasoning (and the protection) would not apply.
    #[error("relation {relation} does not hold: total {total} but parts add to {sum}")]
    Inconsistent {
        /// Index of the relation in `Grid::relations`.
        relation: usize,
        /// Value of the total cell.
        total: u128,
        /// Sum of the parts.
        sum: u128,
    },
    /// The suppression mask does not have one entry per cell.
    #[error("mask has {found} entries, the grid has {expected} cells")]
    MaskLength {
        /// Number of cells in the grid.
        expected: usize,
        /// Length of the mask given.
        found: usize,
    },
    /// `add_table` was given values that do not form whole rows.
    #[error("{cells} values do not form a table with {cols} columns")]
    TableShape {
        /// Number of values given.
        cells: usize,
        /// Number of columns asked for.
        cols: usize,
    },
    /// A builder call named a row outside the table.
    #[error("row {row} out of range: the table has {rows} rows")]
    RowOutOfRange {
        /// The offending row.
        row: usize,
        /// Number of rows in the table.
        rows: usize,
    },
    /// Two rows said to be equal have different numbers of columns.
    #[error("rows of {left} and {right} columns cannot be equal cell by cell")]
    ColumnMismatch {
        /// Columns of the first table.
        left: usize,
        /// Columns of the second table.
        right: usize,
    },
    /// The LP solver failed on a component (should not happen for a consistent grid).
    #[error("LP solver failed on the component of {cells} cells starting at cell {first_cell}: {message}")]
    Solver {
        /// Smallest cell of the component.
        first_cell: usize,
        /// Number of suppressed cells in the component.
        cells: usize,
        /// What the solver said.
        message: String,
    },
}

/// All tables of one run as one grid.
#[derive(Debug, Clone)]
pub struct RunGrid {
    /// The cells (every table's, then the derived ones) and their relations.
    pub grid: Grid,
    /// Global index of each table's first cell; a table's cells are contiguous, row-major.
    pub offsets: Vec<usize>,
}

/// The population whose count minus the Core20 part of it an outsider can take, if `key` has
/// such a part: everyone (`all`) and each PCN.
fn core20_part(key: &str) -> Option<String> {
    const CORE20: &str = "imd_quintile=1";
    if key == "all" {
        Some(CORE20.to_string())
    } else if key.starts_with("pcn=") && !key.contains('&') {
        Some(format!("{key}&{CORE20}"))
    } else {
        None
    }
}

/// Flatten every table of a run into one grid with all the relations an outsider can see (see
/// the module documentation). `rule` decides which derived differences are sensitive. Sensitive
/// (small) differences come first after the tables' cells; then, when `bounds`, the others as
/// free cells, which only bound the attacker (Core20 <= everyone) and make the LPs larger.
pub fn run_grid(tables: &[&CountedTable], rule: &Suppression) -> RunGrid {
    run_grid_with(tables, rule, true)
}

fn run_grid_with(tables: &[&CountedTable], rule: &Suppression, bounds: bool) -> RunGrid {
    let mut grid = Grid::new();
    grid.min_interval = rule.min_interval;
    if rule.rule == DisclosureRule::Nhse2018 {
        grid.round_to = rule.round_to;
        grid.small_max = rule.max_suppressed;
    }
    let mut offsets = Vec::with_capacity(tables.len());
    // (columns, population, column) -> first global cell counting it.
    let mut first: HashMap<(&[&str], &str, usize), usize> = HashMap::new();
    // Rows of the eFI-category tables, by population in first-seen order, with their row's
    // first cell and width.
    let mut rows: Vec<(&str, usize, usize)> = Vec::new();
    for t in tables {
        let base = grid.values.len();
        offsets.push(base);
        for &v in &t.cells {
            grid.add_cell(v);
        }
        for r in &t.relations {
            grid.relations.push(Relation::new(
                base + r.total,
                r.parts.iter().map(|&p| base + p).collect(),
            ));
        }
        let width = t.columns.len();
        for (row, key) in t.populations.iter().enumerate() {
            let start = base + row * width;
            if !first.contains_key(&(t.columns, key.as_str(), 0)) && t.columns == COUNT_COLUMNS {
                rows.push((key.as_str(), start, width));
            }
            for c in 0..width {
                match first.get(&(t.columns, key.as_str(), c)) {
                    Some(&f) => grid.relations.push(Relation::equal(f, start + c)),
                    None => {
                        first.insert((t.columns, key.as_str(), c), start + c);
                    }
                }
            }
        }
    }
    // Differences an outsider can take: a population minus its Core20 part.
    let efi: &[&str] = &COUNT_COLUMNS;
    let mut large = Vec::new();
    for &(key, start, width) in &rows {
        let Some(part) = core20_part(key) else {
            continue;
        };
        if !first.contains_key(&(efi, part.as_str(), 0)) {
            continue;
        }
        for c in 0..width {
            let (whole, core20) = (start + c, first[&(efi, part.as_str(), c)]);
            let v = grid.values[whole].saturating_sub(grid.values[core20]);
            // A small difference is a cell of its own, never printed, that needs protecting; a
            // large one only bounds the attacker (Core20 <= everyone).
            if (1..=rule.max_suppressed).contains(&v) {
                let d = grid.add_unprinted_cell(v);
                grid.relations.push(Relation::new(whole, vec![core20, d]));
            } else {
                large.push((whole, core20, v));
            }
        }
    }
    // Sums across tables (`CountedTable::links`): their derived counts are cells never
    // printed, protected when small like the differences above.
    for (t, &base) in tables.iter().zip(&offsets) {
        let derived: Vec<usize> = t
            .links
            .derived
            .iter()
            .map(|&v| {
                if (1..=rule.max_suppressed).contains(&v) {
                    grid.add_unprinted_cell(v)
                } else {
                    grid.add_free_cell(v)
                }
            })
            .collect();
        let resolve = |terms: &[Term]| -> Vec<usize> {
            terms
                .iter()
                .filter_map(|term| match term {
                    Term::Own(k) => Some(base + k),
                    // No row counting that population: nobody, a zero left out of the sum.
                    Term::Other { population, column } => {
                        first.get(&(efi, population.as_str(), *column)).copied()
                    }
                    Term::Derived(d) => derived.get(*d).copied(),
                })
                .collect()
        };
        for (left, right) in &t.links.sums {
            let (l, r) = (resolve(left), resolve(right));
            match (&l[..], &r[..]) {
                ([], []) => {}
                ([total], parts) | (parts, [total]) => {
                    grid.relations.push(Relation::new(*total, parts.to_vec()))
                }
                _ => {
                    // Both sides hold several cells: their common sum is a cell of its own.
                    let v = l.iter().map(|&c| grid.values[c]).sum();
                    let f = grid.add_free_cell(v);
                    grid.relations.push(Relation::new(f, l));
                    grid.relations.push(Relation::new(f, r));
                }
            }
        }
    }
    if bounds {
        for (whole, core20, v) in large {
            let d = grid.add_free_cell(v);
            grid.relations.push(Relation::new(whole, vec![core20, d]));
        }
    }
    RunGrid { grid, offsets }
}

/// Protect every counted table of a run together: primary suppression of counts 1 to
/// `rule.max_suppressed`, complementary suppression until the LP auditor finds no hidden count
/// that can be worked out from anything published in the run, then rounding to `rule.round_to`.
/// Returns each table's published cells, in table order.
pub fn protect(
    tables: &[&CountedTable],
    rule: &Suppression,
) -> Result<Vec<Vec<Cell>>, DisclosureError> {
    let r = Rule {
        max_suppressed: rule.max_suppressed,
    };
    // The 2018 rule adds a complement only where the auditor, knowing the rounding, still
    // works a count out: no classic pre-pass.
    let opts = Options {
        prepass: rule.rule == DisclosureRule::Complementary,
        prune: true,
    };
    // Protect without the Core20 <= everyone bounds first (a hundred times faster: they join
    // every PCN's rows into one large LP), then audit with them; protect with them only if that
    // audit finds something (the bounds can only narrow what an outsider knows).
    let fast = run_grid_with(tables, rule, false);
    let rg = run_grid(tables, rule);
    let mut hidden = protect::protect_with(&fast.grid, &r, &opts)?;
    hidden.resize(rg.grid.values.len(), true);
    // The same exposure the full audit would find, without every cell's interval; if any, go on
    // from this pattern with every relation.
    if !audit::exposed(&rg.grid, &hidden)?.is_empty() {
        let start = hidden;
        hidden = protect::protect_from(&rg.grid, &r, &opts, &start)?;
    }
    Ok(tables
        .iter()
        .zip(&rg.offsets)
        .map(|(t, &base)| {
            (0..t.cells.len())
                .map(|k| {
                    let v = t.cells[k];
                    if hidden[base + k] {
                        Cell::Suppressed
                    } else {
                        Cell::Count(round_to_multiple(v, rule.round_to))
                    }
                })
                .collect()
        })
        .collect())
}

/// Audit what [`protect`] (or anything else) publishes for a run's tables: the LP interval of
/// every hidden cell, and the hidden non-zero cells pinned to one value (none, if protection
/// holds). Rounding is ignored: the auditor knows the exact published values, the stronger
/// attacker.
pub fn audit_tables(
    tables: &[&CountedTable],
    cells: &[Vec<Cell>],
    rule: &Suppression,
) -> Result<Audit, DisclosureError> {
    let rg = run_grid(tables, rule);
    // Derived cells (after the tables' own) are never printed: hidden unless a table shows them.
    let mut hidden = vec![true; rg.grid.values.len()];
    for (t, &base) in cells.iter().zip(&rg.offsets) {
        for (k, c) in t.iter().enumerate() {
            hidden[base + k] = *c == Cell::Suppressed;
        }
    }
    audit(&rg.grid, &hidden)
}

/// Round `v` to the nearest multiple of `round_to` (halves up); 0 or 1 leaves it as it is.
pub fn round_to_multiple(v: u64, round_to: u64) -> u64 {
    if round_to <= 1 {
        return v;
    }
    let r = u128::from(round_to);
    u64::try_from((u128::from(v) + r / 2) / r * r).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Relation as TableRelation;

    /// One table of one row: fit + mild + moderate + severe = total (cells 0..=4) when `total`.
    fn table(cells: &[u64], total: bool) -> CountedTable {
        CountedTable {
            label_names: ["a", "b"],
            rows: vec![("r".into(), "r".into())],
            cells: cells.to_vec(),
            relations: if total {
                vec![TableRelation {
                    total: 4,
                    parts: vec![0, 1, 2, 3],
                }]
            } else {
                vec![]
            },
            populations: vec!["r".into()],
            columns: &COUNT_COLUMNS,
            links: Default::default(),
        }
    }

    fn protect_one(cells: &[u64], total: bool, rule: &Suppression) -> Vec<Cell> {
        let t = table(cells, total);
        let out = protect(&[&t], rule).unwrap().remove(0);
        assert!(audit_tables(&[&t], std::slice::from_ref(&out), rule)
            .unwrap()
            .is_safe());
        out
    }

    #[test]
    fn counts_one_to_seven_are_suppressed_zero_and_eight_are_not() {
        let cells = protect_one(&[0, 1, 7, 8, 16], false, &Suppression::default());
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
        let cells = protect_one(&[100, 3, 20, 9, 132], true, &Suppression::default());
        assert_eq!(cells[1], Cell::Suppressed);
        assert_eq!(cells[3], Cell::Suppressed, "smallest other cell goes too");
        assert_eq!(cells[0], Cell::Count(100));
        assert_eq!(cells[4], Cell::Count(132));
    }

    #[test]
    fn when_only_the_total_is_left_it_is_suppressed() {
        let cells = protect_one(&[0, 3, 0, 0, 3], true, &Suppression::default());
        assert_eq!(cells[1], Cell::Suppressed);
        assert_eq!(cells[4], Cell::Suppressed);
        assert_eq!(cells[0], Cell::Count(0));
    }

    #[test]
    fn publication_rounds_to_five_after_suppression() {
        let cells = protect_one(&[12, 13, 22, 100, 147], false, &Suppression::publication());
        assert_eq!(
            cells,
            vec![
                Cell::Count(10),
                Cell::Count(15),
                Cell::Count(20),
                Cell::Count(100),
                Cell::Count(145)
            ]
        );
    }

    #[test]
    fn rows_counting_the_same_people_are_one_cell_across_tables() {
        let mut a = table(&[100, 3, 20, 9, 132], true);
        a.populations = vec!["imd_quintile=1".into()];
        let mut b = table(&[100, 3, 20, 9, 132], true);
        b.populations = vec!["imd_quintile=1".into()];
        let rg = run_grid(&[&a, &b], &Suppression::default());
        assert_eq!(
            rg.grid
                .relations
                .iter()
                .filter(|r| r.parts.len() == 1)
                .count(),
            5
        );
        let out = protect(&[&a, &b], &Suppression::default()).unwrap();
        assert_eq!(out[0], out[1], "hidden together, published together");
    }
}
