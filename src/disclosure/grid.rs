//! The published cells of one run and the relations an outsider can see among them, plus a small
//! builder for the usual shapes (tables with a row-total column, column sums, equal rows).

use super::DisclosureError;

/// One linear relation an outsider can see among published cells:
/// `values[total] == sum(values[parts])`.
///
/// A relation with a single part expresses that two published cells are equal (the same count
/// printed in two tables). Indices are global cell indices into [`Grid::values`].
///
/// Why: disclosure by differencing only works through such relations, so the auditor and the
/// suppression both reason about exactly this list; anything an outsider could add up and that is
/// missing here is a hole in the protection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation {
    /// The cell that is the sum of the parts.
    pub total: usize,
    /// The cells that add up to `total` (one part: the two cells are equal).
    pub parts: Vec<usize>,
}

impl Relation {
    /// `values[total] == sum(values[parts])`.
    pub fn new(total: usize, parts: Vec<usize>) -> Self {
        Relation { total, parts }
    }

    /// `values[a] == values[b]`: the same count published twice (e.g. in two tables).
    pub fn equal(a: usize, b: usize) -> Self {
        Relation {
            total: a,
            parts: vec![b],
        }
    }

    /// Every cell of the relation, total first.
    pub fn cells(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.total).chain(self.parts.iter().copied())
    }
}

/// All cells published in one run (all tables flattened, indices global) and the relations among
/// them.
///
/// Why one grid per run: an attacker combines every table of a run, so tables have to be
/// protected together; protecting each table on its own is what lets a count hidden in one table
/// be read off another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    /// True (unrounded) counts of every cell, in global index order.
    pub values: Vec<u64>,
    /// Every linear relation an outsider can see among the cells.
    pub relations: Vec<Relation>,
    /// Cells never published and needing no protection themselves (ascending): counts an
    /// outsider could derive by subtraction that are not small, kept in the grid only so that
    /// the relations they take part in (e.g. everyone = Core20 + the rest, and so Core20 <=
    /// everyone) bound the attacker as they really do. A derived count that is small is an
    /// ordinary cell that is never printed: the rule hides it and protection covers it.
    pub free: Vec<usize>,
    /// The narrowest interval an outsider may prove for a hidden count (`min_interval` of
    /// [`super::Suppression`]); 0 or 1 means only exact recovery is refused.
    pub min_interval: u64,
    /// Cells never printed (ascending): derived counts that are small, protected like table
    /// cells but never shown, so an outsider knows no more of them than the relations say.
    pub unprinted: Vec<usize>,
    /// Published non-zero counts are rounded to a multiple of this before printing, and the
    /// outsider is credited with knowing only that (the nhse-2018 rule); 0 or 1: published
    /// counts are taken as known exactly (the complementary rule, which rounds, if at all,
    /// after protecting against an outsider who knows the exact counts).
    pub round_to: u64,
    /// Under rounding: the largest count the rule hides on its own, so a published non-zero count
    /// is known to be above it. (A hidden count is only known to be at least 1: it may be a
    /// larger count hidden to protect a small one.)
    pub small_max: u64,
}

/// Where a rectangular table sits inside a [`Grid`]: rows x cols cells, row-major, starting at
/// global index `first`. Returned by [`Grid::add_table`] so the caller can map a table cell to
/// its global index (and back when writing the suppressed table out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Global index of the cell at row 0, column 0.
    pub first: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (including a row-total column, if any).
    pub cols: usize,
}

impl Table {
    /// Global index of the cell at (`row`, `col`), or `None` when outside the table.
    pub fn cell(&self, row: usize, col: usize) -> Option<usize> {
        (row < self.rows && col < self.cols).then(|| self.first + row * self.cols + col)
    }

    /// Global indices of one row's cells, or `None` when the row is outside the table.
    pub fn row(&self, row: usize) -> Option<std::ops::Range<usize>> {
        (row < self.rows).then(|| {
            let s = self.first + row * self.cols;
            s..s + self.cols
        })
    }

