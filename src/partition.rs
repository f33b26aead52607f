//! The map step of a run: one partition of a cohort (a set of whole PCNs; for the binary, the
//! whole cohort) scored, its risk models applied, its lists ranked and compared with the
//! previous run, its programme lists selected, and every aggregate table counted. Every engine
//! calls it: the binary's run once, the Python package and each Spark task once per part, so no
//! engine re-implements a rule of the run.
//!
//! Pipeline position: the run's first half, `cohort` -> `features` -> `scores` + `population` ->
//! `results` -> `risk` -> `lists` (and `programmes`, `changes`) and `tables` (and
//! `indicators`); what a partition hands up is protected and written by `run`.

use std::path::Path;

use crate::carried::Carried;
use crate::changes::{Changes, Previous};
use crate::codes::CodeSystem;
use crate::cohort::Cohort;
use crate::definitions::Definitions;
use crate::features::{ages_and_vitals, all_features, Activity, Features, Windows};
use crate::indicators::{self, IndicatorCounts};
use crate::input::LeaveOut;
use crate::lists::{self, ListRules};
use crate::palliative;
use crate::population::{self, Status};
use crate::programmes::{self, Programme, ProgrammeLists};
use crate::report::{Scope, Severity, SpellReport};
use crate::results::Scored;
use crate::risk::{self, ModelRisk, RiskModel};
use crate::scores::{Scorer, Scores};
use crate::settings::Settings;
use crate::tables::{self, CountedTable, Counts, ProfileCounts};
use crate::Error;
use rayon::prelude::*;

/// A run's definitions and risk model cards, loaded once and checked against its rules (every
/// programme's model and the ranking model there), shared by its partitions.
pub struct RunModels {
    /// The score definitions and code lists.
    pub definitions: Definitions,
    /// Cards applied.
    pub models: Vec<RiskModel>,
    /// Default cards trained on synthetic data and not applied, the cohort not being synthetic
    /// ([`risk::withhold_synthetic`]).
    pub withheld: Vec<RiskModel>,
    /// The ranking model's index in `models` (ranking by risk), checked.
    pub ranking: Option<usize>,
}

impl RunModels {
    /// Load the run's definitions and cards and check them against its rules (before any
    /// cohort is read: a run that cannot be made stops at once).
    pub fn load(settings: &Settings) -> Result<RunModels, Error> {
        let definitions = Definitions::load(&settings.models)?;
        let models = risk::load(&settings.risk_models, &definitions)?;
        let ranking = check_models(
            &settings.programmes,
            &settings.rules,
            &definitions,
            &models,
            &[],
        )?;
        Ok(RunModels {
            definitions,
            models,
            withheld: Vec::new(),
            ranking,
        })
    }

    /// What a scoring run at `as_of` need not keep of the events once they are checked: rows
    /// dated on or before it whose code nothing reads ([`Definitions::unread_ids`]). The
    /// figures, lists and tables are the same with or without it; `train` and `validate` keep
    /// every row.
    pub fn leave_out(&self, as_of: i32) -> LeaveOut {
        let definitions = self.definitions.clone();
        LeaveOut {
            through: as_of,
            unread: std::sync::Arc::new(move |dict| definitions.unread_ids(dict)),
        }
    }

    /// What the run scores with, named so that the name does not depend on where the files are:
    /// each definition file by its path in the models folder, each applied risk model card by
    /// its outcome; with the SHA-256 of its bytes. Every part of a run hands it up and the
    /// reduce step refuses a part scored with other files ([`crate::finish::finish`]): an
    /// engine's executors must load what its driver loads.
    pub fn fingerprint(&self) -> Vec<(String, String)> {
        self.definitions
            .files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .chain(self.models.iter().map(|m| {
                (
                    format!("risk model card ({})", m.file.outcome),
                    m.file.sha256.clone(),
                )
            }))
            .collect()
    }

