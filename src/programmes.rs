//! Named programme lists: each frailty level, falls history or risk leads to a different service
//! (digital self-management, a staying-well review, anticipatory care planning, falls
//! prevention, a palliative register review), so besides its frailty list each PCN gets one list
//! per configured programme. A programme is a set of rules; a person is on its list when any rule
//! holds for them, and the row says in plain words which rule(s) put them there. A person may be
//! on several programmes' lists.
//!
//! Pipeline position: `results` + `risk` + `palliative` -> **programmes** -> `output` (one file
//! per PCN and programme, `lists/<PCN>/<PCN>.<programme>.csv` and `.parquet`). Programmes come from the
//! settings file (`[[programme]]` tables, see `strata.toml`); [`Programme::from_config`] checks
//! them, [`check`] checks them against the loaded models before the cohort is read, [`select`]
//! makes the lists. Who may be listed is the run's eligible population (alive, aged `min_age` or
//! over); the order is deterministic (ties by pseudonym) whatever the thread count.

use crate::cohort::Cohort;
use crate::definitions::Definitions;
use crate::lists;
use crate::population::Status;
use crate::predictors::Outcome;
use crate::results::Scored;
use crate::risk::{ModelRisk, RiskBand, RiskModel};
use crate::scores::EfiCategory;

/// Most rules a programme may have (each is a bit of a row's rule mask).
pub const MAX_RULES: usize = 16;

/// A programme as the settings file gives it (`[[programme]]`). Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeConfig {
    /// Short name: the file name part (`lists/<PCN>/<PCN>.<name>.csv`); lower-case letters, digits,
    /// `_` and `-`.
    pub name: String,
    /// The service in words (recorded in the manifest).
    pub description: Option<String>,
    /// What orders the list: `frailty` (default) or a model's outcome.
    pub rank_by: Option<String>,
    /// Keep at most this many people per PCN.
    pub top: Option<u32>,
    /// The rules (`[[programme.rule]]`): a person is listed when any holds.
    #[serde(default)]
    pub rule: Vec<RuleConfig>,
}

/// One rule as the settings file gives it (`[[programme.rule]]`): every condition given must
/// hold.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Mildest eFI category (`fit`, `mild`, `moderate`, `severe`).
    pub min_category: Option<String>,
    /// Most severe eFI category.
    pub max_category: Option<String>,
    /// `true`: a fall recorded (the eFI falls deficit's codes) in the last
    /// `falls_history_months`; `false`: none in them.
    pub falls_history: Option<bool>,
    /// How far back `falls_history` looks, in calendar months ending on the as-of date (default
    /// 12: NICE NG249, like CG161 before it, asks about falls in the past 12 months); 0: the
    /// whole record.
    pub falls_history_months: Option<u32>,
    /// `true`: on the palliative care register (QOF rule); `false`: not on it.
    pub palliative_register: Option<bool>,
    /// A risk model's outcome (`emergency_admission`, `falls_admission`, `death`), with
    /// `min_band` and/or `min_probability`.
    pub risk: Option<String>,
    /// That model's band within the PCN, or above (`low`, `moderate`, `high`, `very_high`).
    pub min_band: Option<String>,
    /// That model's probability, at least (0-1).
    pub min_probability: Option<f64>,
}

/// The default look-back of `falls_history`, in months (NICE NG249: falls in the past 12 months).
pub const FALLS_MONTHS: u32 = 12;

/// A condition on a risk model's result.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RiskCondition {
    /// Which model.
    pub outcome: Outcome,
    /// Its band within the PCN, or above.
    pub min_band: Option<RiskBand>,
    /// Its probability, at least.
    pub min_probability: Option<f64>,
}

/// One checked rule: every condition given must hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Rule {
    /// Mildest eFI category.
    pub min_category: Option<EfiCategory>,
    /// Most severe eFI category.
    pub max_category: Option<EfiCategory>,
    /// A fall recorded in the last `falls_months` (`true`) or not (`false`).
    pub falls_history: Option<bool>,
    /// The months `falls_history` looks back (0: the whole record).
    pub falls_months: u32,
    /// On (`true`) or not on (`false`) the palliative care register.
    pub palliative_register: Option<bool>,
    /// A risk model's band or probability.
    pub risk: Option<RiskCondition>,
}

