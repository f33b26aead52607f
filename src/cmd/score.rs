//! `strata score`: the nightly job.

use std::path::PathBuf;

use anyhow::Result;
use strata::config::{DisclosureConfig, ProgrammesFile, ScoreConfig};
use strata::run::{self, ScoreOptions};

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
    /// These flags as settings (the rest left unset).
    pub fn config(&self) -> ScoreConfig {
        ScoreConfig {
            risk_models: (!self.risk_models.is_empty()).then(|| self.risk_models.clone()),
            no_risk_models: self.no_risk_models.then_some(true),
            rank_by: self.rank_by.clone(),
            list_risk_band: self.list_risk_band.clone(),
            min_risk: self.min_risk,
            top: self.top,
            top_percent: self.top_percent,
            risk_bands: self.risk_bands.clone(),
            ..Default::default()
        }
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

/// The flags given, as settings (what the command line says, nothing filled in).
pub fn flags(a: &Args) -> Result<ScoreConfig> {
    let programme = if a.no_programmes {
        Some(Vec::new())
    } else if let Some(path) = &a.programmes {
        Some(
            ProgrammesFile::load(path)
                .map_err(|e| super::usage(e.to_string()))?
                .programme,
        )
    } else {
        None
    };
    Ok(ScoreConfig {
        cohort: a.cohort.clone(),
        as_of: a.as_of.clone(),
        root: a.root.clone(),
        out: a.out.clone(),
        models: a.models.clone(),
        min_age: a.min_age,
        min_category: a.min_category.clone(),
        publication: a.publication,
        previous: a.previous.clone(),
        no_compare: a.no_compare.then_some(true),
        input: a.input.config(),
        disclosure: DisclosureConfig {
            rule: a.disclosure_rule.clone(),
            min_interval: a.min_interval,
        },
        programme,
        ..a.risk.config()
    })
}

/// Library options from the arguments laid over a settings file: a flag given wins, then the
/// file, then the default (resolved by the library, as for every front end).
pub fn options_over(a: &Args, file: &ScoreConfig) -> Result<ScoreOptions> {
    let c = flags(a)?.over(file);
    let mut opts = ScoreOptions::resolve(&c).map_err(|e| super::usage(e.to_string()))?;
    opts.settings.load.dictionary_path = !a.input.no_dictionary_path;
    Ok(opts)
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
        m.figures.patients,
        m.as_of,
        m.figures.eligible,
        m.rules.min_age,
        m.figures.listed,
        m.figures.listed_core20,
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
        m.figures.rejected_rows,
        m.figures.ignored_after_as_of
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
