//! Property tests: the eFI is a bounded, monotone count; the HFRS equals an obviously-correct
//! slow reference on generated ICD-10 codes and dates around the window edges; the row order of
//! the input files changes no output byte; and scoring the cohort PCN by PCN gives the same lists
//! and score rows as scoring it whole.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use common::*;
use polars::prelude::*;
use proptest::prelude::*;
use proptest::sample::select;
use strata::codes::CodeSystem;
use strata::cohort::Cohort;
use strata::definitions::{DeficitRule, Definitions, HfrsSpec};
use strata::features::{Features, Windows};
use strata::input::LoadOptions;
use strata::lists::ListRules;
use strata::run::score_cohort;
use strata::scores::{HfrsBand, Scorer, Scores};

/// First day of the HFRS window at `AS_OF`: the day after the as-of date minus 24 months.
const HFRS_FROM: &str = "2023-04-02";
/// First day of the polypharmacy window at `AS_OF`: the day after the as-of date minus 12 months.
const MEDICINES_FROM: &str = "2024-04-02";
const TODAY: &str = "2026-11-25";

fn models() -> &'static Definitions {
    static MODELS: OnceLock<Definitions> = OnceLock::new();
    MODELS.get_or_init(definitions)
}

/// One generated event as plain values: the raw strings written to `events.parquet`.
#[derive(Clone, Debug)]
struct Ev {
    system: String,
    code: String,
    day: i32,
}