/// A checked programme.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Programme {
    /// Short name (file name part).
    pub name: String,
    /// The service in words.
    pub description: String,
    /// What orders the list.
    pub rank_by: lists::RankBy,
    /// At most this many people per PCN.
    pub top: Option<u32>,
    /// The rules; a person is listed when any holds.
    pub rules: Vec<Rule>,
}

/// A programme that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgrammeError {
    /// The settings do not make a valid programme.
    #[error("programme '{programme}': {message}")]
    Invalid {
        /// Its name as given.
        programme: String,
        /// What is wrong.
        message: String,
    },
    /// A rule needs something the loaded models do not have.
    #[error("programme '{programme}': {message}")]
    NeedsModel {
        /// Its name.
        programme: String,
        /// What is missing.
        message: String,
    },
}

fn category(
    programme: &str,
    key: &str,
    v: &Option<String>,
) -> Result<Option<EfiCategory>, ProgrammeError> {
    v.as_deref()
        .map(|s| {
            EfiCategory::parse(s).ok_or_else(|| ProgrammeError::Invalid {
                programme: programme.to_string(),
                message: format!("{key} must be fit, mild, moderate or severe, not '{s}'"),
            })
        })
        .transpose()
}

impl Rule {
    /// Check one rule of programme `programme`.
    pub fn from_config(programme: &str, r: &RuleConfig) -> Result<Rule, ProgrammeError> {
        let bad = |message: String| ProgrammeError::Invalid {
            programme: programme.to_string(),
            message,
        };
        let min_category = category(programme, "min_category", &r.min_category)?;
        let max_category = category(programme, "max_category", &r.max_category)?;
        if let (Some(a), Some(b)) = (min_category, max_category) {
            if a > b {
                return Err(bad(format!(
                    "min_category {} is more severe than max_category {}",
                    a.name(),
                    b.name()
                )));
            }
        }
        let risk = match &r.risk {
            None => {
                if r.min_band.is_some() || r.min_probability.is_some() {
                    return Err(bad(
                        "min_band and min_probability need risk = \"<outcome>\" in the same rule"
                            .into(),
                    ));
                }
                None
            }
            Some(o) => {
                let outcome = Outcome::parse(o).ok_or_else(|| {
                    bad(format!(
                        "risk must be emergency_admission, falls_admission, death or emergency_admission_or_death, not '{o}'"
                    ))
                })?;
                let min_band = r
                    .min_band
                    .as_deref()
                    .map(|b| {
                        RiskBand::parse(b).ok_or_else(|| {
                            bad(format!(
                                "min_band must be low, moderate, high or very_high, not '{b}'"
                            ))
                        })
                    })
                    .transpose()?;
                if let Some(t) = r.min_probability {
                    if !(0.0..=1.0).contains(&t) {
                        return Err(bad(format!(
                            "min_probability must be between 0 and 1, not {t}"
                        )));
                    }
                }
                if min_band.is_none() && r.min_probability.is_none() {
                    return Err(bad(format!(
                        "risk = \"{o}\" needs min_band or min_probability"
                    )));
                }
                Some(RiskCondition {
                    outcome,
                    min_band,
                    min_probability: r.min_probability,
                })
            }
        };
        let rule = Rule {
            min_category,
            max_category,
            falls_history: r.falls_history,
            falls_months: if r.falls_history.is_some() {
                r.falls_history_months.unwrap_or(FALLS_MONTHS)
            } else {
                0
            },
            palliative_register: r.palliative_register,
            risk,
        };
        if rule == Rule::default() {
            return Err(bad(
                "a rule has no condition (it would list everyone)".into()
            ));
        }
        Ok(rule)
    }
}

