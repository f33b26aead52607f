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

use super::dictread::DictFile;
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

/// The class ([`INJURY`], [`FALL`] or 0) of an ICD-10 code as written, normalised as the
/// cohort reader normalises it.
fn code_class(raw: &str) -> u8 {
    normalise(CodeSystem::Icd10, raw).map_or(0, |c| HospitalRules::get().icd10_class(&c))
}

/// One injury or falls diagnosis linked to encounter `encounter`, if it counts: a known patient,
/// a class, and, when the extract gives positions (`position` is `Some`), an injury only as the
/// primary diagnosis (position 1).
fn linked(
    patient: u32,
    encounter: &str,
    mut class: u8,
    position: Option<Option<i64>>,
    day: i32,
) -> Option<(u32, String, u8, i32)> {
    if position.is_some_and(|p| p != Some(1)) {
        class &= !INJURY;
    }
    (class != 0 && patient != UNSET).then(|| (patient, encounter.trim().to_string(), class, day))
}

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
    let by_row_group = match events_in {
        LinkInput::File(p) if has("encounter_id") => {
            event_links_by_row_group(p, facts.position, pidx).ok()
        }
        _ => None,
    };
    if let Some(found) = by_row_group {
        links = found;
    } else if has("encounter_id") {
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
            let position = pos.as_ref().map(|pos| pos.get(k));
            links.extend(linked(pidx.lookup(p), e, code_class(c), position, d));
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
    // The encounter ids the diagnoses name, each to its slot in `found`.
    let mut wanted: FastMap<&str, u32> = FastMap::default();
    for (_, e, _, _) in &links {
        let next = wanted.len() as u32;
        wanted.entry(e.as_str()).or_insert(next);
    }
    // Inpatient rows only (spells are made of them, and only their diagnoses count): row group
    // by row group from the mapped file where it can be, else through polars.
    let rows = match encounters_in {
        LinkInput::File(p) => match encounter_rows_by_row_group(p, &extras, &wanted) {
            Ok(found) => found,
            Err(_) => encounter_rows_by_polars(encounters_in, &extras, &wanted)?,
        },
        LinkInput::Frame(_) => encounter_rows_by_polars(encounters_in, &extras, &wanted)?,
    };
    let has = |c: &str| extras.iter().any(|x| x == c);
    if has("spell_id") {
        facts.spell = vec![u32::MAX; n];
    }
    if has("admission_method") {
        facts.method = vec![Method::Unknown; n];
    }
    if has("admission_method") || has("admission_source") {
        facts.transfer_in = vec![false; n];
    }
    if has("discharge_destination") {
        facts.transfer_out = vec![false; n];
    }
    let mut spell_ids: FastMap<&str, u32> = FastMap::default();
    let mut found = vec![u32::MAX; wanted.len()];
    for r in &rows {
        let Some(e) = laid.get(r.file_row).copied().filter(|&e| e != u32::MAX) else {
            continue;
        };
        let e = e as usize;
        if let Some(m) = facts.method.get_mut(e) {
            *m = r.method;
        }
        if let Some(t) = facts.transfer_in.get_mut(e) {
            *t = r.transfer_in;
        }
        if let Some(t) = facts.transfer_out.get_mut(e) {
            *t = r.transfer_out;
        }
        if let (Some(slot), Some(id)) = (facts.spell.get_mut(e), r.spell.as_deref()) {
            let next = spell_ids.len() as u32;
            *slot = *spell_ids.entry(id).or_insert(next);
        }
        if let Some(k) = r.link {
            found[k as usize] = e as u32;
        }
    }
    if !links.is_empty() {
        facts.injury_day = vec![NEVER; n];
        facts.fall_day = vec![NEVER; n];
        for (p, id, class, day) in &links {
            let e = wanted
                .get(id.as_str())
                .map_or(u32::MAX, |&k| found[k as usize]) as usize;
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

/// What one inpatient row of `encounters.parquet` says: its file row, admission method,
/// transfer in or out, provider spell, and which named encounter id it is (slot in `wanted`).
struct RowFacts {
    file_row: usize,
    method: Method,
    transfer_in: bool,
    transfer_out: bool,
    spell: Option<String>,
    link: Option<u32>,
}

impl RowFacts {
    /// From a row's `encounter_id` and the values of `extras` (same order).
    fn new<'a>(
        file_row: usize,
        id: Option<&str>,
        extras: &[String],
        value: impl Fn(usize) -> Option<&'a str>,
        wanted: &FastMap<&str, u32>,
    ) -> RowFacts {
        let rules = HospitalRules::get();
        let mut r = RowFacts {
            file_row,
            method: Method::Unknown,
            transfer_in: false,
            transfer_out: false,
            spell: None,
            link: id.and_then(|id| wanted.get(id.trim()).copied()),
        };
        for (k, c) in extras.iter().enumerate() {
            let Some(v) = value(k) else { continue };
            match c.as_str() {
                "spell_id" => r.spell = Some(v.trim().to_string()),
                "admission_method" => {
                    r.method = rules.method(v);
                    r.transfer_in |= HospitalRules::is_transfer(&rules.transfer_methods, v);
                }
                "admission_source" => {
                    r.transfer_in |= HospitalRules::is_transfer(&rules.transfer_sources, v)
                }
                _ => r.transfer_out = HospitalRules::is_transfer(&rules.transfer_destinations, v),
            }
        }
        r
    }
}

/// The inpatient rows of `encounters.parquet` through polars: their file rows, and their
/// `encounter_id` and `extras` columns as text.
#[allow(clippy::type_complexity)]
fn encounter_rows_by_polars(
    input: &LinkInput,
    extras: &[String],
    wanted: &FastMap<&str, u32>,
) -> PolarsResult<Vec<RowFacts>> {
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
    for c in extras {
        select.push(text(c).alias(c.as_str()));
    }
    let df = input
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
    let ids = df.column("encounter_id")?.str()?.clone();
    let cols: Vec<StringChunked> = extras
        .iter()
        .map(|c| Ok(df.column(c)?.str()?.clone()))
        .collect::<PolarsResult<_>>()?;
    Ok(file_rows
        .iter()
        .enumerate()
        .map(|(k, &row)| RowFacts::new(row, ids.get(k), extras, |j| cols[j].get(k), wanted))
        .collect())
}

/// [`encounter_rows_by_polars`] from the mapped file, row group by row group: the `setting`
/// column read as a dictionary (a handful of distinct values), the text columns of the
/// inpatient rows only. Fails (the caller falls back) when a column cannot be read so.
#[allow(clippy::type_complexity)]
fn encounter_rows_by_row_group(
    path: &std::path::Path,
    extras: &[String],
    wanted: &FastMap<&str, u32>,
) -> PolarsResult<Vec<RowFacts>> {
    use polars_arrow::array::Array;
    use rayon::prelude::*;
    let f = DictFile::open(path)?;
    let (starts, _) = f.row_starts();
    let parts: Vec<Vec<RowFacts>> = (0..f.row_groups())
        .into_par_iter()
        .map(|rg| -> PolarsResult<_> {
            let setting = f.dict_column(rg, "setting")?;
            let inpatient: Vec<bool> = setting
                .values
                .iter()
                .map(|v| v.and_then(Setting::parse) == Some(Setting::Inpatient))
                .collect();
            let ids = f.any_text_column(rg, "encounter_id")?;
            let cols: Vec<_> = extras
                .iter()
                .map(|c| f.any_text_column(rg, c))
                .collect::<PolarsResult<_>>()?;
            Ok((0..setting.keys.len())
                .filter(|&k| setting.keys.is_valid(k) && inpatient[setting.keys.value(k) as usize])
                .map(|k| {
                    RowFacts::new(
                        starts[rg] + k,
                        ids.get(k),
                        extras,
                        |j| cols[j].get(k),
                        wanted,
                    )
                })
                .collect())
        })
        .collect::<PolarsResult<_>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// The injury and falls diagnoses of `events.parquet` that name an encounter, from the mapped
/// file row group by row group: `code_system` and `code` read as dictionaries and classified
/// once per distinct value, `encounter_id`, `position`, pseudonym and date read only where a
/// row group has such a diagnosis. Fails (the caller falls back to polars) when a column
/// cannot be read so.
fn event_links_by_row_group(
    path: &std::path::Path,
    position: bool,
    pidx: &PatientIndex,
) -> PolarsResult<Vec<(u32, String, u8, i32)>> {
    use polars_arrow::array::Array;
    use rayon::prelude::*;
    let f = DictFile::open(path)?;
    let parts: Vec<Vec<(u32, String, u8, i32)>> = (0..f.row_groups())
        .into_par_iter()
        .map(|rg| -> PolarsResult<_> {
            let sys = f.dict_column(rg, "code_system")?;
            let code = f.dict_column(rg, "code")?;
            let icd: Vec<bool> = sys
                .values
                .iter()
                .map(|v| v.and_then(CodeSystem::parse) == Some(CodeSystem::Icd10))
                .collect();
            let class: Vec<u8> = code
                .values
                .iter()
                .map(|v| v.map_or(0, code_class))
                .collect();
            let rows: Vec<usize> = (0..code.keys.len())
                .filter(|&k| {
                    sys.keys.is_valid(k)
                        && code.keys.is_valid(k)
                        && icd[sys.keys.value(k) as usize]
                        && class[code.keys.value(k) as usize] != 0
                })
                .collect();
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let enc = f.any_text_column(rg, "encounter_id")?;
            let pos = if position {
                Some(f.int_column(rg, "position")?)
            } else {
                None
            };
            let pid = f.dict_column(rg, "patient_id")?;
            let day = f.date_column(rg, "event_date")?.values;
            let mut out = Vec::new();
            for k in rows {
                let (Some(e), true, true) = (enc.get(k), pid.keys.is_valid(k), day.is_valid(k))
                else {
                    continue;
                };
                let pi = pid
                    .values
                    .get(pid.keys.value(k) as usize)
                    .map_or(UNSET, |p| pidx.lookup(p));
                let position = pos.as_ref().map(|pos| pos.get(k));
                out.extend(linked(
                    pi,
                    e,
                    class[code.keys.value(k) as usize],
                    position,
                    day.value(k),
                ));
            }
            Ok(out)
        })
        .collect::<PolarsResult<_>>()?;
    Ok(parts.into_iter().flatten().collect())
}
