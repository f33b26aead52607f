//! Hospital spells: the inpatient encounters of a patient joined into admissions as HES counts
//! them, with the falls admissions among them. Every admission count strata writes (list
//! columns, model features and outcomes, indicators, the end-of-life measure) reads these spells,
//! never encounter rows.
//!
//! Pipeline position: the last step of the first stage, `input`: after the encounters are laid
//! out (and the optional columns and diagnosis links read, [`super::links`]), the spells are built
//! once into [`crate::cohort::Spells`].
//!
//! The rules (README, "Hospital spells"; the codes and cut-offs are data, `models/hospital/`):
//! - a patient's inpatient encounters, in order of start, form one continuous spell while the next
//!   starts on or before the day the spell so far ends (a transfer to another ward or hospital on
//!   the day of discharge, a nested stay), or has the same `spell_id`, or (with transfer codes)
//!   starts at most `transfer_max_gap_days` after it ends and is a transfer (HES CIPS);
//! - a spell is an emergency admission when its first encounter is: by `admission_method` where
//!   the extract gives one it knows, else by the `emergency` flag;
//! - a spell is a falls admission (OHID PHOF C29) when it is an emergency admission and its first
//!   encounter (HES's first episode, which C29 counts) has an injury (S00-T98) as its primary
//!   diagnosis and a fall (W00-W19) recorded: linked by `encounter_id` where the extract has
//!   links, else (said in the manifest) by date within that first encounter's stay. The spell keeps the day both were first recorded, so that a count at an
//!   as-of date never reads records after it.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::codes::{CodeDict, CodeSystem};
use crate::cohort::{Encounters, Events, Setting, Spells};
pub use crate::report::{FallsLink, SpellReport};

/// A spell or encounter with no day (`i32::MAX`): never recorded.
pub const NEVER: i32 = i32::MAX;

/// What an `admission_method` value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Not given, or a value `models/hospital/hes_codes.tsv` does not list.
    #[default]
    Unknown,
    /// An emergency admission (21-25, 28, 2A-2D).
    Emergency,
    /// Any other listed method (elective, maternity, other).
    Other,
}

/// The HES rules of `models/hospital/`, compiled into the binary (the files are the one source;
/// a test reads them back).
#[derive(Debug, Clone)]
pub struct HospitalRules {
    /// `(code, emergency?)` of every listed admission method.
    pub methods: Vec<(String, bool)>,
    /// Admission methods that are transfers (2B, 81).
    pub transfer_methods: Vec<String>,
    /// Admission sources that are another hospital.
    pub transfer_sources: Vec<String>,
    /// Discharge destinations that are another hospital.
    pub transfer_destinations: Vec<String>,
    /// Largest gap in days between a discharge and a transfer's admission in one spell.
    pub transfer_max_gap_days: i32,
    /// ICD-10 range of the falls admission's primary diagnosis (three characters, inclusive).
    pub injury: (String, String),
    /// ICD-10 range of the fall recorded as its external cause.
    pub cause: (String, String),
}

/// The rules file's text.
const HES_CODES: &str = include_str!("../../models/hospital/hes_codes.tsv");
/// The parameters file's text.
const PARAMS: &str = include_str!("../../models/hospital/params.tsv");

/// Data rows of a TSV file (comment lines and the header skipped), split on tabs.
fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(|l| l.split('\t').collect())
}

