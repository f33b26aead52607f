//! Versioned code lists and weights from `models/`, and their compilation to per-code lookup
//! tables against a cohort's code dictionary.
//!
//! Pipeline position: loaded once per run, compiled after `cohort` has interned the codes, read by
//! `features` through [`Lookup`]. The engine never carries a code list in its source: every list,
//! weight and cut-point lives in a data file whose source is cited in its header.

use std::path::{Path, PathBuf};

use crate::codes::{normalise, CodeDict, CodeSystem};
use crate::datafile::{parse_decimal, DataFileError, Tsv};

/// A problem with the definition files: which file, which line, what.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A file could not be read, or a line of it is not what its header says.
    #[error(transparent)]
    File(#[from] DataFileError),
    /// A part of a run handed up no list of the models files it was scored with: its worker
    /// runs an older strata than the run's reduce step.
    #[error("{part} did not say which models files it was scored with: the engine's workers run another version of strata than the one finishing the run (a Spark job's executors must run the driver's)")]
    PartWithoutModels {
        /// The part, in words ("the part of PCN U1").
        part: String,
    },
    /// A part of a run (a Spark task) was scored with another version of a models file than
    /// the one the run's reduce step loaded and publishes in the manifest.
    #[error("{part} was scored with {what} {theirs}, but the run's models folder holds {ours}: every engine's workers must load the models folder the run is finished with (a Spark job's executors the driver's)")]
    PartModels {
        /// The part, in words ("the part of PCN U1").
        part: String,
        /// The file (its path in the models folder, or which risk model card).
        what: String,
        /// Its SHA-256 as the part loaded it, or "no such file".
        theirs: String,
        /// Its SHA-256 as the reduce step loaded it, or "no such file".
        ours: String,
    },
}

impl DefinitionError {
    /// The first difference between what a part (`part`, in words) was scored with (`theirs`)
    /// and what the reduce step loaded (`ours`), each a list of (file, SHA-256) pairs, as an
    /// error; `None` when the two are the same.
    pub fn part_models(
        part: &str,
        theirs: &[(String, String)],
        ours: &[(String, String)],
    ) -> Option<DefinitionError> {
        if theirs.is_empty() && !ours.is_empty() {
            return Some(DefinitionError::PartWithoutModels { part: part.into() });
        }
        let short = |h: Option<&String>| match h {
            Some(h) => format!("SHA-256 {}", h.get(..16).unwrap_or(h)),
            None => "no such file".to_string(),
        };
        let find = |v: &[(String, String)], what: &str| {
            v.iter().find(|(w, _)| w == what).map(|(_, h)| h.clone())
        };
        ours.iter()
            .chain(theirs)
            .map(|(what, _)| what)
            .find(|what| find(ours, what) != find(theirs, what))
            .map(|what| DefinitionError::PartModels {
                part: part.into(),
                what: what.clone(),
                theirs: short(find(theirs, what).as_ref()),
                ours: short(find(ours, what).as_ref()),
            })
    }
}

/// One model file as read: where, its content hash (for the run manifest) and its size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DefinitionFile {
    /// Path relative to the models folder.
    pub path: String,
    /// FNV-1a 64-bit hash of the bytes, hex: enough to tell which version a run used.
    pub fnv1a64: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// How a deficit is found.
#[derive(Debug, Clone, PartialEq)]
pub enum DeficitRule {
    /// Any code of the deficit's list, on or before the as-of date, whole record.
    Codes,
    /// At least `min_distinct` distinct dm+d codes in the `lookback_months` up to the as-of date.
    Polypharmacy {
        /// Window length in calendar months.
        lookback_months: u32,
        /// Distinct medicines needed.
        min_distinct: u32,
    },
}

/// One eFI deficit.
#[derive(Debug, Clone)]
pub struct Deficit {
    /// Short id used in files (`falls`).
    pub slug: String,
    /// Name shown on lists (`Falls`).
    pub name: String,
    /// How it is found.
    pub rule: DeficitRule,
}

