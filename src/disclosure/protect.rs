//! Primary and complementary (secondary) cell suppression over a whole run.

use std::collections::{BTreeSet, HashMap};

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::audit::{run_lp, ComponentLp};
use super::grid::{Grid, Model};
use super::DisclosureError;

/// Primary suppression rule: counts `1..=max_suppressed` are hidden (NHS rule: 7). Zero is
/// published: an empty cell says nobody has that combination, which is not a small number of
/// people that could be singled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Largest count that is hidden; counts from 1 to this are suppressed.
    pub max_suppressed: u64,
}

impl Default for Rule {
    /// The NHS small-number rule: 1 to 7 are hidden.
    fn default() -> Self {
        Rule { max_suppressed: 7 }
    }
}

/// Tuning of [`protect_with`]. The default is the complementary rule's. Every setting gives a
/// pattern the auditor passes; they differ in how many cells are hidden and how long it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Run the classic single-hidden-cell rule before the LP loop. Fast (it settles most cells
    /// without an LP) but it over-suppresses a little; without it the LP loop does all the work:
    /// fewer complements, many more LPs (see README for measurements).
    pub prepass: bool,
    /// After the loop, try to publish each complement again, most costly first, and keep it
    /// published if nothing becomes exposed. Removes complements made redundant by later ones.
    pub prune: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prepass: true,
            prune: true,
        }
    }
}

/// Cells that the rule hides on their own (primary suppression): `1..=max_suppressed`, and
/// free cells, which are never published.
pub fn primary_mask(grid: &Grid, rule: &Rule) -> Vec<bool> {
    let mut m: Vec<bool> = grid
        .values
        .iter()
        .map(|&v| v >= 1 && v <= rule.max_suppressed)
        .collect();
    for &c in &grid.free {
        if let Some(h) = m.get_mut(c) {
            *h = true;
        }
    }
    m
}

/// Which cells to hide: primary then complementary, deterministic (same input -> same output),
/// such that [`super::audit`] finds no exposed cell. With the default [`Options`]:
///
/// 1. Primary: counts `1..=max_suppressed`.
/// 2. Pre-pass (cheap, the classic rule): while a relation has exactly one hidden cell, hide its
///    smallest non-zero non-total visible cell (ties by index; the relation's total only as a
///    last resort).
/// 3. Audit loop: audit every component of hidden cells by LP (cached per component: only the
///    component that grew changes); take the lowest-index exposed cell and hide the cheapest set
///    of visible cells that lets it move by one, found by the protection LP (see
///    `protection_fix`); repeat until nothing is exposed. A count printed in several places
///    (cells tied by one-part relations) is always hidden in all of them at once.
/// 4. Prune: publish again every complement that is not needed.
///
/// Zeros are never chosen as complements (see README): hiding a zero only spreads a small
/// total over cells an outsider may well know to be empty, and it is never needed, because once
/// every non-zero cell is hidden the published cells are all zero and every hidden cell can be
/// scaled up freely. So the loop ends, at the latest, when every non-zero cell is hidden.
///
/// Errors if a relation points outside the grid or does not hold for the values, or the LP
/// solver fails.
pub fn protect_with(
    grid: &Grid,
    rule: &Rule,
    opts: &Options,
) -> Result<Vec<bool>, DisclosureError> {
    run(grid, rule, opts, Complement::ProtectionLp, None)
}

/// [`protect_with`] starting from the cells `start` hides (a pattern found on a grid with fewer
/// relations), so that only what the extra relations expose needs more complements. Nothing of
/// `start` is fixed: pruning may publish its complements again.
pub fn protect_from(
    grid: &Grid,
    rule: &Rule,
    opts: &Options,
    start: &[bool],
) -> Result<Vec<bool>, DisclosureError> {
    super::audit::check_mask(grid, start)?;
    run(grid, rule, opts, Complement::ProtectionLp, Some(start))
}

/// How the audit loop picks complements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Complement {
    /// The protection LP (falling back to `Cheapest` only if it finds nothing, which would be
    /// numerical trouble).
    ProtectionLp,
    /// Only the cheap fallback; used by tests to check that the loop ends safely anyway.
    #[cfg_attr(not(test), allow(dead_code))]
    Cheapest,
}

