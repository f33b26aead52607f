//! One scoring run from cohort folder to published output folder: the stages wired together,
//! timed, and recorded in a manifest.
//!
//! Pipeline position: the whole flow, `cohort` -> `features` -> `scores` + `population` ->
//! `results` -> `lists` (and `programmes`) and `tables` (and `indicators`) -> `disclosure` ->
//! `output` -> `publish`.
//! The binary's `score` and `demo` subcommands are thin wrappers over [`score`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::changes::{Changes, Previous};
use crate::cohort::Cohort;
use crate::config::ScoreConfig;
use crate::definitions::{DefinitionFile, Definitions};
use crate::disclosure::{self, Suppression};
use crate::features::{ages_and_vitals, all_features, Windows};
use crate::input::{FileCounts, Problem};
use crate::lists::{self, ListRules};
use crate::output;
use crate::population::{self, Status};
use crate::programmes::{self, Programme};
use crate::provenance::{self, FileHash, InputHashes};
use crate::publish::{self, Destination, Written};
use crate::results::Scored;
use crate::risk::{self, AppliedModel, Explainer};
use crate::scores::{Scorer, Scores};
use crate::settings::{self, Settings, SettingsError};
use crate::{date, indicators, palliative, tables, Error};

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
    /// Patients in the cohort.
    pub patients: u64,
    /// Patients eligible (alive, born, old enough).
    pub eligible: u64,
    /// Patients on a list.
    pub listed: u64,
    /// Of them, in the most deprived fifth (Core20).
    pub listed_core20: u64,
    /// Patients left out because they died on or before the as-of date.
    pub deceased: u64,
    /// Records dated after the as-of date, ignored by scoring.
    pub ignored_after_as_of: u64,
    /// Rows rejected across files (see rejects.csv).
    pub rejected_rows: u64,
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

/// Score a loaded cohort at `as_of`: features, scores, ages and statuses of every patient.
pub fn score_cohort(
    cohort: &Cohort,
    definitions: &Definitions,
    as_of: i32,
    rules: &ListRules,
) -> Scored {
    let lookup = definitions.compile(&cohort.codes);
    let windows = Windows::new(definitions, as_of);
    let features = all_features(cohort, &lookup, &windows);
    let scorer = Scorer::new(definitions);
    let mut scores: Vec<Scores> = Vec::with_capacity(features.len());
    features
        .par_iter()
        .with_min_len(4096)
        .map(|f| scorer.score(f))
        .collect_into_vec(&mut scores);
    let (ages, vitals) = ages_and_vitals(cohort, as_of);
    let status = population::statuses(&ages, &vitals, rules.min_age);
    Scored {
        features,
        scores,
        ages,
        status,
        unused_codes: lookup.unused_by_system,
        care_home_coded: lookup.care_home_coded,
    }
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
    let counts = |m: &Manifest| (m.patients, m.listed);
    crate::history::logged(&opts.out, &as_of, counts, || score_once(opts))
}

/// The run's rules against the models applied: every programme's model and the ranking model
/// (its index) are there. One check for every engine. A model missing because its default card was withheld
/// ([`risk::withhold_synthetic`]) is said so.
pub fn check_models(
    programmes: &[Programme],
    rules: &ListRules,
    definitions: &Definitions,
    models: &[risk::RiskModel],
    withheld: &[risk::RiskModel],
) -> Result<Option<usize>, Error> {
    if let Err(e) = programmes::check(programmes, definitions, models) {
        // Say why when a programme's model is one of the withheld default cards.
        for p in programmes {
            for o in p.outcomes() {
                let what = format!("programme '{}'", p.name);
                if let Err(w @ risk::RiskError::Withheld { .. }) =
                    risk::needed_model(models, withheld, o, &what)
                {
                    return Err(w.into());
                }
            }
        }
        return Err(e.into());
    }
    Ok(match rules.rank_by {
        lists::RankBy::Frailty => None,
        lists::RankBy::Risk(o) => Some(risk::needed_model(
            models,
            withheld,
            o,
            "ranking the lists (--rank-by)",
        )?),
    })
}

