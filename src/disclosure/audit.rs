//! The auditor: what an outsider can prove about each suppressed cell, by linear programming.
//!
//! Attacker model: the outsider knows every published value exactly, every relation of the grid,
//! and that a hidden count is at least 1 (strata never hides a zero; 0 for a derived zero). Each
//! suppressed cell is a variable `x >= lower`; every relation becomes a linear equality on the
//! suppressed variables with the published cells as constants. Minimising and maximising each
//! variable gives the interval the outsider can prove, which must be at least the grid's width
//! wide (`min_interval`; by default 1: not one value).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use microlp::{ComparisonOp, OptimizationDirection, Problem, Variable};

use super::grid::{Grid, Model};
use super::DisclosureError;

/// Tolerance used when rounding LP bounds inward to integers and when reading witness points.
pub(crate) const EPS: f64 = 1e-6;

/// What an outsider can prove about one suppressed cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellInterval {
    /// Global index of the cell.
    pub cell: usize,
    /// Its true value.
    pub value: u64,
    /// Smallest integer the outsider cannot rule out: `ceil(lp_lo - 1e-6)`, never above `value`.
    pub lo: f64,
    /// Largest integer the outsider cannot rule out: `floor(lp_hi + 1e-6)`, never below `value`;
    /// `f64::INFINITY` when the LP maximum is unbounded.
    pub hi: f64,
    /// The LP minimum (real-valued relaxation).
    pub lp_lo: f64,
    /// The LP maximum (real-valued relaxation); `f64::INFINITY` when unbounded.
    pub lp_hi: f64,
    /// A free cell (never published, needs no protection): never exposed.
    pub free: bool,
    /// The width the interval must reach (`max(1, min_interval)`).
    pub width: f64,
}

impl CellInterval {
    /// The interval is narrower than required (with the default width of 1: exactly one
    /// integer is feasible) and the true value is not zero: the cell is disclosed. (A suppressed
    /// zero that can be worked out discloses nothing that publishing it would not.)
    pub fn is_exposed(&self) -> bool {
        !self.free && self.value != 0 && self.hi - self.lo < self.width
    }
}

/// Result of [`audit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// One interval per suppressed cell, in cell order.
    pub intervals: Vec<CellInterval>,
    /// Suppressed non-zero cells whose interval holds exactly one integer, ascending.
    pub exposed: Vec<usize>,
}

impl Audit {
    /// No suppressed cell can be worked out.
    pub fn is_safe(&self) -> bool {
        self.exposed.is_empty()
    }

    /// The interval of one cell, if it is suppressed.
    pub fn interval(&self, cell: usize) -> Option<&CellInterval> {
        self.intervals
            .binary_search_by_key(&cell, |i| i.cell)
            .ok()
            .map(|k| &self.intervals[k])
    }
}

/// For each suppressed cell: the interval `[lo, hi]` an attacker can prove by LP over all
/// relations, with published cells fixed and suppressed cells at least their lower bound.
///
/// The suppressed cells are split into connected components (cells linked through a relation
/// that holds at least one suppressed cell); the LPs of different components share no variable,
/// so each component is solved on its own, which keeps the LPs small.
///
/// Errors if `hidden` has the wrong length, a relation points outside the grid or does not hold
/// for the true values, or the LP solver fails.
pub fn audit(grid: &Grid, hidden: &[bool]) -> Result<Audit, DisclosureError> {
    check_mask(grid, hidden)?;
    let model = Model::new(grid)?;
    let mut intervals = Vec::new();
    for comp in model.components(hidden) {
        let lp = ComponentLp::new(&model, hidden, &comp);
        intervals.extend(lp.intervals()?);
    }
    intervals.sort_by_key(|i| i.cell);
    let exposed = intervals
        .iter()
        .filter(|i| i.is_exposed())
        .map(|i| i.cell)
        .collect();
    Ok(Audit { intervals, exposed })
}

/// The exposed cells of [`audit`] (ascending) without the intervals: faster, because a
/// feasible point that moves a cell by the width proves it safe without an LP of its own.
pub(crate) fn exposed(grid: &Grid, hidden: &[bool]) -> Result<Vec<usize>, DisclosureError> {
    check_mask(grid, hidden)?;
    let model = Model::new(grid)?;
    let mut out = Vec::new();
    for comp in model.components(hidden) {
        out.extend(ComponentLp::new(&model, hidden, &comp).exposed()?);
    }
    out.sort_unstable();
    Ok(out)
}

pub(crate) fn check_mask(grid: &Grid, hidden: &[bool]) -> Result<(), DisclosureError> {
    if hidden.len() != grid.values.len() {
        return Err(DisclosureError::MaskLength {
            expected: grid.values.len(),
            found: hidden.len(),
        });
    }
    Ok(())
}

