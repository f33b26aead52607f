//! The settings of a scoring run, resolved once for every front end: the binary lays its flags
//! over the settings file and hands the result here, the Python package hands its keyword
//! arguments as the same [`ScoreConfig`], and the Spark job forwards its arguments to the
//! package; defaults, checks and error messages live here alone.
//!
//! Pipeline position: before `run`, in its layer: `config` (what a file or the command line
//! gives) -> **settings** (what the run does) -> `run`.

use std::path::{Path, PathBuf};

use crate::config::{InputConfig, ScoreConfig};
use crate::definitions::Definitions;
use crate::disclosure::Suppression;
use crate::input::LoadOptions;
use crate::lists::{BandMode, ListRules, RankBy};
use crate::programmes::Programme;
use crate::publish::Destination;
use crate::risk::RiskBand;
use crate::scores::EfiCategory;
use crate::{date, history};

/// A setting that cannot be used; the message names the setting (its key and its flag) and what
/// it may be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn invalid(message: impl Into<String>) -> SettingsError {
    SettingsError(message.into())
}

/// What a scoring run does, wherever its cohort comes from and wherever its files go.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// As-of (index) date, days (default: today, UTC).
    #[serde(serialize_with = "date::serialize_days")]
    pub as_of: i32,
    /// Models folder.
    pub models: PathBuf,
    /// Input checks.
    pub load: LoadOptions,
    /// Who is listed.
    pub rules: ListRules,
    /// Small-number rules of the aggregate tables.
    pub suppression: Suppression,
    /// Risk model cards to apply (files, or folders of cards); empty for none.
    pub risk_models: Vec<PathBuf>,
    /// Whether `risk_models` are the default cards (none named): cards trained on synthetic
    /// data among them are then not applied to a cohort that is not synthetic.
    pub default_risk_models: bool,
    /// Named programme lists to write besides the frailty lists (`[[programme]]`).
    pub programmes: Vec<Programme>,
}

fn date_of(key: &str, s: &str) -> Result<i32, SettingsError> {
    date::parse_days(s).ok_or_else(|| invalid(format!("{key}: '{s}' is not a date (YYYY-MM-DD)")))
}

impl Settings {
    /// Resolve `c` (every setting optional) into what the run does: defaults filled in, every
    /// value checked, one rule for every front end.
    pub fn resolve(c: &ScoreConfig) -> Result<Settings, SettingsError> {
        let as_of = match &c.as_of {
            Some(d) => date_of("as_of (--as-of)", d)?,
            None => date::today(),
        };
        let models = c.models.clone().unwrap_or_else(Definitions::default_dir);
        Ok(Settings {
            as_of,
            load: load_options(&c.input)?,
            rules: rules(c)?,
            suppression: Suppression::resolve(
                c.disclosure.rule.as_deref(),
                c.publication.unwrap_or(false),
                c.disclosure.min_interval.unwrap_or(0),
            )
            .map_err(|e| invalid(format!("disclosure (--disclosure-rule): {e}")))?,
            risk_models: risk_paths(c, &models),
            default_risk_models: !c.no_risk_models.unwrap_or(false) && named_cards(c).is_none(),
            programmes: Programme::all_from_config(c.programme.as_deref().unwrap_or_default())
                .map_err(|e| invalid(e.to_string()))?,
            models,
        })
    }
}

/// The input checks (`[input]`, and the flags of every subcommand that reads a cohort).
pub fn load_options(i: &InputConfig) -> Result<LoadOptions, SettingsError> {
    let max_rejected = i.max_rejected.unwrap_or(0.01);
    if !(0.0..=1.0).contains(&max_rejected) {
        return Err(invalid(format!(
            "max_rejected (--max-rejected): {max_rejected} is not a fraction between 0 and 1"
        )));
    }
    Ok(LoadOptions {
        today: match &i.today {
            Some(t) => date_of("today (--today)", t)?,
            None => date::today(),
        },
        allow_identifiers: i.allow_identifiers.unwrap_or(false),
        max_reject_fraction: max_rejected,
        skip_memory_check: i.skip_memory_check.unwrap_or(false),
        memory_limit: i.memory_limit.map(|mb| mb << 20),
        dictionary_path: true,
        leave_out: None,
    })
}

/// The cards named (an empty list names none: the default cards).
fn named_cards(c: &ScoreConfig) -> Option<&[PathBuf]> {
    c.risk_models.as_deref().filter(|v| !v.is_empty())
}

