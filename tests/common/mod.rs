//! Shared test helpers: build small cohorts row by row and write them as Parquet, run the
//! binary, read outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;
use strata::definitions::Definitions;

/// One patient row.
#[derive(Clone, Debug)]
pub struct P {
    pub id: String,
    pub birth: &'static str,
    pub sex: &'static str,
    pub practice: &'static str,
    pub pcn: &'static str,
    pub imd: Option<i32>,
    pub death: Option<&'static str>,
    /// `registration_start` and `registration_end` (written only when some row has one).
    pub registered: (Option<&'static str>, Option<&'static str>),
}

/// A patient aged `age`-ish at 2025-04-01 (born on the first of April of the year).
pub fn patient(id: &str, birth: &'static str) -> P {
    P {
        id: id.to_string(),
        birth,
        sex: "F",
        practice: "P1",
        pcn: "PCN1",
        imd: Some(5),
        death: None,
        registered: (None, None),
    }
}

/// One event row.
#[derive(Clone, Debug, Default)]
pub struct E {
    pub id: String,
    pub date: &'static str,
    pub system: &'static str,
    pub code: String,
    /// `encounter_id`: the admission a hospital diagnosis belongs to (the column is written only
    /// when some row has one).
    pub enc: Option<String>,
    /// Diagnosis `position` (1 = primary; written only when some row has one).
    pub position: Option<i32>,
}

pub fn ev(id: &str, date: &'static str, system: &'static str, code: &str) -> E {
    E {
        id: id.to_string(),
        date,
        system,
        code: code.to_string(),
        ..Default::default()
    }
}

/// One encounter row. The optional HES columns are written only when some row has a value.
#[derive(Clone, Debug, Default)]
pub struct N {
    pub id: String,
    pub enc: String,
    pub setting: &'static str,
    pub start: &'static str,
    /// Last day of the stay; `None`: the day it started.
    pub end: Option<&'static str>,
    pub emergency: bool,
    /// `spell_id` (the provider spell).
    pub spell: Option<&'static str>,
    /// `admission_method` (HES ADMIMETH).
    pub method: Option<&'static str>,
    /// `admission_source` (HES ADMISORC).
    pub source: Option<&'static str>,
    /// `discharge_destination` (HES DISDEST).
    pub dest: Option<&'static str>,
}

/// An ISO date as days since 1970-01-01.
pub fn days(s: &str) -> i32 {
    strata::date::parse_days(s).unwrap_or_else(|| panic!("bad test date {s}"))
}

/// A run's (or cohort's) `manifest.json`.
pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

/// A Parquet file as a frame.
pub fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// A column as numbers (`None` where null).
pub fn floats(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let col = df.column(name).unwrap().cast(&DataType::Float64).unwrap();
    col.f64().unwrap().iter().collect()
}

fn date_col(name: &str, v: Vec<i32>) -> Column {
    Int32Chunked::from_vec(name.into(), v)
        .into_date()
        .into_column()
}

pub fn write_parquet(path: &Path, mut df: DataFrame) {
    let mut f = std::fs::File::create(path).unwrap();
    ParquetWriter::new(&mut f).finish(&mut df).unwrap();
}

