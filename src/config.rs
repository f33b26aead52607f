//! `strata.toml`: the settings of a scoring run from a file, for schedulers. Every key has a
//! command-line flag of the same name (`min_age` is `--min-age`) that overrides it; an unknown
//! key is an error that names it. Relative paths in the file are relative to the file's folder.
//!
//! Pipeline position: before the run. The binary's `score` subcommand reads the file with
//! [`ScoreConfig::load`], lays the command line over it ([`ScoreConfig::over`]) and hands the
//! result to `settings`, which resolves it for every front end; the effective result is
//! recorded in the manifest (`config`). `strata.toml` in the repository root
//! is a commented example.

use std::path::{Path, PathBuf};

/// Errors of reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Invalid {
        /// Path.
        path: PathBuf,
        /// What is wrong and where (toml's message: line, column, the key).
        message: String,
    },
}

/// The settings of `strata score`, as a file gives them. Every one is optional: what neither the
/// file nor the command line gives takes the flag's default.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Cohort folder (`--cohort`).
    pub cohort: Option<PathBuf>,
    /// As-of date, `YYYY-MM-DD` (`--as-of`; default today).
    pub as_of: Option<String>,
    /// Output root (`--root`).
    pub root: Option<PathBuf>,
    /// Output folder (`--out`), instead of a root.
    pub out: Option<PathBuf>,
    /// Models folder (`--models`).
    pub models: Option<PathBuf>,
    /// Worker threads (`--threads`).
    pub threads: Option<usize>,
    /// Youngest age listed and counted (`--min-age`).
    pub min_age: Option<i32>,
    /// Mildest eFI category listed (`--min-category`).
    pub min_category: Option<String>,
    /// Round summary counts to 5 for publication (`--publication`).
    pub publication: Option<bool>,
    /// The previous run to say what changed since (`--previous`).
    pub previous: Option<PathBuf>,
    /// Compare with no previous run (`--no-compare`).
    pub no_compare: Option<bool>,
    /// Risk model cards or folders of cards to apply (`--risk-models`, repeated).
    pub risk_models: Option<Vec<PathBuf>>,
    /// Apply no risk model (`--no-risk-models`).
    pub no_risk_models: Option<bool>,
    /// What orders the lists: frailty or a model's outcome (`--rank-by`).
    pub rank_by: Option<String>,
    /// When ranking by a model, the band of it that is also listed (`--list-risk-band`).
    pub list_risk_band: Option<String>,
    /// When ranking by a model, also list everyone at or above this probability (`--min-risk`).
    pub min_risk: Option<f64>,
    /// Keep only the top N of each PCN's list (`--top`).
    pub top: Option<u32>,
    /// Keep only the top X% of each PCN's eligible population (`--top-percent`).
    pub top_percent: Option<f64>,
    /// How risk bands are set: `card` or `pcn` (`--risk-bands`).
    pub risk_bands: Option<String>,
    /// Input checks.
    #[serde(default)]
    pub input: InputConfig,
    /// Disclosure control of the aggregate tables (`[disclosure]`).
    #[serde(default)]
    pub disclosure: DisclosureConfig,
    /// Named programme lists (`[[programme]]` tables; `--programmes FILE` replaces them).
    pub programme: Option<Vec<crate::programmes::ProgrammeConfig>>,
}

/// The `[disclosure]` table of `strata.toml`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureConfig {
    /// The small-number rule: `complementary` (the default) or `nhse-2018`
    /// (`--disclosure-rule`).
    pub rule: Option<String>,
    /// The narrowest interval an outsider may prove for a hidden count (`--min-interval`;
    /// default 0: exact recovery refused).
    pub min_interval: Option<u64>,
}

/// A programmes file (`--programmes FILE`): `[[programme]]` tables only, as in `strata.toml`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammesFile {
    /// The programmes.
    #[serde(default)]
    pub programme: Vec<crate::programmes::ProgrammeConfig>,
}

impl ProgrammesFile {
    /// Read and check the TOML of `path` (unknown keys are errors that name them).
    pub fn load(path: &Path) -> Result<ProgrammesFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }
}

/// The input-checking settings (`[input]`), shared with `strata validate`'s flags.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `--allow-identifiers`.
    pub allow_identifiers: Option<bool>,
    /// `--max-rejected`.
    pub max_rejected: Option<f64>,
    /// `--today`, `YYYY-MM-DD`.
    pub today: Option<String>,
    /// `--skip-memory-check`.
    pub skip_memory_check: Option<bool>,
    /// `--memory-limit`, MB.
    pub memory_limit: Option<u64>,
}

impl ScoreConfig {
    /// Read and check `path`; relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<ScoreConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = ScoreConfig::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let cards = c.risk_models.iter_mut().flatten();
        for p in [
            &mut c.cohort,
            &mut c.root,
            &mut c.out,
            &mut c.models,
            &mut c.previous,
        ]
        .into_iter()
        .flatten()
        .chain(cards)
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }

    /// Parse TOML text (paths as written); the error message names the line and the key.
    pub fn parse(text: &str) -> Result<ScoreConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }
}

