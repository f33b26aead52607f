//! Who is on the palliative care register at the as-of date, by the QOF register rule: a
//! palliative care code (QOF cluster PALCARE_COD) dated from the rule's start (1 April 2008) up to
//! the as-of date, and no "not clinically indicated" code (PALCARENI_COD) dated after the latest
//! of them. The code lists and the start date are data (`models/palliative/`).
//!
//! Pipeline position: `cohort` + `definitions` -> **palliative** -> `programmes` (a rule may ask
//! for people on, or not on, the register). Like `features`, it reads each patient's own events
//! only, in parallel over patients into a pre-sized vector, so the result never depends on the
//! thread count; records after the as-of date never count. Computed only when a programme asks.

use rayon::prelude::*;

use crate::cohort::Cohort;
use crate::definitions::Definitions;

/// What a code means to the register, by code id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not a register code.
    None,
    /// A palliative care code.
    Care,
    /// A "palliative care not clinically indicated" code.
    NotIndicated,
}

/// Whether each patient (in patient order) is on the palliative care register at `as_of`.
pub fn on_register(cohort: &Cohort, defs: &Definitions, as_of: i32) -> Vec<bool> {
    let spec = &defs.palliative;
    let mut kind = vec![Kind::None; cohort.codes.len()];
    for (system, code) in &spec.not_indicated {
        if let Some(id) = cohort.codes.get(*system, code) {
            kind[id as usize] = Kind::NotIndicated;
        }
    }
    // A code in both lists counts as a palliative care code (the lists are disjoint as published).
    for (system, code) in &spec.codes {
        if let Some(id) = cohort.codes.get(*system, code) {
            kind[id as usize] = Kind::Care;
        }
    }
    let from = spec.register_from;
    let ev = &cohort.events;
    let mut out = Vec::with_capacity(cohort.patients.len());
    (0..cohort.patients.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|p| {
            let (mut care, mut not_indicated) = (None::<i32>, None::<i32>);
            for k in ev.offsets[p] as usize..ev.offsets[p + 1] as usize {
                let day = ev.day[k];
                if day > as_of {
                    continue;
                }
                match kind[ev.code[k] as usize] {
                    Kind::Care if day >= from => care = care.max(Some(day)),
                    Kind::NotIndicated => not_indicated = not_indicated.max(Some(day)),
                    _ => {}
                }
            }
            care.is_some_and(|c| not_indicated.is_none_or(|n| n <= c))
        })
        .collect_into_vec(&mut out);
    out
}