/// The electronic Frailty Index as loaded from `models/efi/`.
#[derive(Debug, Clone)]
pub struct EfiSpec {
    /// All deficits (36 for the published eFI), in list order.
    pub deficits: Vec<Deficit>,
    /// (deficit index, system, canonical code) for coded deficits.
    pub codes: Vec<(u8, CodeSystem, String)>,
    /// Largest deficit count in fit, mild, moderate; above the last is severe.
    pub category_max_count: [u32; 3],
}

/// One HFRS three-character ICD-10 category.
#[derive(Debug, Clone)]
pub struct HfrsCategory {
    /// Three-character ICD-10 code (`F05`).
    pub code: String,
    /// Weight in tenths of a point (exact: 7.1 -> 71).
    pub weight_tenths: u32,
    /// Description from the paper.
    pub description: String,
}

/// The Hospital Frailty Risk Score as loaded from `models/hfrs/`.
#[derive(Debug, Clone)]
pub struct HfrsSpec {
    /// The 109 categories.
    pub categories: Vec<HfrsCategory>,
    /// Look-back in calendar months up to the as-of date.
    pub lookback_months: u32,
    /// Scores at or above this (tenths) are intermediate.
    pub intermediate_from_tenths: u32,
    /// Scores above this (tenths) are high.
    pub high_above_tenths: u32,
}

/// One Charlson category.
#[derive(Debug, Clone)]
pub struct CharlsonCategory {
    /// Short key (`chf`).
    pub key: String,
    /// Name shown on lists.
    pub name: String,
    /// ICD-10 prefixes, canonical (upper case, no dots).
    pub prefixes: Vec<String>,
    /// Weight under the configured weight set.
    pub weight: u32,
}

/// The Charlson index as loaded from `models/charlson/`.
#[derive(Debug, Clone)]
pub struct CharlsonSpec {
    /// The 17 categories.
    pub categories: Vec<CharlsonCategory>,
    /// Which weight column is used (`quan2011`).
    pub weight_set: String,
    /// Look-back in calendar months up to the as-of date.
    pub lookback_months: u32,
    /// (milder, more severe) category indices: when both are present only the second scores.
    pub hierarchy: Vec<(usize, usize)>,
}

/// The palliative care register as loaded from `models/palliative/`: the QOF cluster's codes and
/// the rule's start date.
#[derive(Debug, Clone)]
pub struct PalliativeSpec {
    /// (system, canonical code) of the palliative care codes (PALCARE_COD).
    pub codes: Vec<(CodeSystem, String)>,
    /// (system, canonical code) of the "not clinically indicated" codes (PALCARENI_COD).
    pub not_indicated: Vec<(CodeSystem, String)>,
    /// Palliative care codes dated before this day (days since 1970) do not count.
    pub register_from: i32,
}

/// Everything loaded from a models folder.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The folder read.
    pub dir: PathBuf,
    /// eFI definition.
    pub efi: EfiSpec,
    /// HFRS definition.
    pub hfrs: HfrsSpec,
    /// Charlson definition.
    pub charlson: CharlsonSpec,
    /// Palliative care register codes and rule.
    pub palliative: PalliativeSpec,
    /// (system, canonical code) of residence in a care home or other long-term residential care
    /// (PRIMIS LONGRES_COD, `models/care_home/longres_cod.tsv`): the dated source of the risk
    /// models' `care_home` feature.
    pub care_home: Vec<(CodeSystem, String)>,
    /// Files read, with hashes, for the manifest.
    pub files: Vec<DefinitionFile>,
}

/// Per-code facts for the scoring scan: one 16-byte record per interned code id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeInfo {
    /// Bit d set when the code is in coded eFI deficit d.
    pub efi: u64,
    /// Bit c set when the code is in Charlson category c (ICD-10 only).
    pub charlson: u32,
    /// HFRS category index + 1, 0 when none (ICD-10 only).
    pub hfrs: u8,
    /// [`CodeInfo::MEDICINE`], [`CodeInfo::HOSPITAL_DX`], [`CodeInfo::PALLIATIVE`].
    pub flags: u8,
}