/// Write generated patients (all aged 85 at the as-of date, one PCN) and their events as a
/// cohort, load it through the real reader and score it. Returns scores and features by id.
fn score_generated(patients: &[(String, Vec<Ev>)]) -> BTreeMap<String, (Scores, Features)> {
    let dir = tempfile::tempdir().unwrap();
    let ps: Vec<P> = patients
        .iter()
        .map(|(id, _)| patient(id, "1940-01-01"))
        .collect();
    let rows: Vec<(&str, &Ev)> = patients
        .iter()
        .flat_map(|(id, evs)| evs.iter().map(move |e| (id.as_str(), e)))
        .collect();
    let events = DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "patient_id".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Int32Chunked::from_vec("event_date".into(), rows.iter().map(|r| r.1.day).collect())
                .into_date()
                .into_column(),
            Column::new(
                "code_system".into(),
                rows.iter().map(|r| r.1.system.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "code".into(),
                rows.iter().map(|r| r.1.code.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )
    .unwrap();
    write_parquet(&dir.path().join("patients.parquet"), patients_frame(&ps));
    write_parquet(&dir.path().join("events.parquet"), events);
    write_parquet(
        &dir.path().join("encounters.parquet"),
        encounters_frame(&[]),
    );
    let opts = LoadOptions {
        today: days(TODAY),
        max_reject_fraction: 1.0,
        skip_memory_check: true,
        ..Default::default()
    };
    let cohort = Cohort::load(dir.path(), &opts).unwrap();
    assert!(
        cohort.rejects.is_empty(),
        "generated rows were rejected: {:?}",
        cohort.rejects
    );
    let s = score_cohort(&cohort, models(), days(AS_OF), &ListRules::default());
    (0..cohort.patients.len())
        .map(|i| (cohort.patients.id[i].clone(), (s.scores[i], s.features[i])))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. eFI: bounded and monotone
// ---------------------------------------------------------------------------------------------

/// An event for the eFI properties, with the canonical (system, code) it was rendered from.
#[derive(Clone, Debug)]
struct EfiEv {
    ev: Ev,
    canon: (CodeSystem, String),
}

/// Raw spellings of a code system that the cohort contract accepts.
fn system_spellings(s: CodeSystem) -> &'static [&'static str] {
    match s {
        CodeSystem::Snomed => &["snomed", "SNOMED", "snomedct", "snomed_ct", "sct"],
        CodeSystem::Ctv3 => &["ctv3", "CTV3", "read3"],
        CodeSystem::Read2 => &["read2", "readv2", "Read"],
        CodeSystem::Icd10 => &["icd10", "ICD-10", "icd_10"],
        CodeSystem::Dmd => &["dmd", "dm+d"],
        CodeSystem::Opcs4 => &["opcs4", "OPCS-4"],
    }
}

/// A raw rendering of a canonical code: Read v2 and CTV3 codes optionally '.'-padded to five
/// characters, any code optionally surrounded by spaces.
fn render(system: CodeSystem, canon: &str, variant: u8) -> String {
    let mut code = canon.to_string();
    if matches!(system, CodeSystem::Read2 | CodeSystem::Ctv3) && variant & 1 != 0 {
        while code.len() < 5 {
            code.push('.');
        }
    }
    if variant & 2 != 0 {
        code = format!(" {code} ");
    }
    code
}

/// An event of one of `entries`, dated in [from, to]: a third of them on a day at the edge of a
/// window (the as-of date, the day after, the first day of the polypharmacy window and the day
/// before) when that day is in range.
fn efi_event(
    entries: Vec<(CodeSystem, String)>,
    from: i32,
    to: i32,
) -> impl Strategy<Value = EfiEv> {
    let mut edges: Vec<i32> = [AS_OF, "2025-04-02", MEDICINES_FROM, "2024-03-31"]
        .iter()
        .map(|d| days(d))
        .filter(|d| (from..=to).contains(d))
        .collect();
    if edges.is_empty() {
        edges.push(to);
    }
    (
        select(entries),
        any::<u8>(),
        any::<prop::sample::Index>(),
        prop_oneof![2 => from..=to, 1 => select(edges)],
    )
        .prop_map(|((system, canon), variant, spelling, day)| {
            let spellings = system_spellings(system);
            EfiEv {
                ev: Ev {
                    system: spellings[spelling.index(spellings.len())].to_string(),
                    code: render(system, &canon, variant),
                    day,
                },
                canon: (system, canon),
            }
        })
}

/// The distinct coded-deficit (system, code) pairs of the eFI code lists.
fn deficit_entries() -> Vec<(CodeSystem, String)> {
    let set: BTreeSet<(CodeSystem, String)> = models()
        .efi
        .codes
        .iter()
        .map(|(_, s, c)| (*s, c.clone()))
        .collect();
    set.into_iter().collect()
}

/// A prescription from a pool of twelve dm+d codes, dated in [from, to].
fn medicine_event(from: i32, to: i32) -> impl Strategy<Value = EfiEv> {
    let medicines: Vec<(CodeSystem, String)> = (1..=12)
        .map(|k| (CodeSystem::Dmd, format!("{}", 3_000_000 + k)))
        .collect();
    efi_event(medicines, from, to)
}

/// Any event: a deficit code, a medicine, an ICD-10 diagnosis, or a code no list uses; dated
/// anywhere from 2000 to "today", so some fall after the as-of date.
fn any_efi_event() -> impl Strategy<Value = EfiEv> {
    let others: Vec<(CodeSystem, String)> = vec![
        (CodeSystem::Snomed, "999999999".into()),
        (CodeSystem::Snomed, "123456".into()),
        (CodeSystem::Icd10, "F001".into()),
        (CodeSystem::Icd10, "I509".into()),
        (CodeSystem::Read2, "ZZZZ".into()),
    ];
    prop_oneof![
        4 => efi_event(deficit_entries(), days("2000-01-01"), days(TODAY)),
        3 => medicine_event(days("2023-06-01"), days(TODAY)),
        1 => efi_event(others, days("2000-01-01"), days(TODAY)),
    ]
}

/// Slow reference for the deficit mask and the medicine count: coded deficits from the code lists
/// looked up per event on or before the as-of date; distinct dm+d codes in the polypharmacy
/// window, and polypharmacy when there are enough of them.
fn reference_efi(m: &Definitions, evs: &[EfiEv], as_of: i32) -> (u64, usize) {
    let mut mask = 0u64;
    let mut medicines = BTreeSet::new();
    for e in evs {
        if e.ev.day > as_of {
            continue;
        }
        for (d, s, c) in &m.efi.codes {
            if *s == e.canon.0 && *c == e.canon.1 {
                mask |= 1 << d;
            }
        }
        if e.canon.0 == CodeSystem::Dmd && e.ev.day >= days(MEDICINES_FROM) {
            medicines.insert(e.canon.1.clone());
        }
    }
    for (i, d) in m.efi.deficits.iter().enumerate() {
        if let DeficitRule::Polypharmacy { min_distinct, .. } = d.rule {
            if medicines.len() as u32 >= min_distinct {
                mask |= 1 << i;
            }
        }
    }
    (mask, medicines.len())
}

/// Bit mask of the deficits a (system, canonical code) belongs to.
fn deficits_of(m: &Definitions, code: &(CodeSystem, String)) -> u64 {
    m.efi
        .codes
        .iter()
        .filter(|(_, s, c)| *s == code.0 && *c == code.1)
        .fold(0, |acc, (d, _, _)| acc | 1 << d)
}

/// Per patient: its events, one deficit-code event dated on or before the as-of date to add, and
/// a few arbitrary events to add.
type EfiCase = Vec<(Vec<EfiEv>, EfiEv, Vec<EfiEv>)>;

fn efi_case() -> impl Strategy<Value = EfiCase> {
    prop::collection::vec(
        (
            (
                prop::collection::vec(any_efi_event(), 0..24),
                // Enough prescriptions in the window that some patients have more than eight
                // distinct medicines.
                prop::collection::vec(
                    medicine_event(days("2024-03-01"), days("2025-04-30")),
                    0..14,
                ),
            )
                .prop_map(|(mut a, b)| {
                    a.extend(b);
                    a
                }),
            efi_event(deficit_entries(), days("1990-01-01"), days(AS_OF)),
            prop::collection::vec(any_efi_event(), 1..4),
        ),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// eFI = deficits / 36 is in [0, 1]; adding an event coded to a deficit adds exactly the
    /// deficits of that code not yet present (+1 for a code of one deficit, +0 if that deficit is
    /// already there); adding any event never lowers the count.
    #[test]
    fn efi_is_bounded_and_never_falls_when_a_deficit_is_added(case in efi_case()) {
        let m = models();
        let scorer = Scorer::new(m);
        let denom = scorer.efi_denominator();
        prop_assert_eq!(denom, m.efi.deficits.len() as u32);
        let as_of = days(AS_OF);
        let mut patients = Vec::new();
        for (i, (base, added, extra)) in case.iter().enumerate() {
            let plain = |v: &[EfiEv]| v.iter().map(|e| e.ev.clone()).collect::<Vec<_>>();
            let mut with_deficit = plain(base);
            with_deficit.push(added.ev.clone());
            let mut with_extra = plain(base);
            with_extra.extend(plain(extra));
            patients.push((format!("p{i:02}a"), plain(base)));
            patients.push((format!("p{i:02}b"), with_deficit));
            patients.push((format!("p{i:02}c"), with_extra));
        }
        let r = score_generated(&patients);
        prop_assert_eq!(r.len(), patients.len());
        for (id, (s, f)) in &r {
            let efi = s.efi_deficits as f64 / denom as f64;
            prop_assert!((0.0..=1.0).contains(&efi), "{}: eFI {} out of [0, 1]", id, efi);
            prop_assert!(s.efi_deficits <= denom, "{}: {} deficits", id, s.efi_deficits);
            prop_assert_eq!(s.efi_deficits, scorer.efi_mask(f).count_ones(), "{}", id);
        }
        for (i, (base, added, extra)) in case.iter().enumerate() {
            let (sa, fa) = r[&format!("p{i:02}a")];
            let (sb, fb) = r[&format!("p{i:02}b")];
            let (sc, fc) = r[&format!("p{i:02}c")];
            let (ma, mb, mc) = (scorer.efi_mask(&fa), scorer.efi_mask(&fb), scorer.efi_mask(&fc));
            let (ref_mask, ref_medicines) = reference_efi(m, base, as_of);
            prop_assert_eq!(ma, ref_mask, "patient {} deficits", i);
            prop_assert_eq!(fa.medicines as usize, ref_medicines.min(255), "patient {}", i);
            // Adding a deficit code.
            let code_mask = deficits_of(m, &added.canon);
            prop_assert!(code_mask != 0);
            let new = code_mask & !ma;
            prop_assert_eq!(mb, ma | code_mask, "patient {}: added {:?}", i, added);
            prop_assert_eq!(sb.efi_deficits, sa.efi_deficits + new.count_ones(),
                "patient {}: added {:?}", i, added);
            if code_mask.count_ones() == 1 {
                let expected = if ma & code_mask != 0 { 0 } else { 1 };
                prop_assert_eq!(sb.efi_deficits - sa.efi_deficits, expected,
                    "patient {}: added {:?}", i, added);
            }
            prop_assert!(sb.efi_category >= sa.efi_category);
            // Adding anything.
            prop_assert_eq!(mc & ma, ma, "patient {}: adding {:?} removed a deficit", i, extra);
            prop_assert!(sc.efi_deficits >= sa.efi_deficits,
                "patient {}: adding {:?} lowered the eFI", i, extra);
            let mut all = base.clone();
            all.extend(extra.iter().cloned());
            let (ref_mask, ref_medicines) = reference_efi(m, &all, as_of);
            prop_assert_eq!(mc, ref_mask, "patient {} + extra", i);
            prop_assert_eq!(fc.medicines as usize, ref_medicines.min(255), "patient {} + extra", i);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. HFRS against a slow reference
// ---------------------------------------------------------------------------------------------

/// Days around the edges of the HFRS window and the as-of date.
fn edge_days() -> Vec<i32> {
    [
        "2023-03-30",
        "2023-03-31",
        "2023-04-01",
        "2023-04-02",
        "2024-02-29",
        "2025-03-31",
        "2025-04-01",
        "2025-04-02",
        "2025-04-03",
    ]
    .iter()
    .map(|d| days(d))
    .collect()
}

fn hfrs_day() -> impl Strategy<Value = i32> {
    prop_oneof![
        2 => select(edge_days()),
        1 => days("2022-01-01")..=days("2026-06-01"),
    ]
}

/// An ICD-10 code as it might arrive: an HFRS category, or any letter and two digits (mostly
/// not HFRS), with an optional fourth (and fifth) character after a dot, a space or nothing, in
/// either case, with an optional HES filler ('X' or '-') and leading space.
fn icd10_code() -> impl Strategy<Value = String> {
    let cats: Vec<String> = models()
        .hfrs
        .categories
        .iter()
        .map(|c| c.code.clone())
        .collect();
    let category = prop_oneof![
        3 => select(cats),
        2 => "[A-Z][0-9]{2}",
    ];
    (
        category,
        prop::option::of("[0-9X]{1,2}"),
        select(vec!["", "", ".", ".", " "]),
        select(vec!["", "", "", "X", "-"]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(cat, rest, sep, filler, lower, spaced)| {
            let mut code = cat;
            match rest {
                Some(r) => code = format!("{code}{sep}{r}"),
                None if sep == "." => code.push('.'),
                None => {}
            }
            code.push_str(filler);
            if lower {
                code = code.to_ascii_lowercase();
            }
            if spaced {
                code = format!(" {code}");
            }
            code
        })
}

/// Events of any system that can carry an ICD-10-looking code: mostly ICD-10, some OPCS-4 and
/// Read v2 (which are not hospital diagnoses and must not count).
fn hfrs_event() -> impl Strategy<Value = Ev> {
    let icd = (
        select(vec!["icd10", "ICD10", "icd-10", "ICD_10"]),
        icd10_code(),
    );
    let opcs = (Just("opcs4"), icd10_code());
    let read = (
        Just("read2"),
        icd10_code().prop_map(|c| {
            let mut c = c.replace(['.', '-', ' '], "").to_ascii_uppercase();
            c.truncate(5);
            c
        }),
    );
    (prop_oneof![8 => icd, 1 => opcs, 1 => read], hfrs_day()).prop_map(|((system, code), day)| Ev {
        system: system.to_string(),
        code,
        day,
    })
}

/// The obviously-correct HFRS: for each ICD-10 event dated in [from, to], upper-case the code,
/// drop everything but letters and digits, take the first three characters; keep the distinct
/// ones that are HFRS categories.
fn reference_hfrs_categories(spec: &HfrsSpec, evs: &[Ev], from: i32, to: i32) -> BTreeSet<String> {
    let mut cats = BTreeSet::new();
    for e in evs {
        let system = e.system.trim().to_ascii_lowercase();
        if !matches!(system.as_str(), "icd10" | "icd-10" | "icd_10") {
            continue;
        }
        if e.day < from || e.day > to {
            continue;
        }
        let code: String = e
            .code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if code.len() < 3 {
            continue;
        }
        let three = &code[..3];
        if spec.categories.iter().any(|c| c.code == three) {
            cats.insert(three.to_string());
        }
    }
    cats
}

fn reference_weight(spec: &HfrsSpec, cats: &BTreeSet<String>) -> u32 {
    let mut total = 0;
    for cat in cats {
        for c in &spec.categories {
            if c.code == *cat {
                total += c.weight_tenths;
            }
        }
    }
    total
}

fn reference_band(spec: &HfrsSpec, tenths: u32) -> HfrsBand {
    if tenths < spec.intermediate_from_tenths {
        HfrsBand::Low
    } else if tenths <= spec.high_above_tenths {
        HfrsBand::Intermediate
    } else {
        HfrsBand::High
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// HFRS = sum of the weights of the distinct HFRS three-character categories coded in
    /// ICD-10 from 2023-04-02 to 2025-04-01 inclusive, as a slow reference computes it.
    #[test]
    fn hfrs_equals_the_reference_sum_of_distinct_category_weights(
        patients in prop::collection::vec(prop::collection::vec(hfrs_event(), 0..16), 1..10)
    ) {
        let m = models();
        let spec = &m.hfrs;
        let (from, to) = (days(HFRS_FROM), days(AS_OF));
        prop_assert_eq!(Windows::new(m, to).hfrs_from, from);
        let scorer = Scorer::new(m);
        let named: Vec<(String, Vec<Ev>)> = patients
            .iter()
            .enumerate()
            .map(|(i, evs)| (format!("h{i:02}"), evs.clone()))
            .collect();
        let r = score_generated(&named);
        for (id, evs) in &named {
            let (s, f) = r[id];
            let cats = reference_hfrs_categories(spec, evs, from, to);
            let got: BTreeSet<String> = (0..spec.categories.len())
                .filter(|&c| f.hfrs & (1u128 << c) != 0)
                .map(|c| spec.categories[c].code.clone())
                .collect();
            prop_assert_eq!(&got, &cats, "{}: categories of {:?}", id, evs);
            let tenths = reference_weight(spec, &cats);
            prop_assert_eq!(s.hfrs_tenths, tenths, "{}: HFRS of {:?}", id, evs);
            prop_assert_eq!(s.hfrs_band, reference_band(spec, tenths), "{}", id);
            // Reasons: one per category, heaviest first, ties by code.
            let mut shown: Vec<_> = spec.categories.iter().filter(|c| cats.contains(&c.code)).collect();
            shown.sort_by(|a, b| b.weight_tenths.cmp(&a.weight_tenths).then(a.code.cmp(&b.code)));
            let expected: Vec<String> = shown
                .iter()
                .map(|c| {
                    let w = c.weight_tenths;
                    format!("{} {} ({}.{})", c.code, c.description, w / 10, w % 10)
                })
                .collect();
            prop_assert_eq!(scorer.hfrs_reasons(&f), expected.join("; "), "{}", id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Row order of the input files
// ---------------------------------------------------------------------------------------------

fn fixture() -> std::path::PathBuf {
    fixtures().join("cohort-2000")
}

/// Run `strata score` on a cohort folder into `out`; panics with stderr on failure.
fn score_ok(cohort: &Path, out: &Path) {
    let o = score_into(cohort, out, &["--today", TODAY]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Every output file but the manifest (which holds timings and paths), with its bytes.
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    tree_bytes(dir)
        .into_iter()
        .filter(|(p, _)| p != "manifest.json")
        .collect()
}

/// The fixture's output, computed once.
fn fixture_outputs() -> &'static Vec<(String, Vec<u8>)> {
    static OUT: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    OUT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        score_ok(&fixture(), &d.path().join("out"));
        outputs(&d.path().join("out"))
    })
}

/// The fixture's patients, events and encounters frames, read once.
fn fixture_frames() -> &'static (DataFrame, DataFrame, DataFrame) {
    static FRAMES: OnceLock<(DataFrame, DataFrame, DataFrame)> = OnceLock::new();
    FRAMES.get_or_init(|| {
        (
            read_parquet(&fixture().join("patients.parquet")),
            read_parquet(&fixture().join("events.parquet")),
            read_parquet(&fixture().join("encounters.parquet")),
        )
    })
}

/// A permutation of 0..n from a seed (SplitMix64 driving a Fisher-Yates shuffle).
fn permutation(n: usize, seed: u64) -> Vec<IdxSize> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut v: Vec<IdxSize> = (0..n as IdxSize).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn shuffled(df: &DataFrame, seed: u64) -> DataFrame {
    let perm = permutation(df.height(), seed);
    assert!(
        perm.iter().enumerate().any(|(i, &k)| k as usize != i),
        "the permutation moved nothing"
    );
    df.take(&IdxCa::from_vec("perm".into(), perm)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3))]

    /// Scoring a copy of the fixture whose events and encounters rows (and, as the README
    /// promises for every input file, patients rows) are permuted writes the same bytes to every
    /// output file (the manifest aside).
    #[test]
    fn shuffling_input_rows_changes_no_output_byte(seed in any::<u64>()) {
        let expected = fixture_outputs();
        prop_assert!(expected.len() >= 10);
        let (patients, events, encounters) = fixture_frames();
        let d = tempfile::tempdir().unwrap();
        let cohort = d.path().join("cohort");
        std::fs::create_dir_all(&cohort).unwrap();
        write_parquet_marked(&cohort.join("patients.parquet"), shuffled(patients, !seed));
        write_parquet(&cohort.join("events.parquet"), shuffled(events, seed));
        write_parquet(
            &cohort.join("encounters.parquet"),
            shuffled(encounters, seed.rotate_left(17) ^ 0x5EED),
        );
        let out = d.path().join("out");
        score_ok(&cohort, &out);
        let got = outputs(&out);
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        prop_assert_eq!(names(&got), names(expected));
        for ((path, a), (_, b)) in got.iter().zip(expected.iter()) {
            prop_assert!(a == b, "{} differs after shuffling with seed {}", path, seed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Scoring by PCN
// ---------------------------------------------------------------------------------------------

/// Rows of `df` whose `patient_id` is in `ids`.
fn rows_of(df: &DataFrame, ids: &HashSet<String>) -> DataFrame {
    let pid = df
        .column("patient_id")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    let mask: BooleanChunked = pid
        .str()
        .unwrap()
        .iter()
        .map(|v| v.is_some_and(|v| ids.contains(v.trim())))
        .collect();
    df.filter(&mask).unwrap()
}

/// Rows of `df` whose string column `col` equals `value`.
fn rows_where(df: &DataFrame, col: &str, value: &str) -> DataFrame {
    let mask: BooleanChunked = df
        .column(col)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.is_some_and(|v| v.trim() == value))
        .collect();
    df.filter(&mask).unwrap()
}

/// Splitting the fixture into one cohort per PCN (its patients, their events and encounters)
/// and scoring each part gives byte-identical lists and the same score rows as scoring it whole.
#[test]
fn scoring_each_pcn_alone_gives_the_same_lists_and_scores() {
    let d = tempfile::tempdir().unwrap();
    let whole = d.path().join("whole");
    score_ok(&fixture(), &whole);
    let whole_scores = read_parquet(&whole.join("scores.parquet"));
    let (patients, events, encounters) = fixture_frames();
    let pcns: BTreeSet<String> = patients
        .column("pcn_code")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().trim().to_string())
        .collect();
    assert_eq!(pcns.len(), 4);
    let mut scored_rows = 0;
    let mut events_rows = 0;
    let mut encounters_rows = 0;
    for pcn in &pcns {
        let part = d.path().join(format!("cohort-{pcn}"));
        std::fs::create_dir_all(&part).unwrap();
        let ps = rows_where(patients, "pcn_code", pcn);
        let ids: HashSet<String> = ps
            .column("patient_id")
            .unwrap()
            .cast(&DataType::String)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().trim().to_string())
            .collect();
        assert_eq!(ids.len(), ps.height());
        let (ev, en) = (rows_of(events, &ids), rows_of(encounters, &ids));
        events_rows += ev.height();
        encounters_rows += en.height();
        write_parquet_marked(&part.join("patients.parquet"), ps);
        write_parquet(&part.join("events.parquet"), ev);
        write_parquet(&part.join("encounters.parquet"), en);
        let out = d.path().join(format!("out-{pcn}"));
        score_ok(&part, &out);
        let stem = strata::output::file_stem(pcn);
        let folders: Vec<String> = std::fs::read_dir(out.join("lists"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(folders, std::slice::from_ref(&stem), "only {pcn}'s folder");
        let lists: Vec<String> = std::fs::read_dir(out.join("lists").join(&stem))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The workbook and HTML page show counts protected with the whole run's tables, so
        // only the list files themselves are compared.
        assert_eq!(
            lists,
            vec![
                format!("{stem}.csv"),
                format!("{stem}.html"),
                format!("{stem}.parquet"),
                format!("{stem}.xlsx")
            ]
        );
        for ext in ["csv", "parquet"] {
            let rel = format!("lists/{stem}/{stem}.{ext}");
            let (a, b) = (
                std::fs::read(whole.join(&rel)).unwrap(),
                std::fs::read(out.join(&rel)).unwrap(),
            );
            assert!(a == b, "{rel} differs when {pcn} is scored alone");
        }
        let part_scores = read_parquet(&out.join("scores.parquet"));
        let expected = rows_where(&whole_scores, "pcn_code", pcn);
        assert!(expected.height() > 0);
        assert!(
            part_scores.equals_missing(&expected),
            "scores.parquet rows of {pcn} differ:\nwhole: {expected}\npart: {part_scores}"
        );
        scored_rows += part_scores.height();
    }
    // The parts are a partition of the cohort.
    assert_eq!(scored_rows, whole_scores.height());
    assert_eq!(events_rows, events.height());
    assert_eq!(encounters_rows, encounters.height());
}

// ---------------------------------------------------------------------------------------------
// 5. Scoring in two stages: records in buckets of the pseudonym, then PCNs without the records
// ---------------------------------------------------------------------------------------------

/// The run's settings of the two-stage test: the repository's models and risk cards, a
/// programme that reads the palliative care register (so the register is carried too).
fn two_stage_settings() -> strata::settings::Settings {
    use strata::config::{InputConfig, ScoreConfig};
    use strata::programmes::{ProgrammeConfig, RuleConfig};
    let config = ScoreConfig {
        as_of: Some(AS_OF.to_string()),
        models: Some(models_dir()),
        programme: Some(vec![ProgrammeConfig {
            name: "palliative".into(),
            description: None,
            rank_by: None,
            top: None,
            rule: vec![RuleConfig {
                palliative_register: Some(true),
                ..Default::default()
            }],
        }]),
        input: InputConfig {
            today: Some(TODAY.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    strata::settings::Settings::resolve(&config).unwrap()
}

/// A cohort of frames, marked synthetic (as the fixture's files are), so the default risk cards
/// apply.
fn cohort_of(p: DataFrame, e: DataFrame, n: DataFrame) -> Cohort {
    let mut c = Cohort::from_frames(p, e, n, &load_options()).unwrap();
    c.synthetic = Some("strata synth (test)".into());
    c
}

/// Panics naming the first patient where `a` and `b` differ.
fn same<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(k) = (0..a.len()).find(|&k| a[k] != b[k]) {
        panic!(
            "{what} differ at patient {k}: {:?} against {:?}",
            a[k], b[k]
        );
    }
}

/// The fixture scored in two stages gives, PCN by PCN, the partition a run that reads the
/// records gives: the records read in three buckets of the pseudonym (whatever their PCNs) hand
/// one record per patient to their PCN's stage, which holds the patients only. Features, scores,
/// risks, feature rows (what explanations are made from), ranks, programme lists, the tables'
/// counts and the figures are the same; the buckets' indicator counts add up to the whole run's.
#[test]
fn scoring_records_in_buckets_then_pcns_without_them_gives_the_same_partition() {
    use strata::report::FallsLink;
    let (patients, events, encounters) = fixture_frames();
    let (warnings, spells) = two_stages_equal_one(patients, events, encounters);
    assert!(!warnings.iter().any(|w| w.contains("no prescriptions")));
    assert_eq!(spells.falls_link, FallsLink::EncounterId);
    assert!(spells.spells > 100);
    // Without prescriptions (a warning true of every part that read records) and with no event
    // linked to an admission (falls found by date: the spells' report says so).
    let no_dmd: BooleanChunked = strings(events, "code_system")
        .iter()
        .map(|s| s.trim() != "dmd")
        .collect();
    let mut unlinked = events.filter(&no_dmd).unwrap();
    let n = unlinked.height();
    let dtype = unlinked.column("encounter_id").unwrap().dtype().clone();
    unlinked
        .with_column(Column::full_null("encounter_id".into(), n, &dtype))
        .unwrap();
    let (warnings, spells) = two_stages_equal_one(patients, &unlinked, encounters);
    assert!(
        warnings.iter().any(|w| w.contains("no prescriptions")),
        "{warnings:?}"
    );
    assert_eq!(spells.falls_link, FallsLink::Date);
}

/// The body of the two-stage test, on one cohort's frames: the run's warnings and spells (the
/// same by either path).
fn two_stages_equal_one(
    patients: &DataFrame,
    events: &DataFrame,
    encounters: &DataFrame,
) -> (Vec<String>, strata::report::SpellReport) {
    use strata::partition::{
        score_carried, score_partition, score_records, CompareWith, Figures, Handed, RunModels,
    };
    let settings = two_stage_settings();
    let mut models = RunModels::load(&settings).unwrap();
    models.for_cohort(&settings, true).unwrap();
    assert!(!models.models.is_empty(), "the risk cards are applied");
    let (mut one, mut two): (Vec<Handed>, Vec<Handed>) = (Vec::new(), Vec::new());
    let ids_of = |df: &DataFrame| -> Vec<String> {
        strings(df, "patient_id")
            .into_iter()
            .map(|v| v.trim().to_string())
            .collect()
    };
    // Records stage: three buckets by a hash of the pseudonym.
    let bucket = |id: &str| id.bytes().fold(7u32, |h, b| h.wrapping_mul(31) ^ b as u32) % 3;
    let all_ids = ids_of(patients);
    let mut carried: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut indicators: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut figures = Figures::default();
    let mut registered = 0;
    for b in 0..3 {
        let ids: HashSet<String> = all_ids.iter().filter(|i| bucket(i) == b).cloned().collect();
        assert!(ids.len() > 100, "bucket {b} holds {} patients", ids.len());
        let part = score_records(
            cohort_of(
                rows_of(patients, &ids),
                rows_of(events, &ids),
                rows_of(encounters, &ids),
            ),
            &settings,
            &models,
        );
        let pa = &part.cohort.patients;
        assert!(pa.pcns.len() > 1, "a bucket holds patients of several PCNs");
        registered += part.carried.register.iter().filter(|&&r| r).count();
        for p in 0..pa.len() {
            let mut rec = Vec::new();
            part.carried.encode(p, &mut rec);
            carried.push((pa.id[p].clone(), pa.pcns[pa.pcn[p] as usize].clone(), rec));
        }
        for (pcn, v) in &part.indicators.rows {
            let t = indicators.entry(pcn.clone()).or_insert(vec![0; v.len()]);
            for (a, x) in t.iter_mut().zip(v) {
                *a += x;
            }
        }
        figures.add(&part.handed().figures);
        two.push(part.handed());
    }
    assert!(registered > 0, "someone is on the palliative care register");
    assert_eq!(carried.len(), patients.height());
    // PCN stage, beside the one-stage map step of the same PCN.
    let pcns: BTreeSet<String> = carried.iter().map(|(_, p, _)| p.clone()).collect();
    let (mut whole_indicators, mut whole_figures) = (BTreeMap::new(), Figures::default());
    for pcn in &pcns {
        let ps = rows_where(patients, "pcn_code", pcn);
        let ids: HashSet<String> = ids_of(&ps).into_iter().collect();
        let direct = score_partition(
            cohort_of(ps.clone(), rows_of(events, &ids), rows_of(encounters, &ids)),
            &settings,
            &models,
            CompareWith::Nothing,
            &mut |_| {},
        );
        let records: Vec<(&str, &[u8])> = carried
            .iter()
            .filter(|(_, p, _)| p == pcn)
            .map(|(i, _, r)| (i.as_str(), r.as_slice()))
            .collect();
        let cohort = cohort_of(ps, events.clear(), encounters.clear());
        let gathered = strata::carried::Carried::gather(&cohort.patients.id, &records).unwrap();
        let split = score_carried(cohort, gathered, &settings, &models, CompareWith::Nothing);
        assert!(split.records_elsewhere && !direct.records_elsewhere);
        let (a, b) = (&direct.scored, &split.scored);
        same(&a.features, &b.features, &format!("{pcn}: features"));
        same(&a.activity, &b.activity, &format!("{pcn}: activity"));
        same(&a.scores, &b.scores, &format!("{pcn}: scores"));
        same(&a.status, &b.status, &format!("{pcn}: statuses"));
        let width = strata::predictors::predictor_names(&models.definitions).len();
        let rows = |part: &strata::partition::Partition| {
            strata::predictors::predictor_rows(
                &part.cohort,
                &models.definitions,
                &part.scored,
                settings.as_of,
            )
        };
        let (ra, rb) = (rows(&direct), rows(&split));
        assert_eq!(ra.len(), direct.cohort.patients.len() * width);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&ra) == bits(&rb), "{pcn}: feature rows");
        assert_eq!(direct.risks.len(), split.risks.len());
        for (x, y) in direct.risks.iter().zip(&split.risks) {
            assert!(
                x.probability
                    .iter()
                    .map(|p| p.to_bits())
                    .eq(y.probability.iter().map(|p| p.to_bits())),
                "{pcn}: risk of {:?}",
                x.outcome
            );
            assert_eq!(x.pcn_rank, y.pcn_rank, "{pcn}: risk ranks");
        }
        assert_eq!(direct.ranked, split.ranked, "{pcn}: lists");
        assert_eq!(direct.register, split.register, "{pcn}: register");
        assert_eq!(direct.selected, split.selected, "{pcn}: programme lists");
        assert_eq!(
            direct.counts.summary, split.counts.summary,
            "{pcn}: summary"
        );
        assert_eq!(direct.counts.equity, split.counts.equity, "{pcn}: equity");
        assert_eq!(
            direct.counts.profile, split.counts.profile,
            "{pcn}: profile"
        );
        assert!(
            split.counts.indicators.rows.is_empty(),
            "the records stage counts them"
        );
        for (k, v) in &direct.counts.indicators.rows {
            whole_indicators.insert(k.clone(), v.to_vec());
        }
        let (hd, hs) = (direct.handed(), split.handed());
        assert!(hs.records_elsewhere && !hd.records_elsewhere);
        assert_eq!(hd.programmes, hs.programmes);
        assert_eq!(hd.models, hs.models);
        whole_figures.add(&hd.figures);
        figures.add(&hs.figures);
        one.push(hd);
        two.push(hs);
    }
    // What the run's reduce step makes of the parts: the same warnings and spells.
    let whole: [String; 0] = [];
    let warnings = |parts: &[Handed]| strata::finish::input_warnings(Some(&whole), parts);
    assert_eq!(warnings(&two), warnings(&one), "warnings");
    let spells = strata::finish::hospital_spells(&one);
    assert_eq!(strata::finish::hospital_spells(&two), spells, "spells");
    assert_eq!(indicators, whole_indicators, "indicator counts");
    assert_eq!(figures, whole_figures, "figures");
    assert!(figures.listed > 0 && figures.ignored_after_as_of > 0);
    (warnings(&one), spells)
}
