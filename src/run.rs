//! The binary's scoring run from cohort folder to published output folder: the library's two
//! steps over one partition, timed and recorded in a manifest.
//!
//! Pipeline position: the whole flow: the map step (`partition`: `cohort` -> `features` ->
//! `scores` + `population` -> `results` -> `lists` (and `programmes`) and `tables` (and
//! `indicators`)), then the reduce step (`finish`: `disclosure` -> `output` -> `publish`).
//! The binary's `score` and `demo` subcommands are thin wrappers over [`score`]; the Spark job
//! calls the same two steps through the Python extension.

use std::path::Path;

use crate::cohort::Cohort;
use crate::finish::{finish, Comparison, Reduce, Stages, WholeInput};
pub use crate::finish::{Manifest, ProgrammeListed};
use crate::output::{self, PcnDocs};
pub use crate::partition::{check_models, score_cohort};
use crate::partition::{score_partition, CompareWith, RunModels};
use crate::programmes;
use crate::provenance::InputHashes;
use crate::risk::Explainer;
pub use crate::settings::ScoreOptions;
use crate::{date, Error};

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
    // Event rows no definition reads are checked, counted and not kept.
    let load = crate::input::LoadOptions {
        leave_out: Some(run_models.leave_out(s.as_of)),
        ..s.load.clone()
    };
    let cohort = Cohort::load(&opts.cohort, &load)?;
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
    let hashes = input_hashes.unwrap_or_else(|| InputHashes::start(&opts.cohort));
    stages.next("explain");
    // Everyone on any list explained in one batch, before the writers look them up.
    let explainer = Explainer::new(&part.cohort, &run_models.definitions, &part.scored, s.as_of)
        .ahead(
            &run_models.models,
            part.ranked
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .chain(
                    part.selected
                        .iter()
                        .flat_map(|s| s.lists.iter().flat_map(|(_, v)| v.iter().map(|&(p, _)| p))),
                )
                .collect(),
        );
    // The reduce step, over the one partition.
    let handed = part.handed();
    let cohort = &part.cohort;
    let reduce = Reduce {
        opts,
        models: &run_models,
        engine: "binary".into(),
        threads: rayon::current_num_threads(),
        scores_table: "scores.parquet".into(),
        counts: part.counts.clone(),
        parts: vec![handed],
        input: WholeInput {
            files: cohort.report.files.clone(),
            rejects: cohort.rejects.clone(),
            warnings: None,
            read_paths: cohort.read_paths.clone(),
            distinct_codes: Some(cohort.report.distinct_codes.clone()),
            unused_codes: Some(
                part.scored
                    .unused_codes
                    .iter()
                    .map(|(s, n)| (s.name().to_string(), *n))
                    .collect(),
            ),
            cohort_synthetic: cohort.synthetic.clone(),
        },
        comparison: Comparison::of(&part.changes, part.compare_warning.clone()),
        hashes: Some(hashes),
    };
    let programme_inputs = programmes::Inputs {
        cohort,
        scored: &part.scored,
        defs: &run_models.definitions,
        risks: &part.risks,
        register: &part.register,
        as_of: s.as_of,
    };
    let risk_columns = output::RiskColumns {
        models: &run_models.models,
        pcn: &cohort.patients.pcn,
        risks: &part.risks,
        explainer,
    };
    finish(reduce, stages, |dir: &Path, docs: &PcnDocs| {
        Ok(output::write_outputs(
            dir,
            &output::RunResults {
                cohort,
                scored: &part.scored,
                definitions: &run_models.definitions,
                ranked: &part.ranked,
                listed: &part.listed,
                risk: &risk_columns,
                changes: &part.changes,
                pcn_docs: Some(*docs),
                programmes: (!s.programmes.is_empty()).then_some(
                    output::programmes::ProgrammeRun {
                        programmes: &s.programmes,
                        selected: &part.selected,
                        inputs: &programme_inputs,
                    },
                ),
            },
        )?)
    })
}