impl CodeInfo {
    /// The code is a prescription (dm+d): counts towards polypharmacy.
    pub const MEDICINE: u8 = 1;
    /// The code is an ICD-10 hospital diagnosis.
    pub const HOSPITAL_DX: u8 = 2;
    /// The code is in a palliative care register list (read by `palliative`, not by `features`).
    pub const PALLIATIVE: u8 = 4;
    /// The code records residence in a care home (LONGRES_COD).
    pub const CARE_HOME: u8 = 8;

    /// Whether any stage reads an event row with this code: an eFI deficit, an HFRS or Charlson
    /// category, or a flag above (every dm+d code is a medicine and every ICD-10 code a hospital
    /// diagnosis, named by a list or not). A row whose code is not read changes nothing but the
    /// count of records after the as-of date (`features::patient_features`). Wider than the
    /// manifest's `unused_codes`, which counts codes no list names (an ICD-10 code without an
    /// HFRS or Charlson category among them).
    pub fn is_read(&self) -> bool {
        self.efi != 0 || self.charlson != 0 || self.hfrs != 0 || self.flags != 0
    }
}

/// Code lists compiled against one cohort's dictionary: `info[code_id]`.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Indexed by code id.
    pub info: Vec<CodeInfo>,
    /// Codes of the cohort that no list uses, by system (reported, never an error).
    pub unused_by_system: Vec<(CodeSystem, u64)>,
    /// The eFI falls deficit's bit in [`CodeInfo::efi`] (0 when the deficits have none): the
    /// falls history of programme rules.
    pub falls: u64,
    /// Whether the cohort's events hold any care home residence code ([`CodeInfo::CARE_HOME`]):
    /// then the risk models' `care_home` is taken from those dated codes, not the snapshot flag.
    pub care_home_coded: bool,
}

/// Read one definition file and record it (path, hash, size) for the run manifest.
fn read(dir: &Path, rel: &str, files: &mut Vec<DefinitionFile>) -> Result<Tsv, DefinitionError> {
    let t = Tsv::read(dir, rel)?;
    files.push(DefinitionFile {
        path: rel.to_string(),
        fnv1a64: format!("{:016x}", t.fnv1a64),
        bytes: t.bytes,
        sha256: t.sha256.clone(),
    });
    Ok(t)
}

fn tenths(t: &Tsv, line: usize, s: &str) -> Result<u32, DataFileError> {
    let (num, den) =
        parse_decimal(s).ok_or_else(|| t.err(line, format!("'{s}' is not a decimal number")))?;
    if den > 10 {
        return Err(t.err(line, format!("'{s}' has more than one decimal place")));
    }
    Ok((num * 10 / den) as u32)
}

impl Definitions {
    /// Load every model file from `dir` (the repository's `models/`).
    pub fn load(dir: &Path) -> Result<Definitions, DefinitionError> {
        let mut files = Vec::new();
        let efi = load_efi(dir, &mut files)?;
        let hfrs = load_hfrs(dir, &mut files)?;
        let charlson = load_charlson(dir, &mut files)?;
        let palliative = load_palliative(dir, &mut files)?;
        // Optional, so that a models folder from before it still loads (then the flag is used).
        let care_home = if dir.join("care_home/longres_cod.tsv").is_file() {
            load_code_list(dir, "care_home/longres_cod.tsv", &mut files)?
        } else {
            Vec::new()
        };
        Ok(Definitions {
            dir: dir.to_path_buf(),
            efi,
            hfrs,
            charlson,
            palliative,
            care_home,
            files,
        })
    }

    /// The folder used when none is given: `$STRATA_MODELS`, else `./models` when it holds the
    /// eFI lists, else the `models/` of the source tree the binary was built from.
    pub fn default_dir() -> PathBuf {
        if let Some(p) = std::env::var_os("STRATA_MODELS") {
            return PathBuf::from(p);
        }
        let local = PathBuf::from("models");
        if local.join("efi/deficits.tsv").is_file() {
            return local;
        }
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
    }

