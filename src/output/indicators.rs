//! `indicators.csv`: the population-health indicators as published, in long form: per area (each
//! PCN in code order, then `ALL`, the ICS) and indicator, the numerator, the denominator, the
//! rate and its unit, and the ICS-wide rate beside it.
//!
//! Pipeline position: `indicators` (counts) + `disclosure` (published cells) -> **here** -> the
//! CSV writer. A rate is computed from the published numerator and denominator, so it says no
//! more than they do: `[c]` when either is suppressed, `[z]` when the denominator is 0.

use polars::prelude::*;

use crate::disclosure::Cell;
use crate::indicators::{rate, standardised_rate, Rate, BANDS, INDICATORS, WIDTH};
use crate::tables::CountedTable;

fn rate_text(r: Option<Option<String>>) -> String {
    match r {
        None => "[c]".into(),
        Some(None) => "[z]".into(),
        Some(Some(t)) => t,
    }
}

/// The published indicators table (`table` from `indicators::IndicatorCounts::table`, `cells` its
/// published cells) as a table of strings.
pub fn indicators_frame(table: &CountedTable, cells: &[Cell]) -> PolarsResult<DataFrame> {
    let rows = table.rows.len();
    let all = rows.saturating_sub(1);
    let cell = |r: usize, q: usize| cells[r * WIDTH + q];
    let mut cols: [Vec<String>; 7] = Default::default();
    for r in 0..rows {
        // A rate from the row's published cells only.
        let rate_of = |r: usize, ind: &crate::indicators::Indicator| match ind.rate {
            Rate::Crude => rate(
                cell(r, ind.numerator).count(),
                cell(r, ind.denominator).count(),
                ind.per,
            ),
            Rate::Standardised => {
                let bands = |first: usize| -> Vec<Option<u64>> {
                    (0..BANDS.len())
                        .map(|b| cell(r, first + b).count())
                        .collect()
                };
                standardised_rate(
                    &bands(crate::indicators::q::PEOPLE_BAND),
                    &bands(crate::indicators::q::FALLS_BAND),
                    ind.per,
                )
            }
        };
        for ind in &INDICATORS {
            let (n, d) = (cell(r, ind.numerator), cell(r, ind.denominator));
            let ics = rate_of(all, ind);
            for (col, v) in cols.iter_mut().zip([
                table.rows[r].0.clone(),
                ind.name.to_string(),
                n.text(),
                d.text(),
                rate_text(rate_of(r, ind)),
                ind.unit.to_string(),
                rate_text(ics),
            ]) {
                col.push(v);
            }
        }
    }
    let names = [
        "pcn_code",
        "indicator",
        "numerator",
        "denominator",
        "rate",
        "unit",
        "ics_rate",
    ];
    let n = rows * INDICATORS.len();
    DataFrame::new(
        n,
        names
            .iter()
            .zip(cols)
            .map(|(name, v)| Column::new((*name).into(), v))
            .collect(),
    )
}
