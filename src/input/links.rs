//! The optional hospital columns and the diagnosis links: `encounters.parquet`'s `spell_id`,
//! `admission_method`, `admission_source` and `discharge_destination`, and the `encounter_id`
//! (with `position`, 1 = primary) of the injury and falls diagnoses in `events.parquet`. Read
//! beside the main decoders, in one filtered pass each, and laid onto the laid-out encounters
//! through their file rows ([`crate::cohort::Encounters::row`]).
//!
//! Pipeline position: part of the first stage, `input`, after the encounters are laid out and
//! before [`super::spells`] builds the spells. Every adaptor (Parquet file, frame, Arrow) reaches
//! it as a lazy frame, so the rules are the same on all of them.

use std::path::PathBuf;

use polars::prelude::*;

use super::layout::{FastMap, PatientIndex, UNSET};
use super::spells::{EncounterFacts, FallsLink, HospitalRules, Method, FALL, INJURY, NEVER};
use crate::codes::{normalise, CodeSystem};
use crate::cohort::{Encounters, Setting};

/// The optional columns of `encounters.parquet` this module reads.
pub const ENCOUNTER_EXTRAS: [&str; 4] = [
    "spell_id",
    "admission_method",
    "admission_source",
    "discharge_destination",
];

/// Where a table's rows are, for this module's own pass over them.
#[derive(Clone)]
pub(crate) enum LinkInput {
    /// A Parquet file.
    File(PathBuf),
    /// A frame in memory (cheap to clone: its buffers are shared).
    Frame(DataFrame),
}

impl LinkInput {
    fn lazy(&self) -> PolarsResult<LazyFrame> {
        match self {
            LinkInput::File(p) => LazyFrame::scan_parquet(
                PlRefPath::new(p.to_string_lossy().as_ref()),
                ScanArgsParquet::default(),
            ),
            LinkInput::Frame(df) => Ok(df.clone().lazy()),
        }
    }

    fn columns(&self) -> PolarsResult<Vec<String>> {
        let schema = self.lazy()?.collect_schema()?;
        Ok(schema.iter_names().map(|n| n.to_string()).collect())
    }
}

/// A column as text (strings as they are, integers as their decimal text).
fn text(name: &str) -> Expr {
    col(name).cast(DataType::String)
}