    /// For each raw (code system, code) pair as an extract writes it: whether it names a
    /// well-formed code that nothing strata computes reads ([`CodeInfo::is_read`], from the
    /// lists [`Self::compile`] gives the features). An engine may leave such event rows
    /// out before they travel, once it is sure the row would be admitted and links to no
    /// encounter. A pair that does not parse is `false`: its rows are rejected where they are
    /// read.
    pub fn unread(&self, pairs: &[(&str, &str)]) -> Vec<bool> {
        let parsed: Vec<Option<(CodeSystem, String)>> = pairs
            .iter()
            .map(|(s, c)| {
                let system = CodeSystem::parse(s)?;
                normalise(system, c).ok().map(|code| (system, code))
            })
            .collect();
        let dict = CodeDict::from_pairs(parsed.iter().flatten().cloned().collect());
        let unread = self.unread_ids(&dict);
        parsed
            .iter()
            .map(|p| {
                p.as_ref()
                    .and_then(|(s, c)| dict.get(*s, c))
                    .is_some_and(|id| unread[id as usize])
            })
            .collect()
    }

    /// Per code id of a cohort's dictionary: whether nothing strata computes reads the code
    /// ([`CodeInfo::is_read`]). The binary's scoring run leaves such rows out at layout.
    pub fn unread_ids(&self, dict: &CodeDict) -> Vec<bool> {
        self.compile(dict)
            .info
            .iter()
            .map(|i| !i.is_read())
            .collect()
    }

    /// Compile the lists against a cohort's code dictionary: one pass over the distinct codes,
    /// prefix lists resolved once here rather than per event.
    pub fn compile(&self, dict: &CodeDict) -> Lookup {
        let mut info = vec![CodeInfo::default(); dict.len()];
        for (d, system, code) in &self.efi.codes {
            if let Some(id) = dict.get(*system, code) {
                info[id as usize].efi |= 1u64 << d;
            }
        }
        for (system, code) in self
            .palliative
            .codes
            .iter()
            .chain(&self.palliative.not_indicated)
        {
            if let Some(id) = dict.get(*system, code) {
                info[id as usize].flags |= CodeInfo::PALLIATIVE;
            }
        }
        let mut care_home_coded = false;
        for (system, code) in &self.care_home {
            if let Some(id) = dict.get(*system, code) {
                info[id as usize].flags |= CodeInfo::CARE_HOME;
                care_home_coded = true;
            }
        }
        let mut unused = std::collections::BTreeMap::new();
        for (id, system, code) in dict.iter() {
            let ci = &mut info[id as usize];
            match system {
                CodeSystem::Dmd => ci.flags |= CodeInfo::MEDICINE,
                CodeSystem::Icd10 => {
                    ci.flags |= CodeInfo::HOSPITAL_DX;
                    if code.len() >= 3 {
                        if let Some(h) = self
                            .hfrs
                            .categories
                            .iter()
                            .position(|c| c.code == code[..3])
                        {
                            ci.hfrs = (h + 1) as u8;
                        }
                    }
                    for (c, cat) in self.charlson.categories.iter().enumerate() {
                        if cat.prefixes.iter().any(|p| code.starts_with(p.as_str())) {
                            ci.charlson |= 1 << c;
                        }
                    }
                }
                _ => {}
            }
            if ci.efi == 0
                && ci.charlson == 0
                && ci.hfrs == 0
                && ci.flags & (CodeInfo::MEDICINE | CodeInfo::PALLIATIVE | CodeInfo::CARE_HOME) == 0
            {
                *unused.entry(system).or_insert(0u64) += 1;
            }
        }
        Lookup {
            info,
            unused_by_system: unused.into_iter().collect(),
            falls: self
                .efi
                .deficits
                .iter()
                .position(|d| d.slug == "falls")
                .map_or(0, |d| 1u64 << d),
            care_home_coded,
        }
    }
}

