//! One scoring run from cohort folder to published output folder: the stages wired together,
//! timed, and recorded in a manifest.
//!
//! Pipeline position: the whole flow: the map step (`partition`: `cohort` -> `features` ->
//! `scores` + `population` -> `results` -> `lists` (and `programmes`) and `tables` (and
//! `indicators`)), then `disclosure` -> `output` -> `publish`.
//! The binary's `score` and `demo` subcommands are thin wrappers over [`score`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cohort::Cohort;
use crate::config::ScoreConfig;
use crate::definitions::DefinitionFile;
use crate::disclosure::{self, Suppression};
use crate::input::{FileCounts, Problem};
use crate::lists::ListRules;
use crate::output;
pub use crate::partition::{check_models, score_cohort};
use crate::partition::{score_partition, CompareWith, Figures, Partition, RunModels};

use crate::programmes;
use crate::provenance::{self, FileHash, InputHashes};
use crate::publish::{self, Destination, Written};
use crate::risk::{AppliedModel, Explainer};
use crate::settings::{self, Settings, SettingsError};
use crate::{date, Error};

/// A scoring run: its [`Settings`] (what it does) with where the cohort comes from, where the
/// files go and the run compared with (recorded in full in the manifest as `config`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoreOptions {
    /// Cohort folder.
    pub cohort: PathBuf,
    /// Output folder (replaced atomically), or output root (`ROOT/<as-of>/` and `ROOT/latest`).
    pub out: Destination,
    /// What the run does (as-of date, models, input checks, list rules, suppression, risk
    /// models, programmes), resolved once by [`Settings::resolve`]; the manifest shows its
    /// fields beside the others.
    #[serde(flatten)]
    pub settings: Settings,
    /// The previous run's folder, to say what changed since (none: nothing compared).
    pub previous: Option<PathBuf>,
}

impl ScoreOptions {
    /// The options of a run from its settings (a file, with the command line laid over it by
    /// [`ScoreConfig::over`]): [`Settings::resolve`], the cohort folder, where the files go and
    /// the previous run to compare with. Errors name the setting.
    pub fn resolve(c: &ScoreConfig) -> Result<ScoreOptions, SettingsError> {
        let cohort = c
            .cohort
            .clone()
            .ok_or_else(|| SettingsError("give cohort (--cohort DIR)".into()))?;
        let out = settings::destination(c)?;
        let settings = Settings::resolve(c)?;
        Ok(ScoreOptions {
            cohort,
            previous: settings::previous_run(c, &out, settings.as_of),
            out,
            settings,
        })
    }
}

/// A run's warnings, in the manifest's order: the validation report's, risk models trained on
/// synthetic data (and applied to a cohort that is not), the comparison with the previous run,
/// and how hospital spells were built. One list for every engine (the binary, Python, Spark).
pub fn warnings(
    cohort: &Cohort,
    models: &[crate::risk::RiskModel],
    withheld: &[crate::risk::RiskModel],
    compare: Option<String>,
) -> Vec<String> {
    let unmarked =
        cohort.synthetic.is_none() && models.iter().any(crate::risk::RiskModel::synthetic);
    cohort
        .report
        .problems
        .iter()
        .map(Problem::to_string)
        .chain(crate::risk::withheld_warning(withheld))
        .chain(unmarked.then(|| {
            "warning: risk models trained on synthetic data were applied to a cohort that is not synthetic (no strata synth mark): their figures say nothing about these patients; the lists say so in their risk_models_trained_on column. Train local models with strata train and give them with --risk-models".to_string()
        }))
        .chain(models.iter().filter(|m| m.synthetic()).map(|m| {
            format!(
                "warning: the {} model ({}) was trained on synthetic data: retrain it on local data (strata train) before acting on its figures",
                m.file.outcome, m.file.path
            )
        }))
        .chain(compare)
        .chain(crate::input::spells::warnings(&cohort.spells.report))
        .collect()
}

/// What the manifest records of each programme's lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgrammeListed {
    /// Programme name (`lists/<PCN>/<PCN>.<name>.csv`).
    pub name: String,
    /// The service in words.
    pub description: String,
    /// People on its lists across PCNs.
    pub listed: u64,
}