    /// Global index range of the whole table.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.rows * self.cols
    }
}

impl Grid {
    /// An empty grid.
    pub fn new() -> Self {
        Grid::default()
    }

    /// Append a free cell (see [`Grid::free`]) and return its global index.
    pub fn add_free_cell(&mut self, value: u64) -> usize {
        let c = self.add_cell(value);
        self.free.push(c);
        c
    }

    /// Append a cell never printed but protected (see [`Grid::unprinted`]).
    pub fn add_unprinted_cell(&mut self, value: u64) -> usize {
        let c = self.add_cell(value);
        self.unprinted.push(c);
        c
    }

    /// Is `cell` free (never published, never needing protection)?
    pub fn is_free(&self, cell: usize) -> bool {
        self.free.binary_search(&cell).is_ok()
    }

    /// Append one cell and return its global index (for cells outside any rectangular table).
    pub fn add_cell(&mut self, value: u64) -> usize {
        self.values.push(value);
        self.values.len() - 1
    }

    /// Append a table of `values.len() / cols` rows x `cols` columns (row-major). When
    /// `last_col_is_total`, the last column is each row's total and a relation
    /// `row[cols-1] == sum(row[0..cols-1])` is added for every row.
    ///
    /// Errors if `cols` is 0, `values.len()` is not a multiple of `cols`, or a total column is
    /// asked for with fewer than 2 columns. The values are not checked against the relation here:
    /// [`super::protect`] and [`super::audit`] check every relation.
    pub fn add_table(
        &mut self,
        cols: usize,
        values: &[u64],
        last_col_is_total: bool,
    ) -> Result<Table, DisclosureError> {
        if cols == 0 || !values.len().is_multiple_of(cols) || (last_col_is_total && cols < 2) {
            return Err(DisclosureError::TableShape {
                cells: values.len(),
                cols,
            });
        }
        let t = Table {
            first: self.values.len(),
            rows: values.len() / cols,
            cols,
        };
        self.values.extend_from_slice(values);
        if last_col_is_total {
            for r in 0..t.rows {
                let s = t.first + r * cols;
                self.relations
                    .push(Relation::new(s + cols - 1, (s..s + cols - 1).collect()));
            }
        }
        Ok(t)
    }

    /// Add a relation after checking that its cells exist.
    pub fn add_relation(&mut self, total: usize, parts: Vec<usize>) -> Result<(), DisclosureError> {
        let rel = Relation::new(total, parts);
        if let Some(cell) = rel.cells().find(|&c| c >= self.values.len()) {
            return Err(DisclosureError::CellOutOfRange {
                cell,
                cells: self.values.len(),
            });
        }
        self.relations.push(rel);
        Ok(())
    }

    /// Add `values[a] == values[b]` (the same count published in two places).
    pub fn add_equal(&mut self, a: usize, b: usize) -> Result<(), DisclosureError> {
        self.add_relation(a, vec![b])
    }

    /// For every column of `table`: `cell(total_row, c) == sum over part_rows of cell(r, c)`.
    /// This is the "ALL row is the sum over PCNs" / "a dimension's groups add up to ALL" shape.
    pub fn add_column_sums(
        &mut self,
        table: &Table,
        total_row: usize,
        part_rows: &[usize],
    ) -> Result<(), DisclosureError> {
        let row_err = |row| DisclosureError::RowOutOfRange {
            row,
            rows: table.rows,
        };
        for c in 0..table.cols {
            let total = table.cell(total_row, c).ok_or_else(|| row_err(total_row))?;
            let parts = part_rows
                .iter()
                .map(|&r| table.cell(r, c).ok_or_else(|| row_err(r)))
                .collect::<Result<Vec<_>, _>>()?;
            self.add_relation(total, parts)?;
        }
        Ok(())
    }