    /// Withhold the default cards trained on synthetic data from a cohort that is not synthetic
    /// ([`risk::withhold_synthetic`]), and check the rules again against what is left (a missing
    /// model is said to be withheld).
    pub fn for_cohort(&mut self, settings: &Settings, synthetic: bool) -> Result<(), Error> {
        self.withheld =
            risk::withhold_synthetic(&mut self.models, settings.default_risk_models, synthetic);
        self.ranking = check_models(
            &settings.programmes,
            &settings.rules,
            &self.definitions,
            &self.models,
            &self.withheld,
        )?;
        Ok(())
    }
}

/// The previous run a partition's lists are compared with.
pub enum CompareWith<'a> {
    /// None given: nothing compared.
    Nothing,
    /// A previous run's output folder, read here (as `strata score --previous DIR`).
    Folder(&'a Path),
    /// A previous run already read, or the part of it about this partition's patients (the
    /// Spark job's tasks).
    Run(Previous),
}

/// The aggregate tables' counts of a partition, addable across partitions (each a plain sum
/// of counts): laid out as [`CountedTable`]s only once, for the whole run.
#[derive(Debug, Clone)]
pub struct RunCounts {
    /// `summary.csv`'s counts.
    pub summary: Counts,
    /// `equity.csv`'s counts.
    pub equity: Counts,
    /// `indicators.csv`'s counts.
    pub indicators: IndicatorCounts,
    /// `pcn_profile.csv`'s counts.
    pub profile: ProfileCounts,
}

impl RunCounts {
    /// The counted tables, in the order of [`crate::output::AGGREGATE_TABLES`].
    pub fn tables(&self) -> [CountedTable; 4] {
        [
            self.summary.table(),
            self.equity.table(),
            self.indicators.table(),
            self.profile.table(),
        ]
    }
}

/// One partition scored: what its documents, lists and the run's tables are made from.
pub struct Partition {
    /// The partition's cohort (checked; its report and rejects with it).
    pub cohort: Cohort,
    /// Features, scores, ages and statuses of its patients.
    pub scored: Scored,
    /// Each applied risk model's results, in the order of [`RunModels::models`].
    pub risks: Vec<ModelRisk>,
    /// Each PCN's listed patients in rank order, PCNs in code order.
    pub ranked: Vec<(u32, Vec<u32>)>,
    /// Per patient: on a list.
    pub listed: Vec<bool>,
    /// Per patient: on the palliative care register (empty when no programme asks).
    pub register: Vec<bool>,
    /// The programme lists, in programme order.
    pub selected: Vec<ProgrammeLists>,
    /// What changed since the previous run.
    pub changes: Changes,
    /// Why the previous run given could not be compared with (a warning of the run).
    pub compare_warning: Option<String>,
    /// The aggregate tables' counts.
    pub counts: RunCounts,
    /// What it was scored with ([`RunModels::fingerprint`]).
    pub models: Vec<(String, String)>,
    /// Its records were read by a records stage ([`score_records`]), which hands up what they
    /// say of the input (rejected rows, warnings, spells, prescriptions, the indicators'
    /// counts): the reduce step reads none of that from this part ([`Handed::records_elsewhere`]).
    pub records_elsewhere: bool,
}

/// A partition's figures, as the manifest says them (each a count, addable across partitions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
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
    /// Rows rejected across files.
    pub rejected_rows: u64,
}

impl Figures {
    /// Add another partition's figures.
    pub fn add(&mut self, o: &Figures) {
        self.patients += o.patients;
        self.eligible += o.eligible;
        self.listed += o.listed;
        self.listed_core20 += o.listed_core20;
        self.deceased += o.deceased;
        self.ignored_after_as_of += o.ignored_after_as_of;
        self.rejected_rows += o.rejected_rows;
    }
}

