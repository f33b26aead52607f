//! Fuzz `strata::cohort::Cohort::read` with one hostile Parquet file beside two valid ones.
//!
//! Input layout: the first byte chooses which file the rest of the input replaces
//! (even: `events.parquet`, odd: `patients.parquet`); the other two files of the cohort are the
//! valid ones from `fixtures/cohort-2000`, copied once into a temporary folder at startup.
//! An empty input is treated as an empty `events.parquet`.
//!
//! Property: `Cohort::read` returns (problems in its report are fine) and never panics or
//! aborts. strata itself turns panics of the Parquet decoder into report errors
//! (`catch_unwind` in `input::parquet::open` / `input::parquet::load`), so a panic that is caught
//! inside strata is not a finding; only a panic that escapes `Cohort::read`, or an abort, is.
//! libfuzzer-sys installs a panic hook that aborts on *every* panic, caught or not, so this target
//! replaces it with one that only records the last panic (message, place and backtrace), and
//! aborts itself, printing that record, when a panic escapes.
#![no_main]

use std::backtrace::Backtrace;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use strata::cohort::Cohort;
use strata::input::LoadOptions;

const FILES: [&str; 3] = ["patients.parquet", "events.parquet", "encounters.parquet"];

struct Setup {
    /// Keeps the temporary folder alive for the process's lifetime.
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The valid fixture files' bytes, to restore the file the previous input replaced.
    valid: Vec<(&'static str, Vec<u8>)>,
    opts: LoadOptions,
}

static SETUP: OnceLock<Setup> = OnceLock::new();
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
/// The file the previous input replaced.
static LAST_TARGET: Mutex<Option<&'static str>> = Mutex::new(None);

fn fixtures() -> PathBuf {
    std::env::var_os("STRATA_FUZZ_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cohort-2000"))
}

fn setup() -> &'static Setup {
    SETUP.get_or_init(|| {
        // Record panics instead of aborting on them (see the module docs).
        panic::set_hook(Box::new(|info| {
            let record = format!(
                "panic: {info}\nthread: {:?}\n{}",
                std::thread::current().name(),
                Backtrace::force_capture()
            );
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(record);
            }
        }));
        let src = fixtures();
        let tmp = tempfile::Builder::new()
            .prefix("strata-fuzz-")
            .tempdir()
            .expect("create a temporary folder");
        let dir = tmp.path().to_path_buf();
        let mut valid = Vec::new();
        for name in FILES {
            let bytes = fs::read(src.join(name))
                .unwrap_or_else(|e| panic!("read fixture {}: {e}", src.join(name).display()));
            fs::write(dir.join(name), &bytes).expect("copy a fixture");
            valid.push((name, bytes));
        }
        Setup {
            _tmp: tmp,
            dir,
            valid,
            opts: LoadOptions {
                skip_memory_check: true,
                // Fixed, so that runs do not depend on the calendar.
                today: strata::date::parse_days("2025-04-01").expect("valid date"),
                ..Default::default()
            },
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let (target, bytes) = match data.split_first() {
        Some((sel, rest)) if sel & 1 == 1 => ("patients.parquet", rest),
        Some((_, rest)) => ("events.parquet", rest),
        None => ("events.parquet", data),
    };
    // Restore the file the previous input replaced, if it is not the one replaced now.
    let mut last = LAST_TARGET.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(prev) = last.replace(target) {
        if prev != target {
            let (_, valid) = s.valid.iter().find(|(n, _)| *n == prev).expect("known file");
            fs::write(s.dir.join(prev), valid).expect("restore a cohort file");
        }
    }
    drop(last);
    fs::write(s.dir.join(target), bytes).expect("write the fuzzed file");
    if let Ok(mut last) = LAST_PANIC.lock() {
        *last = None;
    }
    let result = panic::catch_unwind(AssertUnwindSafe(|| Cohort::read(&s.dir, &s.opts)));
    match result {
        Ok(cohort) => {
            // Touch the result so that nothing is optimised away.
            std::hint::black_box(cohort.report.is_ok());
        }
        Err(_) => {
            let record = LAST_PANIC
                .lock()
                .ok()
                .and_then(|mut l| l.take())
                .unwrap_or_else(|| "panic (no record)".into());
            eprintln!(
                "==== a panic escaped Cohort::read (input replaces {target}, {} bytes) ====\n{record}",
                bytes.len()
            );
            std::process::abort();
        }
    }
});
