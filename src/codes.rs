//! Clinical code systems and code normalisation: the edge where raw strings from an extract become
//! canonical codes, and where canonical codes are interned to dense integer ids.
//!
//! Pipeline position: used by `input` (reading) and `definitions` (compiling lists against the
//! cohort's dictionary). Nothing after `cohort` ever sees a code string in a hot loop.

use std::collections::HashMap;
use std::fmt;

/// A coding scheme that may appear in `events.parquet` `code_system`.
///
/// Read v2 and CTV3 are case-sensitive by definition (`8HTl.` and `8HTL.` are different
/// concepts), so their case is kept; ICD-10 is upper-cased and stripped of dots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodeSystem {
    /// SNOMED CT concept ids (digits).
    Snomed,
    /// Clinical Terms Version 3 (five characters, case-sensitive, '.' padded).
    Ctv3,
    /// Read codes version 2 (five characters, case-sensitive, '.' padded).
    Read2,
    /// ICD-10 (hospital diagnoses).
    Icd10,
    /// Dictionary of medicines and devices (digits): prescriptions.
    Dmd,
    /// OPCS-4 (hospital procedures).
    Opcs4,
}

impl CodeSystem {
    /// Every system, in id order.
    pub const ALL: [CodeSystem; 6] = [
        CodeSystem::Snomed,
        CodeSystem::Ctv3,
        CodeSystem::Read2,
        CodeSystem::Icd10,
        CodeSystem::Dmd,
        CodeSystem::Opcs4,
    ];

    /// Parse a `code_system` value; case and surrounding whitespace are ignored and common
    /// spellings (`readv2`, `read`, `icd-10`, `snomedct`, `dm+d`) are accepted.
    pub fn parse(raw: &str) -> Option<CodeSystem> {
        let s = raw.trim();
        let lower;
        let s = if s.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = s.to_ascii_lowercase();
            lower.as_str()
        } else {
            s
        };
        Some(match s {
            "snomed" | "snomedct" | "snomed-ct" | "snomed_ct" | "sct" => CodeSystem::Snomed,
            "ctv3" | "read3" => CodeSystem::Ctv3,
            "read2" | "readv2" | "read" => CodeSystem::Read2,
            "icd10" | "icd-10" | "icd_10" => CodeSystem::Icd10,
            "dmd" | "dm+d" => CodeSystem::Dmd,
            "opcs4" | "opcs-4" | "opcs" => CodeSystem::Opcs4,
            _ => return None,
        })
    }

    /// The canonical lower-case name used in model files and outputs.
    pub fn name(self) -> &'static str {
        match self {
            CodeSystem::Snomed => "snomed",
            CodeSystem::Ctv3 => "ctv3",
            CodeSystem::Read2 => "read2",
            CodeSystem::Icd10 => "icd10",
            CodeSystem::Dmd => "dmd",
            CodeSystem::Opcs4 => "opcs4",
        }
    }

    /// A small integer for packing into lookup keys.
    pub fn id(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for CodeSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a raw code could not be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeProblem {
    /// Nothing left after trimming.
    Empty,
    /// Characters the system never uses (e.g. letters in a SNOMED CT id).
    Malformed,
    /// Longer than any code of the system (SNOMED CT ids have at most 18 digits).
    TooLong,
}

impl CodeProblem {
    /// Short reason text for reports and reject files.
    pub fn reason(self) -> &'static str {
        match self {
            CodeProblem::Empty => "empty code",
            CodeProblem::Malformed => "malformed code",
            CodeProblem::TooLong => "code too long",
        }
    }
}

/// Characters some exports carry around a code that are never part of it: the byte-order mark
/// and zero-width space that spreadsheet tools leave, besides ordinary and non-breaking spaces.
fn is_pad(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}' || c == '\u{200b}'
}