fn score_once(opts: &ScoreOptions) -> Result<Manifest, Error> {
    let s = &opts.settings;
    let mut stages = Stages::start("load_models");
    let definitions = Definitions::load(&s.models)?;
    let mut models = risk::load(&s.risk_models, &definitions)?;
    check_models(&s.programmes, &s.rules, &definitions, &models, &[])?;
    stages.next("read_cohort");
    let cohort = Cohort::load(&opts.cohort, &s.load)?;
    let withheld = risk::withhold_synthetic(
        &mut models,
        s.default_risk_models,
        cohort.synthetic.is_some(),
    );
    let ranking_model = check_models(&s.programmes, &s.rules, &definitions, &models, &withheld)?;
    stages.next("score");
    let scored = score_cohort(&cohort, &definitions, s.as_of, &s.rules);
    stages.next("predict");
    let risks = risk::apply(
        &models,
        &cohort,
        &definitions,
        &scored,
        s.as_of,
        s.rules.risk_bands,
    );
    stages.next("rank");
    // Hashing the input files (for the manifest) needs no result of the run. Reading, scoring
    // and predicting keep both cores busy; ranking and writing leave gaps, which the hashing
    // thread fills when it starts here (it is waited for once the outputs are written).
    let input_hashes = InputHashes::start(&opts.cohort);
    // Ranking, reading the previous run and the cohort-wide tables are independent passes:
    // run them side by side (the `rank` stage's time covers all three).
    let ((ranked, previous), (indicators, (summary, equity))) = rayon::join(
        || {
            rayon::join(
                || {
                    lists::rank(
                        &cohort,
                        &scored.scores,
                        &scored.status,
                        &s.rules,
                        ranking_model.map(|k| &risks[k]),
                    )
                },
                || opts.previous.as_ref().map(|dir| (dir, Previous::read(dir))),
            )
        },
        || {
            rayon::join(
                || indicators::count(&cohort, s.as_of).table(),
                || {
                    (
                        tables::summary(&cohort, &scored.scores, &scored.status).table(),
                        tables::equity(&cohort, &scored.scores, &scored.status, &scored.ages)
                            .table(),
                    )
                },
            )
        },
    );
    let register = if programmes::needs_register(&s.programmes) {
        palliative::on_register(&cohort, &definitions, s.as_of)
    } else {
        Vec::new()
    };
    let programme_inputs = programmes::Inputs {
        cohort: &cohort,
        scored: &scored,
        defs: &definitions,
        risks: &risks,
        register: &register,
        as_of: s.as_of,
    };
    let selected = programmes::select(&s.programmes, &programme_inputs);
    let mut compare_warning = None;
    let listed = lists::listed_mask(cohort.patients.len(), &ranked);
    // The comparison with the previous run and the list's profile are independent passes.
    let (changes, profile) = rayon::join(
        || match previous {
            None => Changes::none(&cohort, "nothing compared (no previous run given)"),
            Some((dir, read)) => match read {
                Ok(Some(prev)) => Changes::compare(&cohort, &scored, &s.rules, &listed, &prev),
                Ok(None) => Changes::none(
                    &cohort,
                    format!("no previous run in {} to compare with", dir.display()),
                ),
                Err(e) => {
                    compare_warning =
                        Some(format!("warning: not compared with the previous run: {e}"));
                    Changes::none(&cohort, e.to_string())
                }
            },
        },
        || {
            tables::profile(
                &cohort,
                &scored.scores,
                &scored.status,
                &scored.ages,
                &listed,
            )
            .table()
        },
    );
    stages.next("protect");
    // Every published table in one pass: a profile count that sums of hidden summary cells pin
    // is as much a disclosure as a summary cell, so no table is protected after the others.
    let counted = [summary, equity, indicators, profile];
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
    let count = |s: Status| scored.status.iter().filter(|&&x| x == s).count() as u64;
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
        patients: cohort.patients.len() as u64,
        eligible: count(Status::Eligible),
        listed: ranked.iter().map(|(_, v)| v.len() as u64).sum(),
        listed_core20: ranked
            .iter()
            .flat_map(|(_, v)| v.iter())
            .filter(|&&i| population::is_core20(cohort.patients.imd_decile[i as usize]))
            .count() as u64,
        deceased: count(Status::Deceased),
        ignored_after_as_of: scored
            .features
            .iter()
            .map(|f| f.ignored_after_as_of as u64)
            .sum(),
        rejected_rows: cohort.rejects.len() as u64,
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
