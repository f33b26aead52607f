//! `strata score`: the nightly job.

use std::path::PathBuf;

use anyhow::Result;
use strata::config::{ProgrammesFile, ScoreConfig};
use strata::disclosure::Suppression;
use strata::lists::{ListRules, RankBy};
use strata::programmes::Programme;
use strata::publish::Destination;
use strata::risk::RiskBand;
use strata::run::{self, ScoreOptions};
use strata::scores::EfiCategory;

/// Score a cohort at an as-of date and write, per PCN, a ranked frailty list (CSV and Parquet)
/// with the reasons each person is on it, plus every patient's scores, a small-number-suppressed
/// summary, any rejected rows and a manifest (with SHA-256 of every input, model and output
/// file). Use it for the nightly batch.
///
/// With `--root ROOT` (for schedulers) the run is written to ROOT/<as-of>/ (a rerun of the same
/// as-of date replaces it in one step) and ROOT/latest is moved to it only once it is complete
/// (and never back to an earlier as-of date);
/// ROOT/runs.jsonl records every run's start and end (`strata runs --root ROOT` lists them). With
/// `--out DIR` the folder DIR is replaced as a whole. Either way a failed or killed run leaves
/// the previous output as it was.
///
/// Settings can come from a file (`--config strata.toml`; the repository's strata.toml is a
/// commented example); a flag given on the command line overrides the file.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("destination").args(["out", "root"])))]
pub struct Args {
    /// Settings file (TOML): keys named as these flags (min_age for --min-age; [input] for the
    /// input checks). Flags given here override it; an unknown key is an error.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Cohort folder (patients.parquet, events.parquet, encounters.parquet).
    #[arg(long)]
    pub cohort: Option<PathBuf>,
    /// As-of (index) date: records after it are ignored (they are outcomes in a back-test).
    /// Default: today (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
    /// Output folder; replaced atomically.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output root: the run goes to ROOT/<as-of>/ and ROOT/latest points at the last good run.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Models folder (code lists, weights). Default: $STRATA_MODELS, ./models, or the built-in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Youngest age listed and counted [default: 65].
    #[arg(long)]
    pub min_age: Option<i32>,
    /// Mildest eFI category listed: fit, mild, moderate or severe [default: mild].
    #[arg(long)]
    pub min_category: Option<String>,
    /// Round summary counts to the nearest 5 as well as suppressing 1-7 (for publication).
    /// `--publication=false` turns off a `publication = true` in the settings file.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub publication: Option<bool>,
    /// Hide cells of the aggregate tables until every hidden count's provable interval is at
    /// least this wide (an IG lead's protection level; default 0: only exact recovery refused).
    #[arg(long, value_name = "N")]
    pub min_interval: Option<u64>,
    /// The small-number rule of the aggregate tables: `complementary` (default: 1-7 hidden with
    /// enough other cells that none can be worked out; exact counts, more [c]) or `nhse-2018`
    /// (NHS England's: 1-7 hidden, every other count rounded to 5, a complement only where a
    /// count could still be worked out; as HES publishes).
    #[arg(long, value_name = "RULE")]
    pub disclosure_rule: Option<String>,
    #[command(flatten)]
    pub risk: RiskArgs,
    /// The previous run to say what changed since (new on a list, up or down a category,
    /// dropped off and why). Default: the output folder being replaced, if it holds a run.
    #[arg(long, value_name = "DIR")]
    pub previous: Option<PathBuf>,
    /// Compare with no previous run.
    #[arg(long, conflicts_with = "previous")]
    pub no_compare: bool,
    /// Named programme lists: a TOML file of `[[programme]]` tables (as in strata.toml),
    /// instead of the settings file's. Each writes lists/<PCN>/<PCN>.<programme>.csv.
    #[arg(long, value_name = "FILE")]
    pub programmes: Option<PathBuf>,
    /// Write no programme lists, whatever the settings file says.
    #[arg(long, conflicts_with = "programmes")]
    pub no_programmes: bool,
    #[command(flatten)]
    pub input: super::InputArgs,
}