/// Normalise one raw code of `system` to its canonical form.
///
/// - all systems: surrounding whitespace removed, including non-breaking spaces, byte-order marks
///   and zero-width spaces from spreadsheet exports;
/// - SNOMED CT and dm+d: digits only, 6 to 18 of them (an integer column arrives here as its
///   decimal text);
/// - ICD-10 and OPCS-4: upper-cased, dots, inner spaces and `-` fillers removed (`i10.x` ->
///   `I10X`); the dual-classification marks written after a code (dagger `†` or `+`, asterisk
///   `*`, as in `G30.9†`, `F00.1*`) are removed, so `F00.1*` is `F001`. HES's own fillers and
///   marks (`X` in the fourth place, `D`/`A` in the fifth) are kept: every ICD-10 list strata uses
///   matches by prefix, so `I10X` counts as `I10` and `F001A` as `F00`;
/// - Read v2: case kept (Read codes are case-sensitive: `8HTl.` and `8HTL.` are different
///   concepts), trailing `.` padding removed (`16D..` -> `16D`), at most 5 characters; EMIS's
///   form with a two-digit term code after the five characters (`16D1.00`, `8HTl.00`) is read as
///   its code (`16D1`, `8HTl`);
/// - CTV3: as Read v2, without the term suffix form (CTV3 terms are separate ids).
pub fn normalise(system: CodeSystem, raw: &str) -> Result<String, CodeProblem> {
    let s = raw.trim_matches(is_pad);
    if s.is_empty() {
        return Err(CodeProblem::Empty);
    }
    match system {
        CodeSystem::Snomed | CodeSystem::Dmd => {
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CodeProblem::Malformed);
            }
            if s.len() > 18 {
                return Err(CodeProblem::TooLong);
            }
            if s.len() < 6 {
                return Err(CodeProblem::Malformed);
            }
            Ok(s.to_string())
        }
        CodeSystem::Icd10 | CodeSystem::Opcs4 => {
            // Dual-classification marks follow the code (possibly after a space).
            let s = if system == CodeSystem::Icd10 {
                s.trim_end_matches(|c: char| matches!(c, '†' | '+' | '*') || is_pad(c))
            } else {
                s
            };
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '.' | '-' => {}
                    c if is_pad(c) => {}
                    c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
                    _ => return Err(CodeProblem::Malformed),
                }
            }
            if out.is_empty() {
                return Err(CodeProblem::Empty);
            }
            if out.len() > 8 {
                return Err(CodeProblem::TooLong);
            }
            Ok(out)
        }
        CodeSystem::Read2 | CodeSystem::Ctv3 => {
            // EMIS: five characters then a two-digit term code.
            let s = match s.as_bytes() {
                [.., a, b]
                    if system == CodeSystem::Read2
                        && s.len() == 7
                        && a.is_ascii_digit()
                        && b.is_ascii_digit()
                        && s.is_char_boundary(5) =>
                {
                    &s[..5]
                }
                _ => s,
            };
            let t = s.trim_end_matches('.');
            if t.is_empty() {
                return Err(CodeProblem::Empty);
            }
            if s.len() > 5 {
                return Err(CodeProblem::TooLong);
            }
            if !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(CodeProblem::Malformed);
            }
            Ok(t.to_string())
        }
    }
}

/// The dictionary of distinct (system, canonical code) pairs seen in a cohort, each with a dense
/// `u32` id. Ids are assigned in sorted (system, code) order, so they do not depend on the order
/// of rows in the input files.
#[derive(Debug, Clone, Default)]
pub struct CodeDict {
    entries: Vec<(CodeSystem, String)>,
    index: HashMap<(CodeSystem, String), u32>,
}

impl CodeDict {
    /// Build from distinct pairs (any order, duplicates allowed); returns the dictionary.
    pub fn from_pairs(mut pairs: Vec<(CodeSystem, String)>) -> CodeDict {
        pairs.sort();
        pairs.dedup();
        let index = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        CodeDict {
            entries: pairs,
            index,
        }
    }

    /// Number of distinct codes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no code was seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id of a canonical code, if the cohort has it.
    pub fn get(&self, system: CodeSystem, code: &str) -> Option<u32> {
        self.index.get(&(system, code.to_string())).copied()
    }

    /// The (system, code) of an id.
    pub fn entry(&self, id: u32) -> (CodeSystem, &str) {
        let (s, c) = &self.entries[id as usize];
        (*s, c.as_str())
    }