/// What a partition hands up to the run's reduce step (`finish`) besides its aggregate counts
/// ([`RunCounts`]) and its files: small, whatever the partition's size, and plain data (an
/// engine's tasks send it to the driver as JSON).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handed {
    /// Its figures.
    pub figures: Figures,
    /// Its input's warnings (as `strata validate` prints them), each with what it is true of
    /// when the cohort is read in parts.
    pub warnings: Vec<(Scope, String)>,
    /// People on each programme's lists, in programme order.
    pub programmes: Vec<u64>,
    /// Where its prescriptions came from ([`crate::input::prescriptions_source`]).
    pub prescriptions: String,
    /// How its hospital spells were built.
    pub hospital_spells: SpellReport,
    /// The definition files and risk model cards it was scored with
    /// ([`RunModels::fingerprint`]); empty from a worker of a strata version before it (which
    /// the reduce step refuses, saying so).
    #[serde(default)]
    pub models: Vec<(String, String)>,
    /// What it holds, for the reduce step's messages about it: "PCN U1", "PCNs U1, U2, U3",
    /// "PCNs U1, U2, U3 and 9 more" (empty from a worker of a strata version before it).
    #[serde(default)]
    pub label: String,
    /// Its records were read by a records stage, which hands up what they say: the reduce step
    /// takes this part's warnings, spells and prescriptions from there, not from it (they
    /// describe a cohort of patients without records).
    #[serde(default)]
    pub records_elsewhere: bool,
}

impl Partition {
    /// What this partition hands up to the reduce step.
    pub fn handed(&self) -> Handed {
        Handed {
            figures: self.figures(),
            warnings: warnings(&self.cohort),
            programmes: self.selected.iter().map(ProgrammeLists::listed).collect(),
            prescriptions: crate::input::prescriptions_source(&self.cohort).to_string(),
            hospital_spells: self.cohort.spells.report.clone(),
            models: self.models.clone(),
            label: pcns_label(&self.cohort.patients.pcns),
            records_elsewhere: self.records_elsewhere,
        }
    }

    /// The partition's figures: one counting rule for every engine.
    pub fn figures(&self) -> Figures {
        let status = &self.scored.status;
        let count = |s: Status| status.iter().filter(|&&x| x == s).count() as u64;
        let listed = || self.ranked.iter().flat_map(|(_, v)| v.iter());
        Figures {
            patients: self.cohort.patients.len() as u64,
            eligible: count(Status::Eligible),
            listed: listed().count() as u64,
            listed_core20: listed()
                .filter(|&&i| population::is_core20(self.cohort.patients.imd_decile[i as usize]))
                .count() as u64,
            deceased: count(Status::Deceased),
            ignored_after_as_of: self
                .scored
                .features
                .iter()
                .map(|f| f.ignored_after_as_of as u64)
                .sum(),
            rejected_rows: self.cohort.rejects.len() as u64,
        }
    }
}

/// A cohort's warnings, each with what it is true of.
fn warnings(cohort: &Cohort) -> Vec<(Scope, String)> {
    cohort
        .report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| (p.scope, p.to_string()))
        .collect()
}

/// A part's PCNs in words, at most three named: "PCN U1", "PCNs U1, U2 and 9 more".
fn pcns_label(pcns: &[String]) -> String {
    const NAMED: usize = 3;
    let named = pcns[..pcns.len().min(NAMED)].join(", ");
    match pcns.len() {
        0 => String::new(),
        1 => format!("PCN {named}"),
        n if n <= NAMED => format!("PCNs {named}"),
        n => format!("PCNs {named} and {} more", n - NAMED),
    }
}

/// Score a loaded cohort at `as_of`: features, scores, ages and statuses of every patient.
pub fn score_cohort(
    cohort: &Cohort,
    definitions: &Definitions,
    as_of: i32,
    rules: &ListRules,
) -> Scored {
    let lookup = definitions.compile(&cohort.codes);
    let (features, activity) = all_features(cohort, &lookup, &Windows::new(definitions, as_of));
    let mut scored = scored_from(cohort, definitions, as_of, rules, features, activity);
    scored.unused_codes = lookup.unused_by_system;
    scored.care_home_coded = lookup.care_home_coded;
    scored
}