/// The cards to apply: none with `no_risk_models`, those named, else the models folder's
/// `risk/` (the default cards) when it exists.
fn risk_paths(c: &ScoreConfig, models: &Path) -> Vec<PathBuf> {
    if c.no_risk_models.unwrap_or(false) {
        Vec::new()
    } else if let Some(named) = named_cards(c) {
        named.to_vec()
    } else if models.join("risk").is_dir() {
        vec![models.join("risk")]
    } else {
        Vec::new()
    }
}

/// Who is listed, and in what order.
fn rules(c: &ScoreConfig) -> Result<ListRules, SettingsError> {
    let mut rules = ListRules::default();
    if let Some(age) = c.min_age {
        rules.min_age = age;
    }
    if let Some(m) = &c.min_category {
        rules.min_category = EfiCategory::parse(m).ok_or_else(|| {
            invalid(format!(
                "min_category (--min-category): '{m}' is not fit, mild, moderate or severe"
            ))
        })?;
    }
    let rank_by = c.rank_by.as_deref().unwrap_or("frailty");
    rules.rank_by = RankBy::parse(rank_by).ok_or_else(|| {
        invalid(format!(
            "rank_by (--rank-by): '{rank_by}' is not frailty, emergency_admission, falls_admission or death"
        ))
    })?;
    let needs_model = |key: &str| {
        invalid(format!(
            "{key} needs rank_by (--rank-by) a model: emergency_admission, falls_admission or death"
        ))
    };
    rules.min_risk_band = match (&c.list_risk_band, rules.rank_by) {
        (Some(_), RankBy::Frailty) => return Err(needs_model("list_risk_band (--list-risk-band)")),
        (Some(b), _) => Some(RiskBand::parse(b).ok_or_else(|| {
            invalid(format!(
                "list_risk_band (--list-risk-band): '{b}' is not low, moderate, high or very_high"
            ))
        })?),
        (None, RankBy::Risk(_)) if c.min_risk.is_none() => Some(RiskBand::High),
        (None, _) => None,
    };
    if let Some(t) = c.min_risk {
        if rules.rank_by == RankBy::Frailty {
            return Err(needs_model("min_risk (--min-risk)"));
        }
        if !(0.0..=1.0).contains(&t) {
            return Err(invalid(format!(
                "min_risk (--min-risk): {t} is not a probability between 0 and 1"
            )));
        }
        rules.min_risk = Some(t);
    }
    if c.top.is_some() && c.top_percent.is_some() {
        return Err(invalid(
            "top (--top) and top_percent (--top-percent) are one setting: give one, not both",
        ));
    }
    if let Some(x) = c.top_percent {
        if !(x > 0.0 && x <= 100.0) {
            return Err(invalid(format!(
                "top_percent (--top-percent): {x} is not above 0 and at most 100"
            )));
        }
    }
    rules.top = c.top;
    rules.top_percent = c.top_percent;
    if let Some(b) = &c.risk_bands {
        rules.risk_bands = BandMode::parse(b).ok_or_else(|| {
            invalid(format!(
                "risk_bands (--risk-bands): '{b}' is not card or pcn"
            ))
        })?;
    }
    Ok(rules)
}

/// Where a run's files go: `out` (a folder replaced as a whole) or `root` (one folder per as-of
/// date and `latest`).
pub fn destination(c: &ScoreConfig) -> Result<Destination, SettingsError> {
    match (&c.out, &c.root) {
        (Some(_), Some(_)) => Err(invalid(
            "out (--out) and root (--root) are one setting: give one, not both",
        )),
        (Some(out), None) => Ok(Destination::Folder(out.clone())),
        (None, Some(root)) => Ok(Destination::Root(root.clone())),
        (None, None) => Err(invalid("give root (--root ROOT) or out (--out DIR)")),
    }
}

