//! Privacy guards at the input edge: recognising direct identifiers so that strata can refuse
//! them. Pure functions with no dependencies, so they can be fuzzed on their own
//! (`fuzz/fuzz_targets/normalisers.rs`).
//!
//! Pipeline position: called by `cohort` while checking a cohort's schema and pseudonyms.

/// Column names that suggest a direct identifier (matched after lower-casing and removing
/// `_`, `-` and spaces).
const IDENTIFIER_NAMES: &[&str] = &[
    "nhsnumber",
    "nhsno",
    "nhsnum",
    "name",
    "forename",
    "surname",
    "firstname",
    "lastname",
    "fullname",
    "givenname",
    "familyname",
    "address",
    "addressline1",
    "addressline2",
    "postcode",
    "postalcode",
    "dob",
    "dateofbirth",
    "phone",
    "telephone",
    "email",
];

/// True when a column name looks like a direct identifier.
pub fn looks_like_identifier(column: &str) -> bool {
    let k: String = column
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .collect();
    IDENTIFIER_NAMES.contains(&k.as_str())
}

/// True when `s` is a valid NHS number: 10 digits whose modulus 11 check digit is right.
pub fn is_nhs_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || !b.iter().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = b[..9]
        .iter()
        .enumerate()
        .map(|(i, c)| (c - b'0') as u32 * (10 - i as u32))
        .sum();
    let check = 11 - (sum % 11);
    let check = if check == 11 { 0 } else { check };
    check != 10 && check == (b[9] - b'0') as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_are_recognised_by_their_check_digit() {
        // 943 476 5919 is the NHS's published example of a valid number.
        assert!(is_nhs_number("9434765919"));
        assert!(!is_nhs_number("9434765918"));
        assert!(!is_nhs_number("943476591"));
        assert!(!is_nhs_number("94347659190"));
        assert!(!is_nhs_number("943476591X"));
    }

    #[test]
    fn identifier_columns_are_recognised() {
        for c in [
            "nhs_number",
            "NHSNumber",
            "Post Code",
            "postcode",
            "date_of_birth",
            "surname",
        ] {
            assert!(looks_like_identifier(c), "{c}");
        }
        for c in ["patient_id", "birth_date", "practice_code", "pcn_code"] {
            assert!(!looks_like_identifier(c), "{c}");
        }
    }
}