/// Solve `p` and read `vars` at the optimum. microlp reports failures as errors; an internal
/// panic is caught and reported as an error too: a solver bug must surface as an error, not
/// abort the caller's run.
pub(crate) fn run_lp(p: &Problem, vars: &[Variable]) -> Result<Vec<f64>, microlp::Error> {
    catch_unwind(AssertUnwindSafe(|| match p.solve()? {
        microlp::SolveOutcome::Solution(s) => Ok(vars.iter().map(|&v| s.var_value(v)).collect()),
        // Only a time or node limit interrupts a solve, and none is set.
        microlp::SolveOutcome::Interrupted(_) => {
            Err(microlp::Error::InternalError("LP solve interrupted".into()))
        }
    }))
    .unwrap_or_else(|_| Err(microlp::Error::InternalError("LP solver panicked".into())))
}

/// Does a feasible point where a cell of true value `v` is `x` prove its interval at least
/// `width` wide (with width 1: holding two integers)? (Same thresholds as the inward rounding in
/// [`CellInterval`].)
fn settles(x: f64, v: u64, width: f64) -> bool {
    let v = v as f64;
    x <= v - width + EPS || x >= v + width - EPS
}

/// The LP of one component: variables are its suppressed cells, rows the relations touching it.
///
/// Under rounding (the nhse-2018 rule) the published cells of those relations are variables
/// too, each within the values that round to what is printed, and the relations they take part
/// in are rows, with every other cell at its true value. That restricts the outsider (who could
/// also move those other cells), so an interval found is never wider than the outsider's: a
/// cell shown safe is safe, and one not shown safe gets a complement.
pub(crate) struct ComponentLp<'m> {
    values: &'m [u64],
    /// Per variable: its cell is free, or a published cell (never exposed).
    free: Vec<bool>,
    /// Per variable: what an outsider knows of it (`Model::hidden_bounds`, or the rounding
    /// range of a published cell).
    bounds: Vec<(f64, f64)>,
    /// The width every interval must reach ([`Model::width`]).
    width: f64,
    /// Global cell of each variable: the component's cells, ascending, then any published
    /// cells under rounding.
    cells: Vec<usize>,
    /// How many of `cells` are the component's (audited).
    audited: usize,
    /// Rows `sum(coeff * x) == rhs`, over variable indices.
    rows: Vec<(Vec<(usize, f64)>, f64)>,
}

impl<'m> ComponentLp<'m> {
    /// Build the LP of `comp` (a component of `hidden`, ascending).
    pub fn new(model: &Model<'m>, hidden: &[bool], comp: &[usize]) -> Self {
        let mut cells = comp.to_vec();
        let mut local: BTreeMap<usize, usize> =
            comp.iter().enumerate().map(|(k, &c)| (c, k)).collect();
        let mut rel_ids: Vec<usize> = comp
            .iter()
            .flat_map(|&c| model.cell_rels[c].iter().copied())
            .collect();
        rel_ids.sort_unstable();
        rel_ids.dedup();
        // Published cells known only to a range: variables, with their own relations as rows.
        let mut ranged = Vec::new();
        for &r in &rel_ids {
            for &(c, _) in &model.rels[r] {
                if !hidden[c] && model.published_range[c].is_some() && !local.contains_key(&c) {
                    local.insert(c, cells.len());
                    cells.push(c);
                    ranged.push(c);
                }
            }
        }
        if !ranged.is_empty() {
            rel_ids.extend(
                ranged
                    .iter()
                    .flat_map(|&c| model.cell_rels[c].iter().copied()),
            );
            rel_ids.sort_unstable();
            rel_ids.dedup();
        }
        let mut rows = Vec::with_capacity(rel_ids.len());
        for r in rel_ids {
            let mut lhs = Vec::new();
            let mut rhs: i128 = 0;
            for &(c, k) in &model.rels[r] {
                match local.get(&c) {
                    Some(&v) => lhs.push((v, k as f64)),
                    None => rhs -= i128::from(k) * i128::from(model.values[c]),
                }
            }
            if !lhs.is_empty() {
                rows.push((lhs, rhs as f64));
            }
        }
        let bounds = cells
            .iter()
            .map(|&c| match (hidden[c], model.published_range[c]) {
                (false, Some(range)) => range,
                _ => model.hidden_bounds[c],
            })
            .collect();
        ComponentLp {
            values: model.values,
            free: cells.iter().map(|&c| model.free[c] || !hidden[c]).collect(),
            bounds,
            width: model.width,
            audited: comp.len(),
            cells,
            rows,
        }
    }

