//! Fuzz the pure string functions at strata's input edge: code-system names, code normalisation,
//! dates and the privacy guards.
//!
//! The input is read as lossy UTF-8. The whole string and each part of it split on '\n', '|',
//! ',' and NUL are checked, so one input exercises several short strings (the realistic size of a
//! code or a date) as well as one long one.
//!
//! Properties:
//! - `CodeSystem::parse` never panics, and a parsed system's canonical name parses back to it;
//! - `codes::normalise(sys, s)` for every system: an `Ok` output is non-empty, has no surrounding
//!   whitespace, contains no '.', and normalising it again returns it unchanged (idempotence);
//! - `date::parse_days`: when `Some(d)`, `format_days(d)` parses back to `Some(d)` (round trip);
//! - `privacy::is_nhs_number` and `privacy::looks_like_identifier` never panic (and an NHS number
//!   is always exactly ten ASCII digits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::codes::{normalise, CodeSystem};
use strata::date::{format_days, parse_days};
use strata::privacy::{is_nhs_number, looks_like_identifier};

fn check(s: &str) {
    // Code-system names.
    if let Some(sys) = CodeSystem::parse(s) {
        assert_eq!(
            CodeSystem::parse(sys.name()),
            Some(sys),
            "canonical name of {sys:?} does not parse back"
        );
    }

    // Code normalisation, every system.
    for sys in CodeSystem::ALL {
        if let Ok(out) = normalise(sys, s) {
            assert!(!out.is_empty(), "{sys:?}: {s:?} normalised to an empty code");
            assert_eq!(
                out.trim(),
                out,
                "{sys:?}: {s:?} normalised to {out:?}, which has surrounding whitespace"
            );
            assert!(
                !out.contains('.'),
                "{sys:?}: {s:?} normalised to {out:?}, which contains '.'"
            );
            assert_eq!(
                normalise(sys, &out).as_deref(),
                Ok(out.as_str()),
                "{sys:?}: normalise is not idempotent on {s:?} -> {out:?}"
            );
        }
    }

    // Dates.
    if let Some(d) = parse_days(s) {
        let text = format_days(d);
        assert_eq!(
            parse_days(&text),
            Some(d),
            "{s:?} parsed to day {d}, formatted as {text:?}, which does not parse back"
        );
    }

    // Privacy guards.
    if is_nhs_number(s) {
        assert!(
            s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()),
            "{s:?} accepted as an NHS number"
        );
    }
    let _ = looks_like_identifier(s);
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    check(&s);
    let mut parts = 0;
    for part in s.split(['\n', '|', ',', '\0']) {
        parts += 1;
        if parts > 64 {
            break;
        }
        if part.len() != s.len() {
            check(part);
        }
    }
});
