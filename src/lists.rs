//! Per-PCN frailty lists: who is listed and in what order.
//!
//! Pipeline position: `results` -> **lists** -> `output`. A cohort-wide step (ranking within a
//! PCN), after the per-patient stages, and small. Who is eligible is `population`'s; counting
//! is `tables`'.

use crate::cohort::Cohort;
use crate::population::Status;
use crate::predictors::Outcome;
pub use crate::risk::BandMode;
use crate::risk::{ModelRisk, RiskBand};
use crate::scores::{EfiCategory, Scores};

/// What orders a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// eFI category, then deficits, then HFRS (the default).
    Frailty,
    /// A risk model's probability, highest first.
    Risk(Outcome),
}

impl RankBy {
    /// Parse `frailty` or an outcome name.
    pub fn parse(s: &str) -> Option<RankBy> {
        match s {
            "frailty" => Some(RankBy::Frailty),
            o => Outcome::parse(o).map(RankBy::Risk),
        }
    }
}

/// Who goes on a list.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ListRules {
    /// Youngest age (years at the as-of date) listed and counted; the eFI was developed and
    /// validated in people aged 65 and over (Clegg 2016).
    pub min_age: i32,
    /// Mildest eFI category listed.
    pub min_category: EfiCategory,
    /// What orders the lists.
    pub rank_by: RankBy,
    /// Also list eligible people in this band or above of the ranking model, whatever their
    /// frailty (only when ranking by a model).
    pub min_risk_band: Option<RiskBand>,
    /// Also list eligible people whose probability under the ranking model is at least this,
    /// whatever their frailty (only when ranking by a model).
    pub min_risk: Option<f64>,
    /// Keep at most this many people per PCN list (the top of the ranking).
    pub top: Option<u32>,
    /// Keep at most this percentage of the PCN's eligible people (rounded up), the top of the
    /// ranking.
    pub top_percent: Option<f64>,
    /// How risk bands are set: by the card's probability cut-offs (the same in every PCN) or
    /// by rank within each PCN.
    pub risk_bands: BandMode,
}

impl Default for ListRules {
    fn default() -> Self {
        ListRules {
            min_age: 65,
            min_category: EfiCategory::Mild,
            rank_by: RankBy::Frailty,
            min_risk_band: None,
            min_risk: None,
            top: None,
            top_percent: None,
            risk_bands: BandMode::Card,
        }
    }
}

/// Listed patients of each PCN in rank order: `(pcn index, patient indices)`, PCNs in code
/// order. By frailty: severe first; within a category by eFI, then HFRS, both descending. By a
/// model (`risk`, the model `rules.rank_by` names): probability descending. Ties by pseudonym
/// (patient indices are in pseudonym order).
pub fn rank(
    cohort: &Cohort,
    scores: &[Scores],
    status: &[Status],
    rules: &ListRules,
    risk: Option<&ModelRisk>,
) -> Vec<(u32, Vec<u32>)> {
    let p = &cohort.patients;
    let risk = risk.filter(|_| matches!(rules.rank_by, RankBy::Risk(_)));
    let mut by_pcn: Vec<Vec<u32>> = vec![Vec::new(); p.pcns.len()];
    let mut eligible = vec![0u64; p.pcns.len()];
    for i in 0..p.len() {
        eligible[p.pcn[i] as usize] += (status[i] == Status::Eligible) as u64;
        let frail = scores[i].efi_category >= rules.min_category;
        let at_risk = risk.is_some_and(|r| {
            rules.min_risk_band.is_some_and(|b| r.band(&p.pcn, i) >= b)
                || rules.min_risk.is_some_and(|t| r.probability[i] >= t)
        });
        if status[i] == Status::Eligible && (frail || at_risk) {
            by_pcn[p.pcn[i] as usize].push(i as u32);
        }
    }
    by_pcn
        .into_iter()
        .enumerate()
        .map(|(pcn, mut v)| {
            sort(&mut v, scores, risk);
            if let Some(n) = rules.top {
                v.truncate(n as usize);
            }
            if let Some(pct) = rules.top_percent {
                v.truncate((eligible[pcn] as f64 * pct / 100.0).ceil() as usize);
            }
            (pcn as u32, v)
        })
        .collect()
}

/// Who is on any of `ranked`'s lists, by patient index (`n` patients).
pub fn listed_mask(n: usize, ranked: &[(u32, Vec<u32>)]) -> Vec<bool> {
    let mut listed = vec![false; n];
    for &p in ranked.iter().flat_map(|(_, v)| v) {
        listed[p as usize] = true;
    }
    listed
}

/// Sort patients (indices) into list order: by `risk`'s probability, highest first, when given;
/// else by frailty (eFI category, then deficits, then HFRS, all descending). Ties by pseudonym
/// (patient indices are in pseudonym order).
pub fn sort(patients: &mut [u32], scores: &[Scores], risk: Option<&ModelRisk>) {
    match risk {
        Some(r) => patients.sort_by(|&a, &b| {
            r.probability[b as usize]
                .total_cmp(&r.probability[a as usize])
                .then(a.cmp(&b))
        }),
        None => patients.sort_by(|&a, &b| {
            let (sa, sb) = (&scores[a as usize], &scores[b as usize]);
            sb.efi_category
                .cmp(&sa.efi_category)
                .then(sb.efi_deficits.cmp(&sa.efi_deficits))
                .then(sb.hfrs_tenths.cmp(&sa.hfrs_tenths))
                .then(a.cmp(&b))
        }),
    }
}
