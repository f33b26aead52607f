//! The reduce step of a run: what its partitions handed up ([`Handed`], their [`RunCounts`]
//! added together, their files) and what was decided from the whole input files, turned into
//! the published folder: the aggregate tables protected together, every file written, the
//! manifest, the atomic publication. Every engine calls it: the binary's run once over its one
//! partition, the Spark job's driver once over its tasks' parts, so no engine re-implements the
//! protection, the files, the warnings or the manifest.
//!
//! Pipeline position: the run's second half, after `partition` (the map step): `disclosure` ->
//! `output` -> `publish`; `run` (the binary) and the Python extension (Spark) call it.

use std::path::Path;
use std::time::Instant;

use crate::changes::Changes;
use crate::definitions::DefinitionFile;
use crate::disclosure::{self, Cell, Suppression};
use crate::input::FileCounts;
use crate::lists::ListRules;
use crate::output::{self, Outputs, PcnDocs, PublishedTable};
use crate::partition::{Figures, Handed, RunCounts, RunModels};
use crate::provenance::{self, FileHash, InputHashes};
use crate::publish::{self, Written};
use crate::report::{Reject, Scope, SpellReport};
use crate::risk::{AppliedModel, RiskModel};
use crate::settings::{ScoreOptions, Settings};
use crate::tables::CountedTable;
use crate::{date, Error};

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
    /// What ran the run: `binary`, or the Spark job's `spark <version> (<API>)`.
    pub engine: String,
    /// The full effective configuration of the run (every option, defaults included).
    pub config: ScoreOptions,
    /// Every cohort file read, with its SHA-256 (none when the engine read the cohort from a
    /// URI rather than a local or mounted folder).
    pub input_files: Vec<FileHash>,
    /// As-of date.
    pub as_of: String,
    /// Date the run treated as today.
    pub today: String,
    /// Cohort folder as given.
    pub cohort: String,
    /// Rows read and rejected per input file.
    pub inputs: Vec<FileCounts>,
    /// How each large file was decoded (dictionary fast path or general path): the binary's
    /// reader only (an engine that hands its tasks Arrow tables decodes no Parquet here).
    pub read_paths: Vec<(String, String)>,
    /// How hospital spells were built from the encounters (README, "Hospital spells"): spells,
    /// joined transfers, optional columns used, admission method disagreements, and whether
    /// falls diagnoses were linked to their admission by `encounter_id` or matched by date.
    pub hospital_spells: SpellReport,
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
    /// Distinct codes per system, and how many no list uses: counted over the whole cohort,
    /// so `null` from an engine that reads it in parts (a code is distinct per part).
    pub distinct_codes: Option<Vec<(String, u64)>>,
    /// Codes no code list uses, per system (`null` as `distinct_codes`).
    pub unused_codes: Option<Vec<(String, u64)>>,
    /// Where every patient's scores are: `scores.parquet`, or, from an engine whose tasks write
    /// their own part, `scores/`: one Parquet part per PCN, together the same rows (README,
    /// "Under Spark").
    pub scores_table: String,
    /// Files written.
    pub outputs: Vec<Written>,
    /// Worker threads (the Spark job: its default parallelism).
    pub threads: usize,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
}

/// The run's stages, timed, and announced as `tracing` events so the binary can show progress
/// (a stage `started`, then `finished` with its seconds); the seconds go into the manifest.
pub struct Stages {
    current: &'static str,
    started: Instant,
    seconds: Vec<(String, f64)>,
}

impl Stages {
    /// Start timing the first stage.
    pub fn start(first: &'static str) -> Self {
        Stages::after(Vec::new(), first)
    }

    /// Start timing `next` after stages timed elsewhere (an engine's driver before it hands
    /// over to the library).
    pub fn after(seconds: Vec<(String, f64)>, next: &'static str) -> Self {
        tracing::info!(stage = next, "started");
        Stages {
            current: next,
            started: Instant::now(),
            seconds,
        }
    }

