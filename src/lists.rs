//! Per-PCN frailty lists: who is listed and in what order.
//!
//! Pipeline position: `results` -> **lists** -> `output`. A cohort-wide step (ranking within a
//! PCN), after the per-patient stages, and small. Who is eligible is `population`'s; counting
//! is `tables`'.

use crate::cohort::Cohort;
use crate::population::Status;
use crate::scores::{EfiCategory, Scores};

/// Who goes on a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ListRules {
    /// Youngest age (years at the as-of date) listed and counted; the eFI was developed and
    /// validated in people aged 65 and over (Clegg 2016).
    pub min_age: i32,
    /// Mildest eFI category listed.
    pub min_category: EfiCategory,
}

impl Default for ListRules {
    fn default() -> Self {
        ListRules {
            min_age: 65,
            min_category: EfiCategory::Mild,
        }
    }
}

/// Listed patients of each PCN in rank order: `(pcn index, patient indices)`, PCNs in code
/// order. Severe first; within a category by eFI, then HFRS, both descending; ties by
/// pseudonym (patient indices are in pseudonym order).
pub fn rank(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    rules: &ListRules,
) -> Vec<(u32, Vec<u32>)> {
    let p = &cohort.patients;
    let mut by_pcn: Vec<Vec<u32>> = vec![Vec::new(); p.pcns.len()];
    for i in 0..p.len() {
        if status[i] == Status::Eligible && scores[i].efi_category >= rules.min_category {
            by_pcn[p.pcn[i] as usize].push(i as u32);
        }
    }
    by_pcn
        .into_iter()
        .enumerate()
        .map(|(pcn, mut v)| {
            v.sort_by(|&a, &b| {
                let (sa, sb) = (&scores[a as usize], &scores[b as usize]);
                sb.efi_category
                    .cmp(&sa.efi_category)
                    .then(sb.efi_deficits.cmp(&sa.efi_deficits))
                    .then(sb.hfrs_tenths.cmp(&sa.hfrs_tenths))
                    .then(a.cmp(&b))
            });
            (pcn as u32, v)
        })
        .collect()
}