    /// All entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, CodeSystem, &str)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, (s, c))| (i as u32, *s, c.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_parse_with_aliases_and_case() {
        assert_eq!(CodeSystem::parse(" SNOMED "), Some(CodeSystem::Snomed));
        assert_eq!(CodeSystem::parse("readv2"), Some(CodeSystem::Read2));
        assert_eq!(CodeSystem::parse("ICD-10"), Some(CodeSystem::Icd10));
        assert_eq!(CodeSystem::parse("loinc"), None);
        for s in CodeSystem::ALL {
            assert_eq!(CodeSystem::parse(s.name()), Some(s));
        }
    }

    #[test]
    fn icd10_is_upper_cased_and_undotted() {
        assert_eq!(normalise(CodeSystem::Icd10, " i10.x ").unwrap(), "I10X");
        assert_eq!(normalise(CodeSystem::Icd10, "W19").unwrap(), "W19");
        assert_eq!(normalise(CodeSystem::Icd10, "F05.1").unwrap(), "F051");
        assert_eq!(
            normalise(CodeSystem::Icd10, "F0$"),
            Err(CodeProblem::Malformed)
        );
        assert_eq!(normalise(CodeSystem::Icd10, " . "), Err(CodeProblem::Empty));
    }

    #[test]
    fn read_codes_keep_case_and_lose_padding() {
        assert_eq!(normalise(CodeSystem::Read2, "16D..").unwrap(), "16D");
        assert_eq!(normalise(CodeSystem::Read2, "8HTl.").unwrap(), "8HTl");
        assert_ne!(
            normalise(CodeSystem::Read2, "8HTl.").unwrap(),
            normalise(CodeSystem::Read2, "8HTL.").unwrap()
        );
        assert_eq!(normalise(CodeSystem::Ctv3, "XE0WE").unwrap(), "XE0WE");
        assert_eq!(
            normalise(CodeSystem::Ctv3, "XE0WE1"),
            Err(CodeProblem::TooLong)
        );
        assert_eq!(
            normalise(CodeSystem::Ctv3, "....."),
            Err(CodeProblem::Empty)
        );
    }

    #[test]
    fn icd10_dual_classification_marks_are_removed() {
        for raw in ["G30.9†", "G30.9+", "G309 †", "g30.9 +"] {
            assert_eq!(normalise(CodeSystem::Icd10, raw).unwrap(), "G309", "{raw}");
        }
        for raw in ["F00.1*", "F001*", "F00.1 *"] {
            assert_eq!(normalise(CodeSystem::Icd10, raw).unwrap(), "F001", "{raw}");
        }
        // Only after the code: a mark inside it is still malformed.
        assert_eq!(
            normalise(CodeSystem::Icd10, "F0*0"),
            Err(CodeProblem::Malformed)
        );
        assert_eq!(normalise(CodeSystem::Icd10, "*"), Err(CodeProblem::Empty));
        // OPCS-4 has no such marks.
        assert_eq!(
            normalise(CodeSystem::Opcs4, "W37.1*"),
            Err(CodeProblem::Malformed)
        );
    }

    #[test]
    fn hes_fillers_are_kept_and_match_by_prefix() {
        assert_eq!(normalise(CodeSystem::Icd10, "R69X").unwrap(), "R69X");
        assert_eq!(normalise(CodeSystem::Icd10, "I10-").unwrap(), "I10");
        assert_eq!(normalise(CodeSystem::Icd10, "F00.1A").unwrap(), "F001A");
    }

    #[test]
    fn spreadsheet_padding_is_removed() {
        assert_eq!(
            normalise(CodeSystem::Snomed, "\u{a0}22298006\u{a0}").unwrap(),
            "22298006"
        );
        assert_eq!(
            normalise(CodeSystem::Snomed, "\u{feff}22298006").unwrap(),
            "22298006"
        );
        assert_eq!(
            normalise(CodeSystem::Snomed, "22298006\u{200b}").unwrap(),
            "22298006"
        );
        assert_eq!(normalise(CodeSystem::Icd10, "I10\u{a0}X").unwrap(), "I10X");
        assert_eq!(normalise(CodeSystem::Read2, "\u{a0}16D1.").unwrap(), "16D1");
    }

    #[test]
    fn emis_read_codes_with_term_suffix_are_their_code() {
        assert_eq!(normalise(CodeSystem::Read2, "16D1.00").unwrap(), "16D1");
        assert_eq!(normalise(CodeSystem::Read2, "8HTl.00").unwrap(), "8HTl");
        assert_eq!(normalise(CodeSystem::Read2, "8HTL.11").unwrap(), "8HTL");
        assert_ne!(
            normalise(CodeSystem::Read2, "8HTl.00").unwrap(),
            normalise(CodeSystem::Read2, "8HTL.00").unwrap()
        );
        assert_eq!(normalise(CodeSystem::Read2, "G30..00").unwrap(), "G30");
        // Not a term suffix: too long, or CTV3 (whose terms are separate ids).
        assert_eq!(
            normalise(CodeSystem::Read2, "16D1.0X"),
            Err(CodeProblem::TooLong)
        );
        assert_eq!(
            normalise(CodeSystem::Ctv3, "XE0WE00"),
            Err(CodeProblem::TooLong)
        );
    }

    #[test]
    fn snomed_is_digits_only() {
        assert_eq!(
            normalise(CodeSystem::Snomed, " 1912002\t").unwrap(),
            "1912002"
        );
        assert_eq!(
            normalise(CodeSystem::Snomed, "19120O2"),
            Err(CodeProblem::Malformed)
        );
        assert_eq!(
            normalise(CodeSystem::Snomed, "1234567890123456789"),
            Err(CodeProblem::TooLong)
        );
    }

    #[test]
    fn dictionary_ids_follow_sorted_order_not_insertion_order() {
        let a = CodeDict::from_pairs(vec![
            (CodeSystem::Icd10, "W19".into()),
            (CodeSystem::Snomed, "1912002".into()),
            (CodeSystem::Icd10, "F05".into()),
        ]);
        let b = CodeDict::from_pairs(vec![
            (CodeSystem::Icd10, "F05".into()),
            (CodeSystem::Icd10, "W19".into()),
            (CodeSystem::Snomed, "1912002".into()),
            (CodeSystem::Icd10, "F05".into()),
        ]);
        assert_eq!(a.len(), 3);
        for (id, s, c) in a.iter() {
            assert_eq!(b.get(s, c), Some(id));
        }
        assert_eq!(a.entry(0), (CodeSystem::Snomed, "1912002"));
    }
}