    /// Cell-by-cell equality of row `ra` of table `a` and row `rb` of table `b` (e.g. the
    /// summary's ALL/core20 row and the equity table's IMD-quintile-1 row).
    pub fn add_equal_rows(
        &mut self,
        a: &Table,
        ra: usize,
        b: &Table,
        rb: usize,
    ) -> Result<(), DisclosureError> {
        if a.cols != b.cols {
            return Err(DisclosureError::ColumnMismatch {
                left: a.cols,
                right: b.cols,
            });
        }
        let row_a = a.row(ra).ok_or(DisclosureError::RowOutOfRange {
            row: ra,
            rows: a.rows,
        })?;
        let row_b = b.row(rb).ok_or(DisclosureError::RowOutOfRange {
            row: rb,
            rows: b.rows,
        })?;
        for (x, y) in row_a.zip(row_b) {
            self.add_equal(x, y)?;
        }
        Ok(())
    }
}

/// The least value an outsider knows a hidden cell of true value `v` has: 1, since strata never
/// hides a zero (a `[c]` is 1 or more, and README says so), or 0 for a zero (a derived cell).
pub(crate) fn lower_bound(v: u64) -> f64 {
    v.min(1) as f64
}

/// A validated view of a grid used by the auditor and the suppression: every relation as a
/// sparse row `sum(coeff * value) == 0` with duplicate cells merged (total +1, parts -1), and for
/// each cell the relations it appears in.
pub(crate) struct Model<'a> {
    /// The true counts.
    pub values: &'a [u64],
    /// Per relation: (cell, non-zero coefficient), cells ascending.
    pub rels: Vec<Vec<(usize, i64)>>,
    /// Per relation: its total cell.
    pub rel_total: Vec<usize>,
    /// Per cell: the relations it appears in (with a non-zero coefficient), ascending.
    pub cell_rels: Vec<Vec<usize>>,
    /// Per cell: is it the total of some relation with at least two parts (a margin)?
    pub is_total: Vec<bool>,
    /// Per cell: its twin group, the cells equal to it through chains of one-part relations
    /// (the same count printed in several places), as an index into `groups`.
    pub group_of: Vec<usize>,
    /// Twin groups, each ascending, ordered by smallest cell.
    pub groups: Vec<Vec<usize>>,
    /// Per cell: free (see [`Grid::free`]).
    pub free: Vec<bool>,
    /// The width every hidden count's provable interval must reach: `max(1, min_interval)`
    /// (1: the interval holds two integers, so the count is not recovered exactly).
    pub width: f64,
    /// Per cell: what an outsider knows of it when hidden, `(lower, upper)`: at least 1 (a
    /// `[c]` is never 0; 0 for a zero or an unprinted cell), with no upper bound (a `[c]` may be
    /// a larger count hidden to protect a small one).
    pub hidden_bounds: Vec<(f64, f64)>,
    /// Per cell: what an outsider knows of it when published under rounding (the values that
    /// round to what is printed); `None`: known exactly.
    pub published_range: Vec<Option<(f64, f64)>>,
}