fn load_efi(dir: &Path, files: &mut Vec<DefinitionFile>) -> Result<EfiSpec, DefinitionError> {
    let t = read(dir, "efi/deficits.tsv", files)?;
    let (cs, cn, cr, cl, cm) = (
        t.col("deficit")?,
        t.col("name")?,
        t.col("rule")?,
        t.col("lookback_months")?,
        t.col("min_distinct")?,
    );
    let mut deficits = Vec::new();
    for row in &t.rows {
        let rule = match t.field(row, cr)? {
            "codes" => DeficitRule::Codes,
            "polypharmacy" => {
                let lb = t.field(row, cl)?;
                let md = t.field(row, cm)?;
                DeficitRule::Polypharmacy {
                    lookback_months: lb
                        .parse()
                        .map_err(|_| t.err(row.0, "polypharmacy needs lookback_months"))?,
                    min_distinct: md
                        .parse()
                        .map_err(|_| t.err(row.0, "polypharmacy needs min_distinct"))?,
                }
            }
            other => return Err(t.err(row.0, format!("unknown rule '{other}'")).into()),
        };
        deficits.push(Deficit {
            slug: t.field(row, cs)?.to_string(),
            name: t.field(row, cn)?.to_string(),
            rule,
        });
    }
    let coded = deficits
        .iter()
        .filter(|d| d.rule == DeficitRule::Codes)
        .count();
    // Every deficit, coded or rule-based, is a bit of a u64 mask.
    if deficits.is_empty() || deficits.len() > 64 {
        return Err(t.err(0, "between 1 and 64 deficits are supported").into());
    }
    // Coded deficits must come first so their index is their bit in CodeInfo::efi.
    if deficits[..coded]
        .iter()
        .any(|d| d.rule != DeficitRule::Codes)
    {
        return Err(t
            .err(0, "coded deficits must be listed before rule-based ones")
            .into());
    }

    let c = read(dir, "efi/codes.tsv", files)?;
    let (kd, ks, kc) = (c.col("deficit")?, c.col("code_system")?, c.col("code")?);
    let mut codes = Vec::new();
    for row in &c.rows {
        let slug = c.field(row, kd)?;
        let d = deficits[..coded]
            .iter()
            .position(|x| x.slug == slug)
            .ok_or_else(|| c.err(row.0, format!("unknown deficit '{slug}'")))?;
        let sys_raw = c.field(row, ks)?;
        let system = CodeSystem::parse(sys_raw)
            .ok_or_else(|| c.err(row.0, format!("unknown code system '{sys_raw}'")))?;
        let code = normalise(system, c.field(row, kc)?).map_err(|p| c.err(row.0, p.reason()))?;
        codes.push((d as u8, system, code));
    }

    let p = read(dir, "efi/params.tsv", files)?;
    let n = deficits.len() as u64;
    let mut category_max_count = [0u32; 3];
    for (i, key) in ["fit_max", "mild_max", "moderate_max"].iter().enumerate() {
        let (line, v) = p.value(key)?;
        let (num, den) =
            parse_decimal(&v).ok_or_else(|| p.err(line, format!("'{v}' is not a decimal")))?;
        // Largest k with k / n <= num / den, exactly.
        category_max_count[i] = ((num * n) / den) as u32;
    }
    Ok(EfiSpec {
        deficits,
        codes,
        category_max_count,
    })
}

fn load_hfrs(dir: &Path, files: &mut Vec<DefinitionFile>) -> Result<HfrsSpec, DefinitionError> {
    let t = read(dir, "hfrs/weights.tsv", files)?;
    let (cc, cw, cd) = (
        t.col("icd10_3char")?,
        t.col("weight")?,
        t.col("description")?,
    );
    let mut categories = Vec::new();
    for row in &t.rows {
        let code = normalise(CodeSystem::Icd10, t.field(row, cc)?)
            .map_err(|p| t.err(row.0, p.reason()))?;
        if code.len() != 3 {
            return Err(t
                .err(row.0, format!("'{code}' is not a three-character category"))
                .into());
        }
        categories.push(HfrsCategory {
            code,
            weight_tenths: tenths(&t, row.0, t.field(row, cw)?)?,
            description: t.field(row, cd)?.to_string(),
        });
    }
    // Each category is a bit of a u128 in the features.
    if categories.is_empty() || categories.len() > 128 {
        return Err(t
            .err(0, "between 1 and 128 HFRS categories are supported")
            .into());
    }
    let p = read(dir, "hfrs/params.tsv", files)?;
    let (l1, v1) = p.value("intermediate_from")?;
    let (l2, v2) = p.value("high_above")?;
    Ok(HfrsSpec {
        categories,
        lookback_months: p.value_u32("lookback_months")?,
        intermediate_from_tenths: tenths(&p, l1, &v1)?,
        high_above_tenths: tenths(&p, l2, &v2)?,
    })
}

