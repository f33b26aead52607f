//! `strata.toml`: the settings of a scoring run from a file, for schedulers. Every key has a
//! command-line flag of the same name (`min_age` is `--min-age`) that overrides it; an unknown
//! key is an error that names it. Relative paths in the file are relative to the file's folder.
//!
//! Pipeline position: before the run. The binary's `score` subcommand reads the file with
//! [`ScoreConfig::load`], lays the command line over it and hands `run::score` its options; the
//! effective result is recorded in the manifest (`config`). `strata.toml` in the repository root
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
