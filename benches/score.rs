//! Benchmarks of the nightly job on a synthetic ICS cohort (divan).
//!
//! `cargo bench --bench score` generates `bench-data/ics-<N>/` once (N = $STRATA_BENCH_PATIENTS,
//! default 1,200,000: one ICS, about 54 million events) and times:
//! - `bare_read`: polars reading every column strata needs from the three files, nothing else:
//!   the floor any Parquet-based tool pays;
//! - `load_cohort`: strata's read, validation, code interning and per-patient layout;
//! - `score_end_to_end`: the whole `strata score` (load, score, apply the three default risk
//!   models, rank, explain every listed patient's risks, write lists and manifest);
//! - `score_without_models`: the same with `--no-risk-models`, so the models' cost is the
//!   difference.
//!
//! BENCHMARKS.md records the figures and the machine.

use std::path::PathBuf;
use std::sync::OnceLock;

use polars::prelude::*;
use strata::cohort::Cohort;
use strata::definitions::Definitions;
use strata::disclosure::Suppression;
use strata::input::LoadOptions;
use strata::lists::ListRules;
use strata::run::{self, ScoreOptions};
use strata::synth::{self, SynthOptions};

/// The binary's allocator, so the benchmarks time what `strata score` does (the system
/// allocator is slower on these columns; src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    strata::allocator::keep_freed_memory();
    divan::main();
}

fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

/// The benchmark cohort, generated on first use.
fn cohort() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let n: usize = std::env::var("STRATA_BENCH_PATIENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_200_000);
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/bench-data"))
            .join(format!("ics-{n}"));
        if !dir.join("manifest.json").is_file() {
            eprintln!("generating {n} patients into {}", dir.display());
            let models = Definitions::load(&models_dir()).expect("models");
            synth::generate(&SynthOptions::new(n, 42, dir.clone()), &models).expect("synth");
        }
        dir
    })
}

fn read(file: &str, cols: &[&str]) -> DataFrame {
    ParquetReader::new(std::fs::File::open(cohort().join(file)).expect("open"))
        .with_columns(Some(cols.iter().map(|s| s.to_string()).collect()))
        .finish()
        .expect("read")
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn bare_read() -> usize {
    let p = read(
        "patients.parquet",
        &[
            "patient_id",
            "birth_date",
            "sex",
            "practice_code",
            "pcn_code",
            "imd_decile",
            "care_home",
            "death_date",
        ],
    );
    let e = read(
        "events.parquet",
        &["patient_id", "event_date", "code_system", "code"],
    );
    let n = read(
        "encounters.parquet",
        &[
            "patient_id",
            "setting",
            "start_date",
            "end_date",
            "emergency",
        ],
    );
    p.height() + e.height() + n.height()
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn load_cohort() -> usize {
    // On one pool with polars, as the binary runs (strata::threads).
    let c =
        strata::threads::install(|| Cohort::load(cohort(), &LoadOptions::default())).expect("load");
    c.events.code.len()
}

fn score(risk_models: Vec<PathBuf>) -> u64 {
    let out = std::env::temp_dir().join(format!("strata-bench-out-{}", std::process::id()));
    let opts = ScoreOptions {
        cohort: cohort().clone(),
        out: strata::publish::Destination::Folder(out.clone()),
        settings: strata::settings::Settings {
            as_of: synth::default_as_of(),
            models: models_dir(),
            load: LoadOptions::default(),
            rules: ListRules::default(),
            suppression: Suppression::default(),
            risk_models,
            default_risk_models: false,
            programmes: Vec::new(),
        },
        previous: None,
    };
    let m = strata::threads::install(|| run::score(&opts)).expect("score");
    let _ = std::fs::remove_dir_all(&out);
    m.figures.listed
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn score_end_to_end() -> u64 {
    score(vec![models_dir().join("risk")])
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn score_without_models() -> u64 {
    score(Vec::new())
}