    /// Finish the current stage and start `name`.
    pub fn next(&mut self, name: &'static str) {
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
    pub fn finish(mut self) -> Vec<(String, f64)> {
        self.close();
        self.seconds
    }
}

/// The warnings about the risk models applied: default cards withheld from a cohort that is
/// not synthetic, cards trained on synthetic data applied to one that is not, and each card
/// trained on synthetic data.
pub fn model_warnings(
    cohort_synthetic: bool,
    models: &[RiskModel],
    withheld: &[RiskModel],
) -> Vec<String> {
    let unmarked = !cohort_synthetic && models.iter().any(RiskModel::synthetic);
    crate::risk::withheld_warning(withheld)
        .into_iter()
        .chain(unmarked.then(|| {
            "warning: risk models trained on synthetic data were applied to a cohort that is not synthetic (no strata synth mark): their figures say nothing about these patients; the lists say so in their risk_models_trained_on column. Train local models with strata train and give them with --risk-models".to_string()
        }))
        .chain(models.iter().filter(|m| m.synthetic()).map(|m| {
            format!(
                "warning: the {} model ({}) was trained on synthetic data: retrain it on local data (strata train) before acting on its figures",
                m.file.outcome, m.file.path
            )
        }))
        .collect()
}

/// How a run's hospital spells were built, from its parts: added up over the parts that read
/// records (a PCN stage's part, records read elsewhere, built none).
pub fn hospital_spells(parts: &[Handed]) -> SpellReport {
    let mut spells: Option<SpellReport> = None;
    for p in parts.iter().filter(|p| !p.records_elsewhere) {
        match &mut spells {
            None => spells = Some(p.hospital_spells.clone()),
            Some(sp) => sp.add(&p.hospital_spells),
        }
    }
    spells.unwrap_or_default()
}

/// A run's input warnings from its parts that read records (a PCN stage's part, records read
/// elsewhere, says nothing of them): with `whole` (the whole files' warnings, the cohort
/// read in parts) those first, then each part's warnings about its rows once (the first part's
/// first), then those true of a part as a whole when every part has them; without (one part
/// read whole) the part's own, as they are.
pub fn input_warnings(whole: Option<&[String]>, parts: &[Handed]) -> Vec<String> {
    let read = || parts.iter().filter(|p| !p.records_elsewhere);
    let Some(whole) = whole else {
        return read()
            .flat_map(|p| p.warnings.iter().map(|(_, w)| w.clone()))
            .collect();
    };
    let mut out: Vec<String> = whole.to_vec();
    for (scope, w) in read().flat_map(|p| &p.warnings) {
        let keep = match scope {
            Scope::WholeFile => false,
            Scope::Rows => true,
            Scope::EveryPart => read().all(|p| p.warnings.iter().any(|(_, x)| x == w)),
        };
        if keep && !out.contains(w) {
            out.push(w.clone());
        }
    }
    out
}

/// What the lists were compared with, as the manifest says it.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// The previous run the lists were compared with, or why none was.
    pub compared_with: String,
    /// People new on a list since.
    pub new_on_lists: u64,
    /// People on a list then and not now.
    pub dropped_off_lists: u64,
    /// Why the previous run given could not be compared with (a warning of the run).
    pub warning: Option<String>,
}

impl Comparison {
    /// The comparison of a run's lists worked out in one partition (the binary's).
    pub fn of(changes: &Changes, warning: Option<String>) -> Comparison {
        Comparison {
            compared_with: changes.compared_with.clone(),
            new_on_lists: changes.new_on_lists(),
            dropped_off_lists: changes.dropped_total(),
            warning,
        }
    }
}

/// What was decided from the whole input: per-file counts, every rejected row (in file, row
/// order), and, for a cohort read in parts, the whole files' warnings
/// ([`crate::input::parts::whole_files`]).
#[derive(Debug, Clone, Default)]
pub struct WholeInput {
    /// Rows read and rejected per file.
    pub files: Vec<FileCounts>,
    /// Every rejected row.
    pub rejects: Vec<Reject>,
    /// The whole files' warnings when the cohort was read in parts; `None` when it was read
    /// whole (the one part's warnings stand).
    pub warnings: Option<Vec<String>>,
    /// How each large file was decoded (the binary's reader).
    pub read_paths: Vec<(String, String)>,
    /// Distinct codes per system, when the whole cohort was read at once.
    pub distinct_codes: Option<Vec<(String, u64)>>,
    /// Codes no code list uses, when the whole cohort was read at once.
    pub unused_codes: Option<Vec<(String, u64)>>,
    /// The cohort's `strata synth` mark.
    pub cohort_synthetic: Option<String>,
}

/// A run's aggregate tables protected together, once: every table and each PCN's documents
/// come from this one protection.
pub struct Protection {
    /// The counted tables, in [`output::AGGREGATE_TABLES`] order.
    pub tables: [CountedTable; 4],
    /// Their published cells.
    pub cells: Vec<Vec<Cell>>,
}

impl Protection {
    /// Protect a whole run's counts (its partitions' [`RunCounts`] added together) under the
    /// run's suppression: a profile count that sums of hidden summary cells pin is as much a
    /// disclosure as a summary cell, so no table is protected after the others.
    pub fn new(counts: &RunCounts, suppression: &Suppression) -> Result<Protection, Error> {
        let tables = counts.tables();
        let cells = disclosure::protect(&tables.iter().collect::<Vec<_>>(), suppression)?;
        Ok(Protection { tables, cells })
    }

    /// The published tables, in [`output::AGGREGATE_TABLES`] order.
    pub fn published(&self) -> Vec<PublishedTable<'_>> {
        output::published(&self.tables, &self.cells)
    }
}

/// The reduce step's inputs: the run, who ran it, what its partitions handed up and what was
/// decided from the whole input.
pub struct Reduce<'a> {
    /// The run's options (recorded as the manifest's `config`).
    pub opts: &'a ScoreOptions,
    /// Its definitions and risk model cards (as every partition used them).
    pub models: &'a RunModels,
    /// What ran it ([`Manifest::engine`]).
    pub engine: String,
    /// Worker threads, or the engine's parallelism.
    pub threads: usize,
    /// Where the scores are ([`Manifest::scores_table`]).
    pub scores_table: String,
    /// Every partition's aggregate counts, added together.
    pub counts: RunCounts,
    /// What each partition handed up.
    pub parts: Vec<Handed>,
    /// What was decided from the whole input.
    pub input: WholeInput,
    /// The comparison with the previous run.
    pub comparison: Comparison,
    /// The input files being hashed (started by the caller when nothing else needs the
    /// machine); none when the engine cannot read them (a URI).
    pub hashes: Option<InputHashes>,
}