/// The previous run to compare with: `previous`, else the folder being replaced (`out`), or in
/// an output root the newest run before this as-of date, else the run of this date being
/// replaced (a first run finds nothing there and says so); none with `no_compare`.
pub fn previous_run(c: &ScoreConfig, out: &Destination, as_of: i32) -> Option<PathBuf> {
    if c.no_compare.unwrap_or(false) {
        return None;
    }
    Some(c.previous.clone().unwrap_or_else(|| match out {
        Destination::Folder(dir) => dir.clone(),
        Destination::Root(root) => {
            let day = date::format_days(as_of);
            history::previous_run(root, &day).unwrap_or_else(|| {
                let same = root.join(&day);
                if same.join("manifest.json").is_file() {
                    same
                } else {
                    root.clone()
                }
            })
        }
    }))
}

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
        let out = destination(c)?;
        let settings = Settings::resolve(c)?;
        Ok(ScoreOptions {
            cohort,
            previous: previous_run(c, &out, settings.as_of),
            out,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
as_of = "2025-04-01"
min_age = 70
min_category = "moderate"
top = 10
rank_by = "death"
list_risk_band = "moderate"
risk_bands = "pcn"
[input]
today = "2026-01-01"
max_rejected = 0.02
[disclosure]
rule = "nhse-2018"
min_interval = 2
"#;

    /// What the Python package hands over: the same keys as a mapping (JSON).
    const JSON: &str = r#"{"as_of": "2025-04-01", "min_age": 70, "min_category": "moderate",
        "top": 10, "rank_by": "death", "list_risk_band": "moderate", "risk_bands": "pcn",
        "input": {"today": "2026-01-01", "max_rejected": 0.02},
        "disclosure": {"rule": "nhse-2018", "min_interval": 2}}"#;

    #[test]
    fn a_settings_file_and_a_mapping_resolve_to_the_same_run() {
        let file: ScoreConfig = toml::from_str(TOML).unwrap();
        let mapping: ScoreConfig = serde_json::from_str(JSON).unwrap();
        assert_eq!(file, mapping);
        let (a, b) = (
            Settings::resolve(&file).unwrap(),
            Settings::resolve(&mapping).unwrap(),
        );
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap()
        );
        assert_eq!(a.as_of, date::parse_days("2025-04-01").unwrap());
        assert_eq!(a.rules.min_age, 70);
        assert_eq!(a.rules.min_category, EfiCategory::Moderate);
        assert_eq!(a.rules.top, Some(10));
        assert_eq!(a.rules.min_risk_band, Some(RiskBand::Moderate));
        assert_eq!(a.rules.risk_bands, BandMode::Pcn);
        assert_eq!(a.load.max_reject_fraction, 0.02);
        assert_eq!(a.suppression.min_interval, 2);
        assert_eq!(a.suppression.round_to, 5);
        // Nothing given: the defaults, in one place.
        let d = Settings::resolve(&ScoreConfig::default()).unwrap();
        assert_eq!(d.as_of, date::today());
        assert_eq!(
            serde_json::to_value(d.rules).unwrap(),
            serde_json::to_value(ListRules::default()).unwrap()
        );
        assert_eq!(d.suppression, Suppression::default());
        assert!(d.default_risk_models);
    }

    #[test]
    fn flags_laid_over_a_file_win_and_either_key_of_a_pair_replaces_both() {
        let file: ScoreConfig = toml::from_str(
            "top = 10\nout = \"o\"\nno_compare = true\nno_risk_models = true\nmin_age = 70\n",
        )
        .unwrap();
        let flags = ScoreConfig {
            top_percent: Some(5.0),
            root: Some("r".into()),
            previous: Some("p".into()),
            risk_models: Some(vec!["card.json".into()]),
            ..Default::default()
        };
        let c = flags.over(&file);
        assert_eq!((c.top, c.top_percent), (None, Some(5.0)));
        assert_eq!((c.out, c.root), (None, Some(PathBuf::from("r"))));
        assert_eq!((c.previous, c.no_compare), (Some(PathBuf::from("p")), None));
        assert_eq!(c.no_risk_models, None);
        assert_eq!(
            c.min_age,
            Some(70),
            "what no flag gives comes from the file"
        );
        // Nothing given on the command line: the file as it is.
        assert_eq!(ScoreConfig::default().over(&file), file);
    }

    #[test]
    fn a_setting_that_cannot_be_used_is_named_with_its_flag() {
        for (toml, words) in [
            (
                "min_category = \"frail\"",
                "min_category (--min-category): 'frail'",
            ),
            ("rank_by = \"age\"", "rank_by (--rank-by): 'age'"),
            (
                "min_risk = 0.2",
                "min_risk (--min-risk) needs rank_by (--rank-by) a model",
            ),
            ("top = 5\ntop_percent = 5.0", "give one, not both"),
            ("top_percent = 0.0", "top_percent (--top-percent): 0"),
            ("risk_bands = \"ics\"", "risk_bands (--risk-bands): 'ics'"),
            (
                "as_of = \"2025-13-01\"",
                "as_of (--as-of): '2025-13-01' is not a date",
            ),
            (
                "[input]\nmax_rejected = 2.0",
                "max_rejected (--max-rejected): 2",
            ),
            ("[disclosure]\nrule = \"hes\"", "disclosure rule 'hes'"),
        ] {
            let c: ScoreConfig = toml::from_str(toml).unwrap();
            let e = Settings::resolve(&c).unwrap_err().to_string();
            assert!(e.contains(words), "{toml}: {e}");
        }
        let c: ScoreConfig = toml::from_str("out = \"o\"\nroot = \"r\"").unwrap();
        assert!(destination(&c)
            .unwrap_err()
            .to_string()
            .contains("not both"));
    }
}