/// Risk-model flags shared by `score` and `demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct RiskArgs {
    /// Risk model card to apply (`strata train` writes them), or a folder whose *.json cards
    /// are all applied; repeat for several, at most one per outcome. Default: the models
    /// folder's `risk/` (the default cards, trained on synthetic data).
    #[arg(long, value_name = "CARD|DIR")]
    pub risk_models: Vec<PathBuf>,
    /// Apply no risk model (lists show frailty scores only).
    #[arg(long, conflicts_with = "risk_models")]
    pub no_risk_models: bool,
    /// Order the lists by `frailty` (eFI category, deficits, HFRS) or by a model's probability:
    /// emergency_admission, falls_admission or death [default: frailty].
    #[arg(long)]
    pub rank_by: Option<String>,
    /// When ranking by a model, also list eligible people in this band of it or above, however
    /// frail: low, moderate, high (top 5% of the PCN; the default then) or very_high (top 1%).
    #[arg(long, value_name = "BAND")]
    pub list_risk_band: Option<String>,
    /// When ranking by a model, also list eligible people whose probability is at least this
    /// (0-1), however frail.
    #[arg(long, value_name = "PROBABILITY")]
    pub min_risk: Option<f64>,
    /// Keep only the top N of each PCN's list (e.g. what a weekly meeting can review).
    #[arg(long, value_name = "N")]
    pub top: Option<u32>,
    /// Keep only the top X% of each PCN's eligible population (rounded up).
    #[arg(long, value_name = "X", conflicts_with = "top")]
    pub top_percent: Option<f64>,
    /// How risk bands are set: `card` (default: the card's probability cut-offs, its list
    /// population's top 1/5/20% in the validation year, the same in every PCN, as a care hub
    /// or an ICS-wide review needs) or `pcn` (the top 1/5/20% of each PCN).
    #[arg(long, value_name = "card|pcn")]
    pub risk_bands: Option<String>,
}

impl RiskArgs {
    /// These flags laid over a settings file: a flag given wins (`--risk-models` also over the
    /// file's `no_risk_models`), then the file.
    pub fn over(&self, file: &ScoreConfig) -> RiskArgs {
        let given = !self.risk_models.is_empty();
        RiskArgs {
            risk_models: if given {
                self.risk_models.clone()
            } else {
                file.risk_models.clone().unwrap_or_default()
            },
            no_risk_models: self.no_risk_models || (!given && file.no_risk_models.unwrap_or(false)),
            rank_by: self.rank_by.clone().or_else(|| file.rank_by.clone()),
            list_risk_band: self
                .list_risk_band
                .clone()
                .or_else(|| file.list_risk_band.clone()),
            min_risk: self.min_risk.or(file.min_risk),
            risk_bands: self.risk_bands.clone().or_else(|| file.risk_bands.clone()),
            // --top and --top-percent are one setting: either flag replaces both keys.
            top: if self.top.is_some() || self.top_percent.is_some() {
                self.top
            } else {
                file.top
            },
            top_percent: if self.top.is_some() || self.top_percent.is_some() {
                self.top_percent
            } else {
                file.top_percent
            },
        }
    }

    /// Whether the cards are the default ones (none named, none refused): see
    /// `ScoreOptions::default_risk_models`.
    pub fn default_cards(&self) -> bool {
        !self.no_risk_models && self.risk_models.is_empty()
    }

    /// The cards to apply, given the models folder.
    pub fn paths(&self, models: &std::path::Path) -> Vec<PathBuf> {
        if self.no_risk_models {
            Vec::new()
        } else if !self.risk_models.is_empty() {
            self.risk_models.clone()
        } else if models.join("risk").is_dir() {
            vec![models.join("risk")]
        } else {
            Vec::new()
        }
    }