impl InputConfig {
    /// These settings laid over `base`: a setting given here wins.
    pub fn over(&self, base: &InputConfig) -> InputConfig {
        InputConfig {
            allow_identifiers: self.allow_identifiers.or(base.allow_identifiers),
            max_rejected: self.max_rejected.or(base.max_rejected),
            today: self.today.clone().or_else(|| base.today.clone()),
            skip_memory_check: self.skip_memory_check.or(base.skip_memory_check),
            memory_limit: self.memory_limit.or(base.memory_limit),
        }
    }
}

impl ScoreConfig {
    /// These settings laid over `base` (a settings file): a setting given here wins, then
    /// `base`'s. Some settings are one choice given by either of two keys, and either key
    /// replaces both: `top` / `top_percent`, `out` / `root`, `previous` / `no_compare`, and
    /// `risk_models` / `no_risk_models`.
    pub fn over(&self, base: &ScoreConfig) -> ScoreConfig {
        fn pair<A: Clone, B: Clone>(
            mine: (&Option<A>, &Option<B>),
            theirs: (&Option<A>, &Option<B>),
        ) -> (Option<A>, Option<B>) {
            if mine.0.is_some() || mine.1.is_some() {
                (mine.0.clone(), mine.1.clone())
            } else {
                (theirs.0.clone(), theirs.1.clone())
            }
        }
        let (top, top_percent) = pair(
            (&self.top, &self.top_percent),
            (&base.top, &base.top_percent),
        );
        let (out, root) = pair((&self.out, &self.root), (&base.out, &base.root));
        let (previous, no_compare) = pair(
            (&self.previous, &self.no_compare.filter(|&n| n)),
            (&base.previous, &base.no_compare),
        );
        let (risk_models, no_risk_models) = pair(
            (&self.risk_models, &self.no_risk_models.filter(|&n| n)),
            (&base.risk_models, &base.no_risk_models),
        );
        ScoreConfig {
            cohort: self.cohort.clone().or_else(|| base.cohort.clone()),
            as_of: self.as_of.clone().or_else(|| base.as_of.clone()),
            root,
            out,
            models: self.models.clone().or_else(|| base.models.clone()),
            threads: self.threads.or(base.threads),
            min_age: self.min_age.or(base.min_age),
            min_category: self
                .min_category
                .clone()
                .or_else(|| base.min_category.clone()),
            publication: self.publication.or(base.publication),
            previous,
            no_compare,
            risk_models,
            no_risk_models,
            rank_by: self.rank_by.clone().or_else(|| base.rank_by.clone()),
            list_risk_band: self
                .list_risk_band
                .clone()
                .or_else(|| base.list_risk_band.clone()),
            min_risk: self.min_risk.or(base.min_risk),
            top,
            top_percent,
            risk_bands: self.risk_bands.clone().or_else(|| base.risk_bands.clone()),
            input: self.input.over(&base.input),
            disclosure: DisclosureConfig {
                rule: self
                    .disclosure
                    .rule
                    .clone()
                    .or_else(|| base.disclosure.rule.clone()),
                min_interval: self
                    .disclosure
                    .min_interval
                    .or(base.disclosure.min_interval),
            },
            programme: self.programme.clone().or_else(|| base.programme.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_in_the_repository_parses() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/strata.toml"));
        let c = ScoreConfig::load(path).unwrap();
        assert!(c.cohort.is_some() && c.root.is_some());
        assert_eq!(c.min_category.as_deref(), Some("mild"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = ScoreConfig::parse("min_agee = 70\n").unwrap_err();
        assert!(e.contains("min_agee"), "{e}");
        let e = ScoreConfig::parse("[input]\nmax_rejectd = 0.1\n").unwrap_err();
        assert!(e.contains("max_rejectd"), "{e}");
        let e = ScoreConfig::parse("[output]\nroot = \"x\"\n").unwrap_err();
        assert!(e.contains("output"), "{e}");
        let e = ScoreConfig::parse(
            "[[programme]]\nname = \"x\"\n[[programme.rule]]\nmin_categry = \"mild\"\n",
        )
        .unwrap_err();
        assert!(e.contains("min_categry"), "{e}");
        let e = ScoreConfig::parse("[[programme]]\nname = \"x\"\nrules = []\n").unwrap_err();
        assert!(e.contains("rules"), "{e}");
    }

    #[test]
    fn the_example_ships_the_five_example_programmes() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/strata.toml"));
        let c = ScoreConfig::load(path).unwrap();
        assert_eq!(c.programme, Some(crate::programmes::examples()));
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(ScoreConfig::parse("min_age = \"seventy\"\n").is_err());
        assert!(ScoreConfig::parse("publication = 1\n").is_err());
    }
}