fn load_charlson(
    dir: &Path,
    files: &mut Vec<DefinitionFile>,
) -> Result<CharlsonSpec, DefinitionError> {
    let p = read(dir, "charlson/params.tsv", files)?;
    let (_, weight_set) = p.value("weights")?;
    let t = read(dir, "charlson/categories.tsv", files)?;
    let (ck, cn, cp) = (t.col("key")?, t.col("category")?, t.col("icd10_prefixes")?);
    let cw = t.col(&format!("{weight_set}_weight"))?;
    let mut categories = Vec::new();
    for row in &t.rows {
        let mut prefixes = Vec::new();
        for raw in t.field(row, cp)?.split('|') {
            prefixes.push(normalise(CodeSystem::Icd10, raw).map_err(|e| t.err(row.0, e.reason()))?);
        }
        let w = t.field(row, cw)?;
        categories.push(CharlsonCategory {
            key: t.field(row, ck)?.to_string(),
            name: t.field(row, cn)?.to_string(),
            prefixes,
            weight: w
                .parse()
                .map_err(|_| t.err(row.0, format!("weight '{w}' is not a whole number")))?,
        });
    }
    if categories.is_empty() || categories.len() > 32 {
        return Err(t
            .err(0, "between 1 and 32 Charlson categories are supported")
            .into());
    }
    let mut hierarchy = Vec::new();
    for (line, v) in p.values("hierarchy")? {
        let (a, b) = v
            .split_once('>')
            .ok_or_else(|| p.err(line, "hierarchy must read 'milder>more_severe'"))?;
        let find = |k: &str| {
            categories
                .iter()
                .position(|c| c.key == k)
                .ok_or_else(|| p.err(line, format!("unknown category '{k}'")))
        };
        hierarchy.push((find(a)?, find(b)?));
    }
    Ok(CharlsonSpec {
        categories,
        weight_set,
        lookback_months: p.value_u32("lookback_months")?,
        hierarchy,
    })
}

/// A code list file of `(code_system, code, description)` rows, canonical codes.
fn load_code_list(
    dir: &Path,
    rel: &str,
    files: &mut Vec<DefinitionFile>,
) -> Result<Vec<(CodeSystem, String)>, DefinitionError> {
    let t = read(dir, rel, files)?;
    let (ks, kc) = (t.col("code_system")?, t.col("code")?);
    let mut codes = Vec::with_capacity(t.rows.len());
    for row in &t.rows {
        let raw = t.field(row, ks)?;
        let system = CodeSystem::parse(raw)
            .ok_or_else(|| t.err(row.0, format!("unknown code system '{raw}'")))?;
        let code = normalise(system, t.field(row, kc)?).map_err(|p| t.err(row.0, p.reason()))?;
        codes.push((system, code));
    }
    if codes.is_empty() {
        return Err(t.err(0, "the code list is empty").into());
    }
    Ok(codes)
}