/// What a run did, written as `manifest.json` and printed by the binary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    /// strata's version.
    pub strata_version: String,
    /// The git commit strata was built from, or "unknown".
    pub git_commit: String,
    /// The full effective configuration of the run (every option, defaults included).
    pub config: ScoreOptions,
    /// Every cohort file read, with its SHA-256.
    pub input_files: Vec<FileHash>,
    /// As-of date.
    pub as_of: String,
    /// Date the run treated as today.
    pub today: String,
    /// Cohort folder as given.
    pub cohort: String,
    /// Rows read and rejected per input file.
    pub inputs: Vec<FileCounts>,
    /// How each large file was decoded (dictionary fast path or general path).
    pub read_paths: Vec<(String, String)>,
    /// How hospital spells were built from the encounters (README, "Hospital spells"): spells,
    /// joined transfers, optional columns used, admission method disagreements, and whether
    /// falls diagnoses were linked to their admission by `encounter_id` or matched by date.
    pub hospital_spells: crate::input::spells::SpellReport,
    /// What made the cohort, when it is `strata synth`'s synthetic data (its files' mark);
    /// `null` for real data.
    pub cohort_synthetic: Option<String>,
    /// Warnings from validation (errors stop the run).
    pub warnings: Vec<String>,
    /// Model files used, with hashes.
    pub models: Vec<DefinitionFile>,
    /// Risk model cards applied, with hashes.
    pub risk_models: Vec<AppliedModel>,
    /// Default cards trained on synthetic data and not applied, the cohort not being synthetic
    /// ([`crate::risk::withhold_synthetic`]).
    pub withheld_risk_models: Vec<AppliedModel>,
    /// List rules.
    pub rules: ListRules,
    /// Summary suppression.
    pub suppression: Suppression,
    /// The run's figures: patients, eligible, listed, listed_core20, deceased,
    /// ignored_after_as_of, rejected_rows (see rejects.csv); the manifest shows them beside
    /// the other fields.
    #[serde(flatten)]
    pub figures: Figures,
    /// The previous run the lists were compared with, or why none was.
    pub compared_with: String,
    /// People new on a list since the previous run.
    pub new_on_lists: u64,
    /// People on a list last time and not now (see `lists/<PCN>/<PCN>.dropped.csv`).
    pub dropped_off_lists: u64,
    /// Each programme's lists (`lists/<PCN>/<PCN>.<programme>.csv`), in programme order.
    pub programmes: Vec<ProgrammeListed>,
    /// Where prescriptions came from (`medications.parquet`, `events.parquet (dmd)`), or `none`:
    /// then the eFI's polypharmacy deficit could not be assessed.
    pub prescriptions: String,
    /// Distinct codes per system, and how many no list uses.
    pub distinct_codes: Vec<(String, u64)>,
    /// Codes no code list uses, per system.
    pub unused_codes: Vec<(String, u64)>,
    /// Files written.
    pub outputs: Vec<Written>,
    /// Worker threads.
    pub threads: usize,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
}

/// The run's stages, timed, and announced as `tracing` events so the binary can show progress
/// (a stage `started`, then `finished` with its seconds); the seconds go into the manifest.
struct Stages {
    current: &'static str,
    started: Instant,
    seconds: Vec<(String, f64)>,
}

impl Stages {
    /// Start timing the first stage.
    fn start(first: &'static str) -> Self {
        tracing::info!(stage = first, "started");
        Stages {
            current: first,
            started: Instant::now(),
            seconds: Vec::new(),
        }
    }

    /// Finish the current stage and start `name`.
    fn next(&mut self, name: &'static str) {
        self.close();
        self.current = name;
        self.started = Instant::now();
        tracing::info!(stage = name, "started");
    }

    fn close(&mut self) {
        let s = self.started.elapsed().as_secs_f64();
        tracing::info!(stage = self.current, seconds = s, "finished");
        self.seconds.push((self.current.to_string(), s));
    }

    /// Finish the last stage; every stage's seconds, in order.
    fn finish(mut self) -> Vec<(String, f64)> {
        self.close();
        self.seconds
    }
}

/// Run the nightly job: load and check the cohort, score it, rank each PCN's list, and publish
/// the output folder atomically with its manifest. With an output root, the run's start and end
/// are recorded in the root's history (`history`).
pub fn score(opts: &ScoreOptions) -> Result<Manifest, Error> {
    let as_of = date::format_days(opts.settings.as_of);
    let counts = |m: &Manifest| (m.figures.patients, m.figures.listed);
    crate::history::logged(&opts.out, &as_of, counts, || score_once(opts))
}