impl HospitalRules {
    /// The rules shipped in `models/hospital/`.
    pub fn get() -> &'static HospitalRules {
        static RULES: OnceLock<HospitalRules> = OnceLock::new();
        RULES.get_or_init(|| {
            let mut r = HospitalRules {
                methods: Vec::new(),
                transfer_methods: Vec::new(),
                transfer_sources: Vec::new(),
                transfer_destinations: Vec::new(),
                transfer_max_gap_days: 2,
                injury: ("S00".into(), "T98".into()),
                cause: ("W00".into(), "W19".into()),
            };
            for row in rows(HES_CODES) {
                let (column, code, kind) = (row[0], row[1].to_string(), row[2]);
                match (column, kind) {
                    ("admission_method", "transfer") => r.transfer_methods.push(code),
                    ("admission_method", k) => r.methods.push((code, k == "emergency")),
                    ("admission_source", _) => r.transfer_sources.push(code),
                    ("discharge_destination", _) => r.transfer_destinations.push(code),
                    _ => {}
                }
            }
            for row in rows(PARAMS) {
                let v = row.get(1).copied().unwrap_or("").trim().to_string();
                match row[0] {
                    "transfer_max_gap_days" => {
                        r.transfer_max_gap_days = v.parse().unwrap_or(r.transfer_max_gap_days)
                    }
                    "falls_injury_from" => r.injury.0 = v,
                    "falls_injury_to" => r.injury.1 = v,
                    "falls_cause_from" => r.cause.0 = v,
                    "falls_cause_to" => r.cause.1 = v,
                    _ => {}
                }
            }
            r
        })
    }

    /// What an `admission_method` value says (`21`, ` 2a `, `21.0` from a float column all read
    /// as in the data dictionary).
    pub fn method(&self, raw: &str) -> Method {
        let Some(code) = hes_code(raw) else {
            return Method::Unknown;
        };
        match self.methods.iter().find(|(c, _)| c.as_bytes() == code) {
            Some((_, true)) => Method::Emergency,
            Some((_, false)) => Method::Other,
            None => Method::Unknown,
        }
    }

    /// Whether an admission method, source or destination value marks a transfer.
    pub fn is_transfer(list: &[String], raw: &str) -> bool {
        hes_code(raw).is_some_and(|code| list.iter().any(|c| c.as_bytes() == code))
    }

    /// The class of a normalised ICD-10 code: [`INJURY`], [`FALL`] or 0.
    pub fn icd10_class(&self, code: &str) -> u8 {
        let Some(three) = code.get(..3) else {
            return 0;
        };
        let within = |(lo, hi): &(String, String)| three >= lo.as_str() && three <= hi.as_str();
        (within(&self.injury) as u8 * INJURY) | (within(&self.cause) as u8 * FALL)
    }
}

/// Code class: an injury (the falls admission's primary diagnosis).
pub const INJURY: u8 = 1;
/// Code class: a fall (its external cause).
pub const FALL: u8 = 2;

