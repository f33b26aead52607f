//! Statistical disclosure control of counted tables: which cells are published, suppressed or
//! rounded.
//!
//! Pipeline position: `tables` (counts and the relations among them) -> **disclosure** ->
//! `output`. It never counts and never sees a patient: it takes every counted table of a run
//! with its [`Relation`]s and returns the cells to publish. Today each table is protected on
//! its own by primary suppression of small counts, secondary suppression along the relations,
//! then rounding ([`suppress`]); [`protect`] takes all of a run's tables at once so that a
//! protection across tables can replace it without changing its callers.

use crate::tables::{CountedTable, Relation};

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

/// Protect every counted table of a run under `rule`: the published cells of each table, in the
/// tables' order and each table's cell order.
pub fn protect(tables: &[&CountedTable], rule: &Suppression) -> Vec<Vec<Cell>> {
    tables
        .iter()
        .map(|t| suppress(&t.cells, &t.relations, rule))
        .collect()
}

/// Apply primary suppression (1..=max), then secondary suppression so that no suppressed cell
/// can be worked out from a total: while a relation has exactly one suppressed cell (among its
/// parts and total), the smallest other non-zero part (the total only as a last resort) is
/// suppressed too. Then round.
pub fn suppress(values: &[u64], relations: &[Relation], rule: &Suppression) -> Vec<Cell> {
    let mut hidden: Vec<bool> = values
        .iter()
        .map(|&v| v >= 1 && v <= rule.max_suppressed)
        .collect();
    loop {
        let mut changed = false;
        for r in relations {
            let members = || r.parts.iter().copied().chain(std::iter::once(r.total));
            if members().filter(|&i| hidden[i]).count() != 1 {
                continue;
            }
            let total = r.total;
            let pick = r
                .parts
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

#[cfg(test)]
mod tests {
    use super::*;

    /// fit + mild + moderate + severe = total, as cells 0..=4.
    fn row() -> Relation {
        Relation {
            total: 4,
            parts: vec![0, 1, 2, 3],
        }
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
        let cells = suppress(&v, &[row()], &Suppression::default());
        assert_eq!(cells[1], Cell::Suppressed);
        assert_eq!(cells[3], Cell::Suppressed, "smallest other cell goes too");
        assert_eq!(cells[0], Cell::Count(100));
        assert_eq!(cells[4], Cell::Count(132));
    }

    #[test]
    fn when_only_the_total_is_left_it_is_suppressed() {
        let v = [0, 3, 0, 0, 3];
        let cells = suppress(&v, &[row()], &Suppression::default());
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