fn load_palliative(
    dir: &Path,
    files: &mut Vec<DefinitionFile>,
) -> Result<PalliativeSpec, DefinitionError> {
    let codes = load_code_list(dir, "palliative/palcare_cod.tsv", files)?;
    let not_indicated = load_code_list(dir, "palliative/palcareni_cod.tsv", files)?;
    let p = read(dir, "palliative/params.tsv", files)?;
    let (line, v) = p.value("register_from")?;
    let register_from = crate::date::parse_days(&v).ok_or_else(|| {
        p.err(
            line,
            format!("register_from '{v}' is not a date (YYYY-MM-DD)"),
        )
    })?;
    Ok(PalliativeSpec {
        codes,
        not_indicated,
        register_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Definitions {
        Definitions::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))).unwrap()
    }

    #[test]
    fn published_efi_has_36_deficits_and_clegg_cut_points() {
        let m = models();
        assert_eq!(m.efi.deficits.len(), 36);
        assert_eq!(
            m.efi
                .deficits
                .iter()
                .filter(|d| d.rule == DeficitRule::Codes)
                .count(),
            35
        );
        // 0.12 * 36 = 4.32, 0.24 * 36 = 8.64, 0.36 * 36 = 12.96.
        assert_eq!(m.efi.category_max_count, [4, 8, 12]);
        let poly = m.efi.deficits.last().unwrap();
        assert_eq!(
            poly.rule,
            DeficitRule::Polypharmacy {
                lookback_months: 12,
                min_distinct: 5
            }
        );
    }

    #[test]
    fn efi_errata_are_applied() {
        let m = models();
        let has = |slug: &str, sys: CodeSystem, code: &str| {
            let d = m.efi.deficits.iter().position(|x| x.slug == slug).unwrap() as u8;
            m.efi
                .codes
                .iter()
                .any(|(dd, s, c)| *dd == d && *s == sys && c == code)
        };
        assert!(!has("ckd", CodeSystem::Snomed, "73211009"));
        assert!(has("diabetes", CodeSystem::Snomed, "73211009"));
        assert!(!has("fragility-fracture", CodeSystem::Snomed, "64859006"));
        assert!(has("osteoporosis", CodeSystem::Snomed, "64859006"));
        // A published Read v2 quirk kept: R200. "[D]Old age" in falls.
        assert!(has("falls", CodeSystem::Read2, "R200"));
        // Read v2 case is significant and kept.
        assert!(has("falls", CodeSystem::Read2, "8HTl"));
    }

    #[test]
    fn hfrs_has_109_categories_summing_to_173_2() {
        let m = models();
        assert_eq!(m.hfrs.categories.len(), 109);
        let sum: u32 = m.hfrs.categories.iter().map(|c| c.weight_tenths).sum();
        assert_eq!(sum, 1732);
        let f00 = m.hfrs.categories.iter().find(|c| c.code == "F00").unwrap();
        assert_eq!(f00.weight_tenths, 71);
        assert_eq!(m.hfrs.lookback_months, 24);
        assert_eq!(
            (m.hfrs.intermediate_from_tenths, m.hfrs.high_above_tenths),
            (50, 150)
        );
    }

    #[test]
    fn charlson_uses_quan_2011_weights_and_hierarchy() {
        let m = models();
        assert_eq!(m.charlson.categories.len(), 17);
        let w: Vec<u32> = m.charlson.categories.iter().map(|c| c.weight).collect();
        assert_eq!(w, vec![0, 2, 0, 0, 2, 1, 1, 0, 2, 0, 1, 2, 1, 2, 4, 6, 4]);
        assert_eq!(w.iter().sum::<u32>(), 28);
        assert_eq!(m.charlson.hierarchy.len(), 3);
    }

    #[test]
    fn palliative_register_codes_are_the_qof_cluster() {
        let m = models();
        let p = &m.palliative;
        assert_eq!(p.codes.len(), 79);
        assert_eq!(p.not_indicated.len(), 2);
        assert!(p.codes.iter().all(|(s, _)| *s == CodeSystem::Snomed));
        // "Palliative care" and "On palliative care register" are members; the refset's own id
        // and the "not indicated" codes are not.
        let has = |c: &str| p.codes.iter().any(|(_, x)| x == c);
        assert!(has("103735009") && has("1403151000000103"));
        assert!(!has("999009771000230104") && !has("1048611000000104"));
        assert_eq!(crate::date::format_days(p.register_from), "2008-04-01");
        assert!(m
            .files
            .iter()
            .any(|f| f.path == "palliative/palcare_cod.tsv"));
        let dict = CodeDict::from_pairs(vec![(CodeSystem::Snomed, "103735009".into())]);
        let l = m.compile(&dict);
        assert_eq!(l.info[0].flags, CodeInfo::PALLIATIVE);
        assert!(
            l.unused_by_system.is_empty(),
            "a register code is a used code"
        );
    }

    /// A part scored with the same files, listed in any order, passes; a file of other bytes, a
    /// file only one side has, and a risk model card only one side applied are each named.
    #[test]
    fn a_part_scored_with_other_models_files_is_named() {
        let pair = |w: &str, h: &str| (w.to_string(), h.to_string());
        let ours = [
            pair("efi/codes.tsv", "aa11"),
            pair("risk model card (death)", "bb22"),
        ];
        let check = |theirs: &[(String, String)]| {
            DefinitionError::part_models("the part of PCN U3", theirs, &ours).map(|e| e.to_string())
        };
        assert_eq!(check(&[ours[1].clone(), ours[0].clone()]), None);
        assert!(check(&[]).is_some_and(|e| e.contains("did not say which models files")));
        let cases = [
            (
                vec![pair("efi/codes.tsv", "ff99"), ours[1].clone()],
                "the part of PCN U3 was scored with efi/codes.tsv SHA-256 ff99, but the run's models folder holds SHA-256 aa11",
            ),
            (
                vec![ours[1].clone()],
                "scored with efi/codes.tsv no such file, but the run's models folder holds SHA-256 aa11",
            ),
            (
                vec![ours[0].clone()],
                "scored with risk model card (death) no such file",
            ),
            (
                vec![ours[0].clone(), ours[1].clone(), pair("hfrs/codes.tsv", "cc33")],
                "scored with hfrs/codes.tsv SHA-256 cc33, but the run's models folder holds no such file",
            ),
        ];
        for (theirs, said) in cases {
            let got = check(&theirs).expect("a difference is an error");
            assert!(got.contains(said), "{got}");
        }
    }

    #[test]
    fn unread_pairs_are_well_formed_codes_no_list_reads() {
        let m = models();
        let got = m.unread(&[
            // Body weight: no list reads it.
            ("snomed", "27113001"),
            // A fall (an eFI deficit), written as a spreadsheet leaves it.
            ("SNOMED", "\u{feff}1912002\u{a0}"),
            // Every hospital diagnosis and medicine is read (spells, polypharmacy).
            ("icd10", "Z99.9"),
            ("dmd", "1234567"),
            // Not parsed: its rows are rejected where they are read, never left out.
            ("klingon", "27113001"),
            ("snomed", "not a code"),
            ("snomed", ""),
        ]);
        assert_eq!(got, [true, false, false, false, false, false, false]);
    }

    #[test]
    fn compile_resolves_prefixes_once_per_distinct_code() {
        let m = models();
        let dict = CodeDict::from_pairs(vec![
            (CodeSystem::Icd10, "F051".into()),
            (CodeSystem::Icd10, "C780".into()),
            (CodeSystem::Dmd, "1234567".into()),
            (CodeSystem::Snomed, "1912002".into()),
            (CodeSystem::Snomed, "999999999".into()),
        ]);
        let l = m.compile(&dict);
        let f051 = l.info[dict.get(CodeSystem::Icd10, "F051").unwrap() as usize];
        let f05 = m
            .hfrs
            .categories
            .iter()
            .position(|c| c.code == "F05")
            .unwrap();
        assert_eq!(f051.hfrs as usize, f05 + 1);
        let dementia = m
            .charlson
            .categories
            .iter()
            .position(|c| c.key == "dementia")
            .unwrap();
        assert_eq!(f051.charlson, 1 << dementia);
        let c780 = l.info[dict.get(CodeSystem::Icd10, "C780").unwrap() as usize];
        assert_eq!(c780.charlson.count_ones(), 1, "C78 is metastatic only");
        let fall = l.info[dict.get(CodeSystem::Snomed, "1912002").unwrap() as usize];
        let falls = m
            .efi
            .deficits
            .iter()
            .position(|d| d.slug == "falls")
            .unwrap();
        assert_eq!(fall.efi, 1 << falls);
        assert_eq!(
            l.info[dict.get(CodeSystem::Dmd, "1234567").unwrap() as usize].flags,
            CodeInfo::MEDICINE
        );
        assert_eq!(l.unused_by_system, vec![(CodeSystem::Snomed, 1)]);
    }
}
