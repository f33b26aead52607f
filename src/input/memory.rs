//! The memory check: an estimate, from the files' footers alone, of what loading a cohort takes,
//! against what the machine has, so a run too large fails in a second with advice rather than
//! being killed by the operating system after minutes.
//!
//! Pipeline position: before the first stage reads any data.

use std::path::Path;

use super::contract::{ENCOUNTERS_FILE, EVENTS_FILE, MEDICATIONS_FILE, PATIENTS_FILE};
use super::parquet::footer_rows;

/// Bytes of memory a load needs per event or encounter row and per patient: the worst case, the
/// general (non-dictionary) path, measured at 4.3 GB peak for 63.6 million rows and 1.2 million
/// patients (BENCHMARKS.md), rounded up. The dictionary path needs less than half of it.
pub const BYTES_PER_EVENT: u64 = 72;
/// See [`BYTES_PER_EVENT`].
pub const BYTES_PER_PATIENT: u64 = 400;

/// Memory available to this process in bytes (Linux `MemAvailable`, or the cgroup limit when
/// lower); `None` when it cannot be told.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let avail = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?
        * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(cgroup.map_or(avail, |c| c.min(avail)))
}

/// Estimated bytes needed to load the cohort in `dir`, from the files' footers.
pub fn estimate_memory(dir: &Path) -> u64 {
    let ev = footer_rows(&dir.join(EVENTS_FILE)).unwrap_or(0)
        + footer_rows(&dir.join(ENCOUNTERS_FILE)).unwrap_or(0)
        + footer_rows(&dir.join(MEDICATIONS_FILE)).unwrap_or(0);
    let pa = footer_rows(&dir.join(PATIENTS_FILE)).unwrap_or(0);
    ev * BYTES_PER_EVENT + pa * BYTES_PER_PATIENT
}