/// Scores, ages and statuses from the features and activity of `cohort`'s patients (read from
/// its records, or carried from a records stage).
fn scored_from(
    cohort: &Cohort,
    definitions: &Definitions,
    as_of: i32,
    rules: &ListRules,
    features: Vec<Features>,
    activity: Vec<Activity>,
) -> Scored {
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
        activity,
        scores,
        ages,
        status,
        unused_codes: Vec::<(CodeSystem, u64)>::new(),
        care_home_coded: false,
    }
}

/// The records stage of a run split in two (the Spark job at national size): one bucket of
/// patients, each with all their records, whatever their PCNs.
pub struct RecordsPart {
    /// The bucket's cohort (checked; its report and rejected rows with it).
    pub cohort: Cohort,
    /// What the records say of each patient, for the PCN stage ([`score_carried`]).
    pub carried: Carried,
    /// The population-health indicators' counts of its patients (by PCN code; they read the
    /// hospital spells).
    pub indicators: IndicatorCounts,
    /// What it was read with ([`RunModels::fingerprint`]).
    pub models: Vec<(String, String)>,
}

impl RecordsPart {
    /// What the records stage hands up to the reduce step: its rejected rows' count, its input
    /// warnings, spells and prescriptions, and the models it read with. Its patients are
    /// counted by the PCN stage.
    pub fn handed(&self) -> Handed {
        Handed {
            figures: Figures {
                rejected_rows: self.cohort.rejects.len() as u64,
                ..Figures::default()
            },
            warnings: warnings(&self.cohort),
            programmes: Vec::new(),
            prescriptions: crate::input::prescriptions_source(&self.cohort).to_string(),
            hospital_spells: self.cohort.spells.report.clone(),
            models: self.models.clone(),
            label: format!("the records of {} patients", self.cohort.patients.len()),
            records_elsewhere: false,
        }
    }
}

/// The palliative care register of `cohort`'s patients when a programme asks for it, else
/// empty.
fn register(cohort: &Cohort, settings: &Settings, defs: &Definitions) -> Vec<bool> {
    if programmes::needs_register(&settings.programmes) {
        palliative::on_register(cohort, defs, settings.as_of)
    } else {
        Vec::new()
    }
}

/// The records stage: what the records of `cohort`'s patients say (features, hospital
/// activity, the palliative care register when a programme asks for it) and the indicators'
/// counts, for [`score_carried`] to rank their PCNs without the records. `cohort` is checked
/// against `models` with [`RunModels::for_cohort`].
pub fn score_records(cohort: Cohort, settings: &Settings, models: &RunModels) -> RecordsPart {
    let as_of = settings.as_of;
    let defs = &models.definitions;
    let lookup = defs.compile(&cohort.codes);
    let ((features, activity), (register, indicators)) = rayon::join(
        || all_features(&cohort, &lookup, &Windows::new(defs, as_of)),
        || {
            rayon::join(
                || register(&cohort, settings, defs),
                || indicators::count(&cohort, as_of),
            )
        },
    );
    RecordsPart {
        cohort,
        carried: Carried {
            features,
            activity,
            register,
        },
        indicators,
        models: models.fingerprint(),
    }
}