impl Programme {
    /// Check a programme from the settings file.
    pub fn from_config(c: &ProgrammeConfig) -> Result<Programme, ProgrammeError> {
        let bad = |message: String| ProgrammeError::Invalid {
            programme: c.name.clone(),
            message,
        };
        let name_ok = !c.name.is_empty()
            && c.name.len() <= 40
            && c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(bad(
                "the name must be 1-40 lower-case letters, digits, '_' or '-' (it is part of the file names)"
                    .into(),
            ));
        }
        if c.name == "dropped" {
            return Err(bad(
                "'dropped' is taken: lists/<PCN>/<PCN>.dropped.csv says who dropped off a list"
                    .into(),
            ));
        }
        if c.rule.is_empty() {
            return Err(bad("give at least one [[programme.rule]]".into()));
        }
        if c.rule.len() > MAX_RULES {
            return Err(bad(format!("at most {MAX_RULES} rules")));
        }
        let rank_by = match c.rank_by.as_deref() {
            None => lists::RankBy::Frailty,
            Some(s) => lists::RankBy::parse(s).ok_or_else(|| {
                bad(format!(
                    "rank_by must be frailty, emergency_admission, falls_admission or death, not '{s}'"
                ))
            })?,
        };
        if c.top == Some(0) {
            return Err(bad("top must be at least 1".into()));
        }
        Ok(Programme {
            name: c.name.clone(),
            description: c.description.clone().unwrap_or_else(|| c.name.clone()),
            rank_by,
            top: c.top,
            rules: c
                .rule
                .iter()
                .map(|r| Rule::from_config(&c.name, r))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Check the programmes of a settings file: each valid, names distinct.
    pub fn all_from_config(cs: &[ProgrammeConfig]) -> Result<Vec<Programme>, ProgrammeError> {
        let mut out: Vec<Programme> = Vec::with_capacity(cs.len());
        for c in cs {
            let p = Programme::from_config(c)?;
            if out.iter().any(|q| q.name == p.name) {
                return Err(ProgrammeError::Invalid {
                    programme: p.name,
                    message: "two programmes have this name".into(),
                });
            }
            out.push(p);
        }
        Ok(out)
    }

    /// The risk models this programme reads (for ranking or a rule).
    pub fn outcomes(&self) -> impl Iterator<Item = Outcome> + '_ {
        let rank = match self.rank_by {
            lists::RankBy::Risk(o) => Some(o),
            lists::RankBy::Frailty => None,
        };
        rank.into_iter()
            .chain(self.rules.iter().filter_map(|r| r.risk.map(|c| c.outcome)))
    }
}

/// Check programmes against what the run loaded: every risk model a programme reads is applied,
/// and the eFI has a falls deficit if a rule asks about falls.
pub fn check(
    programmes: &[Programme],
    defs: &Definitions,
    models: &[RiskModel],
) -> Result<(), ProgrammeError> {
    for p in programmes {
        for o in p.outcomes() {
            if !models.iter().any(|m| m.outcome == o) {
                return Err(ProgrammeError::NeedsModel {
                    programme: p.name.clone(),
                    message: format!(
                        "it reads the {} model, but no {} model is applied (--risk-models)",
                        o.name(),
                        o.name()
                    ),
                });
            }
        }
        if p.rules.iter().any(|r| r.falls_history.is_some()) && falls_deficit(defs).is_none() {
            return Err(ProgrammeError::NeedsModel {
                programme: p.name.clone(),
                message:
                    "falls_history needs an eFI deficit named 'falls' (models/efi/deficits.tsv)"
                        .into(),
            });
        }
    }
    Ok(())
}

/// Whether any programme asks about the palliative care register (it is computed only then).
pub fn needs_register(programmes: &[Programme]) -> bool {
    programmes
        .iter()
        .any(|p| p.rules.iter().any(|r| r.palliative_register.is_some()))
}

fn falls_deficit(defs: &Definitions) -> Option<usize> {
    defs.efi.deficits.iter().position(|d| d.slug == "falls")
}

/// Everything a rule reads about a run.
pub struct Inputs<'a> {
    /// The cohort.
    pub cohort: &'a Cohort,
    /// Per-patient results.
    pub scored: &'a Scored,
    /// Score definitions (the falls deficit, the eFI denominator).
    pub defs: &'a Definitions,
    /// The applied models' results.
    pub risks: &'a [ModelRisk],
    /// Who is on the palliative care register (empty when no programme asks).
    pub register: &'a [bool],
    /// The as-of date: where `falls_history`'s months end.
    pub as_of: i32,
}