fn score_once(opts: &ScoreOptions) -> Result<Manifest, Error> {
    let s = &opts.settings;
    let mut stages = Stages::start("load_models");
    let mut run_models = RunModels::load(s)?;
    stages.next("read_cohort");
    let cohort = Cohort::load(&opts.cohort, &s.load)?;
    run_models.for_cohort(s, cohort.synthetic.is_some())?;
    // The map step, over the whole cohort: the binary's run is one partition.
    let previous = match &opts.previous {
        Some(dir) => CompareWith::Folder(dir),
        None => CompareWith::Nothing,
    };
    // Hashing the input files (for the manifest) needs no result of the run. Reading, scoring
    // and predicting keep both cores busy; ranking and writing leave gaps, which the hashing
    // thread fills when it starts with the `rank` stage (it is waited for once the outputs are
    // written).
    let mut input_hashes = None;
    let part = score_partition(cohort, s, &run_models, previous, &mut |stage| {
        stages.next(stage);
        if stage == "rank" {
            input_hashes = Some(InputHashes::start(&opts.cohort));
        }
    });
    let input_hashes = input_hashes.unwrap_or_else(|| InputHashes::start(&opts.cohort));
    let RunModels {
        definitions,
        models,
        withheld,
        ..
    } = run_models;
    let figures = part.figures();
    let Partition {
        cohort,
        scored,
        risks,
        ranked,
        listed,
        register,
        selected,
        changes,
        compare_warning,
        counts,
    } = part;
    let programme_inputs = programmes::Inputs {
        cohort: &cohort,
        scored: &scored,
        defs: &definitions,
        risks: &risks,
        register: &register,
        as_of: s.as_of,
    };
    stages.next("protect");
    // Every published table in one pass: a profile count that sums of hidden summary cells pin
    // is as much a disclosure as a summary cell, so no table is protected after the others.
    let counted = counts.tables();
    let cells = disclosure::protect(&counted.iter().collect::<Vec<_>>(), &s.suppression)?;
    let published = output::published(&counted, &cells);
    stages.next("explain");
    // Everyone on any list explained in one batch, before the writers look them up.
    let explainer = Explainer::new(&cohort, &definitions, &scored, s.as_of).ahead(
        &models,
        ranked
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(
                selected
                    .iter()
                    .flat_map(|s| s.lists.iter().flat_map(|(_, v)| v.iter().map(|&(p, _)| p))),
            )
            .collect(),
    );
    stages.next("write");
    let mut manifest = Manifest {
        strata_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: provenance::GIT_COMMIT.to_string(),
        config: opts.clone(),
        // Filled once the outputs are written: the hashing runs beside the write stage.
        input_files: Vec::new(),
        as_of: date::format_days(s.as_of),
        today: date::format_days(s.load.today),
        cohort: opts.cohort.display().to_string(),
        inputs: cohort.report.files.clone(),
        read_paths: cohort.read_paths.clone(),
        hospital_spells: cohort.spells.report.clone(),
        cohort_synthetic: cohort.synthetic.clone(),
        warnings: warnings(&cohort, &models, &withheld, compare_warning),
        models: definitions.files.clone(),
        risk_models: models.iter().map(|m| m.file.clone()).collect(),
        withheld_risk_models: withheld.iter().map(|m| m.file.clone()).collect(),
        rules: s.rules,
        suppression: s.suppression,
        figures,
        compared_with: changes.compared_with.clone(),
        new_on_lists: changes.new_on_lists(),
        dropped_off_lists: changes.dropped_total(),
        programmes: s
            .programmes
            .iter()
            .zip(&selected)
            .map(|(p, s)| ProgrammeListed {
                name: p.name.clone(),
                description: p.description.clone(),
                listed: s.listed(),
            })
            .collect(),
        prescriptions: crate::input::prescriptions_source(&cohort).to_string(),
        distinct_codes: cohort.report.distinct_codes.clone(),
        unused_codes: scored
            .unused_codes
            .iter()
            .map(|(s, n)| (s.name().to_string(), *n))
            .collect(),
        outputs: Vec::new(),
        threads: rayon::current_num_threads(),
        seconds: Vec::new(),
    };
    let risk_columns = output::RiskColumns {
        models: &models,
        pcn: &cohort.patients.pcn,
        risks: &risks,
        explainer,
    };
    // The run's folder name in an output root.
    let day = date::format_days(s.as_of);
    let manifest = publish::publish_to(&opts.out, &day, |dir: &Path| -> Result<Manifest, Error> {
        let outputs = output::write_outputs(
            dir,
            &output::RunResults {
                cohort: &cohort,
                scored: &scored,
                definitions: &definitions,
                ranked: &ranked,
                listed: &listed,
                tables: &published,
                risk: &risk_columns,
                changes: &changes,
                pcn_docs: Some(output::PcnDocs {
                    summary: &published[output::SUMMARY],
                    profile: &published[output::PROFILE],
                    as_of: &manifest.as_of,
                    rules: &s.rules,
                }),
                programmes: (!s.programmes.is_empty()).then_some(
                    output::programmes::ProgrammeRun {
                        programmes: &s.programmes,
                        selected: &selected,
                        inputs: &programme_inputs,
                    },
                ),
            },
        )?;
        manifest.outputs = outputs.files;
        manifest.outputs.extend(outputs.programmes);
        manifest.input_files = input_hashes.finish()?;
        manifest.seconds = stages.finish();
        publish::write_json(&dir.join("manifest.json"), &manifest)?;
        Ok(manifest)
    })?;
    Ok(manifest)
}