/// The map step: score one partition (`cohort`, already checked against `models` with
/// [`RunModels::for_cohort`]) under `settings`, compare its lists with `previous`, and count
/// its tables. `stage` is told when each stage starts (`score`, `predict`, `rank`), for the
/// binary's timings. Independent passes run side by side: ranking beside reading the previous
/// run and counting the cohort-wide tables; the comparison beside the profile.
pub fn score_partition(
    cohort: Cohort,
    settings: &Settings,
    models: &RunModels,
    previous: CompareWith<'_>,
    stage: &mut dyn FnMut(&'static str),
) -> Partition {
    map_step(cohort, None, settings, models, previous, stage)
}

/// The PCN stage of a run split in two (the Spark job at national size): the map step of a
/// partition of whole PCNs whose `cohort` holds the patients only, their records' results
/// `carried` from the records stage ([`score_records`]). Gives the partition the map step gives
/// from the records themselves, but for the indicators' counts and what the records say of the
/// input, which the records stage hands up.
pub fn score_carried(
    cohort: Cohort,
    carried: Carried,
    settings: &Settings,
    models: &RunModels,
    previous: CompareWith<'_>,
) -> Partition {
    map_step(
        cohort,
        Some(carried),
        settings,
        models,
        previous,
        &mut |_| {},
    )
}

fn map_step(
    cohort: Cohort,
    carried: Option<Carried>,
    settings: &Settings,
    models: &RunModels,
    previous: CompareWith<'_>,
    stage: &mut dyn FnMut(&'static str),
) -> Partition {
    let (as_of, rules) = (settings.as_of, &settings.rules);
    let defs = &models.definitions;
    stage("score");
    let records_elsewhere = carried.is_some();
    let (scored, carried_register) = match carried {
        None => (score_cohort(&cohort, defs, as_of, rules), None),
        Some(c) => (
            scored_from(&cohort, defs, as_of, rules, c.features, c.activity),
            Some(c.register),
        ),
    };
    stage("predict");
    let risks = risk::apply(
        &models.models,
        &cohort,
        defs,
        &scored,
        as_of,
        rules.risk_bands,
    );
    stage("rank");
    let ((ranked, previous), (indicators, (summary, equity))) = rayon::join(
        || {
            rayon::join(
                || {
                    lists::rank(
                        &cohort,
                        &scored.scores,
                        &scored.status,
                        rules,
                        models.ranking.map(|k| &risks[k]),
                    )
                },
                || match previous {
                    CompareWith::Nothing => None,
                    CompareWith::Folder(dir) => Some((Some(dir), Previous::read(dir))),
                    CompareWith::Run(p) => Some((None, Ok(Some(p)))),
                },
            )
        },
        || {
            rayon::join(
                || {
                    if records_elsewhere {
                        IndicatorCounts::default()
                    } else {
                        indicators::count(&cohort, as_of)
                    }
                },
                || {
                    (
                        tables::summary(&cohort, &scored.scores, &scored.status),
                        tables::equity(&cohort, &scored.scores, &scored.status, &scored.ages),
                    )
                },
            )
        },
    );
    let register = carried_register.unwrap_or_else(|| register(&cohort, settings, defs));
    let selected = programmes::select(
        &settings.programmes,
        &programmes::Inputs {
            cohort: &cohort,
            scored: &scored,
            defs,
            risks: &risks,
            register: &register,
            as_of,
        },
    );
    let listed = lists::listed_mask(cohort.patients.len(), &ranked);
    let mut compare_warning = None;
    let (changes, profile) = rayon::join(
        || match previous {
            None => Changes::none(&cohort, "nothing compared (no previous run given)"),
            Some((dir, read)) => match read {
                Ok(Some(prev)) => Changes::compare(&cohort, &scored, rules, &listed, &prev),
                Ok(None) => Changes::none(
                    &cohort,
                    format!(
                        "no previous run in {} to compare with",
                        dir.map_or_else(String::new, |d| d.display().to_string())
                    ),
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
        },
    );
    Partition {
        cohort,
        scored,
        risks,
        ranked,
        listed,
        register,
        selected,
        changes,
        compare_warning,
        counts: RunCounts {
            summary,
            equity,
            indicators,
            profile,
        },
        models: models.fingerprint(),
        records_elsewhere,
    }
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

#[cfg(test)]
mod tests {
    use super::pcns_label;

    /// A part is named by its PCNs, at most three of them.
    #[test]
    fn a_part_is_named_by_its_pcns() {
        let pcns = |n: usize| (1..=n).map(|k| format!("U{k}")).collect::<Vec<_>>();
        let cases = [
            (0, ""),
            (1, "PCN U1"),
            (3, "PCNs U1, U2, U3"),
            (12, "PCNs U1, U2, U3 and 9 more"),
        ];
        for (n, said) in cases {
            assert_eq!(pcns_label(&pcns(n)), said);
        }
    }
}