/// The reduce step: protect the run's tables together, then publish its folder to the run's
/// destination atomically: `write` writes the patients' files (the lists, their documents from
/// the [`PcnDocs`] given, the scores file, the programme lists: [`output::write_outputs`] for a
/// run held in memory, [`output::parts::write_parts`] for files handed up), then the tables,
/// the rejected rows and the manifest. Stages `protect` and `write` are timed on `stages`.
pub fn finish<W>(r: Reduce, mut stages: Stages, write: W) -> Result<Manifest, Error>
where
    W: FnOnce(&Path, &PcnDocs) -> Result<Outputs, Error>,
{
    let s: &Settings = &r.opts.settings;
    // Every part was scored with the files this step publishes as the run's models.
    let ours = r.models.fingerprint();
    for (k, p) in r.parts.iter().enumerate() {
        let part = match p.label.as_str() {
            "" => format!("part {k} of the run"),
            holds => format!("the part of {holds}"),
        };
        if let Some(e) = crate::definitions::DefinitionError::part_models(&part, &p.models, &ours) {
            return Err(e.into());
        }
    }
    stages.next("protect");
    let protection = Protection::new(&r.counts, &s.suppression)?;
    let published = protection.published();
    stages.next("write");
    let as_of = date::format_days(s.as_of);
    let mut figures = Figures::default();
    let mut listed = vec![0u64; s.programmes.len()];
    for p in &r.parts {
        figures.add(&p.figures);
        for (n, k) in listed.iter_mut().zip(&p.programmes) {
            *n += k;
        }
    }
    figures.rejected_rows = r.input.rejects.len() as u64;
    let hospital_spells = hospital_spells(&r.parts);
    let RunModels {
        definitions,
        models,
        withheld,
        ..
    } = r.models;
    // The manifest's order: the input's, the risk models', the comparison's, the spells'.
    let mut warnings = input_warnings(r.input.warnings.as_deref(), &r.parts);
    warnings.extend(model_warnings(
        r.input.cohort_synthetic.is_some(),
        models,
        withheld,
    ));
    warnings.extend(r.comparison.warning.clone());
    warnings.extend(crate::input::spells::warnings(&hospital_spells));
    let prescriptions = r
        .parts
        .iter()
        .filter(|p| !p.records_elsewhere)
        .map(|p| p.prescriptions.as_str())
        .find(|&x| x != "none")
        .unwrap_or("none")
        .to_string();
    let mut manifest = Manifest {
        strata_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: provenance::GIT_COMMIT.to_string(),
        engine: r.engine,
        config: r.opts.clone(),
        // Filled once the outputs are written: the hashing runs beside the write stage.
        input_files: Vec::new(),
        as_of: as_of.clone(),
        today: date::format_days(s.load.today),
        cohort: r.opts.cohort.display().to_string(),
        inputs: r.input.files,
        read_paths: r.input.read_paths,
        hospital_spells,
        cohort_synthetic: r.input.cohort_synthetic,
        warnings,
        models: definitions.files.clone(),
        risk_models: models.iter().map(|m| m.file.clone()).collect(),
        withheld_risk_models: withheld.iter().map(|m| m.file.clone()).collect(),
        rules: s.rules,
        suppression: s.suppression,
        figures,
        compared_with: r.comparison.compared_with,
        new_on_lists: r.comparison.new_on_lists,
        dropped_off_lists: r.comparison.dropped_off_lists,
        programmes: s
            .programmes
            .iter()
            .zip(listed)
            .map(|(p, listed)| ProgrammeListed {
                name: p.name.clone(),
                description: p.description.clone(),
                listed,
            })
            .collect(),
        prescriptions,
        distinct_codes: r.input.distinct_codes,
        unused_codes: r.input.unused_codes,
        scores_table: r.scores_table,
        outputs: Vec::new(),
        threads: r.threads,
        seconds: Vec::new(),
    };
    let docs = PcnDocs {
        summary: &published[output::SUMMARY],
        profile: &published[output::PROFILE],
        as_of: &as_of,
        rules: &s.rules,
    };
    let rejects = r.input.rejects;
    let hashes = r.hashes;
    publish::publish_to(
        &r.opts.out,
        &as_of,
        |dir: &Path| -> Result<Manifest, Error> {
            let Outputs { files, programmes } = write(dir, &docs)?;
            manifest.outputs = files;
            manifest
                .outputs
                .extend(output::write_tables(dir, &published, &rejects)?);
            manifest.outputs.extend(programmes);
            if let Some(h) = hashes {
                manifest.input_files = h.finish()?;
            }
            manifest.seconds = stages.finish();
            publish::write_json(&dir.join("manifest.json"), &manifest)?;
            Ok(manifest)
        },
    )
}