impl<'a> Model<'a> {
    /// Check indices and that every relation holds for the true values.
    pub fn new(grid: &'a Grid) -> Result<Self, DisclosureError> {
        let n = grid.values.len();
        let mut rels = Vec::with_capacity(grid.relations.len());
        let mut rel_total = Vec::with_capacity(grid.relations.len());
        let mut cell_rels = vec![Vec::new(); n];
        let mut is_total = vec![false; n];
        for (ri, rel) in grid.relations.iter().enumerate() {
            if let Some(cell) = rel.cells().find(|&c| c >= n) {
                return Err(DisclosureError::RelationOutOfRange {
                    relation: ri,
                    cell,
                    cells: n,
                });
            }
            let mut terms: Vec<(usize, i64)> = rel
                .cells()
                .enumerate()
                .map(|(k, c)| (c, if k == 0 { 1 } else { -1 }))
                .collect();
            terms.sort_unstable();
            let mut merged: Vec<(usize, i64)> = Vec::with_capacity(terms.len());
            for (c, k) in terms {
                match merged.last_mut() {
                    Some(last) if last.0 == c => last.1 += k,
                    _ => merged.push((c, k)),
                }
            }
            merged.retain(|&(_, k)| k != 0);
            let total = u128::from(grid.values[rel.total]);
            let sum: u128 = rel.parts.iter().map(|&c| u128::from(grid.values[c])).sum();
            if total != sum {
                return Err(DisclosureError::Inconsistent {
                    relation: ri,
                    total,
                    sum,
                });
            }
            for &(c, _) in &merged {
                cell_rels[c].push(ri);
            }
            if rel.parts.len() >= 2 {
                is_total[rel.total] = true;
            }
            rels.push(merged);
            rel_total.push(rel.total);
        }
        // Twin groups by union-find over the equalities.
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut c: usize) -> usize {
            while parent[c] != c {
                parent[c] = parent[parent[c]];
                c = parent[c];
            }
            c
        }
        for rel in &grid.relations {
            if let [part] = rel.parts[..] {
                let (a, b) = (root(&mut parent, rel.total), root(&mut parent, part));
                parent[a.max(b)] = a.min(b);
            }
        }
        let mut group_of = vec![usize::MAX; n];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for c in 0..n {
            let r = root(&mut parent, c);
            if group_of[r] == usize::MAX {
                group_of[r] = groups.len();
                groups.push(Vec::new());
            }
            group_of[c] = group_of[r];
            groups[group_of[c]].push(c);
        }
        let mut free = vec![false; n];
        for &c in &grid.free {
            if c >= n {
                return Err(DisclosureError::CellOutOfRange { cell: c, cells: n });
            }
            free[c] = true;
        }
        let mut printed = vec![true; n];
        for &c in grid.free.iter().chain(&grid.unprinted) {
            if c >= n {
                return Err(DisclosureError::CellOutOfRange { cell: c, cells: n });
            }
            printed[c] = false;
        }
        let hidden_bounds = (0..n)
            .map(|c| {
                let v = grid.values[c];
                let lower = if printed[c] { lower_bound(v) } else { 0.0 };
                let upper = f64::INFINITY;
                (lower, upper)
            })
            .collect();
        let published_range = (0..n)
            .map(|c| {
                let v = grid.values[c];
                (grid.round_to > 1 && v > 0 && printed[c]).then(|| {
                    let r = grid.round_to;
                    let shown = super::round_to_multiple(v, r);
                    // `x` rounds (halves up) to `shown` iff shown - r/2 <= x <= shown + r - 1 - r/2;
                    // a printed non-zero count is above the suppressed range.
                    let lo = shown.saturating_sub(r / 2).max(grid.small_max + 1);
                    let hi = shown + r - 1 - r / 2;
                    (lo as f64, hi as f64)
                })
            })
            .collect();
        Ok(Model {
            hidden_bounds,
            published_range,
            free,
            width: grid.min_interval.max(1) as f64,
            values: &grid.values,
            rels,
            rel_total,
            cell_rels,
            is_total,
            group_of,
            groups,
        })
    }

    /// The hidden cells linked to hidden cell `start` through relations (each relation with a
    /// hidden cell links all its hidden cells), ascending.
    pub fn component(&self, hidden: &[bool], start: usize) -> Vec<usize> {
        let mut seen = vec![false; self.values.len()];
        let mut stack = vec![start];
        seen[start] = true;
        let mut out = Vec::new();
        while let Some(c) = stack.pop() {
            out.push(c);
            for &r in &self.cell_rels[c] {
                for &(d, _) in &self.rels[r] {
                    if hidden[d] && !seen[d] {
                        seen[d] = true;
                        stack.push(d);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// All components of hidden cells, each ascending, ordered by their smallest cell.
    pub fn components(&self, hidden: &[bool]) -> Vec<Vec<usize>> {
        let mut done = vec![false; self.values.len()];
        let mut comps = Vec::new();
        for c in 0..self.values.len() {
            if hidden[c] && !done[c] {
                let comp = self.component(hidden, c);
                for &d in &comp {
                    done[d] = true;
                }
                comps.push(comp);
            }
        }
        comps
    }
}