fn run(
    grid: &Grid,
    rule: &Rule,
    opts: &Options,
    how: Complement,
    start: Option<&[bool]>,
) -> Result<Vec<bool>, DisclosureError> {
    let model = Model::new(grid)?;
    let primary = primary_mask(grid, rule);
    let mut hidden = primary.clone();
    if let Some(start) = start {
        for (h, &s) in hidden.iter_mut().zip(start) {
            *h |= s;
        }
    }
    // Every table of a run is protected in one pass: no cell's state is fixed beforehand.
    let frozen = vec![false; grid.values.len()];
    if opts.prepass {
        prepass(&model, &mut hidden, &frozen);
    }
    let mut cache: HashMap<Vec<usize>, Vec<usize>> = HashMap::new();
    loop {
        let comps = model.components(&hidden);
        let mut exposed = None;
        for comp in &comps {
            let e = cached_exposed(&model, &hidden, comp, &mut cache)?;
            if let Some(&e) = e.first() {
                exposed = Some((e, comp));
                break;
            }
        }
        let Some((target, comp)) = exposed else {
            break;
        };
        let mut pick = match how {
            Complement::ProtectionLp => protection_fix(&model, &hidden, &frozen, target)?,
            Complement::Cheapest => Vec::new(),
        };
        if pick.is_empty() {
            pick = cheapest_near(&model, &hidden, &frozen, comp);
        }
        if pick.is_empty() {
            // Unreachable for a consistent grid (see above), but never loop forever.
            return Err(DisclosureError::Solver {
                first_cell: target,
                cells: comp.len(),
                message: format!(
                    "cell {target} (value {}, known to be within {:?} when hidden) is exposed but \
                     no visible non-zero cell is left to hide",
                    model.values[target], model.hidden_bounds[target]
                ),
            });
        }
        for c in pick {
            hidden[c] = true;
        }
    }
    if opts.prune {
        prune(&model, &primary, &mut hidden, &mut cache)?;
    }
    Ok(hidden)
}

/// Exposed cells of a component, memoised by its cell set (the component's LP depends only on
/// which cells it holds).
fn cached_exposed(
    model: &Model,
    hidden: &[bool],
    comp: &[usize],
    cache: &mut HashMap<Vec<usize>, Vec<usize>>,
) -> Result<Vec<usize>, DisclosureError> {
    if let Some(e) = cache.get(comp) {
        return Ok(e.clone());
    }
    let e = ComponentLp::new(model, hidden, comp).exposed()?;
    cache.insert(comp.to_vec(), e.clone());
    Ok(e)
}