/// Read the optional columns and links of `encounters` (laid out) from `events_in` and
/// `encounters_in`. Returns the facts and the optional encounter columns the extract has.
pub(crate) fn read(
    events_in: &LinkInput,
    encounters_in: &LinkInput,
    encounters: &Encounters,
    pidx: &PatientIndex,
) -> PolarsResult<(EncounterFacts, Vec<String>)> {
    let rules = HospitalRules::get();
    let n = encounters.row.len();
    let mut facts = EncounterFacts::default();
    let enc_columns = encounters_in.columns()?;
    let extras: Vec<String> = ENCOUNTER_EXTRAS
        .iter()
        .filter(|c| enc_columns.iter().any(|x| x == *c))
        .map(|c| c.to_string())
        .collect();
    let ev_columns = events_in.columns()?;
    let has = |c: &str| ev_columns.iter().any(|x| x == c);
    facts.position = has("position");

    // The injury and falls diagnoses that name an encounter.
    let mut links: Vec<(u32, String, u8, i32)> = Vec::new();
    if has("encounter_id") {
        let first = text("code")
            .str()
            .strip_chars(lit(NULL))
            .str()
            .slice(lit(0), lit(1))
            .str()
            .to_uppercase();
        let mut select = vec![
            text("patient_id").alias("patient_id"),
            col("event_date").cast(DataType::Date).alias("event_date"),
            text("code_system").alias("code_system"),
            text("code").alias("code"),
            text("encounter_id").alias("encounter_id"),
        ];
        if facts.position {
            select.push(col("position").cast(DataType::Int64).alias("position"));
        }
        let df = events_in
            .lazy()?
            .filter(
                col("encounter_id").is_not_null().and(
                    first
                        .clone()
                        .eq(lit("S"))
                        .or(first.clone().eq(lit("T")))
                        .or(first.eq(lit("W"))),
                ),
            )
            .select(select)
            .collect()?;
        let pid = df.column("patient_id")?.str()?.clone();
        let day = df
            .column("event_date")?
            .cast(&DataType::Int32)?
            .i32()?
            .clone();
        let sys = df.column("code_system")?.str()?.clone();
        let code = df.column("code")?.str()?.clone();
        let enc = df.column("encounter_id")?.str()?.clone();
        let pos = if facts.position {
            Some(df.column("position")?.i64()?.clone())
        } else {
            None
        };
        for k in 0..df.height() {
            let (Some(p), Some(d), Some(s), Some(c), Some(e)) =
                (pid.get(k), day.get(k), sys.get(k), code.get(k), enc.get(k))
            else {
                continue;
            };
            if CodeSystem::parse(s) != Some(CodeSystem::Icd10) {
                continue;
            }
            let Ok(c) = normalise(CodeSystem::Icd10, c) else {
                continue;
            };
            let mut class = rules.icd10_class(&c);
            // With positions, only the primary diagnosis is the admission's injury.
            if let Some(pos) = &pos {
                if pos.get(k) != Some(1) {
                    class &= !INJURY;
                }
            }
            let pi = pidx.lookup(p);
            if class == 0 || pi == UNSET {
                continue;
            }
            links.push((pi, e.trim().to_string(), class, d));
        }
    }
    if links.is_empty() {
        facts.falls_link = FallsLink::Date;
    }
    if extras.is_empty() && links.is_empty() {
        return Ok((facts, extras));
    }

    // File row -> laid-out encounter.
    let mut laid = vec![
        u32::MAX;
        encounters
            .row
            .iter()
            .map(|&r| r as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for (e, &r) in encounters.row.iter().enumerate() {
        laid[r as usize] = e as u32;
    }
    // Inpatient rows only (spells are made of them, and only their diagnoses count), with their
    // file row: the strings held are a fraction of the file's.
    let setting = text("setting")
        .str()
        .strip_chars(lit(NULL))
        .str()
        .to_lowercase();
    let inpatient = setting
        .clone()
        .eq(lit("inpatient"))
        .or(setting.clone().eq(lit("ip")))
        .or(setting.eq(lit("apc")));
    let mut select = vec![col("file_row"), text("encounter_id").alias("encounter_id")];
    for c in &extras {
        select.push(text(c).alias(c.as_str()));
    }
    let df = encounters_in
        .lazy()?
        .with_row_index("file_row", None)
        .filter(inpatient)
        .select(select)
        .collect()?;
    let file_rows: Vec<usize> = df
        .column("file_row")?
        .cast(&DataType::UInt64)?
        .u64()?
        .into_no_null_iter()
        .map(|r| r as usize)
        .collect();
    let at = |k: usize| laid.get(file_rows[k]).copied().filter(|&e| e != u32::MAX);
    let column =
        |name: &str| -> PolarsResult<StringChunked> { Ok(df.column(name)?.str()?.clone()) };
    for c in &extras {
        let v = column(c)?;
        match c.as_str() {
            "spell_id" => {
                facts.spell = vec![u32::MAX; n];
                let mut ids: FastMap<&str, u32> = FastMap::default();
                for (row, x) in v.iter().enumerate() {
                    if let (Some(e), Some(x)) = (at(row), x) {
                        let next = ids.len() as u32;
                        facts.spell[e as usize] = *ids.entry(x.trim()).or_insert(next);
                    }
                }
            }
            "admission_method" => {
                facts.method = vec![Method::Unknown; n];
                facts.transfer_in.resize(n, false);
                for (row, x) in v.iter().enumerate() {
                    if let (Some(e), Some(x)) = (at(row), x) {
                        facts.method[e as usize] = rules.method(x);
                        facts.transfer_in[e as usize] |=
                            HospitalRules::is_transfer(&rules.transfer_methods, x);
                    }
                }
            }
            "admission_source" => {
                facts.transfer_in.resize(n, false);
                for (row, x) in v.iter().enumerate() {
                    if let (Some(e), Some(x)) = (at(row), x) {
                        facts.transfer_in[e as usize] |=
                            HospitalRules::is_transfer(&rules.transfer_sources, x);
                    }
                }
            }
            _ => {
                facts.transfer_out = vec![false; n];
                for (row, x) in v.iter().enumerate() {
                    if let (Some(e), Some(x)) = (at(row), x) {
                        facts.transfer_out[e as usize] =
                            HospitalRules::is_transfer(&rules.transfer_destinations, x);
                    }
                }
            }
        }
    }
    if !links.is_empty() {
        // Only the encounter ids the diagnoses name are hashed.
        let mut wanted: FastMap<&str, u32> = FastMap::default();
        for (_, e, _, _) in &links {
            wanted.insert(e.as_str(), u32::MAX);
        }
        let ids = column("encounter_id")?;
        for (row, x) in ids.iter().enumerate() {
            if let Some(slot) = x.and_then(|x| wanted.get_mut(x.trim())) {
                if let Some(e) = at(row) {
                    *slot = e;
                }
            }
        }
        facts.injury_day = vec![NEVER; n];
        facts.fall_day = vec![NEVER; n];
        for (p, id, class, day) in &links {
            let e = wanted.get(id.as_str()).copied().unwrap_or(u32::MAX) as usize;
            let own = e != u32::MAX as usize
                && (encounters.offsets[*p as usize] as usize
                    ..encounters.offsets[*p as usize + 1] as usize)
                    .contains(&e);
            if !own || encounters.setting[e] != Setting::Inpatient {
                // Not an admission's diagnosis: linked to an A&E or outpatient encounter, to
                // another patient's, or to none in the file. Counted, never used.
                facts.unmatched_links += 1;
                continue;
            }
            if class & INJURY != 0 {
                facts.injury_day[e] = facts.injury_day[e].min(*day);
            }
            if class & FALL != 0 {
                facts.fall_day[e] = facts.fall_day[e].min(*day);
            }
        }
    }
    Ok((facts, extras))
}