    /// List rules with the ranking and the risk band applied.
    pub fn rules(&self, mut rules: ListRules) -> Result<ListRules> {
        let rank_by = self.rank_by.as_deref().unwrap_or("frailty");
        rules.rank_by = RankBy::parse(rank_by).ok_or_else(|| {
            super::usage("--rank-by must be frailty, emergency_admission, falls_admission or death")
        })?;
        rules.min_risk_band = match (&self.list_risk_band, rules.rank_by) {
            (Some(_), RankBy::Frailty) => {
                return Err(super::usage(
                    "--list-risk-band needs --rank-by with a model (emergency_admission, falls_admission or death)",
                ))
            }
            (Some(b), _) => Some(RiskBand::parse(b).ok_or_else(|| {
                super::usage("--list-risk-band must be low, moderate, high or very_high")
            })?),
            (None, RankBy::Risk(_)) if self.min_risk.is_none() => Some(RiskBand::High),
            (None, RankBy::Risk(_)) => None,
            (None, RankBy::Frailty) => None,
        };
        if let Some(t) = self.min_risk {
            if rules.rank_by == RankBy::Frailty {
                return Err(super::usage(
                    "--min-risk needs --rank-by with a model (emergency_admission, falls_admission or death)",
                ));
            }
            if !(0.0..=1.0).contains(&t) {
                return Err(super::usage(
                    "--min-risk must be a probability between 0 and 1",
                ));
            }
            rules.min_risk = Some(t);
        }
        if let Some(x) = self.top_percent {
            if !(x > 0.0 && x <= 100.0) {
                return Err(super::usage(
                    "--top-percent must be above 0 and at most 100",
                ));
            }
        }
        rules.top = self.top;
        rules.top_percent = self.top_percent;
        if let Some(b) = &self.risk_bands {
            rules.risk_bands = strata::lists::BandMode::parse(b)
                .ok_or_else(|| super::usage("--risk-bands must be card or pcn"))?;
        }
        Ok(rules)
    }
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<i32> {
    let file = settings_file(&a)?;
    // Its `threads` setting has sized the pool already (`main`, before any thread started).
    let opts = options_over(&a, &file)?;
    let m = run::score(&opts)?;
    print_manifest(&m, &opts.out.folder(&m.as_of));
    Ok(0)
}

/// The settings file named by `--config`, or no settings.
pub fn settings_file(a: &Args) -> Result<ScoreConfig> {
    match &a.config {
        Some(path) => ScoreConfig::load(path).map_err(|e| super::usage(e.to_string())),
        None => Ok(ScoreConfig::default()),
    }
}

/// Library options from the arguments laid over a settings file: a flag given wins, then the
/// file, then the default.
pub fn options_over(a: &Args, file: &ScoreConfig) -> Result<ScoreOptions> {
    let min_category = a
        .min_category
        .as_deref()
        .or(file.min_category.as_deref())
        .unwrap_or("mild");
    let min_category = EfiCategory::parse(min_category)
        .ok_or_else(|| super::usage("--min-category must be fit, mild, moderate or severe"))?;
    let cohort = a
        .cohort
        .clone()
        .or_else(|| file.cohort.clone())
        .ok_or_else(|| super::usage("give --cohort DIR (or cohort in the --config file)"))?;
    let out = match (&a.out, &a.root, &file.out, &file.root) {
        (Some(out), _, _, _) => Destination::Folder(out.clone()),
        (None, Some(root), _, _) => Destination::Root(root.clone()),
        (None, None, Some(_), Some(_)) => {
            return Err(super::usage(
                "the --config file gives both out and root; keep one",
            ))
        }
        (None, None, Some(out), None) => Destination::Folder(out.clone()),
        (None, None, None, Some(root)) => Destination::Root(root.clone()),
        (None, None, None, None) => {
            return Err(super::usage(
                "give --root ROOT or --out DIR (or root in the --config file)",
            ))
        }
    };
    let as_of = match a.as_of.as_ref().or(file.as_of.as_ref()) {
        Some(d) => super::parse_date(d)?,
        None => strata::date::today(),
    };
    if file.top.is_some() && file.top_percent.is_some() {
        return Err(super::usage(
            "the --config file gives both top and top_percent; keep one",
        ));
    }
    let previous = previous_run(
        &out,
        as_of,
        &a.previous.clone().or_else(|| file.previous.clone()),
        a.no_compare || (a.previous.is_none() && file.no_compare.unwrap_or(false)),
    );
    let models = super::models_dir(&a.models.clone().or_else(|| file.models.clone()));
    let risk = a.risk.over(file);
    let programmes = programmes_over(a, file)?;
    Ok(ScoreOptions {
        cohort,
        out,
        as_of,
        risk_models: risk.paths(&models),
        default_risk_models: risk.default_cards(),
        previous,
        models,
        load: a.input.options_over(&file.input)?,
        rules: risk.rules(ListRules {
            min_age: a.min_age.or(file.min_age).unwrap_or(65),
            min_category,
            ..Default::default()
        })?,
        suppression: Suppression::resolve(
            a.disclosure_rule
                .as_deref()
                .or(file.disclosure.rule.as_deref()),
            a.publication.or(file.publication).unwrap_or(false),
            a.min_interval.or(file.disclosure.min_interval).unwrap_or(0),
        )?,
        programmes,
    })
}

/// The programmes of a run: `--programmes FILE`'s, else the settings file's (none with
/// `--no-programmes`), checked.
pub fn programmes_over(a: &Args, file: &ScoreConfig) -> Result<Vec<Programme>> {
    let configs = if a.no_programmes {
        Vec::new()
    } else if let Some(path) = &a.programmes {
        ProgrammesFile::load(path)
            .map_err(|e| super::usage(e.to_string()))?
            .programme
    } else {
        file.programme.clone().unwrap_or_default()
    };
    Programme::all_from_config(&configs).map_err(|e| super::usage(e.to_string()))
}

/// The previous run to compare with: the flag, else the folder being replaced (`--out`), or in an
/// output root the newest run before this as-of date, else the run of this date being replaced
/// (a first run finds nothing there and says so).
pub fn previous_run(
    out: &Destination,
    as_of: i32,
    flag: &Option<PathBuf>,
    off: bool,
) -> Option<PathBuf> {
    (!off).then(|| {
        flag.clone().unwrap_or_else(|| match out {
            Destination::Folder(dir) => dir.clone(),
            Destination::Root(root) => {
                let day = strata::date::format_days(as_of);
                strata::history::previous_run(root, &day).unwrap_or_else(|| {
                    let same = root.join(&day);
                    if same.join("manifest.json").is_file() {
                        same
                    } else {
                        root.clone()
                    }
                })
            }
        })
    })
}

/// Print what a run did.
pub fn print_manifest(m: &run::Manifest, out: &std::path::Path) {
    if super::logging::quiet() {
        return;
    }
    for w in &m.warnings {
        super::logging::warn(w);
    }
    let total: f64 = m.seconds.iter().map(|(_, s)| s).sum();
    println!(
        "scored {} patients at {}: {} eligible (aged {}+, alive), {} listed ({} in the most deprived fifth, Core20) across {} PCN lists; {} rows rejected, {} records after the as-of date ignored",
        m.patients,
        m.as_of,
        m.eligible,
        m.rules.min_age,
        m.listed,
        m.listed_core20,
        m.outputs
            .iter()
            .filter(|w| {
                // lists/<PCN>/<PCN>.csv: not a programme's list or a dropped.csv.
                w.path
                    .strip_prefix("lists/")
                    .and_then(|f| f.strip_suffix(".csv"))
                    .is_some_and(|stem| !stem.contains('.'))
            })
            .count(),
        m.rejected_rows,
        m.ignored_after_as_of
    );
    let stages: Vec<String> = m
        .seconds
        .iter()
        .map(|(n, s)| format!("{n} {s:.2}s"))
        .collect();
    println!("time {total:.2}s ({})", stages.join(", "));
    if !m.risk_models.is_empty() {
        let names: Vec<String> = m
            .risk_models
            .iter()
            .map(|r| format!("{} ({})", r.outcome, r.kind))
            .collect();
        println!("risk models applied: {}", names.join(", "));
    }
    println!(
        "since the previous run: {} new on a list, {} dropped off (compared with: {})",
        m.new_on_lists, m.dropped_off_lists, m.compared_with
    );
    for p in &m.programmes {
        println!(
            "programme {}: {} listed ({}; lists/<PCN>/<PCN>.{}.csv)",
            p.name, p.listed, p.description, p.name
        );
    }
    println!("lists: {}", out.join("lists").display());
}