    /// Minimise or maximise variable `target`. `Ok(None)` when the maximum is unbounded;
    /// otherwise the optimal point.
    fn solve(&self, target: usize, maximize: bool) -> Result<Option<Vec<f64>>, DisclosureError> {
        let dir = if maximize {
            OptimizationDirection::Maximize
        } else {
            OptimizationDirection::Minimize
        };
        let mut p = Problem::new(dir);
        let vars: Vec<_> = (0..self.cells.len())
            .map(|k| p.add_var(if k == target { 1.0 } else { 0.0 }, self.bounds[k]))
            .collect();
        for (lhs, rhs) in &self.rows {
            p.add_constraint(
                lhs.iter().map(|&(v, k)| (vars[v], k)).collect::<Vec<_>>(),
                ComparisonOp::Eq,
                *rhs,
            );
        }
        match run_lp(&p, &vars) {
            Ok(x) => Ok(Some(x)),
            Err(microlp::Error::Unbounded) if maximize => Ok(None),
            Err(e) => Err(self.solver_err(e.to_string())),
        }
    }

    fn solver_err(&self, message: String) -> DisclosureError {
        DisclosureError::Solver {
            first_cell: self.cells.first().copied().unwrap_or(0),
            cells: self.cells.len(),
            message,
        }
    }

    /// Cells of this component that are exposed, ascending (global indices).
    ///
    /// Faster than [`Self::intervals`]: every LP optimum is a feasible point, and a feasible
    /// point where a cell is at least the width away from its true value proves that cell safe,
    /// so most cells never need an LP of their own.
    pub fn exposed(&self) -> Result<Vec<usize>, DisclosureError> {
        let n = self.cells.len();
        let audited = self.audited;
        let vals: Vec<u64> = self.cells.iter().map(|&c| self.values[c]).collect();
        if self.rows.is_empty() {
            return Ok(Vec::new()); // every cell is free within its bounds
        }
        let mut safe: Vec<bool> = (0..n)
            .map(|k| self.values[self.cells[k]] == 0 || self.free[k])
            .collect();
        let width = self.width;
        let mark = |safe: &mut Vec<bool>, x: &[f64]| {
            for k in 0..n {
                if !safe[k] && settles(x[k], vals[k], width) {
                    safe[k] = true;
                }
            }
        };
        let mut out = Vec::new();
        for j in 0..audited {
            if safe[j] {
                continue;
            }
            let mut low = None;
            if let Some(x) = self.solve(j, false)? {
                mark(&mut safe, &x);
                low = Some(x[j]);
            }
            if !safe[j] {
                match self.solve(j, true)? {
                    None => safe[j] = true,
                    Some(x) => {
                        mark(&mut safe, &x);
                        // Neither side alone, but the two together may reach the width: the
                        // LP minimum and maximum, rounded inward to whole numbers as
                        // `intervals` does (a span between fractional vertices is not one).
                        if low.is_some_and(|lo| (x[j] + EPS).floor() - (lo - EPS).ceil() >= width) {
                            safe[j] = true;
                        }
                    }
                }
            }
            if !safe[j] {
                out.push(self.cells[j]);
            }
        }
        Ok(out)
    }

    /// The interval of every cell of this component.
    pub fn intervals(&self) -> Result<Vec<CellInterval>, DisclosureError> {
        let n = self.cells.len();
        // Lowest value seen for each variable at any optimum: if a feasible point has the
        // variable at 0, its minimum is 0 and that LP can be skipped.
        let mut lowest = vec![f64::INFINITY; n];
        let mut out = Vec::with_capacity(self.audited);
        for j in 0..self.audited {
            let value = self.values[self.cells[j]];
            let (lower, upper) = self.bounds[j];
            let (lp_lo, lp_hi) = if self.rows.is_empty() {
                (lower, upper)
            } else {
                let lp_lo = if lowest[j] <= lower + 1e-9 {
                    lower
                } else {
                    let x = self
                        .solve(j, false)?
                        .ok_or_else(|| self.solver_err("minimum unbounded".to_string()))?;
                    for k in 0..n {
                        lowest[k] = lowest[k].min(x[k]);
                    }
                    x[j].max(0.0)
                };
                let lp_hi = match self.solve(j, true)? {
                    None => f64::INFINITY,
                    Some(x) => {
                        for k in 0..n {
                            lowest[k] = lowest[k].min(x[k]);
                        }
                        x[j]
                    }
                };
                (lp_lo, lp_hi)
            };
            let v = value as f64;
            let lo = (lp_lo - EPS).ceil().max(0.0).min(v);
            let hi = if lp_hi.is_finite() {
                (lp_hi + EPS).floor().max(v)
            } else {
                f64::INFINITY
            };
            out.push(CellInterval {
                cell: self.cells[j],
                value,
                lo,
                hi,
                lp_lo,
                lp_hi,
                free: self.free[j],
                width: self.width,
            });
        }
        Ok(out)
    }
}