/// A HES code as written in the data dictionary (two characters): trimmed, upper case, a `.0`
/// from a float column dropped, one digit padded to two (`1` is `01`); `None` for anything
/// else. No allocation: it runs for every inpatient row's method, source and destination.
fn hes_code(raw: &str) -> Option<[u8; 2]> {
    let t = raw.trim();
    let t = t.strip_suffix(".0").unwrap_or(t).as_bytes();
    match *t {
        [d] if d.is_ascii_digit() => Some([b'0', d]),
        [a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

/// The class ([`INJURY`], [`FALL`]) of every code of the cohort, by code id.
pub fn code_classes(codes: &CodeDict) -> Vec<u8> {
    let rules = HospitalRules::get();
    codes
        .iter()
        .map(|(_, s, c)| {
            if s == CodeSystem::Icd10 {
                rules.icd10_class(c)
            } else {
                0
            }
        })
        .collect()
}

/// What the optional columns and links give per laid-out encounter ([`super::links`]); each
/// vector is empty when the extract does not have the column.
#[derive(Debug, Clone, Default)]
pub struct EncounterFacts {
    /// Admission method, when `admission_method` is given.
    pub method: Vec<Method>,
    /// Admitted from another hospital (`admission_source` or `admission_method` a transfer).
    pub transfer_in: Vec<bool>,
    /// Discharged to another hospital (`discharge_destination`).
    pub transfer_out: Vec<bool>,
    /// The provider spell (interned `spell_id`; `u32::MAX` when null).
    pub spell: Vec<u32>,
    /// First day an injury was recorded as this encounter's primary diagnosis (linked).
    pub injury_day: Vec<i32>,
    /// First day a fall (W00-W19) was recorded on this encounter (linked).
    pub fall_day: Vec<i32>,
    /// How falls are tied to admissions.
    pub falls_link: FallsLink,
    /// Whether events give the diagnosis `position` (else any linked injury is taken as primary).
    pub position: bool,
    /// Injury and falls diagnoses linked to no inpatient encounter of their patient (an A&E or
    /// outpatient attendance, another patient's encounter, or none in `encounters.parquet`):
    /// no admission's, never counted as one.
    pub unmatched_links: u64,
}

/// What a run should say about its spells: falls matched by date rather than linked, and
/// admission methods that contradict the `emergency` flag.
pub fn warnings(r: &SpellReport) -> Vec<String> {
    let mut w = Vec::new();
    if r.falls_link == FallsLink::Date && r.inpatient_encounters > 0 {
        w.push("warning: events.parquet links no injury or falls diagnosis to its admission (encounter_id): falls admissions were matched by date within the stay, which can count a fall coded on another encounter".to_string());
    }
    if r.method_disagreements > 0 {
        w.push(format!(
            "warning: {} inpatient encounters have an admission_method that disagrees with their emergency flag: the admission method decided",
            r.method_disagreements
        ));
    }
    w
}

/// Build every patient's spells. `facts` come from [`super::links`] (empty vectors where the
/// extract has no such column); `events` and `codes` are read only when falls are tied by date.
pub fn build(
    encounters: &Encounters,
    facts: &EncounterFacts,
    events: &Events,
    codes: &CodeDict,
    columns: Vec<String>,
) -> Spells {
    let rules = HospitalRules::get();
    let classes = code_classes(codes);
    let n = encounters.offsets.len().saturating_sub(1);
    const CHUNK: usize = 8192;
    let chunks: Vec<(Spells, u64)> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut s = Spells::default();
            let mut disagree = 0u64;
            let mut scratch = Vec::new();
            for p in c * CHUNK..((c + 1) * CHUNK).min(n) {
                disagree += patient(
                    encounters,
                    facts,
                    events,
                    &classes,
                    rules,
                    p,
                    &mut s,
                    &mut scratch,
                );
                s.offsets.push(s.start.len() as u64);
            }
            (s, disagree)
        })
        .collect();
    let mut out = Spells {
        offsets: Vec::with_capacity(n + 1),
        ..Default::default()
    };
    out.offsets.push(0);
    let mut disagreements = 0;
    for (s, d) in chunks {
        let base = out.start.len() as u64;
        out.offsets.extend(s.offsets.iter().map(|o| o + base));
        out.start.extend(s.start);
        out.end.extend(s.end);
        out.emergency.extend(s.emergency);
        out.episodes.extend(s.episodes);
        out.falls_from.extend(s.falls_from);
        disagreements += d;
    }
    out.report = SpellReport {
        inpatient_encounters: encounters
            .setting
            .iter()
            .filter(|&&s| s == Setting::Inpatient)
            .count() as u64,
        spells: out.start.len() as u64,
        emergency_spells: out.emergency.iter().filter(|&&e| e).count() as u64,
        falls_spells: out.falls_from.iter().filter(|&&d| d != NEVER).count() as u64,
        joined_spells: out.episodes.iter().filter(|&&e| e > 1).count() as u64,
        columns,
        method_disagreements: disagreements,
        falls_link: facts.falls_link,
        diagnosis_position: facts.position,
        unmatched_links: facts.unmatched_links,
    };
    out
}

/// Patient `p`'s spells, appended to `out`; returns the method/flag disagreements.
#[allow(clippy::too_many_arguments)]
fn patient(
    en: &Encounters,
    facts: &EncounterFacts,
    events: &Events,
    classes: &[u8],
    rules: &HospitalRules,
    p: usize,
    out: &mut Spells,
    order: &mut Vec<usize>,
) -> u64 {
    order.clear();
    order.extend(
        (en.offsets[p] as usize..en.offsets[p + 1] as usize)
            .filter(|&e| en.setting[e] == Setting::Inpatient),
    );
    if order.is_empty() {
        return 0;
    }
    order.sort_unstable_by_key(|&e| (en.start[e], en.end[e], en.row[e]));
    let method = |e: usize| facts.method.get(e).copied().unwrap_or_default();
    let emergency = |e: usize| match method(e) {
        Method::Emergency => true,
        Method::Other => false,
        Method::Unknown => en.emergency[e],
    };
    let disagreements = order
        .iter()
        .filter(|&&e| method(e) != Method::Unknown && emergency(e) != en.emergency[e])
        .count() as u64;
    let spell_of = |e: usize| facts.spell.get(e).copied().unwrap_or(u32::MAX);
    let flag = |v: &Vec<bool>, e: usize| v.get(e).copied().unwrap_or(false);
    let day = |v: &Vec<i32>, e: usize| v.get(e).copied().unwrap_or(NEVER);
    // The spell being built: its first encounter, latest end and the encounter that ends it,
    // its provider spell ids, episodes, and the first day a fall was recorded on any episode.
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        let (start, mut end, mut last) = (en.start[first], en.end[first], first);
        let mut ids: Vec<u32> = Vec::new();
        if spell_of(first) != u32::MAX {
            ids.push(spell_of(first));
        }
        let mut episodes = 1u16;
        let mut j = i + 1;
        while j < order.len() {
            let e = order[j];
            let same_provider_spell = spell_of(e) != u32::MAX && ids.contains(&spell_of(e));
            let contiguous = en.start[e] <= end;
            let transfer = en.start[e] - end <= rules.transfer_max_gap_days
                && (flag(&facts.transfer_out, last) || flag(&facts.transfer_in, e));
            if !(same_provider_spell || contiguous || transfer) {
                break;
            }
            if spell_of(e) != u32::MAX && !ids.contains(&spell_of(e)) {
                ids.push(spell_of(e));
            }
            if en.end[e] >= end {
                end = en.end[e];
                last = e;
            }
            episodes = episodes.saturating_add(1);
            j += 1;
        }
        let is_emergency = emergency(first);
        let falls_from = if !is_emergency {
            NEVER
        } else if facts.falls_link == FallsLink::EncounterId {
            // Both on the first encounter, as C29 counts the admission's first episode.
            let (injury, fall) = (day(&facts.injury_day, first), day(&facts.fall_day, first));
            if injury == NEVER || fall == NEVER {
                NEVER
            } else {
                injury.max(fall)
            }
        } else {
            dated_falls(events, classes, p, start, en.end[first])
        };
        out.start.push(start);
        out.end.push(end);
        out.emergency.push(is_emergency);
        out.episodes.push(episodes);
        out.falls_from.push(falls_from);
        i = j;
    }
    disagreements
}