/// The classic single-hidden-cell rule, to a fixed point. A lone free cell needs no
/// protection (it only carries a sum from one relation to another), so it is left alone.
fn prepass(model: &Model, hidden: &mut [bool], frozen: &[bool]) {
    let values = model.values;
    loop {
        let mut changed = false;
        for (r, rel) in model.rels.iter().enumerate() {
            let mut lone = rel.iter().filter(|&&(c, _)| hidden[c]);
            match (lone.next(), lone.next()) {
                (Some(&(c, _)), None) if !model.free[c] => {}
                _ => continue,
            }
            let total = model.rel_total[r];
            let visible = |c: usize| !hidden[c] && values[c] > 0 && !frozen[c];
            let pick = rel
                .iter()
                .map(|&(c, _)| c)
                .filter(|&c| c != total && visible(c))
                .min_by_key(|&c| (values[c], c))
                .or_else(|| {
                    rel.iter()
                        .map(|&(c, _)| c)
                        .find(|&c| c == total && visible(c))
                });
            if let Some(c) = pick {
                hidden[c] = true;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Fallback complement: the visible cells of the cheapest twin group in a relation touching the
/// component (non-totals first, then by value, then index), or anywhere if none touches it.
/// Always makes progress, so the loop ends.
fn cheapest_near(model: &Model, hidden: &[bool], frozen: &[bool], comp: &[usize]) -> Vec<usize> {
    let values = model.values;
    let visible = |c: usize| !hidden[c] && values[c] > 0 && !frozen[c];
    let key = |c: usize| (model.is_total[c], values[c], c);
    let near = comp
        .iter()
        .flat_map(|&cell| model.cell_rels[cell].iter())
        .flat_map(|&r| model.rels[r].iter().map(|&(c, _)| c))
        .filter(|&c| visible(c))
        .min_by_key(|&c| key(c));
    let pick = near.or_else(|| {
        (0..values.len())
            .filter(|&c| visible(c))
            .min_by_key(|&c| key(c))
    });
    pick.map(|c| {
        model.groups[model.group_of[c]]
            .iter()
            .copied()
            .filter(|&d| visible(d))
            .collect()
    })
    .unwrap_or_default()
}

/// Cost of hiding a published cell, for the protection LP and the pruning order: its value
/// (information lost) plus one (so fewer cells win among equal values), doubled for margins
/// (totals are what analysts use most).
fn cost(model: &Model, c: usize) -> f64 {
    let base = 1.0 + model.values[c] as f64;
    if model.is_total[c] {
        2.0 * base
    } else {
        base
    }
}

/// The cheapest set of visible cells whose hiding lets exposed cell `target` move by the width
/// (`min_interval`, at least one), found
/// by the protection LP (the attacker subproblem of Fischetti & Salazar's model, behind
/// tau-Argus' optimal and modular methods): a change `y` of the whole grid with
/// `y[target] = +width` or `-width` that keeps every relation, keeps every hidden cell at 1 or more (what an
/// outsider knows of a `[c]`; 0 for a zero) and leaves published zeros alone, minimising the cost-weighted change of
/// published cells. The published cells it changes are the complement: once they are hidden,
/// `values + y` is a table the attacker cannot rule out, so the target's interval holds two
/// integers. Cells tied by an equality move together, so twins are hidden together. The upward
/// LP is always feasible (scale every non-zero cell up), so the result is empty only through
/// numerical trouble.
fn protection_fix(
    model: &Model,
    hidden: &[bool],
    frozen: &[bool],
    target: usize,
) -> Result<Vec<usize>, DisclosureError> {
    let values = model.values;
    let n = values.len();
    // Frozen published cells stay as they are; so do published zeros (never hidden).
    let movable = |c: usize| hidden[c] || (!frozen[c] && values[c] > 0);
    // Cells that a change of the target can reach through relations.
    let mut local = vec![usize::MAX; n];
    let mut region = vec![target];
    local[target] = 0;
    let mut head = 0;
    while head < region.len() {
        let c = region[head];
        head += 1;
        for &r in &model.cell_rels[c] {
            for &(d, _) in &model.rels[r] {
                if local[d] == usize::MAX && movable(d) {
                    local[d] = region.len();
                    region.push(d);
                }
            }
        }
    }
    let mut rel_ids: Vec<usize> = region
        .iter()
        .flat_map(|&c| model.cell_rels[c].iter().copied())
        .collect();
    rel_ids.sort_unstable();
    rel_ids.dedup();
    let mut best: Option<(f64, Vec<usize>)> = None;
    for dir in [1.0, -1.0] {
        // The target moves by the width its interval must reach; a hidden count is known to be
        // at least 1, so one too small to move down that far can only move up.
        let step = dir * model.width;
        let (lower, upper) = model.hidden_bounds[target];
        let moved = values[target] as f64 + step;
        if moved < lower || moved > upper {
            continue;
        }
        let mut p = Problem::new(OptimizationDirection::Minimize);
        // Per region cell: (up, down) variables; a hidden cell's change is free of cost.
        let mut cols = Vec::with_capacity(region.len());
        let mut all = Vec::with_capacity(2 * region.len());
        for &c in &region {
            let v = values[c] as f64;
            let (up, down) = if c == target {
                let fixed = p.add_var(0.0, (step, step));
                (fixed, None)
            } else if hidden[c] {
                // Within what an outsider knows of it (at least 1, or 0 for a zero or an
                // unprinted count).
                let (lower, upper) = model.hidden_bounds[c];
                (p.add_var(0.0, (lower - v, upper - v)), None)
            } else {
                // Once hidden it too is known to be at least 1.
                let w = cost(model, c);
                (
                    p.add_var(w, (0.0, f64::INFINITY)),
                    Some(p.add_var(w, (0.0, v - model.hidden_bounds[c].0))),
                )
            };
            all.push(up);
            all.extend(down);
            cols.push((up, down));
        }
        for &r in &rel_ids {
            let mut lhs = Vec::new();
            for &(c, k) in &model.rels[r] {
                if local[c] != usize::MAX {
                    let (up, down) = cols[local[c]];
                    lhs.push((up, k as f64));
                    if let Some(d) = down {
                        lhs.push((d, -(k as f64)));
                    }
                }
            }
            p.add_constraint(lhs, ComparisonOp::Eq, 0.0);
        }
        let x = match run_lp(&p, &all) {
            Ok(x) => x,
            Err(microlp::Error::Infeasible) => continue,
            Err(e) => {
                return Err(DisclosureError::Solver {
                    first_cell: target,
                    cells: region.len(),
                    message: format!("protection LP: {e}"),
                })
            }
        };
        // Read the solution back: x is in `all` order.
        let mut pos = 0;
        let mut total_cost = 0.0;
        let mut support = Vec::new();
        for (i, &(_, down)) in cols.iter().enumerate() {
            let c = region[i];
            let up_val = x[pos];
            pos += 1;
            if down.is_some() {
                let down_val = x[pos];
                pos += 1;
                let moved = up_val + down_val;
                total_cost += cost(model, c) * moved;
                if moved > 1e-7 {
                    support.push(c);
                }
            }
        }
        support.sort_unstable();
        if !support.is_empty() && best.as_ref().is_none_or(|(b, _)| total_cost < *b - 1e-9) {
            best = Some((total_cost, support));
        }
    }
    Ok(best.map(|(_, s)| s).unwrap_or_default())
}

/// Remove redundant complements: try to publish again each complementary suppression (a whole
/// twin group at a time), most costly first, and keep it published if no cell becomes exposed.
fn prune(
    model: &Model,
    primary: &[bool],
    hidden: &mut [bool],
    cache: &mut HashMap<Vec<usize>, Vec<usize>>,
) -> Result<(), DisclosureError> {
    let mut groups: Vec<usize> = (0..hidden.len())
        .filter(|&c| hidden[c] && !primary[c])
        .map(|c| model.group_of[c])
        .collect();
    groups.sort_unstable();
    groups.dedup();
    // Most costly first: their publication is worth most to analysts.
    groups.sort_by(|&a, &b| {
        let (ca, cb) = (model.groups[a][0], model.groups[b][0]);
        cost(model, cb)
            .total_cmp(&cost(model, ca))
            .then(ca.cmp(&cb))
    });
    for g in groups {
        let cells: Vec<usize> = model.groups[g]
            .iter()
            .copied()
            .filter(|&c| hidden[c] && !primary[c])
            .collect();
        for &c in &cells {
            hidden[c] = false;
        }
        // Quick test first: a relation left with one hidden cell pins it, no LP needed (the LP
        // would find the same).
        let pinned = cells.iter().flat_map(|&c| &model.cell_rels[c]).any(|&r| {
            let mut lone = model.rels[r].iter().filter(|&&(d, _)| hidden[d]);
            match (lone.next(), lone.next()) {
                (Some(&(d, _)), None) => !model.free[d] && model.values[d] != 0,
                _ => false,
            }
        });
        // Components of hidden cells next to the cells just published.
        let mut seen = BTreeSet::new();
        let mut safe = !pinned;
        'check: for &c in cells.iter().filter(|_| !pinned) {
            for &r in &model.cell_rels[c] {
                for &(d, _) in &model.rels[r] {
                    if hidden[d] && !seen.contains(&d) {
                        let comp = model.component(hidden, d);
                        seen.extend(comp.iter().copied());
                        let exposed = cached_exposed(model, hidden, &comp, cache)?;
                        if !exposed.is_empty() {
                            safe = false;
                            break 'check;
                        }
                    }
                }
            }
        }
        if !safe {
            for &c in &cells {
                hidden[c] = true;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::audit;
    use super::*;

    /// A 4 x 4 table with margins, many small cells.
    fn grid() -> Grid {
        let inner: [[u64; 4]; 4] = [[3, 9, 0, 12], [1, 40, 2, 8], [0, 5, 30, 6], [20, 2, 11, 0]];
        let mut values = Vec::new();
        for row in inner {
            values.extend_from_slice(&row);
            values.push(row.iter().sum());
        }
        for c in 0..5 {
            values.push((0..4).map(|r| values[r * 5 + c]).sum());
        }
        let mut g = Grid::new();
        let t = g.add_table(5, &values, true).expect("table");
        g.add_column_sums(&t, 4, &[0, 1, 2, 3]).expect("sums");
        g
    }

    /// Termination does not rest on the protection LP: with only the cheap fallback, and no
    /// pre-pass, the loop still ends with nothing exposed.
    #[test]
    fn the_fallback_alone_ends_safe() {
        let g = grid();
        let rule = Rule::default();
        let opts = Options {
            prepass: false,
            prune: false,
        };
        let hidden = run(&g, &rule, &opts, Complement::Cheapest, None).expect("run");
        assert!(audit(&g, &hidden).expect("audit").is_safe());
    }

    /// Zeros are never hidden, in any mode.
    #[test]
    fn zeros_are_never_complements() {
        let g = grid();
        for prepass in [false, true] {
            for prune in [false, true] {
                let opts = Options { prepass, prune };
                for how in [Complement::ProtectionLp, Complement::Cheapest] {
                    let hidden = run(&g, &Rule::default(), &opts, how, None).expect("run");
                    for (c, &h) in hidden.iter().enumerate() {
                        assert!(!h || g.values[c] > 0, "zero cell {c} hidden");
                    }
                    assert!(audit(&g, &hidden).expect("audit").is_safe());
                }
            }
        }
    }

    /// Pruning never hides more, and never exposes anything.
    #[test]
    fn pruning_only_publishes() {
        let g = grid();
        let with = |prune| {
            let opts = Options {
                prepass: true,
                prune,
            };
            protect_with(&g, &Rule::default(), &opts).expect("protect")
        };
        let (pruned, full) = (with(true), with(false));
        assert!(pruned.iter().zip(&full).all(|(&p, &f)| !p || f));
        assert!(audit(&g, &pruned).expect("audit").is_safe());
    }
}