impl Inputs<'_> {
    fn risk(&self, o: Outcome) -> Option<&ModelRisk> {
        self.risks.iter().find(|r| r.outcome == o)
    }

    /// Whether `rule` holds for patient `p`.
    fn holds(&self, rule: &Rule, p: usize, falls: Option<usize>) -> bool {
        let s = &self.scored.scores[p];
        if rule.min_category.is_some_and(|c| s.efi_category < c)
            || rule.max_category.is_some_and(|c| s.efi_category > c)
        {
            return false;
        }
        if let Some(want) = rule.falls_history {
            let last = self.scored.features[p].falls_last;
            let from = match rule.falls_months {
                0 => i32::MIN + 1,
                m => crate::date::window_start(self.as_of, m),
            };
            let has = falls.is_some() && last >= from;
            if has != want {
                return false;
            }
        }
        if let Some(want) = rule.palliative_register {
            if self.register.get(p).copied().unwrap_or(false) != want {
                return false;
            }
        }
        if let Some(c) = rule.risk {
            let Some(r) = self.risk(c.outcome) else {
                return false;
            };
            let pcn = &self.cohort.patients.pcn;
            if c.min_band.is_some_and(|b| r.band(pcn, p) < b)
                || c.min_probability
                    .is_some_and(|t| r.probability[p].is_nan() || r.probability[p] < t)
            {
                return false;
            }
        }
        true
    }

    /// The conditions of `rule` as they apply to patient `p`, in plain words.
    fn words(&self, rule: &Rule, p: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        let s = &self.scored.scores[p];
        if rule.min_category.is_some() || rule.max_category.is_some() {
            parts.push(format!(
                "{} frailty (eFI {} of {} deficits)",
                s.efi_category.name(),
                s.efi_deficits,
                self.defs.efi.deficits.len()
            ));
        }
        match rule.falls_history {
            Some(true) if rule.falls_months == 0 => parts.push("a fall recorded".into()),
            Some(true) => parts.push(format!(
                "a fall recorded in the last {} months",
                rule.falls_months
            )),
            Some(false) if rule.falls_months == 0 => parts.push("no fall recorded".into()),
            Some(false) => parts.push(format!(
                "no fall recorded in the last {} months",
                rule.falls_months
            )),
            None => {}
        }
        if let Some(c) = rule.risk {
            if let Some(r) = self.risk(c.outcome) {
                let pcn = &self.cohort.patients.pcn;
                let mut w = format!(
                    "{} risk {:.1}% in 12 months",
                    c.outcome.words(),
                    r.probability[p] * 100.0
                );
                if let Some(t) = c.min_probability {
                    w += &format!(" (at least {}%)", (t * 1000.0).round() / 10.0);
                }
                if c.min_band.is_some() {
                    let band = r.band(pcn, p);
                    w += &format!(
                        ", {} band ({})",
                        band.name().replace('_', " "),
                        r.band_meaning(band).unwrap_or_else(|| format!(
                            "below the {}",
                            r.band_meaning(RiskBand::Moderate).unwrap_or_default()
                        ))
                    );
                }
                parts.push(w);
            }
        }
        match rule.palliative_register {
            Some(true) => parts.push("on the palliative care register".into()),
            Some(false) => parts.push("not on the palliative care register".into()),
            None => {}
        }
        parts.join(" and ")
    }
}

/// One programme's lists: per PCN (index, PCN code order) the listed patients in rank order, each
/// with the mask of the rules that hold for them (bit k: rule k).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgrammeLists {
    /// Per PCN: `(pcn index, [(patient index, rule mask)])`.
    pub lists: Vec<(u32, Vec<(u32, u16)>)>,
}

impl ProgrammeLists {
    /// People on the list across PCNs.
    pub fn listed(&self) -> u64 {
        self.lists.iter().map(|(_, v)| v.len() as u64).sum()
    }
}

/// Each programme's lists, in programme order: the eligible people any of its rules holds for,
/// per PCN, ordered as the programme says (ties by pseudonym) and cut to its `top`.
pub fn select(programmes: &[Programme], inputs: &Inputs) -> Vec<ProgrammeLists> {
    let p = &inputs.cohort.patients;
    let falls = falls_deficit(inputs.defs);
    programmes
        .iter()
        .map(|prog| {
            let mut by_pcn: Vec<Vec<u32>> = vec![Vec::new(); p.pcns.len()];
            let mut masks = vec![0u16; p.len()];
            for i in 0..p.len() {
                if inputs.scored.status[i] != Status::Eligible {
                    continue;
                }
                let mask = prog
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| inputs.holds(r, i, falls))
                    .fold(0u16, |m, (k, _)| m | 1 << k);
                if mask != 0 {
                    masks[i] = mask;
                    by_pcn[p.pcn[i] as usize].push(i as u32);
                }
            }
            let risk = match prog.rank_by {
                lists::RankBy::Risk(o) => inputs.risk(o),
                lists::RankBy::Frailty => None,
            };
            let lists = by_pcn
                .into_iter()
                .enumerate()
                .map(|(pcn, mut v)| {
                    lists::sort(&mut v, &inputs.scored.scores, risk);
                    if let Some(n) = prog.top {
                        v.truncate(n as usize);
                    }
                    (
                        pcn as u32,
                        v.into_iter().map(|i| (i, masks[i as usize])).collect(),
                    )
                })
                .collect();
            ProgrammeLists { lists }
        })
        .collect()
}