/// A copy of the cohort in `from` (patients, events, encounters) in `to` whose patients file has no
/// `strata synth` mark: local data, as far as strata can tell.
pub fn unmarked_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    write_parquet(
        &to.join("patients.parquet"),
        read_parquet(&from.join("patients.parquet")),
    );
    for f in ["events.parquet", "encounters.parquet"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// [`write_parquet`] with `strata synth`'s mark: a patients file of synthetic data (a copy of the
/// fixture's, say), on which the default cards, trained on synthetic data, are applied.
pub fn write_parquet_marked(path: &Path, mut df: DataFrame) {
    let mut f = std::fs::File::create(path).unwrap();
    ParquetWriter::new(&mut f)
        .with_key_value_metadata(Some(
            polars::io::parquet::write::KeyValueMetadata::from_static(vec![(
                strata::provenance::SYNTHETIC_KEY.to_string(),
                "a copy of synthetic test data".to_string(),
            )]),
        ))
        .finish(&mut df)
        .unwrap();
}

pub fn patients_frame(ps: &[P]) -> DataFrame {
    let df = DataFrame::new(
        ps.len(),
        vec![
            Column::new(
                "patient_id".into(),
                ps.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ),
            date_col("birth_date", ps.iter().map(|p| days(p.birth)).collect()),
            Column::new("sex".into(), ps.iter().map(|p| p.sex).collect::<Vec<_>>()),
            Column::new(
                "practice_code".into(),
                ps.iter().map(|p| p.practice).collect::<Vec<_>>(),
            ),
            Column::new(
                "pcn_code".into(),
                ps.iter().map(|p| p.pcn).collect::<Vec<_>>(),
            ),
            Column::new(
                "imd_decile".into(),
                ps.iter().map(|p| p.imd).collect::<Vec<_>>(),
            ),
            Int32Chunked::new(
                "death_date".into(),
                &ps.iter().map(|p| p.death.map(days)).collect::<Vec<_>>(),
            )
            .into_date()
            .into_column(),
        ],
    )
    .unwrap();
    let mut df = df;
    if ps.iter().any(|p| p.registered != (None, None)) {
        for (name, get) in [
            (
                "registration_start",
                (|p: &P| p.registered.0) as fn(&P) -> _,
            ),
            ("registration_end", |p: &P| p.registered.1),
        ] {
            let v: Vec<Option<i32>> = ps.iter().map(|p| get(p).map(days)).collect();
            df.with_column(Int32Chunked::new(name.into(), &v).into_date().into_column())
                .unwrap();
        }
    }
    df
}

pub fn events_frame(es: &[E]) -> DataFrame {
    let df = DataFrame::new(
        es.len(),
        vec![
            Column::new(
                "patient_id".into(),
                es.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ),
            date_col("event_date", es.iter().map(|e| days(e.date)).collect()),
            Column::new(
                "code_system".into(),
                es.iter().map(|e| e.system).collect::<Vec<_>>(),
            ),
            Column::new(
                "code".into(),
                es.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )
    .unwrap();
    let mut df = df;
    if es.iter().any(|e| e.enc.is_some()) {
        let v: Vec<Option<&str>> = es.iter().map(|e| e.enc.as_deref()).collect();
        df.with_column(Column::new("encounter_id".into(), v))
            .unwrap();
    }
    if es.iter().any(|e| e.position.is_some()) {
        let v: Vec<Option<i32>> = es.iter().map(|e| e.position).collect();
        df.with_column(Column::new("position".into(), v)).unwrap();
    }
    df
}

pub fn encounters_frame(ns: &[N]) -> DataFrame {
    let df = DataFrame::new(
        ns.len(),
        vec![
            Column::new(
                "patient_id".into(),
                ns.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "encounter_id".into(),
                ns.iter().map(|n| n.enc.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "setting".into(),
                ns.iter().map(|n| n.setting).collect::<Vec<_>>(),
            ),
            date_col("start_date", ns.iter().map(|n| days(n.start)).collect()),
            date_col(
                "end_date",
                ns.iter().map(|n| days(n.end.unwrap_or(n.start))).collect(),
            ),
            Column::new(
                "emergency".into(),
                ns.iter().map(|n| n.emergency).collect::<Vec<_>>(),
            ),
        ],
    )
    .unwrap();
    let mut df = df;
    type Get = fn(&N) -> Option<&'static str>;
    let optional: [(&str, Get); 4] = [
        ("spell_id", |n| n.spell),
        ("admission_method", |n| n.method),
        ("admission_source", |n| n.source),
        ("discharge_destination", |n| n.dest),
    ];
    for (name, get) in optional {
        if ns.iter().any(|n| get(n).is_some()) {
            let v: Vec<Option<&str>> = ns.iter().map(get).collect();
            df.with_column(Column::new(name.into(), v)).unwrap();
        }
    }
    df
}

/// Write a cohort folder.
pub fn write_cohort(dir: &Path, ps: &[P], es: &[E], ns: &[N]) {
    use strata::input::contract::{ENCOUNTERS_FILE, EVENTS_FILE, PATIENTS_FILE};
    std::fs::create_dir_all(dir).unwrap();
    write_parquet(&dir.join(PATIENTS_FILE), patients_frame(ps));
    write_parquet(&dir.join(EVENTS_FILE), events_frame(es));
    write_parquet(&dir.join(ENCOUNTERS_FILE), encounters_frame(ns));
}

/// The ways a cohort reaches strata. Spec-style tests (small tables of patients with expected
/// values) run on every one of them, so an adaptor cannot drift from the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adaptor {
    /// A folder of Parquet files (`Cohort::load`), dictionary path where the file allows it.
    Parquet,
    /// The same folder with the dictionary path off (the general decoder).
    ParquetGeneral,
    /// Frames in memory (`Cohort::from_frames`).
    Frames,
    /// Arrow record batches in memory (`Cohort::from_arrow`).
    Arrow,
}

/// Every adaptor.
pub const ADAPTORS: [Adaptor; 4] = [
    Adaptor::Parquet,
    Adaptor::ParquetGeneral,
    Adaptor::Frames,
    Adaptor::Arrow,
];

/// Load a small cohort through one adaptor.
pub fn load_via(
    adaptor: Adaptor,
    ps: &[P],
    es: &[E],
    ns: &[N],
    opts: &strata::input::LoadOptions,
) -> Result<strata::cohort::Cohort, strata::input::InputError> {
    use strata::cohort::Cohort;
    let frames = || (patients_frame(ps), events_frame(es), encounters_frame(ns));
    match adaptor {
        Adaptor::Parquet | Adaptor::ParquetGeneral => {
            let dir = tempfile::tempdir().unwrap();
            write_cohort(dir.path(), ps, es, ns);
            let opts = strata::input::LoadOptions {
                dictionary_path: adaptor == Adaptor::Parquet,
                ..opts.clone()
            };
            Cohort::load(dir.path(), &opts)
        }
        Adaptor::Frames => {
            let (p, e, n) = frames();
            Cohort::from_frames(p, e, n, opts)
        }
        Adaptor::Arrow => {
            let (p, e, n) = frames();
            Cohort::from_arrow(batches(p), batches(e), batches(n), opts)
        }
    }
}

/// A frame as Arrow record batches, two rows a batch (so multi-batch tables are exercised).
pub fn batches(df: DataFrame) -> Vec<polars_arrow::record_batch::RecordBatch> {
    let mut out = Vec::new();
    for off in (0..df.height().max(1)).step_by(2) {
        let mut part = df.slice(off as i64, 2);
        part.rechunk_mut();
        out.extend(part.iter_chunks(CompatLevel::newest(), false));
    }
    out
}

/// The repository's models folder.
pub fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
}

/// The repository's definitions (code lists, weights, cut-points), loaded.
pub fn definitions() -> Definitions {
    Definitions::load(&models_dir()).unwrap()
}

/// Load options of the in-process tests: "today" fixed after every date the test cohorts hold.
pub fn load_options() -> strata::input::LoadOptions {
    strata::input::LoadOptions {
        today: strata::date::parse_days("2026-11-25").unwrap(),
        ..Default::default()
    }
}

/// The as-of date of the end-to-end runs.
pub const AS_OF: &str = "2025-04-01";

/// Run `strata score` on `cohort` at [`AS_OF`] into `out`, with `extra` flags.
pub fn score_into(cohort: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "score",
        "--cohort",
        cohort.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = strata(&args);
    // Every aggregate table the suite makes strata publish goes through the outside auditor.
    if o.status.success() {
        let round_to = if extra.contains(&"--publication") {
            5
        } else {
            1
        };
        audit::assert_protected(out, round_to);
    }
    o
}

/// Run `strata validate` on `cohort` with `extra` flags: its exit code and stdout.
pub fn validate(cohort: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["validate", "--cohort", cohort.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = strata(&args);
    (o.status.code(), stdout(&o))
}

/// `strata validate` on `cohort` with `extra` flags exits with `code` and prints `expect`.
pub fn validate_says(cohort: &Path, extra: &[&str], code: i32, expect: &str) {
    let (got, text) = validate(cohort, extra);
    assert_eq!(got, Some(code), "{text}");
    assert!(
        text.contains(expect),
        "validate output lacks {expect:?}:\n{text}"
    );
}

/// Run the strata binary.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_MODELS", models_dir())
        .output()
        .expect("run strata")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Read a CSV output as a polars frame.
pub fn read_csv(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap()
        .finish()
        .unwrap()
}

/// All files under a folder with their bytes, sorted by path (for byte-identity checks).
pub fn tree_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The first SNOMED CT code of each coded deficit, in deficit order.
pub fn deficit_codes(m: &Definitions) -> Vec<String> {
    let coded = m
        .efi
        .deficits
        .iter()
        .filter(|d| d.rule == strata::definitions::DeficitRule::Codes)
        .count();
    (0..coded)
        .map(|d| {
            m.efi
                .codes
                .iter()
                .find(|(dd, s, c)| {
                    *dd as usize == d
                        && *s == strata::codes::CodeSystem::Snomed
                        // a code in one deficit only, so counts are exact
                        && m.efi.codes.iter().filter(|(_, s2, c2)| s2 == s && c2 == c).count() == 1
                })
                .map(|(_, _, c)| c.clone())
                .unwrap()
        })
        .collect()
}

pub mod audit;

/// A column as text, nulls as empty strings.
pub fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

/// Every file in a run's PCN folders (`lists/<PCN>/*`), sorted by path.
pub fn list_files(out: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for pcn in std::fs::read_dir(out.join("lists")).unwrap() {
        let pcn = pcn.unwrap().path();
        assert!(pcn.is_dir(), "{}: not a PCN folder", pcn.display());
        for f in std::fs::read_dir(&pcn).unwrap() {
            v.push(f.unwrap().path());
        }
    }
    v.sort();
    v
}