/// Without links: the day by which an injury and a fall were both coded within the stay
/// (`start..=end`), or [`NEVER`].
fn dated_falls(events: &Events, classes: &[u8], p: usize, start: i32, end: i32) -> i32 {
    let (mut injury, mut fall) = (NEVER, NEVER);
    for k in events.offsets[p] as usize..events.offsets[p + 1] as usize {
        let c = classes[events.code[k] as usize];
        let d = events.day[k];
        if c == 0 || d < start || d > end {
            continue;
        }
        if c & INJURY != 0 {
            injury = injury.min(d);
        }
        if c & FALL != 0 {
            fall = fall.min(d);
        }
    }
    if injury == NEVER || fall == NEVER {
        NEVER
    } else {
        injury.max(fall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_read_as_published() {
        let r = HospitalRules::get();
        for c in ["21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"] {
            assert_eq!(r.method(c), Method::Emergency, "{c}");
        }
        for c in ["11", "12", "13", "31", "32", "81", "82", "83"] {
            assert_eq!(r.method(c), Method::Other, "{c}");
        }
        assert_eq!(r.method(" 2a "), Method::Emergency);
        assert_eq!(r.method("21.0"), Method::Emergency);
        assert_eq!(r.method("99"), Method::Unknown);
        assert_eq!(r.transfer_methods, ["2B", "81"]);
        assert!(HospitalRules::is_transfer(&r.transfer_sources, "51"));
        assert!(!HospitalRules::is_transfer(&r.transfer_sources, "19"));
        assert!(HospitalRules::is_transfer(&r.transfer_destinations, "87"));
        assert_eq!(r.transfer_max_gap_days, 2);
        assert_eq!(r.icd10_class("S720"), INJURY);
        assert_eq!(r.icd10_class("T981"), INJURY);
        assert_eq!(r.icd10_class("T99"), 0);
        assert_eq!(r.icd10_class("W19"), FALL);
        assert_eq!(r.icd10_class("W00X"), FALL);
        assert_eq!(r.icd10_class("W20"), 0);
        assert_eq!(r.icd10_class("J189"), 0);
    }
}