/// Why patient `p` is on `programme`'s list: the rules in its mask, in plain words, "; "
/// between rules.
pub fn reason(programme: &Programme, inputs: &Inputs, p: usize, mask: u16) -> String {
    programme
        .rules
        .iter()
        .enumerate()
        .filter(|(k, _)| mask >> k & 1 == 1)
        .map(|(_, r)| inputs.words(r, p))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The five example programmes of `strata.toml`: what the issue asks a PCN's services to be fed
/// with, by frailty level, falls and end of life (used by `strata demo`; the repository's
/// `strata.toml` gives the same five, tested).
pub fn examples() -> Vec<ProgrammeConfig> {
    let rule = |f: fn(&mut RuleConfig)| {
        let mut r = RuleConfig::default();
        f(&mut r);
        r
    };
    let programme =
        |name: &str, description: &str, rank_by: Option<&str>, rule: Vec<RuleConfig>| {
            ProgrammeConfig {
                name: name.into(),
                description: Some(description.into()),
                rank_by: rank_by.map(String::from),
                top: None,
                rule,
            }
        };
    vec![
        programme(
            "digital_self_management",
            "Mild frailty: digital self-management support",
            None,
            vec![rule(|r| {
                r.min_category = Some("mild".into());
                r.max_category = Some("mild".into());
            })],
        ),
        programme(
            "staying_well",
            "Moderate frailty: staying-well / integrated care hub review",
            None,
            vec![rule(|r| {
                r.min_category = Some("moderate".into());
                r.max_category = Some("moderate".into());
            })],
        ),
        programme(
            "anticipatory_care",
            "Severe frailty: anticipatory care planning and a ReSPECT conversation",
            None,
            vec![rule(|r| r.min_category = Some("severe".into()))],
        ),
        programme(
            "falls_prevention",
            "Falls history or high falls risk: falls prevention",
            Some("falls_admission"),
            vec![
                rule(|r| r.falls_history = Some(true)),
                rule(|r| {
                    r.risk = Some("falls_admission".into());
                    r.min_band = Some("high".into());
                }),
            ],
        ),
        programme(
            "palliative_register_review",
            "High one-year mortality risk, not on the palliative care register: register review",
            Some("death"),
            vec![rule(|r| {
                r.risk = Some("death".into());
                r.min_band = Some("high".into());
                r.palliative_register = Some(false);
            })],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: Vec<RuleConfig>) -> ProgrammeConfig {
        ProgrammeConfig {
            name: "p".into(),
            description: None,
            rank_by: None,
            top: None,
            rule: rules,
        }
    }

    #[test]
    fn the_examples_are_valid() {
        let p = Programme::all_from_config(&examples()).unwrap();
        assert_eq!(p.len(), 5);
        assert!(needs_register(&p));
    }

    #[test]
    fn bad_programmes_are_refused_with_the_reason() {
        let err = |c: ProgrammeConfig| Programme::from_config(&c).unwrap_err().to_string();
        assert!(err(config(vec![])).contains("at least one"));
        assert!(err(config(vec![RuleConfig::default()])).contains("no condition"));
        let r = |f: fn(&mut RuleConfig)| {
            let mut r = RuleConfig::default();
            f(&mut r);
            config(vec![r])
        };
        assert!(err(r(|r| r.min_category = Some("frail".into()))).contains("min_category"));
        assert!(err(r(|r| {
            r.min_category = Some("severe".into());
            r.max_category = Some("mild".into());
        }))
        .contains("more severe"));
        assert!(err(r(|r| r.min_band = Some("high".into()))).contains("need risk"));
        assert!(err(r(|r| r.risk = Some("death".into()))).contains("min_band or min_probability"));
        assert!(err(r(|r| {
            r.risk = Some("death".into());
            r.min_probability = Some(1.5);
        }))
        .contains("between 0 and 1"));
        let mut c = r(|r| r.falls_history = Some(true));
        c.name = "dropped".into();
        assert!(err(c.clone()).contains("taken"));
        c.name = "Falls Prevention".into();
        assert!(err(c.clone()).contains("lower-case"));
        c.name = "falls".into();
        let e = Programme::all_from_config(&[c.clone(), c]).unwrap_err();
        assert!(e.to_string().contains("two programmes"), "{e}");
    }
}
